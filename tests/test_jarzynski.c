/* The weighted-walker ops on the CPU backend against exact answers (specs/particles.md, "How to
 * test it without a GPU", T1-T4, T6, T7; T5 is test_jarzynski_gmm):
 *   T1  ULA-bias removal at fixed theta: U = x^2/2, h = 0.5, walkers from N(0,1): the weighted
 *       variance stays 1 while plain ULA drifts to 1/(1 - h/2) = 4/3; log mean e^A ~ 0
 *   T2  a moving mean and scale (mu_k = 0.02k, s_k = 1 + 0.005k, h = 0.1, K = 100): weighted
 *       mean 2, variance 2.25 and log Z_K/Z_0 = log 1.5 exactly
 *   T3  a mean moving 0.1 per step for 100 steps: without resampling the weights degenerate;
 *       with systematic resampling at ESS/N < 0.5 mean 10, variance 1, log Zhat 0
 *   T4  the increment at fixed theta is the MALA log acceptance ratio (also the cold kernel),
 *       the energy-difference mode is U_old - U_new, to round-off
 *   T6  systematic counts within floor/ceil of N p_i, multinomial counts by chi-square,
 *       resampling unbiased for a statistic, ESS in [1, N] (= N for equal weights), LSE and
 *       weights shift-invariant and finite for A in [-1e4, 1e4], N = 10^6 ancestors valid
 *   T7  log Zhat with and without resampling agrees in the mean over seeds with log 1.5
 *   and the float64 accumulation over 10^4 steps (|A| far beyond float's exp range).
 * Statistical tolerances are 5 standard errors, computed from the run's own ESS or spread.
 * And the image EBM's energy regulariser (train.l2_coeff): its parameter gradient equals the one
 * without it plus sum_i 2 alpha |scale w_i| U_i dU_i/dtheta, each dU_i/dtheta from a one-hot w. */
#include "ebmc/backend.h"
#include "ebmc/nn.h"
#include "ebmc/philox.h"
#include "recipes/jarzynski.h"
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebmc_ctx_t *CTX;

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) { CTX = tu_ctx_cpu(); return 0; }
static int teardown(void **state) { ebmc_ctx_free(CTX); return 0; }

/* ---- a 1-D Gaussian target U_k = (x - mu_k)^2 / (2 s_k^2) followed by weighted ULA ---- */

typedef struct {
    int n, steps;
    double h, dmu, ds; /* mu_k = dmu k, s_k = 1 + ds k */
    double threshold;  /* resample when ESS/N < threshold (0: never) */
    uint64_t seed;
} gauss_run;

typedef struct {
    double wmean, wvar, umean, uvar, log_zhat, ess_frac, min_ess_frac, max_abs_a;
    int resamplings;
} gauss_out;

typedef struct {
    float *x, *xn, *u, *g, *un, *gn, *w;
    double *logw, *stats, *cdf;
    int32_t *idx;
} walkers;

static void walkers_alloc(walkers *b, int n) {
    b->x = tu_malloc(n), b->xn = tu_malloc(n), b->u = tu_malloc(n), b->g = tu_malloc(n);
    b->un = tu_malloc(n), b->gn = tu_malloc(n), b->w = tu_malloc(n);
    b->logw = calloc(n, sizeof(double)), b->cdf = calloc(n, sizeof(double));
    b->stats = calloc(EBMC_JZ_STATS_LEN, sizeof(double));
    b->idx = calloc(n, sizeof(int32_t));
}

static void walkers_free(walkers *b) {
    float *f[] = {b->x, b->xn, b->u, b->g, b->un, b->gn, b->w};
    for (int i = 0; i < 7; i++) free(f[i]);
    free(b->logw), free(b->cdf), free(b->stats), free(b->idx);
}

static void gauss_eval(const float *x, int n, double mu, double s, float *u, float *g) {
    for (int i = 0; i < n; i++) {
        double d = (x[i] - mu) / (s * s);
        g[i] = (float)d;
        u[i] = (float)(0.5 * (x[i] - mu) * d);
    }
}

/* One step k: ULA at theta_k, weights with theta_k -> theta_k+1, optional resampling. */
static void gauss_step(const gauss_run *r, walkers *b, int k) {
    const int n = r->n;
    double mu0 = r->dmu * k, s0 = 1 + r->ds * k, mu1 = r->dmu * (k + 1), s1 = 1 + r->ds * (k + 1);
    gauss_eval(b->x, n, mu0, s0, b->u, b->g);
    memcpy(b->xn, b->x, n * sizeof(float));
    ebmc_langevin_desc ld = {n, 1, (float)r->h, 0, (float)sqrt(2 * r->h), 0, false, 0, 0, EBMC_NOISE_AFTER,
                             {r->seed, 1, NULL, (uint32_t)k}};
    OK(ebmc_langevin(CTX, &ld, b->xn, b->g));
    gauss_eval(b->xn, n, mu1, s1, b->un, b->gn);
    ebmc_jz_logw_desc jd = {n, 1, EBMC_JZ_ULA, r->h, sqrt(2 * r->h)};
    OK(ebmc_jz_logw(CTX, &jd, b->x, b->xn, b->u, b->g, b->un, b->gn, b->logw));
    ebmc_jz_stats_desc sd = {n, 1.0f};
    OK(ebmc_jz_stats(CTX, &sd, b->logw, b->stats, NULL));
    ebmc_jz_resample_desc rd = {n, EBMC_RESAMPLE_SYSTEMATIC, r->threshold, {r->seed, 2, NULL, (uint32_t)k}};
    OK(ebmc_jz_resample(CTX, &rd, b->logw, b->stats, b->cdf, b->idx));
    ebmc_rows_desc gd = {n, 1, n, n};
    OK(ebmc_rows_copy(CTX, &gd, b->xn, b->idx, NULL, b->x));
}

static gauss_out gauss_simulate(const gauss_run *r) {
    walkers b;
    walkers_alloc(&b, r->n);
    ebmc_rng_desc init = {r->n, 1, EBMC_RNG_NORMAL, 0.0f, 1.0f, false, {r->seed, 3, NULL, 0}};
    OK(ebmc_rng(CTX, &init, b.x)); /* X_0 ~ rho_theta0 = N(0, 1) exactly */
    gauss_out o = {.min_ess_frac = 1};
    for (int k = 0; k < r->steps; k++) {
        gauss_step(r, &b, k);
        double f = b.stats[7] ? 0 : b.stats[4] / r->n; /* before resampling */
        if (!b.stats[7] && f < o.min_ess_frac) o.min_ess_frac = f;
    }
    ebmc_jz_stats_desc sd = {r->n, 1.0f};
    OK(ebmc_jz_stats(CTX, &sd, b.logw, b.stats, b.w));
    double m1 = 0, m2 = 0, u1 = 0, u2 = 0;
    for (int i = 0; i < r->n; i++) {
        m1 += (double)b.w[i] * b.x[i], m2 += (double)b.w[i] * b.x[i] * b.x[i];
        u1 += b.x[i], u2 += (double)b.x[i] * b.x[i];
        o.max_abs_a = fmax(o.max_abs_a, fabs(b.logw[i]));
    }
    o.wmean = m1, o.wvar = m2 - m1 * m1;
    o.umean = u1 / r->n, o.uvar = u2 / r->n - o.umean * o.umean;
    o.log_zhat = b.stats[5] + b.stats[3];
    o.ess_frac = b.stats[4] / r->n;
    o.resamplings = (int)b.stats[6];
    walkers_free(&b);
    return o;
}

static void print_out(const char *name, const gauss_out *o) {
    printf("  %s: weighted mean %.4f var %.4f | unweighted mean %.4f var %.4f | log Zhat %.4f | ESS/N %.3f "
           "(min %.3g) | resamplings %d\n", name, o->wmean, o->wvar, o->umean, o->uvar, o->log_zhat, o->ess_frac,
           o->min_ess_frac, o->resamplings);
}

/* T1: ULA at fixed theta, h = 0.5. Weighted var 1 +- 5 se (se = sqrt(Var x^2 / ESS) = sqrt(2/ESS));
 * plain ULA's stationary variance 1/(1 - h/2) = 4/3 (reached within 50 steps: contraction
 * (1-h)^2 per step). */
static void test_t1_ula_bias_removal(void **state) {
    gauss_run r = {200000, 50, 0.5, 0, 0, 0, 11};
    gauss_out o = gauss_simulate(&r);
    print_out("T1", &o);
    double se = sqrt(2.0 / (o.ess_frac * r.n));
    assert_true(fabs(o.wvar - 1.0) < 5 * se);
    assert_true(fabs(o.uvar - 4.0 / 3.0) < 5 * sqrt(2.0 * 16 / 9 / r.n) + 0.002); /* +ULA's transient */
    assert_true(fabs(o.log_zhat) < 5 * sqrt((1 / o.ess_frac - 1) / r.n) + 1e-3);
}

/* T2: exact targets mean 2, var 2.25, log Z_K/Z_0 = log 1.5 */
static void test_t2_moving_mean_and_scale(void **state) {
    gauss_run r = {100000, 100, 0.1, 0.02, 0.005, 0, 12};
    gauss_out o = gauss_simulate(&r);
    print_out("T2", &o);
    double ess = o.ess_frac * r.n;
    assert_true(fabs(o.wmean - 2.0) < 5 * sqrt(2.25 / ess));
    assert_true(fabs(o.wvar - 2.25) < 5 * sqrt(2 * 2.25 * 2.25 / ess));
    assert_true(fabs(o.log_zhat - log(1.5)) < 5 * sqrt((1 / o.ess_frac - 1) / r.n) + 1e-3);
    assert_true(fabs(o.umean - 2.0) > 0.2); /* the walkers lag: without weights the mean is wrong */
}

/* T3: degeneracy without resampling; with systematic resampling at ESS/N < 0.5 the estimates
 * are right and log Zhat (through the resamplings' bookkeeping) is 0. */
static void test_t3_degeneracy_and_resampling(void **state) {
    gauss_run r = {50000, 100, 0.1, 0.1, 0, 0, 13};
    gauss_out o = gauss_simulate(&r);
    print_out("T3 no resampling", &o);
    assert_true(o.ess_frac < 0.01);
    r.threshold = 0.5;
    gauss_out q = gauss_simulate(&r);
    print_out("T3 resampling", &q);
    double ess = fmax(q.ess_frac, 0.5) * r.n * 0.5; /* >= N/4 walkers' worth after resampling */
    assert_true(q.resamplings >= 3 && q.resamplings <= 50);
    assert_true(fabs(q.wmean - 10.0) < 5 * sqrt(1.0 / ess));
    assert_true(fabs(q.wvar - 1.0) < 5 * sqrt(2.0 / ess));
    /* log Zhat = 0 through ~10 resamplings: over seeds, within 5 standard errors of their spread
     * (duplicated walkers after each resampling make one run's error larger than sqrt(CV^2/N)) */
    double s1 = 0, s2 = 0;
    enum { SEEDS = 10 };
    for (int k = 0; k < SEEDS; k++) {
        gauss_run rk = {10000, 100, 0.1, 0.1, 0, 0.5, 300 + (uint64_t)k};
        double l = gauss_simulate(&rk).log_zhat;
        s1 += l, s2 += l * l;
    }
    double mean = s1 / SEEDS, se = sqrt((s2 / SEEDS - mean * mean) / (SEEDS - 1));
    printf("  T3 log Zhat over %d seeds (N = 10^4): mean %.4f, se %.4f (exact 0)\n", SEEDS, mean, se);
    assert_true(fabs(mean) < 5 * se + 1e-3);
}

/* T4: at fixed theta the increment is log[pi(x') q(x'->x) / (pi(x) q(x->x'))] with the full
 * Gaussian proposal densities (|y-x|^2 terms included), to double round-off; for the cold kernel
 * (noise sigma != sqrt(2h)) q has variance sigma^2. The energy-difference mode adds U_old - U_new. */
static double log_q(const float *x, const float *y, const float *g, int d, double h, double s2) {
    double q = 0;
    for (int j = 0; j < d; j++) {
        double t = (double)y[j] - x[j] + h * g[j];
        q += t * t;
    }
    return -q / (2 * s2);
}

static void test_t4_mala_identity(void **state) {
    enum { N = 64, D = 5, K = 3 };
    tu_rng rng;
    tu_rng_seed(&rng, 4);
    float x[N * D], xn[N * D], a[K * D], z[K], u[N], g[N * D], un[N], gn[N * D];
    tu_fill_normal(&rng, x, N * D, 2.0f);
    tu_fill_normal(&rng, xn, N * D, 2.0f);
    tu_fill_normal(&rng, a, K * D, 2.0f);
    tu_fill_normal(&rng, z, K, 1.0f);
    ebmc_gmm_desc gd = {N, D, K, 1, 0};
    OK(ebmc_gmm_eval_op(CTX, &gd, x, a, z, u, g, NULL));
    OK(ebmc_gmm_eval_op(CTX, &gd, xn, a, z, un, gn, NULL));
    const double hs[2][2] = {{0.05, sqrt(0.1)}, {0.05, 0.02}}; /* exact ULA; a cold kernel */
    for (int c = 0; c < 2; c++) {
        double h = hs[c][0], s = hs[c][1], A[N] = {0}, worst = 0;
        ebmc_jz_logw_desc jd = {N, D, EBMC_JZ_ULA, h, s};
        OK(ebmc_jz_logw(CTX, &jd, x, xn, u, g, un, gn, A));
        for (int i = 0; i < N; i++) {
            const float *xi = x + i * D, *yi = xn + i * D;
            double ref = -(double)un[i] + u[i] + log_q(yi, xi, gn + i * D, D, h, s * s) - log_q(xi, yi, g + i * D, D, h, s * s);
            double err = fabs(A[i] - ref) / (1 + fabs(ref));
            worst = fmax(worst, err);
        }
        printf("  T4 %s: worst relative error %.3g over %d walkers\n", c ? "cold kernel" : "ULA", worst, N);
        assert_true(worst < 1e-12); /* the terms are O(1e2..1e4): a few double ulps */
    }
    double A[N];
    for (int i = 0; i < N; i++) A[i] = 0.5 * i;
    ebmc_jz_logw_desc ed = {N, 0, EBMC_JZ_EDIFF, 0, 0};
    OK(ebmc_jz_logw(CTX, &ed, NULL, NULL, u, NULL, un, NULL, A));
    for (int i = 0; i < N; i++) assert_true(A[i] == 0.5 * i + ((double)u[i] - (double)un[i]));
}

/* T7: over seeds, log Zhat with and without resampling agrees in the mean with log 1.5 (T2's
 * setting): 5 standard errors of the seeds' spread, plus log-of-mean's O(CV^2/N) bias. */
static void test_t7_logz_through_resampling(void **state) {
    enum { SEEDS = 20 };
    for (int res = 0; res < 2; res++) {
        double s1 = 0, s2 = 0;
        int nres = 0;
        for (int k = 0; k < SEEDS; k++) {
            gauss_run r = {4000, 100, 0.1, 0.02, 0.005, res ? 0.7 : 0, 700 + (uint64_t)k};
            gauss_out o = gauss_simulate(&r);
            s1 += o.log_zhat, s2 += o.log_zhat * o.log_zhat;
            nres += o.resamplings;
        }
        double mean = s1 / SEEDS, se = sqrt((s2 / SEEDS - mean * mean) / (SEEDS - 1));
        printf("  T7 %s: mean log Zhat %.4f (exact %.4f), se %.4f, %.1f resamplings per run\n",
               res ? "resampling at ESS/N < 0.7" : "no resampling", mean, log(1.5), se, (double)nres / SEEDS);
        assert_true(fabs(mean - log(1.5)) < 5 * se + 2.0 / 4000);
        if (res) assert_true(nres > SEEDS);
    }
}

/* the net's parameter gradient of an image energy (through its checkpoint items) */
static const float *net_grads(jz_energy *e, size_t *n) {
    ebmc_ckpt_item it[4];
    int k = e->ckpt_items(e, it, 4);
    assert_true(k >= 1 && it[0].kind == EBMC_ITEM_NET);
    *n = ebmc_net_param_count(it[0].ptr);
    return ebmc_net_grads(it[0].ptr);
}

static void test_net_regulariser(void **state) {
    enum { N = 6 };
    const double alpha = 0.3;
    jz_energy *e0 = NULL, *e1 = NULL;
    char err[256] = "";
    /* the MNIST net at width 4, chunks of 4 (two chunks: the second one short); same seed */
    jz_net_cfg c0 = {"mnist", 4, N, 4, 1e-4, 0, 0.999, 7, 0, 0, 0.0}, c1 = c0;
    c1.l2 = alpha;
    if (jz_energy_net(CTX, &c0, &e0, err, sizeof err) || jz_energy_net(CTX, &c1, &e1, err, sizeof err))
        fail_msg("jz_energy_net: %s", err);
    size_t elems = e0->elems, P = 0;
    float *x = tu_malloc(N * elems), *u = tu_malloc(N), *w = tu_malloc(N), *one = tu_malloc(N);
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_normal(&r, x, N * elems, 0.5f);
    for (int i = 0; i < N; i++) w[i] = 0.05f + 0.1f * (float)i; /* positive, as normalised weights */
    OK(e0->eval(e0, N, x, u, NULL, NULL));
    const float *g0p = net_grads(e0, &P);
    double *gi = calloc((size_t)N * P, sizeof(double)), *want = calloc(P, sizeof(double)),
           *mag = calloc(P, sizeof(double));
    for (int i = 0; i < N; i++) { /* dU_i/dtheta: weight one on point i */
        for (int j = 0; j < N; j++) one[j] = j == i ? 1.0f : 0.0f;
        OK(e0->accumulate(e0, N, x, NULL, one, 1.0f, 0.0f));
        for (size_t p = 0; p < P; p++) gi[(size_t)i * P + p] = g0p[p];
    }
    /* the walker term (w, scale -1) and the data term (w NULL, scale 1/N) */
    const float *wv[2] = {w, NULL};
    const float sc[2] = {-1.0f, 1.0f / N};
    for (int k = 0; k < 2; k++) {
        OK(e1->accumulate(e1, N, x, NULL, wv[k], sc[k], 0.0f));
        const float *g1 = net_grads(e1, &P);
        double worst = 0;
        for (size_t p = 0; p < P; p++) {
            want[p] = mag[p] = 0;
            for (int i = 0; i < N; i++) {
                double wi = wv[k] ? wv[k][i] : 1.0, a = sc[k] * wi + 2 * alpha * fabs(sc[k] * wi) * u[i];
                want[p] += a * gi[(size_t)i * P + p];
                mag[p] += fabs(a * gi[(size_t)i * P + p]);
            }
            /* float32 backward of a small net: each per-point gradient to ~1e-6 relative; 1e-4 of
             * the terms' magnitude leaves room and still fails a missing factor 2 (50 %) */
            double d = fabs(g1[p] - want[p]);
            if (d > 1e-4 * mag[p] + 1e-12) fail_msg("term %d param %zu: %.9g, want %.9g (scale %.3g)", k, p, g1[p], want[p], mag[p]);
            worst = fmax(worst, d / (mag[p] + 1e-30));
        }
        printf("  regulariser term %d: %zu parameters, worst |diff|/magnitude %.2e\n", k, P, worst);
    }
    e0->destroy(e0), e1->destroy(e1);
    free(x), free(u), free(w), free(one), free(gi), free(want), free(mag);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t1_ula_bias_removal),
        cmocka_unit_test(test_t2_moving_mean_and_scale),
        cmocka_unit_test(test_t3_degeneracy_and_resampling),
        cmocka_unit_test(test_t4_mala_identity),
        cmocka_unit_test(test_t7_logz_through_resampling),
        cmocka_unit_test(test_net_regulariser),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
