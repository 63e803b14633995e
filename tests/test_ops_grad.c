/* Gradient checks of every CPU op with a backward: central finite differences of the scalar
 * L = sum(r .* op(inputs)) (accumulated in double) against the analytic input gradient and, where
 * the op has parameters, the parameter gradient. Several shapes per op, odd sizes and stride 2
 * included. Also: beta = 1 accumulates, and exact analytic answers for Adam, reductions, axpby.
 *
 * Tolerances. Ops linear in the perturbed tensor (conv, transposed conv, linear, bias, pools,
 * upsampling) have exact central differences for any step, so h = 0.5 and the only error is the
 * float32 rounding of the forward: |dL| noise <= sqrt(n_out) * 2^-24 * max|r*y| / (2h), far below
 * atol = 1e-3 at these sizes. Nonlinear ops (activations, BatchNorm, spectral norm) use h = 1e-2
 * or 1e-3, where the O(h^2) truncation plus the rounding noise / 2h stay below
 * atol + rtol*|g| = 2e-3 + 1e-2*|g|; inputs are kept >= 0.05 away from kinks. */
#include "testutil.h"
#include "ebmc/philox.h"
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebmc_ctx_t *CTX;
static tu_rng RNG;

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) {
    CTX = tu_ctx_cpu();
    tu_rng_seed(&RNG, 12345);
    return 0;
}
static int teardown(void **state) {
    ebmc_ctx_free(CTX);
    return 0;
}

#define LIN_H 0.5
#define LIN_RTOL 1e-4
#define LIN_ATOL 1e-3
#define NL_RTOL 1e-2
#define NL_ATOL 2e-3
#define MAXCHK 400

/* ---------------- convolution and transposed convolution ---------------- */

typedef struct {
    ebmc_conv_desc d;
    float *x, *w, *y, *r;
    size_t nx, nw, ny;
} conv_case;

static double conv_loss(void *u) {
    conv_case *c = u;
    if (c->d.transposed) OK(ebmc_convt2d_fwd(CTX, &c->d, c->x, c->w, c->y));
    else OK(ebmc_conv2d_fwd(CTX, &c->d, c->x, c->w, c->y));
    return tu_dot(c->r, c->y, c->ny);
}

static void check_conv(const char *label, ebmc_conv_desc d) {
    conv_case c = {.d = d};
    c.nx = ebmc_conv_x_count(&d);
    c.nw = ebmc_conv_w_count(&d);
    c.ny = ebmc_conv_y_count(&d);
    assert_true(c.ny > 0);
    c.x = tu_malloc(c.nx); c.w = tu_malloc(c.nw); c.y = tu_malloc(c.ny); c.r = tu_malloc(c.ny);
    float *dx = tu_malloc(c.nx), *dw = tu_malloc(c.nw), *acc = tu_malloc(c.nx), *pre = tu_malloc(c.nx);
    tu_fill_normal(&RNG, c.x, c.nx, 1.0f);
    tu_fill_normal(&RNG, c.w, c.nw, 0.3f);
    tu_fill_normal(&RNG, c.r, c.ny, 1.0f);
    if (d.transposed) {
        OK(ebmc_convt2d_bwd_data(CTX, &d, c.r, c.w, dx, 0.0f));
        OK(ebmc_convt2d_bwd_filter(CTX, &d, c.x, c.r, dw, 0.0f));
    } else {
        OK(ebmc_conv2d_bwd_data(CTX, &d, c.r, c.w, dx, 0.0f));
        OK(ebmc_conv2d_bwd_filter(CTX, &d, c.x, c.r, dw, 0.0f));
    }
    char nm[160];
    snprintf(nm, sizeof nm, "%s dx", label);
    assert_true(tu_gradcheck(nm, conv_loss, &c, c.x, c.nx, dx, LIN_H, LIN_RTOL, LIN_ATOL, MAXCHK) <= 1.0);
    snprintf(nm, sizeof nm, "%s dw", label);
    assert_true(tu_gradcheck(nm, conv_loss, &c, c.w, c.nw, dw, LIN_H, LIN_RTOL, LIN_ATOL, MAXCHK) <= 1.0);
    /* beta = 1 accumulates onto what is there */
    tu_fill_normal(&RNG, pre, c.nx, 1.0f);
    memcpy(acc, pre, c.nx * sizeof(float));
    if (d.transposed) OK(ebmc_convt2d_bwd_data(CTX, &d, c.r, c.w, acc, 1.0f));
    else OK(ebmc_conv2d_bwd_data(CTX, &d, c.r, c.w, acc, 1.0f));
    for (size_t i = 0; i < c.nx; i++) assert_float_equal(acc[i], pre[i] + dx[i], 1e-4f * (1 + fabsf(dx[i])));
    free(c.x); free(c.w); free(c.y); free(c.r); free(dx); free(dw); free(acc); free(pre);
}

static void test_conv2d(void **state) {
    check_conv("conv 3x3 s1 p1 7x7", ebmc_conv_desc_make(2, 3, 7, 7, 4, 3, 1, 1));
    check_conv("conv 4x4 s2 p1 8x8", ebmc_conv_desc_make(2, 3, 8, 8, 5, 4, 2, 1));
    check_conv("conv 4x4 s2 p1 9x9 (odd)", ebmc_conv_desc_make(2, 2, 9, 9, 3, 4, 2, 1));
    check_conv("conv 4x4 valid 4x4 (head)", ebmc_conv_desc_make(3, 4, 4, 4, 2, 4, 1, 0));
    check_conv("conv 5x5 s2 p2 9x9", ebmc_conv_desc_make(1, 2, 9, 9, 3, 5, 2, 2));
    check_conv("conv 1x1 s1 6x5", (ebmc_conv_desc){.n = 2, .c_in = 4, .h = 6, .w = 5, .c_out = 3, .kh = 1, .kw = 1, .stride_h = 1, .stride_w = 1});
    check_conv("conv 3x3 s2 TF-same 8x8 (pad 0/1)", ebmc_conv_desc_same_tf(2, 3, 8, 8, 4, 3, 2, 0));
    check_conv("conv 4x4 s2 TF-same 7x7", ebmc_conv_desc_same_tf(1, 2, 7, 7, 3, 4, 2, 0));
    check_conv("conv 3x3 s1 TF-same 5x6", ebmc_conv_desc_same_tf(2, 2, 5, 6, 2, 3, 1, 0));
    /* 20x20 outputs: the CPU backend's GEMM chunks of 3 images, then 2 */
    check_conv("conv 3x3 s1 p1 20x20 N5 (batch chunks 3+2)", ebmc_conv_desc_make(5, 2, 20, 20, 3, 3, 1, 1));
}

static void test_convt2d(void **state) {
    check_conv("convT 4x4 valid 1x1->4x4", ebmc_convt_desc_make(3, 5, 1, 1, 3, 4, 1, 0, 0));
    check_conv("convT 4x4 s2 p1 5x5->10x10", ebmc_convt_desc_make(2, 3, 5, 5, 2, 4, 2, 1, 0));
    check_conv("convT 5x5 s2 p2 op1 4x4->8x8", ebmc_convt_desc_make(1, 3, 4, 4, 2, 5, 2, 2, 1));
    check_conv("convT 3x3 s1 p1 5x5", ebmc_convt_desc_make(2, 2, 5, 5, 3, 3, 1, 1, 0));
    check_conv("convT 3x3 s2 TF-same 4x4->8x8", ebmc_conv_desc_same_tf(2, 3, 4, 4, 2, 3, 2, 1));
    check_conv("convT 4x4 s2 TF-same 3x3->6x6", ebmc_conv_desc_same_tf(1, 2, 3, 3, 2, 4, 2, 1));
}

/* The workspace that ebmc_workspace_size reports is all a convolution uses (reserved, then
 * frozen: a call needing more would fail instead of allocating), and a repeated call gives the
 * same bits (batch chunks, GEMMs split among threads: nothing depends on timing). */
static void test_conv_workspace_repeatable(void **state) {
    ebmc_ctx_t *ctx = tu_ctx_cpu();
    /* chunks of 3 + 2 images, one chunk of 20, 5 + 2; all large enough for the OpenMP paths */
    const ebmc_conv_desc ds[] = {ebmc_conv_desc_make(5, 32, 20, 20, 32, 3, 1, 1),
                                 ebmc_conv_desc_make(20, 64, 8, 8, 64, 4, 2, 1),
                                 ebmc_convt_desc_make(7, 16, 15, 15, 32, 4, 2, 1, 0)};
    const ebmc_op ops[] = {EBMC_OP_CONV2D_FWD, EBMC_OP_CONV2D_BWD_DATA, EBMC_OP_CONV2D_BWD_FILTER,
                           EBMC_OP_CONVT2D_FWD, EBMC_OP_CONVT2D_BWD_DATA, EBMC_OP_CONVT2D_BWD_FILTER};
    size_t ws = 0;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        for (int o = 0; o < 3; o++) {
            size_t b = ebmc_workspace_size(ctx, ops[o + 3 * ds[i].transposed], &ds[i]);
            assert_true(b > 0);
            if (b > ws) ws = b;
        }
    assert_int_equal(ebmc_ctx_reserve_workspace(ctx, ws), EBMC_OK);
    ebmc_ctx_freeze_workspace(ctx);
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        const ebmc_conv_desc *d = &ds[i];
        size_t nx = ebmc_conv_x_count(d), nw = ebmc_conv_w_count(d), ny = ebmc_conv_y_count(d);
        float *x = tu_malloc(nx), *w = tu_malloc(nw), *r = tu_malloc(ny), *out[2][3];
        tu_fill_normal(&RNG, x, nx, 1.0f);
        tu_fill_normal(&RNG, w, nw, 0.1f);
        tu_fill_normal(&RNG, r, ny, 1.0f);
        for (int k = 0; k < 2; k++) {
            out[k][0] = tu_malloc(ny), out[k][1] = tu_malloc(nx), out[k][2] = tu_malloc(nw);
            for (size_t j = 0; j < nx; j++) out[k][1][j] = NAN; /* beta = 0 never reads it */
            for (size_t j = 0; j < nw; j++) out[k][2][j] = NAN;
            if (d->transposed) {
                assert_int_equal(ebmc_convt2d_fwd(ctx, d, x, w, out[k][0]), EBMC_OK);
                assert_int_equal(ebmc_convt2d_bwd_data(ctx, d, r, w, out[k][1], 0.0f), EBMC_OK);
                assert_int_equal(ebmc_convt2d_bwd_filter(ctx, d, x, r, out[k][2], 0.0f), EBMC_OK);
            } else {
                assert_int_equal(ebmc_conv2d_fwd(ctx, d, x, w, out[k][0]), EBMC_OK);
                assert_int_equal(ebmc_conv2d_bwd_data(ctx, d, r, w, out[k][1], 0.0f), EBMC_OK);
                assert_int_equal(ebmc_conv2d_bwd_filter(ctx, d, x, r, out[k][2], 0.0f), EBMC_OK);
            }
        }
        size_t n[3] = {ny, nx, nw};
        for (int o = 0; o < 3; o++) {
            for (size_t j = 0; j < n[o]; j++) assert_true(isfinite(out[0][o][j]));
            assert_memory_equal(out[0][o], out[1][o], n[o] * sizeof(float));
        }
        for (int k = 0; k < 2; k++) free(out[k][0]), free(out[k][1]), free(out[k][2]);
        free(x), free(w), free(r);
    }
    assert_int_equal(ebmc_ctx_workspace_bytes(ctx), ws);
    ebmc_ctx_free(ctx);
}

/* ---------------- linear and bias ---------------- */

typedef struct {
    ebmc_linear_desc d;
    float *x, *w, *b, *y, *r;
} lin_case;

static double lin_loss(void *u) {
    lin_case *c = u;
    OK(ebmc_linear_fwd(CTX, &c->d, c->x, c->w, c->b, c->y));
    return tu_dot(c->r, c->y, (size_t)c->d.n * c->d.out);
}

static void test_linear(void **state) {
    int shapes[][3] = {{3, 5, 4}, {1, 7, 1}, {4, 16, 9}};
    for (int k = 0; k < 3; k++) {
        for (int with_b = 0; with_b < 2; with_b++) {
            lin_case c = {.d = {shapes[k][0], shapes[k][1], shapes[k][2]}};
            size_t nx = (size_t)c.d.n * c.d.in, nw = (size_t)c.d.in * c.d.out, ny = (size_t)c.d.n * c.d.out;
            c.x = tu_malloc(nx); c.w = tu_malloc(nw); c.b = with_b ? tu_malloc(c.d.out) : NULL;
            c.y = tu_malloc(ny); c.r = tu_malloc(ny);
            float *dx = tu_malloc(nx), *dw = tu_malloc(nw), *db = tu_malloc(c.d.out);
            tu_fill_normal(&RNG, c.x, nx, 1); tu_fill_normal(&RNG, c.w, nw, 0.5f); tu_fill_normal(&RNG, c.r, ny, 1);
            if (c.b) tu_fill_normal(&RNG, c.b, c.d.out, 1);
            OK(ebmc_linear_bwd_data(CTX, &c.d, c.r, c.w, dx, 0));
            OK(ebmc_linear_bwd_filter(CTX, &c.d, c.x, c.r, dw, c.b ? db : NULL, 0));
            char nm[96];
            snprintf(nm, sizeof nm, "linear %dx%d->%d%s dx", c.d.n, c.d.in, c.d.out, with_b ? " +b" : "");
            assert_true(tu_gradcheck(nm, lin_loss, &c, c.x, nx, dx, LIN_H, LIN_RTOL, LIN_ATOL, MAXCHK) <= 1);
            snprintf(nm, sizeof nm, "linear %dx%d->%d%s dW", c.d.n, c.d.in, c.d.out, with_b ? " +b" : "");
            assert_true(tu_gradcheck(nm, lin_loss, &c, c.w, nw, dw, LIN_H, LIN_RTOL, LIN_ATOL, MAXCHK) <= 1);
            if (c.b) {
                snprintf(nm, sizeof nm, "linear %dx%d->%d db", c.d.n, c.d.in, c.d.out);
                assert_true(tu_gradcheck(nm, lin_loss, &c, c.b, c.d.out, db, LIN_H, LIN_RTOL, LIN_ATOL, MAXCHK) <= 1);
            }
            free(c.x); free(c.w); free(c.b); free(c.y); free(c.r); free(dx); free(dw); free(db);
        }
    }
}

typedef struct {
    ebmc_t4_desc d;
    float *x, *b, *y, *r;
    size_t n;
} bias_case;

static double bias_loss(void *u) {
    bias_case *c = u;
    memcpy(c->y, c->x, c->n * sizeof(float));
    OK(ebmc_bias_fwd(CTX, &c->d, c->b, c->y));
    return tu_dot(c->r, c->y, c->n);
}

static void test_bias(void **state) {
    ebmc_t4_desc shapes[] = {{2, 3, 5, 7}, {4, 6, 1, 1}};
    for (int k = 0; k < 2; k++) {
        bias_case c = {.d = shapes[k]};
        c.n = (size_t)c.d.n * c.d.c * c.d.h * c.d.w;
        c.x = tu_malloc(c.n); c.y = tu_malloc(c.n); c.r = tu_malloc(c.n); c.b = tu_malloc(c.d.c);
        float *db = tu_malloc(c.d.c);
        tu_fill_normal(&RNG, c.x, c.n, 1); tu_fill_normal(&RNG, c.r, c.n, 1); tu_fill_normal(&RNG, c.b, c.d.c, 1);
        OK(ebmc_bias_bwd(CTX, &c.d, c.r, db, 0));
        assert_true(tu_gradcheck(k ? "bias (N,F) db" : "bias (N,C,H,W) db", bias_loss, &c, c.b, c.d.c, db, LIN_H, LIN_RTOL, LIN_ATOL, MAXCHK) <= 1);
        free(c.x); free(c.y); free(c.r); free(c.b); free(db);
    }
}

/* ---------------- activations ---------------- */

typedef struct {
    ebmc_act_desc d;
    float *x, *y, *r;
} act_case;

static double act_loss(void *u) {
    act_case *c = u;
    OK(ebmc_act_fwd(CTX, &c->d, c->x, c->y));
    return tu_dot(c->r, c->y, c->d.count);
}

static void test_activations(void **state) {
    struct { ebmc_act_kind k; const char *nm; } kinds[] = {
        {EBMC_ACT_RELU, "relu"}, {EBMC_ACT_LRELU, "leaky_relu(0.2)"}, {EBMC_ACT_TANH, "tanh"},
        {EBMC_ACT_SILU, "silu"}, {EBMC_ACT_IDENTITY, "identity"}};
    for (int k = 0; k < 5; k++) {
        act_case c = {.d = {.kind = kinds[k].k, .slope = 0.2f, .count = 257}};
        c.x = tu_malloc(c.d.count); c.y = tu_malloc(c.d.count); c.r = tu_malloc(c.d.count);
        float *dx = tu_malloc(c.d.count);
        tu_fill_away_from_zero(&RNG, c.x, c.d.count, 0.05f, 3.0f);
        tu_fill_normal(&RNG, c.r, c.d.count, 1);
        OK(ebmc_act_fwd(CTX, &c.d, c.x, c.y));
        OK(ebmc_act_bwd(CTX, &c.d, c.x, c.y, c.r, dx, 0));
        char nm[64];
        snprintf(nm, sizeof nm, "act %s dx", kinds[k].nm);
        assert_true(tu_gradcheck(nm, act_loss, &c, c.x, c.d.count, dx, 1e-3, NL_RTOL, NL_ATOL, MAXCHK) <= 1);
        /* in-place backward (dx == dy) gives the same */
        float *g = tu_malloc(c.d.count);
        memcpy(g, c.r, c.d.count * sizeof(float));
        OK(ebmc_act_fwd(CTX, &c.d, c.x, c.y)); /* the gradcheck left y at a perturbed x */
        OK(ebmc_act_bwd(CTX, &c.d, c.x, c.y, c.r, dx, 0));
        OK(ebmc_act_bwd(CTX, &c.d, c.x, c.y, g, g, 0));
        assert_memory_equal(g, dx, c.d.count * sizeof(float));
        free(c.x); free(c.y); free(c.r); free(dx); free(g);
    }
}

/* Element-wise activations on large tensors (split between the threads in 16-aligned ranges, run
 * by the CPU's widest clone of the loop): every element equal, bit for bit, to the formula in plain
 * float arithmetic, forward and backward, with and without accumulation (beta), in place too. An odd
 * count puts the split and the vector tails off any boundary. */
static void test_activations_exact(void **state) {
    const size_t n = 300007; /* above the CPU backend's parallel threshold (2^18) */
    const float a = 0.2f, beta = 0.75f;
    float *x = tu_malloc(n), *y = tu_malloc(n), *g = tu_malloc(n), *dx = tu_malloc(n), *old = tu_malloc(n);
    tu_fill_normal(&RNG, x, n, 1);
    tu_fill_normal(&RNG, g, n, 1);
    tu_fill_normal(&RNG, old, n, 1);
    ebmc_act_kind kinds[] = {EBMC_ACT_RELU, EBMC_ACT_LRELU, EBMC_ACT_TANH, EBMC_ACT_IDENTITY};
    for (int k = 0; k < 4; k++) {
        ebmc_act_desc d = {.kind = kinds[k], .slope = a, .count = n};
        OK(ebmc_act_fwd(CTX, &d, x, y));
        for (int acc = 0; acc < 2; acc++) {
            memcpy(dx, old, n * sizeof(float));
            OK(ebmc_act_bwd(CTX, &d, x, y, g, dx, acc ? beta : 0.0f));
            for (size_t i = 0; i < n; i++) {
                float want_y = kinds[k] == EBMC_ACT_RELU ? (x[i] > 0.0f ? x[i] : 0.0f)
                             : kinds[k] == EBMC_ACT_LRELU ? (x[i] > 0.0f ? x[i] : a * x[i])
                             : kinds[k] == EBMC_ACT_TANH ? tanhf(x[i]) : x[i];
                float gi = kinds[k] == EBMC_ACT_RELU ? (x[i] > 0.0f ? g[i] : 0.0f)
                         : kinds[k] == EBMC_ACT_LRELU ? (x[i] > 0.0f ? g[i] : a * g[i])
                         : kinds[k] == EBMC_ACT_TANH ? g[i] * (1.0f - y[i] * y[i]) : g[i];
                float want_dx = acc ? gi + beta * old[i] : gi;
                if (memcmp(&y[i], &want_y, sizeof(float)) != 0 || memcmp(&dx[i], &want_dx, sizeof(float)) != 0)
                    fail_msg("act kind %d beta %g: element %zu of %zu: y %.9g (want %.9g), dx %.9g (want %.9g)",
                             (int)kinds[k], acc ? beta : 0.0f, i, n, y[i], want_y, dx[i], want_dx);
            }
        }
        /* in place: y = act(y) from a copy of x */
        if (kinds[k] != EBMC_ACT_TANH) {
            float *z = tu_malloc(n);
            memcpy(z, x, n * sizeof(float));
            OK(ebmc_act_fwd(CTX, &d, z, z));
            assert_memory_equal(z, y, n * sizeof(float));
            free(z);
        }
    }
    free(x), free(y), free(g), free(dx), free(old);
}

/* k x k pooling (ebmc eval's Inception): every output bit-equal to the window summed (or maxed)
 * in row-major order from 0 (-inf), as PyTorch's CPU kernel and the per-pixel reference; the
 * row-vectorised interior and the clipped edges; NaN inputs propagate through max; a plane wider
 * than the vectorised row's buffer takes the per-pixel path */
static float pool_ref(const ebmc_pool_desc *d, const float *xp, int oi, int oj) {
    int h0 = oi * d->stride - d->pad, w0 = oj * d->stride - d->pad, cnt = 0;
    float acc = d->mode == EBMC_POOL_MAX ? -INFINITY : 0.0f;
    for (int i = h0; i < h0 + d->k; i++)
        for (int j = w0; j < w0 + d->k; j++) {
            if (i < 0 || i >= d->h || j < 0 || j >= d->w) continue;
            float v = xp[(size_t)i * d->w + j];
            cnt++;
            if (d->mode == EBMC_POOL_MAX) acc = (v > acc || isnan(v)) ? v : acc;
            else acc += v;
        }
    if (d->mode == EBMC_POOL_MAX) return acc;
    return acc / (float)(d->count_include_pad ? d->k * d->k : cnt);
}

static void test_pool2d_exact(void **state) {
    const ebmc_pool_desc ds[] = {
        {2, 3, 17, 17, 3, 1, 1, EBMC_POOL_AVG, false}, {2, 3, 17, 17, 3, 1, 1, EBMC_POOL_AVG, true},
        {2, 3, 35, 35, 3, 2, 0, EBMC_POOL_MAX, false}, {1, 2, 8, 9, 3, 1, 1, EBMC_POOL_MAX, false},
        {1, 2, 6, 600, 3, 1, 1, EBMC_POOL_AVG, true},  {1, 1, 12, 12, 5, 2, 2, EBMC_POOL_AVG, false}};
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        const ebmc_pool_desc *d = &ds[k];
        int ho = (d->h + 2 * d->pad - d->k) / d->stride + 1, wo = (d->w + 2 * d->pad - d->k) / d->stride + 1;
        size_t nx = (size_t)d->n * d->c * d->h * d->w, ny = (size_t)d->n * d->c * ho * wo;
        float *x = tu_malloc(nx), *y = tu_malloc(ny);
        tu_fill_normal(&RNG, x, nx, 1);
        if (d->mode == EBMC_POOL_MAX) x[nx / 2] = NAN, x[7] = NAN;
        OK(ebmc_pool2d_fwd(CTX, d, x, y));
        for (int p = 0; p < d->n * d->c; p++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++) {
                    float want = pool_ref(d, x + (size_t)p * d->h * d->w, i, j), got = y[((size_t)p * ho + i) * wo + j];
                    if (memcmp(&want, &got, sizeof got) != 0 && !(isnan(want) && isnan(got)))
                        fail_msg("pool case %zu plane %d (%d, %d): %.9g, want %.9g", k, p, i, j, got, want);
                }
        free(x), free(y);
    }
}

/* Bilinear resize in both modes against float64: PyTorch's half-pixel source (o + 0.5) H/HO - 0.5
 * and TF 1's o H/HO (the TF FID graph's front end), both clamped to [0, H - 1]. Bound: the source
 * coordinate (at most H) carries ~2 roundings (2 H u, u = 2^-24), and the output moves with it by
 * at most max|x_i - x_j| <= 2 max|x| per unit; the three lerps add ~6 u max|x|. The other mode's
 * coordinates (off by up to half a pixel) miss it by orders of magnitude. */
static double resize_ref(const float *xp, int in_h, int in_w, int ho, int wo, int i, int j, bool tf1) {
    double sh = (double)in_h / ho, sw = (double)in_w / wo;
    double r = tf1 ? i * sh : (i + 0.5) * sh - 0.5, c = tf1 ? j * sw : (j + 0.5) * sw - 0.5;
    r = r < 0 ? 0 : r > in_h - 1 ? in_h - 1 : r;
    c = c < 0 ? 0 : c > in_w - 1 ? in_w - 1 : c;
    int r0 = (int)r, c0 = (int)c, r1 = r0 < in_h - 1 ? r0 + 1 : r0, c1 = c0 < in_w - 1 ? c0 + 1 : c0;
    double lr = r - r0, lc = c - c0;
    return (1 - lr) * ((1 - lc) * xp[r0 * in_w + c0] + lc * xp[r0 * in_w + c1]) +
           lr * ((1 - lc) * xp[r1 * in_w + c0] + lc * xp[r1 * in_w + c1]);
}

static void test_resize_modes(void **state) {
    const int shapes[][6] = {{2, 3, 32, 32, 299, 299}, {1, 2, 5, 7, 13, 4}, {1, 1, 9, 9, 9, 9}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int tf1 = 0; tf1 < 2; tf1++) {
            const int *q = shapes[k];
            ebmc_resize_desc d = {q[0], q[1], q[2], q[3], q[4], q[5], tf1 != 0};
            size_t nx = (size_t)d.n * d.c * d.h * d.w, ny = (size_t)d.n * d.c * d.ho * d.wo;
            float *x = tu_malloc(nx), *y = tu_malloc(ny);
            tu_fill_normal(&RNG, x, nx, 1);
            double xmax = 0;
            for (size_t i = 0; i < nx; i++) xmax = fmax(xmax, fabs(x[i]));
            int big = d.h > d.w ? d.h : d.w;
            double tol = xmax * 0x1p-24 * (4.0 * big + 6.0), worst = 0, other = 0;
            OK(ebmc_resize_fwd(CTX, &d, x, y));
            for (int p = 0; p < d.n * d.c; p++)
                for (int i = 0; i < d.ho; i++)
                    for (int j = 0; j < d.wo; j++) {
                        const float *xp = x + (size_t)p * d.h * d.w;
                        double got = y[((size_t)p * d.ho + i) * d.wo + j];
                        worst = fmax(worst, fabs(got - resize_ref(xp, d.h, d.w, d.ho, d.wo, i, j, tf1)));
                        other = fmax(other, fabs(got - resize_ref(xp, d.h, d.w, d.ho, d.wo, i, j, !tf1)));
                    }
            printf("  resize %s (%d,%d,%d,%d) -> %dx%d: max |err| %.2e (bound %.2e); the other mode %.2e\n",
                   tf1 ? "tf1" : "pytorch", d.n, d.c, d.h, d.w, d.ho, d.wo, worst, tol, other);
            assert_true(worst <= tol);
            if (d.ho != d.h || d.wo != d.w) assert_true(other > 100 * tol);
            free(x), free(y);
        }
}

/* ---------------- BatchNorm (batch statistics) ---------------- */

typedef struct {
    ebmc_bn_desc d;
    float *x, *g, *b, *y, *r, *mean, *inv;
    size_t n;
} bn_case;

static double bn_loss(void *u) {
    bn_case *c = u;
    OK(ebmc_bn_fwd(CTX, &c->d, c->x, c->g, c->b, c->y, c->mean, c->inv, NULL, NULL));
    return tu_dot(c->r, c->y, c->n);
}

static void test_batchnorm(void **state) {
    ebmc_bn_desc shapes[] = {{2, 3, 5, 5, 1e-5f, 0.1f}, {3, 2, 3, 4, 1e-5f, 0.1f}, {6, 5, 1, 1, 1e-5f, 0.1f}};
    for (int k = 0; k < 3; k++) {
        bn_case c = {.d = shapes[k]};
        c.n = (size_t)c.d.n * c.d.c * c.d.h * c.d.w;
        c.x = tu_malloc(c.n); c.y = tu_malloc(c.n); c.r = tu_malloc(c.n);
        c.g = tu_malloc(c.d.c); c.b = tu_malloc(c.d.c); c.mean = tu_malloc(c.d.c); c.inv = tu_malloc(c.d.c);
        float *dx = tu_malloc(c.n), *dg = tu_malloc(c.d.c), *db = tu_malloc(c.d.c);
        tu_fill_normal(&RNG, c.x, c.n, 1.5f);
        for (size_t i = 0; i < c.n; i++) c.x[i] += 0.7f;
        tu_fill_normal(&RNG, c.r, c.n, 1);
        tu_fill_normal(&RNG, c.g, c.d.c, 1); /* N(0,1) as Dual-MCMC initialises it */
        tu_fill_normal(&RNG, c.b, c.d.c, 1);
        bn_loss(&c);
        OK(ebmc_bn_bwd(CTX, &c.d, c.x, c.r, c.g, c.mean, c.inv, dx, dg, db, 0, 0));
        char nm[96];
        snprintf(nm, sizeof nm, "batchnorm (%d,%d,%d,%d) dx", c.d.n, c.d.c, c.d.h, c.d.w);
        assert_true(tu_gradcheck(nm, bn_loss, &c, c.x, c.n, dx, 1e-2, NL_RTOL, NL_ATOL, MAXCHK) <= 1);
        snprintf(nm, sizeof nm, "batchnorm (%d,%d,%d,%d) dgamma", c.d.n, c.d.c, c.d.h, c.d.w);
        assert_true(tu_gradcheck(nm, bn_loss, &c, c.g, c.d.c, dg, 1e-2, NL_RTOL, NL_ATOL, MAXCHK) <= 1);
        snprintf(nm, sizeof nm, "batchnorm (%d,%d,%d,%d) dbeta", c.d.n, c.d.c, c.d.h, c.d.w);
        assert_true(tu_gradcheck(nm, bn_loss, &c, c.b, c.d.c, db, 1e-2, NL_RTOL, NL_ATOL, MAXCHK) <= 1);
        /* the batch statistics themselves: mean 0, biased variance 1 per channel after BN with
         * gamma = 1, beta = 0 is the exact answer */
        for (int ch = 0; ch < c.d.c; ch++) { c.g[ch] = 1; c.b[ch] = 0; }
        bn_loss(&c);
        size_t hw = (size_t)c.d.h * c.d.w;
        for (int ch = 0; ch < c.d.c; ch++) {
            double s = 0, ss = 0;
            for (int n = 0; n < c.d.n; n++)
                for (size_t i = 0; i < hw; i++) {
                    double v = c.y[((size_t)n * c.d.c + ch) * hw + i];
                    s += v; ss += v * v;
                }
            double m = (double)c.d.n * hw;
            assert_true(fabs(s / m) < 1e-5);
            assert_true(fabs(ss / m - (1.0 - 1e-5 * (double)c.inv[ch] * c.inv[ch])) < 1e-4);
        }
        free(c.x); free(c.y); free(c.r); free(c.g); free(c.b); free(c.mean); free(c.inv);
        free(dx); free(dg); free(db);
    }
}

/* ---------------- spectral norm ---------------- */

typedef struct {
    ebmc_sn_desc d0; /* n_power_iter = 0: u, v held fixed, as in the backward */
    float *w, *u, *v, *sig, *wsn, *r;
    size_t n;
} sn_case;

static double sn_loss(void *p) {
    sn_case *c = p;
    OK(ebmc_sn_power(CTX, &c->d0, c->w, c->u, c->v, c->sig, c->wsn));
    return tu_dot(c->r, c->wsn, c->n);
}

static void test_spectral_norm(void **state) {
    int shapes[][2] = {{4, 27}, {1, 6}, {8, 8}};
    for (int k = 0; k < 3; k++) {
        sn_case c = {.d0 = {shapes[k][0], shapes[k][1], 0, 1e-12f}};
        c.n = (size_t)c.d0.rows * c.d0.cols;
        c.w = tu_malloc(c.n); c.wsn = tu_malloc(c.n); c.r = tu_malloc(c.n);
        c.u = tu_malloc(c.d0.rows); c.v = tu_malloc(c.d0.cols); c.sig = tu_malloc(1);
        float *dw = tu_malloc(c.n);
        tu_fill_normal(&RNG, c.w, c.n, 0.4f);
        tu_fill_normal(&RNG, c.u, c.d0.rows, 1);
        tu_fill_normal(&RNG, c.v, c.d0.cols, 1);
        tu_fill_normal(&RNG, c.r, c.n, 1);
        /* many power iterations converge sigma to the largest singular value: compare with the
         * exact one from the Gram matrix's power iteration in double */
        ebmc_sn_desc many = c.d0;
        many.n_power_iter = 200;
        OK(ebmc_sn_power(CTX, &many, c.w, c.u, c.v, c.sig, c.wsn));
        {
            int R = c.d0.rows, C = c.d0.cols;
            double *vv = calloc(C, sizeof(double)), *t = calloc(C > R ? C : R, sizeof(double));
            for (int j = 0; j < C; j++) vv[j] = 1.0 + 0.01 * j;
            double lam = 0;
            for (int it = 0; it < 2000; it++) {
                double *wv = calloc(R, sizeof(double));
                for (int i = 0; i < R; i++) for (int j = 0; j < C; j++) wv[i] += c.w[i * C + j] * vv[j];
                for (int j = 0; j < C; j++) { t[j] = 0; for (int i = 0; i < R; i++) t[j] += c.w[i * C + j] * wv[i]; }
                double nn = 0;
                for (int j = 0; j < C; j++) nn += t[j] * t[j];
                nn = sqrt(nn);
                lam = nn;
                for (int j = 0; j < C; j++) vv[j] = t[j] / nn;
                free(wv);
            }
            double smax = sqrt(lam);
            printf("  spectral norm %dx%d: sigma %.7f vs exact %.7f\n", R, C, c.sig[0], smax);
            assert_true(fabs(c.sig[0] - smax) < 1e-4 * smax);
            free(vv); free(t);
        }
        /* one iteration from fresh u, then the gradient with u, v held */
        tu_fill_normal(&RNG, c.u, c.d0.rows, 1);
        tu_fill_normal(&RNG, c.v, c.d0.cols, 1);
        ebmc_sn_desc one = c.d0;
        one.n_power_iter = 1;
        OK(ebmc_sn_power(CTX, &one, c.w, c.u, c.v, c.sig, c.wsn));
        OK(ebmc_sn_bwd(CTX, &c.d0, c.w, c.u, c.v, c.sig, c.r, dw, 0));
        char nm[64];
        snprintf(nm, sizeof nm, "spectral_norm %dx%d dW", c.d0.rows, c.d0.cols);
        assert_true(tu_gradcheck(nm, sn_loss, &c, c.w, c.n, dw, 1e-3, NL_RTOL, NL_ATOL, MAXCHK) <= 1);
        free(c.w); free(c.wsn); free(c.r); free(c.u); free(c.v); free(c.sig); free(dw);
    }
}

/* ---------------- upsampling and pooling ---------------- */

typedef struct {
    int kind; /* 0 upsample, 1 avgpool2, 2 gpool */
    ebmc_upsample_desc ud;
    ebmc_t4_desc pd;
    ebmc_gpool_desc gd;
    float *x, *y, *r;
    size_t nx, ny;
} sp_case;

static double sp_loss(void *u) {
    sp_case *c = u;
    if (c->kind == 0) OK(ebmc_upsample_fwd(CTX, &c->ud, c->x, c->y));
    else if (c->kind == 1) OK(ebmc_avgpool2_fwd(CTX, &c->pd, c->x, c->y));
    else OK(ebmc_gpool_fwd(CTX, &c->gd, c->x, c->y));
    return tu_dot(c->r, c->y, c->ny);
}

static void run_sp(sp_case *c, const char *nm) {
    c->x = tu_malloc(c->nx); c->y = tu_malloc(c->ny); c->r = tu_malloc(c->ny);
    float *dx = tu_malloc(c->nx);
    tu_fill_normal(&RNG, c->x, c->nx, 1); tu_fill_normal(&RNG, c->r, c->ny, 1);
    if (c->kind == 0) OK(ebmc_upsample_bwd(CTX, &c->ud, c->r, dx, 0));
    else if (c->kind == 1) OK(ebmc_avgpool2_bwd(CTX, &c->pd, c->r, dx, 0));
    else OK(ebmc_gpool_bwd(CTX, &c->gd, c->r, dx, 0));
    assert_true(tu_gradcheck(nm, sp_loss, c, c->x, c->nx, dx, LIN_H, LIN_RTOL, LIN_ATOL, MAXCHK) <= 1);
    free(c->x); free(c->y); free(c->r); free(dx);
}

static void test_upsample(void **state) {
    int shapes[][4] = {{2, 3, 4, 4}, {1, 2, 1, 1}, {2, 2, 3, 5}};
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 3; k++) {
            sp_case c = {.kind = 0, .ud = {shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], m ? EBMC_UPSAMPLE_NEAREST : EBMC_UPSAMPLE_BILINEAR_AC}};
            c.nx = (size_t)c.ud.n * c.ud.c * c.ud.h * c.ud.w;
            c.ny = 4 * c.nx;
            char nm[80];
            snprintf(nm, sizeof nm, "upsample %s x2 %dx%d dx", m ? "nearest" : "bilinear(ac)", c.ud.h, c.ud.w);
            run_sp(&c, nm);
        }
    /* align_corners=True keeps the corners and is exact on a linear ramp */
    ebmc_upsample_desc d = {1, 1, 3, 4, EBMC_UPSAMPLE_BILINEAR_AC};
    float x[12], y[48];
    for (int i = 0; i < 3; i++) for (int j = 0; j < 4; j++) x[i * 4 + j] = 2.0f * i + 3.0f * j;
    OK(ebmc_upsample_fwd(CTX, &d, x, y));
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 8; j++) {
            double si = i * 2.0 / 5.0, sj = j * 3.0 / 7.0;
            assert_float_equal(y[i * 8 + j], 2.0 * si + 3.0 * sj, 1e-5);
        }
}

static void test_pools(void **state) {
    int shapes[][4] = {{2, 3, 4, 4}, {1, 2, 5, 7}, {3, 1, 2, 3}};
    for (int k = 0; k < 3; k++) {
        sp_case c = {.kind = 1, .pd = {shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3]}};
        c.nx = (size_t)c.pd.n * c.pd.c * c.pd.h * c.pd.w;
        c.ny = (size_t)c.pd.n * c.pd.c * (c.pd.h / 2) * (c.pd.w / 2);
        char nm[64];
        snprintf(nm, sizeof nm, "avgpool2 %dx%d dx", c.pd.h, c.pd.w);
        run_sp(&c, nm);
        for (int m = 0; m < 2; m++) {
            sp_case g = {.kind = 2, .gd = {shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], m ? EBMC_GPOOL_SUM : EBMC_GPOOL_AVG}};
            g.nx = c.nx;
            g.ny = (size_t)g.gd.n * g.gd.c;
            snprintf(nm, sizeof nm, "global %s pool %dx%d dx", m ? "sum" : "avg", g.gd.h, g.gd.w);
            run_sp(&g, nm);
        }
    }
}

/* ---------------- dropout (Philox-keyed masks) ---------------- */

typedef struct {
    ebmc_dropout_desc d;
    float *x, *y, *r;
    size_t n;
} drop_case;

static double drop_loss(void *u) {
    drop_case *c = u;
    OK(ebmc_dropout(CTX, &c->d, c->x, c->y));
    return tu_dot(c->r, c->y, c->n);
}

/* The mask against Philox itself (the generator's known answers are checked by the oracle
 * tests): element e of row r is kept iff the double uniform (k + 0.5) 2^-32 of lane e%4 of
 * counter (group_off + e/4, r, step, stream) is >= p, and then y = x / (1 - p) exactly; the keep
 * rate within 5 binomial standard deviations; a later layer's group offset is the same row read
 * further on; the step from a counter in memory; another step another mask; the backward (the
 * same call on dy) against finite differences; beta = 1 accumulates. */
static void test_dropout(void **state) {
    enum { R = 5, E = 2003 };
    const size_t n = (size_t)R * E;
    float *x = tu_malloc(n), *y = tu_malloc(n), *y2 = tu_malloc(n), *r = tu_malloc(n), *dx = tu_malloc(n);
    tu_fill_normal(&RNG, x, n, 1);
    tu_fill_normal(&RNG, r, n, 1);
    const float ps[] = {0.5f, 0.3f};
    for (int k = 0; k < 2; k++) {
        ebmc_dropout_desc d = {.rows = R, .row_elems = E, .group_off = 7, .p = ps[k], .beta = 0,
                               .rng = {0xFEEDFACE12345678ull, 11, NULL, 42}};
        OK(ebmc_dropout(CTX, &d, x, y));
        size_t kept = 0, bad = 0;
        const float keep_p = (float)(1.0 - (double)ps[k]);
        for (int row = 0; row < R; row++)
            for (size_t e = 0; e < E; e++) {
                ebmc_u32x4 c = {{7u + (uint32_t)(e / 4), (uint32_t)row, 42u, 11u}};
                ebmc_u32x4 u = ebmc_philox4x32_10(c, 0x12345678u, 0xFEEDFACEu);
                bool keep = ((double)u.v[e % 4] + 0.5) * 2.3283064365386963e-10 >= (double)ps[k];
                float want = keep ? x[row * E + e] / keep_p : 0.0f;
                kept += keep;
                bad += y[row * E + e] != want;
            }
        assert_int_equal(bad, 0);
        double sd = sqrt(n * ps[k] * (1 - ps[k]));
        printf("dropout p %.1f: kept %zu of %zu (expected %.0f, sd %.0f)\n", ps[k], kept, n, n * (1 - ps[k]), sd);
        assert_true(fabs((double)kept - n * (1 - ps[k])) < 5 * sd);
        /* group offset 7 = elements 28.. of a row with offset 0 */
        float *xl = tu_malloc(E + 28), *yl = tu_malloc(E + 28);
        memset(xl, 0, 28 * sizeof(float));
        memcpy(xl + 28, x, E * sizeof(float));
        ebmc_dropout_desc dl = d;
        dl.rows = 1, dl.row_elems = E + 28, dl.group_off = 0;
        OK(ebmc_dropout(CTX, &dl, xl, yl));
        assert_memory_equal(yl + 28, y, E * sizeof(float));
        free(xl); free(yl);
        /* the step from a counter in memory (40 + offset 2), and another step */
        uint32_t base = 40;
        ebmc_dropout_desc dc = d;
        dc.rng.step_base = &base, dc.rng.step_offset = 2;
        OK(ebmc_dropout(CTX, &dc, x, y2));
        assert_memory_equal(y2, y, n * sizeof(float));
        dc.rng.step_offset = 3;
        OK(ebmc_dropout(CTX, &dc, x, y2));
        size_t same = 0;
        for (size_t i = 0; i < n; i++) same += (y2[i] != 0) == (y[i] != 0);
        assert_true(same < n - n / 4); /* independent masks agree on ~(p^2 + (1-p)^2) of them */
        /* backward = the same call on r; beta = 1 adds */
        drop_case c = {.d = d, .x = x, .y = y2, .r = r, .n = n};
        OK(ebmc_dropout(CTX, &d, r, dx));
        assert_true(tu_gradcheck(k ? "dropout p 0.3 dx" : "dropout p 0.5 dx", drop_loss, &c, x, n, dx, LIN_H,
                                 LIN_RTOL, LIN_ATOL, MAXCHK) <= 1);
        memcpy(y2, r, n * sizeof(float));
        ebmc_dropout_desc db = d;
        db.beta = 1;
        OK(ebmc_dropout(CTX, &db, x, y2));
        for (size_t i = 0; i < n; i++) assert_true(y2[i] == y[i] + r[i]);
    }
    free(x); free(y); free(y2); free(r); free(dx);
}

/* ---------------- exact answers: Adam, reduce, axpby, fill ---------------- */

static void test_adam_exact(void **state) {
    /* From m = v = 0, Adam's first step is p -= lr * g'/(|g'| + eps) exactly (bias corrections
     * cancel), with g' = g + wd*p. A second step with the same gradient keeps the same size. */
    enum { N = 64 };
    float p[N], g[N], m[N], v[N], p0[N];
    tu_fill_normal(&RNG, p, N, 1); tu_fill_normal(&RNG, g, N, 1);
    memcpy(p0, p, sizeof p);
    memset(m, 0, sizeof m); memset(v, 0, sizeof v);
    ebmc_adam_desc d = {.count = N, .lr = 3e-4, .beta1 = 0.0, .beta2 = 0.9, .eps = 1e-8, .weight_decay = 5e-4, .step = 1};
    OK(ebmc_adam(CTX, &d, p, g, m, v));
    for (int i = 0; i < N; i++) {
        double gg = g[i] + 5e-4 * p0[i];
        double want = p0[i] - 3e-4 * gg / (fabs(gg) + 1e-8);
        assert_float_equal(p[i], want, 1e-6);
        assert_float_equal(m[i], gg, 1e-6);
        assert_float_equal(v[i], 0.1 * gg * gg, 1e-6 * (1 + gg * gg));
    }
    /* constant gradient, wd = 0, beta1 = 0.5: after t steps m = (1-0.5^t) g, v = (1-b2^t) g^2,
     * so every step moves by exactly lr * sign(g) (up to eps) */
    ebmc_adam_desc d2 = {.count = N, .lr = 1e-2, .beta1 = 0.5, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .step = 1};
    memcpy(p, p0, sizeof p);
    memset(m, 0, sizeof m); memset(v, 0, sizeof v);
    for (int t = 1; t <= 5; t++) {
        d2.step = t;
        OK(ebmc_adam(CTX, &d2, p, g, m, v));
    }
    for (int i = 0; i < N; i++) assert_float_equal(p[i], p0[i] - 5 * 1e-2 * (g[i] > 0 ? 1 : -1), 2e-5);
    /* IGEBM's clipped Adam (custom_adam.py): step t = 2 from v_old, g clipped to
     * +-(3 sqrt(v_old / (1 - b2^2)) + 0.1), then Adam; against the float64 formula (a few float
     * roundings: relative 1e-5). v_old spans bounds from 0.1 to ~1.4 so that N(0,1) gradients
     * are clipped and not clipped. */
    ebmc_adam_desc d3 = {.count = N, .lr = 1e-3, .beta1 = 0.0, .beta2 = 0.999, .eps = 1e-8, .step = 2,
                         .clip_std = 3.0, .clip_floor = 0.1};
    float vold[N];
    int clipped = 0;
    for (int i = 0; i < N; i++) vold[i] = v[i] = 1e-4f * (float)(i * i) / (N * N), m[i] = 0, p[i] = p0[i];
    OK(ebmc_adam(CTX, &d3, p, g, m, v));
    for (int i = 0; i < N; i++) {
        double bc2 = 1 - 0.999 * 0.999, bound = 3 * sqrt(vold[i] / bc2) + 0.1;
        double gc = g[i] > bound ? bound : (g[i] < -bound ? -bound : g[i]);
        double vn = 0.999 * vold[i] + 0.001 * gc * gc;
        double want = p0[i] - 1e-3 * gc / (sqrt(vn) / sqrt(bc2) + 1e-8);
        clipped += gc != g[i];
        assert_float_equal(m[i], gc, 1e-5 * fabs(gc));
        assert_float_equal(p[i], want, 1e-5 * fabs(want - p0[i]) + 1e-7);
    }
    printf("clipped adam: %d of %d gradients clipped\n", clipped, N);
    assert_true(clipped > N / 8 && clipped < N - N / 8);
}

static void test_reduce_axpby_fill(void **state) {
    enum { R = 3, C = 1001 };
    float x[R * C], out[R], y[R * C];
    tu_fill_normal(&RNG, x, R * C, 1);
    for (int mode = 0; mode < 2; mode++) {
        ebmc_reduce_desc d = {.rows = R, .cols = C, .mode = mode, .beta = 0};
        OK(ebmc_reduce(CTX, &d, x, out));
        float keep[R];
        memcpy(keep, out, sizeof keep);
        d.beta = 1;
        OK(ebmc_reduce(CTX, &d, x, out));
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int i = 0; i < C; i++) s += mode ? (double)x[r * C + i] * x[r * C + i] : x[r * C + i];
            assert_float_equal(keep[r], s, 1e-5 * (1 + fabs(s)));
            assert_float_equal(out[r], 2 * s, 2e-5 * (1 + fabs(s)));
        }
    }
    ebmc_fill_desc f = {.count = R * C, .value = NAN};
    OK(ebmc_fill(CTX, &f, y));
    ebmc_axpby_desc a = {.count = R * C, .a = 2.0f, .b = 0.0f}; /* b = 0 must not read the NaNs */
    OK(ebmc_axpby(CTX, &a, x, y));
    for (int i = 0; i < R * C; i++) assert_float_equal(y[i], 2 * x[i], 0);
    a.a = -1.0f; a.b = 0.5f;
    OK(ebmc_axpby(CTX, &a, x, y));
    for (int i = 0; i < R * C; i++) assert_float_equal(y[i], 0.0f, 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_convt2d),
        cmocka_unit_test(test_conv_workspace_repeatable),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_bias),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_activations_exact),
        cmocka_unit_test(test_pool2d_exact),
        cmocka_unit_test(test_resize_modes),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_spectral_norm),
        cmocka_unit_test(test_upsample),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_adam_exact),
        cmocka_unit_test(test_reduce_axpby_fill),
    };
    return cmocka_run_group_tests_name("ops_grad_cpu", tests, setup, teardown);
}
