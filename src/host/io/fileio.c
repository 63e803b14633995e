/* Atomic file replacement: write PATH.tmp.<pid>, flush, fsync, rename onto PATH, fsync the
 * directory; and the one way every reader opens a path (regular files only). See
 * include/ebmc/fileio.h. */
#include "ebmc/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "directory" : S_ISCHR(m) ? "character device" : S_ISBLK(m) ? "block device"
         : S_ISFIFO(m) ? "FIFO" : S_ISSOCK(m) ? "socket" : "special file";
}

int ebmc_open_read(const char *path, char *err, size_t errlen) {
    if (!path || !*path) {
        ebmc_set_err(err, errlen, "(null): no file name given");
        errno = EINVAL;
        return -1;
    }
    /* O_NONBLOCK: opening a FIFO with no writer returns at once (and is refused below) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        ebmc_set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    int r = fstat(fd, &st);
    if (r != 0 || !S_ISREG(st.st_mode)) {
        int e = r != 0 ? errno : EINVAL;
        if (r != 0) ebmc_set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
        else ebmc_set_err(err, errlen, "%s: not a regular file (a %s); ebmc reads regular files only", path,
                          file_kind(st.st_mode));
        close(fd);
        errno = e;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
        int e = errno;
        ebmc_set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

FILE *ebmc_fopen_read(const char *path, char *err, size_t errlen) {
    int fd = ebmc_open_read(path, err, errlen);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        ebmc_set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
        close(fd);
        errno = e;
    }
    return f;
}

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
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* the rename would replace a device */
        ebmc_set_err(err, errlen, "%s: not a regular file (a %s); ebmc writes regular files only", path,
                     file_kind(st.st_mode));
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
        return EBMC_E_WRITE;
    }
    if (fclose(f) != 0) {
        e = errno;
        ebmc_set_err(err, errlen, "%s: closing temporary file %s failed: %s", path, tmp_path,
                strerror(e));
        remove(tmp_path);
        return EBMC_E_WRITE;
    }
    if (rename(tmp_path, path) != 0) {
        e = errno;
        ebmc_set_err(err, errlen, "%s: cannot rename temporary file %s onto it: %s", path, tmp_path,
                strerror(e));
        remove(tmp_path);
        return EBMC_E_WRITE;
    }
    if (fsync_parent_dir(path, &e) != 0) {
        ebmc_set_err(err, errlen,
                "%s: written completely, but fsync of its directory failed: %s (the file may "
                "not survive a crash)",
                path, strerror(e));
        return EBMC_E_WRITE;
    }
    return EBMC_OK;
}
