#include "ebmc/optim.h"
#include "ebmc/comm.h"
#include "ebmc/nvtx.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ebmc_adam {
    ebmc_net_t *net;
    ebmc_adam_cfg cfg;
    float *m, *v; /* device, like the parameters */
    size_t count;
    int64_t step;
    double clip_std, clip_floor; /* ebmc_adam_set_tf */
    bool tf_eps;
    int64_t decay_epochs;        /* ebmc_adam_set_schedule */
    double max_norm;
    float *norm2;                /* device: the gradient's squared norm (max_norm > 0) */
    char range[112]; /* NVTX range of a step: "<net>_adam" */
};

ebmc_status ebmc_adam_create(ebmc_net_t *net, const ebmc_adam_cfg *cfg, ebmc_adam_t **out) {
    *out = NULL;
    ebmc_ctx_t *ctx = ebmc_net_ctx(net);
    if (!ebmc_net_grads(net)) return EBMC_E_INVALID;
    ebmc_adam_t *a = ebmc_xcalloc(1, sizeof *a, "adam");
    a->net = net;
    a->cfg = *cfg;
    a->count = ebmc_net_param_count(net);
    snprintf(a->range, sizeof a->range, "%s_adam", ebmc_net_name(net));
    size_t bytes = (a->count ? a->count : 1) * sizeof(float);
    ebmc_status s = ebmc_alloc(ctx, (void **)&a->m, bytes);
    if (!s) s = ebmc_alloc(ctx, (void **)&a->v, bytes);
    ebmc_fill_desc z = {a->count, 0.0f};
    if (!s) s = ebmc_fill(ctx, &z, a->m);
    if (!s) s = ebmc_fill(ctx, &z, a->v);
    if (s) {
        ebmc_adam_free(a);
        return s;
    }
    *out = a;
    return EBMC_OK;
}

void ebmc_adam_free(ebmc_adam_t *a) {
    if (!a) return;
    ebmc_ctx_t *ctx = ebmc_net_ctx(a->net);
    ebmc_free(ctx, a->m);
    ebmc_free(ctx, a->v);
    ebmc_free(ctx, a->norm2);
    free(a);
}

double ebmc_adam_lr(const ebmc_adam_t *a, int64_t epoch) {
    if (a->decay_epochs > 0) {
        double f = 1.0 - (double)epoch / (double)a->decay_epochs;
        return a->cfg.lr * (f > 1e-10 ? f : 1e-10);
    }
    return a->cfg.lr * pow(a->cfg.gamma, (double)epoch);
}

ebmc_status ebmc_adam_set_schedule(ebmc_adam_t *a, int64_t decay_epochs, double max_norm) {
    a->decay_epochs = decay_epochs;
    a->max_norm = max_norm;
    if (max_norm > 0 && !a->norm2) return ebmc_alloc(ebmc_net_ctx(a->net), (void **)&a->norm2, sizeof(float));
    return EBMC_OK;
}

/* torch.nn.utils.clip_grad_norm_(max_norm): g *= max_norm / (||g|| + 1e-6) if that is < 1 */
static ebmc_status clip_norm(ebmc_adam_t *a) {
    ebmc_ctx_t *ctx = ebmc_net_ctx(a->net);
    float *g = ebmc_net_grads(a->net), n2;
    ebmc_reduce_desc r = {1, a->count, EBMC_REDUCE_SUMSQ, 0.0f};
    EBMC_TRY(ebmc_reduce(ctx, &r, g, a->norm2));
    EBMC_TRY(ebmc_copy(ctx, &n2, a->norm2, sizeof n2, EBMC_COPY_D2H));
    double coef = a->max_norm / (sqrt((double)n2) + 1e-6);
    if (!(coef < 1.0)) return EBMC_OK;
    ebmc_axpby_desc d = {a->count, (float)coef, 0.0f};
    return ebmc_axpby(ctx, &d, g, g);
}

int64_t ebmc_adam_steps(const ebmc_adam_t *a) { return a->step; }

void ebmc_adam_set_tf(ebmc_adam_t *a, double clip_std, double clip_floor, bool tf_eps) {
    a->clip_std = clip_std;
    a->clip_floor = clip_floor;
    a->tf_eps = tf_eps;
}

ebmc_status ebmc_adam_step(ebmc_adam_t *a, int64_t epoch) {
    ebmc_adam_desc d = {.count = a->count,
                        .lr = ebmc_adam_lr(a, epoch),
                        .beta1 = a->cfg.beta1,
                        .beta2 = a->cfg.beta2,
                        .eps = a->cfg.eps,
                        .weight_decay = a->cfg.weight_decay,
                        .step = a->step + 1,
                        .clip_std = a->clip_std,
                        .clip_floor = a->clip_floor};
    if (a->tf_eps) d.eps = a->cfg.eps / sqrt(1.0 - pow(a->cfg.beta2, (double)d.step));
    EBMC_RANGE_PUSH(a->range);
    /* data-parallel ranks: every step is taken on the mean of the ranks' gradients (a no-op in
     * one process), so every recipe's optimiser steps are synchronised here */
    ebmc_ctx_t *ctx = ebmc_net_ctx(a->net);
    ebmc_status s = ebmc_ctx_grad_mean(ctx, ebmc_net_grads(a->net), a->count);
    if (!s && a->max_norm > 0 && a->count) s = clip_norm(a);
    if (!s) s = ebmc_adam(ctx, &d, ebmc_net_params(a->net), ebmc_net_grads(a->net), a->m, a->v);
    EBMC_RANGE_POP();
    if (!s) a->step++;
    return s;
}

size_t ebmc_adam_state_count(const ebmc_adam_t *a) { return a->count; }

ebmc_status ebmc_adam_state_get(ebmc_adam_t *a, const char *prefix, char names[3][160],
                                float *host, int64_t *step_store, ebmc_st_tensor t[3]) {
    ebmc_ctx_t *ctx = ebmc_net_ctx(a->net);
    ebmc_status s = ebmc_copy(ctx, host, a->m, a->count * sizeof(float), EBMC_COPY_D2H);
    if (!s) s = ebmc_copy(ctx, host + a->count, a->v, a->count * sizeof(float), EBMC_COPY_D2H);
    if (s) return s;
    snprintf(names[0], 160, "%s.exp_avg", prefix);
    snprintf(names[1], 160, "%s.exp_avg_sq", prefix);
    snprintf(names[2], 160, "%s.step", prefix);
    *step_store = a->step;
    t[0] = (ebmc_st_tensor){names[0], EBMC_DT_F32, 1, {(int64_t)a->count}, host};
    t[1] = (ebmc_st_tensor){names[1], EBMC_DT_F32, 1, {(int64_t)a->count}, host + a->count};
    t[2] = (ebmc_st_tensor){names[2], EBMC_DT_I64, 0, {0}, step_store};
    return EBMC_OK;
}

ebmc_status ebmc_adam_state_set(ebmc_adam_t *a, const char *prefix, const ebmc_st_file *f,
                                char *err, size_t errlen) {
    char n0[160], n1[160], n2[160];
    snprintf(n0, sizeof n0, "%s.exp_avg", prefix);
    snprintf(n1, sizeof n1, "%s.exp_avg_sq", prefix);
    snprintf(n2, sizeof n2, "%s.step", prefix);
    const ebmc_st_tensor *m = ebmc_st_find(f, n0), *v = ebmc_st_find(f, n1), *st = ebmc_st_find(f, n2);
    const char *bad = !m ? n0 : !v ? n1 : !st ? n2 : NULL;
    if (bad) {
        snprintf(err, errlen, "%s: optimiser state '%s' is missing", ebmc_st_path(f), bad);
        return EBMC_E_IO;
    }
    if (m->dtype != EBMC_DT_F32 || v->dtype != EBMC_DT_F32 || st->dtype != EBMC_DT_I64 ||
        m->ndim != 1 || v->ndim != 1 || st->ndim != 0 || m->shape[0] != (int64_t)a->count ||
        v->shape[0] != (int64_t)a->count) {
        snprintf(err, errlen, "%s: optimiser state '%s' does not fit the model (%zu parameters)",
                 ebmc_st_path(f), prefix, a->count);
        return EBMC_E_IO;
    }
    /* the step count: 0 (no step taken: both moments still zero, as a fresh or imported run saves
     * them) up to the iterations a run may have (10^12, the checkpoint's own bound); the moments
     * finite, the second one non-negative */
    int64_t step;
    memcpy(&step, st->data, sizeof step);
    const float *mv = m->data, *vv = v->data;
    bool moved = false, finite = true;
    for (size_t i = 0; i < a->count; i++) {
        float x, y;
        memcpy(&x, mv + i, 4), memcpy(&y, vv + i, 4);
        moved |= x != 0 || y != 0;
        finite &= isfinite(x) && isfinite(y) && y >= 0;
    }
    if (step < 0 || step > 1000000000000 || (step == 0 && moved) || !finite) {
        snprintf(err, errlen, "%s: optimiser state '%s' is damaged: %s = %" PRId64 "%s", ebmc_st_path(f), prefix, n2,
                 step, !finite ? ", moments not finite or a negative second moment"
                       : step == 0 && moved ? " with non-zero moments (a step was taken)" : " (out of range [0, 10^12])");
        return EBMC_E_IO;
    }
    ebmc_ctx_t *ctx = ebmc_net_ctx(a->net);
    ebmc_status s = ebmc_copy(ctx, a->m, m->data, a->count * sizeof(float), EBMC_COPY_H2D);
    if (!s) s = ebmc_copy(ctx, a->v, v->data, a->count * sizeof(float), EBMC_COPY_H2D);
    if (s) {
        snprintf(err, errlen, "%s: copying optimiser state: %s", ebmc_st_path(f), ebmc_ctx_error(ctx));
        return s;
    }
    a->step = step;
    return EBMC_OK;
}
