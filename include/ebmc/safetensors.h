/* defines: ebmc_dtype, ebmc_st_tensor, ebmc_st_write (atomic safetensors writer), ebmc_st_file +
 * ebmc_st_open/_close and accessors (validating reader) */
#ifndef EBMC_SAFETENSORS_H
#define EBMC_SAFETENSORS_H

#include "ebmc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The format (huggingface/safetensors: README.md, safetensors/src/tensor.rs):
 *   bytes 0..7   N, u64 little-endian: header length
 *   next N bytes UTF-8 JSON object {"__metadata__": {str: str}, "name": {"dtype": "F32",
 *                "shape": [d0, ...], "data_offsets": [begin, end)}, ...}, space-padded
 *   the rest     the data buffer: little-endian, row-major, offsets relative to its start */

typedef enum {
    EBMC_DT_F32 = 0,
    EBMC_DT_F64,
    EBMC_DT_I64,
    EBMC_DT_I32,
    EBMC_DT_U8,
    EBMC_DT_BF16,
    EBMC_DT_F16
} ebmc_dtype;

#define EBMC_DT_COUNT 7

size_t ebmc_dtype_size(ebmc_dtype dt);     /* bytes per element; 0 for a value out of range */
const char *ebmc_dtype_str(ebmc_dtype dt); /* "F32", "F64", "I64", "I32", "U8", "BF16", "F16";
                                              "?" for a value out of range */

#define EBMC_ST_MAX_DIMS 8
#define EBMC_ST_MAX_HEADER 100000000u /* readers reject a longer header (HeaderTooLarge) */

typedef struct {
    const char *name; /* state_dict name, e.g. "block2.conv1.weight_orig" */
    ebmc_dtype dtype;
    int ndim;                         /* 0 = scalar (one element) */
    int64_t shape[EBMC_ST_MAX_DIMS];  /* (shape[0], ..., shape[ndim-1]), row-major */
    const void *data;                 /* host memory, prod(shape)*dtype_size bytes,
                                         little-endian; may be NULL when that is 0 */
} ebmc_st_tensor;

/* Writes atomically: PATH.tmp.<pid> written, fflush, fsync, renamed onto PATH, directory fsynced;
 * on any failure the temporary is removed and PATH is left as it was (see ebmc/fileio.h).
 * meta: NULL or an array of n_meta (key, value) string pairs for "__metadata__" (written, in
 * the given order, only when n_meta > 0; keys unique). The header is the reference writer's:
 * compact JSON, "__metadata__" first, then the tensors in reference order (descending dtype
 * alignment, ties broken as safetensors' Dtype order: I64 F64 F32 I32 BF16 F16 U8; then by name,
 * bytewise), padded with spaces to a multiple of 8 bytes; the data follows with no gaps.
 * Names must be unique, non-empty, valid UTF-8 and not "__metadata__"; dims >= 0; ndim in
 * 0..EBMC_ST_MAX_DIMS: else EBMC_E_INVALID (nothing is written). File errors: EBMC_E_IO.
 * err gets "PATH: problem". */
ebmc_status ebmc_st_write(const char *path, const ebmc_st_tensor *tensors, int n,
                          const char *const (*meta)[2], int n_meta, char *err, size_t errlen);

typedef struct ebmc_st_file ebmc_st_file;

/* Reads and validates the whole file (header limits, UTF-8, strict JSON with integer-only
 * numbers, dtypes, shapes, sizes, unique names, offsets that tile the data buffer from 0 to its
 * end with no holes or overlaps); on error returns EBMC_E_IO (or EBMC_E_NOMEM) with one message
 * "PATH: problem" (naming the tensor where there is one) and *out = NULL. Numbers must be
 * written as integers (no fraction or exponent, as the reference reader demands of shape and
 * data_offsets) and lie in 0 .. 2^53-1. Unknown keys inside a tensor entry are ignored, as the
 * reference reader does (but a non-integer number anywhere outside "__metadata__" is rejected).
 * The header need not be padded; NUL characters in names or metadata (raw or \u0000) are
 * rejected. A NULL out or path is EBMC_E_INVALID. */
ebmc_status ebmc_st_open(const char *path, ebmc_st_file **out, char *err, size_t errlen);

int ebmc_st_count(const ebmc_st_file *f);
/* Tensor i in data-offset (file) order, 0 <= i < count; NULL out of range. data points into the
 * file's buffer, valid until ebmc_st_close. The buffer starts 16-byte aligned, so every tensor is
 * aligned to its dtype in files written in reference order; other layouts may leave data
 * unaligned (memcpy it). */
const ebmc_st_tensor *ebmc_st_at(const ebmc_st_file *f, int i);
const ebmc_st_tensor *ebmc_st_find(const ebmc_st_file *f, const char *name); /* NULL if absent */
const char *ebmc_st_meta(const ebmc_st_file *f, const char *key);           /* NULL if absent */
int ebmc_st_meta_count(const ebmc_st_file *f);
const char *ebmc_st_meta_key(const ebmc_st_file *f, int i); /* file order; NULL out of range */
const char *ebmc_st_path(const ebmc_st_file *f);
void ebmc_st_close(ebmc_st_file *f); /* NULL is fine */

/* prod(shape) of a tensor (1 for a scalar). */
int64_t ebmc_st_numel(const ebmc_st_tensor *t);
/* The index of the first NaN or infinity of a float32/float64 tensor, or -1 (none, or another
 * dtype): weights that are not finite are refused where they are read. */
int64_t ebmc_st_nonfinite(const ebmc_st_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
