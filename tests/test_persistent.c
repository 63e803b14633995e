/* The persistent recipe (src/host/recipes/persistent.c) end to end on the CPU:
 * - on a 2-D mixture of 8 Gaussians (configs/toy2d_persistent.ini, 600 iterations) the replay
 *   buffer's samples cover every mode (each mode holds a share of the buffer within 4 std of its
 *   centre far above what uniform noise puts there; nearest-mode shares balanced), and with the
 *   L2 energy regulariser the energies stay bounded;
 * - resume is exact, the replay buffer (uint8 storage, fill count, next slot) included;
 * - the buffer stores uint8 and dequantises: every entry read back lies within one quantisation
 *   bin of what was pushed; with IGEBM's 255 levels the stored byte is floor(255 (x-lo)/(hi-lo));
 * - bad values are config errors (exit 64).
 * Set EBMC_CONFIGS to the configs/ folder (ctest does). */
#include "testutil.h"
#include "ebmc/data.h"
#include "ebmc/train.h"
#include "recipes/persistent.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char TMP[256];
static char CFG[1024];

static int setup(void **state) {
    if (tu_tmpdir_create(TMP, sizeof TMP, "test_persistent")) return -1;
    return tu_config_path(CFG, sizeof CFG, "toy2d_persistent.ini");
}

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

/* the run's latest checkpoint: n fresh samples and n buffer entries (as `ebmc sample`) */
static void sample_run(const char *run_dir, int n, float **fresh, float **buf) {
    const ebmc_recipe *rc = ebmc_recipe_find("persistent");
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024], path[1024], ck[1024];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    assert_int_equal(ebmc_config_load(cfg, path, err, sizeof err), EBMC_OK);
    ebmc_run_t *run;
    if (ebmc_run_open(rc, cfg, false, &run, err, sizeof err)) fail_msg("%s", err);
    int64_t it;
    assert_true(ebmc_latest_checkpoint(run_dir, ck, sizeof ck) >= 0);
    if (ebmc_run_load(run, ck, &it, err, sizeof err)) fail_msg("%s", err);
    float *outs[2] = {tu_malloc((size_t)n * 2), tu_malloc((size_t)n * 2)};
    ebmc_sample_opts o = {n, -1, -1, -1, 4242};
    char desc[256];
    if (rc->sample(ebmc_run_state(run), &o, outs, desc, sizeof desc, err, sizeof err)) fail_msg("%s", err);
    printf("  sampled: %s\n", desc);
    *fresh = outs[0];
    *buf = outs[1];
    ebmc_run_free(run);
    ebmc_config_free(cfg);
}

static void near_shares(const float *x, int n, const float *c, double radius, double *near, double *nearest) {
    for (int k = 0; k < 8; k++) near[k] = nearest[k] = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bd = 1e30;
        for (int k = 0; k < 8; k++) {
            double dx = x[2 * i] - c[2 * k], dy = x[2 * i + 1] - c[2 * k + 1], d = dx * dx + dy * dy;
            if (d < bd) bd = d, best = k;
        }
        nearest[best] += 1.0 / n;
        if (sqrt(bd) < radius) near[best] += 1.0 / n;
    }
}

/* reads "key":value of a metrics line */
static double field(const char *line, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    if (!p) fail_msg("metrics line without %s", key);
    return atof(p + strlen(k));
}

static void test_persistent_toy_buffer_covers_modes(void **state) {
    char od[600], run[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    snprintf(run, sizeof run, "%s/toy", TMP);
    const char *args[] = {CFG, od, "run.name=toy", "log.quiet=true"};
    assert_int_equal(tu_train(args, 4), 0);
    int n = 2000;
    float *fresh, *buf;
    sample_run(run, n, &fresh, &buf);
    ebmc_dataset_t *ds;
    char err[512];
    assert_int_equal(ebmc_data_toy2d("gmm8", 16, 1, &ds, err, sizeof err), EBMC_OK);
    const float *centres;
    float std;
    assert_int_equal(ebmc_toy2d_modes(ds, &centres, &std), 8);
    double near[8], nearest[8], tot = 0;
    near_shares(buf, n, centres, 4 * std, near, nearest);
    printf("  buffer: share within 4 std of each mode:");
    for (int k = 0; k < 8; k++) printf(" %.3f", near[k]), tot += near[k];
    printf(" (all: %.3f)\n  nearest-mode shares:", tot);
    for (int k = 0; k < 8; k++) printf(" %.3f", nearest[k]);
    printf("\n");
    /* Uniform noise on [-3,3]^2 puts pi 0.2^2 / 36 = 0.35% within 4 std = 0.2 of a mode. Covered:
     * >= 1% of the buffer within 4 std of EVERY mode (> 5 standard errors above 0.35% at
     * n = 2000), nearest-mode shares within 0.06 of 1/8 (about 8 standard errors) */
    for (int k = 0; k < 8; k++) {
        assert_true(near[k] >= 0.01);
        assert_true(fabs(nearest[k] - 0.125) < 0.06);
    }
    /* Energies bounded: the loss is gap + l2 (mean E+^2 + mean E-^2) with l2 = 1, and
     * Adam on the energy's level (the last layer's bias sees only the regulariser's gradient
     * 2 l2 (mean E+ + mean E-): the contrastive part cancels) holds mean E+ + mean E- at 0. We
     * assert |mean E| <= 0.25 at every iteration (e_sq <= 2 * 0.25^2) and |mean E+ + mean E-|
     * <= 0.02 averaged over the last 100 iterations. */
    char path[800];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    char *text = tu_read_file(path, NULL), *save = NULL;
    double level = 0, worst = 0;
    int lines = 0;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save), lines++) {
        double ep = field(l, "e_data"), en = field(l, "e_samples");
        worst = fmax(worst, fmax(fabs(ep), fabs(en)));
        if (lines >= 500) level += (ep + en) / 100;
    }
    printf("  energies: max |mean E| %.4f over %d iterations; mean E+ + mean E- (last 100) %.5f\n", worst, lines, level);
    assert_int_equal(lines, 600);
    assert_true(worst <= 0.25);
    assert_true(fabs(level) <= 0.02);
    free(text);
    free(fresh);
    free(buf);
    ebmc_data_free(ds);
}

static void test_persistent_resume_is_exact(void **state) {
    /* buffer of 50 entries, batch 16: full after 4 iterations, wrapped several times by 40 */
    const char *common[] = {"model.hidden=16", "train.batch_size=16", "langevin.steps=5", "log.quiet=true",
                            "log.ckpt_every=1000", "data.count=400", "buffer.size=50"};
    const char *files[] = {"E.safetensors", "state.safetensors", NULL};
    tu_assert_resume_exact(CFG, TMP, "", common, 7, 19, 40, files);
    printf("  40 straight == 19 + resume + 21: weights, Adam state, chain counter, buffer identical\n");
}

/* the uint8 round trip of the buffer: entries read back (reuse probability 1) lie in the bin
 * [lo + q w, lo + (q+1) w), w = (hi - lo)/256, of the value pushed */
static void test_persistent_buffer_uint8(void **state) {
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    ebmc_replay_t *r;
    int n = 64, E = 3;
    assert_int_equal(ebmc_replay_create(ctx, n, (size_t)E, true, -3.0f, 3.0f, 1.0f, 1, &r), EBMC_OK);
    float *x = tu_malloc((size_t)n * E), *y = tu_malloc((size_t)n * E);
    for (int i = 0; i < n * E; i++) x[i] = -3.2f + 6.4f * (float)i / (float)(n * E); /* some outside */
    assert_int_equal(ebmc_replay_push(r, x, n), EBMC_OK);
    assert_int_equal(ebmc_replay_count(r), n);
    const uint8_t *q = ebmc_replay_storage(r);
    double w = 6.0 / 256;
    for (int i = 0; i < n * E; i++) {
        double c = fmin(fmax(x[i], -3.0), 3.0 - 1e-6);
        assert_int_equal(q[i], (int)floor((c + 3.0) / w));
    }
    ebmc_rng_key k = {7, 2, NULL, 1};
    assert_int_equal(ebmc_replay_sample(r, y, n, k), EBMC_OK);
    /* every read-back is a whole entry: find it by its bins */
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < n && !found; j++) {
            int ok = 1;
            for (int e = 0; e < E; e++) {
                double lo = -3.0 + q[j * E + e] * w;
                ok &= y[i * E + e] >= lo - 1e-6 && y[i * E + e] <= lo + w + 1e-6;
            }
            found = ok;
        }
        assert_true(found);
    }
    /* IGEBM's compress_x_mod: 255 levels, q = floor(255 (x - lo)/(hi - lo)) */
    ebmc_replay_set_push_levels(r, 255.0f);
    assert_int_equal(ebmc_replay_push(r, x, n), EBMC_OK);
    for (int i = 0; i < n * E; i++) {
        double c = fmin(fmax(x[i], -3.0), 3.0);
        int want = (int)fmin(floor((c + 3.0) / 6.0 * 255.0), 255.0);
        if (fabs((c + 3.0) / 6.0 * 255.0 - floor((c + 3.0) / 6.0 * 255.0 + 0.5)) > 1e-4) /* off a float tie */
            assert_int_equal(q[i], want);
    }
    free(x);
    free(y);
    ebmc_replay_free(r);
    ebmc_ctx_free(ctx);
}

static void test_persistent_bad_config(void **state) {
    char od[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    const char *a1[] = {CFG, od, "run.name=bad1", "langevin.lo=1", "langevin.hi=1"};
    assert_int_equal(tu_train(a1, 5), EBMC_EXIT_CONFIG);
    const char *a2[] = {CFG, od, "run.name=bad2", "buffer.reinit=1.5"};
    assert_int_equal(tu_train(a2, 4), EBMC_EXIT_CONFIG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_persistent_bad_config),
        cmocka_unit_test(test_persistent_buffer_uint8),
        cmocka_unit_test(test_persistent_resume_is_exact),
        cmocka_unit_test(test_persistent_toy_buffer_covers_modes),
    };
    return cmocka_run_group_tests_name("persistent", tests, setup, teardown);
}
