/* ebmc_bench_conv_cpu: GFLOP/s of the CPU backend's convolutions (forward, backward-data,
 * backward-filter) and of one linear layer, on the layers of the short-run net at n_f = 64 and
 * the quick-start Dual-MCMC widths (a kernel-lab check, not a test).
 *
 *   ebmc_bench_conv_cpu [--reps R] [--batch N]
 *
 * Each op: one untimed call (the workspace grows there), then R timed calls; the median time,
 * 2 FLOP per multiply-accumulate (conv: N*Cout*Cin*KH*KW*Ho*Wo MACs). Threads: OMP_NUM_THREADS. */
#include "ebmc/backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *filled(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

#define CK(call)                                                                               \
    do {                                                                                       \
        if ((call) != EBMC_OK) {                                                               \
            fprintf(stderr, "ebmc_bench_conv_cpu: %s: %s\n", #call, ebmc_ctx_error(ctx));      \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv) {
    int reps = 7, batch = 16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--reps R] [--batch N]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 1000 || batch < 1) return 2;
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CPU;
    o.quiet = true;
    ebmc_ctx_t *ctx;
    char err[256];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err) != EBMC_OK) {
        fprintf(stderr, "ebmc_bench_conv_cpu: %s\n", err);
        return 1;
    }
    /* name, Cin, H, Cout, K, S, P: the short-run net n_f 64 (f.0 .. f.6) and a 4x4 stride-2
     * transposed convolution of the Dual-MCMC generator */
    struct { const char *name; int cin, h, cout, k, s, p, tr; } L[] = {
        {"shortrun f.0  3->64   3x3 s1 32x32", 3, 32, 64, 3, 1, 1, 0},
        {"shortrun f.2  64->128 4x4 s2 32x32", 64, 32, 128, 4, 2, 1, 0},
        {"shortrun f.4 128->256 4x4 s2 16x16", 128, 16, 256, 4, 2, 1, 0},
        {"shortrun f.6 256->512 4x4 s2 8x8", 256, 8, 512, 4, 2, 1, 0},
        {"convT  64->32  4x4 s2 8x8", 64, 8, 32, 4, 2, 1, 1},
    };
    printf("batch %d, %d reps, median; GFLOP/s = 2 x MACs / time\n", batch, reps);
    printf("%-36s %10s %10s %10s\n", "layer", "fwd", "bwd_data", "bwd_filter");
    double *t = malloc((size_t)reps * sizeof *t);
    for (size_t l = 0; l < sizeof L / sizeof L[0]; l++) {
        ebmc_conv_desc d = L[l].tr ? ebmc_convt_desc_make(batch, L[l].cin, L[l].h, L[l].h, L[l].cout,
                                                          L[l].k, L[l].s, L[l].p, 0)
                                   : ebmc_conv_desc_make(batch, L[l].cin, L[l].h, L[l].h, L[l].cout,
                                                         L[l].k, L[l].s, L[l].p);
        size_t nx = ebmc_conv_x_count(&d), nw = ebmc_conv_w_count(&d), ny = ebmc_conv_y_count(&d);
        float *hx = filled(nx, 1), *hw = filled(nw, 2), *hy = filled(ny, 3);
        float *x, *w, *y, *dx, *dw;
        CK(ebmc_alloc(ctx, (void **)&x, nx * 4));
        CK(ebmc_alloc(ctx, (void **)&dx, nx * 4));
        CK(ebmc_alloc(ctx, (void **)&w, nw * 4));
        CK(ebmc_alloc(ctx, (void **)&dw, nw * 4));
        CK(ebmc_alloc(ctx, (void **)&y, ny * 4));
        CK(ebmc_copy(ctx, x, hx, nx * 4, EBMC_COPY_H2D));
        CK(ebmc_copy(ctx, w, hw, nw * 4, EBMC_COPY_H2D));
        CK(ebmc_copy(ctx, y, hy, ny * 4, EBMC_COPY_H2D));
        /* MACs: the convolution's (for a transposed conv, the conv whose adjoint it is) */
        int ho, wo;
        ebmc_conv_out_hw(&d, &ho, &wo);
        double macs = L[l].tr ? (double)batch * L[l].cin * L[l].cout * L[l].k * L[l].k * L[l].h * L[l].h
                              : (double)batch * L[l].cin * L[l].cout * L[l].k * L[l].k * ho * wo;
        double gf[3];
        for (int op = 0; op < 3; op++) {
            for (int r = -1; r < reps; r++) {
                double t0 = now_s();
                if (!L[l].tr) {
                    if (op == 0) CK(ebmc_conv2d_fwd(ctx, &d, x, w, y));
                    else if (op == 1) CK(ebmc_conv2d_bwd_data(ctx, &d, y, w, dx, 0.0f));
                    else CK(ebmc_conv2d_bwd_filter(ctx, &d, x, y, dw, 0.0f));
                } else {
                    if (op == 0) CK(ebmc_convt2d_fwd(ctx, &d, x, w, y));
                    else if (op == 1) CK(ebmc_convt2d_bwd_data(ctx, &d, y, w, dx, 0.0f));
                    else CK(ebmc_convt2d_bwd_filter(ctx, &d, x, y, dw, 0.0f));
                }
                double t1 = now_s();
                if (r >= 0) t[r] = t1 - t0;
            }
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            gf[op] = 2.0 * macs / t[reps / 2] * 1e-9;
        }
        printf("%-36s %10.1f %10.1f %10.1f\n", L[l].name, gf[0], gf[1], gf[2]);
        ebmc_free(ctx, x), ebmc_free(ctx, dx), ebmc_free(ctx, w), ebmc_free(ctx, dw), ebmc_free(ctx, y);
        free(hx), free(hw), free(hy);
    }
    /* linear: x (N,IN) W (OUT,IN) */
    {
        ebmc_linear_desc d = {batch * 8, 2048, 512};
        float *x = filled((size_t)d.n * d.in, 4), *w = filled((size_t)d.out * d.in, 5);
        float *y = malloc((size_t)d.n * d.out * 4);
        for (int r = -1; r < reps; r++) {
            double t0 = now_s();
            CK(ebmc_linear_fwd(ctx, &d, x, w, NULL, y));
            double t1 = now_s();
            if (r >= 0) t[r] = t1 - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        printf("%-36s %10.1f\n", "linear (8N x 2048) -> 512", 2.0 * d.n * d.in * d.out / t[reps / 2] * 1e-9);
        free(x), free(w), free(y);
    }
    free(t);
    ebmc_ctx_free(ctx);
    return 0;
}
