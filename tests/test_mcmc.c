/* Langevin engine on the CPU backend:
 * - Philox4x32-10 against Random123's known answers; the normal stream's moments;
 * - exact stationary statistics of the discretised chain on U = |x - mu|^2/(2 s2): with
 *   r = a/s2 the update is x' = (1 - r - b) x + r mu + c xi, whose stationary mean is
 *   r mu/(r + b) and variance c^2/(1 - (1 - r - b)^2) exactly; sampled mean and variance over
 *   many chains within 5 standard errors, for several (a, b, c);
 * - the latent chain of a linear Gaussian generator x = W z + noise with the Dual-MCMC scaling
 *   (U = |x - Wz|^2/sigma^2 + |z|^2/(2 sp^2)): stationary mean A^-1 k W^T x and covariance
 *   c^2/(1 - (1 - a l)^2) in the eigenbasis of A = k W^T W + I/sp^2 (k = 2/sigma^2), exactly;
 * - same seed -> bit-identical chains; the IGEBM update (noise before the gradient, clip,
 *   clamp) against a hand computation; initialisers; the replay buffer. */
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/philox.h"
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebmc_ctx_t *CTX;

#define OK(call) do { ebmc_status s_ = (call); if (s_ != EBMC_OK) fail_msg("%s: %s", #call, ebmc_ctx_error(CTX)); } while (0)

static int setup(void **state) { CTX = tu_ctx_cpu(); return 0; }
static int teardown(void **state) { ebmc_ctx_free(CTX); return 0; }

static void test_philox_kat(void **state) {
    struct { uint32_t c[4], k[2], want[4]; } kat[3] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}};
    for (int i = 0; i < 3; i++) {
        ebmc_u32x4 c = {{kat[i].c[0], kat[i].c[1], kat[i].c[2], kat[i].c[3]}};
        ebmc_u32x4 r = ebmc_philox4x32_10(c, kat[i].k[0], kat[i].k[1]);
        for (int j = 0; j < 4; j++) assert_int_equal(r.v[j], kat[i].want[j]);
    }
}

/* The normal stream through the rng op: mean 0, variance 1, kurtosis 3, within 5 SE. */
static void test_normal_stream(void **state) {
    int n = 1000;
    size_t e = 1001; /* odd: the last group of 4 is partial */
    float *x = tu_malloc((size_t)n * e);
    ebmc_rng_key key = {12345, 7, NULL, 3};
    OK(ebmc_init_normal(CTX, x, n, e, 1.0f, key));
    double s1 = 0, s2 = 0, s4 = 0, N = (double)n * e;
    for (size_t i = 0; i < (size_t)n * e; i++) {
        s1 += x[i];
        s2 += (double)x[i] * x[i];
        s4 += (double)x[i] * x[i] * x[i] * x[i];
    }
    double m = s1 / N, v = s2 / N, k = s4 / N;
    printf("  normal stream: mean %.5f var %.5f 4th moment %.4f over %.0f draws\n", m, v, k, N);
    assert_true(fabs(m) < 5 / sqrt(N));
    assert_true(fabs(v - 1) < 5 * sqrt(2 / N));
    assert_true(fabs(k - 3) < 5 * sqrt(96 / N));
    /* a different step gives different numbers, the same key the same numbers */
    float *y = tu_malloc((size_t)n * e);
    OK(ebmc_init_normal(CTX, y, n, e, 1.0f, key));
    assert_memory_equal(x, y, (size_t)n * e * 4);
    key.step_offset++;
    OK(ebmc_init_normal(CTX, y, n, e, 1.0f, key));
    assert_true(memcmp(x, y, (size_t)n * e * 4) != 0);
    free(x);
    free(y);
}

/* ---- Gaussian target: exact stationary statistics of the discretised chain ---- */

static void gaussian_case(float a, float b, float c, float var) {
    enum { E = 16 };
    int n = 4000;
    float mu[E];
    tu_rng r;
    tu_rng_seed(&r, 99);
    tu_fill_normal(&r, mu, E, 1.0f);
    ebmc_potential *pot;
    OK(ebmc_potential_gaussian(CTX, E, n, mu, var, &pot));
    ebmc_langevin_params p = {.steps = 300, .a = a, .b = b, .c = c, .noise = c ? EBMC_NOISE_AFTER : EBMC_NOISE_OFF};
    ebmc_chain_t *ch;
    OK(ebmc_chain_create(pot, &p, n, 2024, 1, &ch));
    float *x = ebmc_chain_state(ch);
    for (size_t i = 0; i < (size_t)n * E; i++) x[i] = 3.0f; /* far from the target */
    OK(ebmc_chain_run(ch, n));
    double rr = a / var, lam = 1 - rr - b;
    double v_exact = (double)c * c / (1 - lam * lam);
    double worst_m = 0, s2 = 0;
    for (int e = 0; e < E; e++) {
        double m_exact = rr * mu[e] / (rr + b), s = 0;
        for (int k = 0; k < n; k++) s += x[(size_t)k * E + e];
        double m = s / n;
        double se = sqrt(fmax(v_exact, 1e-30) / n);
        if (c == 0) { /* deterministic: every chain sits on the fixed point */
            assert_true(fabs(m - m_exact) < 1e-5);
            continue;
        }
        worst_m = fmax(worst_m, fabs(m - m_exact) / se);
        for (int k = 0; k < n; k++) {
            double d = x[(size_t)k * E + e] - m_exact;
            s2 += d * d;
        }
    }
    if (c != 0) {
        double v = s2 / ((double)n * E), se_v = v_exact * sqrt(2.0 / ((double)n * E));
        printf("  a=%g b=%g c=%g var=%g: mean worst %.2f SE; variance %.6f vs exact %.6f (%.2f SE)"
               " [ULA target var %g]\n", a, b, c, var, worst_m, v, v_exact, fabs(v - v_exact) / se_v, var);
        assert_true(worst_m < 5);
        assert_true(fabs(v - v_exact) < 5 * se_v);
    }
    ebmc_chain_free(ch);
    ebmc_potential_free(pot);
}

static void test_gaussian_stationary(void **state) {
    gaussian_case(0.1f, 0.0f, sqrtf(0.2f), 0.5f);  /* ULA: c^2 = 2a, variance 2 s2/(2 - r) */
    gaussian_case(0.05f, 0.05f, 0.3f, 0.5f);       /* with the reference shrink b */
    gaussian_case(0.3f, 0.2f, 0.05f, 0.5f);
    gaussian_case(0.02f, 0.0078f, 0.0f, 0.1f);     /* CoopVAEBM-like: no noise, fixed point */
}

/* ---- linear Gaussian generator: the latent chain's exact stationary law ---- */

/* eigen-decomposition of a symmetric d x d matrix (Jacobi), V columns are eigenvectors */
static void jacobi(int d, double *A, double *V, double *lam) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) V[i * d + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) off += A[p * d + q] * A[p * d + q];
        if (off < 1e-30) break;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                if (fabs(A[p * d + q]) < 1e-300) continue;
                double th = 0.5 * atan2(2 * A[p * d + q], A[q * d + q] - A[p * d + p]);
                double cs = cos(th), sn = sin(th);
                for (int k = 0; k < d; k++) { /* A = J^T A J */
                    double akp = A[k * d + p], akq = A[k * d + q];
                    A[k * d + p] = cs * akp - sn * akq;
                    A[k * d + q] = sn * akp + cs * akq;
                }
                for (int k = 0; k < d; k++) {
                    double apk = A[p * d + k], aqk = A[q * d + k];
                    A[p * d + k] = cs * apk - sn * aqk;
                    A[q * d + k] = sn * apk + cs * aqk;
                }
                for (int k = 0; k < d; k++) {
                    double vkp = V[k * d + p], vkq = V[k * d + q];
                    V[k * d + p] = cs * vkp - sn * vkq;
                    V[k * d + q] = sn * vkp + cs * vkq;
                }
            }
    }
    for (int i = 0; i < d; i++) lam[i] = A[i * d + i];
}

static void test_latent_linear_gaussian(void **state) {
    enum { D = 8, d = 4 };
    int n = 4000;
    const float sigma = 0.3f, sp = 1.0f, s = 0.1f, k = 2.0f / (sigma * sigma);
    ebmc_net_t *G = ebmc_net_create("G", d, 1, 1);
    int v = ebmc_nn_linear(G, 0, "lin", D, false, false, (ebmc_init){EBMC_INIT_NORMAL, 0.5f}, (ebmc_init){0});
    ebmc_net_output(G, v);
    assert_int_equal(ebmc_net_finalize(G, CTX, false, 5), EBMC_OK);
    const float *W = ebmc_net_tensor_find(G, "lin.weight")->data; /* (D, d), host memory */
    tu_rng r;
    tu_rng_seed(&r, 4);
    float xt[D];
    tu_fill_normal(&r, xt, D, 1.0f);
    ebmc_potential *pot;
    OK(ebmc_potential_latent(G, n, k, &pot));
    float *target = ebmc_potential_latent_target(pot);
    for (int i = 0; i < n; i++) memcpy(target + (size_t)i * D, xt, sizeof xt);
    ebmc_langevin_params p = ebmc_langevin_dualmcmc_z(s, sp, 400);
    ebmc_chain_t *ch;
    OK(ebmc_chain_create(pot, &p, n, 77, 2, &ch));
    float *z = ebmc_chain_state(ch);
    memset(z, 0, (size_t)n * d * sizeof(float));
    OK(ebmc_chain_run(ch, n));
    /* exact: A = k W^T W + I/sp^2, mean = A^-1 k W^T x, cov = V diag(c^2/(1-(1-a l)^2)) V^T */
    double A[d * d], A0[d * d], V[d * d], lam[d], bvec[d], m[d], cov[d * d];
    for (int i = 0; i < d; i++) {
        bvec[i] = 0;
        for (int o = 0; o < D; o++) bvec[i] += k * W[o * d + i] * xt[o];
        for (int j = 0; j < d; j++) {
            double t = 0;
            for (int o = 0; o < D; o++) t += (double)W[o * d + i] * W[o * d + j];
            A[i * d + j] = k * t + (i == j ? 1.0 / (sp * sp) : 0.0);
        }
    }
    memcpy(A0, A, sizeof A);
    jacobi(d, A, V, lam);
    for (int i = 0; i < d; i++) {
        m[i] = 0;
        for (int j = 0; j < d; j++) { /* A^-1 b = V diag(1/l) V^T b */
            double t = 0;
            for (int q = 0; q < d; q++) t += V[q * d + j] * bvec[q];
            m[i] += V[i * d + j] * t / lam[j];
        }
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double t = 0;
            for (int q = 0; q < d; q++) {
                double l = 1 - p.a * lam[q];
                t += V[i * d + q] * V[j * d + q] * (double)p.c * p.c / (1 - l * l);
            }
            cov[i * d + j] = t;
        }
    /* sample statistics over the chains */
    double mh[d] = {0}, ch2[d * d] = {0};
    for (int c = 0; c < n; c++)
        for (int i = 0; i < d; i++) mh[i] += z[(size_t)c * d + i] / n;
    for (int c = 0; c < n; c++)
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                ch2[i * d + j] += (z[(size_t)c * d + i] - m[i]) * (z[(size_t)c * d + j] - m[j]) / n;
    double wm = 0, wc = 0;
    for (int i = 0; i < d; i++) {
        wm = fmax(wm, fabs(mh[i] - m[i]) / sqrt(cov[i * d + i] / n));
        for (int j = 0; j < d; j++) {
            double se = sqrt((cov[i * d + i] * cov[j * d + j] + cov[i * d + j] * cov[i * d + j]) / n);
            wc = fmax(wc, fabs(ch2[i * d + j] - cov[i * d + j]) / se);
        }
    }
    printf("  linear-Gaussian posterior (d=%d, D=%d, eigenvalues of A %.1f..%.1f): mean worst %.2f SE, "
           "covariance worst %.2f SE; mean[0] %.5f vs %.5f, cov[0][0] %.3g vs %.3g\n", d, D, lam[0],
           lam[d - 1], wm, wc, mh[0], m[0], ch2[0], cov[0]);
    assert_true(wm < 5);
    assert_true(wc < 5);
    ebmc_chain_free(ch);
    ebmc_potential_free(pot);
    ebmc_net_free(G);
}

/* ---- reproducibility, a real EBM, and the IGEBM update ---- */

static void test_reproducible_energy_chain(void **state) {
    ebmc_model_cfg c;
    ebmc_model_defaults("dualmcmc_cifar10", &c);
    c.ndf = 8;
    char err[256];
    ebmc_net_t *E = ebmc_model_build(&c, EBMC_NET_E, err, sizeof err);
    assert_int_equal(ebmc_net_finalize(E, CTX, false, 3), EBMC_OK);
    int n = 3;
    size_t el = 3 * 32 * 32;
    ebmc_potential *pot;
    OK(ebmc_potential_energy(E, n, 1.0f, &pot));
    ebmc_langevin_params p = ebmc_langevin_dualmcmc_x(0.5f, 1e-3f, 5);
    float *runs[2];
    /* the spectral-norm u, v advance with every forward (as the reference's do): snapshot them
     * so the second run starts from the same state */
    int nt = ebmc_net_tensor_count(E);
    float *snap[64] = {0};
    for (int i = 0; i < nt && i < 64; i++) {
        const ebmc_net_tensor *t = ebmc_net_tensor_at(E, i);
        if (t->trainable || t->is_counter) continue;
        snap[i] = tu_malloc(t->count);
        memcpy(snap[i], t->data, t->count * 4);
    }
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < nt && i < 64; i++)
            if (snap[i]) memcpy(ebmc_net_tensor_at(E, i)->data, snap[i], ebmc_net_tensor_at(E, i)->count * 4);
        ebmc_chain_t *ch;
        OK(ebmc_chain_create(pot, &p, n, 1234, 1, &ch));
        ebmc_rng_key k0 = {1, 9, NULL, 0};
        OK(ebmc_init_uniform(CTX, ebmc_chain_state(ch), n, el, -1, 1, k0));
        OK(ebmc_chain_run(ch, n));
        OK(ebmc_chain_run(ch, n)); /* a second run continues the noise stream */
        assert_int_equal(ebmc_chain_step(ch), 10);
        runs[t] = tu_malloc(n * el);
        memcpy(runs[t], ebmc_chain_state(ch), n * el * 4);
        for (size_t i = 0; i < n * el; i++) assert_true(isfinite(runs[t][i]));
        ebmc_chain_free(ch);
    }
    assert_memory_equal(runs[0], runs[1], n * el * 4); /* same seed: bit-identical */
    /* the SN power iteration advanced during the chain, as in the reference */
    const ebmc_net_tensor *u = ebmc_net_tensor_find(E, "conv_1.conv1.weight_u");
    for (int i = 0; i < nt && i < 64; i++)
        if (snap[i] && ebmc_net_tensor_at(E, i) == u) assert_true(memcmp(snap[i], u->data, u->count * 4) != 0);
    for (int i = 0; i < 64; i++) free(snap[i]);
    ebmc_potential_free(pot);
    ebmc_net_free(E);
    free(runs[0]);
    free(runs[1]);
}

/* A tape shared with an energy potential's tape: chain runs and full passes on the shared tape,
 * interleaved, give bit-identical chains, outputs and gradients to the same sequence on a twin
 * net (same seed) whose pass has a tape of its own. */
static void test_tape_shared_with_potential(void **state) {
    ebmc_model_cfg c;
    ebmc_model_defaults("dualmcmc_cifar10", &c);
    c.ndf = 8;
    char err[256];
    ebmc_net_t *E[2];
    ebmc_potential *pot[2];
    ebmc_tape_t *tp[2];
    ebmc_chain_t *ch[2];
    int n = 3;
    size_t el = 3 * 32 * 32;
    ebmc_langevin_params p = ebmc_langevin_dualmcmc_x(0.5f, 1e-3f, 4);
    for (int k = 0; k < 2; k++) {
        E[k] = ebmc_model_build(&c, EBMC_NET_E, err, sizeof err);
        assert_int_equal(ebmc_net_finalize(E[k], CTX, true, 3), EBMC_OK);
        OK(ebmc_potential_energy(E[k], n, 1.0f, &pot[k]));
        assert_non_null(ebmc_potential_tape(pot[k]));
        assert_false(ebmc_tape_shares(ebmc_potential_tape(pot[k])));
        OK(ebmc_chain_create(pot[k], &p, n, 1234, 1, &ch[k]));
        ebmc_rng_key k0 = {1, 9, NULL, 0};
        OK(ebmc_init_uniform(CTX, ebmc_chain_state(ch[k]), n, el, -1, 1, k0));
    }
    OK(ebmc_tape_create_shared(E[0], n, true, ebmc_potential_tape(pot[0]), &tp[0]));
    OK(ebmc_tape_create(E[1], n, true, &tp[1]));
    assert_true(ebmc_tape_shares(tp[0]));
    assert_int_equal(ebmc_tape_bytes(tp[0]), ebmc_tape_bytes(ebmc_potential_tape(pot[0])));
    float *x = tu_malloc(n * el), *init = tu_malloc(n * el), *dx[2], *out[2], *g[2];
    memcpy(init, ebmc_chain_state(ch[0]), n * el * 4);
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_uniform(&r, x, n * el, -1, 1);
    float dyv[3] = {1.0f, -0.5f, 2.0f};
    const float *dy[1] = {dyv};
    size_t np = ebmc_net_param_count(E[0]);
    for (int k = 0; k < 2; k++) {
        dx[k] = tu_malloc(n * el);
        out[k] = tu_malloc(n);
        g[k] = tu_malloc(np);
    }
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < 2; k++) OK(ebmc_chain_run(ch[k], n));
        assert_memory_equal(ebmc_chain_state(ch[0]), ebmc_chain_state(ch[1]), n * el * 4);
        assert_true(memcmp(ebmc_chain_state(ch[0]), init, n * el * 4) != 0);
        for (size_t i = 0; i < n * el; i++) assert_true(isfinite(ebmc_chain_state(ch[0])[i]));
        for (int k = 0; k < 2; k++) {
            OK(ebmc_net_zero_grad(E[k]));
            OK(ebmc_net_forward(E[k], tp[k], n, x));
            OK(ebmc_net_backward(E[k], tp[k], dy, EBMC_GRAD_FULL, dx[k], 0.0f));
            memcpy(out[k], ebmc_tape_output(tp[k], 0), n * 4);
            memcpy(g[k], ebmc_net_grads(E[k]), np * 4);
        }
        assert_memory_equal(out[0], out[1], n * 4);
        assert_memory_equal(dx[0], dx[1], n * el * 4);
        assert_memory_equal(g[0], g[1], np * 4);
        double m = 0;
        for (size_t i = 0; i < n * el; i++) m = fmax(m, fabs(dx[0][i]));
        assert_true(m > 0 && isfinite(m));
    }
    assert_int_equal(ebmc_chain_step(ch[0]), 8);
    /* the potential (and its tape) goes first; the shared tape keeps the arena alive */
    for (int k = 0; k < 2; k++) {
        ebmc_chain_free(ch[k]);
        ebmc_potential_free(pot[k]);
    }
    for (int k = 0; k < 2; k++) OK(ebmc_net_forward(E[k], tp[k], n, x)); /* SN advances: twin */
    assert_memory_equal(ebmc_tape_output(tp[0], 0), ebmc_tape_output(tp[1], 0), n * 4);
    /* potentials without a net have no tape */
    float mu[4] = {0};
    ebmc_potential *gp;
    OK(ebmc_potential_gaussian(CTX, 4, 2, mu, 1.0f, &gp));
    assert_null(ebmc_potential_tape(gp));
    ebmc_potential_free(gp);
    for (int k = 0; k < 2; k++) {
        ebmc_tape_free(tp[k]);
        ebmc_net_free(E[k]);
        free(dx[k]); free(out[k]); free(g[k]);
    }
    free(x); free(init);
}

/* IGEBM: x0 + c xi0 -> g -> clamp(x - a clip(g), 0, 1) + c xi1 -> g -> clamp(...) (no noise
 * after the last step), computed by hand with the same Philox stream. */
static void test_igebm_update(void **state) {
    enum { E = 6, N = 2 };
    float mu[E] = {0.2f, 0.9f, -0.5f, 1.5f, 0.5f, 0.0f}, var = 0.01f;
    ebmc_potential *pot;
    OK(ebmc_potential_gaussian(CTX, E, N, mu, var, &pot));
    ebmc_langevin_params p = ebmc_langevin_igebm(10.0f, 0.01f, 0.005f, 2);
    ebmc_chain_t *ch;
    OK(ebmc_chain_create(pot, &p, N, 55, 4, &ch));
    OK(ebmc_chain_set_step(ch, 100));
    float x0[N * E] = {0.5f, 0.5f, 0.5f, 0.5f, 0.999f, 0.001f, 0.1f, 0.2f, 0.3f, 0.4f, 0.6f, 0.7f};
    memcpy(ebmc_chain_state(ch), x0, sizeof x0);
    OK(ebmc_chain_run(ch, N));
    for (int c = 0; c < N; c++)
        for (int e = 0; e < E; e++) {
            float xi0[4], xi1[4];
            ebmc_philox_normal4(55, (uint32_t)(e / 4), (uint32_t)c, 100, 4, xi0);
            ebmc_philox_normal4(55, (uint32_t)(e / 4), (uint32_t)c, 101, 4, xi1);
            float x = x0[c * E + e] + 0.005f * xi0[e % 4];
            for (int k = 0; k < 2; k++) {
                float g = (x - mu[e]) / var;
                g = g > 0.01f ? 0.01f : (g < -0.01f ? -0.01f : g);
                x = x - 10.0f * g;
                x = x < 0 ? 0 : (x > 1 ? 1 : x);
                if (k == 0) x += 0.005f * xi1[e % 4];
            }
            assert_float_equal(ebmc_chain_state(ch)[c * E + e], x, 1e-6);
        }
    assert_int_equal(ebmc_chain_step(ch), 102);
    ebmc_chain_free(ch);
    ebmc_potential_free(pot);
}

/* ---- initialisers and the replay buffer ---- */

static void test_reparam(void **state) {
    int n = 2000;
    size_t e = 50, N = (size_t)n * e;
    float *mu = tu_malloc(N), *lv = tu_malloc(N), *z = tu_malloc(N);
    for (size_t i = 0; i < N; i++) {
        mu[i] = 1.0f;
        lv[i] = logf(4.0f); /* std 2 */
    }
    ebmc_rng_key key = {8, 3, NULL, 0};
    OK(ebmc_init_reparam(CTX, z, mu, lv, n, e, 0.5f, key));
    double s = 0, s2 = 0;
    for (size_t i = 0; i < N; i++) {
        s += z[i];
        s2 += ((double)z[i] - 1) * (z[i] - 1);
    }
    double m = s / N, v = s2 / N;
    printf("  reparameterised: mean %.4f (1), variance %.4f (4)\n", m, v);
    assert_true(fabs(m - 1) < 5 * 2 / sqrt((double)N));
    assert_true(fabs(v - 4) < 5 * 4 * sqrt(2.0 / N));
    free(mu); free(lv); free(z);
}

static void test_replay_buffer(void **state) {
    enum { E = 5, CAP = 10 };
    ebmc_replay_t *rb;
    OK(ebmc_replay_create(CTX, CAP, E, false, -1, 1, 0.95f, 4, &rb));
    float x[12 * E];
    for (int i = 0; i < 12 * E; i++) x[i] = (float)i / (12 * E);
    OK(ebmc_replay_push(rb, x, 4));
    assert_int_equal(ebmc_replay_count(rb), 4);
    assert_int_equal(ebmc_replay_head(rb), 4);
    OK(ebmc_replay_push(rb, x + 4 * E, 8)); /* wraps: slots 4..9, then 0, 1 */
    assert_int_equal(ebmc_replay_count(rb), CAP);
    assert_int_equal(ebmc_replay_head(rb), 2);
    const float *st = ebmc_replay_storage(rb);
    assert_memory_equal(st + 0 * E, x + 10 * E, E * 4); /* FIFO overwrite of the oldest */
    assert_memory_equal(st + 1 * E, x + 11 * E, E * 4);
    assert_memory_equal(st + 2 * E, x + 2 * E, E * 4);
    assert_memory_equal(st + 9 * E, x + 9 * E, E * 4);
    /* sampling: each chain reuses an entry with probability 0.95 */
    int n = 4000, reused = 0;
    float *y = tu_malloc((size_t)n * E);
    ebmc_rng_key key = {3, 6, NULL, 0};
    OK(ebmc_replay_sample(rb, y, n, key));
    for (int c = 0; c < n; c++) {
        bool found = false;
        for (int j = 0; j < CAP && !found; j++) found = !memcmp(y + (size_t)c * E, st + (size_t)j * E, E * 4);
        reused += found;
        for (int e = 0; e < E; e++) assert_true(y[(size_t)c * E + e] >= -1 && y[(size_t)c * E + e] <= 1);
    }
    double frac = (double)reused / n, se = sqrt(0.95 * 0.05 / n);
    printf("  replay: reused %.4f of chains (p = 0.95, %.2f SE)\n", frac, fabs(frac - 0.95) / se);
    assert_true(fabs(frac - 0.95) < 5 * se);
    ebmc_replay_free(rb);
    /* below min_fill: fresh noise only */
    OK(ebmc_replay_create(CTX, CAP, E, false, -1, 1, 1.0f, 4, &rb));
    OK(ebmc_replay_push(rb, x, 2));
    OK(ebmc_replay_sample(rb, y, 50, key));
    for (int c = 0; c < 50; c++)
        for (int j = 0; j < 2; j++) assert_true(memcmp(y + (size_t)c * E, x + (size_t)j * E, E * 4) != 0);
    ebmc_replay_free(rb);
    /* uint8 storage: read back within one quantisation step */
    OK(ebmc_replay_create(CTX, CAP, E, true, 0, 1, 1.0f, 1, &rb));
    OK(ebmc_replay_push(rb, x, 1));
    OK(ebmc_replay_sample(rb, y, 20, key));
    for (int c = 0; c < 20; c++)
        for (int e = 0; e < E; e++) assert_true(fabsf(y[(size_t)c * E + e] - x[e]) <= 1.0f / 256);
    ebmc_replay_free(rb);
    free(y);
}

static void test_bad_calls(void **state) {
    ebmc_potential *pot;
    float mu[2] = {0, 0};
    assert_int_equal(ebmc_potential_gaussian(CTX, 2, 4, mu, -1.0f, &pot), EBMC_E_INVALID);
    OK(ebmc_potential_gaussian(CTX, 2, 4, mu, 1.0f, &pot));
    ebmc_langevin_params p = ebmc_langevin_shortrun(0.01f, 3);
    ebmc_chain_t *ch;
    assert_int_equal(ebmc_chain_create(pot, &p, 8, 1, 1, &ch), EBMC_E_INVALID); /* > planned */
    OK(ebmc_chain_create(pot, &p, 4, 1, 1, &ch));
    assert_int_equal(ebmc_chain_run(ch, 5), EBMC_E_INVALID);
    printf("  -> %s\n", ebmc_chain_error(ch));
    ebmc_langevin_desc d = {.n_chains = 1, .chain_elems = 2, .a = NAN};
    float x[2] = {0}, g[2] = {0};
    assert_int_equal(ebmc_langevin(CTX, &d, x, g), EBMC_E_INVALID);
    d.a = 1;
    d.clamp = true;
    d.lo = 1;
    d.hi = 0;
    assert_int_equal(ebmc_langevin(CTX, &d, x, g), EBMC_E_INVALID);
    printf("  -> %s\n", ebmc_ctx_error(CTX));
    ebmc_chain_free(ch);
    ebmc_potential_free(pot);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_normal_stream),
        cmocka_unit_test(test_gaussian_stationary),
        cmocka_unit_test(test_latent_linear_gaussian),
        cmocka_unit_test(test_reproducible_energy_chain),
        cmocka_unit_test(test_tape_shared_with_potential),
        cmocka_unit_test(test_igebm_update),
        cmocka_unit_test(test_reparam),
        cmocka_unit_test(test_replay_buffer),
        cmocka_unit_test(test_bad_calls),
    };
    return cmocka_run_group_tests_name("mcmc_cpu", tests, setup, teardown);
}
