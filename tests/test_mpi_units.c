/* The pieces of data parallelism that need no second process (issue 15): the context's chain
 * offset makes two "ranks" of B chains (offsets 0 and B) draw exactly what one process of 2B
 * chains draws, for every op that draws per-chain randomness (Langevin noise, noise fills,
 * reparameterisation, replay decisions); a context without a communicator leaves gradients alone;
 * a process no MPI launcher started is the only rank of its world. The multi-process tests are
 * tests/mpi/test_mpi.py (ctest mpi_*). */
#include "ebmc/comm.h"
#include "ebmc/mcmc.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

enum { B = 5, E = 7 }; /* odd sizes: chains cross no Philox group boundary by luck */

typedef enum { OP_LANGEVIN, OP_RNG, OP_REPARAM, OP_REPLAY, N_OPS } which_op;

/* Runs `op` on n chains starting at x (E values each) with chain offset `off`. aux: 2B*E inputs
 * (gradient, mu/s, or the replay buffer), indexed from the same first chain. */
static void draw(ebmc_ctx_t *ctx, which_op op, float *x, const float *aux, int n, uint32_t off) {
    ebmc_rng_key key = {.seed = 0xFEEDull, .stream = 3, .step_base = NULL, .step_offset = 9};
    ebmc_ctx_set_chain_offset(ctx, off);
    ebmc_status s = EBMC_E_INVALID;
    if (op == OP_LANGEVIN) {
        ebmc_langevin_desc d = {.n_chains = n, .chain_elems = E, .a = 0.1f, .b = 0.0f, .c = 0.5f,
                                .noise = EBMC_NOISE_AFTER, .rng = key};
        s = ebmc_langevin(ctx, &d, x, aux);
    } else if (op == OP_RNG) {
        ebmc_rng_desc d = {.n_chains = n, .chain_elems = E, .dist = EBMC_RNG_NORMAL, .p0 = 0, .p1 = 1, .rng = key};
        s = ebmc_rng(ctx, &d, x);
    } else if (op == OP_REPARAM) {
        ebmc_reparam_desc d = {.n_chains = n, .chain_elems = E, .k = 0.5f, .rng = key};
        s = ebmc_reparam(ctx, &d, aux, aux, x);
    } else {
        ebmc_replay_desc d = {.n_chains = n, .chain_elems = E, .capacity = 2 * B, .count = 2 * B,
                              .p_reuse = 0.5f, .lo = -1, .hi = 1, .rng = key};
        s = ebmc_replay_sample_op(ctx, &d, aux, x);
    }
    assert_int_equal(s, EBMC_OK);
    ebmc_ctx_set_chain_offset(ctx, 0);
}

static void test_chain_offset_splits_exactly(void **st) {
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    tu_rng r;
    tu_rng_seed(&r, 7);
    float *aux = tu_malloc(2 * B * E), *init = tu_malloc(2 * B * E);
    float *one = tu_malloc(2 * B * E), *two = tu_malloc(2 * B * E);
    tu_fill_normal(&r, aux, 2 * B * E, 1.0f);
    tu_fill_normal(&r, init, 2 * B * E, 1.0f);
    for (int op = 0; op < N_OPS; op++) {
        memcpy(one, init, 2 * B * E * sizeof(float));
        memcpy(two, init, 2 * B * E * sizeof(float));
        draw(ctx, (which_op)op, one, aux, 2 * B, 0);                /* one process, 2B chains */
        draw(ctx, (which_op)op, two, aux, B, 0);                    /* rank 0: chains 0..B-1 */
        draw(ctx, (which_op)op, two + B * E, op == OP_REPLAY ? aux : aux + B * E, B, B); /* rank 1 */
        assert_memory_equal(one, two, 2 * B * E * sizeof(float));
        /* and the offset matters: rank 1 without it draws rank 0's values */
        memcpy(two, init, 2 * B * E * sizeof(float));
        draw(ctx, (which_op)op, two + B * E, op == OP_REPLAY ? aux : aux + B * E, B, 0);
        assert_true(memcmp(one + B * E, two + B * E, B * E * sizeof(float)) != 0);
    }
    free(aux), free(init), free(one), free(two);
    ebmc_ctx_free(ctx);
}

/* The chain rank (what the run shell sets): rank r's op on n chains draws chains r*n.. of one
 * process's op on 2n chains, for any n (here n = 3, not the B of the test above): counts a recipe
 * splits apart from the data batch (train.chains, particles, walkers) follow without an offset of
 * their own. */
static void test_chain_rank_splits_any_count(void **st) {
    enum { N = 3 };
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    tu_rng r;
    tu_rng_seed(&r, 8);
    float *aux = tu_malloc(2 * B * E), *init = tu_malloc(2 * N * E); /* aux: draw's replay buffer of 2B */
    float *one = tu_malloc(2 * N * E), *two = tu_malloc(2 * N * E);
    tu_fill_normal(&r, aux, 2 * B * E, 1.0f);
    tu_fill_normal(&r, init, 2 * N * E, 1.0f);
    for (int op = 0; op < N_OPS; op++) {
        memcpy(one, init, 2 * N * E * sizeof(float));
        memcpy(two, init, 2 * N * E * sizeof(float));
        const float *aux1 = op == OP_REPLAY ? aux : aux + N * E;
        draw(ctx, (which_op)op, one, aux, 2 * N, 0);
        draw(ctx, (which_op)op, two, aux, N, 0);
        ebmc_ctx_set_chain_rank(ctx, 1);
        assert_int_equal(ebmc_ctx_chain_base(ctx, N), N);
        draw(ctx, (which_op)op, two + N * E, aux1, N, 0);
        ebmc_ctx_set_chain_rank(ctx, 0);
        assert_memory_equal(one, two, 2 * N * E * sizeof(float));
    }
    free(aux), free(init), free(one), free(two);
    ebmc_ctx_free(ctx);
}

static void test_no_comm_leaves_grads(void **st) {
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    float g[3] = {1.5f, -2.0f, 0.25f}, keep[3];
    memcpy(keep, g, sizeof g);
    assert_null(ebmc_ctx_comm(ctx));
    assert_int_equal(ebmc_ctx_grad_mean(ctx, g, 3), EBMC_OK);
    assert_memory_equal(g, keep, sizeof g);
    ebmc_ctx_free(ctx);
}

static void test_world_of_one(void **st) {
    /* ctest starts this without a launcher: one rank, no MPI initialised, no-op collectives */
    ebmc_comm_t *w = ebmc_comm_world();
    assert_int_equal(ebmc_comm_size(w), 1);
    assert_int_equal(ebmc_comm_rank(w), 0);
    double v[2] = {1.0, 2.0};
    assert_int_equal(ebmc_comm_sum_f64(w, v, 2, "test"), EBMC_OK);
    assert_true(v[0] == 1.0 && v[1] == 2.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_offset_splits_exactly),
        cmocka_unit_test(test_chain_rank_splits_any_count),
        cmocka_unit_test(test_no_comm_leaves_grads),
        cmocka_unit_test(test_world_of_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
