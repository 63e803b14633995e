/* The cooperative-learning recipes (coopvaebm, coopnets: src/host/recipes/coop*.c) end to end on
 * the CPU:
 * - the gauss_kl op (the VAE's KL term and reparameterisation backward) against central finite
 *   differences of its loss in double;
 * - coopvaebm on a 2-D mixture of 8 Gaussians (configs/toy2d_coopvaebm.ini): the EBM-revised
 *   samples are closer to held-out data (MMD^2) than the VAE's own samples and than an untrained
 *   model's revised samples, and cover every mode;
 * - coopnets on the same mixture (configs/toy2d_coopnets.ini): the generator, trained on revised
 *   samples alone, gets closer to held-out data as it trains (untrained > iteration 200 > 800)
 *   and reaches every mode;
 * - resume is exact for both: N iterations straight == N/2 + --resume + N/2, bit for bit;
 * - bad values of their keys are config errors.
 * Set EBMC_CONFIGS to the configs/ folder (ctest does). */
#include "testutil.h"
#include "toy_metrics.h"
#include "ebmc/data.h"
#include "ebmc/recipe.h"
#include "ebmc/train.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char TMP[256];
static char CFG_VAE[1024], CFG_NETS[1024];

static int setup(void **state) {
    if (tu_tmpdir_create(TMP, sizeof TMP, "test_coop")) return -1;
    const char *dir = getenv("EBMC_CONFIGS");
    snprintf(CFG_VAE, sizeof CFG_VAE, "%s/toy2d_coopvaebm.ini", dir ? dir : "configs");
    snprintf(CFG_NETS, sizeof CFG_NETS, "%s/toy2d_coopnets.ini", dir ? dir : "configs");
    return access(CFG_VAE, R_OK) || access(CFG_NETS, R_OK) ? -1 : 0;
}

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

/* ---- the gauss_kl op: loss and gradients against finite differences in double ---- */

typedef struct {
    int rows, cols;
    double k, w;
    const float *eps, *dz;
} kl_case;

/* L(mu, s) = w sum KL(mu, s) + sum dz . (mu + eps e^{k s}): the op's gradients are dL/dmu, dL/ds */
static double kl_loss(const kl_case *c, const double *mu, const double *s) {
    double l = 0;
    for (int i = 0; i < c->rows * c->cols; i++) {
        double ks = c->k * s[i];
        l += c->w * 0.5 * (mu[i] * mu[i] + exp(2 * ks) - 1 - 2 * ks);
        l += c->dz[i] * (mu[i] + c->eps[i] * exp(ks));
    }
    return l;
}

static void check_kl(double k) {
    enum { R = 3, C = 7, NE = R * C };
    tu_rng rng;
    tu_rng_seed(&rng, 11);
    float mu[NE], s[NE], eps[NE], dz[NE], dmu[NE], ds[NE], loss[R];
    tu_fill_normal(&rng, mu, NE, 1.0f);
    tu_fill_normal(&rng, s, NE, 0.7f);
    tu_fill_normal(&rng, eps, NE, 1.0f);
    tu_fill_normal(&rng, dz, NE, 1.0f);
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    ebmc_gauss_kl_desc d = {R, C, (float)k, 0.75f, 1.0f, 0.0f};
    assert_int_equal(ebmc_gauss_kl(ctx, &d, mu, s, eps, dz, loss, dmu, ds), EBMC_OK);
    kl_case kc = {R, C, k, 0.75, eps, dz};
    double m[NE], sv[NE], worst = 0, gmax = 0;
    for (int i = 0; i < NE; i++) m[i] = mu[i], sv[i] = s[i];
    for (int i = 0; i < NE; i++) { /* central differences, h = 1e-5: O(h^2) ~ 1e-10 */
        double *v[2] = {m, sv};
        const float *g[2] = {dmu, ds};
        for (int q = 0; q < 2; q++) {
            double o = v[q][i], h = 1e-5;
            v[q][i] = o + h;
            double lp = kl_loss(&kc, m, sv);
            v[q][i] = o - h;
            double lm = kl_loss(&kc, m, sv);
            v[q][i] = o;
            double fd = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(fd - g[q][i]));
            gmax = fmax(gmax, fabs(fd));
        }
    }
    /* the loss rows: the KL alone (unweighted), summed in double */
    for (int r = 0; r < R; r++) {
        double l = 0;
        for (int j = 0; j < C; j++) {
            double ks = k * s[r * C + j], mm = mu[r * C + j];
            l += 0.5 * (mm * mm + exp(2 * ks) - 1 - 2 * ks);
        }
        assert_true(fabs(loss[r] - l) <= 4 * FLT_EPSILON * fabs(l));
    }
    printf("  gauss_kl k=%g: max |op - finite difference| = %.2e (max |grad| %.2f)\n", k, worst, gmax);
    /* the op rounds each gradient to float once (relative 2^-24), the differences carry
     * ~1e-10 truncation and ~1e-16 |L| / h cancellation error: 1e-6 of the largest gradient */
    assert_true(worst <= 1e-6 * gmax);
    ebmc_ctx_free(ctx);
}

static void test_coop_gauss_kl_op(void **state) {
    check_kl(1.0); /* a log-std head (CoopVAEBM) */
    check_kl(0.5); /* a log-variance head */
}

/* ---- sampling a toy run through the recipe table ---- */

typedef struct {
    float *gen, *rev; /* (n, 2) */
} toy_samples;

/* ckpt: a checkpoint folder, or NULL for the untrained model of the run's config */
static toy_samples sample_toy(const char *run_dir, const char *ckpt, int n) {
    char err[1024], path[1024];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    const ebmc_recipe *rc;
    ebmc_config_t *cfg;
    if (ebmc_recipe_load_config(path, 0, NULL, &rc, &cfg, err, sizeof err)) fail_msg("%s", err);
    ebmc_run_t *run;
    if (ebmc_run_open(rc, cfg, false, &run, err, sizeof err)) fail_msg("%s", err);
    int64_t it;
    if (ckpt && ebmc_run_load(run, ckpt, &it, err, sizeof err)) fail_msg("%s", err);
    toy_samples s = {tu_malloc((size_t)n * 2), tu_malloc((size_t)n * 2)};
    float *outs[2] = {s.gen, s.rev};
    ebmc_sample_opts o = {n, -1, -1, -1, 4242};
    char desc[256];
    if (rc->sample(ebmc_run_state(run), &o, outs, desc, sizeof desc, err, sizeof err)) fail_msg("%s", err);
    /* the recipe's own test-time settings: sample.steps of the config, in batches of the chains */
    int steps = -1, batch = -1;
    const char *in = strstr(desc, "in batches of ");
    assert_int_equal(sscanf(desc, "%d Langevin steps", &steps), 1);
    assert_non_null(in);
    assert_int_equal(sscanf(in, "in batches of %d", &batch), 1);
    assert_int_equal(steps, (int)ebmc_config_int(cfg, "sample", "steps"));
    assert_int_equal(batch, (int)ebmc_config_int(cfg, "train", "chains"));
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return s;
}

static void train_toy(const char *cfg, const char *name) {
    char od[600], nm[128];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    snprintf(nm, sizeof nm, "run.name=%s", name);
    const char *args[] = {cfg, od, nm, "log.quiet=true"};
    assert_int_equal(tu_train(args, 4), 0);
}

static const float *held_out(int n, ebmc_dataset_t **ds, const float **centres, float *std) {
    char err[512];
    assert_int_equal(ebmc_data_toy2d("gmm8", n, 999, ds, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_toy2d_modes(*ds, centres, std), 8);
    return ebmc_data_f32(*ds);
}

static void test_coopvaebm_toy(void **state) {
    train_toy(CFG_VAE, "vae");
    char run[600], ck[1024];
    snprintf(run, sizeof run, "%s/vae", TMP);
    assert_true(ebmc_latest_checkpoint(run, ck, sizeof ck) >= 0);
    int n = 900;
    toy_samples tr = sample_toy(run, ck, n), un = sample_toy(run, NULL, n);
    char *sargs[] = {run, "--n", "150"}; /* the command: its files appear */
    assert_int_equal(ebmc_sample_main(3, sargs), 0);
    assert_int_equal(access(tu_path(run, "samples/final-00000800/revised.npy"), R_OK), 0);
    ebmc_dataset_t *ds;
    const float *centres;
    float std;
    const float *held = held_out(n, &ds, &centres, &std);
    double m_rev = tm_mmd2(tr.rev, n, held, n), m_gen = tm_mmd2(tr.gen, n, held, n);
    double m_untr = tm_mmd2(un.rev, n, held, n);
    double sh[8], in_rev;
    tm_mode_shares(tr.rev, n, centres, 8, 4 * std, sh, &in_rev);
    printf("  MMD^2 to held-out data: EBM-revised %.4f, VAE samples %.4f, untrained revised %.4f\n", m_rev, m_gen,
           m_untr);
    printf("  revised within 4 std of a mode: %.3f; mode shares:", in_rev);
    for (int k = 0; k < 8; k++) printf(" %.3f", sh[k]);
    printf("\n");
    /* every mode covered: each share within 0.06 of 1/8 (~5 standard errors of a share from 900
     * samples, sqrt(0.125 * 0.875 / 900) = 0.011, plus slack for an imperfect model) */
    for (int k = 0; k < 8; k++) assert_true(fabs(sh[k] - 0.125) < 0.06);
    assert_true(m_rev < m_gen);
    assert_true(m_rev < m_untr);
    free(tr.gen), free(tr.rev), free(un.gen), free(un.rev);
    ebmc_data_free(ds);
}

static void test_coopnets_toy(void **state) {
    train_toy(CFG_NETS, "nets");
    char run[600], ck200[800], ck800[800];
    snprintf(run, sizeof run, "%s/nets", TMP);
    snprintf(ck200, sizeof ck200, "%s/checkpoints/iter_00000200", run);
    snprintf(ck800, sizeof ck800, "%s/checkpoints/iter_00000800", run);
    int n = 900;
    toy_samples s0 = sample_toy(run, NULL, n), s200 = sample_toy(run, ck200, n), s800 = sample_toy(run, ck800, n);
    ebmc_dataset_t *ds;
    const float *centres;
    float std;
    const float *held = held_out(n, &ds, &centres, &std);
    double m0 = tm_mmd2(s0.gen, n, held, n), m200 = tm_mmd2(s200.gen, n, held, n), m800 = tm_mmd2(s800.gen, n, held, n);
    double mr = tm_mmd2(s800.rev, n, held, n);
    double sh[8], in_gen;
    tm_mode_shares(s800.gen, n, centres, 8, 4 * std, sh, &in_gen);
    printf("  generator MMD^2 to held-out data: untrained %.4f, iteration 200 %.4f, 800 %.4f (revised %.4f)\n", m0,
           m200, m800, mr);
    printf("  generator within 4 std of a mode: %.3f; mode shares:", in_gen);
    for (int k = 0; k < 8; k++) printf(" %.3f", sh[k]);
    printf("\n");
    assert_true(m200 < m0);
    assert_true(m800 < m200);
    /* every mode reached: at least a third of its share (a balanced spread is coopvaebm's claim,
     * checked above; here the claim is the generator's progress) */
    for (int k = 0; k < 8; k++) assert_true(sh[k] > 0.125 / 3);
    free(s0.gen), free(s0.rev), free(s200.gen), free(s200.rev), free(s800.gen), free(s800.rev);
    ebmc_data_free(ds);
}

/* ---- exact resume ---- */

static void resume_case(const char *cfg, const char *tag, const char *extra, bool has_i) {
    const char *common[] = {"model.hidden=16", "train.batch_size=16", "train.chains=24", "langevin.steps=5",
                            "log.quiet=true", "log.ckpt_every=100", "data.count=1000", extra};
    const char *files[] = {"E.safetensors", "G.safetensors", "state.safetensors", has_i ? "I.safetensors" : NULL,
                           NULL};
    char pre[64];
    snprintf(pre, sizeof pre, "%s_", tag);
    tu_assert_resume_exact(cfg, TMP, pre, common, 8, 100, 200, files);
    printf("  %s: 200 straight == 100 + resume + 100: weights, optimiser states, counters, metrics\n", tag);
}

static void test_coopvaebm_resume_exact(void **state) {
    resume_case(CFG_VAE, "vae", "langevin.noise=0.01", true); /* noise on: its counter must resume too */
}

static void test_coopnets_resume_exact(void **state) {
    resume_case(CFG_NETS, "nets", "train.gen_steps=3", false); /* with the latent chain */
}

/* ---- bad values ---- */

static void test_coop_bad_config(void **state) {
    char od[600];
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    const char *a1[] = {CFG_VAE, od, "train.chains=0"};
    assert_int_equal(tu_train(a1, 3), EBMC_EXIT_CONFIG);
    const char *a2[] = {CFG_VAE, od, "train.kl_weight=-1"};
    assert_int_equal(tu_train(a2, 3), EBMC_EXIT_CONFIG);
    const char *a3[] = {CFG_NETS, od, "train.kl_weight=2"}; /* a coopvaebm key */
    assert_int_equal(tu_train(a3, 3), EBMC_EXIT_CONFIG);
    const char *a4[] = {CFG_NETS, od, "model.arch=dualmcmc_cifar10"};
    assert_int_equal(tu_train(a4, 3), EBMC_EXIT_CONFIG);
}

/* argv[1]: "coopvaebm" or "coopnets" (ctest runs each as its own test), or nothing: both */
int main(int argc, char **argv) {
    const struct CMUnitTest vae[] = {
        cmocka_unit_test(test_coop_gauss_kl_op),
        cmocka_unit_test(test_coop_bad_config),
        cmocka_unit_test(test_coopvaebm_resume_exact),
        cmocka_unit_test(test_coopvaebm_toy),
    };
    const struct CMUnitTest nets[] = {
        cmocka_unit_test(test_coopnets_resume_exact),
        cmocka_unit_test(test_coopnets_toy),
    };
    const char *only = argc > 1 ? argv[1] : "";
    int fails = 0;
    if (strcmp(only, "coopnets"))
        fails += cmocka_run_group_tests_name("coopvaebm_train", vae, setup, teardown);
    if (strcmp(only, "coopvaebm"))
        fails += cmocka_run_group_tests_name("coopnets_train", nets, setup, teardown);
    return fails;
}
