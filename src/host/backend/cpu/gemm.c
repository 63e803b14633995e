#include "backend/cpu/gemm.h"
#include <cblas.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void cpu_blas_init(void) {
    /* OpenBLAS's own pthreads would spin beside OpenMP's team on the same cores */
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

void cpu_blas_info(char *buf, size_t len) {
    const char *cfg = openblas_get_config(), *core = openblas_get_corename();
    snprintf(buf, len, "%s; core %s", cfg ? cfg : "OpenBLAS", core ? core : "?");
}

static void sgemm1(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = beta*C, not read when beta == 0 */
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * ldc;
            if (beta == 0.0f) memset(ci, 0, (size_t)n * sizeof(float));
            else if (beta != 1.0f)
                for (int j = 0; j < n; j++) ci[j] *= beta;
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* products below this many multiply-adds run on one thread (a thread team costs microseconds) */
enum { PAR_MACS = 1 << 22, COL_ALIGN = 16, ROW_ALIGN = 8 };

void cpu_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    int nt = 1;
#ifdef _OPENMP
    if ((double)m * n * (k > 0 ? k : 1) > PAR_MACS && !omp_in_parallel()) nt = omp_get_max_threads();
#endif
    /* split the longer side of C, in aligned parts */
    bool by_cols = n >= m;
    int len = by_cols ? n : m, align = by_cols ? COL_ALIGN : ROW_ALIGN;
    int parts = (len + align - 1) / align;
    if (nt > parts) nt = parts;
    if (nt <= 1) {
        sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), T = omp_get_num_threads();
#else
        int t = 0, T = 1;
#endif
        int p0 = (int)((long)parts * t / T), p1 = (int)((long)parts * (t + 1) / T);
        int i0 = p0 * align, i1 = p1 * align < len ? p1 * align : len;
        if (i1 > i0) {
            if (by_cols) /* C[:, i0:i1] = op(A) op(B)[:, i0:i1] */
                sgemm1(trans_a, trans_b, m, i1 - i0, k, alpha, a, lda,
                       trans_b ? b + (size_t)i0 * ldb : b + i0, ldb, beta, c + i0, ldc);
            else /* C[i0:i1, :] = op(A)[i0:i1, :] op(B) */
                sgemm1(trans_a, trans_b, i1 - i0, n, k, alpha,
                       trans_a ? a + i0 : a + (size_t)i0 * lda, lda, b, ldb, beta,
                       c + (size_t)i0 * ldc, ldc);
        }
    }
}
