/* Whole-network checks on the CPU backend, for small widths of every architecture:
 * - directional central finite differences of L = sum_i r_i . out_i against the input gradient
 *   and every parameter tensor's gradient of a full backward;
 * - the input-gradient-only backward gives the same dx and leaves parameter gradients untouched;
 * - two tapes of one net are independent; forward is deterministic;
 * - parameter counts of the full-size Dual-MCMC nets and their memory plans at batch 100.
 *
 * The nets are built with `smooth`: every ReLU/LeakyReLU is a SiLU. Finite differences of a
 * whole ReLU net are ill-posed (thousands of units sit within any useful step of their kink and
 * the difference straddles them); the kink itself is checked per op in test_ops_grad, and the
 * real nets, ReLUs included, against PyTorch autograd in tests/oracle. Everything else (the graph,
 * residual accumulation, BatchNorm, spectral norm, upsampling, views, heads) is as in the real
 * architecture.
 * Tolerance. Element-wise differences are checked per op in test_ops_grad; for whole nets the
 * check is directional (3 random directions per tensor), because single-element steps large
 * enough to beat float32 rounding cross ReLU kinks of the tiny activations some inits give
 * (N(0, 0.005^2) weights). The step is h = 1e-3 * rms(tensor); along it only a ~1e-3 fraction of
 * units can cross a kink, float32 rounding of L contributes ~|L| 2^-24 sqrt(#ops) / 2h, and the
 * curvature of the smooth parts (BatchNorm, tanh, SiLU, spectral norm) is O(h^2). Pass:
 * |fd - g.v| <= 2e-2 * ||g||_2. */
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "testutil.h"
#include "train/energy.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REL_H 1e-3
#define DIR_TOL 2e-2

static ebmc_ctx_t *CTX;
static tu_rng RNG;

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) {
    CTX = tu_ctx_cpu();
    tu_rng_seed(&RNG, 777);
    return 0;
}
static int teardown(void **state) {
    ebmc_ctx_free(CTX);
    return 0;
}

typedef struct {
    ebmc_net_t *net;
    ebmc_tape_t *tape;
    int n;
    float *x;
    float *r[2];
    size_t out_n[2];
    int n_out;
    double abs_sum; /* sum |r . out| at the base point: the scale of L's rounding */
} net_case;

static double net_loss(void *u) {
    net_case *c = u;
    OK(ebmc_net_forward(c->net, c->tape, c->n, c->x));
    double s = 0;
    for (int i = 0; i < c->n_out; i++) s += tu_dot(c->r[i], ebmc_tape_output(c->tape, i), c->out_n[i]);
    return s;
}

static double max_abs(const float *g, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(g[i]));
    return m;
}

static ebmc_net_t *build(const ebmc_model_cfg *cfg, ebmc_net_role role) {
    char err[256];
    ebmc_net_t *net = ebmc_model_build(cfg, role, err, sizeof err);
    if (!net) fail_msg("build %s/%d: %s", cfg->arch, role, err);
    if (ebmc_net_finalize(net, CTX, true, 42) != EBMC_OK) fail_msg("finalize: %s", ebmc_net_error(net));
    return net;
}

static void check_net(const ebmc_model_cfg *cfg, ebmc_net_role role, int n) {
    const char *rn[] = {"E", "G", "I"};
    net_case c = {.n = n};
    c.net = build(cfg, role);
    OK(ebmc_tape_create(c.net, n, true, &c.tape));
    int ci, hi, wi;
    ebmc_net_input_shape(c.net, &ci, &hi, &wi);
    size_t nx = (size_t)n * ci * hi * wi;
    c.x = tu_malloc(nx);
    tu_fill_normal(&RNG, c.x, nx, role == EBMC_NET_G ? 1.0f : 0.5f);
    c.n_out = ebmc_net_n_outputs(c.net);
    for (int i = 0; i < c.n_out; i++) {
        c.out_n[i] = (size_t)n * ebmc_net_value_count(c.net, ebmc_net_output_value(c.net, i));
        c.r[i] = tu_malloc(c.out_n[i]);
        tu_fill_normal(&RNG, c.r[i], c.out_n[i], 1.0f);
    }
    /* one forward with the power iteration (as training does), then freeze u, v: the backward
     * treats them as constants, and so must the finite differences */
    net_loss(&c);
    ebmc_net_set_sn_iters(c.net, 0);
    double l0 = net_loss(&c);
    assert_true(isfinite(l0));
    for (int i = 0; i < c.n_out; i++) {
        const float *o = ebmc_tape_output(c.tape, i);
        for (size_t k = 0; k < c.out_n[i]; k++) c.abs_sum += fabs((double)c.r[i][k] * o[k]);
    }
    const float *dys[2] = {c.r[0], c.r[1]};
    float *dx = tu_malloc(nx);
    OK(ebmc_net_zero_grad(c.net));
    OK(ebmc_net_backward(c.net, c.tape, dys, EBMC_GRAD_FULL, dx, 0.0f));
    char name[160];
    snprintf(name, sizeof name, "%s %s dx", cfg->arch, rn[role]);
    double mg = max_abs(dx, nx);
    assert_true(tu_dircheck(name, net_loss, &c, c.x, nx, dx, REL_H, DIR_TOL, 3, &RNG, c.abs_sum) <= 1.0);

    /* input-gradient-only mode: same dx, parameter gradients untouched */
    size_t np = ebmc_net_param_count(c.net);
    float *g_full = tu_malloc(np), *g_after = tu_malloc(np), *dx2 = tu_malloc(nx);
    OK(ebmc_copy(CTX, g_full, ebmc_net_grads(c.net), np * 4, EBMC_COPY_D2H));
    net_loss(&c);
    OK(ebmc_net_backward(c.net, c.tape, dys, EBMC_GRAD_INPUT, dx2, 0.0f));
    OK(ebmc_copy(CTX, g_after, ebmc_net_grads(c.net), np * 4, EBMC_COPY_D2H));
    assert_memory_equal(g_full, g_after, np * sizeof(float));
    assert_true(tu_max_abs(dx2, dx, nx) <= 1e-6 * (1 + mg));

    /* every parameter tensor: finite differences on a spread of its elements */
    int nt = ebmc_net_tensor_count(c.net);
    for (int k = 0; k < nt; k++) {
        const ebmc_net_tensor *t = ebmc_net_tensor_at(c.net, k);
        if (!t->trainable) continue;
        float *g = tu_malloc(t->count);
        OK(ebmc_copy(CTX, g, t->grad, t->count * 4, EBMC_COPY_D2H));
        snprintf(name, sizeof name, "%s %s %s", cfg->arch, rn[role], t->name);
        /* the CPU backend's memory is host memory: perturb the parameter in place */
        assert_true(tu_dircheck(name, net_loss, &c, t->data, t->count, g, REL_H, DIR_TOL, 3, &RNG, c.abs_sum) <= 1.0);
        free(g);
    }
    free(g_full); free(g_after); free(dx2); free(dx); free(c.x);
    for (int i = 0; i < c.n_out; i++) free(c.r[i]);
    ebmc_tape_free(c.tape);
    ebmc_net_free(c.net);
}

static ebmc_model_cfg small(const char *arch) {
    ebmc_model_cfg c;
    assert_true(ebmc_model_defaults(arch, &c));
    c.nz = c.nz > 8 ? 8 : c.nz;
    c.ngf = c.ngf ? 16 : 0;
    c.ndf = c.ndf ? 16 : 0;
    c.nif = c.nif ? 4 : 0;
    c.hidden = c.hidden ? 16 : 0;
    c.smooth = true;
    return c;
}

static void test_dualmcmc_cifar10(void **state) {
    ebmc_model_cfg c = small("dualmcmc_cifar10");
    c.ngf = 8; c.ndf = 8;
    for (int r = 0; r < 3; r++) check_net(&c, r, 3);
}

static void test_dualmcmc_celeba64(void **state) {
    ebmc_model_cfg c = small("dualmcmc_celeba64");
    c.ngf = 32; c.ndf = 32; c.nif = 2;
    for (int r = 0; r < 3; r++) check_net(&c, r, 2);
}

static void test_shortrun(void **state) {
    ebmc_model_cfg c = small("shortrun");
    c.ndf = 4;
    check_net(&c, EBMC_NET_E, 3);
}

static void test_coopvaebm(void **state) {
    ebmc_model_cfg c = small("coopvaebm");
    c.ndf = 4; c.ngf = 4; c.nif = 4;
    for (int r = 0; r < 3; r++) check_net(&c, r, 3);
}

static void test_coopnets(void **state) {
    ebmc_model_cfg c = small("coopnets_cifar");
    c.ndf = 4; c.ngf = 4;
    check_net(&c, EBMC_NET_E, 3);
    check_net(&c, EBMC_NET_G, 3);
}

static void test_toy_and_mnist(void **state) {
    ebmc_model_cfg c = small("toy2d");
    for (int r = 0; r < 3; r++) check_net(&c, r, 5);
    c = small("mnist");
    c.ndf = 4; c.ngf = 4; c.nif = 4;
    for (int r = 0; r < 3; r++) check_net(&c, r, 3);
}

/* Two tapes of one net keep their own activations; forward is deterministic. */
static void test_tapes_independent(void **state) {
    ebmc_model_cfg c = small("dualmcmc_cifar10");
    c.ngf = 8;
    ebmc_net_t *g = build(&c, EBMC_NET_G);
    ebmc_tape_t *t1, *t2;
    OK(ebmc_tape_create(g, 4, true, &t1));
    OK(ebmc_tape_create(g, 4, false, &t2));
    size_t nz = 4 * 8, nout = 4 * 3 * 32 * 32;
    float *z1 = tu_malloc(nz), *z2 = tu_malloc(nz), *o1 = tu_malloc(nout), *o1b = tu_malloc(nout);
    tu_fill_normal(&RNG, z1, nz, 1);
    tu_fill_normal(&RNG, z2, nz, 1);
    OK(ebmc_net_forward(g, t1, 4, z1));
    memcpy(o1, ebmc_tape_output(t1, 0), nout * 4);
    OK(ebmc_net_forward(g, t2, 4, z2));
    assert_memory_equal(o1, ebmc_tape_output(t1, 0), nout * 4); /* untouched by t2's pass */
    OK(ebmc_net_forward(g, t1, 4, z1));
    memcpy(o1b, ebmc_tape_output(t1, 0), nout * 4);
    assert_memory_equal(o1, o1b, nout * 4);
    for (size_t i = 0; i < nout; i++) assert_true(fabsf(o1[i]) <= 1.0f); /* tanh output */
    /* a forward on a tape without gradients cannot be backpropagated */
    assert_int_equal(ebmc_net_backward(g, t2, NULL, EBMC_GRAD_INPUT, NULL, 0), EBMC_E_INVALID);
    /* batch larger than planned */
    assert_int_equal(ebmc_net_forward(g, t1, 5, z1), EBMC_E_INVALID);
    printf("  -> %s\n", ebmc_ctx_error(CTX));
    free(z1); free(z2); free(o1); free(o1b);
    ebmc_tape_free(t1);
    ebmc_tape_free(t2);
    ebmc_net_free(g);
}

/* ---- tape memory: gradient-buffer reuse and shared tapes ---- */

typedef struct {
    ebmc_net_t *net;
    ebmc_tape_t *tape;
    float *out[2], *dx, *grads; /* host copies after each pass */
} pass_rec;

/* One forward + full backward of `net` on tape t: dy = r for every output (the second output's
 * dy left out when skip_dy1), dx accumulated with dx_beta; outputs, dx and the net's parameter
 * gradients copied into rec (the CPU backend's memory is host memory). */
static void run_pass(ebmc_net_t *net, ebmc_tape_t *t, int n, const float *x, float *const *r,
                     bool skip_dy1, float *dx, float dx_beta, pass_rec *rec) {
    OK(ebmc_net_forward(net, t, n, x));
    int no = ebmc_net_n_outputs(net);
    const float *dys[2] = {r[0], no > 1 && !skip_dy1 ? r[1] : NULL};
    OK(ebmc_net_backward(net, t, dys, EBMC_GRAD_FULL, dx, dx_beta));
    int ci, hi, wi;
    ebmc_net_input_shape(net, &ci, &hi, &wi);
    size_t nx = (size_t)n * ci * hi * wi, np = ebmc_net_param_count(net);
    for (int i = 0; i < no; i++) {
        size_t k = (size_t)n * ebmc_net_value_count(net, ebmc_net_output_value(net, i));
        rec->out[i] = realloc(rec->out[i], k * 4);
        memcpy(rec->out[i], ebmc_tape_output(t, i), k * 4);
    }
    rec->dx = realloc(rec->dx, nx * 4);
    memcpy(rec->dx, dx, nx * 4);
    rec->grads = realloc(rec->grads, np * 4);
    memcpy(rec->grads, ebmc_net_grads(net), np * 4);
}

static void rec_equal(const pass_rec *a, const pass_rec *b, ebmc_net_t *net, int n) {
    int ci, hi, wi;
    ebmc_net_input_shape(net, &ci, &hi, &wi);
    for (int i = 0; i < ebmc_net_n_outputs(net); i++)
        assert_memory_equal(a->out[i], b->out[i],
                            (size_t)n * ebmc_net_value_count(net, ebmc_net_output_value(net, i)) * 4);
    assert_memory_equal(a->dx, b->dx, (size_t)n * ci * hi * wi * 4);
    assert_memory_equal(a->grads, b->grads, ebmc_net_param_count(net) * 4);
}

static void rec_free(pass_rec *r) {
    free(r->out[0]); free(r->out[1]); free(r->dx); free(r->grads);
    memset(r, 0, sizeof *r);
}

/* The net of (cfg, role) twice from one seed: a tape with gradient reuse on one, without on the
 * other; three passes (the second accumulates into dx and, for two-output nets, leaves out the
 * second output's dy) give bit-identical outputs, input gradients and parameter gradients.
 * Returns the plan bytes at batch n with and without reuse. */
static void check_reuse(const ebmc_model_cfg *cfg, ebmc_net_role role, int n, size_t *with,
                        size_t *without) {
    ebmc_net_t *a = build(cfg, role), *b = build(cfg, role);
    ebmc_tape_t *ta, *tb;
    ebmc_nn_set_grad_reuse(false);
    *without = ebmc_tape_plan_bytes(a, n, true);
    OK(ebmc_tape_create(b, n, true, &tb));
    ebmc_nn_set_grad_reuse(true);
    *with = ebmc_tape_plan_bytes(a, n, true);
    OK(ebmc_tape_create(a, n, true, &ta));
    assert_int_equal(ebmc_tape_bytes(ta), *with);
    assert_int_equal(ebmc_tape_bytes(tb), *without);
    assert_true(*with <= *without);
    int ci, hi, wi;
    ebmc_net_input_shape(a, &ci, &hi, &wi);
    size_t nx = (size_t)n * ci * hi * wi;
    float *x = tu_malloc(nx), *r[2] = {NULL, NULL}, *dxa = tu_malloc(nx), *dxb = tu_malloc(nx);
    for (int i = 0; i < ebmc_net_n_outputs(a); i++) {
        size_t k = (size_t)n * ebmc_net_value_count(a, ebmc_net_output_value(a, i));
        r[i] = tu_malloc(k);
        tu_fill_normal(&RNG, r[i], k, 1.0f);
    }
    pass_rec ra = {0}, rb = {0};
    OK(ebmc_net_zero_grad(a));
    OK(ebmc_net_zero_grad(b));
    for (int pass = 0; pass < 3; pass++) {
        tu_fill_normal(&RNG, x, nx, role == EBMC_NET_G ? 1.0f : 0.5f);
        float beta = pass == 1 ? 1.0f : 0.0f;
        run_pass(a, ta, n, x, r, pass == 1, dxa, beta, &ra);
        run_pass(b, tb, n, x, r, pass == 1, dxb, beta, &rb);
        rec_equal(&ra, &rb, a, n);
    }
    double gmax = max_abs(ra.grads, ebmc_net_param_count(a));
    assert_true(gmax > 0 && isfinite(gmax)); /* something was computed */
    rec_free(&ra); rec_free(&rb);
    free(x); free(dxa); free(dxb); free(r[0]); free(r[1]);
    ebmc_tape_free(ta); ebmc_tape_free(tb);
    ebmc_net_free(a); ebmc_net_free(b);
}

static void test_grad_reuse_identical(void **state) {
    struct { const char *arch; int w; int roles; int n; } cases[] = {
        {"dualmcmc_cifar10", 8, 7, 3}, {"dualmcmc_celeba64", 32, 7, 2}, {"shortrun", 4, 1, 3},
        {"coopvaebm", 4, 7, 3},        {"coopnets_cifar", 4, 3, 3},     {"toy2d", 0, 7, 5},
        {"mnist", 4, 7, 3}};
    const char *rn[] = {"E", "G", "I"};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ebmc_model_cfg c = small(cases[k].arch);
        c.smooth = false; /* the real activations: bit-identity does not need smoothness */
        if (cases[k].w) {
            c.ndf = c.ndf ? cases[k].w : 0;
            c.ngf = c.ngf ? cases[k].w : 0;
        }
        if (!strcmp(cases[k].arch, "dualmcmc_celeba64")) c.nif = 2;
        for (int r = 0; r < 3; r++) {
            if (!(cases[k].roles & (1 << r))) continue;
            size_t with, without;
            check_reuse(&c, r, cases[k].n, &with, &without);
            printf("  %-18s %s batch %d: tape with gradients %8zu bytes, %8zu without reuse "
                   "(%.0f%%), bit-identical\n", cases[k].arch, rn[r], cases[k].n, with, without,
                   100.0 * with / without);
            assert_true(with < without);
        }
    }
}

/* Two tapes sharing one arena, used one after the other, give the same outputs, input gradients
 * and parameter gradients as two tapes of their own; bad bases are refused; either tape may be
 * freed first. */
static void test_shared_tapes(void **state) {
    ebmc_model_cfg c = small("dualmcmc_cifar10");
    c.ngf = 8; c.ndf = 8;
    for (int role = 0; role < 3; role++) {
        ebmc_net_t *a = build(&c, role), *b = build(&c, role);
        ebmc_tape_t *base, *sh, *r1, *r2;
        OK(ebmc_tape_create(a, 4, true, &base));
        OK(ebmc_tape_create_shared(a, 3, true, base, &sh));
        OK(ebmc_tape_create(b, 4, true, &r1));
        OK(ebmc_tape_create(b, 3, true, &r2));
        assert_false(ebmc_tape_shares(base));
        assert_true(ebmc_tape_shares(sh));
        assert_int_equal(ebmc_tape_bytes(base), ebmc_tape_plan_bytes(a, 4, true));
        assert_int_equal(ebmc_tape_bytes(sh), ebmc_tape_bytes(base));
        assert_true(ebmc_tape_plan_bytes(a, 3, true) < ebmc_tape_bytes(base));
        int ci, hi, wi;
        ebmc_net_input_shape(a, &ci, &hi, &wi);
        size_t nx = 4 * (size_t)ci * hi * wi;
        float *x1 = tu_malloc(nx), *x2 = tu_malloc(nx), *r[2] = {NULL, NULL};
        float *dxa = tu_malloc(nx), *dxb = tu_malloc(nx);
        for (int i = 0; i < ebmc_net_n_outputs(a); i++) {
            size_t k = 4 * ebmc_net_value_count(a, ebmc_net_output_value(a, i));
            r[i] = tu_malloc(k);
            tu_fill_normal(&RNG, r[i], k, 1.0f);
        }
        float sc = role == EBMC_NET_G ? 1.0f : 0.5f;
        tu_fill_normal(&RNG, x1, nx, sc);
        tu_fill_normal(&RNG, x2, nx, sc);
        pass_rec pa = {0}, pb = {0};
        OK(ebmc_net_zero_grad(a));
        OK(ebmc_net_zero_grad(b));
        /* base, shared, base again, shared again: each pass overwrites the other's memory */
        for (int round = 0; round < 2; round++) {
            run_pass(a, base, 4, x1, r, false, dxa, 0.0f, &pa);
            run_pass(b, r1, 4, x1, r, false, dxb, 0.0f, &pb);
            rec_equal(&pa, &pb, a, 4);
            run_pass(a, sh, 3, x2, r, false, dxa, 0.0f, &pa);
            run_pass(b, r2, 3, x2, r, false, dxb, 0.0f, &pb);
            rec_equal(&pa, &pb, a, 3);
        }
        /* the shared tape outlives its base: the arena goes with the last tape */
        ebmc_tape_free(base);
        run_pass(a, sh, 3, x1, r, false, dxa, 0.0f, &pa);
        run_pass(b, r2, 3, x1, r, false, dxb, 0.0f, &pb);
        rec_equal(&pa, &pb, a, 3);
        assert_true(max_abs(pa.dx, 3 * (size_t)ci * hi * wi) > 0);
        ebmc_tape_free(sh);
        /* and the other order: shared first, then its base (which still works in between) */
        OK(ebmc_tape_create(a, 4, false, &base));
        OK(ebmc_tape_create_shared(a, 4, false, base, &sh));
        ebmc_tape_free(sh);
        OK(ebmc_net_forward(a, base, 4, x1));
        OK(ebmc_net_forward(b, r1, 4, x1));
        size_t no = 4 * ebmc_net_value_count(a, ebmc_net_output_value(a, 0));
        assert_memory_equal(ebmc_tape_output(base, 0), ebmc_tape_output(r1, 0), no * 4);
        ebmc_tape_free(base);
        rec_free(&pa); rec_free(&pb);
        free(x1); free(x2); free(dxa); free(dxb); free(r[0]); free(r[1]);
        ebmc_tape_free(r1); ebmc_tape_free(r2);
        ebmc_net_free(a); ebmc_net_free(b);
    }
}

static void test_shared_tape_refusals(void **state) {
    ebmc_model_cfg c = small("dualmcmc_cifar10");
    c.ngf = 8; c.ndf = 8;
    ebmc_net_t *e = build(&c, EBMC_NET_E), *e2 = build(&c, EBMC_NET_E);
    ebmc_tape_t *base, *nograd, *t = (ebmc_tape_t *)&t;
    OK(ebmc_tape_create(e, 4, true, &base));
    OK(ebmc_tape_create(e, 4, false, &nograd));
    assert_int_equal(ebmc_tape_create_shared(e2, 4, true, base, &t), EBMC_E_INVALID);
    assert_null(t);
    assert_non_null(strstr(ebmc_net_error(e2), "same net"));
    printf("  -> %s\n", ebmc_net_error(e2));
    t = (ebmc_tape_t *)&t;
    assert_int_equal(ebmc_tape_create_shared(e, 5, true, base, &t), EBMC_E_INVALID);
    assert_null(t);
    assert_non_null(strstr(ebmc_net_error(e), "batch 5"));
    printf("  -> %s\n", ebmc_net_error(e));
    assert_int_equal(ebmc_tape_create_shared(e, 4, true, nograd, &t), EBMC_E_INVALID);
    assert_non_null(strstr(ebmc_net_error(e), "without them"));
    printf("  -> %s\n", ebmc_net_error(e));
    assert_int_equal(ebmc_tape_create_shared(e, 4, true, NULL, &t), EBMC_E_INVALID);
    assert_int_equal(ebmc_tape_create_shared(e, 0, true, base, &t), EBMC_E_INVALID);
    /* a plan larger than the base's arena (reuse turned off after the base was made) */
    ebmc_nn_set_grad_reuse(false);
    assert_int_equal(ebmc_tape_create_shared(e, 4, true, base, &t), EBMC_E_INVALID);
    assert_non_null(strstr(ebmc_net_error(e), "bytes"));
    ebmc_nn_set_grad_reuse(true);
    /* accepted: smaller batch, no gradients on a base with them, a base without gradients */
    ebmc_tape_t *s1, *s2, *s3;
    OK(ebmc_tape_create_shared(e, 1, true, base, &s1));
    OK(ebmc_tape_create_shared(e, 4, false, base, &s2));
    OK(ebmc_tape_create_shared(e, 2, false, nograd, &s3));
    assert_int_equal(ebmc_tape_bytes(s3), ebmc_tape_plan_bytes(e, 4, false));
    ebmc_tape_free(base); /* freed in the middle of its sharers */
    ebmc_tape_free(s2);
    ebmc_tape_free(nograd);
    ebmc_tape_free(s1);
    ebmc_tape_free(s3);
    ebmc_net_free(e);
    ebmc_net_free(e2);
}

/* Full-size Dual-MCMC nets: parameter counts (exact, from the layer shapes of the reference
 * modules, computed here by hand) and the memory plan at batch 100. */
/* ---- batches smaller than the tape's, after the workspace is frozen (issue 22, item 5) ---- */

static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

/* A tape planned at N, the workspace then frozen (as ebmc train does before its loop): forward
 * and input-gradient backward at N-1, 1 and N/2 -- the partial batches of a last chunk or of a
 * data batch on a larger chain tape -- run without EBMC_E_WORKSPACE, do not grow the workspace,
 * and give the rows of the batch-N pass; so does ebmc_net_energy (energy.c, the recipes' score
 * path) over 2N+3 examples: two whole chunks and a partial one. The short-run net at n_f 16 and
 * N = 32 on the CPU (activations, not weights, size its workspace): its convolutions are oneDNN's
 * at N and some fall back to im2col + SGEMM at batch 1 (the primitive cache is per batch). Tolerance: 1e-5 relative L2, the project's bound for fp32 whole
 * nets computed by two implementations (oracle_nets): the summation orders of oneDNN at another
 * batch and of SGEMM differ; a wrong row, a stale tape or a missing workspace is O(1). */
static void test_smaller_batches_frozen(void **state) {
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    ebmc_model_cfg c;
    assert_true(ebmc_model_defaults("shortrun", &c));
    c.ndf = 16;
    char err[256];
    ebmc_net_t *net = ebmc_model_build(&c, EBMC_NET_E, err, sizeof err);
    assert_non_null(net);
    assert_int_equal(ebmc_net_finalize(net, ctx, true, 42), EBMC_OK);
    enum { N = 32 };
    const size_t elems = 3 * 32 * 32;
    ebmc_tape_t *t;
    assert_int_equal(ebmc_tape_create(net, N, true, &t), EBMC_OK);
    ebmc_ctx_freeze_workspace(ctx);
    const size_t ws = ebmc_ctx_workspace_bytes(ctx);
    float *x = tu_malloc(N * elems), *dy = tu_malloc(N), *dx = tu_malloc(N * elems), *dxn = tu_malloc(N * elems);
    float out[N], e[2 * N + 3];
    tu_fill_normal(&RNG, x, N * elems, 0.5f);
    for (int i = 0; i < N; i++) dy[i] = 1.0f;
    const float *dys[1] = {dy};
    assert_int_equal(ebmc_net_forward(net, t, N, x), EBMC_OK);
    memcpy(out, ebmc_tape_output(t, 0), sizeof out);
    assert_int_equal(ebmc_net_backward(net, t, dys, EBMC_GRAD_INPUT, dx, 0.0f), EBMC_OK);
    const int ms[3] = {N - 1, 1, N / 2};
    for (int k = 0; k < 3; k++) {
        const int m = ms[k];
        ebmc_status s = ebmc_net_forward(net, t, m, x);
        if (s) fail_msg("forward at batch %d of %d: %s", m, N, ebmc_ctx_error(ctx));
        double eo = rel_l2(ebmc_tape_output(t, 0), out, (size_t)m);
        s = ebmc_net_backward(net, t, dys, EBMC_GRAD_INPUT, dxn, 0.0f);
        if (s) fail_msg("backward at batch %d of %d: %s", m, N, ebmc_ctx_error(ctx));
        double eg = rel_l2(dxn, dx, (size_t)m * elems);
        printf("  batch %d on a tape of %d: output %.2e, input gradient %.2e\n", m, N, eo, eg);
        assert_true(eo <= 1e-5 && eg <= 1e-5);
        assert_int_equal(ebmc_ctx_workspace_bytes(ctx), ws);
    }
    /* energy.c's chunks: 8, 8, 3 */
    float *xs = tu_malloc((2 * N + 3) * elems);
    for (int i = 0; i < 2 * N + 3; i++) memcpy(xs + (size_t)i * elems, x + (size_t)(i % N) * elems, elems * 4);
    float *dev = tu_malloc(N * elems);
    ebmc_energy_pass p = {net, t, dev, NULL, 1.0f, 0.0f, N, elems, 1.0f};
    ebmc_status s = ebmc_net_energy(&p, xs, 2 * N + 3, e, err, sizeof err);
    if (s) fail_msg("ebmc_net_energy: %s", err);
    float want[2 * N + 3];
    for (int i = 0; i < 2 * N + 3; i++) want[i] = out[i % N];
    double ee = rel_l2(e, want, 2 * N + 3);
    printf("  energies of %d examples in chunks of %d: %.2e\n", 2 * N + 3, N, ee);
    assert_true(ee <= 1e-5);
    assert_int_equal(ebmc_ctx_workspace_bytes(ctx), ws);
    free(x); free(dy); free(dx); free(dxn); free(xs); free(dev);
    ebmc_tape_free(t);
    ebmc_net_free(net);
    ebmc_ctx_free(ctx);
}

static size_t count_params(const char *arch, ebmc_net_role role) {
    ebmc_model_cfg c;
    assert_true(ebmc_model_defaults(arch, &c));
    char err[256];
    ebmc_net_t *net = ebmc_model_build(&c, role, err, sizeof err);
    assert_non_null(net);
    assert_int_equal(ebmc_net_finalize(net, CTX, false, 1), EBMC_OK);
    size_t n = ebmc_net_param_count(net);
    ebmc_net_memory_report(net, 100, stdout);
    ebmc_net_free(net);
    return n;
}

static void test_full_size_plans(void **state) {
    /* CIFAR-10, ndf = ngf = 512, nif = 128, nz = 128 */
    size_t e = 3 * 512 * 9 + 512 * 512 * 9 + 3 * 512            /* conv_1 */
               + 2 * 512 * 512 * 9 + 512 * 512                  /* block2 (1x1 sc) */
               + 2 * (2 * 512 * 512 * 9)                        /* block3, block4 */
               + 512;                                           /* lin_5 */
    size_t gb = (512 * 512 * 9 + 512) * 2 + 512 * 512 + 512 + 4 * 512; /* a GenBlock */
    size_t g = 128 * 16 * 512 + 16 * 512 + 3 * gb + 2 * 512 + 512 * 3 * 9 + 3;
    size_t i = 3 * 128 * 9 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 1024 * 16 + 2 * (1024 * 128 * 16 + 128);
    assert_int_equal(count_params("dualmcmc_cifar10", EBMC_NET_E), e);
    assert_int_equal(count_params("dualmcmc_cifar10", EBMC_NET_G), g);
    assert_int_equal(count_params("dualmcmc_cifar10", EBMC_NET_I), i);
    printf("  CIFAR-10 parameters: E %zu, G %zu, I %zu (spec: ~16.8M, ~16.0M, ~15.2M)\n", e, g, i);
    size_t ce = count_params("dualmcmc_celeba64", EBMC_NET_E);
    size_t cg = count_params("dualmcmc_celeba64", EBMC_NET_G);
    size_t cq = count_params("dualmcmc_celeba64", EBMC_NET_I);
    printf("  CelebA-64 parameters: E %zu, G %zu, I %zu (spec: ~19.5M, ~12.2M, ~15.2M)\n", ce, cg, cq);
    assert_true(fabs((double)ce - 19.5e6) < 0.01 * 19.5e6);
    assert_true(fabs((double)cg - 12.2e6) < 0.01 * 12.2e6);
    assert_true(fabs((double)cq - 15.2e6) < 0.01 * 15.2e6);
}

/* The Dual-MCMC CIFAR-10 step's tape memory at batch 100 (with gradients), parameters only
 * allocated: per net with and without gradient reuse, and the step with the tapes the trainer
 * had (E 3, G 3, I 2, each its own arena, no reuse) against the shared plan (E 1 arena, G 2,
 * I 1, with reuse). */
static void test_dualmcmc_step_plan(void **state) {
    const double mib = 1.0 / 1048576.0;
    const char *rn[] = {"E", "G", "I"};
    const int before_tapes[3] = {3, 3, 2}, after_tapes[3] = {1, 2, 1};
    double before = 0, after = 0, share_only = 0, reuse_only = 0;
    for (int r = 0; r < 3; r++) {
        ebmc_model_cfg c;
        assert_true(ebmc_model_defaults("dualmcmc_cifar10", &c));
        char err[256];
        ebmc_net_t *net = ebmc_model_build(&c, r, err, sizeof err);
        assert_non_null(net);
        assert_int_equal(ebmc_net_finalize(net, CTX, false, 1), EBMC_OK);
        ebmc_nn_set_grad_reuse(false);
        size_t off = ebmc_tape_plan_bytes(net, 100, true);
        ebmc_nn_set_grad_reuse(true);
        size_t on = ebmc_tape_plan_bytes(net, 100, true);
        size_t fwd = ebmc_tape_plan_bytes(net, 100, false);
        printf("  CIFAR-10 %s tape, batch 100: %8.1f MiB -> %8.1f MiB with gradient reuse "
               "(values and statistics alone %8.1f MiB)\n", rn[r], off * mib, on * mib, fwd * mib);
        assert_true(on < off);
        assert_true(on > fwd);
        before += before_tapes[r] * (double)off;
        after += after_tapes[r] * (double)on;
        share_only += after_tapes[r] * (double)off;
        reuse_only += before_tapes[r] * (double)on;
        ebmc_net_free(net);
    }
    printf("  Dual-MCMC step tapes: %.1f MiB (E 3, G 3, I 2 tapes) -> %.1f MiB shared "
           "(E 1, G 2, I 1) -> %.1f MiB shared with gradient reuse "
           "(reuse without sharing: %.1f MiB)\n", before * mib, share_only * mib, after * mib,
           reuse_only * mib);
    assert_true(after < share_only && share_only < before && reuse_only < before);
}

/* ebmc_net_macs (the benchmark's FLOP count) against closed forms: performance.md 3.1's short-run
 * table (102.44 M MACs at n_f = 64, 406.2 M at 128) and the Dual-MCMC CIFAR-10 EBM layer by layer */
static double macs_of(const char *arch, ebmc_net_role role, int ndf, double *first) {
    ebmc_model_cfg mc;
    assert_true(ebmc_model_defaults(arch, &mc));
    if (ndf) mc.ndf = ndf;
    char err[256];
    ebmc_net_t *net = ebmc_model_build(&mc, role, err, sizeof err);
    assert_non_null(net);
    double m = ebmc_net_macs(net, first);
    ebmc_net_free(net);
    return m;
}

static void test_macs(void **state) {
    (void)state;
    double first;
    for (int nf = 64; nf <= 128; nf *= 2) {
        double want = 1024.0 * nf * 3 * 9 + 256.0 * 2 * nf * nf * 16 + 64.0 * 4 * nf * 2 * nf * 16 +
                      16.0 * 8 * nf * 4 * nf * 16 + 8.0 * nf * 16;
        assert_true(macs_of("shortrun", EBMC_NET_E, nf, &first) == want);
        assert_true(first == 1024.0 * nf * 3 * 9);
    }
    assert_true(macs_of("shortrun", EBMC_NET_E, 64, NULL) == 102440960.0);
    double e = 1024.0 * 512 * 27 + 1024.0 * 512 * 512 * 9 + 256.0 * 512 * 3 /* conv_1 + its 1x1 sc */
               + 2 * 256.0 * 512 * 512 * 9 + 256.0 * 512 * 512           /* block2, sc before pool */
               + 4 * 64.0 * 512 * 512 * 9 + 512;                          /* block3, block4, lin */
    assert_true(macs_of("dualmcmc_cifar10", EBMC_NET_E, 0, &first) == e);
    assert_true(first == 1024.0 * 512 * 27);
}

/* The Jarzynski authors' Lightning settings on Adam (ebmc_adam_set_schedule): LambdaLR's linear
 * decay max(1 - epoch/n, 1e-10) exactly; clip_grad_norm_ scales a gradient of norm 10 to norm
 * max_norm 2 (up to the float rounding of the scale and the sum, 1e-5) and leaves one of norm 1. */
static void test_adam_schedule(void **state) {
    ebmc_model_cfg c = small("toy2d");
    ebmc_net_t *net = build(&c, EBMC_NET_E);
    ebmc_adam_cfg ac = {1e-4, 0.0, 0.999, 1e-8, 0, 1};
    ebmc_adam_t *a;
    OK(ebmc_adam_create(net, &ac, &a));
    OK(ebmc_adam_set_schedule(a, 600, 2.0));
    assert_true(ebmc_adam_lr(a, 0) == 1e-4);
    assert_true(fabs(ebmc_adam_lr(a, 300) - 0.5e-4) < 1e-18);
    assert_true(ebmc_adam_lr(a, 600) == 1e-4 * 1e-10 && ebmc_adam_lr(a, 900) == 1e-4 * 1e-10);
    size_t n = ebmc_net_param_count(net);
    float *g = ebmc_net_grads(net);
    for (int k = 0; k < 2; k++) {
        double norm = k ? 1.0 : 10.0, got = 0;
        for (size_t i = 0; i < n; i++) g[i] = (float)(norm / sqrt((double)n) * (i % 2 ? 1 : -1));
        OK(ebmc_adam_step(a, 0));
        for (size_t i = 0; i < n; i++) got += (double)g[i] * g[i];
        printf("clip_grad_norm_(2): norm %.1f -> %.6f\n", norm, sqrt(got));
        assert_float_equal(sqrt(got), k ? 1.0 : 2.0, 1e-5);
    }
    ebmc_adam_free(a);
    ebmc_net_free(net);
}

/* Eval-mode BatchNorm (ebmc_net_set_bn_eval, PyTorch's module.eval()): after three training
 * forwards (running statistics moved away from 0/1, gamma ~ N(1, 0.3^2), beta set), the forward
 * is gamma (x - rm) / sqrt(rv + eps) + beta per channel and the input gradient dy gamma /
 * sqrt(rv + eps), both against float64 from the net's own tensors. Bound: the float path is
 * s = fl(scale), y = fl(fl(x s) + t): 3 roundings of 2^-24 on |x s| + |t|, doubled. A forward in
 * batch-statistics mode (the defect this guards against) misses it by O(1). Also: eval mode
 * leaves the running statistics and num_batches_tracked alone, a parameter-gradient backward is
 * refused, and turning it off gives the batch-statistics forward bit for bit. */
static void test_bn_eval(void **state) {
    const int N = 5, C = 3, H = 4, W = 4;
    ebmc_net_t *net = ebmc_net_create("bn", C, H, W);
    ebmc_bn_spec sp = {{EBMC_INIT_NORMAL, 0.3f}, 1e-5f, 0.1f, false};
    int v = ebmc_nn_bn_ex(net, 0, "bn", &sp);
    ebmc_net_output(net, v);
    OK(ebmc_net_finalize(net, CTX, true, 11));
    float *gam = ebmc_net_tensor_find(net, "bn.weight")->data, *bet = ebmc_net_tensor_find(net, "bn.bias")->data;
    const float *rm = ebmc_net_tensor_find(net, "bn.running_mean")->data;
    const float *rv = ebmc_net_tensor_find(net, "bn.running_var")->data;
    for (int c = 0; c < C; c++) gam[c] += 1.0f, bet[c] = 0.5f * (float)(c - 1);
    ebmc_tape_t *t;
    OK(ebmc_tape_create(net, N, true, &t));
    size_t cnt = (size_t)N * C * H * W;
    float *x = tu_malloc(cnt), *dy = tu_malloc(cnt), *dx = tu_malloc(cnt), *ybatch = tu_malloc(cnt);
    for (int k = 0; k < 3; k++) { /* per-channel means 2c - 1 and stds 1 + c: the statistics move */
        tu_fill_normal(&RNG, x, cnt, 1);
        for (size_t i = 0; i < cnt; i++) x[i] = x[i] * (float)(1 + (i / (H * W)) % C) + (float)(2 * ((i / (H * W)) % C)) - 1.0f;
        OK(ebmc_net_forward(net, t, N, x));
    }
    memcpy(ybatch, ebmc_tape_output(t, 0), cnt * sizeof(float));
    int64_t batches = ebmc_net_bn_batches(net);
    assert_int_equal(batches, 3);
    float rm0[3], rv0[3];
    memcpy(rm0, rm, sizeof rm0);
    memcpy(rv0, rv, sizeof rv0);
    assert_true(fabsf(rm0[2]) > 0.5f && rv0[2] > 1.5f);

    OK(ebmc_net_set_bn_eval(net, true));
    assert_true(ebmc_net_bn_eval(net));
    OK(ebmc_net_forward(net, t, N, x));
    const float *y = ebmc_tape_output(t, 0);
    tu_fill_normal(&RNG, dy, cnt, 1);
    const float *dyp[1] = {dy};
    OK(ebmc_net_backward(net, t, dyp, EBMC_GRAD_INPUT, dx, 0.0f));
    double worst = 0, worst_dx = 0, batch_off = 0;
    for (size_t i = 0; i < cnt; i++) {
        int c = (int)((i / (H * W)) % C);
        double sc = (double)gam[c] / sqrt((double)rv[c] + 1e-5), sh = (double)bet[c] - (double)rm[c] * sc;
        double ref = (double)x[i] * sc + sh, bound = 6 * 0x1p-24 * (fabs((double)x[i] * sc) + fabs(sh));
        double rdx = (double)dy[i] * sc, bdx = 4 * 0x1p-24 * fabs(rdx);
        worst = fmax(worst, fabs(y[i] - ref) / bound);
        worst_dx = fmax(worst_dx, fabs(dx[i] - rdx) / fmax(bdx, 1e-30));
        batch_off = fmax(batch_off, fabs(ybatch[i] - ref));
    }
    printf("eval-mode BatchNorm: forward %.3f, input gradient %.3f of their bounds\n", worst, worst_dx);
    assert_true(worst <= 1.0 && worst_dx <= 1.0);
    assert_true(batch_off > 0.1); /* batch statistics would miss by this much */
    assert_memory_equal(rm, rm0, sizeof rm0); /* statistics untouched */
    assert_memory_equal(rv, rv0, sizeof rv0);
    assert_int_equal(ebmc_net_bn_batches(net), batches);
    assert_int_equal(ebmc_net_backward(net, t, dyp, EBMC_GRAD_FULL, NULL, 0.0f), EBMC_E_INVALID);
    printf("  -> %s\n", ebmc_ctx_error(CTX));

    OK(ebmc_net_set_bn_eval(net, false)); /* back to batch statistics: the same bits as before */
    OK(ebmc_net_forward(net, t, N, x));
    assert_memory_equal(ebmc_tape_output(t, 0), ybatch, cnt * sizeof(float));
    assert_int_equal(ebmc_net_bn_batches(net), batches + 1);
    free(x); free(dy); free(dx); free(ybatch);
    ebmc_tape_free(t);
    ebmc_net_free(net);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_macs),
        cmocka_unit_test(test_dualmcmc_cifar10),
        cmocka_unit_test(test_dualmcmc_celeba64),
        cmocka_unit_test(test_shortrun),
        cmocka_unit_test(test_coopvaebm),
        cmocka_unit_test(test_coopnets),
        cmocka_unit_test(test_toy_and_mnist),
        cmocka_unit_test(test_tapes_independent),
        cmocka_unit_test(test_bn_eval),
        cmocka_unit_test(test_adam_schedule),
        cmocka_unit_test(test_smaller_batches_frozen),
        cmocka_unit_test(test_grad_reuse_identical),
        cmocka_unit_test(test_shared_tapes),
        cmocka_unit_test(test_shared_tape_refusals),
        cmocka_unit_test(test_full_size_plans),
        cmocka_unit_test(test_dualmcmc_step_plan),
    };
    return cmocka_run_group_tests_name("nn_cpu", tests, setup, teardown);
}
