/* NumPy .npy files read and validated (the header's dtype, order and shape against the file's
 * size). See include/ebmc/npy.h. The .npz container is in npz.c. */
#include "ebmc/npy.h"
#include "ebmc/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NPY_MAX_HEADER (1u << 20) /* numpy refuses headers over 10 kB by default; be generous */

/* The header is a Python dict literal, {'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }
 * followed by spaces and a newline, read strictly: each of the three keys once (single or double
 * quotes), string / True|False / tuple-of-integers values, commas between items and inside the
 * tuple, the closing brace, nothing else. */
typedef struct {
    const char *p;
    char descr[32];
    int fortran; /* -1: absent */
    bool has_descr, has_shape;
    int ndim;
    int64_t shape[EBMC_NPY_MAX_NDIM];
    const char *why; /* the first problem */
} hdr_parse;

static void skip_ws(hdr_parse *P) {
    while (*P->p == ' ' || *P->p == '\t') P->p++;
}

static bool fail(hdr_parse *P, const char *why) {
    if (!P->why) P->why = why;
    return false;
}

/* a quoted string ('..' or ".."), no escapes, up to cap-1 bytes */
static bool quoted(hdr_parse *P, char *out, size_t cap) {
    char q = *P->p;
    if (q != '\'' && q != '"') return fail(P, "expected a quoted string");
    const char *e = strchr(P->p + 1, q);
    if (!e || (size_t)(e - P->p - 1) >= cap || memchr(P->p + 1, '\\', (size_t)(e - P->p - 1)))
        return fail(P, "unterminated, escaped or over-long string");
    memcpy(out, P->p + 1, (size_t)(e - P->p - 1));
    out[e - P->p - 1] = 0;
    P->p = e + 1;
    return true;
}

static bool shape_tuple(hdr_parse *P) {
    if (*P->p != '(') return fail(P, "'shape' is not a tuple");
    P->p++;
    P->ndim = 0;
    bool comma = false; /* after the last dimension */
    for (;;) {
        skip_ws(P);
        if (*P->p == ')') break;
        if (!isdigit((unsigned char)*P->p)) return fail(P, "'shape' holds something other than integers");
        if (P->ndim == EBMC_NPY_MAX_NDIM) return fail(P, "'shape' has more dimensions than ebmc reads (8)");
        char *end;
        errno = 0;
        unsigned long long v = strtoull(P->p, &end, 10);
        if (errno || v > (1ull << 40)) return fail(P, "a dimension of 'shape' is too large");
        P->shape[P->ndim++] = (int64_t)v;
        P->p = end;
        skip_ws(P);
        comma = *P->p == ',';
        if (comma) P->p++;
        else if (*P->p != ')') return fail(P, "'shape' needs commas between its dimensions");
    }
    if (P->ndim == 1 && !comma) return fail(P, "'shape' (N) is not a tuple: (N,)");
    P->p++;
    return true;
}

static bool header_dict(hdr_parse *P) {
    P->fortran = -1;
    skip_ws(P);
    if (*P->p != '{') return fail(P, "does not begin with '{'");
    P->p++;
    for (;;) {
        skip_ws(P);
        if (*P->p == '}') break;
        char key[32];
        if (!quoted(P, key, sizeof key)) return false;
        skip_ws(P);
        if (*P->p != ':') return fail(P, "expected ':' after a key");
        P->p++;
        skip_ws(P);
        if (!strcmp(key, "descr") && !P->has_descr) {
            if (!quoted(P, P->descr, sizeof P->descr)) return false;
            P->has_descr = true;
        } else if (!strcmp(key, "fortran_order") && P->fortran < 0) {
            if (!strncmp(P->p, "False", 5)) P->fortran = 0, P->p += 5;
            else if (!strncmp(P->p, "True", 4)) P->fortran = 1, P->p += 4;
            else return fail(P, "'fortran_order' is neither True nor False");
        } else if (!strcmp(key, "shape") && !P->has_shape) {
            if (!shape_tuple(P)) return false;
            P->has_shape = true;
        } else {
            return fail(P, "a key other than 'descr', 'fortran_order' and 'shape', or one of them twice");
        }
        skip_ws(P);
        if (*P->p == ',') P->p++;
        else if (*P->p != '}') return fail(P, "expected ',' or '}' after a value");
    }
    P->p++;
    while (*P->p == ' ' || *P->p == '\t' || *P->p == '\n') P->p++;
    if (*P->p) return fail(P, "text after the closing '}'");
    if (!P->has_descr) return fail(P, "no 'descr' string (a structured dtype?)");
    if (P->fortran < 0) return fail(P, "no 'fortran_order' flag");
    if (!P->has_shape) return fail(P, "no 'shape' tuple");
    return true;
}

static ebmc_status parse_descr(const char *d, const char *what, ebmc_npy_info *info, char *err,
                               size_t errlen) {
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

static ebmc_status shape_count(const hdr_parse *P, const char *what, ebmc_npy_info *info, char *err,
                               size_t errlen) {
    unsigned long long count = 1;
    info->ndim = P->ndim;
    for (int i = 0; i < P->ndim; i++) {
        unsigned long long v = (unsigned long long)P->shape[i];
        if (v && count > (1ull << 46) / v) {
            ebmc_set_err(err, errlen, "%s: .npy shape is too large", what);
            return EBMC_E_IO;
        }
        count *= v;
        info->shape[i] = P->shape[i];
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
    hdr_parse P = {.p = h};
    ebmc_status s = EBMC_OK;
    if (!header_dict(&P)) {
        ebmc_set_err(err, errlen, "%s: malformed .npy header: %s", what, P.why);
        s = EBMC_E_IO;
    }
    if (!s) s = parse_descr(P.descr, what, info, err, errlen);
    if (!s && P.fortran) {
        ebmc_set_err(err, errlen, "%s: Fortran-ordered array: ebmc reads C order (HINT: "
                     "np.save(path, np.ascontiguousarray(arr)))", what);
        s = EBMC_E_IO;
    }
    if (!s) s = shape_count(&P, what, info, err, errlen);
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
    *f = ebmc_fopen_read(path, err, errlen);
    struct stat st;
    if (!*f) return EBMC_E_IO;
    if (fstat(fileno(*f), &st)) {
        ebmc_set_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        fclose(*f);
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
