/* ebmc train end to end on the CPU:
 * - a short Dual-MCMC training on a 2-D mixture of 8 Gaussians (configs/toy2d_dual_mcmc.ini)
 *   is measurable: EBM-revised samples cover every mode, and their MMD to held-out data is
 *   lower than the untrained model's and lower than the generator's own samples;
 * - resume is exact: N iterations straight == N/2 + --resume + N/2, bit for bit (weights,
 *   optimiser state, counters);
 * - bad inputs each get their message and exit status: unknown key, wrong type, missing data
 *   path, truncated CIFAR file, a checkpoint of another architecture.
 * Set EBMC_CONFIGS to the configs/ folder (ctest does). */
#include "ebmc/safetensors.h"
#include "testutil.h"
#include "ebmc/data.h"
#include "ebmc/train.h"
#include "recipes/dualmcmc.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char TMP[256];
static char TOYCFG[1024];

static int setup(void **state) {
    if (tu_tmpdir_create(TMP, sizeof TMP, "test_train")) return -1;
    return tu_config_path(TOYCFG, sizeof TOYCFG, "toy2d_dual_mcmc.ini");
}

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

#define train tu_train

/* ---- sampling a trained (or untrained) toy model ---- */

typedef struct {
    float *gen, *rev; /* (n, 2) */
    int n;
} toy_samples;

static toy_samples sample_toy(const char *run_dir, bool load, int n) {
    const ebmc_recipe *rc = ebmc_recipe_find("dualmcmc");
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
    dm_t t = *(dm_t *)ebmc_run_state(run); /* a view: the run owns everything it points to */
    ebmc_langevin_params p = ebmc_langevin_dualmcmc_x((float)ebmc_config_float(cfg, "sample", "step_size"),
                                                      (float)ebmc_config_float(cfg, "sample", "noise"),
                                                      (int)ebmc_config_int(cfg, "sample", "steps"));
    ebmc_chain_set_params(t.cx, &p);
    toy_samples s = {tu_malloc((size_t)n * 2), tu_malloc((size_t)n * 2), n};
    for (int done = 0; done < n; done += t.B) {
        int take = n - done < t.B ? n - done : t.B;
        ebmc_rng_key k = {4242, 9, NULL, (uint32_t)done};
        assert_int_equal(ebmc_init_normal(t.ctx, t.z, t.B, (size_t)t.nz, 1.0f, k), EBMC_OK);
        assert_int_equal(ebmc_net_forward(t.G, t.tG, t.B, t.z), EBMC_OK);
        float *xs = ebmc_chain_state(t.cx);
        memcpy(xs, ebmc_tape_output(t.tG, 0), (size_t)t.B * 2 * 4);
        memcpy(s.gen + (size_t)done * 2, xs, (size_t)take * 2 * 4);
        assert_int_equal(ebmc_chain_run(t.cx, t.B), EBMC_OK);
        memcpy(s.rev + (size_t)done * 2, xs, (size_t)take * 2 * 4);
    }
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return s;
}

/* squared MMD with a sum of Gaussian kernels (bandwidths 0.05, 0.2, 1) */
static double mmd2(const float *x, int n, const float *y, int m) {
    const double bw[3] = {0.05, 0.2, 1.0};
    double kxx = 0, kyy = 0, kxy = 0;
#define K(a, b)                                                                                 \
    ({                                                                                          \
        double dx = (a)[0] - (b)[0], dy = (a)[1] - (b)[1], d = dx * dx + dy * dy, s = 0;        \
        for (int q = 0; q < 3; q++) s += exp(-d / (2 * bw[q] * bw[q]));                         \
        s;                                                                                      \
    })
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) kxx += K(x + 2 * i, x + 2 * j);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) kyy += K(y + 2 * i, y + 2 * j);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) kxy += K(x + 2 * i, y + 2 * j);
#undef K
    return kxx / ((double)n * n) + kyy / ((double)m * m) - 2 * kxy / ((double)n * m);
}

static void mode_shares(const float *x, int n, const float *c, int M, double radius, double *share,
                        double *in_mode) {
    for (int k = 0; k < M; k++) share[k] = 0;
    *in_mode = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bd = 1e30;
        for (int k = 0; k < M; k++) {
            double dx = x[2 * i] - c[2 * k], dy = x[2 * i + 1] - c[2 * k + 1], d = dx * dx + dy * dy;
            if (d < bd) {
                bd = d;
                best = k;
            }
        }
        share[best] += 1.0 / n;
        if (sqrt(bd) < radius) *in_mode += 1.0 / n;
    }
}

static void test_toy_training_is_measurable(void **state) {
    char run[512];
    snprintf(run, sizeof run, "%s/toy", TMP);
    const char *args[] = {TOYCFG, "run.out_dir=" , "run.name=toy", "log.quiet=true"};
    char od[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    args[1] = od;
    assert_int_equal(train(args, 4), 0);
    int n = 1000;
    toy_samples trained = sample_toy(run, true, n), untrained = sample_toy(run, false, n);
    /* held-out data: the same mixture from another seed */
    ebmc_dataset_t *ds;
    char err[512];
    assert_int_equal(ebmc_data_toy2d("gmm8", n, 999, &ds, err, sizeof err), EBMC_OK);
    const float *held = ebmc_data_f32(ds), *centres;
    float std;
    int M = ebmc_toy2d_modes(ds, &centres, &std);
    assert_int_equal(M, 8);
    double m_rev = mmd2(trained.rev, n, held, n), m_gen = mmd2(trained.gen, n, held, n);
    double m_untr = mmd2(untrained.rev, n, held, n);
    double sh[8], in_rev, sh_g[8], in_gen;
    mode_shares(trained.rev, n, centres, M, 4 * std, sh, &in_rev);
    mode_shares(trained.gen, n, centres, M, 4 * std, sh_g, &in_gen);
    printf("  MMD^2 to held-out data: EBM-revised %.4f, generator %.4f, untrained %.4f\n", m_rev, m_gen, m_untr);
    printf("  within 4 std of a mode: revised %.3f, generator %.3f\n  mode shares (revised):", in_rev, in_gen);
    for (int k = 0; k < 8; k++) printf(" %.3f", sh[k]);
    printf("\n");
    /* every mode covered: each share within 0.06 of 1/8 (about 5 standard errors of a share
     * estimated from 1000 samples, sqrt(0.125 * 0.875 / 1000) = 0.0105, plus slack for an
     * imperfect model) */
    for (int k = 0; k < 8; k++) assert_true(fabs(sh[k] - 0.125) < 0.06);
    assert_true(m_rev < m_untr);
    assert_true(m_rev < m_gen);
    free(trained.gen); free(trained.rev); free(untrained.gen); free(untrained.rev);
    ebmc_data_free(ds);
}

/* ---- exact resume ---- */

static void test_resume_is_exact(void **state) {
    /* small and fast: the point is bit-exactness, not quality; every logged iteration agrees
     * too, up to the timing fields at the end of each line */
    const char *common[] = {"model.hidden=16", "train.batch_size=16", "langevin_x.steps=5",
                            "langevin_z.steps=3", "log.quiet=true", "log.ckpt_every=1000", "data.count=4000"};
    const char *files[] = {"E.safetensors", "G.safetensors", "I.safetensors", "state.safetensors", NULL};
    tu_assert_resume_exact(TOYCFG, TMP, "", common, 7, 1000, 2000, files);
    printf("  2000 straight == 1000 + resume + 1000: weights, optimiser state and counters identical\n");
}

/* ---- bad inputs ---- */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_bad_inputs(void **state) {
    char cfg[600], od[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    snprintf(cfg, sizeof cfg, "%s/bad.ini", TMP);
    write_text(cfg, "[train]\nbatch_sise = 100\n");
    const char *a1[] = {cfg, od};
    assert_int_equal(train(a1, 2), EBMC_EXIT_CONFIG);          /* unknown key */
    const char *a2[] = {TOYCFG, od, "train.batch_size=ten"};
    assert_int_equal(train(a2, 3), EBMC_EXIT_CONFIG);          /* wrong type */
    const char *a3[] = {TOYCFG, od, "data.dataset=cifar10", "model.arch=dualmcmc_cifar10"};
    assert_int_equal(train(a3, 4), EBMC_EXIT_CONFIG);          /* no data path */
    const char *a4[] = {TOYCFG, od, "data.dataset=cifar10", "model.arch=dualmcmc_cifar10", "data.path=/nonexistent/cifar"};
    assert_int_equal(train(a4, 5), EBMC_EXIT_DATA);            /* missing data */
    /* a truncated CIFAR file */
    char cdir[700], f[800];
    snprintf(cdir, sizeof cdir, "%s/cifar", TMP);
    assert_int_equal(mkdir(cdir, 0755), 0);
    for (int i = 1; i <= 5; i++) {
        snprintf(f, sizeof f, "%s/data_batch_%d.bin", cdir, i);
        FILE *fp = fopen(f, "wb");
        assert_non_null(fp);
        size_t n = i == 3 ? 3073 * 10 + 7 : 3073 * 10; /* batch 3 truncated mid-record */
        for (size_t k = 0; k < n; k++) fputc((int)(k % 251), fp);
        fclose(fp);
    }
    char dp[800];
    snprintf(dp, sizeof dp, "data.path=%s", cdir);
    const char *a5[] = {TOYCFG, od, "data.dataset=cifar10", "model.arch=dualmcmc_cifar10", dp};
    assert_int_equal(train(a5, 5), EBMC_EXIT_DATA);
    /* a checkpoint from a different architecture */
    const char *a6[] = {TOYCFG, od, "run.name=small", "train.iterations=2", "train.batch_size=8",
                        "model.hidden=8", "log.quiet=true"};
    assert_int_equal(train(a6, 7), 0);
    char run[700];
    snprintf(run, sizeof run, "%s/small", TMP);
    char *sargs[] = {run, "--n", "8", "model.hidden=16"};
    assert_int_equal(ebmc_sample_main(4, sargs), EBMC_EXIT_DATA);
    /* a run directory that is already used */
    assert_int_equal(train(a6, 7), EBMC_EXIT_USAGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_toy_training_is_measurable),
    };
    return cmocka_run_group_tests_name("train_cpu", tests, setup, teardown);
}
