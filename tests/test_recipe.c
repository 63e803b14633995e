/* The recipe table and the run shell with a second recipe (tests/fixtures/recipe_mle2d.c, a
 * complete recipe in one file, registered here): it trains through `ebmc train`, resumes bit
 * for bit, checkpoints and prunes only its own items (a network named "energy", not E/G/I),
 * survives what a killed process leaves in the checkpoint folder, samples through `ebmc sample`,
 * and `--print-config` shows its keys. Also: an unknown recipe is a config error. */
#include "ebmc/recipe.h"
#include "ebmc/safetensors.h"
#include "ebmc/train.h"
#include "fixtures/recipe_mle2d.h"
#include "testutil.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static mle2d_fixture FX;
#define TMP FX.tmp
#define CFG FX.cfg
#define OD FX.od

static int setup(void **state) { return mle2d_fixture_setup(&FX, "test_recipe", 60); }

static int teardown(void **state) {
    tu_tmpdir_remove(TMP);
    return 0;
}

#define train tu_train

/* iter_* folders of a run; *stray counts iter_*.tmp / iter_*.del leftovers */
static int count_ckpts(const char *run, int *stray) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/checkpoints", run);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    *stray = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "iter_", 5)) continue;
        if (strchr(e->d_name, '.')) (*stray)++;
        else n++;
    }
    closedir(d);
    return n;
}

static void test_unknown_recipe_and_print_config(void **state) {
    const char *a[] = {CFG, OD, "run.recipe=nosuch"};
    assert_int_equal(train(a, 3), EBMC_EXIT_CONFIG);
    const char *b[] = {CFG, OD, "mle2d.lr=abc"};
    assert_int_equal(train(b, 3), EBMC_EXIT_CONFIG); /* the recipe's keys are typed too */
    const char *c[] = {"--print-config", CFG};
    assert_int_equal(train(c, 2), EBMC_EXIT_OK);
    /* a key of another recipe is unknown to this one */
    const char *d[] = {CFG, OD, "langevin_x.steps=3"};
    assert_int_equal(train(d, 3), EBMC_EXIT_CONFIG);
}

static void test_trains_checkpoints_prunes(void **state) {
    const char *a[] = {CFG, OD, "run.name=one"};
    assert_int_equal(train(a, 3), EBMC_EXIT_OK);
    char run[700], p[800];
    snprintf(run, sizeof run, "%s/one", TMP);
    int stray;
    assert_int_equal(count_ckpts(run, &stray), 2); /* log.keep = 2 of 6 */
    assert_int_equal(stray, 0);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000060/energy.safetensors", run);
    assert_int_equal(access(p, R_OK), 0);
    char err[512];
    ebmc_st_file *f;
    assert_int_equal(ebmc_st_open(p, &f, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_st_meta(f, "precision"), "fp32"); /* a CPU run computes in fp32 */
    assert_string_equal(ebmc_st_meta(f, "iteration"), "60");
    ebmc_st_close(f);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000060/state.safetensors", run);
    assert_int_equal(ebmc_st_open(p, &f, err, sizeof err), EBMC_OK);
    const char *names[] = {"adam.exp_avg", "adam.exp_avg_sq", "adam.step", "chain.step", "iteration",
                           "loader.epoch", "loader.pos", "restarts"};
    assert_int_equal(ebmc_st_count(f), 8);
    for (int i = 0; i < 8; i++) assert_non_null(ebmc_st_find(f, names[i]));
    int64_t it, cs;
    memcpy(&it, ebmc_st_find(f, "iteration")->data, 8);
    memcpy(&cs, ebmc_st_find(f, "chain.step")->data, 8);
    assert_int_equal(it, 60);
    assert_int_equal(cs, 60 * 5); /* 5 noise steps per iteration */
    ebmc_st_close(f);
    /* what a killed process leaves: a half-written checkpoint folder, a half-deleted one and a
     * stray temporary inside a complete one; the next run cleans the first two and prunes the
     * third whole */
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000070.tmp", run);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000010.del", run);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000050/energy.safetensors.tmp.12345", run);
    FILE *t = fopen(p, "w");
    assert_non_null(t);
    fclose(t);
    const char *r[] = {"--resume", run, "train.iterations=90"};
    assert_int_equal(train(r, 3), EBMC_EXIT_OK);
    assert_int_equal(count_ckpts(run, &stray), 2);
    assert_int_equal(stray, 0);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000090", run);
    assert_int_equal(access(p, R_OK), 0);
    /* ebmc sample: 2-D points as float32 (N, 2) .npy */
    char out[800];
    snprintf(out, sizeof out, "%s/smp", TMP);
    char *sargs[] = {run, "--n", "50", "--out", out};
    assert_int_equal(ebmc_sample_main(5, sargs), EBMC_EXIT_OK);
    snprintf(p, sizeof p, "%s/samples.npy", out);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 128 + 50 * 2 * 4); /* the .npy v1 header is padded to 128 bytes */
}

static void test_resume_is_exact(void **state) {
    const char *files[] = {"energy.safetensors", "state.safetensors", NULL};
    tu_assert_resume_exact(CFG, TMP, "", NULL, 0, 20, 40, files);
}

/* run.precision (issue 22, item 4): auto resolves per recipe -- fp32 where the recipe subtracts
 * nearly equal quantities (particles' gradient differences, jarzynski's U_old - U_new), PyTorch's
 * defaults (TF32 convolutions, fp32 matmuls) for the image recipes -- a user's value wins, and a
 * context without a precision says PyTorch's defaults too (not TF32 matmuls). */
static void test_precision_defaults(void **state) {
    const struct {
        const char *recipe;
        ebmc_precision want;
    } rows[] = {{"dualmcmc", EBMC_PREC_TF32_CONV},  {"shortrun", EBMC_PREC_TF32_CONV},
                {"persistent", EBMC_PREC_TF32_CONV}, {"coopvaebm", EBMC_PREC_TF32_CONV},
                {"coopnets", EBMC_PREC_TF32_CONV},   {"jarzynski", EBMC_PREC_FP32},
                {"particles", EBMC_PREC_FP32},       {"mle2d", EBMC_PREC_FP32}};
    char err[256];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const ebmc_recipe *rc = ebmc_recipe_find(rows[i].recipe);
        assert_non_null(rc);
        ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
        assert_string_equal(ebmc_config_str(cfg, "run", "precision"), "auto");
        if (ebmc_recipe_precision(rc, cfg) != rows[i].want) fail_msg("%s: auto resolves wrongly", rows[i].recipe);
        const char *over[] = {"run.precision=fp32", "run.precision=tf32", "run.precision=tf32_conv"};
        const ebmc_precision want[] = {EBMC_PREC_FP32, EBMC_PREC_TF32, EBMC_PREC_TF32_CONV};
        for (int k = 0; k < 3; k++) {
            assert_int_equal(ebmc_config_set_arg(cfg, over[k], err, sizeof err), EBMC_OK);
            assert_int_equal(ebmc_recipe_precision(rc, cfg), want[k]);
        }
        assert_int_not_equal(ebmc_config_set_arg(cfg, "run.precision=bf16", err, sizeof err), EBMC_OK);
        ebmc_config_free(cfg);
    }
    assert_int_equal(ebmc_ctx_opts_default().precision, EBMC_PREC_TF32_CONV);
    ebmc_precision p;
    for (int v = EBMC_PREC_FP32; v <= EBMC_PREC_TF32_CONV; v++) {
        assert_true(ebmc_precision_parse(ebmc_precision_name((ebmc_precision)v), &p));
        assert_int_equal(p, v);
    }
    assert_false(ebmc_precision_parse("auto", &p));
    assert_null(ebmc_precision_name((ebmc_precision)7));
}

/* The checkpoint records what the run computed in (the CPU: fp32, whatever run.precision says),
 * and a resume that would compute in another precision is refused (exit 64) with a hint; a
 * checkpoint without the record (older ebmc) resumes. */
static void test_resume_checks_precision(void **state) {
    const char *a[] = {CFG, OD, "run.name=prec", "train.iterations=20", "run.precision=tf32"};
    assert_int_equal(train(a, 5), EBMC_EXIT_OK);
    char run[700], p[800], err[256];
    snprintf(run, sizeof run, "%s/prec", TMP);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020/state.safetensors", run);
    ebmc_st_file *f;
    assert_int_equal(ebmc_st_open(p, &f, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_st_meta(f, "precision"), "fp32");
    ebmc_st_close(f);
    /* as if a GPU had computed it in TF32: the header's record rewritten in place (same length) */
    size_t n;
    char *buf = tu_read_file(p, &n);
    char *at = strstr(buf + 8, "\"precision\":\"fp32\"");
    assert_non_null(at);
    memcpy(at + 13, "tf32", 4);
    FILE *w = fopen(p, "wb");
    assert_non_null(w);
    assert_int_equal(fwrite(buf, 1, n, w), n);
    fclose(w);
    const char *r[] = {"--resume", run, "train.iterations=30"};
    assert_int_equal(train(r, 3), EBMC_EXIT_CONFIG);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000030", run);
    assert_int_not_equal(access(p, F_OK), 0); /* nothing trained */
    /* without the record (a checkpoint of an older ebmc): resumes */
    memcpy(at, "\"precisioN\"", 11);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000020/state.safetensors", run);
    w = fopen(p, "wb");
    assert_non_null(w);
    assert_int_equal(fwrite(buf, 1, n, w), n);
    fclose(w);
    free(buf);
    assert_int_equal(train(r, 3), EBMC_EXIT_OK);
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000030/state.safetensors", run);
    assert_int_equal(ebmc_st_open(p, &f, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_st_meta(f, "precision"), "fp32");
    ebmc_st_close(f);
}

/* ebmc sample refuses nonsense: non-finite or huge options, and NaN weights (no .npy written) */
static void test_sample_refuses_nonsense(void **state) {
    const char *a[] = {CFG, OD, "run.name=nan", "train.iterations=10"};
    assert_int_equal(tu_train(a, 4), EBMC_EXIT_OK);
    char run[700], out[800], p[900];
    snprintf(run, sizeof run, "%s/nan", TMP);
    snprintf(out, sizeof out, "%s/nan_out", TMP);
    char *s1[] = {run, "--step-size", "nan", "--out", out};
    assert_int_equal(ebmc_sample_main(5, s1), EBMC_EXIT_USAGE);
    char *s2[] = {run, "--n", "1000000000000", "--out", out};
    assert_int_equal(ebmc_sample_main(5, s2), EBMC_EXIT_USAGE);
    char *s3[] = {run, "--n", "inf", "--out", out};
    assert_int_equal(ebmc_sample_main(5, s3), EBMC_EXIT_USAGE);
    /* NaN in every weight of the energy's first tensor */
    snprintf(p, sizeof p, "%s/checkpoints/iter_00000010/energy.safetensors", run);
    size_t n;
    char *b = tu_read_file(p, &n), err[512];
    ebmc_st_file *f;
    assert_int_equal(ebmc_st_open(p, &f, err, sizeof err), EBMC_OK);
    const ebmc_st_tensor *first = NULL;
    for (int i = 0; i < ebmc_st_count(f) && !first; i++)
        if (ebmc_st_at(f, i)->dtype == EBMC_DT_F32) first = ebmc_st_at(f, i);
    assert_non_null(first);
    uint64_t hlen;
    memcpy(&hlen, b, 8);
    size_t off = 8 + (size_t)hlen + (size_t)((const char *)first->data - (const char *)ebmc_st_at(f, 0)->data);
    float qnan = NAN;
    for (int64_t i = 0; i < ebmc_st_numel(first); i++) memcpy(b + off + 4 * i, &qnan, 4);
    ebmc_st_close(f);
    FILE *o = fopen(p, "wb");
    assert_non_null(o);
    assert_int_equal(fwrite(b, 1, n, o), n);
    fclose(o);
    free(b);
    char *s4[] = {run, "--n", "20", "--out", out};
    assert_int_not_equal(ebmc_sample_main(5, s4), EBMC_EXIT_OK);
    snprintf(p, sizeof p, "%s/samples.npy", out);
    assert_int_not_equal(access(p, F_OK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_recipe_and_print_config),
        cmocka_unit_test(test_trains_checkpoints_prunes),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_precision_defaults),
        cmocka_unit_test(test_resume_checks_precision),
        cmocka_unit_test(test_sample_refuses_nonsense),
    };
    return cmocka_run_group_tests_name("recipe", tests, setup, teardown);
}
