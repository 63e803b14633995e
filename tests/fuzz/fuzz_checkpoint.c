/* libFuzzer target: the checkpoint loader (ebmc_net_load) into a small finalized net (toy2d,
 * role E, hidden width 8, on the CPU), built once. A failed load must say why and leave the net
 * as it was: its parameters are compared with a copy taken at the start or after the last
 * successful load. */
#include "fuzz_util.h"

#include "ebmc/checkpoint.h"
#include "ebmc/models.h"

static ebmc_net_t *NET;
static float *COPY; /* the parameters after setup or the last successful load */

static void setup(void) {
    char err[512];
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CPU;
    o.quiet = true;
    ebmc_ctx_t *ctx = NULL; /* kept for the process's life, as the net is */
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err) != EBMC_OK) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    ebmc_model_cfg c;
    if (!ebmc_model_defaults("toy2d", &c)) abort();
    c.hidden = 8;
    NET = ebmc_model_build(&c, EBMC_NET_E, err, sizeof err);
    if (!NET || ebmc_net_finalize(NET, ctx, true, 1) != EBMC_OK) {
        fprintf(stderr, "%s\n", NET ? ebmc_net_error(NET) : err);
        abort();
    }
    COPY = malloc(ebmc_net_param_count(NET) * sizeof *COPY);
    memcpy(COPY, ebmc_net_params(NET), ebmc_net_param_count(NET) * sizeof *COPY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!NET) setup();
    char path[512], err[1024];
    const size_t bytes = ebmc_net_param_count(NET) * sizeof *COPY;
    fz_write("in.safetensors", data, size, path, sizeof path);
    ebmc_status st_ = ebmc_net_load(NET, path, err, sizeof err);
    fz_report("load", st_, err);
    if (st_ == EBMC_OK) {
        memcpy(COPY, ebmc_net_params(NET), bytes);
        return 0;
    }
    if (!err[0]) abort();
    if (memcmp(COPY, ebmc_net_params(NET), bytes) != 0) {
        fprintf(stderr, "a failed load changed the net: %s\n", err);
        abort();
    }
    return 0;
}
