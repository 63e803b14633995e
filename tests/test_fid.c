/* FID, IS and KID on features against exact answers: the Frechet distance of Gaussians with
 * diagonal, rotated (commuting), non-commuting 2x2 (closed form) and singular / near-singular
 * covariances; mean and covariance of features against a two-pass float64 computation; the
 * Inception Score of one-hot and of hand-computed softmaxes; KID of 1-D and 2-D sets by hand. */
#include "ebmc/metrics.h"
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 2.220446049250313e-16

static double fid_of(const double *m1, const double *s1, const double *m2, const double *s2, int d) {
    double f;
    char err[256];
    assert_int_equal(ebmc_frechet_distance(m1, s1, m2, s2, d, &f, err, sizeof err), EBMC_OK);
    return f;
}

/* q := a random rotation (product of Givens rotations), (d, d) */
static void rotation(double *q, int d, unsigned seed) {
    memset(q, 0, sizeof(double) * d * d);
    for (int i = 0; i < d; i++) q[i * d + i] = 1;
    srand(seed);
    for (int r = 0; r < 3 * d; r++) {
        int i = rand() % d, j = rand() % d;
        if (i == j) continue;
        double th = (double)rand() / RAND_MAX * 6.28318, c = cos(th), s = sin(th);
        for (int k = 0; k < d; k++) {
            double a = q[k * d + i], b = q[k * d + j];
            q[k * d + i] = c * a - s * b, q[k * d + j] = s * a + c * b;
        }
    }
}

/* out := q diag(w) q^T */
static void conj_diag(double *out, const double *q, const double *w, int d) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += q[i * d + k] * w[k] * q[j * d + k];
            out[i * d + j] = s;
        }
}

/* Diagonal and rotated: FID = |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2 exactly. Tolerance: the
 * eigensolver's backward error, a few d*eps*||S|| per eigenvalue, through sqrt near the smallest
 * eigenvalue (0.05): d * 8 * d*eps*||S|| / (2 sqrt(0.05)) summed over d terms, times 2. */
static void test_fid_diagonal_and_rotated(void **state) {
    enum { D = 6 };
    double a[D] = {0.05, 0.3, 1, 2.5, 4, 9}, b[D] = {1, 0.2, 0.05, 3, 7.5, 9};
    double m1[D] = {0, 1, 2, 3, 4, 5}, m2[D] = {0.5, 1, -2, 3, 4.25, 5};
    double want = 0;
    for (int i = 0; i < D; i++) want += (m1[i] - m2[i]) * (m1[i] - m2[i]) + pow(sqrt(a[i]) - sqrt(b[i]), 2);
    double s1[D * D] = {0}, s2[D * D] = {0}, q[D * D], r1[D * D], r2[D * D];
    for (int i = 0; i < D; i++) s1[i * D + i] = a[i], s2[i * D + i] = b[i];
    double tol = 2 * D * 8 * D * EPS * 9.0 * 9.0 / (2 * sqrt(0.05));
    double f = fid_of(m1, s1, m2, s2, D);
    printf("diagonal: FID %.15g, exact %.15g, |err| %.2e (tolerance %.2e)\n", f, want, fabs(f - want), tol);
    assert_true(fabs(f - want) <= tol);
    rotation(q, D, 7);
    conj_diag(r1, q, a, D);
    conj_diag(r2, q, b, D);
    f = fid_of(m1, r1, m2, r2, D);
    printf("rotated:  FID %.15g, exact %.15g, |err| %.2e\n", f, want, fabs(f - want));
    assert_true(fabs(f - want) <= tol);
    assert_true(fabs(fid_of(m1, r1, m1, r1, D)) <= tol); /* a Gaussian to itself: 0 */
}

/* Non-commuting 2x2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for M = S1 S2 (eigenvalues >= 0). */
static void test_fid_noncommuting_2x2(void **state) {
    double s1[4] = {2, 0.9, 0.9, 1}, s2[4] = {0.5, -0.3, -0.3, 3}, mu[2] = {0, 0};
    double m00 = s1[0] * s2[0] + s1[1] * s2[2], m11 = s1[2] * s2[1] + s1[3] * s2[3];
    double det = (s1[0] * s1[3] - s1[1] * s1[2]) * (s2[0] * s2[3] - s2[1] * s2[2]);
    double want = s1[0] + s1[3] + s2[0] + s2[3] - 2 * sqrt(m00 + m11 + 2 * sqrt(det));
    double f = fid_of(mu, s1, mu, s2, 2);
    printf("2x2 non-commuting: FID %.15g, closed form %.15g, |err| %.2e\n", f, want, fabs(f - want));
    assert_true(fabs(f - want) <= 1e3 * EPS * 4);
}

/* Singular: S1 = v v^T (rank 1) gives tr sqrt(S1 S2) = sqrt(v^T S2 v); S1 = S2 singular gives
 * |dmu|^2. Rounding leaves eigenvalues of about +-d*eps*||M|| where the exact ones are 0, and
 * sqrt turns each into up to sqrt(d eps ||M||): tolerance 2 * d * sqrt(8 d eps ||M||). */
static void test_fid_singular(void **state) {
    enum { D = 5 };
    double v[D] = {1, -2, 0.5, 3, 1}, s1[D * D], s2[D * D], q[D * D], w[D] = {0.5, 1, 2, 3, 4}, mu[D] = {0};
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) s1[i * D + j] = v[i] * v[j];
    rotation(q, D, 3);
    conj_diag(s2, q, w, D);
    double vsv = 0, tr1 = 0, tr2 = 0;
    for (int i = 0; i < D; i++) {
        tr1 += s1[i * D + i], tr2 += s2[i * D + i];
        for (int j = 0; j < D; j++) vsv += v[i] * s2[i * D + j] * v[j];
    }
    double want = tr1 + tr2 - 2 * sqrt(vsv), norm = tr1 * 4;
    double tol = 2 * D * sqrt(8 * D * EPS * norm);
    double f = fid_of(mu, s1, mu, s2, D);
    printf("rank-1 vs full: FID %.15g, exact %.15g, |err| %.2e (tolerance %.2e)\n", f, want, fabs(f - want), tol);
    assert_true(fabs(f - want) <= tol);
    double mu2[D] = {1, 0, 0, 0, -1};
    f = fid_of(mu, s1, mu2, s1, D); /* the same singular Gaussian, shifted: |dmu|^2 = 2 */
    printf("rank-1 vs itself shifted: FID %.15g, exact 2, |err| %.2e (tolerance %.2e)\n", f, fabs(f - 2), tol);
    assert_true(fabs(f - 2) <= tol);
    double w2[D] = {1e-13, 1e-9, 2, 3, 4}, s3[D * D]; /* near-singular, condition 4e13 */
    conj_diag(s3, q, w2, D);
    double want3 = 0;
    for (int i = 0; i < D; i++) want3 += pow(sqrt(w[i]) - sqrt(w2[i]), 2);
    f = fid_of(mu, s2, mu, s3, D);
    printf("near-singular (eigenvalues 1e-13, 1e-9): FID %.15g, exact %.15g, |err| %.2e\n", f, want3, fabs(f - want3));
    assert_true(fabs(f - want3) <= 2 * D * sqrt(8 * D * EPS * 16));
}

/* mean and covariance (N - 1) against a two-pass float64 computation, rows added in 3 calls. */
static void test_fid_stats_accumulate(void **state) {
    enum { N = 600, D = 7 };
    float *x = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N * D; i++) x[i] = (float)(100.0 + sin(i * 0.77) * (1 + i % D) + cos(i * 0.13));
    ebmc_stats_t *s = ebmc_stats_create(D);
    ebmc_stats_add(s, x, 1);
    ebmc_stats_add(s, x + D, 300);
    ebmc_stats_add(s, x + 301 * D, N - 301);
    ebmc_stats_finish(s);
    double mu[D] = {0}, worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) mu[j] += x[i * D + j] / (double)N;
    for (int j = 0; j < D; j++) worst = fmax(worst, fabs(s->mu[j] - mu[j]) / fabs(mu[j]));
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            double c = 0;
            for (int i = 0; i < N; i++) c += (x[i * D + a] - mu[a]) * (x[i * D + b] - mu[b]);
            c /= N - 1;
            worst = fmax(worst, fabs(s->sigma[a * D + b] - c) / (1e-300 + sqrt(fabs(s->sigma[a * D + a] * s->sigma[b * D + b]))));
        }
    printf("stats: worst relative error %.2e (tolerance N*eps*|mean|^2/var = %.2e)\n", worst, N * EPS * 1e4);
    assert_true(worst <= N * EPS * 1e4);
    ebmc_stats_free(s);
    free(x);
}

static void test_fid_inception_score(void **state) {
    enum { K = 5, N = 50 };
    float z[N * K];
    for (int i = 0; i < N; i++) /* one-hot (exp(-2000) = 0 in float64): split k holds each class twice */
        for (int j = 0; j < K; j++) z[i * K + j] = j == i % K ? 1000.0f : -1000.0f;
    double m, s;
    char err[256];
    assert_int_equal(ebmc_inception_score(z, N, K, 5, &m, &s, err, sizeof err), EBMC_OK);
    printf("IS one-hot, 5 classes evenly: %.15g +- %.3g (exact 5 +- 0)\n", m, s);
    assert_true(fabs(m - 5) <= 1e-12 && s <= 1e-12);
    /* rows (1/4, 3/4), (3/4, 1/4) | (1/2, 1/2) twice: splits 3^(3/4)/2 and 1 */
    float h[8] = {0, (float)log(3.0), (float)log(3.0), 0, 0, 0, 0, 0};
    assert_int_equal(ebmc_inception_score(h, 4, 2, 2, &m, &s, err, sizeof err), EBMC_OK);
    double a = pow(3, 0.75) / 2, wm = (a + 1) / 2, ws = (a - 1) / 2;
    printf("IS by hand: %.15g +- %.15g (exact %.15g +- %.15g)\n", m, s, wm, ws);
    /* log(3) rounded to float: p moves by ~eps_f32, the score by about as much */
    assert_true(fabs(m - wm) <= 1e-6 && fabs(s - ws) <= 1e-6);
    assert_int_equal(ebmc_inception_score(h, 4, 2, 5, &m, &s, err, sizeof err), EBMC_E_INVALID);
}

static void test_fid_kid_by_hand(void **state) {
    /* x = {0, 1}, y = {1, 2}, k = (xy + 1)^3: Kxx off-diagonal 1, Kyy 27, Kxy {1, 1, 8, 27}:
     * 2/2 + 54/2 - 2 * 37/4 = 9.5 */
    float x[2] = {0, 1}, y[2] = {1, 2};
    double m, s;
    char err[256];
    assert_int_equal(ebmc_kid(x, 2, y, 2, 1, 3, 1000, 1, &m, &s, err, sizeof err), EBMC_OK);
    printf("KID by hand (1-D): %.15g +- %g (exact 9.5)\n", m, s);
    assert_true(fabs(m - 9.5) <= 1e-13 && s <= 1e-13);
    float x2[4] = {0, 0, 1, 1}, y2[4] = {1, 1, 2, 2}; /* the same dot products / d = 2 */
    assert_int_equal(ebmc_kid(x2, 2, y2, 2, 2, 1, 2, 1, &m, &s, err, sizeof err), EBMC_OK);
    assert_true(fabs(m - 9.5) <= 1e-13);
    /* subsets of 4 rows drawn from 6 and 7: constant sets give the same value for any draw,
     * k(1,1) + k(2,2) - 2 k(1,2) = 8 + 125 - 54 = 79 */
    float c1[6] = {1, 1, 1, 1, 1, 1}, c2[7] = {2, 2, 2, 2, 2, 2, 2};
    assert_int_equal(ebmc_kid(c1, 6, c2, 7, 1, 5, 4, 9, &m, &s, err, sizeof err), EBMC_OK);
    printf("KID constant sets, subsets of 4: %.15g (exact 79)\n", m);
    assert_true(fabs(m - 79) <= 1e-12 && s <= 1e-12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fid_diagonal_and_rotated),
        cmocka_unit_test(test_fid_noncommuting_2x2),
        cmocka_unit_test(test_fid_singular),
        cmocka_unit_test(test_fid_stats_accumulate),
        cmocka_unit_test(test_fid_inception_score),
        cmocka_unit_test(test_fid_kid_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
