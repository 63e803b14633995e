/* Tapes of the nn graph: the device memory of one forward (values, BatchNorm statistics,
 * spectral-norm state) and, with gradients, of one backward, laid out from shapes at creation.
 * Gradient buffers share slots by liveness in the backward's order (grad_slots); a shared tape
 * reuses the arena of another tape of the same net. The workspace of the net's convolutions is
 * reserved here, once per tape. */
#include "nn/nn_internal.h"
#include "backend/ctx_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ tapes */

/* Gradient-buffer reuse (on unless a test turns it off to compare against the unshared plan). */
static bool nn_grad_reuse = true;
void ebmc_nn_set_grad_reuse(bool on) { nn_grad_reuse = on; }
bool ebmc_nn_grad_reuse(void) { return nn_grad_reuse; }

/* Liveness of the gradient buffers in the backward's order. Step 0 copies dy into the outputs'
 * gradients; the backward of node i is step n_nodes - i (nodes run in reverse). The gradient of
 * a value stored on its own (storage s, views included) is written first by step 0 when s is an
 * output, or by the backward of its first consumer in reverse order (beta 0; later consumers
 * accumulate with beta 1), and read last by the backward of the node that produced s. It is live
 * over the closed interval [first, last]: a node's backward reads its output's gradient and
 * writes its inputs' at the same step, so closed intervals keep every read apart from every
 * write of that step. Gradients whose intervals are disjoint share a slot; slots are assigned
 * greedily by start (best fit among free slots, else grow the largest free one), on per-sample
 * counts so the assignment does not depend on the batch (a smaller batch never needs more).
 * The net input's gradient (grad[0]) keeps its own buffer. Fills slot[v] for every storage value
 * v >= 1 and cap[k] (per-sample floats of slot k); returns the number of slots. */
static int grad_slots(const ebmc_net_t *net, int *slot, size_t *cap) {
    int nv = net->n_vals, nn = net->n_nodes;
    int *first = ebmc_xmalloc((size_t)nv * sizeof *first, "tape plan");
    int *last = ebmc_xmalloc((size_t)nv * sizeof *last, "tape plan");
    int *order = ebmc_xmalloc((size_t)nv * sizeof *order, "tape plan");
    int *end = ebmc_xmalloc((size_t)nv * sizeof *end, "tape plan");
    for (int v = 0; v < nv; v++) {
        first[v] = nn + 1;
        last[v] = -1;
        slot[v] = -1;
    }
    for (int i = 0; i < net->n_outputs; i++) first[net->vals[net->outputs[i]].storage] = 0;
    for (int i = 0; i < nn; i++) {
        const nn_node *nd = &net->nodes[i];
        if (nd->kind == N_RESHAPE || nd->kind == N_INPUT) continue; /* no backward of its own */
        int step = nn - i;
        int in[2] = {nd->in0, nd->kind == N_ADD ? nd->in1 : -1};
        for (int k = 0; k < 2; k++) {
            if (in[k] < 0) continue;
            int s = net->vals[in[k]].storage;
            if (step < first[s]) first[s] = step;
        }
        last[net->vals[nd->out].storage] = step;
    }
    int n = 0;
    for (int v = 1; v < nv; v++) {
        if (net->vals[v].storage != v) continue;
        if (last[v] < 0) last[v] = 0;         /* not produced by a node: cannot happen */
        if (first[v] > last[v]) first[v] = last[v]; /* never written: a one-step interval */
        order[n++] = v;
    }
    for (int i = 1; i < n; i++) { /* insertion sort by (first, value) */
        int v = order[i], j = i - 1;
        while (j >= 0 && first[order[j]] > first[v]) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
    int n_slots = 0;
    for (int i = 0; i < n; i++) {
        int v = order[i];
        size_t need = ebmc_net_value_count(net, v);
        int fit = -1, grow = -1;
        for (int k = 0; k < n_slots; k++) {
            if (end[k] >= first[v]) continue; /* still live */
            if (cap[k] >= need) {
                if (fit < 0 || cap[k] < cap[fit]) fit = k;
            } else if (grow < 0 || cap[k] > cap[grow]) {
                grow = k;
            }
        }
        int k = fit >= 0 ? fit : grow;
        if (k < 0) {
            k = n_slots++;
            cap[k] = 0;
        }
        if (need > cap[k]) cap[k] = need;
        end[k] = last[v];
        slot[v] = k;
    }
    free(first);
    free(last);
    free(order);
    free(end);
    return n_slots;
}

/* Lays out a tape (or only counts it when t == NULL); returns floats. Without reuse every value
 * has its own gradient buffer and every spectral-norm layer its own weight-gradient scratch;
 * with reuse gradients share slots (grad_slots) and the spectral-norm layers one scratch (each
 * is written with beta 0 and read by the same node's backward). */
static size_t tape_layout(const ebmc_net_t *net, int B, bool with_grad, bool reuse,
                          ebmc_tape_t *t, float *base) {
    size_t off = 0;
#define TAKE(ptr, nfloats)                                                                      \
    do {                                                                                        \
        if (base) (ptr) = base + off;                                                           \
        off += nn_align64(nfloats);                                                             \
    } while (0)
    reuse = reuse && with_grad;
    if (with_grad) /* the input's own gradient buffer: scratch when no dx is asked for */
        TAKE(t->grad[0], (size_t)B * ebmc_net_value_count(net, 0));
    for (int v = 1; v < net->n_vals; v++) {
        if (net->vals[v].storage != v) continue;
        size_t n = (size_t)B * ebmc_net_value_count(net, v);
        TAKE(t->val[v], n);
        if (with_grad && !reuse) TAKE(t->grad[v], n);
    }
    if (reuse) {
        int *slot = ebmc_xmalloc((size_t)net->n_vals * sizeof *slot, "tape plan");
        size_t *cap = ebmc_xmalloc((size_t)net->n_vals * sizeof *cap, "tape plan");
        float **at = ebmc_xcalloc((size_t)net->n_vals, sizeof *at, "tape plan");
        int n_slots = grad_slots(net, slot, cap);
        for (int k = 0; k < n_slots; k++) TAKE(at[k], (size_t)B * cap[k]);
        if (base)
            for (int v = 1; v < net->n_vals; v++)
                if (slot[v] >= 0) t->grad[v] = at[slot[v]];
        free(slot);
        free(cap);
        free(at);
    }
    int maxc = 1;
    size_t max_rc = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const nn_node *nd = &net->nodes[i];
        if (nd->kind == N_BN) {
            int c = net->vals[nd->in0].c;
            if (c > maxc) maxc = c;
            TAKE(t->bn[nd->slot].mean, (size_t)c);
            TAKE(t->bn[nd->slot].invstd, (size_t)c);
        } else if (nd->sn) {
            size_t rc = (size_t)nd->sn_rows * nd->sn_cols;
            if (rc > max_rc) max_rc = rc;
            TAKE(t->sn[nd->slot].w_sn, rc);
            if (with_grad && !reuse) TAKE(t->sn[nd->slot].dw_sn, rc);
            TAKE(t->sn[nd->slot].sigma, 1);
            TAKE(t->sn[nd->slot].u, (size_t)nd->sn_rows);
            TAKE(t->sn[nd->slot].v, (size_t)nd->sn_cols);
        }
    }
    if (reuse && max_rc) {
        float *dw_sn = NULL;
        TAKE(dw_sn, max_rc);
        if (base)
            for (int i = 0; i < net->n_sn; i++) t->sn[i].dw_sn = dw_sn;
    }
    TAKE(t->scratch, 2 * (size_t)maxc);
#undef TAKE
    if (base) /* views share their source's memory */
        for (int v = 1; v < net->n_vals; v++) {
            int s = net->vals[v].storage;
            if (s != v) {
                t->val[v] = t->val[s];
                t->grad[v] = t->grad[s];
            }
        }
    return off;
}

size_t ebmc_tape_plan_bytes(const ebmc_net_t *net, int max_batch, bool with_grad) {
    return tape_layout(net, max_batch, with_grad, nn_grad_reuse, NULL, NULL) * sizeof(float);
}

/* Workspace the net's convolutions need at batch B (planned once per tape). */
static size_t net_workspace(const ebmc_net_t *net, int B) {
    size_t ws = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const nn_node *nd = &net->nodes[i];
        if (nd->kind != N_CONV && nd->kind != N_CONVT && !nd->sn) continue;
        if (nd->kind == N_CONV || nd->kind == N_CONVT) {
            ebmc_conv_desc d = nd->cd;
            d.n = B;
            for (int k = 0; k < 3; k++) {
                ebmc_op op = (ebmc_op)(EBMC_OP_CONV2D_FWD + k + (nd->kind == N_CONVT ? 3 : 0));
                size_t w = ebmc_workspace_size(net->ctx, op, &d);
                if (w > ws) ws = w;
            }
        }
        if (nd->sn) {
            ebmc_sn_desc sd = {nd->sn_rows, nd->sn_cols, 1, 1e-12f, nd->sn_lb};
            size_t w = ebmc_workspace_size(net->ctx, EBMC_OP_SN_POWER, &sd);
            if (w > ws) ws = w;
        }
    }
    return ws;
}

/* The checks and host side common to ebmc_tape_create and ebmc_tape_create_shared. */
static ebmc_status tape_new(ebmc_net_t *net, int max_batch, bool with_grad, ebmc_tape_t **out) {
    *out = NULL;
    if (!net->finalized) {
        nn_fail(net, "tape for a net that is not finalized");
        return EBMC_E_INVALID;
    }
    if (max_batch < 1) {
        snprintf(net->err, sizeof net->err, "%s: tape batch %d must be >= 1", net->name, max_batch);
        return EBMC_E_INVALID;
    }
    ebmc_tape_t *t = ebmc_xcalloc(1, sizeof *t, "tape");
    t->net = net;
    t->max_batch = max_batch;
    t->with_grad = with_grad;
    t->val = ebmc_xcalloc(net->n_vals, sizeof *t->val, "tape");
    t->grad = ebmc_xcalloc(net->n_vals, sizeof *t->grad, "tape");
    t->bn = ebmc_xcalloc(net->n_bn + 1, sizeof *t->bn, "tape");
    t->sn = ebmc_xcalloc(net->n_sn + 1, sizeof *t->sn, "tape");
    t->written = ebmc_xcalloc(net->n_vals, sizeof *t->written, "tape");
    *out = t;
    return EBMC_OK;
}

ebmc_status ebmc_tape_create(ebmc_net_t *net, int max_batch, bool with_grad, ebmc_tape_t **out) {
    ebmc_tape_t *t;
    ebmc_status s = tape_new(net, max_batch, with_grad, &t);
    if (s) return s;
    bool reuse = nn_grad_reuse;
    size_t n = tape_layout(net, max_batch, with_grad, reuse, NULL, NULL);
    t->mem = ebmc_xcalloc(1, sizeof *t->mem, "tape");
    t->mem->ctx = net->ctx;
    t->mem->refs = 1;
    t->mem->bytes = n * sizeof(float);
    s = ebmc_alloc(net->ctx, (void **)&t->mem->ptr, n * sizeof(float));
    if (!s) s = ebmc_ctx_reserve_workspace(net->ctx, net_workspace(net, max_batch));
    if (s) {
        snprintf(net->err, sizeof net->err, "%s: planning a tape for batch %d (%.1f MiB): %s",
                 net->name, max_batch, n * 4.0 / 1048576.0, ebmc_ctx_error(net->ctx));
        ebmc_tape_free(t);
        return s;
    }
    tape_layout(net, max_batch, with_grad, reuse, t, t->mem->ptr);
    *out = t;
    return EBMC_OK;
}

ebmc_status ebmc_tape_create_shared(ebmc_net_t *net, int max_batch, bool with_grad,
                                    ebmc_tape_t *base, ebmc_tape_t **out) {
    *out = NULL;
    if (!base || base->net != net) {
        snprintf(net->err, sizeof net->err, "%s: a shared tape needs a base tape of the same net%s%s",
                 net->name, base ? ", not of " : " (NULL base)", base ? base->net->name : "");
        return EBMC_E_INVALID;
    }
    if (max_batch > base->max_batch) {
        snprintf(net->err, sizeof net->err, "%s: a shared tape for batch %d on a base planned for %d",
                 net->name, max_batch, base->max_batch);
        return EBMC_E_INVALID;
    }
    if (with_grad && !base->with_grad) {
        snprintf(net->err, sizeof net->err, "%s: a shared tape with gradients on a base without them",
                 net->name);
        return EBMC_E_INVALID;
    }
    bool reuse = nn_grad_reuse;
    size_t n = tape_layout(net, max_batch, with_grad, reuse, NULL, NULL);
    if (n * sizeof(float) > base->mem->bytes) { /* e.g. the reuse switch turned off in between */
        snprintf(net->err, sizeof net->err, "%s: a shared tape needs %zu bytes, its base has %zu",
                 net->name, n * sizeof(float), base->mem->bytes);
        return EBMC_E_INVALID;
    }
    ebmc_tape_t *t;
    ebmc_status s = tape_new(net, max_batch, with_grad, &t);
    if (s) return s;
    t->mem = base->mem;
    t->mem->refs++;
    t->shares = true;
    tape_layout(net, max_batch, with_grad, reuse, t, t->mem->ptr);
    *out = t;
    return EBMC_OK;
}

void ebmc_tape_free(ebmc_tape_t *t) {
    if (!t) return;
    if (t->mem && --t->mem->refs == 0) {
        if (t->mem->ptr) ebmc_free(t->mem->ctx, t->mem->ptr);
        free(t->mem);
    }
    free(t->val);
    free(t->grad);
    free(t->bn);
    free(t->sn);
    free(t->written);
    free(t);
}

size_t ebmc_tape_bytes(const ebmc_tape_t *t) { return t->mem ? t->mem->bytes : 0; }
bool ebmc_tape_shares(const ebmc_tape_t *t) { return t->shares; }

int ebmc_tape_batch(const ebmc_tape_t *t) { return t->n; }
float *ebmc_tape_value(ebmc_tape_t *t, int v) { return t->val[v]; }
float *ebmc_tape_output(ebmc_tape_t *t, int i) { return t->val[t->net->outputs[i]]; }
