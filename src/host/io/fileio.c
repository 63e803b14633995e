/* Atomic file replacement: write PATH.tmp.<pid>, flush, fsync, rename onto PATH, fsync the
 * directory. See include/ebmc/fileio.h. */
#include "ebmc/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

FILE *ebmc_atomic_open(const char *path, char *tmp_path, size_t tmp_len, char *err,
                       size_t errlen) {
    if (tmp_path && tmp_len > 0) tmp_path[0] = '\0';
    if (!path || !*path) {
        ebmc_set_err(err, errlen, "(null): no file name given");
        return NULL;
    }
    if (!tmp_path || tmp_len == 0) {
        ebmc_set_err(err, errlen, "%s: no room for the temporary file name", path);
        return NULL;
    }
    int n = snprintf(tmp_path, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= tmp_len) {
        tmp_path[0] = '\0';
        ebmc_set_err(err, errlen, "%s: temporary file name too long (%zu bytes available)", path,
                tmp_len);
        return NULL;
    }
    FILE *f = fopen(tmp_path, "wb");
    if (!f) {
        int e = errno;
        ebmc_set_err(err, errlen, "%s: cannot create temporary file %s: %s", path, tmp_path,
                strerror(e));
        tmp_path[0] = '\0';
        return NULL;
    }
    return f;
}

void ebmc_atomic_abort(FILE *f, const char *tmp_path) {
    if (f) fclose(f);
    if (tmp_path && *tmp_path) remove(tmp_path);
}

/* fsync the directory holding path, so the rename itself survives a crash. */
static int fsync_parent_dir(const char *path, int *err_out) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t len = (size_t)(slash - path);
        if (len >= sizeof dir) {
            *err_out = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *err_out = errno;
        return -1;
    }
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP && e != EOPNOTSUPP) {
        *err_out = e;
        return -1;
    }
    return 0;
}

ebmc_status ebmc_atomic_commit(FILE *f, const char *tmp_path, const char *path, char *err,
                               size_t errlen) {
    if (!f || !tmp_path || !*tmp_path || !path || !*path) {
        ebmc_set_err(err, errlen, "%s: ebmc_atomic_commit: missing file, temporary or target name",
                path ? path : "(null)");
        ebmc_atomic_abort(f, tmp_path);
        return EBMC_E_INVALID;
    }
    const char *step = NULL;
    int e = 0;
    if (fflush(f) != 0) {
        step = "flush";
        e = errno;
    } else if (ferror(f)) {
        step = "write";
        e = errno ? errno : EIO;
    } else if (fsync(fileno(f)) != 0) {
        step = "fsync";
        e = errno;
    }
    if (step) {
        ebmc_set_err(err, errlen, "%s: %s of temporary file %s failed: %s", path, step, tmp_path,
                strerror(e));
        ebmc_atomic_abort(f, tmp_path);
        return EBMC_E_IO;
    }
    if (fclose(f) != 0) {
        e = errno;
        ebmc_set_err(err, errlen, "%s: closing temporary file %s failed: %s", path, tmp_path,
                strerror(e));
        remove(tmp_path);
        return EBMC_E_IO;
    }
    if (rename(tmp_path, path) != 0) {
        e = errno;
        ebmc_set_err(err, errlen, "%s: cannot rename temporary file %s onto it: %s", path, tmp_path,
                strerror(e));
        remove(tmp_path);
        return EBMC_E_IO;
    }
    if (fsync_parent_dir(path, &e) != 0) {
        ebmc_set_err(err, errlen,
                "%s: written completely, but fsync of its directory failed: %s (the file may "
                "not survive a crash)",
                path, strerror(e));
        return EBMC_E_IO;
    }
    return EBMC_OK;
}
