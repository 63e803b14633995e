/* libFuzzer target: `ebmc eval`'s reference loading (eval_cmd.c ref_open), in its order: the
 * file's SHA-256, then pytorch-fid statistics (.npz: ebmc_stats_load_npz, which checks that sigma
 * is a covariance) or a .npy data set (eval_open_data: uint8 images or float32 points), and for
 * points their statistics; then the Frechet distance of the reference with itself, which must be
 * finite and, sigma being a covariance, not below -1e-6 (relative). Byte 0 chooses: bit 0 clear,
 * the rest is an .npz; set, a .npy. Dimensions over 64 are not evaluated (time per input). */
#include "fuzz_util.h"

#include "ebmc/metrics.h"
#include "ebmc/npy.h"
#include "eval/eval_internal.h"

#include <math.h>

static void fid_self(const double *mu, const double *sigma, int d) {
    char err[512] = "";
    double fid = NAN, scale = 1;
    for (int i = 0; i < d; i++) scale = fmax(scale, fabs(sigma[(size_t)i * d + i]));
    ebmc_status s = ebmc_frechet_distance(mu, sigma, mu, sigma, d, &fid, err, sizeof err);
    fz_report("fid", s, err);
    if (s == EBMC_OK && (!isfinite(fid) || fid < -1e-6 * scale * d)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const bool npy = data[0] & 1;
    char err[1024] = "", path[512], hex[65];
    fz_write(npy ? "ref.npy" : "ref.npz", data + 1, size - 1, path, sizeof path);
    if (ebmc_sha256_file(path, hex, err, sizeof err)) abort(); /* a regular file: always hashed */
    if (!npy) {
        double *mu = NULL, *sigma = NULL;
        int d = 0;
        ebmc_status s = ebmc_stats_load_npz(path, &mu, &sigma, &d, err, sizeof err);
        fz_report("npz", s, err);
        if (s == EBMC_OK && d <= 64) fid_self(mu, sigma, d);
        else if (s != EBMC_OK && (mu || sigma || !err[0])) abort();
        free(mu), free(sigma);
        return 0;
    }
    ebmc_dataset_t *ds = NULL;
    eval_src src;
    ebmc_status s = eval_open_data(path, -1, &ds, &src, err, sizeof err);
    fz_report("npy", s, err);
    if (s != EBMC_OK) {
        if (ds || !err[0]) abort();
        return 0;
    }
    if (eval_src_points(&src) && src.c <= 64) {
        ebmc_stats_t *st = ebmc_stats_create(src.c);
        if (!st) abort();
        ebmc_stats_add(st, src.f, src.n);
        ebmc_stats_finish(st);
        fid_self(st->mu, st->sigma, src.c);
        ebmc_stats_free(st);
    }
    ebmc_data_free(ds);
    return 0;
}
