/* The CPU backend's two convolution paths, oneDNN (large convolutions, when built with it) and
 * im2col + SGEMM (EBMC_CPU_CONV=gemm; everything when built without oneDNN), against a float64
 * reference: forward, backward data and backward filter, with beta = 0 and accumulating, on
 * convolution geometries the short-run and Dual-MCMC nets use (stride 2, 4x4; 3x3 stride 1),
 * asymmetric ('SAME') pads, and a transposed convolution.
 *
 * Bound, per element: |ours - ref| <= (K + 2) * 2^-24 * (S + |beta * old|), with K the number of
 * products summed and S = sum |a_i b_i| (float32 summation in any order, Higham's gamma_K), so it
 * holds on any machine; it is also checked to catch a defect (the reference with the top pad off by
 * one violates it). The oneDNN path is checked to have run (its results differ in rounding from
 * the GEMM path's somewhere). */
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static ebmc_ctx_t *DN, *GE; /* default (oneDNN where it takes the conv), GEMM only */
static tu_rng RNG;

#define OK(ctx, call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(ctx)); } while (0)

typedef struct { int n, cin, h, w, cout, k, s, pt, pb, pl, pr, transposed; } geo;

static int setup(void **state) {
    (void)state;
    tu_rng_seed(&RNG, 777);
    /* the GEMM context reads EBMC_CPU_CONV at its first convolution */
    setenv("EBMC_CPU_CONV", "gemm", 1);
    GE = tu_ctx_cpu();
    ebmc_conv_desc d = {4, 32, 16, 16, 64, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0};
    float *x = calloc(4 * 32 * 16 * 16, 4), *w = calloc(64 * 32 * 16, 4), *y = calloc(4 * 64 * 8 * 8, 4);
    ebmc_status s = ebmc_conv2d_fwd(GE, &d, x, w, y);
    free(x), free(w), free(y);
    unsetenv("EBMC_CPU_CONV");
    DN = tu_ctx_cpu();
    return s != EBMC_OK;
}
static int teardown(void **state) {
    (void)state;
    ebmc_ctx_free(DN);
    ebmc_ctx_free(GE);
    return 0;
}

/* the convolution behind a descriptor: (N,Cin,H,W) -> (N,Cout,Ho,Wo); a transposed desc runs as
 * the adjoint of the convolution with input and output swapped */
typedef struct { int n, ci, h, w, co, k, s, pt, pl, ho, wo; } cg;

static cg conv_of(const geo *g) {
    cg c = {g->n, g->cin, g->h, g->w, g->cout, g->k, g->s, g->pt, g->pl, 0, 0};
    if (!g->transposed) {
        c.ho = (g->h + g->pt + g->pb - g->k) / g->s + 1;
        c.wo = (g->w + g->pl + g->pr - g->k) / g->s + 1;
    } else { /* convT (N,Cin,H,W) -> (N,Cout,Ho,Wo) is conv (N,Cout,Ho,Wo) -> (N,Cin,H,W) */
        int ho = (g->h - 1) * g->s - g->pt - g->pb + g->k, wo = (g->w - 1) * g->s - g->pl - g->pr + g->k;
        c = (cg){g->n, g->cout, ho, wo, g->cin, g->k, g->s, g->pt, g->pl, g->h, g->w};
    }
    return c;
}

/* float64 reference of the convolution c: y = conv(x, w) (fwd), dx = conv^T(dy, w) (data),
 * dw = sum x (*) dy (filter); abs: the same sums of |products| */
enum { FWD, DATA, FILT };
static void ref(const cg *c, int kind, const float *a, const float *b, double *out, double *abs_out, int pt_shift) {
    size_t nx = (size_t)c->n * c->ci * c->h * c->w, ny = (size_t)c->n * c->co * c->ho * c->wo,
           nw = (size_t)c->co * c->ci * c->k * c->k;
    size_t no = kind == FWD ? ny : kind == DATA ? nx : nw;
    memset(out, 0, no * sizeof(double));
    memset(abs_out, 0, no * sizeof(double));
    for (int n = 0; n < c->n; n++)
        for (int o = 0; o < c->co; o++)
            for (int oh = 0; oh < c->ho; oh++)
                for (int ow = 0; ow < c->wo; ow++)
                    for (int i = 0; i < c->ci; i++)
                        for (int ki = 0; ki < c->k; ki++)
                            for (int kj = 0; kj < c->k; kj++) {
                                int ih = oh * c->s - (c->pt + pt_shift) + ki, iw = ow * c->s - c->pl + kj;
                                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                size_t xi = (((size_t)n * c->ci + i) * c->h + ih) * c->w + iw;
                                size_t yi = (((size_t)n * c->co + o) * c->ho + oh) * c->wo + ow;
                                size_t wi = (((size_t)o * c->ci + i) * c->k + ki) * c->k + kj;
                                double p;
                                size_t t;
                                if (kind == FWD) p = (double)a[xi] * b[wi], t = yi;      /* a = x, b = w */
                                else if (kind == DATA) p = (double)a[yi] * b[wi], t = xi; /* a = dy, b = w */
                                else p = (double)a[xi] * b[yi], t = wi;                   /* a = x, b = dy */
                                out[t] += p;
                                abs_out[t] += fabs(p);
                            }
}

static float *randn(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = tu_normal(&RNG);
    return p;
}

/* one op of the conv on ctx, into out (accumulating with beta where the op has one). Conv kinds on
 * the conv's tensors; a transposed desc's ops are the adjoint roles: convT fwd = conv data, convT
 * data = conv fwd, convT filter(x = conv's y, dy = conv's x) */
static void run_op(ebmc_ctx_t *ctx, const geo *g, int kind, float beta, const float *x, const float *y,
                   const float *w, float *out) {
    ebmc_conv_desc d = {g->n, g->cin, g->h, g->w, g->cout, g->k, g->k, g->s, g->s, g->pt, g->pb, g->pl,
                        g->pr, 0, 0, g->transposed, 0};
    if (!g->transposed) {
        if (kind == FWD) {
            if (beta != 0.0f) fail_msg("conv2d_fwd has no beta");
            OK(ctx, ebmc_conv2d_fwd(ctx, &d, x, w, out));
        } else if (kind == DATA) OK(ctx, ebmc_conv2d_bwd_data(ctx, &d, y, w, out, beta));
        else OK(ctx, ebmc_conv2d_bwd_filter(ctx, &d, x, y, out, beta));
    } else {
        if (kind == DATA) {
            if (beta != 0.0f) fail_msg("convt2d_fwd has no beta");
            OK(ctx, ebmc_convt2d_fwd(ctx, &d, y, w, out));
        } else if (kind == FWD) OK(ctx, ebmc_convt2d_bwd_data(ctx, &d, x, w, out, beta));
        else OK(ctx, ebmc_convt2d_bwd_filter(ctx, &d, y, x, out, beta));
    }
}

/* checks one op of one geometry on both contexts; returns how many elements the paths differ in */
static size_t check_op(const geo *g, int kind, float beta) {
    cg c = conv_of(g);
    size_t nx = (size_t)c.n * c.ci * c.h * c.w, ny = (size_t)c.n * c.co * c.ho * c.wo,
           nw = (size_t)c.co * c.ci * c.k * c.k;
    /* the conv's tensors; what the op reads and writes depends on the kind and on transposition */
    float *x = randn(nx), *y = randn(ny), *w = randn(nw);
    size_t no = kind == FWD ? ny : kind == DATA ? nx : nw;
    float *old = randn(no), *o[2];
    double *r = malloc(no * sizeof *r), *ra = malloc(no * sizeof *ra), *bad = malloc(no * sizeof *bad);
    const float *ra_in = kind == DATA ? y : x, *rb_in = kind == FILT ? y : w;
    double *dummy = malloc(no * sizeof *dummy);
    ref(&c, kind, ra_in, rb_in, r, ra, 0);
    ref(&c, kind, ra_in, rb_in, bad, dummy, 1); /* a defect: the top pad off by one */
    ebmc_ctx_t *ctxs[2] = {DN, GE};
    for (int p = 0; p < 2; p++) {
        o[p] = malloc(no * sizeof(float));
        memcpy(o[p], old, no * sizeof(float));
        run_op(ctxs[p], g, kind, beta, x, y, w, o[p]);
    }
    size_t K = kind == FWD ? (size_t)c.ci * c.k * c.k : kind == DATA ? (size_t)c.co * c.k * c.k
                                                                     : (size_t)c.n * c.ho * c.wo;
    const double eps = ldexp(1.0, -24);
    size_t caught = 0, differ = 0;
    for (size_t i = 0; i < no; i++) {
        double want = r[i] + (double)beta * old[i];
        double tol = (double)(K + 2) * eps * (ra[i] + fabs((double)beta * old[i])) + 1e-30;
        for (int p = 0; p < 2; p++)
            if (fabs(o[p][i] - want) > tol)
                fail_msg("%s kind %d beta %g: element %zu = %.9g, float64 %.9g, bound %.3g (%s path)",
                         g->transposed ? "convT" : "conv", kind, beta, i, o[p][i], want, tol,
                         p ? "GEMM" : "default");
        caught += fabs(o[0][i] - (bad[i] + (double)beta * old[i])) > tol;
        differ += o[0][i] != o[1][i];
    }
    /* the bound has teeth: the reference with the top pad off by one breaks it somewhere */
    if (caught == 0) fail_msg("kind %d: a reference with a wrong pad passes the bound", kind);
    free(x), free(y), free(w), free(old), free(o[0]), free(o[1]), free(r), free(ra), free(bad), free(dummy);
    return differ;
}

static void run_geo(const geo *g, size_t *differ) {
    for (int kind = 0; kind < 3; kind++) {
        bool has_beta = !((kind == FWD && !g->transposed) || (kind == DATA && g->transposed));
        *differ += check_op(g, kind, 0.0f);
        if (has_beta) *differ += check_op(g, kind, kind == FILT ? 1.0f : 0.5f);
    }
}

static void test_paths(void **state) {
    (void)state;
    const geo gs[] = {
        {4, 32, 16, 16, 64, 4, 2, 1, 1, 1, 1, 0},  /* short-run: 4x4 stride 2 */
        {4, 64, 8, 8, 32, 3, 1, 1, 1, 1, 1, 0},    /* 3x3 stride 1 */
        {4, 32, 15, 15, 48, 4, 2, 1, 2, 0, 1, 0},  /* asymmetric pads (TensorFlow 'SAME') */
        {4, 64, 8, 8, 32, 4, 2, 1, 1, 1, 1, 1},    /* transposed: 8x8 -> 16x16 */
        {2, 3, 16, 16, 8, 3, 1, 1, 1, 1, 1, 0},    /* few channels: the GEMM path on both */
        {16, 8, 32, 32, 8, 3, 1, 1, 1, 1, 1, 0},   /* the quick start's 3x3: one image per chunk, */
        {16, 8, 16, 16, 8, 4, 2, 1, 1, 1, 1, 1},   /* chunks side by side (and transposed) */
        {16, 512, 4, 4, 1, 4, 1, 0, 0, 0, 0, 0},   /* kernel = whole input (short-run's last layer): */
        {4, 32, 1, 1, 24, 4, 1, 0, 0, 0, 0, 1},    /* one GEMM; and its transpose, 1x1 -> 4x4 */
    };
    size_t differ = 0;
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) run_geo(&gs[i], &differ);
    printf("  elements where the oneDNN and GEMM paths differ in rounding: %zu\n", differ);
#ifdef EBMC_WITH_DNNL
    assert_true(differ > 0); /* oneDNN ran (another summation order than SGEMM's) */
#endif
}

/* The GEMM path's forward and data gradient run whole chunks side by side on the threads: the bits
 * must not depend on the thread count (1 against 4 threads, on geometries with several chunks) */
static void test_threads(void **state) {
    (void)state;
#ifdef _OPENMP
    const geo gs[] = {{16, 8, 32, 32, 8, 3, 1, 1, 1, 1, 1, 0}, {16, 8, 16, 16, 8, 4, 2, 1, 1, 1, 1, 1},
                      {16, 4, 32, 32, 16, 3, 1, 1, 1, 1, 1, 0}};
    int saved = omp_get_max_threads();
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        cg c = conv_of(&gs[i]);
        size_t nx = (size_t)c.n * c.ci * c.h * c.w, ny = (size_t)c.n * c.co * c.ho * c.wo,
               nw = (size_t)c.co * c.ci * c.k * c.k;
        float *x = randn(nx), *y = randn(ny), *w = randn(nw);
        for (int kind = 0; kind < 3; kind++) {
            size_t no = kind == FWD ? ny : kind == DATA ? nx : nw;
            bool has_beta = !((kind == FWD && !gs[i].transposed) || (kind == DATA && gs[i].transposed));
            float beta = has_beta ? 0.5f : 0.0f, *old = randn(no), *o[2];
            for (int p = 0; p < 2; p++) {
                o[p] = malloc(no * sizeof(float));
                memcpy(o[p], old, no * sizeof(float));
                omp_set_num_threads(p ? 4 : 1);
                run_op(GE, &gs[i], kind, beta, x, y, w, o[p]);
            }
            omp_set_num_threads(saved);
            if (memcmp(o[0], o[1], no * sizeof(float)) != 0)
                fail_msg("geometry %zu kind %d: 1 and 4 OpenMP threads give different bits", i, kind);
            free(old), free(o[0]), free(o[1]);
        }
        free(x), free(y), free(w);
    }
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("conv_cpu", tests, setup, teardown);
}
