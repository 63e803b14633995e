/* `ebmc score`, `ebmc eval` and data.dataset = npy for every recipe (all have an energy): for each, a
 * 2-iteration run by `ebmc train` on a tiny .npy (float32 points for the 2-D recipes, uint8
 * images for the image EBMs), then `ebmc score` on 37 inputs (three batches or more of the run's)
 * against an independent computation:
 *   nets     the E network built afresh from its architecture (ebmc_model_build), the
 *            checkpoint's <ckpt>/E.safetensors loaded into it (nn API), one forward pass of all
 *            37 inputs, times the recipe's sign (-1 where the net outputs the score f), plus the
 *            cooperative recipes' reference term |x|^2 / (2 sigma_ref^2) in double; the
 *            persistent image model sees (x + 1) / 2 (its [0, 1] box)
 *   gmm      the jarzynski GMM's analytic U(x) = -log sum_k exp(-|x - a_k|^2/2 - z_k) in double
 *            from state.safetensors' gmm.means and gmm.z
 * and, for the 2-D runs, `ebmc eval RUN --n 32` (FID and KID of the coordinates against the
 * run's own .npy data) ends with exit 0 and finite numbers. */
#include "ebmc/image.h"
#include "ebmc/models.h"
#include "ebmc/checkpoint.h"
#include "ebmc/npy.h"
#include "ebmc/recipe.h"
#include "ebmc/safetensors.h"
#include "ebmc/train.h"
#include "testutil.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NS = 37, MAXO = 24 };
static char TMP[256];
static char PTS[300], IMG8[300], IMG28[300], IMG32[300]; /* training data (.npy) */

typedef enum { REF_NET = 0, REF_GMM } ref_kind;

typedef struct {
    const char *name;       /* run.name */
    const char *recipe;
    const char *config;     /* configs/<file>, or NULL: [run] recipe = <recipe> only */
    const char *data;       /* the training .npy (one of the globals) */
    const char *over[MAXO]; /* overrides, NULL-terminated */
    ref_kind ref;
    const char *arch;       /* the E net for REF_NET: arch and the widths the overrides set */
    int hidden, ndf, img_size, img_c;
    float sign;             /* energy = sign * net output */
    double sigma_ref;       /* > 0: + |x|^2 / (2 sigma_ref^2) */
    bool unit_box;          /* the net sees (x + 1) / 2 */
    bool points;            /* 2-D: also `ebmc eval` */
} score_case;

static const score_case CASES[] = {
    {"dualmcmc", "dualmcmc", "toy2d_dual_mcmc.ini", PTS,
     {"model.hidden=16", "langevin_x.steps=3", "langevin_z.steps=2", "sample.steps=3", NULL}, REF_NET, "toy2d", 16, 0, 0,
     0, 1.0f, 0, false, true},
    {"shortrun", "shortrun", "toy2d_shortrun.ini", PTS,
     {"model.hidden=16", "langevin.steps=3", "sample.steps=3", NULL}, REF_NET, "toy2d", 16, 0, 0, 0, -1.0f, 0, false, true},
    {"persistent", "persistent", "toy2d_persistent.ini", PTS,
     {"model.hidden=16", "buffer.size=64", "langevin.steps=3", "sample.steps=3", NULL}, REF_NET, "toy2d", 16, 0, 0, 0,
     1.0f, 0, false, true},
    {"persistent_img", "persistent", NULL, IMG8,
     {"model.arch=igebm", "model.ndf=4", "model.img_size=8", "train.batch_size=8", "buffer.size=32",
      "langevin.steps=2", "sample.steps=2", NULL}, REF_NET, "igebm", 0, 4, 8, 3, 1.0f, 0, true, false},
    {"coopvaebm", "coopvaebm", "toy2d_coopvaebm.ini", PTS,
     {"model.hidden=16", "train.chains=24", "langevin.steps=3", "sample.steps=3", NULL}, REF_NET, "toy2d", 16, 0, 0, 0,
     -1.0f, 3.0, false, true},
    {"coopnets", "coopnets", "toy2d_coopnets.ini", PTS,
     {"model.hidden=16", "train.chains=24", "langevin.steps=3", "sample.steps=3", NULL}, REF_NET, "toy2d", 16, 0, 0, 0,
     -1.0f, 3.0, false, true},
    {"jarzynski_gmm", "jarzynski", NULL, PTS,
     {"model.arch=gmm", "model.dim=2", "model.components=3", "jarzynski.walkers=32", "train.lr_means=0.05", NULL},
     REF_GMM, NULL, 0, 0, 0, 0, 1.0f, 0, false, true},
    {"jarzynski_mnist", "jarzynski", NULL, IMG28,
     {"model.arch=mnist", "model.width=2", "jarzynski.walkers=8", "train.batch_size=8", "jarzynski.init_steps=1",
      "jarzynski.step_size=1e-3", NULL}, REF_NET, "mnist", 0, 2, 0, 0, 1.0f, 0, false, false},
    {"jarzynski_sr", "jarzynski", NULL, IMG32,
     {"model.arch=shortrun", "model.width=2", "jarzynski.walkers=8", "train.batch_size=8", "jarzynski.init_steps=1",
      "jarzynski.step_size=1e-3", NULL}, REF_NET, "shortrun", 0, 2, 0, 0, -1.0f, 0, false, false},
    {"particles", "particles", "toy2d_particles.ini", PTS,
     {"model.hidden=16", "particles.count=32", "particles.init_steps=3", "particles.steps=2", NULL}, REF_NET, "pd_mlp",
     16, 0, 0, 0, 1.0f, 0, false, true},
};

static int run_main(int (*fn)(int, char **), const char *const *args, int n) {
    char *argv[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
    return fn(n, argv);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* n random uint8 images (NCHW values q, written NHWC as the loader reads them) */
static void write_images(const char *path, int n, int c, int s, unsigned seed) {
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    float *x = tu_malloc((size_t)n * c * s * s);
    for (size_t i = 0; i < (size_t)n * c * s * s; i++) x[i] = (float)(tu_next(&rng) % 256);
    char err[256];
    assert_int_equal(ebmc_save_npy_u8(path, x, n, c, s, s, 0.0f, 255.0f, err, sizeof err), EBMC_OK);
    free(x);
}

static void write_points(const char *path, int n, unsigned seed) {
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    float *x = tu_malloc((size_t)n * 2);
    tu_fill_normal(&rng, x, (size_t)n * 2, 1.5f);
    int64_t shape[2] = {n, 2};
    char err[256];
    assert_int_equal(ebmc_save_npy_f32(path, x, 2, shape, err, sizeof err), EBMC_OK);
    free(x);
}

/* the scoring inputs as the model takes them (NCHW floats; images q / 127.5 - 1) from a .npy */
static float *model_inputs(const char *path, int *elems) {
    ebmc_npy_info in;
    void *raw;
    char err[512];
    assert_int_equal(ebmc_npy_read(path, &in, &raw, err, sizeof err), EBMC_OK);
    assert_int_equal((int)in.shape[0], NS);
    if (in.dtype == EBMC_NPY_F32) {
        *elems = (int)in.shape[1];
        return raw;
    }
    int h = (int)in.shape[1], w = (int)in.shape[2], c = (int)in.shape[3];
    *elems = c * h * w;
    float *x = tu_malloc((size_t)NS * *elems);
    const uint8_t *q = raw;
    for (int i = 0; i < NS; i++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int k = 0; k < c; k++)
                    x[(size_t)i * *elems + ((size_t)k * h + y) * w + xx] =
                        (float)q[(((size_t)i * h + y) * w + xx) * c + k] / 127.5f - 1.0f;
    free(raw);
    return x;
}

/* the checkpoint's E net, built from its architecture and loaded; e = sign * E(x) (+ the
 * reference term); *tol: the float32 bound of two evaluations of the net (below) */
static void net_reference(const score_case *k, const char *ckpt, const float *x, int elems, double *e, double *tol) {
    ebmc_model_cfg mc;
    assert_true(ebmc_model_defaults(k->arch, &mc));
    if (k->hidden) mc.hidden = k->hidden;
    if (k->ndf) mc.ndf = k->ndf;
    if (k->img_size) mc.img_size = k->img_size;
    if (k->img_c) mc.img_c = k->img_c;
    char err[512];
    ebmc_net_t *net = ebmc_model_build(&mc, EBMC_NET_E, err, sizeof err);
    assert_non_null(net);
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    assert_int_equal(ebmc_net_finalize(net, ctx, false, 1), EBMC_OK);
    const char *path = tu_path(ckpt, "E.safetensors");
    if (ebmc_net_load(net, path, err, sizeof err)) fail_msg("%s", err);
    ebmc_net_set_sn_iters(net, 0); /* W / sigma of the stored u, v */
    float *in = tu_malloc((size_t)NS * elems);
    for (size_t i = 0; i < (size_t)NS * elems; i++) in[i] = k->unit_box ? 0.5f * x[i] + 0.5f : x[i];
    ebmc_tape_t *tape;
    assert_int_equal(ebmc_tape_create(net, NS, false, &tape), EBMC_OK);
    assert_int_equal(ebmc_net_forward(net, tape, NS, in), EBMC_OK); /* CPU backend: host memory */
    const float *out = ebmc_tape_output(tape, 0);
    double big = 1;
    for (int i = 0; i < NS; i++) {
        double q = 0;
        for (int j = 0; j < elems; j++) q += (double)x[(size_t)i * elems + j] * x[(size_t)i * elems + j];
        e[i] = k->sign * (double)out[i] + (k->sigma_ref > 0 ? q / (2 * k->sigma_ref * k->sigma_ref) : 0);
        big = fmax(big, fabs(e[i]));
    }
    /* Two float32 evaluations of the same net on the same input differ only in the order of
     * accumulation (blocking that depends on the batch): a dot product of length m is within
     * m u sum|terms| of exact, and the errors of successive layers add (activations here are
     * 1-Lipschitz). The lengths along a path: each weight's fan-in (count / rows), plus one pixel
     * sum (global pooling) of H*W terms; sum|terms| taken as 4 max(1, |E|) (some cancellation).
     * Two evaluations: twice that; the host reference term adds one float rounding. */
    double len = (double)mc.img_size * mc.img_size;
    for (int t = 0; t < ebmc_net_tensor_count(net); t++) {
        const ebmc_net_tensor *w = ebmc_net_tensor_at(net, t);
        if (w->trainable && w->ndim >= 2) len += (double)w->count / (double)w->shape[0];
    }
    *tol = 2.0 * len * 0x1p-24 * 4 * big + 0x1p-24 * big;
    ebmc_tape_free(tape);
    free(in);
    ebmc_net_free(net);
    ebmc_ctx_free(ctx);
}

/* U(x) = -log sum_k exp(-|x - a_k|^2 / 2 - z_k) in double from the checkpoint's parameters */
static void gmm_reference(const char *ckpt, const float *x, int d, double *e, double *tol) {
    ebmc_st_file *f;
    char err[512];
    if (ebmc_st_open(tu_path(ckpt, "state.safetensors"), &f, err, sizeof err)) fail_msg("%s", err);
    const ebmc_st_tensor *a = ebmc_st_find(f, "gmm.means"), *z = ebmc_st_find(f, "gmm.z");
    assert_true(a && z && a->dtype == EBMC_DT_F32 && z->dtype == EBMC_DT_F32);
    int k = (int)ebmc_st_numel(z);
    assert_int_equal((int)ebmc_st_numel(a), k * d);
    const float *A = a->data, *Z = z->data;
    double worst = 0;
    for (int i = 0; i < NS; i++) {
        double t[64], m = -INFINITY, s = 0;
        for (int c = 0; c < k; c++) {
            double q = 0;
            for (int j = 0; j < d; j++) q += ((double)x[i * d + j] - A[c * d + j]) * ((double)x[i * d + j] - A[c * d + j]);
            t[c] = -q / 2 - Z[c];
            m = fmax(m, t[c]);
            worst = fmax(worst, fabs(t[c]));
        }
        for (int c = 0; c < k; c++) s += exp(t[c] - m);
        e[i] = -(m + log(s));
    }
    /* float32: each exponent -|x-a|^2/2 - z to (d + 2) u |t|, the log-sum-exp to a few u more */
    *tol = (double)(d + 8) * 0x1p-24 * (1 + worst);
    ebmc_st_close(f);
}

static double json_num(const char *path, const char *arr, const char *key) {
    char *txt = tu_read_file(path, NULL);
    cJSON *j = cJSON_Parse(txt), *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), arr);
    assert_non_null(m);
    cJSON *v = cJSON_GetObjectItem(m, key);
    double r = v && cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(j);
    free(txt);
    return r;
}

/* ebmc eval RUN --n 32: every sample array's FID (and KID) on the coordinates is finite */
static void eval_points(const score_case *k, const char *run) {
    /* the recipe's test-time sampler as the protocol records it (the sample.* the case set) */
    static const char *const SAMPLER[][2] = {
        {"dualmcmc", "3 Langevin steps"}, {"shortrun", "3 Langevin steps"}, {"persistent", "3 Langevin steps"},
        {"coopvaebm", "3 Langevin steps"}, {"coopnets", "3 Langevin steps"}, {"jarzynski", "exact draws"},
        {"particles", "the first 32 of the 32 particles"}};
    char js[600];
    snprintf(js, sizeof js, "%s", tu_path(TMP, "%s.json", k->name));
    const char *ev[] = {run, "--n", "32", "--backend", "cpu", "--kid-subsets", "4", "--kid-size", "16", "--out", js};
    assert_int_equal(run_main(ebmc_eval_main, ev, 11), EBMC_EXIT_OK);
    char *txt = tu_read_file(js, NULL);
    cJSON *j = cJSON_Parse(txt), *sm = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "samples"), "sampler");
    assert_true(cJSON_IsString(sm));
    printf("  eval %s: sampler \"%s\"\n", k->name, sm->valuestring);
    bool found = false;
    for (size_t i = 0; i < sizeof SAMPLER / sizeof SAMPLER[0]; i++)
        if (!strcmp(SAMPLER[i][0], k->recipe)) found = true, assert_non_null(strstr(sm->valuestring, SAMPLER[i][1]));
    assert_true(found);
    cJSON_Delete(j);
    free(txt);
    const ebmc_recipe *rc = ebmc_recipe_find(k->recipe);
    for (int a = 0; rc->sample_names[a]; a++) {
        double fid = json_num(js, rc->sample_names[a], "fid"), kid = json_num(js, rc->sample_names[a], "kid_mean");
        printf("  eval %s/%s: FID %.4g KID %.4g (32 samples vs the run's 200 points)\n", k->name,
               rc->sample_names[a], fid, kid);
        assert_true(isfinite(fid) && fid >= 0 && isfinite(kid));
    }
}

static void train_case(const score_case *k, char *run, size_t runlen) {
    char cfg[600], od[600], nm[300], data[600];
    if (k->config) {
        snprintf(cfg, sizeof cfg, "%s/configs/%s", EBMC_SOURCE_DIR, k->config);
    } else {
        char text[128];
        snprintf(text, sizeof text, "[run]\nrecipe = %s\n", k->recipe);
        snprintf(cfg, sizeof cfg, "%s", tu_path(TMP, "%s.ini", k->name));
        write_text(cfg, text);
    }
    snprintf(od, sizeof od, "run.out_dir=%s", TMP);
    snprintf(nm, sizeof nm, "run.name=%s", k->name);
    snprintf(data, sizeof data, "data.path=%s", k->data);
    const char *args[64] = {cfg, od, nm, "run.backend=cpu", "data.dataset=npy", data, "train.iterations=2",
                            "log.ckpt_every=2", "log.grid_every=0", "train.batch_size=16"};
    int n = 10;
    for (int i = 0; k->over[i]; i++) args[n++] = k->over[i]; /* later overrides win */
    assert_int_equal(tu_train(args, n), EBMC_EXIT_OK);
    snprintf(run, runlen, "%s", tu_path(TMP, "%s", k->name));
}

static void check_case(const score_case *k) {
    char run[600], ckpt[700], in[600], out[600], err[512];
    train_case(k, run, sizeof run);
    assert_int_equal(ebmc_latest_checkpoint(run, ckpt, sizeof ckpt), 2);
    snprintf(in, sizeof in, "%s", tu_path(TMP, "%s_in.npy", k->name));
    snprintf(out, sizeof out, "%s", tu_path(TMP, "%s_e.npy", k->name));
    if (k->data == PTS) write_points(in, NS, 77);
    else if (k->data == IMG8) write_images(in, NS, 3, 8, 78);
    else if (k->data == IMG28) write_images(in, NS, 1, 28, 78);
    else write_images(in, NS, 3, 32, 78);
    const char *sc[] = {run, in, "--out", out};
    assert_int_equal(run_main(ebmc_score_main, sc, 4), EBMC_EXIT_OK);
    ebmc_npy_info info;
    float *e;
    assert_int_equal(ebmc_npy_read(out, &info, (void **)&e, err, sizeof err), EBMC_OK);
    assert_true(info.ndim == 1 && info.shape[0] == NS && info.dtype == EBMC_NPY_F32);
    int elems;
    float *x = model_inputs(in, &elems);
    double ref[NS], tol, worst = 0, scale = 0;
    if (k->ref == REF_GMM) gmm_reference(ckpt, x, elems, ref, &tol);
    else net_reference(k, ckpt, x, elems, ref, &tol);
    for (int i = 0; i < NS; i++) worst = fmax(worst, fabs(e[i] - ref[i])), scale = fmax(scale, fabs(ref[i]));
    printf("%-16s score vs independent: worst |diff| %.3g (tolerance %.3g), max |E| %.4g\n", k->name, worst, tol,
           scale);
    assert_true(worst <= tol);
    assert_true(2 * scale > 4 * tol); /* a flipped sign (|diff| = 2 |E|) would show */
    free(x), free(e);
    if (k->points) eval_points(k, run);
}

static void test_score_every_recipe(void **state) {
    (void)state;
    write_points(PTS, 200, 1);
    write_images(IMG8, 32, 3, 8, 2);
    write_images(IMG28, 32, 1, 28, 3);
    write_images(IMG32, 32, 3, 32, 4);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_case(&CASES[i]);
}

static int setup(void **state) {
    (void)state;
    if (tu_tmpdir_create(TMP, sizeof TMP, "test_score_recipes")) return -1;
    snprintf(PTS, sizeof PTS, "%s", tu_path(TMP, "pts.npy"));
    snprintf(IMG8, sizeof IMG8, "%s", tu_path(TMP, "img8.npy"));
    snprintf(IMG28, sizeof IMG28, "%s", tu_path(TMP, "img28.npy"));
    snprintf(IMG32, sizeof IMG32, "%s", tu_path(TMP, "img32.npy"));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_tmpdir_remove(TMP);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_score_every_recipe)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
