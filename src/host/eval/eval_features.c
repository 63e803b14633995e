/* `ebmc eval`'s features: images (float samples in [-1, 1] or uint8 data, mapped as pytorch-fid
 * maps them: u/255 then 2x - 1) through Inception-v3 in batches, grey images replicated to RGB;
 * points are their own features. Data sets as sources: a .npy or a config's data.*. */
#include "eval/eval_internal.h"
#include "train/shell.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void eval_feats_free(eval_feats *f) {
    free(f->feat), free(f->logits);
    f->feat = f->logits = NULL;
}

void eval_net_free(eval_net *en) {
    ebmc_inception_free(en->net);
    en->net = NULL;
}

const char *eval_weights_path(const char *flag, char *buf, size_t n) {
    const char *env = getenv("EBMC_INCEPTION"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (flag) return flag;
    if (env && *env) return env;
    if (xdg && *xdg) snprintf(buf, n, "%s/ebmc/" EBMC_INCEPTION_CACHE_NAME, xdg);
    else if (home && *home) snprintf(buf, n, "%s/.cache/ebmc/" EBMC_INCEPTION_CACHE_NAME, home);
    else return NULL;
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static ebmc_status ensure_net(eval_net *en, int h, int w, char *err, size_t errlen) {
    if (en->net && en->h == h && en->w == w) return EBMC_OK;
    eval_net_free(en);
    char buf[PATH_MAX];
    const char *path = eval_weights_path(en->weights, buf, sizeof buf);
    if (!path) {
        ebmc_set_err(err, errlen, "no Inception weights: not given by --weights FILE nor $EBMC_INCEPTION, and none "
                     "in the cache ($XDG_CACHE_HOME or ~/.cache, then ebmc/" EBMC_INCEPTION_CACHE_NAME ") "
                     EBMC_INCEPTION_HINT);
        return EBMC_E_IO;
    }
    en->h = h, en->w = w;
    snprintf(en->path, sizeof en->path, "%s", path);
    return ebmc_inception_load(en->ctx, path, en->batch, h, w, &en->net, err, errlen);
}

/* images [i0, i0 + k) of src as (k, 3, h, w) floats in [-1, 1] */
static void fill_batch(const eval_src *s, int64_t i0, int k, float *x) {
    size_t hw = (size_t)s->h * s->w, per = (size_t)s->c * hw;
    for (int i = 0; i < k; i++)
        for (int c = 0; c < 3; c++) {
            size_t src = (size_t)(i0 + i) * per + (size_t)(s->c == 1 ? 0 : c) * hw;
            float *dst = x + ((size_t)i * 3 + c) * hw;
            for (size_t p = 0; p < hw; p++) {
                float v = s->u8 ? 2.0f * ((float)s->u8[src + p] / 255.0f) - 1.0f : s->f[src + p];
                dst[p] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v; /* samples clamped, as (x+1)/2 clamped */
            }
        }
}

static ebmc_status image_features(eval_net *en, const eval_src *s, eval_feats *out, char *err, size_t errlen) {
    if (s->c != 1 && s->c != 3) {
        ebmc_set_err(err, errlen, "Inception takes 1- or 3-channel images, not %d channels", s->c);
        return EBMC_E_INVALID;
    }
    EBMC_TRY(ensure_net(en, s->h, s->w, err, errlen));
    out->n = s->n, out->d = EBMC_INCEPTION_DIMS;
    out->feat = malloc((size_t)s->n * EBMC_INCEPTION_DIMS * sizeof(float));
    bool lg = ebmc_inception_has_logits(en->net); /* the TF-derived weights have no logits layer */
    out->logits = lg ? malloc((size_t)s->n * EBMC_INCEPTION_CLASSES * sizeof(float)) : NULL;
    float *x = malloc((size_t)en->batch * 3 * s->h * s->w * sizeof(float));
    ebmc_status st = out->feat && (out->logits || !lg) && x ? EBMC_OK : EBMC_E_NOMEM;
    double t0 = ebmc_now_s();
    for (int64_t i = 0; !st && i < s->n; i += en->batch) {
        int k = (int)(s->n - i < en->batch ? s->n - i : en->batch);
        fill_batch(s, i, k, x);
        st = ebmc_inception_forward(en->net, x, k, out->feat + (size_t)i * EBMC_INCEPTION_DIMS,
                                    lg ? out->logits + (size_t)i * EBMC_INCEPTION_CLASSES : NULL, err, errlen);
    }
    en->seconds += ebmc_now_s() - t0, en->images += s->n;
    free(x);
    if (st == EBMC_E_NOMEM) ebmc_set_err(err, errlen, "out of host memory for the features of %lld images",
                                         (long long)s->n);
    if (st) eval_feats_free(out);
    return st;
}

ebmc_status eval_features(eval_net *en, const eval_src *src, eval_feats *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!eval_src_points(src)) return image_features(en, src, out, err, errlen);
    out->n = src->n, out->d = src->c;
    out->feat = malloc((size_t)src->n * src->c * sizeof(float));
    if (!out->feat) {
        ebmc_set_err(err, errlen, "out of host memory");
        return EBMC_E_NOMEM;
    }
    memcpy(out->feat, src->f, (size_t)src->n * src->c * sizeof(float));
    return EBMC_OK;
}

static ebmc_status config_data(const char *what, ebmc_dataset_t **ds, char *err, size_t errlen) {
    char cfgpath[PATH_MAX + 32];
    struct stat st;
    if (stat(what, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", what);
    else snprintf(cfgpath, sizeof cfgpath, "%s", what);
    const ebmc_recipe *r;
    ebmc_config_t *cfg;
    EBMC_TRY(ebmc_recipe_load_config(cfgpath, 0, NULL, &r, &cfg, err, errlen));
    ebmc_status s = ebmc_run_open_data(cfg, ds, err, errlen);
    ebmc_config_free(cfg);
    return s;
}

ebmc_status eval_open_data(const char *what, int64_t n, ebmc_dataset_t **ds, eval_src *src, char *err,
                           size_t errlen) {
    size_t len = strlen(what);
    bool npy = len > 4 && !strcmp(what + len - 4, ".npy");
    EBMC_TRY(npy ? ebmc_data_npy(what, ds, err, errlen) : config_data(what, ds, err, errlen));
    int c, h, w;
    ebmc_data_shape(*ds, &c, &h, &w);
    int64_t N = ebmc_data_count(*ds);
    *src = (eval_src){n >= 0 && n < N ? n : N, c, h, w, ebmc_data_f32(*ds), ebmc_data_u8(*ds)};
    return EBMC_OK;
}
