#include "backend/cpu/gemm.h"
#include <stddef.h>

/* Plain loops in the order that keeps the innermost access contiguous; rows of C in parallel.
 * float accumulation, as PyTorch's CPU kernels do. */
void cpu_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    long work = (long)m * n * k;
#pragma omp parallel for schedule(static) if (work > 2097152)
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        if (!trans_b) {
            /* C[i,:] = beta*C[i,:] + alpha * sum_p A(i,p) * B[p,:] */
            if (beta == 0.0f) {
                for (int j = 0; j < n; j++) ci[j] = 0.0f;
            } else if (beta != 1.0f) {
                for (int j = 0; j < n; j++) ci[j] *= beta;
            }
            for (int p = 0; p < k; p++) {
                float av = alpha * (trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
                if (av == 0.0f) continue;
                const float *bp = b + (size_t)p * ldb;
                for (int j = 0; j < n; j++) ci[j] += av * bp[j];
            }
        } else {
            /* C[i,j] = beta*C[i,j] + alpha * dot(A(i,:), B[j,:]) */
            for (int j = 0; j < n; j++) {
                const float *bj = b + (size_t)j * ldb;
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                int p = 0;
                if (!trans_a) {
                    const float *ai = a + (size_t)i * lda;
                    for (; p + 4 <= k; p += 4) {
                        s0 += ai[p] * bj[p];
                        s1 += ai[p + 1] * bj[p + 1];
                        s2 += ai[p + 2] * bj[p + 2];
                        s3 += ai[p + 3] * bj[p + 3];
                    }
                    for (; p < k; p++) s0 += ai[p] * bj[p];
                } else {
                    for (; p < k; p++) s0 += a[(size_t)p * lda + i] * bj[p];
                }
                float v = alpha * ((s0 + s1) + (s2 + s3));
                ci[j] = beta == 0.0f ? v : v + beta * ci[j];
            }
        }
    }
}
