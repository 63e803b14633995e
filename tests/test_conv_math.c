/* The cuDNN math type of a convolution plan by precision (src/host/backend/cuda/conv_math.h),
 * without a GPU: pure functions of enum values. Strict FP32 runs every accepted algorithm with
 * CUDNN_FMA_MATH set on the descriptor, also when cuDNN's heuristics list reports
 * CUDNN_DEFAULT_MATH for it (issue 17: a filter on the reported value could reject every entry
 * and send every plan to the classic fallbacks); tensor-op entries are skipped. TF32 queries with
 * CUDNN_DEFAULT_MATH and runs each entry with its own math, never with FP16 down-conversion.
 * Built with the CUDA backend only (it needs cudnn.h, not a device). */
#include "backend/cuda/conv_math.h"
#include "testutil.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_strict),
        cmocka_unit_test(test_tf32),
    };
    return cmocka_run_group_tests_name("conv_math", tests, NULL, NULL);
}
