/* defines: reduce_rows, reduce_rows_scratch_floats -- deterministic row sums / sums of squares. */
#ifndef EBMC_KERNELS_REDUCE_H
#define EBMC_KERNELS_REDUCE_H

#include "ebmc/backend.h"
#include <cuda_runtime.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Floats of scratch reduce_rows needs for this shape (0: none; long rows are split in chunks
 * whose partial sums are added in a second pass). */
size_t reduce_rows_scratch_floats(int rows, size_t cols);
/* out[r] = sum_c f(x[r,c]) + beta*out[r] for x (rows, cols), f(a) = a (SUM) or a*a (SUMSQ).
 * beta == 0: out is not read. The result depends only on (rows, cols), never on the device:
 * bit-reproducible. scratch: reduce_rows_scratch_floats(rows, cols) floats (NULL if 0). */
void reduce_rows(ebmc_reduce_mode mode, const float *x, float *out, int rows, size_t cols,
                 float beta, float *scratch, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
