/* The shortrun recipe (src/host/recipes/shortrun.c) end to end on the CPU:
 * - on a 2-D mixture of 8 Gaussians (configs/toy2d_shortrun.ini, 500 iterations), fresh chains
 *   from uniform noise reach every mode after training: every mode holds a share of the samples
 *   within 4 std of its centre far above what the untrained model's chains put there, and the
 *   nearest-mode shares are balanced;
 * - resume is exact: N iterations straight == N/2 + --resume + N/2, bit for bit;
 * - `ebmc sample` runs the recipe's test-time settings (sample.*) and --steps overrides them;
 * - a bad recipe value is a config error (exit 64) naming the key.
 * Set EBMC_CONFIGS to the configs/ folder (ctest does). */
#include "testutil.h"
#include "ebmc/data.h"
#include "ebmc/train.h"
#include "recipes/shortrun.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char TMP[256];
static char CFG[1024];

static int setup(void **state) {
    if (tu_tmpdir_create(TMP, sizeof TMP, "test_shortrun")) return -1;
    return tu_config_path(CFG, sizeof CFG, "toy2d_shortrun.ini");
}

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

/* n samples of the run's model (trained: its latest checkpoint; else the initial weights) at the
 * recipe's own test-time settings, through the recipe table as `ebmc sample` does */
static float *sample_run(const char *run_dir, bool load, int n, int steps) {
    const ebmc_recipe *rc = ebmc_recipe_find("shortrun");
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024], path[1024];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    assert_int_equal(ebmc_config_load(cfg, path, err, sizeof err), EBMC_OK);
    ebmc_run_t *run;
    if (ebmc_run_open(rc, cfg, false, &run, err, sizeof err)) fail_msg("%s", err);
    if (load) {
        char ck[1024];
        int64_t it;
        assert_true(ebmc_latest_checkpoint(run_dir, ck, sizeof ck) >= 0);
        if (ebmc_run_load(run, ck, &it, err, sizeof err)) fail_msg("%s", err);
    }
    float *out = tu_malloc((size_t)n * 2);
    ebmc_sample_opts o = {n, steps, -1, -1, 4242};
    char desc[256];
    if (rc->sample(ebmc_run_state(run), &o, &out, desc, sizeof desc, err, sizeof err)) fail_msg("%s", err);
    printf("  sampled: %s\n", desc);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return out;
}

/* per mode: the share of samples within `radius` of its centre */
static void near_shares(const float *x, int n, const float *c, int M, double radius, double *near, double *nearest) {
    for (int k = 0; k < M; k++) near[k] = nearest[k] = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bd = 1e30;
        for (int k = 0; k < M; k++) {
            double dx = x[2 * i] - c[2 * k], dy = x[2 * i + 1] - c[2 * k + 1], d = dx * dx + dy * dy;
            if (d < bd) bd = d, best = k;
        }
        nearest[best] += 1.0 / n;
        if (sqrt(bd) < radius) near[best] += 1.0 / n;
    }
}

static void test_shortrun_toy_reaches_every_mode(void **state) {
    char od[600], run[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    snprintf(run, sizeof run, "%s/toy", TMP);
    const char *args[] = {CFG, od, "run.name=toy", "log.quiet=true", "train.iterations=500"};
    assert_int_equal(tu_train(args, 5), 0);
    int n = 2000;
    float *tr = sample_run(run, true, n, -1), *un = sample_run(run, false, n, -1);
    ebmc_dataset_t *ds;
    char err[512];
    assert_int_equal(ebmc_data_toy2d("gmm8", 16, 1, &ds, err, sizeof err), EBMC_OK);
    const float *centres;
    float std;
    assert_int_equal(ebmc_toy2d_modes(ds, &centres, &std), 8);
    double near[8], nearest[8], near_u[8], nearest_u[8], tot = 0, tot_u = 0;
    near_shares(tr, n, centres, 8, 4 * std, near, nearest);
    near_shares(un, n, centres, 8, 4 * std, near_u, nearest_u);
    printf("  share within 4 std of each mode, trained:");
    for (int k = 0; k < 8; k++) printf(" %.3f", near[k]), tot += near[k];
    printf("\n  untrained:");
    for (int k = 0; k < 8; k++) printf(" %.3f", near_u[k]), tot_u += near_u[k];
    printf("\n  within 4 std of a mode: trained %.3f, untrained %.3f\n", tot, tot_u);
    /* Untrained chains stay close to U[-3,3]^2: a disc of radius 4 std = 0.2 holds
     * pi 0.2^2 / 36 = 0.35% of them per mode. Reaching a mode: at least 1% of the samples
     * within 4 std of it (> 5 standard errors above 0.35% at n = 2000: sqrt(0.0035/2000) =
     * 0.13%), for EVERY mode; and the nearest-mode shares balanced within 0.06 of 1/8 (about
     * 8 standard errors of a share at n = 2000). */
    for (int k = 0; k < 8; k++) {
        assert_true(near[k] >= 0.01);
        assert_true(fabs(nearest[k] - 0.125) < 0.06);
    }
    assert_true(tot > 4 * tot_u);
    free(tr);
    free(un);
    ebmc_data_free(ds);
}

static void test_shortrun_resume_is_exact(void **state) {
    const char *common[] = {"model.hidden=16", "train.batch_size=16", "langevin.steps=5", "log.quiet=true",
                            "log.ckpt_every=1000", "data.count=400"};
    const char *files[] = {"E.safetensors", "state.safetensors", NULL};
    tu_assert_resume_exact(CFG, TMP, "", common, 6, 30, 60, files);
    printf("  60 straight == 30 + resume + 30: weights, Adam state, chain counter identical\n");
}

/* --steps 0 returns the uniform start itself: inside [init_lo, init_hi]^2 and spread over it;
 * the default (sample.steps = 40) moves the points */
static void test_shortrun_sample_settings(void **state) {
    char od[600], run[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    snprintf(run, sizeof run, "%s/tiny", TMP);
    const char *args[] = {CFG, od, "run.name=tiny", "log.quiet=true", "train.iterations=2", "model.hidden=8"};
    assert_int_equal(tu_train(args, 6), 0);
    int n = 400;
    float *x0 = sample_run(run, true, n, 0), *xk = sample_run(run, true, n, -1);
    double m = 0, v = 0, moved = 0;
    for (int i = 0; i < 2 * n; i++) {
        assert_true(x0[i] >= -3 && x0[i] <= 3);
        m += x0[i] / (2.0 * n);
        v += x0[i] * x0[i] / (2.0 * n);
        moved += fabs(xk[i] - x0[i]);
    }
    /* U[-3,3]: mean 0 (se 1.73/sqrt(800) = 0.06), E x^2 = 3 (se ~0.1) */
    assert_true(fabs(m) < 0.3);
    assert_true(fabs(v - 3) < 0.5);
    assert_true(moved > 0);
    free(x0);
    free(xk);
}

static void test_shortrun_bad_config(void **state) {
    char od[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    const char *a1[] = {CFG, od, "run.name=bad1", "langevin.init_lo=2", "langevin.init_hi=1"};
    assert_int_equal(tu_train(a1, 5), EBMC_EXIT_CONFIG);
    const char *a2[] = {CFG, od, "run.name=bad2", "model.arch=dualmcmc_cifar10"};
    assert_int_equal(tu_train(a2, 4), EBMC_EXIT_CONFIG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shortrun_bad_config),
        cmocka_unit_test(test_shortrun_resume_is_exact),
        cmocka_unit_test(test_shortrun_sample_settings),
        cmocka_unit_test(test_shortrun_toy_reaches_every_mode),
    };
    return cmocka_run_group_tests_name("shortrun", tests, setup, teardown);
}
