/* Checkpoints of a run: a folder <run>/checkpoints/iter_NNNNNNNN with one safetensors file per
 * network (PyTorch state_dict names) and state.safetensors (optimiser states, counters and
 * buffers of the recipe, and the shell's iteration, loader position and restart count). A
 * folder is written as iter_N.tmp and renamed into place, and removed by renaming it to
 * iter_N.del first: a kill at any point leaves only whole checkpoints under their names. */
#include "train/shell.h"
#include "ebmc/checkpoint.h"
#include "ebmc/fileio.h"
#include "ebmc/optim.h"
#include "ebmc/safetensors.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SHELL_ITEMS = 4 };

static void remove_folder(const char *path); /* iteration, loader.epoch, loader.pos, restarts */

typedef struct {
    ebmc_ckpt_item items[EBMC_MAX_CKPT_ITEMS + SHELL_ITEMS];
    int n;
    int64_t iteration, epoch, pos, restarts;
} item_list;

/* the recipe's items, then the shell's own counters */
static void list_items(ebmc_run_t *r, item_list *L) {
    L->n = r->recipe->ckpt_items(r->state, L->items, EBMC_MAX_CKPT_ITEMS);
    L->restarts = r->restarts;
    L->epoch = L->pos = 0;
    if (r->loader) ebmc_loader_get_state(r->loader, &L->epoch, &L->pos);
    ebmc_ckpt_item *it = L->items + L->n;
    it[0] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "iteration", .ptr = &L->iteration, .lo = 0, .hi = 1000000000000};
    it[1] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "loader.epoch", .ptr = &L->epoch, .lo = 0, .hi = INT64_MAX / 2};
    it[2] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "loader.pos", .ptr = &L->pos, .lo = 0, .hi = INT64_MAX / 2};
    it[3] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "restarts", .ptr = &L->restarts, .lo = 0, .hi = UINT32_MAX};
    L->n += SHELL_ITEMS;
}

static size_t elem_size(ebmc_item_kind k) {
    return k == EBMC_ITEM_F32 ? 4 : k == EBMC_ITEM_F64 ? 8 : k == EBMC_ITEM_U8 ? 1 : 8;
}

static ebmc_dtype item_dtype(ebmc_item_kind k) {
    return k == EBMC_ITEM_F32 ? EBMC_DT_F32 : k == EBMC_ITEM_F64 ? EBMC_DT_F64 : k == EBMC_ITEM_U8 ? EBMC_DT_U8 : EBMC_DT_I64;
}

/* state.safetensors: every item that is not a network, staged on the host */
static ebmc_status write_state(ebmc_run_t *r, item_list *L, const char *path, const char *const (*meta)[2],
                               int n_meta, char *err, size_t errlen) {
    ebmc_st_tensor st[3 * (EBMC_MAX_CKPT_ITEMS + SHELL_ITEMS)];
    char (*names)[3][160] = ebmc_xcalloc((size_t)L->n, sizeof *names, "checkpoint");
    void **host = ebmc_xcalloc((size_t)L->n, sizeof *host, "checkpoint");
    int64_t *steps = ebmc_xcalloc((size_t)L->n, sizeof *steps, "checkpoint");
    int n = 0;
    ebmc_status s = EBMC_OK;
    for (int i = 0; i < L->n && !s; i++) {
        const ebmc_ckpt_item *it = &L->items[i];
        if (it->kind == EBMC_ITEM_NET) continue;
        if (it->kind == EBMC_ITEM_ADAM) {
            size_t c = ebmc_adam_state_count(it->ptr);
            host[i] = ebmc_xmalloc((c ? 2 * c : 1) * sizeof(float), "checkpoint");
            s = ebmc_adam_state_get(it->ptr, it->name, names[i], host[i], &steps[i], st + n);
            if (s) snprintf(err, errlen, "%s: %s: %s", path, it->name, ebmc_ctx_error(r->ctx));
            n += 3;
        } else if (it->kind == EBMC_ITEM_I64) {
            st[n++] = (ebmc_st_tensor){it->name, EBMC_DT_I64, 0, {0}, it->ptr};
        } else {
            const void *data = it->ptr;
            if (it->device) {
                host[i] = ebmc_xmalloc(it->count * elem_size(it->kind) + 1, "checkpoint");
                s = ebmc_copy(r->ctx, host[i], it->ptr, it->count * elem_size(it->kind), EBMC_COPY_D2H);
                if (s) snprintf(err, errlen, "%s: %s: %s", path, it->name, ebmc_ctx_error(r->ctx));
                data = host[i];
            }
            st[n++] = (ebmc_st_tensor){it->name, item_dtype(it->kind), 1, {(int64_t)it->count}, data};
        }
    }
    if (!s) s = ebmc_st_write(path, st, n, meta, n_meta, err, errlen);
    for (int i = 0; i < L->n; i++) free(host[i]);
    free(host);
    free(names);
    free(steps);
    return s;
}

ebmc_status ebmc_run_save(ebmc_run_t *r, const char *dir, int64_t iteration, char *err, size_t errlen) {
    char tmp[PATH_MAX + 8], path[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    if (ebmc_mkdir_p(tmp)) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return EBMC_E_WRITE;
    }
    item_list L;
    list_items(r, &L);
    L.iteration = iteration;
    char *cfg_json = ebmc_config_to_json(r->cfg);
    char its[32], ranks[16];
    snprintf(its, sizeof its, "%" PRId64, iteration);
    snprintf(ranks, sizeof ranks, "%d", r->ranks > 0 ? r->ranks : 1);
    /* "ranks": the data-parallel ranks that trained it (a resume must use as many); "precision":
     * what it computed in (ebmc_ctx_precision_name; a resume must compute in the same);
     * "tensorboard_*": the event file and its length at this checkpoint (a resume cuts it there) */
    char tbb[32];
    snprintf(tbb, sizeof tbb, "%" PRId64, r->tb_bytes);
    const char *meta[][2] = {{"iteration", its}, {"config", cfg_json ? cfg_json : "{}"}, {"ranks", ranks},
                             {"precision", ebmc_ctx_precision_name(r->ctx)},
                             {"tensorboard_file", r->tb_file}, {"tensorboard_bytes", tbb}};
    int n_meta = r->tb_bytes >= 0 && r->tb_file[0] ? 6 : 4;
    ebmc_status s = EBMC_OK;
    for (int i = 0; i < L.n && !s; i++)
        if (L.items[i].kind == EBMC_ITEM_NET) {
            snprintf(path, sizeof path, "%s/%s.safetensors", tmp, L.items[i].name);
            s = ebmc_net_save(L.items[i].ptr, path, meta, 3, err, errlen); /* nets: their own precision */
        }
    snprintf(path, sizeof path, "%s/state.safetensors", tmp);
    if (!s) s = write_state(r, &L, path, meta, n_meta, err, errlen);
    free(cfg_json);
    if (s) remove_folder(tmp); /* nothing half-written stays behind */
    if (!s && rename(tmp, dir)) {
        snprintf(err, errlen, "%s: cannot rename into place: %s", dir, strerror(errno));
        s = EBMC_E_WRITE;
    }
    return s;
}

/* Data-parallel ranks keep state of their own (replay buffers, walkers, particles, chain states):
 * rank r > 0 writes all its state items to <dir>.tmp/state.rank<r>.safetensors before rank 0
 * renames the folder into place (ebmc_run_save), and reads them back from there on resume. */
static void rank_state_path(char *out, size_t n, const char *dir, int rank) {
    snprintf(out, n, "%s/state.rank%d.safetensors", dir, rank);
}

ebmc_status ebmc_run_save_rank(ebmc_run_t *r, const char *dir, int64_t iteration, char *err, size_t errlen) {
    char tmp[PATH_MAX + 8], path[PATH_MAX + 64], its[32], rk[16], rs[16];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    rank_state_path(path, sizeof path, tmp, r->rank);
    item_list L;
    list_items(r, &L);
    L.iteration = iteration;
    snprintf(its, sizeof its, "%" PRId64, iteration);
    snprintf(rk, sizeof rk, "%d", r->rank);
    snprintf(rs, sizeof rs, "%d", r->ranks);
    const char *meta[][2] = {{"iteration", its}, {"rank", rk}, {"ranks", rs}};
    return write_state(r, &L, path, meta, 3, err, errlen);
}

/* Reads every state item from f, validated, before anything is copied into the run. */
static ebmc_status read_state(ebmc_run_t *r, item_list *L, const ebmc_st_file *f, const char *path, char *err,
                              size_t errlen) {
    for (int i = 0; i < L->n; i++) { /* validate */
        const ebmc_ckpt_item *it = &L->items[i];
        if (it->kind == EBMC_ITEM_NET || it->kind == EBMC_ITEM_ADAM) continue;
        const ebmc_st_tensor *x = ebmc_st_find(f, it->name);
        bool scalar = it->kind == EBMC_ITEM_I64;
        if (!x || x->dtype != item_dtype(it->kind) || x->ndim != (scalar ? 0 : 1) ||
            (!scalar && x->shape[0] != (int64_t)it->count)) {
            snprintf(err, errlen, "%s: %s is missing or has the wrong type or shape", path, it->name);
            return EBMC_E_IO;
        }
        if (scalar) {
            int64_t v;
            memcpy(&v, x->data, sizeof v);
            if (v < it->lo || v > it->hi) {
                snprintf(err, errlen, "%s: %s = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", path,
                         it->name, v, it->lo, it->hi);
                return EBMC_E_IO;
            }
        }
    }
    for (int i = 0; i < L->n; i++) {
        const ebmc_ckpt_item *it = &L->items[i];
        if (it->kind == EBMC_ITEM_ADAM) EBMC_TRY(ebmc_adam_state_set(it->ptr, it->name, f, err, errlen));
    }
    for (int i = 0; i < L->n; i++) {
        const ebmc_ckpt_item *it = &L->items[i];
        if (it->kind == EBMC_ITEM_NET || it->kind == EBMC_ITEM_ADAM) continue;
        const ebmc_st_tensor *x = ebmc_st_find(f, it->name);
        size_t bytes = (it->kind == EBMC_ITEM_I64 ? 1 : it->count) * elem_size(it->kind);
        if (it->device) {
            if (ebmc_copy(r->ctx, it->ptr, x->data, bytes, EBMC_COPY_H2D)) {
                snprintf(err, errlen, "%s: %s: %s", path, it->name, ebmc_ctx_error(r->ctx));
                return EBMC_E_DEVICE;
            }
        } else {
            memcpy(it->ptr, x->data, bytes);
        }
    }
    return EBMC_OK;
}

ebmc_status ebmc_run_load(ebmc_run_t *r, const char *dir, int64_t *iteration, char *err, size_t errlen) {
    char path[PATH_MAX + 64];
    item_list L;
    list_items(r, &L);
    for (int i = 0; i < L.n; i++)
        if (L.items[i].kind == EBMC_ITEM_NET) {
            snprintf(path, sizeof path, "%s/%s.safetensors", dir, L.items[i].name);
            EBMC_TRY(ebmc_net_load(L.items[i].ptr, path, err, errlen));
        }
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    if (r->rank > 0) { /* this rank's own state when the checkpoint has it */
        char mine[PATH_MAX + 64];
        rank_state_path(mine, sizeof mine, dir, r->rank);
        if (access(mine, F_OK) == 0) snprintf(path, sizeof path, "%s", mine);
    }
    ebmc_st_file *f;
    EBMC_TRY(ebmc_st_open(path, &f, err, errlen));
    ebmc_status s = read_state(r, &L, f, path, err, errlen);
    const char *tbf = ebmc_st_meta(f, "tensorboard_file"), *tbb = ebmc_st_meta(f, "tensorboard_bytes");
    char *end = NULL;
    long long bytes = tbb ? strtoll(tbb, &end, 10) : -1;
    bool tb_ok = tbf && *tbf && !strchr(tbf, '/') && strlen(tbf) < sizeof r->tb_file && end && !*end && bytes >= 0;
    snprintf(r->tb_file, sizeof r->tb_file, "%s", tb_ok ? tbf : "");
    r->tb_bytes = tb_ok ? bytes : -1;
    ebmc_st_close(f);
    if (s) return s;
    if (r->loader && ebmc_loader_set_state(r->loader, L.epoch, L.pos)) {
        snprintf(err, errlen, "%s: loader position (epoch %" PRId64 ", batch %" PRId64 "): %s", path, L.epoch, L.pos,
                 ebmc_loader_error(r->loader));
        return EBMC_E_IO;
    }
    if (r->recipe->loaded) EBMC_TRY(r->recipe->loaded(r->state, err, errlen));
    *iteration = L.iteration;
    ebmc_run_set_restarts(r, (uint32_t)L.restarts);
    return EBMC_OK;
}

/* ---- the folders */

typedef enum { CK_DONE, CK_TMP, CK_DEL, CK_OTHER } ck_kind;

static ck_kind classify(const char *name, long long *it) {
    char tail[16];
    int n = sscanf(name, "iter_%lld%15s", it, tail);
    if (n == 1) return CK_DONE;
    if (n == 2 && !strcmp(tail, ".tmp")) return CK_TMP;
    if (n == 2 && !strcmp(tail, ".del")) return CK_DEL;
    return CK_OTHER;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* the iterations of the run's checkpoint folders, newest first (malloc'd); their count */
static int list_done(const char *run_dir, int64_t **out) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    long long v;
    struct dirent *e;
    while ((e = readdir(d)))
        if (classify(e->d_name, &v) == CK_DONE) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                int64_t *g = realloc(*out, (size_t)cap * sizeof **out);
                if (!g) break; /* out of host memory: the newest found so far */
                *out = g;
            }
            (*out)[n++] = v;
        }
    closedir(d);
    if (n) qsort(*out, (size_t)n, sizeof **out, cmp_desc);
    return n;
}

int64_t ebmc_latest_checkpoint(const char *run_dir, char *out, size_t outlen) {
    int64_t *its, best = -1;
    if (list_done(run_dir, &its) > 0) {
        best = its[0];
        snprintf(out, outlen, "%s/checkpoints/iter_%08" PRId64, run_dir, best);
    }
    free(its);
    return best;
}

/* unlinks the entries of dir that `which` picks */
static void unlink_in(const char *dir, bool (*which)(const char *name)) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char f[PATH_MAX + 300];
    while ((e = readdir(d)))
        if (which(e->d_name)) {
            snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            unlink(f);
        }
    closedir(d);
}

static bool not_dots(const char *name) { return strcmp(name, ".") && strcmp(name, ".."); }

/* NAME.tmp.PID: a temporary of ebmc_atomic_open that a killed process left behind */
static bool atomic_leftover(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t || t == name) return false;
    t += 5;
    if (!*t) return false;
    while (*t >= '0' && *t <= '9') t++;
    return !*t;
}

/* A folder and everything in it (checkpoint folders hold only files). */
static void remove_folder(const char *path) {
    unlink_in(path, not_dots);
    rmdir(path);
}

void ebmc_ckpt_clean(const char *run_dir) {
    char dir[PATH_MAX], p[PATH_MAX + 300];
    unlink_in(run_dir, atomic_leftover); /* config.ini.tmp.PID, metrics.jsonl.tmp.PID, ... */
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    long long v;
    while ((e = readdir(d))) {
        ck_kind k = classify(e->d_name, &v);
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (k == CK_TMP || k == CK_DEL) remove_folder(p);
        else if (k == CK_DONE) unlink_in(p, atomic_leftover); /* a kept checkpoint's *.safetensors.tmp.PID */
    }
    closedir(d);
}

ebmc_status ebmc_ckpt_load_newest(ebmc_run_t *r, const char *run_dir, int64_t *it, char *path, size_t n,
                                  char *err, size_t errlen) {
    int64_t *its;
    int count = list_done(run_dir, &its);
    char first[1024] = "";
    for (int i = 0; i < count; i++) {
        char e[1024];
        snprintf(path, n, "%s/checkpoints/iter_%08" PRId64, run_dir, its[i]);
        ebmc_status s = ebmc_run_load(r, path, it, e, sizeof e);
        if (!s && *it != its[i]) {
            snprintf(e, sizeof e, "its state says iteration %" PRId64, *it);
            s = EBMC_E_IO;
        }
        if (!s) {
            free(its);
            return EBMC_OK;
        }
        /* moved aside, not deleted: the run goes on from an older one and will write this
         * iteration again; the user can still inspect it */
        char aside[PATH_MAX + 48], why[PATH_MAX + 160] = "";
        snprintf(aside, sizeof aside, "%s.unusable", path);
        bool moved = false;
        if (ebmc_run_is_root(r)) { /* rank 0 owns the folder; one .unusable per iteration: the newest */
            remove_folder(aside);
            moved = rename(path, aside) == 0;
            if (!moved) snprintf(why, sizeof why, "; could not move it to %s: %s", aside, strerror(errno));
        }
        fprintf(stderr, "ebmc: checkpoint %s is unusable (%s)%s%s%s%s\n", path, e, moved ? "; moved to " : "",
                moved ? aside : "", why, i + 1 < count ? "; trying the one before it" : "");
        if (!first[0]) snprintf(first, sizeof first, "%s", e);
    }
    free(its);
    if (count == 0) snprintf(err, errlen, "%s has no checkpoint", run_dir);
    else snprintf(err, errlen, "no checkpoint of %s loads (the newest: %s)", run_dir, first);
    return EBMC_E_IO;
}

ebmc_status ebmc_metrics_truncate(const char *path, int64_t last, char *err, size_t errlen) {
    FILE *in = ebmc_fopen_read(path, err, errlen);
    if (!in) return errno == ENOENT ? EBMC_OK : EBMC_E_IO;
    char tmp[PATH_MAX + 32];
    FILE *out = ebmc_atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!out) {
        fclose(in);
        return EBMC_E_WRITE;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool ok = true;
    while ((len = getline(&line, &cap, in)) > 0) {
        long long v;
        bool record = sscanf(line, "{\"iter\":%lld", &v) == 1; /* event lines start {"event": */
        if (record && v > last) continue;
        ok &= fwrite(line, 1, (size_t)len, out) == (size_t)len;
    }
    free(line);
    fclose(in);
    if (!ok) {
        ebmc_atomic_abort(out, tmp);
        snprintf(err, errlen, "%s: cannot rewrite: %s", path, strerror(errno));
        return EBMC_E_WRITE;
    }
    return ebmc_atomic_commit(out, tmp, path, err, errlen);
}

void ebmc_ckpt_prune(const char *run_dir, int keep) {
    int64_t *its;
    int n = list_done(run_dir, &its);
    for (int i = n - 1; i >= keep; i--) { /* oldest first */
        char victim[PATH_MAX + 32], gone[PATH_MAX + 40];
        snprintf(victim, sizeof victim, "%s/checkpoints/iter_%08" PRId64, run_dir, its[i]);
        snprintf(gone, sizeof gone, "%s.del", victim);
        if (rename(victim, gone)) break; /* cannot happen to a folder we own: stop */
        remove_folder(gone);
    }
    free(its);
}

bool ebmc_ckpt_precision(const char *ckpt_dir, char *buf, size_t n) {
    char path[PATH_MAX + 32], err[256];
    snprintf(path, sizeof path, "%s/state.safetensors", ckpt_dir);
    ebmc_st_file *f;
    if (ebmc_st_open(path, &f, err, sizeof err)) return false;
    const char *v = ebmc_st_meta(f, "precision");
    if (v) snprintf(buf, n, "%s", v);
    ebmc_st_close(f);
    return v != NULL;
}

int ebmc_ckpt_ranks(const char *ckpt_dir) {
    char path[PATH_MAX + 32], err[256];
    snprintf(path, sizeof path, "%s/state.safetensors", ckpt_dir);
    ebmc_st_file *f;
    if (ebmc_st_open(path, &f, err, sizeof err)) return -1;
    const char *v = ebmc_st_meta(f, "ranks");
    int n = v ? atoi(v) : 1; /* checkpoints from before data parallelism: one process */
    ebmc_st_close(f);
    return n;
}
