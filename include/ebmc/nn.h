/* defines: ebmc_net_t (a graph of layers and its parameters), ebmc_tape_t (the activations of
 * one forward pass, planned once for a maximum batch), the builder calls, forward, backward
 * (input-gradient-only or full), parameter registry and memory plan.
 *
 * A net is built once (ebmc_net_create, ebmc_nn_* layers, ebmc_net_finalize), which allocates and
 * initialises its parameters in one arena. Each tape is planned from the shapes (all activations,
 * their gradients, BatchNorm statistics and spectral-norm state of one pass) and allocated once;
 * forward and backward never allocate. Values are identified by small integers; value 0 is the
 * net's input. Tensor names are PyTorch state_dict names, so checkpoints load into the authors'
 * modules. */
#ifndef EBMC_NN_H
#define EBMC_NN_H

#include "ebmc/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ebmc_net ebmc_net_t;
typedef struct ebmc_tape ebmc_tape_t;

typedef enum {
    EBMC_INIT_DEFAULT = 0,   /* PyTorch's default for the layer: conv/linear weight and bias
                              * U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BatchNorm weight 1, bias 0 */
    EBMC_INIT_XAVIER_NORMAL, /* N(0, 2/(fan_in + fan_out)) */
    EBMC_INIT_NORMAL,        /* N(0, std^2) */
    EBMC_INIT_ZERO,
    EBMC_INIT_ONE,
    EBMC_INIT_XAVIER_UNIFORM /* U(+-sqrt(6/(fan_in + fan_out))): TF's glorot_uniform, the default
                              * kernel initializer of tf.layers.dense / conv2d */
} ebmc_init_kind;

typedef struct {
    ebmc_init_kind kind;
    float std; /* EBMC_INIT_NORMAL only */
} ebmc_init;

typedef struct {
    int c_out, k, stride, pad;
    bool same_tf;        /* TensorFlow 'SAME' padding instead of `pad` */
    int out_pad;         /* transposed convolutions: PyTorch output_padding */
    bool bias;
    bool sn;             /* spectral normalisation (not for transposed convolutions) */
    ebmc_init w_init, b_init;
    bool sn_lower_bound; /* with sn: IGEBM's lower-bounded SN, W / max(sigma + 1e-6, 1) */
} ebmc_conv_spec;

typedef enum {
    EBMC_GRAD_INPUT = 0, /* gradients of values and of the net input only (Langevin): no weight
                          * gradient is computed and parameter-gradient memory is not touched */
    EBMC_GRAD_FULL = 1   /* also parameter gradients, accumulated (+=) into the net's gradients */
} ebmc_grad_mode;

/* ---- building (errors are sticky and reported by ebmc_net_finalize) ---- */

/* Input shape per sample (C,H,W); name is used in messages and checkpoints. */
ebmc_net_t *ebmc_net_create(const char *name, int c, int h, int w);
int ebmc_nn_conv(ebmc_net_t *net, int in, const char *prefix, const ebmc_conv_spec *s);
int ebmc_nn_convt(ebmc_net_t *net, int in, const char *prefix, const ebmc_conv_spec *s);
/* y (N,OUT) = flatten(x) W^T + b */
int ebmc_nn_linear(ebmc_net_t *net, int in, const char *prefix, int out, bool bias, bool sn,
                   ebmc_init w_init, ebmc_init b_init);
int ebmc_nn_act(ebmc_net_t *net, int in, ebmc_act_kind kind, float slope);
/* BatchNorm in batch-statistics mode (ebmc_net_set_bn_eval: from the running statistics, which
 * it keeps as PyTorch does); gamma_init e.g. N(0,1) for Dual-MCMC. */
int ebmc_nn_bn(ebmc_net_t *net, int in, const char *prefix, ebmc_init gamma_init);
/* BatchNorm with explicit settings: eps and momentum as PyTorch's; fixed_gamma keeps gamma = 1 as
 * a buffer, not a parameter (TensorFlow's batch_norm default, scale=False). */
typedef struct {
    ebmc_init gamma_init;
    float eps, momentum;
    bool fixed_gamma;
} ebmc_bn_spec;
int ebmc_nn_bn_ex(ebmc_net_t *net, int in, const char *prefix, const ebmc_bn_spec *s);
int ebmc_nn_upsample(ebmc_net_t *net, int in, ebmc_upsample_mode mode);
int ebmc_nn_avgpool2(ebmc_net_t *net, int in);
int ebmc_nn_gpool(ebmc_net_t *net, int in, ebmc_gpool_mode mode); /* -> (N,C,1,1) */
int ebmc_nn_add(ebmc_net_t *net, int a, int b);
int ebmc_nn_scale(ebmc_net_t *net, int in, float s);
int ebmc_nn_reshape(ebmc_net_t *net, int in, int c, int h, int w); /* a view: no copy */
/* IGEBM's per-channel layers, each with one (C) parameter "<prefix>.<name>": y = x + b[c] (the
 * "extra bias" added to a conv's input) and y = x * s[c] (the learned scale) */
int ebmc_nn_chan_bias(ebmc_net_t *net, int in, const char *prefix, const char *name, ebmc_init init);
int ebmc_nn_chan_scale(ebmc_net_t *net, int in, const char *prefix, const char *name, ebmc_init init);
/* Swish with a learnable slope per channel, y = x sigmoid(b_c x), as particle-EBMs' Swish(dim):
 * tensor "<prefix>.beta" (C), initialised to 1. */
int ebmc_nn_pswish(ebmc_net_t *net, int in, const char *prefix);
/* The learnable Gaussian base's energy of the flattened input, (N,1,1,1): -log N(x; mu,
 * diag exp(2 logstd)); tensors "<prefix>mu" and "<prefix>logstd" (D each), initialised to 0
 * (particle-EBMs' EBM: prefix "base_"). */
int ebmc_nn_gauss_base(ebmc_net_t *net, int in, const char *prefix);
/* Dropout (IGEBM's tf.layers.dropout(rate=p, training=True)): y = x m / (1 - p) with the
 * Philox-keyed masks of ebmc_dropout_desc (row = the sample's global chain index). The dropout
 * layers of a sample are one row of Philox groups: each layer takes the next ceil(C*H*W/4) groups,
 * in build order. Active while the net's dropout is on (ebmc_net_set_dropout), else the identity. */
int ebmc_nn_dropout(ebmc_net_t *net, int in, float p);
/* Marks a value as an output (call once per output, in order). */
void ebmc_net_output(ebmc_net_t *net, int v);
/* Metadata recorded in checkpoints (e.g. "arch" -> "dualmcmc_cifar10_E"). */
void ebmc_net_set_meta(ebmc_net_t *net, const char *key, const char *value);

/* Checks the graph, allocates parameters, gradients (when trainable) and buffers on ctx and
 * initialises them from `seed`. On failure returns non-OK with a message in ebmc_net_error(). */
ebmc_status ebmc_net_finalize(ebmc_net_t *net, ebmc_ctx_t *ctx, bool trainable, uint64_t seed);
const char *ebmc_net_error(const ebmc_net_t *net);
void ebmc_net_free(ebmc_net_t *net);

/* Spectral norm: power iterations per forward (1 as torch; 0 freezes u, v). */
void ebmc_net_set_sn_iters(ebmc_net_t *net, int n_power_iter);
int ebmc_net_sn_iters(const ebmc_net_t *net);

/* The masks of the net's next forward passes: on = false makes every dropout layer the identity
 * (the default; test time), on = true draws them from `key` (seed, stream, step: step_base, a
 * device counter or NULL, + step_offset, read when the pass runs, as the samplers'). A pass's
 * backward uses its forward's key, so set the key of each pass before its forward and keep a
 * device counter unchanged until its backward. */
void ebmc_net_set_dropout(ebmc_net_t *net, bool on, ebmc_rng_key key);
/* BatchNorm from the running statistics (on; PyTorch's module.eval()) or the batch's (off, the
 * default and training's): y = gamma (x - running_mean) / sqrt(running_var + eps) + beta, as a
 * per-channel scale and shift computed in double on the host from the net's tensors when it is
 * turned on (turn it on again after loading other weights). In eval mode a backward gives the
 * input gradient only; one with parameter gradients is refused. Buffers: allocated on the first
 * use, not in a training loop. */
ebmc_status ebmc_net_set_bn_eval(ebmc_net_t *net, bool on);
bool ebmc_net_bn_eval(const ebmc_net_t *net);
int ebmc_net_dropout_layers(const ebmc_net_t *net);

/* ---- shapes and parameters ---- */
const char *ebmc_net_name(const ebmc_net_t *net);
int ebmc_net_n_outputs(const ebmc_net_t *net);
int ebmc_net_output_value(const ebmc_net_t *net, int i);
void ebmc_net_value_shape(const ebmc_net_t *net, int v, int *c, int *h, int *w);
void ebmc_net_input_shape(const ebmc_net_t *net, int *c, int *h, int *w);
size_t ebmc_net_value_count(const ebmc_net_t *net, int v); /* per sample */

/* All trainable parameters are one contiguous arena (so one optimiser call covers a net). */
size_t ebmc_net_param_count(const ebmc_net_t *net);
float *ebmc_net_params(ebmc_net_t *net);
float *ebmc_net_grads(ebmc_net_t *net); /* NULL when not trainable */
ebmc_status ebmc_net_zero_grad(ebmc_net_t *net);
ebmc_ctx_t *ebmc_net_ctx(const ebmc_net_t *net);

/* Named tensors (parameters and buffers), in state_dict order. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
    size_t count;
    float *data;        /* device memory; NULL for num_batches_tracked (an int64 counter) */
    float *grad;        /* trainable parameters of a trainable net; else NULL */
    bool trainable;
    bool is_counter;    /* BatchNorm num_batches_tracked: value = ebmc_net_bn_batches() */
} ebmc_net_tensor;
int ebmc_net_tensor_count(const ebmc_net_t *net);
const ebmc_net_tensor *ebmc_net_tensor_at(const ebmc_net_t *net, int i);
const ebmc_net_tensor *ebmc_net_tensor_find(const ebmc_net_t *net, const char *name);
int64_t ebmc_net_bn_batches(const ebmc_net_t *net);
void ebmc_net_set_bn_batches(ebmc_net_t *net, int64_t n);
int ebmc_net_meta_count(const ebmc_net_t *net);
void ebmc_net_meta_at(const ebmc_net_t *net, int i, const char **key, const char **value);

/* ---- tapes: planned once, then forward/backward without allocation ---- */

/* Memory of a tape. Every value keeps its own buffer for the whole pass (the backward reads
 * them, callers read outputs after it). Gradient buffers are shared by liveness: a value's
 * gradient lives from its first write in the backward (dy for an output, else the backward of
 * its last consumer in node order) until the backward of the node that produced it has read it;
 * gradients whose lifetimes do not overlap use the same memory, so a gradient is only valid
 * inside the backward (none is exposed). The backward runs the same operations in the same
 * order as with a buffer per gradient: only addresses change, results are bit-identical. */

/* Bytes a tape for `max_batch` needs (values, their gradients when with_grad, statistics). */
size_t ebmc_tape_plan_bytes(const ebmc_net_t *net, int max_batch, bool with_grad);
ebmc_status ebmc_tape_create(ebmc_net_t *net, int max_batch, bool with_grad, ebmc_tape_t **out);
/* A tape of `net` that uses base's memory instead of its own: base's arena is reference-counted
 * and freed with the last tape using it (free the tapes in any order). Contract: the two tapes
 * (and any other tape sharing the arena) are never live at the same time. A pass on one
 * overwrites everything of the other: the values a pass keeps between its forward and its
 * backward, and the outputs a caller reads after a pass. Run one tape's forward, backward and
 * reads of its outputs, then the other's. EBMC_E_INVALID (message in ebmc_net_error) for a base
 * of another net, a max_batch larger than base's, or with_grad when base has no gradients. */
ebmc_status ebmc_tape_create_shared(ebmc_net_t *net, int max_batch, bool with_grad,
                                    ebmc_tape_t *base, ebmc_tape_t **out);
void ebmc_tape_free(ebmc_tape_t *tape);
/* Bytes of the tape's arena (the base's for a shared tape); ebmc_tape_shares is false for the
 * tape that allocated it, true for the tapes created shared with it: a memory plan that counts
 * ebmc_tape_bytes of the tapes that do not share counts each arena once. */
size_t ebmc_tape_bytes(const ebmc_tape_t *tape);
bool ebmc_tape_shares(const ebmc_tape_t *tape);
/* For tests only: turns gradient-buffer sharing off (every value's gradient its own buffer, as
 * before it existed) or on (the default) for tapes planned afterwards and for
 * ebmc_tape_plan_bytes. Process-wide; not thread-safe; a tape keeps the plan it was made with. */
void ebmc_nn_set_grad_reuse(bool on);
bool ebmc_nn_grad_reuse(void);
int ebmc_tape_batch(const ebmc_tape_t *tape); /* batch of the last forward */
float *ebmc_tape_value(ebmc_tape_t *tape, int v);
float *ebmc_tape_output(ebmc_tape_t *tape, int i);

/* Runs the net on x (device memory, (n, C, H, W), 1 <= n <= max_batch). x is referenced, not
 * copied: keep it unchanged until the backward of this pass. */
ebmc_status ebmc_net_forward(ebmc_net_t *net, ebmc_tape_t *tape, int n, const float *x);
/* Backward of the tape's last forward. dy[i]: gradient of output i ((n, C, H, W) device memory)
 * or NULL (no gradient). dx: NULL, or where to write d/dx of the net input, as
 * dx = dx_beta*dx + grad. */
ebmc_status ebmc_net_backward(ebmc_net_t *net, ebmc_tape_t *tape, const float *const *dy,
                              ebmc_grad_mode mode, float *dx, float dx_beta);

/* Multiply-accumulates per sample of one forward pass (the benchmark's FLOP count), summed over
 * the layers that do dense arithmetic: a convolution Cout*Cin*KH*KW*Ho*Wo, a transposed
 * convolution Cin*Cout*KH*KW*H*W (H, W of its input), a linear layer IN*OUT. Bias, activations,
 * BatchNorm, pooling, upsampling, additions and spectral norm's power iterations (two
 * matrix-vector products per SN layer and pass) are not counted: they are memory-bound and small
 * next to the convolutions. Each backward product (data or filter gradient) of such a layer costs
 * the same MACs as its forward. *first (nullable) gets the MACs of the layers that read the net's
 * input directly: their data gradient is skipped when no input gradient is asked for. */
double ebmc_net_macs(const ebmc_net_t *net, double *first);

/* Prints parameters, gradients, buffers and the tape plan for `batch` in MiB. */
void ebmc_net_memory_report(const ebmc_net_t *net, int batch, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
