/* `ebmc bench`, what it writes: the build information as JSON, the results table, the JSON
 * results (gpu, versions, matmul rate, rows with raw times), the plan as JSON (--list and
 * manifest.json) and --export-weights (the nets' safetensors and the manifest, so the PyTorch
 * peer runs the same cases with the same weights). */
#include "bench_internal.h"
#include "ebmc/checkpoint.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ build info as JSON */

cJSON *bench_versions_json(char *gpu, size_t gpulen, int device, bool cuda) {
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

static double flop_fraction(bench_t *b, const bcase *c, int ii, double median) {
    ebmc_precision p = b->impls[ii]->prec;
    if (!(b->matmul_rate[p] > 0) || !(median > 0)) return NAN;
    return c->flop / median / b->matmul_rate[p];
}

void bench_print_table(bench_t *b, brow *rows, int nr, FILE *f) {
    fprintf(f, "%-40s %-16s %11s %11s %11s %24s %9s\n", "case", "impl", "median", "p10", "p90",
            "rate (unit)", "FLOP frac");
    for (int k = 0; k < nr; k++) {
        const bcase *c = &b->cases[rows[k].c];
        double med = bench_percentile(rows[k].t, rows[k].n, 0.5);
        double p10 = bench_percentile(rows[k].t, rows[k].n, 0.1), p90 = bench_percentile(rows[k].t, rows[k].n, 0.9);
        char rate[64];
        snprintf(rate, sizeof rate, "%.4g %s", c->units / med, c->unit);
        fprintf(f, "%-40s %-16s %9.3f ms %8.3f ms %8.3f ms %24s %9.4f\n", c->name,
                b->impls[rows[k].i]->name, med * 1e3, p10 * 1e3, p90 * 1e3, rate,
                flop_fraction(b, c, rows[k].i, med));
    }
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

int bench_write_json(bench_t *b, brow *rows, int nr, const char *path) {
    cJSON *root = cJSON_CreateObject();
    char gpu[256];
    ebmc_ctx_t *any = b->ctx[0] ? b->ctx[0] : b->ctx[1];
    bool cuda = any && ebmc_ctx_kind(any) == EBMC_BACKEND_CUDA;
    cJSON *ver = bench_versions_json(gpu, sizeof gpu, b->device, cuda);
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
            cJSON *o = cJSON_AddObjectToObject(mm, bench_prec_name((ebmc_precision)p));
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
        double med = bench_percentile(rows[k].t, rows[k].n, 0.5);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "case", c->name);
        cJSON_AddStringToObject(r, "impl", im->name);
        cJSON_AddNumberToObject(r, "median_s", med);
        cJSON_AddNumberToObject(r, "p10_s", bench_percentile(rows[k].t, rows[k].n, 0.1));
        cJSON_AddNumberToObject(r, "p90_s", bench_percentile(rows[k].t, rows[k].n, 0.9));
        cJSON_AddNumberToObject(r, "rate", c->units / med);
        cJSON_AddStringToObject(r, "rate_unit", c->unit);
        cJSON_AddItemToObject(r, "flop_fraction", num_or_null(flop_fraction(b, c, rows[k].i, med)));
        cJSON_AddNumberToObject(r, "flop_per_unit", c->flop);
        cJSON_AddItemToObject(r, "flop_per_s", num_or_null(c->flop / med));
        cJSON_AddStringToObject(r, "precision", bench_prec_name(im->prec));
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
        return bench_fail(b, "%s: cannot write: %s", path, strerror(errno));
    }
    free(txt);
    return 0;
}

/* ------------------------------------------------------------------ plan / weights export */

cJSON *bench_plan_json(bench_t *b) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", "ebmc bench");
    cJSON_AddBoolToObject(root, "quick", b->quick);
    cJSON_AddNumberToObject(root, "seed", (double)b->seed);
    cJSON *nets = cJSON_AddObjectToObject(root, "nets");
    for (int n = 0; n < b->n_nets; n++) {
        ebmc_model_cfg mc = bench_net_model_cfg(&b->nets[n]);
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
            double first, m = bench_role_macs(&b->nets[n], (ebmc_net_role)r, &first);
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
            if (!bench_dm_config(b, im, c->net, c->batch, c->steps, c->kz, &cfg)) {
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
        cJSON_AddStringToObject(o, "precision", bench_prec_name(b->impls[i]->prec));
        cJSON_AddBoolToObject(o, "graph", b->impls[i]->graph && b->backend != EBMC_BACKEND_CPU);
        cJSON_AddItemToArray(impls, o);
    }
    cJSON *gates = cJSON_AddObjectToObject(root, "gate_sizes");
    for (int n = 0; n < b->n_nets; n++)
        for (int kind = 0; kind < 2; kind++) {
            int bg, bt, bd, k;
            bench_gate_sizes(b, n, kind, &bg, &bt, &bd, &k);
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
        return bench_fail(b, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

int bench_export_weights(bench_t *b, const char *dir) {
    if (ebmc_mkdir_p(dir)) return bench_fail(b, "%s: cannot create: %s", dir, strerror(errno));
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CPU; /* the values do not depend on the backend */
    ebmc_ctx_t *ctx;
    char err[1024];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err)) return bench_fail(b, "%s", err);
    const char *saved = b->weights;
    b->weights = NULL; /* seeded weights, not loaded ones */
    int rc = 0;
    for (int n = 0; n < b->n_nets && !rc; n++)
        for (int r = 0; r < (b->nets[n].dual ? 3 : 1) && !rc; r++) {
            ebmc_net_t *net = bench_build_net(b, ctx, n, (ebmc_net_role)r, false);
            if (!net) {
                rc = -1;
                break;
            }
            char path[PATH_MAX];
            bench_weights_path(b, dir, n, "EGI"[r], path, sizeof path);
            const char *meta[][2] = {{"bench_net", b->nets[n].key}};
            if (ebmc_net_save(net, path, meta, 1, err, sizeof err)) rc = bench_fail(b, "%s", err);
            ebmc_net_free(net);
        }
    b->weights = saved;
    ebmc_ctx_free(ctx);
    if (rc) return rc;
    cJSON *plan = bench_plan_json(b);
    char *txt = cJSON_Print(plan);
    cJSON_Delete(plan);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    rc = write_text(b, path, txt);
    free(txt);
    if (!rc) fprintf(stderr, "ebmc bench: weights and manifest.json written to %s\n", dir);
    return rc;
}
