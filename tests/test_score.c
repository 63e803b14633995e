/* `ebmc score`: a 2-iteration Dual-MCMC toy run scores 250 points (three batches of its 100):
 * the .npy and the JSON lines agree, and every energy equals E(x) computed directly on the
 * checkpoint's E net in one pass of all 250 (white box, through dualmcmc.h); examples of the wrong
 * shape exit 65; scoring leaves the model's spectral-norm vectors as they were. */
#include "ebmc/image.h"
#include "ebmc/npy.h"
#include "ebmc/train.h"
#include "testutil.h"
#include "recipes/dualmcmc.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char TMP[256];

static int run_score(const char *const *args, int n) {
    char *argv[16];
    for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
    return ebmc_score_main(n, argv);
}

/* E(x) of all n points in one forward pass of the loaded checkpoint's E */
static void direct_energies(const char *run_dir, const float *x, int n, float *e) {
    char cfgpath[600], ckpt[600], err[1024];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", run_dir);
    const ebmc_recipe *rc;
    ebmc_config_t *cfg;
    ebmc_run_t *run;
    int64_t it;
    assert_int_equal(ebmc_recipe_load_config(cfgpath, 0, NULL, &rc, &cfg, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_run_open(rc, cfg, false, &run, err, sizeof err), EBMC_OK);
    assert_true(ebmc_latest_checkpoint(run_dir, ckpt, sizeof ckpt) == 2);
    assert_int_equal(ebmc_run_load(run, ckpt, &it, err, sizeof err), EBMC_OK);
    dm_t *t = ebmc_run_state(run);
    ebmc_tape_t *tape;
    assert_int_equal(ebmc_tape_create(t->E, n, false, &tape), EBMC_OK);
    ebmc_net_set_sn_iters(t->E, 0);
    assert_int_equal(ebmc_net_forward(t->E, tape, n, x), EBMC_OK); /* CPU backend: host pointers */
    memcpy(e, ebmc_tape_output(tape, 0), (size_t)n * sizeof(float));
    ebmc_tape_free(tape);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
}

static void test_score_points(void **state) {
    assert_int_equal(tu_tmpdir_create(TMP, sizeof TMP, "test_score"), 0);
    char cfg[600], od[600], err[512];
    snprintf(cfg, sizeof cfg, "%s/configs/toy2d_dual_mcmc.ini", EBMC_SOURCE_DIR);
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    const char *tr[] = {cfg, od, "run.name=toy", "train.iterations=2", "log.ckpt_every=2", "run.backend=cpu"};
    assert_int_equal(tu_train(tr, 6), EBMC_EXIT_OK);
    enum { N = 250 };
    float x[N * 2], ref[N];
    tu_rng rng;
    tu_rng_seed(&rng, 4);
    tu_fill_normal(&rng, x, N * 2, 1.5f);
    int64_t shape[2] = {N, 2};
    const char *pts = tu_path(TMP, "pts.npy"), *run = tu_path(TMP, "toy");
    assert_int_equal(ebmc_save_npy_f32(pts, x, 2, shape, err, sizeof err), EBMC_OK);
    const char *a[] = {run, pts, "--out", tu_path(TMP, "e.npy")}, *b[] = {run, pts, "--out", tu_path(TMP, "e.jsonl")};
    assert_int_equal(run_score(a, 4), EBMC_EXIT_OK);
    assert_int_equal(run_score(b, 4), EBMC_EXIT_OK);
    ebmc_npy_info in;
    float *e;
    assert_int_equal(ebmc_npy_read(tu_path(TMP, "e.npy"), &in, (void **)&e, err, sizeof err), EBMC_OK);
    assert_true(in.ndim == 1 && in.shape[0] == N && in.dtype == EBMC_NPY_F32);
    direct_energies(run, x, N, ref);
    /* the same products for one row whatever the batch; allow the GEMM's blocking to reorder a
     * 64-term dot product: 64 u |terms| with |terms| <~ 10 */
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs((double)e[i] - ref[i]));
    printf("score vs one direct pass of E: worst |diff| %.3g over %d points (tolerance %.3g)\n", worst, N,
           64 * 10 * 0x1p-24);
    assert_true(worst <= 64 * 10 * 0x1p-24);
    char *txt = tu_read_file(tu_path(TMP, "e.jsonl"), NULL), *p = txt;
    for (int i = 0; i < N; i++) {
        int idx;
        double v;
        assert_int_equal(sscanf(p, "{\"index\":%d,\"energy\":%lf}", &idx, &v), 2);
        assert_int_equal(idx, i);
        assert_true(fabs(v - e[i]) <= 1e-8 * fmax(1, fabs(e[i]))); /* 9 significant digits */
        p = strchr(p, '\n') + 1;
    }
    free(txt), free(e);
    float img[2 * 3 * 4 * 4] = {0}; /* images for a 2-D model: 65 */
    assert_int_equal(ebmc_save_npy_u8(pts, img, 2, 3, 4, 4, 0, 1, err, sizeof err), EBMC_OK);
    assert_int_equal(run_score(a, 4), EBMC_EXIT_DATA);
    const char *c[] = {run, tu_path(TMP, "missing.npy")};
    assert_int_equal(run_score(c, 2), EBMC_EXIT_DATA);
    tu_tmpdir_remove(TMP);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_score_points)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
