/* Feature statistics (mean, covariance) and the Frechet distance between two Gaussians (FID),
 * with LAPACKE's dsyevd for the symmetric eigenproblems and CBLAS for the products; the
 * pytorch-fid statistics file. See include/ebmc/metrics.h. */
#include "ebmc/metrics.h"
#include "ebmc/npy.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATS_CHUNK 256 /* rows widened to double per syrk */

ebmc_stats_t *ebmc_stats_create(int d) {
    if (d < 1) return NULL;
    ebmc_stats_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->d = d;
    s->mu = calloc((size_t)d, sizeof(double));
    s->sigma = calloc((size_t)d * d, sizeof(double));
    s->shift = calloc((size_t)d, sizeof(double));
    s->sum = calloc((size_t)d, sizeof(double));
    s->buf = malloc((size_t)STATS_CHUNK * d * sizeof(double));
    if (!s->mu || !s->sigma || !s->shift || !s->sum || !s->buf) {
        ebmc_stats_free(s);
        return NULL;
    }
    return s;
}

void ebmc_stats_free(ebmc_stats_t *s) {
    if (!s) return;
    free(s->mu), free(s->sigma), free(s->shift), free(s->sum), free(s->buf);
    free(s);
}

/* sigma accumulates sum (x - shift)(x - shift)^T (upper triangle) until finish. */
void ebmc_stats_add(ebmc_stats_t *s, const float *x, int64_t n) {
    int d = s->d;
    if (n > 0 && s->n == 0)
        for (int j = 0; j < d; j++) s->shift[j] = x[j];
    for (int64_t r0 = 0; r0 < n; r0 += STATS_CHUNK) {
        int rows = (int)(n - r0 < STATS_CHUNK ? n - r0 : STATS_CHUNK);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++) {
                double v = (double)x[(size_t)(r0 + r) * d + j] - s->shift[j];
                s->buf[(size_t)r * d + j] = v;
                s->sum[j] += v;
            }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, rows, 1.0, s->buf, d, 1.0, s->sigma, d);
    }
    s->n += n;
}

void ebmc_stats_finish(ebmc_stats_t *s) {
    int d = s->d;
    double n = (double)s->n, den = s->n > 1 ? n - 1 : 1;
    for (int i = 0; i < d; i++) s->mu[i] = s->shift[i] + s->sum[i] / n;
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) {
            double v = s->n > 1 ? (s->sigma[(size_t)i * d + j] - s->sum[i] * s->sum[j] / n) / den : 0.0;
            s->sigma[(size_t)i * d + j] = s->sigma[(size_t)j * d + i] = v;
        }
}

/* a := a^(1/2) for a symmetric PSD (d, d) (negative eigenvalues from rounding as 0). */
static int sym_sqrt(double *a, int d) {
    double *w = malloc((size_t)d * sizeof(double)), *t = malloc((size_t)d * d * sizeof(double));
    int info = w && t ? LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', d, a, d, w) : -1000;
    if (!info) { /* a holds V (columns); t = V diag(sqrt w); a = t V^T */
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) t[(size_t)i * d + j] = a[(size_t)i * d + j] * sqrt(w[j] > 0 ? w[j] : 0);
        double *v = malloc((size_t)d * d * sizeof(double));
        if (!v) info = -1000;
        else {
            memcpy(v, a, (size_t)d * d * sizeof(double));
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, t, d, v, d, 0.0, a, d);
            free(v);
        }
    }
    free(w), free(t);
    return info;
}

/* tr((s1 s2)^(1/2)) = sum sqrt(eig(s1^(1/2) s2 s1^(1/2))). */
static int trace_sqrt_product(const double *s1, const double *s2, int d, double *tr) {
    size_t dd = (size_t)d * d;
    double *r = malloc(dd * sizeof(double)), *t = malloc(dd * sizeof(double)), *w = malloc((size_t)d * sizeof(double));
    double *u = malloc(dd * sizeof(double));
    int info = -1000;
    if (r && t && w && u) {
        memcpy(r, s1, dd * sizeof(double));
        info = sym_sqrt(r, d);
    }
    if (!info) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, r, d, s2, d, 0.0, t, d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, t, d, r, d, 0.0, u, d);
        for (int i = 0; i < d; i++) /* symmetric up to rounding: average the two triangles */
            for (int j = i + 1; j < d; j++)
                u[(size_t)i * d + j] = u[(size_t)j * d + i] = 0.5 * (u[(size_t)i * d + j] + u[(size_t)j * d + i]);
        info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', d, u, d, w);
    }
    if (!info) {
        double acc = 0;
        for (int i = 0; i < d; i++) acc += sqrt(w[i] > 0 ? w[i] : 0);
        *tr = acc;
    }
    free(r), free(t), free(w), free(u);
    return info;
}

ebmc_status ebmc_frechet_distance(const double *mu1, const double *s1, const double *mu2,
                                  const double *s2, int d, double *fid, char *err, size_t errlen) {
    double dm = 0, t1 = 0, t2 = 0;
    for (int i = 0; i < d; i++) {
        dm += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
        t1 += s1[(size_t)i * d + i], t2 += s2[(size_t)i * d + i];
    }
    for (size_t i = 0; i < (size_t)d * d; i++)
        if (!isfinite(s1[i]) || !isfinite(s2[i])) {
            ebmc_set_err(err, errlen, "FID: a covariance holds NaN or Inf (non-finite features?)");
            return EBMC_E_INVALID;
        }
    if (!isfinite(dm)) {
        ebmc_set_err(err, errlen, "FID: a mean holds NaN or Inf (non-finite features?)");
        return EBMC_E_INVALID;
    }
    double tr;
    int info = trace_sqrt_product(s1, s2, d, &tr);
    if (info) {
        ebmc_set_err(err, errlen, "FID: LAPACKE_dsyevd failed (info %d) on a %dx%d covariance", info, d, d);
        return EBMC_E_INVALID;
    }
    *fid = dm + t1 + t2 - 2.0 * tr;
    return EBMC_OK;
}

ebmc_status ebmc_stats_save_npz(const char *path, const double *mu, const double *sigma, int d,
                                char *err, size_t errlen) {
    const char *names[2] = {"mu", "sigma"};
    int nd[2] = {1, 2};
    int64_t shapes[2][4] = {{d}, {d, d}};
    const double *data[2] = {mu, sigma};
    return ebmc_npz_write_f64(path, 2, names, nd, shapes, data, err, errlen);
}

/* A covariance read from a file must be one: symmetric and positive semi-definite, up to the
 * rounding of the coarsest dtype the reader accepts (float32, u = 2^-24): storing entries in
 * float32 moves each by at most u |s_ij|, so the two triangles differ by at most 2u max|s|, and
 * (Weyl) the eigenvalues by at most ||E||_2 <= d u max|s_ij| <= d u lambda_max; dsyevd adds
 * O(d 2^-53) lambda_max. Anything more negative is not a covariance (a sigma with a -5
 * eigenvalue gave FID -4.04). */
static ebmc_status check_covariance(const char *path, const double *s, int d, char *err, size_t errlen) {
    const double u = 5.9604644775390625e-08; /* 2^-24 */
    size_t dd = (size_t)d * d;
    double amax = 0;
    for (size_t i = 0; i < dd; i++) {
        if (!isfinite(s[i])) {
            ebmc_set_err(err, errlen, "%s: sigma holds NaN or Inf", path);
            return EBMC_E_IO;
        }
        amax = fmax(amax, fabs(s[i]));
    }
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++)
            if (fabs(s[(size_t)i * d + j] - s[(size_t)j * d + i]) > 2 * u * amax) {
                ebmc_set_err(err, errlen, "%s: sigma is not symmetric (sigma[%d][%d] = %g, sigma[%d][%d] = %g): not "
                             "a covariance", path, i, j, s[(size_t)i * d + j], j, i, s[(size_t)j * d + i]);
                return EBMC_E_IO;
            }
    double *a = malloc(dd * sizeof(double)), *w = malloc((size_t)d * sizeof(double));
    int info = a && w ? (memcpy(a, s, dd * sizeof(double)), LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', d, a, d, w)) : -1000;
    double lo = info ? 0 : w[0], hi = info ? 0 : w[d - 1]; /* ascending */
    free(a), free(w);
    if (info) {
        ebmc_set_err(err, errlen, "%s: the eigenvalues of sigma (%dx%d) could not be computed (LAPACKE_dsyevd info %d)",
                     path, d, d, info);
        return info == -1000 ? EBMC_E_NOMEM : EBMC_E_IO;
    }
    double tol = ((double)d * u + (double)d * 1.1102230246251565e-16) * fmax(hi, 0);
    if (lo < -tol || hi < 0) {
        ebmc_set_err(err, errlen, "%s: sigma is not positive semi-definite (smallest eigenvalue %g, largest %g; "
                     "rounding allows down to %g): not a covariance", path, lo, hi, -tol);
        return EBMC_E_IO;
    }
    return EBMC_OK;
}

ebmc_status ebmc_stats_load_npz(const char *path, double **mu, double **sigma, int *d, char *err,
                                size_t errlen) {
    ebmc_npy_info a, b;
    *mu = *sigma = NULL;
    EBMC_TRY(ebmc_npz_read_f64(path, "mu", &a, mu, err, errlen));
    ebmc_status s = ebmc_npz_read_f64(path, "sigma", &b, sigma, err, errlen);
    if (!s && (a.ndim != 1 || b.ndim != 2 || b.shape[0] != a.shape[0] || b.shape[1] != a.shape[0] ||
               a.shape[0] < 1)) {
        ebmc_set_err(err, errlen, "%s: mu has shape (%lld) and sigma (%lld, %lld): expected (d) and (d, d)", path,
                     (long long)a.shape[0], (long long)b.shape[0], (long long)(b.ndim > 1 ? b.shape[1] : 0));
        s = EBMC_E_IO;
    }
    if (s) {
        free(*mu), free(*sigma);
        *mu = *sigma = NULL;
        return s;
    }
    *d = (int)a.shape[0];
    s = check_covariance(path, *sigma, *d, err, errlen);
    if (s) {
        free(*mu), free(*sigma);
        *mu = *sigma = NULL;
    }
    return s;
}
