/* defines: the private part of `ebmc bench` shared by its four files: the plan's records (bnet,
 * bcase, bimpl), the run-time state (bnet_rt, bench_t), a row of timings (brow), the CK check
 * macro, and the functions one file calls in another. bench.c holds the plan and the command,
 * bench_units.c the contexts, nets and timed units, bench_report.c the table, JSON and weight
 * export, bench_gates.c the correctness-gate dumps and --serve. */
#ifndef EBMC_BENCH_INTERNAL_H
#define EBMC_BENCH_INTERNAL_H

#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/recipe.h"
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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


/* the implementations (bench.c); N_IMPL_TABLE is checked there against the table */
enum { N_IMPL_TABLE = 5 };
extern const bimpl bench_impls[N_IMPL_TABLE];

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
    /* the dualmcmc recipe, through the recipe table: one run per (implementation, iteration case),
     * since cases differ in nets, batch and K */
    ebmc_run_t *dm[N_IMPL_TABLE][MAX_CASES];
    ebmc_config_t *dm_cfg[N_IMPL_TABLE][MAX_CASES];
    int64_t dm_it[N_IMPL_TABLE][MAX_CASES];
    double matmul_rate[2], matmul_s[2];
    int matmul_n;
    char err[1024];
} bench_t;

/* one (case, impl) row of the timed benchmark */
typedef struct {
    int c, i;       /* case, impl */
    double *t;      /* rounds */
    int n;
} brow;

/* ---- bench.c: helpers and the plan */
const ebmc_recipe *bench_dualmcmc(void);
/* percentile q in [0,1] of n values (linear interpolation as numpy's default) */
double bench_percentile(const double *v, int n, double q);
/* formats the error into b->err; returns -1 */
int bench_fail(bench_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *bench_prec_name(ebmc_precision p);
ebmc_model_cfg bench_net_model_cfg(const bnet *n);
/* MACs per sample of role r of net n (built on the side, never finalized) */
double bench_role_macs(const bnet *n, ebmc_net_role r, double *first);

#define CK(b, ctx, call)                                                                        \
    do {                                                                                        \
        if ((call) != EBMC_OK) return bench_fail(b, "%s: %s", #call, ebmc_ctx_error(ctx));            \
    } while (0)

/* ---- bench_units.c: contexts, nets, the timed unit, the matmul rate, the timed benchmark */
ebmc_status bench_copy_dev(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n);
ebmc_ctx_t *bench_get_ctx(bench_t *b, ebmc_precision p);
void bench_weights_path(const bench_t *b, const char *dir, int n, char role, char *out, size_t len);
ebmc_net_t *bench_build_net(bench_t *b, ebmc_ctx_t *ctx, int n, ebmc_net_role r, bool trainable);
void bench_rt_free(bnet_rt *r);
int bench_dm_config(bench_t *b, const bimpl *im, int n, int B, int kx, int kz, ebmc_config_t **out);
int bench_dm_open(bench_t *b, const bimpl *im, const bcase *c, ebmc_run_t **out, ebmc_config_t **cfg_out);
ebmc_ctx_t *bench_unit_ctx(bench_t *b, const bcase *c, int ii);
int bench_timed_unit(bench_t *b, const bcase *c, int ii, double *sec);
int bench_measure_matmul(bench_t *b, ebmc_precision p);
bool bench_case_selected(const char *name, const char *list);
int bench_run(bench_t *b, const char *cases, const char *json);

/* ---- bench_report.c: build info, the table, the JSON results, the plan, the weight export */
cJSON *bench_versions_json(char *gpu, size_t gpulen, int device, bool cuda);
void bench_print_table(bench_t *b, brow *rows, int nr, FILE *f);
int bench_write_json(bench_t *b, brow *rows, int nr, const char *path);
cJSON *bench_plan_json(bench_t *b);
int bench_export_weights(bench_t *b, const char *dir);

/* ---- bench_gates.c: the correctness-gate dumps and --serve */
/* gate sizes of a net and chain kind: Bg (energies, gradients), Bt (shared-noise trajectory),
 * Bd (distribution: many chains) */
void bench_gate_sizes(const bench_t *b, int n, int kind, int *bg, int *bt, int *bd, int *k);
int bench_gate_dump(bench_t *b, const char *dir, const char *cases);
int bench_serve(bench_t *b);

#endif
