/* The evaluation of particle dynamics (specs/particles.md 2(b), necludov/particle-EBMs
 * utils/utils.py and scripts/MNIST_scripts/eval_MNIST.py): the 2-D grid log-likelihood, the
 * unbiased MMD^2 between particles and data, and AIS log Z for image models. The network runs on
 * the run's context through the recipe's tapes; the bookkeeping (log-sum-exp, MALA acceptance,
 * weights) is done on the host in double. Evaluation, not training: it allocates what it needs. */
#include "recipes/particles.h"
#include "backend/ctx_internal.h"
#include "ebmc/philox.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* energies of n host points (D each) into e (host), chunks of N on tX */
static ebmc_status energies(pd_t *t, const float *x, int n, double *e) {
    float *dev = t->g_old, *out = t->h_stage; /* scratch: (N, D) each */
    for (int i = 0; i < n; i += t->N) {
        int m = n - i < t->N ? n - i : t->N;
        EBMC_TRY(ebmc_copy(t->ctx, dev, x + (size_t)i * t->D, (size_t)m * t->D * sizeof(float), EBMC_COPY_H2D));
        EBMC_TRY(ebmc_net_forward(t->E, t->tX, m, dev));
        EBMC_TRY(ebmc_copy(t->ctx, out, ebmc_tape_output(t->tX, 0), (size_t)m * sizeof(float), EBMC_COPY_D2H));
        for (int k = 0; k < m; k++) e[i + k] = out[k];
    }
    return EBMC_OK;
}

ebmc_status pd_mean_energy(pd_t *t, const float *x, int n, double *mean) {
    double *e = ebmc_xmalloc((size_t)n * sizeof(double), "energies");
    ebmc_status s = energies(t, x, n, e);
    double acc = 0;
    for (int i = 0; i < n; i++) acc += e[i];
    *mean = acc / n;
    free(e);
    return s;
}

static double lse(const double *a, int n) {
    double m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) m = a[i] > m ? a[i] : m;
    for (int i = 0; i < n; i++) s += exp(a[i] - m);
    return m + log(s);
}

ebmc_status pd_grid_loglik(pd_t *t, int g, const float *data, int n, double *logl, double *logz) {
    size_t gg = (size_t)g * g;
    float *pts = ebmc_xmalloc(gg * 2 * sizeof(float), "grid");
    double *e = ebmc_xmalloc(gg * sizeof(double), "grid energies");
    for (int i = 0; i < g; i++) /* torch.meshgrid(x, y) ('ij'): point (x_i, y_j) */
        for (int j = 0; j < g; j++) {
            pts[2 * ((size_t)i * g + j)] = (float)(-5.0 + 10.0 * i / (g - 1));
            pts[2 * ((size_t)i * g + j) + 1] = (float)(-5.0 + 10.0 * j / (g - 1));
        }
    ebmc_status s = energies(t, pts, (int)gg, e);
    if (!s) {
        for (size_t k = 0; k < gg; k++) e[k] = -e[k];
        *logz = lse(e, (int)gg) + 2.0 * log(10.0 / g);
        double me = 0;
        s = pd_mean_energy(t, data, n, &me);
        *logl = -me - *logz;
    }
    free(pts);
    free(e);
    return s;
}

double pd_mmd2(const float *x, int n, const float *y, int m, int d, double alpha) {
    double kxx = 0, kyy = 0, kxy = 0;
#define K(a, b)                                                                                         \
    ({                                                                                                  \
        double q_ = 0;                                                                                  \
        for (int c_ = 0; c_ < d; c_++) q_ += ((double)(a)[c_] - (b)[c_]) * ((double)(a)[c_] - (b)[c_]); \
        exp(-alpha * q_);                                                                               \
    })
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) kxx += 2 * K(x + (size_t)i * d, x + (size_t)j * d);
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++) kyy += 2 * K(y + (size_t)i * d, y + (size_t)j * d);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) kxy += K(x + (size_t)i * d, y + (size_t)j * d);
#undef K
    return kxx / ((double)n * (n - 1)) + kyy / ((double)m * (m - 1)) - 2 * kxy / ((double)n * m);
}

/* ---- AIS ---- */

typedef struct {
    int n, D;
    float *x, *g;   /* host (n, D): positions, grad E there */
    double *e, *n0; /* host (n): E, log N(x; 0, I) */
} ais_set;

static ebmc_status ais_eval(pd_t *t, ais_set *s) {
    size_t nd = (size_t)s->n * s->D;
    float *xd = t->g_new, *gd = t->g_old;
    EBMC_TRY(ebmc_copy(t->ctx, xd, s->x, nd * sizeof(float), EBMC_COPY_H2D));
    EBMC_TRY(t->pE->grad(t->pE, s->n, xd, gd));
    EBMC_TRY(ebmc_copy(t->ctx, s->g, gd, nd * sizeof(float), EBMC_COPY_D2H));
    float *eo = t->h_stage;
    EBMC_TRY(ebmc_copy(t->ctx, eo, ebmc_tape_output(ebmc_potential_tape(t->pE), 0), (size_t)s->n * sizeof(float),
                       EBMC_COPY_D2H));
    for (int i = 0; i < s->n; i++) {
        double q = 0;
        for (int d = 0; d < s->D; d++) q += (double)s->x[(size_t)i * s->D + d] * s->x[(size_t)i * s->D + d];
        s->e[i] = eo[i];
        s->n0[i] = -0.5 * q - 0.5 * s->D * log(2.0 * M_PI);
    }
    return EBMC_OK;
}

static void ais_alloc(ais_set *s, int n, int D) {
    s->n = n, s->D = D;
    s->x = ebmc_xmalloc((size_t)n * D * sizeof(float), "ais");
    s->g = ebmc_xmalloc((size_t)n * D * sizeof(float), "ais");
    s->e = ebmc_xmalloc((size_t)n * sizeof(double), "ais");
    s->n0 = ebmc_xmalloc((size_t)n * sizeof(double), "ais");
}

static void ais_free(ais_set *s) {
    free(s->x), free(s->g), free(s->e), free(s->n0);
}

/* grad log p_b at chain i of s: -b grad E - (1 - b) x */
static double gl(const ais_set *s, int i, int d, double b) {
    size_t k = (size_t)i * s->D + d;
    return -b * s->g[k] - (1.0 - b) * s->x[k];
}

/* one MALA step at temperature b: proposals into p, accepted ones copied into c */
static ebmc_status mala(pd_t *t, ais_set *c, ais_set *p, double b, double dt, uint64_t seed, int step, long *acc) {
    int D = c->D;
    double sg = sqrt(dt);
    for (int i = 0; i < c->n; i++)
        for (int d = 0; d < D; d += 4) {
            float z[4];
            ebmc_philox_normal4(seed, (uint32_t)(d / 4), (uint32_t)i, (uint32_t)step, 31, z);
            for (int k = 0; k < 4 && d + k < D; k++)
                p->x[(size_t)i * D + d + k] = (float)(c->x[(size_t)i * D + d + k] + dt / 2 * gl(c, i, d + k, b) + sg * z[k]);
        }
    EBMC_TRY(ais_eval(t, p));
    for (int i = 0; i < c->n; i++) {
        double lp = b * (c->e[i] - p->e[i]) + (1 - b) * (p->n0[i] - c->n0[i]), fw = 0, bw = 0;
        for (int d = 0; d < D; d++) {
            size_t k = (size_t)i * D + d;
            double r = (double)c->x[k] - p->x[k] - dt / 2 * gl(p, i, d, b);
            double f = (double)p->x[k] - c->x[k] - dt / 2 * gl(c, i, d, b);
            bw += r * r, fw += f * f;
        }
        lp += (fw - bw) / (2 * dt);
        float u[4];
        ebmc_philox_uniform4(seed, 0xFFFFFFFFu, (uint32_t)i, (uint32_t)step, 32, u);
        if (lp > log(u[0])) {
            memcpy(c->x + (size_t)i * D, p->x + (size_t)i * D, (size_t)D * sizeof(float));
            memcpy(c->g + (size_t)i * D, p->g + (size_t)i * D, (size_t)D * sizeof(float));
            c->e[i] = p->e[i], c->n0[i] = p->n0[i];
            (*acc)++;
        }
    }
    return EBMC_OK;
}

static void ais_result(const double *lw, int n, double *logz, double *se) {
    double m = -INFINITY, s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) m = lw[i] > m ? lw[i] : m;
    for (int i = 0; i < n; i++) {
        double w = exp(lw[i] - m);
        s1 += w, s2 += w * w;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    *logz = m + log(mean);
    *se = sqrt(var > 0 ? var : 0) / (sqrt((double)n) * mean);
}

ebmc_status pd_ais(pd_t *t, const pd_ais_opts *o, double *logz, double *se, double *acc) {
    if (o->chains < 1 || o->chains > t->N || o->steps < 2 || !(o->dt > 0))
        return ebmc_ctx_seterr(t->ctx, EBMC_E_INVALID, "ais: need 1 <= chains <= %d (particles.count), steps >= 2, dt > 0",
                               t->N);
    ais_set c, p;
    ais_alloc(&c, o->chains, t->D);
    ais_alloc(&p, o->chains, t->D);
    double *lw = ebmc_xcalloc((size_t)o->chains, sizeof(double), "ais weights");
    for (int i = 0; i < c.n; i++)
        for (int d = 0; d < t->D; d += 4) {
            float z[4];
            ebmc_philox_normal4(o->seed, (uint32_t)(d / 4), (uint32_t)i, 0, 30, z);
            for (int k = 0; k < 4 && d + k < t->D; k++) c.x[(size_t)i * t->D + d + k] = z[k];
        }
    ebmc_status s = ais_eval(t, &c);
    long accepted = 0;
    for (int st = 1; !s && st < o->steps; st++) {
        double b = (double)st / (o->steps - 1), bp = (double)(st - 1) / (o->steps - 1);
        for (int i = 0; i < c.n; i++) lw[i] += (b - bp) * (-c.e[i] - c.n0[i]);
        s = mala(t, &c, &p, b, o->dt, o->seed, st, &accepted);
    }
    if (!s) {
        ais_result(lw, c.n, logz, se);
        *acc = (double)accepted / ((double)c.n * (o->steps - 1));
    }
    ais_free(&c);
    ais_free(&p);
    free(lw);
    return s;
}
