/* Checkpoints: save, load, identical outputs; every bad file is refused with a message naming
 * the file (and the tensor), and a refused load leaves the net as it was. */
#include "ebmc/checkpoint.h"
#include "ebmc/models.h"
#include "ebmc/safetensors.h"
#include "testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ebmc_ctx_t *CTX;
static char DIR_[256];

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) {
    CTX = tu_ctx_cpu();
    return tu_tmpdir_create(DIR_, sizeof DIR_, "test_checkpoint");
}
static int teardown(void **state) {
    tu_tmpdir_remove(DIR_);
    ebmc_ctx_free(CTX);
    return 0;
}

static ebmc_net_t *make(const char *arch, ebmc_net_role role, int width, uint64_t seed) {
    ebmc_model_cfg c;
    assert_true(ebmc_model_defaults(arch, &c));
    c.ndf = c.ngf = width;
    c.nif = 4;
    c.nz = 8;
    char err[256];
    ebmc_net_t *n = ebmc_model_build(&c, role, err, sizeof err);
    assert_non_null(n);
    assert_int_equal(ebmc_net_finalize(n, CTX, true, seed), EBMC_OK);
    return n;
}

static float *run(ebmc_net_t *net, const float *x, int batch, size_t *nout) {
    ebmc_tape_t *t;
    OK(ebmc_tape_create(net, batch, false, &t));
    OK(ebmc_net_forward(net, t, batch, x));
    *nout = (size_t)batch * ebmc_net_value_count(net, ebmc_net_output_value(net, 0));
    float *o = tu_malloc(*nout);
    memcpy(o, ebmc_tape_output(t, 0), *nout * 4);
    ebmc_tape_free(t);
    return o;
}

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", DIR_, name); }

static void test_round_trip(void **state) {
    char p[512], err[512];
    path_of(p, sizeof p, "e.safetensors");
    ebmc_net_t *a = make("dualmcmc_cifar10", EBMC_NET_E, 8, 1), *b = make("dualmcmc_cifar10", EBMC_NET_E, 8, 2);
    tu_rng r;
    tu_rng_seed(&r, 3);
    float x[2 * 3 * 32 * 32];
    tu_fill_uniform(&r, x, sizeof x / 4, -1, 1);
    size_t n;
    free(run(a, x, 2, &n)); /* advance u, v once */
    assert_int_equal(ebmc_net_save(a, p, NULL, 0, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_net_load(b, p, err, sizeof err), EBMC_OK);
    float *oa = run(a, x, 2, &n), *ob = run(b, x, 2, &n);
    assert_memory_equal(oa, ob, n * 4); /* same weights, same u, v: bit-identical */
    free(oa); free(ob);
    /* metadata */
    ebmc_st_file *f;
    assert_int_equal(ebmc_st_open(p, &f, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_st_meta(f, "format"), "pt");
    assert_string_equal(ebmc_st_meta(f, "arch"), "dualmcmc_cifar10");
    assert_string_equal(ebmc_st_meta(f, "role"), "E");
    assert_non_null(ebmc_st_meta(f, "precision"));
    assert_non_null(ebmc_st_meta(f, "ebmc_version"));
    assert_non_null(ebmc_st_find(f, "conv_1.conv1.weight_orig"));
    assert_non_null(ebmc_st_find(f, "conv_1.conv1.weight_u"));
    assert_non_null(ebmc_st_find(f, "lin_5.weight_v"));
    ebmc_st_close(f);
    /* a generator with BatchNorm: running stats and the I64 counter come back too */
    ebmc_net_t *g = make("dualmcmc_cifar10", EBMC_NET_G, 8, 4), *g2 = make("dualmcmc_cifar10", EBMC_NET_G, 8, 5);
    float z[2 * 8];
    tu_fill_normal(&r, z, 16, 1);
    free(run(g, z, 2, &n));
    free(run(g, z, 2, &n));
    path_of(p, sizeof p, "g.safetensors");
    assert_int_equal(ebmc_net_save(g, p, NULL, 0, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_net_load(g2, p, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_net_bn_batches(g2), 2);
    const ebmc_net_tensor *t1 = ebmc_net_tensor_find(g, "block2.bn_1.running_var");
    const ebmc_net_tensor *t2 = ebmc_net_tensor_find(g2, "block2.bn_1.running_var");
    assert_memory_equal(t1->data, t2->data, t1->count * 4);
    ebmc_net_free(a); ebmc_net_free(b); ebmc_net_free(g); ebmc_net_free(g2);
}

/* Load must fail with a message containing `word` and leave the net's parameters unchanged. */
static void expect_refused(ebmc_net_t *net, const char *path, const char *word) {
    size_t np = ebmc_net_param_count(net);
    float *before = tu_malloc(np);
    memcpy(before, ebmc_net_params(net), np * 4);
    char err[512] = "";
    ebmc_status s = ebmc_net_load(net, path, err, sizeof err);
    printf("  -> %s\n", err);
    assert_int_not_equal(s, EBMC_OK);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, word));
    assert_memory_equal(before, ebmc_net_params(net), np * 4);
    free(before);
}

/* Rewrites a saved checkpoint through `edit` (on the list of tensors) into `out`. */
typedef void (*edit_fn)(ebmc_st_tensor *t, int *n, void *buf);
static void rewrite(const char *in, const char *out, edit_fn edit) {
    char err[512];
    ebmc_st_file *f;
    assert_int_equal(ebmc_st_open(in, &f, err, sizeof err), EBMC_OK);
    int n = ebmc_st_count(f);
    ebmc_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    for (int i = 0; i < n; i++) t[i] = *ebmc_st_at(f, i);
    static double dbuf[1 << 16];
    edit(t, &n, dbuf);
    const char *meta[][2] = {{"format", "pt"}};
    assert_int_equal(ebmc_st_write(out, t, n, meta, 1, err, sizeof err), EBMC_OK);
    free(t);
    ebmc_st_close(f);
}

static void drop_first(ebmc_st_tensor *t, int *n, void *buf) {
    for (int i = 1; i < *n; i++) t[i - 1] = t[i];
    (*n)--;
}
static void add_extra(ebmc_st_tensor *t, int *n, void *buf) {
    t[*n] = (ebmc_st_tensor){"extra.weight", EBMC_DT_F32, 1, {4}, buf};
    memset(buf, 0, 16);
    (*n)++;
}
static void to_f64(ebmc_st_tensor *t, int *n, void *buf) {
    for (int i = 0; i < *n; i++)
        if (t[i].dtype == EBMC_DT_F32) {
            t[i].dtype = EBMC_DT_F64;
            memset(buf, 0, ebmc_st_numel(&t[i]) * 8);
            t[i].data = buf;
            return;
        }
}
static void reshape_one(ebmc_st_tensor *t, int *n, void *buf) {
    for (int i = 0; i < *n; i++)
        if (t[i].ndim == 4) {
            t[i].ndim = 2;
            t[i].shape[0] = t[i].shape[0] * t[i].shape[1];
            t[i].shape[1] = t[i].shape[2] * t[i].shape[3];
            return;
        }
}

static void test_refusals(void **state) {
    char good[512], bad[512], err[512];
    ebmc_net_t *e = make("dualmcmc_cifar10", EBMC_NET_E, 8, 1);
    path_of(good, sizeof good, "good.safetensors");
    assert_int_equal(ebmc_net_save(e, good, NULL, 0, err, sizeof err), EBMC_OK);

    /* a checkpoint from a different architecture */
    ebmc_net_t *sr = make("shortrun", EBMC_NET_E, 4, 1);
    expect_refused(sr, good, "arch");
    /* the same architecture, other widths */
    ebmc_net_t *wide = make("dualmcmc_cifar10", EBMC_NET_E, 16, 1);
    expect_refused(wide, good, "widths");
    /* another role */
    ebmc_net_t *g = make("dualmcmc_cifar10", EBMC_NET_G, 8, 1);
    expect_refused(g, good, "role");
    /* without metadata, the tensors decide: missing, extra, dtype, shape */
    path_of(bad, sizeof bad, "missing.safetensors");
    rewrite(good, bad, drop_first);
    expect_refused(e, bad, "missing");
    path_of(bad, sizeof bad, "extra.safetensors");
    rewrite(good, bad, add_extra);
    expect_refused(e, bad, "extra.weight");
    path_of(bad, sizeof bad, "f64.safetensors");
    rewrite(good, bad, to_f64);
    expect_refused(e, bad, "dtype F64");
    path_of(bad, sizeof bad, "shape.safetensors");
    rewrite(good, bad, reshape_one);
    expect_refused(e, bad, "shape");
    /* a truncated file */
    path_of(bad, sizeof bad, "truncated.safetensors");
    FILE *in = fopen(good, "rb"), *out = fopen(bad, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t k = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, k / 2, out);
    fclose(in);
    fclose(out);
    expect_refused(e, bad, bad);
    /* a file that does not exist */
    path_of(bad, sizeof bad, "nope.safetensors");
    expect_refused(e, bad, "No such file");
    /* saving into a directory that does not exist fails and writes nothing */
    path_of(bad, sizeof bad, "no/such/dir/x.safetensors");
    assert_int_not_equal(ebmc_net_save(e, bad, NULL, 0, err, sizeof err), EBMC_OK);
    printf("  -> %s\n", err);
    assert_int_equal(access(bad, F_OK), -1);
    ebmc_net_free(e); ebmc_net_free(sr); ebmc_net_free(wide); ebmc_net_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, setup, teardown);
}
