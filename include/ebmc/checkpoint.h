/* defines: ebmc_net_save, ebmc_net_load — a net's parameters and buffers as a safetensors file
 * whose tensor names are the PyTorch state_dict names, so the weights load into the authors'
 * modules. */
#ifndef EBMC_CHECKPOINT_H
#define EBMC_CHECKPOINT_H

#include "ebmc/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes every parameter and buffer (F32; BatchNorm num_batches_tracked as I64 scalars) with
 * metadata: format "pt", ebmc_version, net, precision, the net's own metadata (arch, role,
 * widths) and `extra` (n_extra key/value pairs). Atomic: a failed save leaves `path` as it was. */
ebmc_status ebmc_net_save(ebmc_net_t *net, const char *path, const char *const (*extra)[2],
                          int n_extra, char *err, size_t errlen);

/* Reads `path` into a finalized net. Everything is validated before anything is copied: the
 * file's format, its architecture and role metadata against the net's, every tensor's presence,
 * dtype and shape, and no tensor the net does not have. On failure the net is unchanged and err
 * names the file and the problem (and the tensor). */
ebmc_status ebmc_net_load(ebmc_net_t *net, const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
