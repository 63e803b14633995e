/* ebmc bench: ebmc's side of the benchmark against PyTorch (specs/performance.md 4), usable alone
 * by anyone without PyTorch.
 *
 * Cases (one "timed unit" each; names carry the actual sizes):
 *   x-chain/<net>/b<B>/k<K>   K image-space Langevin steps on B chains: x <- x - a grad U + c xi
 *                             (dualmcmc-cifar10: U = sum E, a = s^2/2, c = tau; shortrun-nf<F>:
 *                             U = -sum f, a = 1, c = 0.01), starting from a fixed U(-1,1) state
 *   z-chain/<net>/b<B>/k<K>   K latent Langevin steps through the Dual-MCMC generator:
 *                             z <- z - (s^2/2)(grad |x - G(z)|^2/sigma^2 + z/sp^2) + s xi
 *   iteration/<net>/b<B>      one full Dual-MCMC training iteration (the dualmcmc recipe through the
 *                             recipe table, as `ebmc train` runs it: both x-chains,
 *                             the z-chain, three nets' updates, one host synchronisation)
 * Every unit first copies the fixed start state into the chain (one device copy), so rounds do
 * not drift. The Dual-MCMC values (step sizes, noise, sigma, K) are the defaults of the training
 * schema (the dualmcmc recipe's); --quick shrinks widths, batches and K for CPUs and tests.
 *
 * Implementations: ebmc-tf32-graph, ebmc-tf32-eager, ebmc-fp32-graph (and ebmc-fp32-eager on
 * request) on CUDA: precision is the context's (TF32 tensor cores or strict FP32), graph/eager
 * is the chain's CUDA-graph switch (the iteration: run.graphs). On the CPU: ebmc-cpu. Chain
 * contexts may use non-deterministic cuDNN algorithms (as PyTorch's cudnn.benchmark; --det
 * forbids them); the iteration runs exactly as `ebmc train` (deterministic algorithms).
 *
 * Timing (performance.md 4.3): W untimed warm-up units per (case, impl) (the first one captures
 * the graph), then R rounds; each round runs every selected (case, impl) once, in an order
 * rotated by one per round, each unit bracketed by ebmc_sync and timed by CLOCK_MONOTONIC.
 * Reported: median, p10, p90 (linear interpolation), rate = units/median (chain-steps/s or it/s).
 *
 * FLOPs (2 per multiply-accumulate), counted from the architecture with ebmc_net_macs (conv
 * Cout*Cin*K^2*Ho*Wo, linear IN*OUT; elementwise work and spectral norm not counted):
 *   Langevin step, per chain: forward + backward-data (input gradient only) = 2 x 2 x MACs.
 *   Training pass with weight gradients: forward + backward-filter + backward-data = 3 x 2 x
 *   MACs, less the data gradient of the layers reading the net input when none is needed.
 *   Iteration, per image (F = 2 MACs, f = its input-layer part; fine-tune on):
 *     E: 4 Kx F_E + 7 F_E - 2 f_E   (two x-chains; logging E(x); E(x), E(x~') with full bwd)
 *     G: 2 Kz F_G + 7 F_G - 2 f_G   (G(z); z-chain; G(z~) + two full bwd; G_new(z))
 *     I: 6 F_I - 2 f_I               (I(x), I(x~), each with full bwd)
 * FLOP fraction = (FLOPs / median) / the dense matmul rate measured in the same run: a large
 * cuBLAS SGEMM (ebmc_linear_fwd, S x S x S, TF32 or FP32 math as the context's precision; on the
 * CPU the CPU GEMM), median of several calls.
 *
 * Also: --export-weights DIR (the nets' safetensors + manifest.json: the plan, so the PyTorch
 * peer runs the same cases with the same weights), --gate-dump DIR (energies, input gradients,
 * chains and one iteration for the correctness gates), --serve (a line protocol: see
 * serve_usage), --profile N (a cudaProfilerStart/Stop window around N units after warm-up).
 *
 * This file holds the helpers, the plan and the command; bench_units.c the contexts, nets and
 * timed units, bench_report.c the table, JSON and weight export, bench_gates.c the gate dumps and
 * --serve; bench_internal.h what they share. */
#include "bench_internal.h"
#include "ebmc/bench.h"
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const bimpl bench_impls[] = {
    {"ebmc-tf32-graph", EBMC_PREC_TF32, true, true, true},
    {"ebmc-tf32-eager", EBMC_PREC_TF32, false, true, true},
    {"ebmc-fp32-graph", EBMC_PREC_FP32, true, true, true},
    {"ebmc-fp32-eager", EBMC_PREC_FP32, false, true, false},
    {"ebmc-cpu", EBMC_PREC_FP32, false, false, true},
};
_Static_assert(sizeof bench_impls / sizeof bench_impls[0] == N_IMPL_TABLE,
               "N_IMPL_TABLE (bench_internal.h) is the number of implementations");

/* ------------------------------------------------------------------ small helpers */

const ebmc_recipe *bench_dualmcmc(void) {
    const ebmc_recipe *r = ebmc_recipe_find("dualmcmc");
    EBMC_ASSERT(r != NULL);
    return r;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* percentile q in [0,1] of n values (sorted copy; linear interpolation as numpy's default) */
double bench_percentile(const double *v, int n, double q) {
    if (n <= 0) return NAN;
    double *s = ebmc_xmalloc((size_t)n * sizeof *s, "bench");
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double pos = q * (n - 1);
    int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    double r = s[lo] + (pos - lo) * (s[hi] - s[lo]);
    free(s);
    return r;
}

int bench_fail(bench_t *b, const char *fmt, ...) {
    char msg[sizeof b->err]; /* the arguments may point into *b */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(b->err, msg, sizeof msg);
    return -1;
}

const char *bench_prec_name(ebmc_precision p) { return p == EBMC_PREC_TF32 ? "tf32" : "fp32"; }

/* ------------------------------------------------------------------ the plan */

static int add_net(bench_t *b, const char *key, const char *arch, int ndf, int ngf, int nif, int nz,
                   bool dual) {
    bnet *n = &b->nets[b->n_nets];
    snprintf(n->key, sizeof n->key, "%s", key);
    snprintf(n->arch, sizeof n->arch, "%s", arch);
    n->ndf = ndf, n->ngf = ngf, n->nif = nif, n->nz = nz, n->dual = dual;
    return b->n_nets++;
}

ebmc_model_cfg bench_net_model_cfg(const bnet *n) {
    ebmc_model_cfg mc;
    ebmc_model_defaults(n->arch, &mc);
    if (n->ndf) mc.ndf = n->ndf;
    if (n->ngf) mc.ngf = n->ngf;
    if (n->nif) mc.nif = n->nif;
    if (n->nz) mc.nz = n->nz;
    return mc;
}

/* MACs per sample of role r of net n (built on the side, never finalized) */
double bench_role_macs(const bnet *n, ebmc_net_role r, double *first) {
    ebmc_model_cfg mc = bench_net_model_cfg(n);
    char err[256];
    ebmc_net_t *net = ebmc_model_build(&mc, r, err, sizeof err);
    if (!net) {
        if (first) *first = 0;
        return 0;
    }
    double m = ebmc_net_macs(net, first);
    ebmc_net_free(net);
    return m;
}

static void add_case(bench_t *b, int kind, int net, int batch, int steps, int kz) {
    bcase *c = &b->cases[b->n_cases++];
    const ebmc_config_t *d = b->dm_defaults;
    const bnet *n = &b->nets[net];
    char key[sizeof n->key]; /* a copy: the name is written into *b as well */
    memcpy(key, n->key, sizeof key);
    memset(c, 0, sizeof *c);
    c->kind = kind, c->net = net, c->batch = batch, c->steps = steps, c->kz = kz;
    double fE = 0, fG = 0, fI = 0, mE = bench_role_macs(n, EBMC_NET_E, &fE);
    double mG = n->dual ? bench_role_macs(n, EBMC_NET_G, &fG) : 0, mI = n->dual ? bench_role_macs(n, EBMC_NET_I, &fI) : 0;
    if (kind == BK_XCHAIN) {
        snprintf(c->name, sizeof c->name, "x-chain/%s/b%d/k%d", key, batch, steps);
        if (n->dual) {
            c->lp = ebmc_langevin_dualmcmc_x((float)ebmc_config_float(d, "langevin_x", "step_size"),
                                             (float)ebmc_config_float(d, "langevin_x", "noise"), steps);
            c->scale = 1.0f;
        } else {
            c->lp = ebmc_langevin_shortrun(0.01f, steps); /* the short-run code: x += grad f + 0.01 xi */
            c->scale = -1.0f;                            /* the net outputs f = -E */
        }
        c->flop = (double)batch * steps * 2.0 * (2.0 * mE);
        c->units = (double)batch * steps;
        c->unit = "chain-steps/s";
    } else if (kind == BK_ZCHAIN) {
        snprintf(c->name, sizeof c->name, "z-chain/%s/b%d/k%d", key, batch, steps);
        c->lp = ebmc_langevin_dualmcmc_z((float)ebmc_config_float(d, "langevin_z", "step_size"),
                                         (float)ebmc_config_float(d, "langevin_z", "prior_sigma"), steps);
        c->lp.c = (float)ebmc_config_float(d, "langevin_z", "noise");
        float sigma = (float)ebmc_config_float(d, "langevin_z", "sigma");
        c->scale = 2.0f / (sigma * sigma);
        c->flop = (double)batch * steps * 2.0 * (2.0 * mG);
        c->units = (double)batch * steps;
        c->unit = "chain-steps/s";
    } else {
        snprintf(c->name, sizeof c->name, "iteration/%s/b%d", key, batch);
        double FE = 2 * mE, FG = 2 * mG, FI = 2 * mI;
        double e = 4.0 * steps * FE + 7 * FE - 2 * (2 * fE);
        double g = 2.0 * kz * FG + 7 * FG - 2 * (2 * fG);
        double i = 6 * FI - 2 * (2 * fI);
        c->flop = (double)batch * (e + g + i);
        c->units = 1;
        c->unit = "it/s";
    }
}

static int make_plan(bench_t *b) {
    b->dm_defaults = ebmc_recipe_config_create(bench_dualmcmc());
    int kx = (int)ebmc_config_int(b->dm_defaults, "langevin_x", "steps");
    int kz = (int)ebmc_config_int(b->dm_defaults, "langevin_z", "steps");
    int B = (int)ebmc_config_int(b->dm_defaults, "train", "batch_size");
    if (!b->quick && b->backend == EBMC_BACKEND_CPU) {
        /* real sizes that fit two cores: the short-run net at n_f 64 (10 steps at batch 16),
         * Dual-MCMC at the quick start's widths, batch and K (configs/quickstart.ini), and one
         * Dual-MCMC iteration at the CIFAR-10 widths (its large layers) at batch 4, 2 + 2 steps */
        int s64 = add_net(b, "shortrun-nf64", "shortrun", 64, 0, 0, 0, false);
        int qs = add_net(b, "dualmcmc-quickstart", "dualmcmc_cifar10", 8, 8, 4, 16, true);
        int dual = add_net(b, "dualmcmc-cifar10", "dualmcmc_cifar10", 0, 0, 0, 0, true);
        add_case(b, BK_XCHAIN, s64, 16, 10, 0);
        add_case(b, BK_XCHAIN, qs, 16, 4, 0); /* quickstart.ini: batch_size 16, 4 x-steps, 5 z-steps */
        add_case(b, BK_ZCHAIN, qs, 16, 5, 0);
        add_case(b, BK_ITER, qs, 16, 4, 5);
        add_case(b, BK_ITER, dual, 4, 2, 2);
    } else if (!b->quick) {
        int dual = add_net(b, "dualmcmc-cifar10", "dualmcmc_cifar10", 0, 0, 0, 0, true);
        int s64 = add_net(b, "shortrun-nf64", "shortrun", 64, 0, 0, 0, false);
        int s128 = add_net(b, "shortrun-nf128", "shortrun", 128, 0, 0, 0, false);
        add_case(b, BK_XCHAIN, dual, B, kx, 0);
        add_case(b, BK_XCHAIN, dual, 256, kx, 0);
        const int sb[3] = {64, 256, 1024};
        for (int i = 0; i < 3; i++) add_case(b, BK_XCHAIN, s64, sb[i], 60, 0);
        for (int i = 0; i < 3; i++) add_case(b, BK_XCHAIN, s128, sb[i], 60, 0);
        add_case(b, BK_ZCHAIN, dual, B, kz, 0);
        add_case(b, BK_ITER, dual, B, kx, kz);
    } else { /* tiny (CPUs, tests): the widths of the Dual-MCMC oracle test, small batches and K */
        int dual = add_net(b, "dualmcmc-cifar10-w8", "dualmcmc_cifar10", 8, 8, 4, 8, true);
        int s4 = add_net(b, "shortrun-nf4", "shortrun", 4, 0, 0, 0, false);
        int s8 = add_net(b, "shortrun-nf8", "shortrun", 8, 0, 0, 0, false);
        add_case(b, BK_XCHAIN, dual, 4, 3, 0);
        add_case(b, BK_XCHAIN, dual, 8, 3, 0);
        add_case(b, BK_XCHAIN, s4, 4, 4, 0);
        add_case(b, BK_XCHAIN, s4, 16, 4, 0);
        add_case(b, BK_XCHAIN, s8, 4, 4, 0);
        add_case(b, BK_ZCHAIN, dual, 4, 2, 0);
        add_case(b, BK_ITER, dual, 4, 3, 2);
    }
    return 0;
}

/* ------------------------------------------------------------------ the command */

void ebmc_bench_usage(FILE *f) {
    fprintf(f,
            "usage: ebmc bench [options]\n"
            "  --backend B        auto (default), cpu or cuda\n"
            "  --device N         CUDA device ordinal (default 0)\n"
            "  --cases LIST       comma-separated case names, prefixes or globs (default: all);\n"
            "                     e.g. x-chain, 'x-chain/shortrun-nf64/*', iteration\n"
            "  --impls LIST       ebmc-tf32-graph,ebmc-tf32-eager,ebmc-fp32-graph (CUDA default),\n"
            "                     ebmc-fp32-eager; ebmc-cpu on the CPU backend\n"
            "  --rounds R         timed rounds (default 30); --warmup W untimed units each (default 3)\n"
            "  --quick            tiny widths, batches and K (CPUs, tests)\n"
            "  --json FILE        write the results (gpu, versions, rows with raw times)\n"
            "  --det              deterministic cuDNN algorithms for the chains too\n"
            "  --seed S           weights, states and noise (default 1234)\n"
            "  --weights DIR      load the nets from DIR (written by --export-weights)\n"
            "  --profile N        after warm-up, N units of each row inside cudaProfilerStart/Stop\n"
            "                     (nsys profile --capture-range=cudaProfilerApi ...)\n"
            "  --list             print the plan (cases, FLOP counts) as JSON and exit\n"
            "  --export-weights DIR   write the nets' safetensors and manifest.json, then exit\n"
            "  --gate-dump DIR    write the correctness-gate dumps (needs --weights), then exit\n"
            "  --serve            a line protocol on stdin/stdout for bench/run.py ('help' lists it)\n");
}

static void bench_free(bench_t *b) {
    for (int i = 0; i < N_IMPL_TABLE; i++)
        for (int c = 0; c < MAX_CASES; c++) {
            ebmc_run_free(b->dm[i][c]);
            ebmc_config_free(b->dm_cfg[i][c]);
        }
    for (int p = 0; p < 2; p++) {
        for (int n = 0; n < MAX_NETS; n++) bench_rt_free(&b->rt[p][n]);
        if (b->ctx[p]) ebmc_ctx_free(b->ctx[p]);
    }
    ebmc_config_free(b->dm_defaults);
}

int ebmc_bench_main(int argc, char **argv) {
    bench_t *b = ebmc_xcalloc(1, sizeof *b, "bench");
    b->backend = EBMC_BACKEND_AUTO;
    b->seed = 1234;
    b->rounds = 30;
    b->warmup = 3;
    const char *cases = NULL, *impls = NULL, *json = NULL, *export_dir = NULL, *gate_dir = NULL;
    bool serve_mode = false, list = false;
    size_t off = (size_t)snprintf(b->command, sizeof b->command, "ebmc bench");
    for (int i = 0; i < argc && off < sizeof b->command; i++)
        off += (size_t)snprintf(b->command + off, sizeof b->command - off, " %s", argv[i]);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
#define NEXT_INT(dst, lo, hi)                                                                   \
    do {                                                                                        \
        char *e_;                                                                               \
        long v_ = more ? strtol(argv[++i], &e_, 10) : 0;                                        \
        if (!more || *e_ || v_ < (lo) || v_ > (hi)) {                                           \
            fprintf(stderr, "ebmc bench: %s needs a number in %d..%d\n", a, (int)(lo), (int)(hi)); \
            free(b);                                                                            \
            return 2;                                                                           \
        }                                                                                       \
        dst = (int)v_;                                                                          \
    } while (0)
        if (!strcmp(a, "--backend") && more) {
            const char *v = argv[++i];
            if (!strcmp(v, "auto")) b->backend = EBMC_BACKEND_AUTO;
            else if (!strcmp(v, "cpu")) b->backend = EBMC_BACKEND_CPU;
            else if (!strcmp(v, "cuda")) b->backend = EBMC_BACKEND_CUDA;
            else {
                fprintf(stderr, "ebmc bench: unknown backend '%s' (auto, cpu, cuda)\n", v);
                free(b);
                return 2;
            }
        } else if (!strcmp(a, "--device")) NEXT_INT(b->device, 0, 64);
        else if (!strcmp(a, "--rounds")) NEXT_INT(b->rounds, 1, 10000);
        else if (!strcmp(a, "--warmup")) NEXT_INT(b->warmup, 0, 1000);
        else if (!strcmp(a, "--profile")) NEXT_INT(b->profile_n, 1, 100000);
        else if (!strcmp(a, "--seed")) {
            int s;
            NEXT_INT(s, 0, INT_MAX);
            b->seed = (uint64_t)s;
        } else if (!strcmp(a, "--cases") && more) cases = argv[++i];
        else if (!strcmp(a, "--impls") && more) impls = argv[++i];
        else if (!strcmp(a, "--json") && more) json = argv[++i];
        else if (!strcmp(a, "--weights") && more) b->weights = argv[++i];
        else if (!strcmp(a, "--export-weights") && more) export_dir = argv[++i];
        else if (!strcmp(a, "--gate-dump") && more) gate_dir = argv[++i];
        else if (!strcmp(a, "--quick")) b->quick = true;
        else if (!strcmp(a, "--det")) b->det = true;
        else if (!strcmp(a, "--serve")) serve_mode = true;
        else if (!strcmp(a, "--list")) list = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ebmc_bench_usage(stdout);
            free(b);
            return 0;
        } else {
            fprintf(stderr, "ebmc bench: unknown option '%s'\n", a);
            ebmc_bench_usage(stderr);
            free(b);
            return 2;
        }
#undef NEXT_INT
    }
    /* the backend decides the implementations: CUDA contexts have precisions and graphs */
    if (b->backend == EBMC_BACKEND_AUTO)
        b->backend = ebmc_cuda_device_count() > 0 ? EBMC_BACKEND_CUDA : EBMC_BACKEND_CPU;
    bool cuda = b->backend == EBMC_BACKEND_CUDA;
    for (int i = 0; i < N_IMPL_TABLE; i++) {
        const bimpl *im = &bench_impls[i];
        if (im->on_cuda != cuda) continue;
        bool want = impls ? false : im->by_default;
        if (impls) {
            char buf[512];
            snprintf(buf, sizeof buf, "%s", impls);
            for (char *s, *p = strtok_r(buf, ",", &s); p; p = strtok_r(NULL, ",", &s)) want = want || !strcmp(p, im->name);
        }
        if (want) b->impls[b->n_impls++] = im;
    }
    int rc = 0;
    if (!b->n_impls) {
        fprintf(stderr, "ebmc bench: --impls '%s' names no implementation of the %s backend\n",
                impls ? impls : "", cuda ? "cuda" : "cpu");
        free(b);
        return 2;
    }
    if (b->backend == EBMC_BACKEND_CPU && !b->quick && !export_dir && !list)
        fprintf(stderr, "ebmc bench: notice: on the CPU backend the cases are the CPU plan's (short-run "
                "n_f 64, Dual-MCMC at quick-start widths); --quick runs tiny ones\n");
    make_plan(b);
    if (list) {
        cJSON *p = bench_plan_json(b);
        char *s = cJSON_Print(p);
        puts(s);
        free(s);
        cJSON_Delete(p);
    } else if (export_dir) {
        rc = bench_export_weights(b, export_dir);
    } else if (gate_dir) {
        rc = bench_gate_dump(b, gate_dir, cases);
    } else if (serve_mode) {
        rc = bench_serve(b);
    } else {
        rc = bench_run(b, cases, json);
    }
    if (rc) fprintf(stderr, "ebmc bench: %s\n", b->err);
    bench_free(b);
    free(b);
    return rc ? 1 : 0;
}
