/* Particle dynamics (specs/particles.md section 2): the ops of its toy EBM against finite
 * differences, the 2-D data sets against their definitions, the spec's tests N1 (the Alpha and
 * Beta moves translate particles exactly when a unit Gaussian's mean moves) and N2 (a change of
 * scale is overshot by the predicted factor 2; Langevin then brings the second moment to the
 * ULA prediction), the evaluation (grid log Z and AIS log Z of Gaussian energies whose log Z is
 * known exactly; MMD^2 on a hand-computed case), and bit-exact resume with the particles, the
 * previous model and the replay buffer. The models are the recipe's pd_mlp with its MLP zeroed,
 * so E is exactly the learnable Gaussian base (plus the last bias). */
#include "testutil.h"
#include "recipes/particles.h"
#include "ebmc/data.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebmc_ctx_t *CTX;
static tu_rng RNG;
static char TMP[512];

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) {
    (void)state;
    CTX = tu_ctx_cpu();
    tu_rng_seed(&RNG, 777);
    return tu_tmpdir_create(TMP, sizeof TMP, "particles");
}

static int teardown(void **state) {
    (void)state;
    ebmc_ctx_free(CTX);
    tu_tmpdir_remove(TMP);
    return 0;
}

/* ---------------------------------------------------------------- ops: finite differences */

typedef struct {
    ebmc_pswish_desc d;
    float *x, *b, *y, *r;
    size_t n;
} psw_case;

static double psw_loss(void *u) {
    psw_case *c = u;
    OK(ebmc_pswish_fwd(CTX, &c->d, c->x, c->b, c->y));
    double s = 0;
    for (size_t i = 0; i < c->n; i++) s += (double)c->r[i] * c->y[i];
    return s;
}

/* L = sum r .* swish_b(x): dL/dx and dL/db by the op against central differences (h = 1e-3:
 * truncation O(h^2 |f'''|) ~ 1e-6, rounding 2^-24 sum|r y| / 2h ~ 1e-3 at these sizes) */
static void test_pswish_grad(void **state) {
    (void)state;
    psw_case c = {.d = {3, 4, 5}};
    c.n = 60;
    c.x = tu_malloc(c.n), c.y = tu_malloc(c.n), c.r = tu_malloc(c.n), c.b = tu_malloc(4);
    tu_fill_normal(&RNG, c.x, c.n, 1.5f);
    tu_fill_normal(&RNG, c.r, c.n, 1.0f);
    tu_fill_uniform(&RNG, c.b, 4, 0.3f, 2.0f);
    float *dx = tu_malloc(c.n), db[4];
    OK(ebmc_pswish_bwd(CTX, &c.d, c.x, c.b, c.r, dx, db, 0.0f, 0.0f));
    assert_true(tu_gradcheck("pswish dx", psw_loss, &c, c.x, c.n, dx, 1e-3, 1e-2, 2e-3, 100) <= 1.0);
    assert_true(tu_gradcheck("pswish db", psw_loss, &c, c.b, 4, db, 1e-3, 1e-2, 2e-3, 100) <= 1.0);
    free(c.x), free(c.y), free(c.r), free(c.b), free(dx);
}

typedef struct {
    ebmc_gbase_desc d;
    float *x, *mu, *ls, *y, *r;
} gb_case;

static double gb_loss(void *u) {
    gb_case *c = u;
    OK(ebmc_gbase_fwd(CTX, &c->d, c->x, c->mu, c->ls, c->y));
    double s = 0;
    for (int i = 0; i < c->d.rows; i++) s += (double)c->r[i] * c->y[i];
    return s;
}

/* the base energy against its closed form (double) and its three gradients against central
 * differences (h = 1e-3, as above) */
static void test_gbase(void **state) {
    (void)state;
    gb_case c = {.d = {7, 3}};
    c.x = tu_malloc(21), c.mu = tu_malloc(3), c.ls = tu_malloc(3), c.y = tu_malloc(7), c.r = tu_malloc(7);
    tu_fill_normal(&RNG, c.x, 21, 1.0f);
    tu_fill_normal(&RNG, c.mu, 3, 0.5f);
    tu_fill_uniform(&RNG, c.ls, 3, -0.5f, 0.5f);
    tu_fill_normal(&RNG, c.r, 7, 1.0f);
    OK(ebmc_gbase_fwd(CTX, &c.d, c.x, c.mu, c.ls, c.y));
    for (int i = 0; i < 7; i++) { /* -log N(x; mu, e^{2 ls}) */
        double ref = 0;
        for (int j = 0; j < 3; j++) {
            double z = (c.x[i * 3 + j] - c.mu[j]) / exp(c.ls[j]);
            ref += 0.5 * z * z + c.ls[j] + 0.5 * log(2 * M_PI);
        }
        assert_true(fabs(c.y[i] - ref) <= 4 * 6e-8 * (fabs(ref) + 3));
    }
    float dx[21], dmu[3], dls[3];
    OK(ebmc_gbase_bwd(CTX, &c.d, c.x, c.mu, c.ls, c.r, dx, dmu, dls, 0.0f, 0.0f));
    assert_true(tu_gradcheck("gbase dx", gb_loss, &c, c.x, 21, dx, 1e-3, 1e-2, 2e-3, 100) <= 1.0);
    assert_true(tu_gradcheck("gbase dmu", gb_loss, &c, c.mu, 3, dmu, 1e-3, 1e-2, 2e-3, 100) <= 1.0);
    assert_true(tu_gradcheck("gbase dlogstd", gb_loss, &c, c.ls, 3, dls, 1e-3, 1e-2, 2e-3, 100) <= 1.0);
    free(c.x), free(c.mu), free(c.ls), free(c.y), free(c.r);
}

/* gather/scatter: y[dst[i]] = x[src[i]], other rows untouched, out-of-range rows skipped */
static void test_rows_copy(void **state) {
    (void)state;
    float x[8] = {0, 1, 10, 11, 20, 21, 30, 31}, y[6] = {-1, -1, -1, -1, -1, -1};
    int32_t src[3] = {3, 0, 2}, dst[3] = {2, 0, 7};
    ebmc_rows_desc d = {3, 2, 4, 3};
    OK(ebmc_rows_copy(CTX, &d, x, src, dst, y));
    const float want[6] = {0, 1, -1, -1, 30, 31};
    for (int i = 0; i < 6; i++) assert_true(y[i] == want[i]);
}

/* ---------------------------------------------------------------- data sets */

/* 8gaussians: component means at the centres 4 u_k / 1.414 and per-coordinate variance
 * (0.5/1.414)^2 about them, each within 4.5 standard errors; frequencies 1/8 within 4.5 s.e. */
static void test_data_8gaussians(void **state) {
    (void)state;
    const int n = 40000;
    ebmc_dataset_t *ds;
    char err[256];
    assert_int_equal(ebmc_data_toy2d("8gaussians", n, 5, &ds, err, sizeof err), EBMC_OK);
    const float *p = ebmc_data_f32(ds);
    const int32_t *k = ebmc_toy2d_components(ds);
    const double r = 1 / sqrt(2.0), c[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {r, r}, {r, -r}, {-r, r}, {-r, -r}};
    const double sd = 0.5 / 1.414;
    double sx[8][2] = {{0}}, ss = 0;
    int cnt[8] = {0};
    for (int i = 0; i < n; i++) {
        cnt[k[i]]++;
        for (int d = 0; d < 2; d++) {
            double e = p[2 * i + d] - 4 * c[k[i]][d] / 1.414;
            sx[k[i]][d] += e;
            ss += e * e;
        }
    }
    for (int m = 0; m < 8; m++) {
        assert_true(fabs(cnt[m] - n / 8.0) < 4.5 * sqrt(n * (1 / 8.0) * (7 / 8.0)));
        for (int d = 0; d < 2; d++) assert_true(fabs(sx[m][d] / cnt[m]) < 4.5 * sd / sqrt(cnt[m]));
    }
    double var = ss / (2.0 * n);
    assert_true(fabs(var - sd * sd) < 4.5 * sd * sd * sqrt(2.0 / (2 * n)));
    ebmc_data_free(ds);
}

/* checkerboard: inside [-4, 4)^2 on the squares with floor(x/2) + floor(y/2) even, both halves
 * of each axis used; pd_rings: radius 3(1 - k/4) per component k and radial spread 0.08 */
static void test_data_checkerboard_rings(void **state) {
    (void)state;
    const int n = 20000;
    ebmc_dataset_t *ds;
    char err[256];
    assert_int_equal(ebmc_data_toy2d("checkerboard", n, 5, &ds, err, sizeof err), EBMC_OK);
    const float *p = ebmc_data_f32(ds);
    int neg = 0;
    for (int i = 0; i < n; i++) {
        assert_true(p[2 * i] >= -4 && p[2 * i] < 4 && p[2 * i + 1] >= -4 && p[2 * i + 1] < 4);
        assert_int_equal(((int)floor(p[2 * i] / 2) + (int)floor(p[2 * i + 1] / 2)) & 1, 0);
        neg += p[2 * i + 1] < 0;
    }
    assert_true(fabs(neg - n / 2.0) < 4.5 * sqrt(n / 4.0));
    ebmc_data_free(ds);
    assert_int_equal(ebmc_data_toy2d("pd_rings", n, 5, &ds, err, sizeof err), EBMC_OK);
    p = ebmc_data_f32(ds);
    const int32_t *k = ebmc_toy2d_components(ds);
    double sr[4] = {0}, ss = 0;
    int cnt[4] = {0};
    for (int i = 0; i < n; i++) {
        double e = hypot(p[2 * i], p[2 * i + 1]) - 3.0 * (1 - 0.25 * k[i]);
        sr[k[i]] += e, ss += e * e, cnt[k[i]]++;
    }
    for (int m = 0; m < 4; m++) assert_true(fabs(sr[m] / cnt[m]) < 4.5 * 0.08 / sqrt(cnt[m]) + 2e-3);
    assert_true(fabs(sqrt(ss / n) - 0.08) < 0.08 * 4.5 / sqrt(2.0 * n) + 1e-3);
    ebmc_data_free(ds);
    /* the other sets exist, are finite and within the authors' ranges */
    const char *kinds[3] = {"swissroll", "pinwheel", "2spirals"};
    const double lim[3] = {4.5, 6, 6};
    for (int j = 0; j < 3; j++) {
        assert_int_equal(ebmc_data_toy2d(kinds[j], 2000, 5, &ds, err, sizeof err), EBMC_OK);
        p = ebmc_data_f32(ds);
        for (int i = 0; i < 4000; i++) assert_true(isfinite(p[i]) && fabs(p[i]) < lim[j]);
        ebmc_data_free(ds);
    }
}

/* ---------------------------------------------------------------- runs */

static ebmc_run_t *open_run(const char *const *args, int n, bool data) {
    const ebmc_recipe *rc = ebmc_recipe_find("particles");
    assert_non_null(rc);
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024];
    assert_int_equal(ebmc_config_set_arg(cfg, "run.recipe=particles", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_set_arg(cfg, "run.backend=cpu", err, sizeof err), EBMC_OK);
    for (int i = 0; i < n; i++)
        if (ebmc_config_set_arg(cfg, args[i], err, sizeof err)) fail_msg("%s: %s", args[i], err);
    ebmc_run_t *run;
    if (ebmc_run_open(rc, cfg, data, &run, err, sizeof err)) fail_msg("%s", err);
    return run;
}

static void close_run(ebmc_run_t *run) {
    const ebmc_config_t *cfg = ebmc_run_config(run);
    ebmc_run_free(run);
    ebmc_config_free((ebmc_config_t *)cfg);
}

static void set_tensor(ebmc_net_t *net, const char *name, const float *v) {
    const ebmc_net_tensor *t = ebmc_net_tensor_find(net, name);
    assert_non_null(t);
    memcpy(t->data, v, t->count * sizeof(float));
}

/* E = -log N(x; mu, diag e^{2 ls}) + b exactly: every MLP parameter zero but the last bias */
static void gaussian_energy(pd_t *t, const float *mu, const float *ls, float b) {
    memset(ebmc_net_params(t->E), 0, ebmc_net_param_count(t->E) * sizeof(float));
    set_tensor(t->E, "base_mu", mu);
    set_tensor(t->E, "base_logstd", ls);
    set_tensor(t->E, "net.net.4.bias", &b);
}

/* ---------------------------------------------------------------- N1, N2 */

/* N1: E = |x - mu|^2 / 2 and mu -> mu + delta: the Alpha field grad E_old - grad E_new is delta
 * exactly, and so is Beta's central difference (the gradient is linear in mu). Every particle
 * must move by delta up to float rounding: each of the two gradients is rounded once (2^-24
 * |x - mu| each), their difference and the update once more (2^-24 (|delta| + |x'|)). */
static void check_translation(const char *method, float cap) {
    char m[64], c[64];
    snprintf(m, sizeof m, "particles.method=%s", method);
    snprintf(c, sizeof c, "particles.max_move=%g", cap);
    const char *args[] = {m, "particles.count=500", "model.hidden=8", c};
    ebmc_run_t *run = open_run(args, 4, false);
    pd_t *t = ebmc_run_state(run);
    const float mu0[2] = {0.3f, -0.7f}, delta[2] = {0.05f, -0.02f}, zero[2] = {0, 0};
    float mu1[2] = {mu0[0] + delta[0], mu0[1] + delta[1]}, want[2];
    for (int d = 0; d < 2; d++) /* the move, capped per coordinate when cap > 0 */
        want[d] = cap > 0 && fabsf(mu1[d] - mu0[d]) > cap ? copysignf(cap, delta[d]) : mu1[d] - mu0[d];
    gaussian_energy(t, mu0, zero, 0);
    OK(pd_copy_model(t));
    set_tensor(t->E, "base_mu", mu1);
    float *x = ebmc_chain_state(t->chain), *x0 = tu_malloc(1000);
    for (int i = 0; i < 1000; i++) x[i] = x0[i] = mu0[i % 2] + tu_normal(&RNG);
    OK(pd_transport(t, x, 500));
    double worst = 0, v0 = 0, v1 = 0;
    for (int i = 0; i < 1000; i++) {
        double u = 0x1p-24 * (2 * fabs(x0[i] - mu0[i % 2]) + 2 * fabs(delta[i % 2]) + fabs(x[i]) + 1e-30);
        worst = fmax(worst, fabs((double)x[i] - x0[i] - want[i % 2]) / (4 * u));
        v0 += (x0[i] - mu0[i % 2]) * (x0[i] - mu0[i % 2]);
        v1 += (x[i] - mu0[i % 2] - want[i % 2]) * (x[i] - mu0[i % 2] - want[i % 2]); /* about the moved mean */
    }
    printf("N1 %s (max_move %g): worst |x' - x - delta| / (4 ulp bound) = %.3f; second moment %.6f -> %.6f\n",
           method, cap, worst, v0 / 1000, v1 / 1000);
    assert_true(worst <= 1.0);
    assert_true(fabs(v1 - v0) <= 1e-5 * v0);
    free(x0);
    close_run(run);
}

static void test_n1_translation(void **state) {
    (void)state;
    check_translation("alpha", 0);
    check_translation("beta", 0);
    check_translation("alpha", 0.03f); /* pitfall 2(d)1's cap: x moves by (0.03, -0.02) */
}

/* The replay baseline's re-initialisation (baseline_toy.py:82-98): base_dist.loc shares storage
 * with the learned base_mu, base_dist.scale stays the first std. With every particle
 * re-initialised and no descent steps, the particles are N(learned mu, first std): their mean
 * within 5 standard errors of the learned mu (3, -2), far from the first mean, and their std
 * within 5 standard errors of the first std, not the learned 0.25. The same draw for alpha (its
 * reinit uses the learned base, mean and std) gives std 0.25. */
static void check_reinit_base(const char *method, bool learned_std) {
    char m[64];
    snprintf(m, sizeof m, "particles.method=%s", method);
    const int N = 20000;
    const char *args[] = {m, "particles.count=20000", "model.hidden=4", "particles.reinit=1",
                          "particles.reinit_steps=0", "replay.capacity=20000"};
    ebmc_run_t *run = open_run(args, 6, false);
    pd_t *t = ebmc_run_state(run);
    const float mu[2] = {3.0f, -2.0f}, ls[2] = {logf(0.25f), logf(0.25f)};
    set_tensor(t->E, "base_mu", mu);
    set_tensor(t->E, "base_logstd", ls);
    for (int d = 0; d < 2; d++) t->base0[d] = 0.5f, t->base0[2 + d] = 1.5f; /* the first base, as start() keeps it */
    OK(pd_reinit(t, 5));
    const float *x = ebmc_chain_state(t->chain);
    for (int d = 0; d < 2; d++) {
        double mean = 0, var = 0;
        for (int i = 0; i < N; i++) mean += x[2 * i + d];
        mean /= N;
        for (int i = 0; i < N; i++) var += (x[2 * i + d] - mean) * (x[2 * i + d] - mean);
        double sd = sqrt(var / (N - 1)), want_sd = learned_std ? 0.25 : t->base0[2 + d];
        printf("  %s reinit, dim %d: mean %.4f (learned mu %.1f, first %.4f), std %.4f (want %.4f)\n", method, d, mean,
               mu[d], t->base0[d], sd, want_sd);
        assert_true(fabs(mean - mu[d]) < 5 * want_sd / sqrt(N));
        assert_true(fabs(sd - want_sd) < 5 * want_sd / sqrt(2.0 * N));
        assert_true(fabs(t->base0[d] - mu[d]) > 1.0); /* the first mean is told apart */
    }
    close_run(run);
}

static void test_reinit_base(void **state) {
    (void)state;
    check_reinit_base("replay", false);
    check_reinit_base("alpha", true);
}

/* N2 (1-D): E = x^2 / (2 s^2), s^2: 1 -> 1 + eps. The Alpha move is x' = x (1 - d(1/s^2)) =
 * x (2 - 1/(1 + eps)) for every particle (the exact move would scale by sqrt(1 + eps): the std
 * grows by ~eps, not ~eps/2, the factor-2 overshoot). Then K ULA steps x <- rho x + c xi,
 * rho = 1 - a/(1+eps), a = step/2, c = noise: E[x_K^2] = rho^2K m0 + c^2 (1 - rho^2K)/(1 - rho^2)
 * given the moved particles' second moment m0; the sample mean of x_K^2 of N particles must be
 * within 4.5 standard errors (sd(x^2)/sqrt(N) = sqrt(2/N) E[x^2] for a centred Gaussian). */
static void test_n2_scale(void **state) {
    (void)state;
    const int N = 100000, K = 100;
    const double eps = 0.1, step = 0.1, noise = sqrt(0.1);
    const char *args[] = {"particles.method=alpha", "particles.count=100000", "model.hidden=4", "model.dims=1",
                          "particles.steps=100", "particles.step_size=0.1", "particles.noise=0.316227766016838"};
    ebmc_run_t *run = open_run(args, 7, false);
    pd_t *t = ebmc_run_state(run);
    const float zero = 0, ls1 = (float)(0.5 * log(1 + eps));
    gaussian_energy(t, &zero, &zero, 0);
    OK(pd_copy_model(t));
    set_tensor(t->E, "base_logstd", &ls1);
    float *x = ebmc_chain_state(t->chain);
    float *x0 = tu_malloc(N);
    for (int i = 0; i < N; i++) x[i] = x0[i] = tu_normal(&RNG);
    OK(pd_transport(t, x, N));
    const double f = 1 + (1 - exp(-2.0 * ls1)); /* 1 - d(1/s^2) with the stored float logstd */
    double m0 = 0, mx = 0, worst = 0;
    for (int i = 0; i < N; i++) {
        worst = fmax(worst, fabs(x[i] - f * x0[i]) / (1e-6 * (fabs(x0[i]) + 1e-3)));
        m0 += (double)x[i] * x[i], mx += (double)x0[i] * x0[i];
    }
    m0 /= N, mx /= N;
    printf("N2: scale factor %.6f (exact move %.6f, overshoot %.3fx); E[x^2] %.5f -> %.5f (target %.5f); worst "
           "%.3f\n", f, sqrt(1 + eps), (f - 1) / (sqrt(1 + eps) - 1), mx, m0, 1 + eps, worst);
    assert_true(worst <= 1.0);
    /* the std grows by eps/(1+eps) instead of sqrt(1+eps) - 1: 1.86x for eps = 0.1 (-> 2 as eps -> 0) */
    double over = (f - 1) / (sqrt(1 + eps) - 1);
    assert_true(fabs(over - (eps / (1 + eps)) / (sqrt(1 + eps) - 1)) < 1e-5 && over > 1.8);
    OK(ebmc_chain_run(t->chain, N));
    double rho = 1 - (step / 2) / (1 + eps), r2k = pow(rho, 2.0 * K);
    double pred = r2k * m0 + noise * noise * (1 - r2k) / (1 - rho * rho), mk = 0;
    for (int i = 0; i < N; i++) mk += (double)x[i] * x[i];
    mk /= N;
    double se = sqrt(2.0 / N) * pred;
    printf("N2: after %d Langevin steps E[x^2] = %.5f, ULA prediction %.5f (+- %.5f), target 1.1\n", K, mk, pred, se);
    assert_true(fabs(mk - pred) < 4.5 * se);
    free(x0);
    close_run(run);
}

/* ---------------------------------------------------------------- evaluation */

/* Grid log Z of E = -log N(x; mu, diag s^2) + b on torch.linspace(-5, 5, 200)^2 with the authors'
 * cell area (10/200)^2: the grid's spacing is h' = 10/199, and the Riemann sum of a Gaussian this
 * much narrower than the box and wider than h' is exact to far below 1e-6, so log Z = -b +
 * 2 log(h / h') = -b + 2 log(199/200). Tolerance 1e-4: the float32 energies' rounding. The
 * log-likelihood of the data is -mean E - log Z with E in double. */
static void test_grid_loglik(void **state) {
    (void)state;
    const char *args[] = {"particles.count=1000", "model.hidden=8"};
    ebmc_run_t *run = open_run(args, 2, false);
    pd_t *t = ebmc_run_state(run);
    const float mu[2] = {0.5f, -0.3f}, ls[2] = {-0.2f, 0.1f}, b = 0.3f;
    gaussian_energy(t, mu, ls, b);
    float pts[20];
    tu_fill_normal(&RNG, pts, 20, 1.0f);
    double logl, logz, me = 0;
    OK(pd_grid_loglik(t, 200, pts, 10, &logl, &logz));
    for (int i = 0; i < 10; i++)
        for (int d = 0; d < 2; d++) {
            double z = (pts[2 * i + d] - mu[d]) / exp(ls[d]);
            me += (0.5 * z * z + ls[d] + 0.5 * log(2 * M_PI) + (d ? 0 : b)) / 10;
        }
    double want = -b + 2 * log(199.0 / 200.0);
    printf("grid: log Z %.6f, exact %.6f; log-likelihood %.6f, exact %.6f\n", logz, want, logl, -me - want);
    assert_true(fabs(logz - want) < 1e-4);
    assert_true(fabs(logl - (-me - want)) < 1e-4);
    close_run(run);
}

/* MMD^2 of x = {0, 1}, y = {0, 2} (1-D, kernel exp(-d^2)): k_xx = e^-1, k_yy = e^-4 (one pair
 * each), k_xy = (1 + e^-4 + 2 e^-1)/4, so MMD^2 = e^-4/2 - 1/2 */
static void test_mmd(void **state) {
    (void)state;
    const float x[2] = {0, 1}, y[2] = {0, 2};
    double m = pd_mmd2(x, 2, y, 2, 1, 1.0), want = 0.5 * exp(-4.0) - 0.5;
    assert_true(fabs(m - want) < 1e-12);
}

/* AIS on a 6-D Gaussian energy with log Z = -b exactly: within 3 standard errors, and the
 * standard error small enough (< 0.05) for that to mean something */
static void test_ais_gaussian(void **state) {
    (void)state;
    const char *args[] = {"particles.count=400", "model.hidden=4", "model.dims=6"};
    ebmc_run_t *run = open_run(args, 3, false);
    pd_t *t = ebmc_run_state(run);
    const float mu[6] = {0.4f, -0.4f, 0.2f, 0.0f, 0.6f, -0.1f}, ls[6] = {0.2f, -0.2f, 0.1f, 0.3f, 0.0f, -0.1f};
    const float b = 1.7f;
    gaussian_energy(t, mu, ls, b);
    pd_ais_opts o = {400, 200, 0.1, 9};
    double logz, se, acc;
    OK(pd_ais(t, &o, &logz, &se, &acc));
    printf("AIS: log Z %.4f +- %.4f (exact %.4f), acceptance %.3f\n", logz, se, -b, acc);
    assert_true(se < 0.05);
    assert_true(fabs(logz + b) < 3 * se);
    close_run(run);
}

/* ---------------------------------------------------------------- resume */

static void run_iters(ebmc_run_t *run, int64_t from, int64_t to) {
    char err[1024];
    for (int64_t it = from; it <= to; it++) {
        int64_t ep;
        if (ebmc_run_next_batch(run, &ep, err, sizeof err)) fail_msg("%s", err);
        OK(ebmc_run_iteration(run, it, ep, false));
    }
}

/* everything the next iteration depends on, as one host array */
static float *snapshot(ebmc_run_t *run, size_t *n) {
    pd_t *t = ebmc_run_state(run);
    size_t np = ebmc_net_param_count(t->E), nx = (size_t)t->N * t->D;
    size_t nr = t->c.method == PD_REPLAY ? (size_t)t->c.capacity * t->D : 0;
    *n = 2 * np + nx + nr + 1;
    float *s = tu_malloc(*n);
    memcpy(s, ebmc_net_params(t->E), np * 4);
    memcpy(s + np, ebmc_net_params(t->P), np * 4);
    memcpy(s + 2 * np, ebmc_chain_state(t->chain), nx * 4);
    if (nr) memcpy(s + 2 * np + nx, t->rb, nr * 4);
    s[*n - 1] = (float)t->rb_count;
    return s;
}

/* 6 iterations straight against 3, a checkpoint, a fresh run loading it and 3 more: E, E_prev,
 * the particles and the replay buffer must be bit-identical */
static void check_resume(const char *method, const char *reinit) {
    char m[64], dir[600];
    snprintf(m, sizeof m, "particles.method=%s", method);
    const char *args[] = {m, reinit, "particles.count=40", "model.hidden=16", "train.batch_size=50",
                          "data.dataset=toy2d", "data.toy=8gaussians", "data.count=500", "particles.init_steps=5",
                          "particles.steps=3", "replay.capacity=100", "particles.reinit_steps=2"};
    ebmc_run_t *a = open_run(args, 12, true);
    run_iters(a, 1, 6);
    size_t na, nc;
    float *sa = snapshot(a, &na);
    close_run(a);
    ebmc_run_t *b = open_run(args, 12, true);
    run_iters(b, 1, 3);
    snprintf(dir, sizeof dir, "%s/%s_ckpt", TMP, method);
    char err[1024];
    if (ebmc_run_save(b, dir, 3, err, sizeof err)) fail_msg("%s", err);
    close_run(b);
    ebmc_run_t *c = open_run(args, 12, true);
    int64_t it;
    if (ebmc_run_load(c, dir, &it, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(it, 3);
    run_iters(c, 4, 6);
    float *sc = snapshot(c, &nc);
    assert_int_equal(na, nc);
    size_t diff = 0;
    for (size_t i = 0; i < na; i++) diff += memcmp(&sa[i], &sc[i], 4) != 0;
    printf("resume %s (%s): %zu of %zu values differ\n", method, reinit, diff, na);
    assert_int_equal(diff, 0);
    close_run(c);
    free(sa), free(sc);
}

static void test_resume(void **state) {
    (void)state;
    check_resume("alpha", "particles.reinit=0");
    check_resume("beta", "particles.reinit=0.1");
    check_resume("replay", "particles.reinit=0.1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pswish_grad),     cmocka_unit_test(test_gbase),
        cmocka_unit_test(test_rows_copy),       cmocka_unit_test(test_data_8gaussians),
        cmocka_unit_test(test_data_checkerboard_rings), cmocka_unit_test(test_n1_translation),
        cmocka_unit_test(test_n2_scale),        cmocka_unit_test(test_grid_loglik),
        cmocka_unit_test(test_mmd),             cmocka_unit_test(test_ais_gaussian),
        cmocka_unit_test(test_resume),          cmocka_unit_test(test_reinit_base),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
