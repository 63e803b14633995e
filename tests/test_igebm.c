/* The IGEBM network's new pieces on the CPU backend (the reference of their CUDA kernels):
 * - chan_scale (y = x * s[c]): forward exactly x * s; dx and ds against central finite
 *   differences of L = r . y;
 * - spectral norm with IGEBM's lower bound: the divisor max(sigma + 1e-6, 1) in both regimes (a
 *   tiny W is used as it is; a large one is divided by sigma + 1e-6), and dW against finite
 *   differences in both regimes (u, v held, as in the backward);
 * - the whole igebm net (small widths, SiLU for ReLU/LeakyReLU as test_nn.c does, the c2 convs
 *   re-initialised N(0,1) so every path carries gradient): directional finite differences of
 *   L = r . E(x) for dx and every parameter tensor; input-gradient mode leaves parameter
 *   gradients untouched; the net's shapes (32 -> 16 -> 8 -> 4, one energy per image).
 * Tolerances: element-wise checks |fd - g| <= 2e-3 + 1e-2 |g| as test_ops_grad (h = 1e-3: float32
 * rounding of L over 2h and O(h^2) curvature stay below it); whole net |fd - g.v| <= 2e-2 ||g||
 * as test_nn.c (see its header for the derivation). */
#include "ebmc/models.h"
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebmc_ctx_t *CTX;
static tu_rng RNG;

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) {
    CTX = tu_ctx_cpu();
    tu_rng_seed(&RNG, 4711);
    return 0;
}

static int teardown(void **state) {
    ebmc_ctx_free(CTX);
    return 0;
}

/* ---- chan_scale ---- */

typedef struct {
    ebmc_t4_desc d;
    float *x, *s, *y, *r;
    size_t n;
} cs_case;

static double cs_loss(void *p) {
    cs_case *c = p;
    OK(ebmc_chan_scale_fwd(CTX, &c->d, c->x, c->s, c->y));
    return tu_dot(c->r, c->y, c->n);
}

static void test_igebm_chan_scale_grad(void **state) {
    cs_case c = {.d = {3, 5, 4, 3}};
    c.n = 3 * 5 * 4 * 3;
    c.x = tu_malloc(c.n); c.y = tu_malloc(c.n); c.r = tu_malloc(c.n); c.s = tu_malloc(5);
    float *dx = tu_malloc(c.n), *ds = tu_malloc(5);
    tu_fill_normal(&RNG, c.x, c.n, 1.0f);
    tu_fill_normal(&RNG, c.s, 5, 1.0f);
    tu_fill_normal(&RNG, c.r, c.n, 1.0f);
    cs_loss(&c);
    for (size_t i = 0; i < c.n; i++) assert_true(c.y[i] == c.x[i] * c.s[(i / 12) % 5]); /* exact */
    OK(ebmc_chan_scale_bwd(CTX, &c.d, c.x, c.s, c.r, dx, ds, 0.0f, 0.0f));
    assert_true(tu_gradcheck("chan_scale dx", cs_loss, &c, c.x, c.n, dx, 1e-3, 1e-2, 2e-3, 400) <= 1);
    assert_true(tu_gradcheck("chan_scale ds", cs_loss, &c, c.s, 5, ds, 1e-3, 1e-2, 2e-3, 400) <= 1);
    /* beta 1 accumulates; ds alone (dx NULL) is the same ds */
    float *ds2 = tu_malloc(5);
    memcpy(ds2, ds, 5 * sizeof(float));
    OK(ebmc_chan_scale_bwd(CTX, &c.d, c.x, c.s, c.r, NULL, ds2, 0.0f, 1.0f));
    for (int k = 0; k < 5; k++) assert_true(fabsf(ds2[k] - 2 * ds[k]) <= 1e-6f * (1 + fabsf(ds[k])));
    free(c.x); free(c.y); free(c.r); free(c.s); free(dx); free(ds); free(ds2);
}

/* ---- spectral norm, lower bound ---- */

typedef struct {
    ebmc_sn_desc d0;
    float *w, *u, *v, *sig, *wsn, *r;
    size_t n;
} sn_case;

static double sn_loss(void *p) {
    sn_case *c = p;
    OK(ebmc_sn_power(CTX, &c->d0, c->w, c->u, c->v, c->sig, c->wsn));
    return tu_dot(c->r, c->wsn, c->n);
}

static void sn_regime(float w_std, bool expect_one) {
    sn_case c = {.d0 = {6, 12, 0, 1e-12f, 1}};
    c.n = 72;
    c.w = tu_malloc(c.n); c.wsn = tu_malloc(c.n); c.r = tu_malloc(c.n);
    c.u = tu_malloc(6); c.v = tu_malloc(12); c.sig = tu_malloc(1);
    float *dw = tu_malloc(c.n);
    tu_fill_normal(&RNG, c.w, c.n, w_std);
    tu_fill_normal(&RNG, c.u, 6, 1);
    tu_fill_normal(&RNG, c.v, 12, 1);
    tu_fill_normal(&RNG, c.r, c.n, 1);
    ebmc_sn_desc one = c.d0;
    one.n_power_iter = 1;
    OK(ebmc_sn_power(CTX, &one, c.w, c.u, c.v, c.sig, c.wsn));
    /* sigma = u . W v in double, then the divisor */
    double sg = 0;
    for (int i = 0; i < 6; i++) {
        double a = 0;
        for (int j = 0; j < 12; j++) a += (double)c.w[i * 12 + j] * c.v[j];
        sg += a * c.u[i];
    }
    double div = fmax(sg + 1e-6, 1.0);
    printf("  lower-bounded SN, W ~ N(0, %g^2): sigma %.6g, divisor %.6g (ours %.6g)\n", w_std, sg, div, c.sig[0]);
    assert_true(expect_one ? c.sig[0] == 1.0f : c.sig[0] > 1.0f);
    assert_true(fabs(c.sig[0] - div) <= 1e-5 * div);
    for (size_t i = 0; i < c.n; i++) assert_true(fabs(c.wsn[i] - c.w[i] / div) <= 1e-6 * fabs(c.w[i] / div) + 1e-30);
    OK(ebmc_sn_bwd(CTX, &c.d0, c.w, c.u, c.v, c.sig, c.r, dw, 0));
    char nm[64];
    snprintf(nm, sizeof nm, "lower-bounded SN dW (%s)", expect_one ? "divisor 1" : "sigma > 1");
    /* the step: 1e-3 of W's scale (the divisor-1 regime is linear in W: any step is exact) */
    assert_true(tu_gradcheck(nm, sn_loss, &c, c.w, c.n, dw, 1e-3 * w_std, 1e-2, 2e-3, 400) <= 1);
    free(c.w); free(c.wsn); free(c.r); free(c.u); free(c.v); free(c.sig); free(dw);
}

static void test_igebm_sn_lower_bound(void **state) {
    sn_regime(0.01f, true);  /* sigma ~ 0.05: used as it is */
    sn_regime(1.0f, false);  /* sigma ~ 5: divided */
}

/* ---- the whole net ---- */

typedef struct {
    ebmc_net_t *net;
    ebmc_tape_t *tape;
    float *x, *r;
    int n;
    double abs_sum;
} net_case;

static double net_loss(void *p) {
    net_case *c = p;
    OK(ebmc_net_forward(c->net, c->tape, c->n, c->x));
    return tu_dot(c->r, ebmc_tape_output(c->tape, 0), (size_t)c->n);
}

static void test_igebm_net_gradients(void **state) {
    ebmc_model_cfg cfg;
    assert_true(ebmc_model_defaults("igebm", &cfg));
    assert_int_equal(cfg.ndf, 128);
    cfg.ndf = 4;
    cfg.smooth = true;
    char err[256];
    net_case c = {.n = 2};
    c.net = ebmc_model_build(&cfg, EBMC_NET_E, err, sizeof err);
    assert_non_null(c.net);
    OK(ebmc_net_finalize(c.net, CTX, true, 7));
    /* shapes: 9 blocks, 4 -> 8 -> 16 channels, one energy per image */
    int oc, oh, ow;
    ebmc_net_value_shape(c.net, ebmc_net_output_value(c.net, 0), &oc, &oh, &ow);
    assert_int_equal(oc * oh * ow, 1);
    assert_non_null(ebmc_net_tensor_find(c.net, "res_6_res_adaptive.weight_orig"));
    assert_non_null(ebmc_net_tensor_find(c.net, "res_8_res_c2.g"));
    assert_null(ebmc_net_tensor_find(c.net, "res_7_res_adaptive.weight_orig"));
    for (int k = 0; k < ebmc_net_tensor_count(c.net); k++) { /* c2: N(0,1) so gradients flow */
        const ebmc_net_tensor *t = ebmc_net_tensor_at(c.net, k);
        if (strstr(t->name, "_res_c2.weight_orig")) tu_fill_normal(&RNG, t->data, t->count, 1.0f);
        if (strstr(t->name, ".gb") || strstr(t->name, ".g")) tu_fill_normal(&RNG, t->data, t->count, 0.3f);
    }
    OK(ebmc_tape_create(c.net, c.n, true, &c.tape));
    size_t nx = (size_t)c.n * 3 * 32 * 32;
    c.x = tu_malloc(nx);
    c.r = tu_malloc((size_t)c.n);
    tu_fill_uniform(&RNG, c.x, nx, 0.0f, 1.0f);
    tu_fill_normal(&RNG, c.r, (size_t)c.n, 1.0f);
    net_loss(&c); /* one power iteration, then u, v frozen as in the backward */
    ebmc_net_set_sn_iters(c.net, 0);
    double l0 = net_loss(&c);
    assert_true(isfinite(l0));
    c.abs_sum = fabs(l0);
    float *dx = tu_malloc(nx), *dx2 = tu_malloc(nx);
    OK(ebmc_net_zero_grad(c.net));
    const float *dys[1] = {c.r};
    OK(ebmc_net_backward(c.net, c.tape, dys, EBMC_GRAD_FULL, dx, 0.0f));
    assert_true(tu_dircheck("igebm E dx", net_loss, &c, c.x, nx, dx, 1e-3, 2e-2, 3, &RNG, c.abs_sum) <= 1.0);
    size_t np = ebmc_net_param_count(c.net);
    float *g_full = tu_malloc(np);
    memcpy(g_full, ebmc_net_grads(c.net), np * sizeof(float));
    net_loss(&c);
    OK(ebmc_net_backward(c.net, c.tape, dys, EBMC_GRAD_INPUT, dx2, 0.0f));
    assert_memory_equal(g_full, ebmc_net_grads(c.net), np * sizeof(float));
    assert_memory_equal(dx, dx2, nx * sizeof(float));
    char name[160];
    for (int k = 0; k < ebmc_net_tensor_count(c.net); k++) {
        const ebmc_net_tensor *t = ebmc_net_tensor_at(c.net, k);
        if (!t->trainable) continue;
        snprintf(name, sizeof name, "igebm E %s", t->name);
        assert_true(tu_dircheck(name, net_loss, &c, t->data, t->count, t->grad, 1e-3, 2e-2, 3, &RNG, c.abs_sum) <= 1.0);
    }
    free(g_full); free(dx); free(dx2); free(c.x); free(c.r);
    ebmc_tape_free(c.tape);
    ebmc_net_free(c.net);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_igebm_chan_scale_grad),
        cmocka_unit_test(test_igebm_sn_lower_bound),
        cmocka_unit_test(test_igebm_net_gradients),
    };
    return cmocka_run_group_tests_name("igebm", tests, setup, teardown);
}
