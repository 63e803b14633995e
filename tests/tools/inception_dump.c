/* inception_dump WEIGHTS X.npy POOL3.npy LOGITS.npy: runs ebmc's Inception-v3 (CPU backend) on
 * X, float32 (N, 3, H, W) in [-1, 1], and writes pool3 (N, 2048) and the fc logits without bias
 * (N, 1008) as float32 .npy, for tests/oracle/test_inception_torch.py and test_fid_real.py.
 * Weights without a logits layer: LOGITS.npy must be "-" (nothing written). */
#include "ebmc/backend.h"
#include "ebmc/image.h"
#include "ebmc/inception.h"
#include "ebmc/npy.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: inception_dump WEIGHTS X.npy POOL3.npy LOGITS.npy\n");
        return 2;
    }
    char err[2048];
    ebmc_npy_info in;
    float *x;
    if (ebmc_npy_read(argv[2], &in, (void **)&x, err, sizeof err) || in.dtype != EBMC_NPY_F32 || in.ndim != 4 ||
        in.shape[1] != 3) {
        fprintf(stderr, "inception_dump: %s: need float32 (N, 3, H, W) (%s)\n", argv[2], err);
        return 1;
    }
    int n = (int)in.shape[0];
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CPU;
    ebmc_ctx_t *ctx;
    ebmc_inception_t *net;
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err) ||
        ebmc_inception_load(ctx, argv[1], n, (int)in.shape[2], (int)in.shape[3], &net, err, sizeof err)) {
        fprintf(stderr, "inception_dump: %s\n", err);
        return 1;
    }
    float *pool3 = malloc((size_t)n * EBMC_INCEPTION_DIMS * sizeof(float));
    bool want = strcmp(argv[4], "-") != 0;
    if (want != ebmc_inception_has_logits(net)) {
        fprintf(stderr, "inception_dump: %s: LOGITS.npy must be '-' exactly when the weights have no logits layer\n",
                argv[1]);
        return 1;
    }
    float *logits = want ? malloc((size_t)n * EBMC_INCEPTION_CLASSES * sizeof(float)) : NULL;
    int64_t s1[2] = {n, EBMC_INCEPTION_DIMS}, s2[2] = {n, EBMC_INCEPTION_CLASSES};
    if (ebmc_inception_forward(net, x, n, pool3, logits, err, sizeof err) ||
        ebmc_save_npy_f32(argv[3], pool3, 2, s1, err, sizeof err) ||
        (want && ebmc_save_npy_f32(argv[4], logits, 2, s2, err, sizeof err))) {
        fprintf(stderr, "inception_dump: %s\n", err);
        return 1;
    }
    printf("inception_dump: %d images, weights %s (%s, sha256 %.16s...)\n", n, argv[1], ebmc_inception_kind(net),
           ebmc_inception_sha256(net));
    ebmc_inception_free(net);
    ebmc_ctx_free(ctx);
    free(pool3), free(logits), free(x);
    return 0;
}
