/* CelebA as the Dual-MCMC authors prepare it (specs/teaching.md 1(f)): torchvision's Resize on a
 * PIL image, i.e. Pillow's antialiased bilinear resampling (libImaging/Resample.c: a triangle
 * filter widened by the shrink factor, coefficients normalised and rounded to 22-bit fixed
 * point, a horizontal pass into an 8-bit image, then a vertical pass), reproduced bit for bit;
 * and the official train partition (images 000001-162770, or the rows marked 0 in
 * list_eval_partition.txt). */
#include "data/data_internal.h"
#include "ebmc/fileio.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PIL_PRECISION_BITS (32 - 8 - 2)

static double pil_bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis: in -> out pixels; bounds
 * (out, 2) = (first source pixel, count), kk (out, ksize) fixed-point weights. */
static int pil_coeffs(int in, int out, int *bounds, int32_t *kk, int kcap) {
    double scale = (double)in / out, filterscale = scale < 1.0 ? 1.0 : scale, support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    if (ksize > kcap) return -1;
    double *k = malloc((size_t)ksize * sizeof(double));
    if (!k) return -1;
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax;
        if (xmin < 0) xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        int x = 0;
        for (; x < xmax; x++) ww += (k[x] = pil_bilinear((x + xmin - center + 0.5) * ss));
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++)
            kk[xx * ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PIL_PRECISION_BITS))
                                          : (int32_t)(0.5 + k[x] * (1 << PIL_PRECISION_BITS));
        bounds[2 * xx] = xmin, bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return ksize;
}

static uint8_t pil_clip8(int32_t v) {
    if (v >= (1 << PIL_PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PIL_PRECISION_BITS);
}

/* one pass along an axis of an interleaved RGB image: n lines of `in` pixels (stride between
 * pixels ps, between lines ls) into lines of `out` pixels (strides ops, ols) */
static void pil_pass(const uint8_t *src, int n, int ps, int ls, uint8_t *dst, int out, int ops, int ols,
                     const int *bounds, const int32_t *kk, int ksize) {
    for (int l = 0; l < n; l++)
        for (int o = 0; o < out; o++) {
            const int32_t *k = kk + (size_t)o * ksize;
            for (int c = 0; c < 3; c++) {
                int32_t ss = 1 << (PIL_PRECISION_BITS - 1);
                for (int x = 0; x < bounds[2 * o + 1]; x++)
                    ss += src[(size_t)l * ls + (size_t)(x + bounds[2 * o]) * ps + c] * k[x];
                dst[(size_t)l * ols + (size_t)o * ops + c] = pil_clip8(ss);
            }
        }
}

bool ebmc_pil_resize_bilinear(const uint8_t *px, int w, int h, int stride, int size, uint8_t *hwc) {
    int kw = (int)ceil((double)w / size < 1 ? 1 : (double)w / size) * 2 + 1;
    int kh = (int)ceil((double)h / size < 1 ? 1 : (double)h / size) * 2 + 1;
    int *bh = malloc(sizeof(int) * 2 * size), *bv = malloc(sizeof(int) * 2 * size);
    int32_t *kkh = malloc(sizeof(int32_t) * size * kw), *kkv = malloc(sizeof(int32_t) * size * kh);
    uint8_t *tmp = malloc((size_t)h * size * 3);
    bool ok = bh && bv && kkh && kkv && tmp && pil_coeffs(w, size, bh, kkh, kw) == kw &&
              pil_coeffs(h, size, bv, kkv, kh) == kh;
    if (ok) {
        /* horizontal pass over the rows the vertical pass reads, then the vertical pass */
        int first = bv[0], last = bv[2 * size - 2] + bv[2 * size - 1];
        for (int i = 0; i < size; i++) bv[2 * i] -= first;
        pil_pass(px + (size_t)first * stride, last - first, 3, stride, tmp, size, 3, size * 3, bh, kkh, kw);
        pil_pass(tmp, size, size * 3, 3, hwc, size, size * 3, 3, bv, kkv, kh);
    }
    free(bh), free(bv), free(kkh), free(kkv), free(tmp);
    return ok;
}

/* The number a CelebA file is named by ("000123.jpg" -> 123), or -1 */
static long celeba_number(const char *rel) {
    const char *b = strrchr(rel, '/');
    b = b ? b + 1 : rel;
    char *end;
    long v = strtol(b, &end, 10);
    return end != b && *end == '.' && isdigit((unsigned char)b[0]) ? v : -1;
}

int ebmc_celeba_partition_load(const char *file, uint8_t **part, long *n, char *err, size_t errlen) {
    FILE *f = ebmc_fopen_read(file, err, errlen);
    if (!f) return -1;
    long cap = 1 << 18, line = 0;
    *part = calloc((size_t)cap, 1);
    *n = 0;
    char name[256];
    int p;
    while (*part && fscanf(f, "%255s %d", name, &p) == 2) {
        long v = celeba_number(name);
        line++;
        if (v < 1 || v >= cap || p < 0 || p > 2) {
            ebmc_data_err(EBMC_E_IO, err, errlen, file, "line %ld: expected 'NNNNNN.jpg P' with P in 0..2", line);
            fclose(f);
            free(*part);
            *part = NULL;
            return -1;
        }
        (*part)[v] = (uint8_t)(p + 1); /* 0: not listed */
        if (v > *n) *n = v;
    }
    fclose(f);
    if (!*part || line == 0) {
        ebmc_data_err(EBMC_E_IO, err, errlen, file, "no 'NNNNNN.jpg P' lines");
        free(*part);
        *part = NULL;
        return -1;
    }
    return 0;
}

bool ebmc_celeba_in_train(const char *rel, const uint8_t *part, long n) {
    long v = celeba_number(rel);
    if (!part) return v >= 1 && v <= 162770; /* the official split: 000001-162770 train */
    return v >= 1 && v <= n && part[v] == 1;
}
