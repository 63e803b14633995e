/* The chains' CUDA-graph logic, on the CPU, through a fake graph backend (issue 17):
 * the CPU op table with graph_begin/end/launch/free that record their calls. Between begin and
 * end the context's table is swapped for one whose ops only count themselves (a capture records
 * work, it does not run it), and the fake's begin/end use the CUDA backend's deferral of failed
 * device calls (ebmc_fail_defer_begin/_end), so that:
 * - eager first: with graphs on, the first run for a batch size is eager (cuDNN's first
 *   execution is never inside a capture), the second captures and launches, later ones replay;
 *   a new batch size again runs eagerly once first;
 * - a failed capture (begin fails, end fails, or a device call fails inside it) is ended,
 *   discarded, reported once (ebmc_chain_graph_failure), the run is done eagerly with the same
 *   result as an eager chain, and later runs stay eager: no capture is attempted again;
 * - the discarded capture's host bookkeeping (BatchNorm's batch counter) is undone;
 * - the device-failure sink defers inside a capture (first failure kept, nesting) instead of
 *   exiting.
 * What runs only on a GPU (a real capture and replay, bitwise against eager) is
 * tests/test_mcmc_cuda.c. */
#include "backend/ctx_internal.h"
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "testutil.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    int begin, end, launch, freed, recorded;
    bool fail_begin, fail_end, fail_call;
} LOG;
static ebmc_backend_ops LIVE, REC; /* the CPU table + fake graphs; the recording table */

/* recording: an op inside a capture only counts itself (or fails like a cuDNN call would) */
#define REC_OP_(OP, id, wrapper, desc, params, ...)                                               \
    static ebmc_status rec_##id(ebmc_ctx_t *ctx, const desc *d, EBMC_UNPAREN params) {          \
        LOG.recorded++;                                                                         \
        if (LOG.fail_call)                                                                      \
            ebmc_fail_device("cudnnConvolutionForward(...)", "CUDNN_STATUS_EXECUTION_FAILED",   \
                             __func__, __FILE__, __LINE__);                                     \
        return EBMC_OK;                                                                         \
    }
EBMC_OPS(REC_OP_)
#undef REC_OP_

static ebmc_status fake_begin(ebmc_ctx_t *ctx) {
    if (ctx->ops == &REC) return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "fake: nested capture");
    if (LOG.fail_begin) return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "fake: begin refused");
    LOG.begin++;
    ctx->ops = &REC;
    ebmc_fail_defer_begin();
    return EBMC_OK;
}

static ebmc_status fake_end(ebmc_ctx_t *ctx, void **graph) {
    *graph = NULL;
    if (ctx->ops != &REC) return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "fake: end without begin");
    char failed[512];
    const bool call_failed = ebmc_fail_defer_end(failed, sizeof failed);
    LOG.end++;
    ctx->ops = &LIVE;
    if (call_failed)
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "fake: a call failed in the capture: %s",
                               failed);
    if (LOG.fail_end) return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "fake: end refused");
    *graph = (void *)(uintptr_t)(0x1000 + LOG.end);
    return EBMC_OK;
}

static ebmc_status fake_launch(ebmc_ctx_t *ctx, void *graph) {
    (void)ctx;
    assert_non_null(graph);
    LOG.launch++;
    return EBMC_OK;
}

static void fake_free(ebmc_ctx_t *ctx, void *graph) {
    (void)ctx;
    if (graph) LOG.freed++;
}

/* A CPU context whose table has the fake graphs. */
static ebmc_ctx_t *fake_ctx(void) {
    memset(&LOG, 0, sizeof LOG);
    LIVE = ebmc_cpu_ops;
    LIVE.name = "cpu+fake-graphs";
    LIVE.graph_begin = fake_begin;
    LIVE.graph_end = fake_end;
    LIVE.graph_launch = fake_launch;
    LIVE.graph_free = fake_free;
    REC = LIVE;
#define REC_ENTRY_(OP, id, ...) REC.id = rec_##id;
    EBMC_OPS(REC_ENTRY_)
#undef REC_ENTRY_
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    ctx->ops = &LIVE;
    assert_true(ebmc_graph_supported(ctx));
    return ctx;
}

#define OKC(ctx, call)                                                                          \
    do {                                                                                        \
        ebmc_status s_ = (call);                                                                \
        if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(ctx));                      \
    } while (0)

enum { E = 13, N = 5, K = 4 };

typedef struct {
    ebmc_ctx_t *ctx;
    ebmc_potential *pot;
    ebmc_chain_t *ch;
} gchain;

static gchain gauss_chain(ebmc_ctx_t *ctx, bool graph) {
    float v[E + N * E]; /* the mean mu (E), then the chains' start (N, E) */
    tu_rng r;
    tu_rng_seed(&r, 11);
    tu_fill_normal(&r, v, E + N * E, 1.0f);
    const ebmc_langevin_params p = {.steps = K, .a = 0.1f, .c = 0.3f, .noise = EBMC_NOISE_AFTER};
    gchain g = {ctx, NULL, NULL};
    OKC(ctx, ebmc_potential_gaussian(ctx, E, N, v, 0.5f, &g.pot));
    OKC(ctx, ebmc_chain_create(g.pot, &p, N, 99, 2, &g.ch));
    memcpy(ebmc_chain_state(g.ch), v + E, (size_t)N * E * sizeof(float));
    ebmc_chain_set_graph(g.ch, graph);
    return g;
}

/* Frees the chain under test and its eager reference, with their contexts. */
static void pair_free(gchain *g, gchain *ref) {
    ebmc_ctx_t *ctxs[2] = {g->ctx, ref->ctx};
    gchain *both[2] = {g, ref};
    for (int i = 0; i < 2; i++) {
        ebmc_chain_free(both[i]->ch);
        ebmc_potential_free(both[i]->pot);
        ebmc_ctx_free(ctxs[i]);
    }
}

static void expect_same_state(gchain *a, gchain *b, int n) {
    assert_memory_equal(ebmc_chain_state(a->ch), ebmc_chain_state(b->ch),
                        (size_t)n * E * sizeof(float));
    assert_int_equal(ebmc_chain_step(a->ch), ebmc_chain_step(b->ch));
}

static void test_eager_first_then_capture(void **state) {
    (void)state;
    ebmc_ctx_t *ctx = fake_ctx(), *ref_ctx = tu_ctx_cpu();
    gchain g = gauss_chain(ctx, true), ref = gauss_chain(ref_ctx, false);
    assert_true(ebmc_chain_graph_active(g.ch));
    OKC(ctx, ebmc_chain_run(g.ch, N)); /* 1: eager */
    OKC(ref_ctx, ebmc_chain_run(ref.ch, N));
    assert_int_equal(LOG.begin, 0);
    assert_int_equal(LOG.launch, 0);
    assert_int_equal(LOG.recorded, 0);
    expect_same_state(&g, &ref, N);
    OKC(ctx, ebmc_chain_run(g.ch, N)); /* 2: capture + launch */
    assert_int_equal(LOG.begin, 1);
    assert_int_equal(LOG.end, 1);
    assert_int_equal(LOG.launch, 1);
    assert_int_equal(LOG.recorded, 2 * K + 1); /* K gradients, K updates, the counter */
    OKC(ctx, ebmc_chain_run(g.ch, N)); /* 3: replay */
    assert_int_equal(LOG.begin, 1);
    assert_int_equal(LOG.launch, 2);
    assert_int_equal(ebmc_chain_step(g.ch), 3 * K);
    /* a new batch size: eager once, then captured */
    OKC(ctx, ebmc_chain_run(g.ch, N - 2));
    assert_int_equal(LOG.begin, 1);
    assert_int_equal(LOG.launch, 2);
    OKC(ctx, ebmc_chain_run(g.ch, N - 2));
    assert_int_equal(LOG.begin, 2);
    assert_int_equal(LOG.launch, 3);
    assert_true(ebmc_chain_graph_active(g.ch));
    assert_string_equal(ebmc_chain_graph_failure(g.ch), "");
    /* new parameters drop the graphs but not the warm batch sizes: captured at once */
    const ebmc_langevin_params p2 = {.steps = K, .a = 0.05f, .c = 0.3f, .noise = EBMC_NOISE_AFTER};
    ebmc_chain_set_params(g.ch, &p2);
    assert_int_equal(LOG.freed, 2);
    OKC(ctx, ebmc_chain_run(g.ch, N));
    assert_int_equal(LOG.begin, 3);
    pair_free(&g, &ref);
}

/* mode: 0 end fails, 1 begin fails, 2 a device call inside the capture fails */
static void fallback_case(int mode) {
    ebmc_ctx_t *ctx = fake_ctx(), *ref_ctx = tu_ctx_cpu();
    LOG.fail_end = mode == 0;
    LOG.fail_begin = mode == 1;
    LOG.fail_call = mode == 2;
    gchain g = gauss_chain(ctx, true), ref = gauss_chain(ref_ctx, false);
    for (int run = 1; run <= 3; run++) {
        OKC(ctx, ebmc_chain_run(g.ch, N)); /* the failed capture is not the caller's failure */
        OKC(ref_ctx, ebmc_chain_run(ref.ch, N));
        expect_same_state(&g, &ref, N); /* the discarded capture ran nothing; eager did */
        printf("  mode %d run %d: begin %d end %d launch %d graphs %s; failure: %s\n", mode, run,
               LOG.begin, LOG.end, LOG.launch, ebmc_chain_graph_active(g.ch) ? "on" : "off",
               ebmc_chain_graph_failure(g.ch));
    }
    /* one attempt (run 2), then eager for good */
    assert_int_equal(LOG.begin, mode == 1 ? 0 : 1);
    assert_int_equal(LOG.end, mode == 1 ? 0 : 1);
    assert_int_equal(LOG.launch, 0);
    assert_false(ebmc_chain_graph_active(g.ch));
    const char *why = ebmc_chain_graph_failure(g.ch);
    assert_non_null(strstr(why, mode == 0   ? "end refused"
                                : mode == 1 ? "begin refused"
                                            : "CUDNN_STATUS_EXECUTION_FAILED"));
    /* turning graphs on again tries again (eager first, the batch size is warm: capture) */
    LOG.fail_end = LOG.fail_begin = LOG.fail_call = false;
    ebmc_chain_set_graph(g.ch, true);
    OKC(ctx, ebmc_chain_run(g.ch, N));
    assert_int_equal(LOG.launch, 1);
    pair_free(&g, &ref);
}

static void test_failed_end_falls_back(void **state) {
    (void)state;
    fallback_case(0);
}
static void test_failed_begin_falls_back(void **state) {
    (void)state;
    fallback_case(1);
}
static void test_failed_call_in_capture_falls_back(void **state) {
    (void)state;
    fallback_case(2);
}

/* A latent chain through a generator with BatchNorm: the failed capture's forwards are not
 * counted as BatchNorm batches. */
static void test_discarded_capture_bn_counter(void **state) {
    (void)state;
    ebmc_ctx_t *ctxs[2] = {fake_ctx(), tu_ctx_cpu()};
    LOG.fail_end = true;
    ebmc_net_t *G[2];
    ebmc_potential *pot[2];
    ebmc_chain_t *ch[2];
    const int n = 2;
    for (int i = 0; i < 2; i++) {
        ebmc_model_cfg c;
        ebmc_model_defaults("dualmcmc_cifar10", &c);
        c.ngf = 4, c.nz = 8;
        char err[256];
        G[i] = ebmc_model_build(&c, EBMC_NET_G, err, sizeof err);
        assert_non_null(G[i]);
        assert_int_equal(ebmc_net_finalize(G[i], ctxs[i], false, 3), EBMC_OK);
        OKC(ctxs[i], ebmc_potential_latent(G[i], n, 2.0f, &pot[i]));
        const ebmc_langevin_params p = ebmc_langevin_dualmcmc_z(0.1f, 1.0f, 3);
        OKC(ctxs[i], ebmc_chain_create(pot[i], &p, n, 5, 1, &ch[i]));
        ebmc_rng_key k0 = {1, 9, NULL, 0};
        OKC(ctxs[i], ebmc_init_normal(ctxs[i], ebmc_chain_state(ch[i]), n, pot[i]->elems, 1, k0));
        ebmc_rng_key k1 = {1, 10, NULL, 0};
        OKC(ctxs[i], ebmc_init_uniform(ctxs[i], ebmc_potential_latent_target(pot[i]), n,
                                       ebmc_net_value_count(G[i], ebmc_net_output_value(G[i], 0)),
                                       -1, 1, k1));
        ebmc_chain_set_graph(ch[i], i == 0);
    }
    assert_true(ebmc_net_bn_batches(G[0]) == 0);
    for (int run = 1; run <= 3; run++)
        for (int i = 0; i < 2; i++) OKC(ctxs[i], ebmc_chain_run(ch[i], n));
    printf("  BatchNorm batches: fake-graph chain %lld, eager chain %lld\n",
           (long long)ebmc_net_bn_batches(G[0]), (long long)ebmc_net_bn_batches(G[1]));
    assert_int_equal(LOG.begin, 1);
    assert_true(ebmc_net_bn_batches(G[1]) == 9); /* the net has BatchNorm: 3 runs of 3 steps */
    assert_true(ebmc_net_bn_batches(G[0]) == ebmc_net_bn_batches(G[1]));
    assert_memory_equal(ebmc_chain_state(ch[0]), ebmc_chain_state(ch[1]),
                        (size_t)n * pot[0]->elems * sizeof(float));
    for (int i = 0; i < 2; i++) {
        ebmc_chain_free(ch[i]);
        ebmc_potential_free(pot[i]);
        ebmc_net_free(G[i]);
        ebmc_ctx_free(ctxs[i]);
    }
}

static void test_device_sink_defers_in_capture(void **state) {
    (void)state;
    char msg[512];
    assert_false(ebmc_fail_defer_end(msg, sizeof msg)); /* unbalanced end: harmless */
    ebmc_fail_defer_begin();
    ebmc_fail_defer_begin(); /* nested */
    ebmc_fail_device("first()", "E1", "f", "a.c", 1);
    ebmc_fail_device("second()", "E2", "g", "b.c", 2);
    assert_true(ebmc_fail_defer_end(msg, sizeof msg));
    assert_non_null(strstr(msg, "first(): E1"));
    assert_true(ebmc_fail_defer_end(msg, sizeof msg)); /* the outermost end still reports it */
    assert_non_null(strstr(msg, "first()"));
    ebmc_fail_defer_begin(); /* a new capture starts clean */
    assert_false(ebmc_fail_defer_end(msg, sizeof msg));
    assert_string_equal(msg, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eager_first_then_capture),
        cmocka_unit_test(test_failed_end_falls_back),
        cmocka_unit_test(test_failed_begin_falls_back),
        cmocka_unit_test(test_failed_call_in_capture_falls_back),
        cmocka_unit_test(test_discarded_capture_bn_counter),
        cmocka_unit_test(test_device_sink_defers_in_capture),
    };
    return cmocka_run_group_tests_name("graph_fallback", tests, NULL, NULL);
}
