/* defines: tu_rng (deterministic test randomness), tu_ctx_* (contexts), tu_dbuf (device buffers
 * with guard regions and NaN poisoning), error norms. Shared by every test executable. */
#ifndef EBMC_TESTUTIL_H
#define EBMC_TESTUTIL_H

#include "ebmc/backend.h"
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

typedef struct {
    uint64_t s[2];
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_next(tu_rng *r);
float tu_uniform(tu_rng *r, float lo, float hi);
float tu_normal(tu_rng *r);
void tu_fill_normal(tu_rng *r, float *x, size_t n, float scale);
void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi);
/* Uniform in [-hi,-lo] U [lo,hi]: values kept away from an activation's kink at 0. */
void tu_fill_away_from_zero(tu_rng *r, float *x, size_t n, float lo, float hi);
float *tu_malloc(size_t n); /* host floats, aborts the test on failure */

/* A CPU context (always available). */
ebmc_ctx_t *tu_ctx_cpu(void);
/* A CUDA context with the given precision, or NULL when there is no usable GPU (the caller
 * skip()s). */
ebmc_ctx_t *tu_ctx_cuda(ebmc_precision prec);

/* A buffer in the context's memory with `guard` sentinel floats on each side. */
typedef struct {
    ebmc_ctx_t *ctx;
    float *base;    /* start of the allocation */
    float *p;       /* the n usable floats */
    size_t n, guard;
} tu_dbuf;

#define TU_GUARD 64
#define TU_SENTINEL 1.2345678e30f

tu_dbuf tu_dbuf_alloc(ebmc_ctx_t *ctx, size_t n);       /* data poisoned with NaN */
void tu_dbuf_free(tu_dbuf *b);
void tu_dbuf_upload(tu_dbuf *b, const float *host);
void tu_dbuf_download(const tu_dbuf *b, float *host);
void tu_dbuf_poison(tu_dbuf *b);                        /* data := NaN */
bool tu_dbuf_guards_ok(const tu_dbuf *b);               /* sentinels intact */

/* mse(a, ref) / mse(ref, 0); 0 if both are zero; +inf if a has a NaN/Inf where ref is finite. */
double tu_nmse(const float *a, const float *ref, size_t n);
/* ||a - ref||_2 / ||ref||_2 (computed in double). */
double tu_rel_l2(const float *a, const float *ref, size_t n);
/* max |a - ref| */
double tu_max_abs(const float *a, const float *ref, size_t n);

/* Central finite differences of a scalar function of `param` (n floats): for each checked index
 * i, (f(p + h e_i) - f(p - h e_i)) / 2h, compared with grad[i] as
 * |fd - grad| <= atol + rtol*|grad|. `f` evaluates in double. Checks every index when n <= max_check,
 * else max_check indices spread over the tensor. Returns the worst ratio err/(atol + rtol|grad|)
 * (<= 1 passes) and prints it with `name`. */
typedef double (*tu_scalar_fn)(void *user);
double tu_gradcheck(const char *name, tu_scalar_fn f, void *user, float *param, size_t n,
                    const float *grad, double h, double rtol, double atol, size_t max_check);

/* Directional finite differences for whole networks: for `trials` random directions v ~ N(0,I),
 * (f(p + h v) - f(p - h v)) / 2h against grad . v, with h = rel_h * max(rms(param), 0.1).
 * Passes when |fd - grad.v| <= tol * ||grad||_2 (the typical size of grad.v) + the float32
 * rounding floor of the difference, 100 * 2^-24 * 2 * S / 2h, where S is f_scale (the sum of
 * the absolute values of f's terms, when f is a sum that cancels) or else (|f+| + |f-|)/2.
 * Returns the worst |fd - grad.v| / (tol ||grad||_2) and prints it. */
double tu_dircheck(const char *name, tu_scalar_fn f, void *user, float *param, size_t n,
                   const float *grad, double rel_h, double tol, int trials, tu_rng *rng,
                   double f_scale);

/* Scratch directories for tests that write files. */
/* A fresh directory /tmp/ebmc_<tag>.XXXXXX written into dir (n bytes); 0 on success. */
int tu_tmpdir_create(char *dir, size_t n, const char *tag);
/* Removes dir and everything below it (depth first, links not followed). */
void tu_tmpdir_remove(const char *dir);
/* $EBMC_CONFIGS/file (else configs/file) written into out (n bytes); 0 iff it is readable. */
int tu_config_path(char *out, size_t n, const char *file);
/* dir/rel, rel printf-style, in one of 16 rotating buffers of 1024 bytes. */
const char *tu_path(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- runs: `ebmc train` from a test, and comparing what two runs wrote */
/* ebmc_train_main on a list of arguments; its exit status. */
int tu_train(const char *const *args, int n);
/* The whole file (NUL-terminated, malloc'd); fails the test when it cannot be read. */
char *tu_read_file(const char *path, size_t *n);
/* Two safetensors files hold the same tensors, bit for bit (metadata may differ). */
void tu_assert_same_tensors(const char *a, const char *b);
/* Two metrics.jsonl files agree line by line up to the timing fields that end each line
 * (from ,"sec" on), and have `lines` lines. */
void tu_assert_same_metrics(const char *a, const char *b, int lines);
/* Exact resume: `ebmc train cfg run.out_dir=dir run.name=<tag>straight extra...` to `total`
 * iterations, the same as <tag>split to `split` iterations and then `--resume`d to `total`; the
 * checkpoint files `files` (NULL-ended) of iteration `total` and every metrics line must agree
 * bit for bit (tu_assert_same_tensors, tu_assert_same_metrics). */
void tu_assert_resume_exact(const char *cfg, const char *dir, const char *tag, const char *const *extra,
                            int n_extra, int split, int total, const char *const *files);

/* sum_i r[i]*y[i] in double: the scalar loss whose gradient w.r.t. y is r. */
double tu_dot(const float *r, const float *y, size_t n);

#endif
