/* `ebmc bench`, the correctness side: the gate dumps (energies, input gradients, chains with
 * reproducible noise, one training iteration) that bench/run.py compares against PyTorch, and
 * --serve, the line protocol run.py drives (info, run, profile, gate, quit). */
#include "bench_internal.h"
#include "ebmc/safetensors.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ correctness-gate dumps */

/* gate sizes of a net and chain kind: Bg (energies, gradients), Bt (shared-noise trajectory),
 * Bd (distribution: many chains) */
void bench_gate_sizes(const bench_t *b, int n, int kind, int *bg, int *bt, int *bd, int *k) {
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
        return bench_fail(b, "gate copy %s: %s", name, ebmc_ctx_error(ctx));
    }
    snprintf(d->names[d->n], 32, "%s", name);
    d->host[d->n] = hb;
    d->t[d->n] = (ebmc_st_tensor){d->names[d->n], EBMC_DT_F32, 4, {n, c, h, w}, hb};
    d->n++;
    return 0;
}

static int dump_write(bench_t *b, dump_t *d, const char *path, const char *const (*meta)[2], int nm) {
    char err[1024];
    int rc = ebmc_st_write(path, d->t, d->n, meta, nm, err, sizeof err) ? bench_fail(b, "%s", err) : 0;
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
    ebmc_net_t *net = bench_build_net(b, ctx, n, role, false);
    if (!net) return -1;
    ebmc_tape_t *tape;
    int rc = 0;
    if (ebmc_tape_create(net, nb, true, &tape) != EBMC_OK) rc = bench_fail(b, "%s", ebmc_net_error(net));
    if (!rc) {
        size_t oe = ebmc_net_value_count(net, ebmc_net_output_value(net, 0));
        ebmc_fill_desc f = {(size_t)nb * oe, 0.0f};
        const float *dys[1] = {dy};
        if (ebmc_net_forward(net, tape, nb, in) || ebmc_fill(ctx, &f, dy) ||
            ebmc_net_backward(net, tape, dys, EBMC_GRAD_INPUT, g, 0.0f))
            rc = bench_fail(b, "warming plans: %s", ebmc_ctx_error(ctx));
        ebmc_tape_free(tape);
    }
    ebmc_net_free(net);
    return rc;
}

/* EBMC_BENCH_INJECT (tests/bench/test_bench_run.py "wrong"): a deliberately wrong chain update
 * in the trajectory and distribution dumps, which the derived gates must catch: "sign" (ascent:
 * -a), "step" (a x 1.1), "noise" (c x 1.1). Unset or empty: the case's own update. */
static void inject_wrong(ebmc_langevin_params *lp) {
    const char *w = getenv("EBMC_BENCH_INJECT");
    if (!w || !*w) return;
    if (!strcmp(w, "sign")) lp->a = -lp->a;
    else if (!strcmp(w, "step")) lp->a *= 1.1f;
    else if (!strcmp(w, "noise")) lp->c *= 1.1f;
    else fprintf(stderr, "ebmc bench: EBMC_BENCH_INJECT='%s' ignored (sign, step or noise)\n", w);
}

static int gate_chain(bench_t *b, int n, int kind, int ii, const char *dir) {
    const bimpl *im = b->impls[ii];
    ebmc_ctx_t *ctx = bench_get_ctx(b, im->prec);
    if (!ctx) return -1;
    const bcase *c = NULL;
    for (int i = 0; i < b->n_cases && !c; i++)
        if (b->cases[i].net == n && b->cases[i].kind == kind) c = &b->cases[i];
    int bg, bt, bd, K;
    bench_gate_sizes(b, n, kind, &bg, &bt, &bd, &K);
    int mb = bg > bd ? bg : bd;
    ebmc_net_role role = kind == BK_XCHAIN ? EBMC_NET_E : EBMC_NET_G;
    ebmc_model_cfg mc = bench_net_model_cfg(&b->nets[n]);
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
    ebmc_net_t *net = bench_build_net(b, ctx, n, role, false);
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
        if (!(net = bench_build_net(b, ctx, n, role, false))) return -1;
        ebmc_potential *pot;
        ebmc_chain_t *ch;
        if (kind == BK_XCHAIN) CK(b, ctx, ebmc_potential_energy(net, mb, c->scale, &pot));
        else CK(b, ctx, ebmc_potential_latent(net, mb, c->scale, &pot));
        if (im->graph && ebmc_graph_supported(ctx) && warm_plans(b, ctx, n, role, nb, x, dy, g)) return -1;
        ebmc_langevin_params lp = c->lp;
        lp.steps = K;
        inject_wrong(&lp);
        CK(b, ctx, ebmc_chain_create(pot, &lp, nb, b->seed, part == 0 ? ST_GATE_TRAJ : ST_GATE_DIST, &ch));
        ebmc_chain_set_graph(ch, im->graph);
        float *st = ebmc_chain_state(ch);
        if (kind == BK_ZCHAIN) CK(b, ctx, bench_copy_dev(ctx, ebmc_potential_latent_target(pot), tgt, (size_t)nb * img));
        if (part == 0 || kind == BK_ZCHAIN) CK(b, ctx, bench_copy_dev(ctx, st, x, (size_t)nb * in_elems));
        else
            for (int i = 0; i < nb; i++) CK(b, ctx, bench_copy_dev(ctx, st + (size_t)i * in_elems, x, in_elems));
        if (ebmc_chain_run(ch, nb) != EBMC_OK) return bench_fail(b, "gate chain: %s", ebmc_chain_error(ch));
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
                             {"impl", im->name}, {"precision", bench_prec_name(im->prec)},
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
    if (bench_dm_open(b, im, c, &t, &cfg)) return -1;
    int rc = 0;
    if (ebmc_run_iteration(t, 1, 0, false) != EBMC_OK) rc = bench_fail(b, "gate iteration: %s", ebmc_ctx_error(ebmc_run_ctx(t)));
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
        const char *meta[][2] = {{"impl", im->name}, {"precision", bench_prec_name(im->prec)},
                                 {"metrics", names}, {"config", cj ? cj : "{}"}};
        snprintf(path, sizeof path, "%s/gate.iteration.%s.%s.safetensors", dir, b->nets[c->net].key, im->name);
        if (ebmc_st_write(path, ts, 2, meta, 4, err, sizeof err)) rc = bench_fail(b, "%s", err);
        free(cj);
    }
    ebmc_run_free(t);
    ebmc_config_free(cfg);
    return rc;
}

/* The gate dumps of the nets and chain kinds that the selected cases use (all when cases is
 * NULL), for every implementation. */
int bench_gate_dump(bench_t *b, const char *dir, const char *cases) {
    if (!b->weights) return bench_fail(b, "the gate dumps need --weights DIR (from --export-weights)");
    if (ebmc_mkdir_p(dir)) return bench_fail(b, "%s: cannot create: %s", dir, strerror(errno));
    for (int ii = 0; ii < b->n_impls; ii++) {
        for (int n = 0; n < b->n_nets; n++)
            for (int kind = 0; kind < 2; kind++) {
                bool used = false;
                for (int i = 0; i < b->n_cases; i++)
                    used = used || (b->cases[i].net == n && b->cases[i].kind == kind &&
                                    bench_case_selected(b->cases[i].name, cases));
                if (used && gate_chain(b, n, kind, ii, dir)) return -1;
            }
        for (int i = 0; i < b->n_cases; i++)
            if (b->cases[i].kind == BK_ITER && bench_case_selected(b->cases[i].name, cases) &&
                gate_iteration(b, &b->cases[i], ii, dir))
                return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ --serve */

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

int bench_serve(bench_t *b) {
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
                if (used && bench_measure_matmul(b, (ebmc_precision)p)) {
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
            cJSON *v = bench_versions_json(gpu, sizeof gpu, b->device, cuda);
            cJSON_AddStringToObject(o, "gpu", gpu);
            cJSON_AddStringToObject(o, "backend", cuda ? "cuda" : "cpu");
            cJSON_AddItemToObject(o, "versions", v);
            cJSON *mm = cJSON_AddObjectToObject(o, "matmul");
            for (int p = 0; p < 2; p++)
                if (b->matmul_rate[p] > 0) cJSON_AddNumberToObject(mm, bench_prec_name((ebmc_precision)p), b->matmul_rate[p]);
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
                rc = bench_timed_unit(b, c, ii, &t[0]);
                if (!rc && ebmc_profiler_start(bench_unit_ctx(b, c, ii)) != EBMC_OK)
                    fprintf(stderr, "ebmc bench: profile: %s\n", ebmc_ctx_error(bench_unit_ctx(b, c, ii)));
            }
            for (int k = 0; k < n && !rc; k++) rc = bench_timed_unit(b, c, ii, &t[k]);
            if (prof && !rc) ebmc_profiler_stop(bench_unit_ctx(b, c, ii));
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
            if (!a1[0] || bench_gate_dump(b, a1, a2[0] ? a2 : NULL))
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
