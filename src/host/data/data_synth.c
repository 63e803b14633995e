/* Data sets made from a seed: procedural coloured shapes, 2-D toy points. All randomness is
 * Philox4x32-10 keyed by the seed, with the item index in the counter, so item i depends only on
 * (seed, i). */
#include "data/data_internal.h"
#include "ebmc/philox.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_SHAPES 0x53484150u /* "SHAP" */
#define STREAM_TOY 0x544f5932u    /* "TOY2" */
#define PI_F 3.14159265358979f

/* ------------------------------------------------------------ uniforms, one at a time */

typedef struct {
    uint64_t seed;
    uint32_t item, next_group;
    float buf[4];
    int left;
} uni_stream;

static float uni(uni_stream *s) {
    if (s->left == 0) {
        ebmc_philox_uniform4(s->seed, s->next_group++, s->item, 0, STREAM_SHAPES, s->buf);
        s->left = 4;
    }
    return s->buf[4 - s->left--];
}

static int uni_int(uni_stream *s, int n) { /* 0..n-1 */
    int k = (int)(uni(s) * (float)n);
    return k < n ? k : n - 1;
}

/* ------------------------------------------------------------ shapes */

static void hsv_rgb(float h, float s, float v, float rgb[3]) {
    h = (h - floorf(h)) * 6.0f;
    int i = (int)h;
    float f = h - (float)i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    float r, g, b;
    switch (i % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    rgb[0] = r, rgb[1] = g, rgb[2] = b;
}

static float clamp01(float x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }

enum { SHAPE_CIRCLE = 0, SHAPE_SQUARE = 1, SHAPE_TRIANGLE = 2 };

typedef struct {
    int type;
    float cx, cy, r; /* centre and size in pixels: circle radius r, square half side 0.8 r,
                      triangle circumradius 1.15 r: all inside the square (cx, cy) +- r */
    float rgb[3];
} shape_t;

/* signed distance in pixels from (x, y) to the shape's edge, negative inside */
static float shape_sd(const shape_t *s, float x, float y) {
    float dx = x - s->cx, dy = y - s->cy;
    switch (s->type) {
    case SHAPE_CIRCLE: return sqrtf(dx * dx + dy * dy) - s->r;
    case SHAPE_SQUARE: return fmaxf(fabsf(dx), fabsf(dy)) - 0.8f * s->r;
    default: { /* upright equilateral triangle, circumradius R = 1.15 r, vertices at -90, 30, 150
                * degrees from its centroid, which sits 0.2875 r below (cx, cy) so that the
                * bounding box, +-0.996 r by +-0.8625 r, is centred there */
        static const float ux[3] = {0.0f, 0.8660254f, -0.8660254f}, uy[3] = {-1.0f, 0.5f, 0.5f};
        const float R = 1.15f * s->r;
        dy -= 0.2875f * s->r;
        float d = -1e30f;
        for (int k = 0; k < 3; k++) d = fmaxf(d, -(dx * ux[k] + dy * uy[k]) - 0.5f * R);
        return d;
    }
    }
}

static void draw_shapes_image(uint64_t seed, uint32_t item, int size, int max_shapes, float r_min,
                              float r_span, bool black_bg, bool white_shapes, uint8_t *dst /* (3,S,S) */) {
    uni_stream u = {seed, item, 0, {0}, 0};
    const float S = (float)size;
    /* background: dark, muted; half the images two-tone */
    float bg0[3], bg1[3];
    float h0 = uni(&u), s0 = 0.25f + 0.45f * uni(&u), v0 = 0.12f + 0.30f * uni(&u);
    hsv_rgb(h0, s0, v0, bg0);
    bool two = uni(&u) < 0.5f;
    float h1 = h0 + 0.08f + 0.25f * uni(&u);
    float dv = (0.10f + 0.12f * uni(&u)) * (v0 < 0.27f ? 1.0f : -1.0f);
    hsv_rgb(h1, s0, v0 + dv, bg1);
    if (black_bg) bg0[0] = bg0[1] = bg0[2] = bg1[0] = bg1[1] = bg1[2] = 0.0f;
    static const float nx[4] = {1.0f, 0.0f, 0.70710678f, 0.70710678f};
    static const float ny[4] = {0.0f, 1.0f, 0.70710678f, -0.70710678f};
    int orient = uni_int(&u, 4);
    float shift = (uni(&u) - 0.5f) * 0.5f * S;
    /* shapes: bright and saturated, wholly inside */
    shape_t sh[3];
    int m = 1 + uni_int(&u, max_shapes);
    for (int k = 0; k < m; k++) {
        sh[k].type = uni_int(&u, 3);
        sh[k].r = (r_min + r_span * uni(&u)) * S;
        sh[k].cx = sh[k].r + uni(&u) * (S - 2 * sh[k].r);
        sh[k].cy = sh[k].r + uni(&u) * (S - 2 * sh[k].r);
        float hh = uni(&u), ss = 0.65f + 0.35f * uni(&u), vv = 0.75f + 0.25f * uni(&u);
        hsv_rgb(hh, ss, vv, sh[k].rgb);
        if (white_shapes) sh[k].rgb[0] = sh[k].rgb[1] = sh[k].rgb[2] = 1.0f;
    }
    const size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float px = (float)x + 0.5f, py = (float)y + 0.5f, col[3];
            float a = 0.0f;
            if (two) {
                float sd = (px - 0.5f * S) * nx[orient] + (py - 0.5f * S) * ny[orient] - shift;
                a = clamp01(0.5f + sd);
            }
            for (int c = 0; c < 3; c++) col[c] = bg0[c] * (1 - a) + bg1[c] * a;
            for (int k = 0; k < m; k++) {
                float cov = clamp01(0.5f - shape_sd(&sh[k], px, py));
                if (cov > 0)
                    for (int c = 0; c < 3; c++) col[c] = col[c] * (1 - cov) + sh[k].rgb[c] * cov;
            }
            for (int c = 0; c < 3; c++)
                dst[(size_t)c * plane + (size_t)y * size + x] = (uint8_t)lrintf(clamp01(col[c]) * 255.0f);
        }
}

ebmc_status ebmc_data_shapes(int n, int size, uint64_t seed, ebmc_dataset_t **out, char *err,
                             size_t errlen) {
    return ebmc_data_shapes_ex(n, size, 3, seed, out, err, errlen);
}

ebmc_status ebmc_data_shapes_ex(int n, int size, int max_shapes, uint64_t seed, ebmc_dataset_t **out,
                                char *err, size_t errlen) {
    return ebmc_data_shapes_sized(n, size, max_shapes, 0.12, 0.28, seed, out, err, errlen);
}

ebmc_status ebmc_data_shapes_sized(int n, int size, int max_shapes, double r_min, double r_max,
                                   uint64_t seed, ebmc_dataset_t **out, char *err, size_t errlen) {
    return ebmc_data_shapes_styled(n, size, max_shapes, r_min, r_max, false, false, seed, out, err, errlen);
}

ebmc_status ebmc_data_shapes_styled(int n, int size, int max_shapes, double r_min, double r_max, bool black_bg,
                                    bool white_shapes, uint64_t seed, ebmc_dataset_t **out, char *err,
                                    size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!out) return ebmc_data_err(EBMC_E_INVALID, err, errlen, "shapes", "out is NULL");
    if (n < 1) return ebmc_data_err(EBMC_E_INVALID, err, errlen, "shapes", "n = %d, need >= 1", n);
    if (max_shapes < 1 || max_shapes > 3)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "shapes", "max_shapes = %d is not in 1..3", max_shapes);
    if (!(r_min > 0.0 && r_min <= r_max && r_max <= 0.5))
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "shapes",
                             "shape radii %g..%g (of the image size) are not within 0 < min <= max <= 0.5",
                             r_min, r_max);
    if (size < 8 || size > 1024)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "shapes", "size %d is not in 8..1024", size);
    const size_t per = (size_t)3 * size * size;
    if ((size_t)n > SIZE_MAX / per)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "shapes", "%d images of %dx%d are too many", n,
                             size, size);
    ebmc_dataset_t *ds = ebmc_data_alloc("shapes");
    if (!ds) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, "shapes", "out of memory");
    ds->kind = EBMC_DATA_U8_IMAGES;
    ds->n = n;
    ds->c = 3;
    ds->h = ds->w = size;
    ds->u8 = ebmc_data_malloc((size_t)n * per, "shapes", "the images", err, errlen);
    if (!ds->u8) {
        ebmc_data_free(ds);
        return EBMC_E_NOMEM;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int i = 0; i < n; i++) draw_shapes_image(seed, (uint32_t)i, size, max_shapes, (float)r_min, (float)(r_max - r_min),
                          black_bg, white_shapes, ds->u8 + (size_t)i * per);
    *out = ds;
    return EBMC_OK;
}

/* ------------------------------------------------------------ 2-D toys */

ebmc_status ebmc_data_toy2d(const char *kind, int n, uint64_t seed, ebmc_dataset_t **out,
                            char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!out) return ebmc_data_err(EBMC_E_INVALID, err, errlen, "toy2d", "out is NULL");
    static const char *kinds[] = {"gmm8", "gmm25", "rings", "spiral"};
    int kid = -1;
    for (int k = 0; kind && k < 4; k++)
        if (!strcmp(kind, kinds[k])) kid = k;
    int pd = kid < 0 ? ebmc_toy_pd_kind(kind) : -1; /* particle dynamics' sets: data_toy_pd.c */
    if (kid < 0 && pd < 0)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "toy2d",
                             "unknown kind '%s' (known: gmm8, gmm25, rings, spiral, 8gaussians, swissroll, "
                             "pinwheel, checkerboard, pd_rings, 2spirals)", kind ? kind : "(null)");
    if (n < 1) return ebmc_data_err(EBMC_E_INVALID, err, errlen, "toy2d", "n = %d, need >= 1", n);
    if (pd >= 0) return ebmc_data_toy_pd(pd, n, seed, out, err, errlen);
    char name[64];
    snprintf(name, sizeof name, "toy2d-%s", kinds[kid]);
    ebmc_dataset_t *ds = ebmc_data_alloc(name);
    if (!ds) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, name, "out of memory");
    ds->kind = EBMC_DATA_F32_POINTS;
    ds->n = n;
    ds->c = 2;
    ds->h = ds->w = 1;
    ds->f32 = ebmc_data_malloc((size_t)n * 2 * sizeof(float), name, "the points", err, errlen);
    ds->component = ebmc_data_malloc((size_t)n * sizeof(int32_t), name, "the components", err, errlen);
    if (kid <= 1) {
        ds->n_modes = kid == 0 ? 8 : 25;
        ds->mode_std = 0.05f;
        ds->centres = ebmc_data_malloc((size_t)ds->n_modes * 2 * sizeof(float), name, "the centres",
                                       err, errlen);
        if (ds->centres)
            for (int k = 0; k < ds->n_modes; k++) {
                if (kid == 0) {
                    double a = 2.0 * 3.141592653589793 * k / 8.0;
                    ds->centres[2 * k] = (float)(2.0 * cos(a));
                    ds->centres[2 * k + 1] = (float)(2.0 * sin(a));
                } else {
                    ds->centres[2 * k] = -4.0f + 2.0f * (float)(k % 5);
                    ds->centres[2 * k + 1] = -4.0f + 2.0f * (float)(k / 5);
                }
            }
    }
    if (!ds->f32 || !ds->component || (kid <= 1 && !ds->centres)) {
        ebmc_data_free(ds);
        return EBMC_E_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        float u[4], z[4];
        ebmc_philox_uniform4(seed, 0, (uint32_t)i, (uint32_t)kid, STREAM_TOY, u);
        ebmc_philox_normal4(seed, 1, (uint32_t)i, (uint32_t)kid, STREAM_TOY, z);
        float x, y;
        int comp;
        if (kid <= 1) {
            comp = (int)(u[0] * (float)ds->n_modes);
            if (comp >= ds->n_modes) comp = ds->n_modes - 1;
            x = ds->centres[2 * comp] + ds->mode_std * z[0];
            y = ds->centres[2 * comp + 1] + ds->mode_std * z[1];
        } else if (kid == 2) { /* rings of radii 0.5, 1, 1.5, 2; P(ring) proportional to radius */
            float t = u[0] * 5.0f; /* cumulative 0.5, 1.5, 3, 5 */
            comp = t < 0.5f ? 0 : t < 1.5f ? 1 : t < 3.0f ? 2 : 3;
            float rad = 0.5f * (float)(comp + 1) + 0.04f * z[0], th = 2.0f * PI_F * u[1];
            x = rad * cosf(th);
            y = rad * sinf(th);
        } else { /* two spiral arms */
            comp = u[0] < 0.5f ? 0 : 1;
            float t = 3.0f * PI_F * (0.1f + 0.9f * sqrtf(u[1]));
            float rad = 2.0f * t / (3.0f * PI_F), th = t + PI_F * (float)comp;
            x = rad * cosf(th) + 0.05f * z[0];
            y = rad * sinf(th) + 0.05f * z[1];
        }
        ds->f32[2 * i] = x;
        ds->f32[2 * i + 1] = y;
        ds->component[i] = comp;
    }
    *out = ds;
    return EBMC_OK;
}
