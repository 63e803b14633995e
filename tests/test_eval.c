/* `ebmc eval` end to end: a tiny Dual-MCMC image run (2 iterations) evaluated with random
 * Inception weights (1 sample per array, 1 reference image: Inception costs ~1-2 s per image on
 * a CPU), the protocol JSON checked field by field; points evaluated on their coordinates:
 * statistics written as .npz and read back give the FID of the .npy they came from, a set
 * against itself has FID 0; missing weights, weights of another network and a missing reference
 * exit 65; weights without the logits layer (as scripts/get_inception.sh's) give FID and KID, IS
 * absent with its reason, and the protocol of an .npz and of an .npy reference names the
 * network, the weights and the images that went through it in each pass. */
#include "ebmc/inception.h"
#include "ebmc/image.h"
#include "ebmc/safetensors.h"
#include "ebmc/train.h"
#include "eval/eval_internal.h"
#include "eval/inception_internal.h"
#include "testutil.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char TMP[256], WEIGHTS[512], WEIGHTS_NOFC[512];

static int run_eval(const char *const *args, int n) {
    char *argv[32];
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
    return ebmc_eval_main(n, argv);
}

/* random FID-Inception weights (He-scaled convolutions, identity BatchNorm) in the converter's
 * layout, made from the network's own table */
static void write_random_weights(const char *path, bool fc) {
    ebmc_inception_t net = {0};
    inc_build_specs(&net);
    int nt = net.n_convs * 5 + 1, k = 0;
    ebmc_st_tensor *t = calloc((size_t)nt, sizeof *t);
    char (*names)[96] = calloc((size_t)nt, 96);
    float **bufs = calloc((size_t)nt, sizeof *bufs);
    tu_rng rng;
    tu_rng_seed(&rng, 99);
    static const char *const part[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < net.n_convs; i++) {
        const inc_conv_spec *s = &net.spec[i];
        size_t per = (size_t)s->cin * s->kh * s->kw;
        bufs[k] = malloc(per * s->cout * sizeof(float));
        tu_fill_normal(&rng, bufs[k], per * s->cout, (float)sqrt(2.0 / per));
        snprintf(names[k], 96, "%s.conv.weight", s->name);
        t[k] = (ebmc_st_tensor){names[k], EBMC_DT_F32, 4, {s->cout, s->cin, s->kh, s->kw}, bufs[k]}, k++;
        for (int p = 0; p < 4; p++) {
            bufs[k] = malloc(s->cout * sizeof(float));
            for (int c = 0; c < s->cout; c++) bufs[k][c] = (p == 0 || p == 3) ? 1.0f : 0.0f;
            snprintf(names[k], 96, "%s.bn.%s", s->name, part[p]);
            t[k] = (ebmc_st_tensor){names[k], EBMC_DT_F32, 1, {s->cout}, bufs[k]}, k++;
        }
    }
    if (fc) {
        bufs[k] = malloc((size_t)1008 * 2048 * sizeof(float));
        tu_fill_normal(&rng, bufs[k], (size_t)1008 * 2048, 0.02f);
        t[k] = (ebmc_st_tensor){"fc.weight", EBMC_DT_F32, 2, {1008, 2048}, bufs[k]}, k++;
    }
    const char *const meta[2][2] = {{"ebmc_inception", fc ? "random-test-weights" : "random-test-weights-no-fc"},
                                    {"source", "test_eval"}};
    char err[512];
    assert_int_equal(ebmc_st_write(path, t, k, meta, 2, err, sizeof err), EBMC_OK);
    for (int i = 0; i < k; i++) free(bufs[i]);
    free(bufs), free(names), free(t);
}

static int setup(void **state) {
    if (tu_tmpdir_create(TMP, sizeof TMP, "test_eval")) return -1;
    snprintf(WEIGHTS, sizeof WEIGHTS, "%s/inception.safetensors", TMP);
    write_random_weights(WEIGHTS, true);
    snprintf(WEIGHTS_NOFC, sizeof WEIGHTS_NOFC, "%s/inception_nofc.safetensors", TMP);
    write_random_weights(WEIGHTS_NOFC, false);
    unsetenv("EBMC_INCEPTION");
    setenv("XDG_CACHE_HOME", TMP, 1); /* no weights in the cache: this machine's ~/.cache is not read */
    return 0;
}

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

static cJSON *load_json(const char *path) {
    char *txt = tu_read_file(path, NULL);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    assert_non_null(j);
    return j;
}

static cJSON *at(cJSON *j, const char *a, const char *b) {
    cJSON *o = cJSON_GetObjectItem(j, a);
    if (o && b) o = cJSON_GetObjectItem(o, b);
    if (!o) fail_msg("protocol JSON lacks %s.%s", a, b ? b : "");
    return o;
}

static void test_eval_run_images(void **state) {
    char cfg[600], od[600];
    snprintf(cfg, sizeof cfg, "%s/configs/quickstart.ini", EBMC_SOURCE_DIR);
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    const char *tr[] = {cfg, od, "run.name=img", "train.iterations=2", "log.ckpt_every=2", "data.count=20",
                        "train.batch_size=10", "run.backend=cpu"};
    assert_int_equal(tu_train(tr, 8), EBMC_EXIT_OK);
    const char *run = tu_path(TMP, "img"), *js = tu_path(TMP, "img.json");
    const char *ev[] = {run, "--n", "1", "--n-ref", "1", "--batch", "1", "--splits", "1", "--weights", WEIGHTS,
                        "--backend", "cpu", "--out", js};
    assert_int_equal(run_eval(ev, 15), EBMC_EXIT_OK);
    cJSON *j = load_json(js);
    char sha[65], err[256];
    assert_int_equal(ebmc_sha256_file(WEIGHTS, sha, err, sizeof err), EBMC_OK);
    assert_string_equal(at(j, "inception", "weights_sha256")->valuestring, sha);
    assert_string_equal(at(j, "inception", "weights_kind")->valuestring, "random-test-weights");
    assert_int_equal(at(j, "samples", "n")->valueint, 1);
    assert_non_null(strstr(at(j, "samples", "sampler")->valuestring, "20 Langevin steps of size"));
    assert_int_equal(at(j, "samples", "seed")->valueint, 1235); /* run.seed + 1 */
    assert_int_equal(at(j, "iteration", NULL)->valueint, 2);
    assert_string_equal(at(j, "recipe", NULL)->valuestring, "dualmcmc");
    assert_string_equal(at(j, "backend", NULL)->valuestring, "cpu");
    assert_string_equal(at(j, "precision", NULL)->valuestring, "fp32");
    assert_int_equal(at(j, "reference", "n")->valueint, 1);
    assert_string_equal(at(j, "reference", "kind")->valuestring, "images");
    for (int k = 0; k < 2; k++) {
        cJSON *m = at(at(j, "metrics", NULL), k ? "revised" : "generator", NULL);
        double fid = at(m, "fid", NULL)->valuedouble, is = at(m, "is_mean", NULL)->valuedouble;
        printf("%s: FID %g, IS %g (1 image per split: exactly 1)\n", k ? "revised" : "generator", fid, is);
        assert_true(isfinite(fid) && fid > 0);
        assert_true(fabs(is - 1.0) <= 1e-12);
        assert_null(cJSON_GetObjectItem(m, "kid_mean")); /* KID needs 2 rows */
    }
    cJSON_Delete(j);
    /* no weights: 65 with the download hint (stderr); other weights: 65 */
    const char *nw[] = {run, "--n", "1", "--n-ref", "1", "--backend", "cpu", "--out", js};
    assert_int_equal(run_eval(nw, 9), EBMC_EXIT_DATA);
    const char *bad = tu_path(TMP, "img/checkpoints/iter_00000002/E.safetensors");
    const char *bw[] = {run, "--n", "1", "--n-ref", "1", "--backend", "cpu", "--weights", bad, "--out", js};
    assert_int_equal(run_eval(bw, 11), EBMC_EXIT_DATA);
}

static void write_points(const char *path, int n, int d, double shift, unsigned seed) {
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    float *x = malloc(sizeof(float) * n * d);
    tu_fill_normal(&rng, x, (size_t)n * d, 1.0f);
    for (int i = 0; i < n * d; i++) x[i] = (float)(x[i] * (1 + i % d) + shift);
    int64_t shape[2] = {n, d};
    char err[256];
    assert_int_equal(ebmc_save_npy_f32(path, x, 2, shape, err, sizeof err), EBMC_OK);
    free(x);
}

static double fid_in(const char *json, const char *arr, bool *has_kid) {
    cJSON *j = load_json(json), *m = at(at(j, "metrics", NULL), arr, NULL);
    double f = at(m, "fid", NULL)->valuedouble;
    if (has_kid) *has_kid = cJSON_GetObjectItem(m, "kid_mean") != NULL;
    cJSON_Delete(j);
    return f;
}

static void test_eval_points_npz(void **state) {
    const char *a = tu_path(TMP, "a.npy"), *b = tu_path(TMP, "b.npy"), *bz = tu_path(TMP, "b.npz");
    write_points(a, 60, 3, 0.5, 1);
    write_points(b, 50, 3, 0.0, 2);
    const char *st[] = {"--stats", b, "--out", bz};
    assert_int_equal(run_eval(st, 4), EBMC_EXIT_OK);
    const char *j1 = tu_path(TMP, "j1.json"), *j2 = tu_path(TMP, "j2.json"), *j3 = tu_path(TMP, "j3.json");
    const char *e1[] = {"--npy", a, "--ref", bz, "--out", j1}, *e2[] = {"--npy", a, "--ref", b, "--out", j2};
    const char *e3[] = {"--npy", b, "--ref", b, "--out", j3};
    assert_int_equal(run_eval(e1, 6), EBMC_EXIT_OK);
    assert_int_equal(run_eval(e2, 6), EBMC_EXIT_OK);
    assert_int_equal(run_eval(e3, 6), EBMC_EXIT_OK);
    bool k1, k2;
    double f1 = fid_in(j1, "npy", &k1), f2 = fid_in(j2, "npy", &k2), f3 = fid_in(j3, "npy", NULL);
    printf("points: FID via .npz %.15g, via .npy %.15g, a set against itself %.3g\n", f1, f2, f3);
    assert_true(fabs(f1 - f2) <= 1e-12 * f2); /* the .npz holds float64 mu and sigma exactly */
    assert_true(!k1 && k2);                    /* KID needs reference features, not statistics */
    assert_true(fabs(f3) <= 1e-10);            /* identical statistics: 0 up to the eigensolver */
    const char *e4[] = {"--npy", a, "--ref", tu_path(TMP, "missing.npz"), "--out", j1};
    assert_int_equal(run_eval(e4, 6), EBMC_EXIT_DATA);
    const char *e5[] = {"--npy", a, "--out", j1}; /* no reference */
    assert_int_equal(run_eval(e5, 4), EBMC_EXIT_CONFIG);
}

static void write_images(const char *path, int n, unsigned seed) {
    float *x = malloc(sizeof(float) * n * 3 * 8 * 8);
    for (int i = 0; i < n * 3 * 8 * 8; i++) x[i] = (float)((i * 37u + seed * 101u) % 251u) / 125.0f - 1.0f;
    char err[256];
    assert_int_equal(ebmc_save_npy_u8(path, x, n, 3, 8, 8, -1.0f, 1.0f, err, sizeof err), EBMC_OK);
    free(x);
}

/* the protocol's inception section: what ran, pass by pass */
static void check_inception(cJSON *j, const char *weights, int ref_images, int sample_images) {
    char sha[65], err[256];
    assert_int_equal(ebmc_sha256_file(weights, sha, err, sizeof err), EBMC_OK);
    cJSON *inc = at(j, "inception", NULL);
    assert_non_null(strstr(at(inc, "network", NULL)->valuestring, "pool3 2048-d"));
    assert_string_equal(at(inc, "weights_sha256", NULL)->valuestring, sha);
    assert_string_equal(at(inc, "weights", NULL)->valuestring, weights);
    assert_string_equal(at(inc, "weights_kind", NULL)->valuestring, "random-test-weights-no-fc");
    assert_string_equal(at(inc, "weights_source", NULL)->valuestring, "test_eval");
    assert_true(cJSON_IsFalse(at(inc, "logits", NULL)));
    assert_int_equal(at(at(inc, "reference", NULL), "images", NULL)->valueint, ref_images);
    assert_int_equal(at(at(inc, "samples", NULL), "images", NULL)->valueint, sample_images);
    assert_int_equal(at(at(inc, "all", NULL), "images", NULL)->valueint, ref_images + sample_images);
    assert_true(at(at(inc, "samples", NULL), "images_per_s", NULL)->valuedouble > 0);
    assert_true((at(at(inc, "reference", NULL), "images_per_s", NULL)->valuedouble > 0) == (ref_images > 0));
}

static void test_eval_no_logits(void **state) {
    const char *a = tu_path(TMP, "ia.npy"), *b = tu_path(TMP, "ib.npy"), *bz = tu_path(TMP, "ib.npz");
    write_images(a, 2, 1);
    write_images(b, 2, 2);
    const char *st[] = {"--stats", b, "--out", bz, "--weights", WEIGHTS_NOFC, "--backend", "cpu"};
    assert_int_equal(run_eval(st, 8), EBMC_EXIT_OK);
    const char *jz = tu_path(TMP, "iz.json"), *jy = tu_path(TMP, "iy.json");
    const char *ez[] = {"--npy", a, "--ref", bz, "--out", jz, "--weights", WEIGHTS_NOFC, "--backend", "cpu",
                        "--splits", "1"};
    const char *ey[] = {"--npy", a, "--ref", b, "--out", jy, "--weights", WEIGHTS_NOFC, "--backend", "cpu",
                        "--splits", "1"};
    assert_int_equal(run_eval(ez, 12), EBMC_EXIT_OK);
    assert_int_equal(run_eval(ey, 12), EBMC_EXIT_OK);
    for (int k = 0; k < 2; k++) {
        cJSON *j = load_json(k ? jy : jz), *m = at(at(j, "metrics", NULL), "npy", NULL);
        check_inception(j, WEIGHTS_NOFC, k ? 2 : 0, 2); /* an .npz: statistics read, no reference images */
        printf("%s reference: FID %g, IS %s\n", k ? ".npy" : ".npz", at(m, "fid", NULL)->valuedouble,
               at(m, "is", NULL)->valuestring);
        assert_true(isfinite(at(m, "fid", NULL)->valuedouble));
        assert_non_null(strstr(at(m, "is", NULL)->valuestring, "no logits layer"));
        assert_null(cJSON_GetObjectItem(m, "is_mean"));
        assert_true((cJSON_GetObjectItem(m, "kid_mean") != NULL) == (k == 1)); /* KID: reference features */
        cJSON_Delete(j);
    }
    /* a zip (a .pth or TorchScript .pt) given as weights: 65, the conversion hint */
    const char *zp = tu_path(TMP, "w.pth");
    FILE *f = fopen(zp, "wb");
    assert_non_null(f);
    fputs("PK\003\004 and then some bytes of a zip archive", f);
    fclose(f);
    const char *ew[] = {"--npy", a, "--ref", b, "--out", jy, "--weights", zp, "--backend", "cpu"};
    assert_int_equal(run_eval(ew, 10), EBMC_EXIT_DATA);
    /* the cache is used when neither flag nor variable names weights */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/ebmc", TMP);
    assert_int_equal(ebmc_mkdir_p(dir), 0);
    const char *cached = tu_path(TMP, "ebmc/" EBMC_INCEPTION_CACHE_NAME);
    assert_int_equal(rename(WEIGHTS_NOFC, cached), 0);
    const char *ec[] = {"--npy", a, "--ref", bz, "--out", jz, "--backend", "cpu"};
    assert_int_equal(run_eval(ec, 8), EBMC_EXIT_OK);
    cJSON *j = load_json(jz);
    assert_string_equal(at(j, "inception", "weights")->valuestring, cached);
    cJSON_Delete(j);
    assert_int_equal(rename(cached, WEIGHTS_NOFC), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_points_npz),
        cmocka_unit_test(test_eval_no_logits),
        cmocka_unit_test(test_eval_run_images),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
