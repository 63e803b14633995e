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
 * Without a CUDA device the whole executable prints one line and exits 77 (ctest: skipped).
 * Run one group of rows with `test_ops_cuda --filter SUBSTRING` (matched against the printed
 * op and shape). */
#include "testutil.h"
#include <math.h>
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
 *           buffers are compared byte for byte. */
#define TOL_EW 1e-12
#define TOL_NOISE 1e-12
#define TOL_EXACT 0.0
#define TOL_ADAM 1e-11
#define TOL_RED 1e-9
#define TOL_MM32 1e-8
#define TOL_TF32 1e-5

#define SAME (-1) /* pad column: TensorFlow 'SAME' padding (ebmc_conv_desc_same_tf) */

/* One parity case. Field meaning by op:
 *   conv, convt: input (n,c,h,w), co output channels, kernel k, stride s, pad (or SAME),
 *                opad output padding (convt)
 *   linear:      x (n,c) -> y (n,co); var = 1: with bias (fwd) / with db (bwd_filter)
 *   bias, avgpool2, act, axpby, fill, adam: (n,c,h,w) elements
 *   act:         var = ebmc_act_kind, x1 = LeakyReLU slope
 *   bn:          (n,c,h,w); var = 1: running statistics updated (fwd)
 *   sn:          W (co, c*k*k); var = power iterations (sn_power)
 *   upsample:    var = ebmc_upsample_mode;  gpool: var = ebmc_gpool_mode
 *   axpby:       y = x1*x + beta*y;  fill: value x1
 *   reduce:      x (n, c*h*w), var = ebmc_reduce_mode
 *   adam:        var = steps taken (1, 2, ...), x1 = weight decay
 *   samplers:    n chains of c*h*w elements; s = 1: the noise step comes from a device counter
 *                (step_base = 7, step_offset = 3), else step_offset = 11 alone
 *   langevin:    var = ebmc_noise_mode, x1 = clip (0: off), co = 1: clamp to [-1, 1];
 *                a = 0.1, b = 0.05, c = 0.3
 *   rng:         var = ebmc_rng_dist (normal: 0.5 + 2 N; uniform: U(-1, 3)); beta 1: accumulate
 *   reparam:     x1 = k (0.5: log-variance, 1: log-std)
 *   scaled_diff: out = x1*(a - b) + beta*out
 *   counter_add: delta = co (the counter starts at 0x3F800000, the bits of 1.0f, so the float
 *                comparison of the result is meaningful)
 *   replay:      var = 1: uint8 storage; co = capacity, k = count (sample) / head (push),
 *                x1 = p_reuse; [lo, hi] = [-1, 1]
 *   gauss_nll:   rows n, cols c*h*w; x1 = scale, var = 1: no loss output; eps 1e-6
 * beta: 0 overwrites the output (its old contents are NaN); 1 accumulates onto random data
 * (bn_bwd: both beta_dx and beta_param). */
typedef struct {
    ebmc_op op;
    int n, c, h, w;
    int co, k, s, pad, opad;
    int var;
    float x1;
    float beta;
    double tol32, tol_tf32;
} prow;

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
    {EBMC_OP_REPLAY_PUSH,        6,  3,  4,  4, 10, 7, 0,  0,  0,  0, 0,     0,    TOL_EXACT, TOL_EXACT},
    {EBMC_OP_REPLAY_PUSH,        6,  3,  4,  5, 10, 7, 0,  0,  0,  1, 0,     0,    TOL_EXACT, TOL_EXACT},
    /* gauss_nll: with and without the loss, beta 0 and 1, rows shorter than a block */
    {EBMC_OP_GAUSS_NLL,          8,  1,  1,128,  0, 0, 0,  0,  0,  0, 0.5f,  0,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GAUSS_NLL,          3,  1,  1,1000, 0, 0, 0,  0,  0,  1, 1.0f,  1,    TOL_NOISE, TOL_NOISE},
    {EBMC_OP_GAUSS_NLL,          5,  1,  1,  3,  0, 0, 0,  0,  0,  0, 1.0f,  1,    TOL_NOISE, TOL_NOISE},
};
#define NROWS ((int)(sizeof ROWS / sizeof ROWS[0]))

/* ---- buffers of one case ---- */

enum { B_IN, B_OUT, B_INOUT };                    /* OUT: poisoned, compared; INOUT: random, compared */
enum { F_NORMAL, F_AWAY, F_POS, F_TANH, F_UNIT, F_SMALLPOS, F_SIGMA, F_SHIFTED, F_STEP, F_ONEBITS };
#define STEP_BASE 7u    /* F_STEP: a uint32 step counter holding 7, in a float slot */
#define MAXB 10

typedef struct {
    const char *name;
    size_t n;
    int role, fill;
    bool bytes; /* compared byte for byte (uint8 storage, integers) */
} bspec;

typedef struct {
    ebmc_conv_desc conv;
    ebmc_linear_desc lin;
    ebmc_t4_desc t4;
    ebmc_act_desc act;
    ebmc_bn_desc bn;
    ebmc_sn_desc sn;
    ebmc_upsample_desc up;
    ebmc_gpool_desc gp;
    ebmc_axpby_desc ax;
    ebmc_fill_desc fill;
    ebmc_reduce_desc red;
    ebmc_adam_desc adam;
    ebmc_langevin_desc lgv;
    ebmc_rng_desc rng;
    ebmc_reparam_desc rep;
    ebmc_scaled_diff_desc sdiff;
    ebmc_counter_desc cnt;
    ebmc_replay_desc replay;
    ebmc_gauss_nll_desc nll;
    int step_buf; /* index of the device step counter buffer, or -1 */
    int nb;
    bspec b[MAXB];
    char label[160];
} pcase;

static void add(pcase *pc, const char *name, size_t n, int role, int fill) {
    pc->b[pc->nb++] = (bspec){name, n, role, fill, false};
}

/* The Philox key of a sampler row: s = 1 reads the step from a device counter buffer (added
 * last, so call_op can point step_base at it), else a fixed offset. */
static ebmc_rng_key row_key(const prow *r, pcase *pc) {
    ebmc_rng_key k = {.seed = 0x0123456789ABCDEFull ^ (uint64_t)r->n, .stream = 5,
                      .step_base = NULL, .step_offset = r->s ? 3u : 11u};
    pc->step_buf = -1;
    return k;
}

static void add_step_buf(const prow *r, pcase *pc) {
    if (!r->s) return;
    pc->step_buf = pc->nb;
    add(pc, "step", 1, B_IN, F_STEP);
}

static bool is_convt(ebmc_op op) {
    return op >= EBMC_OP_CONVT2D_FWD && op <= EBMC_OP_CONVT2D_BWD_FILTER;
}
static bool is_matmul(ebmc_op op) { return op <= EBMC_OP_LINEAR_BWD_FILTER; }

static ebmc_conv_desc conv_of(const prow *r) {
    if (r->pad == SAME)
        return ebmc_conv_desc_same_tf(r->n, r->c, r->h, r->w, r->co, r->k, r->s, is_convt(r->op));
    if (is_convt(r->op))
        return ebmc_convt_desc_make(r->n, r->c, r->h, r->w, r->co, r->k, r->s, r->pad, r->opad);
    return ebmc_conv_desc_make(r->n, r->c, r->h, r->w, r->co, r->k, r->s, r->pad);
}

/* Descriptors, buffers and a printable label of a row. */
static void build_case(const prow *r, pcase *pc) {
    memset(pc, 0, sizeof *pc);
    const int ob = r->beta != 0 ? B_INOUT : B_OUT; /* the role of an output with beta */
    const size_t cnt = (size_t)r->n * r->c * r->h * r->w;
    switch (r->op) {
    case EBMC_OP_CONV2D_FWD: case EBMC_OP_CONV2D_BWD_DATA: case EBMC_OP_CONV2D_BWD_FILTER:
    case EBMC_OP_CONVT2D_FWD: case EBMC_OP_CONVT2D_BWD_DATA: case EBMC_OP_CONVT2D_BWD_FILTER: {
        ebmc_conv_desc d = conv_of(r);
        pc->conv = d;
        int ho = 0, wo = 0;
        ebmc_conv_out_hw(&d, &ho, &wo);
        const size_t nx = ebmc_conv_x_count(&d), nw = ebmc_conv_w_count(&d),
                     ny = ebmc_conv_y_count(&d);
        snprintf(pc->label, sizeof pc->label,
                 "%s (%d,%d,%d,%d) k%d s%d pad t%d b%d l%d r%d op%d -> (%d,%d,%d,%d) beta %g",
                 ebmc_op_name(r->op), d.n, d.c_in, d.h, d.w, d.kh, d.stride_h, d.pad_t, d.pad_b,
                 d.pad_l, d.pad_r, d.out_pad_h, d.n, d.c_out, ho, wo, r->beta);
        if (r->op == EBMC_OP_CONV2D_FWD || r->op == EBMC_OP_CONVT2D_FWD) {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "y", ny, B_OUT, F_NORMAL);
        } else if (r->op == EBMC_OP_CONV2D_BWD_DATA || r->op == EBMC_OP_CONVT2D_BWD_DATA) {
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "dx", nx, ob, F_NORMAL);
        } else {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "dw", nw, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_LINEAR_FWD: case EBMC_OP_LINEAR_BWD_DATA: case EBMC_OP_LINEAR_BWD_FILTER: {
        pc->lin = (ebmc_linear_desc){.n = r->n, .in = r->c, .out = r->co};
        const size_t nx = (size_t)r->n * r->c, nw = (size_t)r->co * r->c,
                     ny = (size_t)r->n * r->co;
        snprintf(pc->label, sizeof pc->label, "%s x(%d,%d) W(%d,%d)%s beta %g",
                 ebmc_op_name(r->op), r->n, r->c, r->co, r->c,
                 r->var ? (r->op == EBMC_OP_LINEAR_FWD ? " +b" : " +db") : "", r->beta);
        if (r->op == EBMC_OP_LINEAR_FWD) {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            if (r->var) add(pc, "b", (size_t)r->co, B_IN, F_NORMAL);
            add(pc, "y", ny, B_OUT, F_NORMAL);
        } else if (r->op == EBMC_OP_LINEAR_BWD_DATA) {
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "dx", nx, ob, F_NORMAL);
        } else {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "dw", nw, ob, F_NORMAL);
            if (r->var) add(pc, "db", (size_t)r->co, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_BIAS_FWD: case EBMC_OP_BIAS_BWD:
        pc->t4 = (ebmc_t4_desc){r->n, r->c, r->h, r->w};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->n, r->c, r->h, r->w, r->beta);
        if (r->op == EBMC_OP_BIAS_FWD) {
            add(pc, "b", (size_t)r->c, B_IN, F_NORMAL);
            add(pc, "y", cnt, B_INOUT, F_NORMAL); /* in place: y += b */
        } else {
            add(pc, "dy", cnt, B_IN, F_NORMAL);
            add(pc, "db", (size_t)r->c, ob, F_NORMAL);
        }
        break;
    case EBMC_OP_ACT_FWD: case EBMC_OP_ACT_BWD: {
        static const char *const kinds[] = {"identity", "relu", "lrelu", "tanh", "silu"};
        pc->act = (ebmc_act_desc){.kind = (ebmc_act_kind)r->var, .slope = r->x1, .count = cnt};
        snprintf(pc->label, sizeof pc->label, "%s %s count %zu beta %g", ebmc_op_name(r->op),
                 kinds[r->var], cnt, r->beta);
        if (r->op == EBMC_OP_ACT_FWD) {
            add(pc, "x", cnt, B_IN, F_AWAY);
            add(pc, "y", cnt, B_OUT, F_NORMAL);
        } else {
            add(pc, "x", cnt, B_IN, F_AWAY);
            add(pc, "y", cnt, B_IN, F_TANH);
            add(pc, "dy", cnt, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_BN_FWD: case EBMC_OP_BN_BWD: {
        pc->bn = (ebmc_bn_desc){r->n, r->c, r->h, r->w, 1e-5f, 0.1f};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d,%d)%s beta %g", ebmc_op_name(r->op),
                 r->n, r->c, r->h, r->w, r->var ? " +running" : "", r->beta);
        const size_t c = (size_t)r->c;
        if (r->op == EBMC_OP_BN_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "gamma", c, B_IN, F_POS);
            add(pc, "beta", c, B_IN, F_NORMAL);
            add(pc, "y", cnt, B_OUT, F_NORMAL);
            add(pc, "save_mean", c, B_OUT, F_NORMAL);
            add(pc, "save_invstd", c, B_OUT, F_NORMAL);
            if (r->var) {
                add(pc, "running_mean", c, B_INOUT, F_NORMAL);
                add(pc, "running_var", c, B_INOUT, F_POS);
            }
        } else {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "dy", cnt, B_IN, F_NORMAL);
            add(pc, "gamma", c, B_IN, F_POS);
            add(pc, "save_mean", c, B_IN, F_NORMAL);   /* replaced by x's statistics */
            add(pc, "save_invstd", c, B_IN, F_POS);    /* idem */
            add(pc, "dx", cnt, ob, F_NORMAL);
            add(pc, "dgamma", c, ob, F_NORMAL);
            add(pc, "dbeta", c, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_SN_POWER: case EBMC_OP_SN_BWD: {
        const int rows = r->co, cols = r->c * r->k * r->k;
        pc->sn = (ebmc_sn_desc){rows, cols, r->var, 1e-12f};
        snprintf(pc->label, sizeof pc->label, "%s W(%d,%d) iters %d beta %g",
                 ebmc_op_name(r->op), rows, cols, r->var, r->beta);
        const size_t nw = (size_t)rows * cols;
        if (r->op == EBMC_OP_SN_POWER) {
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "u", (size_t)rows, B_INOUT, F_UNIT);
            add(pc, "v", (size_t)cols, B_INOUT, F_UNIT);
            add(pc, "sigma", 1, B_OUT, F_NORMAL);
            add(pc, "w_sn", nw, B_OUT, F_NORMAL);
        } else {
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "u", (size_t)rows, B_IN, F_UNIT);
            add(pc, "v", (size_t)cols, B_IN, F_UNIT);
            add(pc, "sigma", 1, B_IN, F_SIGMA);
            add(pc, "dw_sn", nw, B_IN, F_NORMAL);
            add(pc, "dw", nw, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_UPSAMPLE_FWD: case EBMC_OP_UPSAMPLE_BWD:
        pc->up = (ebmc_upsample_desc){r->n, r->c, r->h, r->w, (ebmc_upsample_mode)r->var};
        snprintf(pc->label, sizeof pc->label, "%s %s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->var == EBMC_UPSAMPLE_NEAREST ? "nearest" : "bilinear-ac", r->n, r->c, r->h,
                 r->w, r->beta);
        if (r->op == EBMC_OP_UPSAMPLE_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "y", 4 * cnt, B_OUT, F_NORMAL);
        } else {
            add(pc, "dy", 4 * cnt, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    case EBMC_OP_AVGPOOL2_FWD: case EBMC_OP_AVGPOOL2_BWD: {
        pc->t4 = (ebmc_t4_desc){r->n, r->c, r->h, r->w};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->n, r->c, r->h, r->w, r->beta);
        const size_t ny = (size_t)r->n * r->c * (r->h / 2) * (r->w / 2);
        if (r->op == EBMC_OP_AVGPOOL2_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "y", ny, B_OUT, F_NORMAL);
        } else {
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_GPOOL_FWD: case EBMC_OP_GPOOL_BWD:
        pc->gp = (ebmc_gpool_desc){r->n, r->c, r->h, r->w, (ebmc_gpool_mode)r->var};
        snprintf(pc->label, sizeof pc->label, "%s %s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->var == EBMC_GPOOL_SUM ? "sum" : "avg", r->n, r->c, r->h, r->w, r->beta);
        if (r->op == EBMC_OP_GPOOL_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "y", (size_t)r->n * r->c, B_OUT, F_NORMAL);
        } else {
            add(pc, "dy", (size_t)r->n * r->c, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    case EBMC_OP_AXPBY:
        pc->ax = (ebmc_axpby_desc){.count = cnt, .a = r->x1, .b = r->beta};
        snprintf(pc->label, sizeof pc->label, "axpby count %zu a %g b %g", cnt, r->x1, r->beta);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "y", cnt, ob, F_NORMAL);
        break;
    case EBMC_OP_FILL:
        pc->fill = (ebmc_fill_desc){.count = cnt, .value = r->x1};
        snprintf(pc->label, sizeof pc->label, "fill count %zu value %g", cnt, r->x1);
        add(pc, "y", cnt, B_OUT, F_NORMAL);
        break;
    case EBMC_OP_REDUCE: {
        const size_t cols = (size_t)r->c * r->h * r->w;
        pc->red = (ebmc_reduce_desc){.rows = r->n, .cols = cols,
                                     .mode = (ebmc_reduce_mode)r->var, .beta = r->beta};
        snprintf(pc->label, sizeof pc->label, "reduce %s (%d,%zu) beta %g",
                 r->var == EBMC_REDUCE_SUMSQ ? "sumsq" : "sum", r->n, cols, r->beta);
        /* mean 1: a row sum of zero-mean data can cancel to ~0 and make a one-element nmse
         * measure the cancellation (K u^2 |x|^2 / S^2), not the reduction */
        add(pc, "x", (size_t)r->n * cols, B_IN, F_SHIFTED);
        add(pc, "out", (size_t)r->n, ob, F_NORMAL);
        break;
    }
    case EBMC_OP_ADAM:
        pc->adam = (ebmc_adam_desc){.count = cnt, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999,
                                    .eps = 1e-8, .weight_decay = r->x1, .step = 1};
        snprintf(pc->label, sizeof pc->label, "adam count %zu steps %d wd %g", cnt, r->var,
                 r->x1);
        add(pc, "param", cnt, B_INOUT, F_NORMAL);
        add(pc, "grad", cnt, B_IN, F_NORMAL);
        add(pc, "m", cnt, B_INOUT, F_NORMAL);
        add(pc, "v", cnt, B_INOUT, F_SMALLPOS);
        break;
    case EBMC_OP_LANGEVIN: {
        static const char *const modes[] = {"off", "after", "next"};
        const size_t E = (size_t)r->c * r->h * r->w;
        pc->lgv = (ebmc_langevin_desc){.n_chains = r->n, .chain_elems = E, .a = 0.1f, .b = 0.05f,
                                       .c = 0.3f, .clip = r->x1, .clamp = r->co != 0, .lo = -1.0f,
                                       .hi = 1.0f, .noise = (ebmc_noise_mode)r->var,
                                       .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "langevin (%d,%zu) noise %s clip %g clamp %d step %s",
                 r->n, E, modes[r->var], r->x1, r->co, r->s ? "counter" : "offset");
        add(pc, "x", cnt, B_INOUT, F_NORMAL);
        add(pc, "g", cnt, B_IN, F_NORMAL);
        add_step_buf(r, pc);
        break;
    }
    case EBMC_OP_RNG: {
        const size_t E = (size_t)r->c * r->h * r->w;
        const bool nrm = r->var == EBMC_RNG_NORMAL;
        pc->rng = (ebmc_rng_desc){.n_chains = r->n, .chain_elems = E, .dist = (ebmc_rng_dist)r->var,
                                  .p0 = nrm ? 0.5f : -1.0f, .p1 = nrm ? 2.0f : 3.0f,
                                  .accumulate = r->beta != 0, .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "rng %s (%d,%zu)%s step %s", nrm ? "normal" : "uniform",
                 r->n, E, r->beta != 0 ? " accumulate" : "", r->s ? "counter" : "offset");
        add(pc, "y", cnt, ob, F_NORMAL);
        add_step_buf(r, pc);
        break;
    }
    case EBMC_OP_REPARAM: {
        const size_t E = (size_t)r->c * r->h * r->w;
        pc->rep = (ebmc_reparam_desc){.n_chains = r->n, .chain_elems = E, .k = r->x1,
                                      .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "reparam (%d,%zu) k %g step %s", r->n, E, r->x1,
                 r->s ? "counter" : "offset");
        add(pc, "mu", cnt, B_IN, F_NORMAL);
        add(pc, "s", cnt, B_IN, F_NORMAL);
        add(pc, "z", cnt, B_OUT, F_NORMAL);
        add_step_buf(r, pc);
        break;
    }
    case EBMC_OP_SCALED_DIFF:
        pc->sdiff = (ebmc_scaled_diff_desc){.count = cnt, .alpha = r->x1, .beta = r->beta};
        snprintf(pc->label, sizeof pc->label, "scaled_diff count %zu alpha %g beta %g", cnt, r->x1,
                 r->beta);
        add(pc, "a", cnt, B_IN, F_NORMAL);
        add(pc, "b", cnt, B_IN, F_NORMAL);
        add(pc, "out", cnt, ob, F_NORMAL);
        break;
    case EBMC_OP_COUNTER_ADD:
        pc->cnt = (ebmc_counter_desc){.delta = (uint32_t)r->co};
        snprintf(pc->label, sizeof pc->label, "counter_add delta %d", r->co);
        add(pc, "counter", 1, B_INOUT, F_ONEBITS);
        pc->b[pc->nb - 1].bytes = true;
        break;
    case EBMC_OP_REPLAY_SAMPLE: case EBMC_OP_REPLAY_PUSH: {
        const size_t E = (size_t)r->c * r->h * r->w, entries = (size_t)r->co * E;
        const bool push = r->op == EBMC_OP_REPLAY_PUSH;
        pc->replay = (ebmc_replay_desc){.n_chains = r->n, .chain_elems = E, .capacity = r->co,
                                        .count = push ? r->co : r->k, .head = push ? r->k : 0,
                                        .p_reuse = r->x1, .lo = -1.0f, .hi = 1.0f,
                                        .u8 = r->var != 0, .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "%s %s (%d,%zu) capacity %d %s %d p_reuse %g",
                 ebmc_op_name(r->op), r->var ? "u8" : "f32", r->n, E, r->co,
                 push ? "head" : "count", r->k, r->x1);
        /* uint8 storage lives in a float buffer of ceil(bytes/4) (random bytes are valid
         * quantised values) and is compared byte for byte */
        const size_t nbuf = r->var ? CEIL_DIV(entries, (size_t)4) : entries;
        if (push) {
            add(pc, "buffer", nbuf, B_INOUT, F_NORMAL); /* slots not pushed to must stay */
            pc->b[pc->nb - 1].bytes = r->var != 0;
            add(pc, "x", cnt, B_IN, F_TANH);
        } else {
            add(pc, "buffer", nbuf, B_IN, F_NORMAL);
            add(pc, "x", cnt, B_OUT, F_NORMAL);
            add_step_buf(r, pc);
        }
        break;
    }
    case EBMC_OP_GAUSS_NLL: {
        const size_t cols = (size_t)r->c * r->h * r->w;
        pc->nll = (ebmc_gauss_nll_desc){.rows = r->n, .cols = cols, .eps = 1e-6f, .scale = r->x1,
                                        .beta = r->beta};
        snprintf(pc->label, sizeof pc->label, "gauss_nll (%d,%zu) scale %g beta %g%s", r->n, cols,
                 r->x1, r->beta, r->var ? " no loss" : "");
        add(pc, "z", cnt, B_IN, F_NORMAL);
        add(pc, "mu", cnt, B_IN, F_NORMAL);
        add(pc, "s", cnt, B_IN, F_NORMAL);
        add(pc, "dmu", cnt, ob, F_NORMAL);
        add(pc, "ds", cnt, ob, F_NORMAL);
        if (!r->var) add(pc, "loss", (size_t)r->n, B_OUT, F_NORMAL);
        break;
    }
    default: break; /* ops without a parity row */
    }
}

static void fill_host(tu_rng *rng, float *h, size_t n, int fill) {
    switch (fill) {
    case F_AWAY: tu_fill_away_from_zero(rng, h, n, 0.05f, 2.0f); break;
    case F_POS: tu_fill_uniform(rng, h, n, 0.5f, 1.5f); break;
    case F_TANH: tu_fill_uniform(rng, h, n, -0.99f, 0.99f); break;
    case F_SMALLPOS: tu_fill_uniform(rng, h, n, 0.0f, 1e-3f); break;
    case F_SIGMA: tu_fill_uniform(rng, h, n, 0.5f, 2.0f); break;
    case F_SHIFTED:
        tu_fill_normal(rng, h, n, 1.0f);
        for (size_t i = 0; i < n; i++) h[i] += 1.0f;
        break;
    case F_STEP: /* a uint32 counter in a float slot */
        for (size_t i = 0; i < n; i++) {
            const uint32_t v = STEP_BASE;
            memcpy(&h[i], &v, sizeof v);
        }
        break;
    case F_ONEBITS: for (size_t i = 0; i < n; i++) h[i] = 1.0f; break;
    case F_UNIT: {
        tu_fill_normal(rng, h, n, 1.0f);
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)h[i] * h[i];
        s = sqrt(s);
        for (size_t i = 0; i < n; i++) h[i] = (float)(h[i] / s);
        break;
    }
    default: tu_fill_normal(rng, h, n, 1.0f); break;
    }
}

/* BN backward: save_mean/save_invstd consistent with x, as the forward would leave them */
static void bn_stats_host(const ebmc_bn_desc *d, const float *x, float *mean, float *invstd) {
    const size_t hw = (size_t)d->h * d->w, m = (size_t)d->n * hw;
    for (int c = 0; c < d->c; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < d->n; n++)
            for (size_t i = 0; i < hw; i++) s += x[((size_t)n * d->c + c) * hw + i];
        const double mu = s / (double)m;
        for (int n = 0; n < d->n; n++)
            for (size_t i = 0; i < hw; i++) {
                const double t = x[((size_t)n * d->c + c) * hw + i] - mu;
                ss += t * t;
            }
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(ss / (double)m + d->eps));
    }
}

/* sn_power without iterations: u = W v / ||W v||, so that sigma = u . (W v) = ||W v|| has no
 * cancellation (a random u could make sigma ~ 0 and its relative error large) */
static void sn_align_u(const ebmc_sn_desc *d, const float *w, float *u, const float *v) {
    double ss = 0;
    for (int i = 0; i < d->rows; i++) {
        double a = 0;
        for (int j = 0; j < d->cols; j++) a += (double)w[(size_t)i * d->cols + j] * v[j];
        u[i] = (float)a;
        ss += a * a;
    }
    for (int i = 0; i < d->rows; i++) u[i] = (float)(u[i] / sqrt(ss));
}

/* FNV-1a of the label: a row's data depends on the row, not on its position in the table */
static uint64_t label_seed(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Runs the row's op on ctx with buffers p[] (in the order build_case added them). */
static ebmc_status call_op(ebmc_ctx_t *ctx, const prow *r, const pcase *pc, float *const *p) {
    switch (r->op) {
    case EBMC_OP_CONV2D_FWD: return ebmc_conv2d_fwd(ctx, &pc->conv, p[0], p[1], p[2]);
    case EBMC_OP_CONV2D_BWD_DATA:
        return ebmc_conv2d_bwd_data(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_CONV2D_BWD_FILTER:
        return ebmc_conv2d_bwd_filter(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_CONVT2D_FWD: return ebmc_convt2d_fwd(ctx, &pc->conv, p[0], p[1], p[2]);
    case EBMC_OP_CONVT2D_BWD_DATA:
        return ebmc_convt2d_bwd_data(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_CONVT2D_BWD_FILTER:
        return ebmc_convt2d_bwd_filter(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_LINEAR_FWD:
        return r->var ? ebmc_linear_fwd(ctx, &pc->lin, p[0], p[1], p[2], p[3])
                      : ebmc_linear_fwd(ctx, &pc->lin, p[0], p[1], NULL, p[2]);
    case EBMC_OP_LINEAR_BWD_DATA:
        return ebmc_linear_bwd_data(ctx, &pc->lin, p[0], p[1], p[2], r->beta);
    case EBMC_OP_LINEAR_BWD_FILTER:
        return ebmc_linear_bwd_filter(ctx, &pc->lin, p[0], p[1], p[2], r->var ? p[3] : NULL,
                                      r->beta);
    case EBMC_OP_BIAS_FWD: return ebmc_bias_fwd(ctx, &pc->t4, p[0], p[1]);
    case EBMC_OP_BIAS_BWD: return ebmc_bias_bwd(ctx, &pc->t4, p[0], p[1], r->beta);
    case EBMC_OP_ACT_FWD: return ebmc_act_fwd(ctx, &pc->act, p[0], p[1]);
    case EBMC_OP_ACT_BWD: return ebmc_act_bwd(ctx, &pc->act, p[0], p[1], p[2], p[3], r->beta);
    case EBMC_OP_BN_FWD:
        return ebmc_bn_fwd(ctx, &pc->bn, p[0], p[1], p[2], p[3], p[4], p[5],
                           r->var ? p[6] : NULL, r->var ? p[7] : NULL);
    case EBMC_OP_BN_BWD:
        return ebmc_bn_bwd(ctx, &pc->bn, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], r->beta,
                           r->beta);
    case EBMC_OP_SN_POWER: return ebmc_sn_power(ctx, &pc->sn, p[0], p[1], p[2], p[3], p[4]);
    case EBMC_OP_SN_BWD:
        return ebmc_sn_bwd(ctx, &pc->sn, p[0], p[1], p[2], p[3], p[4], p[5], r->beta);
    case EBMC_OP_UPSAMPLE_FWD: return ebmc_upsample_fwd(ctx, &pc->up, p[0], p[1]);
    case EBMC_OP_UPSAMPLE_BWD: return ebmc_upsample_bwd(ctx, &pc->up, p[0], p[1], r->beta);
    case EBMC_OP_AVGPOOL2_FWD: return ebmc_avgpool2_fwd(ctx, &pc->t4, p[0], p[1]);
    case EBMC_OP_AVGPOOL2_BWD: return ebmc_avgpool2_bwd(ctx, &pc->t4, p[0], p[1], r->beta);
    case EBMC_OP_GPOOL_FWD: return ebmc_gpool_fwd(ctx, &pc->gp, p[0], p[1]);
    case EBMC_OP_GPOOL_BWD: return ebmc_gpool_bwd(ctx, &pc->gp, p[0], p[1], r->beta);
    case EBMC_OP_AXPBY: return ebmc_axpby(ctx, &pc->ax, p[0], p[1]);
    case EBMC_OP_FILL: return ebmc_fill(ctx, &pc->fill, p[0]);
    case EBMC_OP_REDUCE: return ebmc_reduce(ctx, &pc->red, p[0], p[1]);
    case EBMC_OP_ADAM: {
        ebmc_adam_desc d = pc->adam;
        for (int t = 1; t <= r->var; t++) { /* several steps on the same state */
            d.step = t;
            ebmc_status s = ebmc_adam(ctx, &d, p[0], p[1], p[2], p[3]);
            if (s != EBMC_OK) return s;
        }
        return EBMC_OK;
    }
    case EBMC_OP_LANGEVIN: {
        ebmc_langevin_desc d = pc->lgv;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_langevin(ctx, &d, p[0], p[1]);
    }
    case EBMC_OP_RNG: {
        ebmc_rng_desc d = pc->rng;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_rng(ctx, &d, p[0]);
    }
    case EBMC_OP_REPARAM: {
        ebmc_reparam_desc d = pc->rep;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_reparam(ctx, &d, p[0], p[1], p[2]);
    }
    case EBMC_OP_SCALED_DIFF: return ebmc_scaled_diff(ctx, &pc->sdiff, p[0], p[1], p[2]);
    case EBMC_OP_COUNTER_ADD: return ebmc_counter_add(ctx, &pc->cnt, (uint32_t *)p[0]);
    case EBMC_OP_REPLAY_SAMPLE: {
        ebmc_replay_desc d = pc->replay;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_replay_sample_op(ctx, &d, p[0], p[1]);
    }
    case EBMC_OP_REPLAY_PUSH: return ebmc_replay_push_op(ctx, &pc->replay, p[0], p[1]);
    case EBMC_OP_GAUSS_NLL:
        return ebmc_gauss_nll(ctx, &pc->nll, p[0], p[1], p[2], r->var ? NULL : p[5], p[3], p[4]);
    default: break; /* ops without a parity row */
    }
    return EBMC_E_INVALID;
}

/* ---- the parity runner ---- */

typedef struct {
    ebmc_ctx_t *cpu;
    ebmc_ctx_t *fp32;   /* FP32, deterministic */
    ebmc_ctx_t *tf32;   /* TF32, deterministic */
    ebmc_ctx_t *tf32nd; /* TF32, non-deterministic algorithms allowed (the training default) */
} env;

static const char *g_filter = NULL;
static int g_rows_run = 0;

/* Runs one row on the CPU and on gpu; prints a line per compared output; returns the number of
 * failures (nmse above tol, a NaN where the CPU has a number, a broken guard, an error). */
static int run_row(const env *e, ebmc_ctx_t *gpu, const char *prec, int idx, double tol) {
    const prow *r = &ROWS[idx];
    pcase pc;
    build_case(r, &pc);
    if (g_filter && !strstr(pc.label, g_filter)) return 0;
    g_rows_run++;
    tu_rng rng;
    tu_rng_seed(&rng, label_seed(pc.label));
    float *host[MAXB];
    tu_dbuf bc[MAXB], bg[MAXB];
    float *pcpu[MAXB], *pgpu[MAXB];
    for (int b = 0; b < pc.nb; b++) {
        host[b] = tu_malloc(pc.b[b].n);
        fill_host(&rng, host[b], pc.b[b].n, pc.b[b].fill);
    }
    if (r->op == EBMC_OP_BN_BWD) bn_stats_host(&pc.bn, host[0], host[3], host[4]);
    if (r->op == EBMC_OP_SN_POWER && r->var == 0) sn_align_u(&pc.sn, host[0], host[1], host[2]);
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
    ebmc_status sc = call_op(e->cpu, r, &pc, pcpu);
    ebmc_status sg = call_op(gpu, r, &pc, pgpu);
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
            const double nmse = bytes ? (ndiff ? INFINITY : 0.0) : tu_nmse(got, ref, n);
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
        build_case(&ROWS[i], &pc);
        if (pc.nb == 0 || !pc.label[0]) {
            printf("test_ops_cuda: row %d (%s) builds no case: add it to build_case/call_op\n", i,
                   ebmc_op_name(ROWS[i].op));
            bad++;
        }
    }
    return bad;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--filter")) g_filter = argv[i + 1];
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
    };
    const int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    if (g_filter && g_rows_run == 0) printf("test_ops_cuda: no row matches --filter '%s'\n", g_filter);
    return rc;
}
