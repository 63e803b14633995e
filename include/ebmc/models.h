/* defines: ebmc_model_cfg, ebmc_model_build — the named architectures of the recipes, built on
 * the nn graph with PyTorch state_dict names (specs/teaching.md sections 1(e), 2(b), 3.x). Widths
 * are configuration values, so tests build the same topologies small. */
#ifndef EBMC_MODELS_H
#define EBMC_MODELS_H

#include "ebmc/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EBMC_NET_E = 0, /* energy (or the recipe's score f: see the architecture's notes) */
    EBMC_NET_G = 1, /* generator z -> x */
    EBMC_NET_I = 2  /* inference model / encoder x -> (mu, log-variance or log-std) */
} ebmc_net_role;

typedef struct {
    const char *arch; /* see ebmc_model_arch_list() */
    int nz;           /* latent dimension */
    int ngf, ndf, nif;/* generator, EBM and inference-model widths */
    int img_c, img_size;
    int hidden;       /* MLP width (toy data) */
    float dropout;    /* igebm: dropout probability after each residual block's c1 conv (0: no
                       * dropout layers); the layers act while the net's dropout is on */
    bool smooth;      /* tests only: every ReLU/LeakyReLU becomes SiLU, so that finite
                       * differences of a whole net do not straddle kinks */
} ebmc_model_cfg;

/* The paper's values for `arch` (widths, latent size, image size). Returns false if unknown. */
bool ebmc_model_defaults(const char *arch, ebmc_model_cfg *cfg);
/* Names of the architectures, NULL-terminated. */
const char *const *ebmc_model_arch_list(void);
/* Builds (not finalizes) the net of `role` for cfg; NULL with a message in err when the
 * architecture does not have that role or the configuration does not fit. */
ebmc_net_t *ebmc_model_build(const ebmc_model_cfg *cfg, ebmc_net_role role, char *err,
                             size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
