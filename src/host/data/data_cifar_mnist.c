/* CIFAR-10 (binary version) and MNIST (idx, plain or gzip'd) readers. */
#include "data/data_internal.h"
#include "ebmc/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE) /* 3072 */
#define CIFAR_RECORD (1 + CIFAR_PIXELS)            /* 3073 */
#define CIFAR_PER_FILE 10000

static bool is_dir(const char *p) {
    struct stat sb;
    errno = 0;
    if (stat(p, &sb) != 0) return false;
    if (!S_ISDIR(sb.st_mode)) errno = ENOTDIR;
    return S_ISDIR(sb.st_mode);
}

/* What a path that is not a regular file is, for "PATH: is a directory" and the like. */
static const char *not_regular(mode_t m) {
    if (S_ISDIR(m)) return "is a directory";
    if (S_ISFIFO(m)) return "is not a regular file (a FIFO)";
    if (S_ISCHR(m)) return "is not a regular file (a character device)";
    if (S_ISBLK(m)) return "is not a regular file (a block device)";
    if (S_ISSOCK(m)) return "is not a regular file (a socket)";
    return "is not a regular file";
}

/* ---------------------------------------------------------------- CIFAR-10 */

ebmc_status ebmc_data_cifar10(const char *dir, bool train, ebmc_dataset_t **out, char *err,
                              size_t errlen) {
    return ebmc_data_cifar10_ex(dir, train, CIFAR_PER_FILE, out, err, errlen);
}

ebmc_status ebmc_data_cifar10_ex(const char *dir, bool train, int records_per_file,
                                 ebmc_dataset_t **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!out) return ebmc_data_err(EBMC_E_INVALID, err, errlen, dir, "CIFAR-10: out is NULL");
    if (!dir || !dir[0])
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "(no path)",
                             "CIFAR-10: no directory given");
    if (records_per_file < 1 || records_per_file > 1000000)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, dir,
                             "CIFAR-10: records_per_file %d is not in 1..1000000",
                             records_per_file);
    if (!is_dir(dir))
        return ebmc_data_err(EBMC_E_IO, err, errlen, dir,
                             "CIFAR-10: not a directory (%s); HINT: scripts/download_cifar10.sh "
                             "downloads and extracts the binary version",
                             strerror(errno));

    char base[4096];
    int k = snprintf(base, sizeof base, "%s/cifar-10-batches-bin", dir);
    if (k < 0 || (size_t)k >= sizeof base)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, dir, "CIFAR-10: path too long");
    bool sub = is_dir(base);
    if (!sub) snprintf(base, sizeof base, "%s", dir);

    const int nf = train ? 5 : 1;
    char paths[5][4200];
    for (int f = 0; f < nf; f++) {
        if (train)
            snprintf(paths[f], sizeof paths[f], "%s/data_batch_%d.bin", base, f + 1);
        else
            snprintf(paths[f], sizeof paths[f], "%s/test_batch.bin", base);
    }
    const long long expect = (long long)records_per_file * CIFAR_RECORD;
    for (int f = 0; f < nf; f++) {
        struct stat sb;
        if (stat(paths[f], &sb) != 0)
            return ebmc_data_err(EBMC_E_IO, err, errlen, paths[f],
                                 "CIFAR-10 %s file missing (%s)%s; HINT: the binary version "
                                 "(cifar-10-binary.tar.gz, scripts/download_cifar10.sh) holds "
                                 "data_batch_1..5.bin and test_batch.bin",
                                 train ? "training" : "test", strerror(errno),
                                 sub ? "" : " (also looked for a cifar-10-batches-bin/ subfolder)");
        if (!S_ISREG(sb.st_mode))
            return ebmc_data_err(EBMC_E_IO, err, errlen, paths[f], "%s", not_regular(sb.st_mode));
        if ((long long)sb.st_size != expect)
            return ebmc_data_err(EBMC_E_IO, err, errlen, paths[f],
                                 "wrong size: found %lld bytes, expected %lld (%d records of "
                                 "%d bytes)%s",
                                 (long long)sb.st_size, expect, records_per_file, CIFAR_RECORD,
                                 (long long)sb.st_size < expect ? "; the file is truncated" : "");
    }

    const size_t n = (size_t)nf * (size_t)records_per_file;
    ebmc_dataset_t *ds = ebmc_data_alloc(train ? "cifar10-train" : "cifar10-test");
    uint8_t *buf = NULL;
    FILE *fp = NULL;
    ebmc_status st = EBMC_OK;
    if (!ds) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, dir, "out of memory");
    ds->kind = EBMC_DATA_U8_IMAGES;
    ds->n = (int)n;
    ds->c = 3;
    ds->h = ds->w = CIFAR_SIDE;
    ds->u8 = ebmc_data_malloc(n * CIFAR_PIXELS, dir, "CIFAR-10 images", err, errlen);
    ds->labels = ebmc_data_malloc(n, dir, "CIFAR-10 labels", err, errlen);
    buf = ebmc_data_malloc((size_t)expect, dir, "a CIFAR-10 file", err, errlen);
    if (!ds->u8 || !ds->labels || !buf) {
        st = EBMC_E_NOMEM;
        goto done;
    }
    for (int f = 0; f < nf; f++) {
        fp = ebmc_fopen_read(paths[f], err, errlen);
        if (!fp) {
            st = EBMC_E_IO;
            goto done;
        }
        size_t got = fread(buf, 1, (size_t)expect, fp);
        if (got != (size_t)expect) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, paths[f],
                               "read %zu of %lld bytes (%s)", got, expect,
                               ferror(fp) ? strerror(errno) : "file shrank while reading");
            goto done;
        }
        fclose(fp);
        fp = NULL;
        for (int r = 0; r < records_per_file; r++) {
            const uint8_t *rec = buf + (size_t)r * CIFAR_RECORD;
            size_t i = (size_t)f * records_per_file + r;
            if (rec[0] > 9) {
                st = ebmc_data_err(EBMC_E_IO, err, errlen, paths[f],
                                   "record %d (byte offset %zu): label %u is not in 0..9; not a "
                                   "CIFAR-10 binary batch (CIFAR-100 records are 3074 bytes)",
                                   r, (size_t)r * CIFAR_RECORD, rec[0]);
                goto done;
            }
            ds->labels[i] = rec[0];
            memcpy(ds->u8 + i * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS); /* R, G, B planes: CHW */
        }
    }
done:
    if (fp) fclose(fp);
    free(buf);
    if (st != EBMC_OK) {
        ebmc_data_free(ds);
        return st;
    }
    *out = ds;
    return EBMC_OK;
}

/* ---------------------------------------------------------------- MNIST */

static const char *gz_msg(gzFile g, const char *path, int *zerr);

/* The error of a failed gzread (r < 0, or 0 with a zlib error) after n bytes. */
static ebmc_status gz_fail(gzFile g, const char *path, size_t n, char *err, size_t errlen) {
    int zerr = Z_OK;
    const char *msg = gz_msg(g, path, &zerr);
    if (zerr == Z_ERRNO)
        return ebmc_data_err(EBMC_E_IO, err, errlen, path, "read error after %zu bytes (%s)", n,
                             strerror(errno));
    if (zerr == Z_BUF_ERROR) /* zlib: "unexpected end of file" */
        return ebmc_data_err(EBMC_E_IO, err, errlen, path,
                             "truncated gzip file: %s after %zu bytes of data", msg, n);
    if (zerr == Z_MEM_ERROR)
        return ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "zlib: %s", msg);
    return ebmc_data_err(EBMC_E_IO, err, errlen, path,
                         "corrupt gzip data: %s (zlib, after %zu bytes of data)", msg, n);
}

#define GZ_CHECK_MAX ((size_t)1 << 30) /* the most data decoded past the limit, to check it */

/* Reads a plain or gzip'd file (zlib reads both) whole, up to max_bytes + 1 bytes (so that
 * trailing data can be noticed without keeping it all). With check_rest, a gzip stream that
 * goes on past max_bytes is decoded on (into a scratch buffer, at most GZ_CHECK_MAX bytes) to
 * its end: damage often makes a stream decode to more bytes than announced, and its error (a
 * bad code, a bad CRC) lies past them; it is reported as corrupt gzip data rather than as
 * trailing data. The caller stats the path first: a FIFO or a device is never opened here. */
static ebmc_status read_gz(const char *path, size_t max_bytes, bool check_rest, uint8_t **data,
                           size_t *len, char *err, size_t errlen) {
    *data = NULL;
    *len = 0;
    int fd = ebmc_open_read(path, err, errlen);
    if (fd < 0) return EBMC_E_IO;
    gzFile g = gzdopen(fd, "rb");
    if (!g) {
        close(fd);
        return ebmc_data_err(EBMC_E_IO, err, errlen, path, "cannot open (%s)",
                             errno ? strerror(errno) : "zlib could not allocate its state");
    }
    size_t cap = 0, n = 0, limit = max_bytes + 1;
    uint8_t *p = NULL;
    ebmc_status st = EBMC_OK;
    for (;;) {
        if (n == limit) break;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : (1u << 20);
            if (ncap > limit) ncap = limit;
            uint8_t *q = realloc(p, ncap);
            if (!q) {
                st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path,
                                   "out of memory (%zu bytes)", ncap);
                break;
            }
            p = q;
            cap = ncap;
        }
        size_t want = cap - n;
        if (want > (1u << 24)) want = 1u << 24;
        int r = gzread(g, p + n, (unsigned)want);
        int zerr = Z_OK;
        if (r < 0 || (r == 0 && (gz_msg(g, path, &zerr), zerr != Z_OK && zerr != Z_STREAM_END))) {
            st = gz_fail(g, path, n, err, errlen);
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (st == EBMC_OK && n == limit && check_rest && !gzdirect(g)) {
        const unsigned chunk = 1u << 16;
        uint8_t *scratch = malloc(chunk);
        size_t more = 0;
        int r = 0;
        while (scratch && more < GZ_CHECK_MAX && (r = gzread(g, scratch, chunk)) > 0)
            more += (size_t)r;
        free(scratch);
        int zerr = Z_OK;
        if (!scratch)
            st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "out of memory");
        else if (more < GZ_CHECK_MAX &&
                 (r < 0 || (gz_msg(g, path, &zerr), zerr != Z_OK && zerr != Z_STREAM_END)))
            st = gz_fail(g, path, n + more, err, errlen);
    }
    gzclose(g);
    if (st != EBMC_OK) {
        free(p);
        return st;
    }
    *data = p;
    *len = n;
    return EBMC_OK;
}

/* zlib's gzerror message without the "PATH: " it starts with */
static const char *gz_msg(gzFile g, const char *path, int *zerr) {
    const char *m = gzerror(g, zerr);
    size_t k = strlen(path);
    if (m && !strncmp(m, path, k) && m[k] == ':' && m[k + 1] == ' ') m += k + 2;
    return m ? m : "unknown zlib error";
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* dir/name or dir/name.gz, the first that exists (plain first): 1 when it is a regular file;
 * 0 when neither exists (path: "dir/name[.gz]"); -1 when it is something else (a folder, a FIFO,
 * a device; *mode says what), which is never opened: a FIFO would block, /dev/zero never ends. */
static int find_idx(const char *dir, const char *name, char *path, size_t len, mode_t *mode) {
    struct stat sb;
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, len, "%s/%s%s", dir, name, gz ? ".gz" : "");
        if (stat(path, &sb) == 0) {
            *mode = sb.st_mode;
            return S_ISREG(sb.st_mode) ? 1 : -1;
        }
    }
    snprintf(path, len, "%s/%s[.gz]", dir, name);
    return 0;
}

#define MNIST_SIDE 28
#define MNIST_PIXELS (MNIST_SIDE * MNIST_SIDE)
#define MNIST_MAX_COUNT 100000000u /* a header claiming more is not MNIST */

ebmc_status ebmc_data_mnist(const char *dir, bool train, int pad_to, ebmc_dataset_t **out,
                            char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!out) return ebmc_data_err(EBMC_E_INVALID, err, errlen, dir, "MNIST: out is NULL");
    if (!dir || !dir[0])
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "(no path)", "MNIST: no directory given");
    if (pad_to != 0 && (pad_to < MNIST_SIDE || pad_to > 1024))
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, dir,
                             "MNIST: pad_to %d must be 0 (keep 28x28) or in 28..1024", pad_to);
    if (!is_dir(dir))
        return ebmc_data_err(EBMC_E_IO, err, errlen, dir,
                             "MNIST: not a directory; HINT: scripts/download_mnist.sh downloads "
                             "the four idx .gz files");
    const int side = pad_to ? pad_to : MNIST_SIDE;
    const char *img_name = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    const char *lab_name = train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
    char path[4200];
    mode_t mode = 0;
    int found = find_idx(dir, img_name, path, sizeof path, &mode);
    if (found == 0)
        return ebmc_data_err(EBMC_E_IO, err, errlen, path,
                             "MNIST %s images missing; HINT: scripts/download_mnist.sh",
                             train ? "training" : "test");
    if (found < 0)
        return ebmc_data_err(EBMC_E_IO, err, errlen, path, "%s", not_regular(mode));

    /* the header first, so that the whole read can stop one byte past what it announces */
    uint8_t *raw = NULL;
    size_t len = 0;
    ebmc_status st = read_gz(path, 15, false, &raw, &len, err, errlen);
    if (st != EBMC_OK) return st;
    if (len == 16 && be32(raw) == 0x00000803u && be32(raw + 4) >= 1 &&
        be32(raw + 4) <= MNIST_MAX_COUNT) {
        const size_t announced = 16 + (size_t)be32(raw + 4) * MNIST_PIXELS;
        free(raw);
        st = read_gz(path, announced, true, &raw, &len, err, errlen);
        if (st != EBMC_OK) return st;
    }
    ebmc_dataset_t *ds = NULL;
    uint8_t *lraw = NULL;
    if (len < 16) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                           "too short for an idx header: %zu bytes, expected at least 16", len);
        goto done;
    }
    uint32_t magic = be32(raw), count = be32(raw + 4), rows = be32(raw + 8), cols = be32(raw + 12);
    if (magic != 0x00000803u) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                           "bad magic number 0x%08x, expected 0x00000803 (idx3 unsigned bytes)%s",
                           magic,
                           (raw[0] == 0x1f && raw[1] == 0x8b) ? " (gzip'd twice?)" : "");
        goto done;
    }
    if (rows != MNIST_SIDE || cols != MNIST_SIDE) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                           "images are %ux%u, expected 28x28", rows, cols);
        goto done;
    }
    if (count < 1 || count > MNIST_MAX_COUNT) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path, "implausible image count %u", count);
        goto done;
    }
    size_t want = (size_t)count * MNIST_PIXELS;
    if (len - 16 != want) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                           len - 16 < want
                               ? "truncated: found %zu bytes of image data, expected %zu (%u "
                                 "images of 28x28)"
                               : "trailing data: more than %zu bytes of image data, expected "
                                 "%zu (%u images of 28x28)",
                           len - 16 < want ? len - 16 : want, want, count);
        goto done;
    }

    ds = ebmc_data_alloc(train ? "mnist-train" : "mnist-test");
    if (!ds) {
        st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "out of memory");
        goto done;
    }
    ds->kind = EBMC_DATA_U8_IMAGES;
    ds->n = (int)count;
    ds->c = 1;
    ds->h = ds->w = side;
    ds->u8 = ebmc_data_malloc((size_t)count * side * side, path, "MNIST images", err, errlen);
    if (!ds->u8) {
        st = EBMC_E_NOMEM;
        goto done;
    }
    if (side == MNIST_SIDE) {
        memcpy(ds->u8, raw + 16, want);
    } else {
        const int off = (side - MNIST_SIDE) / 2;
        memset(ds->u8, 0, (size_t)count * side * side);
        for (size_t i = 0; i < count; i++)
            for (int y = 0; y < MNIST_SIDE; y++)
                memcpy(ds->u8 + (i * side + (size_t)(y + off)) * side + off,
                       raw + 16 + i * MNIST_PIXELS + (size_t)y * MNIST_SIDE, MNIST_SIDE);
    }

    /* labels: optional, validated when present */
    char lpath[4200];
    found = find_idx(dir, lab_name, lpath, sizeof lpath, &mode);
    if (found < 0) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, lpath, "%s", not_regular(mode));
        goto done;
    }
    if (found > 0) {
        size_t llen = 0;
        st = read_gz(lpath, 8 + (size_t)count, true, &lraw, &llen, err, errlen);
        if (st != EBMC_OK) goto done;
        if (llen < 8) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, lpath,
                               "too short for an idx header: %zu bytes, expected at least 8", llen);
            goto done;
        }
        uint32_t lmagic = be32(lraw), lcount = be32(lraw + 4);
        if (lmagic != 0x00000801u) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, lpath,
                               "bad magic number 0x%08x, expected 0x00000801 (idx1 unsigned bytes)",
                               lmagic);
            goto done;
        }
        if (lcount != count) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, lpath,
                               "%u labels for %u images in %s", lcount, count, path);
            goto done;
        }
        if (llen - 8 != count) {
            if (llen - 8 < count)
                st = ebmc_data_err(EBMC_E_IO, err, errlen, lpath,
                                   "truncated: found %zu bytes of labels, expected %u", llen - 8,
                                   count);
            else
                st = ebmc_data_err(EBMC_E_IO, err, errlen, lpath,
                                   "trailing data after the %u labels", count);
            goto done;
        }
        for (uint32_t i = 0; i < count; i++)
            if (lraw[8 + i] > 9) {
                st = ebmc_data_err(EBMC_E_IO, err, errlen, lpath,
                                   "label %u of item %u is not in 0..9", lraw[8 + i], i);
                goto done;
            }
        ds->labels = ebmc_data_malloc(count, lpath, "MNIST labels", err, errlen);
        if (!ds->labels) {
            st = EBMC_E_NOMEM;
            goto done;
        }
        memcpy(ds->labels, lraw + 8, count);
    }
done:
    free(raw);
    free(lraw);
    if (st != EBMC_OK) {
        ebmc_data_free(ds);
        return st;
    }
    *out = ds;
    return EBMC_OK;
}
