/* The 2-D measurements of tests/toy_metrics.h, in double. */
#include "toy_metrics.h"
#include <math.h>

static double kern(const float *a, const float *b) {
    static const double bw[3] = {0.05, 0.2, 1.0};
    double dx = (double)a[0] - b[0], dy = (double)a[1] - b[1], d = dx * dx + dy * dy, s = 0;
    for (int q = 0; q < 3; q++) s += exp(-d / (2 * bw[q] * bw[q]));
    return s;
}

static double mean_kern(const float *x, int n, const float *y, int m) {
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) s += kern(x + 2 * i, y + 2 * j);
    return s / ((double)n * m);
}

double tm_mmd2(const float *x, int n, const float *y, int m) {
    return mean_kern(x, n, x, n) + mean_kern(y, m, y, m) - 2 * mean_kern(x, n, y, m);
}

void tm_mode_shares(const float *x, int n, const float *c, int M, double radius, double *share,
                    double *in_mode) {
    for (int k = 0; k < M; k++) share[k] = 0;
    *in_mode = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bd = 1e300;
        for (int k = 0; k < M; k++) {
            double dx = (double)x[2 * i] - c[2 * k], dy = (double)x[2 * i + 1] - c[2 * k + 1];
            double d = dx * dx + dy * dy;
            if (d < bd) bd = d, best = k;
        }
        share[best] += 1.0 / n;
        if (sqrt(bd) < radius) *in_mode += 1.0 / n;
    }
}
