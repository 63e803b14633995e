/* `ebmc bench`, the measured side: contexts per precision, the nets, potentials and chains of
 * each net key (built lazily, plans warmed before any graph capture), the Dual-MCMC trainer as
 * `ebmc train` opens it, one timed unit bracketed by synchronisations, the dense matmul rate,
 * and the timed benchmark itself: warm-up, the profiler window, R rotated rounds. */
#include "bench_internal.h"
#include "ebmc/checkpoint.h"
#include "ebmc/nvtx.h"
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ contexts and nets */

/* the largest batch any case (or gate) of net `n` and chain kind needs */
static int net_max_batch(const bench_t *b, int n, int kind) {
    int m = 0;
    for (int i = 0; i < b->n_cases; i++)
        if (b->cases[i].net == n && b->cases[i].kind == kind && b->cases[i].batch > m) m = b->cases[i].batch;
    return m;
}

ebmc_status bench_copy_dev(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n) {
    ebmc_axpby_desc d = {n, 1.0f, 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

ebmc_ctx_t *bench_get_ctx(bench_t *b, ebmc_precision p) {
    if (b->ctx[p]) return b->ctx[p];
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = b->backend;
    o.device = b->device;
    o.precision = p;
    o.deterministic = b->det;
    o.quiet = true;
    char err[512];
    if (ebmc_ctx_create(&o, &b->ctx[p], err, sizeof err) != EBMC_OK) {
        bench_fail(b, "context (%s): %s", bench_prec_name(p), err);
        return NULL;
    }
    return b->ctx[p];
}

void bench_weights_path(const bench_t *b, const char *dir, int n, char role, char *out, size_t len) {
    snprintf(out, len, "%s/%s.%c.safetensors", dir, b->nets[n].key, role);
}

/* A finalized net of net key n, role r on ctx: seeded as the dualmcmc recipe seeds it (run.seed + 101 (r+1)),
 * then overwritten by the --weights file when given. */
ebmc_net_t *bench_build_net(bench_t *b, ebmc_ctx_t *ctx, int n, ebmc_net_role r, bool trainable) {
    ebmc_model_cfg mc = bench_net_model_cfg(&b->nets[n]);
    char err[1024];
    ebmc_net_t *net = ebmc_model_build(&mc, r, err, sizeof err);
    if (!net) {
        bench_fail(b, "%s: %s", b->nets[n].key, err);
        return NULL;
    }
    if (ebmc_net_finalize(net, ctx, trainable, b->seed + 101 * (uint64_t)(r + 1)) != EBMC_OK) {
        bench_fail(b, "%s: %s", b->nets[n].key, ebmc_net_error(net));
        ebmc_net_free(net);
        return NULL;
    }
    if (b->weights) {
        char path[PATH_MAX];
        bench_weights_path(b, b->weights, n, "EGI"[r], path, sizeof path);
        if (ebmc_net_load(net, path, err, sizeof err) != EBMC_OK) {
            bench_fail(b, "%s", err);
            ebmc_net_free(net);
            return NULL;
        }
    }
    return net;
}

static int rt_ready(bench_t *b, ebmc_precision p, int n) {
    bnet_rt *r = &b->rt[p][n];
    if (r->ready) return 0;
    ebmc_ctx_t *ctx = bench_get_ctx(b, p);
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
        if (!(r->E = bench_build_net(b, ctx, n, EBMC_NET_E, false))) return -1;
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
        if (!(r->G = bench_build_net(b, ctx, n, EBMC_NET_G, false))) return -1;
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
            CK(b, ctx, bench_copy_dev(ctx, ebmc_chain_state(ch), start, (size_t)c->batch * elems));
            if (ebmc_chain_run(ch, c->batch) != EBMC_OK)
                return bench_fail(b, "%s: %s", c->name, ebmc_chain_error(ch));
        }
    r->ready = true;
    return 0;
}

void bench_rt_free(bnet_rt *r) {
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
int bench_dm_config(bench_t *b, const bimpl *im, int n, int B, int kx, int kz, ebmc_config_t **out) {
    ebmc_config_t *cfg = ebmc_recipe_config_create(bench_dualmcmc());
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
    snprintf(a[na++], 96, "run.precision=%s", bench_prec_name(im->prec));
    snprintf(a[na++], 96, "run.graphs=%s", im->graph ? "true" : "false");
    snprintf(a[na++], 96, "log.quiet=true");
    char err[1024];
    for (int i = 0; i < na; i++)
        if (ebmc_config_set_arg(cfg, a[i], err, sizeof err)) {
            ebmc_config_free(cfg);
            return bench_fail(b, "bench config: %s", err);
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

int bench_dm_open(bench_t *b, const bimpl *im, const bcase *c, ebmc_run_t **out, ebmc_config_t **cfg_out) {
    ebmc_config_t *cfg;
    if (bench_dm_config(b, im, c->net, c->batch, c->steps, c->kz, &cfg)) return -1;
    ebmc_run_t *run;
    char err[1024];
    if (ebmc_run_open(bench_dualmcmc(), cfg, true, &run, err, sizeof err) != EBMC_OK) {
        bench_fail(b, "%s %s: set-up: %s", c->name, im->name, err);
        ebmc_config_free(cfg);
        return -1;
    }
    for (int r = 0; b->weights && r < 3; r++) {
        char path[PATH_MAX], name[2] = {"EGI"[r], 0};
        bench_weights_path(b, b->weights, c->net, name[0], path, sizeof path);
        ebmc_net_t *net = recipe_net(run, name);
        if (!net || ebmc_net_load(net, path, err, sizeof err) != EBMC_OK) {
            bench_fail(b, "%s", net ? err : "the dualmcmc recipe has no such network");
            ebmc_run_free(run);
            ebmc_config_free(cfg);
            return -1;
        }
    }
    int64_t epoch;
    if (ebmc_run_next_batch(run, &epoch, err, sizeof err) != EBMC_OK) {
        bench_fail(b, "%s: the shapes batch: %s", c->name, err);
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
        int slot = (int)(im - bench_impls), ci = (int)(c - b->cases);
        if (!b->dm[slot][ci] && bench_dm_open(b, im, c, &b->dm[slot][ci], &b->dm_cfg[slot][ci])) return -1;
        ebmc_run_t *t = b->dm[slot][ci];
        if (ebmc_run_iteration(t, ++b->dm_it[slot][ci], 0, false) != EBMC_OK)
            return bench_fail(b, "%s %s: %s", c->name, im->name, ebmc_ctx_error(ebmc_run_ctx(t)));
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
    CK(b, ctx, bench_copy_dev(ctx, ebmc_chain_state(ch), start, (size_t)c->batch * pot->elems));
    if (ebmc_chain_run(ch, c->batch) != EBMC_OK)
        return bench_fail(b, "%s %s: %s", c->name, im->name, ebmc_chain_error(ch));
    return 0;
}

ebmc_ctx_t *bench_unit_ctx(bench_t *b, const bcase *c, int ii) {
    const bimpl *im = b->impls[ii];
    if (c->kind == BK_ITER) {
        ebmc_run_t *t = b->dm[im - bench_impls][c - b->cases];
        return t ? ebmc_run_ctx(t) : NULL;
    }
    return b->ctx[im->prec];
}

/* One unit bracketed by synchronisations: its wall time in *sec */
int bench_timed_unit(bench_t *b, const bcase *c, int ii, double *sec) {
    char range[160];
    snprintf(range, sizeof range, "bench %s %s", c->name, b->impls[ii]->name);
    ebmc_ctx_t *ctx = bench_unit_ctx(b, c, ii);
    if (ctx && ebmc_sync(ctx) != EBMC_OK) return bench_fail(b, "sync: %s", ebmc_ctx_error(ctx));
    EBMC_RANGE_PUSH(range);
    double t0 = ebmc_now_s();
    int rc = run_unit(b, c, ii);
    ctx = bench_unit_ctx(b, c, ii); /* created by the first run */
    if (!rc && ebmc_sync(ctx) != EBMC_OK) rc = bench_fail(b, "sync: %s", ebmc_ctx_error(ctx));
    double t1 = ebmc_now_s();
    EBMC_RANGE_POP();
    *sec = t1 - t0;
    return rc;
}

/* ------------------------------------------------------------------ the matmul rate */

int bench_measure_matmul(bench_t *b, ebmc_precision p) {
    if (b->matmul_rate[p] > 0) return 0;
    ebmc_ctx_t *ctx = bench_get_ctx(b, p);
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
    b->matmul_s[p] = bench_percentile(t, REPS, 0.5);
    b->matmul_rate[p] = 2.0 * (double)S * S * S / b->matmul_s[p];
    return 0;
}

bool bench_case_selected(const char *name, const char *list) {
    if (!list || !*list) return true;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (strpbrk(p, "*?[") ? fnmatch(p, name, 0) == 0 : strncmp(name, p, strlen(p)) == 0) return true;
    }
    return false;
}

int bench_run(bench_t *b, const char *cases, const char *json) {
    int sel[MAX_CASES], ns = 0;
    for (int i = 0; i < b->n_cases; i++)
        if (bench_case_selected(b->cases[i].name, cases)) sel[ns++] = i;
    if (!ns) return bench_fail(b, "--cases '%s' matches no case (see ebmc bench --list)", cases);
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
        if (used) rc = bench_measure_matmul(b, (ebmc_precision)p);
    }
    /* warm-up (graph capture, plan building, lazy set-up), untimed */
    for (int k = 0; k < nr && !rc; k++)
        for (int w = 0; w < b->warmup && !rc; w++) {
            double t;
            rc = bench_timed_unit(b, &b->cases[rows[k].c], rows[k].i, &t);
        }
    if (!rc && b->profile_n > 0) { /* a profiler window around profile_n units of each row */
        for (int k = 0; k < nr && !rc; k++) {
            const bcase *c = &b->cases[rows[k].c];
            ebmc_ctx_t *ctx = bench_unit_ctx(b, c, rows[k].i);
            bool win = ebmc_profiler_start(ctx) == EBMC_OK;
            if (!win) fprintf(stderr, "ebmc bench: --profile: %s\n", ebmc_ctx_error(ctx));
            for (int r = 0; r < b->profile_n && !rc; r++) {
                double t;
                rc = bench_timed_unit(b, c, rows[k].i, &t);
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
            rc = bench_timed_unit(b, &b->cases[rows[k].c], rows[k].i, &rows[k].t[r]);
            rows[k].n = r + 1;
        }
    if (!rc) {
        bench_print_table(b, rows, nr, stdout);
        for (int p = 0; p < 2; p++)
            if (b->matmul_rate[p] > 0)
                printf("dense matmul (%s, n = %d): %.4g TFLOP/s\n", bench_prec_name((ebmc_precision)p),
                       b->matmul_n, b->matmul_rate[p] * 1e-12);
        if (json) rc = bench_write_json(b, rows, nr, json);
    }
    for (int k = 0; k < nr; k++) free(rows[k].t);
    free(rows);
    return rc;
}
