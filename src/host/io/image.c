/* Sample grids (PNG, torchvision save_image layout and quantisation) and NumPy .npy arrays.
 * See include/ebmc/image.h for the exact semantics. */
#include "ebmc/image.h"
#include "ebmc/fileio.h"
#include "ebmc/npy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h> /* implementation in Debian's libstb: link only */

#define GRID_MAX_BYTES ((int64_t)1 << 30) /* stb_image_write works in int sizes */
#define NPY_MAX_NDIM 8

static void clear_err(char *err, size_t errlen) {
    if (err && errlen > 0) err[0] = '\0';
}

/* ---- quantisation, in float32 steps exactly as PyTorch's CPU kernels take them */

/* make_grid's norm_ip divides by max(high - low, 1e-5): a Python float (double), which the
 * float32 kernel receives rounded to float. */
static float range_divisor(float lo, float hi) {
    double d = (double)hi - (double)lo;
    return (float)(d > 1e-5 ? d : 1e-5);
}

/* clamp_(lo, hi) then sub_(lo).div_(d). A NaN stays NaN, as in torch.clamp. */
static float normalize_value(float x, float lo, float hi, float d) {
    if (x < lo) x = lo;
    if (x > hi) x = hi;
    float t = x - lo;
    return t / d;
}

/* mul(255).add_(0.5).clamp_(0, 255).to(uint8), in float32. Should the compiler fuse the two into
 * one FMA (-mfma with GCC's default -ffp-contract=fast), the bytes do not change: round(p) + 0.5
 * and round(p + 0.5) truncate alike (checked exhaustively for every float in [-1.01, 1.01]; beyond,
 * both saturate). NaN -> 0 (see image.h). */
static uint8_t quantize_value(float x) {
    float u = x * 255.0f;
    float v = u + 0.5f;
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)v;
}

uint8_t ebmc_quantize_u8(float x, bool normalize, float lo, float hi) {
    if (normalize) x = normalize_value(x, lo, hi, range_divisor(lo, hi));
    return quantize_value(x);
}

ebmc_grid_opts ebmc_grid_opts_default(void) {
    ebmc_grid_opts o = {.nrow = 8, .padding = 2, .pad_value = 0.0f, .normalize = true,
                        .lo = -1.0f, .hi = 1.0f, .scale = 1};
    return o;
}

ebmc_status ebmc_grid_size(int n, int h, int w, int nrow, int padding, int *out_h, int *out_w) {
    if (out_h) *out_h = 0;
    if (out_w) *out_w = 0;
    if (!out_h || !out_w || n < 1 || h < 1 || w < 1 || nrow < 1 || padding < 0)
        return EBMC_E_INVALID;
    if (h > GRID_MAX_BYTES || w > GRID_MAX_BYTES || padding > GRID_MAX_BYTES)
        return EBMC_E_INVALID; /* keeps the products below in int64 */
    int64_t gh, gw;
    if (n == 1) {
        gh = h;
        gw = w;
    } else {
        int64_t xmaps = nrow < n ? nrow : n;
        int64_t ymaps = CEIL_DIV((int64_t)n, xmaps);
        gh = ((int64_t)h + padding) * ymaps + padding;
        gw = ((int64_t)w + padding) * xmaps + padding;
    }
    if (gh > GRID_MAX_BYTES || gw > GRID_MAX_BYTES || gh * gw > GRID_MAX_BYTES / 3)
        return EBMC_E_INVALID;
    *out_h = (int)gh;
    *out_w = (int)gw;
    return EBMC_OK;
}

static ebmc_status check_images(const char *path, const float *imgs, int n, int c, int h, int w,
                                char *err, size_t errlen) {
    if (!path || !*path) {
        ebmc_set_err(err, errlen, "(null): no file name given");
        return EBMC_E_INVALID;
    }
    if (!imgs) {
        ebmc_set_err(err, errlen, "%s: no image data (NULL)", path);
        return EBMC_E_INVALID;
    }
    if (n < 1 || h < 1 || w < 1 || (c != 1 && c != 3)) {
        ebmc_set_err(err, errlen,
                "%s: images must be (n, c, h, w) with n, h, w >= 1 and c = 1 or 3 (got %d, %d, "
                "%d, %d)",
                path, n, c, h, w);
        return EBMC_E_INVALID;
    }
    return EBMC_OK;
}

static ebmc_status check_range(const char *path, float lo, float hi, char *err, size_t errlen) {
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi)) {
        ebmc_set_err(err, errlen, "%s: value range must be finite with lo < hi (got [%g, %g])", path,
                (double)lo, (double)hi);
        return EBMC_E_INVALID;
    }
    return EBMC_OK;
}

static void nan_warning(const char *path, int64_t nans, char *err, size_t errlen) {
    if (nans > 0)
        ebmc_set_err(err, errlen, "%s: %lld NaN value%s written as 0", path, (long long)nans,
                nans == 1 ? "" : "s");
    else
        clear_err(err, errlen);
}

/* ---- PNG grid */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    bool failed;
} png_sink;

static void png_write_cb(void *ctx, void *data, int size) {
    png_sink *s = ctx;
    if (s->failed || size <= 0) return;
    if (s->len + (size_t)size > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + (size_t)size) cap *= 2;
        uint8_t *b = realloc(s->buf, cap);
        if (!b) {
            s->failed = true;
            return;
        }
        s->buf = b, s->cap = cap;
    }
    memcpy(s->buf + s->len, data, (size_t)size);
    s->len += (size_t)size;
}

ebmc_status ebmc_grid_png(const char *path, const float *imgs, int n, int c, int h, int w, const ebmc_grid_opts *o,
                          uint8_t **png, size_t *len, int *out_h, int *out_w, char *err, size_t errlen) {
    *png = NULL;
    *len = 0;
    ebmc_status st = check_images(path, imgs, n, c, h, w, err, errlen);
    if (st != EBMC_OK) return st;
    if (!o) {
        ebmc_set_err(err, errlen, "%s: no grid options (NULL)", path);
        return EBMC_E_INVALID;
    }
    if (o->nrow < 1 || o->padding < 0 || o->scale < 1 || o->scale > 16) {
        ebmc_set_err(err, errlen, "%s: grid needs nrow >= 1, padding >= 0 and scale 1..16 (got %d, %d, %d)",
                path, o->nrow, o->padding, o->scale);
        return EBMC_E_INVALID;
    }
    if (o->normalize && (st = check_range(path, o->lo, o->hi, err, errlen)) != EBMC_OK) return st;
    int gh, gw;
    if (ebmc_grid_size(n, h, w, o->nrow, o->padding, &gh, &gw) != EBMC_OK ||
        (int64_t)gh * o->scale * ((int64_t)gw * o->scale) > GRID_MAX_BYTES / 3) {
        ebmc_set_err(err, errlen, "%s: a grid of %d images of %dx%d (nrow %d, padding %d, scale %d) is too large",
                path, n, h, w, o->nrow, o->padding, o->scale);
        return EBMC_E_INVALID;
    }

    size_t row_bytes = (size_t)gw * 3;
    uint8_t *canvas = malloc(row_bytes * (size_t)gh);
    if (!canvas) {
        ebmc_set_err(err, errlen, "%s: out of memory for a %dx%d grid", path, gw, gh);
        return EBMC_E_NOMEM;
    }
    int64_t nans = 0;
    /* The canvas is filled with pad_value as given (not normalised), then the images. */
    if (n > 1) {
        if (isnan(o->pad_value)) nans++;
        memset(canvas, quantize_value(o->pad_value), row_bytes * (size_t)gh);
    }
    int pad = n == 1 ? 0 : o->padding;
    int xmaps = n == 1 ? 1 : (o->nrow < n ? o->nrow : n);
    float d = o->normalize ? range_divisor(o->lo, o->hi) : 1.0f;
    size_t plane = (size_t)h * (size_t)w;
    for (int k = 0; k < n; k++) {
        size_t y0 = (size_t)(k / xmaps) * (size_t)(h + pad) + (size_t)pad;
        size_t x0 = (size_t)(k % xmaps) * (size_t)(w + pad) + (size_t)pad;
        const float *img = imgs + (size_t)k * (size_t)c * plane; /* (c, h, w) */
        for (int ch = 0; ch < 3; ch++) {
            const float *src = img + (size_t)(c == 1 ? 0 : ch) * plane; /* (h, w) */
            for (int y = 0; y < h; y++) {
                uint8_t *dst = canvas + (y0 + (size_t)y) * row_bytes + x0 * 3 + (size_t)ch;
                for (int x = 0; x < w; x++) {
                    float v = src[(size_t)y * (size_t)w + (size_t)x];
                    if (isnan(v) && (c == 3 || ch == 0)) nans++;
                    if (o->normalize) v = normalize_value(v, o->lo, o->hi, d);
                    dst[(size_t)x * 3] = quantize_value(v);
                }
            }
        }
    }

    if (o->scale > 1) { /* pixel replication: canvas pixel (y, x) -> the block (y*s.., x*s..) */
        int s = o->scale;
        size_t big_row = row_bytes * (size_t)s;
        uint8_t *big = malloc(big_row * (size_t)gh * (size_t)s);
        if (!big) {
            free(canvas);
            ebmc_set_err(err, errlen, "%s: out of memory for a %dx%d grid", path, gw * s, gh * s);
            return EBMC_E_NOMEM;
        }
        for (int y = 0; y < gh; y++) {
            uint8_t *dst = big + (size_t)y * (size_t)s * big_row;
            const uint8_t *src = canvas + (size_t)y * row_bytes;
            for (int x = 0; x < gw; x++)
                for (int k = 0; k < s; k++) memcpy(dst + ((size_t)x * s + k) * 3, src + (size_t)x * 3, 3);
            for (int k = 1; k < s; k++) memcpy(dst + (size_t)k * big_row, dst, big_row);
        }
        free(canvas);
        canvas = big, gh *= s, gw *= s, row_bytes = big_row;
    }
    png_sink sink = {0};
    int ok = stbi_write_png_to_func(png_write_cb, &sink, gw, gh, 3, canvas, (int)row_bytes);
    free(canvas);
    if (!ok || sink.failed) {
        free(sink.buf);
        ebmc_set_err(err, errlen, "%s: PNG encoding failed (stb_image_write: out of memory?)", path);
        return EBMC_E_IO;
    }
    *png = sink.buf, *len = sink.len;
    if (out_h) *out_h = gh;
    if (out_w) *out_w = gw;
    nan_warning(path, nans, err, errlen);
    return EBMC_OK;
}

ebmc_status ebmc_save_png_bytes(const char *path, const uint8_t *png, size_t len, char *err, size_t errlen) {
    char tmp[4096];
    FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) return EBMC_E_WRITE;
    if (fwrite(png, 1, len, f) != len) {
        ebmc_set_err(err, errlen, "%s: writing the PNG to the temporary file failed", path);
        ebmc_atomic_abort(f, tmp);
        return EBMC_E_WRITE;
    }
    return ebmc_atomic_commit(f, tmp, path, err, errlen);
}

ebmc_status ebmc_save_grid_png(const char *path, const float *imgs, int n, int c, int h, int w,
                               const ebmc_grid_opts *o, char *err, size_t errlen) {
    uint8_t *png;
    size_t len;
    ebmc_status st = ebmc_grid_png(path, imgs, n, c, h, w, o, &png, &len, NULL, NULL, err, errlen);
    if (st != EBMC_OK) return st;
    char warn[512];
    snprintf(warn, sizeof warn, "%s", err ? err : "");
    st = ebmc_save_png_bytes(path, png, len, err, errlen);
    free(png);
    if (st == EBMC_OK && err && errlen) snprintf(err, errlen, "%s", warn); /* the NaN count, if any */
    return st;
}

/* ---- .npy */

/* The header exactly as numpy 1.24's format.write_array_header_1_0 writes it: the dict with
 * sorted keys and repr()'d values, spaces for the first axis to grow to 21 digits, then space
 * padding and '\n' so that magic + length + header is a multiple of 64 bytes. Returns the total
 * number of bytes put in out (a multiple of 64), or 0 when it does not fit. */
static size_t npy_header(char *out, size_t cap, const char *descr, int ndim,
                         const int64_t *shape) {
    char dict[512];
    size_t len = 0;
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
    if (k < 0 || (size_t)k >= sizeof dict) return 0;
    len = (size_t)k;
    for (int i = 0; i < ndim; i++) {
        k = snprintf(dict + len, sizeof dict - len, "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
        if (k < 0 || (size_t)k >= sizeof dict - len) return 0;
        len += (size_t)k;
    }
    k = snprintf(dict + len, sizeof dict - len, "%s), }", ndim == 1 ? "," : "");
    if (k < 0 || (size_t)k >= sizeof dict - len) return 0;
    len += (size_t)k;
    if (ndim > 0) {
        char digits[32];
        int nd = snprintf(digits, sizeof digits, "%lld", (long long)shape[0]);
        for (int i = nd; i < 21 && len + 1 < sizeof dict; i++) dict[len++] = ' ';
    }
    size_t hlen = len + 1; /* + '\n' */
    size_t padlen = 64 - ((6 + 2 + 2 + hlen) % 64);
    size_t total = 10 + hlen + padlen;
    if (total > cap || hlen + padlen > 65535) return 0;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)((hlen + padlen) & 0xff);
    out[9] = (char)((hlen + padlen) >> 8);
    memcpy(out + 10, dict, len);
    memset(out + 10 + len, ' ', padlen);
    out[total - 1] = '\n';
    return total;
}

static ebmc_status npy_begin(const char *path, const char *descr, int ndim, const int64_t *shape,
                             char *tmp, size_t tmplen, FILE **out, char *err, size_t errlen) {
    char hdr[1024];
    size_t hn = npy_header(hdr, sizeof hdr, descr, ndim, shape);
    if (hn == 0) {
        ebmc_set_err(err, errlen, "%s: .npy header does not fit", path);
        return EBMC_E_INVALID;
    }
    FILE *f = ebmc_atomic_open(path, tmp, tmplen, err, errlen);
    if (!f) return EBMC_E_WRITE;
    if (fwrite(hdr, 1, hn, f) != hn) {
        ebmc_set_err(err, errlen, "%s: writing the .npy header failed", path);
        ebmc_atomic_abort(f, tmp);
        return EBMC_E_WRITE;
    }
    *out = f;
    return EBMC_OK;
}

ebmc_status ebmc_save_npy_u8(const char *path, const float *imgs, int n, int c, int h, int w,
                             float lo, float hi, char *err, size_t errlen) {
    ebmc_status st = check_images(path, imgs, n, c, h, w, err, errlen);
    if (st != EBMC_OK) return st;
    if ((st = check_range(path, lo, hi, err, errlen)) != EBMC_OK) return st;
    int64_t shape[4] = {n, h, w, c};
    size_t row = (size_t)w * (size_t)c;
    uint8_t *buf = malloc(row);
    if (!buf) {
        ebmc_set_err(err, errlen, "%s: out of memory", path);
        return EBMC_E_NOMEM;
    }
    char tmp[4096];
    FILE *f = NULL;
    st = npy_begin(path, "|u1", 4, shape, tmp, sizeof tmp, &f, err, errlen);
    if (st != EBMC_OK) {
        free(buf);
        return st;
    }
    float d = range_divisor(lo, hi);
    size_t plane = (size_t)h * (size_t)w;
    int64_t nans = 0;
    for (int k = 0; k < n; k++) {
        const float *img = imgs + (size_t)k * (size_t)c * plane; /* (c, h, w) */
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                for (int ch = 0; ch < c; ch++) {
                    float v = img[(size_t)ch * plane + (size_t)y * (size_t)w + (size_t)x];
                    if (isnan(v)) nans++;
                    buf[(size_t)x * (size_t)c + (size_t)ch] =
                        quantize_value(normalize_value(v, lo, hi, d));
                }
            }
            if (fwrite(buf, 1, row, f) != row) {
                free(buf);
                ebmc_set_err(err, errlen, "%s: writing the array data failed", path);
                ebmc_atomic_abort(f, tmp);
                return EBMC_E_WRITE;
            }
        }
    }
    free(buf);
    st = ebmc_atomic_commit(f, tmp, path, err, errlen);
    if (st == EBMC_OK) nan_warning(path, nans, err, errlen);
    return st;
}

ebmc_status ebmc_save_npy_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                              char *err, size_t errlen) {
    if (!path || !*path) {
        ebmc_set_err(err, errlen, "(null): no file name given");
        return EBMC_E_INVALID;
    }
    if (ndim < 0 || ndim > NPY_MAX_NDIM || (ndim > 0 && !shape)) {
        ebmc_set_err(err, errlen, "%s: .npy rank must be 0..%d with a shape (got %d)", path,
                NPY_MAX_NDIM, ndim);
        return EBMC_E_INVALID;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > (INT64_MAX / 4) / shape[i])) {
            ebmc_set_err(err, errlen, "%s: bad .npy shape (dimension %d is %lld)", path, i,
                    (long long)shape[i]);
            return EBMC_E_INVALID;
        }
        numel *= shape[i];
    }
    if (numel > 0 && !data) {
        ebmc_set_err(err, errlen, "%s: no data (NULL)", path);
        return EBMC_E_INVALID;
    }
    char tmp[4096];
    FILE *f = NULL;
    ebmc_status st = npy_begin(path, "<f4", ndim, shape, tmp, sizeof tmp, &f, err, errlen);
    if (st != EBMC_OK) return st;
    uint8_t chunk[4096 * 4];
    for (int64_t i = 0; i < numel;) {
        size_t m = 0;
        for (; m < 4096 && i < numel; m++, i++) { /* little-endian whatever the host */
            uint32_t u;
            memcpy(&u, &data[i], 4);
            chunk[4 * m + 0] = (uint8_t)u;
            chunk[4 * m + 1] = (uint8_t)(u >> 8);
            chunk[4 * m + 2] = (uint8_t)(u >> 16);
            chunk[4 * m + 3] = (uint8_t)(u >> 24);
        }
        if (fwrite(chunk, 4, m, f) != m) {
            ebmc_set_err(err, errlen, "%s: writing the array data failed", path);
            ebmc_atomic_abort(f, tmp);
            return EBMC_E_WRITE;
        }
    }
    return ebmc_atomic_commit(f, tmp, path, err, errlen);
}

/* The .npy header for other writers (include/ebmc/npy.h: .npz members). */
size_t ebmc_npy_header(char *out, size_t cap, const char *descr, int ndim, const int64_t *shape) {
    return npy_header(out, cap, descr, ndim, shape);
}
