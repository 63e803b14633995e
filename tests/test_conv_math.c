/* The cuDNN math type of a convolution plan by precision (src/host/backend/cuda/conv_math.h),
 * without a GPU: pure functions of enum values. Strict FP32 runs every accepted algorithm with
 * CUDNN_FMA_MATH set on the descriptor, also when cuDNN's heuristics list reports
 * CUDNN_DEFAULT_MATH for it (issue 17: a filter on the reported value could reject every entry
 * and send every plan to the classic fallbacks); tensor-op entries are skipped. TF32 queries with
 * CUDNN_DEFAULT_MATH and runs each entry with its own math, never with FP16 down-conversion.
 * Also the candidate logic of a plan (issue 22, items 5 and 6): which algorithm a plan takes
 * within the workspace it may count on (a smaller batch's plan, once the workspace is frozen),
 * and the next candidate when cuDNN fails to execute one, with a fake cuDNN call.
 * Built with the CUDA backend only (it needs cudnn.h, not a device). */
#include "backend/cuda/conv_math.h"
#include "testutil.h"
#include <stdint.h>
#include <string.h>

static void test_fp32_strict(void **state) {
    (void)state;
    assert_int_equal(conv_query_math(EBMC_PREC_FP32), CUDNN_FMA_MATH);
    assert_int_equal(conv_entry_math(CUDNN_FMA_MATH, EBMC_PREC_FP32), CUDNN_FMA_MATH);
    assert_int_equal(conv_entry_math(CUDNN_DEFAULT_MATH, EBMC_PREC_FP32), CUDNN_FMA_MATH);
    assert_int_equal(conv_entry_math(CUDNN_TENSOR_OP_MATH, EBMC_PREC_FP32), -1);
    assert_int_equal(conv_entry_math(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, EBMC_PREC_FP32), -1);
}

static void test_tf32(void **state) {
    (void)state;
    assert_int_equal(conv_query_math(EBMC_PREC_TF32), CUDNN_DEFAULT_MATH);
    assert_int_equal(conv_entry_math(CUDNN_DEFAULT_MATH, EBMC_PREC_TF32), CUDNN_DEFAULT_MATH);
    assert_int_equal(conv_entry_math(CUDNN_TENSOR_OP_MATH, EBMC_PREC_TF32), CUDNN_TENSOR_OP_MATH);
    assert_int_equal(conv_entry_math(CUDNN_FMA_MATH, EBMC_PREC_TF32), CUDNN_FMA_MATH);
    assert_int_equal(conv_entry_math(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, EBMC_PREC_TF32), -1);
}

/* TF32_CONV (PyTorch's defaults) runs convolutions as TF32 does */
static void test_tf32_conv(void **state) {
    (void)state;
    assert_int_equal(conv_query_math(EBMC_PREC_TF32_CONV), CUDNN_DEFAULT_MATH);
    assert_int_equal(conv_entry_math(CUDNN_TENSOR_OP_MATH, EBMC_PREC_TF32_CONV), CUDNN_TENSOR_OP_MATH);
    assert_int_equal(conv_entry_math(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, EBMC_PREC_TF32_CONV), -1);
}

/* heuristics (fastest first, the first two needing workspace), then the classic fallbacks */
static void cands(conv_choice *c) {
    const conv_choice init[4] = {{6, CUDNN_TENSOR_OP_MATH, 1 << 20, false},
                                 {7, CUDNN_DEFAULT_MATH, 4096, false},
                                 {1, CUDNN_DEFAULT_MATH, 0, false},
                                 {0, CUDNN_DEFAULT_MATH, 0, false}};
    memcpy(c, init, sizeof init);
}

/* a frozen workspace: the plan of a smaller batch takes the first candidate that fits */
static void test_pick_within_workspace(void **state) {
    (void)state;
    conv_choice c[4];
    cands(c);
    assert_int_equal(conv_pick(c, 4, 0, SIZE_MAX), 0);
    assert_int_equal(conv_pick(c, 4, 0, 1 << 20), 0);
    assert_int_equal(conv_pick(c, 4, 0, (1 << 20) - 1), 1);
    assert_int_equal(conv_pick(c, 4, 0, 100), 2);
    assert_int_equal(conv_pick(c, 4, 0, 0), 2);
    assert_int_equal(conv_pick(c, 4, 3, 0), 3);
    assert_int_equal(conv_pick(c, 4, 4, SIZE_MAX), -1);
    c[2].bytes = c[3].bytes = 64;
    assert_int_equal(conv_pick(c, 4, 0, 0), -1); /* nothing fits: the caller's error */
}

typedef struct {
    int fail_algos[4], n_fail, calls, ran;
} fake_cudnn;

static bool fake_run(void *user, const conv_choice *c) {
    fake_cudnn *f = user;
    f->calls++;
    for (int i = 0; i < f->n_fail; i++)
        if (f->fail_algos[i] == c->algo) return false;
    f->ran = c->algo;
    return true;
}

/* cuDNN fails to execute the chosen algorithm: the next candidate that fits runs, the failed one
 * is never tried again, and when all fail the caller is told (-1) */
static void test_next_candidate_on_failure(void **state) {
    (void)state;
    conv_choice c[4];
    cands(c);
    int cur = 0;
    fake_cudnn f = {{6}, 1, 0, -1};
    assert_int_equal(conv_run_candidates(c, 4, &cur, SIZE_MAX, fake_run, &f), 1);
    assert_int_equal(cur, 1);
    assert_int_equal(f.ran, 7);
    assert_true(c[0].failed);
    f.calls = 0; /* the next call starts at the one that ran: algorithm 6 is not retried */
    assert_int_equal(conv_run_candidates(c, 4, &cur, SIZE_MAX, fake_run, &f), 0);
    assert_int_equal(f.calls, 1);
    /* within a frozen workspace of 100 bytes the fallback skips what does not fit (7: 4096) */
    cands(c);
    cur = 0;
    f = (fake_cudnn){{6}, 1, 0, -1};
    assert_int_equal(conv_run_candidates(c, 4, &cur, 100, fake_run, &f), 1);
    assert_int_equal(f.ran, 1);
    assert_int_equal(cur, 2);
    assert_int_equal(f.calls, 2);
    /* every one fails */
    cands(c);
    cur = 0;
    f = (fake_cudnn){{6, 7, 1, 0}, 4, 0, -1};
    assert_int_equal(conv_run_candidates(c, 4, &cur, SIZE_MAX, fake_run, &f), -1);
    assert_int_equal(f.calls, 4);
    assert_int_equal(f.ran, -1);
    /* the first one runs: nothing failed */
    cands(c);
    cur = 0;
    f = (fake_cudnn){{0}, 0, 0, -1};
    assert_int_equal(conv_run_candidates(c, 4, &cur, SIZE_MAX, fake_run, &f), 0);
    assert_int_equal(f.ran, 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_strict),
        cmocka_unit_test(test_tf32),
        cmocka_unit_test(test_tf32_conv),
        cmocka_unit_test(test_pick_within_workspace),
        cmocka_unit_test(test_next_candidate_on_failure),
    };
    return cmocka_run_group_tests_name("conv_math", tests, NULL, NULL);
}
