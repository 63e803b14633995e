/* NumPy .npy files read and validated (the header's dtype, order and shape against the file's
 * size). See include/ebmc/npy.h. The .npz container is in npz.c. */
#include "ebmc/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NPY_MAX_HEADER (1u << 20) /* numpy refuses headers over 10 kB by default; be generous */

/* Finds 'key' (single or double quotes) and returns the text after its ':' (spaces skipped). */
static const char *dict_value(const char *h, const char *key) {
    char pat[32];
    for (int q = 0; q < 2; q++) {
        snprintf(pat, sizeof pat, q ? "\"%s\"" : "'%s'", key);
        const char *p = strstr(h, pat);
        if (!p) continue;
        p += strlen(pat);
        while (*p == ' ') p++;
        if (*p != ':') return NULL;
        p++;
        while (*p == ' ') p++;
        return p;
    }
    return NULL;
}

static ebmc_status parse_descr(const char *h, const char *what, ebmc_npy_info *info, char *err,
                               size_t errlen) {
    const char *p = dict_value(h, "descr");
    char d[32] = "";
    if (p && (*p == '\'' || *p == '"')) {
        const char *e = strchr(p + 1, *p);
        if (e && (size_t)(e - p - 1) < sizeof d) memcpy(d, p + 1, (size_t)(e - p - 1));
    }
    if (!*d) {
        ebmc_set_err(err, errlen, "%s: .npy header has no 'descr' string (a structured dtype?)", what);
        return EBMC_E_IO;
    }
    if (!strcmp(d, "|u1") || !strcmp(d, "<u1") || !strcmp(d, ">u1") || !strcmp(d, "=u1") || !strcmp(d, "u1"))
        info->dtype = EBMC_NPY_U8, info->itemsize = 1;
    else if (!strcmp(d, "<f4")) info->dtype = EBMC_NPY_F32, info->itemsize = 4;
    else if (!strcmp(d, "<f8")) info->dtype = EBMC_NPY_F64, info->itemsize = 8;
    else if (d[0] == '>' && (d[1] == 'f' || d[1] == 'i' || d[1] == 'u')) {
        ebmc_set_err(err, errlen, "%s: big-endian dtype '%s': ebmc reads little-endian data (HINT: "
                     "np.save(path, arr.astype('<%s')))", what, d, d + 1);
        return EBMC_E_IO;
    } else {
        ebmc_set_err(err, errlen, "%s: dtype '%s' is not supported: images must be uint8 ('|u1') and "
                     "points float32 ('<f4') (HINT: arr.astype(np.uint8) or arr.astype(np.float32))", what, d);
        return EBMC_E_IO;
    }
    return EBMC_OK;
}

static ebmc_status parse_shape(const char *h, const char *what, ebmc_npy_info *info, char *err,
                               size_t errlen) {
    const char *p = dict_value(h, "shape");
    if (!p || *p != '(') {
        ebmc_set_err(err, errlen, "%s: .npy header has no 'shape' tuple", what);
        return EBMC_E_IO;
    }
    p++;
    info->ndim = 0;
    unsigned long long count = 1;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p) || info->ndim == EBMC_NPY_MAX_NDIM) {
            ebmc_set_err(err, errlen, "%s: .npy shape is malformed or has more than %d dimensions", what,
                         EBMC_NPY_MAX_NDIM);
            return EBMC_E_IO;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || v > (1ull << 40) || (v && count > (1ull << 46) / v)) {
            ebmc_set_err(err, errlen, "%s: .npy shape is too large", what);
            return EBMC_E_IO;
        }
        count *= v;
        info->shape[info->ndim++] = (int64_t)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
    }
    info->count = (size_t)count;
    return EBMC_OK;
}

/* The header's length field and text: version 1.0 (u16) or 2.0/3.0 (u32), little-endian. */
static ebmc_status header_text(const uint8_t *buf, size_t len, const char *what, size_t *hstart,
                               size_t *hlen, char *err, size_t errlen) {
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6)) {
        ebmc_set_err(err, errlen, "%s: not a .npy file (no \\x93NUMPY magic; %zu bytes)", what, len);
        return EBMC_E_IO;
    }
    int major = buf[6];
    if (major < 1 || major > 3) {
        ebmc_set_err(err, errlen, "%s: .npy format version %d.%d is not supported (1.0-3.0)", what, major, buf[7]);
        return EBMC_E_IO;
    }
    *hstart = major == 1 ? 10 : 12;
    if (len < *hstart) {
        ebmc_set_err(err, errlen, "%s: truncated .npy header", what);
        return EBMC_E_IO;
    }
    *hlen = major == 1 ? (size_t)(buf[8] | buf[9] << 8)
                       : (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    if (*hlen > NPY_MAX_HEADER || *hstart + *hlen > len) {
        ebmc_set_err(err, errlen, "%s: truncated .npy header (%zu bytes announced, %zu present)", what, *hlen,
                     len - *hstart);
        return EBMC_E_IO;
    }
    if (*hlen == 0 || buf[*hstart + *hlen - 1] != '\n' || memchr(buf + *hstart, 0, *hlen)) {
        ebmc_set_err(err, errlen, "%s: malformed .npy header (not a text line ending in a newline)", what);
        return EBMC_E_IO;
    }
    return EBMC_OK;
}

ebmc_status ebmc_npy_parse(const uint8_t *buf, size_t len, uint64_t total_size, const char *what,
                           ebmc_npy_info *info, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    size_t hs, hl;
    EBMC_TRY(header_text(buf, len, what, &hs, &hl, err, errlen));
    char *h = malloc(hl + 1);
    if (!h) {
        ebmc_set_err(err, errlen, "%s: out of memory", what);
        return EBMC_E_NOMEM;
    }
    memcpy(h, buf + hs, hl);
    h[hl] = 0;
    ebmc_status s = parse_descr(h, what, info, err, errlen);
    const char *fo = s ? NULL : dict_value(h, "fortran_order");
    if (!s && (!fo || (strncmp(fo, "False", 5) && strncmp(fo, "True", 4)))) {
        ebmc_set_err(err, errlen, "%s: .npy header has no 'fortran_order' flag", what);
        s = EBMC_E_IO;
    } else if (!s && !strncmp(fo, "True", 4)) {
        ebmc_set_err(err, errlen, "%s: Fortran-ordered array: ebmc reads C order (HINT: "
                     "np.save(path, np.ascontiguousarray(arr)))", what);
        s = EBMC_E_IO;
    }
    if (!s) s = parse_shape(h, what, info, err, errlen);
    free(h);
    if (s) return s;
    info->data_offset = hs + hl;
    uint64_t need = (uint64_t)info->count * info->itemsize, have = total_size - info->data_offset;
    if (total_size < info->data_offset || have < need) {
        ebmc_set_err(err, errlen, "%s: truncated: the header's shape needs %llu bytes of data, the file has %llu",
                     what, (unsigned long long)need,
                     (unsigned long long)(total_size < info->data_offset ? 0 : have));
        return EBMC_E_IO;
    }
    if (have > need) {
        ebmc_set_err(err, errlen, "%s: %llu trailing bytes after the %llu bytes the header's shape describes "
                     "(a damaged or concatenated file)", what, (unsigned long long)(have - need),
                     (unsigned long long)need);
        return EBMC_E_IO;
    }
    return EBMC_OK;
}

/* Opens path and reads its first bytes (up to the largest header) and its size. */
static ebmc_status open_head(const char *path, FILE **f, uint8_t **head, size_t *n, uint64_t *size,
                             char *err, size_t errlen) {
    *head = NULL;
    *f = fopen(path, "rb");
    struct stat st;
    if (!*f || fstat(fileno(*f), &st) || !S_ISREG(st.st_mode)) {
        ebmc_set_err(err, errlen, "%s: cannot open: %s", path, *f ? "not a regular file" : strerror(errno));
        if (*f) fclose(*f);
        *f = NULL;
        return EBMC_E_IO;
    }
    *size = (uint64_t)st.st_size;
    size_t cap = NPY_MAX_HEADER + 12;
    *head = malloc(cap);
    if (!*head) {
        fclose(*f);
        *f = NULL;
        ebmc_set_err(err, errlen, "%s: out of memory", path);
        return EBMC_E_NOMEM;
    }
    *n = fread(*head, 1, cap, *f);
    return EBMC_OK;
}

ebmc_status ebmc_npy_read_header(const char *path, ebmc_npy_info *info, char *err, size_t errlen) {
    FILE *f;
    uint8_t *head;
    size_t n;
    uint64_t size;
    EBMC_TRY(open_head(path, &f, &head, &n, &size, err, errlen));
    ebmc_status s = ebmc_npy_parse(head, n, size, path, info, err, errlen);
    free(head);
    fclose(f);
    return s;
}

ebmc_status ebmc_npy_read(const char *path, ebmc_npy_info *info, void **data, char *err,
                          size_t errlen) {
    *data = NULL;
    FILE *f;
    uint8_t *head;
    size_t n;
    uint64_t size;
    EBMC_TRY(open_head(path, &f, &head, &n, &size, err, errlen));
    ebmc_status s = ebmc_npy_parse(head, n, size, path, info, err, errlen);
    free(head);
    size_t bytes = info->count * info->itemsize;
    void *buf = s ? NULL : malloc(bytes ? bytes : 1);
    if (!s && !buf) {
        ebmc_set_err(err, errlen, "%s: out of memory for %zu bytes", path, bytes);
        s = EBMC_E_NOMEM;
    }
    if (!s && (fseek(f, (long)info->data_offset, SEEK_SET) || fread(buf, 1, bytes, f) != bytes)) {
        ebmc_set_err(err, errlen, "%s: read error: %s", path, ferror(f) ? strerror(errno) : "file shrank");
        s = EBMC_E_IO;
    }
    fclose(f);
    if (s) {
        free(buf);
        return s;
    }
    *data = buf;
    return EBMC_OK;
}
