#define _XOPEN_SOURCE 700
#include "testutil.h"
#include "ebmc/safetensors.h"
#include "ebmc/train.h"
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void tu_rng_seed(tu_rng *r, uint64_t seed) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 2; i++) { /* splitmix64 */
        z += 0x9E3779B97F4A7C15ull;
        uint64_t t = z;
        t = (t ^ (t >> 30)) * 0xBF58476D1CE4E5B9ull;
        t = (t ^ (t >> 27)) * 0x94D049BB133111EBull;
        r->s[i] = t ^ (t >> 31);
    }
}

uint64_t tu_next(tu_rng *r) { /* xoroshiro128+ */
    uint64_t s0 = r->s[0], s1 = r->s[1], res = s0 + s1;
    s1 ^= s0;
    r->s[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
    r->s[1] = rotl(s1, 37);
    return res;
}

float tu_uniform(tu_rng *r, float lo, float hi) {
    double u = (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

float tu_normal(tu_rng *r) {
    double u1 = ((double)(tu_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void tu_fill_normal(tu_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * tu_normal(r);
}

void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = tu_uniform(r, lo, hi);
}

void tu_fill_away_from_zero(tu_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        float m = tu_uniform(r, lo, hi);
        x[i] = (tu_next(r) & 1) ? m : -m;
    }
}

float *tu_malloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) fail_msg("out of host memory (%zu floats)", n);
    return p;
}

ebmc_ctx_t *tu_ctx_cpu(void) {
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CPU;
    ebmc_ctx_t *ctx = NULL;
    char err[512];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err) != EBMC_OK) fail_msg("CPU context: %s", err);
    return ctx;
}

ebmc_ctx_t *tu_ctx_cuda(ebmc_precision prec) {
    if (ebmc_cuda_device_count() <= 0) return NULL;
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CUDA;
    o.precision = prec;
    o.deterministic = true;
    ebmc_ctx_t *ctx = NULL;
    char err[512];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err) != EBMC_OK) fail_msg("CUDA context: %s", err);
    return ctx;
}

static void fill_dev(ebmc_ctx_t *ctx, float *p, size_t n, float v) {
    ebmc_fill_desc d = {.count = n, .value = v};
    if (ebmc_fill(ctx, &d, p) != EBMC_OK) fail_msg("fill: %s", ebmc_ctx_error(ctx));
}

tu_dbuf tu_dbuf_alloc(ebmc_ctx_t *ctx, size_t n) {
    tu_dbuf b = {.ctx = ctx, .n = n, .guard = TU_GUARD};
    void *p = NULL;
    if (ebmc_alloc(ctx, &p, (n + 2 * TU_GUARD) * sizeof(float)) != EBMC_OK)
        fail_msg("alloc %zu floats: %s", n, ebmc_ctx_error(ctx));
    b.base = p;
    b.p = b.base + TU_GUARD;
    fill_dev(ctx, b.base, TU_GUARD, TU_SENTINEL);
    fill_dev(ctx, b.p + n, TU_GUARD, TU_SENTINEL);
    tu_dbuf_poison(&b);
    return b;
}

void tu_dbuf_free(tu_dbuf *b) {
    if (b->base) ebmc_free(b->ctx, b->base);
    b->base = b->p = NULL;
}

void tu_dbuf_upload(tu_dbuf *b, const float *host) {
    if (ebmc_copy(b->ctx, b->p, host, b->n * sizeof(float), EBMC_COPY_H2D) != EBMC_OK)
        fail_msg("upload: %s", ebmc_ctx_error(b->ctx));
}

void tu_dbuf_download(const tu_dbuf *b, float *host) {
    if (ebmc_copy(b->ctx, host, b->p, b->n * sizeof(float), EBMC_COPY_D2H) != EBMC_OK)
        fail_msg("download: %s", ebmc_ctx_error(b->ctx));
}

void tu_dbuf_poison(tu_dbuf *b) {
    if (b->n) fill_dev(b->ctx, b->p, b->n, NAN);
}

bool tu_dbuf_guards_ok(const tu_dbuf *b) {
    float g[2 * TU_GUARD];
    if (ebmc_copy(b->ctx, g, b->base, TU_GUARD * sizeof(float), EBMC_COPY_D2H) != EBMC_OK ||
        ebmc_copy(b->ctx, g + TU_GUARD, b->p + b->n, TU_GUARD * sizeof(float), EBMC_COPY_D2H) !=
            EBMC_OK)
        fail_msg("guard download: %s", ebmc_ctx_error(b->ctx));
    for (int i = 0; i < 2 * TU_GUARD; i++)
        if (g[i] != TU_SENTINEL) return false;
    return true;
}

double tu_nmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(ref[i])) return INFINITY;
        if (isinf(ref[i]) || isinf(a[i])) {
            if (a[i] != ref[i]) return INFINITY;
            continue;
        }
        if (isnan(ref[i])) continue;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (num == 0) return 0;
    return den > 0 ? num / den : INFINITY;
}

double tu_rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (isnan(num)) return INFINITY;
    if (num == 0) return 0;
    return den > 0 ? sqrt(num / den) : INFINITY;
}

double tu_max_abs(const float *a, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

double tu_dot(const float *r, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

double tu_gradcheck(const char *name, tu_scalar_fn f, void *user, float *param, size_t n,
                    const float *grad, double h, double rtol, double atol, size_t max_check) {
    double worst = 0;
    size_t worst_i = 0;
    double worst_fd = 0;
    size_t nchk = n <= max_check ? n : max_check;
    for (size_t k = 0; k < nchk; k++) {
        size_t i = n <= max_check ? k : (size_t)((double)k * (double)(n - 1) / (double)(nchk - 1));
        float orig = param[i];
        param[i] = (float)(orig + h);
        double hp = (double)param[i] - orig; /* the step actually taken in float */
        double fp = f(user);
        param[i] = (float)(orig - h);
        double hm = orig - (double)param[i];
        double fm = f(user);
        param[i] = orig;
        double fd = (fp - fm) / (hp + hm);
        double err = fabs(fd - grad[i]) / (atol + rtol * fabs(grad[i]));
        if (!(err <= worst)) { /* NaN-safe */
            worst = isnan(err) ? INFINITY : err;
            worst_i = i;
            worst_fd = fd;
        }
    }
    printf("  gradcheck %-44s n=%-7zu checked=%-5zu worst %.3g of tolerance (i=%zu fd=%.6g an=%.6g)\n",
           name, n, nchk, worst, worst_i, worst_fd, (double)grad[worst_i]);
    return worst;
}

double tu_dircheck(const char *name, tu_scalar_fn f, void *user, float *param, size_t n,
                   const float *grad, double rel_h, double tol, int trials, tu_rng *rng,
                   double f_scale) {
    float *orig = tu_malloc(n), *v = tu_malloc(n);
    memcpy(orig, param, n * sizeof(float));
    double ss = 0, gg = 0;
    for (size_t i = 0; i < n; i++) {
        ss += (double)orig[i] * orig[i];
        gg += (double)grad[i] * grad[i];
    }
    double rms = sqrt(ss / (double)n), gnorm = sqrt(gg);
    double h = rel_h * (rms > 0.1 ? rms : 0.1);
    double worst = 0, wfd = 0, wan = 0;
    for (int t = 0; t < trials; t++) {
        double an = 0;
        for (size_t i = 0; i < n; i++) {
            v[i] = tu_normal(rng);
            an += (double)grad[i] * v[i];
        }
        for (size_t i = 0; i < n; i++) param[i] = (float)(orig[i] + h * v[i]);
        double fp = f(user);
        for (size_t i = 0; i < n; i++) param[i] = (float)(orig[i] - h * v[i]);
        double fm = f(user);
        double fd = (fp - fm) / (2 * h);
        /* the float32 rounding of f itself: ~100 roundings of |f| at 2^-24, over 2h */
        double mag = f_scale > 0 ? 2 * f_scale : fabs(fp) + fabs(fm);
        double floor = 100.0 * 5.96e-8 * mag / (2 * h);
        double err = fabs(fd - an) / (tol * gnorm + floor + 1e-30);
        if (!(err <= worst)) {
            worst = isnan(err) ? INFINITY : err;
            wfd = fd;
            wan = an;
        }
    }
    memcpy(param, orig, n * sizeof(float));
    free(orig);
    free(v);
    printf("  dircheck  %-58s n=%-8zu worst %.3g of tolerance (fd=%.6g an=%.6g |g|=%.3g)\n", name, n,
           worst, wfd, wan, gnorm);
    return worst;
}

int tu_tmpdir_create(char *dir, size_t n, const char *tag) {
    if ((size_t)snprintf(dir, n, "/tmp/ebmc_%s.XXXXXX", tag) >= n) return -1;
    return mkdtemp(dir) ? 0 : -1;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void tu_tmpdir_remove(const char *dir) {
    if (dir && *dir) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_path(const char *dir, const char *fmt, ...) {
    static char buf[16][1024];
    static int k;
    char rel[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    char *p = buf[k++ % 16];
    snprintf(p, sizeof buf[0], "%s/%s", dir, rel);
    return p;
}

int tu_train(const char *const *args, int n) {
    char *argv[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
    return ebmc_train_main(n, argv);
}

void tu_assert_resume_exact(const char *cfg, const char *dir, const char *tag, const char *const *extra,
                            int n_extra, int split, int total, const char *const *files) {
    char od[700], na[200], nb[200], ita[64], itb[64], sd[900];
    snprintf(od, sizeof od, "run.out_dir=%s", dir);
    snprintf(na, sizeof na, "run.name=%sstraight", tag);
    snprintf(nb, sizeof nb, "run.name=%ssplit", tag);
    snprintf(ita, sizeof ita, "train.iterations=%d", total);
    snprintf(itb, sizeof itb, "train.iterations=%d", split);
    const char *a[64] = {cfg, od, na}, *b[64] = {cfg, od, nb};
    assert_true(n_extra <= 60);
    int n = 3;
    for (int i = 0; i < n_extra; i++, n++) a[n] = b[n] = extra[i];
    a[n] = ita, b[n] = itb, n++;
    assert_int_equal(tu_train(a, n), 0);
    assert_int_equal(tu_train(b, n), 0);
    snprintf(sd, sizeof sd, "%s/%ssplit", dir, tag);
    const char *r[] = {"--resume", sd, ita};
    assert_int_equal(tu_train(r, 3), 0);
    char pa[1200], pb[1200];
    for (int i = 0; files[i]; i++) {
        snprintf(pa, sizeof pa, "%s/%sstraight/checkpoints/iter_%08d/%s", dir, tag, total, files[i]);
        snprintf(pb, sizeof pb, "%s/%ssplit/checkpoints/iter_%08d/%s", dir, tag, total, files[i]);
        tu_assert_same_tensors(pa, pb);
    }
    snprintf(pa, sizeof pa, "%s/%sstraight/metrics.jsonl", dir, tag);
    snprintf(pb, sizeof pb, "%s/%ssplit/metrics.jsonl", dir, tag);
    tu_assert_same_metrics(pa, pb, total);
}

char *tu_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((len > 0 ? (size_t)len : 0) + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    assert_int_equal(got, (size_t)len);
    buf[got] = 0;
    if (n) *n = got;
    return buf;
}

void tu_assert_same_tensors(const char *a, const char *b) {
    char err[512];
    ebmc_st_file *fa, *fb;
    if (ebmc_st_open(a, &fa, err, sizeof err)) fail_msg("%s", err);
    if (ebmc_st_open(b, &fb, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(ebmc_st_count(fa), ebmc_st_count(fb));
    for (int i = 0; i < ebmc_st_count(fa); i++) {
        const ebmc_st_tensor *x = ebmc_st_at(fa, i), *y = ebmc_st_find(fb, x->name);
        if (!y) fail_msg("%s has no tensor %s", b, x->name);
        size_t bytes = (size_t)ebmc_st_numel(x) * ebmc_dtype_size(x->dtype);
        if (y->dtype != x->dtype || ebmc_st_numel(y) != ebmc_st_numel(x) || (bytes && memcmp(x->data, y->data, bytes)))
            fail_msg("%s differs from %s in tensor %s", a, b, x->name);
    }
    ebmc_st_close(fa);
    ebmc_st_close(fb);
}

void tu_assert_same_metrics(const char *a, const char *b, int lines) {
    char *m1 = tu_read_file(a, NULL), *m2 = tu_read_file(b, NULL);
    int n = 0;
    for (char *p = m1, *q = m2; p && q && *p && *q; n++) {
        char *ps = strstr(p, ",\"sec\""), *qs = strstr(q, ",\"sec\"");
        assert_non_null(ps);
        assert_non_null(qs);
        assert_int_equal(ps - p, qs - q);
        assert_memory_equal(p, q, (size_t)(ps - p));
        p = strchr(p, '\n');
        q = strchr(q, '\n');
        if (p) p++;
        if (q) q++;
    }
    assert_int_equal(n, lines);
    free(m1);
    free(m2);
}

int tu_config_path(char *out, size_t n, const char *file) {
    const char *dir = getenv("EBMC_CONFIGS");
    snprintf(out, n, "%s/%s", dir ? dir : "configs", file);
    return access(out, R_OK) ? -1 : 0;
}
