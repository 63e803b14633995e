/* CUDA-vs-CPU parity: every op the CUDA backend implements (conv/convt, linear, bias,
 * activations, BatchNorm, spectral norm, upsample, pools, axpby, fill, reduce, Adam, and the
 * sampler ops: Langevin, rng, reparam, scaled_diff, counter_add, replay sample/push, gauss_nll)
 * against the CPU reference, with the same random inputs, in FP32 and
 * in TF32 (and the convolutions/GEMMs once more with non-deterministic cuDNN algorithms allowed,
 * the training default). Outputs are NaN-poisoned before each call (so a beta == 0 path that
 * reads its output fails) and guarded by sentinels (so an out-of-bounds write fails). Also: bad
 * calls on a CUDA context return an error, and workspace_size() is enough for a frozen
 * workspace. First of all, with or without a device: every op of EBMC_OPS has a row.
 *
 * Case building (descriptors, buffers, fills) and the op calls are in ops_cuda_cases.c.
 *
 * Without a CUDA device the whole executable prints one line and exits 77 (ctest: skipped).
 * Run one group of rows with `test_ops_cuda --filter SUBSTRING` (matched against the printed
 * op and shape); `--skip-large` (or EBMC_TEST_SKIP_LARGE=1) leaves out the training-width rows;
 * `--own-kernels` leaves out the rows that run cuDNN or cuBLAS (convolutions, linear layers), so
 * that only ebmc's own kernels run (compute-sanitizer); `--test PATTERN` runs the matching tests
 * only (cmocka's filter, e.g. "test_parity_fp32": one precision). scripts/gpu-check.sh's
 * sanitizer parts use all three. */
#include "ops_cuda_cases.h"
#include "testutil.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tolerances on nmse = mse(cuda - cpu) / mean(cpu^2) ----
 * u = 2^-24 ~ 6.0e-8 is the fp32 unit roundoff, u^2 ~ 3.6e-15.
 * TOL_EW    element-wise ops: a few ulps apart (device expf/tanhf vs glibc, FMA contraction),
 *           nmse ~ (2u)^2 ~ 1.4e-14. Bound 1e-12.
 * TOL_ADAM  five Adam steps: a few ulps per step compound, nmse ~ 25 u^2 ~ 1e-13. Bound 1e-11.
 * TOL_RED   sums of K float terms (BN statistics, pools, reductions, spectral norm, short
 *           bilinear gathers): the CPU sums in double, the device in float along a tree, so
 *           the error is the device's, nmse <~ K u^2: K <= 3e5 here -> ~1e-9 worst case,
 *           typically log2(K) u^2 ~ 1e-13. Bound 1e-9 (worst case; headroom shows the rest).
 * TOL_MM32  FP32 convolutions and GEMMs (cuDNN FMA math, cuBLAS default math: no TF32): dot
 *           products of K <= 2048 terms in an order unlike the CPU's im2col GEMM, nmse ~ K u^2/3
 *           ~ 1e-12; cuDNN's Winograd/FFT algorithms (allowed in FMA math) add transform error,
 *           up to ~100x. Bound 1e-8: still 4 orders of magnitude below any indexing bug (a wrong
 *           border row of a 16x16 output is nmse ~ 1e-2), and below TF32's ~1e-7, so TF32 leaking
 *           into the FP32 context fails these rows.
 * TOL_TF32  TF32 tensor cores round both operands to 10 mantissa bits, u_tf32 = 2^-11 ~ 4.9e-4:
 *           each product carries a relative error of up to 2 u_tf32, nmse ~ 2 u_tf32^2 / 3 ~
 *           1.6e-7 when rounding to nearest, ~1e-6 if the hardware truncates. Bound 1e-5.
 * TOL_NOISE the sampler ops (Langevin, rng, reparam, replay, gauss_nll): both backends draw the
 *           same Philox4x32-10 words and turn them into normals by Box-Muller in double
 *           (include/ebmc/philox.h), and the kernels round every float operation in the CPU's
 *           order (no FMA contraction). The one difference left is the device's double
 *           log/sin/cos/exp (<= 2 ulp of double) against glibc's, and expf (<= 2 ulp of float)
 *           in reparam: after rounding to float an element differs, if at all, by an ulp or two,
 *           i.e. ~1e-7 relative, so nmse <~ (1e-6)^2 even if every element were off by 1e-6
 *           relative. Bound 1e-12 = (1e-6)^2. Expect "exact" in practice: a wrong counter (chain,
 *           step, group) gives independent noise, nmse ~ 1; a contracted FMA ~1e-15.
 * TOL_EXACT copies and integer results (replay push, the step counter): nmse must be 0; uint8
 *           buffers are compared byte for byte.
 * TOL_F64   the float64 weighted-walker outputs (log-weights, their statistics): both backends
 *           sum in double, in different orders; K <= 1e5 terms give a relative error <= K u_d
 *           ~ 1e-11 worst case (u_d = 2^-53), nmse <= 1e-22. Bound 1e-20; a float32 accumulation
 *           anywhere (relative 6e-8, nmse ~ 1e-15) fails it.
 */
#define TOL_F64 1e-20
#define TOL_EW 1e-12
#define TOL_NOISE 1e-12
#define TOL_EXACT 0.0
#define TOL_ADAM 1e-11
#define TOL_RED 1e-9
#define TOL_MM32 1e-8
#define TOL_TF32 1e-5

/* The parity rows; the meaning of the columns by op is at prow (ops_cuda_cases.h). */
static const prow ROWS[] = {
/*   op                         N   C   H   W  Co  K  S  pad opad var  x1    beta  fp32      tf32 */
    /* conv2d: 3x3 first layer, 1x1, DCGAN 4x4/s2, 5x5/s2 on an odd size, TF 'SAME' with an
     * odd total pad (extra pixel bottom/right), 4x4 valid down to 1x1, a wider 3x3 */
    {EBMC_OP_CONV2D_FWD,         2,  3, 16, 16,  8, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  3, 16, 16,  8, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  3, 16, 16,  8, 3, 1,  1,  0,  0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  3, 16, 16,  8, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  3, 16, 16,  8, 3, 1,  1,  0,  0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         2, 16,  8,  8,  4, 1, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2, 16,  8,  8,  4, 1, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2, 16,  8,  8,  4, 1, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         2,  8, 16, 16, 16, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  8, 16, 16, 16, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  8, 16, 16, 16, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         2,  4, 15, 15,  6, 5, 2,  2,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  4, 15, 15,  6, 5, 2,  2,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  4, 15, 15,  6, 5, 2,  2,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         2,  4, 16, 16,  8, 3, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  4, 16, 16,  8, 3, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  4, 16, 16,  8, 3, 2, SAME, 0, 0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  4, 16, 16,  8, 3, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  4, 16, 16,  8, 3, 2, SAME, 0, 0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         2,  4,  9,  9,  8, 4, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  4,  9,  9,  8, 4, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  4,  9,  9,  8, 4, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         2,  4, 11, 11,  4, 5, 1, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2,  4, 11, 11,  4, 5, 1, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2,  4, 11, 11,  4, 5, 1, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         4, 16,  4,  4,  1, 4, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    4, 16,  4,  4,  1, 4, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  4, 16,  4,  4,  1, 4, 1,  0,  0,  0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_FWD,         2, 32,  8,  8, 64, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,    2, 32,  8,  8, 64, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,  2, 32,  8,  8, 64, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    /* transposed: DCGAN 4x4/s2/p1, 5x5/s2/p2/op1 (bottom pad 1 != top 2: the pad path),
     * 4x4 valid from 1x1, 3x3/s1, TF 'SAME' x3 (asymmetric and symmetric), 3x3/s2/p0/op1 (the
     * equivalent convolution's bottom pad is -1: a crop), 3x3/s2/p1/op1 */
    {EBMC_OP_CONVT2D_FWD,        2, 16,  8,  8,  8, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2, 16,  8,  8,  8, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2, 16,  8,  8,  8, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        2,  8,  7,  7,  4, 5, 2,  2,  1,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  8,  7,  7,  4, 5, 2,  2,  1,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  8,  7,  7,  4, 5, 2,  2,  1,  0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  8,  7,  7,  4, 5, 2,  2,  1,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  8,  7,  7,  4, 5, 2,  2,  1,  0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        4, 16,  1,  1,  8, 4, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   4, 16,  1,  1,  8, 4, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 4, 16,  1,  1,  8, 4, 1,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        2,  8,  8,  8,  4, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  8,  8,  8,  4, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  8,  8,  8,  4, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        2,  8,  8,  8,  4, 5, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  8,  8,  8,  4, 5, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  8,  8,  8,  4, 5, 2, SAME, 0, 0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  8,  8,  8,  4, 5, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        2,  8,  5,  5,  4, 4, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  8,  5,  5,  4, 4, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  8,  5,  5,  4, 4, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        2,  4,  6,  6,  4, 3, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  4,  6,  6,  4, 3, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  4,  6,  6,  4, 3, 2, SAME, 0, 0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        2,  4,  5,  5,  6, 3, 2,  0,  1,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  4,  5,  5,  6, 3, 2,  0,  1,  0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  4,  5,  5,  6, 3, 2,  0,  1,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,        2,  4,  6,  6,  4, 3, 2,  1,  1,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA,   2,  4,  6,  6,  4, 3, 2,  1,  1,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER, 2,  4,  6,  6,  4, 3, 2,  1,  1,  0, 0,    1,    TOL_MM32, TOL_TF32},
    /* linear: x (N,IN=C) -> (N,OUT=Co); var: bias / db */
    {EBMC_OP_LINEAR_FWD,         8, 64,  1,  1, 32, 0, 0,  0,  0,  1, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_FWD,         5, 33,  1,  1,  7, 0, 0,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_FWD,         64,512,  1,  1,256, 0, 0,  0,  0,  1, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_BWD_DATA,    8, 64,  1,  1, 32, 0, 0,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_BWD_DATA,    5, 33,  1,  1,  7, 0, 0,  0,  0,  0, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_BWD_FILTER,  8, 64,  1,  1, 32, 0, 0,  0,  0,  1, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_BWD_FILTER,  8, 64,  1,  1, 32, 0, 0,  0,  0,  1, 0,    1,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_BWD_FILTER,  5, 33,  1,  1,  7, 0, 0,  0,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_BWD_FILTER,  64,512,  1,  1,256, 0, 0,  0,  0,  1, 0,    0,    TOL_MM32, TOL_TF32},
    /* bias */
    {EBMC_OP_BIAS_FWD,           2,  8,  5,  7,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_EW,   TOL_EW},
    {EBMC_OP_BIAS_FWD,           16, 10,  1,  1,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_EW,   TOL_EW},
    {EBMC_OP_BIAS_BWD,           2,  8,  5,  7,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BIAS_BWD,           2,  8,  5,  7,  0, 0, 0,  0,  0,  0, 0,    1,    TOL_RED,  TOL_RED},
    {EBMC_OP_BIAS_BWD,           16, 10,  1,  1,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BIAS_BWD,           8, 64, 32, 32,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    /* activations (inputs kept away from the kinks) */
    {EBMC_OP_ACT_FWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_IDENTITY, 0, 0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_FWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_RELU,  0,    0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_FWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_LRELU, 0.2f, 0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_FWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_TANH,  0,    0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_FWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_SILU,  0,    0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_BWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_IDENTITY, 0, 0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_BWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_RELU,  0,    0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_BWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_LRELU, 0.2f, 0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_BWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_LRELU, 0.2f, 1, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_BWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_TANH,  0,    0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_BWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_SILU,  0,    0, TOL_EW, TOL_EW},
    {EBMC_OP_ACT_BWD,            2,  3,  7,  9,  0, 0, 0,  0,  0, EBMC_ACT_SILU,  0,    1, TOL_EW, TOL_EW},
    /* BatchNorm 2d and 1d, with and without running statistics */
    {EBMC_OP_BN_FWD,             4,  8,  6,  6,  0, 0, 0,  0,  0,  1, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BN_FWD,             16, 32,  1,  1,  0, 0, 0,  0,  0,  1, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BN_FWD,             2,  3,  5,  7,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BN_FWD,             16, 16, 32, 32,  0, 0, 0,  0,  0,  1, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BN_BWD,             4,  8,  6,  6,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BN_BWD,             4,  8,  6,  6,  0, 0, 0,  0,  0,  0, 0,    1,    TOL_RED,  TOL_RED},
    {EBMC_OP_BN_BWD,             16, 32,  1,  1,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_BN_BWD,             16, 16, 32, 32,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    /* spectral norm: W (Co, C*K*K); var = power iterations */
    {EBMC_OP_SN_POWER,           0,  8,  0,  0, 16, 3, 0,  0,  0,  1, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_POWER,           0, 32,  0,  0, 64, 4, 0,  0,  0,  3, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_POWER,           0,100,  0,  0, 10, 1, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_BWD,             0,  8,  0,  0, 16, 3, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_BWD,             0,  8,  0,  0, 16, 3, 0,  0,  0,  0, 0,    1,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_BWD,             0, 32,  0,  0, 64, 4, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    /* upsample x2: bilinear (align_corners=True) and nearest; odd sizes and 1x1 */
    {EBMC_OP_UPSAMPLE_FWD,       2,  3,  5,  7,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_EW, TOL_EW},
    {EBMC_OP_UPSAMPLE_FWD,       1,  2,  1,  1,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_EW, TOL_EW},
    {EBMC_OP_UPSAMPLE_FWD,       2,  4, 16, 16,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_EW, TOL_EW},
    {EBMC_OP_UPSAMPLE_FWD,       1,  1,  2,  3,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_EW, TOL_EW},
    {EBMC_OP_UPSAMPLE_BWD,       2,  3,  5,  7,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_UPSAMPLE_BWD,       1,  2,  1,  1,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_UPSAMPLE_BWD,       2,  4, 16, 16,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 1, TOL_RED, TOL_RED},
    {EBMC_OP_UPSAMPLE_BWD,       1,  1,  2,  3,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_UPSAMPLE_BWD,       1,  2, 33, 65,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_BILINEAR_AC, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_UPSAMPLE_FWD,       2,  3,  5,  7,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_NEAREST, 0, 0, TOL_EW, TOL_EW},
    {EBMC_OP_UPSAMPLE_BWD,       2,  3,  5,  7,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_NEAREST, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_UPSAMPLE_BWD,       2,  3,  5,  7,  0, 0, 0,  0,  0, EBMC_UPSAMPLE_NEAREST, 0, 1, TOL_RED, TOL_RED},
    /* pools: 2x2 average (odd sizes drop the last row/column), global average and sum */
    {EBMC_OP_AVGPOOL2_FWD,       2,  3,  7,  9,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_AVGPOOL2_FWD,       2,  4, 16, 16,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_RED,  TOL_RED},
    {EBMC_OP_AVGPOOL2_BWD,       2,  3,  7,  9,  0, 0, 0,  0,  0,  0, 0,    0,    TOL_EW,   TOL_EW},
    {EBMC_OP_AVGPOOL2_BWD,       2,  4, 16, 16,  0, 0, 0,  0,  0,  0, 0,    1,    TOL_EW,   TOL_EW},
    {EBMC_OP_GPOOL_FWD,          4, 16,  8,  8,  0, 0, 0,  0,  0, EBMC_GPOOL_AVG, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_GPOOL_FWD,          3,  5,  3,  5,  0, 0, 0,  0,  0, EBMC_GPOOL_SUM, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_GPOOL_FWD,          2,  4, 64, 64,  0, 0, 0,  0,  0, EBMC_GPOOL_AVG, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_GPOOL_BWD,          4, 16,  8,  8,  0, 0, 0,  0,  0, EBMC_GPOOL_AVG, 0, 0, TOL_EW,  TOL_EW},
    {EBMC_OP_GPOOL_BWD,          3,  5,  3,  5,  0, 0, 0,  0,  0, EBMC_GPOOL_SUM, 0, 1, TOL_EW,  TOL_EW},
    /* axpby (y = x1*x + beta*y), fill (value x1) */
    {EBMC_OP_AXPBY,              1,  1,  1,1000, 0, 0, 0,  0,  0,  0, 0.7f, 0,    TOL_EW,   TOL_EW},
    {EBMC_OP_AXPBY,              1,  1,  1,100003,0,0, 0,  0,  0,  0, -1.5f, 1,   TOL_EW,   TOL_EW},
    {EBMC_OP_AXPBY,              1,  1, 10,  99, 0, 0, 0,  0,  0,  0, 2.0f, -0.5f, TOL_EW,  TOL_EW},
    {EBMC_OP_FILL,               1,  1,  1,12345, 0, 0, 0,  0,  0,  0, 3.25f, 0,   TOL_EW,   TOL_EW},
    /* reduce: rows N, cols C*H*W; the 200000- and 300000-column rows take the chunked path */
    {EBMC_OP_REDUCE,             7,  1,  1,1000, 0, 0, 0,  0,  0, EBMC_REDUCE_SUM,   0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_REDUCE,             64,  1,  1,  20, 0, 0, 0,  0,  0, EBMC_REDUCE_SUMSQ, 0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_REDUCE,             3,  1,  1,200000,0,0, 0,  0,  0, EBMC_REDUCE_SUMSQ, 0, 1, TOL_RED, TOL_RED},
    {EBMC_OP_REDUCE,             1,  1,  1,300000,0,0, 0,  0,  0, EBMC_REDUCE_SUM,   0, 0, TOL_RED, TOL_RED},
    {EBMC_OP_REDUCE,             5,  1,  1,5000, 0, 0, 0,  0,  0, EBMC_REDUCE_SUM,   0, 1, TOL_RED, TOL_RED},
    /* Adam: var = steps, x1 = weight decay */
    {EBMC_OP_ADAM,               1,  1,  1,10000, 0, 0, 0,  0,  0,  5, 0,    0,    TOL_ADAM, TOL_ADAM},
    {EBMC_OP_ADAM,               1,  1,  1,3001, 0, 0, 0,  0,  0,  3, 1e-2f, 0,    TOL_ADAM, TOL_ADAM},
    {EBMC_OP_ADAM,               1,  1,  1,3001, 1, 0, 0,  0,  0,  3, 0,     0,    TOL_ADAM, TOL_ADAM},
    /* Langevin, all noise modes: plain; from the device step counter; clip + clamp with a
     * partial last group (E = 130); NEXT with clip + clamp (E = 105, odd); a long chain (many
     * blocks per chain); 70000 chains (more than one grid row: the kernel strides over chains) */
    {EBMC_OP_LANGEVIN,           5,  3,  8,  8,  0, 0, 0,  0,  0, EBMC_NOISE_OFF,   0,    0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_LANGEVIN,           5,  3,  8,  8,  0, 0, 1,  0,  0, EBMC_NOISE_AFTER, 0,    0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_LANGEVIN,           7,  1,  1,130,  1, 0, 1,  0,  0, EBMC_NOISE_AFTER, 0.5f, 0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_LANGEVIN,           7,  1,  1,130,  1, 0, 0,  0,  0, EBMC_NOISE_OFF,   0.5f, 0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_LANGEVIN,           4,  3,  5,  7,  1, 0, 1,  0,  0, EBMC_NOISE_NEXT,  0.5f, 0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_LANGEVIN,           4,  3,  5,  7,  0, 0, 0,  0,  0, EBMC_NOISE_NEXT,  0,    0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_LANGEVIN,           3,  1,  1,100000,0,0, 1,  0,  0, EBMC_NOISE_AFTER, 0,    0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_LANGEVIN,       70000,  1,  1,  5,  1, 0, 1,  0,  0, EBMC_NOISE_AFTER, 0.5f, 0, TOL_NOISE, TOL_NOISE},
    /* rng: normal and uniform, overwrite and accumulate */
    {EBMC_OP_RNG,                5,  3,  8,  8,  0, 0, 1,  0,  0, EBMC_RNG_NORMAL,  0,    0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_RNG,                5,  1,  1, 37,  0, 0, 0,  0,  0, EBMC_RNG_UNIFORM, 0,    0, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_RNG,                5,  1,  1, 37,  0, 0, 1,  0,  0, EBMC_RNG_NORMAL,  0,    1, TOL_NOISE, TOL_NOISE},
    {EBMC_OP_RNG,                5,  1,  1, 37,  0, 0, 0,  0,  0, EBMC_RNG_UNIFORM, 0,    1, TOL_NOISE, TOL_NOISE},
    /* reparam: log-variance (k = 0.5) and log-std (k = 1) heads */
    {EBMC_OP_REPARAM,            6,  1,  1, 50,  0, 0, 1,  0,  0,  0, 0.5f,  0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_REPARAM,            3,  2,  3,  3,  0, 0, 0,  0,  0,  0, 1.0f,  0,    TOL_NOISE, TOL_NOISE},
    /* scaled_diff with beta 0 (out not read) and 1 */
    {EBMC_OP_SCALED_DIFF,        1,  1,  1,1001, 0, 0, 0,  0,  0,  0, 2.5f,  0,    TOL_EW,   TOL_EW},
    {EBMC_OP_SCALED_DIFF,        1,  1,  1,1001, 0, 0, 0,  0,  0,  0, -0.75f, 1,   TOL_EW,   TOL_EW},
    /* counter_add */
    {EBMC_OP_COUNTER_ADD,        1,  1,  1,  1,1000,0, 0,  0,  0,  0, 0,     0,    TOL_EXACT, TOL_EXACT},
    /* replay: sample float / uint8 (both reuse and fresh chains), an empty buffer (all fresh);
     * push float / uint8 with a head that wraps around the capacity */
    {EBMC_OP_REPLAY_SAMPLE,     50,  3,  4,  4, 10, 7, 1,  0,  0,  0, 0.7f,  0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_REPLAY_SAMPLE,     50,  3,  4,  4, 10, 7, 0,  0,  0,  1, 0.7f,  0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_REPLAY_SAMPLE,     20,  1,  1, 10, 10, 0, 0,  0,  0,  0, 0.9f,  0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_REPLAY_SAMPLE,     21,  1,  1, 10, 10, 7, 1,  0,  0,  0, 0.5f,  0,    TOL_NOISE, TOL_NOISE}, /* chain0 */
    {EBMC_OP_REPLAY_PUSH,        6,  3,  4,  4, 10, 7, 0,  0,  0,  0, 0,     0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_REPLAY_PUSH,        6,  3,  4,  5, 10, 7, 0,  0,  0,  1, 0,     0,    TOL_EXACT, TOL_EXACT},
    /* uint8 push with IGEBM's 255 levels (compress_x_mod) */
    {EBMC_OP_REPLAY_PUSH,        6,  3,  4,  5, 10, 7, 0,  0,255,  1, 0,     0,    TOL_EXACT, TOL_EXACT},
    /* gauss_nll: with and without the loss, beta 0 and 1, rows shorter than a block */
    {EBMC_OP_GAUSS_NLL,          8,  1,  1,128,  0, 0, 0,  0,  0,  0, 0.5f,  0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GAUSS_NLL,          3,  1,  1,1000, 0, 0, 0,  0,  0,  1, 1.0f,  1,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GAUSS_NLL,          5,  1,  1,  3,  0, 0, 0,  0,  0,  0, 1.0f,  1,    TOL_NOISE, TOL_NOISE},
    /* chan_scale (IGEBM's learned scale): forward; backward, dx and ds at beta 0 and 1 */
    {EBMC_OP_CHAN_SCALE_FWD,     3,  8,  5,  7,  0, 0, 0,  0,  0,  0, 0,     0,    TOL_EW,   TOL_EW},
    {EBMC_OP_CHAN_SCALE_BWD,     3,  8,  5,  7,  0, 0, 0,  0,  0,  0, 0,     0,    TOL_RED,  TOL_RED},
    {EBMC_OP_CHAN_SCALE_BWD,     2, 16,  9,  9,  0, 0, 0,  0,  0,  0, 0,     1,    TOL_RED,  TOL_RED},
    /* spectral norm with IGEBM's lower bound (s = 1): divisor sigma + 1e-6 > 1, and the
     * divisor-1 regime (x1 = 1: a tiny W; sigma = 1 given to the backward) */
    {EBMC_OP_SN_POWER,           0,  8,  0,  0, 16, 3, 1,  0,  0,  1, 0,     0,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_POWER,           0,  8,  0,  0, 16, 3, 1,  0,  0,  1, 1.0f,  0,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_BWD,             0,  8,  0,  0, 16, 3, 1,  0,  0,  0, 0,     1,    TOL_RED,  TOL_RED},
    {EBMC_OP_SN_BWD,             0,  8,  0,  0, 16, 3, 1,  0,  0,  0, 1.0f,  0,    TOL_RED,  TOL_RED},
    /* gauss_kl: log-std and log-variance heads, with/without the loss and the reparam term */
    {EBMC_OP_GAUSS_KL,           8,  1,  1,100,  0, 0, 0,  0,  0,  0, 1.0f,  0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GAUSS_KL,           3,  1,  1,1000, 0, 0, 0,  0,  0,  1, 0.5f,  1,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GAUSS_KL,           5,  1,  1,  3,  0, 0, 0,  0,  0,  2, 1.0f,  1,    TOL_NOISE, TOL_NOISE},
    /* weighted walkers: the float64 log-weight increment (ULA, cold kernel, energy difference),
     * log-sum-exp/ESS/weights (one walker, one block's worth, many per thread), resampling
     * (systematic, multinomial, not triggered, a device step),
     * the Gaussian mixture (50-D, two modes as the experiment; more components) */
    {EBMC_OP_JZ_LOGW,          300,  1,  1, 50,  0, 0, 0,  0,  0, EBMC_JZ_ULA, 0.1f, 0, TOL_F64, TOL_F64},
    {EBMC_OP_JZ_LOGW,            7,  3,  8,  8,  0, 1, 0,  0,  0, EBMC_JZ_ULA, 0.01f, 0, TOL_F64, TOL_F64},
    {EBMC_OP_JZ_LOGW,         1000,  1,  1,  1,  0, 0, 0,  0,  0, EBMC_JZ_EDIFF, 0.1f, 0, TOL_F64, TOL_F64},
    {EBMC_OP_JZ_STATS,           1,  1,  1,  1,  0, 0, 0,  0,  0,  0, 1.0f,  0,    TOL_F64, TOL_F64},
    {EBMC_OP_JZ_STATS,        1000,  1,  1,  1,  0, 0, 0,  0,  0,  0, -1.0f, 0,    TOL_F64, TOL_F64},
    {EBMC_OP_JZ_STATS,      100000,  1,  1,  1,  0, 0, 0,  0,  0,  1, 1.0f,  0,    TOL_F64, TOL_F64},
    {EBMC_OP_JZ_RESAMPLE,     5000,  1,  1,  1,  0, 0, 0,  0,  0, EBMC_RESAMPLE_SYSTEMATIC, 2.0f, 0, TOL_EXACT, TOL_EXACT},
    {EBMC_OP_JZ_RESAMPLE,     3001,  1,  1,  1,  0, 0, 1,  0,  0, EBMC_RESAMPLE_MULTINOMIAL, 2.0f, 0, TOL_EXACT, TOL_EXACT},
    {EBMC_OP_JZ_RESAMPLE,      100,  1,  1,  1,  0, 0, 0,  0,  0, EBMC_RESAMPLE_SYSTEMATIC, 0.0f, 0, TOL_EXACT, TOL_EXACT},
    {EBMC_OP_GMM_EVAL,         500, 50,  1,  1,  2, 0, 0,  0,  0,  0, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_GMM_EVAL,          33,  7,  1,  1,  5, 0, 0,  0,  0,  1, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_GMM_PGRAD,       2000, 50,  1,  1,  2, 0, 0,  0,  0,  0, -1.0f, 0,    TOL_EW,    TOL_EW},
    {EBMC_OP_GMM_PGRAD,         33,  7,  1,  1,  5, 0, 0,  0,  0,  1, 0.5f,  1,    TOL_EW,    TOL_EW},
    /* particle dynamics: parametric Swish (MLP rows, conv channels), Gaussian base energy
     * (with and without dx / parameter gradients), row gather/scatter (exact copies) */
    {EBMC_OP_PSWISH_FWD,        10,300,  1,  1,  0, 0, 0,  0,  0,  0, 0,     0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_PSWISH_BWD,        10,300,  1,  1,  0, 0, 0,  0,  0,  0, 0,     0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_PSWISH_BWD,         3,  5,  4,  4,  0, 0, 0,  0,  0,  1, 0,     1,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GBASE_FWD,        300,  2,  1,  1,  0, 0, 0,  0,  0,  0, 0,     0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GBASE_BWD,        300,  2,  1,  1,  0, 0, 0,  0,  0,  0, 0,     0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GBASE_BWD,          5,  1, 28, 28,  0, 0, 0,  0,  0,  1, 0,     1,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GBASE_BWD,          5,  3,  1,  1,  0, 0, 0,  0,  0,  2, 0,     1,    TOL_NOISE, TOL_NOISE},
    /* both parameter sums of gbase_dparam (two block_dsum calls in one kernel), rows > the
     * block: the second call's shared writes against the first's reads (issue 22, item 8:
     * compute-sanitizer racecheck flags the hazard without the leading barrier) */
    {EBMC_OP_GBASE_BWD,       1000,  3,  1,  1,  0, 0, 0,  0,  0,  0, 0,     1,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_ROWS_COPY,         10,  2,  1,  1,  0, 0, 0,  0,  0,  0, 0,     0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_ROWS_COPY,          9,  1,  4,  4,  0, 0, 0,  0,  0,  1, 0,     0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_ROWS_COPY,          9,  1,  4,  4,  0, 0, 0,  0,  0,  2, 0,     0,    TOL_EXACT, TOL_EXACT},
    /* the walkers' resampling gather: n ancestors into 80 / 1000 rows, repeats (var 3) */
    {EBMC_OP_ROWS_COPY,         64,  3,  4,  4, 80, 0, 0,  0,  0,  3, 0,     0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_ROWS_COPY,       1000,  1,  1,  1,1000,0, 0,  0,  0,  3, 0,     0,    TOL_EXACT, TOL_EXACT},
    /* Inception-v3's inference layers (ebmc eval): max pools 3x3/s2 (stem, Mixed_6a/7a) and
     * 3x3/s1/p1 (Mixed_7c), average pools 3x3/s1/p1 without (FID blocks) and with the padding
     * counted, an odd window; both backends sum each window in the same order and divide once:
     * identical up to the last bit, TOL_EW. Bilinear resize 32 -> 299 as pytorch-fid does it,
     * and a shrink on one axis (float weights, no FMA on the device). Channel concatenation:
     * a copy into channels [3, 8) of 12, the others kept (INOUT), TOL_EXACT. */
    {EBMC_OP_POOL2D_FWD,         2,  5, 15, 15,  0, 3, 2,  0,  0,  0, 0,     0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_POOL2D_FWD,         2,  4,  9,  9,  0, 3, 1,  1,  0,  0, 0,     0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_POOL2D_FWD,         2,  4,  9,  8,  0, 3, 1,  1,  0,  1, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_POOL2D_FWD,         2,  4,  9,  8,  1, 3, 1,  1,  0,  1, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_POOL2D_FWD,         1,  3, 11, 13,  0, 5, 3,  2,  0,  1, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_RESIZE_FWD,         2,  3, 32, 32,299,299,0,  0,  0,  0, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_RESIZE_FWD,         1,  2,  5,  7, 13, 4, 0,  0,  0,  0, 0,     0,    TOL_EW,    TOL_EW},
    /* var 1: TF 1's source coordinates (the TF FID graph's front end) */
    {EBMC_OP_RESIZE_FWD,         2,  3, 32, 32,299,299,0,  0,  0,  1, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_RESIZE_FWD,         1,  2,  5,  7, 13, 4, 0,  0,  0,  1, 0,     0,    TOL_EW,    TOL_EW},
    {EBMC_OP_CHAN_COPY,          2,  5,  6,  7, 12, 3, 0,  0,  0,  0, 0,     0,    TOL_EXACT, TOL_EXACT},
    /* dropout (IGEBM, p = 0.5): the mask a function of (seed, stream, step, row, element) on
     * both sides, so the outputs are x/0.5 or 0 on both: exact. A device step counter, an odd
     * row count on a data-parallel rank's chains, a group offset (a later layer), the
     * backward's accumulation (beta 1) and another p (x / 0.7f: one correctly rounded division
     * on both sides, exact too) */
    {EBMC_OP_DROPOUT,            4,  8,  5,  5,  0, 0, 1,  0,  0,  0, 0.5f,  0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_DROPOUT,            3,  2,  3,  3,  0,40, 0,  0,  0,  0, 0.5f,  1,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_DROPOUT,           64,  1,  1,  1,  0, 0, 1,  0,  0,  0, 0.3f,  0,    TOL_EXACT, TOL_EXACT},
    /* training widths (issue 17): the Dual-MCMC CIFAR-10 nets run 512 channels at batch 100
     * (configs/cifar10_dual_mcmc.ini: ndf = ngf = 512, batch_size = 100): 3x3 convolutions of
     * the E net's 4x4 stage, the generator's 4x4/s2 transposed convolution 512 -> 256 and a
     * 512-wide linear. Sums of 512*9 = 4608 terms: FP32 reordering stays ~sqrt(4608) u32 ~ 4e-6
     * relative (nmse ~ 2e-11 << TOL_MM32); TF32's operand rounding is per product, so its nmse
     * stays ~2 u_tf32^2 / 3 whatever the length (TOL_TF32). 7.5 GFLOP at most per row on the
     * CPU reference. */
    {EBMC_OP_CONV2D_FWD,       100,512,  4,  4,512, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_DATA,  100,512,  4,  4,512, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONV2D_BWD_FILTER,100,512,  4,  4,512, 3, 1,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_FWD,      100,512,  4,  4,256, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_DATA, 100,512,  4,  4,256, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_CONVT2D_BWD_FILTER,100,512, 4,  4,256, 4, 2,  1,  0,  0, 0,    0,    TOL_MM32, TOL_TF32},
    {EBMC_OP_LINEAR_FWD,       100,512,  1,  1,512, 0, 0,  0,  0,  1, 0,    0,    TOL_MM32, TOL_TF32},
};
#define NROWS ((int)(sizeof ROWS / sizeof ROWS[0]))

static bool is_matmul(ebmc_op op) { return op <= EBMC_OP_LINEAR_BWD_FILTER; }

/* ---- the parity runner ---- */

typedef struct {
    ebmc_ctx_t *cpu;
    ebmc_ctx_t *fp32;   /* FP32, deterministic */
    ebmc_ctx_t *tf32;   /* TF32, deterministic */
    ebmc_ctx_t *tf32nd; /* TF32, non-deterministic algorithms allowed (the training default) */
} env;

static const char *g_filter = NULL;
static int g_rows_run = 0;
/* --skip-large (or EBMC_TEST_SKIP_LARGE=1): leave out the training-width rows (batch 100, 512
 * channels), e.g. under compute-sanitizer, where their kernels run many times slower */
static bool g_skip_large = false;
/* --own-kernels: leave out the cuDNN/cuBLAS rows (is_matmul), for compute-sanitizer */
static bool g_own_kernels = false;

/* tu_nmse for doubles: mse(a - ref) / mean(ref^2); a NaN or an infinity where ref has none fails */
static double nmse_f64(const double *a, const double *ref, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(ref[i]) || isinf(a[i]) != isinf(ref[i])) return INFINITY;
        if (!isfinite(ref[i])) continue;
        e += (a[i] - ref[i]) * (a[i] - ref[i]);
        s += ref[i] * ref[i];
    }
    return s > 0 ? e / s : (e > 0 ? INFINITY : 0.0);
}

/* Runs one row on the CPU and on gpu; prints a line per compared output; returns the number of
 * failures (nmse above tol, a NaN where the CPU has a number, a broken guard, an error). */
static int run_row(const env *e, ebmc_ctx_t *gpu, const char *prec, int idx, double tol) {
    const prow *r = &ROWS[idx];
    pcase pc;
    parity_build_case(r, &pc);
    if (g_filter && !strstr(pc.label, g_filter)) return 0;
    if (g_skip_large && r->n >= 100 && r->c >= 512) return 0;
    if (g_own_kernels && is_matmul(r->op)) return 0;
    g_rows_run++;
    tu_rng rng;
    tu_rng_seed(&rng, parity_label_seed(pc.label));
    float *host[MAXB];
    tu_dbuf bc[MAXB], bg[MAXB];
    float *pcpu[MAXB], *pgpu[MAXB];
    for (int b = 0; b < pc.nb; b++) {
        host[b] = tu_malloc(pc.b[b].n);
        parity_fill_host(&rng, host[b], pc.b[b].n, pc.b[b].fill);
    }
    if (r->op == EBMC_OP_BN_BWD) parity_bn_stats_host(&pc.bn, host[0], host[3], host[4]);
    if (r->op == EBMC_OP_SN_POWER && r->var == 0) parity_sn_align_u(&pc.sn, host[0], host[1], host[2]);
    parity_fix_host(r, &pc, host);
    for (int b = 0; b < pc.nb; b++) {
        bc[b] = tu_dbuf_alloc(e->cpu, pc.b[b].n); /* NaN-poisoned */
        bg[b] = tu_dbuf_alloc(gpu, pc.b[b].n);
        if (pc.b[b].role != B_OUT) {
            tu_dbuf_upload(&bc[b], host[b]);
            tu_dbuf_upload(&bg[b], host[b]);
        }
        pcpu[b] = bc[b].p;
        pgpu[b] = bg[b].p;
    }
    int fails = 0;
    ebmc_status sc = parity_call_op(e->cpu, r, &pc, pcpu);
    ebmc_status sg = parity_call_op(gpu, r, &pc, pgpu);
    if (sc != EBMC_OK || sg != EBMC_OK) {
        printf("  FAIL %-78s | %-6s | cpu: %s (%s) cuda: %s (%s)\n", pc.label, prec,
               ebmc_status_str(sc), ebmc_ctx_error(e->cpu), ebmc_status_str(sg),
               ebmc_ctx_error(gpu));
        fails++;
    } else if (ebmc_sync(gpu) != EBMC_OK) {
        printf("  FAIL %-78s | %-6s | sync: %s\n", pc.label, prec, ebmc_ctx_error(gpu));
        fails++;
    } else {
        for (int b = 0; b < pc.nb; b++) {
            if (pc.b[b].role == B_IN) continue;
            const size_t n = pc.b[b].n;
            float *ref = tu_malloc(n), *got = tu_malloc(n);
            tu_dbuf_download(&bc[b], ref);
            tu_dbuf_download(&bg[b], got);
            const bool bytes = pc.b[b].bytes;
            size_t ndiff = 0; /* bytes that differ (byte buffers) */
            for (size_t i = 0; bytes && i < n * sizeof(float); i++)
                ndiff += ((const unsigned char *)got)[i] != ((const unsigned char *)ref)[i];
            const double nmse = bytes ? (ndiff ? INFINITY : 0.0)
                                : pc.b[b].f64 ? nmse_f64((const double *)got, (const double *)ref, n / 2)
                                              : tu_nmse(got, ref, n);
            const bool guards = tu_dbuf_guards_ok(&bg[b]) && tu_dbuf_guards_ok(&bc[b]);
            const bool ok = nmse <= tol && guards;
            char head[32];
            if (bytes)
                snprintf(head, sizeof head, ndiff ? "%zu bytes differ" : "bitwise", ndiff);
            else if (nmse == 0 && !memcmp(got, ref, n * sizeof(float)))
                snprintf(head, sizeof head, "bitwise");
            else if (nmse == 0)
                snprintf(head, sizeof head, "exact");
            else if (isfinite(nmse))
                snprintf(head, sizeof head, "%.3gx", tol / nmse);
            else
                snprintf(head, sizeof head, "-");
            char out[32];
            snprintf(out, sizeof out, "[%s]", pc.b[b].name);
            printf("  %s %-78s %-14s | %-6s | %-9.3g | %-7.0e | %s%s\n", ok ? "ok  " : "FAIL",
                   pc.label, out, prec, nmse, tol, head,
                   guards ? "" : " | GUARD REGION OVERWRITTEN");
            if (!ok) {
                fails++;
                printf("       first values cuda/cpu:");
                for (size_t i = 0; i < n && i < 6; i++)
                    printf(" %.7g/%.7g", (double)got[i], (double)ref[i]);
                printf("\n");
            }
            free(ref);
            free(got);
        }
    }
    for (int b = 0; b < pc.nb; b++) {
        tu_dbuf_free(&bc[b]);
        tu_dbuf_free(&bg[b]);
        free(host[b]);
    }
    return fails;
}

static void run_table(const env *e, ebmc_ctx_t *gpu, const char *prec, bool matmul_only) {
    printf("       %-78s %-14s | %-6s | %-9s | %-7s | %s\n", "op and shape", "[output]", "prec",
           "nmse", "tol", "headroom (tol/nmse)");
    int fails = 0;
    for (int i = 0; i < NROWS; i++) {
        if (matmul_only && !is_matmul(ROWS[i].op)) continue;
        const bool tf = ebmc_ctx_precision(gpu) == EBMC_PREC_TF32;
        fails += run_row(e, gpu, prec, i, tf ? ROWS[i].tol_tf32 : ROWS[i].tol32);
    }
    if (fails) fail_msg("%d parity check(s) failed in %s (lines marked FAIL above)", fails, prec);
}

static void test_parity_fp32(void **state) {
    const env *e = *state;
    run_table(e, e->fp32, "fp32", false);
}

static void test_parity_tf32(void **state) {
    const env *e = *state;
    run_table(e, e->tf32, "tf32", false);
}

static void test_parity_tf32_nondeterministic(void **state) {
    const env *e = *state;
    run_table(e, e->tf32nd, "tf32nd", true);
}

/* The wrappers validate, supports() plans: bad calls return a status and a message. */
static void expect_error(ebmc_ctx_t *ctx, ebmc_status got, const char *what) {
    const char *msg = ebmc_ctx_error(ctx);
    printf("  %-40s -> %s: %s\n", what, ebmc_status_str(got), msg);
    assert_int_not_equal(got, EBMC_OK);
    assert_true(strlen(msg) > 0);
}

static void test_bad_calls(void **state) {
    const env *e = *state;
    ebmc_ctx_t *g = e->fp32;
    tu_dbuf a = tu_dbuf_alloc(g, 4096), b = tu_dbuf_alloc(g, 4096), c = tu_dbuf_alloc(g, 4096);
    ebmc_conv_desc d = ebmc_conv_desc_make(1, 2, 3, 3, 2, 5, 1, 0); /* 5x5 kernel on 3x3 */
    expect_error(g, ebmc_conv2d_fwd(g, &d, a.p, b.p, c.p), "conv 5x5 on a 3x3 input");
    assert_false(ebmc_supports(g, EBMC_OP_CONV2D_FWD, &d));
    d = ebmc_convt_desc_make(1, 2, 4, 4, 2, 4, 2, 1, 2); /* output padding >= stride */
    expect_error(g, ebmc_convt2d_fwd(g, &d, a.p, b.p, c.p), "convt output padding 2, stride 2");
    d = ebmc_conv_desc_make(1, 2, 8, 8, 2, 3, 1, 1);
    expect_error(g, ebmc_conv2d_fwd(g, &d, NULL, b.p, c.p), "conv with a NULL input");
    expect_error(g, ebmc_convt2d_fwd(g, &d, a.p, b.p, c.p), "convt op with a conv descriptor");
    ebmc_linear_desc l = {.n = 0, .in = 4, .out = 4};
    expect_error(g, ebmc_linear_fwd(g, &l, a.p, b.p, NULL, c.p), "linear with N = 0");
    ebmc_bn_desc bn = {1, 3, 1, 1, 1e-5f, 0.1f};
    expect_error(g, ebmc_bn_fwd(g, &bn, a.p, b.p, b.p, c.p, c.p, c.p, NULL, NULL),
                 "batchnorm with one value per channel");
    ebmc_langevin_desc ld = {.n_chains = 2, .chain_elems = 8, .a = 0.1f, .noise = EBMC_NOISE_AFTER};
    expect_error(g, ebmc_langevin(g, &ld, a.p, NULL), "langevin with a NULL gradient");
    ld.clamp = true, ld.lo = 1.0f, ld.hi = -1.0f;
    expect_error(g, ebmc_langevin(g, &ld, a.p, b.p), "langevin with an empty clamp range");
    ebmc_replay_desc rd = {.n_chains = 8, .chain_elems = 4, .capacity = 4, .lo = -1, .hi = 1};
    expect_error(g, ebmc_replay_push_op(g, &rd, b.p, a.p), "replay push of 8 into 4 slots");
    /* the context still works */
    d = ebmc_conv_desc_make(1, 2, 8, 8, 2, 3, 1, 1);
    assert_int_equal(ebmc_conv2d_fwd(g, &d, a.p, b.p, c.p), EBMC_OK);
    assert_int_equal(ebmc_sync(g), EBMC_OK);
    assert_true(tu_dbuf_guards_ok(&c));
    tu_dbuf_free(&a);
    tu_dbuf_free(&b);
    tu_dbuf_free(&c);
}

/* workspace_size() is enough: reserve it, freeze, run (asymmetric pads need the pad buffer on
 * top of cuDNN's workspace); a larger op then fails with EBMC_E_WORKSPACE, not an allocation. */
/* A context on device 1 driven from a thread whose current device is 0 (issue 17: every entry
 * point makes the context's device current). Needs two GPUs: skipped otherwise. The same
 * convolution, run from the creating thread and from a new one, must succeed and agree. */
typedef struct {
    ebmc_ctx_t *ctx;
    ebmc_conv_desc d;
    float *x, *w, *y, *host;
    size_t ny;
    ebmc_status st;
} dev1_job;

static void *dev1_thread(void *arg) {
    dev1_job *j = arg;
    ebmc_fill_desc f = {j->ny, 7.0f};
    j->st = ebmc_fill(j->ctx, &f, j->y);
    if (!j->st) j->st = ebmc_conv2d_fwd(j->ctx, &j->d, j->x, j->w, j->y);
    if (!j->st) j->st = ebmc_sync(j->ctx);
    if (!j->st) j->st = ebmc_copy(j->ctx, j->host, j->y, j->ny * sizeof(float), EBMC_COPY_D2H);
    return NULL;
}

static void test_device1_from_thread(void **state) {
    (void)state;
    if (ebmc_cuda_device_count() < 2) {
        printf("  SKIPPED: one CUDA device; a context on device 1 used from another thread was "
               "not checked\n");
        skip();
    }
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CUDA;
    o.device = 1;
    char err[512];
    dev1_job j = {0};
    assert_int_equal(ebmc_ctx_create(&o, &j.ctx, err, sizeof err), EBMC_OK);
    j.d = ebmc_conv_desc_make(2, 8, 8, 8, 16, 3, 1, 1);
    const size_t nx = ebmc_conv_x_count(&j.d), nw = ebmc_conv_w_count(&j.d);
    j.ny = ebmc_conv_y_count(&j.d);
    float *hx = tu_malloc(nx), *hw = tu_malloc(nw), *first = tu_malloc(j.ny);
    tu_rng r;
    tu_rng_seed(&r, 3);
    tu_fill_normal(&r, hx, nx, 1.0f);
    tu_fill_normal(&r, hw, nw, 0.1f);
    assert_int_equal(ebmc_alloc(j.ctx, (void **)&j.x, nx * sizeof(float)), EBMC_OK);
    assert_int_equal(ebmc_alloc(j.ctx, (void **)&j.w, nw * sizeof(float)), EBMC_OK);
    assert_int_equal(ebmc_alloc(j.ctx, (void **)&j.y, j.ny * sizeof(float)), EBMC_OK);
    assert_int_equal(ebmc_copy(j.ctx, j.x, hx, nx * sizeof(float), EBMC_COPY_H2D), EBMC_OK);
    assert_int_equal(ebmc_copy(j.ctx, j.w, hw, nw * sizeof(float), EBMC_COPY_H2D), EBMC_OK);
    j.host = first;
    dev1_thread(&j); /* the creating thread */
    assert_int_equal(j.st, EBMC_OK);
    j.host = tu_malloc(j.ny);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dev1_thread, &j), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    printf("  device 1 from a new thread: %s\n", j.st ? ebmc_ctx_error(j.ctx) : "ok");
    assert_int_equal(j.st, EBMC_OK);
    assert_memory_equal(first, j.host, j.ny * sizeof(float));
    ebmc_free(j.ctx, j.x);
    ebmc_free(j.ctx, j.w);
    ebmc_free(j.ctx, j.y);
    ebmc_ctx_free(j.ctx);
    free(hx);
    free(hw);
    free(first);
    free(j.host);
}

static void test_workspace_plan(void **state) {
    (void)state;
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CUDA;
    o.precision = EBMC_PREC_FP32;
    o.deterministic = true;
    o.quiet = true;
    ebmc_ctx_t *g = NULL;
    char err[512];
    assert_int_equal(ebmc_ctx_create(&o, &g, err, sizeof err), EBMC_OK);
    const ebmc_conv_desc d = ebmc_conv_desc_same_tf(2, 8, 16, 16, 8, 3, 2, 0); /* pads t0 b1 */
    const ebmc_conv_desc dt = ebmc_convt_desc_make(2, 8, 7, 7, 4, 5, 2, 2, 1);
    size_t ws = 0;
    const ebmc_op ops[] = {EBMC_OP_CONV2D_FWD, EBMC_OP_CONV2D_BWD_DATA,
                           EBMC_OP_CONV2D_BWD_FILTER};
    const ebmc_op opst[] = {EBMC_OP_CONVT2D_FWD, EBMC_OP_CONVT2D_BWD_DATA,
                            EBMC_OP_CONVT2D_BWD_FILTER};
    for (int i = 0; i < 3; i++) {
        size_t a = ebmc_workspace_size(g, ops[i], &d), b = ebmc_workspace_size(g, opst[i], &dt);
        printf("  workspace %-20s %8zu bytes   %-20s %8zu bytes\n", ebmc_op_name(ops[i]), a,
               ebmc_op_name(opst[i]), b);
        assert_true(a > 0 && b > 0); /* at least the pad buffer */
        ws = a > ws ? a : ws;
        ws = b > ws ? b : ws;
    }
    assert_int_equal(ebmc_ctx_reserve_workspace(g, ws), EBMC_OK);
    ebmc_ctx_freeze_workspace(g);
    tu_dbuf x = tu_dbuf_alloc(g, 4096), w = tu_dbuf_alloc(g, 4096), y = tu_dbuf_alloc(g, 4096);
    ebmc_fill_desc f = {.count = 4096, .value = 0.5f};
    assert_int_equal(ebmc_fill(g, &f, x.p), EBMC_OK);
    assert_int_equal(ebmc_fill(g, &f, w.p), EBMC_OK);
    assert_int_equal(ebmc_conv2d_fwd(g, &d, x.p, w.p, y.p), EBMC_OK);
    assert_int_equal(ebmc_conv2d_bwd_data(g, &d, y.p, w.p, x.p, 0.f), EBMC_OK);
    assert_int_equal(ebmc_conv2d_bwd_filter(g, &d, x.p, y.p, w.p, 0.f), EBMC_OK);
    assert_int_equal(ebmc_convt2d_fwd(g, &dt, x.p, w.p, y.p), EBMC_OK);
    assert_int_equal(ebmc_convt2d_bwd_data(g, &dt, y.p, w.p, x.p, 0.f), EBMC_OK);
    assert_int_equal(ebmc_convt2d_bwd_filter(g, &dt, x.p, y.p, w.p, 0.f), EBMC_OK);
    assert_int_equal(ebmc_sync(g), EBMC_OK);
    assert_int_equal(ebmc_ctx_workspace_bytes(g), ws);
    /* a 128x128 input: its pad buffer alone (2*8*129*129 floats) is 1 MiB; it must not fit */
    const ebmc_conv_desc big = ebmc_conv_desc_same_tf(2, 8, 128, 128, 8, 3, 2, 0);
    const size_t need = ebmc_workspace_size(g, EBMC_OP_CONV2D_FWD, &big);
    tu_dbuf bx = tu_dbuf_alloc(g, ebmc_conv_x_count(&big)),
            by = tu_dbuf_alloc(g, ebmc_conv_y_count(&big));
    const ebmc_status s = ebmc_conv2d_fwd(g, &big, bx.p, w.p, by.p);
    printf("  frozen workspace of %zu bytes, op needing %zu -> %s: %s\n", ws, need,
           ebmc_status_str(s), ebmc_ctx_error(g));
    if (need > ws)
        assert_int_equal(s, EBMC_E_WORKSPACE);
    else /* cuDNN chose an algorithm with a huge workspace for the small shapes: nothing to test */
        assert_int_equal(s, EBMC_OK);
    tu_dbuf_free(&bx);
    tu_dbuf_free(&by);
    tu_dbuf_free(&x);
    tu_dbuf_free(&w);
    tu_dbuf_free(&y);
    ebmc_ctx_free(g);
}

/* ---- contexts ---- */

static ebmc_ctx_t *cuda_ctx(ebmc_precision prec, bool det, char *err, size_t errlen) {
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CUDA;
    o.precision = prec;
    o.deterministic = det;
    o.quiet = true;
    ebmc_ctx_t *ctx = NULL;
    if (ebmc_ctx_create(&o, &ctx, err, errlen) != EBMC_OK) return NULL;
    return ctx;
}

static int group_setup(void **state) {
    static env e;
    char err[512];
    e.cpu = tu_ctx_cpu();
    if (!(e.fp32 = cuda_ctx(EBMC_PREC_FP32, true, err, sizeof err)) ||
        !(e.tf32 = cuda_ctx(EBMC_PREC_TF32, true, err, sizeof err)) ||
        !(e.tf32nd = cuda_ctx(EBMC_PREC_TF32, false, err, sizeof err))) {
        printf("test_ops_cuda: a CUDA device is present but a CUDA context failed: %s\n", err);
        return -1;
    }
    *state = &e;
    return 0;
}

static int group_teardown(void **state) {
    env *e = *state;
    if (!e) return 0;
    ebmc_ctx_free(e->tf32nd);
    ebmc_ctx_free(e->tf32);
    ebmc_ctx_free(e->fp32);
    ebmc_ctx_free(e->cpu);
    return 0;
}

/* Every op of the table (EBMC_OPS, include/ebmc/backend.h) has a parity row, and every row
 * builds a case (buffers and a label). Checked first, on any machine, with or without a device:
 * an op added to the list without a row fails here. Returns the number of problems. */
static int check_row_coverage(void) {
    int bad = 0;
    for (int op = 0; op < EBMC_OP_COUNT; op++) {
        bool has = false;
        for (int i = 0; i < NROWS && !has; i++) has = ROWS[i].op == (ebmc_op)op;
        if (!has) {
            printf("test_ops_cuda: op %s has no parity row in ROWS\n", ebmc_op_name((ebmc_op)op));
            bad++;
        }
    }
    for (int i = 0; i < NROWS; i++) {
        pcase pc;
        parity_build_case(&ROWS[i], &pc);
        if (pc.nb == 0 || !pc.label[0]) {
            printf("test_ops_cuda: row %d (%s) builds no case: add it to parity_build_case/parity_call_op\n", i,
                   ebmc_op_name(ROWS[i].op));
            bad++;
        }
    }
    return bad;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--filter") || !strcmp(argv[i], "--test")) && i + 1 < argc) {
            if (!strcmp(argv[i], "--filter"))
                g_filter = argv[i + 1];
            else
                cmocka_set_test_filter(argv[i + 1]);
            i++;
        } else if (!strcmp(argv[i], "--skip-large")) {
            g_skip_large = true;
        } else if (!strcmp(argv[i], "--own-kernels")) {
            g_own_kernels = true;
        } else {
            fprintf(stderr, "test_ops_cuda: unknown argument '%s' (--filter SUBSTRING, --test PATTERN, "
                            "--skip-large, --own-kernels)\n", argv[i]);
            return 2;
        }
    }
    const char *sl = getenv("EBMC_TEST_SKIP_LARGE");
    if (sl && sl[0] && strcmp(sl, "0") != 0) g_skip_large = true;
    if (check_row_coverage() != 0) return 1;
    if (ebmc_cuda_device_count() <= 0) {
        /* the reason, in the backend's words */
        char reason[512] = "ebmc_cuda_device_count() is 0";
        char err[512] = "";
        ebmc_ctx_t *c = cuda_ctx(EBMC_PREC_FP32, true, err, sizeof err);
        if (c)
            ebmc_ctx_free(c);
        else if (err[0])
            snprintf(reason, sizeof reason, "%s", err);
        printf("test_ops_cuda: SKIPPED — no CUDA device (%s); CUDA-vs-CPU parity was not "
               "checked\n", reason);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_fp32),
        cmocka_unit_test(test_parity_tf32),
        cmocka_unit_test(test_parity_tf32_nondeterministic),
        cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_workspace_plan),
        cmocka_unit_test(test_device1_from_thread),
    };
    const int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    if (g_filter && g_rows_run == 0) printf("test_ops_cuda: no row matches --filter '%s'\n", g_filter);
    return rc;
}
