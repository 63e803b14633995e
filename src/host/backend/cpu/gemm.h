/* defines: cpu_sgemm — row-major C(MxN) = alpha*op(A)*op(B) + beta*C, the CPU backend's one GEMM
 * (convolutions via im2col, linear layers, spectral norm products). beta == 0: C is not read. */
#ifndef EBMC_CPU_GEMM_H
#define EBMC_CPU_GEMM_H

#include <stdbool.h>

void cpu_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
