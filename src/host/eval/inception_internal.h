/* defines: struct ebmc_inception and its convolution table, shared by inception_load.c (weights:
 * checked, BatchNorm folded, copied to the device) and inception_net.c (the forward pass).
 * Private to src/host/eval. */
#ifndef EBMC_EVAL_INCEPTION_INTERNAL_H
#define EBMC_EVAL_INCEPTION_INTERNAL_H

#include "ebmc/inception.h"

/* One BasicConv2d: Conv2d(bias=False) + BatchNorm2d(eps=0.001) + ReLU, as torchvision's. */
typedef struct {
    const char *name;  /* state_dict prefix, e.g. "Mixed_5b.branch5x5_2" */
    int cin, cout, kh, kw, stride, ph, pw;
} inc_conv_spec;

#define INC_MAX_CONVS 96

struct ebmc_inception {
    ebmc_ctx_t *ctx;
    int max_batch, in_h, in_w;
    int n_convs;
    inc_conv_spec spec[INC_MAX_CONVS];
    float *w[INC_MAX_CONVS];   /* (cout, cin, kh, kw) BN folded, device */
    float *b[INC_MAX_CONVS];   /* (cout) BN folded, device */
    float *fc_w;               /* (1008, 2048) device; NULL: the weights have no logits layer */
    float *in;                 /* (B, 3, in_h, in_w) device */
    float *x, *y, *t1, *t2;    /* (B, largest activation) device: block in/out, branch scratch */
    float *pool3;              /* (B, 2048) device */
    float *logits;             /* (B, 1008) device; NULL without fc_w */
    bool tf_front;             /* the TF graph's front end ("front_end" metadata): TF 1's resize, (u-128)/128 */
    float in_lo, in_hi;        /* the network's input range: images in [-1, 1] are mapped onto it */
    float *rng_s, *rng_b;      /* (3) device: that affine map per channel; NULL for [-1, 1] */
    char kind[128];
    char source[512];          /* the file's "source" and "source_sha256" metadata */
    char sha256[65];
};

/* Fills net->spec with the 94 convolutions of fid_inception_v3() in module order. */
void inc_build_specs(ebmc_inception_t *net);
/* The index of a convolution by its name (an unknown name is a programming error). */
int inc_find(const ebmc_inception_t *net, const char *name);
/* Floats of the largest activation of one image (64 x 147 x 147 after Conv2d_2b). */
size_t inc_max_activation(void);

#endif
