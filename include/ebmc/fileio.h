/* defines: ebmc_atomic_open, ebmc_atomic_commit, ebmc_atomic_abort (write a file whole or not at all),
 * ebmc_open_read, ebmc_fopen_read (every reader's way in: regular files only) */
#ifndef EBMC_FILEIO_H
#define EBMC_FILEIO_H

#include "ebmc/common.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Atomic replacement of PATH, for checkpoints, configs and JSON:
 *
 *     char tmp[4096], err[512];
 *     FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, sizeof err);
 *     if (!f) return EBMC_E_IO;                        // err: "PATH: cannot create ..."
 *     if (fwrite(buf, 1, n, f) != n) { ebmc_atomic_abort(f, tmp); return EBMC_E_IO; }
 *     return ebmc_atomic_commit(f, tmp, path, err, sizeof err);
 *
 * Readers of PATH see either its old content or the complete new content, never a mix. */

/* Creates and opens "PATH.tmp.<pid>" for binary writing (same directory as PATH, so the final
 * rename stays on one filesystem) and stores its name in tmp_path. Returns NULL, with the message
 * "PATH: problem" in err, when the name does not fit in tmp_len, the file cannot be created
 * (e.g. the directory does not exist), or PATH exists and is not a regular file (a device such as
 * /dev/full, a FIFO, a directory: the rename would replace it). */
FILE *ebmc_atomic_open(const char *path, char *tmp_path, size_t tmp_len, char *err, size_t errlen);

/* fflush, ferror check, fsync, fclose, rename(tmp_path -> path), fsync of path's directory.
 * Always consumes f. On failure before the rename the temporary is removed, PATH is left as it
 * was and EBMC_E_IO comes back with "PATH: problem". A failed fsync of the directory after a
 * successful rename is also EBMC_E_IO (PATH then has the complete new content, but its
 * durability is not guaranteed); filesystems that cannot fsync a directory (EINVAL, ENOTSUP) are
 * not an error. */
ebmc_status ebmc_atomic_commit(FILE *f, const char *tmp_path, const char *path, char *err,
                               size_t errlen);

/* Closes f (if not NULL) and removes tmp_path (if not NULL or empty). PATH is untouched. */
void ebmc_atomic_abort(FILE *f, const char *tmp_path);

/* Opens path for reading, refusing anything that is not a regular file (after symbolic links):
 * a FIFO, a device such as /dev/zero, a directory or a socket would block or never end. The
 * file is opened without blocking and checked with fstat before any byte is read, so a FIFO
 * cannot stall the open either. Returns the descriptor (O_CLOEXEC, blocking again), or -1 with
 * "PATH: cannot open: REASON" / "PATH: not a regular file (a KIND); ebmc reads regular files
 * only" in err (errno is kept: ENOENT, EACCES, ...; EINVAL for a non-regular file). Every
 * reader of a user-given path opens it through this (or ebmc_fopen_read). */
int ebmc_open_read(const char *path, char *err, size_t errlen);

/* ebmc_open_read as a stdio stream ("rb"); NULL with err set on failure. */
FILE *ebmc_fopen_read(const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
