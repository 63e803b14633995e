/* The CPU backend's one GEMM (cpu_sgemm: linear layers and the im2col convolutions) against a
 * float64 reference, on the library EBMC_CPU_GEMM selects (ctest runs this twice: the default,
 * oneDNN's sgemm where it is built in, and EBMC_CPU_GEMM=openblas):
 *  - the four transpose cases, leading dimensions wider than the matrix, alpha != 1, beta 0 with a
 *    NaN-filled C (C must not be read), beta 1 and 0.5, and the shapes ebmc's nets produce
 *    (8 x 1024 x 72 from an 8-channel 3x3 convolution, 1 x 16 x 8192 from a linear layer, ...);
 *  - per element |ours - ref| <= (K + 2) * 2^-24 * (|alpha| S + |beta c|), S = sum |a_i b_i|
 *    (Higham's gamma_K for float32 sums in any order): machine-independent; the bound is shown to
 *    catch a defect (a reference with its first products dropped violates it);
 *  - the same bits whatever the OpenMP thread count (cpu_sgemm splits C itself and each part is a
 *    one-threaded call: the sums never depend on OMP_NUM_THREADS);
 *  - the library that ran is the one asked for, and EBMC_CPU_GEMM's parsing (cpu_gemm_choose). */
#include "testutil.h"
#include "backend/cpu/gemm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct { int ta, tb, m, n, k, pad; float alpha, beta; } gcase;

/* C = alpha op(A) op(B) + beta C in float64; abs: alpha-free sum of |products| */
static void ref(const gcase *g, const float *a, int lda, const float *b, int ldb, const float *c0,
                int ldc, double *r, double *abs_out, int drop) {
    for (int i = 0; i < g->m; i++)
        for (int j = 0; j < g->n; j++) {
            double s = 0, sa = 0;
            for (int p = 0; p < g->k; p++) {
                if (p < drop) continue;
                double av = g->ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = g->tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += av * bv, sa += fabs(av * bv);
            }
            double old = g->beta == 0.0f ? 0.0 : (double)g->beta * c0[(size_t)i * ldc + j];
            r[(size_t)i * g->n + j] = g->alpha * s + old;
            abs_out[(size_t)i * g->n + j] = fabs(g->alpha) * sa + fabs(old);
        }
}

/* runs one case; returns how many elements break the bound against the reference with its first
 * `drop` products left out (0: the true reference, which must hold everywhere) */
static size_t run_case(const gcase *g, tu_rng *rng, int drop, float *c_out) {
    int ar = g->ta ? g->k : g->m, ac = g->ta ? g->m : g->k;
    int br = g->tb ? g->n : g->k, bc = g->tb ? g->k : g->n;
    int lda = ac + g->pad, ldb = bc + g->pad, ldc = g->n + g->pad;
    float *a = tu_malloc((size_t)ar * lda), *b = tu_malloc((size_t)br * ldb);
    float *c = tu_malloc((size_t)g->m * ldc), *c0 = tu_malloc((size_t)g->m * ldc);
    double *r = malloc(sizeof(double) * g->m * g->n), *ra = malloc(sizeof(double) * g->m * g->n);
    tu_fill_normal(rng, a, (size_t)ar * lda, 1.0f);
    tu_fill_normal(rng, b, (size_t)br * ldb, 1.0f);
    tu_fill_normal(rng, c0, (size_t)g->m * ldc, 1.0f);
    for (size_t i = 0; i < (size_t)g->m * ldc; i++) c[i] = g->beta == 0.0f ? NAN : c0[i];
    cpu_sgemm(g->ta, g->tb, g->m, g->n, g->k, g->alpha, a, lda, b, ldb, g->beta, c, ldc);
    ref(g, a, lda, b, ldb, c0, ldc, r, ra, drop);
    size_t bad = 0;
    for (int i = 0; i < g->m; i++) {
        for (int j = 0; j < g->n; j++) {
            double got = c[(size_t)i * ldc + j], want = r[(size_t)i * g->n + j];
            double bound = (g->k + 2) * ldexp(1.0, -24) * ra[(size_t)i * g->n + j];
            if (!(fabs(got - want) <= bound)) bad++;
        }
        for (int j = g->n; j < ldc; j++) /* the padding columns of C are never written */
            if (memcmp(&c[(size_t)i * ldc + j], g->beta == 0.0f ? &(float){NAN} : &c0[(size_t)i * ldc + j], 4) != 0 &&
                !(g->beta == 0.0f && isnan(c[(size_t)i * ldc + j])))
                fail_msg("case %d%d %dx%dx%d: padding column %d of row %d was written", g->ta, g->tb,
                         g->m, g->n, g->k, j, i);
    }
    if (c_out) memcpy(c_out, c, sizeof(float) * g->m * ldc);
    free(a), free(b), free(c), free(c0), free(r), free(ra);
    return bad;
}

static const gcase CASES[] = {
    {0, 0, 8, 1024, 72, 0, 1.0f, 0.0f},   /* 8-channel 3x3 convolution, forward */
    {1, 0, 72, 1024, 8, 0, 1.0f, 0.0f},   /* its data gradient (im2col columns) */
    {0, 1, 8, 72, 1024, 0, 1.0f, 1.0f},   /* its filter gradient, accumulating over chunks */
    {0, 0, 3, 1024, 27, 0, 1.0f, 0.0f},   /* RGB output layer */
    {0, 0, 64, 1024, 576, 0, 1.0f, 0.0f}, /* 64-channel 3x3 */
    {0, 0, 1, 16, 8192, 0, 1.0f, 0.0f},   /* linear layer to one energy per chain */
    {1, 0, 8192, 16, 1, 0, 1.0f, 0.0f},   /* its data gradient (k = 1) */
    {0, 1, 16, 128, 16, 0, 1.0f, 0.0f},
    {1, 1, 33, 47, 29, 5, -0.75f, 0.5f},  /* both transposed, padded leading dimensions */
    {1, 0, 40, 70, 130, 3, 2.0f, 1.0f},
    {0, 1, 300, 257, 190, 1, 1.0f, 0.5f}, /* large enough to be split among threads */
};

static void test_against_float64(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 4242);
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        const gcase *g = &CASES[i];
        size_t bad = run_case(g, &rng, 0, NULL);
        if (bad) fail_msg("case %zu (%d%d %dx%dx%d alpha %g beta %g): %zu elements beyond the gamma_K bound",
                          i, g->ta, g->tb, g->m, g->n, g->k, g->alpha, g->beta, bad);
        /* teeth: the reference without its first max(1, K/64) products (an off-by-one in K, a
         * lost chunk) breaks the bound somewhere */
        if (g->k > 1 && run_case(g, &rng, g->k / 64 > 1 ? g->k / 64 : 1, NULL) == 0)
            fail_msg("case %zu: a reference with products dropped passes the bound", i);
    }
}

static void test_thread_invariant(void **state) {
    (void)state;
#ifdef _OPENMP
    /* split by cpu_sgemm (large), and one call outside any parallel region (small, long K: a
     * library free to use its own threads would split K there) */
    const gcase gs[] = {{0, 1, 300, 257, 190, 1, 1.0f, 0.5f}, {0, 0, 1, 16, 8192, 0, 1.0f, 0.0f},
                        {0, 1, 8, 72, 1024, 0, 1.0f, 1.0f}, {0, 1, 64, 64, 1000, 0, 1.0f, 0.0f}};
    int saved = omp_get_max_threads();
    for (size_t i = 0; i < sizeof gs / sizeof *gs; i++) {
        const gcase *g = &gs[i];
        size_t n = (size_t)g->m * (g->n + g->pad);
        float *c1 = tu_malloc(n), *c2 = tu_malloc(n);
        tu_rng r1, r2;
        tu_rng_seed(&r1, 9), tu_rng_seed(&r2, 9);
        omp_set_num_threads(1);
        assert_int_equal(run_case(g, &r1, 0, c1), 0);
        omp_set_num_threads(4);
        assert_int_equal(run_case(g, &r2, 0, c2), 0);
        omp_set_num_threads(saved);
        if (memcmp(c1, c2, n * sizeof(float)) != 0)
            fail_msg("case %dx%dx%d: 1 and 4 OpenMP threads give different bits", g->m, g->n, g->k);
        free(c1), free(c2);
    }
#else
    skip();
#endif
}

static void test_library_choice(void **state) {
    (void)state;
    char why[200];
    assert_int_equal(cpu_gemm_choose(NULL, true, why, sizeof why), CPU_GEMM_ONEDNN);
    assert_string_equal(why, "");
    assert_int_equal(cpu_gemm_choose("", false, why, sizeof why), CPU_GEMM_OPENBLAS);
    assert_int_equal(cpu_gemm_choose("openblas", true, why, sizeof why), CPU_GEMM_OPENBLAS);
    assert_int_equal(cpu_gemm_choose("onednn", true, why, sizeof why), CPU_GEMM_ONEDNN);
    assert_int_equal(cpu_gemm_choose("onednn", false, why, sizeof why), CPU_GEMM_OPENBLAS);
    assert_non_null(strstr(why, "without oneDNN"));
    assert_int_equal(cpu_gemm_choose("mkl", true, why, sizeof why), CPU_GEMM_ONEDNN);
    assert_non_null(strstr(why, "'mkl'"));
    /* the library that ran is the one the environment asks for */
    cpu_blas_init();
    const char *env = getenv("EBMC_CPU_GEMM");
#ifdef EBMC_WITH_DNNL
    cpu_gemm_lib want = env && strcmp(env, "openblas") == 0 ? CPU_GEMM_OPENBLAS : CPU_GEMM_ONEDNN;
#else
    cpu_gemm_lib want = CPU_GEMM_OPENBLAS;
#endif
    assert_int_equal(cpu_gemm_lib_in_use(), want);
    char info[256];
    cpu_gemm_info(info, sizeof info);
    printf("  EBMC_CPU_GEMM=%s: %s\n", env ? env : "(unset)", info);
    assert_non_null(strstr(info, want == CPU_GEMM_ONEDNN ? "oneDNN" : "OpenBLAS"));
}

int main(void) {
    cpu_blas_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_choice),
        cmocka_unit_test(test_against_float64),
        cmocka_unit_test(test_thread_invariant),
    };
    return cmocka_run_group_tests_name("gemm_cpu", tests, NULL, NULL);
}
