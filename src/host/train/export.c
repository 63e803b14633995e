/* ebmc data: examples of the data set a config (or a run's config.ini) describes, written as the
 * .npy that ebmc sample writes, so that samples can be compared with data (e.g. held-out shapes:
 * run.seed=OTHER) by tools that read NumPy files. */
#include "train/shell.h"
#include "ebmc/cli.h"
#include "ebmc/image.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ebmc_data_usage(FILE *f) {
    fprintf(f,
            "usage: ebmc data CONFIG|RUN_DIR --out FILE.npy [options] [section.key=value ...] (any order)\n"
            "  --n N        number of examples (default: all from --first on)\n"
            "  --first I    index of the first example (default 0)\n"
            "writes examples I..I+N-1 of the data set of the config's data.* (and run.seed: shapes and\n"
            "toy2d are made from it) as uint8 NHWC .npy (images: the bytes of the data set) or float32\n"
            "(N, 2) (2-D points); with RUN_DIR, the run's config.ini. E.g. held-out shapes:\n"
            "  ebmc data configs/quickstart.ini run.seed=99 data.count=500 --out heldout.npy\n");
}

static int usage_data(void) {
    ebmc_data_usage(stderr);
    return EBMC_EXIT_USAGE;
}

int ebmc_data_main(int argc, char **argv) {
    if (argc < 1 || argv[0][0] == '-') return usage_data();
    const char *in = argv[0], *out = NULL;
    long long n = -1, first = 0;
    char **over = calloc((size_t)argc, sizeof *over); /* the section.key=value overrides, in order */
    int n_over = 0;
    if (!over) return EBMC_EXIT_ERROR;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--n") || !strcmp(argv[i], "--first")) && i + 1 < argc) {
            bool is_n = !strcmp(argv[i], "--n");
            double v;
            if (!ebmc_arg_number("data", argv[i], argv[i + 1], is_n ? 1 : 0, INT_MAX, true, &v)) {
                free(over);
                return EBMC_EXIT_USAGE;
            }
            *(is_n ? &n : &first) = (long long)v;
            i++;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] != '-' && strchr(argv[i], '=')) {
            over[n_over++] = argv[i];
        } else {
            fprintf(stderr, "ebmc data: unknown argument '%s'\n", argv[i]);
            free(over);
            return usage_data();
        }
    }
    if (!out) {
        fprintf(stderr, "ebmc data: --out FILE.npy is required\n");
        free(over);
        return usage_data();
    }
    char cfgpath[PATH_MAX + 32], err[PATH_MAX + 1024] = "";
    struct stat st;
    if (stat(in, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", in);
    else snprintf(cfgpath, sizeof cfgpath, "%s", in);
    const ebmc_recipe *recipe;
    ebmc_config_t *cfg;
    ebmc_status s = ebmc_recipe_load_config(cfgpath, n_over, over, &recipe, &cfg, err, sizeof err);
    free(over);
    if (s) {
        fprintf(stderr, "ebmc data: %s\n", err);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_CONFIG;
    }
    ebmc_dataset_t *ds = NULL;
    s = ebmc_run_open_data(cfg, &ds, err, sizeof err);
    if (s) {
        fprintf(stderr, "ebmc data: %s\n", err);
        ebmc_config_free(cfg);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR;
    }
    int N = ebmc_data_count(ds), c, h, w;
    ebmc_data_shape(ds, &c, &h, &w);
    if (n < 0) n = first < N ? N - first : 0;
    if (first + n > N || n < 1) {
        fprintf(stderr, "ebmc data: examples %lld..%lld asked, %s has %d (HINT: data.count for shapes and toy2d)\n",
                first, first + n - 1, ebmc_data_name(ds), N);
        ebmc_data_free(ds);
        ebmc_config_free(cfg);
        return EBMC_EXIT_USAGE;
    }
    size_t per = (size_t)c * h * w;
    float *buf = malloc((size_t)n * per * sizeof(float));
    if (!buf) {
        snprintf(err, sizeof err, "out of host memory for %lld examples", n);
        s = EBMC_E_NOMEM;
    } else if (ebmc_data_kind_of(ds) == EBMC_DATA_F32_POINTS) {
        memcpy(buf, ebmc_data_f32(ds) + (size_t)first * per, (size_t)n * per * sizeof(float));
        int64_t shape[2] = {n, c};
        s = ebmc_save_npy_f32(out, buf, 2, shape, err, sizeof err);
    } else {
        const uint8_t *u8 = ebmc_data_u8(ds) + (size_t)first * per;
        for (size_t k = 0; k < (size_t)n * per; k++) buf[k] = (float)u8[k] / 255.0f; /* exact round trip */
        s = ebmc_save_npy_u8(out, buf, (int)n, c, h, w, 0.0f, 1.0f, err, sizeof err);
    }
    if (!s)
        printf("ebmc data: examples %lld..%lld of %s (%dx%dx%d) written to %s\n", first, first + n - 1,
               ebmc_data_name(ds), c, h, w, out);
    else
        fprintf(stderr, "ebmc data: %s\n", err);
    free(buf);
    ebmc_data_free(ds);
    ebmc_config_free(cfg);
    return s ? (s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR) : EBMC_EXIT_OK;
}
