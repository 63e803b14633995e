/* defines: the sample-quality metrics on features: ebmc_stats_t (mean and covariance of
 * features, accumulated batch by batch), ebmc_frechet_distance (FID), ebmc_inception_score (IS)
 * and ebmc_kid (kernel inception distance), and the pytorch-fid statistics file (.npz, mu and
 * sigma). All host code, float64, LAPACKE (Debian liblapacke-dev) and CBLAS (OpenBLAS).
 *
 * Conventions are those of the reference tools, so numbers compare both ways:
 *   stats   mu = mean, sigma = np.cov(feats, rowvar=False) (divides by N - 1), as pytorch-fid's
 *           calculate_activation_statistics; written as its .npz (np.savez(mu=, sigma=)).
 *   FID     |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), as pytorch-fid's
 *           calculate_frechet_distance. The trace of the square root is computed as
 *           sum_i sqrt(lambda_i) over the eigenvalues of the symmetric positive semi-definite
 *           S1^(1/2) S2 S1^(1/2) (similar to S1 S2, so the same eigenvalues), with LAPACK's
 *           dsyevd: exact for singular and near-singular covariances, where scipy's sqrtm of the
 *           non-symmetric S1 S2 needs pytorch-fid's eps*I offset and can return a complex part.
 *           Eigenvalues below zero (rounding) count as zero.
 *   IS      the 1008-way softmax of the logits, rows cut into `splits` consecutive parts (part k:
 *           rows [k N / splits, (k+1) N / splits)), exp(mean KL(p(y|x) || p(y))) per part; the
 *           mean and the population std (np.std) over parts, as the original TF code
 *           (openai/improved-gan) and torch-fidelity.
 *   KID     unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
 *           `subsets` pairs of random subsets of `subset_size` rows each (drawn without
 *           replacement, Philox from `seed`), as torch-fidelity (kid_subsets 100,
 *           kid_subset_size 1000) and Binkowski et al.; mean and population std over subsets. */
#ifndef EBMC_METRICS_H
#define EBMC_METRICS_H

#include "ebmc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int d;
    int64_t n;     /* rows accumulated */
    double *mu;    /* (d) */
    double *sigma; /* (d, d), row-major, symmetric */
    double *shift; /* (d) the first row: sums are of (x - shift), against cancellation */
    double *sum;   /* (d) */
    double *buf;   /* (chunk, d) rows widened to double */
} ebmc_stats_t;

/* An empty accumulator for d-dimensional features (d >= 1). NULL when out of memory. */
ebmc_stats_t *ebmc_stats_create(int d);
void ebmc_stats_free(ebmc_stats_t *s);
/* Adds n rows of d floats (row-major). */
void ebmc_stats_add(ebmc_stats_t *s, const float *x, int64_t n);
/* mu and sigma of the rows added so far (n >= 2 for sigma; with n == 1 sigma is 0). */
void ebmc_stats_finish(ebmc_stats_t *s);

/* FID between N(mu1, s1) and N(mu2, s2), d-dimensional. EBMC_E_INVALID (with err) when LAPACK
 * fails or an input is not finite. */
ebmc_status ebmc_frechet_distance(const double *mu1, const double *s1, const double *mu2,
                                  const double *s2, int d, double *fid, char *err, size_t errlen);

/* IS of logits (n, k) float. splits in 1..n. */
ebmc_status ebmc_inception_score(const float *logits, int64_t n, int k, int splits, double *mean,
                                 double *std, char *err, size_t errlen);

/* KID between features x (n, d) and y (m, d); subset_size is cut to min(n, m) (>= 2). */
ebmc_status ebmc_kid(const float *x, int64_t n, const float *y, int64_t m, int d, int subsets,
                     int subset_size, uint64_t seed, double *mean, double *std, char *err,
                     size_t errlen);

/* pytorch-fid's statistics file: np.savez(path, mu=mu, sigma=sigma), float64. */
ebmc_status ebmc_stats_save_npz(const char *path, const double *mu, const double *sigma, int d,
                                char *err, size_t errlen);
/* Reads mu (d) and sigma (d, d) from such a file (pytorch-fid's, TTUR's, or ebmc's; float32 or
 * float64, stored or deflated); *d is their dimension. EBMC_E_IO names the file and the
 * problem (missing array, shapes that disagree). */
ebmc_status ebmc_stats_load_npz(const char *path, double **mu, double **sigma, int *d, char *err,
                                size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
