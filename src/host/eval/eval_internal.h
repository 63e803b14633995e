/* defines: the pieces of `ebmc eval` shared by eval_cmd.c (arguments, the run's samples, the
 * protocol JSON) and eval_features.c (sources of images or points, their features through
 * Inception-v3, the reference set). Private to src/host/eval. */
#ifndef EBMC_EVAL_INTERNAL_H
#define EBMC_EVAL_INTERNAL_H

#include "ebmc/data.h"
#include "ebmc/inception.h"
#include "ebmc/metrics.h"
#include "ebmc/recipe.h"

/* Images or points to evaluate: float (n,c,h,w) in [-1, 1] (samples), uint8 (n,c,h,w) (data
 * sets), or float points (n, c) with h = w = 1, which are their own features (no Inception). */
typedef struct {
    int64_t n;
    int c, h, w;
    const float *f;
    const uint8_t *u8;
} eval_src;

/* Features of a source: (n, d) and, for images through weights with a logits layer, the (n, 1008)
 * logits (NULL otherwise). */
typedef struct {
    int64_t n;
    int d;
    float *feat;
    float *logits; /* NULL for points */
} eval_feats;

/* The Inception network, loaded when first needed and reloaded for another input size. */
typedef struct {
    ebmc_ctx_t *ctx;
    const char *weights; /* path, or NULL: eval_weights_path's lookup */
    int batch;
    ebmc_inception_t *net;
    char path[4096];     /* the weights file loaded (eval_weights_path's answer) */
    int h, w;
    double seconds;      /* spent in the network */
    int64_t images;      /* through it */
} eval_net;

static inline bool eval_src_points(const eval_src *s) { return s->h == 1 && s->w == 1 && s->f && !s->u8; }

/* The cache file scripts/get_inception.sh writes, in $XDG_CACHE_HOME/ebmc or ~/.cache/ebmc */
#define EBMC_INCEPTION_CACHE_NAME "inception-2015-12-05.safetensors"
/* The Inception weights to use: flag (--weights) if given, else $EBMC_INCEPTION if set, else the
 * cache file if readable (its path in buf), else NULL. */
const char *eval_weights_path(const char *flag, char *buf, size_t n);

/* Features of src (images through Inception, 1- or 3-channel; points as they are). */
ebmc_status eval_features(eval_net *en, const eval_src *src, eval_feats *out, char *err, size_t errlen);
void eval_feats_free(eval_feats *f);
void eval_net_free(eval_net *en);

/* A data set as a source: a .npy (uint8 images or float32 points), or the data.* of a config
 * file or a run directory's config.ini. first n examples (n < 0: all). *ds must be freed. */
ebmc_status eval_open_data(const char *what, int64_t n, ebmc_dataset_t **ds, eval_src *src, char *err,
                           size_t errlen);

#endif
