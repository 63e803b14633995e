/* defines: ebmc_grid_opts, ebmc_grid_opts_default, ebmc_grid_size, ebmc_quantize_u8,
 * ebmc_save_grid_png, ebmc_grid_png, ebmc_save_png_bytes, ebmc_save_npy_u8, ebmc_save_npy_f32 */
#ifndef EBMC_IMAGE_H
#define EBMC_IMAGE_H

#include "ebmc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sample grids laid out exactly as torchvision 0.14's utils.save_image(tensor, path, nrow=,
 * padding=, pad_value=, normalize=, value_range=(lo, hi)) lays them out and quantises them
 * (scale_each=False; min/max auto-normalisation is deliberately not offered: it hides
 * saturation).
 *
 *   layout      xmaps = min(nrow, n), ymaps = ceil(n / xmaps); canvas height (h+pad)*ymaps + pad,
 *               width (w+pad)*xmaps + pad, filled with pad_value; image k (row-major) at row
 *               (k / xmaps)*(h+pad) + pad, column (k % xmaps)*(w+pad) + pad. n == 1: the single
 *               image, h x w, without padding.
 *   channels    c == 1 is replicated to RGB; the PNG is always 8-bit RGB.
 *   normalize   image values only (make_grid normalises before it pads, so pad_value is used as
 *               given): clamp to [lo, hi], then (x - lo) / d with d = max(hi - lo, 1e-5) computed
 *               in double and rounded to float, all in float32 arithmetic as PyTorch does.
 *   quantise    u = x*255 (float32), u = u + 0.5 (float32), clamp to [0, 255], truncate to uint8.
 *               Nothing is clamped before this when normalize is false: 1.3 -> 255, -0.2 -> 0.
 *   non-finite  +Inf -> 255 and -Inf -> 0 (what the clamps give). NaN -> 0 (black), in images and
 *               in pad_value alike. torchvision leaves a NaN through its clamps and the uint8 cast
 *               is undefined behaviour in C; on x86-64 it gives 0, so 0 is also what
 *               save_image writes there. The write still succeeds (a sample grid of a diverging
 *               run is exactly what one wants to look at), but the count is reported: after
 *               EBMC_OK, err is "" when no value was NaN, else a warning
 *               "PATH: K NaN values written as 0" that callers may print. */
typedef struct {
    int nrow;        /* images per row (torchvision default 8), >= 1 */
    int padding;     /* pixels around and between images (2), >= 0 */
    float pad_value; /* canvas value before quantisation (0); not normalised */
    bool normalize;  /* map [lo, hi] to [0, 1] after clamping (normalize=True, value_range) */
    float lo, hi;    /* value range when normalize; finite, lo < hi */
    int scale;       /* 1..16: the finished canvas (padding included) enlarged by pixel replication
                      * (nearest), scale x scale PNG pixels per canvas pixel; not torchvision's */
} ebmc_grid_opts;

/* nrow 8, padding 2, pad_value 0, normalize over [-1, 1] (ebmc's data range), scale 1. */
ebmc_grid_opts ebmc_grid_opts_default(void);

/* The canvas size for n images of h x w: (height, width) as save_image makes it. Returns
 * EBMC_E_INVALID (and 0 x 0) for bad arguments or a canvas over 2^31 bytes of RGB. */
ebmc_status ebmc_grid_size(int n, int h, int w, int nrow, int padding, int *out_h, int *out_w);

/* One value as the grid quantises it (normalize over [lo, hi] when `normalize`). */
uint8_t ebmc_quantize_u8(float x, bool normalize, float lo, float hi);

/* imgs: host float (n, c, h, w), c = 1 or 3. Writes an 8-bit RGB PNG (stb_image_write) to a
 * temporary file renamed onto path (include/ebmc/fileio.h): path holds the old file or the
 * complete new one. EBMC_E_INVALID for bad arguments (nothing is written), EBMC_E_IO with
 * "PATH: problem" in err for file errors. */
ebmc_status ebmc_save_grid_png(const char *path, const float *imgs, int n, int c, int h, int w,
                               const ebmc_grid_opts *o, char *err, size_t errlen);

/* The same grid PNG in memory: *png (malloc'd: free it) of *len bytes, *out_h x *out_w pixels
 * (ebmc_grid_size's canvas times o->scale; either may be NULL); path only names it in messages. The same checks and NaN warning. */
ebmc_status ebmc_grid_png(const char *path, const float *imgs, int n, int c, int h, int w, const ebmc_grid_opts *o,
                          uint8_t **png, size_t *len, int *out_h, int *out_w, char *err, size_t errlen);
/* len bytes written to a temporary file renamed onto path. EBMC_E_IO with "PATH: problem". */
ebmc_status ebmc_save_png_bytes(const char *path, const uint8_t *png, size_t len, char *err, size_t errlen);

/* imgs as above (c = 1 or 3, kept as is: no replication). Writes a NumPy .npy file, format 1.0,
 * dtype '|u1', shape (n, h, w, c), C order: the uint8 NHWC array FID tools expect, each value
 * quantised as the grid does with normalize over [lo, hi]. The header is byte-identical to
 * numpy 1.24's np.save (sorted keys, the 21-digit growth padding, header end aligned to 64).
 * Written atomically; NaN values -> 0 with the same warning in err as the grid. */
ebmc_status ebmc_save_npy_u8(const char *path, const float *imgs, int n, int c, int h, int w,
                             float lo, float hi, char *err, size_t errlen);

/* data: host float, C order, shape[0..ndim-1] (0 <= ndim <= 8, sizes >= 0; ndim 0 is a scalar).
 * Writes '<f4' .npy format 1.0 with exact values (NaN and Inf kept), atomically. */
ebmc_status ebmc_save_npy_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                              char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
