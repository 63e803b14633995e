/* The CPU backend's one GEMM. Where oneDNN is built in, it runs on dnnl_sgemm: oneDNN JIT-compiles
 * its kernels for the instruction sets the CPU reports (cpuid feature bits), so an AVX-512 or AVX2
 * machine gets AVX-512 or AVX2 code whatever its model number. OpenBLAS 0.3.21 (Debian bookworm)
 * picks its kernels from a table of CPU models instead, and a model it does not know (or an
 * OPENBLAS_CORETYPE forcing one) runs its generic Prescott (SSE3) kernels: 2-5x slower on every
 * GEMM shape of ebmc's nets (bench/gemm_cpu.c measures both libraries side by side).
 * EBMC_CPU_GEMM=openblas|onednn overrides the choice; `ebmc info` says which one runs and which
 * kernels it uses, and a generic OpenBLAS core on a CPU with AVX2 is reported once on stderr. */
#include "backend/cpu/gemm.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef EBMC_WITH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static cpu_gemm_lib g_lib = CPU_GEMM_OPENBLAS;
static int g_inited;

/* OpenBLAS cores that use no AVX2 (its DYNAMIC_ARCH fallbacks for CPUs it does not recognise) */
static bool core_is_generic(const char *core) {
    static const char *const generic[] = {"Prescott", "Core2",  "Penryn", "Dunnington", "Nehalem",
                                          "Katmai",   "Coppermine", "Northwood", "Banias", "Atom",
                                          "Opteron",  "Opteron(SSE3)", "Barcelona", "Bobcat",
                                          "Sandybridge", "Bulldozer", "Piledriver", "Steamroller",
                                          "Excavator", "Unknown"};
    for (size_t i = 0; i < sizeof generic / sizeof *generic; i++)
        if (core && strcmp(core, generic[i]) == 0) return true;
    return false;
}

cpu_gemm_lib cpu_gemm_choose(const char *env, bool have_dnnl, char *why, size_t len) {
    cpu_gemm_lib lib = have_dnnl ? CPU_GEMM_ONEDNN : CPU_GEMM_OPENBLAS;
    snprintf(why, len, "%s", "");
    if (!env || !*env) return lib;
    if (strcmp(env, "openblas") == 0) return CPU_GEMM_OPENBLAS;
    if (strcmp(env, "onednn") == 0 && have_dnnl) return CPU_GEMM_ONEDNN;
    if (strcmp(env, "onednn") == 0)
        snprintf(why, len, "EBMC_CPU_GEMM=onednn: this ebmc was built without oneDNN; GEMMs run on "
                           "OpenBLAS");
    else
        snprintf(why, len, "EBMC_CPU_GEMM='%s' is not 'openblas' or 'onednn'; GEMMs run on %s", env,
                 have_dnnl ? "oneDNN" : "OpenBLAS");
    return lib;
}

void cpu_blas_init(void) {
    /* OpenBLAS's own pthreads would spin beside OpenMP's team on the same cores */
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    if (g_inited) return;
#ifdef EBMC_WITH_DNNL
    bool have_dnnl = true;
#else
    bool have_dnnl = false;
#endif
    char why[160];
    g_lib = cpu_gemm_choose(getenv("EBMC_CPU_GEMM"), have_dnnl, why, sizeof why);
    if (why[0]) fprintf(stderr, "ebmc: warning: %s\n", why);
    const char *core = openblas_get_corename();
    if (g_lib == CPU_GEMM_OPENBLAS && core_is_generic(core) && __builtin_cpu_supports("avx2"))
        fprintf(stderr,
                "ebmc: warning: OpenBLAS runs its generic '%s' kernels on a CPU with AVX2%s: every "
                "GEMM is 2-5x slower than it could be\n"
                "---> HINT: use oneDNN's GEMM (EBMC_CPU_GEMM=onednn, in a build with oneDNN), or "
                "an OPENBLAS_CORETYPE with the CPU's vector width (now: %s)\n",
                core, __builtin_cpu_supports("avx512f") ? " and AVX-512" : "",
                getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "not set: the model is "
                                                                            "not in its table");
    g_inited = 1;
}

cpu_gemm_lib cpu_gemm_lib_in_use(void) { return g_lib; }

#ifdef EBMC_WITH_DNNL
static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "SSE4.1";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2-VNNI";
    case dnnl_cpu_isa_avx512_core: return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512 BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AVX-512 AMX";
    default: return "generic";
    }
}
#endif

void cpu_simd_info(char *buf, size_t len) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    __builtin_cpu_init();
    snprintf(buf, len, "%s (GCC target_clones: AVX-512, AVX2 or baseline, picked at load)",
             __builtin_cpu_supports("avx512f") ? "AVX-512" : __builtin_cpu_supports("avx2") ? "AVX2" : "baseline SSE2");
#else
    snprintf(buf, len, "the build's baseline ISA (no target_clones with this compiler)");
#endif
}

void cpu_blas_info(char *buf, size_t len) {
    const char *cfg = openblas_get_config(), *core = openblas_get_corename();
    snprintf(buf, len, "%s; core %s%s", cfg ? cfg : "OpenBLAS", core ? core : "?",
             core_is_generic(core) ? " (generic kernels: no AVX2)" : "");
}

void cpu_gemm_info(char *buf, size_t len) {
    cpu_blas_init();
#ifdef EBMC_WITH_DNNL
    if (g_lib == CPU_GEMM_ONEDNN) {
        const dnnl_version_t *v = dnnl_version();
        /* fp32 GEMMs run on the AVX-512 (or AVX2...) kernels; VNNI, BF16 and AMX serve other types */
        dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        const char *k = isa == dnnl_cpu_isa_avx512_core_vnni || isa == dnnl_cpu_isa_avx512_core_bf16 ||
                                isa == dnnl_cpu_isa_avx512_core_amx ? "AVX-512"
                        : isa == dnnl_cpu_isa_avx2_vnni ? "AVX2" : isa_name(isa);
        snprintf(buf, len, "oneDNN %d.%d.%d sgemm, JIT %s kernels (CPU ISA %s; EBMC_CPU_GEMM=openblas: "
                 "OpenBLAS)", v->major, v->minor, v->patch, k, isa_name(isa));
        return;
    }
#endif
    const char *core = openblas_get_corename();
    snprintf(buf, len, "OpenBLAS sgemm, %s kernels%s", core ? core : "?",
             core_is_generic(core) ? " (generic: no AVX2)" : "");
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
#ifdef EBMC_WITH_DNNL
    if (g_lib == CPU_GEMM_ONEDNN) {
        /* one thread per call, as OpenBLAS's: cpu_sgemm splits the work itself, so the sums do not
         * depend on the thread count. In a parallel region oneDNN runs on the calling thread;
         * outside one it would start a team of omp_get_max_threads(), so that is set to 1. */
        int saved = 1;
#ifdef _OPENMP
        bool outer = !omp_in_parallel();
        if (outer) { saved = omp_get_max_threads(); omp_set_num_threads(1); }
#endif
        dnnl_status_t r = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                                     beta, c, ldc);
#ifdef _OPENMP
        if (outer) omp_set_num_threads(saved);
#endif
        if (r != dnnl_success) { /* only for invalid arguments, which cpu_sgemm's callers never pass */
            fprintf(stderr, "ebmc: dnnl_sgemm(%c%c, m %d, n %d, k %d) failed: status %d\n", ta ? 'T' : 'N',
                    tb ? 'T' : 'N', m, n, k, (int)r);
            abort();
        }
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* products below this many multiply-adds run on one thread (a thread team costs microseconds) */
enum { PAR_MACS = 1 << 22, COL_ALIGN = 16, ROW_ALIGN = 8, CHUNKS = 16 };

/* rows (or columns, by_cols) [i0, min(i1, len)) of C */
static void sgemm_part(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc, bool by_cols, int len, int i0,
                       int i1) {
    if (i1 > len) i1 = len;
    if (i1 <= i0) return;
    if (by_cols) /* C[:, i0:i1] = op(A) op(B)[:, i0:i1] */
        sgemm1(trans_a, trans_b, m, i1 - i0, k, alpha, a, lda, trans_b ? b + (size_t)i0 * ldb : b + i0, ldb,
               beta, c + i0, ldc);
    else /* C[i0:i1, :] = op(A)[i0:i1, :] op(B) */
        sgemm1(trans_a, trans_b, i1 - i0, n, k, alpha, trans_a ? a + i0 : a + (size_t)i0 * lda, lda, b, ldb,
               beta, c + (size_t)i0 * ldc, ldc);
}

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
    /* OpenBLAS picks its kernel by the size of each call (its small-matrix kernels sum in another
     * order: on the AMD EPYC's Haswell kernels 1 and 4 threads gave other bits), so above the
     * threshold its calls are always the same CHUNKS chunks, whatever the thread count; oneDNN's
     * per-thread calls give the same bits at any split (test_gemm_cpu on both libraries). */
    bool fixed = false;
#ifdef EBMC_WITH_DNNL
    fixed = g_lib != CPU_GEMM_ONEDNN;
#else
    fixed = true;
#endif
    fixed = fixed && (double)m * n * (k > 0 ? k : 1) > PAR_MACS;
    int chunks = fixed ? (parts < CHUNKS ? parts : CHUNKS) : 0;
    if (nt > parts) nt = parts;
    if (nt <= 1 && !fixed) {
        sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (fixed) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int q = 0; q < chunks; q++) {
            int p0 = (int)((long)parts * q / chunks), p1 = (int)((long)parts * (q + 1) / chunks);
            sgemm_part(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, by_cols, len, p0 * align,
                       p1 * align);
        }
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
        sgemm_part(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, by_cols, len, p0 * align,
                   p1 * align);
    }
}
