/* defines: the CPU reference of the weighted-walker ops (specs/particles.md section 1, kernels
 * J1-J3): cpu_jz_logw (the float64 log-weight increment of Proposition 1), cpu_jz_stats
 * (log-sum-exp, normalised weights, ESS), cpu_jz_resample (systematic / multinomial ancestors
 * from a float64 CDF, the log Z bookkeeping), and the Gaussian-mixture
 * energy of the 50-D teacher/student experiment (cpu_gmm_eval, cpu_gmm_pgrad).
 * Everything is accumulated in double; src/kernels/jarzynski.cu computes the same values. */
#include "backend/cpu/cpu_internal.h"
#include "ebmc/philox.h"
#include <math.h>
#include <string.h>

/* alpha(x, y) - U(x) = c1 (y - x).g + c2 |g|^2 with c1 = h/sigma^2, c2 = h^2/(2 sigma^2) */
static double alpha_rest(const float *x, const float *y, const float *g, size_t E, double c1, double c2) {
    double dot = 0, gg = 0;
    for (size_t e = 0; e < E; e++) {
        dot += ((double)y[e] - x[e]) * g[e];
        gg += (double)g[e] * g[e];
    }
    return c1 * dot + c2 * gg;
}

ebmc_status cpu_jz_logw(ebmc_ctx_t *ctx, const ebmc_jz_logw_desc *d, const float *x, const float *x_new,
                        const float *u_old, const float *g_old, const float *u_new, const float *g_new,
                        double *logw) {
    const size_t E = d->elems;
    const double s2 = d->sigma * d->sigma, c1 = d->h / s2, c2 = d->h * d->h / (2.0 * s2);
    for (int i = 0; i < d->n; i++) {
        double inc = (double)u_old[i] - (double)u_new[i];
        if (d->mode == EBMC_JZ_ULA) {
            const size_t o = (size_t)i * E;
            inc += alpha_rest(x + o, x_new + o, g_old + o, E, c1, c2);
            inc -= alpha_rest(x_new + o, x + o, g_new + o, E, c1, c2);
        }
        logw[i] += inc;
    }
    return EBMC_OK;
}

ebmc_status cpu_jz_stats(ebmc_ctx_t *ctx, const ebmc_jz_stats_desc *d, const double *logw, double *stats,
                         float *w) {
    double m = -INFINITY, s1 = 0, s2 = 0;
    for (int i = 0; i < d->n; i++) m = logw[i] > m ? logw[i] : m;
    for (int i = 0; i < d->n; i++) {
        double e = exp(logw[i] - m);
        s1 += e;
        s2 += e * e;
    }
    stats[0] = m;
    stats[1] = s1;
    stats[2] = s2;
    stats[3] = m + log(s1 / d->n);
    stats[4] = s1 * s1 / s2;
    if (w)
        for (int i = 0; i < d->n; i++) w[i] = (float)((double)d->w_scale * exp(logw[i] - m) / s1);
    return EBMC_OK;
}

/* the j-th resampling uniform in (0, 1), in double (same words on the device) */
static double resample_uniform(const ebmc_rng_key *k, uint32_t step, uint32_t j) {
    ebmc_u32x4 c = {{j / 4, 0xFFFFFFFEu, step, k->stream}};
    ebmc_u32x4 r = ebmc_philox4x32_10(c, (uint32_t)k->seed, (uint32_t)(k->seed >> 32));
    return ebmc_u32_to_unit(r.v[j % 4]);
}

/* smallest i with cdf[i] > t (cdf inclusive, non-decreasing), clamped to n-1 */
static int32_t cdf_search(const double *cdf, int n, double t) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cdf[mid] > t) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

ebmc_status cpu_jz_resample(ebmc_ctx_t *ctx, const ebmc_jz_resample_desc *d, double *logw, double *stats,
                            double *cdf, int32_t *idx) {
    const int n = d->n;
    if (!(stats[4] < d->threshold * n)) {
        for (int i = 0; i < n; i++) idx[i] = i;
        stats[7] = 0;
        return EBMC_OK;
    }
    double acc = 0;
    for (int i = 0; i < n; i++) cdf[i] = acc += exp(logw[i] - stats[0]);
    const uint32_t step = (d->rng.step_base ? *d->rng.step_base : 0u) + d->rng.step_offset;
    const double total = cdf[n - 1], u0 = resample_uniform(&d->rng, step, 0);
    for (int j = 0; j < n; j++) {
        double u = d->scheme == EBMC_RESAMPLE_SYSTEMATIC ? (u0 + j) / n : resample_uniform(&d->rng, step, (uint32_t)j);
        idx[j] = cdf_search(cdf, n, u * total);
    }
    memset(logw, 0, (size_t)n * sizeof(double));
    stats[5] += stats[3];
    stats[6] += 1;
    stats[7] = 1;
    stats[0] = 0, stats[1] = n, stats[2] = n, stats[3] = 0, stats[4] = n;
    return EBMC_OK;
}

/* log-responsibilities of one point into lr (k), returns log sum_k exp(-|x-a_k|^2/2 - z_k) */
static double gmm_point(const ebmc_gmm_desc *d, const float *x, const float *a, const float *z, double *lr) {
    double mx = -INFINITY;
    for (int k = 0; k < d->k; k++) {
        double q = 0;
        for (int j = 0; j < d->dim; j++) {
            double t = (double)x[j] - a[(size_t)k * d->dim + j];
            q += t * t;
        }
        lr[k] = -0.5 * q - z[k];
        mx = lr[k] > mx ? lr[k] : mx;
    }
    double s = 0;
    for (int k = 0; k < d->k; k++) s += exp(lr[k] - mx);
    return mx + log(s);
}

ebmc_status cpu_gmm_eval(ebmc_ctx_t *ctx, const ebmc_gmm_desc *d, const float *x, const float *means,
                         const float *z, float *u, float *grad, float *resp) {
    double lr[64];
    for (int i = 0; i < d->n; i++) {
        const float *xi = x + (size_t)i * d->dim;
        double lse = gmm_point(d, xi, means, z, lr);
        for (int k = 0; k < d->k; k++) lr[k] = exp(lr[k] - lse);
        if (u) u[i] = (float)-lse;
        if (resp)
            for (int k = 0; k < d->k; k++) resp[(size_t)i * d->k + k] = (float)lr[k];
        if (grad)
            for (int j = 0; j < d->dim; j++) {
                double g = xi[j];
                for (int k = 0; k < d->k; k++) g -= lr[k] * means[(size_t)k * d->dim + j];
                grad[(size_t)i * d->dim + j] = (float)g;
            }
    }
    return EBMC_OK;
}

ebmc_status cpu_gmm_pgrad(ebmc_ctx_t *ctx, const ebmc_gmm_desc *d, const float *x, const float *means,
                          const float *resp, const float *w, float *gmeans, float *gz) {
    double sx[EBMC_GMM_MAX_KD], sz[64]; /* sum_i w_i r_ik x_i (k,dim), sum_i w_i r_ik (k) */
    const int K = d->k, D = d->dim;
    memset(sx, 0, sizeof(double) * (size_t)K * D);
    memset(sz, 0, sizeof(double) * (size_t)K);
    for (int i = 0; i < d->n; i++)
        for (int k = 0; k < K; k++) {
            double wr = (double)(w ? w[i] : 1.0f) * resp[(size_t)i * K + k];
            const float *xi = x + (size_t)i * D;
            double *row = sx + (size_t)k * D;
            sz[k] += wr;
            for (int j = 0; j < D; j++) row[j] += wr * xi[j];
        }
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < D; j++) {
            size_t o = (size_t)k * D + j;
            gmeans[o] = blend((float)(d->scale * (sz[k] * means[o] - sx[o])), d->beta, gmeans[o]);
        }
        gz[k] = blend((float)(d->scale * sz[k]), d->beta, gz[k]);
    }
    return EBMC_OK;
}
