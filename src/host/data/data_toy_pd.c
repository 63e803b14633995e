/* The 2-D data sets of particle dynamics' toy experiments, generated as necludov/particle-EBMs'
 * core/toy_data.py (from wgrathwohl/LSD) generates them, point by point from Philox keyed by
 * (seed, kind, item) instead of NumPy's generator (specs/particles.md 2(b)):
 *   8gaussians    centres 4*(unit vectors at multiples of 45 degrees), std 0.5, all / 1.414
 *   swissroll     sklearn make_swiss_roll(noise=1.0): t = 1.5 pi (1 + 2u), (t cos t, t sin t)
 *                 + N(0, I), divided by 5
 *   pinwheel      5 arms, radial std 0.3, tangential std 0.1, rate 0.25, times 2
 *   checkerboard  x1 ~ U(-2, 2), x2 ~ U(0,1) - 2 randint(0,2) + (floor(x1) mod 2), times 2
 *   pd_rings      4 circles of radii 3, 2.25, 1.5, 0.75 (equal mass), noise N(0, 0.08^2 I)
 *                 (toy_data's "rings"; named pd_rings: ebmc's own "rings" is another set)
 *   2spirals      two arms of n = sqrt(u) 3 pi, (-n cos n, n sin n) + U(0, 0.5)^2, the second
 *                 arm negated, / 3, + N(0, 0.1^2 I)
 * Where toy_data fixes class counts per batch (pinwheel, rings) the class is drawn uniformly per
 * point: the same distribution. The component (arm, ring, mode) is recorded. */
#include "data/data_internal.h"
#include "ebmc/philox.h"
#include <math.h>
#include <string.h>

#define STREAM_PD 0x50445459u /* "PDTY" */
#define PI 3.14159265358979323846

static const char *const PD_KINDS[] = {"8gaussians", "swissroll", "pinwheel", "checkerboard", "pd_rings", "2spirals"};
enum { K_8G, K_SWISS, K_PIN, K_CHECK, K_RINGS, K_2SPIRALS, K_COUNT };

int ebmc_toy_pd_kind(const char *kind) {
    for (int k = 0; kind && k < K_COUNT; k++)
        if (!strcmp(kind, PD_KINDS[k])) return k;
    return -1;
}

static int pick(double u, int n) {
    int k = (int)(u * n);
    return k < n ? k : n - 1;
}

static void gauss8(const float *u, const float *z, double *p, int *comp) {
    static const double r = 0.70710678118654752440;
    static const double c[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {r, r}, {r, -r}, {-r, r}, {-r, -r}};
    int k = pick(u[0], 8);
    p[0] = (4.0 * c[k][0] + 0.5 * z[0]) / 1.414;
    p[1] = (4.0 * c[k][1] + 0.5 * z[1]) / 1.414;
    *comp = k;
}

static void pinwheel(const float *u, const float *z, double *p, int *comp) {
    int k = pick(u[0], 5);
    double f0 = z[0] * 0.3 + 1.0, f1 = z[1] * 0.1;
    double a = 2.0 * PI * k / 5.0 + 0.25 * exp(f0);
    p[0] = 2.0 * (f0 * cos(a) + f1 * sin(a));
    p[1] = 2.0 * (-f0 * sin(a) + f1 * cos(a));
    *comp = k;
}

static void one_point(int kid, const float *u, const float *z, double *p, int *comp) {
    *comp = 0;
    switch (kid) {
    case K_8G: gauss8(u, z, p, comp); break;
    case K_SWISS: {
        double t = 1.5 * PI * (1.0 + 2.0 * u[0]);
        p[0] = (t * cos(t) + z[0]) / 5.0;
        p[1] = (t * sin(t) + z[2]) / 5.0; /* z[1]: the dropped height's noise */
        break;
    }
    case K_PIN: pinwheel(u, z, p, comp); break;
    case K_CHECK: {
        double x1 = 4.0 * u[0] - 2.0, x2 = u[1] - 2.0 * pick(u[2], 2);
        x2 += fmod(floor(x1), 2.0) < 0 ? fmod(floor(x1), 2.0) + 2.0 : fmod(floor(x1), 2.0);
        p[0] = 2.0 * x1;
        p[1] = 2.0 * x2;
        break;
    }
    case K_RINGS: {
        *comp = pick(u[0], 4);
        double rad = 3.0 * (1.0 - 0.25 * *comp), th = 2.0 * PI * u[1];
        p[0] = rad * cos(th) + 0.08 * z[0];
        p[1] = rad * sin(th) + 0.08 * z[1];
        break;
    }
    default: { /* 2spirals */
        *comp = u[0] < 0.5f ? 0 : 1;
        double n = sqrt(u[1]) * 540.0 * (2.0 * PI) / 360.0, sg = *comp ? -1.0 : 1.0;
        p[0] = sg * (-cos(n) * n + u[2] * 0.5) / 3.0 + 0.1 * z[0];
        p[1] = sg * (sin(n) * n + u[3] * 0.5) / 3.0 + 0.1 * z[1];
        break;
    }
    }
}

ebmc_status ebmc_data_toy_pd(int kid, int n, uint64_t seed, ebmc_dataset_t **out, char *err, size_t errlen) {
    char name[64];
    snprintf(name, sizeof name, "toy2d-%s", PD_KINDS[kid]);
    ebmc_dataset_t *ds = ebmc_data_alloc(name);
    if (!ds) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, name, "out of memory");
    ds->kind = EBMC_DATA_F32_POINTS;
    ds->n = n;
    ds->c = 2;
    ds->h = ds->w = 1;
    ds->f32 = ebmc_data_malloc((size_t)n * 2 * sizeof(float), name, "the points", err, errlen);
    ds->component = ebmc_data_malloc((size_t)n * sizeof(int32_t), name, "the components", err, errlen);
    if (!ds->f32 || !ds->component) {
        ebmc_data_free(ds);
        return EBMC_E_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        float u[4], z[4];
        double p[2];
        ebmc_philox_uniform4(seed, 0, (uint32_t)i, (uint32_t)kid, STREAM_PD, u);
        ebmc_philox_normal4(seed, 1, (uint32_t)i, (uint32_t)kid, STREAM_PD, z);
        one_point(kid, u, z, p, &ds->component[i]);
        ds->f32[2 * i] = (float)p[0];
        ds->f32[2 * i + 1] = (float)p[1];
    }
    *out = ds;
    return EBMC_OK;
}
