/* defines: conv_entry_math, conv_query_math -- the cuDNN math type of a convolution plan, by
 * precision; conv_choice, conv_pick, conv_run_candidates -- which of a plan's candidate algorithms
 * runs (within the workspace there is) and the next one when cuDNN fails to execute it. Pure
 * functions (no cuDNN call), so that a test checks them without a GPU (tests/test_conv_math.c).
 * Private to src/host/backend/cuda/conv_cudnn.c. */
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

/* One candidate algorithm of a plan, in cuDNN's order (heuristics, fastest first, then the
 * classic fallbacks): the math it runs with and its workspace under that math. */
typedef struct {
    int algo;
    cudnnMathType_t math;
    size_t bytes;
    bool failed; /* cuDNN failed to execute it: never picked again */
} conv_choice;

/* The first candidate at or after `from` that has not failed and whose workspace fits `cap`
 * bytes, or -1. cap: what the plan may use -- unbounded while the workspace may still grow, the
 * reserved workspace (less the plan's padding buffer) once it is frozen or a graph is being
 * captured, so that a batch smaller than the one planned (its own cuDNN heuristics) never needs
 * more workspace than was reserved for the largest. */
static inline int conv_pick(const conv_choice *c, int n, int from, size_t cap) {
    for (int i = from < 0 ? 0 : from; i < n; i++)
        if (!c[i].failed && c[i].bytes <= cap) return i;
    return -1;
}

/* Runs candidate *cur through run(user, candidate) (true: executed); when cuDNN fails to execute
 * it (PyTorch's cudnn_convolution tries the next candidate the same way), marks it failed and
 * runs the next one conv_pick allows, leaving *cur at the one that ran. Returns the number of
 * candidates that failed (the caller logs the first fallback once), or -1 when none executed
 * (*cur then is the last tried). */
static inline int conv_run_candidates(conv_choice *c, int n, int *cur, size_t cap,
                                      bool (*run)(void *user, const conv_choice *cand), void *user) {
    int failed = 0;
    for (int i = *cur; i >= 0; i = conv_pick(c, n, i + 1, cap)) {
        *cur = i;
        if (run(user, &c[i])) return failed;
        c[i].failed = true;
        failed++;
    }
    return -1;
}

#endif
