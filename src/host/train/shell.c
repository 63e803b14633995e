/* The run shell: `ebmc train`. It owns the loop, metrics.jsonl, the progress line, sample grids,
 * checkpoint writing, pruning and resume, the divergence guard, signals and the profiler window,
 * and knows nothing of any recipe's networks, losses or metric names: it calls the recipe
 * table (include/ebmc/recipe.h). */
#include "train/shell.h"
#include "ebmc/cli.h"
#include "ebmc/comm.h"
#include "ebmc/log.h"
#include "ebmc/tboard.h"
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The first SIGINT/SIGTERM asks to stop after the current iteration (with a checkpoint); a
 * second one to stop at once (chains check between steps), keeping the last checkpoint.
 * One request often arrives twice: `timeout` signals its child and then the child's process
 * group, a terminal's Ctrl-C reaches every process of the group, mpirun forwards what it gets.
 * So a signal within EBMC_SIGNAL_REPEAT_MS of the first counts as the same request, not a second
 * one (a person pressing Ctrl-C twice is slower than that). clock_gettime is async-signal-safe. */
#define EBMC_SIGNAL_REPEAT_MS 100
static volatile sig_atomic_t g_stop = 0;
static struct timespec g_first_signal;
static void on_signal(int sig) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!g_stop) {
        g_first_signal = now;
        ebmc_interrupt_set(1);
        g_stop = sig;
        return;
    }
    double ms = (double)(now.tv_sec - g_first_signal.tv_sec) * 1e3 + (double)(now.tv_nsec - g_first_signal.tv_nsec) * 1e-6;
    if (ms >= EBMC_SIGNAL_REPEAT_MS) ebmc_interrupt_set(2);
}

/* The shell's keys, read once. */
typedef struct {
    int64_t total, grid_every, ckpt_every, prof_w, prof_n;
    int keep, max_rec, grid_nrow, grid_scale, progress_every;
    double max_gap;
    bool quiet, tensorboard;
} shell_cfg;

/* Everything one `ebmc train` holds while it runs. */
typedef struct {
    ebmc_run_t *run;
    shell_cfg c;
    const char *run_dir;
    char mpath[PATH_MAX + 32];
    ebmc_progress_t *prog;
    int64_t start, it, last_saved;
    int recoveries;
    bool prof_on;
    bool stop;            /* data-parallel ranks: a stop the ranks agreed on (any rank's signal) */
    ebmc_tb_t *tb;        /* <run>/tb's event file (rank 0 with log.tensorboard; else NULL) */
    double tb_flushed;    /* ebmc_now_s() of its last flush */
    char *err;
    size_t errlen;
} loop_t;

static int status_exit(ebmc_status s) {
    return s == EBMC_E_INVALID ? EBMC_EXIT_CONFIG : s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR;
}

/* run.profile_iters "W:N" -> *w, *n (0, 0 when empty); false when malformed */
static bool parse_profile(const char *v, int64_t *w, int64_t *n) {
    *w = *n = 0;
    if (!*v) return true;
    long long a, b;
    char tail;
    if (sscanf(v, "%lld:%lld%c", &a, &b, &tail) != 2 || a < 0 || b < 1) return false;
    *w = a, *n = b;
    return true;
}

static ebmc_status read_shell_cfg(const ebmc_config_t *cfg, shell_cfg *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (!parse_profile(ebmc_config_str(cfg, "run", "profile_iters"), &c->prof_w, &c->prof_n)) {
        snprintf(err, errlen, "run.profile_iters: expected W:N (W >= 0 warm iterations, then N >= 1 profiled "
                 "ones), got '%s'", ebmc_config_str(cfg, "run", "profile_iters"));
        return EBMC_E_INVALID;
    }
    c->total = ebmc_config_int(cfg, "train", "iterations");
    c->grid_every = ebmc_config_int(cfg, "log", "grid_every");
    c->ckpt_every = ebmc_config_int(cfg, "log", "ckpt_every");
    c->keep = (int)ebmc_config_int(cfg, "log", "keep");
    c->grid_nrow = (int)ebmc_config_int(cfg, "log", "grid_nrow");
    c->grid_scale = (int)ebmc_config_int(cfg, "log", "grid_scale");
    c->progress_every = (int)ebmc_config_int(cfg, "log", "progress_every");
    c->quiet = ebmc_config_bool(cfg, "log", "quiet");
    c->tensorboard = ebmc_config_bool(cfg, "log", "tensorboard");
    c->max_rec = (int)ebmc_config_int(cfg, "guard", "max_recoveries");
    c->max_gap = ebmc_config_float(cfg, "guard", "max_gap");
    return EBMC_OK;
}

/* Ranks > 0 write their own state into rank 0's <ckpt>.tmp before rank 0 renames it into place:
 * rank 0 creates the folder, then the others write; each step agreed (any rank's failure is
 * every rank's). */
static ebmc_status save_rank_states(loop_t *L, const char *ckpt) {
    ebmc_run_t *r = L->run;
    char tmp[PATH_MAX + 72];
    snprintf(tmp, sizeof tmp, "%s.tmp", ckpt);
    double bad = ebmc_run_is_root(r) && ebmc_mkdir_p(tmp) != 0;
    if (bad) snprintf(L->err, L->errlen, "%s: cannot create: %s", tmp, strerror(errno));
    EBMC_TRY(ebmc_comm_sum_f64(r->comm, &bad, 1, "creating the checkpoint folder"));
    if (bad && !ebmc_run_is_root(r)) snprintf(L->err, L->errlen, "rank 0 could not create %s", tmp);
    if (bad) return EBMC_E_IO;
    if (!ebmc_run_is_root(r)) bad = ebmc_run_save_rank(r, ckpt, L->it, L->err, L->errlen) != EBMC_OK;
    double mine = bad;
    EBMC_TRY(ebmc_comm_sum_f64(r->comm, &bad, 1, "writing the ranks' states"));
    if (bad && !mine) snprintf(L->err, L->errlen, "%s: another rank could not write its state (see its message)", tmp);
    return bad ? EBMC_E_IO : EBMC_OK;
}

/* Rank 0 alone writes the run directory (the ranks' parameters are the same; the others' own
 * state goes into its checkpoint folder first). */
static ebmc_status save_checkpoint(loop_t *L) {
    char ckpt[PATH_MAX + 64];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/iter_%08" PRId64, L->run_dir, L->it);
    EBMC_TRY(ebmc_run_check_ranks(L->run, L->it, L->err, L->errlen));
    if (L->run->ranks > 1) EBMC_TRY(save_rank_states(L, ckpt));
    if (ebmc_run_is_root(L->run)) {
        if (L->tb) { /* the checkpoint records the event file's length: its events are on disk first */
            EBMC_TRY(ebmc_tb_flush(L->tb, true, L->err, L->errlen));
            L->tb_flushed = ebmc_now_s();
            const char *base = strrchr(ebmc_tb_path(L->tb), '/');
            snprintf(L->run->tb_file, sizeof L->run->tb_file, "%s", base ? base + 1 : ebmc_tb_path(L->tb));
            L->run->tb_bytes = ebmc_tb_bytes(L->tb);
        }
        EBMC_TRY(ebmc_run_save(L->run, ckpt, L->it, L->err, L->errlen));
        ebmc_ckpt_prune(L->run_dir, L->c.keep);
    }
    L->last_saved = L->it;
    return EBMC_OK;
}

/* The divergence guard's reload: the event file back to the length the loaded checkpoint
 * recorded, so that the steps after it are not there twice. */
static ebmc_status tb_cut_back(loop_t *L) {
    const ebmc_run_t *r = L->run;
    const char *base = strrchr(ebmc_tb_path(L->tb), '/');
    if (r->tb_bytes >= 0 && !strcmp(r->tb_file, base ? base + 1 : ebmc_tb_path(L->tb)))
        return ebmc_tb_truncate(L->tb, r->tb_bytes, L->err, L->errlen);
    fprintf(stderr, "ebmc train: the checkpoint records no length of %s (written with log.tensorboard = false): "
            "its steps after the checkpoint stay, and TensorBoard shows them twice\n", ebmc_tb_path(L->tb));
    return EBMC_OK;
}

/* Back to the newest checkpoint that loads; metrics.jsonl forgets the iterations after it. With
 * ranks: rank 0 picks it (trying older ones when the newest is unusable), every rank loads it,
 * and any rank's failure is every rank's. */
static ebmc_status reload(loop_t *L, int64_t *it) {
    ebmc_run_t *r = L->run;
    struct {
        int32_t status;
        int64_t it;
        char path[PATH_MAX + 32];
    } m;
    memset(&m, 0, sizeof m);
    if (ebmc_run_is_root(r)) {
        m.status = ebmc_ckpt_load_newest(r, L->run_dir, &m.it, m.path, sizeof m.path, L->err, L->errlen);
        if (!m.status) m.status = ebmc_metrics_truncate(L->mpath, m.it, L->err, L->errlen);
        if (!m.status && L->tb) m.status = tb_cut_back(L);
    }
    *it = m.it;
    if (r->ranks < 2) return (ebmc_status)m.status;
    EBMC_TRY(ebmc_comm_bcast(r->comm, &m, sizeof m, "choosing the checkpoint"));
    *it = m.it;
    if (m.status) {
        if (!ebmc_run_is_root(r)) snprintf(L->err, L->errlen, "rank 0 found no checkpoint to load (see its message)");
        return (ebmc_status)m.status;
    }
    ebmc_status s = EBMC_OK;
    int64_t got = m.it;
    if (!ebmc_run_is_root(r)) s = ebmc_run_load(r, m.path, &got, L->err, L->errlen);
    double bad = s != EBMC_OK || got != m.it;
    EBMC_TRY(ebmc_comm_sum_f64(r->comm, &bad, 1, "loading the checkpoint"));
    if (bad > 0 && !s) {
        snprintf(L->err, L->errlen, "%s: another rank could not load it (see its message)", m.path);
        s = EBMC_E_IO;
    }
    return s;
}

/* Resuming needs the ranks the run was trained with: the global batch is split and the noise
 * keyed by them (its newest checkpoint says how many). Exit status, or EBMC_EXIT_OK. */
static int check_resume_ranks(loop_t *L) {
    ebmc_run_t *r = L->run;
    int32_t was = 0;
    char latest[PATH_MAX];
    if (ebmc_run_is_root(r) && ebmc_latest_checkpoint(L->run_dir, latest, sizeof latest) >= 0)
        was = ebmc_ckpt_ranks(latest);
    if (r->ranks > 1 && ebmc_comm_bcast(r->comm, &was, sizeof was, "checking the checkpoint's ranks"))
        return EBMC_EXIT_ERROR;
    if (was <= 0 || was == r->ranks) return EBMC_EXIT_OK; /* none, or unreadable: reload says why */
    snprintf(L->err, L->errlen, "%s was trained with %d rank%s and this launch has %d: resume it with as many "
             "(HINT: mpirun -np %d ebmc train --resume %s); the batch split and the chains' noise depend on "
             "the count", L->run_dir, (int)was, was == 1 ? "" : "s", r->ranks, (int)was, L->run_dir);
    return EBMC_EXIT_CONFIG;
}

/* A resumed run computes in the precision its checkpoint was computed in (run.precision, resolved,
 * on this backend: ebmc_ctx_precision_name), or the continuation is not the run it claims to be
 * (and resume is otherwise exact). Checkpoints from before the record pass. Exit status, or
 * EBMC_EXIT_OK. Rank 0 checks: every rank resolves the same config on the same kind of device. */
static int check_resume_precision(loop_t *L) {
    ebmc_run_t *r = L->run;
    char latest[PATH_MAX], was[32];
    const char *now = ebmc_ctx_precision_name(r->ctx);
    int32_t bad = ebmc_run_is_root(r) && ebmc_latest_checkpoint(L->run_dir, latest, sizeof latest) >= 0 &&
                  ebmc_ckpt_precision(latest, was, sizeof was) && strcmp(was, now);
    if (r->ranks > 1 && ebmc_comm_bcast(r->comm, &bad, sizeof bad, "checking the checkpoint's precision"))
        return EBMC_EXIT_ERROR;
    if (!bad) return EBMC_EXIT_OK;
    if (ebmc_run_is_root(r))
        snprintf(L->err, L->errlen, "%s was computed in %s and this run would compute in %s (run.precision = %s on "
                 "the %s backend): resume it as it was trained (HINT: ebmc train --resume %s run.precision=%s%s)",
                 latest, was, now, ebmc_config_str(r->cfg, "run", "precision"), ebmc_ctx_ops(r->ctx)->name,
                 L->run_dir, was, strcmp(was, "fp32") ? ", on a GPU: the CPU computes in fp32 only" : "");
    else
        snprintf(L->err, L->errlen, "the checkpoint's precision differs from this run's (rank 0 says which)");
    return EBMC_EXIT_CONFIG;
}

/* {"iter", "epoch", the recipe's metrics..., "sec", "images_per_s", "chain_steps_per_s"} into
 * metrics.jsonl, and the same values but "iter" as scalars at step `next` into the event file;
 * a line that cannot be written (a full disk) stops the run */
static ebmc_status log_metrics(loop_t *L, int64_t next, int64_t epoch, double dt) {
    const ebmc_report *r = ebmc_run_report(L->run);
    ebmc_metric m[EBMC_MAX_METRICS + 4];
    int n = 0;
    for (int i = 0; i < r->n; i++) m[n++] = r->m[i];
    m[n++] = (ebmc_metric){.name = "sec", .value = dt};
    m[n++] = (ebmc_metric){.name = "images_per_s", .value = r->images / dt};
    if (r->chain_steps > 0) m[n++] = (ebmc_metric){.name = "chain_steps_per_s", .value = r->chain_steps / dt};
    ebmc_jsonl l;
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_int(&l, "iter", next);
    ebmc_jsonl_int(&l, "epoch", epoch);
    for (int i = 0; i < n; i++) ebmc_jsonl_num(&l, m[i].name, m[i].value);
    EBMC_TRY(ebmc_jsonl_append(&l, L->mpath, L->err, L->errlen));
    if (!L->tb) return EBMC_OK;
    ebmc_tb_begin(L->tb, next, ebmc_tb_wall());
    ebmc_tb_scalar(L->tb, "epoch", (float)epoch);
    for (int i = 0; i < n; i++) ebmc_tb_scalar(L->tb, m[i].name, (float)m[i].value);
    ebmc_tb_end(L->tb);
    return EBMC_OK;
}

/* The events so far to disk after grids, or when a second has passed since the last time
 * (TensorBoard shows them while the run goes on). */
static ebmc_status tb_maybe_flush(loop_t *L, bool now) {
    if (!L->tb || (!now && ebmc_now_s() - L->tb_flushed < 1.0)) return EBMC_OK;
    L->tb_flushed = ebmc_now_s();
    return ebmc_tb_flush(L->tb, false, L->err, L->errlen);
}

/* Rank 0 with log.tensorboard: <run>/tb's event file. A resumed run appends to the file its
 * checkpoint recorded, cut back to the length recorded then (the steps after the checkpoint are
 * trained again: TensorBoard would show them twice), saying what it drops or finds damaged. Then
 * the config as text at the first step. Exit status, or EBMC_EXIT_OK. */
static int tb_open(loop_t *L, const ebmc_config_t *cfg, bool resume) {
    if (!L->c.tensorboard || !ebmc_run_is_root(L->run)) return EBMC_EXIT_OK;
    const ebmc_run_t *r = L->run;
    char dir[PATH_MAX + 8], path[PATH_MAX + 300], note[1536];
    snprintf(dir, sizeof dir, "%s/tb", L->run_dir);
    if (resume && r->tb_bytes >= 0) {
        snprintf(path, sizeof path, "%s/%s", dir, r->tb_file);
        if (access(path, F_OK) == 0) {
            L->tb = ebmc_tb_reopen(path, r->tb_bytes, note, sizeof note, L->err, L->errlen);
            if (!L->tb) return EBMC_EXIT_DATA;
            if (note[0]) fprintf(stderr, "ebmc train: %s\n", note);
        } else {
            fprintf(stderr, "ebmc train: %s, the event file the checkpoint records, is missing: a new one starts "
                    "at step %" PRId64 "\n", path, L->start);
        }
    }
    if (!L->tb && !(L->tb = ebmc_tb_create(dir, L->err, L->errlen))) return EBMC_EXIT_ERROR;
    char *ini = ebmc_config_to_ini(cfg);
    size_t len = ini ? strlen(ini) : 0;
    char *md = malloc(len + 64);
    if (md) { /* a markdown code block: TensorBoard's text plugin renders markdown */
        snprintf(md, len + 64, "```\n%s```\n", ini ? ini : "");
        ebmc_tb_begin(L->tb, L->start, ebmc_tb_wall());
        ebmc_tb_text(L->tb, "config", md);
        ebmc_tb_end(L->tb);
    }
    free(md);
    free(ini);
    L->tb_flushed = ebmc_now_s();
    return ebmc_tb_flush(L->tb, false, L->err, L->errlen) ? EBMC_EXIT_ERROR : EBMC_EXIT_OK;
}

/* A guarded metric is not finite, or the guarded gap is beyond guard.max_gap. */
static bool diverged(const loop_t *L) {
    const ebmc_report *r = ebmc_run_report(L->run);
    bool bad = r->gap >= 0 && fabs(r->m[r->gap].value) > L->c.max_gap;
    for (int i = 0; i < r->n; i++) bad |= r->m[i].guard && !isfinite(r->m[i].value);
    return bad;
}

/* the guarded metrics and the gap, as "loss_e nan, e_gap 2.1e+04" */
static void describe_divergence(const loop_t *L, char *why, size_t n) {
    const ebmc_report *r = ebmc_run_report(L->run);
    size_t len = 0;
    why[0] = 0;
    for (int i = 0; i < r->n && len < n; i++)
        if (r->m[i].guard || i == r->gap)
            len += (size_t)snprintf(why + len, n - len, "%s%s %.4g", len ? ", " : "", r->m[i].name, r->m[i].value);
}

/* Reload the last good checkpoint with a new noise stream; non-zero exit status to give up. */
static int recover(loop_t *L, int64_t next) {
    char why[512], latest[PATH_MAX];
    describe_divergence(L, why, sizeof why);
    L->recoveries++;
    int32_t have = ebmc_latest_checkpoint(L->run_dir, latest, sizeof latest) >= 0;
    bool root = ebmc_run_is_root(L->run);
    if (L->run->ranks > 1 && ebmc_comm_bcast(L->run->comm, &have, sizeof have, "divergence recovery"))
        return EBMC_EXIT_ERROR;
    uint32_t restarts = ebmc_run_restarts(L->run);
    bool give_up = L->recoveries > L->c.max_rec || !have;
    if (root) fprintf(stderr, "\nebmc train: divergence at iteration %" PRId64 " (%s)%s\n", next, why,
            give_up ? "" : "; reloading the last good checkpoint");
    const ebmc_report *r = ebmc_run_report(L->run);
    ebmc_jsonl l;
    ebmc_jsonl_begin(&l);
    ebmc_jsonl_str(&l, "event", "divergence");
    ebmc_jsonl_int(&l, "iter", next);
    if (r->gap >= 0) ebmc_jsonl_num(&l, r->m[r->gap].name, r->m[r->gap].value);
    ebmc_jsonl_int(&l, "recovery", L->recoveries);
    ebmc_jsonl_int(&l, "restarts", (int64_t)restarts + 1);
    char e[512];
    if (root) ebmc_jsonl_append(&l, L->mpath, e, sizeof e);
    if (give_up) {
        snprintf(L->err, L->errlen, "diverged at iteration %" PRId64 " %s", next,
                 have ? "after the allowed recoveries (guard.max_recoveries)" : "before the first checkpoint");
        return EBMC_EXIT_DIVERGED;
    }
    /* the restart count keeps growing across reloads (the checkpoint holds an older one), so
     * every recovery draws a noise stream of its own */
    int64_t rit;
    ebmc_status rs = reload(L, &rit);
    if (rs) return rs == EBMC_E_WRITE ? EBMC_EXIT_ERROR : EBMC_EXIT_DATA; /* a full disk is no bad checkpoint */
    uint32_t loaded = ebmc_run_restarts(L->run);
    ebmc_run_set_restarts(L->run, (restarts > loaded ? restarts : loaded) + 1);
    L->it = rit;
    return EBMC_EXIT_OK;
}

/* cudaProfilerStart/Stop around iterations W+1 .. W+N of this process */
static void profiler_window(loop_t *L, int64_t next, bool after, bool failed) {
    ebmc_ctx_t *ctx = ebmc_run_ctx(L->run);
    if (!after && L->c.prof_n && !L->prof_on && next - L->start == L->c.prof_w + 1) {
        if (ebmc_profiler_start(ctx) == EBMC_OK) {
            L->prof_on = true;
            fprintf(stderr, "\nebmc train: profiler window open for iterations %" PRId64 "..%" PRId64 "\n", next,
                    next + L->c.prof_n - 1);
        } else {
            fprintf(stderr, "\nebmc train: run.profile_iters: %s\n", ebmc_ctx_error(ctx));
            L->c.prof_n = 0;
        }
    }
    if (after && L->prof_on && (failed || next - L->start == L->c.prof_w + L->c.prof_n)) {
        ebmc_profiler_stop(ctx);
        L->prof_on = false;
        fprintf(stderr, "\nebmc train: profiler window closed after iteration %" PRId64 "\n", next);
    }
}

/* One pass of the loop: a batch, an iteration, its log line, the guard, grids, a checkpoint.
 * Returns an exit status (EBMC_EXIT_OK to go on). */
static int loop_step(loop_t *L) {
    int64_t epoch, next = L->it + 1;
    ebmc_status s = ebmc_run_next_batch(L->run, &epoch, L->err, L->errlen);
    if (s) return EBMC_EXIT_DATA;
    bool grid_due = (L->c.grid_every && next % L->c.grid_every == 0) || next == L->c.total;
    profiler_window(L, next, false, false);
    double t0 = ebmc_now_s();
    s = ebmc_run_iteration(L->run, next, epoch, grid_due);
    double dt = ebmc_now_s() - t0;
    profiler_window(L, next, true, s != EBMC_OK);
    if (s == EBMC_E_INTERRUPTED) {
        if (L->last_saved >= 0)
            snprintf(L->err, L->errlen, "stopped by a second signal during iteration %" PRId64 "; the last checkpoint "
                     "(iteration %" PRId64 ") is kept", next, L->last_saved);
        else
            snprintf(L->err, L->errlen, "stopped by a second signal during iteration %" PRId64 ", before the run's "
                     "first checkpoint: nothing is saved", next);
        return EBMC_EXIT_INTERRUPTED;
    }
    if (s) {
        snprintf(L->err, L->errlen, "iteration %" PRId64 ": %s", next, ebmc_ctx_error(ebmc_run_ctx(L->run)));
        return EBMC_EXIT_ERROR;
    }
    double stop = g_stop != 0; /* the ranks agree on stopping and on the guard's numbers */
    if (ebmc_run_reduce_report(L->run, &stop)) return EBMC_EXIT_ERROR;
    L->stop = stop > 0;
    if (ebmc_run_is_root(L->run) && log_metrics(L, next, epoch, dt)) return EBMC_EXIT_ERROR;
    if (diverged(L)) return recover(L, next);
    L->it = next;
    ebmc_progress_update(L->prog, L->it, ebmc_run_report(L->run)->progress);
    /* writing outputs is a run-time failure (a full disk), not bad input */
    if (grid_due && ebmc_run_is_root(L->run) &&
        ebmc_run_write_grids(L->run, L->run_dir, L->it, L->c.grid_nrow, L->c.grid_scale, L->tb, L->err, L->errlen))
        return EBMC_EXIT_ERROR;
    if ((L->c.ckpt_every && L->it % L->c.ckpt_every == 0) || L->it == L->c.total)
        if (save_checkpoint(L)) return EBMC_EXIT_ERROR;
    return tb_maybe_flush(L, grid_due) ? EBMC_EXIT_ERROR : EBMC_EXIT_OK;
}

/* Rank 0 creates the run directory and clears what a killed process left half-made or
 * half-deleted; the other ranks read checkpoints only after that. Exit status, or EBMC_EXIT_OK. */
static int prepare_run_dir(loop_t *L) {
    bool root = ebmc_run_is_root(L->run);
    snprintf(L->mpath, sizeof L->mpath, "%s/metrics.jsonl", L->run_dir);
    int32_t made = EBMC_EXIT_OK;
    if (root && ebmc_mkdir_p(L->run_dir)) {
        snprintf(L->err, L->errlen, "%s: cannot create the run directory: %s", L->run_dir, strerror(errno));
        made = EBMC_EXIT_ERROR; /* an output that cannot be written */
    }
    if (root && !made) {
        ebmc_ckpt_clean(L->run_dir);
        ebmc_ckpt_prune(L->run_dir, L->c.keep);
    }
    if (L->run->ranks > 1 && ebmc_comm_bcast(L->run->comm, &made, sizeof made, "opening the run directory"))
        return EBMC_EXIT_ERROR;
    if (made && !root) snprintf(L->err, L->errlen, "rank 0 could not create %s", L->run_dir);
    return made;
}

/* ", N data-parallel ranks of batch B each" (empty in one process) */
static const char *ranks_note(const ebmc_run_t *r) {
    static char buf[96];
    buf[0] = 0;
    if (r->ranks > 1) snprintf(buf, sizeof buf, ", %d data-parallel ranks of batch %d each", r->ranks, r->local_batch);
    return buf;
}

/* Opens the run (context, data, recipe), resumes from the newest checkpoint, writes the
 * resolved config and the memory plan. Exit status, or EBMC_EXIT_OK. */
static int loop_open(loop_t *L, const ebmc_recipe *rc, ebmc_config_t *cfg, bool resume) {
    ebmc_status s = read_shell_cfg(cfg, &L->c, L->err, L->errlen);
    if (!s) s = ebmc_run_open(rc, cfg, true, &L->run, L->err, L->errlen);
    if (s) return status_exit(s);
    bool root = ebmc_run_is_root(L->run);
    if (!root) L->c.quiet = true; /* one progress line and plan: rank 0's */
    int made = prepare_run_dir(L);
    if (made) return made;
    L->last_saved = -1;
    if (resume) {
        int rc = check_resume_ranks(L);
        if (!rc) rc = check_resume_precision(L);
        if (rc) return rc;
        ebmc_status rs = reload(L, &L->start);
        if (rs) return rs == EBMC_E_WRITE ? EBMC_EXIT_ERROR : EBMC_EXIT_DATA; /* a full disk is no bad checkpoint */
        L->last_saved = L->start;
        if (root) fprintf(stderr, "ebmc train: resuming %s at iteration %" PRId64 "\n", L->run_dir, L->start);
    }
    L->it = L->start;
    char cfgpath[PATH_MAX + 32], planpath[PATH_MAX + 32];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", L->run_dir);
    snprintf(planpath, sizeof planpath, "%s/plan.json", L->run_dir);
    if (root && ebmc_config_write(cfg, cfgpath, L->err, L->errlen)) return EBMC_EXIT_ERROR; /* overrides included */
    int tbe = tb_open(L, cfg, resume);
    if (tbe) return tbe;
    if (L->c.total == 0) L->c.total = ebmc_config_int(cfg, "train", "epochs") * ebmc_run_batches_per_epoch(L->run);
    if (root && resume && L->start >= L->c.total)
        fprintf(stderr, "ebmc train: the checkpoint is at iteration %" PRId64 " and the run has %" PRId64 " in all: "
                "nothing to do (HINT: train.iterations=N extends it)\n", L->start, L->c.total);
    if (root)
        fprintf(stderr, "ebmc train: run %s: recipe %s on %s (%s), %" PRId64 " iterations of batch %d, %" PRId64
                " per epoch%s\n", L->run_dir, rc->name, ebmc_ctx_ops(ebmc_run_ctx(L->run))->name,
                ebmc_run_data_name(L->run), L->c.total, ebmc_run_batch_size(L->run), ebmc_run_batches_per_epoch(L->run),
                ranks_note(L->run));
    if (root && ebmc_run_print_plan(L->run, L->c.quiet ? NULL : stderr, planpath, L->err, L->errlen))
        return EBMC_EXIT_ERROR;
    return EBMC_EXIT_OK;
}

/* Whether to stop before the next iteration: a signal; with ranks, one that any rank received,
 * as agreed after the last iteration (each rank's own flag could stop them at different ones). */
static bool stop_now(const loop_t *L) {
    return L->run && L->run->ranks > 1 ? L->stop : g_stop != 0;
}

/* "rank R of N: " in messages of a multi-rank run */
static const char *who(const ebmc_run_t *r) {
    static char buf[48];
    buf[0] = 0;
    if (r && r->ranks > 1) snprintf(buf, sizeof buf, "rank %d of %d: ", r->rank, r->ranks);
    return buf;
}

static int run_loop(const ebmc_recipe *rc, ebmc_config_t *cfg, const char *run_dir, bool resume, char *err,
                    size_t errlen) {
    loop_t L = {.run_dir = run_dir, .err = err, .errlen = errlen};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT); /* one handler at a time: g_first_signal is not torn */
    sigaddset(&sa.sa_mask, SIGTERM);
    g_stop = 0;
    ebmc_interrupt_set(0);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc_exit = loop_open(&L, rc, cfg, resume);
    if (rc_exit) {
        fprintf(stderr, "ebmc train: %s%s\n", who(L.run), err);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        ebmc_tb_close(L.tb);
        ebmc_run_free(L.run);
        return rc_exit;
    }
    L.prog = ebmc_progress_create(L.c.total, L.start, L.c.progress_every, L.c.quiet);
    double t_run = ebmc_now_s();
    while (!rc_exit && L.it < L.c.total && !stop_now(&L)) rc_exit = loop_step(&L);
    if (L.prof_on) ebmc_profiler_stop(ebmc_run_ctx(L.run));
    ebmc_progress_finish(L.prog);
    ebmc_progress_free(L.prog);
    if (!rc_exit && stop_now(&L) && L.last_saved != L.it) { /* finish cleanly: checkpoint, exit 0 */
        if (save_checkpoint(&L)) rc_exit = EBMC_EXIT_ERROR;
        else if (ebmc_run_is_root(L.run) && g_stop)
            fprintf(stderr, "ebmc train: stopped by signal %d after iteration %" PRId64 "; checkpoint in %s/checkpoints\n",
                    (int)g_stop, L.it, run_dir);
        else if (ebmc_run_is_root(L.run)) /* another rank got it */
            fprintf(stderr, "ebmc train: stopped by a signal to another rank after iteration %" PRId64 "; checkpoint "
                    "in %s/checkpoints\n", L.it, run_dir);
    }
    if (L.tb && ebmc_tb_flush(L.tb, false, err, errlen) && !rc_exit) rc_exit = EBMC_EXIT_ERROR;
    ebmc_tb_close(L.tb);
    if (rc_exit) fprintf(stderr, "ebmc train: %s%s\n", who(L.run), err);
    else if (ebmc_run_is_root(L.run))
        fprintf(stderr, "ebmc train: done: %" PRId64 " iterations in %.1f s; metrics, grids and checkpoints in %s\n",
                L.it - L.start, ebmc_now_s() - t_run, run_dir);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    ebmc_interrupt_set(0);
    ebmc_run_free(L.run);
    return rc_exit;
}

/* ------------------------------------------------------------------ the command */

void ebmc_train_usage(FILE *f) {
    char names[512];
    fprintf(f,
            "usage: ebmc train CONFIG [section.key=value ...]\n"
            "       ebmc train --resume RUN_DIR [section.key=value ...]\n"
            "       ebmc train --print-config [CONFIG] [section.key=value ...]\n"
            "recipes (run.recipe): %s\n", ebmc_recipe_names(names, sizeof names));
}

static int usage_train(void) {
    ebmc_train_usage(stderr);
    return EBMC_EXIT_USAGE;
}

static const char *base_name(const char *path, char *buf, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t len = strlen(b) < n - 1 ? strlen(b) : n - 1;
    memcpy(buf, b, len);
    buf[len] = 0;
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

typedef struct {
    const char *resume, *config_path;
    bool print_only;
    int first_override;
} train_args;

static int parse_train_args(int argc, char **argv, train_args *a) {
    memset(a, 0, sizeof *a);
    a->first_override = argc;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            if (i + 1 >= argc) return usage_train();
            a->resume = argv[++i];
        } else if (!strcmp(argv[i], "--print-config")) {
            a->print_only = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage_train();
            return -1;
        } else if (strchr(argv[i], '=')) {
            a->first_override = i;
            break;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ebmc train: unknown option '%s'\n", argv[i]);
            return usage_train();
        } else if (!a->config_path) {
            a->config_path = argv[i];
        } else {
            fprintf(stderr, "ebmc train: unexpected argument '%s'\n", argv[i]);
            return usage_train();
        }
    }
    if (!a->config_path && !a->resume && !a->print_only) return usage_train();
    return 0;
}

/* Values that parse but make no sense for a run: train.iterations = 0 given by the user (the
 * default 0 means train.epochs epochs; a resumed run's config.ini holds that default, so there
 * only a command-line 0 counts), a run.name that is not a plain folder name. */
static int check_run_keys(const ebmc_config_t *cfg, bool resume, int n_over, char **over, char *err, size_t errlen) {
    bool zero = ebmc_config_int(cfg, "train", "iterations") == 0;
    bool given = !resume && ebmc_config_is_set(cfg, "train", "iterations");
    for (int i = 0; i < n_over; i++) given |= !strncmp(over[i], "train.iterations=", 17);
    if (zero && given) {
        snprintf(err, errlen, "train.iterations = 0: nothing to train (HINT: leave it out to train train.epochs "
                 "epochs, or give a positive count)");
        return EBMC_EXIT_CONFIG;
    }
    const char *name = ebmc_config_str(cfg, "run", "name");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!(isalnum(*p) || *p == '.' || *p == '_' || *p == '-' || *p == '+' || *p == '=') || !strcmp(name, ".") ||
            !strcmp(name, "..")) {
            snprintf(err, errlen, "run.name '%s': use letters, digits and . _ - + = only (it names a folder)", name);
            return EBMC_EXIT_CONFIG;
        }
    return EBMC_EXIT_OK;
}

/* run.out_dir/run.name (or <config name>-<date>-<time>), which must not hold a run yet */
static int new_run_dir(const ebmc_config_t *cfg, const char *config_path, char *run_dir, size_t n) {
    const char *name = ebmc_config_str(cfg, "run", "name");
    char nb[256], tmp[PATH_MAX];
    if (!*name) {
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char stamp[64];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
        snprintf(nb, sizeof nb, "%.100s-%.60s", config_path ? base_name(config_path, tmp, sizeof tmp) : "run", stamp);
        name = nb;
    }
    if (snprintf(run_dir, n, "%s/%s", ebmc_config_str(cfg, "run", "out_dir"), name) >= (int)n) {
        fprintf(stderr, "ebmc train: run.out_dir/run.name is too long\n");
        return EBMC_EXIT_CONFIG;
    }
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/config.ini", run_dir);
    if (access(probe, F_OK) == 0) {
        fprintf(stderr, "ebmc train: %s already holds a run (HINT: ebmc train --resume %s, or another run.name)\n",
                run_dir, run_dir);
        return EBMC_EXIT_USAGE;
    }
    return EBMC_EXIT_OK;
}

/* The run directory rank 0 chose (its date-stamped name, its check that no run is there) for
 * every rank. */
static int agreed_run_dir(const ebmc_config_t *cfg, const char *config_path, char *run_dir, size_t n) {
    ebmc_comm_t *w = ebmc_comm_world();
    if (ebmc_comm_size(w) < 2) return new_run_dir(cfg, config_path, run_dir, n);
    struct {
        int32_t rc;
        char dir[PATH_MAX];
    } m;
    memset(&m, 0, sizeof m);
    if (ebmc_comm_rank(w) == 0) m.rc = new_run_dir(cfg, config_path, m.dir, sizeof m.dir);
    ebmc_comm_set_timeout(w, ebmc_config_float(cfg, "run", "comm_timeout"));
    if (ebmc_comm_bcast(w, &m, sizeof m, "choosing the run directory")) return EBMC_EXIT_ERROR;
    snprintf(run_dir, n, "%s", m.dir);
    return m.rc;
}

/* The end of a rank: outcomes every rank meets alike (done, the command line, the config, the
 * guard's agreed verdict) end it normally; any other failure ends the job (the other ranks
 * would wait for this one). */
static int leave_ranks(int rc) {
    ebmc_comm_t *w = ebmc_comm_world();
    bool alike = rc == EBMC_EXIT_OK || rc == EBMC_EXIT_CONFIG || rc == EBMC_EXIT_USAGE || rc == EBMC_EXIT_DIVERGED;
    if (ebmc_comm_size(w) > 1 && !alike)
        ebmc_comm_abort(w, rc);
    ebmc_comm_finalize();
    return rc;
}

int ebmc_train_main(int argc, char **argv) {
    char err[1024] = "";
    train_args a;
    int rc = parse_train_args(argc, argv, &a);
    if (rc) return rc < 0 ? EBMC_EXIT_OK : rc;
    char run_dir[PATH_MAX] = "", cfgfile[PATH_MAX + 32];
    if (a.resume) {
        snprintf(run_dir, sizeof run_dir, "%s", a.resume);
        snprintf(cfgfile, sizeof cfgfile, "%s/config.ini", a.resume);
        a.config_path = cfgfile;
    }
    const ebmc_recipe *recipe;
    ebmc_config_t *cfg;
    ebmc_status st = ebmc_recipe_load_config(a.config_path, argc - a.first_override, argv + a.first_override, &recipe,
                                             &cfg, err, sizeof err);
    rc = st == EBMC_E_IO ? EBMC_EXIT_DATA : st ? EBMC_EXIT_CONFIG : EBMC_EXIT_OK;
    if (!rc && !a.print_only) {
        rc = check_run_keys(cfg, a.resume != NULL, argc - a.first_override, argv + a.first_override, err, sizeof err);
        if (rc) ebmc_config_free(cfg);
    }
    if (rc) {
        fprintf(stderr, "ebmc train: %s\n", err);
        return rc;
    }
    if (a.print_only) {
        char *ini = ebmc_config_to_ini(cfg);
        printf("# recipe %s: %s\n", recipe->name, recipe->summary);
        fputs(ini ? ini : "", stdout);
        free(ini);
    } else {
        rc = a.resume ? EBMC_EXIT_OK : agreed_run_dir(cfg, a.config_path, run_dir, sizeof run_dir);
        if (!rc) rc = run_loop(recipe, cfg, run_dir, a.resume != NULL, err, sizeof err);
    }
    ebmc_config_free(cfg);
    return leave_ranks(rc);
}
