/* ebmc score RUN_DIR|CHECKPOINT_DIR INPUT [--out FILE.jsonl|FILE.npy]: the energy E(x) of each
 * example of INPUT (a .npy of uint8 images or float32 points, or a config's data set) under a
 * trained model, through the recipe table's energy entry: an EBM's unnormalised negative
 * log-density, the usual out-of-distribution score. Images are mapped to [-1, 1] as the training
 * loader maps them (x / 127.5 - 1). Output: JSON lines {"index": i, "energy": e} (stdout or
 * .jsonl) or a float32 (N,) .npy. */
#include "eval/eval_internal.h"
#include "ebmc/fileio.h"
#include "ebmc/image.h"
#include "ebmc/train.h"
#include "ebmc/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ebmc_score_usage(FILE *f) {
    fprintf(f, "usage: ebmc score RUN_DIR|CHECKPOINT_DIR INPUT [--out FILE.jsonl|FILE.npy] [section.key=value ...]\n"
                    "  INPUT: a .npy (uint8 images (N,H,W,C) or float32 points (N,D)) or a config / run directory\n"
                    "  (its data.*); the examples must have the model's shape\n"
                    "writes the energy E(x) of each example: JSON lines {\"index\": i, \"energy\": e} (stdout by\n"
                    "default, or FILE.jsonl) or a float32 (N,) .npy\n");
}

static int usage_score(void) {
    ebmc_score_usage(stderr);
    return EBMC_EXIT_USAGE;
}

static ebmc_status open_model(const char *in, int n_over, char **over, ebmc_config_t **cfg, ebmc_run_t **run,
                              char *err, size_t errlen) {
    char cfgpath[PATH_MAX + 32], ckpt[PATH_MAX], run_dir[PATH_MAX];
    struct stat st;
    snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", in);
    if (stat(cfgpath, &st) == 0) {
        if (ebmc_latest_checkpoint(in, ckpt, sizeof ckpt) < 0) {
            ebmc_set_err(err, errlen, "%s has no checkpoint", in);
            return EBMC_E_IO;
        }
    } else {
        snprintf(ckpt, sizeof ckpt, "%s", in);
        snprintf(run_dir, sizeof run_dir, "%s/../..", in);
        snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", run_dir);
    }
    const ebmc_recipe *rc;
    EBMC_TRY(ebmc_recipe_load_config(cfgpath, n_over, over, &rc, cfg, err, errlen));
    if (!rc->energy) {
        ebmc_set_err(err, errlen, "recipe %s has no energy function to score with", rc->name);
        return EBMC_E_INVALID;
    }
    EBMC_TRY(ebmc_run_open(rc, *cfg, false, run, err, errlen));
    int64_t it;
    return ebmc_run_load(*run, ckpt, &it, err, errlen);
}

/* the examples as the model's input: images x / 127.5 - 1, points as they are */
static ebmc_status model_input(ebmc_run_t *run, const eval_src *s, const char *what, float **x, char *err,
                               size_t errlen) {
    const ebmc_recipe *rc = ebmc_run_recipe(run);
    int c, h, w;
    rc->sample_shape(ebmc_run_state(run), &c, &h, &w);
    if (c != s->c || h != s->h || w != s->w) {
        ebmc_set_err(err, errlen, "%s: examples of shape %dx%dx%d, the model (recipe %s) takes %dx%dx%d", what, s->c,
                     s->h, s->w, rc->name, c, h, w);
        return EBMC_E_IO;
    }
    size_t count = (size_t)s->n * c * h * w;
    if (!(*x = malloc(count * sizeof(float)))) {
        ebmc_set_err(err, errlen, "out of host memory for %lld examples", (long long)s->n);
        return EBMC_E_NOMEM;
    }
    for (size_t i = 0; i < count; i++) (*x)[i] = s->u8 ? (float)s->u8[i] / 127.5f - 1.0f : s->f[i];
    return EBMC_OK;
}

static ebmc_status write_scores(const char *out, const float *e, int n, char *err, size_t errlen) {
    size_t len = out ? strlen(out) : 0;
    if (len > 4 && !strcmp(out + len - 4, ".npy")) {
        int64_t shape[1] = {n};
        return ebmc_save_npy_f32(out, e, 1, shape, err, errlen);
    }
    char tmp[PATH_MAX + 32];
    FILE *f = out ? ebmc_atomic_open(out, tmp, sizeof tmp, err, errlen) : stdout;
    if (!f) return EBMC_E_WRITE;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) ok = fprintf(f, "{\"index\":%d,\"energy\":%.9g}\n", i, (double)e[i]) > 0;
    if (f != stdout) {
        if (ok) return ebmc_atomic_commit(f, tmp, out, err, errlen);
        ebmc_atomic_abort(f, tmp);
    } else {
        ok = fflush(stdout) == 0 && ok;
    }
    if (!ok) ebmc_set_err(err, errlen, "%s: write failed: %s", out ? out : "stdout", strerror(errno));
    return ok ? EBMC_OK : EBMC_E_WRITE;
}

static void score_summary(const float *e, int n, const char *out) {
    double m = 0, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) m += e[i], lo = fmin(lo, e[i]), hi = fmax(hi, e[i]);
    fprintf(stderr, "ebmc score: %d energies (mean %.6g, min %.6g, max %.6g) written to %s\n", n, m / n, lo, hi,
            out ? out : "stdout");
}

int ebmc_score_main(int argc, char **argv) {
    if (argc < 2 || argv[0][0] == '-' || argv[1][0] == '-') return usage_score();
    const char *out = NULL;
    int first = argc;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (strchr(argv[i], '=') && argv[i][0] != '-') { first = i; break; }
        else return usage_score();
    }
    char err[PATH_MAX + 1024] = "";
    ebmc_config_t *cfg = NULL;
    ebmc_run_t *run = NULL;
    ebmc_dataset_t *ds = NULL;
    eval_src src;
    float *x = NULL, *e = NULL;
    ebmc_status s = open_model(argv[0], argc - first, argv + first, &cfg, &run, err, sizeof err);
    if (!s) s = eval_open_data(argv[1], -1, &ds, &src, err, sizeof err);
    if (!s && src.n > INT_MAX) s = EBMC_E_INVALID, ebmc_set_err(err, sizeof err, "more than 2^31-1 examples");
    if (!s) s = model_input(run, &src, argv[1], &x, err, sizeof err);
    if (!s && !(e = malloc((size_t)src.n * sizeof(float)))) s = EBMC_E_NOMEM, ebmc_set_err(err, sizeof err, "out of memory");
    if (!s) s = ebmc_run_recipe(run)->energy(ebmc_run_state(run), x, (int)src.n, e, err, sizeof err);
    if (!s) s = write_scores(out, e, (int)src.n, err, sizeof err);
    if (!s) score_summary(e, (int)src.n, out);
    else fprintf(stderr, "ebmc score: %s\n", err);
    free(x), free(e);
    ebmc_data_free(ds);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return !s ? EBMC_EXIT_OK : s == EBMC_E_IO ? EBMC_EXIT_DATA : s == EBMC_E_INVALID ? EBMC_EXIT_CONFIG : EBMC_EXIT_ERROR;
}
