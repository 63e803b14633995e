/* The particle moves of the particles recipe (specs/particles.md 2(a)): copying the model into
 * the previous model's arena, the Alpha and Beta transports, re-initialisation (noise, then
 * optionally a near-noiseless descent of the previous model, as beta_MNIST.py), and the replay
 * buffer of the Anneal+RB baseline (baseline_toy.py's ReplayBuffer: draws without replacement,
 * keeps a uniformly random subset when full). Host-side randomness (which particles, which
 * entries, the starting noise) is Philox keyed by (seed, stream, iteration), so a resumed run
 * draws what the uninterrupted one would have. Nothing here allocates. */
#include "recipes/particles.h"
#include "ebmc/comm.h"
#include "ebmc/philox.h"
#include <math.h>
#include <string.h>

enum { STREAM_PICK = 21, STREAM_REINIT = 22, STREAM_RB = 23 };

static ebmc_status axpby(ebmc_ctx_t *ctx, const float *x, float *y, size_t n, float a, float b) {
    ebmc_axpby_desc d = {n, a, b};
    return ebmc_axpby(ctx, &d, x, y);
}

ebmc_status pd_copy_model(pd_t *t) {
    for (int i = 0; i < ebmc_net_tensor_count(t->E); i++) {
        const ebmc_net_tensor *a = ebmc_net_tensor_at(t->E, i), *b = ebmc_net_tensor_at(t->P, i);
        if (a->is_counter || !a->data) continue;
        EBMC_TRY(axpby(t->ctx, a->data, b->data, a->count, 1.0f, 0.0f));
    }
    return EBMC_OK;
}

/* Alpha: v = grad E_old - grad E_new. Beta: v = -grad_x [grad_theta E(x) . dtheta] at theta_new,
 * by the central difference (grad E(theta_new - dtheta) - grad E(theta_new + dtheta)) / 2 (exact
 * to O(|dtheta|^3), no double backward): E_old is theta_new - dtheta; P is then rewritten to
 * theta_new + dtheta = 2 theta_new - theta_old. */
ebmc_status pd_transport(pd_t *t, float *x, int n) {
    ebmc_ctx_t *ctx = t->ctx;
    size_t cnt = (size_t)n * t->D;
    EBMC_TRY(t->pP->grad(t->pP, n, x, t->g_old));
    float half = 1.0f;
    if (t->c.method == PD_BETA) {
        size_t np = ebmc_net_param_count(t->E);
        EBMC_TRY(axpby(ctx, ebmc_net_params(t->E), ebmc_net_params(t->P), np, 2.0f, -1.0f));
        EBMC_TRY(t->pP->grad(t->pP, n, x, t->g_new));
        half = 0.5f;
    } else {
        EBMC_TRY(t->pE->grad(t->pE, n, x, t->g_new));
    }
    ebmc_scaled_diff_desc sd = {cnt, half, 0.0f};
    EBMC_TRY(ebmc_scaled_diff(ctx, &sd, t->g_old, t->g_new, t->move));
    if (t->c.max_move > 0) { /* pitfall 2(d)1: each coordinate of v capped, x <- x + clip(v) */
        ebmc_langevin_desc c = {.n_chains = n, .chain_elems = (size_t)t->D, .a = -1.0f,
                                .clip = (float)t->c.max_move, .noise = EBMC_NOISE_OFF};
        EBMC_TRY(ebmc_langevin(ctx, &c, x, t->move));
    } else {
        EBMC_TRY(axpby(ctx, t->move, x, cnt, 1.0f, 1.0f));
    }
    ebmc_reduce_desc r = {1, cnt, EBMC_REDUCE_SUMSQ, 0.0f};
    return ebmc_reduce(ctx, &r, t->move, t->metrics + PM_MOVE);
}

ebmc_status pd_draw_normal(pd_t *t, float *dev, int n, const float *mean, const float *std, uint64_t key,
                           uint32_t stream) {
    int D = t->D;
    uint32_t c0 = ebmc_ctx_chain_base(t->ctx, n); /* data-parallel ranks: each its own draws */
    for (int i = 0; i < n; i++)
        for (int g = 0; g < D; g += 4) {
            float z[4];
            ebmc_philox_normal4(t->seed ^ key, (uint32_t)(g / 4), (uint32_t)i + c0, (uint32_t)(key >> 32), stream, z);
            for (int k = 0; k < 4 && g + k < D; k++) {
                int d = g + k;
                t->h_stage[(size_t)i * D + d] = mean ? mean[d] + std[d] * z[k] : z[k];
            }
        }
    return ebmc_copy(t->ctx, dev, t->h_stage, (size_t)n * D * sizeof(float), EBMC_COPY_H2D);
}

/* k distinct indices of 0..n-1 into out (a partial Fisher-Yates over `perm`, n entries of
 * scratch), uniform over k-subsets; u: Philox(seed, stream, it) */
static void pick_subset(uint64_t seed, uint32_t stream, int64_t it, int n, int k, int32_t *perm, int32_t *out) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = 0; i < k; i++) {
        float u[4];
        ebmc_philox_uniform4(seed, (uint32_t)i, (uint32_t)it, (uint32_t)(it >> 32), stream, u);
        int j = i + (int)(u[0] * (float)(n - i));
        if (j >= n) j = n - 1;
        int32_t s = perm[i];
        perm[i] = perm[j];
        perm[j] = s;
        out[i] = perm[i];
    }
}

/* the base's mean and std now (host), or NULL without a base */
static ebmc_status base_now(pd_t *t, float *ms) {
    const ebmc_net_tensor *mu = ebmc_net_tensor_find(t->E, "base_mu"), *ls = ebmc_net_tensor_find(t->E, "base_logstd");
    EBMC_TRY(ebmc_copy(t->ctx, ms, mu->data, (size_t)t->D * sizeof(float), EBMC_COPY_D2H));
    EBMC_TRY(ebmc_copy(t->ctx, ms + t->D, ls->data, (size_t)t->D * sizeof(float), EBMC_COPY_D2H));
    for (int d = 0; d < t->D; d++) ms[t->D + d] = expf(ms[t->D + d]);
    return EBMC_OK;
}

ebmc_status pd_reinit(pd_t *t, int64_t it) {
    int N = t->N, k = 0;
    int32_t *idx = t->h_idx, *perm = t->h_idx + N;
    if (t->c.method == PD_REPLAY) { /* torch.rand(N) < rate */
        for (int i = 0; i < N; i += 4) {
            float u[4];
            ebmc_philox_uniform4(t->seed, (uint32_t)(i / 4), (uint32_t)it, (uint32_t)(it >> 32), STREAM_PICK, u);
            for (int j = 0; j < 4 && i + j < N; j++)
                if (u[j] < t->c.reinit) idx[k++] = i + j;
        }
    } else { /* int(N * rate) of them, a random subset (randperm) */
        k = (int)(N * t->c.reinit);
        pick_subset(t->seed, STREAM_PICK, it, N, k, perm, idx);
    }
    if (k == 0) return EBMC_OK;
    float ms[2 * 4096];
    const float *mean = NULL, *std = NULL;
    if (t->has_base && t->D <= 4096) {
        EBMC_TRY(base_now(t, ms));
        mean = ms, std = ms + t->D;
        /* replay (baseline_toy.py:82-98): base_dist.loc IS the learned base_mu (models.py:17,
         * nn.Parameter(base_dist.loc) shares its storage, checked with torch 1.13 on the CPU and
         * kept by .to(device) as mu is already there), base_dist.scale stays the first std
         * (base_logstd is a new tensor, scale.log()) */
        if (t->c.method == PD_REPLAY) std = t->base0 + t->D;
    } else if (t->has_base && t->c.method == PD_REPLAY) mean = t->base0, std = t->base0 + t->D;
    float *stage = ebmc_chain_state(t->rchain);
    EBMC_TRY(pd_draw_normal(t, stage, k, mean, std, (uint64_t)it << 32, STREAM_REINIT));
    if (t->c.reinit_k > 0) EBMC_TRY(ebmc_chain_run(t->rchain, k));
    EBMC_TRY(ebmc_copy(t->ctx, t->d_idx, idx, (size_t)k * sizeof(int32_t), EBMC_COPY_H2D));
    ebmc_rows_desc rd = {k, (size_t)t->D, t->max_re, N};
    return ebmc_rows_copy(t->ctx, &rd, stage, NULL, t->d_idx, ebmc_chain_state(t->chain));
}

ebmc_status pd_replay_draw(pd_t *t, int64_t it) {
    int n = (int)t->rb_count;
    int32_t *idx = t->h_idx, *perm = t->h_idx + t->c.capacity;
    pick_subset(t->seed, STREAM_RB, 2 * it, n, t->N, perm, idx);
    EBMC_TRY(ebmc_copy(t->ctx, t->d_idx, idx, (size_t)t->N * sizeof(int32_t), EBMC_COPY_H2D));
    ebmc_rows_desc rd = {t->N, (size_t)t->D, t->c.capacity, t->N};
    return ebmc_rows_copy(t->ctx, &rd, t->rb, t->d_idx, NULL, ebmc_chain_state(t->chain));
}

/* cat(buffer, particles), then a random capacity-subset when longer: the survivors among the new
 * particles go to the free slots (the evicted old entries, then the unfilled tail) */
ebmc_status pd_replay_add(pd_t *t, int64_t it) {
    int C = t->c.capacity, old = (int)t->rb_count, N = t->N, total = old + N;
    int keep = total < C ? total : C;
    int32_t *src = t->h_idx, *dst = t->h_idx + N, *perm = t->h_idx + 2 * N;
    bool *alive = (bool *)(perm + total);
    pick_subset(t->seed, STREAM_RB, 2 * it + 1, total, keep, perm, perm);
    memset(alive, 0, (size_t)total);
    for (int i = 0; i < keep; i++) alive[perm[i]] = true;
    int ns = 0, nd = 0;
    for (int i = 0; i < N; i++)
        if (alive[old + i]) src[ns++] = i;
    for (int i = 0; i < old && nd < ns; i++)
        if (!alive[i]) dst[nd++] = i;
    for (int i = old; nd < ns; i++) dst[nd++] = i;
    t->rb_count = keep;
    if (ns == 0) return EBMC_OK;
    EBMC_TRY(ebmc_copy(t->ctx, t->d_idx, src, (size_t)ns * sizeof(int32_t), EBMC_COPY_H2D));
    EBMC_TRY(ebmc_copy(t->ctx, t->d_idx + N, dst, (size_t)ns * sizeof(int32_t), EBMC_COPY_H2D));
    ebmc_rows_desc rd = {ns, (size_t)t->D, N, C};
    return ebmc_rows_copy(t->ctx, &rd, ebmc_chain_state(t->chain), t->d_idx, t->d_idx + N, t->rb);
}
