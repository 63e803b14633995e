/* Output layer: sample grids (PNG read back with stb_image), .npy files, JSONL records and the
 * progress line. The pixel-exact comparison with torchvision is tests/oracle/
 * test_grid_torchvision.py; here the layout, edge values and the error paths are pinned with
 * values that can be worked out by hand. */
#include "testutil.h"
#include "ebmc/image.h"
#include "ebmc/log.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stb/stb_image.h> /* implementation in Debian's libstb: link only */

static char DIRP[256]; /* a fresh mkdtemp directory per run */

static int setup(void **state) {
    (void)state;
    return tu_tmpdir_create(DIRP, sizeof DIRP, "test_output");
}

static int teardown(void **state) {
    (void)state;
    tu_tmpdir_remove(DIRP);
    return 0;
}

static const char *tpath(const char *name) { return tu_path(DIRP, "%s", name); }

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int count_tmp_files(void) {
    int n = 0;
    DIR *d = opendir(DIRP);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* Whole file into a malloc'd buffer (NUL-terminated); *len its size. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

/* A value whose grid byte over [-1, 1] is t: (t/255)*2 - 1 normalises to t/255 +- a few ulp,
 * far from the rounding edge t + 0.5. */
static float val_for_byte(int t) { return (float)((double)t / 255.0 * 2.0 - 1.0); }

/* ---- grids */

static void test_grid_layout(void **state) {
    (void)state;
    /*  n nrow  canvas h x w for 5x7 images with padding 2 */
    const int rows[][4] = {
        {1, 8, 5, 7},                    /* one image: no padding */
        {3, 8, 9, 29},                   /* n < nrow: one row of 3 */
        {16, 8, 2 * 7 + 2, 8 * 9 + 2},   /* exact multiple */
        {10, 4, 3 * 7 + 2, 4 * 9 + 2},   /* not a multiple: 3 rows, last one half empty */
        {5, 1, 5 * 7 + 2, 1 * 9 + 2},    /* one column */
    };
    float *imgs = tu_malloc(16 * 3 * 5 * 7);
    for (size_t i = 0; i < 16 * 3 * 5 * 7; i++) imgs[i] = 0.25f;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        int n = rows[r][0];
        ebmc_grid_opts o = ebmc_grid_opts_default();
        o.nrow = rows[r][1];
        int gh, gw;
        assert_int_equal(ebmc_grid_size(n, 5, 7, o.nrow, o.padding, &gh, &gw), EBMC_OK);
        assert_int_equal(gh, rows[r][2]);
        assert_int_equal(gw, rows[r][3]);
        char err[512] = "x";
        const char *p = tpath("layout.png");
        assert_int_equal(ebmc_save_grid_png(p, imgs, n, 3, 5, 7, &o, err, sizeof err), EBMC_OK);
        assert_string_equal(err, "");
        int w, h, comp;
        unsigned char *px = stbi_load(p, &w, &h, &comp, 0);
        assert_non_null(px);
        assert_int_equal(comp, 3);
        assert_int_equal(h, rows[r][2]);
        assert_int_equal(w, rows[r][3]);
        stbi_image_free(px);
    }
    assert_int_equal(count_tmp_files(), 0);
    free(imgs);
}

static void test_grid_pixels(void **state) {
    (void)state;
    /* 5 images of 3x4 in rows of 2 (3 rows, the 6th slot empty), padding 3, pad_value 0.5.
     * Pixel (y, x) of channel ch of image k has byte 10*k + 3*ch + y + 2*x + 7. */
    enum { N = 5, C = 3, H = 3, W = 4, NROW = 2, PAD = 3 };
    float *imgs = tu_malloc(N * C * H * W);
    for (int k = 0; k < N; k++)
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    imgs[((k * C + ch) * H + y) * W + x] =
                        val_for_byte(10 * k + 3 * ch + y + 2 * x + 7);
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.nrow = NROW;
    o.padding = PAD;
    o.pad_value = 0.5f; /* not normalised: 0.5*255 + 0.5 = 128 */
    char err[512];
    const char *p = tpath("pixels.png");
    assert_int_equal(ebmc_save_grid_png(p, imgs, N, C, H, W, &o, err, sizeof err), EBMC_OK);
    int w, h, comp;
    unsigned char *px = stbi_load(p, &w, &h, &comp, 3);
    assert_non_null(px);
    assert_int_equal(h, (H + PAD) * 3 + PAD);
    assert_int_equal(w, (W + PAD) * NROW + PAD);
    int image_px = 0;
    for (int gy = 0; gy < h; gy++) {
        for (int gx = 0; gx < w; gx++) {
            int ty = gy - PAD, tx = gx - PAD; /* position within a tile of (H+PAD) x (W+PAD) */
            int row = ty >= 0 ? ty / (H + PAD) : -1, col = tx >= 0 ? tx / (W + PAD) : -1;
            int y = ty >= 0 ? ty % (H + PAD) : H, x = tx >= 0 ? tx % (W + PAD) : W;
            int k = row * NROW + col;
            bool in_image = row >= 0 && col >= 0 && y < H && x < W && k < N;
            for (int ch = 0; ch < 3; ch++) {
                int want = in_image ? 10 * k + 3 * ch + y + 2 * x + 7 : 128;
                if (px[(gy * w + gx) * 3 + ch] != want)
                    fail_msg("pixel (%d, %d) channel %d: %d, expected %d", gy, gx, ch,
                             px[(gy * w + gx) * 3 + ch], want);
            }
            image_px += in_image;
        }
    }
    assert_int_equal(image_px, N * H * W);
    /* image 0 starts at (PAD, PAD), image 3 at row 1, column 1 */
    assert_int_equal(px[(PAD * w + PAD) * 3], 7);
    assert_int_equal(px[((H + 2 * PAD) * w + (W + 2 * PAD)) * 3], 37);
    stbi_image_free(px);

    /* n == 1: the image alone, no padding even with padding 3 */
    assert_int_equal(ebmc_save_grid_png(p, imgs, 1, C, H, W, &o, err, sizeof err), EBMC_OK);
    px = stbi_load(p, &w, &h, &comp, 3);
    assert_non_null(px);
    assert_int_equal(h, H);
    assert_int_equal(w, W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int ch = 0; ch < 3; ch++)
                assert_int_equal(px[(y * W + x) * 3 + ch], 3 * ch + y + 2 * x + 7);
    stbi_image_free(px);
    free(imgs);
}

static void test_grid_gray(void **state) {
    (void)state;
    /* one channel is replicated to R = G = B */
    enum { N = 3, H = 2, W = 3 };
    float imgs[N * H * W];
    for (int i = 0; i < N * H * W; i++) imgs[i] = val_for_byte(20 + 9 * i);
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.padding = 1;
    char err[512];
    const char *p = tpath("gray.png");
    assert_int_equal(ebmc_save_grid_png(p, imgs, N, 1, H, W, &o, err, sizeof err), EBMC_OK);
    int w, h, comp;
    unsigned char *px = stbi_load(p, &w, &h, &comp, 0);
    assert_non_null(px);
    assert_int_equal(comp, 3);
    assert_int_equal(h, H + 2);
    assert_int_equal(w, (W + 1) * N + 1);
    for (int k = 0; k < N; k++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const unsigned char *q = px + ((y + 1) * w + k * (W + 1) + x + 1) * 3;
                int want = 20 + 9 * ((k * H + y) * W + x);
                assert_int_equal(q[0], want);
                assert_int_equal(q[1], want);
                assert_int_equal(q[2], want);
            }
    assert_int_equal(px[0], 0); /* pad 0 */
    stbi_image_free(px);
}

static void test_quantize_edges(void **state) {
    (void)state;
    /* normalize over [-1, 1], exactly as torchvision: (0+1)/2*255 + 0.5 = 128.0 -> 128 */
    assert_int_equal(ebmc_quantize_u8(-1.0f, true, -1, 1), 0);
    assert_int_equal(ebmc_quantize_u8(1.0f, true, -1, 1), 255);
    assert_int_equal(ebmc_quantize_u8(0.0f, true, -1, 1), 128);
    assert_int_equal(ebmc_quantize_u8(-0.0f, true, -1, 1), 128);
    assert_int_equal(ebmc_quantize_u8(-7.0f, true, -1, 1), 0);   /* clamped */
    assert_int_equal(ebmc_quantize_u8(3.5f, true, -1, 1), 255);  /* clamped */
    assert_int_equal(ebmc_quantize_u8(INFINITY, true, -1, 1), 255);
    assert_int_equal(ebmc_quantize_u8(-INFINITY, true, -1, 1), 0);
    assert_int_equal(ebmc_quantize_u8(NAN, true, -1, 1), 0);
    assert_int_equal(ebmc_quantize_u8(0.5f, true, 0, 1), 128); /* 127.5 + 0.5 */
    /* without normalize nothing is clamped before x*255 + 0.5 */
    assert_int_equal(ebmc_quantize_u8(0.0f, false, 0, 0), 0);
    assert_int_equal(ebmc_quantize_u8(1.0f, false, 0, 0), 255);
    assert_int_equal(ebmc_quantize_u8(0.5f, false, 0, 0), 128);
    assert_int_equal(ebmc_quantize_u8(1.7f, false, 0, 0), 255);
    assert_int_equal(ebmc_quantize_u8(-0.3f, false, 0, 0), 0);
    assert_int_equal(ebmc_quantize_u8(NAN, false, 0, 0), 0);
    /* truncation: 10.4/255*255 + 0.5 = 10.9 -> 10; 10.6 -> 11.1 -> 11 */
    assert_int_equal(ebmc_quantize_u8(10.4f / 255.0f, false, 0, 0), 10);
    assert_int_equal(ebmc_quantize_u8(10.6f / 255.0f, false, 0, 0), 11);
    /* a range narrower than 1e-5 divides by 1e-5, as make_grid does: 2^-20 / 1e-5 * 255 + 0.5
     * = 24.8 -> 24 (dividing by the range itself would give 255) */
    assert_int_equal(ebmc_quantize_u8(0x1p-20f, true, 0.0f, 0x1p-20f), 24);
}

static void test_grid_nan(void **state) {
    (void)state;
    /* NaN -> 0, the write succeeds, and err carries the count; a clean write clears err */
    enum { N = 2, C = 3, H = 2, W = 2 };
    float imgs[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++) imgs[i] = 1.0f;
    imgs[0] = NAN;             /* image 0, red, (0, 0) */
    imgs[C * H * W + 5] = NAN; /* image 1, green, (0, 1) */
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.padding = 0;
    char err[512] = "";
    const char *p = tpath("nan.png");
    assert_int_equal(ebmc_save_grid_png(p, imgs, N, C, H, W, &o, err, sizeof err), EBMC_OK);
    assert_non_null(strstr(err, "2 NaN values written as 0"));
    assert_non_null(strstr(err, p));
    int w, h, comp;
    unsigned char *px = stbi_load(p, &w, &h, &comp, 3);
    assert_non_null(px);
    assert_int_equal(w, 2 * W);
    assert_int_equal(px[0], 0);     /* NaN */
    assert_int_equal(px[1], 255);
    assert_int_equal(px[2], 255);
    assert_int_equal(px[(0 * w + W + 1) * 3 + 1], 0); /* NaN */
    assert_int_equal(px[(0 * w + W + 1) * 3 + 0], 255);
    stbi_image_free(px);
    /* a NaN pad value is one NaN more, and pad pixels 0 */
    o.padding = 1;
    o.pad_value = NAN;
    assert_int_equal(ebmc_save_grid_png(p, imgs, N, C, H, W, &o, err, sizeof err), EBMC_OK);
    assert_non_null(strstr(err, "3 NaN values written as 0"));
    imgs[0] = imgs[C * H * W + 5] = 0.0f;
    o.pad_value = 0;
    assert_int_equal(ebmc_save_grid_png(p, imgs, N, C, H, W, &o, err, sizeof err), EBMC_OK);
    assert_string_equal(err, "");
    /* the .npy writer does the same */
    imgs[3] = NAN;
    assert_int_equal(ebmc_save_npy_u8(tpath("nan.npy"), imgs, N, C, H, W, -1, 1, err, sizeof err),
                     EBMC_OK);
    assert_non_null(strstr(err, "1 NaN value written as 0"));
}

/* scale s: the scale-1 grid with every pixel (padding included) a block of s x s, and the size
 * ebmc_grid_png reports is the enlarged one; scale 0 and 17 are refused */
static void test_grid_scale(void **state) {
    (void)state;
    enum { N = 3, C = 3, H = 3, W = 2, S = 3 };
    float imgs[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++) imgs[i] = val_for_byte((i * 37) % 256);
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.nrow = 2;
    o.pad_value = 0.5f;
    char err[512];
    const char *p1 = tpath("scale1.png"), *p3 = tpath("scale3.png");
    assert_int_equal(ebmc_save_grid_png(p1, imgs, N, C, H, W, &o, err, sizeof err), EBMC_OK);
    o.scale = S;
    assert_int_equal(ebmc_save_grid_png(p3, imgs, N, C, H, W, &o, err, sizeof err), EBMC_OK);
    uint8_t *png;
    size_t len;
    int gh, gw;
    assert_int_equal(ebmc_grid_png(p3, imgs, N, C, H, W, &o, &png, &len, &gh, &gw, err, sizeof err), EBMC_OK);
    free(png);
    int w1, h1, w3, h3, comp;
    unsigned char *a = stbi_load(p1, &w1, &h1, &comp, 3), *b = stbi_load(p3, &w3, &h3, &comp, 3);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(h1, 2 * (H + 2) + 2); /* torchvision's layout at scale 1 */
    assert_int_equal(w1, 2 * (W + 2) + 2);
    assert_int_equal(h3, S * h1);
    assert_int_equal(w3, S * w1);
    assert_int_equal(gh, h3);
    assert_int_equal(gw, w3);
    for (int y = 0; y < h3; y++)
        for (int x = 0; x < w3; x++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(b[((size_t)y * w3 + x) * 3 + c], a[((size_t)(y / S) * w1 + x / S) * 3 + c]);
    stbi_image_free(a);
    stbi_image_free(b);
    remove(p1);
    remove(p3);
    for (int bad = 0; bad <= 17; bad += 17) {
        o.scale = bad;
        assert_int_equal(ebmc_save_grid_png(p1, imgs, N, C, H, W, &o, err, sizeof err), EBMC_E_INVALID);
        assert_non_null(strstr(err, "scale"));
    }
    assert_false(exists(p1));
    /* a canvas within the limit at scale 1 but over it scaled is refused, not overflowed */
    o.scale = 16;
    assert_int_equal(ebmc_grid_png(p1, imgs, 1, C, 1, 1 << 22, &o, &png, &len, &gh, &gw, err, sizeof err),
                     EBMC_E_INVALID);
    assert_non_null(strstr(err, "too large"));
    assert_int_equal(count_tmp_files(), 0);
}

static void test_grid_invalid(void **state) {
    (void)state;
    float imgs[2 * 3 * 4 * 4] = {0};
    char err[512];
    const char *p = tpath("bad.png");
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.nrow = 0;
    assert_int_equal(ebmc_save_grid_png(p, imgs, 2, 3, 4, 4, &o, err, sizeof err), EBMC_E_INVALID);
    assert_non_null(strstr(err, "nrow"));
    o = ebmc_grid_opts_default();
    o.padding = -1;
    assert_int_equal(ebmc_save_grid_png(p, imgs, 2, 3, 4, 4, &o, err, sizeof err), EBMC_E_INVALID);
    o = ebmc_grid_opts_default();
    assert_int_equal(ebmc_save_grid_png(p, imgs, 2, 2, 4, 4, &o, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_save_grid_png(p, imgs, 0, 3, 4, 4, &o, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_save_grid_png(p, NULL, 2, 3, 4, 4, &o, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_save_grid_png(p, imgs, 2, 3, 4, 4, NULL, err, sizeof err),
                     EBMC_E_INVALID);
    assert_int_equal(ebmc_save_grid_png(NULL, imgs, 2, 3, 4, 4, &o, err, sizeof err),
                     EBMC_E_INVALID);
    o.lo = o.hi = 1.0f;
    assert_int_equal(ebmc_save_grid_png(p, imgs, 2, 3, 4, 4, &o, err, sizeof err), EBMC_E_INVALID);
    assert_non_null(strstr(err, "lo < hi"));
    o.lo = NAN;
    assert_int_equal(ebmc_save_grid_png(p, imgs, 2, 3, 4, 4, &o, err, sizeof err), EBMC_E_INVALID);
    o.normalize = false; /* the range is not used then */
    assert_int_equal(ebmc_save_grid_png(p, imgs, 2, 3, 4, 4, &o, err, sizeof err), EBMC_OK);
    remove(p);
    assert_int_equal(ebmc_save_npy_u8(p, imgs, 2, 3, 4, 4, 1, -1, err, sizeof err),
                     EBMC_E_INVALID);
    int gh = 5, gw = 5;
    assert_int_equal(ebmc_grid_size(100000, 1000, 1000, 8, 2, &gh, &gw), EBMC_E_INVALID);
    assert_int_equal(ebmc_grid_size(2147483647, 2147483647, 2147483647, 1, 2147483647, &gh, &gw),
                     EBMC_E_INVALID);
    assert_int_equal(ebmc_grid_size(2147483647, 1, 1, 2147483647, 0, &gh, &gw), EBMC_E_INVALID);
    assert_int_equal(ebmc_grid_size(2, 1, 1, 8, 0, NULL, &gw), EBMC_E_INVALID);
    assert_int_equal(gh, 0);
    assert_int_equal(gw, 0);
    assert_false(exists(p));
    /* a missing directory is an I/O error naming the file, and nothing is left behind */
    const char *q = tpath("no/such/dir/x.png");
    o = ebmc_grid_opts_default();
    assert_int_equal(ebmc_save_grid_png(q, imgs, 2, 3, 4, 4, &o, err, sizeof err), EBMC_E_WRITE);
    assert_non_null(strstr(err, q));
    assert_int_equal(ebmc_save_npy_u8(q, imgs, 2, 3, 4, 4, -1, 1, err, sizeof err), EBMC_E_WRITE);
    int64_t shape[1] = {4};
    assert_int_equal(ebmc_save_npy_f32(q, imgs, 1, shape, err, sizeof err), EBMC_E_WRITE);
    assert_int_equal(count_tmp_files(), 0);
}

static void test_grid_replaces_atomically(void **state) {
    (void)state;
    /* a second save replaces the file whole; a failed one leaves the old one */
    float a[3 * 2 * 2], b[3 * 2 * 2];
    for (int i = 0; i < 12; i++) {
        a[i] = -1.0f;
        b[i] = 1.0f;
    }
    ebmc_grid_opts o = ebmc_grid_opts_default();
    char err[512];
    const char *p = tpath("replace.png");
    assert_int_equal(ebmc_save_grid_png(p, a, 1, 3, 2, 2, &o, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_save_grid_png(p, b, 1, 3, 2, 2, &o, err, sizeof err), EBMC_OK);
    int w, h, comp;
    unsigned char *px = stbi_load(p, &w, &h, &comp, 3);
    assert_non_null(px);
    assert_int_equal(px[0], 255);
    stbi_image_free(px);
    o.nrow = -3;
    assert_int_equal(ebmc_save_grid_png(p, a, 2, 3, 1, 2, &o, err, sizeof err), EBMC_E_INVALID);
    px = stbi_load(p, &w, &h, &comp, 3);
    assert_non_null(px);
    assert_int_equal(px[0], 255);
    stbi_image_free(px);
}

/* ---- .npy */

/* Checks magic, version 1.0, the 64-byte alignment and the header text; returns the data. */
static const unsigned char *check_npy(const char *buf, size_t len, const char *dict) {
    assert_true(len >= 64);
    assert_memory_equal(buf, "\x93NUMPY\x01\x00", 8);
    size_t hl = (unsigned char)buf[8] | ((size_t)(unsigned char)buf[9] << 8);
    assert_true(10 + hl <= len);
    assert_int_equal((10 + hl) % 64, 0);
    assert_int_equal(buf[10 + hl - 1], '\n');
    size_t dl = strlen(dict);
    assert_true(dl < hl);
    assert_memory_equal(buf + 10, dict, dl);
    for (size_t i = 10 + dl; i < 10 + hl - 1; i++) assert_int_equal(buf[i], ' ');
    /* numpy 1.24 leaves room for the first axis to grow to 21 digits */
    assert_true(hl - 1 - dl >= 21 - 1);
    return (const unsigned char *)buf + 10 + hl;
}

static void test_npy_u8(void **state) {
    (void)state;
    enum { N = 2, C = 3, H = 4, W = 5 };
    float imgs[N * C * H * W];
    for (int k = 0; k < N; k++)
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    imgs[((k * C + ch) * H + y) * W + x] = val_for_byte(k * 100 + ch * 40 + y * 6 + x);
    char err[512];
    const char *p = tpath("u8.npy");
    assert_int_equal(ebmc_save_npy_u8(p, imgs, N, C, H, W, -1, 1, err, sizeof err), EBMC_OK);
    assert_string_equal(err, "");
    size_t len;
    char *buf = slurp(p, &len);
    assert_non_null(buf);
    const unsigned char *d =
        check_npy(buf, len, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 5, 3), }");
    assert_int_equal(len - (size_t)(d - (const unsigned char *)buf), N * H * W * C);
    assert_int_equal(d - (const unsigned char *)buf, 128); /* as numpy.save writes it */
    for (int k = 0; k < N; k++) /* NHWC */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int ch = 0; ch < C; ch++)
                    assert_int_equal(d[((k * H + y) * W + x) * C + ch],
                                     k * 100 + ch * 40 + y * 6 + x);
    free(buf);
    /* c = 1 stays one channel; values outside the range are clamped */
    float g[2] = {-5.0f, 0.5f};
    assert_int_equal(ebmc_save_npy_u8(p, g, 2, 1, 1, 1, 0, 1, err, sizeof err), EBMC_OK);
    buf = slurp(p, &len);
    d = check_npy(buf, len, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 1, 1), }");
    assert_int_equal(len - (size_t)(d - (const unsigned char *)buf), 2);
    assert_int_equal(d[0], 0);
    assert_int_equal(d[1], 128);
    free(buf);
}

static void test_npy_f32(void **state) {
    (void)state;
    char err[512];
    const char *p = tpath("f32.npy");
    float v[6] = {1.5f, -0.0f, NAN, INFINITY, -2.25f, 1e-45f};
    int64_t s1[1] = {6}, s2[2] = {2, 3}, s0[2] = {0, 3};
    assert_int_equal(ebmc_save_npy_f32(p, v, 1, s1, err, sizeof err), EBMC_OK);
    size_t len;
    char *buf = slurp(p, &len);
    const unsigned char *d =
        check_npy(buf, len, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }");
    assert_int_equal(len - (size_t)(d - (const unsigned char *)buf), 24);
    for (int i = 0; i < 6; i++) {
        uint32_t u, want;
        memcpy(&want, &v[i], 4);
        u = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 |
            (uint32_t)d[4 * i + 3] << 24;
        assert_int_equal(u, want);
    }
    free(buf);
    assert_int_equal(ebmc_save_npy_f32(p, v, 2, s2, err, sizeof err), EBMC_OK);
    buf = slurp(p, &len);
    check_npy(buf, len, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
    free(buf);
    assert_int_equal(ebmc_save_npy_f32(p, v, 0, NULL, err, sizeof err), EBMC_OK); /* scalar */
    buf = slurp(p, &len);
    assert_int_equal(len, 128 + 4);
    const char *scalar = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
    assert_memory_equal(buf + 10, scalar, strlen(scalar));
    assert_int_equal(buf[10 + strlen(scalar)], ' '); /* no growth padding for a scalar */
    free(buf);
    assert_int_equal(ebmc_save_npy_f32(p, NULL, 2, s0, err, sizeof err), EBMC_OK); /* empty */
    buf = slurp(p, &len);
    assert_int_equal(len, 128);
    free(buf);
    int64_t bad[1] = {-1};
    assert_int_equal(ebmc_save_npy_f32(p, v, 1, bad, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_save_npy_f32(p, v, 9, s1, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_save_npy_f32(p, NULL, 1, s1, err, sizeof err), EBMC_E_INVALID);
}

/* ---- JSONL */

static void line_str(const ebmc_jsonl *l, char *out, size_t n) {
    snprintf(out, n, "%.*s}", (int)l->len, l->buf);
}

static void test_jsonl_escaping(void **state) {
    (void)state;
    ebmc_jsonl l;
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_str(&l, "q", "say \"hi\"");
    ebmc_jsonl_str(&l, "bs", "a\\b");
    ebmc_jsonl_str(&l, "ctl", "t\tn\nr\rb\bf\f\x01\x1f\x7f");
    ebmc_jsonl_str(&l, "utf8", "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80");
    ebmc_jsonl_str(&l, "bad", "a\xff" "b\xc0\x80" "c\xed\xa0\x80" "d\xe2\x9c");
    ebmc_jsonl_str(&l, "k\"ey", "v");
    ebmc_jsonl_str(&l, "null", NULL);
    ebmc_jsonl_bool(&l, "t", true);
    ebmc_jsonl_bool(&l, "f", false);
    assert_false(l.overflow);
    char line[2048];
    line_str(&l, line, sizeof line);
    assert_string_equal(
        line,
        "{\"q\":\"say \\\"hi\\\"\",\"bs\":\"a\\\\b\","
        "\"ctl\":\"t\\tn\\nr\\rb\\bf\\f\\u0001\\u001f\x7f\","
        "\"utf8\":\"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\","
        "\"bad\":\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffd\","
        "\"k\\\"ey\":\"v\",\"null\":null,\"t\":true,\"f\":false}");
    /* and a JSON parser agrees */
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "q")->valuestring, "say \"hi\"");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "bs")->valuestring, "a\\b");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "ctl")->valuestring,
                        "t\tn\nr\rb\bf\f\x01\x1f\x7f");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "utf8")->valuestring,
                        "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "k\"ey")->valuestring, "v");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "null")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "t")));
    cJSON_Delete(j);
}

static void test_jsonl_numbers(void **state) {
    (void)state;
    ebmc_jsonl l;
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_int(&l, "step", 1200);
    ebmc_jsonl_int(&l, "min", INT64_MIN);
    ebmc_jsonl_int(&l, "max", INT64_MAX);
    ebmc_jsonl_num(&l, "loss", (double)0.031f);
    ebmc_jsonl_num(&l, "z", -0.0);
    ebmc_jsonl_num(&l, "big", 1e300);
    ebmc_jsonl_num(&l, "e", NAN);
    ebmc_jsonl_num(&l, "g", INFINITY);
    ebmc_jsonl_num(&l, "h", -INFINITY);
    char line[2048];
    line_str(&l, line, sizeof line);
    assert_string_equal(line,
                        "{\"step\":1200,\"min\":-9223372036854775808,"
                        "\"max\":9223372036854775807,\"loss\":0.0309999995,\"z\":-0,"
                        "\"big\":1e+300,\"e\":null,\"e_nonfinite\":\"nan\","
                        "\"g\":null,\"g_nonfinite\":\"inf\",\"h\":null,\"h_nonfinite\":\"-inf\"}");
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "e")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "h_nonfinite")->valuestring, "-inf");
    assert_true((float)cJSON_GetObjectItemCaseSensitive(j, "loss")->valuedouble == 0.031f);
    cJSON_Delete(j);
}

static void test_jsonl_overflow(void **state) {
    (void)state;
    char err[512];
    const char *p = tpath("overflow.jsonl");
    ebmc_jsonl l;
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_int(&l, "step", 1);
    size_t before = l.len;
    char *big = malloc(9000);
    assert_non_null(big);
    memset(big, 'x', 8999);
    big[8999] = '\0';
    ebmc_jsonl_str(&l, "big", big);
    assert_true(l.overflow);
    assert_int_equal(l.len, before); /* the field was dropped whole */
    ebmc_jsonl_int(&l, "after", 2);  /* nothing more is added */
    assert_int_equal(l.len, before);
    assert_int_equal(ebmc_jsonl_append(&l, p, err, sizeof err), EBMC_E_INVALID);
    assert_non_null(strstr(err, "not written"));
    assert_false(exists(p));
    /* filled field by field up to the limit: every field either fits whole or flags */
    ebmc_jsonl_begin(&l);
    int i = 0;
    while (!l.overflow) ebmc_jsonl_num(&l, "some_metric_name", 1.0 + i++);
    assert_true(l.len <= sizeof l.buf - 3);
    assert_true(l.buf[l.len - 1] >= '0' && l.buf[l.len - 1] <= '9'); /* ends with a whole field */
    assert_int_equal(ebmc_jsonl_append(&l, p, err, sizeof err), EBMC_E_INVALID);
    /* the largest record that fits, 8189 bytes + "}\n", is written; one byte more is not */
    const size_t cap = sizeof l.buf - 3, fixed = 7; /* '{' '"s":' and the value's quotes */
    memset(big, 'y', cap - fixed + 1);
    big[cap - fixed + 1] = '\0';
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_str(&l, "s", big);
    assert_true(l.overflow);
    big[cap - fixed] = '\0';
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_str(&l, "s", big);
    assert_false(l.overflow);
    assert_int_equal(l.len, cap);
    assert_int_equal(ebmc_jsonl_append(&l, p, err, sizeof err), EBMC_OK);
    size_t len;
    char *buf = slurp(p, &len);
    assert_int_equal(len, l.len + 2);
    assert_int_equal(buf[len - 2], '}');
    assert_int_equal(buf[len - 1], '\n');
    free(buf);
    free(big);
    /* never begun */
    ebmc_jsonl z;
    memset(&z, 0, sizeof z);
    assert_int_equal(ebmc_jsonl_append(&z, p, err, sizeof err), EBMC_E_INVALID);
}

static void test_jsonl_append(void **state) {
    (void)state;
    char err[512];
    const char *p = tpath("metrics.jsonl");
    ebmc_jsonl l;
    for (int s = 1; s <= 3; s++) {
        ebmc_jsonl_begin(&l);
        ebmc_jsonl_int(&l, "step", s * 100);
        ebmc_jsonl_num(&l, "loss", 1.0 / s);
        assert_int_equal(ebmc_jsonl_append(&l, p, err, sizeof err), EBMC_OK);
    }
    size_t len;
    char *buf = slurp(p, &len);
    assert_string_equal(buf, "{\"step\":100,\"loss\":1}\n"
                             "{\"step\":200,\"loss\":0.5}\n"
                             "{\"step\":300,\"loss\":0.333333333}\n");
    free(buf);
    /* a line cut by a crash: the next record starts on a line of its own */
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    fputs("{\"step\":400,\"lo", f);
    fclose(f);
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_int(&l, "step", 500);
    assert_int_equal(ebmc_jsonl_append(&l, p, err, sizeof err), EBMC_OK);
    buf = slurp(p, &len);
    assert_non_null(strstr(buf, "0.333333333}\n{\"step\":400,\"lo\n{\"step\":500}\n"));
    free(buf);
    /* an empty record is an empty object */
    ebmc_jsonl_begin(&l);
    assert_int_equal(ebmc_jsonl_append(&l, tpath("empty.jsonl"), err, sizeof err), EBMC_OK);
    buf = slurp(tpath("empty.jsonl"), &len);
    assert_string_equal(buf, "{}\n");
    free(buf);
    /* errors name the file */
    const char *q = tpath("no/such/dir/m.jsonl");
    assert_int_equal(ebmc_jsonl_append(&l, q, err, sizeof err), EBMC_E_WRITE);
    assert_non_null(strstr(err, q));
    assert_int_equal(ebmc_jsonl_append(&l, NULL, err, sizeof err), EBMC_E_INVALID);
}

/* ---- progress */

static char *read_stream(FILE *f) {
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    return b;
}

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

static void test_progress_tty(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    ebmc_progress_t *p = ebmc_progress_create(10, 0, 3, false);
    assert_non_null(p);
    ebmc_progress_set_stream(p, f, true);
    for (int i = 1; i <= 10; i++) ebmc_progress_update(p, i, "loss 0.5");
    ebmc_progress_finish(p);
    ebmc_progress_finish(p); /* once only */
    ebmc_progress_free(p);
    char *out = read_stream(f);
    fclose(f);
    assert_int_equal(out[0], '\r');
    assert_int_equal(count_char(out, '\n'), 1);
    assert_int_equal(out[strlen(out) - 1], '\n');
    int draws = count_char(out, '\r');
    assert_true(draws >= 3 && draws <= 11); /* first, last, finish; more only if slow */
    assert_true(strncmp(out, "\r1/10  10% [", 12) == 0);
    const char *last = strrchr(out, '\r') + 1;
    assert_true(strncmp(last, "10/10 100% [", 12) == 0);
    /* then only the spaces that cover a longer line before it (the rate's digits vary) */
    const char *tail = strstr(last, "it/s] loss 0.5");
    assert_non_null(tail);
    tail += strlen("it/s] loss 0.5");
    assert_int_equal(strspn(tail, " "), strlen(tail) - 1);
    assert_int_equal(tail[strlen(tail) - 1], '\n');
    free(out);

    /* a shorter line covers the longer one before it; control characters become spaces */
    f = tmpfile();
    p = ebmc_progress_create(0, 0, 0, false);
    ebmc_progress_set_stream(p, f, true);
    ebmc_progress_update(p, 1, "a rather long text line here\nx");
    struct timespec ts = {0, 120 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ebmc_progress_update(p, 2, "short");
    ebmc_progress_finish(p);
    ebmc_progress_free(p);
    out = read_stream(f);
    fclose(f);
    assert_non_null(strstr(out, "here x"));
    char *second = strchr(out + 1, '\r');
    assert_non_null(second);
    size_t first_len = (size_t)(second - out - 1);
    char *third = strchr(second + 1, '\r');
    assert_non_null(third);
    assert_true((size_t)(third - second - 1) >= first_len);
    assert_true(strncmp(second, "\r2 [", 4) == 0); /* unknown total: no percent */
    free(out);
}

static void test_progress_plain(void **state) {
    (void)state;
    FILE *f = tmpfile();
    ebmc_progress_t *p = ebmc_progress_create(10, 0, 3, false);
    ebmc_progress_set_stream(p, f, false);
    for (int i = 1; i <= 10; i++) ebmc_progress_update(p, i, "e_pos -1.92");
    ebmc_progress_finish(p);
    ebmc_progress_free(p);
    char *out = read_stream(f);
    fclose(f);
    assert_int_equal(count_char(out, '\r'), 0);
    assert_int_equal(count_char(out, '\n'), 4); /* 3, 6, 9 and the last */
    const char *want[] = {"3/10  30% [", "6/10  60% [", "9/10  90% [", "10/10 100% ["};
    const char *s = out;
    for (int i = 0; i < 4; i++) {
        assert_true(strncmp(s, want[i], strlen(want[i])) == 0);
        const char *nl = strchr(s, '\n');
        assert_true(nl - s > 12 && strncmp(nl - 12, " e_pos -1.92", 12) == 0);
        s = nl + 1;
    }
    free(out);

    /* stopped early (resumed at 100): finish prints the last iteration once */
    f = tmpfile();
    p = ebmc_progress_create(400, 100, 5, false);
    ebmc_progress_set_stream(p, f, false);
    for (int i = 101; i <= 108; i++) ebmc_progress_update(p, i, NULL);
    ebmc_progress_finish(p);
    ebmc_progress_free(p);
    out = read_stream(f);
    fclose(f);
    assert_int_equal(count_char(out, '\n'), 2);
    assert_true(strncmp(out, "105/400  26% [", 14) == 0);
    assert_non_null(strstr(out, "\n108/400  27% ["));
    free(out);
}

static void test_progress_quiet(void **state) {
    (void)state;
    FILE *f = tmpfile();
    for (int tty = 0; tty <= 1; tty++) {
        ebmc_progress_t *p = ebmc_progress_create(10, 0, 1, true);
        ebmc_progress_set_stream(p, f, tty);
        for (int i = 1; i <= 10; i++) ebmc_progress_update(p, i, "x");
        ebmc_progress_finish(p);
        ebmc_progress_free(p);
    }
    fflush(f);
    assert_int_equal(ftell(f), 0);
    fclose(f);
    ebmc_progress_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_layout),
        cmocka_unit_test(test_grid_pixels),
        cmocka_unit_test(test_grid_gray),
        cmocka_unit_test(test_quantize_edges),
        cmocka_unit_test(test_grid_nan),
        cmocka_unit_test(test_grid_scale),
        cmocka_unit_test(test_grid_invalid),
        cmocka_unit_test(test_grid_replaces_atomically),
        cmocka_unit_test(test_npy_u8),
        cmocka_unit_test(test_npy_f32),
        cmocka_unit_test(test_jsonl_escaping),
        cmocka_unit_test(test_jsonl_numbers),
        cmocka_unit_test(test_jsonl_overflow),
        cmocka_unit_test(test_jsonl_append),
        cmocka_unit_test(test_progress_tty),
        cmocka_unit_test(test_progress_plain),
        cmocka_unit_test(test_progress_quiet),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
