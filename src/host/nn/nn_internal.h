/* defines: the private layout of the nn graph, shared by nn.c (building, finalize, parameters),
 * nn_tape.c (tapes and their liveness plan) and nn_pass.c (forward and backward): node, value
 * and tensor records, struct ebmc_net, struct ebmc_tape, nn_fail and nn_align64. Nothing outside
 * src/host/nn includes it. */
#ifndef EBMC_NN_INTERNAL_H
#define EBMC_NN_INTERNAL_H

#include "ebmc/nn.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    N_INPUT = 0,
    N_CONV,
    N_CONVT,
    N_LINEAR,
    N_ACT,
    N_BN,
    N_UPSAMPLE,
    N_AVGPOOL2,
    N_GPOOL,
    N_ADD,
    N_SCALE,
    N_RESHAPE,
    N_CBIAS,    /* y = x + b[c] */
    N_CSCALE,   /* y = x * s[c] */
    N_PSWISH,   /* Swish with a learnable slope per channel (t_w: the slopes) */
    N_GBASE,    /* Gaussian base energy -log N(x; mu, diag sigma^2) (t_w: mu, t_b: log sigma) */
    N_DROPOUT   /* y = x m / (1 - p): p in `scale`, the layer's first Philox group in drop_group */
} nn_kind;

typedef struct {
    int c, h, w;
    int storage; /* the value whose memory this one uses (itself unless a reshape view) */
} nn_val;

typedef struct {
    nn_kind kind;
    int in0, in1, out;
    ebmc_conv_desc cd;      /* conv/convt, n = 1 at build time */
    int lin_in, lin_out;
    bool bias, sn;
    int t_w, t_b;           /* tensors: weight/bias, or BatchNorm gamma/beta */
    int t_rm, t_rv, t_u, t_v;
    ebmc_act_kind act;
    float slope, scale;
    float bn_eps, bn_momentum;
    ebmc_upsample_mode up;
    ebmc_gpool_mode gp;
    int sn_rows, sn_cols;
    int slot;               /* BatchNorm or spectral-norm slot in the tape */
    int sn_lb;              /* spectral norm with IGEBM's lower bound */
    uint32_t drop_group;    /* dropout: first Philox group of the layer in a sample's row */
    size_t bn_st;           /* BatchNorm: offset of its eval-mode scale and shift in net->bn_st */
} nn_node;

typedef enum {
    R_WEIGHT,   /* conv/linear weight */
    R_BIAS,     /* conv/linear bias */
    R_GAMMA,    /* BatchNorm weight */
    R_BETA,     /* BatchNorm bias */
    R_RMEAN,
    R_RVAR,
    R_COUNTER,  /* num_batches_tracked */
    R_SNVEC     /* spectral-norm u or v */
} nn_role;

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
    size_t count;
    bool trainable;
    nn_role role;
    ebmc_init init;
    int fan_in, fan_out;
    size_t offset;          /* floats into the param arena (trainable) or buffer arena */
    ebmc_net_tensor pub;
} nn_tensor;

#define NN_MAX_META 16

struct ebmc_net {
    char name[96];
    char range_fwd[104], range_bwd[104], range_bwd_x[104]; /* NVTX: "<name>_fwd", "_bwd", "_bwd_x" */
    char err[512];
    bool failed, finalized, trainable;
    ebmc_ctx_t *ctx;
    nn_val *vals;
    int n_vals, cap_vals;
    nn_node *nodes;
    int n_nodes, cap_nodes;
    nn_tensor *tensors;
    int n_tensors, cap_tensors;
    int outputs[8];
    int n_outputs;
    int n_bn, n_sn;
    int sn_iters;
    int64_t bn_batches;
    float *params, *grads, *buffers;
    size_t n_params, n_buffers;
    char meta_k[NN_MAX_META][64], meta_v[NN_MAX_META][256];
    int n_meta;
    int n_drop;             /* dropout layers */
    uint32_t drop_groups;   /* Philox groups they take per sample */
    bool drop_on;           /* ebmc_net_set_dropout */
    ebmc_rng_key drop_key;
    bool bn_eval;           /* ebmc_net_set_bn_eval: BatchNorm from the running statistics */
    float *bn_st;           /* device, per BatchNorm node C scales then C shifts (first eval use) */
};

typedef struct {
    float *mean, *invstd; /* (C) */
} tape_bn;

typedef struct {
    float *w_sn, *dw_sn, *sigma, *u, *v; /* W/sigma (rows*cols), scratch gradient, u, v used */
} tape_sn;

/* A tape's device memory: owned by the tape that allocated it and by every tape created shared
 * with it; freed with the last of them. */
typedef struct {
    float *ptr;
    size_t bytes;
    int refs;
    ebmc_ctx_t *ctx;
} tape_arena;

struct ebmc_tape {
    ebmc_net_t *net;
    int max_batch, n;
    bool with_grad;
    bool shares;      /* the arena was allocated by another tape (ebmc_tape_create_shared) */
    tape_arena *mem;
    float **val, **grad;
    tape_bn *bn;
    tape_sn *sn;
    float *scratch;   /* 2*max BatchNorm channels: dgamma/dbeta in input-gradient mode */
    bool *written;    /* per value storage, during a backward */
    bool ran;
    bool drop_on;     /* the dropout masks of the last forward (its backward uses them) */
    ebmc_rng_key drop_key;
    bool bn_eval;     /* the last forward's BatchNorm mode */
};

/* hidden: the split made these extern; they stay out of libebmc.so's exported symbols */
#pragma GCC visibility push(hidden)

/* Records the net's first error ("<name>: ...") in net->err and marks it failed; returns -1. */
int nn_fail(ebmc_net_t *net, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* n rounded up to a multiple of 64 floats (arena and tape offsets) */
size_t nn_align64(size_t n);

#pragma GCC visibility pop

#endif
