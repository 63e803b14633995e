/* safetensors, part 1 of 2: the dtype table, the helpers both parts share, and the writer
 * (ebmc_st_write: arguments checked, the header as the reference implementation writes it, with
 * tensors in its order, and the file written atomically). The validating reader (ebmc_st_open
 * and the accessors) is in safetensors_read.c; the shared declarations are in
 * safetensors_internal.h. See include/ebmc/safetensors.h for the format and the rules. */
#include "safetensors_internal.h"
#include "ebmc/fileio.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ref_rank: position in safetensors' `enum Dtype` (BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16
 * I32 U32 F32 F64 I64 U64), whose derived order is the reference writer's sort key. */
static const struct {
    const char *str;
    size_t size;
    int ref_rank;
} DT[EBMC_DT_COUNT] = {
    [EBMC_DT_F32] = {"F32", 4, 11},  [EBMC_DT_F64] = {"F64", 8, 12},
    [EBMC_DT_I64] = {"I64", 8, 13},  [EBMC_DT_I32] = {"I32", 4, 9},
    [EBMC_DT_U8] = {"U8", 1, 1},     [EBMC_DT_BF16] = {"BF16", 2, 8},
    [EBMC_DT_F16] = {"F16", 2, 7},
};

size_t ebmc_dtype_size(ebmc_dtype dt) {
    return ((unsigned)dt < EBMC_DT_COUNT) ? DT[dt].size : 0;
}

const char *ebmc_dtype_str(ebmc_dtype dt) {
    return ((unsigned)dt < EBMC_DT_COUNT) ? DT[dt].str : "?";
}

int64_t ebmc_st_numel(const ebmc_st_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

int64_t ebmc_st_nonfinite(const ebmc_st_tensor *t) {
    if (t->dtype != EBMC_DT_F32 && t->dtype != EBMC_DT_F64) return -1;
    int64_t n = ebmc_st_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (t->dtype == EBMC_DT_F32) {
            float x;
            memcpy(&x, (const char *)t->data + 4 * i, 4);
            v = x;
        } else {
            memcpy(&v, (const char *)t->data + 8 * i, 8);
        }
        if (!isfinite(v)) return i;
    }
    return -1;
}

/* ------------------------------------------------------------------ helpers */

/* "PATH: [tensor 'NAME': ]message" into err */
void st_err(char *err, size_t errlen, const char *path, const char *tensor, const char *fmt,
            ...) {
    if (!err || errlen == 0) return;
    int k = tensor ? snprintf(err, errlen, "%s: tensor '%s': ", path ? path : "(null)", tensor)
                   : snprintf(err, errlen, "%s: ", path ? path : "(null)");
    if (k < 0 || (size_t)k >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 prefix of s[0..n): n when all of it is valid. Strict: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
size_t st_utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

static bool utf8_ok(const char *s) {
    size_t n = strlen(s);
    return st_utf8_valid_prefix((const unsigned char *)s, n) == n;
}

/* growable byte buffer for the header */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
    char t[32];
    int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    sb_putn(b, t, (size_t)k);
}

/* A JSON string as serde_json (and Python's json.dumps(ensure_ascii=False)) write it: only '"',
 * '\\' and control characters are escaped; UTF-8 passes through. */
static void sb_json_str(sbuf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    sb_putn(b, "\"", 1);
    const char *run = s;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        const char *esc = NULL;
        char u[7];
        switch (*c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (*c < 0x20) {
                u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0';
                u[4] = hex[*c >> 4], u[5] = hex[*c & 15], u[6] = '\0';
                esc = u;
            }
        }
        if (esc) {
            sb_putn(b, run, (size_t)((const char *)c - run));
            sb_puts(b, esc);
            run = (const char *)c + 1;
        }
    }
    sb_puts(b, run);
    sb_putn(b, "\"", 1);
}

/* bytes of a tensor; false on overflow. A zero dimension makes it 0 whatever the others are. */
bool st_tensor_bytes(const int64_t *shape, int ndim, size_t dsize, uint64_t *out) {
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) {
            *out = 0;
            return true;
        }
    uint64_t n = dsize;
    for (int d = 0; d < ndim; d++)
        if (__builtin_mul_overflow(n, (uint64_t)shape[d], &n)) return false;
    *out = n;
    return true;
}

int st_cmp_name_ptr(const void *a, const void *b) {
    const ebmc_st_tensor *x = *(const ebmc_st_tensor *const *)a;
    const ebmc_st_tensor *y = *(const ebmc_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

int st_cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ------------------------------------------------------------------ writer */

/* reference order: descending safetensors Dtype, then name (bytewise) */
static int cmp_ref_order(const void *a, const void *b) {
    const ebmc_st_tensor *x = *(const ebmc_st_tensor *const *)a;
    const ebmc_st_tensor *y = *(const ebmc_st_tensor *const *)b;
    int rx = DT[x->dtype].ref_rank, ry = DT[y->dtype].ref_rank;
    if (rx != ry) return rx > ry ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Checks the arguments; on success *order holds the tensors in reference order and *nbytes_out
 * their byte counts (indexed like tensors). */
static ebmc_status write_validate(const char *path, const ebmc_st_tensor *tensors, int n,
                                  const char *const (*meta)[2], int n_meta,
                                  const ebmc_st_tensor ***order_out, char *err, size_t errlen) {
    *order_out = NULL;
    if (n < 0 || (n > 0 && !tensors)) {
        st_err(err, errlen, path, NULL, "bad tensor list (n = %d, tensors = %p)", n,
               (const void *)tensors);
        return EBMC_E_INVALID;
    }
    if (n_meta < 0 || (n_meta > 0 && !meta)) {
        st_err(err, errlen, path, NULL, "bad metadata list (n_meta = %d, meta = %p)", n_meta,
               (const void *)meta);
        return EBMC_E_INVALID;
    }
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        const ebmc_st_tensor *t = &tensors[i];
        if (!t->name || !*t->name) {
            st_err(err, errlen, path, NULL, "tensor %d has no name (names must be non-empty)", i);
            return EBMC_E_INVALID;
        }
        if (strcmp(t->name, "__metadata__") == 0) {
            st_err(err, errlen, path, t->name, "the name \"__metadata__\" is reserved");
            return EBMC_E_INVALID;
        }
        if (!utf8_ok(t->name)) {
            st_err(err, errlen, path, t->name, "name is not valid UTF-8");
            return EBMC_E_INVALID;
        }
        if ((unsigned)t->dtype >= EBMC_DT_COUNT) {
            st_err(err, errlen, path, t->name, "unknown dtype %d", (int)t->dtype);
            return EBMC_E_INVALID;
        }
        if (t->ndim < 0 || t->ndim > EBMC_ST_MAX_DIMS) {
            st_err(err, errlen, path, t->name, "ndim %d is outside 0..%d", t->ndim,
                   EBMC_ST_MAX_DIMS);
            return EBMC_E_INVALID;
        }
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0 || (double)t->shape[d] > MAX_JSON_INT) {
                st_err(err, errlen, path, t->name, "shape[%d] = %lld is negative or too large", d,
                       (long long)t->shape[d]);
                return EBMC_E_INVALID;
            }
        uint64_t nb = 0;
        if (!st_tensor_bytes(t->shape, t->ndim, DT[t->dtype].size, &nb) ||
            __builtin_add_overflow(total, nb, &total) || (double)total > MAX_JSON_INT) {
            st_err(err, errlen, path, t->name, "byte count overflows");
            return EBMC_E_INVALID;
        }
        if (nb > 0 && !t->data) {
            st_err(err, errlen, path, t->name, "data is NULL for %llu bytes",
                   (unsigned long long)nb);
            return EBMC_E_INVALID;
        }
    }
    for (int i = 0; i < n_meta; i++) {
        const char *k = meta[i][0], *v = meta[i][1];
        if (!k || !v) {
            st_err(err, errlen, path, NULL, "metadata entry %d has a NULL key or value", i);
            return EBMC_E_INVALID;
        }
        if (!utf8_ok(k) || !utf8_ok(v)) {
            st_err(err, errlen, path, NULL, "metadata entry '%s' is not valid UTF-8", k);
            return EBMC_E_INVALID;
        }
    }
    if (n_meta > 1) {
        const char **keys = malloc((size_t)n_meta * sizeof *keys);
        if (!keys) {
            st_err(err, errlen, path, NULL, "out of memory");
            return EBMC_E_NOMEM;
        }
        for (int i = 0; i < n_meta; i++) keys[i] = meta[i][0];
        qsort(keys, (size_t)n_meta, sizeof *keys, st_cmp_str_ptr);
        for (int i = 1; i < n_meta; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                st_err(err, errlen, path, NULL, "duplicate metadata key '%s'", keys[i]);
                free(keys);
                return EBMC_E_INVALID;
            }
        free(keys);
    }
    const ebmc_st_tensor **order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) {
        st_err(err, errlen, path, NULL, "out of memory");
        return EBMC_E_NOMEM;
    }
    for (int i = 0; i < n; i++) order[i] = &tensors[i];
    qsort(order, (size_t)n, sizeof *order, st_cmp_name_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            st_err(err, errlen, path, order[i]->name, "duplicate tensor name");
            free(order);
            return EBMC_E_INVALID;
        }
    qsort(order, (size_t)n, sizeof *order, cmp_ref_order);
    *order_out = order;
    return EBMC_OK;
}

ebmc_status ebmc_st_write(const char *path, const ebmc_st_tensor *tensors, int n,
                          const char *const (*meta)[2], int n_meta, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!path || !*path) {
        st_err(err, errlen, "(null)", NULL, "no file name given");
        return EBMC_E_INVALID;
    }
    const ebmc_st_tensor **order = NULL;
    ebmc_status st = write_validate(path, tensors, n, meta, n_meta, &order, err, errlen);
    if (st != EBMC_OK) return st;

    /* the header: compact JSON as serde_json writes it, padded with spaces to a multiple of 8 */
    sbuf h = {0};
    sb_putn(&h, "{", 1);
    bool first = true;
    if (n_meta > 0) {
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_putn(&h, ",", 1);
            sb_json_str(&h, meta[i][0]);
            sb_putn(&h, ":", 1);
            sb_json_str(&h, meta[i][1]);
        }
        sb_putn(&h, "}", 1);
        first = false;
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const ebmc_st_tensor *t = order[i];
        uint64_t nb = 0;
        st_tensor_bytes(t->shape, t->ndim, DT[t->dtype].size, &nb); /* checked above */
        if (!first) sb_putn(&h, ",", 1);
        first = false;
        sb_json_str(&h, t->name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, DT[t->dtype].str);
        sb_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_putn(&h, ",", 1);
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        sb_puts(&h, "],\"data_offsets\":[");
        sb_u64(&h, offset);
        sb_putn(&h, ",", 1);
        sb_u64(&h, offset + nb);
        sb_puts(&h, "]}");
        offset += nb;
    }
    sb_putn(&h, "}", 1);
    while (!h.oom && h.len % 8 != 0) sb_putn(&h, " ", 1);
    if (h.oom) {
        st_err(err, errlen, path, NULL, "out of memory building the header");
        free(h.p);
        free(order);
        return EBMC_E_NOMEM;
    }
    if (h.len > EBMC_ST_MAX_HEADER) {
        st_err(err, errlen, path, NULL,
               "header would be %zu bytes, over the %u-byte limit readers accept", h.len,
               EBMC_ST_MAX_HEADER);
        free(h.p);
        free(order);
        return EBMC_E_INVALID;
    }

    char tmp[4096];
    FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) {
        free(h.p);
        free(order);
        return EBMC_E_WRITE;
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
    const char *what = "header length";
    bool ok = fwrite(len8, 1, 8, f) == 8;
    if (ok) {
        what = "header";
        ok = fwrite(h.p, 1, h.len, f) == h.len;
    }
    for (int i = 0; ok && i < n; i++) {
        const ebmc_st_tensor *t = order[i];
        uint64_t nb = 0;
        st_tensor_bytes(t->shape, t->ndim, DT[t->dtype].size, &nb);
        what = t->name;
        if (nb > 0) ok = fwrite(t->data, 1, (size_t)nb, f) == (size_t)nb;
    }
    int e = errno;
    free(h.p);
    free(order);
    if (!ok) {
        st_err(err, errlen, path, NULL, "writing %s to temporary file %s failed: %s", what, tmp,
               strerror(e));
        ebmc_atomic_abort(f, tmp);
        return EBMC_E_WRITE;
    }
    return ebmc_atomic_commit(f, tmp, path, err, errlen);
}

