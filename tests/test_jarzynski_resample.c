/* Resampling and the log-weight statistics on the CPU backend (specs/particles.md T6, and the
 * float64 accumulation over 10^4 steps):
 *   - systematic: every count within {floor(N p_i), ceil(N p_i)}, total exactly N
 *   - multinomial: chi-square of pooled counts below its 99.99 % quantile (Wilson-Hilferty)
 *   - both schemes unbiased: the mean over repeats of the resampled average of a statistic equals
 *     its weighted mean within 5 standard errors of the repeats' spread
 *   - ESS in [1, N], ESS = N exactly for equal weights; a degenerate set (one walker) ESS = 1
 *   - log mean e^A shifts by c and the weights do not change under A -> A + c; finite for
 *     A in [-1e4, 1e4]; no resampling above the threshold (identity ancestors, A kept)
 *   - N = 10^6 ancestors from a CDF whose float32 version would lose the tail: all valid
 *   - 10^4 steps of a moving target with no resampling: |A| grows far past 88 (where float's
 *     exp overflows); the statistics stay finite and A equals a long-double sum of the same
 *     increments to double precision. */
#include "ebmc/backend.h"
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebmc_ctx_t *CTX;

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) { CTX = tu_ctx_cpu(); return 0; }
static int teardown(void **state) { ebmc_ctx_free(CTX); return 0; }

static void random_logw(tu_rng *r, double *a, int n, double spread) {
    for (int i = 0; i < n; i++) a[i] = spread * tu_normal(r);
}

/* resamples always (threshold 2) and counts the ancestors; p: the normalised weights */
static void resample_counts(const double *a0, int n, ebmc_resample_scheme sc, uint32_t step, int *counts, double *p) {
    double *a = malloc(n * sizeof(double)), *cdf = malloc(n * sizeof(double)), st[EBMC_JZ_STATS_LEN] = {0};
    int32_t *idx = malloc(n * sizeof(int32_t));
    memcpy(a, a0, n * sizeof(double));
    ebmc_jz_stats_desc sd = {n, 1.0f};
    OK(ebmc_jz_stats(CTX, &sd, a, st, NULL));
    if (p)
        for (int i = 0; i < n; i++) p[i] = exp(a[i] - st[0]) / st[1];
    ebmc_jz_resample_desc rd = {n, sc, 2.0, {99, 7, NULL, step}};
    OK(ebmc_jz_resample(CTX, &rd, a, st, cdf, idx));
    assert_true(st[7] == 1 && st[6] == 1);
    memset(counts, 0, n * sizeof(int));
    for (int j = 0; j < n; j++) {
        assert_true(idx[j] >= 0 && idx[j] < n);
        counts[idx[j]]++;
        assert_true(a[j] == 0);
    }
    free(a), free(cdf), free(idx);
}

static void test_systematic_counts(void **state) {
    enum { N = 1000 };
    tu_rng rng;
    tu_rng_seed(&rng, 61);
    double a[N], p[N];
    int counts[N];
    for (int rep = 0; rep < 20; rep++) {
        random_logw(&rng, a, N, 1.0 + rep * 0.2);
        resample_counts(a, N, EBMC_RESAMPLE_SYSTEMATIC, (uint32_t)rep, counts, p);
        int total = 0;
        for (int i = 0; i < N; i++) {
            double np = N * p[i];
            /* 1e-9: rounding of the CDF at an exact integer boundary */
            assert_true(counts[i] >= floor(np - 1e-9) && counts[i] <= ceil(np + 1e-9));
            total += counts[i];
        }
        assert_int_equal(total, N);
    }
}

/* 2000 multinomial draws of 50 ancestors over fixed weights: pooled counts vs 10^5 p_i */
static void test_multinomial_chi_square(void **state) {
    enum { N = 50, REPS = 2000 };
    tu_rng rng;
    tu_rng_seed(&rng, 62);
    double a[N], p[N], chi = 0;
    int counts[N];
    long pooled[N] = {0};
    random_logw(&rng, a, N, 0.7);
    for (int rep = 0; rep < REPS; rep++) {
        resample_counts(a, N, EBMC_RESAMPLE_MULTINOMIAL, (uint32_t)rep, counts, p);
        for (int i = 0; i < N; i++) pooled[i] += counts[i];
    }
    for (int i = 0; i < N; i++) {
        double e = (double)N * REPS * p[i];
        chi += (pooled[i] - e) * (pooled[i] - e) / e;
    }
    double k = N - 1, wh = 1 - 2 / (9 * k) + 3.719 * sqrt(2 / (9 * k)); /* z_0.9999 = 3.719 */
    double q = k * wh * wh * wh;
    printf("  multinomial: chi-square %.1f with %d dof (99.99%% quantile %.1f)\n", chi, N - 1, q);
    assert_true(chi < q);
}

/* E[(1/N) sum_j phi(x_{a_j})] = sum_i p_i phi(x_i) for both schemes */
static void test_resampling_unbiased(void **state) {
    enum { N = 200, REPS = 3000 };
    tu_rng rng;
    tu_rng_seed(&rng, 63);
    double a[N], p[N], phi[N], target = 0;
    int counts[N];
    random_logw(&rng, a, N, 1.5);
    for (int i = 0; i < N; i++) phi[i] = tu_normal(&rng) + (i % 7 == 0 ? 4.0 : 0.0);
    for (int sc = 0; sc < 2; sc++) {
        double s1 = 0, s2 = 0;
        for (int rep = 0; rep < REPS; rep++) {
            resample_counts(a, N, (ebmc_resample_scheme)sc, (uint32_t)(1000 + rep), counts, p);
            double m = 0;
            for (int i = 0; i < N; i++) m += counts[i] * phi[i] / N;
            s1 += m, s2 += m * m;
        }
        if (sc == 0)
            for (int i = 0; i < N; i++) target += p[i] * phi[i];
        double mean = s1 / REPS, se = sqrt((s2 / REPS - mean * mean) / (REPS - 1));
        printf("  %s: mean of resampled averages %.5f, weighted mean %.5f, se %.2g\n",
               sc ? "multinomial" : "systematic", mean, target, se);
        assert_true(fabs(mean - target) < 5 * se + 1e-12);
    }
}

static void test_ess_and_lse(void **state) {
    enum { N = 1000 };
    double a[N], b[N], st[EBMC_JZ_STATS_LEN], sb[EBMC_JZ_STATS_LEN];
    float w[N], wb[N];
    ebmc_jz_stats_desc sd = {N, 1.0f};
    for (int i = 0; i < N; i++) a[i] = -3.5;
    OK(ebmc_jz_stats(CTX, &sd, a, st, w));
    assert_true(st[4] == N && st[3] == -3.5);
    for (int i = 0; i < N; i++) a[i] = i == 17 ? 0.0 : -1e4;
    OK(ebmc_jz_stats(CTX, &sd, a, st, w));
    assert_true(st[4] == 1.0 && w[17] == 1.0f && w[0] == 0.0f);
    tu_rng rng;
    tu_rng_seed(&rng, 64);
    for (double c = -1e4; c <= 1e4; c += 5e3) {
        random_logw(&rng, a, N, 3.0);
        for (int i = 0; i < N; i++) b[i] = a[i] + c;
        OK(ebmc_jz_stats(CTX, &sd, a, st, w));
        OK(ebmc_jz_stats(CTX, &sd, b, sb, wb));
        assert_true(st[4] >= 1 && st[4] <= N && isfinite(sb[3]));
        assert_true(fabs(sb[3] - st[3] - c) < 1e-12 * (1 + fabs(c)));
        assert_true(fabs(sb[4] - st[4]) < 1e-9 * st[4]);
        for (int i = 0; i < N; i++) assert_true(fabsf(w[i] - wb[i]) <= 1e-6f * w[i] + 1e-30f);
    }
    /* above the threshold: identity ancestors, A and the bookkeeping kept */
    double cdf[N];
    int32_t idx[N];
    st[5] = 0.25, st[6] = 2;
    OK(ebmc_jz_stats(CTX, &sd, a, st, NULL));
    memcpy(b, a, sizeof a);
    ebmc_jz_resample_desc rd = {N, EBMC_RESAMPLE_SYSTEMATIC, st[4] / N * 0.99, {1, 1, NULL, 0}};
    OK(ebmc_jz_resample(CTX, &rd, a, st, cdf, idx));
    assert_true(st[7] == 0 && st[5] == 0.25 && st[6] == 2 && !memcmp(a, b, sizeof a));
    for (int i = 0; i < N; i++) assert_int_equal(idx[i], i);
}

/* 10^6 walkers, weights over 30 orders of magnitude: a float32 CDF (24-bit mantissa) would hold
 * the tail's increments below its resolution; the float64 one yields valid, complete ancestors */
static void test_million_ancestors(void **state) {
    const int n = 1000000;
    double *a = malloc(n * sizeof(double)), *p = malloc(n * sizeof(double));
    int *counts = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) a[i] = -70.0 * i / n;
    for (int sc = 0; sc < 2; sc++) {
        resample_counts(a, n, (ebmc_resample_scheme)sc, 5, counts, p);
        long total = 0;
        for (int i = 0; i < n; i++) total += counts[i];
        assert_int_equal(total, n);
        if (sc == 0)
            for (int i = 0; i < n; i++) assert_true(counts[i] >= floor(n * p[i] - 1e-6) && counts[i] <= ceil(n * p[i] + 1e-6));
    }
    free(a), free(p), free(counts);
}

/* A mean moving 0.05 per step for 10^4 steps, h = 0.1, no resampling: the float64 log-weights
 * drift to |A| in the hundreds (e^A overflows float at 88); statistics stay finite, weights sum
 * to 1, and A equals the long-double sum of the op's per-step increments. */
static void test_float64_accumulation_1e4_steps(void **state) {
    enum { N = 200, STEPS = 10000 };
    float x[N], xn[N], u[N], g[N], un[N], gn[N], w[N];
    double A[N] = {0}, one[N], st[EBMC_JZ_STATS_LEN];
    long double ref[N] = {0};
    ebmc_rng_desc init = {N, 1, EBMC_RNG_NORMAL, 0, 1, false, {5, 3, NULL, 0}};
    OK(ebmc_rng(CTX, &init, x));
    ebmc_jz_logw_desc jd = {N, 1, EBMC_JZ_ULA, 0.1, sqrt(0.2)};
    for (int k = 0; k < STEPS; k++) {
        double mu0 = 0.05 * k, mu1 = 0.05 * (k + 1);
        for (int i = 0; i < N; i++) g[i] = x[i] - (float)mu0, u[i] = 0.5f * g[i] * g[i];
        memcpy(xn, x, sizeof x);
        ebmc_langevin_desc ld = {N, 1, 0.1f, 0, sqrtf(0.2f), 0, false, 0, 0, EBMC_NOISE_AFTER, {5, 1, NULL, (uint32_t)k}};
        OK(ebmc_langevin(CTX, &ld, xn, g));
        for (int i = 0; i < N; i++) gn[i] = xn[i] - (float)mu1, un[i] = 0.5f * gn[i] * gn[i];
        memset(one, 0, sizeof one);
        OK(ebmc_jz_logw(CTX, &jd, x, xn, u, g, un, gn, one));
        OK(ebmc_jz_logw(CTX, &jd, x, xn, u, g, un, gn, A));
        for (int i = 0; i < N; i++) ref[i] += one[i];
        memcpy(x, xn, sizeof x);
    }
    ebmc_jz_stats_desc sd = {N, 1.0f};
    OK(ebmc_jz_stats(CTX, &sd, A, st, w));
    double amax = 0, err = 0, wsum = 0;
    for (int i = 0; i < N; i++) {
        amax = fmax(amax, fabs(A[i]));
        err = fmax(err, fabs((double)(A[i] - ref[i])));
        wsum += w[i];
    }
    printf("  10^4 steps: max |A| %.1f, max |A - long double sum| %.3g, log mean e^A %.2f, ESS %.2f\n", amax, err,
           st[3], st[4]);
    assert_true(amax > 88); /* the regime where float32 exp(A) overflows */
    assert_true(isfinite(st[3]) && st[4] >= 1 && st[4] <= N);
    assert_true(fabs(wsum - 1) < 1e-5);
    /* 10^4 double roundings of terms <= |A|: <= 1e4 * amax * 2^-53 */
    assert_true(err <= 1e4 * amax * 1.2e-16);
}

/* the walkers follow their ancestors: ROWS_COPY with src = the ancestors, dst = NULL (identity),
 * a repeated ancestor copied twice; a bad shape is refused */
static void test_gather_rows(void **state) {
    float src[6] = {1, 2, 3, 4, 5, 6}, dst[6];
    int32_t idx[3] = {2, 0, 2};
    ebmc_rows_desc gd = {3, 2, 3, 3};
    OK(ebmc_rows_copy(CTX, &gd, src, idx, NULL, dst));
    const float want[6] = {5, 6, 1, 2, 5, 6};
    assert_memory_equal(dst, want, sizeof want);
    gd.row_elems = 0;
    assert_int_equal(ebmc_rows_copy(CTX, &gd, src, idx, NULL, dst), EBMC_E_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_systematic_counts),
        cmocka_unit_test(test_multinomial_chi_square),
        cmocka_unit_test(test_resampling_unbiased),
        cmocka_unit_test(test_ess_and_lse),
        cmocka_unit_test(test_million_ancestors),
        cmocka_unit_test(test_float64_accumulation_1e4_steps),
        cmocka_unit_test(test_gather_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
