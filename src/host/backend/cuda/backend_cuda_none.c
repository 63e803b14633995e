/* The CUDA backend of a build without CUDA (-DEBMC_CUDA=OFF): the same public symbols as the
 * files of src/host/backend/cuda/, so callers need no #ifdef. Creating a CUDA context fails with
 * a clear message; supports() says no to everything; no device is ever counted. Includes no CUDA
 * header. */
#include "backend/ctx_internal.h"
#include "ebmc/backend.h"

#include <stdio.h>

#define NO_CUDA_MSG "this ebmc was built without the CUDA backend (EBMC_CUDA=OFF)"

static ebmc_status none_init(ebmc_ctx_t *ctx) {
    return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, NO_CUDA_MSG);
}

static void none_fini(ebmc_ctx_t *ctx) { (void)ctx; }

static bool none_supports(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    (void)ctx, (void)op, (void)desc;
    return false;
}

static size_t none_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    (void)ctx, (void)op, (void)desc;
    return 0;
}

/* Never reached (init fails, so no CUDA context exists); defined so that no entry is NULL. */
static ebmc_status none_alloc(ebmc_ctx_t *ctx, void **ptr, size_t bytes) {
    (void)bytes;
    *ptr = NULL;
    return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, NO_CUDA_MSG);
}

static void none_free(ebmc_ctx_t *ctx, void *ptr) { (void)ctx, (void)ptr; }

static ebmc_status none_copy(ebmc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                             ebmc_copy_kind kind) {
    (void)dst, (void)src, (void)bytes, (void)kind;
    return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, NO_CUDA_MSG);
}

static ebmc_status none_sync(ebmc_ctx_t *ctx) {
    return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, NO_CUDA_MSG);
}

/* The op entries stay NULL: supports() is false, so the checked wrappers never call them. */
const ebmc_backend_ops ebmc_cuda_ops = {
    .name = "cuda",
    .init = none_init,
    .fini = none_fini,
    .supports = none_supports,
    .workspace_size = none_workspace_size,
    .alloc = none_alloc,
    .free = none_free,
    .copy = none_copy,
    .sync = none_sync,
};

int ebmc_cuda_device_count(void) { return 0; }

void ebmc_cuda_print_build_info(FILE *f) {
    fprintf(f, "CUDA: not built (configured with -DEBMC_CUDA=OFF)\n");
    fprintf(f, "backend: cpu\n");
}
