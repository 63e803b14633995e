/* defines: tm_mmd2 (squared MMD between 2-D point sets, a sum of Gaussian kernels) and
 * tm_mode_shares (nearest-centre shares and the fraction within a radius of a centre): the
 * measurements of the recipes' 2-D mixture tests (tests/test_coop_train.c). */
#ifndef EBMC_TESTS_TOY_METRICS_H
#define EBMC_TESTS_TOY_METRICS_H

/* squared MMD of x (n, 2) and y (m, 2), kernel sum_q exp(-d^2 / (2 bw_q^2)), bw = 0.05, 0.2, 1
 * (the biased V-statistic: >= 0, 0 iff the empirical distributions coincide) */
double tm_mmd2(const float *x, int n, const float *y, int m);
/* share[k]: the fraction of x nearest to centre k (of M); *in_mode: the fraction within radius
 * of its nearest centre */
void tm_mode_shares(const float *x, int n, const float *centres, int M, double radius, double *share,
                    double *in_mode);

#endif
