/* The Inception Score (softmax of logits, KL to the split's marginal) and the kernel inception
 * distance (unbiased MMD^2, cubic polynomial kernel, over random subsets). Host code in float64;
 * the kernel matrices by CBLAS dgemm. See include/ebmc/metrics.h. */
#include "ebmc/metrics.h"
#include "ebmc/philox.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* softmax of one row of logits into p (double), stable (max subtracted) */
static void softmax_row(const float *z, int k, double *p) {
    double m = z[0], s = 0;
    for (int j = 1; j < k; j++) m = z[j] > m ? z[j] : m;
    for (int j = 0; j < k; j++) s += (p[j] = exp((double)z[j] - m));
    for (int j = 0; j < k; j++) p[j] /= s;
}

/* exp(mean_i KL(p_i || mean_i p_i)) over rows [a, b) */
static double split_score(const float *logits, int64_t a, int64_t b, int k, double *p, double *py) {
    memset(py, 0, (size_t)k * sizeof(double));
    for (int64_t i = a; i < b; i++) {
        softmax_row(logits + (size_t)i * k, k, p);
        for (int j = 0; j < k; j++) py[j] += p[j];
    }
    for (int j = 0; j < k; j++) py[j] /= (double)(b - a);
    double kl = 0;
    for (int64_t i = a; i < b; i++) {
        softmax_row(logits + (size_t)i * k, k, p);
        for (int j = 0; j < k; j++)
            if (p[j] > 0) kl += p[j] * (log(p[j]) - log(py[j])); /* 0 log 0 = 0 */
    }
    return exp(kl / (double)(b - a));
}

ebmc_status ebmc_inception_score(const float *logits, int64_t n, int k, int splits, double *mean,
                                 double *std, char *err, size_t errlen) {
    if (n < 1 || k < 2 || splits < 1 || splits > n) {
        ebmc_set_err(err, errlen, "IS: %d splits of %lld images (%d classes): need 1 <= splits <= images", splits,
                     (long long)n, k);
        return EBMC_E_INVALID;
    }
    double *p = malloc((size_t)k * sizeof(double)), *py = malloc((size_t)k * sizeof(double));
    double *sc = malloc((size_t)splits * sizeof(double));
    if (!p || !py || !sc) {
        free(p), free(py), free(sc);
        ebmc_set_err(err, errlen, "IS: out of memory");
        return EBMC_E_NOMEM;
    }
    double m = 0, v = 0;
    for (int s = 0; s < splits; s++) {
        sc[s] = split_score(logits, s * n / splits, (s + 1) * n / splits, k, p, py);
        m += sc[s];
    }
    m /= splits;
    for (int s = 0; s < splits; s++) v += (sc[s] - m) * (sc[s] - m);
    *mean = m, *std = sqrt(v / splits);
    free(p), free(py), free(sc);
    return EBMC_OK;
}

/* idx[0..m) := m distinct indices of [0, n), a partial Fisher-Yates shuffle driven by Philox
 * (seed, subset, side): the same subsets for the same seed, whatever the machine. */
static void draw_subset(int64_t *perm, int64_t n, int m, uint64_t seed, uint32_t subset, uint32_t side) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int i = 0; i < m; i++) {
        float u[4];
        ebmc_philox_uniform4(seed, (uint32_t)i, subset, side, 0x4b1du, u);
        int64_t j = i + (int64_t)((double)u[0] * (double)(n - i));
        if (j >= n) j = n - 1;
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

/* sum of (a b^T / d + 1)^3 over all pairs, the diagonal left out when `same` */
static double kernel_sum(const double *a, const double *b, int m, int d, bool same, double *k) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, d, 1.0 / d, a, d, b, d, 0.0, k, m);
    double s = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            if (same && i == j) continue;
            double v = k[(size_t)i * m + j] + 1.0;
            s += v * v * v;
        }
    return s;
}

static void gather(const float *x, const int64_t *idx, int m, int d, double *out) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = x[(size_t)idx[i] * d + j];
}

ebmc_status ebmc_kid(const float *x, int64_t n, const float *y, int64_t m, int d, int subsets,
                     int subset_size, uint64_t seed, double *mean, double *std, char *err,
                     size_t errlen) {
    int64_t lim = n < m ? n : m;
    int s = (int)(subset_size < lim ? subset_size : lim);
    if (s < 2 || subsets < 1 || d < 1) {
        ebmc_set_err(err, errlen, "KID: subsets of %d rows (of %lld and %lld) and %d subsets: need >= 2 rows, >= 1 "
                     "subset", s, (long long)n, (long long)m, subsets);
        return EBMC_E_INVALID;
    }
    int64_t *px = malloc((size_t)n * sizeof *px), *py = malloc((size_t)m * sizeof *py);
    double *a = malloc((size_t)s * d * sizeof(double)), *b = malloc((size_t)s * d * sizeof(double));
    double *k = malloc((size_t)s * s * sizeof(double)), *v = malloc((size_t)subsets * sizeof(double));
    ebmc_status st = px && py && a && b && k && v ? EBMC_OK : EBMC_E_NOMEM;
    double acc = 0, var = 0;
    for (int t = 0; !st && t < subsets; t++) {
        draw_subset(px, n, s, seed, (uint32_t)t, 0);
        draw_subset(py, m, s, seed, (uint32_t)t, 1);
        gather(x, px, s, d, a);
        gather(y, py, s, d, b);
        double kxx = kernel_sum(a, a, s, d, true, k), kyy = kernel_sum(b, b, s, d, true, k);
        double kxy = kernel_sum(a, b, s, d, false, k);
        v[t] = (kxx + kyy) / ((double)s * (s - 1)) - 2.0 * kxy / ((double)s * s);
        acc += v[t];
    }
    if (!st) {
        *mean = acc / subsets;
        for (int t = 0; t < subsets; t++) var += (v[t] - *mean) * (v[t] - *mean);
        *std = sqrt(var / subsets);
    } else {
        ebmc_set_err(err, errlen, "KID: out of memory");
    }
    free(px), free(py), free(a), free(b), free(k), free(v);
    return st;
}
