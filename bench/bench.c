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
 * serve_usage), --profile N (a cudaProfilerStart/Stop window around N units after warm-up). */
#include "ebmc/bench.h"
#include "ebmc/checkpoint.h"
#include "ebmc/nvtx.h"
#include "ebmc/safetensors.h"
#include "ebmc/data.h"
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/recipe.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { BK_XCHAIN = 0, BK_ZCHAIN = 1, BK_ITER = 2 };
enum { MAX_NETS = 4, MAX_CASES = 24, MAX_IMPLS = 4, MAX_TIMES = 100000 };
/* Philox streams of the bench's own states (the trainer uses 1..7) */
enum { ST_X0 = 11, ST_Z0 = 12, ST_TARGET = 13, ST_CHAIN = 14, ST_GATE_X = 21, ST_GATE_Z = 22,
       ST_GATE_T = 23, ST_GATE_TRAJ = 24, ST_GATE_DIST = 25 };

typedef struct {
    char key[48];           /* "dualmcmc-cifar10", "shortrun-nf64", ... */
    char arch[32];          /* models.c architecture */
    int ndf, ngf, nif, nz;  /* 0: the architecture's default */
    bool dual;              /* E, G and I (Dual-MCMC); else E only */
} bnet;

typedef struct {
    char name[96];
    int kind, net;
    int batch, steps, kz;   /* iteration: kx = steps, kz */
    ebmc_langevin_params lp;
    float scale;            /* x-chain: U = scale * sum out; z-chain: k of the latent potential */
    double flop;            /* per timed unit */
    double units;           /* rate units per timed unit (chain-steps, or 1 iteration) */
    const char *unit;
} bcase;

typedef struct {
    const char *name;
    ebmc_precision prec;
    bool graph, on_cuda, by_default;
} bimpl;

static const bimpl IMPLS[] = {
    {"ebmc-tf32-graph", EBMC_PREC_TF32, true, true, true},
    {"ebmc-tf32-eager", EBMC_PREC_TF32, false, true, true},
    {"ebmc-fp32-graph", EBMC_PREC_FP32, true, true, true},
    {"ebmc-fp32-eager", EBMC_PREC_FP32, false, true, false},
    {"ebmc-cpu", EBMC_PREC_FP32, false, false, true},
};
enum { N_IMPL_TABLE = sizeof IMPLS / sizeof IMPLS[0] };

/* run-time state of one net key on one precision's context */
typedef struct {
    bool ready;
    ebmc_net_t *E, *G;
    ebmc_potential *px, *pz;
    ebmc_chain_t *cx[2], *cz[2]; /* [eager, graph] */
    int kx[2], kz[2];            /* their current K (cases of one net may differ) */
    float *x0, *z0, *target;     /* fixed starts / latent targets, max_batch entries */
    int max_batch;
} bnet_rt;

typedef struct {
    /* options */
    ebmc_backend_kind backend;
    int device;
    bool quick, det, cpu;
    uint64_t seed;
    int rounds, warmup, profile_n;
    const char *weights;         /* directory from --export-weights, or NULL */
    char command[2048];
    /* the plan */
    bnet nets[MAX_NETS];
    int n_nets;
    bcase cases[MAX_CASES];
    int n_cases;
    const bimpl *impls[N_IMPL_TABLE];
    int n_impls;
    ebmc_config_t *dm_defaults;  /* the training schema's defaults (+ the bench's overrides) */
    /* run time */
    ebmc_ctx_t *ctx[2];          /* per precision (EBMC_PREC_FP32, EBMC_PREC_TF32) */
    bnet_rt rt[2][MAX_NETS];
    ebmc_run_t *dm[N_IMPL_TABLE]; /* the dualmcmc recipe, through the recipe table */
    ebmc_config_t *dm_cfg[N_IMPL_TABLE];
    int64_t dm_it[N_IMPL_TABLE];
    double matmul_rate[2], matmul_s[2];
    int matmul_n;
    char err[1024];
} bench_t;

/* ------------------------------------------------------------------ small helpers */

static const ebmc_recipe *dualmcmc(void) {
    const ebmc_recipe *r = ebmc_recipe_find("dualmcmc");
    EBMC_ASSERT(r != NULL);
    return r;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* percentile q in [0,1] of n values (sorted copy; linear interpolation as numpy's default) */
static double percentile(const double *v, int n, double q) {
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

static int fail(bench_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(bench_t *b, const char *fmt, ...) {
    char msg[sizeof b->err]; /* the arguments may point into *b */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(b->err, msg, sizeof msg);
    return -1;
}

#define CK(b, ctx, call)                                                                        \
    do {                                                                                        \
        if ((call) != EBMC_OK) return fail(b, "%s: %s", #call, ebmc_ctx_error(ctx));            \
    } while (0)

static const char *prec_name(ebmc_precision p) { return p == EBMC_PREC_TF32 ? "tf32" : "fp32"; }

/* ------------------------------------------------------------------ the plan */

static int add_net(bench_t *b, const char *key, const char *arch, int ndf, int ngf, int nif, int nz,
                   bool dual) {
    bnet *n = &b->nets[b->n_nets];
    snprintf(n->key, sizeof n->key, "%s", key);
    snprintf(n->arch, sizeof n->arch, "%s", arch);
    n->ndf = ndf, n->ngf = ngf, n->nif = nif, n->nz = nz, n->dual = dual;
    return b->n_nets++;
}

static ebmc_model_cfg net_model_cfg(const bnet *n) {
    ebmc_model_cfg mc;
    ebmc_model_defaults(n->arch, &mc);
    if (n->ndf) mc.ndf = n->ndf;
    if (n->ngf) mc.ngf = n->ngf;
    if (n->nif) mc.nif = n->nif;
    if (n->nz) mc.nz = n->nz;
    return mc;
}

/* MACs per sample of role r of net n (built on the side, never finalized) */
static double role_macs(const bnet *n, ebmc_net_role r, double *first) {
    ebmc_model_cfg mc = net_model_cfg(n);
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
    double fE = 0, fG = 0, fI = 0, mE = role_macs(n, EBMC_NET_E, &fE);
    double mG = n->dual ? role_macs(n, EBMC_NET_G, &fG) : 0, mI = n->dual ? role_macs(n, EBMC_NET_I, &fI) : 0;
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
    b->dm_defaults = ebmc_recipe_config_create(dualmcmc());
    int kx = (int)ebmc_config_int(b->dm_defaults, "langevin_x", "steps");
    int kz = (int)ebmc_config_int(b->dm_defaults, "langevin_z", "steps");
    int B = (int)ebmc_config_int(b->dm_defaults, "train", "batch_size");
    if (!b->quick && b->backend == EBMC_BACKEND_CPU) {
        /* real sizes that fit two cores: the short-run net at n_f 64 (10 steps at batch 16) and
         * Dual-MCMC at the quick start's widths, batch and K (configs/quickstart.ini) */
        int s64 = add_net(b, "shortrun-nf64", "shortrun", 64, 0, 0, 0, false);
        int qs = add_net(b, "dualmcmc-quickstart", "dualmcmc_cifar10", 8, 8, 4, 16, true);
        add_case(b, BK_XCHAIN, s64, 16, 10, 0);
        add_case(b, BK_XCHAIN, qs, 25, 6, 0);
        add_case(b, BK_ZCHAIN, qs, 25, 3, 0);
        add_case(b, BK_ITER, qs, 25, 6, 3);
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

/* the largest batch any case (or gate) of net `n` and chain kind needs */
static int net_max_batch(const bench_t *b, int n, int kind) {
    int m = 0;
    for (int i = 0; i < b->n_cases; i++)
        if (b->cases[i].net == n && b->cases[i].kind == kind && b->cases[i].batch > m) m = b->cases[i].batch;
    return m;
}

/* gate sizes of a net and chain kind: Bg (energies, gradients), Bt (shared-noise trajectory),
 * Bd (distribution: many chains) */
static void gate_sizes(const bench_t *b, int n, int kind, int *bg, int *bt, int *bd, int *k) {
    *bg = 0, *k = 0;
    for (int i = 0; i < b->n_cases; i++)
        if (b->cases[i].net == n && b->cases[i].kind == kind) {
            *bg = b->cases[i].batch;
            *k = b->cases[i].steps;
            break;
        }
    *bt = *bg < 16 ? *bg : 16;
    *bd = kind == BK_ZCHAIN ? *bg : b->quick ? 16 : 256;
}

static const bcase *find_case(const bench_t *b, const char *name) {
    for (int i = 0; i < b->n_cases; i++)
        if (!strcmp(b->cases[i].name, name)) return &b->cases[i];
    return NULL;
}

static int find_impl(const bench_t *b, const char *name) {
    for (int i = 0; i < b->n_impls; i++)
        if (!strcmp(b->impls[i]->name, name)) return i;
    return -1;
}

/* ------------------------------------------------------------------ contexts and nets */

static ebmc_status copy_dev(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n) {
    ebmc_axpby_desc d = {n, 1.0f, 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

static ebmc_ctx_t *get_ctx(bench_t *b, ebmc_precision p) {
    if (b->ctx[p]) return b->ctx[p];
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = b->backend;
    o.device = b->device;
    o.precision = p;
    o.deterministic = b->det;
    o.quiet = true;
    char err[512];
    if (ebmc_ctx_create(&o, &b->ctx[p], err, sizeof err) != EBMC_OK) {
        fail(b, "context (%s): %s", prec_name(p), err);
        return NULL;
    }
    return b->ctx[p];
}

static void weights_path(const bench_t *b, const char *dir, int n, char role, char *out, size_t len) {
    snprintf(out, len, "%s/%s.%c.safetensors", dir, b->nets[n].key, role);
}

/* A finalized net of net key n, role r on ctx: seeded as the dualmcmc recipe seeds it (run.seed + 101 (r+1)),
 * then overwritten by the --weights file when given. */
static ebmc_net_t *build_net(bench_t *b, ebmc_ctx_t *ctx, int n, ebmc_net_role r, bool trainable) {
    ebmc_model_cfg mc = net_model_cfg(&b->nets[n]);
    char err[1024];
    ebmc_net_t *net = ebmc_model_build(&mc, r, err, sizeof err);
    if (!net) {
        fail(b, "%s: %s", b->nets[n].key, err);
        return NULL;
    }
    if (ebmc_net_finalize(net, ctx, trainable, b->seed + 101 * (uint64_t)(r + 1)) != EBMC_OK) {
        fail(b, "%s: %s", b->nets[n].key, ebmc_net_error(net));
        ebmc_net_free(net);
        return NULL;
    }
    if (b->weights) {
        char path[PATH_MAX];
        weights_path(b, b->weights, n, "EGI"[r], path, sizeof path);
        if (ebmc_net_load(net, path, err, sizeof err) != EBMC_OK) {
            fail(b, "%s", err);
            ebmc_net_free(net);
            return NULL;
        }
    }
    return net;
}

static int rt_ready(bench_t *b, ebmc_precision p, int n) {
    bnet_rt *r = &b->rt[p][n];
    if (r->ready) return 0;
    ebmc_ctx_t *ctx = get_ctx(b, p);
    if (!ctx) return -1;
    const bcase *cx = NULL, *cz = NULL;
    for (int i = 0; i < b->n_cases; i++) {
        if (b->cases[i].net != n) continue;
        if (b->cases[i].kind == BK_XCHAIN && !cx) cx = &b->cases[i];
        if (b->cases[i].kind == BK_ZCHAIN && !cz) cz = &b->cases[i];
    }
    int mx = net_max_batch(b, n, BK_XCHAIN), mz = net_max_batch(b, n, BK_ZCHAIN);
    ebmc_rng_key key = {b->seed, ST_X0, NULL, 0};
    if (cx) {
        if (!(r->E = build_net(b, ctx, n, EBMC_NET_E, false))) return -1;
        CK(b, ctx, ebmc_potential_energy(r->E, mx, cx->scale, &r->px));
        size_t elems = r->px->elems;
        CK(b, ctx, ebmc_alloc(ctx, (void **)&r->x0, (size_t)mx * elems * sizeof(float)));
        CK(b, ctx, ebmc_init_uniform(ctx, r->x0, mx, elems, -1.0f, 1.0f, key));
        for (int g = 0; g < 2; g++) {
            CK(b, ctx, ebmc_chain_create(r->px, &cx->lp, mx, b->seed, ST_CHAIN, &r->cx[g]));
            ebmc_chain_set_graph(r->cx[g], g == 1);
            r->kx[g] = cx->lp.steps;
        }
    }
    if (cz) {
        if (!(r->G = build_net(b, ctx, n, EBMC_NET_G, false))) return -1;
        CK(b, ctx, ebmc_potential_latent(r->G, mz, cz->scale, &r->pz));
        size_t elems = r->pz->elems, img = ebmc_net_value_count(r->G, ebmc_net_output_value(r->G, 0));
        CK(b, ctx, ebmc_alloc(ctx, (void **)&r->z0, (size_t)mz * elems * sizeof(float)));
        key.stream = ST_Z0;
        CK(b, ctx, ebmc_init_normal(ctx, r->z0, mz, elems, 1.0f, key));
        key.stream = ST_TARGET;
        CK(b, ctx, ebmc_init_uniform(ctx, ebmc_potential_latent_target(r->pz), mz, img, -1.0f, 1.0f, key));
        for (int g = 0; g < 2; g++) {
            CK(b, ctx, ebmc_chain_create(r->pz, &cz->lp, mz, b->seed, ST_CHAIN, &r->cz[g]));
            ebmc_chain_set_graph(r->cz[g], g == 1);
            r->kz[g] = cz->lp.steps;
        }
    }
    /* one eager run per case batch before any capture: cuDNN plans and workspace exist before a
     * graph is captured (a capture must not allocate) */
    if (ebmc_graph_supported(ctx))
        for (int i = 0; i < b->n_cases; i++) {
            const bcase *c = &b->cases[i];
            if (c->net != n || (c->kind == BK_XCHAIN ? !r->cx[0] : c->kind == BK_ZCHAIN ? !r->cz[0] : true)) continue;
            ebmc_chain_t *ch = c->kind == BK_XCHAIN ? r->cx[0] : r->cz[0];
            int *k = c->kind == BK_XCHAIN ? &r->kx[0] : &r->kz[0];
            if (*k != c->steps) {
                ebmc_chain_set_params(ch, &c->lp);
                *k = c->steps;
            }
            const float *start = c->kind == BK_XCHAIN ? r->x0 : r->z0;
            size_t elems = c->kind == BK_XCHAIN ? r->px->elems : r->pz->elems;
            CK(b, ctx, copy_dev(ctx, ebmc_chain_state(ch), start, (size_t)c->batch * elems));
            if (ebmc_chain_run(ch, c->batch) != EBMC_OK)
                return fail(b, "%s: %s", c->name, ebmc_chain_error(ch));
        }
    r->ready = true;
    return 0;
}

static void rt_free(bnet_rt *r) {
    for (int g = 0; g < 2; g++) {
        ebmc_chain_free(r->cx[g]);
        ebmc_chain_free(r->cz[g]);
    }
    ebmc_potential_free(r->px);
    ebmc_potential_free(r->pz);
    ebmc_ctx_t *ctx = r->E ? ebmc_net_ctx(r->E) : r->G ? ebmc_net_ctx(r->G) : NULL;
    if (ctx) {
        ebmc_free(ctx, r->x0);
        ebmc_free(ctx, r->z0);
    }
    ebmc_net_free(r->E);
    ebmc_net_free(r->G);
    memset(r, 0, sizeof *r);
}

/* A Dual-MCMC trainer as `ebmc train` builds it, for impl i and net key n, batch B */
static int dm_config(bench_t *b, const bimpl *im, int n, int B, int kx, int kz, ebmc_config_t **out) {
    ebmc_config_t *cfg = ebmc_recipe_config_create(dualmcmc());
    const bnet *nt = &b->nets[n];
    char a[24][96];
    int na = 0;
    snprintf(a[na++], 96, "model.arch=%s", nt->arch);
    if (nt->ndf) snprintf(a[na++], 96, "model.ndf=%d", nt->ndf);
    if (nt->ngf) snprintf(a[na++], 96, "model.ngf=%d", nt->ngf);
    if (nt->nif) snprintf(a[na++], 96, "model.nif=%d", nt->nif);
    if (nt->nz) snprintf(a[na++], 96, "model.nz=%d", nt->nz);
    snprintf(a[na++], 96, "train.batch_size=%d", B);
    snprintf(a[na++], 96, "langevin_x.steps=%d", kx);
    snprintf(a[na++], 96, "langevin_z.steps=%d", kz);
    snprintf(a[na++], 96, "data.dataset=shapes");
    snprintf(a[na++], 96, "data.count=%d", B);
    snprintf(a[na++], 96, "data.size=32");
    snprintf(a[na++], 96, "run.seed=%llu", (unsigned long long)b->seed);
    snprintf(a[na++], 96, "run.backend=%s", b->backend == EBMC_BACKEND_CPU ? "cpu" : "cuda");
    snprintf(a[na++], 96, "run.device=%d", b->device);
    snprintf(a[na++], 96, "run.precision=%s", prec_name(im->prec));
    snprintf(a[na++], 96, "run.graphs=%s", im->graph ? "true" : "false");
    snprintf(a[na++], 96, "log.quiet=true");
    char err[1024];
    for (int i = 0; i < na; i++)
        if (ebmc_config_set_arg(cfg, a[i], err, sizeof err)) {
            ebmc_config_free(cfg);
            return fail(b, "bench config: %s", err);
        }
    *out = cfg;
    return 0;
}

/* The recipe's network named `name` (a checkpoint item) */
static ebmc_net_t *recipe_net(ebmc_run_t *run, const char *name) {
    ebmc_ckpt_item items[EBMC_MAX_CKPT_ITEMS];
    const ebmc_recipe *rc = ebmc_run_recipe(run);
    int n = rc->ckpt_items(ebmc_run_state(run), items, EBMC_MAX_CKPT_ITEMS);
    for (int i = 0; i < n; i++)
        if (items[i].kind == EBMC_ITEM_NET && !strcmp(items[i].name, name)) return items[i].ptr;
    return NULL;
}

static int dm_open(bench_t *b, const bimpl *im, const bcase *c, ebmc_run_t **out, ebmc_config_t **cfg_out) {
    ebmc_config_t *cfg;
    if (dm_config(b, im, c->net, c->batch, c->steps, c->kz, &cfg)) return -1;
    ebmc_run_t *run;
    char err[1024];
    if (ebmc_run_open(dualmcmc(), cfg, true, &run, err, sizeof err) != EBMC_OK) {
        fail(b, "%s %s: set-up: %s", c->name, im->name, err);
        ebmc_config_free(cfg);
        return -1;
    }
    for (int r = 0; b->weights && r < 3; r++) {
        char path[PATH_MAX], name[2] = {"EGI"[r], 0};
        weights_path(b, b->weights, c->net, name[0], path, sizeof path);
        ebmc_net_t *net = recipe_net(run, name);
        if (!net || ebmc_net_load(net, path, err, sizeof err) != EBMC_OK) {
            fail(b, "%s", net ? err : "the dualmcmc recipe has no such network");
            ebmc_run_free(run);
            ebmc_config_free(cfg);
            return -1;
        }
    }
    int64_t epoch;
    if (ebmc_run_next_batch(run, &epoch, err, sizeof err) != EBMC_OK) {
        fail(b, "%s: the shapes batch: %s", c->name, err);
        ebmc_run_free(run);
        ebmc_config_free(cfg);
        return -1;
    }
    *out = run;
    *cfg_out = cfg;
    return 0;
}

/* ------------------------------------------------------------------ one timed unit */

/* Runs case c with impl i once (no synchronisation) */
static int run_unit(bench_t *b, const bcase *c, int ii) {
    const bimpl *im = b->impls[ii];
    if (c->kind == BK_ITER) {
        int slot = (int)(im - IMPLS);
        if (!b->dm[slot] && dm_open(b, im, c, &b->dm[slot], &b->dm_cfg[slot])) return -1;
        ebmc_run_t *t = b->dm[slot];
        if (ebmc_run_iteration(t, ++b->dm_it[slot], 0, false) != EBMC_OK)
            return fail(b, "%s %s: %s", c->name, im->name, ebmc_ctx_error(ebmc_run_ctx(t)));
        return 0;
    }
    if (rt_ready(b, im->prec, c->net)) return -1;
    bnet_rt *r = &b->rt[im->prec][c->net];
    ebmc_ctx_t *ctx = b->ctx[im->prec];
    ebmc_chain_t *ch = c->kind == BK_XCHAIN ? r->cx[im->graph] : r->cz[im->graph];
    int *k = c->kind == BK_XCHAIN ? &r->kx[im->graph] : &r->kz[im->graph];
    if (*k != c->steps) { /* another K than the last case of this chain: new parameters (and graphs) */
        ebmc_chain_set_params(ch, &c->lp);
        *k = c->steps;
    }
    ebmc_potential *pot = c->kind == BK_XCHAIN ? r->px : r->pz;
    const float *start = c->kind == BK_XCHAIN ? r->x0 : r->z0;
    CK(b, ctx, copy_dev(ctx, ebmc_chain_state(ch), start, (size_t)c->batch * pot->elems));
    if (ebmc_chain_run(ch, c->batch) != EBMC_OK)
        return fail(b, "%s %s: %s", c->name, im->name, ebmc_chain_error(ch));
    return 0;
}

static ebmc_ctx_t *unit_ctx(bench_t *b, const bcase *c, int ii) {
    const bimpl *im = b->impls[ii];
    if (c->kind == BK_ITER) {
        ebmc_run_t *t = b->dm[im - IMPLS];
        return t ? ebmc_run_ctx(t) : NULL;
    }
    return b->ctx[im->prec];
}

/* One unit bracketed by synchronisations: its wall time in *sec */
static int timed_unit(bench_t *b, const bcase *c, int ii, double *sec) {
    char range[160];
    snprintf(range, sizeof range, "bench %s %s", c->name, b->impls[ii]->name);
    ebmc_ctx_t *ctx = unit_ctx(b, c, ii);
    if (ctx && ebmc_sync(ctx) != EBMC_OK) return fail(b, "sync: %s", ebmc_ctx_error(ctx));
    EBMC_RANGE_PUSH(range);
    double t0 = ebmc_now_s();
    int rc = run_unit(b, c, ii);
    ctx = unit_ctx(b, c, ii); /* created by the first run */
    if (!rc && ebmc_sync(ctx) != EBMC_OK) rc = fail(b, "sync: %s", ebmc_ctx_error(ctx));
    double t1 = ebmc_now_s();
    EBMC_RANGE_POP();
    *sec = t1 - t0;
    return rc;
}

/* ------------------------------------------------------------------ the matmul rate */

static int measure_matmul(bench_t *b, ebmc_precision p) {
    if (b->matmul_rate[p] > 0) return 0;
    ebmc_ctx_t *ctx = get_ctx(b, p);
    if (!ctx) return -1;
    int S = ebmc_ctx_kind(ctx) == EBMC_BACKEND_CUDA ? 8192 : b->quick ? 256 : 512;
    b->matmul_n = S;
    size_t n = (size_t)S * S;
    float *x, *w, *y;
    CK(b, ctx, ebmc_alloc(ctx, (void **)&x, n * sizeof(float)));
    CK(b, ctx, ebmc_alloc(ctx, (void **)&w, n * sizeof(float)));
    CK(b, ctx, ebmc_alloc(ctx, (void **)&y, n * sizeof(float)));
    ebmc_rng_key key = {b->seed, 31, NULL, 0};
    CK(b, ctx, ebmc_init_uniform(ctx, x, S, (size_t)S, -1.0f, 1.0f, key));
    key.stream = 32;
    CK(b, ctx, ebmc_init_uniform(ctx, w, S, (size_t)S, -1.0f, 1.0f, key));
    ebmc_linear_desc d = {S, S, S};
    enum { REPS = 10 };
    double t[REPS];
    EBMC_RANGE_PUSH("bench matmul");
    for (int r = -2; r < REPS; r++) {
        CK(b, ctx, ebmc_sync(ctx));
        double t0 = ebmc_now_s();
        CK(b, ctx, ebmc_linear_fwd(ctx, &d, x, w, NULL, y));
        CK(b, ctx, ebmc_sync(ctx));
        if (r >= 0) t[r] = ebmc_now_s() - t0;
    }
    EBMC_RANGE_POP();
    ebmc_free(ctx, x);
    ebmc_free(ctx, w);
    ebmc_free(ctx, y);
    b->matmul_s[p] = percentile(t, REPS, 0.5);
    b->matmul_rate[p] = 2.0 * (double)S * S * S / b->matmul_s[p];
    return 0;
}

/* ------------------------------------------------------------------ build info as JSON */

static cJSON *versions_json(char *gpu, size_t gpulen, int device, bool cuda) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cJSON *v = cJSON_CreateObject();
    snprintf(gpu, gpulen, "cpu");
    if (!f) return v;
    ebmc_print_build_info(f);
    fclose(f);
    char want[32];
    snprintf(want, sizeof want, "device %d", device);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *colon = strstr(line, ": ");
        if (!colon) continue;
        *colon = 0;
        const char *val = colon + 2;
        cJSON_AddStringToObject(v, line, val);
        if (cuda && !strcmp(line, want)) {
            const char *comma = strchr(val, ',');
            snprintf(gpu, gpulen, "%.*s", comma ? (int)(comma - val) : (int)strlen(val), val);
        }
    }
    free(buf);
    return v;
}

/* ------------------------------------------------------------------ the timed benchmark */

typedef struct {
    int c, i;       /* case, impl */
    double *t;      /* rounds */
    int n;
} brow;

static double flop_fraction(bench_t *b, const bcase *c, int ii, double median) {
    ebmc_precision p = b->impls[ii]->prec;
    if (!(b->matmul_rate[p] > 0) || !(median > 0)) return NAN;
    return c->flop / median / b->matmul_rate[p];
}

static void print_table(bench_t *b, brow *rows, int nr, FILE *f) {
    fprintf(f, "%-40s %-16s %11s %11s %11s %24s %9s\n", "case", "impl", "median", "p10", "p90",
            "rate (unit)", "FLOP frac");
    for (int k = 0; k < nr; k++) {
        const bcase *c = &b->cases[rows[k].c];
        double med = percentile(rows[k].t, rows[k].n, 0.5);
        double p10 = percentile(rows[k].t, rows[k].n, 0.1), p90 = percentile(rows[k].t, rows[k].n, 0.9);
        char rate[64];
        snprintf(rate, sizeof rate, "%.4g %s", c->units / med, c->unit);
        fprintf(f, "%-40s %-16s %9.3f ms %8.3f ms %8.3f ms %24s %9.4f\n", c->name,
                b->impls[rows[k].i]->name, med * 1e3, p10 * 1e3, p90 * 1e3, rate,
                flop_fraction(b, c, rows[k].i, med));
    }
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static int write_json(bench_t *b, brow *rows, int nr, const char *path) {
    cJSON *root = cJSON_CreateObject();
    char gpu[256];
    ebmc_ctx_t *any = b->ctx[0] ? b->ctx[0] : b->ctx[1];
    bool cuda = any && ebmc_ctx_kind(any) == EBMC_BACKEND_CUDA;
    cJSON *ver = versions_json(gpu, sizeof gpu, b->device, cuda);
    cJSON_AddStringToObject(root, "tool", "ebmc bench");
    cJSON_AddStringToObject(root, "gpu", gpu);
    cJSON_AddStringToObject(root, "backend", cuda ? "cuda" : "cpu");
    cJSON_AddItemToObject(root, "versions", ver);
    cJSON_AddStringToObject(root, "command", b->command);
    char date[64];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    cJSON_AddStringToObject(root, "date", date);
    cJSON_AddBoolToObject(root, "quick", b->quick);
    cJSON_AddBoolToObject(root, "deterministic_chains", b->det);
    cJSON_AddNumberToObject(root, "rounds", b->rounds);
    cJSON_AddNumberToObject(root, "warmup", b->warmup);
    cJSON_AddStringToObject(root, "timing", "wall time of one unit bracketed by ebmc_sync; rounds "
                            "interleave every (case, impl) in rotated order");
    cJSON *mm = cJSON_AddObjectToObject(root, "matmul");
    for (int p = 0; p < 2; p++)
        if (b->matmul_rate[p] > 0) {
            cJSON *o = cJSON_AddObjectToObject(mm, prec_name((ebmc_precision)p));
            cJSON_AddNumberToObject(o, "flop_per_s", b->matmul_rate[p]);
            cJSON_AddNumberToObject(o, "median_s", b->matmul_s[p]);
            cJSON_AddNumberToObject(o, "n", b->matmul_n);
            cJSON_AddStringToObject(o, "what", "ebmc_linear_fwd (cuBLAS SGEMM on CUDA), n x n x n, "
                                    "2 n^3 FLOP, median of 10");
        }
    cJSON *arr = cJSON_AddArrayToObject(root, "rows");
    for (int k = 0; k < nr; k++) {
        const bcase *c = &b->cases[rows[k].c];
        const bimpl *im = b->impls[rows[k].i];
        double med = percentile(rows[k].t, rows[k].n, 0.5);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "case", c->name);
        cJSON_AddStringToObject(r, "impl", im->name);
        cJSON_AddNumberToObject(r, "median_s", med);
        cJSON_AddNumberToObject(r, "p10_s", percentile(rows[k].t, rows[k].n, 0.1));
        cJSON_AddNumberToObject(r, "p90_s", percentile(rows[k].t, rows[k].n, 0.9));
        cJSON_AddNumberToObject(r, "rate", c->units / med);
        cJSON_AddStringToObject(r, "rate_unit", c->unit);
        cJSON_AddItemToObject(r, "flop_fraction", num_or_null(flop_fraction(b, c, rows[k].i, med)));
        cJSON_AddNumberToObject(r, "flop_per_unit", c->flop);
        cJSON_AddItemToObject(r, "flop_per_s", num_or_null(c->flop / med));
        cJSON_AddStringToObject(r, "precision", prec_name(im->prec));
        cJSON_AddBoolToObject(r, "graph", im->graph && b->backend != EBMC_BACKEND_CPU);
        cJSON_AddBoolToObject(r, "deterministic", c->kind == BK_ITER || b->det);
        cJSON_AddNumberToObject(r, "batch", c->batch);
        cJSON_AddNumberToObject(r, "steps", c->steps);
        cJSON_AddItemToObject(r, "times_s", cJSON_CreateDoubleArray(rows[k].t, rows[k].n));
        cJSON_AddItemToArray(arr, r);
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *f = fopen(path, "w");
    if (!f || fputs(txt, f) < 0 || fputc('\n', f) < 0 || fclose(f)) {
        free(txt);
        return fail(b, "%s: cannot write: %s", path, strerror(errno));
    }
    free(txt);
    return 0;
}

static bool case_selected(const char *name, const char *list) {
    if (!list || !*list) return true;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (strpbrk(p, "*?[") ? fnmatch(p, name, 0) == 0 : strncmp(name, p, strlen(p)) == 0) return true;
    }
    return false;
}

static int bench_run(bench_t *b, const char *cases, const char *json) {
    int sel[MAX_CASES], ns = 0;
    for (int i = 0; i < b->n_cases; i++)
        if (case_selected(b->cases[i].name, cases)) sel[ns++] = i;
    if (!ns) return fail(b, "--cases '%s' matches no case (see ebmc bench --list)", cases);
    int nr = ns * b->n_impls;
    brow *rows = ebmc_xcalloc((size_t)nr, sizeof *rows, "bench");
    for (int k = 0; k < nr; k++) {
        rows[k].c = sel[k / b->n_impls];
        rows[k].i = k % b->n_impls;
        rows[k].t = ebmc_xcalloc((size_t)b->rounds, sizeof(double), "bench");
    }
    int rc = 0;
    for (int p = 0; p < 2 && !rc; p++) {
        bool used = false;
        for (int i = 0; i < b->n_impls; i++) used = used || b->impls[i]->prec == (ebmc_precision)p;
        if (used) rc = measure_matmul(b, (ebmc_precision)p);
    }
    /* warm-up (graph capture, plan building, lazy set-up), untimed */
    for (int k = 0; k < nr && !rc; k++)
        for (int w = 0; w < b->warmup && !rc; w++) {
            double t;
            rc = timed_unit(b, &b->cases[rows[k].c], rows[k].i, &t);
        }
    if (!rc && b->profile_n > 0) { /* a profiler window around profile_n units of each row */
        for (int k = 0; k < nr && !rc; k++) {
            const bcase *c = &b->cases[rows[k].c];
            ebmc_ctx_t *ctx = unit_ctx(b, c, rows[k].i);
            bool win = ebmc_profiler_start(ctx) == EBMC_OK;
            if (!win) fprintf(stderr, "ebmc bench: --profile: %s\n", ebmc_ctx_error(ctx));
            for (int r = 0; r < b->profile_n && !rc; r++) {
                double t;
                rc = timed_unit(b, c, rows[k].i, &t);
            }
            if (win && ebmc_profiler_stop(ctx) != EBMC_OK)
                fprintf(stderr, "ebmc bench: --profile: %s\n", ebmc_ctx_error(ctx));
            fprintf(stderr, "ebmc bench: profiled %d units of %s %s\n", b->profile_n, c->name,
                    b->impls[rows[k].i]->name);
        }
    }
    /* R rounds, each running every row once, order rotated by one per round */
    for (int r = 0; r < b->rounds && !rc; r++)
        for (int j = 0; j < nr && !rc; j++) {
            int k = (j + r) % nr;
            rc = timed_unit(b, &b->cases[rows[k].c], rows[k].i, &rows[k].t[r]);
            rows[k].n = r + 1;
        }
    if (!rc) {
        print_table(b, rows, nr, stdout);
        for (int p = 0; p < 2; p++)
            if (b->matmul_rate[p] > 0)
                printf("dense matmul (%s, n = %d): %.4g TFLOP/s\n", prec_name((ebmc_precision)p),
                       b->matmul_n, b->matmul_rate[p] * 1e-12);
        if (json) rc = write_json(b, rows, nr, json);
    }
    for (int k = 0; k < nr; k++) free(rows[k].t);
    free(rows);
    return rc;
}

/* ------------------------------------------------------------------ plan / weights export */

static cJSON *plan_json(bench_t *b) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", "ebmc bench");
    cJSON_AddBoolToObject(root, "quick", b->quick);
    cJSON_AddNumberToObject(root, "seed", (double)b->seed);
    cJSON *nets = cJSON_AddObjectToObject(root, "nets");
    for (int n = 0; n < b->n_nets; n++) {
        ebmc_model_cfg mc = net_model_cfg(&b->nets[n]);
        cJSON *o = cJSON_AddObjectToObject(nets, b->nets[n].key);
        cJSON_AddStringToObject(o, "arch", mc.arch);
        cJSON_AddNumberToObject(o, "nz", mc.nz);
        cJSON_AddNumberToObject(o, "ngf", mc.ngf);
        cJSON_AddNumberToObject(o, "ndf", mc.ndf);
        cJSON_AddNumberToObject(o, "nif", mc.nif);
        cJSON_AddNumberToObject(o, "img_c", mc.img_c);
        cJSON_AddNumberToObject(o, "img_size", mc.img_size);
        cJSON *files = cJSON_AddObjectToObject(o, "files");
        for (int r = 0; r < (b->nets[n].dual ? 3 : 1); r++) {
            char f[160], role[2] = {"EGI"[r], 0};
            snprintf(f, sizeof f, "%s.%c.safetensors", b->nets[n].key, "EGI"[r]);
            cJSON_AddStringToObject(files, role, f);
            double first, m = role_macs(&b->nets[n], (ebmc_net_role)r, &first);
            char k1[32], k2[32];
            snprintf(k1, sizeof k1, "macs_%c", "EGI"[r]);
            snprintf(k2, sizeof k2, "macs_input_layer_%c", "EGI"[r]);
            cJSON_AddNumberToObject(o, k1, m);
            cJSON_AddNumberToObject(o, k2, first);
        }
    }
    cJSON *cases = cJSON_AddArrayToObject(root, "cases");
    for (int i = 0; i < b->n_cases; i++) {
        const bcase *c = &b->cases[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", c->name);
        cJSON_AddStringToObject(o, "kind", c->kind == BK_XCHAIN ? "x-chain" : c->kind == BK_ZCHAIN ? "z-chain" : "iteration");
        cJSON_AddStringToObject(o, "net", b->nets[c->net].key);
        cJSON_AddNumberToObject(o, "batch", c->batch);
        cJSON_AddNumberToObject(o, "steps", c->steps);
        if (c->kind == BK_ITER) {
            cJSON_AddNumberToObject(o, "steps_z", c->kz);
            ebmc_config_t *cfg;
            const bimpl *im = b->impls[0];
            if (!dm_config(b, im, c->net, c->batch, c->steps, c->kz, &cfg)) {
                char *js = ebmc_config_to_json(cfg);
                cJSON_AddItemToObject(o, "config", cJSON_Parse(js));
                free(js);
                ebmc_config_free(cfg);
            }
        } else {
            cJSON_AddNumberToObject(o, "a", c->lp.a);
            cJSON_AddNumberToObject(o, "b", c->lp.b);
            cJSON_AddNumberToObject(o, "c", c->lp.c);
            cJSON_AddNumberToObject(o, c->kind == BK_XCHAIN ? "scale" : "k", c->scale);
        }
        cJSON_AddNumberToObject(o, "flop_per_unit", c->flop);
        cJSON_AddNumberToObject(o, "units_per_unit", c->units);
        cJSON_AddStringToObject(o, "rate_unit", c->unit);
        cJSON_AddItemToArray(cases, o);
    }
    cJSON *impls = cJSON_AddArrayToObject(root, "impls");
    for (int i = 0; i < b->n_impls; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", b->impls[i]->name);
        cJSON_AddStringToObject(o, "precision", prec_name(b->impls[i]->prec));
        cJSON_AddBoolToObject(o, "graph", b->impls[i]->graph && b->backend != EBMC_BACKEND_CPU);
        cJSON_AddItemToArray(impls, o);
    }
    cJSON *gates = cJSON_AddObjectToObject(root, "gate_sizes");
    for (int n = 0; n < b->n_nets; n++)
        for (int kind = 0; kind < 2; kind++) {
            int bg, bt, bd, k;
            gate_sizes(b, n, kind, &bg, &bt, &bd, &k);
            if (!bg) continue;
            char key[96];
            snprintf(key, sizeof key, "%s/%s", kind == BK_XCHAIN ? "x" : "z", b->nets[n].key);
            cJSON *o = cJSON_AddObjectToObject(gates, key);
            cJSON_AddNumberToObject(o, "batch", bg);
            cJSON_AddNumberToObject(o, "traj_batch", bt);
            cJSON_AddNumberToObject(o, "dist_batch", bd);
            cJSON_AddNumberToObject(o, "steps", k);
        }
    return root;
}

static int write_text(bench_t *b, const char *path, const char *txt) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(txt, f) < 0 || fputc('\n', f) < 0 || fclose(f))
        return fail(b, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

static int export_weights(bench_t *b, const char *dir) {
    if (ebmc_mkdir_p(dir)) return fail(b, "%s: cannot create: %s", dir, strerror(errno));
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CPU; /* the values do not depend on the backend */
    ebmc_ctx_t *ctx;
    char err[1024];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err)) return fail(b, "%s", err);
    const char *saved = b->weights;
    b->weights = NULL; /* seeded weights, not loaded ones */
    int rc = 0;
    for (int n = 0; n < b->n_nets && !rc; n++)
        for (int r = 0; r < (b->nets[n].dual ? 3 : 1) && !rc; r++) {
            ebmc_net_t *net = build_net(b, ctx, n, (ebmc_net_role)r, false);
            if (!net) {
                rc = -1;
                break;
            }
            char path[PATH_MAX];
            weights_path(b, dir, n, "EGI"[r], path, sizeof path);
            const char *meta[][2] = {{"bench_net", b->nets[n].key}};
            if (ebmc_net_save(net, path, meta, 1, err, sizeof err)) rc = fail(b, "%s", err);
            ebmc_net_free(net);
        }
    b->weights = saved;
    ebmc_ctx_free(ctx);
    if (rc) return rc;
    cJSON *plan = plan_json(b);
    char *txt = cJSON_Print(plan);
    cJSON_Delete(plan);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    rc = write_text(b, path, txt);
    free(txt);
    if (!rc) fprintf(stderr, "ebmc bench: weights and manifest.json written to %s\n", dir);
    return rc;
}

/* ------------------------------------------------------------------ correctness-gate dumps */

typedef struct {
    ebmc_st_tensor t[16];
    float *host[16];
    char names[16][32];
    int n;
} dump_t;

static int dump_add(bench_t *b, dump_t *d, ebmc_ctx_t *ctx, const char *name, const float *dev,
                    int n, int c, int h, int w) {
    size_t cnt = (size_t)n * c * h * w;
    float *hb = ebmc_xmalloc((cnt ? cnt : 1) * sizeof(float), "bench");
    if (ebmc_copy(ctx, hb, dev, cnt * sizeof(float), EBMC_COPY_D2H) != EBMC_OK) {
        free(hb);
        return fail(b, "gate copy %s: %s", name, ebmc_ctx_error(ctx));
    }
    snprintf(d->names[d->n], 32, "%s", name);
    d->host[d->n] = hb;
    d->t[d->n] = (ebmc_st_tensor){d->names[d->n], EBMC_DT_F32, 4, {n, c, h, w}, hb};
    d->n++;
    return 0;
}

static int dump_write(bench_t *b, dump_t *d, const char *path, const char *const (*meta)[2], int nm) {
    char err[1024];
    int rc = ebmc_st_write(path, d->t, d->n, meta, nm, err, sizeof err) ? fail(b, "%s", err) : 0;
    for (int i = 0; i < d->n; i++) free(d->host[i]);
    d->n = 0;
    return rc;
}

/* The chain-gate dump of net key n (x-chain: E; z-chain: G) with impl ii into dir:
 *   x|z (Bg,...)  the input; target (Bg,C,H,W) for z
 *   out (Bg,...)  the net's output at the input (E: energy or score, G: image)
 *   grad          x: d(sum out)/dx; z: d(sum |G(z) - target|^2)/dz    (one forward, fresh nets)
 *   traj_xK       Bt chains from the first Bt inputs, K steps of the case's update with Philox
 *                 noise (seed, ST_GATE_TRAJ, steps 0..K-1): reproducible bit for bit elsewhere
 *   dist_x0 / dist_xK / dist_outK   x: Bd chains all from input 0, own noise (ST_GATE_DIST), and
 *                 the net's output at the final states; z: Bd chains from the first Bd inputs
 * Each of the three parts starts from freshly loaded nets (spectral norm's u, v advance with every
 * forward, so the PyTorch side repeats exactly this sequence). */
/* One eager forward and input-gradient backward of a throwaway copy of the net at batch nb, so
 * that the context has the cuDNN plans and workspace of that batch before a graph is captured
 * with it (a capture must not allocate), while the measured net's spectral-norm state is left
 * as loaded. in: nb inputs. */
static int warm_plans(bench_t *b, ebmc_ctx_t *ctx, int n, ebmc_net_role role, int nb, const float *in,
                      float *dy, float *g) {
    ebmc_net_t *net = build_net(b, ctx, n, role, false);
    if (!net) return -1;
    ebmc_tape_t *tape;
    int rc = 0;
    if (ebmc_tape_create(net, nb, true, &tape) != EBMC_OK) rc = fail(b, "%s", ebmc_net_error(net));
    if (!rc) {
        size_t oe = ebmc_net_value_count(net, ebmc_net_output_value(net, 0));
        ebmc_fill_desc f = {(size_t)nb * oe, 0.0f};
        const float *dys[1] = {dy};
        if (ebmc_net_forward(net, tape, nb, in) || ebmc_fill(ctx, &f, dy) ||
            ebmc_net_backward(net, tape, dys, EBMC_GRAD_INPUT, g, 0.0f))
            rc = fail(b, "warming plans: %s", ebmc_ctx_error(ctx));
        ebmc_tape_free(tape);
    }
    ebmc_net_free(net);
    return rc;
}

static int gate_chain(bench_t *b, int n, int kind, int ii, const char *dir) {
    const bimpl *im = b->impls[ii];
    ebmc_ctx_t *ctx = get_ctx(b, im->prec);
    if (!ctx) return -1;
    const bcase *c = NULL;
    for (int i = 0; i < b->n_cases && !c; i++)
        if (b->cases[i].net == n && b->cases[i].kind == kind) c = &b->cases[i];
    int bg, bt, bd, K;
    gate_sizes(b, n, kind, &bg, &bt, &bd, &K);
    int mb = bg > bd ? bg : bd;
    ebmc_net_role role = kind == BK_XCHAIN ? EBMC_NET_E : EBMC_NET_G;
    ebmc_model_cfg mc = net_model_cfg(&b->nets[n]);
    int ic = kind == BK_XCHAIN ? mc.img_c : mc.nz, ih = kind == BK_XCHAIN ? mc.img_size : 1;
    size_t in_elems = (size_t)ic * ih * ih, img = (size_t)mc.img_c * mc.img_size * mc.img_size;
    float *x = NULL, *tgt = NULL, *g = NULL, *dy = NULL;
    CK(b, ctx, ebmc_alloc(ctx, (void **)&x, (size_t)mb * in_elems * sizeof(float)));
    CK(b, ctx, ebmc_alloc(ctx, (void **)&g, (size_t)mb * in_elems * sizeof(float)));
    CK(b, ctx, ebmc_alloc(ctx, (void **)&tgt, (size_t)mb * img * sizeof(float)));
    CK(b, ctx, ebmc_alloc(ctx, (void **)&dy, (size_t)mb * img * sizeof(float)));
    ebmc_rng_key key = {b->seed, ST_GATE_X, NULL, 0};
    if (kind == BK_XCHAIN) CK(b, ctx, ebmc_init_uniform(ctx, x, mb, in_elems, -1.0f, 1.0f, key));
    else {
        key.stream = ST_GATE_Z;
        CK(b, ctx, ebmc_init_normal(ctx, x, mb, in_elems, 1.0f, key));
    }
    key.stream = ST_GATE_T;
    CK(b, ctx, ebmc_init_uniform(ctx, tgt, mb, img, -1.0f, 1.0f, key));
    dump_t d = {0};
    int rc = 0;
    const char *xn = kind == BK_XCHAIN ? "x" : "z";
    /* 1. output and input gradient */
    ebmc_net_t *net = build_net(b, ctx, n, role, false);
    ebmc_tape_t *tape = NULL;
    if (!net) return -1;
    CK(b, ctx, ebmc_tape_create(net, mb, true, &tape));
    int oc, oh, ow;
    ebmc_net_value_shape(net, ebmc_net_output_value(net, 0), &oc, &oh, &ow);
    CK(b, ctx, ebmc_net_forward(net, tape, bg, x));
    const float *out = ebmc_tape_output(tape, 0);
    if (kind == BK_XCHAIN) {
        ebmc_fill_desc f = {(size_t)bg, 1.0f};
        CK(b, ctx, ebmc_fill(ctx, &f, dy));
    } else {
        ebmc_scaled_diff_desc sd = {(size_t)bg * img, 2.0f, 0.0f};
        CK(b, ctx, ebmc_scaled_diff(ctx, &sd, out, tgt, dy));
    }
    const float *dys[1] = {dy};
    CK(b, ctx, ebmc_net_backward(net, tape, dys, EBMC_GRAD_INPUT, g, 0.0f));
    rc = rc || dump_add(b, &d, ctx, xn, x, bg, ic, ih, ih);
    if (kind == BK_ZCHAIN) rc = rc || dump_add(b, &d, ctx, "target", tgt, bg, mc.img_c, mc.img_size, mc.img_size);
    rc = rc || dump_add(b, &d, ctx, "out", out, bg, oc, oh, ow);
    rc = rc || dump_add(b, &d, ctx, "grad", g, bg, ic, ih, ih);
    ebmc_tape_free(tape);
    ebmc_net_free(net);
    /* 2. trajectory with reproducible noise; 3. distribution with many chains */
    for (int part = 0; part < 2 && !rc; part++) {
        int nb = part == 0 ? bt : bd;
        if (!(net = build_net(b, ctx, n, role, false))) return -1;
        ebmc_potential *pot;
        ebmc_chain_t *ch;
        if (kind == BK_XCHAIN) CK(b, ctx, ebmc_potential_energy(net, mb, c->scale, &pot));
        else CK(b, ctx, ebmc_potential_latent(net, mb, c->scale, &pot));
        if (im->graph && ebmc_graph_supported(ctx) && warm_plans(b, ctx, n, role, nb, x, dy, g)) return -1;
        ebmc_langevin_params lp = c->lp;
        lp.steps = K;
        CK(b, ctx, ebmc_chain_create(pot, &lp, nb, b->seed, part == 0 ? ST_GATE_TRAJ : ST_GATE_DIST, &ch));
        ebmc_chain_set_graph(ch, im->graph);
        float *st = ebmc_chain_state(ch);
        if (kind == BK_ZCHAIN) CK(b, ctx, copy_dev(ctx, ebmc_potential_latent_target(pot), tgt, (size_t)nb * img));
        if (part == 0 || kind == BK_ZCHAIN) CK(b, ctx, copy_dev(ctx, st, x, (size_t)nb * in_elems));
        else
            for (int i = 0; i < nb; i++) CK(b, ctx, copy_dev(ctx, st + (size_t)i * in_elems, x, in_elems));
        if (ebmc_chain_run(ch, nb) != EBMC_OK) return fail(b, "gate chain: %s", ebmc_chain_error(ch));
        char nm[32];
        snprintf(nm, sizeof nm, part == 0 ? "traj_%sK" : "dist_%sK", xn);
        rc = rc || dump_add(b, &d, ctx, nm, st, nb, ic, ih, ih);
        if (part == 1 && kind == BK_XCHAIN) {
            CK(b, ctx, ebmc_tape_create(net, mb, false, &tape));
            CK(b, ctx, ebmc_net_forward(net, tape, nb, st));
            rc = rc || dump_add(b, &d, ctx, "dist_outK", ebmc_tape_output(tape, 0), nb, oc, oh, ow);
            ebmc_tape_free(tape);
        }
        ebmc_chain_free(ch);
        ebmc_potential_free(pot);
        ebmc_net_free(net);
    }
    ebmc_free(ctx, x);
    ebmc_free(ctx, g);
    ebmc_free(ctx, tgt);
    ebmc_free(ctx, dy);
    char path[PATH_MAX], seed[32], sa[32], sb[32], sc[32], ss[32], sk[32], sbt[16], sbd[16], sbg[16];
    snprintf(path, sizeof path, "%s/gate.%s.%s.%s.safetensors", dir, kind == BK_XCHAIN ? "x" : "z",
             b->nets[n].key, im->name);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)b->seed);
    snprintf(sa, sizeof sa, "%.9g", c->lp.a);
    snprintf(sb, sizeof sb, "%.9g", c->lp.b);
    snprintf(sc, sizeof sc, "%.9g", c->lp.c);
    snprintf(ss, sizeof ss, "%.9g", c->scale);
    snprintf(sk, sizeof sk, "%d", K);
    snprintf(sbg, sizeof sbg, "%d", bg);
    snprintf(sbt, sizeof sbt, "%d", bt);
    snprintf(sbd, sizeof sbd, "%d", bd);
    char st_traj[16], st_dist[16];
    snprintf(st_traj, sizeof st_traj, "%d", ST_GATE_TRAJ);
    snprintf(st_dist, sizeof st_dist, "%d", ST_GATE_DIST);
    const char *meta[][2] = {{"net", b->nets[n].key}, {"kind", kind == BK_XCHAIN ? "x-chain" : "z-chain"},
                             {"impl", im->name}, {"precision", prec_name(im->prec)},
                             {"seed", seed}, {"stream_traj", st_traj}, {"stream_dist", st_dist},
                             {"a", sa}, {"b", sb}, {"c", sc}, {kind == BK_XCHAIN ? "scale" : "k", ss},
                             {"steps", sk}, {"batch", sbg}, {"traj_batch", sbt}, {"dist_batch", sbd}};
    if (!rc) rc = dump_write(b, &d, path, meta, (int)(sizeof meta / sizeof meta[0]));
    return rc;
}

/* One iteration (iteration 1, epoch 0) from freshly loaded weights on the first shapes batch:
 * x and the recipe's probes (the raw per-iteration sums a reference reproduces; names in the
 * metadata) */
static int gate_iteration(bench_t *b, const bcase *c, int ii, const char *dir) {
    const bimpl *im = b->impls[ii];
    ebmc_run_t *t;
    ebmc_config_t *cfg;
    if (dm_open(b, im, c, &t, &cfg)) return -1;
    int rc = 0;
    if (ebmc_run_iteration(t, 1, 0, false) != EBMC_OK) rc = fail(b, "gate iteration: %s", ebmc_ctx_error(ebmc_run_ctx(t)));
    const ebmc_recipe *r = ebmc_run_recipe(t);
    if (!rc) {
        const char *names;
        const float *vals;
        int np = r->probes(ebmc_run_state(t), &names, &vals), C, H, W;
        r->sample_shape(ebmc_run_state(t), &C, &H, &W);
        ebmc_st_tensor ts[2] = {
            {"x", EBMC_DT_F32, 4, {ebmc_run_batch_size(t), C, H, W}, ebmc_run_batch(t)},
            {"metrics", EBMC_DT_F32, 1, {np}, vals}};
        char path[PATH_MAX], err[1024];
        char *cj = ebmc_config_to_json(cfg);
        const char *meta[][2] = {{"impl", im->name}, {"precision", prec_name(im->prec)},
                                 {"metrics", names}, {"config", cj ? cj : "{}"}};
        snprintf(path, sizeof path, "%s/gate.iteration.%s.%s.safetensors", dir, b->nets[c->net].key, im->name);
        if (ebmc_st_write(path, ts, 2, meta, 4, err, sizeof err)) rc = fail(b, "%s", err);
        free(cj);
    }
    ebmc_run_free(t);
    ebmc_config_free(cfg);
    return rc;
}

static bool case_selected(const char *name, const char *list);

/* The gate dumps of the nets and chain kinds that the selected cases use (all when cases is
 * NULL), for every implementation. */
static int gate_dump(bench_t *b, const char *dir, const char *cases) {
    if (!b->weights) return fail(b, "the gate dumps need --weights DIR (from --export-weights)");
    if (ebmc_mkdir_p(dir)) return fail(b, "%s: cannot create: %s", dir, strerror(errno));
    for (int ii = 0; ii < b->n_impls; ii++) {
        for (int n = 0; n < b->n_nets; n++)
            for (int kind = 0; kind < 2; kind++) {
                bool used = false;
                for (int i = 0; i < b->n_cases; i++)
                    used = used || (b->cases[i].net == n && b->cases[i].kind == kind &&
                                    case_selected(b->cases[i].name, cases));
                if (used && gate_chain(b, n, kind, ii, dir)) return -1;
            }
        for (int i = 0; i < b->n_cases; i++)
            if (b->cases[i].kind == BK_ITER && case_selected(b->cases[i].name, cases) &&
                gate_iteration(b, &b->cases[i], ii, dir))
                return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ --serve */

static void serve_usage(FILE *f) {
    fprintf(f,
            "ebmc bench --serve: one command per line on stdin, one JSON object per line on stdout\n"
            "  info                     {\"gpu\", \"backend\", \"versions\", \"matmul\": {precision: FLOP/s}}\n"
            "  run CASE IMPL [N]        N units (default 1), each bracketed by ebmc_sync:\n"
            "                           {\"ok\": true, \"case\", \"impl\", \"times_s\": [...]}\n"
            "  profile CASE IMPL N      the same inside a cudaProfilerStart/Stop window\n"
            "  gate DIR [CASES]         the correctness-gate dumps (as --gate-dump DIR) of the nets\n"
            "                           the cases use (CASES as --cases; default all)\n"
            "  quit\n"
            "errors answer {\"ok\": false, \"error\": \"...\"} and the server goes on.\n");
}

static void emit(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
    cJSON_Delete(o);
}

static void emit_error(const char *msg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", false);
    cJSON_AddStringToObject(o, "error", msg);
    emit(o);
}

static int serve(bench_t *b) {
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "", a1[1024] = "", a2[1024] = "";
        int n = 1;
        int got = sscanf(line, "%31s %1023s %1023s %d", cmd, a1, a2, &n);
        if (got < 1) continue;
        b->err[0] = 0;
        if (!strcmp(cmd, "quit")) break;
        if (!strcmp(cmd, "info")) {
            bool any = false;
            for (int p = 0; p < 2; p++) {
                bool used = false;
                for (int i = 0; i < b->n_impls; i++) used = used || b->impls[i]->prec == (ebmc_precision)p;
                if (used && measure_matmul(b, (ebmc_precision)p)) {
                    emit_error(b->err);
                    any = true;
                    break;
                }
            }
            if (any) continue;
            cJSON *o = cJSON_CreateObject();
            char gpu[256];
            ebmc_ctx_t *c0 = b->ctx[0] ? b->ctx[0] : b->ctx[1];
            bool cuda = c0 && ebmc_ctx_kind(c0) == EBMC_BACKEND_CUDA;
            cJSON_AddBoolToObject(o, "ok", true);
            cJSON *v = versions_json(gpu, sizeof gpu, b->device, cuda);
            cJSON_AddStringToObject(o, "gpu", gpu);
            cJSON_AddStringToObject(o, "backend", cuda ? "cuda" : "cpu");
            cJSON_AddItemToObject(o, "versions", v);
            cJSON *mm = cJSON_AddObjectToObject(o, "matmul");
            for (int p = 0; p < 2; p++)
                if (b->matmul_rate[p] > 0) cJSON_AddNumberToObject(mm, prec_name((ebmc_precision)p), b->matmul_rate[p]);
            cJSON_AddNumberToObject(o, "matmul_n", b->matmul_n);
            emit(o);
        } else if (!strcmp(cmd, "run") || !strcmp(cmd, "profile")) {
            const bcase *c = find_case(b, a1);
            int ii = find_impl(b, a2);
            if (!c || ii < 0 || n < 1 || n > MAX_TIMES) {
                char m[2200];
                snprintf(m, sizeof m, "unknown case '%s' or impl '%s' (or bad count)", a1, a2);
                emit_error(m);
                continue;
            }
            bool prof = !strcmp(cmd, "profile");
            double *t = ebmc_xmalloc((size_t)n * sizeof *t, "bench");
            int rc = 0;
            if (prof) { /* the first unit creates the context; the window starts after it */
                rc = timed_unit(b, c, ii, &t[0]);
                if (!rc && ebmc_profiler_start(unit_ctx(b, c, ii)) != EBMC_OK)
                    fprintf(stderr, "ebmc bench: profile: %s\n", ebmc_ctx_error(unit_ctx(b, c, ii)));
            }
            for (int k = 0; k < n && !rc; k++) rc = timed_unit(b, c, ii, &t[k]);
            if (prof && !rc) ebmc_profiler_stop(unit_ctx(b, c, ii));
            if (rc) emit_error(b->err);
            else {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddBoolToObject(o, "ok", true);
                cJSON_AddStringToObject(o, "case", c->name);
                cJSON_AddStringToObject(o, "impl", b->impls[ii]->name);
                cJSON_AddItemToObject(o, "times_s", cJSON_CreateDoubleArray(t, n));
                emit(o);
            }
            free(t);
        } else if (!strcmp(cmd, "gate")) {
            if (!a1[0] || gate_dump(b, a1, a2[0] ? a2 : NULL))
                emit_error(a1[0] ? b->err : "gate needs a directory");
            else {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddBoolToObject(o, "ok", true);
                cJSON_AddStringToObject(o, "dir", a1);
                emit(o);
            }
        } else if (!strcmp(cmd, "help")) {
            serve_usage(stderr);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddBoolToObject(o, "ok", true);
            emit(o);
        } else {
            char m[128];
            snprintf(m, sizeof m, "unknown command '%s' (info, run, profile, gate, quit)", cmd);
            emit_error(m);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ the command */

static void usage(FILE *f) {
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
    for (int i = 0; i < N_IMPL_TABLE; i++) {
        ebmc_run_free(b->dm[i]);
        ebmc_config_free(b->dm_cfg[i]);
    }
    for (int p = 0; p < 2; p++) {
        for (int n = 0; n < MAX_NETS; n++) rt_free(&b->rt[p][n]);
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
            usage(stdout);
            free(b);
            return 0;
        } else {
            fprintf(stderr, "ebmc bench: unknown option '%s'\n", a);
            usage(stderr);
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
        const bimpl *im = &IMPLS[i];
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
        cJSON *p = plan_json(b);
        char *s = cJSON_Print(p);
        puts(s);
        free(s);
        cJSON_Delete(p);
    } else if (export_dir) {
        rc = export_weights(b, export_dir);
    } else if (gate_dir) {
        rc = gate_dump(b, gate_dir, cases);
    } else if (serve_mode) {
        rc = serve(b);
    } else {
        rc = bench_run(b, cases, json);
    }
    if (rc) fprintf(stderr, "ebmc bench: %s\n", b->err);
    bench_free(b);
    free(b);
    return rc ? 1 : 0;
}
