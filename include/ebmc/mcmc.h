/* defines: ebmc_langevin_params (+ each recipe's mapping), ebmc_potential (what a chain descends:
 * an EBM's energy, a generator posterior, an analytic Gaussian), ebmc_chain_t (K fused Langevin
 * steps on the device, eager or as one CUDA graph), initialisers and the replay buffer.
 *
 * One general update (specs/teaching.md section 0):
 *     x <- clamp(x - a * clip(grad U(x)) - b * x + c * xi),   xi ~ N(0, I)
 * with noise off, after the gradient (AFTER) or before the next gradient (NEXT, IGEBM).
 *
 * | recipe (CIFAR-10)      | potential U                         | a        | b            | c       | noise |
 * |------------------------|-------------------------------------|----------|--------------|---------|-------|
 * | Dual-MCMC data space   | sum_b E(x_b)                        | s^2/2    | 0            | tau     | AFTER |
 * | Dual-MCMC latent space | sum_b |x_b - G(z_b)|^2 / sigma^2     | s^2/2    | s^2/(2 sp^2) | s       | AFTER |
 * | CoopNets               | -sum_b f(x_b)                       | d^2/2    | d^2/(2 sr^2) | d       | AFTER |
 * | CoopVAEBM              | -sum_b f(x_b)                       | d^2/2    | d^2/(2 sr^2) | 0       | OFF   |
 * | short-run              | -sum_b f(x_b)                       | 1        | 0            | 0.01    | AFTER |
 * | IGEBM                  | sum_b E(x_b), grad clipped to 0.01  | 10       | 0            | 0.005   | NEXT, clamp [0,1] |
 */
#ifndef EBMC_MCMC_H
#define EBMC_MCMC_H

#include "ebmc/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int steps;
    float a, b, c;
    float clip;          /* > 0: element-wise gradient clip */
    bool clamp;
    float lo, hi;
    ebmc_noise_mode noise;
} ebmc_langevin_params;

/* Dual-MCMC: data space x <- x - (s^2/2) grad sum E + tau xi */
ebmc_langevin_params ebmc_langevin_dualmcmc_x(float s, float tau, int steps);
/* Dual-MCMC: latent space z <- z - (s^2/2)(grad |x - G(z)|^2/sigma^2 + z/sp^2) + s xi; use with
 * ebmc_potential_latent(G, ..., k = 2/sigma^2) */
ebmc_langevin_params ebmc_langevin_dualmcmc_z(float s, float sigma_prior, int steps);
/* CoopNets / CoopVAEBM: x <- x - (d^2/2)(x/sr^2 - grad f) [+ d xi]; use with U = -f */
ebmc_langevin_params ebmc_langevin_coop(float delta, float sigma_ref, bool noise, int steps);
/* short-run: x <- x + grad f + eps xi (eps = 0.01); use with U = -f */
ebmc_langevin_params ebmc_langevin_shortrun(float eps, int steps);
/* IGEBM: x += N(0, noise^2); x <- clamp(x - step clip(grad E, +-clip), 0, 1) */
ebmc_langevin_params ebmc_langevin_igebm(float step, float clip, float noise, int steps);

/* ---- potentials ---- */

typedef struct ebmc_potential ebmc_potential;
struct ebmc_potential {
    /* grad = grad U(state) for the first n chains ((n, elems) device memory, overwritten) */
    ebmc_status (*grad)(ebmc_potential *self, int n, const float *state, float *grad);
    /* called after a graph replay of `steps` gradient evaluations (host-side bookkeeping) */
    void (*replayed)(ebmc_potential *self, int steps);
    /* called before the first gradient evaluation of a chain run (in capture order too) */
    void (*begin)(ebmc_potential *self);
    /* called when a capture's host-side pass (since its begin) was discarded (the capture
     * failed; the same run follows eagerly): undoes that pass's host bookkeeping. NULL: none */
    void (*capture_discarded)(ebmc_potential *self);
    /* called before each gradient evaluation k of a chain run with the chain's key of that step:
     * (seed, stream, its device step counter, k). NULL: none (the net potentials use it for their
     * dropout masks, ebmc_potential_dropout) */
    void (*step_key)(ebmc_potential *self, ebmc_rng_key key);
    void (*free)(ebmc_potential *self);
    ebmc_ctx_t *ctx;
    size_t elems;       /* per chain */
    int max_batch;
    const char *name;   /* the default name of its chains' NVTX range ("langevin_x" for an
                         * energy, "langevin_z" for a latent posterior; NULL: "langevin") */
};

/* U(x) = scale * sum_b E(x_b) for an EBM whose output is (N,1,1,1); scale = -1 for a net that
 * outputs the score f = -E. Plans its own tape (input gradients only). */
ebmc_status ebmc_potential_energy(ebmc_net_t *E, int max_batch, float scale, ebmc_potential **out);
/* U(z) = (k/2) sum_b |G(z_b) - x_b|^2 for a generator G; the targets x live in the potential
 * (ebmc_potential_latent_target). Dual-MCMC: k = 2/sigma^2. */
ebmc_status ebmc_potential_latent(ebmc_net_t *G, int max_batch, float k, ebmc_potential **out);
float *ebmc_potential_latent_target(ebmc_potential *p); /* (max_batch, C, H, W) device */
/* The tape of a net potential (energy or latent; NULL for others), planned for its max_batch
 * with gradients: a base for ebmc_tape_create_shared, so another pass of the same net can use
 * its memory between chain runs (a chain run overwrites that pass's values and outputs). */
ebmc_tape_t *ebmc_potential_tape(ebmc_potential *p);
/* Net potentials whose net has dropout layers (ebmc_nn_dropout): on = true draws the masks of
 * gradient evaluation k of a chain run from (the chain's seed, `stream`, the chain's step counter
 * + k): a function of the chain's noise step, so graph replays and resumed runs draw them as an
 * eager run would; on = false (the default) evaluates with dropout off. Either way the potential
 * sets the net's dropout before each of its forwards. */
void ebmc_potential_dropout(ebmc_potential *p, bool on, uint32_t stream);
/* Energy potentials: record sum_b E(x_b) at every gradient evaluation of a run into a device
 * array of max_evals floats (the energy curve along the chain: entry 0 is the energy of the
 * initial samples). NULL turns it off. */
ebmc_status ebmc_potential_energy_trace(ebmc_potential *p, int max_evals);
const float *ebmc_potential_trace(const ebmc_potential *p); /* device, or NULL */
/* U(x) = sum_b |x_b - mu|^2 / (2 var), mu (elems) host values: the analytic test energy. */
ebmc_status ebmc_potential_gaussian(ebmc_ctx_t *ctx, size_t elems, int max_batch, const float *mu,
                                    float var, ebmc_potential **out);
void ebmc_potential_free(ebmc_potential *p);

/* ---- chains ---- */

typedef struct ebmc_chain ebmc_chain_t;

/* A batch of up to max_batch chains with their own state buffer; randomness keyed by
 * (seed, stream) and the chain's step counter (kept on the device). */
ebmc_status ebmc_chain_create(ebmc_potential *pot, const ebmc_langevin_params *p, int max_batch,
                              uint64_t seed, uint32_t stream, ebmc_chain_t **out);
void ebmc_chain_free(ebmc_chain_t *c);
float *ebmc_chain_state(ebmc_chain_t *c); /* (max_batch, elems) device */
/* K steps on the first n chains. Eager, or (when enabled and the backend has graphs): the first
 * run for this n eagerly (cuDNN's first execution of each plan, lazy loading, never inside a
 * capture), the second captured as one CUDA graph and launched, later ones replayed: no host
 * synchronisation. A capture that fails (begin, a call inside it, end, instantiation) is ended
 * cleanly and discarded, reported once on stderr and by ebmc_chain_graph_failure, the run is done
 * eagerly, and the chain stays eager from then on (graphs off; ebmc_chain_set_graph turns them
 * on again). */
ebmc_status ebmc_chain_run(ebmc_chain_t *c, int n);
void ebmc_chain_set_graph(ebmc_chain_t *c, bool use_graph);
bool ebmc_chain_graph_active(const ebmc_chain_t *c);
/* Why this chain's graphs were turned off by a failed capture ("" if they never were). */
const char *ebmc_chain_graph_failure(const ebmc_chain_t *c);
void ebmc_chain_set_params(ebmc_chain_t *c, const ebmc_langevin_params *p); /* drops graphs */
uint32_t ebmc_chain_step(const ebmc_chain_t *c);           /* noise steps drawn so far */
void ebmc_chain_set_seed(ebmc_chain_t *c, uint64_t seed);  /* drops graphs */
ebmc_status ebmc_chain_set_step(ebmc_chain_t *c, uint32_t step); /* resume */
const char *ebmc_chain_error(const ebmc_chain_t *c);
/* The NVTX range name of each run (default: the potential's name, else "langevin"). The string
 * is copied (up to 47 characters). */
void ebmc_chain_set_name(ebmc_chain_t *c, const char *name);
const char *ebmc_chain_name(const ebmc_chain_t *c);

/* ---- initialisers (device buffers of n chains x elems) ---- */

ebmc_status ebmc_init_uniform(ebmc_ctx_t *ctx, float *x, int n, size_t elems, float lo, float hi,
                              ebmc_rng_key key);
ebmc_status ebmc_init_normal(ebmc_ctx_t *ctx, float *x, int n, size_t elems, float std,
                             ebmc_rng_key key);
/* z = mu + exp(k * s) * eps: k = 0.5 for a log-variance head, 1 for a log-std head */
ebmc_status ebmc_init_reparam(ebmc_ctx_t *ctx, float *z, const float *mu, const float *s, int n,
                              size_t elems, float k, ebmc_rng_key key);

/* ---- replay buffer (IGEBM) ---- */

typedef struct ebmc_replay ebmc_replay_t;
/* capacity entries of elems values over [lo, hi], float32 or uint8 storage; a batch slot reuses
 * an entry with probability p_reuse once the buffer holds min_fill entries. */
ebmc_status ebmc_replay_create(ebmc_ctx_t *ctx, int capacity, size_t elems, bool u8, float lo,
                               float hi, float p_reuse, int min_fill, ebmc_replay_t **out);
void ebmc_replay_free(ebmc_replay_t *r);
ebmc_status ebmc_replay_sample(ebmc_replay_t *r, float *x, int n, ebmc_rng_key key);
ebmc_status ebmc_replay_push(ebmc_replay_t *r, const float *x, int n); /* FIFO overwrite */
int ebmc_replay_count(const ebmc_replay_t *r);
int ebmc_replay_head(const ebmc_replay_t *r);
void *ebmc_replay_storage(ebmc_replay_t *r); /* device memory, for checkpoints */
/* Resume: the fill count and the next slot of a checkpointed buffer (storage restored by the
 * caller); EBMC_E_INVALID for values outside [0, capacity] and [0, capacity). */
ebmc_status ebmc_replay_restore(ebmc_replay_t *r, int count, int head);
/* uint8 pushes with `levels` quantisation levels (ebmc_replay_desc.push_levels; 0: 256) */
void ebmc_replay_set_push_levels(ebmc_replay_t *r, float levels);

#ifdef __cplusplus
}
#endif
#endif
