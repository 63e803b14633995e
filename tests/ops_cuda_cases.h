/* defines: the parity cases of test_ops_cuda shared by test_ops_cuda.c (the rows, the runner) and
 * ops_cuda_cases.c (case building, op calling): prow (one row), SAME, the buffer roles and fills,
 * bspec and pcase (descriptors and buffers of one case), and the functions that build a case,
 * fill its host buffers, make BatchNorm statistics and spectral-norm u consistent, seed it from
 * its label and run its op on a context. */
#ifndef EBMC_TESTS_OPS_CUDA_CASES_H
#define EBMC_TESTS_OPS_CUDA_CASES_H

#include "testutil.h"
#include <stdbool.h>
#include <stdint.h>

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
 *   adam:        var = steps taken (1, 2, ...), x1 = weight decay, co = 1: IGEBM's clip (3, 0.1)
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
 *   gauss_kl:    rows n, cols c*h*w; x1 = k, scale 0.5, weight 2; var = 1: no loss output,
 *                var = 2: no eps/dz (the KL term alone)
 *   jz_logw:     n walkers of c*h*w; var = ebmc_jz_mode; x1 = h; k = 1: sigma 0.1, else sqrt(2h)
 *   jz_stats:    n walkers; x1 = w_scale; var = 1: no weights output
 *   jz_resample: n walkers; var = ebmc_resample_scheme; x1 = threshold (ESS/n)
 *   gmm_eval:    n points of dim c, co components; var = 1: u and resp only
 *   gmm_pgrad:   n points of dim c, co components; x1 = scale; var = 1: w NULL
 *   pswish:      x (n, c, h*w), b (c); bwd: var = 1: no db
 *   gbase:       x (n, c*h*w); bwd: var = 1: no dx, var = 2: no dmu/dlogstd
 *   rows_copy:   n rows of c*h*w elements, x and y of n rows; var = 1: src NULL, 2: dst NULL,
 *                3: dst NULL and src indices into x's co rows with repeats (the walkers' gather)
 *   pool2d:      k x k, stride s, pad; var = ebmc_pool_mode, co = count_include_pad
 *   resize:      (n,c,h,w) -> (n,c,co,k); var = 1: TF 1's source coordinates
 *   chan_copy:   x (n,c,h*w) into channels [k, k+c) of y (n,co,h*w)
 *   dropout:     rows n of c*h*w; x1 = p, k = group_off, beta (1: the backward's accumulation)
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

/* ---- buffers of one case ---- */

enum { B_IN, B_OUT, B_INOUT };                    /* OUT: poisoned, compared; INOUT: random, compared */
enum { F_NORMAL, F_AWAY, F_POS, F_TANH, F_UNIT, F_SMALLPOS, F_SIGMA, F_SHIFTED, F_STEP, F_ONEBITS,
       F_LOGW,   /* doubles (two float slots each): log-weights, spread over [-13, 7] */
       F_ZEROD,  /* doubles: zeros (filled in by parity_fix_host) */
       F_INDEX,  /* int32 in float slots: ancestors, made valid by parity_fix_host */
       F_PERM /* int32 bits of (7i + 3) mod n in float slots: a permutation when 7 does not divide n */ };
#define STEP_BASE 7u    /* F_STEP: a uint32 step counter holding 7, in a float slot */
#define MAXB 10

typedef struct {
    const char *name;
    size_t n;
    int role, fill;
    bool bytes; /* compared byte for byte (uint8 storage, integers) */
    bool f64;   /* n/2 doubles, compared as doubles */
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
    ebmc_gauss_kl_desc kl;
    ebmc_jz_logw_desc jzl;
    ebmc_jz_stats_desc jzs;
    ebmc_jz_resample_desc jzr;
    ebmc_gmm_desc gmm;
    ebmc_pswish_desc psw;
    ebmc_gbase_desc gb;
    ebmc_rows_desc rows;
    ebmc_pool_desc pool;
    ebmc_resize_desc rsz;
    ebmc_chan_copy_desc ccp;
    ebmc_dropout_desc drop;
    int step_buf; /* index of the device step counter buffer, or -1 */
    int nb;
    bspec b[MAXB];
    char label[160];
} pcase;

/* Descriptors, buffers and a printable label of a row. */
void parity_build_case(const prow *r, pcase *pc);
/* Host values of a buffer by its fill kind (F_*). */
void parity_fill_host(tu_rng *rng, float *h, size_t n, int fill);
/* BN backward: save_mean/save_invstd consistent with x, as the forward would leave them */
void parity_bn_stats_host(const ebmc_bn_desc *d, const float *x, float *mean, float *invstd);
/* sn_power without iterations: u = W v / ||W v||, so that sigma = u . (W v) = ||W v|| has no
 * cancellation (a random u could make sigma ~ 0 and its relative error large) */
void parity_sn_align_u(const ebmc_sn_desc *d, const float *w, float *u, const float *v);
/* After the fills: rows whose inputs must agree with each other (the resampling statistics of
 * its log-weights, ancestor indices within the source rows). */
void parity_fix_host(const prow *r, const pcase *pc, float *const *host);
/* FNV-1a of the label: a row's data depends on the row, not on its position in the table */
uint64_t parity_label_seed(const char *s);
/* Runs the row's op on ctx with buffers p[] (in the order parity_build_case added them). */
ebmc_status parity_call_op(ebmc_ctx_t *ctx, const prow *r, const pcase *pc, float *const *p);

#endif
