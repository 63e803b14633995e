/* Synthetic data sets and the batch loader.
 *   - shapes and 2-D toys: determinism by seed, ranges, mode coverage
 *   - the loader (over toys and fake CIFAR-10 files): permutations, determinism, resume, flips,
 *     drop_last
 * Every expected error is checked to name the data set. File data sets are tested in
 * test_data_files.c, image folders and tars in test_data_images.c; the shared fixtures are in
 * testutil_data.c. */
#include "testutil_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ shapes, toys */

static void test_shapes(void **state) {
    ebmc_dataset_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    const int n = 64, s = 32;
    const size_t per = 3 * s * s;
    EXPECT_OK(ebmc_data_shapes(n, s, 1, &a, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes(n, s, 1, &b, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes(n, s, 2, &c, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes(8, s, 1, &d, ERR, sizeof ERR)); /* image i depends on (seed, i) only */
    assert_string_equal(ebmc_data_name(a), "shapes");
    int ch, h, w;
    ebmc_data_shape(a, &ch, &h, &w);
    assert_int_equal(ch, 3);
    assert_int_equal(h, s);
    assert_int_equal(w, s);
    const uint8_t *ua = ebmc_data_u8(a), *uc = ebmc_data_u8(c);
    assert_memory_equal(ua, ebmc_data_u8(b), n * per);
    assert_memory_equal(ua, ebmc_data_u8(d), 8 * per);
    assert_memory_not_equal(ua, uc, per);
    int same_as_c = 0, lo = 255, hi = 0, distinct = 0;
    for (int i = 0; i < n; i++) {
        same_as_c += !memcmp(ua + i * per, uc + i * per, per);
        if (i && memcmp(ua + i * per, ua, per)) distinct++;
        /* every image shows something: a range of at least 100 levels in some channel */
        int ilo = 255, ihi = 0;
        for (size_t k = 0; k < per; k++) {
            int v = ua[i * per + k];
            ilo = v < ilo ? v : ilo;
            ihi = v > ihi ? v : ihi;
        }
        assert_true(ihi - ilo >= 100);
        lo = ilo < lo ? ilo : lo;
        hi = ihi > hi ? ihi : hi;
    }
    printf("  shapes: value range %d..%d, %d of %d images differ from image 0\n", lo, hi, distinct,
           n - 1);
    assert_int_equal(same_as_c, 0);
    assert_int_equal(distinct, n - 1);
    assert_true(lo <= 25 && hi >= 240);
    ebmc_data_free(a);
    ebmc_data_free(b);
    ebmc_data_free(c);
    ebmc_data_free(d);
    ebmc_dataset_t *x = NULL;
    EXPECT_FAIL(ebmc_data_shapes(0, 32, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", NULL);
    EXPECT_FAIL(ebmc_data_shapes(4, 4, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", NULL);
}

/* max_shapes: 3 is ebmc_data_shapes; fewer keeps everything but the count (drawn from the same
 * uniform), so an image is byte-identical where the two counts agree and differs elsewhere */
static void test_shapes_max(void **state) {
    (void)state;
    const int n = 96, s = 24;
    const size_t per = 3 * s * s;
    ebmc_dataset_t *d3 = NULL, *e3 = NULL, *e2 = NULL, *e1 = NULL, *x = NULL;
    EXPECT_OK(ebmc_data_shapes(n, s, 5, &d3, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes_ex(n, s, 3, 5, &e3, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes_ex(n, s, 2, 5, &e2, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes_ex(n, s, 1, 5, &e1, ERR, sizeof ERR));
    assert_string_equal(ebmc_data_name(e1), "shapes");
    const uint8_t *u3 = ebmc_data_u8(d3), *u1 = ebmc_data_u8(e1), *u2 = ebmc_data_u8(e2);
    assert_memory_equal(u3, ebmc_data_u8(e3), n * per);
    int same1 = 0, same2 = 0, same12 = 0;
    for (int i = 0; i < n; i++) {
        same1 += !memcmp(u1 + i * per, u3 + i * per, per);
        same2 += !memcmp(u2 + i * per, u3 + i * per, per);
        same12 += !memcmp(u1 + i * per, u2 + i * per, per);
    }
    printf("  shapes max 1/2: %d and %d of %d images as with 3; max 1 as max 2: %d\n", same1, same2, n, same12);
    /* counts uniform: P(same) 1/3 (max 1), ~1/3 (max 2: m2 = 1 + floor(2u), m3 = 1 + floor(3u) agree
     * for u < 1/3 and 1/2 <= u < 2/3), 1/2 (max 1 against max 2); wide bounds, exact for this seed */
    assert_in_range(same1, n / 6, n / 2);
    assert_in_range(same2, n / 6, n / 2);
    assert_in_range(same12, n / 4, 3 * n / 4);
    ebmc_data_free(d3);
    ebmc_data_free(e3);
    ebmc_data_free(e2);
    ebmc_data_free(e1);
    EXPECT_FAIL(ebmc_data_shapes_ex(4, 32, 0, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", "max_shapes");
    EXPECT_FAIL(ebmc_data_shapes_ex(4, 32, 4, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", "max_shapes");
}

/* radii: 0.12..0.28 is ebmc_data_shapes_ex byte for byte; a fixed radius r gives one shape of
 * the area its geometry says (bright pixels: a shape's brightest channel is >= 0.75 x 255, a
 * background's <= 0.64 x 255), and radii outside 0 < min <= max <= 0.5 are refused */
/* styles: both off is ebmc_data_shapes_sized byte for byte; black_bg leaves every pixel outside
 * the shapes 0 (the corners: shapes are wholly inside and at least 0.2 r from the edges) and
 * the shapes' fully covered pixels as they were (within 1); white_shapes makes those pixels 254..255 and leaves
 * the background as it was; the shapes' coverage (bright pixels) is the same in all styles */
static void test_shapes_styled(void **state) {
    (void)state;
    const int n = 32, s = 32;
    const size_t per = 3 * s * s, plane = (size_t)s * s;
    ebmc_dataset_t *v = NULL, *b = NULL, *w = NULL, *bw = NULL;
    EXPECT_OK(ebmc_data_shapes_sized(n, s, 1, 0.25, 0.4, 5, &v, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes_styled(n, s, 1, 0.25, 0.4, false, false, 5, &b, ERR, sizeof ERR));
    assert_memory_equal(ebmc_data_u8(v), ebmc_data_u8(b), n * per);
    ebmc_data_free(b);
    EXPECT_OK(ebmc_data_shapes_styled(n, s, 1, 0.25, 0.4, true, false, 5, &b, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes_styled(n, s, 1, 0.25, 0.4, false, true, 5, &w, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes_styled(n, s, 1, 0.25, 0.4, true, true, 5, &bw, ERR, sizeof ERR));
    const uint8_t *uv = ebmc_data_u8(v), *ub = ebmc_data_u8(b), *uw = ebmc_data_u8(w), *ubw = ebmc_data_u8(bw);
    const size_t corners[4] = {0, (size_t)s - 1, plane - s, plane - 1};
    for (int i = 0; i < n; i++) {
        int covered = 0;
        for (int k = 0; k < 4; k++)
            for (int c = 0; c < 3; c++) {
                size_t q = i * per + c * plane + corners[k];
                assert_int_equal(ub[q], 0);
                assert_int_equal(ubw[q], 0);
                assert_int_equal(uw[q], uv[q]);
            }
        for (size_t p = 0; p < plane; p++) {
            /* white on black: the coverage itself; full coverage is 255 in every channel */
            int cov = ubw[i * per + p];
            for (int c = 0; c < 3; c++) assert_int_equal(ubw[i * per + c * plane + p], cov);
            if (cov != 255) continue;
            covered++;
            for (int c = 0; c < 3; c++) {
                /* 255 is coverage >= 0.998: the background's share may move the rounding by 1 */
                assert_true(abs((int)ub[i * per + c * plane + p] - (int)uv[i * per + c * plane + p]) <= 1);
                assert_true(uw[i * per + c * plane + p] >= 254);
            }
        }
        assert_true(covered > 40); /* a shape of radius >= 8 px covers far more */
    }
    ebmc_data_free(v);
    ebmc_data_free(b);
    ebmc_data_free(w);
    ebmc_data_free(bw);
}

static void test_shapes_sized(void **state) {
    (void)state;
    const int n = 48, s = 40;
    const size_t per = 3 * s * s, plane = (size_t)s * s;
    ebmc_dataset_t *a = NULL, *b = NULL, *x = NULL;
    EXPECT_OK(ebmc_data_shapes_ex(n, s, 2, 9, &a, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes_sized(n, s, 2, 0.12, 0.28, 9, &b, ERR, sizeof ERR));
    assert_memory_equal(ebmc_data_u8(a), ebmc_data_u8(b), n * per);
    ebmc_data_free(a);
    ebmc_data_free(b);
    const double radii[2] = {0.1, 0.3};
    for (int t = 0; t < 2; t++) {
        EXPECT_OK(ebmc_data_shapes_sized(n, s, 1, radii[t], radii[t], 9, &a, ERR, sizeof ERR));
        const double r = radii[t] * s, R = 1.15 * r;
        /* areas in pixels: triangle (3 sqrt 3 / 4) R^2 (circumradius R), square (1.6 r)^2, circle
         * pi r^2; anti-aliased edges count about half their pixels: +- the perimeter / 2 */
        const double lo = 1.299038 * R * R - 1.5 * 1.732 * R, hi = 3.14159265 * r * r + 3.14159265 * r;
        const uint8_t *u = ebmc_data_u8(a);
        for (int i = 0; i < n; i++) {
            int bright = 0;
            for (size_t p = 0; p < plane; p++) {
                int m = 0;
                for (int c = 0; c < 3; c++) m = u[i * per + c * plane + p] > m ? u[i * per + c * plane + p] : m;
                bright += m > 177;
            }
            if (bright < lo || bright > hi) fail_msg("radius %g: image %d has %d bright pixels, not in %.0f..%.0f",
                                                     radii[t], i, bright, lo, hi);
        }
        ebmc_data_free(a);
    }
    EXPECT_FAIL(ebmc_data_shapes_sized(4, 32, 1, 0.0, 0.2, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", "radii");
    EXPECT_FAIL(ebmc_data_shapes_sized(4, 32, 1, 0.3, 0.2, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", "radii");
    EXPECT_FAIL(ebmc_data_shapes_sized(4, 32, 1, 0.2, 0.6, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", "radii");
}

static void check_modes(const char *kind, int want_m, int n) {
    ebmc_dataset_t *ds = NULL;
    EXPECT_OK(ebmc_data_toy2d(kind, n, 3, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_kind_of(ds), EBMC_DATA_F32_POINTS);
    assert_null(ebmc_data_u8(ds));
    int c, h, w;
    ebmc_data_shape(ds, &c, &h, &w);
    assert_int_equal(c, 2);
    assert_int_equal(h, 1);
    assert_int_equal(w, 1);
    const float *cen, *p = ebmc_data_f32(ds);
    float sd;
    int m = ebmc_toy2d_modes(ds, &cen, &sd);
    assert_int_equal(m, want_m);
    assert_true(fabsf(sd - 0.05f) < 1e-6f);
    const int32_t *comp = ebmc_toy2d_components(ds);
    assert_non_null(comp);
    int count[32] = {0};
    for (int i = 0; i < n; i++) {
        int best = 0;
        float bd = 1e30f;
        for (int k = 0; k < m; k++) {
            float dx = p[2 * i] - cen[2 * k], dy = p[2 * i + 1] - cen[2 * k + 1];
            float d2 = dx * dx + dy * dy;
            if (d2 < bd) bd = d2, best = k;
        }
        assert_int_equal(best, comp[i]);
        assert_true(sqrtf(bd) < 6 * sd);
        count[best]++;
    }
    const double pk = 1.0 / m, se = sqrt(pk * (1 - pk) / n);
    double worst = 0;
    for (int k = 0; k < m; k++) worst = fmax(worst, fabs((double)count[k] / n - pk) / se);
    printf("  %s: %d modes, worst share off by %.2f SE\n", kind, m, worst);
    assert_true(worst < 5.0);
    ebmc_data_free(ds);
}

static void test_toy2d(void **state) {
    check_modes("gmm8", 8, 20000);
    check_modes("gmm25", 25, 20000);
    /* gmm8 centres: radius 2 */
    ebmc_dataset_t *ds = NULL, *d2 = NULL;
    EXPECT_OK(ebmc_data_toy2d("gmm8", 10, 1, &ds, ERR, sizeof ERR));
    const float *cen;
    ebmc_toy2d_modes(ds, &cen, NULL);
    for (int k = 0; k < 8; k++) assert_true(fabsf(hypotf(cen[2 * k], cen[2 * k + 1]) - 2.0f) < 1e-5f);
    assert_string_equal(ebmc_data_name(ds), "toy2d-gmm8");
    ebmc_data_free(ds);
    /* rings and spiral: deterministic, in range, components present, no modes */
    const char *kinds[2] = {"rings", "spiral"};
    for (int k = 0; k < 2; k++) {
        EXPECT_OK(ebmc_data_toy2d(kinds[k], 5000, 9, &ds, ERR, sizeof ERR));
        EXPECT_OK(ebmc_data_toy2d(kinds[k], 5000, 9, &d2, ERR, sizeof ERR));
        assert_memory_equal(ebmc_data_f32(ds), ebmc_data_f32(d2), 5000 * 2 * sizeof(float));
        assert_int_equal(ebmc_toy2d_modes(ds, NULL, NULL), 0);
        const float *p = ebmc_data_f32(ds);
        const int32_t *comp = ebmc_toy2d_components(ds);
        int per[4] = {0};
        for (int i = 0; i < 5000; i++) {
            float r = hypotf(p[2 * i], p[2 * i + 1]);
            assert_true(r < 2.5f);
            per[comp[i]]++;
            if (k == 0) assert_true(fabsf(r - 0.5f * (comp[i] + 1)) < 0.3f);
        }
        if (k == 0) assert_true(per[0] < per[1] && per[1] < per[2] && per[2] < per[3]);
        else assert_true(abs(per[0] - per[1]) < 400);
        ebmc_data_free(ds);
        ebmc_data_free(d2);
    }
    EXPECT_FAIL(ebmc_data_toy2d("moons", 10, 1, &ds, ERR, sizeof ERR), ds, EBMC_E_INVALID, "moons", NULL);
}

/* ================================================================ loader */

static ebmc_loader_t *make_loader(const ebmc_dataset_t *ds, int batch, uint64_t seed, bool shuffle,
                                  bool hflip, bool drop_last) {
    ebmc_loader_t *l = NULL;
    ebmc_loader_opts o = {shuffle, hflip, drop_last};
    EXPECT_OK(ebmc_loader_create(ds, batch, seed, o, &l, ERR, sizeof ERR));
    return l;
}

/* index of point (x, y) in ds */
static int point_index(const ebmc_dataset_t *ds, const float *q) {
    const float *p = ebmc_data_f32(ds);
    for (int i = 0; i < ebmc_data_count(ds); i++)
        if (p[2 * i] == q[0] && p[2 * i + 1] == q[1]) return i;
    fail_msg("point (%g, %g) is not in the data set", q[0], q[1]);
    return -1;
}

static void test_loader_epochs(void **state) {
    ebmc_dataset_t *ds = NULL;
    EXPECT_OK(ebmc_data_toy2d("gmm25", 103, 5, &ds, ERR, sizeof ERR));
    float out[10 * 2];
    for (int drop = 0; drop < 2; drop++) {
        ebmc_loader_t *l = make_loader(ds, 10, 42, true, false, drop);
        int64_t nb = ebmc_loader_batches_per_epoch(l);
        assert_int_equal(nb, drop ? 10 : 11);
        int order[2][103], seen[103];
        for (int e = 0; e < 2; e++) {
            memset(seen, 0, sizeof seen);
            int k = 0;
            for (int64_t b = 0; b < nb; b++) {
                int n;
                int64_t ep;
                EXPECT_OK(ebmc_loader_next(l, out, &n, &ep));
                assert_int_equal(ep, e);
                assert_int_equal(n, (!drop && b == nb - 1) ? 3 : 10);
                for (int i = 0; i < n; i++) {
                    int idx = point_index(ds, out + 2 * i);
                    seen[idx]++;
                    order[e][k++] = idx;
                }
                for (int i = n; i < 10; i++) assert_true(out[2 * i] == 0 && out[2 * i + 1] == 0);
            }
            int once = 0, never = 0;
            for (int i = 0; i < 103; i++) once += seen[i] == 1, never += seen[i] == 0;
            assert_int_equal(once, drop ? 100 : 103);
            assert_int_equal(never, drop ? 3 : 0);
        }
        /* epochs differ; the state moved on to the next epoch's start */
        assert_memory_not_equal(order[0], order[1], 100 * sizeof(int));
        int64_t e, p;
        ebmc_loader_get_state(l, &e, &p);
        assert_int_equal(e, 2);
        assert_int_equal(p, 0);
        ebmc_loader_free(l);
    }
    /* shuffle off: the identity order */
    ebmc_loader_t *l = make_loader(ds, 10, 42, false, false, true);
    int n;
    EXPECT_OK(ebmc_loader_next(l, out, &n, NULL));
    assert_memory_equal(out, ebmc_data_f32(ds), 20 * sizeof(float));
    ebmc_loader_free(l);
    ebmc_data_free(ds);
}

static void test_loader_determinism_resume(void **state) {
    ebmc_dataset_t *ds = NULL;
    const char *d = tp("loader/cifar");
    write_cifar(d, true, 10); /* 50 images */
    EXPECT_OK(ebmc_data_cifar10_ex(d, true, 10, &ds, ERR, sizeof ERR));
    const size_t item = 3 * 32 * 32;
    const int B = 8, T = 20;
    float *ref = malloc(sizeof(float) * item * B * T), *out = malloc(sizeof(float) * item * B);
    assert_non_null(ref);
    assert_non_null(out);
    int64_t st_e[T], st_p[T];
    ebmc_loader_t *a = make_loader(ds, B, 7, true, true, true), *b = make_loader(ds, B, 7, true, true, true);
    ebmc_loader_t *c = make_loader(ds, B, 8, true, true, true);
    assert_int_equal(ebmc_loader_batches_per_epoch(a), 6);
    bool differs = false;
    for (int t = 0; t < T; t++) {
        ebmc_loader_get_state(a, &st_e[t], &st_p[t]);
        assert_int_equal(st_e[t], t / 6);
        assert_int_equal(st_p[t], (t % 6) * B);
        int n;
        int64_t e;
        EXPECT_OK(ebmc_loader_next(a, ref + (size_t)t * item * B, &n, &e));
        assert_int_equal(e, t / 6);
        EXPECT_OK(ebmc_loader_next(b, out, &n, &e));
        assert_memory_equal(out, ref + (size_t)t * item * B, sizeof(float) * item * B);
        EXPECT_OK(ebmc_loader_next(c, out, &n, &e));
        differs |= memcmp(out, ref + (size_t)t * item * B, sizeof(float) * item * B) != 0;
    }
    assert_true(differs);
    /* resume anywhere: a fresh loader set to a saved state continues exactly */
    const int starts[4] = {0, 3, 6, 13};
    for (int s = 0; s < 4; s++) {
        ebmc_loader_t *r = make_loader(ds, B, 7, true, true, true);
        EXPECT_OK(ebmc_loader_set_state(r, st_e[starts[s]], st_p[starts[s]]));
        for (int t = starts[s]; t < T; t++) {
            int n;
            EXPECT_OK(ebmc_loader_next(r, out, &n, NULL));
            if (memcmp(out, ref + (size_t)t * item * B, sizeof(float) * item * B))
                fail_msg("resumed at batch %d: batch %d differs", starts[s], t);
        }
        ebmc_loader_free(r);
    }
    /* the end of an epoch is the next one's start; bad states are refused */
    EXPECT_OK(ebmc_loader_set_state(b, 1, 48));
    int64_t e, p;
    ebmc_loader_get_state(b, &e, &p);
    assert_int_equal(e, 2);
    assert_int_equal(p, 0);
    assert_int_equal(ebmc_loader_set_state(b, 1, 4), EBMC_E_INVALID);
    assert_non_null(strstr(ebmc_loader_error(b), "cifar10-train"));
    assert_int_equal(ebmc_loader_set_state(b, -1, 0), EBMC_E_INVALID);
    assert_int_equal(ebmc_loader_set_state(b, 0, 56), EBMC_E_INVALID);
    ebmc_loader_get_state(b, &e, &p);
    assert_int_equal(e, 2);
    assert_int_equal(p, 0);
    ebmc_loader_free(a);
    ebmc_loader_free(b);
    ebmc_loader_free(c);
    free(ref);
    free(out);
    ebmc_data_free(ds);
}

static void test_loader_hflip(void **state) {
    ebmc_dataset_t *ds = NULL;
    const char *d = tp("loader/flip");
    write_cifar(d, true, 40); /* 200 images, none symmetric */
    EXPECT_OK(ebmc_data_cifar10_ex(d, true, 40, &ds, ERR, sizeof ERR));
    const size_t item = 3 * 32 * 32;
    const int B = 20;
    float *out = malloc(sizeof(float) * item * B);
    assert_non_null(out);
    ebmc_loader_t *l = make_loader(ds, B, 11, false, true, true);
    int flipped[2] = {0, 0};
    for (int e = 0; e < 2; e++)
        for (int b = 0; b < 10; b++) {
            int n;
            EXPECT_OK(ebmc_loader_next(l, out, &n, NULL));
            for (int i = 0; i < B; i++) {
                const uint8_t *src = ebmc_data_u8(ds) + (size_t)(b * B + i) * item;
                const float *o = out + (size_t)i * item;
                bool same = true, mirror = true;
                for (size_t row = 0; row < 96; row++)
                    for (int x = 0; x < 32; x++) {
                        same &= o[row * 32 + x] == (float)src[row * 32 + x] / 127.5f - 1.0f;
                        mirror &= o[row * 32 + x] == (float)src[row * 32 + 31 - x] / 127.5f - 1.0f;
                    }
                assert_true(same != mirror);
                flipped[e] += mirror;
            }
        }
    printf("  hflip: %d and %d of 200 flipped in epochs 0 and 1\n", flipped[0], flipped[1]);
    for (int e = 0; e < 2; e++) assert_true(flipped[e] > 70 && flipped[e] < 130);
    /* the values: byte 0 -> -1, 255 -> 1 */
    ebmc_loader_t *m = make_loader(ds, B, 11, false, false, true);
    int n;
    EXPECT_OK(ebmc_loader_next(m, out, &n, NULL));
    for (size_t k = 0; k < item * B; k++) {
        assert_true(out[k] >= -1.0f && out[k] <= 1.0f);
        assert_true(out[k] == (float)ebmc_data_u8(ds)[k] / 127.5f - 1.0f);
    }
    ebmc_loader_free(m);
    ebmc_loader_free(l);
    free(out);
    ebmc_data_free(ds);
}

static void test_loader_drop_last_and_errors(void **state) {
    ebmc_dataset_t *ds = NULL, *pts = NULL;
    EXPECT_OK(ebmc_data_shapes(25, 8, 3, &ds, ERR, sizeof ERR));
    float out[10 * 3 * 64];
    ebmc_loader_t *l = make_loader(ds, 10, 1, true, false, true);
    assert_int_equal(ebmc_loader_batches_per_epoch(l), 2);
    for (int t = 0; t < 5; t++) {
        int n;
        int64_t e;
        EXPECT_OK(ebmc_loader_next(l, out, &n, &e));
        assert_int_equal(n, 10);
        assert_int_equal(e, t / 2);
    }
    ebmc_loader_free(l);
    l = make_loader(ds, 10, 1, true, false, false);
    assert_int_equal(ebmc_loader_batches_per_epoch(l), 3);
    for (int t = 0; t < 6; t++) {
        int n;
        int64_t e;
        memset(out, 0x7f, sizeof out);
        EXPECT_OK(ebmc_loader_next(l, out, &n, &e));
        assert_int_equal(n, t % 3 == 2 ? 5 : 10);
        assert_int_equal(e, t / 3);
        if (n == 5)
            for (size_t k = 5 * 3 * 64; k < 10 * 3 * 64; k++) assert_true(out[k] == 0.0f);
    }
    ebmc_loader_free(l);
    /* errors name the data set */
    ebmc_loader_t *x = NULL;
    ebmc_loader_opts o = {true, false, true};
    EXPECT_FAIL(ebmc_loader_create(ds, 26, 1, o, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes",
                "drop_last");
    EXPECT_FAIL(ebmc_loader_create(ds, 0, 1, o, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes",
                "batch");
    EXPECT_OK(ebmc_data_toy2d("gmm8", 30, 1, &pts, ERR, sizeof ERR));
    o.hflip = true;
    EXPECT_FAIL(ebmc_loader_create(pts, 10, 1, o, &x, ERR, sizeof ERR), x, EBMC_E_INVALID,
                "toy2d-gmm8", "hflip");
    ebmc_data_free(pts);
    ebmc_data_free(ds);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_shapes_max),
        cmocka_unit_test(test_shapes_sized),
        cmocka_unit_test(test_shapes_styled),
        cmocka_unit_test(test_toy2d),
        cmocka_unit_test(test_loader_epochs),
        cmocka_unit_test(test_loader_determinism_resume),
        cmocka_unit_test(test_loader_hflip),
        cmocka_unit_test(test_loader_drop_last_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
