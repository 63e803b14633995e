/* grid_dump: the C half of the sample-grid oracle (tests/oracle/test_grid_torchvision.py).
 *
 *   grid_dump png OUT.png IN.f32 N C H W NROW PADDING PAD_VALUE NORMALIZE LO HI
 *       ebmc_save_grid_png of the (N, C, H, W) float32 array in IN.f32 (raw, native order);
 *       NORMALIZE is 0 or 1.
 *   grid_dump npy OUT.npy IN.f32 N C H W LO HI
 *       ebmc_save_npy_u8 of the same kind of array.
 *   grid_dump f32 OUT.npy IN.f32 [D0 D1 ...]
 *       ebmc_save_npy_f32 of the array with that shape (none: a scalar).
 *
 * Exit status: 0 ok, 1 failure (the error on stderr), 2 usage. A warning that comes back with
 * EBMC_OK (NaN values written as 0) is printed on stdout as "warning: ...". */
#include "ebmc/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr,
            "usage: grid_dump png OUT IN N C H W NROW PADDING PAD_VALUE NORMALIZE LO HI\n"
            "       grid_dump npy OUT IN N C H W LO HI\n"
            "       grid_dump f32 OUT IN [D0 D1 ...]\n");
    return 2;
}

static bool parse_i64(const char *s, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *v = x;
    return true;
}

static bool parse_int(const char *s, int *v) {
    int64_t x;
    if (!parse_i64(s, &x) || x < -2147483647 || x > 2147483647) return false;
    *v = (int)x;
    return true;
}

static bool parse_float(const char *s, float *v) {
    char *end;
    errno = 0;
    float x = strtof(s, &end);
    if (end == s || *end) return false;
    *v = x;
    return true;
}

/* Reads exactly count floats from path; NULL (message on stderr) otherwise. */
static float *read_floats(const char *path, int64_t count) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "grid_dump: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    float *x = malloc((size_t)(count > 0 ? count : 1) * sizeof *x);
    size_t got = x ? fread(x, sizeof *x, (size_t)count, f) : 0;
    int extra = fgetc(f);
    fclose(f);
    if (!x || got != (size_t)count || extra != EOF) {
        fprintf(stderr, "grid_dump: %s: expected exactly %lld float32 values\n", path,
                (long long)count);
        free(x);
        return NULL;
    }
    return x;
}

static int report(ebmc_status st, const char *err) {
    if (st != EBMC_OK) {
        fprintf(stderr, "grid_dump: %s (%s)\n", err, ebmc_status_str(st));
        return 1;
    }
    if (err[0]) printf("warning: %s\n", err);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) return usage();
    const char *mode = argv[1], *out = argv[2], *in = argv[3];
    char err[1024] = "";
    if (!strcmp(mode, "png") || !strcmp(mode, "npy")) {
        bool png = !strcmp(mode, "png");
        if (argc != (png ? 14 : 10)) return usage();
        int n, c, h, w;
        if (!parse_int(argv[4], &n) || !parse_int(argv[5], &c) || !parse_int(argv[6], &h) ||
            !parse_int(argv[7], &w) || n < 0 || c < 0 || h < 0 || w < 0)
            return usage();
        float *x = read_floats(in, (int64_t)n * c * h * w);
        if (!x) return 1;
        ebmc_status st;
        if (png) {
            ebmc_grid_opts o = ebmc_grid_opts_default(); /* scale 1: torchvision's layout */
            int norm;
            if (!parse_int(argv[8], &o.nrow) || !parse_int(argv[9], &o.padding) ||
                !parse_float(argv[10], &o.pad_value) || !parse_int(argv[11], &norm) ||
                !parse_float(argv[12], &o.lo) || !parse_float(argv[13], &o.hi)) {
                free(x);
                return usage();
            }
            o.normalize = norm != 0;
            st = ebmc_save_grid_png(out, x, n, c, h, w, &o, err, sizeof err);
        } else {
            float lo, hi;
            if (!parse_float(argv[8], &lo) || !parse_float(argv[9], &hi)) {
                free(x);
                return usage();
            }
            st = ebmc_save_npy_u8(out, x, n, c, h, w, lo, hi, err, sizeof err);
        }
        free(x);
        return report(st, err);
    }
    if (!strcmp(mode, "f32")) {
        int ndim = argc - 4;
        int64_t shape[16], numel = 1;
        if (ndim > 16) return usage();
        for (int i = 0; i < ndim; i++) {
            if (!parse_i64(argv[4 + i], &shape[i]) || shape[i] < 0) return usage();
            numel *= shape[i];
        }
        float *x = read_floats(in, numel);
        if (!x) return 1;
        ebmc_status st = ebmc_save_npy_f32(out, x, ndim, shape, err, sizeof err);
        free(x);
        return report(st, err);
    }
    return usage();
}
