/* ebmc_run_t: one recipe instance with its device context, data set and loader, the part of the
 * run shell that `ebmc train`, `ebmc sample`, `ebmc bench` and the tests share. The shell's keys
 * are read here, once; the recipe's keys by its parse(). */
#include "train/shell.h"
#include "ebmc/comm.h"
#include "ebmc/fileio.h"
#include "ebmc/image.h"
#include "ebmc/tboard.h"
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebmc_status open_data_kind(const ebmc_config_t *cfg, ebmc_dataset_t **ds, char *err, size_t errlen);

/* data.* -> a data set (the shell's keys: every recipe trains on the same loaders), cut down to
 * data.classes when given */
ebmc_status ebmc_run_open_data(const ebmc_config_t *cfg, ebmc_dataset_t **ds, char *err, size_t errlen) {
    EBMC_TRY(open_data_kind(cfg, ds, err, errlen));
    const char *classes = ebmc_config_str(cfg, "data", "classes");
    if (!*classes) return EBMC_OK;
    ebmc_dataset_t *sub = NULL;
    ebmc_status s = ebmc_data_take_classes(*ds, classes, &sub, err, errlen);
    ebmc_data_free(*ds);
    *ds = sub;
    return s;
}

static ebmc_status open_data_kind(const ebmc_config_t *cfg, ebmc_dataset_t **ds, char *err, size_t errlen) {
    const char *kind = ebmc_config_str(cfg, "data", "dataset");
    const char *path = ebmc_config_str(cfg, "data", "path");
    uint64_t seed = (uint64_t)ebmc_config_int(cfg, "run", "seed");
    int size = (int)ebmc_config_int(cfg, "data", "size");
    int count = (int)ebmc_config_int(cfg, "data", "count");
    bool needs_path = !strcmp(kind, "cifar10") || !strcmp(kind, "mnist") || !strcmp(kind, "images") ||
                      !strcmp(kind, "npy");
    if (needs_path && !*path) {
        snprintf(err, errlen, "data.path is required for data.dataset = %s (HINT: scripts/download_%s.sh "
                 "fetches it; then pass data.path=DIR)", kind, !strcmp(kind, "images") ? "celeba" : kind);
        if (!strcmp(kind, "npy"))
            snprintf(err, errlen, "data.path is required for data.dataset = npy (the .npy file: uint8 images "
                     "(N,H,W,C) or float32 points (N,D))");
        return EBMC_E_INVALID;
    }
    if (!strcmp(kind, "npy")) return ebmc_data_npy(path, ds, err, errlen);
    if (!strcmp(kind, "shapes"))
        return ebmc_data_shapes_styled(count, size, (int)ebmc_config_int(cfg, "data", "max_shapes"),
                                       ebmc_config_float(cfg, "data", "shape_min"),
                                       ebmc_config_float(cfg, "data", "shape_max"),
                                       !strcmp(ebmc_config_str(cfg, "data", "shape_bg"), "black"),
                                       !strcmp(ebmc_config_str(cfg, "data", "shape_color"), "white"), seed, ds, err,
                                       errlen);
    if (!strcmp(kind, "cifar10")) return ebmc_data_cifar10(path, true, ds, err, errlen);
    if (!strcmp(kind, "mnist"))
        return ebmc_data_mnist(path, true, (int)ebmc_config_int(cfg, "data", "mnist_pad"), ds, err, errlen);
    if (!strcmp(kind, "toy2d")) return ebmc_data_toy2d(ebmc_config_str(cfg, "data", "toy"), count, seed, ds, err, errlen);
    if (!strcmp(kind, "gmm")) return ebmc_data_gmm((int)ebmc_config_int(cfg, "data", "dim"), count, seed, ds, err, errlen);
    /* images */
    float box[4];
    const char *crop = ebmc_config_str(cfg, "data", "crop");
    bool has_box = *crop != 0;
    if (has_box && sscanf(crop, "%f,%f,%f,%f", &box[0], &box[1], &box[2], &box[3]) != 4) {
        snprintf(err, errlen, "data.crop: expected x0,y0,x1,y1, got '%s'", crop);
        return EBMC_E_INVALID;
    }
    char cache[PATH_MAX];
    const char *c = ebmc_config_str(cfg, "data", "cache");
    if (*c) snprintf(cache, sizeof cache, "%s", c);
    else {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') n--;
        snprintf(cache, sizeof cache, "%.*s.ebmc-%d.cache", (int)n, path, size);
    }
    ebmc_images_opts io = {!strcmp(ebmc_config_str(cfg, "data", "resize"), "pil_bilinear") ? EBMC_RESIZE_PIL_BILINEAR
                                                                                         : EBMC_RESIZE_CATMULL_ROM,
                           !strcmp(ebmc_config_str(cfg, "data", "split"), "celeba_train") ? EBMC_SPLIT_CELEBA_TRAIN
                                                                                          : EBMC_SPLIT_ALL,
                           ebmc_config_str(cfg, "data", "partition")};
    return ebmc_data_images_ex(path, size, has_box ? box : NULL, cache, false, &io, ds, err, errlen);
}

/* The example shape data.* gives, known before anything is read (a .npy: from its header). */
static ebmc_status declared_shape(const ebmc_config_t *cfg, int *c, int *h, int *w, char *err, size_t errlen) {
    const char *kind = ebmc_config_str(cfg, "data", "dataset");
    if (!strcmp(kind, "npy")) {
        ebmc_npy_info in;
        const char *path = ebmc_config_str(cfg, "data", "path");
        if (!*path) {
            snprintf(err, errlen, "data.path is required for data.dataset = npy");
            return EBMC_E_INVALID;
        }
        EBMC_TRY(ebmc_npy_read_header(path, &in, err, errlen));
        return ebmc_data_npy_shape(&in, path, c, h, w, err, errlen);
    }
    int size = (int)ebmc_config_int(cfg, "data", "size"), pad = (int)ebmc_config_int(cfg, "data", "mnist_pad");
    if (!strcmp(kind, "cifar10")) *c = 3, *h = *w = 32;
    else if (!strcmp(kind, "mnist")) *c = 1, *h = *w = pad ? pad : 28;
    else if (!strcmp(kind, "toy2d")) *c = 2, *h = *w = 1;
    else if (!strcmp(kind, "gmm")) *c = (int)ebmc_config_int(cfg, "data", "dim"), *h = *w = 1;
    else *c = 3, *h = *w = size; /* shapes, images */
    return EBMC_OK;
}

/* The recipe's typed config, and its data shape checked against data.* before any data is read */
static ebmc_status parse_recipe(ebmc_run_t *r, bool need_data, char *err, size_t errlen) {
    const ebmc_recipe *rc = r->recipe;
    if (strcmp(ebmc_config_str(r->cfg, "run", "recipe"), rc->name)) {
        snprintf(err, errlen, "run.recipe: the config says '%s' but the schema is %s's",
                 ebmc_config_str(r->cfg, "run", "recipe"), rc->name);
        return EBMC_E_INVALID;
    }
    r->typed = ebmc_xcalloc(1, rc->config_size ? rc->config_size : 1, "recipe config");
    EBMC_TRY(rc->parse(r->cfg, r->typed, err, errlen));
    if (!need_data || !rc->data_shape) return EBMC_OK;
    int c, h, w, dc, dh, dw;
    rc->data_shape(r->typed, &c, &h, &w);
    EBMC_TRY(declared_shape(r->cfg, &dc, &dh, &dw, err, errlen));
    if (c != dc || h != dh || w != dw) {
        snprintf(err, errlen, "data.dataset = %s gives %dx%dx%d examples but recipe %s (its model) needs %dx%dx%d "
                 "(HINT: data.size, data.mnist_pad, or another model.arch)", ebmc_config_str(r->cfg, "data", "dataset"),
                 dc, dh, dw, rc->name, c, h, w);
        return EBMC_E_INVALID;
    }
    return EBMC_OK;
}

/* One GPU per rank: run.device + the rank's index on its node, or the only visible device when
 * the launcher gave each rank one (srun --gpus-per-task=1, CUDA_VISIBLE_DEVICES per rank). */
static int rank_device(const ebmc_run_t *r, int device) {
    if (!r->comm || r->ranks < 2) return device;
    int visible = ebmc_cuda_device_count();
    return visible == 1 ? 0 : device + ebmc_comm_local_rank(r->comm);
}

static ebmc_status open_ctx(const ebmc_run_t *r, const ebmc_config_t *cfg, ebmc_ctx_t **ctx, char *err,
                            size_t errlen) {
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    const char *be = ebmc_config_str(cfg, "run", "backend");
    o.kind = !strcmp(be, "cpu") ? EBMC_BACKEND_CPU : !strcmp(be, "cuda") ? EBMC_BACKEND_CUDA : EBMC_BACKEND_AUTO;
    o.device = rank_device(r, (int)ebmc_config_int(cfg, "run", "device"));
    o.quiet = r->rank != 0; /* the CPU fallback notice once, not once per rank */
    o.precision = ebmc_recipe_precision(r->recipe, cfg); /* auto: the recipe's default */
    o.deterministic = true; /* as the reference (cudnn.deterministic = True); resume is exact */
    return ebmc_ctx_create(&o, ctx, err, errlen);
}

/* The recipe's instance on the run's context; grids' host buffer sized from what it shows. */
static ebmc_status setup_recipe(ebmc_run_t *r, char *err, size_t errlen) {
    const ebmc_recipe *rc = r->recipe;
    r->state = ebmc_xcalloc(1, rc->state_size ? rc->state_size : 1, "recipe state");
    ebmc_recipe_env env = {r->ctx, r->seed, r->local_batch, ebmc_config_bool(r->cfg, "run", "graphs"),
                           ebmc_config_bool(r->cfg, "run", "share_tapes"), r->ds != NULL, 0, 0, 0, NULL, r->ranks};
    if (r->ds) {
        ebmc_data_shape(r->ds, &env.data_c, &env.data_h, &env.data_w);
        env.data_name = ebmc_data_name(r->ds);
    }
    r->set_up = true;
    EBMC_TRY(rc->setup(r->state, r->typed, &env, err, errlen));
    ebmc_grid g[EBMC_MAX_GRIDS];
    int ng = rc->grids ? rc->grids(r->state, g, EBMC_MAX_GRIDS) : 0;
    size_t most = 1;
    for (int i = 0; i < ng; i++) {
        size_t n = (size_t)g[i].n * g[i].c * g[i].h * g[i].w;
        if (n > most) most = n;
    }
    r->host_grid = ebmc_xmalloc(most * sizeof(float), "grid");
    ebmc_ctx_freeze_workspace(r->ctx); /* planned: from here on nothing allocates */
    return EBMC_OK;
}

ebmc_status ebmc_env_share(const ebmc_recipe_env *env, int global, const char *key, int *local, char *err,
                           size_t errlen) {
    int n = env->ranks > 1 ? env->ranks : 1;
    *local = global / n;
    if (global % n == 0) return EBMC_OK;
    snprintf(err, errlen, "%s = %d does not divide evenly among %d ranks (HINT: a multiple of %d)", key, global, n, n);
    return EBMC_E_INVALID;
}

/* Training joins the world's ranks: each takes an equal slice of the global batch. Without data
 * (ebmc sample) a process is on its own. */
static ebmc_status join_ranks(ebmc_run_t *r, bool need_data, char *err, size_t errlen) {
    r->ranks = 1, r->rank = 0, r->local_batch = r->batch;
    if (!need_data) return EBMC_OK;
    r->comm = ebmc_comm_world();
    ebmc_comm_set_timeout(r->comm, ebmc_config_float(r->cfg, "run", "comm_timeout"));
    r->ranks = ebmc_comm_size(r->comm);
    r->rank = ebmc_comm_rank(r->comm);
    if (r->batch % r->ranks) {
        snprintf(err, errlen, "train.batch_size = %d (the global batch) does not divide evenly among %d ranks "
                 "(HINT: a multiple of %d, or a number of ranks that divides %d)", r->batch, r->ranks, r->ranks,
                 r->batch);
        return EBMC_E_INVALID;
    }
    r->local_batch = r->batch / r->ranks;
    return EBMC_OK;
}

ebmc_status ebmc_run_open(const ebmc_recipe *rc, ebmc_config_t *cfg, bool need_data, ebmc_run_t **out,
                          char *err, size_t errlen) {
    *out = NULL;
    ebmc_run_t *r = ebmc_xcalloc(1, sizeof *r, "run");
    r->tb_bytes = -1;
    r->recipe = rc;
    r->cfg = cfg;
    r->seed = (uint64_t)ebmc_config_int(cfg, "run", "seed");
    r->batch = (int)ebmc_config_int(cfg, "train", "batch_size");
    ebmc_status s = parse_recipe(r, need_data, err, errlen);
    if (!s) s = join_ranks(r, need_data, err, errlen);
    if (!s) s = open_ctx(r, cfg, &r->ctx, err, errlen);
    if (!s && r->comm) { /* collective (NCCL's set-up); chains draw their global indices' noise:
                          * rank r's n chains of an op are chains r*n.. of one process's */
        s = ebmc_ctx_set_comm(r->ctx, r->comm, err, errlen);
        ebmc_ctx_set_chain_rank(r->ctx, (uint32_t)r->rank);
    }
    if (!s && need_data) {
        s = ebmc_run_open_data(cfg, &r->ds, err, errlen);
        ebmc_loader_opts lo = {true, ebmc_config_bool(cfg, "data", "hflip"), true};
        if (!s) s = ebmc_loader_create(r->ds, r->batch, r->seed, lo, &r->loader, err, errlen);
        if (!s) {
            int c, h, w;
            ebmc_data_shape(r->ds, &c, &h, &w);
            r->example_elems = (size_t)c * h * w;
            r->host_batch = ebmc_xmalloc((size_t)r->batch * c * h * w * sizeof(float), "batch");
        }
    }
    if (!s) s = setup_recipe(r, err, errlen);
    if (s) {
        ebmc_run_free(r);
        return s;
    }
    *out = r;
    return EBMC_OK;
}

void ebmc_run_free(ebmc_run_t *r) {
    if (!r) return;
    if (r->set_up && r->recipe->destroy) r->recipe->destroy(r->state);
    free(r->state);
    free(r->typed);
    ebmc_loader_free(r->loader);
    ebmc_data_free(r->ds);
    free(r->host_batch);
    free(r->host_grid);
    if (r->ctx) ebmc_ctx_free(r->ctx);
    free(r);
}

const ebmc_recipe *ebmc_run_recipe(const ebmc_run_t *r) { return r->recipe; }
void *ebmc_run_state(ebmc_run_t *r) { return r->state; }
ebmc_ctx_t *ebmc_run_ctx(ebmc_run_t *r) { return r->ctx; }
const ebmc_config_t *ebmc_run_config(const ebmc_run_t *r) { return r->cfg; }
int ebmc_run_batch_size(const ebmc_run_t *r) { return r->batch; }
int64_t ebmc_run_batches_per_epoch(const ebmc_run_t *r) { return r->loader ? ebmc_loader_batches_per_epoch(r->loader) : 0; }
const char *ebmc_run_data_name(const ebmc_run_t *r) { return r->ds ? ebmc_data_name(r->ds) : "no data"; }
const float *ebmc_run_batch(const ebmc_run_t *r) { return r->host_batch; }
const ebmc_report *ebmc_run_report(const ebmc_run_t *r) { return &r->report; }
uint32_t ebmc_run_restarts(const ebmc_run_t *r) { return r->restarts; }

void ebmc_run_set_restarts(ebmc_run_t *r, uint32_t restarts) {
    r->restarts = restarts;
    if (r->recipe->reseed) r->recipe->reseed(r->state, restarts);
}

ebmc_status ebmc_run_next_batch(ebmc_run_t *r, int64_t *epoch, char *err, size_t errlen) {
    int n;
    if (!r->loader) {
        snprintf(err, errlen, "no data set is open");
        return EBMC_E_INVALID;
    }
    ebmc_status s = ebmc_loader_next(r->loader, r->host_batch, &n, epoch);
    if (s) snprintf(err, errlen, "data: reading a batch failed: %s", ebmc_loader_error(r->loader));
    return s;
}

void ebmc_report_add(ebmc_report *r, const char *name, double value, bool guard) {
    if (r->n >= EBMC_MAX_METRICS)
        ebmc_fail(name, "more metrics than EBMC_MAX_METRICS", __func__, __FILE__, __LINE__);
    r->m[r->n++] = (ebmc_metric){name, value, guard};
}

bool ebmc_run_is_root(const ebmc_run_t *r) { return r->rank == 0; }

ebmc_status ebmc_run_reduce_report(ebmc_run_t *r, double *flag) {
    if (r->ranks < 2) return EBMC_OK;
    ebmc_report *p = &r->report;
    double v[EBMC_MAX_METRICS + 3];
    for (int i = 0; i < p->n; i++) v[i] = p->m[i].value;
    v[p->n] = p->images, v[p->n + 1] = p->chain_steps, v[p->n + 2] = *flag;
    EBMC_TRY(ebmc_comm_sum_f64(r->comm, v, p->n + 3, "the iteration's metrics"));
    for (int i = 0; i < p->n; i++) p->m[i].value = v[i] / r->ranks;
    p->images = v[p->n], p->chain_steps = v[p->n + 1], *flag = v[p->n + 2];
    return EBMC_OK;
}

/* The recipe sees this rank's slice of the global batch. */
ebmc_status ebmc_run_iteration(ebmc_run_t *r, int64_t it, int64_t epoch, bool grids) {
    const float *mine = r->host_batch ? r->host_batch + (size_t)r->rank * r->local_batch * r->example_elems : NULL;
    ebmc_status s = r->recipe->iteration(r->state, mine, it, epoch, grids);
    memset(&r->report, 0, sizeof r->report);
    r->report.gap = -1;
    if (!s) r->recipe->report(r->state, epoch, &r->report);
    return s;
}

ebmc_status ebmc_run_write_grids(ebmc_run_t *r, const char *run_dir, int64_t it, int nrow, int scale, struct ebmc_tb *tb,
                                 char *err, size_t errlen) {
    ebmc_grid g[EBMC_MAX_GRIDS];
    int ng = r->recipe->grids ? r->recipe->grids(r->state, g, EBMC_MAX_GRIDS) : 0;
    if (!ng) return EBMC_OK;
    char dir[PATH_MAX], p[PATH_MAX + 64], tag[96];
    snprintf(dir, sizeof dir, "%s/samples", run_dir);
    if (ebmc_mkdir_p(dir)) {
        snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return EBMC_E_WRITE;
    }
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.nrow = nrow;
    o.scale = scale;
    if (tb) ebmc_tb_begin(tb, it, ebmc_tb_wall());
    ebmc_status s = EBMC_OK;
    for (int i = 0; i < ng && !s; i++) {
        size_t n = (size_t)g[i].n * g[i].c * g[i].h * g[i].w;
        if (ebmc_copy(r->ctx, r->host_grid, g[i].dev, n * sizeof(float), EBMC_COPY_D2H)) {
            snprintf(err, errlen, "grid %s: %s", g[i].name, ebmc_ctx_error(r->ctx));
            s = EBMC_E_DEVICE;
            break;
        }
        snprintf(p, sizeof p, "%s/iter_%08" PRId64 "_%s.png", dir, it, g[i].name);
        uint8_t *png;
        size_t len;
        int gh, gw;
        s = ebmc_grid_png(p, r->host_grid, g[i].n, g[i].c, g[i].h, g[i].w, &o, &png, &len, &gh, &gw, err, errlen);
        if (s) break;
        s = ebmc_save_png_bytes(p, png, len, err, errlen);
        snprintf(tag, sizeof tag, "samples/%s", g[i].name);
        if (!s && tb) ebmc_tb_image(tb, tag, png, len, gh, gw);
        free(png);
    }
    if (tb) ebmc_tb_end(tb); /* a failure leaves it to the run's end: nothing more is logged */
    return s;
}

/* ---- the memory plan (printed at start, as llm.c does, and written as plan.json) */

static double mib(size_t b) { return (double)b / 1048576.0; }

static cJSON *plan_row_json(const ebmc_plan_row *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", p->name);
    const char *k[6] = {"params", "param_bytes", "grad_bytes", "optim_bytes", "tape_bytes", "other_bytes"};
    size_t v[6] = {p->params, p->param_bytes, p->grad_bytes, p->optim_bytes, p->tape_bytes, p->other_bytes};
    for (int i = 0; i < 6; i++) cJSON_AddNumberToObject(o, k[i], (double)v[i]);
    cJSON_AddNumberToObject(o, "passes", p->tapes);
    cJSON_AddNumberToObject(o, "tape_arenas", p->arenas);
    return o;
}

static ebmc_status write_json(cJSON *root, const char *path, char *err, size_t errlen) {
    char *txt = cJSON_Print(root), tmp[4096];
    if (!txt) {
        snprintf(err, errlen, "%s: out of memory", path);
        return EBMC_E_NOMEM;
    }
    FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, errlen);
    ebmc_status s = EBMC_E_WRITE;
    if (f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF) s = ebmc_atomic_commit(f, tmp, path, err, errlen);
    else if (f) {
        ebmc_atomic_abort(f, tmp);
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    }
    free(txt);
    return s;
}

ebmc_status ebmc_run_print_plan(ebmc_run_t *r, FILE *f, const char *json_path, char *err, size_t errlen) {
    ebmc_plan_row rows[EBMC_MAX_PLAN_ROWS];
    int n = r->recipe->plan ? r->recipe->plan(r->state, rows, EBMC_MAX_PLAN_ROWS) : 0;
    size_t ws = ebmc_ctx_workspace_bytes(r->ctx), total = ws, params = 0;
    const char *be = ebmc_ctx_ops(r->ctx)->name;
    const char *prec = ebmc_ctx_precision_name(r->ctx);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "recipe", r->recipe->name);
    cJSON_AddStringToObject(root, "backend", be);
    cJSON_AddStringToObject(root, "precision", prec);
    cJSON_AddNumberToObject(root, "batch", r->local_batch); /* a rank's: what its memory is planned for */
    cJSON_AddNumberToObject(root, "ranks", r->ranks);
    cJSON *arr = cJSON_AddArrayToObject(root, "networks");
    if (f) fprintf(f, "ebmc plan: recipe %s on %s, %s, batch %d%s; device memory in MiB\n  %-9s %11s %9s %9s %9s "
                   "%9s %9s %9s  %s\n", r->recipe->name, be, prec, r->local_batch, r->ranks > 1 ? " per rank" : "", "", "params", "weights", "grads", "optim",
                   "tapes", "other", "total", "passes/arenas");
    for (int i = 0; i < n; i++) {
        const ebmc_plan_row *p = &rows[i];
        size_t row = p->param_bytes + p->grad_bytes + p->optim_bytes + p->tape_bytes + p->other_bytes;
        total += row;
        params += p->params;
        if (f) fprintf(f, "  %-9s %11zu %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f  %d/%d\n", p->name, p->params,
                       mib(p->param_bytes), mib(p->grad_bytes), mib(p->optim_bytes), mib(p->tape_bytes),
                       mib(p->other_bytes), mib(row), p->tapes, p->arenas);
        cJSON_AddItemToArray(arr, plan_row_json(p));
    }
    if (f) fprintf(f, "  %-9s %11s %59.1f\n  %-9s %11zu %59.1f\n", "workspace", "", mib(ws), "total", params, mib(total));
    cJSON_AddNumberToObject(root, "workspace_bytes", (double)ws);
    cJSON_AddNumberToObject(root, "total_bytes", (double)total);
    cJSON_AddNumberToObject(root, "params", (double)params);
    ebmc_status s = json_path ? write_json(root, json_path, err, errlen) : EBMC_OK;
    cJSON_Delete(root);
    return s;
}
