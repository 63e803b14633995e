/* ebmc sample: N samples of a trained Dual-MCMC model with the test-time settings
 * (specs/teaching.md 1(g): z ~ N(0,I) -> G -> 70 Langevin steps of size 0.4, noise 1e-3, in
 * batches of the training batch size because BatchNorm stays in batch-statistics mode). Writes
 * generator-only and EBM-revised samples as PNG grids and as uint8 NHWC .npy arrays. */
#include "ebmc/image.h"
#include "ebmc/mcmc.h"
#include "train/train_internal.h"
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage_sample(void) {
    fprintf(stderr,
            "usage: ebmc sample RUN_DIR|CHECKPOINT_DIR [options] [section.key=value ...]\n"
            "  --n N            number of samples (default: sample.n of the run's config)\n"
            "  --out DIR        where to write (default: RUN_DIR/samples/final-<iteration>)\n"
            "  --steps K        test-time Langevin steps (default sample.steps, 70)\n"
            "  --step-size S    test-time step size (default sample.step_size, 0.4)\n"
            "  --noise T        test-time noise (default sample.noise, 0.001)\n"
            "  --seed S         noise seed (default: run.seed + 1)\n"
            "writes generator.png, revised.png (first 100), generator.npy, revised.npy (uint8 NHWC)\n");
    return EBMC_EXIT_USAGE;
}

static bool parse_num(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return !errno && end != s && !*end;
}

int ebmc_sample_main(int argc, char **argv) {
    if (argc < 1) return usage_sample();
    const char *in = argv[0], *out = NULL;
    double n_arg = -1, steps = -1, ssz = -1, noise = -1, seed_arg = -1;
    int first_override = argc;
    for (int i = 1; i < argc; i++) {
        double *dst = !strcmp(argv[i], "--n") ? &n_arg : !strcmp(argv[i], "--steps") ? &steps
                    : !strcmp(argv[i], "--step-size") ? &ssz : !strcmp(argv[i], "--noise") ? &noise
                    : !strcmp(argv[i], "--seed") ? &seed_arg : NULL;
        if (dst) {
            if (i + 1 >= argc || !parse_num(argv[i + 1], dst) || *dst < 0) {
                fprintf(stderr, "ebmc sample: %s needs a non-negative number\n", argv[i]);
                return EBMC_EXIT_USAGE;
            }
            i++;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (strchr(argv[i], '=')) {
            first_override = i;
            break;
        } else {
            fprintf(stderr, "ebmc sample: unknown argument '%s'\n", argv[i]);
            return usage_sample();
        }
    }
    /* a run directory (its newest checkpoint) or a checkpoint directory (run = ../..) */
    char run_dir[PATH_MAX], ckpt[PATH_MAX], cfgpath[PATH_MAX + 32], err[1024] = "";
    snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", in);
    struct stat st;
    if (stat(cfgpath, &st) == 0) {
        snprintf(run_dir, sizeof run_dir, "%s", in);
        if (dm_latest_checkpoint(run_dir, ckpt, sizeof ckpt) < 0) {
            fprintf(stderr, "ebmc sample: %s has no checkpoint\n", run_dir);
            return EBMC_EXIT_DATA;
        }
    } else {
        snprintf(ckpt, sizeof ckpt, "%s", in);
        snprintf(run_dir, sizeof run_dir, "%s/../..", in);
        snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", run_dir);
    }
    int nk;
    const ebmc_cfg_key *schema = ebmc_dualmcmc_schema(&nk);
    ebmc_config_t *cfg = ebmc_config_create(schema, nk);
    ebmc_status s = ebmc_config_load(cfg, cfgpath, err, sizeof err);
    for (int i = first_override; !s && i < argc; i++) s = ebmc_config_set_arg(cfg, argv[i], err, sizeof err);
    if (s) {
        fprintf(stderr, "ebmc sample: %s (HINT: pass a run directory or RUN/checkpoints/iter_N)\n", err);
        ebmc_config_free(cfg);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_CONFIG;
    }
    dm_t t;
    s = dm_setup(&t, cfg, false, err, sizeof err);
    int64_t it = 0, lep, lpos;
    if (!s) s = dm_load(&t, ckpt, &it, &lep, &lpos, err, sizeof err);
    if (s) {
        fprintf(stderr, "ebmc sample: %s\n", err);
        dm_free(&t);
        ebmc_config_free(cfg);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR;
    }
    int N = n_arg >= 0 ? (int)n_arg : (int)ebmc_config_int(cfg, "sample", "n");
    ebmc_langevin_params p = ebmc_langevin_dualmcmc_x(
        ssz >= 0 ? (float)ssz : (float)ebmc_config_float(cfg, "sample", "step_size"),
        noise >= 0 ? (float)noise : (float)ebmc_config_float(cfg, "sample", "noise"),
        steps >= 0 ? (int)steps : (int)ebmc_config_int(cfg, "sample", "steps"));
    uint64_t seed = seed_arg >= 0 ? (uint64_t)seed_arg : t.seed + 1;
    char outdir[PATH_MAX + 64];
    if (out) snprintf(outdir, sizeof outdir, "%s", out);
    else snprintf(outdir, sizeof outdir, "%s/samples/final-%08" PRId64, run_dir, it);
    char cmd_dir[PATH_MAX + 64];
    snprintf(cmd_dir, sizeof cmd_dir, "%s", outdir);
    for (char *q = cmd_dir + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(cmd_dir, 0755);
            *q = '/';
        }
    if (mkdir(cmd_dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "ebmc sample: %s: cannot create: %s\n", outdir, strerror(errno));
        dm_free(&t);
        ebmc_config_free(cfg);
        return EBMC_EXIT_DATA;
    }
    int B = t.B;
    size_t img = t.img;
    float *gen = malloc((size_t)N * img * sizeof(float)), *rev = malloc((size_t)N * img * sizeof(float));
    if (!gen || !rev) {
        fprintf(stderr, "ebmc sample: out of host memory for %d samples\n", N);
        free(gen);
        free(rev);
        dm_free(&t);
        ebmc_config_free(cfg);
        return EBMC_EXIT_ERROR;
    }
    ebmc_chain_set_params(t.cx, &p);
    ebmc_chain_set_seed(t.cx, seed);
    s = ebmc_chain_set_step(t.cx, 0);
    for (int done = 0; !s && done < N; done += B) {
        int take = N - done < B ? N - done : B;
        /* always a full batch: G's BatchNorm uses the statistics of B samples, as in training */
        ebmc_rng_key kz = {seed, 9, NULL, (uint32_t)(done / B)};
        s = ebmc_init_normal(t.ctx, t.z, B, (size_t)t.nz, 1.0f, kz);
        if (!s) s = ebmc_net_forward(t.G, t.tG, B, t.z);
        float *xs = ebmc_chain_state(t.cx);
        ebmc_axpby_desc cp = {(size_t)B * img, 1.0f, 0.0f};
        if (!s) s = ebmc_axpby(t.ctx, &cp, ebmc_tape_output(t.tG, 0), xs);
        if (!s) s = ebmc_copy(t.ctx, gen + (size_t)done * img, xs, (size_t)take * img * sizeof(float), EBMC_COPY_D2H);
        if (!s && p.steps > 0) s = ebmc_chain_run(t.cx, B);
        if (!s) s = ebmc_copy(t.ctx, rev + (size_t)done * img, xs, (size_t)take * img * sizeof(float), EBMC_COPY_D2H);
    }
    if (s) snprintf(err, sizeof err, "sampling: %s", ebmc_ctx_error(t.ctx));
    char path[PATH_MAX + 128];
    const char *names[2] = {"generator", "revised"};
    float *arr[2] = {gen, rev};
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.nrow = (int)ebmc_config_int(cfg, "log", "grid_nrow");
    for (int k = 0; k < 2 && !s; k++) {
        snprintf(path, sizeof path, "%s/%s.npy", outdir, names[k]);
        if (t.mc.img_size == 1) { /* 2-D points: float32 (N, C) */
            int64_t shape[2] = {N, t.mc.img_c};
            s = ebmc_save_npy_f32(path, arr[k], 2, shape, err, sizeof err);
        } else {
            s = ebmc_save_npy_u8(path, arr[k], N, t.mc.img_c, t.mc.img_size, t.mc.img_size, -1.0f, 1.0f, err, sizeof err);
        }
        if (!s && t.mc.img_size > 1) {
            snprintf(path, sizeof path, "%s/%s.png", outdir, names[k]);
            s = ebmc_save_grid_png(path, arr[k], N < 100 ? N : 100, t.mc.img_c, t.mc.img_size, t.mc.img_size, &o, err, sizeof err);
        }
    }
    if (!s)
        printf("ebmc sample: %d samples of %s at iteration %" PRId64 " (%d Langevin steps of size %g, noise %g) "
               "written to %s/{generator,revised}.{png,npy}\n", N, ckpt, it, p.steps, (double)sqrtf(2 * p.a),
               (double)p.c, outdir);
    else
        fprintf(stderr, "ebmc sample: %s\n", err);
    free(gen);
    free(rev);
    dm_free(&t);
    ebmc_config_free(cfg);
    return s ? (s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR) : EBMC_EXIT_OK;
}
