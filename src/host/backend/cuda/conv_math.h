/* defines: conv_entry_math, conv_query_math -- the cuDNN math type of a convolution plan, by
 * precision. Pure functions of enum values (no cuDNN call), so that a test checks them without a
 * GPU (tests/test_conv_math.c). Private to src/host/backend/cuda/conv_cudnn.c. */
#ifndef EBMC_CONV_MATH_H
#define EBMC_CONV_MATH_H

#include "ebmc/backend.h"
#include <cudnn.h>

/* Math types, as PyTorch chooses them (aten/src/ATen/cudnn/Descriptors.h sets the descriptor's
 * math before asking cuDNN; native/cudnn/Conv_v7.cpp then runs each candidate with its math set
 * on the descriptor): the math type is a property of the descriptor that ebmc sets, not a filter
 * on what the heuristics list reports.
 *   FP32 (strict): the descriptor says CUDNN_FMA_MATH for the query, the workspace query and the
 *     run, whatever math type the list reports for an entry; entries reported as tensor-op math
 *     are skipped (PyTorch asserts they never come). So no plan falls back to the classic
 *     algorithms only because the list says CUDNN_DEFAULT_MATH for an FMA-capable algorithm.
 *   TF32: the descriptor says CUDNN_DEFAULT_MATH for the query (TF32 tensor cores permitted, as
 *     PyTorch's allow_tf32), then each entry's own math type; never ..._ALLOW_CONVERSION (FP16
 *     down-conversion).
 * Returns the math to run entry math m with, or -1 to skip the entry. */
static inline int conv_entry_math(cudnnMathType_t m, ebmc_precision prec) {
    if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return -1;
    if (prec == EBMC_PREC_FP32)
        return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH ? (int)CUDNN_FMA_MATH : -1;
    return (int)m;
}

static inline cudnnMathType_t conv_query_math(ebmc_precision prec) {
    return prec == EBMC_PREC_FP32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

#endif
