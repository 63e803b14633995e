/* Bad calls return a clear error and a non-OK status, never a crash: wrong shapes, unsupported
 * kernel sizes and strides, NULL pointers, inconsistent descriptors, a frozen workspace, a CUDA
 * context on a machine without a GPU. */
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static ebmc_ctx_t *CTX;
static float BUF[4096];

static int setup(void **state) { CTX = tu_ctx_cpu(); return 0; }
static int teardown(void **state) { ebmc_ctx_free(CTX); return 0; }

/* the status and a message that names the op and contains `word` */
static void expect(ebmc_status got, ebmc_status want, const char *word) {
    const char *msg = ebmc_ctx_error(CTX);
    printf("  -> %-18s %s\n", ebmc_status_str(got), msg);
    assert_int_equal(got, want);
    assert_non_null(strstr(msg, word));
}

static void test_conv_shapes(void **state) {
    ebmc_conv_desc d = ebmc_conv_desc_make(1, 2, 3, 3, 2, 5, 1, 0); /* 5x5 kernel on 3x3 input */
    expect(ebmc_conv2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "does not fit");
    d = ebmc_conv_desc_make(1, 2, 16, 16, 2, 9, 1, 4); /* kernel 9: outside the supported 1..8 */
    expect(ebmc_conv2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_UNSUPPORTED, "not supported");
    assert_false(ebmc_supports(CTX, EBMC_OP_CONV2D_FWD, &d));
    d = ebmc_conv_desc_make(1, 2, 16, 16, 2, 3, 5, 1);
    expect(ebmc_conv2d_bwd_data(CTX, &d, BUF, BUF, BUF, 0), EBMC_E_UNSUPPORTED, "stride");
    d = ebmc_conv_desc_make(1, 2, 8, 8, 2, 3, 1, 3); /* pad >= kernel */
    expect(ebmc_conv2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "padding");
    d = ebmc_conv_desc_make(0, 2, 8, 8, 2, 3, 1, 1);
    expect(ebmc_conv2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "bad shape");
    d = ebmc_conv_desc_make(1, 2, 8, 8, 0, 3, 1, 1);
    expect(ebmc_conv2d_bwd_filter(CTX, &d, BUF, BUF, BUF, 0), EBMC_E_INVALID, "c_out");
    d = ebmc_conv_desc_make(1, 2, 8, 8, 2, 3, 1, 1);
    d.pad_l = -1;
    expect(ebmc_conv2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "negative padding");
    d = ebmc_conv_desc_make(1, 2, 8, 8, 2, 3, 1, 1);
    expect(ebmc_convt2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "regular");
    d = ebmc_convt_desc_make(1, 2, 4, 4, 2, 4, 2, 1, 2); /* output padding >= stride */
    expect(ebmc_convt2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "output padding");
    d = ebmc_conv_desc_make(1, 2, 8, 8, 2, 3, 1, 1);
    d.out_pad_h = 1;
    expect(ebmc_conv2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "only for transposed");
    d = ebmc_conv_desc_make(70000, 1000, 100, 100, 2, 3, 1, 1); /* > 2^31 elements */
    expect(ebmc_conv2d_fwd(CTX, &d, BUF, BUF, BUF), EBMC_E_INVALID, "2^31");
}

static void test_null_pointers(void **state) {
    ebmc_conv_desc d = ebmc_conv_desc_make(1, 2, 8, 8, 2, 3, 1, 1);
    expect(ebmc_conv2d_fwd(CTX, &d, NULL, BUF, BUF), EBMC_E_INVALID, "NULL");
    expect(ebmc_conv2d_fwd(CTX, NULL, BUF, BUF, BUF), EBMC_E_INVALID, "NULL descriptor");
    ebmc_bn_desc bn = {2, 3, 2, 2, 1e-5f, 0.1f};
    expect(ebmc_bn_fwd(CTX, &bn, BUF, BUF, BUF, BUF, BUF, NULL, BUF, NULL), EBMC_E_INVALID, "NULL");
    ebmc_act_desc a = {.kind = EBMC_ACT_TANH, .count = 4};
    expect(ebmc_act_bwd(CTX, &a, BUF, NULL, BUF, BUF, 0), EBMC_E_INVALID, "NULL"); /* tanh needs y */
    assert_int_equal(ebmc_copy(CTX, NULL, BUF, 4, EBMC_COPY_H2D), EBMC_E_INVALID);
}

static void test_other_descriptors(void **state) {
    ebmc_bn_desc bn = {1, 3, 1, 1, 1e-5f, 0.1f}; /* one value per channel: no batch statistics */
    expect(ebmc_bn_fwd(CTX, &bn, BUF, BUF, BUF, BUF, BUF, BUF, NULL, NULL), EBMC_E_INVALID, "more than one value");
    bn = (ebmc_bn_desc){4, 3, 2, 2, 0.0f, 0.1f};
    expect(ebmc_bn_bwd(CTX, &bn, BUF, BUF, BUF, BUF, BUF, BUF, BUF, BUF, 0, 0), EBMC_E_INVALID, "eps");
    ebmc_act_desc a = {.kind = (ebmc_act_kind)42, .count = 4};
    expect(ebmc_act_fwd(CTX, &a, BUF, BUF), EBMC_E_INVALID, "unknown activation");
    ebmc_t4_desc p = {1, 1, 1, 5};
    expect(ebmc_avgpool2_fwd(CTX, &p, BUF, BUF), EBMC_E_INVALID, "2x2 pool");
    ebmc_sn_desc sn = {4, 4, -1, 1e-12f};
    expect(ebmc_sn_power(CTX, &sn, BUF, BUF, BUF, BUF, BUF), EBMC_E_INVALID, "n_power_iter");
    ebmc_adam_desc ad = {.count = 4, .lr = 1e-3, .beta1 = 1.0, .beta2 = 0.9, .eps = 1e-8, .step = 1};
    expect(ebmc_adam(CTX, &ad, BUF, BUF, BUF, BUF), EBMC_E_INVALID, "beta1");
    ad.beta1 = 0.5;
    ad.step = 0;
    expect(ebmc_adam(CTX, &ad, BUF, BUF, BUF, BUF), EBMC_E_INVALID, "step");
    ebmc_upsample_desc u = {1, 1, 2, 2, (ebmc_upsample_mode)7};
    expect(ebmc_upsample_fwd(CTX, &u, BUF, BUF), EBMC_E_INVALID, "unknown mode");
    ebmc_reduce_desc r = {.rows = 0, .cols = 3};
    expect(ebmc_reduce(CTX, &r, BUF, BUF), EBMC_E_INVALID, "rows");
    ebmc_linear_desc l = {2, -3, 4};
    expect(ebmc_linear_fwd(CTX, &l, BUF, BUF, NULL, BUF), EBMC_E_INVALID, "in=-3");
}

static void test_frozen_workspace(void **state) {
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    ebmc_conv_desc small = ebmc_conv_desc_make(1, 1, 4, 4, 1, 3, 1, 1);
    ebmc_conv_desc big = ebmc_conv_desc_make(1, 8, 16, 16, 1, 3, 1, 1);
    size_t need = ebmc_workspace_size(ctx, EBMC_OP_CONV2D_FWD, &small);
    assert_true(need > 0);
    assert_int_equal(ebmc_ctx_reserve_workspace(ctx, need), EBMC_OK);
    ebmc_ctx_freeze_workspace(ctx);
    assert_int_equal(ebmc_conv2d_fwd(ctx, &small, BUF, BUF, BUF), EBMC_OK);
    ebmc_status s = ebmc_conv2d_fwd(ctx, &big, BUF, BUF, BUF);
    printf("  -> %s: %s\n", ebmc_status_str(s), ebmc_ctx_error(ctx));
    assert_int_equal(s, EBMC_E_WORKSPACE);
    assert_non_null(strstr(ebmc_ctx_error(ctx), "frozen"));
    ebmc_ctx_free(ctx);
}

static void test_context_options(void **state) {
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.precision = (ebmc_precision)9;
    ebmc_ctx_t *ctx = (ebmc_ctx_t *)&o;
    char err[256];
    assert_int_equal(ebmc_ctx_create(&o, &ctx, err, sizeof err), EBMC_E_INVALID);
    assert_null(ctx);
    assert_non_null(strstr(err, "precision"));
    if (ebmc_cuda_device_count() == 0) {
        /* asking for CUDA where there is none is an error with a reason, not a crash */
        o = ebmc_ctx_opts_default();
        o.kind = EBMC_BACKEND_CUDA;
        ebmc_status s = ebmc_ctx_create(&o, &ctx, err, sizeof err);
        printf("  -> cuda context without a GPU: %s: %s\n", ebmc_status_str(s), err);
        assert_int_equal(s, EBMC_E_DEVICE);
        assert_null(ctx);
        assert_true(strlen(err) > 10);
        /* AUTO falls back to the CPU backend */
        o.kind = EBMC_BACKEND_AUTO;
        o.quiet = true;
        assert_int_equal(ebmc_ctx_create(&o, &ctx, err, sizeof err), EBMC_OK);
        assert_int_equal(ebmc_ctx_kind(ctx), EBMC_BACKEND_CPU);
        ebmc_ctx_free(ctx);
    }
}

/* The op list (EBMC_OPS): every op has its own name, an unknown op none; the CPU backend has
 * an entry for every op; a NULL descriptor is refused with the op's name. */
static void test_op_list(void **state) {
    const ebmc_backend_ops *ops = ebmc_ctx_ops(CTX);
#define CPU_HAS_(OP, id, ...) assert_non_null(ops->id);
    EBMC_OPS(CPU_HAS_)
#undef CPU_HAS_
    for (int a = 0; a < EBMC_OP_COUNT; a++) {
        const char *na = ebmc_op_name((ebmc_op)a);
        assert_string_not_equal(na, "unknown_op");
        for (int b = 0; b < a; b++) assert_string_not_equal(na, ebmc_op_name((ebmc_op)b));
        assert_false(ebmc_supports(CTX, (ebmc_op)a, NULL));
        assert_non_null(strstr(ebmc_ctx_error(CTX), na));
    }
    assert_string_equal(ebmc_op_name(EBMC_OP_COUNT), "unknown_op");
    assert_string_equal(ebmc_op_name((ebmc_op)-1), "unknown_op");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_list),
        cmocka_unit_test(test_conv_shapes),
        cmocka_unit_test(test_null_pointers),
        cmocka_unit_test(test_other_descriptors),
        cmocka_unit_test(test_frozen_workspace),
        cmocka_unit_test(test_context_options),
    };
    return cmocka_run_group_tests_name("ops_errors", tests, setup, teardown);
}
