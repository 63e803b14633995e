/* The jarzynski recipe through `ebmc train` on the CPU (configs/gmm50_*.ini, reduced):
 * - the headline experiment of Carbone et al. (specs/particles.md T5) at d = 10, 2000 teacher
 *   points, 2000 walkers, 3000 iterations: the learned mass of the mode at -10 (truth 0.25,
 *   averaged over the last 1000 iterations) is within 0.05 of 0.25 with Jarzynski weights, has
 *   collapsed below 0.1 and is still falling with PCD, and stays within 0.1 of its initial 0.5
 *   with CD; the Jarzynski cross-entropy estimate is within 0.2 of the exact one (exact log Z);
 * - the analytic model: dU/dtheta of gmm_eval/gmm_pgrad against central finite differences of
 *   U in double, and the exact log Z against a Monte-Carlo estimate;
 * - resume is exact: N iterations straight == N/2 + --resume + N/2, bit for bit (the mixture,
 *   walkers, float64 log-weights, statistics, counters and every logged metric), with weights
 *   and resampling (Jarzynski) and with resets to data (CD);
 * - the image path (CIFAR-10 config's net on procedural images; MNIST 2/3/6 with EBMC_DATA):
 *   iterations, grids and bit-exact resume;
 * - jarzynski.trigger: start and after each follow their rule at every iteration (and break the
 *   other one), from the logged ESS/N and resampling count;
 * - bad configs: an unknown switch value, a data dimension that is not the model's, a malformed
 *   data.classes.
 * Set EBMC_CONFIGS to the configs/ folder (ctest does). */
#include "ebmc/gmm.h"
#include "ebmc/train.h"
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char TMP[256], CFG[3][1024];
static const char *METHOD[3] = {"jarzynski", "pcd", "cd"};

static int setup(void **state) {
    if (tu_tmpdir_create(TMP, sizeof TMP, "test_jarzynski_gmm")) return -1;
    const char *dir = getenv("EBMC_CONFIGS");
    for (int m = 0; m < 3; m++) {
        snprintf(CFG[m], sizeof CFG[m], "%s/gmm50_%s.ini", dir ? dir : "configs", METHOD[m]);
        if (access(CFG[m], R_OK)) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

/* the value of "key": in one metrics line (NAN when absent or null) */
static double field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

typedef struct {
    double mass_window, mass_mid, ce_est, ce_exact;
} run_summary;

/* mean of mass_low over iterations (from, to], the last line's CE values */
static run_summary summarise(const char *run, int from, int to, int mid) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", TMP, run);
    char *text = tu_read_file(path, NULL), *save = NULL;
    run_summary s = {0};
    int it = 0, n = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        it = (int)field(line, "iter");
        double p = field(line, "mass_low");
        if (it > from && it <= to) s.mass_window += p, n++;
        if (it == mid) s.mass_mid = p;
        s.ce_est = field(line, "ce_est"), s.ce_exact = field(line, "ce_exact");
    }
    free(text);
    assert_int_equal(it, to);
    s.mass_window /= n;
    return s;
}

static void test_headline_reduced(void **state) {
    char od[600], name[64];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    run_summary r[3];
    for (int m = 0; m < 3; m++) {
        snprintf(name, sizeof name, "run.name=%s", METHOD[m]);
        const char *a[] = {CFG[m], od, name, "data.dim=10", "model.dim=10", "data.count=2000",
                           "train.batch_size=2000", "jarzynski.walkers=2000", "train.iterations=3000",
                           "log.ckpt_every=0", "log.quiet=true"};
        assert_int_equal(tu_train(a, 11), 0);
        r[m] = summarise(METHOD[m], 2000, 3000, 1500);
        printf("  %-9s mass of the mode at -10 (iterations 2001-3000): %.4f (truth 0.25; at 1500: %.4f)\n",
               METHOD[m], r[m].mass_window, r[m].mass_mid);
    }
    printf("  jarzynski cross-entropy: estimate %.4f, exact %.4f\n", r[0].ce_est, r[0].ce_exact);
    assert_true(fabs(r[0].mass_window - 0.25) < 0.05);
    assert_true(fabs(r[0].ce_est - r[0].ce_exact) < 0.2);
    assert_true(r[1].mass_window < 0.1 && r[1].mass_window < r[1].mass_mid); /* collapsing */
    assert_true(fabs(r[2].mass_window - 0.5) < 0.1);                          /* stuck */
}

/* dU/da_k and dU/dz_k (gmm_pgrad with one point, w = 1) against central differences of U in
 * double; the step 1e-3 on float parameters keeps the truncation error O(1e-6 |U'''|) and the
 * rounding error O(u_float |U| / 1e-3): tolerance 1e-3 relative + 1e-3 absolute. */
static void test_gmm_gradients_and_log_z(void **state) {
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    enum { K = 3, D = 4, N = 200000 };
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    float a[K * D], z[K] = {0.3f, -0.4f, 0.9f}, x[D], resp[K], ga[K * D], gz[K], u0, up, um;
    tu_fill_normal(&rng, a, K * D, 1.5f);
    tu_fill_normal(&rng, x, D, 1.5f);
    ebmc_gmm_desc d1 = {1, D, K, 1, 0};
    assert_int_equal(ebmc_gmm_eval_op(ctx, &d1, x, a, z, &u0, NULL, resp), EBMC_OK);
    assert_int_equal(ebmc_gmm_pgrad(ctx, &d1, x, a, resp, NULL, ga, gz), EBMC_OK);
    const double eps = 1e-3;
    for (int i = 0; i < K * D + K; i++) {
        float *p = i < K * D ? &a[i] : &z[i - K * D], keep = *p;
        *p = keep + (float)eps;
        ebmc_gmm_eval_op(ctx, &d1, x, a, z, &up, NULL, NULL);
        *p = keep - (float)eps;
        ebmc_gmm_eval_op(ctx, &d1, x, a, z, &um, NULL, NULL);
        *p = keep;
        double fd = ((double)up - um) / (2 * eps), an = i < K * D ? ga[i] : gz[i - K * D];
        assert_true(fabs(fd - an) < 1e-3 * fabs(an) + 1e-3);
    }
    /* log Z = log int e^-U: E_{x ~ N(0, s^2 I)}[e^-U(x) / phi_s(x)] by Monte Carlo, s = 3 */
    float *xs = tu_malloc((size_t)N * D), *us = tu_malloc(N);
    tu_fill_normal(&rng, xs, (size_t)N * D, 3.0f);
    ebmc_gmm_desc dn = {N, D, K, 1, 0};
    assert_int_equal(ebmc_gmm_eval_op(ctx, &dn, xs, a, z, us, NULL, NULL), EBMC_OK);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        double q = 0;
        for (int j = 0; j < D; j++) q += (double)xs[i * D + j] * xs[i * D + j];
        double v = exp(-(double)us[i] + q / 18.0 + 0.5 * D * log(2 * M_PI * 9.0));
        s1 += v, s2 += v * v;
    }
    double mean = s1 / N, se = sqrt((s2 / N - mean * mean) / N), exact = ebmc_gmm_log_z(z, K, D);
    printf("  log Z: exact %.5f, Monte Carlo %.5f +- %.5f\n", exact, log(mean), se / mean);
    assert_true(fabs(log(mean) - exact) < 5 * se / mean);
    free(xs), free(us);
    ebmc_ctx_free(ctx);
}

static const char *const GMM_SMALL[] = {"data.dim=5", "model.dim=5", "data.count=300", "train.batch_size=300",
                                        "jarzynski.walkers=256", "log.quiet=true", "log.ckpt_every=1000", "run.seed=3"};

/* straight == half + --resume + half (iters in all), bit for bit: state.safetensors, the nets
 * named in nets (NULL-terminated), every metrics line */
static void resume_case(const char *cfg, const char *tag, const char *const *common, int n_common,
                        const char *const *extra, int n_extra, int iters, const char *const *nets) {
    const char *args[32];
    char names[8][64], pre[64];
    const char *files[10] = {"state.safetensors"};
    assert_true(n_common + n_extra <= 32);
    for (int i = 0; i < n_common; i++) args[i] = common[i];
    for (int i = 0; i < n_extra; i++) args[n_common + i] = extra[i];
    for (int i = 0; nets && nets[i]; i++) {
        assert_true(i < 8);
        snprintf(names[i], sizeof names[i], "%s.safetensors", nets[i]);
        files[i + 1] = names[i];
    }
    snprintf(pre, sizeof pre, "%s_", tag);
    tu_assert_resume_exact(cfg, TMP, pre, args, n_common + n_extra, iters / 2, iters, files);
}

static void test_resume_is_exact(void **state) {
    /* a high threshold: resampling happens on both sides of the split */
    const char *jz[] = {"jarzynski.ess_threshold=0.995", "train.lr_z=0.05"};
    resume_case(CFG[0], "jz", GMM_SMALL, 8, jz, 2, 60, NULL);
    char path[800];
    snprintf(path, sizeof path, "%s/jz_straight/metrics.jsonl", TMP);
    char *text = tu_read_file(path, NULL), *last = strrchr(text, '{');
    double res = field(last, "resamplings");
    printf("  60 straight == 30 + resume + 30 (jarzynski, %.0f resamplings; cd, resets every 4)\n", res);
    assert_true(res >= 2);
    free(text);
    resume_case(CFG[2], "cd", GMM_SMALL, 8, NULL, 0, 60, NULL);
}

/* jarzynski.trigger: which weights decide the resampling of iteration k. ess_frac_k (logged) is
 * ESS/N after the move, before resampling; resampled_k comes from the running count.
 *   after: resampled_k <=> ess_frac_k < th
 *   start (GMM.py's varian[i]): resampled_k <=> ESS/N at the start of k < th, which is 1 after a
 *          resampling (weights reset) and ess_frac_{k-1} otherwise (1 at k = 1).
 * Each run must follow its rule at every iteration and break the other one somewhere. */
static void trigger_run(const char *trigger, int iters, double th, int *res, double *ess) {
    char od[600], name[64], tr[64], thr[64], path[800];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    snprintf(name, sizeof name, "run.name=trigger_%s", trigger);
    snprintf(tr, sizeof tr, "jarzynski.trigger=%s", trigger);
    snprintf(thr, sizeof thr, "jarzynski.ess_threshold=%g", th);
    char its[64];
    snprintf(its, sizeof its, "train.iterations=%d", iters);
    const char *a[16] = {CFG[0], od, name, tr, thr, its, "train.lr_z=0.05"};
    int n = 7;
    for (int i = 0; i < 8; i++) a[n++] = GMM_SMALL[i];
    assert_int_equal(tu_train(a, n), 0);
    snprintf(path, sizeof path, "%s/trigger_%s/metrics.jsonl", TMP, trigger);
    char *text = tu_read_file(path, NULL), *save = NULL;
    double prev = 0;
    int k = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "\"ess_frac\"")) continue;
        k = (int)field(line, "iter");
        assert_true(k >= 1 && k <= iters);
        double count = field(line, "resamplings");
        res[k] = count > prev;
        prev = count;
        ess[k] = field(line, "ess_frac");
    }
    free(text);
    assert_int_equal(k, iters);
}

static void test_trigger_rules(void **state) {
    enum { K = 60 };
    const double th = 0.995; /* a mix: 14-19 resamplings in 60 iterations */
    int res[2][K + 1];
    double ess[2][K + 1];
    const char *name[2] = {"start", "after"};
    for (int t = 0; t < 2; t++) trigger_run(name[t], K, th, res[t], ess[t]);
    int broken[2][2] = {{0, 0}, {0, 0}}, count[2] = {0, 0}; /* [run][rule] */
    for (int t = 0; t < 2; t++)
        for (int k = 1; k <= K; k++) {
            double at_start = k == 1 || res[t][k - 1] ? 1.0 : ess[t][k - 1];
            broken[t][0] += res[t][k] != (at_start < th);
            broken[t][1] += res[t][k] != (ess[t][k] < th);
            count[t] += res[t][k];
        }
    printf("  trigger start: %d resamplings in %d iterations, start rule broken %d times, after rule %d\n",
           count[0], K, broken[0][0], broken[0][1]);
    printf("  trigger after: %d resamplings, start rule broken %d times, after rule %d\n", count[1],
           broken[1][0], broken[1][1]);
    assert_true(count[0] >= 3 && count[1] >= 3 && count[0] < K && count[1] < K); /* both outcomes occur */
    assert_int_equal(broken[0][0], 0);
    assert_int_equal(broken[1][1], 0);
    assert_true(broken[0][1] > 0 && broken[1][0] > 0); /* the rules are told apart */
}

/* The image path: the CIFAR-10 config's architecture (shortrun, the score net, width 8) on
 * procedural 32x32 images (no download): iterations run with weights, burn-in and resampling at
 * every iteration, walkers and data are written as grids, and resume is bit-exact (E, its Adam
 * state, the walkers and their log-weights). With EBMC_DATA: one iteration of the MNIST config
 * on its 2/3/6 subset. */
static void test_image_path(void **state) {
    char cifar[1100];
    snprintf(cifar, sizeof cifar, "%s/cifar10_jarzynski.ini", getenv("EBMC_CONFIGS") ? getenv("EBMC_CONFIGS") : "configs");
    const char *small[] = {"data.dataset=shapes", "data.size=32", "data.count=64", "model.width=8",
                           "train.batch_size=8", "jarzynski.walkers=16", "jarzynski.init_steps=2",
                           "jarzynski.ess_threshold=2", "log.grid_every=2", "log.ckpt_every=1000",
                           "log.quiet=true", "train.lr=1e-3"};
    const char *nets[] = {"E", NULL};
    resume_case(cifar, "img", small, 12, NULL, 0, 4, nets);
    char path[900];
    snprintf(path, sizeof path, "%s/img_straight/metrics.jsonl", TMP);
    char *text = tu_read_file(path, NULL), *last = strrchr(text, '{');
    printf("  image path (shortrun on 32x32 shapes): 4 straight == 2 + resume + 2; %.0f resamplings, E(data) %.4g\n",
           field(last, "resamplings"), field(last, "e_data"));
    assert_true(field(last, "resamplings") == 4 && isfinite(field(last, "e_data")));
    free(text);
    snprintf(path, sizeof path, "%s/img_straight/samples/iter_00000004_walkers.png", TMP);
    assert_int_equal(access(path, R_OK), 0);
    const char *data = getenv("EBMC_DATA");
    if (!data) {
        printf("  MNIST 2/3/6 subset: skipped (set EBMC_DATA to the folder holding mnist/)\n");
        return;
    }
    char mcfg[1100], dp[1100], od[600];
    snprintf(mcfg, sizeof mcfg, "%s/mnist_jarzynski.ini", getenv("EBMC_CONFIGS") ? getenv("EBMC_CONFIGS") : "configs");
    snprintf(dp, sizeof dp, "data.path=%s/mnist", data);
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    const char *m[] = {mcfg, od, dp, "run.name=mnist", "train.iterations=1", "train.batch_size=8",
                       "jarzynski.walkers=8", "jarzynski.init_steps=1", "model.width=4", "log.quiet=true"};
    assert_int_equal(tu_train(m, 10), 0);
    printf("  MNIST 2/3/6 subset (9800 images): one iteration ran\n");
}

static void test_bad_configs(void **state) {
    char od[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    const char *a1[] = {CFG[0], od, "jarzynski.weights=maybe"};
    assert_int_equal(tu_train(a1, 3), EBMC_EXIT_CONFIG);
    const char *a2[] = {CFG[0], od, "data.dim=7", "run.name=baddim"};
    assert_int_equal(tu_train(a2, 4), EBMC_EXIT_CONFIG);
    const char *a3[] = {CFG[0], od, "model.components=64", "model.dim=200", "data.dim=200", "run.name=big"};
    assert_int_equal(tu_train(a3, 6), EBMC_EXIT_CONFIG);
    const char *a4[] = {CFG[0], od, "data.classes=2:5x", "run.name=badcls"};
    assert_int_equal(tu_train(a4, 4), EBMC_EXIT_CONFIG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gmm_gradients_and_log_z),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_trigger_rules),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_image_path),
        cmocka_unit_test(test_headline_reduced),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
