/* defines: ebmc_model_pd_defaults, ebmc_model_pd_build -- particle dynamics' architectures
 * (pd_mlp, pd_mnist), reached through ebmc_model_defaults / ebmc_model_build (models.c). */
#ifndef EBMC_NN_MODELS_PD_H
#define EBMC_NN_MODELS_PD_H

#include "ebmc/models.h"

/* false when arch is not one of them */
bool ebmc_model_pd_defaults(const char *arch, ebmc_model_cfg *c);
/* NULL (err set when the config does not fit) for a role other than E */
ebmc_net_t *ebmc_model_pd_build(const ebmc_model_cfg *c, ebmc_net_role role, char *err, size_t errlen);

#endif
