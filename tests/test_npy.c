/* .npy data sets (data.dataset = npy): uint8 NHWC images and float32 (N,D) points round-trip
 * through the writers of `ebmc sample`/`ebmc data` and ebmc_data_npy; every malformed file
 * (magic, version, header, dtype, byte order, order, shape, truncation, trailing bytes, NaN) is
 * refused with its own message, and `ebmc train` exits 65 on it; a recipe trains on a .npy of
 * points; .npz members round-trip (stored, float64). */
#include "ebmc/data.h"
#include "ebmc/image.h"
#include "ebmc/npy.h"
#include "ebmc/train.h"
#include "fixtures/recipe_mle2d.h"
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mle2d_fixture FX;

static int setup(void **state) { return mle2d_fixture_setup(&FX, "test_npy", 4); }
static int teardown(void **state) {
    tu_tmpdir_remove(FX.tmp);
    return 0;
}

static void write_bytes(const char *path, const void *a, size_t na, const void *b, size_t nb) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(a, 1, na, f), na);
    if (nb) assert_int_equal(fwrite(b, 1, nb, f), nb);
    fclose(f);
}

static void test_npy_roundtrip_images(void **state) {
    const int N = 3, C = 3, H = 4, W = 5, per = C * H * W;
    float img[3 * 60];
    for (int i = 0; i < N * per; i++) img[i] = (float)((i * 37) % 256) / 255.0f; /* exact bytes */
    const char *p = tu_path(FX.tmp, "img.npy");
    char err[512];
    assert_int_equal(ebmc_save_npy_u8(p, img, N, C, H, W, 0.0f, 1.0f, err, sizeof err), EBMC_OK);
    ebmc_dataset_t *ds;
    assert_int_equal(ebmc_data_npy(p, &ds, err, sizeof err), EBMC_OK);
    int c, h, w;
    ebmc_data_shape(ds, &c, &h, &w);
    assert_int_equal(ebmc_data_count(ds), N);
    assert_true(c == C && h == H && w == W && ebmc_data_kind_of(ds) == EBMC_DATA_U8_IMAGES);
    for (int i = 0; i < N * per; i++) assert_int_equal(ebmc_data_u8(ds)[i], (i * 37) % 256);
    ebmc_data_free(ds);
    /* grey (N,H,W) */
    int64_t shape[3] = {2, 3, 2};
    char hdr[256];
    size_t hn = ebmc_npy_header(hdr, sizeof hdr, "|u1", 3, shape);
    uint8_t px[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
    write_bytes(p, hdr, hn, px, 12);
    assert_int_equal(ebmc_data_npy(p, &ds, err, sizeof err), EBMC_OK);
    ebmc_data_shape(ds, &c, &h, &w);
    assert_true(c == 1 && h == 3 && w == 2 && !memcmp(ebmc_data_u8(ds), px, 12));
    ebmc_data_free(ds);
}

static void test_npy_roundtrip_points(void **state) {
    const int N = 7, D = 5;
    float pts[35];
    for (int i = 0; i < N * D; i++) pts[i] = (float)sin(i * 1.7) * 3.0f;
    int64_t shape[2] = {N, D};
    const char *p = tu_path(FX.tmp, "pts.npy");
    char err[512];
    assert_int_equal(ebmc_save_npy_f32(p, pts, 2, shape, err, sizeof err), EBMC_OK);
    ebmc_dataset_t *ds;
    assert_int_equal(ebmc_data_npy(p, &ds, err, sizeof err), EBMC_OK);
    int c, h, w;
    ebmc_data_shape(ds, &c, &h, &w);
    assert_true(ebmc_data_count(ds) == N && c == D && h == 1 && w == 1);
    assert_int_equal(ebmc_data_kind_of(ds), EBMC_DATA_F32_POINTS);
    assert_memory_equal(ebmc_data_f32(ds), pts, sizeof pts);
    ebmc_data_free(ds);
}

/* A file of a header for (descr, shape) followed by `data` bytes of payload, opened by
 * ebmc_data_npy: must fail with EBMC_E_IO and a message containing `want`. */
static void expect_bad(const char *name, const char *hdr, size_t hn, size_t data, const char *want) {
    const char *p = tu_path(FX.tmp, "%s.npy", name);
    uint8_t *payload = calloc(data ? data : 1, 1);
    write_bytes(p, hdr, hn, payload, data);
    free(payload);
    char err[512] = "";
    ebmc_dataset_t *ds = (ebmc_dataset_t *)1;
    ebmc_status s = ebmc_data_npy(p, &ds, err, sizeof err);
    printf("  %-10s -> %s\n", name, err);
    assert_int_equal(s, EBMC_E_IO);
    assert_null(ds);
    assert_non_null(strstr(err, p)); /* the message names the file */
    if (!strstr(err, want)) fail_msg("%s: message '%s' lacks '%s'", name, err, want);
}

/* a version 1.0 .npy header around the dict text d (padded to 64 bytes, newline-terminated) */
static size_t raw_header(char *out, const char *d) {
    size_t len = strlen(d), total = (10 + len + 1 + 63) / 64 * 64, hl = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)(hl & 0xff), out[9] = (char)(hl >> 8);
    memset(out + 10, ' ', hl);
    memcpy(out + 10, d, len);
    out[total - 1] = '\n';
    return total;
}

static void test_npy_malformed(void **state) {
    char h[256];
    int64_t s4[4] = {2, 4, 4, 3}, s2[2] = {3, 2};
    size_t n = ebmc_npy_header(h, sizeof h, "|u1", 4, s4);
    expect_bad("truncated", h, n, 95, "truncated");
    expect_bad("trailing", h, n, 97, "trailing bytes");
    expect_bad("empty", h, 0, 0, "not a .npy file");
    char m[256];
    memcpy(m, h, n), m[1] = 'X';
    expect_bad("magic", m, n, 96, "not a .npy file");
    memcpy(m, h, n), m[6] = 9;
    expect_bad("version", m, n, 96, "version 9.0");
    expect_bad("short_hdr", h, 40, 0, "truncated .npy header");
    memcpy(m, h, n), m[n - 1] = ' ';
    expect_bad("no_newline", m, n, 96, "malformed .npy header");
    n = ebmc_npy_header(h, sizeof h, ">f4", 2, s2);
    expect_bad("bigendian", h, n, 24, "big-endian");
    n = ebmc_npy_header(h, sizeof h, "<i8", 2, s2);
    expect_bad("int64", h, n, 48, "dtype '<i8' is not supported");
    n = ebmc_npy_header(h, sizeof h, "<f4", 2, s2);
    memcpy(m, h, n), m[n] = 0;
    char *fo = strstr(m + 10, "False"); /* after the binary length field */
    assert_non_null(fo);
    memcpy(fo, "True ", 5);
    expect_bad("fortran", m, n, 24, "Fortran");
    int64_t s5[4] = {2, 4, 4, 2};
    n = ebmc_npy_header(h, sizeof h, "|u1", 4, s5);
    expect_bad("channels2", h, n, 64, "neither uint8 images");
    n = ebmc_npy_header(h, sizeof h, "<f4", 4, s4);
    expect_bad("f32images", h, n, 384, "float32 array of shape (2, 4, 4, 3)");
    int64_t s0[2] = {0, 2};
    n = ebmc_npy_header(h, sizeof h, "<f4", 2, s0);
    expect_bad("zero_rows", h, n, 0, "N >= 1");
    /* headers numpy refuses (issue 23, 13): read strictly as a dict literal */
    n = raw_header(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ");
    expect_bad("no_brace", h, n, 8, "malformed .npy header: expected a quoted string");
    n = raw_header(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000 2), }");
    expect_bad("no_comma", h, n, 8000, "'shape' needs commas");
    n = raw_header(h, "{'x': \"'descr': '<f4'\", 'fortran_order': False, 'shape': (2,), }");
    expect_bad("descr_in", h, n, 8, "a key other than");
    n = raw_header(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }");
    expect_bad("not_tuple", h, n, 8, "is not a tuple");
    n = raw_header(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x");
    expect_bad("after", h, n, 8, "text after the closing");
    n = raw_header(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }"); /* still read */
    write_bytes(tu_path(FX.tmp, "ok.npy"), h, n, "\0\0\0\0\0\0\0\0", 8);
    char e0[512];
    ebmc_dataset_t *d0;
    assert_int_equal(ebmc_data_npy(tu_path(FX.tmp, "ok.npy"), &d0, e0, sizeof e0), EBMC_OK);
    ebmc_data_free(d0);
    /* a uint8 image wider than the 4096 the loader takes: the limit is named */
    int64_t wide[4] = {1, 1, 5000, 3};
    n = ebmc_npy_header(h, sizeof h, "|u1", 4, wide);
    expect_bad("wide", h, n, 15000, "at most 4096");
    /* a NaN point */
    n = ebmc_npy_header(h, sizeof h, "<f4", 2, s2);
    float pts[6] = {0, 1, 2, NAN, 4, 5};
    const char *p = tu_path(FX.tmp, "nan.npy");
    write_bytes(p, h, n, pts, sizeof pts);
    char err[512];
    ebmc_dataset_t *ds;
    assert_int_equal(ebmc_data_npy(p, &ds, err, sizeof err), EBMC_E_IO);
    assert_non_null(strstr(err, "point 1, coordinate 1 is NaN"));
    assert_int_equal(ebmc_data_npy(tu_path(FX.tmp, "missing.npy"), &ds, err, sizeof err), EBMC_E_IO);
    assert_non_null(strstr(err, "cannot open"));
}

/* `ebmc train` on data.dataset = npy: a recipe trains on (N,2) points; a malformed file or one
 * exits 65 (data) before training; no path is a config error. */
static void test_npy_train_exit_codes(void **state) {
    float pts[600];
    for (int i = 0; i < 600; i++) pts[i] = (float)cos(i * 0.37);
    int64_t shape[2] = {200, 2};
    const char *good = tu_path(FX.tmp, "train.npy");
    char err[512], dpath[700];
    assert_int_equal(ebmc_save_npy_f32(good, pts, 2, shape, err, sizeof err), EBMC_OK);
    snprintf(dpath, sizeof dpath, "data.path=%s", good);
    const char *a[] = {FX.cfg, FX.od, "run.name=npy", "data.dataset=npy", dpath};
    assert_int_equal(tu_train(a, 5), EBMC_EXIT_OK);
    char runcfg[800];
    snprintf(runcfg, sizeof runcfg, "%s/npy/config.ini", FX.tmp);
    char *txt = tu_read_file(runcfg, NULL);
    assert_non_null(strstr(txt, "dataset = npy"));
    free(txt);
    write_bytes(good, "\x93NUMPY\x01\x00\x10\x00{'descr'", 17, NULL, 0);
    const char *c[] = {FX.cfg, FX.od, "run.name=npybad", "data.dataset=npy", dpath};
    assert_int_equal(tu_train(c, 5), EBMC_EXIT_DATA);
    const char *d[] = {FX.cfg, FX.od, "run.name=npynopath", "data.dataset=npy"};
    assert_int_equal(tu_train(d, 4), EBMC_EXIT_CONFIG);
}

/* .npz: two float64 members written stored and read back exactly; a missing member and a
 * damaged archive are refused with their messages. (numpy reads the file: tests/oracle/
 * test_fid_numpy.py.) */
static void test_npz_roundtrip(void **state) {
    double mu[3] = {1.5, -2.25, 1e-300}, sigma[6] = {1, 2, 3, 4, 5, 6.125};
    const char *names[2] = {"mu", "sigma"};
    int nd[2] = {1, 2};
    int64_t shapes[2][4] = {{3}, {2, 3}};
    const double *data[2] = {mu, sigma};
    const char *p = tu_path(FX.tmp, "stats.npz");
    char err[512];
    assert_int_equal(ebmc_npz_write_f64(p, 2, names, nd, shapes, data, err, sizeof err), EBMC_OK);
    ebmc_npy_info in;
    double *got;
    assert_int_equal(ebmc_npz_read_f64(p, "sigma", &in, &got, err, sizeof err), EBMC_OK);
    assert_true(in.ndim == 2 && in.shape[0] == 2 && in.shape[1] == 3);
    assert_memory_equal(got, sigma, sizeof sigma);
    free(got);
    assert_int_equal(ebmc_npz_read_f64(p, "mu", &in, &got, err, sizeof err), EBMC_OK);
    assert_memory_equal(got, mu, sizeof mu);
    free(got);
    assert_int_equal(ebmc_npz_read_f64(p, "feats", &in, &got, err, sizeof err), EBMC_E_IO);
    assert_non_null(strstr(err, "has no array 'feats'"));
    size_t n;
    char *z = tu_read_file(p, &n);
    z[n - 22 - (46 + 6) - (46 + 9) - 1] ^= 0x55; /* sigma's last data byte: the CRC no longer matches */
    write_bytes(p, z, n, NULL, 0);
    free(z);
    assert_int_equal(ebmc_npz_read_f64(p, "sigma", &in, &got, err, sizeof err), EBMC_E_IO);
    assert_non_null(strstr(err, "damaged member"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_roundtrip_images),
        cmocka_unit_test(test_npy_roundtrip_points),
        cmocka_unit_test(test_npy_malformed),
        cmocka_unit_test(test_npy_train_exit_codes),
        cmocka_unit_test(test_npz_roundtrip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
