#include "backend/ctx_internal.h"
#include "backend/cpu/gemm.h"
#include "ebmc/comm.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

ebmc_ctx_opts ebmc_ctx_opts_default(void) {
    ebmc_ctx_opts o = {.kind = EBMC_BACKEND_AUTO,
                       .device = 0,
                       .precision = EBMC_PREC_TF32_CONV, /* PyTorch's defaults */
                       .deterministic = false,
                       .quiet = false};
    return o;
}

ebmc_status ebmc_ctx_seterr(ebmc_ctx_t *ctx, ebmc_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
    return status;
}

static ebmc_status create_kind(const ebmc_ctx_opts *opts, ebmc_backend_kind kind,
                               ebmc_ctx_t **out, char *err, size_t errlen) {
    ebmc_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, errlen, "out of host memory creating a context");
        return EBMC_E_NOMEM;
    }
    ctx->opts = *opts;
    ctx->opts.kind = kind;
    ctx->kind = kind;
    ctx->ops = kind == EBMC_BACKEND_CUDA ? &ebmc_cuda_ops : &ebmc_cpu_ops;
    ebmc_status s = ctx->ops->init ? ctx->ops->init(ctx) : EBMC_OK;
    if (s != EBMC_OK) {
        snprintf(err, errlen, "%s backend: %s", ctx->ops->name, ctx->err);
        free(ctx);
        return s;
    }
    *out = ctx;
    return EBMC_OK;
}

ebmc_status ebmc_ctx_create(const ebmc_ctx_opts *opts, ebmc_ctx_t **out, char *err,
                            size_t errlen) {
    ebmc_ctx_opts def = ebmc_ctx_opts_default();
    if (!opts) opts = &def;
    *out = NULL;
    if (err && errlen) err[0] = 0;
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!ebmc_precision_name(opts->precision)) {
        snprintf(err, errlen, "unknown precision %d", (int)opts->precision);
        return EBMC_E_INVALID;
    }
    switch (opts->kind) {
    case EBMC_BACKEND_CPU: return create_kind(opts, EBMC_BACKEND_CPU, out, err, errlen);
    case EBMC_BACKEND_CUDA: return create_kind(opts, EBMC_BACKEND_CUDA, out, err, errlen);
    case EBMC_BACKEND_AUTO: {
        char why[512] = "no CUDA device found";
        if (ebmc_cuda_device_count() > 0) {
            if (create_kind(opts, EBMC_BACKEND_CUDA, out, why, sizeof why) == EBMC_OK)
                return EBMC_OK;
        }
        if (!opts->quiet)
            fprintf(stderr, "ebmc: notice: %s; running on the CPU backend (slow)\n", why);
        return create_kind(opts, EBMC_BACKEND_CPU, out, err, errlen);
    }
    }
    snprintf(err, errlen, "unknown backend kind %d", (int)opts->kind);
    return EBMC_E_INVALID;
}

void ebmc_ctx_free(ebmc_ctx_t *ctx) {
    if (!ctx) return;
    if (ctx->nccl) ebmc_cuda_nccl_free(ctx); /* before the stream it runs on goes */
    if (ctx->workspace) ctx->ops->free(ctx, ctx->workspace);
    if (ctx->ops->fini) ctx->ops->fini(ctx);
    free(ctx);
}

ebmc_backend_kind ebmc_ctx_kind(const ebmc_ctx_t *ctx) { return ctx->kind; }
const ebmc_backend_ops *ebmc_ctx_ops(const ebmc_ctx_t *ctx) { return ctx->ops; }
ebmc_precision ebmc_ctx_precision(const ebmc_ctx_t *ctx) { return ctx->opts.precision; }

static const char *const PREC_NAMES[] = {[EBMC_PREC_FP32] = "fp32", [EBMC_PREC_TF32] = "tf32",
                                         [EBMC_PREC_TF32_CONV] = "tf32_conv"};

const char *ebmc_precision_name(ebmc_precision p) {
    return (int)p >= 0 && (size_t)p < sizeof PREC_NAMES / sizeof PREC_NAMES[0] ? PREC_NAMES[p] : NULL;
}

bool ebmc_precision_parse(const char *name, ebmc_precision *p) {
    for (size_t i = 0; i < sizeof PREC_NAMES / sizeof PREC_NAMES[0]; i++)
        if (name && !strcmp(name, PREC_NAMES[i])) {
            *p = (ebmc_precision)i;
            return true;
        }
    return false;
}

const char *ebmc_ctx_precision_name(const ebmc_ctx_t *ctx) {
    return ctx->kind == EBMC_BACKEND_CUDA ? ebmc_precision_name(ctx->opts.precision) : "fp32";
}
int ebmc_ctx_device(const ebmc_ctx_t *ctx) { return ctx->kind == EBMC_BACKEND_CUDA ? ctx->opts.device : -1; }
const char *ebmc_ctx_error(const ebmc_ctx_t *ctx) { return ctx ? ctx->err : "no context"; }
size_t ebmc_ctx_workspace_bytes(const ebmc_ctx_t *ctx) { return ctx->ws_bytes; }
void ebmc_ctx_freeze_workspace(ebmc_ctx_t *ctx) { ctx->ws_frozen = true; }

ebmc_status ebmc_ctx_reserve_workspace(ebmc_ctx_t *ctx, size_t bytes) {
    if (bytes <= ctx->ws_bytes) return EBMC_OK;
    if (ctx->ws_frozen)
        return ebmc_ctx_seterr(ctx, EBMC_E_WORKSPACE,
                               "workspace is frozen at %zu bytes; %zu requested (plan it before "
                               "the loop)", ctx->ws_bytes, bytes);
    void *p = NULL;
    ebmc_status s = ctx->ops->alloc(ctx, &p, bytes);
    if (s != EBMC_OK) return s;
    if (ctx->workspace) ctx->ops->free(ctx, ctx->workspace);
    ctx->workspace = p;
    ctx->ws_bytes = bytes;
    return EBMC_OK;
}

ebmc_status ebmc_ctx_workspace(ebmc_ctx_t *ctx, size_t bytes, void **ws) {
    *ws = NULL;
    if (bytes == 0) return EBMC_OK;
    ebmc_status s = ebmc_ctx_reserve_workspace(ctx, bytes);
    if (s != EBMC_OK) return s;
    *ws = ctx->workspace;
    return EBMC_OK;
}

void ebmc_print_build_info(FILE *f) {
    fprintf(f, "ebmc %s\n", EBMC_VERSION_STRING);
#if defined(__clang__)
    fprintf(f, "C compiler: clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    fprintf(f, "C compiler: gcc %s\n", __VERSION__);
#else
    fprintf(f, "C compiler: unknown\n");
#endif
#ifdef _OPENMP
    fprintf(f, "OpenMP: %d (max threads %d)\n", _OPENMP, omp_get_max_threads());
#else
    fprintf(f, "OpenMP: not built\n");
#endif
    char blas[256];
    cpu_blas_info(blas, sizeof blas);
    fprintf(f, "CPU BLAS: %s\n", blas);
    cpu_gemm_info(blas, sizeof blas);
    fprintf(f, "CPU GEMM (linear layers, small convolutions): %s\n", blas);
    cpu_dnnl_info(blas, sizeof blas);
    fprintf(f, "CPU convolutions: %s\n", blas);
    cpu_simd_info(blas, sizeof blas);
    fprintf(f, "CPU element-wise loops: %s\n", blas);
    ebmc_cuda_print_build_info(f); /* the CUDA versions and devices, or "not built" */
    ebmc_comm_print_build_info(f);  /* data-parallel ranks: MPI, and NCCL on CUDA */
    ebmc_nccl_print_build_info(f);
}
