/* ebmc_bench_gemm_cpu: the CPU backend's GEMM shapes (the im2col convolutions and linear layers of
 * the quick-start Dual-MCMC nets and the short-run net) on OpenBLAS's sgemm and on oneDNN's
 * dnnl_sgemm, side by side in one process, one thread each, in interleaved rounds (so both see the
 * same machine load); prints GFLOP/s and the oneDNN / OpenBLAS speed ratio per shape, with the
 * kernels each library picked for this CPU (OpenBLAS's core name, oneDNN's ISA). It measures why
 * cpu_sgemm runs on oneDNN by default (src/host/backend/cpu/gemm.c); a kernel-lab check, not a test.
 *
 *   ebmc_bench_gemm_cpu [--rounds R]       (OPENBLAS_CORETYPE=Prescott shows a generic OpenBLAS)
 */
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ebmc/common.h"

typedef struct { char ta, tb; int m, n, k; float beta; const char *what; } shape;

static const shape SHAPES[] = {
    {'N', 'N', 8, 1024, 72, 0, "quick start: 8->8 3x3 conv, forward"},
    {'T', 'N', 72, 1024, 8, 0, "  its data gradient"},
    {'N', 'T', 8, 72, 1024, 1, "  its filter gradient"},
    {'N', 'N', 8, 1024, 8, 0, "quick start: 1x1 / 8-channel layers"},
    {'N', 'N', 8, 1024, 27, 0, "quick start: RGB -> 8 3x3 conv"},
    {'N', 'N', 3, 1024, 72, 0, "quick start: 8 -> RGB 3x3 conv"},
    {'N', 'T', 16, 128, 16, 0, "quick start: linear z -> features"},
    {'N', 'N', 1, 16, 8192, 0, "linear features -> energy"},
    {'N', 'N', 64, 1024, 27, 0, "short-run: RGB -> 64"},
    {'T', 'N', 27, 1024, 64, 0, "  its data gradient"},
    {'N', 'N', 64, 1024, 576, 0, "64 -> 64 3x3 conv"},
    {'N', 'T', 64, 576, 1024, 1, "  its filter gradient"},
    {'N', 'T', 512, 512, 512, 0, "dense 512^3"},
};

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int rounds = 7;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: ebmc_bench_gemm_cpu [--rounds R]\n");
            return 0;
        } else {
            fprintf(stderr, "ebmc_bench_gemm_cpu: unknown argument '%s' (--rounds R)\n", argv[i]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > 1000) {
        fprintf(stderr, "ebmc_bench_gemm_cpu: --rounds must be 1..1000\n");
        return 2;
    }
    openblas_set_num_threads(1);
    omp_set_num_threads(1); /* oneDNN runs on omp_get_max_threads() threads */
    const dnnl_version_t *v = dnnl_version();
    printf("OpenBLAS: %s; core %s\noneDNN %d.%d.%d: ISA 0x%x\n", openblas_get_config(),
           openblas_get_corename(), v->major, v->minor, v->patch,
           (unsigned)dnnl_get_effective_cpu_isa());
    printf("%-38s %16s %9s %9s %7s\n", "shape", "TN m x n x k", "OpenBLAS", "oneDNN", "ratio");
    double *tb = malloc(sizeof(double) * rounds), *td = malloc(sizeof(double) * rounds);
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const shape *q = &SHAPES[s];
        int lda = q->ta == 'T' ? q->m : q->k, ldb = q->tb == 'T' ? q->k : q->n;
        size_t na = (size_t)q->m * q->k, nb = (size_t)q->k * q->n, nc = (size_t)q->m * q->n;
        float *a = malloc(na * 4), *b = malloc(nb * 4), *c = calloc(nc, 4);
        unsigned seed = 1u + (unsigned)s;
        for (size_t i = 0; i < na; i++) a[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < nb; i++) b[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        double flop = 2.0 * q->m * q->n * q->k;
        int reps = (int)(5e7 / flop) + 1; /* ~1-5 ms per timed unit */
        for (int r = -1; r < rounds; r++) { /* round -1: warm-up (oneDNN's JIT, caches) */
            double t0 = ebmc_now_s();
            for (int i = 0; i < reps; i++)
                cblas_sgemm(CblasRowMajor, q->ta == 'T' ? CblasTrans : CblasNoTrans,
                            q->tb == 'T' ? CblasTrans : CblasNoTrans, q->m, q->n, q->k, 1.0f, a, lda,
                            b, ldb, q->beta, c, q->n);
            double t1 = ebmc_now_s();
            for (int i = 0; i < reps; i++)
                if (dnnl_sgemm(q->ta, q->tb, q->m, q->n, q->k, 1.0f, a, lda, b, ldb, q->beta, c,
                               q->n) != dnnl_success) {
                    fprintf(stderr, "ebmc_bench_gemm_cpu: dnnl_sgemm failed\n");
                    return 1;
                }
            double t2 = ebmc_now_s();
            if (r >= 0) tb[r] = t1 - t0, td[r] = t2 - t1;
        }
        qsort(tb, rounds, sizeof *tb, cmp_double);
        qsort(td, rounds, sizeof *td, cmp_double);
        double mb = tb[rounds / 2], md = td[rounds / 2];
        printf("%-38s %c%c %4dx%5dx%5d %9.1f %9.1f %6.2fx\n", q->what, q->ta, q->tb, q->m, q->n,
               q->k, flop * reps / mb * 1e-9, flop * reps / md * 1e-9, mb / md);
        free(a), free(b), free(c);
    }
    printf("(GFLOP/s, median of %d interleaved rounds, one thread; ratio = oneDNN / OpenBLAS speed)\n",
           rounds);
    free(tb), free(td);
    return 0;
}
