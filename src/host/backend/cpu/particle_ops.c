/* The CPU reference of the particle-dynamics ops (include/ebmc/backend.h): parametric Swish
 * forward/backward, the Gaussian base energy forward/backward, and row gather/scatter. Sums over
 * rows (the parameter gradients) and over columns (the base energy) accumulate in double. */
#include "backend/cpu/cpu_internal.h"
#include <math.h>

/* float sigmoid: the Swish ops are the bulk of a toy iteration's non-GEMM time (a few ulp
 * against the CUDA kernels' double sigmoid: far inside the parity tolerance) */
static float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

ebmc_status cpu_pswish_fwd(ebmc_ctx_t *ctx, const ebmc_pswish_desc *d, const float *x, const float *b,
                           float *y) {
    (void)ctx;
    for (int n = 0; n < d->n; n++)
        for (int c = 0; c < d->c; c++) {
            size_t o = ((size_t)n * d->c + c) * d->hw;
            for (size_t i = 0; i < d->hw; i++) y[o + i] = x[o + i] * sigm(b[c] * x[o + i]);
        }
    return EBMC_OK;
}

ebmc_status cpu_pswish_bwd(ebmc_ctx_t *ctx, const ebmc_pswish_desc *d, const float *x, const float *b,
                           const float *dy, float *dx, float *db, float beta_dx, float beta_param) {
    (void)ctx;
    if (db) /* first: dx may alias dy */
        for (int c = 0; c < d->c; c++) {
            double acc = 0;
            for (int n = 0; n < d->n; n++) {
                size_t o = ((size_t)n * d->c + c) * d->hw;
                for (size_t i = 0; i < d->hw; i++) {
                    float xv = x[o + i], s = sigm(b[c] * xv);
                    acc += (double)(dy[o + i] * xv * xv * (s * (1.0f - s)));
                }
            }
            db[c] = blend((float)acc, beta_param, db[c]);
        }
    if (dx) /* row-major order: the Langevin passes (no db) stream through memory */
        for (int n = 0; n < d->n; n++)
            for (int c = 0; c < d->c; c++) {
                size_t o = ((size_t)n * d->c + c) * d->hw;
                for (size_t i = 0; i < d->hw; i++) {
                    float xv = x[o + i], s = sigm(b[c] * xv);
                    dx[o + i] = blend(dy[o + i] * (s + b[c] * xv * (s * (1.0f - s))), beta_dx, dx[o + i]);
                }
            }
    return EBMC_OK;
}

static const double HALF_LOG_2PI = 0.91893853320467274178;

ebmc_status cpu_gbase_fwd(ebmc_ctx_t *ctx, const ebmc_gbase_desc *d, const float *x, const float *mu,
                          const float *logstd, float *y) {
    (void)ctx;
    for (int r = 0; r < d->rows; r++) {
        double acc = 0;
        for (int j = 0; j < d->cols; j++) {
            double z = ((double)x[(size_t)r * d->cols + j] - mu[j]) * exp(-(double)logstd[j]);
            acc += 0.5 * z * z + logstd[j] + HALF_LOG_2PI;
        }
        y[r] = (float)acc;
    }
    return EBMC_OK;
}

ebmc_status cpu_gbase_bwd(ebmc_ctx_t *ctx, const ebmc_gbase_desc *d, const float *x, const float *mu,
                          const float *logstd, const float *dy, float *dx, float *dmu, float *dlogstd,
                          float beta_dx, float beta_param) {
    (void)ctx;
    for (int j = 0; j < d->cols; j++) {
        double iv = exp(-2.0 * logstd[j]), am = 0, al = 0;
        for (int r = 0; r < d->rows; r++) {
            size_t i = (size_t)r * d->cols + j;
            double u = ((double)x[i] - mu[j]) * iv;
            if (dx) dx[i] = blend((float)(dy[r] * u), beta_dx, dx[i]);
            am -= (double)dy[r] * u;
            al += (double)dy[r] * (1.0 - u * ((double)x[i] - mu[j]));
        }
        if (dmu) {
            dmu[j] = blend((float)am, beta_param, dmu[j]);
            dlogstd[j] = blend((float)al, beta_param, dlogstd[j]);
        }
    }
    return EBMC_OK;
}

ebmc_status cpu_rows_copy(ebmc_ctx_t *ctx, const ebmc_rows_desc *d, const float *x, const int32_t *src,
                          const int32_t *dst, float *y) {
    (void)ctx;
    for (int i = 0; i < d->n; i++) {
        int s = src ? src[i] : i, t = dst ? dst[i] : i;
        if (s < 0 || s >= d->x_rows || t < 0 || t >= d->y_rows) continue;
        memmove(y + (size_t)t * d->row_elems, x + (size_t)s * d->row_elems, d->row_elems * sizeof(float));
    }
    return EBMC_OK;
}
