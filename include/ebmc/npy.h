/* defines: ebmc_npy_info, ebmc_npy_parse, ebmc_npy_read_header, ebmc_npy_read (NumPy .npy files
 * read and validated), ebmc_npy_header (the header numpy's np.save writes) and ebmc_npz_write /
 * ebmc_npz_read_f64 (.npz: a zip of .npy members, as np.savez writes and np.load reads).
 *
 * Accepted: format versions 1.0, 2.0 and 3.0; C order; dtypes uint8 ('|u1', '<u1', '>u1': one
 * byte has no byte order), little-endian float32 ('<f4') and float64 ('<f8'). Everything else is
 * EBMC_E_IO with one message "PATH: problem" naming what was found and, where there is one, the
 * NumPy call that fixes it (a big-endian '>f4': arr.astype('<f4'); Fortran order:
 * np.ascontiguousarray). The data must be exactly prod(shape) * itemsize bytes: fewer is
 * "truncated", more is "trailing bytes" (a file cut short or two files concatenated). */
#ifndef EBMC_NPY_H
#define EBMC_NPY_H

#include "ebmc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EBMC_NPY_U8 = 0, EBMC_NPY_F32 = 1, EBMC_NPY_F64 = 2 } ebmc_npy_dtype;

#define EBMC_NPY_MAX_NDIM 8
typedef struct {
    ebmc_npy_dtype dtype;
    int ndim;
    int64_t shape[EBMC_NPY_MAX_NDIM];
    size_t count;       /* prod(shape) */
    size_t itemsize;    /* 1, 4 or 8 */
    size_t data_offset; /* bytes before the data: magic, version, length, header */
} ebmc_npy_info;

/* Parses the header at buf (len bytes available, at least the whole header) of a .npy whose
 * total size is total_size bytes (the data must be exactly its remainder). what: the name used in
 * messages. */
ebmc_status ebmc_npy_parse(const uint8_t *buf, size_t len, uint64_t total_size, const char *what,
                           ebmc_npy_info *info, char *err, size_t errlen);
/* Reads and checks only the header of a file (shape known before any data is read). */
ebmc_status ebmc_npy_read_header(const char *path, ebmc_npy_info *info, char *err, size_t errlen);
/* Reads a whole file: *data (malloc'd, free() it) holds count * itemsize bytes in the file's
 * dtype. On failure *data is NULL. */
ebmc_status ebmc_npy_read(const char *path, ebmc_npy_info *info, void **data, char *err,
                          size_t errlen);

/* The header numpy 1.24's np.save writes for dtype descr ('|u1', '<f4', '<f8') and shape: magic,
 * version 1.0, length, dict, padding to a multiple of 64. Returns its length, or 0 when it does
 * not fit in cap bytes. */
size_t ebmc_npy_header(char *out, size_t cap, const char *descr, int ndim, const int64_t *shape);

/* An .npz of float64 arrays as np.savez writes it: a zip (stored, no compression) of NAME.npy
 * members, written atomically. names[i] with ndim[i], shapes[i] (up to 4 dims) and data[i]. */
ebmc_status ebmc_npz_write_f64(const char *path, int n, const char *const *names,
                               const int *ndim, const int64_t (*shapes)[4],
                               const double *const *data, char *err, size_t errlen);
/* Member NAME.npy of an .npz (stored or deflated, as np.savez / np.savez_compressed write it)
 * as float64 (a float32 member is widened): *out malloc'd, info its header. EBMC_E_IO names the
 * file and the member when it is missing or malformed. */
ebmc_status ebmc_npz_read_f64(const char *path, const char *name, ebmc_npy_info *info,
                              double **out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
