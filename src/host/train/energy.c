/* The shared body of the recipes' `energy` entries (energy.h): batches of host examples through
 * a net on a tape the recipe planned at set-up, the output copied back and signed. */
#include "train/energy.h"
#include <stdio.h>

/* dev <- (a x + b) of one batch already copied to stage */
static ebmc_status map_input(ebmc_ctx_t *ctx, const ebmc_energy_pass *p, size_t count) {
    ebmc_fill_desc f = {count, p->b};
    ebmc_axpby_desc d = {count, p->a, 1.0f};
    EBMC_TRY(ebmc_fill(ctx, &f, p->dev));
    return ebmc_axpby(ctx, &d, p->stage, p->dev);
}

static ebmc_status batches(const ebmc_energy_pass *p, ebmc_ctx_t *ctx, const float *x, int n, float *e) {
    for (int done = 0; done < n; done += p->max) {
        int take = n - done < p->max ? n - done : p->max;
        size_t count = (size_t)take * p->elems;
        float *land = p->stage ? p->stage : p->dev;
        EBMC_TRY(ebmc_copy(ctx, land, x + (size_t)done * p->elems, count * sizeof(float), EBMC_COPY_H2D));
        if (p->stage) EBMC_TRY(map_input(ctx, p, count));
        EBMC_TRY(ebmc_net_forward(p->net, p->tape, take, p->dev));
        EBMC_TRY(ebmc_copy(ctx, e + done, ebmc_tape_output(p->tape, 0), (size_t)take * sizeof(float),
                           EBMC_COPY_D2H));
    }
    return ebmc_sync(ctx);
}

ebmc_status ebmc_net_energy(const ebmc_energy_pass *p, const float *x, int n, float *e, char *err,
                            size_t errlen) {
    ebmc_ctx_t *ctx = ebmc_net_ctx(p->net);
    int iters = ebmc_net_sn_iters(p->net);
    ebmc_net_set_sn_iters(p->net, 0); /* scoring must not move u, v */
    ebmc_status s = batches(p, ctx, x, n, e);
    ebmc_net_set_sn_iters(p->net, iters);
    if (s) {
        snprintf(err, errlen, "energy: %s", ebmc_ctx_error(ctx));
        return s;
    }
    if (p->sign != 1.0f)
        for (int i = 0; i < n; i++) e[i] *= p->sign;
    return EBMC_OK;
}
