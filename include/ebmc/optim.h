/* defines: ebmc_adam_cfg, ebmc_adam_t — Adam with L2 weight decay over a net's whole parameter
 * arena (torch.optim.Adam semantics) and ExponentialLR stepped per epoch. */
#ifndef EBMC_OPTIM_H
#define EBMC_OPTIM_H

#include "ebmc/nn.h"
#include "ebmc/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    double gamma; /* ExponentialLR: lr(epoch) = lr * gamma^epoch */
} ebmc_adam_cfg;

typedef struct ebmc_adam ebmc_adam_t;

ebmc_status ebmc_adam_create(ebmc_net_t *net, const ebmc_adam_cfg *cfg, ebmc_adam_t **out);
void ebmc_adam_free(ebmc_adam_t *a);
/* One step on the net's accumulated gradients with the learning rate of `epoch`. */
ebmc_status ebmc_adam_step(ebmc_adam_t *a, int64_t epoch);
double ebmc_adam_lr(const ebmc_adam_t *a, int64_t epoch);
/* IGEBM's custom_adam.py (a TensorFlow AdamOptimizer): clip_std > 0 clips each gradient element
 * to +-(clip_std sqrt(v_hat) + clip_floor) before the step (ebmc_adam_desc; the authors: 3, 0.1);
 * tf_eps adds eps to the uncorrected sqrt(v) as tf.train.AdamOptimizer does ("epsilon hat"),
 * i.e. eps / sqrt(1 - b2^t) to the corrected one. Default: off, off (torch.optim.Adam). */
void ebmc_adam_set_tf(ebmc_adam_t *a, double clip_std, double clip_floor, bool tf_eps);
/* The Jarzynski authors' PyTorch Lightning settings (EBMs_Jarzynski main*.ipynb):
 * decay_epochs > 0 replaces ExponentialLR by LambdaLR's linear decay stepped per epoch,
 * lr(epoch) = lr max(1 - epoch / decay_epochs, 1e-10); max_norm > 0 clips the whole gradient by
 * its L2 norm before each step as torch.nn.utils.clip_grad_norm_ (gradient_clip_val): g *=
 * max_norm / (||g|| + 1e-6) when that is < 1 (one host read of ||g|| per step). */
ebmc_status ebmc_adam_set_schedule(ebmc_adam_t *a, int64_t decay_epochs, double max_norm);
int64_t ebmc_adam_steps(const ebmc_adam_t *a);

/* State for checkpoints: "<prefix>.exp_avg", "<prefix>.exp_avg_sq" (F32, the arena's order) and
 * "<prefix>.step" (I64 scalar). save fills `t` (3 entries) pointing into `host` (2*count floats,
 * caller-owned) and *step_store; load validates sizes and copies back. */
size_t ebmc_adam_state_count(const ebmc_adam_t *a);
ebmc_status ebmc_adam_state_get(ebmc_adam_t *a, const char *prefix, char names[3][160],
                                float *host, int64_t *step_store, ebmc_st_tensor t[3]);
ebmc_status ebmc_adam_state_set(ebmc_adam_t *a, const char *prefix, const ebmc_st_file *f,
                                char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
