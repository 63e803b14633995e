/* The run shell under the failures users of long runs hit (issue 16), driven through
 * `ebmc train` with the one-file test recipe (tests/fixtures/recipe_mle2d.c):
 * - the divergence guard: N recoveries draw N different noise streams (the restart count keeps
 *   growing though each reload reads an older one), metrics.jsonl keeps each iteration once;
 * - SIGKILL at many points of a run that checkpoints every iteration (during writes and
 *   pruning): every visible checkpoint loads, --resume works, the folder count respects
 *   log.keep, metrics.jsonl has each iteration once;
 * - a second SIGTERM stops a long iteration part-way (between chain steps), keeping the last
 *   checkpoint as it was (exit 5); the same signal twice within 100 ms is one request (exit 0,
 *   with a checkpoint);
 * - a full disk (RLIMIT_FSIZE) during a checkpoint: a run-time failure (exit 1), the previous
 *   checkpoint byte-identical, nothing half-written left; resume once there is room;
 * - a corrupt newest checkpoint: --resume falls back to the one before it, saying why;
 * - nonsense refused: train.iterations=0, a run.name that is no folder name, a checkpoint
 *   whose iteration is out of range. */
#include "ebmc/image.h"
#include "ebmc/recipe.h"
#include "ebmc/safetensors.h"
#include "ebmc/train.h"
#include "fixtures/recipe_mle2d.h"
#include "testutil.h"
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


static mle2d_fixture FX;
#define TMP FX.tmp
#define CFG FX.cfg
#define OD FX.od

static int setup(void **state) { return mle2d_fixture_setup(&FX, "test_shell", 40); }

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

/* iter_N folders (their iterations into its, unsorted) and leftovers (iter_N.tmp/.del); an
 * iter_N.unusable folder (a corrupt checkpoint moved aside) is neither */
static int ckpt_folders(const char *run, int64_t *its, int max, int *stray) {
    char dir[800];
    snprintf(dir, sizeof dir, "%s/checkpoints", run);
    DIR *d = opendir(dir);
    int n = 0;
    *stray = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "iter_", 5)) continue;
        const char *dot = strchr(e->d_name, '.');
        if (dot && (!strcmp(dot, ".tmp") || !strcmp(dot, ".del"))) (*stray)++;
        else if (!dot && n < max) its[n++] = atoll(e->d_name + 5);
    }
    closedir(d);
    return n;
}

/* metrics.jsonl: iteration records are 1, 2, ..., last, each once; returns last (-1: none) */
static int64_t metrics_each_once(const char *run) {
    char p[800];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    if (access(p, F_OK)) return -1;
    char *m = tu_read_file(p, NULL);
    int64_t expect = 1;
    for (char *l = m; *l; l = strchr(l, '\n') + 1) {
        long long v;
        if (sscanf(l, "{\"iter\":%lld", &v) == 1) {
            if (v != expect) fail_msg("%s: iteration %lld where %lld was expected", p, v, (long long)expect);
            expect++;
        }
        if (!strchr(l, '\n')) break;
    }
    free(m);
    return expect - 1;
}

/* Every visible checkpoint of the run loads whole into a fresh instance of the recipe. */
static void every_checkpoint_loads(const char *run) {
    int64_t its[64];
    int stray, n = ckpt_folders(run, its, 64, &stray);
    ebmc_config_t *cfg = ebmc_recipe_config_create(&test_recipe_mle2d);
    char err[1024], path[900];
    snprintf(path, sizeof path, "%s/config.ini", run);
    if (ebmc_config_load(cfg, path, err, sizeof err)) fail_msg("%s", err);
    ebmc_run_t *r;
    if (ebmc_run_open(&test_recipe_mle2d, cfg, false, &r, err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        int64_t it;
        snprintf(path, sizeof path, "%s/checkpoints/iter_%08lld", run, (long long)its[i]);
        if (ebmc_run_load(r, path, &it, err, sizeof err)) fail_msg("visible checkpoint does not load: %s", err);
        assert_int_equal(it, its[i]);
    }
    ebmc_run_free(r);
    ebmc_config_free(cfg);
}

static void test_guard_recoveries_draw_new_noise(void **state) {
    memset(&test_mle2d_log, 0, sizeof test_mle2d_log);
    /* NaN at iteration 15 until 3 recoveries were made: reloads of iteration 10, three times */
    const char *a[] = {CFG, OD, "run.name=guard", "mle2d.nan_at=15", "mle2d.nan_times=3", "guard.max_recoveries=5"};
    assert_int_equal(tu_train(a, 6), EBMC_EXIT_OK);
    const struct test_mle2d_log *g = &test_mle2d_log;
    /* the first iteration of each start: the run's, then one per recovery (restarts 1, 2, 3) */
    assert_int_equal(g->n_first, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(g->first_restarts[i], (uint32_t)i);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (g->first_e_neg[i] == g->first_e_neg[j])
                fail_msg("starts %d and %d drew the same noise (e_neg %.9g)", i, j, g->first_e_neg[i]);
    char run[700];
    snprintf(run, sizeof run, "%s/guard", TMP);
    assert_int_equal(metrics_each_once(run), 40);
    /* the same with fewer allowed recoveries than failures: exit 4 */
    const char *b[] = {CFG, OD, "run.name=guard2", "mle2d.nan_at=15", "mle2d.nan_times=9", "guard.max_recoveries=2"};
    assert_int_equal(tu_train(b, 6), EBMC_EXIT_DIVERGED);
}

/* a child process training (it may be killed): returns its pid */
static pid_t spawn_train(const char *const *args, int n, rlim_t fsize) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (fsize) {
            signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG, as on a full disk */
            struct rlimit rl = {fsize, fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        if (!freopen("/dev/null", "w", stderr)) _exit(99);
        _exit(tu_train(args, n));
    }
    return pid;
}

/* waits up to `secs` for the child: its exit status, or -(signal) */
static int wait_child(pid_t pid, double secs) {
    int st;
    for (double t = 0; t < secs; t += 0.01) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fail_msg("the training process did not end within %.0f s", secs);
    return -1;
}

/* a child training with these arguments, sent SIGTERM 1 s after its start and again `gap_ms` later */
static pid_t train_signalled_twice(const char *const *args, int n, long gap_ms) {
    pid_t pid = spawn_train(args, n, 0);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    kill(pid, SIGTERM);
    ts.tv_sec = 0, ts.tv_nsec = gap_ms * 1000000L;
    nanosleep(&ts, NULL);
    kill(pid, SIGTERM);
    return pid;
}

static void test_sigkill_at_many_points(void **state) {
    char run[700];
    snprintf(run, sizeof run, "%s/killed", TMP);
    const char *first[] = {CFG, OD, "run.name=killed", "log.ckpt_every=1", "train.iterations=3"};
    assert_int_equal(tu_train(first, 5), EBMC_EXIT_OK);
    const char *more[] = {"--resume", run, "train.iterations=100000", "log.ckpt_every=1"};
    unsigned seed = 12345;
    int kills = 0;
    for (int round = 0; round < 25; round++) {
        pid_t pid = spawn_train(more, 4, 0);
        struct timespec ts = {0, (long)(rand_r(&seed) % 250 + 30) * 1000000L}; /* 30..279 ms in */
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int rc = wait_child(pid, 60);
        kills += rc == -SIGKILL;
        every_checkpoint_loads(run); /* as the kill left them */
        int64_t its[64];
        int stray, n = ckpt_folders(run, its, 64, &stray);
        assert_true(n >= 1);
        assert_true(n <= 3); /* keep = 2, plus at most one written but not yet pruned */
    }
    /* the next run cleans and prunes what the kills left and goes on from the newest */
    const char *fin[] = {"--resume", run, "log.ckpt_every=1", "train.iterations=0"};
    int64_t its[64];
    int stray;
    ckpt_folders(run, its, 64, &stray);
    int64_t newest = 0;
    for (int i = 0, n = ckpt_folders(run, its, 64, &stray); i < n; i++)
        if (its[i] > newest) newest = its[i];
    char target[64];
    snprintf(target, sizeof target, "train.iterations=%lld", (long long)newest + 3);
    fin[3] = target;
    assert_int_equal(tu_train(fin, 4), EBMC_EXIT_OK);
    assert_int_equal(ckpt_folders(run, its, 64, &stray), 2);
    assert_int_equal(stray, 0);
    every_checkpoint_loads(run);
    assert_int_equal(metrics_each_once(run), newest + 3);
    printf("  %d of 25 runs killed with SIGKILL mid-run (the others ended first); reached iteration %lld\n",
           kills, (long long)newest + 3);
    assert_true(kills >= 20);
}

static void test_second_signal_stops_a_long_iteration(void **state) {
    char run[700];
    snprintf(run, sizeof run, "%s/sig", TMP);
    const char *first[] = {CFG, OD, "run.name=sig", "train.iterations=2", "log.ckpt_every=1"};
    assert_int_equal(tu_train(first, 5), EBMC_EXIT_OK);
    char ck[800];
    snprintf(ck, sizeof ck, "%s/checkpoints/iter_00000002/state.safetensors", run);
    size_t n0;
    char *before = tu_read_file(ck, &n0);
    /* an iteration of 5 million Langevin steps: minutes; two SIGTERMs must stop it part-way */
    const char *more[] = {"--resume", run, "train.iterations=10", "mle2d.steps=5000000"};
    pid_t pid = train_signalled_twice(more, 4, 200);
    assert_int_equal(wait_child(pid, 60), EBMC_EXIT_INTERRUPTED);
    size_t n1;
    char *after = tu_read_file(ck, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    int64_t its[8];
    int stray;
    assert_int_equal(ckpt_folders(run, its, 8, &stray), 2); /* iterations 1 and 2, as before */
    assert_int_equal(stray, 0);
    assert_int_equal(metrics_each_once(run), 2); /* the interrupted iteration is not logged */
    free(before);
    free(after);
}

/* One request that arrives twice (`timeout` signals the child, then its process group; Ctrl-C
 * reaches the whole group) is one request: the iteration finishes, a checkpoint is written, exit 0.
 * The second copy comes 20 ms after the first: under the shell's 100 ms window, and far more
 * than a signal takes to arrive, so before the window existed this exited 5 with nothing saved. */
static void test_repeated_signal_is_one_request(void **state) {
    char run[700];
    snprintf(run, sizeof run, "%s/twice", TMP);
    const char *first[] = {CFG, OD, "run.name=twice", "train.iterations=2", "log.ckpt_every=1"};
    assert_int_equal(tu_train(first, 5), EBMC_EXIT_OK);
    /* iterations of 20000 Langevin steps (tens of ms each): the signal lands in one of them */
    const char *more[] = {"--resume", run, "train.iterations=100000", "mle2d.steps=20000"};
    pid_t pid = train_signalled_twice(more, 4, 20);
    assert_int_equal(wait_child(pid, 60), EBMC_EXIT_OK);
    int64_t its[8];
    int stray;
    int n = ckpt_folders(run, its, 8, &stray);
    assert_true(n >= 1);
    assert_int_equal(stray, 0);
    int64_t newest = its[0];
    for (int i = 1; i < n; i++)
        if (its[i] > newest) newest = its[i];
    assert_true(newest > 2 && newest < 100000); /* the checkpoint of the iteration it stopped after */
    assert_int_equal(metrics_each_once(run), newest);
}

static void test_full_disk_loses_nothing(void **state) {
    char run[700];
    snprintf(run, sizeof run, "%s/full", TMP);
    const char *first[] = {CFG, OD, "run.name=full", "train.iterations=10"};
    assert_int_equal(tu_train(first, 4), EBMC_EXIT_OK);
    char ck[800], st[800];
    snprintf(ck, sizeof ck, "%s/checkpoints/iter_00000010/energy.safetensors", run);
    snprintf(st, sizeof st, "%s/checkpoints/iter_00000010/state.safetensors", run);
    size_t ne, ns;
    char *e0 = tu_read_file(ck, &ne), *s0 = tu_read_file(st, &ns);
    /* files may grow to 3000 bytes: metrics.jsonl fills first or the checkpoint's state file
     * does not fit; either way the run must fail cleanly */
    const char *more[] = {"--resume", run, "train.iterations=20"};
    pid_t pid = spawn_train(more, 3, 3000);
    assert_int_equal(wait_child(pid, 60), EBMC_EXIT_ERROR);
    size_t n;
    char *e1 = tu_read_file(ck, &n);
    assert_int_equal(n, ne);
    assert_memory_equal(e0, e1, n);
    char *s1 = tu_read_file(st, &n);
    assert_int_equal(n, ns);
    assert_memory_equal(s0, s1, n);
    int64_t its[8];
    int stray;
    assert_int_equal(ckpt_folders(run, its, 8, &stray), 1);
    assert_int_equal(stray, 0);
    /* room again: the run resumes and finishes */
    assert_int_equal(tu_train(more, 3), EBMC_EXIT_OK);
    assert_int_equal(metrics_each_once(run), 20);
    free(e0), free(e1), free(s0), free(s1);
}

static void test_corrupt_newest_falls_back(void **state) {
    char run[700], p[800];
    snprintf(run, sizeof run, "%s/corrupt", TMP);
    const char *first[] = {CFG, OD, "run.name=corrupt", "train.iterations=20"};
    assert_int_equal(tu_train(first, 4), EBMC_EXIT_OK);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020/energy.safetensors", run);
    assert_int_equal(truncate(p, 100), 0);
    const char *more[] = {"--resume", run, "train.iterations=30"};
    assert_int_equal(tu_train(more, 3), EBMC_EXIT_OK); /* from iteration 10 */
    assert_int_equal(metrics_each_once(run), 30);
    every_checkpoint_loads(run);
}

/* Sets the int64 scalar `name` of a safetensors file in place; returns its old value. */
static int64_t set_counter(const char *path, const char *name, int64_t v) {
    size_t n;
    char *b = tu_read_file(path, &n), err[512];
    ebmc_st_file *f;
    assert_int_equal(ebmc_st_open(path, &f, err, sizeof err), EBMC_OK);
    const ebmc_st_tensor *t = ebmc_st_find(f, name), *first = ebmc_st_at(f, 0);
    assert_non_null(t);
    uint64_t hlen;
    memcpy(&hlen, b, 8);
    /* the data buffer follows the header; tensors sit at their offsets from its start, and the
     * reader's copy keeps the file's layout (first is the tensor at offset 0) */
    size_t off = 8 + (size_t)hlen + (size_t)((const char *)t->data - (const char *)first->data);
    ebmc_st_close(f);
    int64_t old;
    memcpy(&old, b + off, 8);
    memcpy(b + off, &v, 8);
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    assert_int_equal(fwrite(b, 1, n, o), n);
    fclose(o);
    free(b);
    return old;
}

/* A model/data size mismatch is reported before the image cache is built. */
static void test_shape_checked_before_data_is_read(void **state) {
    char dir[700], p[800];
    snprintf(dir, sizeof dir, "%s/imgs", TMP);
    assert_int_equal(mkdir(dir, 0755), 0);
    float img[3 * 70 * 70];
    for (int i = 0; i < 3 * 70 * 70; i++) img[i] = (float)(i % 7) / 7.0f;
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.padding = 0;
    char err[512];
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%d.png", dir, k);
        assert_int_equal(ebmc_save_grid_png(p, img, 1, 3, 70, 70, &o, err, sizeof err), EBMC_OK);
    }
    char dp[800];
    snprintf(dp, sizeof dp, "data.path=%s", dir);
    const char *a[] = {CFG, OD, "run.name=shape", "run.recipe=dualmcmc", "data.dataset=images", dp, "data.size=64",
                       "model.arch=dualmcmc_cifar10"};
    char cfg2[700]; /* a config of its own: CFG holds mle2d's keys, unknown to dualmcmc */
    snprintf(cfg2, sizeof cfg2, "%s/shape.ini", TMP);
    FILE *f = fopen(cfg2, "w");
    assert_non_null(f);
    fputs("[run]\nbackend = cpu\n[log]\nquiet = true\n", f);
    fclose(f);
    a[0] = cfg2;
    assert_int_equal(tu_train(a, 8), EBMC_EXIT_CONFIG);
    snprintf(p, sizeof p, "%s.ebmc-64.cache", dir);
    assert_int_not_equal(access(p, F_OK), 0); /* no cache was built */
}

static void test_nonsense_refused(void **state) {
    const char *a[] = {CFG, OD, "run.name=zero", "train.iterations=0"};
    assert_int_equal(tu_train(a, 4), EBMC_EXIT_CONFIG);
    const char *b[] = {CFG, OD, "run.name=a\xff\xfe"};
    assert_int_equal(tu_train(b, 3), EBMC_EXIT_CONFIG);
    const char *c[] = {CFG, OD, "run.name=x/../y"};
    assert_int_equal(tu_train(c, 3), EBMC_EXIT_CONFIG);
    char run[700], p[800];
    snprintf(run, sizeof run, "%s/range", TMP);
    const char *d[] = {CFG, OD, "run.name=range", "train.iterations=10"};
    assert_int_equal(tu_train(d, 4), EBMC_EXIT_OK);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000010/state.safetensors", run);
    const int64_t bad[3] = {-1, INT64_MIN, INT64_MAX};
    /* adam.step (issue 23, 11): INT64_MAX overflowed in optim.c, -1 failed at iteration 7 */
    const char *counters[4] = {"iteration", "loader.pos", "loader.epoch", "adam.step"};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 3; i++) {
            int64_t old = set_counter(p, counters[k], bad[i]);
            const char *r[] = {"--resume", run, "train.iterations=20"};
            assert_int_equal(tu_train(r, 3), EBMC_EXIT_DATA);
            char aside[900]; /* the refused checkpoint was moved aside: put it back, restored */
            snprintf(aside, sizeof aside, "%s/checkpoints/iter_00000010.unusable", run);
            snprintf(p, sizeof p, "%s/checkpoints/iter_00000010", run);
            assert_int_equal(rename(aside, p), 0);
            snprintf(p, sizeof p, "%s/checkpoints/iter_00000010/state.safetensors", run);
            set_counter(p, counters[k], old);
        }
    /* a step count of 0 with the moments of 10 steps: not a state Adam can be in */
    int64_t old = set_counter(p, "adam.step", 0);
    assert_int_equal(old, 10);
    const char *r0[] = {"--resume", run, "train.iterations=20"};
    assert_int_equal(tu_train(r0, 3), EBMC_EXIT_DATA);
    char aside[900];
    snprintf(aside, sizeof aside, "%s/checkpoints/iter_00000010.unusable", run);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000010", run);
    assert_int_equal(rename(aside, p), 0);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000010/state.safetensors", run);
    set_counter(p, "adam.step", old);
    const char *r[] = {"--resume", run, "train.iterations=20"};
    assert_int_equal(tu_train(r, 3), EBMC_EXIT_OK); /* restored: it loads again */
}

/* What a killed writer or an earlier fallback left (issue 23, 13): the atomic writers' NAME.tmp.PID
 * files in the run directory and in kept checkpoint folders are removed when the run is opened,
 * and a checkpoint found unusable again replaces its older .unusable copy (one per iteration, no
 * silent failure to move it aside). */
static void test_leftovers_cleared(void **state) {
    char run[700], p[900];
    snprintf(run, sizeof run, "%s/left", TMP);
    const char *first[] = {CFG, OD, "run.name=left", "train.iterations=20"};
    assert_int_equal(tu_train(first, 4), EBMC_EXIT_OK);
    const char *junk[] = {"config.ini.tmp.123", "metrics.jsonl.tmp.4567", "checkpoints/iter_00000010/state.safetensors.tmp.99"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", run, junk[i]);
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        fputs("half", f);
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/keep.tmp.notapid", run); /* not an atomic writer's: kept */
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fclose(f);
    /* an older .unusable copy of iteration 20 already there */
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020.unusable", run);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020.unusable/old", run);
    f = fopen(p, "wb");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020/energy.safetensors", run);
    assert_int_equal(truncate(p, 100), 0);
    const char *more[] = {"--resume", run, "train.iterations=25"};
    assert_int_equal(tu_train(more, 3), EBMC_EXIT_OK); /* from iteration 10 */
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", run, junk[i]);
        if (access(p, F_OK) == 0) fail_msg("%s was left behind", p);
    }
    snprintf(p, sizeof p, "%s/keep.tmp.notapid", run);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020.unusable/energy.safetensors", run);
    assert_int_equal(access(p, F_OK), 0); /* the newest unusable copy, */
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020.unusable/old", run);
    assert_int_equal(access(p, F_OK), -1); /* not the older one */
    assert_int_equal(metrics_each_once(run), 25);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonsense_refused),
        cmocka_unit_test(test_shape_checked_before_data_is_read),
        cmocka_unit_test(test_guard_recoveries_draw_new_noise),
        cmocka_unit_test(test_corrupt_newest_falls_back),
        cmocka_unit_test(test_leftovers_cleared),
        cmocka_unit_test(test_full_disk_loses_nothing),
        cmocka_unit_test(test_second_signal_stops_a_long_iteration),
        cmocka_unit_test(test_repeated_signal_is_one_request),
        cmocka_unit_test(test_sigkill_at_many_points),
    };
    return cmocka_run_group_tests_name("shell", tests, setup, teardown);
}
