/* Inception-v3 weights: the safetensors file scripts/convert_inception.py writes (from
 * pytorch-fid's .pth, or from the TorchScript scripts/get_inception.sh fetches), checked tensor
 * by tensor against the convolution table, eval-mode BatchNorm folded into each convolution
 * (float64), copied to the device; the fc logits layer when the file has one; the activation
 * buffers for the largest batch; the file's SHA-256 (OpenSSL) for the evaluation protocol. */
#include "eval/inception_internal.h"
#include "ebmc/safetensors.h"
#include "ebmc/fileio.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BN_EPS 0.001 /* torchvision's BasicConv2d: BatchNorm2d(eps=0.001); TF's graph and its TorchScript port too */

ebmc_status ebmc_sha256_file(const char *path, char hex[65], char *err, size_t errlen) {
    FILE *f = ebmc_fopen_read(path, err, errlen);
    if (!f) return EBMC_E_IO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], dig[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) ok = EVP_DigestUpdate(md, buf, n) == 1;
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, dig, &dl) == 1 && dl == 32;
    EVP_MD_CTX_free(md);
    fclose(f);
    if (!ok) {
        ebmc_set_err(err, errlen, "%s: reading or hashing failed", path);
        return EBMC_E_IO;
    }
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    return EBMC_OK;
}

/* tensor NAME of shape (a, b, c, d) (ndim dims) as float32, or an error naming it */
static const float *tensor(const ebmc_st_file *f, const char *path, const char *name, int ndim, const int64_t *shape,
                           char *err, size_t errlen) {
    const ebmc_st_tensor *t = ebmc_st_find(f, name);
    if (!t) {
        ebmc_set_err(err, errlen, "%s: tensor '%s' is missing: not the FID Inception weights %s", path, name, EBMC_INCEPTION_HINT);
        return NULL;
    }
    bool same = t->ndim == ndim && t->dtype == EBMC_DT_F32;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        ebmc_set_err(err, errlen, "%s: tensor '%s' is %s of %d dims (first %lld), expected F32 (%lld, ...): not the FID "
                     "Inception weights %s", path, name, ebmc_dtype_str(t->dtype), t->ndim,
                     (long long)(t->ndim ? t->shape[0] : 0), (long long)shape[0], EBMC_INCEPTION_HINT);
        return NULL;
    }
    return t->data;
}

/* conv i: weight and BatchNorm folded, on the device */
static ebmc_status load_conv(ebmc_inception_t *net, int i, const ebmc_st_file *f, const char *path, char *err,
                             size_t errlen) {
    const inc_conv_spec *s = &net->spec[i];
    char nm[96];
    int64_t ws[4] = {s->cout, s->cin, s->kh, s->kw}, cs[1] = {s->cout};
    snprintf(nm, sizeof nm, "%s.conv.weight", s->name);
    const float *w = tensor(f, path, nm, 4, ws, err, errlen);
    const float *bn[4];
    static const char *const part[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4 && w; k++) {
        snprintf(nm, sizeof nm, "%s.bn.%s", s->name, part[k]);
        if (!(bn[k] = tensor(f, path, nm, 1, cs, err, errlen))) return EBMC_E_IO;
    }
    if (!w) return EBMC_E_IO;
    size_t per = (size_t)s->cin * s->kh * s->kw;
    float *hw = ebmc_xmalloc(per * s->cout * sizeof(float), "inception weight"), *hb = ebmc_xmalloc(s->cout * sizeof(float), "bias");
    for (int o = 0; o < s->cout; o++) {
        double g = bn[0][o] / sqrt((double)bn[3][o] + BN_EPS);
        for (size_t j = 0; j < per; j++) hw[o * per + j] = (float)(w[o * per + j] * g);
        hb[o] = (float)(bn[1][o] - bn[2][o] * g);
    }
    ebmc_status st = ebmc_alloc(net->ctx, (void **)&net->w[i], per * s->cout * sizeof(float));
    if (!st) st = ebmc_alloc(net->ctx, (void **)&net->b[i], s->cout * sizeof(float));
    if (!st) st = ebmc_copy(net->ctx, net->w[i], hw, per * s->cout * sizeof(float), EBMC_COPY_H2D);
    if (!st) st = ebmc_copy(net->ctx, net->b[i], hb, s->cout * sizeof(float), EBMC_COPY_H2D);
    free(hw), free(hb);
    if (st) ebmc_set_err(err, errlen, "Inception %s: %s", s->name, ebmc_ctx_error(net->ctx));
    return st;
}

static ebmc_status load_weights(ebmc_inception_t *net, const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb)) {
        ebmc_set_err(err, errlen, "%s: no Inception weights file (%s) %s", path, strerror(errno), EBMC_INCEPTION_HINT);
        return EBMC_E_IO;
    }
    ebmc_st_file *f;
    if (ebmc_st_open(path, &f, err, errlen)) { /* e.g. a .pth or .pt (a zip or a pickle) given as it is */
        FILE *z = fopen(path, "rb");
        unsigned char m[4] = {0};
        bool zip = z && fread(m, 1, 4, z) == 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4;
        if (z) fclose(z);
        size_t k = strlen(err);
        snprintf(err + k, errlen > k ? errlen - k : 0, "%s %s",
                 zip ? "; it is a zip archive (a PyTorch .pth or TorchScript .pt), which ebmc reads only once "
                       "converted to safetensors" : "; not a safetensors file of Inception weights",
                 EBMC_INCEPTION_HINT);
        return EBMC_E_IO;
    }
    const char *kind = ebmc_st_meta(f, "ebmc_inception");
    ebmc_status st = EBMC_OK;
    if (!kind) {
        ebmc_set_err(err, errlen, "%s: no 'ebmc_inception' metadata: not made by scripts/convert_inception.py %s", path,
                     EBMC_INCEPTION_HINT);
        st = EBMC_E_IO;
    } else {
        snprintf(net->kind, sizeof net->kind, "%s", kind);
        const char *src = ebmc_st_meta(f, "source"), *ssha = ebmc_st_meta(f, "source_sha256");
        snprintf(net->source, sizeof net->source, "%s%s%s", src ? src : "not recorded", ssha ? ", file sha256 " : "",
                 ssha ? ssha : "");
    }
    /* the front end: the metadata's, else (files converted before it was recorded) the TF graph's
     * for the TorchScript-derived weights (the only ones without logits), pytorch-fid's for its .pth */
    const char *fe = st ? NULL : ebmc_st_meta(f, "front_end");
    net->tf_front = !ebmc_st_find(f, "fc.weight");
    if (fe && !strcmp(fe, "tf")) net->tf_front = true;
    else if (fe && !strcmp(fe, "pytorch-fid")) net->tf_front = false;
    else if (fe) {
        ebmc_set_err(err, errlen, "%s: metadata front_end '%s' is neither 'tf' nor 'pytorch-fid' %s", path, fe,
                     EBMC_INCEPTION_HINT);
        st = EBMC_E_IO;
    }
    net->in_lo = -1.0f, net->in_hi = net->tf_front ? 0.9921875f : 1.0f;
    for (int i = 0; !st && i < net->n_convs; i++) st = load_conv(net, i, f, path, err, errlen);
    /* the logits layer: pytorch-fid's .pth has it; TF-derived files (the TorchScript's) do not */
    int64_t fs[2] = {EBMC_INCEPTION_CLASSES, EBMC_INCEPTION_DIMS};
    bool has_fc = ebmc_st_find(f, "fc.weight") != NULL;
    const float *fc = st || !has_fc ? NULL : tensor(f, path, "fc.weight", 2, fs, err, errlen);
    size_t fb = (size_t)EBMC_INCEPTION_CLASSES * EBMC_INCEPTION_DIMS * sizeof(float);
    if (!st && has_fc && !fc) st = EBMC_E_IO;
    if (!st && fc) st = ebmc_alloc(net->ctx, (void **)&net->fc_w, fb);
    if (!st && fc) st = ebmc_copy(net->ctx, net->fc_w, fc, fb, EBMC_COPY_H2D);
    ebmc_st_close(f);
    if (!st) st = ebmc_sha256_file(path, net->sha256, err, errlen);
    return st;
}

static ebmc_status alloc_buffers(ebmc_inception_t *net, char *err, size_t errlen) {
    size_t B = (size_t)net->max_batch, act = B * inc_max_activation() * sizeof(float);
    float **bufs[4] = {&net->x, &net->y, &net->t1, &net->t2};
    ebmc_status st = ebmc_alloc(net->ctx, (void **)&net->in, B * 3 * net->in_h * net->in_w * sizeof(float));
    if (!st && (net->in_lo != -1.0f || net->in_hi != 1.0f)) { /* x in [-1, 1] -> lo + (x + 1)(hi - lo)/2 */
        float a = (net->in_hi - net->in_lo) * 0.5f, sv[3] = {a, a, a}, bv[3];
        for (int c = 0; c < 3; c++) bv[c] = net->in_lo + a;
        st = ebmc_alloc(net->ctx, (void **)&net->rng_s, sizeof sv);
        if (!st) st = ebmc_alloc(net->ctx, (void **)&net->rng_b, sizeof bv);
        if (!st) st = ebmc_copy(net->ctx, net->rng_s, sv, sizeof sv, EBMC_COPY_H2D);
        if (!st) st = ebmc_copy(net->ctx, net->rng_b, bv, sizeof bv, EBMC_COPY_H2D);
    }
    for (int i = 0; i < 4 && !st; i++) st = ebmc_alloc(net->ctx, (void **)bufs[i], act);
    if (!st) st = ebmc_alloc(net->ctx, (void **)&net->pool3, B * EBMC_INCEPTION_DIMS * sizeof(float));
    if (!st && net->fc_w) st = ebmc_alloc(net->ctx, (void **)&net->logits, B * EBMC_INCEPTION_CLASSES * sizeof(float));
    if (st)
        ebmc_set_err(err, errlen, "Inception: %.0f MiB of activations for batch %d: %s (HINT: a smaller --batch)",
                     4.0 * act / 1048576.0, net->max_batch, ebmc_ctx_error(net->ctx));
    return st;
}

ebmc_status ebmc_inception_load(ebmc_ctx_t *ctx, const char *path, int max_batch, int in_h,
                                int in_w, ebmc_inception_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (max_batch < 1 || in_h < 1 || in_w < 1 || in_h > 4096 || in_w > 4096) {
        ebmc_set_err(err, errlen, "Inception: batch %d of %dx%d images: need batch >= 1 and sizes 1..4096", max_batch,
                     in_h, in_w);
        return EBMC_E_INVALID;
    }
    ebmc_inception_t *net = ebmc_xcalloc(1, sizeof *net, "inception");
    net->ctx = ctx, net->max_batch = max_batch, net->in_h = in_h, net->in_w = in_w;
    inc_build_specs(net);
    ebmc_status st = load_weights(net, path, err, errlen);
    if (!st) st = alloc_buffers(net, err, errlen);
    if (st) {
        ebmc_inception_free(net);
        return st;
    }
    *out = net;
    return EBMC_OK;
}

void ebmc_inception_free(ebmc_inception_t *net) {
    if (!net) return;
    for (int i = 0; i < net->n_convs; i++) ebmc_free(net->ctx, net->w[i]), ebmc_free(net->ctx, net->b[i]);
    float *bufs[] = {net->fc_w, net->in, net->x, net->y, net->t1, net->t2, net->pool3, net->logits, net->rng_s,
                     net->rng_b};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ebmc_free(net->ctx, bufs[i]);
    free(net);
}

const char *ebmc_inception_kind(const ebmc_inception_t *net) { return net->kind; }
const char *ebmc_inception_sha256(const ebmc_inception_t *net) { return net->sha256; }
const char *ebmc_inception_source(const ebmc_inception_t *net) { return net->source; }
bool ebmc_inception_has_logits(const ebmc_inception_t *net) { return net->fc_w != NULL; }
void ebmc_inception_input_range(const ebmc_inception_t *net, float *lo, float *hi) {
    *lo = net->in_lo, *hi = net->in_hi;
}
bool ebmc_inception_tf_front_end(const ebmc_inception_t *net) { return net->tf_front; }
