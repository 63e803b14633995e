/* Langevin chains: potentials, the K-step loop (eager or one captured graph), initialisers and
 * the replay buffer. Only op-table calls: the same code runs on the CPU and the GPU. */
#include "ebmc/mcmc.h"
#include "backend/ctx_internal.h"
#include "ebmc/nvtx.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ recipe parameters */

ebmc_langevin_params ebmc_langevin_dualmcmc_x(float s, float tau, int steps) {
    return (ebmc_langevin_params){steps, 0.5f * s * s, 0.0f, tau, 0.0f, false, 0, 0,
                                  tau > 0 ? EBMC_NOISE_AFTER : EBMC_NOISE_OFF};
}

ebmc_langevin_params ebmc_langevin_dualmcmc_z(float s, float sigma_prior, int steps) {
    float a = 0.5f * s * s;
    return (ebmc_langevin_params){steps, a, a / (sigma_prior * sigma_prior), s, 0.0f, false, 0, 0,
                                  EBMC_NOISE_AFTER};
}

ebmc_langevin_params ebmc_langevin_coop(float delta, float sigma_ref, bool noise, int steps) {
    float a = 0.5f * delta * delta;
    return (ebmc_langevin_params){steps, a, a / (sigma_ref * sigma_ref), noise ? delta : 0.0f,
                                  0.0f, false, 0, 0, noise ? EBMC_NOISE_AFTER : EBMC_NOISE_OFF};
}

ebmc_langevin_params ebmc_langevin_shortrun(float eps, int steps) {
    return (ebmc_langevin_params){steps, 1.0f, 0.0f, eps, 0.0f, false, 0, 0, EBMC_NOISE_AFTER};
}

ebmc_langevin_params ebmc_langevin_igebm(float step, float clip, float noise, int steps) {
    return (ebmc_langevin_params){steps, step, 0.0f, noise, clip, true, 0.0f, 1.0f, EBMC_NOISE_NEXT};
}

/* ------------------------------------------------------------------ potentials */

void ebmc_potential_free(ebmc_potential *p) {
    if (p && p->free) p->free(p);
}

typedef struct {
    ebmc_potential base;
    ebmc_net_t *net;
    ebmc_tape_t *tape;
    float *dy;      /* energy: scale everywhere; latent: the residual */
    float *target;  /* latent only: (max_batch, elems of G's output) */
    float k;
    size_t out_elems;
    bool has_bn, is_energy;
    float *trace;   /* energy: sum of outputs per gradient evaluation */
    int trace_cap, trace_i;
    int64_t bn_at_begin; /* BatchNorm's batch counter when the run began (capture_discarded) */
    bool has_drop, drop_on;   /* the net has dropout layers; ebmc_potential_dropout */
    uint32_t drop_stream;
    ebmc_rng_key drop_key;    /* the masks of the next evaluation */
} net_potential;

static void netpot_step_key(ebmc_potential *p, ebmc_rng_key key) {
    net_potential *q = (net_potential *)p;
    q->drop_key = key;
    q->drop_key.stream = q->drop_stream;
}

void ebmc_potential_dropout(ebmc_potential *p, bool on, uint32_t stream) {
    net_potential *q = (net_potential *)p;
    q->drop_on = on;
    q->drop_stream = stream;
}

/* the net's dropout for this evaluation (its other passes set their own) */
static void netpot_set_dropout(net_potential *q) {
    if (q->has_drop) ebmc_net_set_dropout(q->net, q->drop_on, q->drop_key);
}

static void netpot_free(ebmc_potential *p) {
    net_potential *q = (net_potential *)p;
    ebmc_tape_free(q->tape);
    ebmc_free(p->ctx, q->dy);
    ebmc_free(p->ctx, q->target);
    ebmc_free(p->ctx, q->trace);
    free(q);
}

static void netpot_begin(ebmc_potential *p) {
    net_potential *q = (net_potential *)p;
    q->trace_i = 0;
    q->bn_at_begin = ebmc_net_bn_batches(q->net);
}

static void netpot_discarded(ebmc_potential *p) {
    net_potential *q = (net_potential *)p;
    /* the discarded capture's forwards counted BatchNorm batches that never ran */
    if (q->has_bn) ebmc_net_set_bn_batches(q->net, q->bn_at_begin);
}

ebmc_status ebmc_potential_energy_trace(ebmc_potential *p, int max_evals) {
    net_potential *q = (net_potential *)p;
    if (!q->is_energy) return EBMC_E_INVALID;
    ebmc_free(p->ctx, q->trace);
    q->trace = NULL;
    q->trace_cap = 0;
    if (max_evals <= 0) return EBMC_OK;
    EBMC_TRY(ebmc_alloc(p->ctx, (void **)&q->trace, (size_t)max_evals * sizeof(float)));
    ebmc_fill_desc f = {(size_t)max_evals, 0.0f};
    EBMC_TRY(ebmc_fill(p->ctx, &f, q->trace));
    q->trace_cap = max_evals;
    return EBMC_OK;
}

const float *ebmc_potential_trace(const ebmc_potential *p) { return ((const net_potential *)p)->trace; }

static void netpot_replayed(ebmc_potential *p, int steps) {
    net_potential *q = (net_potential *)p;
    /* each gradient evaluation was one forward: keep BatchNorm's counter as PyTorch would */
    if (q->has_bn) ebmc_net_set_bn_batches(q->net, ebmc_net_bn_batches(q->net) + steps);
}

static ebmc_status energy_grad(ebmc_potential *p, int n, const float *x, float *g) {
    net_potential *q = (net_potential *)p;
    netpot_set_dropout(q);
    EBMC_TRY(ebmc_net_forward(q->net, q->tape, n, x));
    if (q->trace && q->trace_i < q->trace_cap) {
        ebmc_reduce_desc r = {1, (size_t)n, EBMC_REDUCE_SUM, 0.0f};
        EBMC_TRY(ebmc_reduce(p->ctx, &r, ebmc_tape_output(q->tape, 0), q->trace + q->trace_i));
        q->trace_i++;
    }
    const float *dy[1] = {q->dy};
    return ebmc_net_backward(q->net, q->tape, dy, EBMC_GRAD_INPUT, g, 0.0f);
}

static ebmc_status latent_grad(ebmc_potential *p, int n, const float *z, float *g) {
    net_potential *q = (net_potential *)p;
    netpot_set_dropout(q);
    EBMC_TRY(ebmc_net_forward(q->net, q->tape, n, z));
    /* d/dG (k/2)|G - x|^2 = k (G - x): the residual, fused */
    ebmc_scaled_diff_desc d = {(size_t)n * q->out_elems, q->k, 0.0f};
    EBMC_TRY(ebmc_scaled_diff(p->ctx, &d, ebmc_tape_output(q->tape, 0), q->target, q->dy));
    const float *dy[1] = {q->dy};
    return ebmc_net_backward(q->net, q->tape, dy, EBMC_GRAD_INPUT, g, 0.0f);
}

static ebmc_status netpot_create(ebmc_net_t *net, int max_batch, net_potential **out) {
    *out = NULL;
    ebmc_ctx_t *ctx = ebmc_net_ctx(net);
    if (!ctx) return EBMC_E_INVALID;
    if (ebmc_net_n_outputs(net) != 1)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "%s: a potential needs a net with one output",
                               ebmc_net_name(net));
    net_potential *q = ebmc_xcalloc(1, sizeof *q, "potential");
    q->net = net;
    q->base.ctx = ctx;
    q->base.max_batch = max_batch;
    q->base.elems = ebmc_net_value_count(net, 0);
    q->base.free = netpot_free;
    q->base.replayed = netpot_replayed;
    q->base.begin = netpot_begin;
    q->base.capture_discarded = netpot_discarded;
    q->base.step_key = netpot_step_key;
    q->has_drop = ebmc_net_dropout_layers(net) > 0;
    q->out_elems = ebmc_net_value_count(net, ebmc_net_output_value(net, 0));
    for (int i = 0; i < ebmc_net_tensor_count(net); i++)
        q->has_bn = q->has_bn || ebmc_net_tensor_at(net, i)->is_counter;
    ebmc_status s = ebmc_tape_create(net, max_batch, true, &q->tape);
    if (!s) s = ebmc_alloc(ctx, (void **)&q->dy, (size_t)max_batch * q->out_elems * sizeof(float));
    if (s) {
        if (!ctx->err[0]) ebmc_ctx_seterr(ctx, s, "%s", ebmc_net_error(net));
        netpot_free(&q->base);
        return s;
    }
    *out = q;
    return EBMC_OK;
}

ebmc_status ebmc_potential_energy(ebmc_net_t *E, int max_batch, float scale, ebmc_potential **out) {
    net_potential *q;
    *out = NULL;
    EBMC_TRY(netpot_create(E, max_batch, &q));
    if (q->out_elems != 1) {
        ebmc_status s = ebmc_ctx_seterr(q->base.ctx, EBMC_E_INVALID,
                                        "%s: an energy net must output one value per sample, not %zu",
                                        ebmc_net_name(E), q->out_elems);
        netpot_free(&q->base);
        return s;
    }
    q->base.grad = energy_grad;
    q->base.name = "langevin_x";
    q->is_energy = true;
    ebmc_fill_desc f = {(size_t)max_batch, scale}; /* dU/dE_b = scale for every b */
    ebmc_status s = ebmc_fill(q->base.ctx, &f, q->dy);
    if (s) {
        netpot_free(&q->base);
        return s;
    }
    *out = &q->base;
    return EBMC_OK;
}

ebmc_status ebmc_potential_latent(ebmc_net_t *G, int max_batch, float k, ebmc_potential **out) {
    net_potential *q;
    *out = NULL;
    EBMC_TRY(netpot_create(G, max_batch, &q));
    q->base.grad = latent_grad;
    q->base.name = "langevin_z";
    q->k = k;
    ebmc_status s = ebmc_alloc(q->base.ctx, (void **)&q->target,
                               (size_t)max_batch * q->out_elems * sizeof(float));
    if (s) {
        netpot_free(&q->base);
        return s;
    }
    *out = &q->base;
    return EBMC_OK;
}

float *ebmc_potential_latent_target(ebmc_potential *p) { return ((net_potential *)p)->target; }

ebmc_tape_t *ebmc_potential_tape(ebmc_potential *p) {
    return (p && p->free == netpot_free) ? ((net_potential *)p)->tape : NULL;
}

typedef struct {
    ebmc_potential base;
    float *mu;   /* tiled over max_batch */
    float inv_var;
} gauss_potential;

static ebmc_status gauss_grad(ebmc_potential *p, int n, const float *x, float *g) {
    gauss_potential *q = (gauss_potential *)p;
    ebmc_scaled_diff_desc d = {(size_t)n * p->elems, q->inv_var, 0.0f};
    return ebmc_scaled_diff(p->ctx, &d, x, q->mu, g);
}

static void gauss_free(ebmc_potential *p) {
    ebmc_free(p->ctx, ((gauss_potential *)p)->mu);
    free(p);
}

ebmc_status ebmc_potential_gaussian(ebmc_ctx_t *ctx, size_t elems, int max_batch, const float *mu,
                                    float var, ebmc_potential **out) {
    *out = NULL;
    if (!(var > 0) || elems < 1 || max_batch < 1)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "gaussian potential: var %g, elems %zu, batch %d",
                               var, elems, max_batch);
    gauss_potential *q = ebmc_xcalloc(1, sizeof *q, "potential");
    q->base.ctx = ctx;
    q->base.elems = elems;
    q->base.max_batch = max_batch;
    q->base.grad = gauss_grad;
    q->base.free = gauss_free;
    q->inv_var = 1.0f / var;
    size_t n = (size_t)max_batch * elems;
    float *host = ebmc_xmalloc(n * sizeof(float), "potential");
    for (size_t i = 0; i < n; i++) host[i] = mu[i % elems];
    ebmc_status s = ebmc_alloc(ctx, (void **)&q->mu, n * sizeof(float));
    if (!s) s = ebmc_copy(ctx, q->mu, host, n * sizeof(float), EBMC_COPY_H2D);
    free(host);
    if (s) {
        gauss_free(&q->base);
        return s;
    }
    *out = &q->base;
    return EBMC_OK;
}

/* ------------------------------------------------------------------ chains */

#define MAX_GRAPHS 4

struct ebmc_chain {
    ebmc_potential *pot;
    ebmc_ctx_t *ctx;
    ebmc_langevin_params p;
    int max_batch;
    uint64_t seed;
    uint32_t stream;
    float *state, *grad;   /* (max_batch, elems) */
    uint32_t *counter;     /* device: noise steps drawn before this run */
    uint32_t host_step;    /* its host mirror */
    bool use_graph;
    struct {
        int n;
        void *graph;
    } graphs[MAX_GRAPHS];
    int eager_n[MAX_GRAPHS];  /* batch sizes already run eagerly with graphs on (0: free) */
    char graph_failure[512];  /* why a failed capture turned graphs off ("" if never) */
    char name[48];         /* NVTX range of a run */
    char err[512];
};

static void drop_graphs(ebmc_chain_t *c) {
    for (int i = 0; i < MAX_GRAPHS; i++) {
        if (c->graphs[i].graph) ebmc_graph_free(c->ctx, c->graphs[i].graph);
        c->graphs[i].graph = NULL;
        c->graphs[i].n = 0;
    }
    /* new parameters or seed keep the plans: the batch sizes run eagerly stay warm */
}

ebmc_status ebmc_chain_create(ebmc_potential *pot, const ebmc_langevin_params *p, int max_batch,
                              uint64_t seed, uint32_t stream, ebmc_chain_t **out) {
    *out = NULL;
    ebmc_ctx_t *ctx = pot->ctx;
    if (max_batch < 1 || max_batch > pot->max_batch || p->steps < 1)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID,
                               "chain: batch %d (potential planned for %d), %d steps", max_batch,
                               pot->max_batch, p->steps);
    ebmc_chain_t *c = ebmc_xcalloc(1, sizeof *c, "chain");
    c->pot = pot;
    c->ctx = ctx;
    c->p = *p;
    c->max_batch = max_batch;
    c->seed = seed;
    c->stream = stream;
    c->use_graph = ebmc_graph_supported(ctx);
    ebmc_chain_set_name(c, pot->name ? pot->name : "langevin");
    size_t n = (size_t)max_batch * pot->elems;
    ebmc_status s = ebmc_alloc(ctx, (void **)&c->state, n * sizeof(float));
    if (!s) s = ebmc_alloc(ctx, (void **)&c->grad, n * sizeof(float));
    if (!s) s = ebmc_alloc(ctx, (void **)&c->counter, 64);
    if (!s) s = ebmc_chain_set_step(c, 0);
    if (s) {
        ebmc_chain_free(c);
        return s;
    }
    *out = c;
    return EBMC_OK;
}

void ebmc_chain_free(ebmc_chain_t *c) {
    if (!c) return;
    drop_graphs(c);
    ebmc_free(c->ctx, c->state);
    ebmc_free(c->ctx, c->grad);
    ebmc_free(c->ctx, c->counter);
    free(c);
}

float *ebmc_chain_state(ebmc_chain_t *c) { return c->state; }
uint32_t ebmc_chain_step(const ebmc_chain_t *c) { return c->host_step; }
const char *ebmc_chain_error(const ebmc_chain_t *c) { return c->err; }
void ebmc_chain_set_name(ebmc_chain_t *c, const char *name) {
    snprintf(c->name, sizeof c->name, "%s", name ? name : "langevin");
}
const char *ebmc_chain_name(const ebmc_chain_t *c) { return c->name; }

void ebmc_chain_set_graph(ebmc_chain_t *c, bool use_graph) {
    bool on = use_graph && ebmc_graph_supported(c->ctx);
    if (!on) drop_graphs(c);
    c->use_graph = on;
}

bool ebmc_chain_graph_active(const ebmc_chain_t *c) { return c->use_graph; }
const char *ebmc_chain_graph_failure(const ebmc_chain_t *c) { return c->graph_failure; }

void ebmc_chain_set_params(ebmc_chain_t *c, const ebmc_langevin_params *p) {
    drop_graphs(c); /* the coefficients are baked into captured graphs */
    c->p = *p;
}

void ebmc_chain_set_seed(ebmc_chain_t *c, uint64_t seed) {
    if (seed != c->seed) drop_graphs(c); /* the seed is baked into captured graphs */
    c->seed = seed;
}

ebmc_status ebmc_chain_set_step(ebmc_chain_t *c, uint32_t step) {
    EBMC_TRY(ebmc_copy(c->ctx, c->counter, &step, sizeof step, EBMC_COPY_H2D));
    c->host_step = step;
    return EBMC_OK;
}

/* The K steps as op calls on the stream, reading the noise step from the device counter. Run
 * eagerly (not under capture), it stops between steps when the user asks to stop at once. */
static ebmc_status chain_sequence(ebmc_chain_t *c, int n, bool eager) {
    ebmc_potential *pot = c->pot;
    const ebmc_langevin_params *p = &c->p;
    ebmc_rng_key key = {c->seed, c->stream, c->counter, 0};
    if (pot->begin) pot->begin(pot);
    if (p->noise == EBMC_NOISE_NEXT && p->c != 0.0f) { /* the first step's noise, before its gradient */
        ebmc_rng_desc r = {n, pot->elems, EBMC_RNG_NORMAL, 0.0f, p->c, true, key};
        EBMC_TRY(ebmc_rng(c->ctx, &r, c->state));
    }
    for (int k = 0; k < p->steps; k++) {
        if (eager && ebmc_interrupt_level() >= 2)
            return ebmc_ctx_seterr(c->ctx, EBMC_E_INTERRUPTED, "chain: stopped after %d of %d steps at the user's "
                                   "request", k, p->steps);
        if (pot->step_key) {
            ebmc_rng_key kk = key;
            kk.step_offset = (uint32_t)k;
            pot->step_key(pot, kk);
        }
        EBMC_TRY(pot->grad(pot, n, c->state, c->grad));
        ebmc_langevin_desc d = {n, pot->elems, p->a, p->b, p->c, p->clip, p->clamp, p->lo, p->hi,
                                p->noise, key};
        d.rng.step_offset = (uint32_t)k;
        if (p->c == 0.0f || (p->noise == EBMC_NOISE_NEXT && k == p->steps - 1))
            d.noise = EBMC_NOISE_OFF;
        EBMC_TRY(ebmc_langevin(c->ctx, &d, c->state, c->grad));
    }
    /* NEXT draws steps 0..K-1 as well: K steps of noise either way */
    ebmc_counter_desc cd = {(uint32_t)p->steps};
    return ebmc_counter_add(c->ctx, &cd, c->counter);
}

static ebmc_status chain_run(ebmc_chain_t *c, int n);

/* One NVTX range per run, named after the chain ("langevin_x", "langevin_z"): around the K eager
 * steps, or around the capture and launch of the graph (Nsight projects it onto the GPU work). */
ebmc_status ebmc_chain_run(ebmc_chain_t *c, int n) {
    EBMC_RANGE_PUSH(c->name);
    c->err[0] = 0; /* a message describes this run's failure only */
    ebmc_status s = chain_run(c, n);
    EBMC_RANGE_POP();
    return s;
}

/* Whether batch size n has run eagerly since graphs were on; marks it when mark. */
static bool eager_seen(ebmc_chain_t *c, int n, bool mark) {
    for (int i = 0; i < MAX_GRAPHS; i++)
        if (c->eager_n[i] == n) return true;
    if (mark) {
        memmove(c->eager_n + 1, c->eager_n, (MAX_GRAPHS - 1) * sizeof c->eager_n[0]);
        c->eager_n[0] = n; /* the oldest falls out: it is run eagerly once more */
    }
    return false;
}

/* A capture failed: report it once, turn graphs off for this chain (the caller runs eagerly). */
static void graph_fallback(ebmc_chain_t *c, const char *why) {
    snprintf(c->graph_failure, sizeof c->graph_failure, "%s", why);
    fprintf(stderr, "ebmc: warning: %s: capturing %d Langevin steps as a CUDA graph failed (%s); "
            "this chain runs eagerly from now on\n", c->name, c->p.steps, why);
    drop_graphs(c);
    c->use_graph = false;
}

/* Captures the K steps on n chains as a graph into a free slot; on failure, ends the capture,
 * discards it and undoes its host-side pass. Returns the slot, or -1 (why in c->err). */
static int chain_capture(ebmc_chain_t *c, int n) {
    int free_slot = -1;
    for (int i = 0; i < MAX_GRAPHS && free_slot < 0; i++)
        if (!c->graphs[i].graph) free_slot = i;
    if (free_slot < 0) { /* evict the first */
        ebmc_graph_free(c->ctx, c->graphs[0].graph);
        c->graphs[0].graph = NULL;
        free_slot = 0;
    }
    ebmc_status s = ebmc_graph_begin(c->ctx);
    if (s) {
        snprintf(c->err, sizeof c->err, "graph_begin: %s", ebmc_ctx_error(c->ctx));
        return -1;
    }
    ebmc_status body = chain_sequence(c, n, false);
    char body_err[sizeof c->err] = "";
    if (body) snprintf(body_err, sizeof body_err, "%s", ebmc_ctx_error(c->ctx));
    void *g = NULL;
    s = ebmc_graph_end(c->ctx, &g); /* always ends the capture */
    if (body || s) {
        ebmc_graph_free(c->ctx, g);
        snprintf(c->err, sizeof c->err, "%s", body ? body_err : ebmc_ctx_error(c->ctx));
        if (c->pot->capture_discarded) c->pot->capture_discarded(c->pot);
        return -1;
    }
    c->graphs[free_slot].graph = g;
    c->graphs[free_slot].n = n;
    return free_slot;
}

static ebmc_status chain_run(ebmc_chain_t *c, int n) {
    if (n < 1 || n > c->max_batch) {
        snprintf(c->err, sizeof c->err, "chain: run on %d chains of %d", n, c->max_batch);
        return ebmc_ctx_seterr(c->ctx, EBMC_E_INVALID, "%s", c->err);
    }
    ebmc_status s = EBMC_OK;
    int slot = -1;
    for (int i = 0; c->use_graph && i < MAX_GRAPHS; i++)
        if (c->graphs[i].graph && c->graphs[i].n == n) slot = i;
    bool captured = false; /* the capture ran chain_sequence's host code once already */
    if (c->use_graph && slot < 0 && eager_seen(c, n, true)) {
        slot = chain_capture(c, n);
        captured = slot >= 0;
        if (slot < 0) {
            graph_fallback(c, c->err);
            c->err[0] = 0;
        }
    }
    if (slot < 0) {
        s = chain_sequence(c, n, true); /* graphs off, the first run for n, or a failed capture */
    } else {
        s = ebmc_graph_launch(c->ctx, c->graphs[slot].graph);
        /* host bookkeeping (BatchNorm's batch counter) of a replay; the launch right after a
         * capture is already counted by the capture's host-side pass */
        if (!s && !captured && c->pot->replayed) c->pot->replayed(c->pot, c->p.steps);
    }
    if (s) {
        if (!c->err[0]) snprintf(c->err, sizeof c->err, "chain: %s", ebmc_ctx_error(c->ctx));
        return s;
    }
    c->host_step += (uint32_t)c->p.steps;
    return EBMC_OK;
}

/* ------------------------------------------------------------------ initialisers */

ebmc_status ebmc_init_uniform(ebmc_ctx_t *ctx, float *x, int n, size_t elems, float lo, float hi,
                              ebmc_rng_key key) {
    ebmc_rng_desc d = {n, elems, EBMC_RNG_UNIFORM, lo, hi, false, key};
    return ebmc_rng(ctx, &d, x);
}

ebmc_status ebmc_init_normal(ebmc_ctx_t *ctx, float *x, int n, size_t elems, float std,
                             ebmc_rng_key key) {
    ebmc_rng_desc d = {n, elems, EBMC_RNG_NORMAL, 0.0f, std, false, key};
    return ebmc_rng(ctx, &d, x);
}

ebmc_status ebmc_init_reparam(ebmc_ctx_t *ctx, float *z, const float *mu, const float *s, int n,
                              size_t elems, float k, ebmc_rng_key key) {
    ebmc_reparam_desc d = {n, elems, k, key};
    return ebmc_reparam(ctx, &d, mu, s, z);
}

/* ------------------------------------------------------------------ replay buffer */

struct ebmc_replay {
    ebmc_ctx_t *ctx;
    void *storage;
    int capacity, count, head, min_fill;
    size_t elems;
    bool u8;
    float lo, hi, p_reuse;
    float push_levels; /* 0: 256 */
};

ebmc_status ebmc_replay_create(ebmc_ctx_t *ctx, int capacity, size_t elems, bool u8, float lo,
                               float hi, float p_reuse, int min_fill, ebmc_replay_t **out) {
    *out = NULL;
    if (capacity < 1 || elems < 1 || !(lo < hi) || !(p_reuse >= 0 && p_reuse <= 1) || min_fill < 0)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID,
                               "replay buffer: capacity %d, elems %zu, range [%g, %g], p_reuse %g",
                               capacity, elems, lo, hi, p_reuse);
    ebmc_replay_t *r = ebmc_xcalloc(1, sizeof *r, "replay");
    *r = (ebmc_replay_t){ctx, NULL, capacity, 0, 0, min_fill, elems, u8, lo, hi, p_reuse, 0.0f};
    ebmc_status s = ebmc_alloc(ctx, &r->storage, (size_t)capacity * elems * (u8 ? 1 : sizeof(float)));
    if (s) {
        free(r);
        return s;
    }
    *out = r;
    return EBMC_OK;
}

void ebmc_replay_free(ebmc_replay_t *r) {
    if (!r) return;
    ebmc_free(r->ctx, r->storage);
    free(r);
}

static ebmc_replay_desc replay_desc(const ebmc_replay_t *r, int n, ebmc_rng_key key) {
    ebmc_replay_desc d = {n, r->elems, r->capacity, r->count, r->head, r->p_reuse,
                          r->lo, r->hi, r->u8, key, r->push_levels};
    if (r->count < r->min_fill) d.count = 0; /* not filled enough: fresh noise everywhere */
    return d;
}

ebmc_status ebmc_replay_sample(ebmc_replay_t *r, float *x, int n, ebmc_rng_key key) {
    ebmc_replay_desc d = replay_desc(r, n, key);
    return ebmc_replay_sample_op(r->ctx, &d, r->storage, x);
}

ebmc_status ebmc_replay_push(ebmc_replay_t *r, const float *x, int n) {
    ebmc_rng_key none = {0, 0, NULL, 0};
    ebmc_replay_desc d = replay_desc(r, n, none);
    EBMC_TRY(ebmc_replay_push_op(r->ctx, &d, r->storage, x));
    r->head = (r->head + n) % r->capacity;
    r->count = r->count + n > r->capacity ? r->capacity : r->count + n;
    return EBMC_OK;
}

int ebmc_replay_count(const ebmc_replay_t *r) { return r->count; }
int ebmc_replay_head(const ebmc_replay_t *r) { return r->head; }
void *ebmc_replay_storage(ebmc_replay_t *r) { return r->storage; }

ebmc_status ebmc_replay_restore(ebmc_replay_t *r, int count, int head) {
    if (count < 0 || count > r->capacity || head < 0 || head >= r->capacity)
        return ebmc_ctx_seterr(r->ctx, EBMC_E_INVALID, "replay buffer: count %d / head %d outside a capacity of %d",
                               count, head, r->capacity);
    r->count = count;
    r->head = head;
    return EBMC_OK;
}

void ebmc_replay_set_push_levels(ebmc_replay_t *r, float levels) { r->push_levels = levels; }
