/* The CPU backend's convolutions on oneDNN (Debian's libdnnl, the library PyTorch's CPU
 * convolutions use), built when CMake finds it (EBMC_WITH_DNNL). conv_gemm.c's three cores call
 * cpu_dnnl_conv first; it runs a large convolution (DNNL_MIN_CH channels in and out,
 * DNNL_MIN_MACS multiply-adds) on oneDNN's direct (JIT) kernels in their blocked layouts: the plain NCHW/OIHW tensors are
 * reordered in and out around the primitive, every call, through the op's planned workspace.
 * Anything else (few channels, a pad the geometry makes negative, a primitive oneDNN will not
 * create) returns false and runs on im2col + SGEMM, the reference path (EBMC_CPU_CONV=gemm forces
 * it everywhere: the parity test compares the two).
 *
 * One cache entry per (kind, geometry, batch): the primitives, their reorders and memory objects,
 * made when a tape plans the op's workspace at its batch (cpu_dnnl_prepare: before a training loop
 * starts) or else on first use, and reused; each call only sets data handles. The scratchpad is
 * the library's, allocated with the primitive. */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/gemm.h"
#include <stdio.h>

#ifdef EBMC_WITH_DNNL
#include <dnnl.h>
#include <stdint.h>
#include <stdlib.h>

/* oneDNN takes a convolution with at least DNNL_MIN_CH input and output channels and DNNL_MIN_MACS
 * multiply-adds: below that its reorders and first-use JIT cost more than they save (measured
 * here: the quick start's 8..64-channel nets ran no faster) */
enum { DNNL_MIN_CH = 16, BLOCK = 16 };
#define DNNL_MIN_MACS (4.0 * 1024 * 1024)

typedef struct {
    int kind; /* 0 fwd, 1 bwd data, 2 bwd filter */
    conv_geom g;
    int pb, pr;
} dn_key;

typedef struct dn_entry {
    dn_key key;
    dnnl_primitive_t prim;        /* NULL: oneDNN declined this one (kept, not asked again) */
    /* in1, in2: the op's inputs, out: its output; u: the caller's plain tensor, b: the layout
     * the primitive wants (the same memory when that is plain), r: reorder u->b (out: b->u) */
    dnnl_memory_t u[3], b[3];
    dnnl_primitive_t r[3];
    size_t bytes[3];              /* of b[i] when it is not plain, else 0 */
    size_t plain_out;             /* elements of the plain output */
    size_t need;                  /* workspace: the blocked copies and a plain output */
    int arg[3];                   /* the primitive's argument of each */
    struct dn_entry *next;
} dn_entry;

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dn_entry *cache;
    int mode; /* 0 untried, 1 on, -1 off (no engine, or EBMC_CPU_CONV=gemm) */
} dn_state;

static size_t r16(size_t c) { return (c + BLOCK - 1) / BLOCK * BLOCK; }
static size_t al64(size_t b) { return (b + 63) & ~(size_t)63; }

static void bottom_right(const conv_geom *g, int *pb, int *pr) {
    *pb = (g->ho - 1) * g->sh + g->kh - g->h - g->pt;
    *pr = (g->wo - 1) * g->sw + g->kw - g->w - g->pl;
}

static bool cpu_dnnl_eligible(const conv_geom *g) {
    int pb, pr;
    bottom_right(g, &pb, &pr);
    double macs = (double)g->n * g->cout * g->ho * g->wo * g->cin * g->kh * g->kw;
    return g->cin >= DNNL_MIN_CH && g->cout >= DNNL_MIN_CH && macs >= DNNL_MIN_MACS && g->ho > 0 &&
           g->wo > 0 && pb >= 0 && pr >= 0 && g->pt >= 0 && g->pl >= 0;
}

/* an upper bound of the blocked copies (channels padded to 16) and one plain output */
size_t cpu_dnnl_ws_bytes(const conv_geom *g) {
    if (!cpu_dnnl_eligible(g)) return 0;
    size_t x = (size_t)g->n * r16(g->cin) * g->h * g->w, y = (size_t)g->n * r16(g->cout) * g->ho * g->wo,
           w = r16(g->cout) * r16(g->cin) * g->kh * g->kw;
    size_t plain = (size_t)g->n * g->cin * g->h * g->w;
    size_t py = (size_t)g->n * g->cout * g->ho * g->wo, pw = (size_t)g->cout * g->cin * g->kh * g->kw;
    if (py > plain) plain = py;
    if (pw > plain) plain = pw;
    return al64(x * 4) + al64(y * 4) + al64(w * 4) + al64(plain * 4);
}

static dn_state *state(ebmc_ctx_t *ctx) {
    dn_state *s = ctx->priv;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        ctx->priv = s;
    }
    if (s->mode == 0) {
        const char *e = getenv("EBMC_CPU_CONV");
        s->mode = -1;
        if (!(e && !strcmp(e, "gemm")) && dnnl_engine_create(&s->eng, dnnl_cpu, 0) == dnnl_success) {
            if (dnnl_stream_create(&s->stream, s->eng, dnnl_stream_default_flags) == dnnl_success) s->mode = 1;
            else dnnl_engine_destroy(s->eng);
        }
    }
    return s;
}

/* destroys what an entry holds and clears it (its key stays) */
static void entry_release(dn_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    e->prim = NULL;
    for (int i = 0; i < 3; i++) {
        if (e->r[i]) dnnl_primitive_destroy(e->r[i]);
        if (e->b[i] && e->b[i] != e->u[i]) dnnl_memory_destroy(e->b[i]);
        if (e->u[i]) dnnl_memory_destroy(e->u[i]);
        e->r[i] = NULL;
        e->b[i] = e->u[i] = NULL;
    }
}

void cpu_dnnl_fini(ebmc_ctx_t *ctx) {
    dn_state *s = ctx->priv;
    if (!s) return;
    for (dn_entry *e = s->cache, *n; e; e = n) {
        n = e->next;
        entry_release(e);
        free(e);
    }
    if (s->mode == 1) {
        dnnl_stream_destroy(s->stream);
        dnnl_engine_destroy(s->eng);
    }
    free(s);
    ctx->priv = NULL;
}

#define DN(x) do { if ((x) != dnnl_success) goto fail; } while (0)

/* the memory pair of one tensor: the caller's plain layout and the primitive's */
static bool pair(dn_state *s, dn_entry *e, int i, const dnnl_memory_desc_t *plain,
                 const dnnl_memory_desc_t *want, bool out) {
    if (dnnl_memory_create(&e->u[i], plain, s->eng, DNNL_MEMORY_NONE) != dnnl_success) return false;
    if (dnnl_memory_desc_equal(plain, want)) {
        e->b[i] = e->u[i];
        return true;
    }
    dnnl_primitive_desc_t rpd = NULL;
    if (dnnl_memory_create(&e->b[i], want, s->eng, DNNL_MEMORY_NONE) != dnnl_success) return false;
    e->bytes[i] = dnnl_memory_desc_get_size(want);
    dnnl_status_t st = out ? dnnl_reorder_primitive_desc_create(&rpd, want, s->eng, plain, s->eng, NULL)
                           : dnnl_reorder_primitive_desc_create(&rpd, plain, s->eng, want, s->eng, NULL);
    if (st != dnnl_success) return false;
    st = dnnl_primitive_create(&e->r[i], rpd);
    dnnl_primitive_desc_destroy(rpd);
    return st == dnnl_success;
}

static dn_entry *entry_make(dn_state *s, const dn_key *k) {
    dn_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = *k;
    const conv_geom *g = &k->g;
    dnnl_dims_t xd = {g->n, g->cin, g->h, g->w}, wd = {g->cout, g->cin, g->kh, g->kw},
                yd = {g->n, g->cout, g->ho, g->wo}, st = {g->sh, g->sw}, pl = {g->pt, g->pl},
                pr = {k->pb, k->pr};
    dnnl_memory_desc_t xp, wp, yp, xa, wa, ya;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    dnnl_convolution_desc_t fd, cd;
    DN(dnnl_memory_desc_init_by_tag(&xp, 4, xd, dnnl_f32, dnnl_nchw));
    DN(dnnl_memory_desc_init_by_tag(&wp, 4, wd, dnnl_f32, dnnl_oihw));
    DN(dnnl_memory_desc_init_by_tag(&yp, 4, yd, dnnl_f32, dnnl_nchw));
    DN(dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&wa, 4, wd, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &xa, &wa,
                                          NULL, &ya, st, pl, pr));
    DN(dnnl_primitive_desc_create(&fpd, &fd, NULL, s->eng, NULL));
    if (k->kind == 0) {
        pd = fpd;
        fpd = NULL;
    } else if (k->kind == 1) {
        DN(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &xa, &wa, &ya, st, pl, pr));
        DN(dnnl_primitive_desc_create(&pd, &cd, NULL, s->eng, fpd));
    } else {
        DN(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &xa, &wa, NULL, &ya, st,
                                                        pl, pr));
        DN(dnnl_primitive_desc_create(&pd, &cd, NULL, s->eng, fpd));
    }
    /* the tensors in the order (in1, in2, out) of cpu_dnnl_conv */
    static const int args[3][3] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                                   {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
                                   {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}};
    static const dnnl_query_t qs[3][3] = {{dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
                                          {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md},
                                          {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md}};
    const dnnl_memory_desc_t *plains[3][3] = {{&xp, &wp, &yp}, {&yp, &wp, &xp}, {&xp, &yp, &wp}};
    for (int i = 0; i < 3; i++) {
        e->arg[i] = args[k->kind][i];
        const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, qs[k->kind][i], 0);
        if (!want || !pair(s, e, i, plains[k->kind][i], want, i == 2)) goto fail;
    }
    e->plain_out = k->kind == 0 ? (size_t)g->n * g->cout * g->ho * g->wo
                 : k->kind == 1 ? (size_t)g->n * g->cin * g->h * g->w
                                : (size_t)g->cout * g->cin * g->kh * g->kw;
    e->need = al64(e->bytes[0]) + al64(e->bytes[1]) + al64(e->bytes[2]) + al64(e->plain_out * 4);
    if (e->need > cpu_dnnl_ws_bytes(g)) goto fail; /* beyond the planned bound: the GEMM path */
    DN(dnnl_primitive_create(&e->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    if (fpd) dnnl_primitive_desc_destroy(fpd); /* the backward kinds' forward hint */
    return e;
fail: /* keep the entry without a primitive: declined, not asked again */
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    entry_release(e);
    return e;
}

static dn_entry *lookup(dn_state *s, const dn_key *k) {
    for (dn_entry *e = s->cache; e; e = e->next)
        if (!memcmp(&e->key, k, sizeof *k)) return e;
    dn_entry *e = entry_make(s, k);
    if (!e) return NULL;
    e->next = s->cache;
    s->cache = e;
    return e;
}

static bool exec(dn_state *s, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *a) {
    return dnnl_primitive_execute(p, s->stream, n, a) == dnnl_success;
}

static dn_entry *entry_for(ebmc_ctx_t *ctx, const conv_geom *g, int kind) {
    if (!cpu_dnnl_eligible(g)) return NULL;
    dn_state *s = state(ctx);
    if (!s || s->mode != 1) return NULL;
    dn_key k;
    memset(&k, 0, sizeof k); /* padding bytes too: the key is compared with memcmp */
    k.kind = kind;
    k.g = *g;
    bottom_right(g, &k.pb, &k.pr);
    dn_entry *e = lookup(s, &k);
    return e && e->prim ? e : NULL;
}

void cpu_dnnl_prepare(ebmc_ctx_t *ctx, const conv_geom *g, int kind) { (void)entry_for(ctx, g, kind); }

/* kind 0: out (N,Cout,Ho,Wo) = conv(in1 = x, in2 = w) + beta*out; 1: out = dx = beta*dx +
 * conv^T(in1 = dy, in2 = w); 2: out = dw = beta*dw + sum_n in1 = x (*) in2 = dy. Returns false
 * (nothing written) when this convolution is not for oneDNN; *st then stays EBMC_OK. */
bool cpu_dnnl_conv(ebmc_ctx_t *ctx, const conv_geom *g, int kind, const float *in1, const float *in2,
                   float *out, float beta, ebmc_status *st) {
    *st = EBMC_OK;
    dn_entry *e = entry_for(ctx, g, kind);
    if (!e) return false;
    dn_state *s = ctx->priv;
    void *ws;
    if ((*st = ebmc_ctx_workspace(ctx, e->need, &ws))) return true;
    char *p = ws;
    const void *user[3] = {in1, in2, out};
    for (int i = 0; i < 3; i++) {
        if (dnnl_memory_set_data_handle(e->u[i], (void *)user[i]) != dnnl_success) goto fail;
        if (e->b[i] != e->u[i]) {
            if (dnnl_memory_set_data_handle(e->b[i], p) != dnnl_success) goto fail;
            p += al64(e->bytes[i]);
        }
    }
    float *tmp = (float *)p;
    /* accumulate (beta != 0): the result goes to tmp (plain), then out = tmp + beta*out */
    if (beta != 0.0f && dnnl_memory_set_data_handle(e->u[2], tmp) != dnnl_success) goto fail;
    for (int i = 0; i < 2; i++)
        if (e->r[i]) {
            dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, e->u[i]}, {DNNL_ARG_TO, e->b[i]}};
            if (!exec(s, e->r[i], 2, a)) goto fail;
        }
    dnnl_exec_arg_t a[3] = {{e->arg[0], e->b[0]}, {e->arg[1], e->b[1]}, {e->arg[2], e->b[2]}};
    if (!exec(s, e->prim, 3, a)) goto fail;
    if (e->r[2]) {
        dnnl_exec_arg_t o[2] = {{DNNL_ARG_FROM, e->b[2]}, {DNNL_ARG_TO, e->u[2]}};
        if (!exec(s, e->r[2], 2, o)) goto fail;
    }
    if (dnnl_stream_wait(s->stream) != dnnl_success) goto fail;
    if (beta != 0.0f) {
#pragma omp parallel for schedule(static) if (e->plain_out > PAR_ELEMS)
        for (size_t i = 0; i < e->plain_out; i++) out[i] = tmp[i] + beta * out[i];
    }
    return true;
fail:
    *st = ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "cpu: oneDNN convolution (kind %d, %dx%dx%dx%d -> %d, %dx%d) failed",
                          kind, g->n, g->cin, g->h, g->w, g->cout, g->kh, g->kw);
    return true;
}

void cpu_dnnl_info(char *buf, size_t len) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, len, "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
}

#else /* without oneDNN: every convolution on im2col + SGEMM */

size_t cpu_dnnl_ws_bytes(const conv_geom *g) { return 0; }
bool cpu_dnnl_conv(ebmc_ctx_t *ctx, const conv_geom *g, int kind, const float *in1, const float *in2,
                   float *out, float beta, ebmc_status *st) {
    *st = EBMC_OK;
    return false;
}
void cpu_dnnl_fini(ebmc_ctx_t *ctx) {}
void cpu_dnnl_prepare(ebmc_ctx_t *ctx, const conv_geom *g, int kind) {}
void cpu_dnnl_info(char *buf, size_t len) { snprintf(buf, len, "no oneDNN (convolutions on im2col + SGEMM)"); }

#endif
