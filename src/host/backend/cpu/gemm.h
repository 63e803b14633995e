/* defines: cpu_sgemm — row-major C(MxN) = alpha*op(A)*op(B) + beta*C, the CPU backend's one GEMM
 * (convolutions via im2col, linear layers), on oneDNN's sgemm where built in, else OpenBLAS;
 * cpu_blas_init; cpu_blas_info; cpu_gemm_info; cpu_gemm_choose.
 * beta == 0: C is not read. */
#ifndef EBMC_CPU_GEMM_H
#define EBMC_CPU_GEMM_H

#include <stdbool.h>
#include <stddef.h>

/* Once per process (idempotent): OpenBLAS runs single-threaded; cpu_sgemm splits C among the
 * OpenMP threads itself, so there is one thread team (OMP_NUM_THREADS), never two. */
void cpu_blas_init(void);

/* Splits C by rows or columns among the OpenMP threads when the product is large enough, each
 * part one single-threaded OpenBLAS call. Every element of C is one sgemm's full-length dot
 * product, so results are deterministic for a given thread count. Call it outside parallel
 * regions (inside one it runs on the calling thread only). */
void cpu_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);

typedef enum { CPU_GEMM_OPENBLAS, CPU_GEMM_ONEDNN } cpu_gemm_lib;
/* The library for cpu_sgemm from EBMC_CPU_GEMM's value (NULL/empty: oneDNN when built in); an
 * invalid or unavailable value keeps the default and says so in why (empty otherwise). */
cpu_gemm_lib cpu_gemm_choose(const char *env, bool have_dnnl, char *why, size_t len);
cpu_gemm_lib cpu_gemm_lib_in_use(void);
/* "oneDNN 2.6.3 sgemm, JIT AVX-512 kernels (CPU ISA ...)" or "OpenBLAS sgemm, Haswell kernels" */
void cpu_gemm_info(char *buf, size_t len);
/* the clone of the CPU backend's hot element-wise loops (CPU_CLONES) this CPU runs: "AVX-512 (...)" */
void cpu_simd_info(char *buf, size_t len);
/* "OpenBLAS 0.3.21, core Haswell" for build info */
void cpu_blas_info(char *buf, size_t len);
/* what runs the CPU backend's convolutions: oneDNN's version, or the GEMM path alone (conv_dnnl.c) */
void cpu_dnnl_info(char *buf, size_t len);

#endif
