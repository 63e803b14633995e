/* The Gaussian-mixture model family (include/ebmc/gmm.h): parameters and their gradients on the
 * device, evaluated by the gmm_eval / gmm_pgrad ops; exact log Z, masses and draws on the host. */
#include "ebmc/gmm.h"
#include "ebmc/comm.h"
#include "ebmc/philox.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_GMM_INIT 0x474d4931u /* "GMI1": initial means */
#define STREAM_GMM_DRAW 0x474d4432u /* "GMD2": draws from rho_theta */

struct ebmc_gmm {
    ebmc_ctx_t *ctx;
    int k, dim, max_n;
    float *means, *z;   /* (k,dim), (k) */
    float *gm, *gz;     /* their gradients */
};

int ebmc_gmm_k(const ebmc_gmm_t *m) { return m->k; }
int ebmc_gmm_dim(const ebmc_gmm_t *m) { return m->dim; }
float *ebmc_gmm_means(ebmc_gmm_t *m) { return m->means; }
float *ebmc_gmm_z(ebmc_gmm_t *m) { return m->z; }

void ebmc_gmm_free(ebmc_gmm_t *m) {
    if (!m) return;
    float *b[] = {m->means, m->z, m->gm, m->gz};
    for (int i = 0; i < 4; i++)
        if (b[i]) ebmc_free(m->ctx, b[i]);
    free(m);
}

ebmc_status ebmc_gmm_create(ebmc_ctx_t *ctx, int k, int dim, int max_n, uint64_t seed, ebmc_gmm_t **out) {
    *out = NULL;
    if (k < 1 || k > 64 || dim < 1 || (double)k * dim > EBMC_GMM_MAX_KD || max_n < 1)
        return EBMC_E_INVALID; /* k <= 64, k*dim <= EBMC_GMM_MAX_KD: callers validate their config */
    ebmc_gmm_t *m = calloc(1, sizeof *m);
    if (!m) return EBMC_E_NOMEM;
    m->ctx = ctx, m->k = k, m->dim = dim, m->max_n = max_n;
    size_t kd = (size_t)k * dim;
    ebmc_status s = ebmc_alloc(ctx, (void **)&m->means, kd * sizeof(float));
    if (!s) s = ebmc_alloc(ctx, (void **)&m->gm, kd * sizeof(float));
    if (!s) s = ebmc_alloc(ctx, (void **)&m->z, (size_t)k * sizeof(float));
    if (!s) s = ebmc_alloc(ctx, (void **)&m->gz, (size_t)k * sizeof(float));
    float *h = s ? NULL : calloc(kd + (size_t)k, sizeof(float));
    if (!s && !h) s = EBMC_E_NOMEM;
    if (s) {
        ebmc_gmm_free(m);
        free(h);
        return s;
    }
    for (int c = 0; c < k; c++) /* N(0, 0.01^2); the first coordinate spread over [-0.1, 0.1] */
        for (int g = 0; g < dim; g += 4) {
            float r[4];
            ebmc_philox_normal4(seed, (uint32_t)(g / 4), (uint32_t)c, 0, STREAM_GMM_INIT, r);
            for (int l = 0; l < 4 && g + l < dim; l++) h[(size_t)c * dim + g + l] = 0.01f * r[l];
            h[(size_t)c * dim] = k == 1 ? 0.0f : (float)(-0.1 + 0.2 * c / (k - 1));
        }
    s = ebmc_copy(ctx, m->means, h, kd * sizeof(float), EBMC_COPY_H2D);
    if (!s) s = ebmc_copy(ctx, m->z, h + kd, (size_t)k * sizeof(float), EBMC_COPY_H2D); /* zeros */
    free(h);
    if (s) {
        ebmc_gmm_free(m);
        return s;
    }
    *out = m;
    return EBMC_OK;
}

ebmc_status ebmc_gmm_eval(ebmc_gmm_t *m, int n, const float *x, float *u, float *grad, float *resp) {
    ebmc_gmm_desc d = {n, m->dim, m->k, 1.0f, 0.0f};
    return ebmc_gmm_eval_op(m->ctx, &d, x, m->means, m->z, u, grad, resp);
}

ebmc_status ebmc_gmm_accumulate(ebmc_gmm_t *m, int n, const float *x, const float *resp, const float *w,
                                float scale, float beta) {
    ebmc_gmm_desc d = {n, m->dim, m->k, scale, beta};
    return ebmc_gmm_pgrad(m->ctx, &d, x, m->means, resp, w, m->gm, m->gz);
}

ebmc_status ebmc_gmm_descend(ebmc_gmm_t *m, double lr_means, double lr_z) {
    /* data-parallel ranks: the gradient averaged first, as ebmc_adam_step does (ebmc/comm.h) */
    EBMC_TRY(ebmc_ctx_grad_mean(m->ctx, m->gm, (size_t)m->k * m->dim));
    EBMC_TRY(ebmc_ctx_grad_mean(m->ctx, m->gz, (size_t)m->k));
    ebmc_axpby_desc am = {(size_t)m->k * m->dim, (float)-lr_means, 1.0f};
    EBMC_TRY(ebmc_axpby(m->ctx, &am, m->gm, m->means));
    ebmc_axpby_desc az = {(size_t)m->k - 1, (float)-lr_z, 1.0f}; /* z_0 fixed */
    return ebmc_axpby(m->ctx, &az, m->gz + 1, m->z + 1);
}

ebmc_status ebmc_gmm_fetch(ebmc_gmm_t *m, float *means, float *z) {
    if (means) EBMC_TRY(ebmc_copy(m->ctx, means, m->means, (size_t)m->k * m->dim * sizeof(float), EBMC_COPY_D2H));
    return z ? ebmc_copy(m->ctx, z, m->z, (size_t)m->k * sizeof(float), EBMC_COPY_D2H) : EBMC_OK;
}

double ebmc_gmm_log_z(const float *z, int k, int dim) {
    double mn = INFINITY, s = 0;
    for (int c = 0; c < k; c++) mn = z[c] < mn ? z[c] : mn;
    for (int c = 0; c < k; c++) s += exp(-(z[c] - mn));
    return 0.5 * dim * log(2 * 3.141592653589793) - mn + log(s);
}

void ebmc_gmm_masses(const float *z, int k, double *p) {
    double mn = INFINITY, s = 0;
    for (int c = 0; c < k; c++) mn = z[c] < mn ? z[c] : mn;
    for (int c = 0; c < k; c++) s += p[c] = exp(-(z[c] - mn));
    for (int c = 0; c < k; c++) p[c] /= s;
}

ebmc_status ebmc_gmm_sample(ebmc_gmm_t *m, int n, float *x, uint64_t seed) {
    const int k = m->k, dim = m->dim;
    float *a = malloc((size_t)k * dim * sizeof(float)), *z = malloc((size_t)k * sizeof(float));
    float *h = malloc((size_t)n * dim * sizeof(float));
    double p[64];
    ebmc_status s = a && z && h ? ebmc_gmm_fetch(m, a, z) : EBMC_E_NOMEM;
    if (!s) {
        ebmc_gmm_masses(z, k, p);
        int c = 0, end = (int)floor(n * p[0]);
        uint32_t c0 = ebmc_ctx_chain_base(m->ctx, n); /* a data-parallel rank's draws: its own */
        for (int i = 0; i < n; i++) {
            while (i >= end && c < k - 1) end += (int)floor(n * p[++c]);
            if (c == k - 1) end = n;
            for (int g = 0; g < dim; g += 4) {
                float r[4];
                ebmc_philox_normal4(seed, (uint32_t)(g / 4), (uint32_t)i + c0, 0, STREAM_GMM_DRAW, r);
                for (int l = 0; l < 4 && g + l < dim; l++)
                    h[(size_t)i * dim + g + l] = a[(size_t)c * dim + g + l] + r[l];
            }
        }
        s = ebmc_copy(m->ctx, x, h, (size_t)n * dim * sizeof(float), EBMC_COPY_H2D);
    }
    free(a), free(z), free(h);
    return s;
}
