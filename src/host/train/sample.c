/* ebmc sample: N samples of a trained model at its recipe's test-time settings (the recipe's
 * sample(): e.g. Dual-MCMC's z ~ N(0,I) -> G -> 70 Langevin steps). Writes each of the recipe's
 * sample arrays (e.g. generator, revised) as a uint8 NHWC .npy and a PNG grid of the first 100
 * for images, or as a float32 (N, D) .npy for points. */
#include "train/shell.h"
#include "ebmc/cli.h"
#include "ebmc/image.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ebmc_sample_usage(FILE *f) {
    fprintf(f,
            "usage: ebmc sample RUN_DIR|CHECKPOINT_DIR [options] [section.key=value ...]\n"
            "  --n N            number of samples (default: sample.n of the run's config)\n"
            "  --out DIR        where to write (default: RUN_DIR/samples/final-<iteration>)\n"
            "  --steps K        test-time Langevin steps (default: the recipe's sample.steps)\n"
            "  --step-size S    test-time step size (default: the recipe's sample.step_size)\n"
            "  --noise T        test-time noise (default: the recipe's sample.noise)\n"
            "  --seed S         noise seed (default: run.seed + 1)\n"
            "writes, per array of the recipe (Dual-MCMC: generator, revised), NAME.npy (uint8 NHWC; 2-D\n"
            "points: float32 (N, 2)) and, for images, NAME.png (the first 100)\n");
}

static int usage_sample(void) {
    ebmc_sample_usage(stderr);
    return EBMC_EXIT_USAGE;
}

typedef struct {
    const char *in, *out;
    double n, steps, step_size, noise, seed;
    int first_override;
} sample_args;

static int parse_sample_args(int argc, char **argv, sample_args *a) {
    *a = (sample_args){argv[0], NULL, -1, -1, -1, -1, -1, argc};
    for (int i = 1; i < argc; i++) {
        double *dst = !strcmp(argv[i], "--n") ? &a->n : !strcmp(argv[i], "--steps") ? &a->steps
                    : !strcmp(argv[i], "--step-size") ? &a->step_size : !strcmp(argv[i], "--noise") ? &a->noise
                    : !strcmp(argv[i], "--seed") ? &a->seed : NULL;
        if (dst) {
            const ebmc_sample_range *r = ebmc_sample_range_of(argv[i]);
            if (!ebmc_arg_number("sample", argv[i], i + 1 < argc ? argv[i + 1] : NULL, r->lo, r->hi, r->integer, dst))
                return EBMC_EXIT_USAGE;
            i++;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            a->out = argv[++i];
        } else if (strchr(argv[i], '=')) {
            a->first_override = i;
            break;
        } else {
            fprintf(stderr, "ebmc sample: unknown argument '%s'\n", argv[i]);
            return usage_sample();
        }
    }
    return 0;
}

/* a run directory (its newest checkpoint) or a checkpoint directory (run = ../..) */
static int locate(const char *in, char *run_dir, char *ckpt, char *cfgpath) {
    struct stat st;
    snprintf(cfgpath, PATH_MAX + 32, "%s/config.ini", in);
    if (stat(cfgpath, &st) == 0) {
        snprintf(run_dir, PATH_MAX, "%s", in);
        if (ebmc_latest_checkpoint(run_dir, ckpt, PATH_MAX) < 0) {
            fprintf(stderr, "ebmc sample: %s has no checkpoint\n", run_dir);
            return EBMC_EXIT_DATA;
        }
    } else {
        snprintf(ckpt, PATH_MAX, "%s", in);
        snprintf(run_dir, PATH_MAX, "%s/../..", in);
        snprintf(cfgpath, PATH_MAX + 32, "%s/config.ini", run_dir);
    }
    return 0;
}

/* The recipe's arrays as .npy (+ .png for images) in outdir */
static ebmc_status write_outputs(const ebmc_recipe *rc, float **arr, int N, int c, int h, int w, int nrow, int scale,
                                 const char *outdir, char *files, size_t flen, char *err, size_t errlen) {
    char path[PATH_MAX + 128];
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.nrow = nrow;
    o.scale = scale;
    size_t len = 0;
    files[0] = 0;
    for (int k = 0; rc->sample_names[k]; k++) {
        const char *name = rc->sample_names[k];
        snprintf(path, sizeof path, "%s/%s.npy", outdir, name);
        if (h == 1 && w == 1) { /* points: float32 (N, C) */
            int64_t shape[2] = {N, c};
            EBMC_TRY(ebmc_save_npy_f32(path, arr[k], 2, shape, err, errlen));
            len += (size_t)snprintf(files + len, flen - len, "%s%s.npy", len ? ", " : "", name);
            continue;
        }
        EBMC_TRY(ebmc_save_npy_u8(path, arr[k], N, c, h, w, -1.0f, 1.0f, err, errlen));
        snprintf(path, sizeof path, "%s/%s.png", outdir, name);
        EBMC_TRY(ebmc_save_grid_png(path, arr[k], N < 100 ? N : 100, c, h, w, &o, err, errlen));
        len += (size_t)snprintf(files + len, flen - len, "%s%s.npy, %s.png", len ? ", " : "", name, name);
    }
    return EBMC_OK;
}

/* Samples with the loaded run into host arrays, checks them and writes them. */
static int sample_and_write(ebmc_run_t *run, const sample_args *a, const char *ckpt, int64_t it, const char *outdir) {
    const ebmc_recipe *rc = ebmc_run_recipe(run);
    const ebmc_config_t *cfg = ebmc_run_config(run);
    char err[PATH_MAX + 1024] = "", desc[256] = "", files[1024];
    int c, h, w, n_out = 0;
    rc->sample_shape(ebmc_run_state(run), &c, &h, &w);
    ebmc_sample_opts o = {a->n >= 0 ? (int)a->n : (int)ebmc_config_int(cfg, "sample", "n"), a->steps, a->step_size,
                          a->noise, a->seed >= 0 ? (uint64_t)a->seed : (uint64_t)ebmc_config_int(cfg, "run", "seed") + 1};
    size_t per = (size_t)o.n * c * h * w;
    float *arr[8] = {0};
    ebmc_status s = EBMC_OK;
    for (; rc->sample_names[n_out]; n_out++) {
        EBMC_ASSERT(n_out < 8); /* a recipe writes at most 8 sample arrays */
        if (!(arr[n_out] = malloc((per ? per : 1) * sizeof(float)))) {
            snprintf(err, sizeof err, "out of host memory for %d samples", o.n);
            s = EBMC_E_NOMEM;
        }
    }
    if (!s) s = rc->sample(ebmc_run_state(run), &o, arr, desc, sizeof desc, err, sizeof err);
    for (int k = 0; !s && k < n_out; k++)
        for (size_t i = 0; i < per; i++)
            if (!isfinite(arr[k][i])) {
                snprintf(err, sizeof err, "%s: sample array '%s' is not finite (NaN or Inf weights in the checkpoint?)",
                         ckpt, rc->sample_names[k]);
                s = EBMC_E_INVALID;
                break;
            }
    if (!s) s = write_outputs(rc, arr, o.n, c, h, w, (int)ebmc_config_int(cfg, "log", "grid_nrow"),
                              (int)ebmc_config_int(cfg, "log", "grid_scale"), outdir, files,
                              sizeof files, err, sizeof err);
    if (!s)
        printf("ebmc sample: %d samples of %s at iteration %" PRId64 " (%s) written to %s: %s\n", o.n, ckpt, it, desc,
               outdir, files);
    else
        fprintf(stderr, "ebmc sample: %s\n", err);
    for (int k = 0; k < n_out; k++) free(arr[k]);
    return s ? (s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR) : EBMC_EXIT_OK;
}

int ebmc_sample_main(int argc, char **argv) {
    if (argc < 1) return usage_sample();
    sample_args a;
    int rc = parse_sample_args(argc, argv, &a);
    if (rc) return rc;
    char run_dir[PATH_MAX], ckpt[PATH_MAX], cfgpath[PATH_MAX + 32], err[1024] = "";
    if ((rc = locate(a.in, run_dir, ckpt, cfgpath))) return rc;
    char **over = argv + a.first_override;
    int n_over = argc - a.first_override;
    const ebmc_recipe *recipe;
    ebmc_config_t *cfg;
    ebmc_status s = ebmc_recipe_load_config(cfgpath, n_over, over, &recipe, &cfg, err, sizeof err);
    if (s) {
        fprintf(stderr, "ebmc sample: %s (HINT: pass a run directory or RUN/checkpoints/iter_N)\n", err);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_CONFIG;
    }
    ebmc_run_t *run = NULL;
    int64_t it = 0;
    s = ebmc_run_open(recipe, cfg, false, &run, err, sizeof err);
    if (!s) s = ebmc_run_load(run, ckpt, &it, err, sizeof err);
    if (s) {
        fprintf(stderr, "ebmc sample: %s\n", err);
        ebmc_run_free(run);
        ebmc_config_free(cfg);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR;
    }
    char outdir[PATH_MAX + 64];
    if (a.out) snprintf(outdir, sizeof outdir, "%s", a.out);
    else snprintf(outdir, sizeof outdir, "%s/samples/final-%08" PRId64, run_dir, it);
    if (ebmc_mkdir_p(outdir)) {
        fprintf(stderr, "ebmc sample: %s: cannot create: %s\n", outdir, strerror(errno));
        rc = EBMC_EXIT_ERROR; /* an output that cannot be written */
    } else {
        rc = sample_and_write(run, &a, ckpt, it, outdir);
    }
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return rc;
}
