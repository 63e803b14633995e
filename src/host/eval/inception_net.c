/* Inception-v3 as pytorch-fid's fid_inception_v3() computes pool3 (and the fc logits): the
 * convolution table in torchvision's module order and the forward pass on the op table, block
 * by block: the stem, Mixed_5b-d (FIDInceptionA), Mixed_6a (InceptionB), Mixed_6b-e
 * (FIDInceptionC), Mixed_7a (InceptionD), Mixed_7b (FIDInceptionE_1), Mixed_7c
 * (FIDInceptionE_2), the global average pool. Each branch runs on two scratch buffers and its
 * result is copied into its channels of the block's output (torch.cat on dim 1). */
#include "eval/inception_internal.h"

#include <stdio.h>
#include <string.h>

static void add(ebmc_inception_t *net, const char *block, const char *name, int cin, int cout, int kh, int kw,
                int stride, int ph, int pw) {
    static char names[INC_MAX_CONVS][48]; /* the table's names live as long as the process */
    EBMC_ASSERT(net->n_convs < INC_MAX_CONVS);
    int i = net->n_convs++;
    snprintf(names[i], sizeof names[i], "%s%s%s", block, *block ? "." : "", name);
    net->spec[i] = (inc_conv_spec){names[i], cin, cout, kh, kw, stride, ph, pw};
}

static void specs_a(ebmc_inception_t *net, const char *b, int cin, int pool_features) {
    add(net, b, "branch1x1", cin, 64, 1, 1, 1, 0, 0);
    add(net, b, "branch5x5_1", cin, 48, 1, 1, 1, 0, 0);
    add(net, b, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
    add(net, b, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
    add(net, b, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add(net, b, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
    add(net, b, "branch_pool", cin, pool_features, 1, 1, 1, 0, 0);
}

static void specs_c(ebmc_inception_t *net, const char *b, int c7) {
    add(net, b, "branch1x1", 768, 192, 1, 1, 1, 0, 0);
    add(net, b, "branch7x7_1", 768, c7, 1, 1, 1, 0, 0);
    add(net, b, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    add(net, b, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
    add(net, b, "branch7x7dbl_1", 768, c7, 1, 1, 1, 0, 0);
    add(net, b, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    add(net, b, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    add(net, b, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    add(net, b, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
    add(net, b, "branch_pool", 768, 192, 1, 1, 1, 0, 0);
}

static void specs_e(ebmc_inception_t *net, const char *b, int cin) {
    add(net, b, "branch1x1", cin, 320, 1, 1, 1, 0, 0);
    add(net, b, "branch3x3_1", cin, 384, 1, 1, 1, 0, 0);
    add(net, b, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
    add(net, b, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
    add(net, b, "branch3x3dbl_1", cin, 448, 1, 1, 1, 0, 0);
    add(net, b, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
    add(net, b, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
    add(net, b, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
    add(net, b, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}

void inc_build_specs(ebmc_inception_t *net) {
    net->n_convs = 0;
    add(net, "", "Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0);
    add(net, "", "Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0);
    add(net, "", "Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1);
    add(net, "", "Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0);
    add(net, "", "Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0);
    specs_a(net, "Mixed_5b", 192, 32);
    specs_a(net, "Mixed_5c", 256, 64);
    specs_a(net, "Mixed_5d", 288, 64);
    add(net, "Mixed_6a", "branch3x3", 288, 384, 3, 3, 2, 0, 0);
    add(net, "Mixed_6a", "branch3x3dbl_1", 288, 64, 1, 1, 1, 0, 0);
    add(net, "Mixed_6a", "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add(net, "Mixed_6a", "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
    specs_c(net, "Mixed_6b", 128);
    specs_c(net, "Mixed_6c", 160);
    specs_c(net, "Mixed_6d", 160);
    specs_c(net, "Mixed_6e", 192);
    add(net, "Mixed_7a", "branch3x3_1", 768, 192, 1, 1, 1, 0, 0);
    add(net, "Mixed_7a", "branch3x3_2", 192, 320, 3, 3, 2, 0, 0);
    add(net, "Mixed_7a", "branch7x7x3_1", 768, 192, 1, 1, 1, 0, 0);
    add(net, "Mixed_7a", "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
    add(net, "Mixed_7a", "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
    add(net, "Mixed_7a", "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
    specs_e(net, "Mixed_7b", 1280);
    specs_e(net, "Mixed_7c", 2048);
}

int inc_find(const ebmc_inception_t *net, const char *name) {
    for (int i = 0; i < net->n_convs; i++)
        if (!strcmp(net->spec[i].name, name)) return i;
    ebmc_fail(name, "no such Inception convolution", __func__, __FILE__, __LINE__);
}

size_t inc_max_activation(void) { return (size_t)64 * 147 * 147; }

/* ---- the forward pass ---- */

typedef struct {
    const float *p;
    int c, h, w;
} act;

/* BasicConv2d `name` of block `blk` on a, into out: convolution, folded-BN bias, ReLU */
static ebmc_status bconv(ebmc_inception_t *net, int n, const char *blk, const char *name, act a, float *out,
                         act *res) {
    char full[64];
    snprintf(full, sizeof full, "%s%s%s", blk, *blk ? "." : "", name);
    int i = inc_find(net, full);
    const inc_conv_spec *s = &net->spec[i];
    EBMC_ASSERT(s->cin == a.c);
    ebmc_conv_desc d = {.n = n, .c_in = a.c, .h = a.h, .w = a.w, .c_out = s->cout, .kh = s->kh, .kw = s->kw,
                        .stride_h = s->stride, .stride_w = s->stride, .pad_t = s->ph, .pad_b = s->ph,
                        .pad_l = s->pw, .pad_r = s->pw};
    int ho, wo;
    ebmc_conv_out_hw(&d, &ho, &wo);
    EBMC_TRY(ebmc_conv2d_fwd(net->ctx, &d, a.p, net->w[i], out));
    ebmc_t4_desc bd = {n, s->cout, ho, wo};
    EBMC_TRY(ebmc_bias_fwd(net->ctx, &bd, net->b[i], out));
    ebmc_act_desc ad = {.kind = EBMC_ACT_RELU, .count = (size_t)n * s->cout * ho * wo};
    EBMC_TRY(ebmc_act_fwd(net->ctx, &ad, out, out));
    *res = (act){out, s->cout, ho, wo};
    return EBMC_OK;
}

static ebmc_status pool(ebmc_inception_t *net, int n, act a, int k, int s, int p, ebmc_pool_mode m, float *out,
                        act *res) {
    ebmc_pool_desc d = {n, a.c, a.h, a.w, k, s, p, m, false}; /* count_include_pad=False */
    EBMC_TRY(ebmc_pool2d_fwd(net->ctx, &d, a.p, out));
    *res = (act){out, a.c, (a.h + 2 * p - k) / s + 1, (a.w + 2 * p - k) / s + 1};
    return EBMC_OK;
}

/* copies a branch's result into channels [*off, *off + c) of net->y (c_total channels) */
static ebmc_status cat(ebmc_inception_t *net, int n, act a, int c_total, int *off) {
    ebmc_chan_copy_desc d = {n, a.c, a.h * a.w, c_total, *off};
    *off += a.c;
    return ebmc_chan_copy(net->ctx, &d, a.p, net->y);
}

/* a chain of convolutions of one branch from `in`, alternating t1/t2; *res: the last output */
static ebmc_status chain(ebmc_inception_t *net, int n, const char *blk, const char *const *names, int k, act in,
                         act *res) {
    act a = in;
    for (int i = 0; i < k; i++) EBMC_TRY(bconv(net, n, blk, names[i], a, i % 2 ? net->t2 : net->t1, &a));
    *res = a;
    return EBMC_OK;
}

static ebmc_status block_a(ebmc_inception_t *net, int n, const char *blk, act x, int pf, act *out) {
    static const char *const b1[] = {"branch1x1"}, *const b5[] = {"branch5x5_1", "branch5x5_2"},
                             *const b3[] = {"branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"};
    int ct = 64 + 64 + 96 + pf, off = 0;
    act r;
    EBMC_TRY(chain(net, n, blk, b1, 1, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(chain(net, n, blk, b5, 2, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(chain(net, n, blk, b3, 3, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(pool(net, n, x, 3, 1, 1, EBMC_POOL_AVG, net->t1, &r));
    EBMC_TRY(bconv(net, n, blk, "branch_pool", r, net->t2, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    *out = (act){net->y, ct, x.h, x.w};
    return EBMC_OK;
}

static ebmc_status block_b(ebmc_inception_t *net, int n, act x, act *out) {
    static const char *const b3[] = {"branch3x3"}, *const bd[] = {"branch3x3dbl_1", "branch3x3dbl_2",
                                                                   "branch3x3dbl_3"};
    int ct = 384 + 96 + x.c, off = 0;
    act r;
    EBMC_TRY(chain(net, n, "Mixed_6a", b3, 1, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(chain(net, n, "Mixed_6a", bd, 3, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(pool(net, n, x, 3, 2, 0, EBMC_POOL_MAX, net->t1, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    *out = (act){net->y, ct, r.h, r.w};
    return EBMC_OK;
}

static ebmc_status block_c(ebmc_inception_t *net, int n, const char *blk, act x, act *out) {
    static const char *const b1[] = {"branch1x1"}, *const b7[] = {"branch7x7_1", "branch7x7_2", "branch7x7_3"},
                             *const bd[] = {"branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4",
                                            "branch7x7dbl_5"};
    int ct = 768, off = 0;
    act r;
    EBMC_TRY(chain(net, n, blk, b1, 1, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(chain(net, n, blk, b7, 3, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(chain(net, n, blk, bd, 5, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(pool(net, n, x, 3, 1, 1, EBMC_POOL_AVG, net->t1, &r));
    EBMC_TRY(bconv(net, n, blk, "branch_pool", r, net->t2, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    *out = (act){net->y, ct, x.h, x.w};
    return EBMC_OK;
}

static ebmc_status block_d(ebmc_inception_t *net, int n, act x, act *out) {
    static const char *const b3[] = {"branch3x3_1", "branch3x3_2"},
                             *const b7[] = {"branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"};
    int ct = 320 + 192 + x.c, off = 0;
    act r;
    EBMC_TRY(chain(net, n, "Mixed_7a", b3, 2, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(chain(net, n, "Mixed_7a", b7, 4, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(pool(net, n, x, 3, 2, 0, EBMC_POOL_MAX, net->t1, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    *out = (act){net->y, ct, r.h, r.w};
    return EBMC_OK;
}

/* E: a 1x1 stem feeding two parallel convolutions (1x3 and 3x1), both concatenated */
static ebmc_status split_pair(ebmc_inception_t *net, int n, const char *blk, act in, const char *a,
                              const char *b, int ct, int *off) {
    act r;
    float *dst = in.p == net->t1 ? net->t2 : net->t1;
    EBMC_TRY(bconv(net, n, blk, a, in, dst, &r)); EBMC_TRY(cat(net, n, r, ct, off));
    EBMC_TRY(bconv(net, n, blk, b, in, dst, &r));
    return cat(net, n, r, ct, off);
}

static ebmc_status block_e(ebmc_inception_t *net, int n, const char *blk, act x, ebmc_pool_mode pm, act *out) {
    static const char *const b1[] = {"branch1x1"}, *const b3[] = {"branch3x3_1"},
                             *const bd[] = {"branch3x3dbl_1", "branch3x3dbl_2"};
    int ct = 320 + 768 + 768 + 192, off = 0;
    act r;
    EBMC_TRY(chain(net, n, blk, b1, 1, x, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    EBMC_TRY(chain(net, n, blk, b3, 1, x, &r));
    EBMC_TRY(split_pair(net, n, blk, r, "branch3x3_2a", "branch3x3_2b", ct, &off));
    EBMC_TRY(chain(net, n, blk, bd, 2, x, &r));
    EBMC_TRY(split_pair(net, n, blk, r, "branch3x3dbl_3a", "branch3x3dbl_3b", ct, &off));
    EBMC_TRY(pool(net, n, x, 3, 1, 1, pm, net->t1, &r)); /* E_1 average, E_2 max (pytorch-fid's patch) */
    EBMC_TRY(bconv(net, n, blk, "branch_pool", r, net->t2, &r)); EBMC_TRY(cat(net, n, r, ct, &off));
    *out = (act){net->y, ct, x.h, x.w};
    return EBMC_OK;
}

/* the next block reads what the last one wrote: swap the block buffers */
static act swap_io(ebmc_inception_t *net, act out) {
    float *t = net->x;
    net->x = net->y, net->y = t;
    out.p = net->x;
    return out;
}

static ebmc_status stem(ebmc_inception_t *net, int n, act *out) {
    static const char *const s1[] = {"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"};
    static const char *const s2[] = {"Conv2d_3b_1x1", "Conv2d_4a_3x3"};
    ebmc_resize_desc rd = {n, 3, net->in_h, net->in_w, 299, 299, net->tf_front};
    EBMC_TRY(ebmc_resize_fwd(net->ctx, &rd, net->in, net->x));
    if (net->rng_s) { /* onto the weights' input range (resize and this affine map commute) */
        ebmc_t4_desc td = {n, 3, 299, 299};
        EBMC_TRY(ebmc_chan_scale_fwd(net->ctx, &td, net->x, net->rng_s, net->x));
        EBMC_TRY(ebmc_bias_fwd(net->ctx, &td, net->rng_b, net->x));
    }
    act a = {net->x, 3, 299, 299};
    EBMC_TRY(chain(net, n, "", s1, 3, a, &a));                         /* -> t1 (64,147,147) */
    EBMC_TRY(pool(net, n, a, 3, 2, 0, EBMC_POOL_MAX, net->x, &a));     /* -> x (64,73,73) */
    EBMC_TRY(chain(net, n, "", s2, 2, a, &a));                         /* -> t2 (192,71,71) */
    return pool(net, n, a, 3, 2, 0, EBMC_POOL_MAX, net->x, out);       /* -> x (192,35,35) */
}

static ebmc_status mixed(ebmc_inception_t *net, int n, act *a) {
    static const char *const an[] = {"Mixed_5b", "Mixed_5c", "Mixed_5d"}, *const cn[] = {"Mixed_6b", "Mixed_6c",
                                                                                          "Mixed_6d", "Mixed_6e"};
    static const int pf[] = {32, 64, 64};
    for (int i = 0; i < 3; i++) {
        EBMC_TRY(block_a(net, n, an[i], *a, pf[i], a));
        *a = swap_io(net, *a);
    }
    EBMC_TRY(block_b(net, n, *a, a));
    *a = swap_io(net, *a);
    for (int i = 0; i < 4; i++) {
        EBMC_TRY(block_c(net, n, cn[i], *a, a));
        *a = swap_io(net, *a);
    }
    EBMC_TRY(block_d(net, n, *a, a));
    *a = swap_io(net, *a);
    EBMC_TRY(block_e(net, n, "Mixed_7b", *a, EBMC_POOL_AVG, a));
    *a = swap_io(net, *a);
    EBMC_TRY(block_e(net, n, "Mixed_7c", *a, EBMC_POOL_MAX, a));
    *a = swap_io(net, *a);
    return EBMC_OK;
}

static ebmc_status run(ebmc_inception_t *net, int n, bool logits) {
    act a;
    EBMC_TRY(stem(net, n, &a));
    EBMC_TRY(mixed(net, n, &a)); /* (2048, 8, 8) in net->x */
    ebmc_gpool_desc gd = {n, a.c, a.h, a.w, EBMC_GPOOL_AVG};
    EBMC_TRY(ebmc_gpool_fwd(net->ctx, &gd, a.p, net->pool3));
    if (!logits) return EBMC_OK;
    ebmc_linear_desc ld = {n, EBMC_INCEPTION_DIMS, EBMC_INCEPTION_CLASSES};
    return ebmc_linear_fwd(net->ctx, &ld, net->pool3, net->fc_w, NULL, net->logits);
}

ebmc_status ebmc_inception_forward(ebmc_inception_t *net, const float *x, int n, float *pool3,
                                   float *logits, char *err, size_t errlen) {
    if (n < 1 || n > net->max_batch) {
        ebmc_set_err(err, errlen, "Inception: batch %d outside 1..%d", n, net->max_batch);
        return EBMC_E_INVALID;
    }
    if (logits && !net->fc_w) {
        ebmc_set_err(err, errlen, "Inception: logits asked of weights without a logits layer (%s)", net->kind);
        return EBMC_E_INVALID;
    }
    ebmc_ctx_t *c = net->ctx;
    ebmc_status s = ebmc_copy(c, net->in, x, (size_t)n * 3 * net->in_h * net->in_w * sizeof(float), EBMC_COPY_H2D);
    if (!s) s = run(net, n, logits != NULL);
    if (!s) s = ebmc_copy(c, pool3, net->pool3, (size_t)n * EBMC_INCEPTION_DIMS * sizeof(float), EBMC_COPY_D2H);
    if (!s && logits)
        s = ebmc_copy(c, logits, net->logits, (size_t)n * EBMC_INCEPTION_CLASSES * sizeof(float), EBMC_COPY_D2H);
    if (!s) s = ebmc_sync(c);
    if (s) ebmc_set_err(err, errlen, "Inception forward: %s", ebmc_ctx_error(c));
    return s;
}
