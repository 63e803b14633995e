/* The CPU reference of the inference layers Inception-v3 adds to the op table (ebmc eval): k x k
 * max / average pooling with padding (count_include_pad either way), bilinear resize as
 * F.interpolate(align_corners=False), and one part of a channel concatenation. Forward only. */
#include "backend/cpu/cpu_internal.h"

#include <math.h>

/* one output pixel of a k x k window at (oi, oj) of the plane xp (H,W) */
static float pool_at(const ebmc_pool_desc *d, const float *xp, int oi, int oj) {
    int h0 = oi * d->stride - d->pad, w0 = oj * d->stride - d->pad;
    int h1 = h0 + d->k, w1 = w0 + d->k;
    int hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0, he = h1 > d->h ? d->h : h1, we = w1 > d->w ? d->w : w1;
    if (d->mode == EBMC_POOL_MAX) {
        float m = -INFINITY;
        for (int i = hs; i < he; i++)
            for (int j = ws; j < we; j++) {
                float v = xp[(size_t)i * d->w + j];
                if (v > m || isnan(v)) m = v; /* NaN propagates, as PyTorch's */
            }
        return m;
    }
    float s = 0.0f;
    for (int i = hs; i < he; i++)
        for (int j = ws; j < we; j++) s += xp[(size_t)i * d->w + j];
    int div = d->count_include_pad ? d->k * d->k : (he - hs) * (we - ws);
    return s / (float)div;
}

/* One output row i of a plane: the columns whose window lies inside the plane (interior rows
 * only) summed with the output column innermost, so the loop vectorises across columns; each
 * output still adds its window's elements in pool_at's order (rows, then columns, from 0), so the
 * same bits. Edge columns take pool_at. A CPU_CLONES function (cpu_internal.h). */
enum { POOL_ROW_MAX = 512 };
CPU_CLONES static void pool_row(const ebmc_pool_desc *d, const float *xp, float *yr, int i, int wo) {
    int h0 = i * d->stride - d->pad, s = d->stride, k = d->k;
    int jlo = (d->pad + s - 1) / s, jhi = (d->w - k + d->pad) / s + 1; /* w0 >= 0 and w0 + k <= w */
    if (jlo > wo) jlo = wo;
    if (jhi > wo) jhi = wo;
    if (h0 < 0 || h0 + k > d->h || jhi - jlo < 2 || wo > POOL_ROW_MAX) {
        for (int j = 0; j < wo; j++) yr[j] = pool_at(d, xp, i, j);
        return;
    }
    for (int j = 0; j < jlo; j++) yr[j] = pool_at(d, xp, i, j);
    for (int j = jhi; j < wo; j++) yr[j] = pool_at(d, xp, i, j);
    float acc[POOL_ROW_MAX];
    const int n = jhi - jlo;
    const float *x0 = xp + (size_t)h0 * d->w + (size_t)jlo * s - d->pad;
    if (d->mode == EBMC_POOL_MAX) {
        for (int j = 0; j < n; j++) acc[j] = -INFINITY;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) {
                const float *r = x0 + (size_t)a * d->w + b;
                for (int j = 0; j < n; j++) {
                    float v = r[(size_t)j * s], m = acc[j];
                    acc[j] = v > m || v != v ? v : m; /* NaN propagates, as PyTorch's */
                }
            }
        for (int j = 0; j < n; j++) yr[jlo + j] = acc[j];
    } else {
        for (int j = 0; j < n; j++) acc[j] = 0.0f;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) {
                const float *r = x0 + (size_t)a * d->w + b;
                for (int j = 0; j < n; j++) acc[j] += r[(size_t)j * s];
            }
        const float div = (float)(k * k); /* the window lies inside: count_include_pad either way */
        for (int j = 0; j < n; j++) yr[jlo + j] = acc[j] / div;
    }
}

ebmc_status cpu_pool2d_fwd(ebmc_ctx_t *ctx, const ebmc_pool_desc *d, const float *x, float *y) {
    int ho = (d->h + 2 * d->pad - d->k) / d->stride + 1, wo = (d->w + 2 * d->pad - d->k) / d->stride + 1;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * d->h * d->w > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        const float *xp = x + (size_t)nc * d->h * d->w;
        float *yp = y + (size_t)nc * ho * wo;
        for (int i = 0; i < ho; i++) pool_row(d, xp, yp + (size_t)i * wo, i, wo);
    }
    return EBMC_OK;
}

/* PyTorch's area_pixel_compute_source_index (align_corners=False, linear), or TF 1's (o * scale,
 * clamped to the last row/column: grid_sample's border): the source index, its right neighbour
 * offset and weight */
static void src_index(int o, int in, int out, bool tf1, int *i0, int *step, float *l1) {
    float scale = (float)in / (float)out;
    float src = tf1 ? scale * (float)o : scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    if (src > (float)(in - 1)) src = (float)(in - 1);
    *i0 = (int)src;
    *step = *i0 < in - 1 ? 1 : 0;
    *l1 = src - (float)*i0;
}

ebmc_status cpu_resize_fwd(ebmc_ctx_t *ctx, const ebmc_resize_desc *d, const float *x, float *y) {
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * d->ho * d->wo > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        const float *xp = x + (size_t)nc * d->h * d->w;
        float *yp = y + (size_t)nc * d->ho * d->wo;
        for (int i = 0; i < d->ho; i++) {
            int h0, hs;
            float lh;
            src_index(i, d->h, d->ho, d->tf1, &h0, &hs, &lh);
            for (int j = 0; j < d->wo; j++) {
                int w0, ws;
                float lw;
                src_index(j, d->w, d->wo, d->tf1, &w0, &ws, &lw);
                const float *p = xp + (size_t)h0 * d->w + w0;
                size_t dn = (size_t)hs * d->w;
                yp[(size_t)i * d->wo + j] = (1.0f - lh) * ((1.0f - lw) * p[0] + lw * p[ws]) +
                                            lh * ((1.0f - lw) * p[dn] + lw * p[dn + ws]);
            }
        }
    }
    return EBMC_OK;
}

ebmc_status cpu_chan_copy(ebmc_ctx_t *ctx, const ebmc_chan_copy_desc *d, const float *x, float *y) {
    size_t part = (size_t)d->c * d->hw;
    for (int n = 0; n < d->n; n++)
        memcpy(y + ((size_t)n * d->c_total + d->c_off) * d->hw, x + (size_t)n * part, part * sizeof(float));
    return EBMC_OK;
}
