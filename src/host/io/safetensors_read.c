/* safetensors, part 2 of 2: the validating reader. ebmc_st_open reads the whole file, checks the
 * header lexically (UTF-8, no NUL or raw control characters, integer numbers), parses it with
 * cJSON, validates every entry (dtype, shape, data_offsets covering the buffer exactly, no
 * duplicate names or metadata keys) and indexes the tensors by name; the accessors and
 * ebmc_st_close follow. The writer and the shared helpers are in safetensors.c. */
#include "safetensors_internal.h"
#include "ebmc/fileio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* safetensors dtypes that are valid in the format but that ebmc does not read */
static const char *const OTHER_DTYPES[] = {"BOOL", "I8", "I16", "U16", "U32", "U64",
                                           "F8_E4M3", "F8_E5M2", "F4", "F6_E2M3", "F6_E3M2",
                                           "F8_E8M0", "C64"};

/* ------------------------------------------------------------------ reader */

struct ebmc_st_file {
    char *path;
    char *header;           /* N + 1 bytes, NUL-terminated */
    size_t header_len;      /* N */
    unsigned char *data;    /* the data buffer (file bytes 8 + N ..), malloc-aligned */
    size_t data_len;
    cJSON *root;            /* names and metadata strings point into it */
    int n;
    ebmc_st_tensor *t;      /* (n) in data-offset order */
    const ebmc_st_tensor **by_name; /* (n) sorted by name, for ebmc_st_find */
    int n_meta;
    const char **meta_key, **meta_val; /* (n_meta) file order */
};

int ebmc_st_count(const ebmc_st_file *f) { return f ? f->n : 0; }

const ebmc_st_tensor *ebmc_st_at(const ebmc_st_file *f, int i) {
    return (f && i >= 0 && i < f->n) ? &f->t[i] : NULL;
}

const ebmc_st_tensor *ebmc_st_find(const ebmc_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]->name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *ebmc_st_meta(const ebmc_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
    return NULL;
}

int ebmc_st_meta_count(const ebmc_st_file *f) { return f ? f->n_meta : 0; }

const char *ebmc_st_meta_key(const ebmc_st_file *f, int i) {
    return (f && i >= 0 && i < f->n_meta) ? f->meta_key[i] : NULL;
}

const char *ebmc_st_path(const ebmc_st_file *f) { return f ? f->path : NULL; }

void ebmc_st_close(ebmc_st_file *f) {
    if (!f) return;
    free(f->path);
    free(f->header);
    free(f->data);
    if (f->root) cJSON_Delete(f->root);
    free(f->t);
    free(f->by_name);
    free(f->meta_key);
    free(f->meta_val);
    free(f);
}

/* Lexical checks cJSON does not make: no NUL bytes, no raw control characters inside strings,
 * no \u0000 escapes (C strings could not hold them), and numbers written as integers (no
 * fraction, no exponent). Returns false with a message in msg, and the top-level key the
 * problem sits under (raw, as in the file) in key/keylen. */
static bool header_lex_ok(const char *h, size_t n, char *msg, size_t msglen, const char **key,
                          size_t *keylen) {
    int depth = 0;
    *key = NULL;
    *keylen = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)h[i];
        if (c == '\0') {
            snprintf(msg, msglen, "header has a NUL byte at offset %zu", i);
            return false;
        }
        if (c == '"') {
            size_t start = ++i;
            while (i < n && h[i] != '"') {
                unsigned char s = (unsigned char)h[i];
                if (s == '\0') {
                    snprintf(msg, msglen, "header has a NUL byte at offset %zu", i);
                    return false;
                }
                if (s == '\\') {
                    if (i + 5 < n && h[i + 1] == 'u' && memcmp(h + i + 2, "0000", 4) == 0) {
                        snprintf(msg, msglen,
                                 "header has a \\u0000 (NUL) escape in a string at offset %zu", i);
                        return false;
                    }
                    i += 2;
                    continue;
                }
                if (s < 0x20) {
                    snprintf(msg, msglen,
                             "header has a raw control character 0x%02x inside a string at "
                             "offset %zu (JSON needs it escaped)",
                             s, i);
                    return false;
                }
                i++;
            }
            if (depth == 1) {
                *key = h + start;
                *keylen = (i < n ? i : n) - start;
            }
            i++;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            bool frac = false;
            while (i < n && strchr("0123456789+-.eE", h[i]) && h[i] != '\0') {
                if (h[i] == '.' || h[i] == 'e' || h[i] == 'E') frac = true;
                i++;
            }
            bool in_meta = *key && *keylen == 12 && memcmp(*key, "__metadata__", 12) == 0;
            if (frac && !in_meta) {
                int len = (int)(i - start < 40 ? i - start : 40);
                snprintf(msg, msglen,
                         "number %.*s at header offset %zu is not an integer (shape and "
                         "data_offsets take integers)",
                         len, h + start, start);
                return false;
            }
            continue;
        }
        i++;
    }
    return true;
}

/* a JSON number that is an exact integer in 0 .. 2^53-1; NULL or what is wrong with it */
static const char *json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return "is not a number";
    double d = v->valuedouble;
    if (!(d >= 0)) return "is negative";
    if (d > MAX_JSON_INT) return "exceeds 2^53 - 1";
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return "is not an integer";
    *out = u;
    return NULL;
}

typedef struct {
    ebmc_st_tensor t;
    uint64_t begin, end;
} st_entry;

static int cmp_entry_offsets(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

static void shape_str(char *buf, size_t len, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
}

/* One tensor entry of the header -> e; false with a message naming the tensor. */
static bool parse_entry(const char *path, const cJSON *it, st_entry *e, char *err,
                        size_t errlen) {
    const char *name = it->string;
    if (!cJSON_IsObject(it)) {
        st_err(err, errlen, path, name, "entry is not an object (expected {\"dtype\": ..., "
                                        "\"shape\": [...], \"data_offsets\": [begin, end]})");
        return false;
    }
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    for (const cJSON *c = it->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dt
                             : strcmp(c->string, "shape") == 0        ? &sh
                             : strcmp(c->string, "data_offsets") == 0 ? &off
                                                                      : NULL;
        if (!slot) continue; /* unknown keys are ignored, as the reference reader does */
        if (*slot) {
            st_err(err, errlen, path, name, "duplicate field \"%s\"", c->string);
            return false;
        }
        *slot = c;
    }
    const char *missing = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (missing) {
        st_err(err, errlen, path, name, "missing field \"%s\"", missing);
        return false;
    }
    memset(e, 0, sizeof *e);
    e->t.name = name;
    if (!cJSON_IsString(dt)) {
        st_err(err, errlen, path, name, "dtype is not a string");
        return false;
    }
    int k;
    for (k = 0; k < EBMC_DT_COUNT; k++)
        if (strcmp(dt->valuestring, ebmc_dtype_str((ebmc_dtype)k)) == 0) break;
    if (k == EBMC_DT_COUNT) {
        bool known = false;
        for (size_t j = 0; j < sizeof OTHER_DTYPES / sizeof *OTHER_DTYPES; j++)
            known |= strcmp(dt->valuestring, OTHER_DTYPES[j]) == 0;
        st_err(err, errlen, path, name,
               "%s dtype \"%.40s\" (ebmc reads F32 F64 I64 I32 U8 BF16 F16)",
               known ? "unsupported" : "unknown", dt->valuestring);
        return false;
    }
    e->t.dtype = (ebmc_dtype)k;
    if (!cJSON_IsArray(sh)) {
        st_err(err, errlen, path, name, "shape is not an array");
        return false;
    }
    int nd = cJSON_GetArraySize(sh);
    if (nd > EBMC_ST_MAX_DIMS) {
        st_err(err, errlen, path, name, "shape has %d dimensions; ebmc reads at most %d", nd,
               EBMC_ST_MAX_DIMS);
        return false;
    }
    e->t.ndim = nd;
    int d = 0;
    for (const cJSON *c = sh->child; c; c = c->next, d++) {
        uint64_t v;
        const char *bad = json_uint(c, &v);
        if (bad) {
            if (cJSON_IsNumber(c))
                st_err(err, errlen, path, name,
                       "shape[%d] = %.17g %s (dimensions are non-negative integers)", d,
                       c->valuedouble, bad);
            else
                st_err(err, errlen, path, name, "shape[%d] is not a number", d);
            return false;
        }
        e->t.shape[d] = (int64_t)v;
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
        st_err(err, errlen, path, name, "data_offsets is not an array of two integers");
        return false;
    }
    uint64_t be[2];
    d = 0;
    for (const cJSON *c = off->child; c; c = c->next, d++) {
        const char *bad = json_uint(c, &be[d]);
        if (bad) {
            if (cJSON_IsNumber(c))
                st_err(err, errlen, path, name,
                       "data_offsets[%d] = %.17g %s (offsets are non-negative integers)", d,
                       c->valuedouble, bad);
            else
                st_err(err, errlen, path, name, "data_offsets[%d] is not a number", d);
            return false;
        }
    }
    e->begin = be[0];
    e->end = be[1];
    if (e->begin > e->end) {
        st_err(err, errlen, path, name, "data_offsets [%llu, %llu]: begin > end",
               (unsigned long long)e->begin, (unsigned long long)e->end);
        return false;
    }
    uint64_t nb;
    char shp[256];
    shape_str(shp, sizeof shp, e->t.shape, e->t.ndim);
    if (!st_tensor_bytes(e->t.shape, e->t.ndim, ebmc_dtype_size((ebmc_dtype)k), &nb)) {
        st_err(err, errlen, path, name, "shape %s of %s overflows a 64-bit byte count", shp,
               ebmc_dtype_str((ebmc_dtype)k));
        return false;
    }
    if (e->end - e->begin != nb) {
        st_err(err, errlen, path, name,
               "data_offsets [%llu, %llu] hold %llu bytes, but shape %s of %s needs %llu",
               (unsigned long long)e->begin, (unsigned long long)e->end,
               (unsigned long long)(e->end - e->begin), shp, ebmc_dtype_str((ebmc_dtype)k),
               (unsigned long long)nb);
        return false;
    }
    return true;
}

/* "__metadata__": an object of strings with unique keys */
static bool parse_meta(const char *path, ebmc_st_file *f, const cJSON *m, char *err,
                       size_t errlen) {
    if (!cJSON_IsObject(m)) {
        st_err(err, errlen, path, NULL, "\"__metadata__\" is not an object of strings");
        return false;
    }
    int n = cJSON_GetArraySize(m);
    f->meta_key = malloc((size_t)(n > 0 ? n : 1) * sizeof *f->meta_key);
    f->meta_val = malloc((size_t)(n > 0 ? n : 1) * sizeof *f->meta_val);
    const char **sorted = malloc((size_t)(n > 0 ? n : 1) * sizeof *sorted);
    if (!f->meta_key || !f->meta_val || !sorted) {
        free(sorted);
        st_err(err, errlen, path, NULL, "out of memory");
        return false;
    }
    int i = 0;
    for (const cJSON *c = m->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            free(sorted);
            st_err(err, errlen, path, NULL,
                   "\"__metadata__\" value of '%.200s' is not a string (metadata maps string "
                   "to string)",
                   c->string);
            return false;
        }
        f->meta_key[i] = sorted[i] = c->string;
        f->meta_val[i] = c->valuestring;
    }
    f->n_meta = n;
    qsort(sorted, (size_t)n, sizeof *sorted, st_cmp_str_ptr);
    for (i = 1; i < n; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            st_err(err, errlen, path, NULL, "duplicate \"__metadata__\" key '%.200s'", sorted[i]);
            free(sorted);
            return false;
        }
    free(sorted);
    return true;
}

/* Reads the whole file into f->header / f->data. */
static ebmc_status read_file(const char *path, ebmc_st_file *f, char *err, size_t errlen) {
    FILE *fp = ebmc_fopen_read(path, err, errlen); /* "PATH: cannot open: ..." or "not a regular file" */
    if (!fp) return EBMC_E_IO;
    ebmc_status st = EBMC_E_IO;
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        st_err(err, errlen, path, NULL, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st_err(err, errlen, path, NULL, "not a regular file");
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        st_err(err, errlen, path, NULL,
               "file is %llu bytes, shorter than the 8-byte header length that starts a "
               "safetensors file",
               (unsigned long long)size);
        goto done;
    }
    unsigned char len8[8];
    if (fread(len8, 1, 8, fp) != 8) {
        st_err(err, errlen, path, NULL, "reading the header length failed: %s",
               ferror(fp) ? strerror(errno) : "unexpected end of file");
        goto done;
    }
    uint64_t n = 0;
    for (int k = 0; k < 8; k++) n |= (uint64_t)len8[k] << (8 * k);
    if (n > EBMC_ST_MAX_HEADER) {
        st_err(err, errlen, path, NULL,
               "header length %llu is over the %u-byte limit (HeaderTooLarge): corrupt, or not "
               "a safetensors file",
               (unsigned long long)n, EBMC_ST_MAX_HEADER);
        goto done;
    }
    if (n > size - 8) {
        st_err(err, errlen, path, NULL,
               "header length %llu goes beyond the end of the file (%llu bytes): truncated, or "
               "not a safetensors file",
               (unsigned long long)n, (unsigned long long)size);
        goto done;
    }
    uint64_t dlen = size - 8 - n;
    if (dlen > SIZE_MAX - 1) {
        st_err(err, errlen, path, NULL, "data buffer of %llu bytes does not fit in memory",
               (unsigned long long)dlen);
        st = EBMC_E_NOMEM;
        goto done;
    }
    f->header = malloc((size_t)n + 1);
    f->data = malloc(dlen > 0 ? (size_t)dlen : 1);
    if (!f->header || !f->data) {
        st_err(err, errlen, path, NULL, "out of memory reading %llu bytes",
               (unsigned long long)size);
        st = EBMC_E_NOMEM;
        goto done;
    }
    f->data_len = (size_t)dlen;
    if (fread(f->header, 1, (size_t)n, fp) != (size_t)n ||
        fread(f->data, 1, (size_t)dlen, fp) != (size_t)dlen) {
        st_err(err, errlen, path, NULL, "read failed: %s",
               ferror(fp) ? strerror(errno) : "unexpected end of file (file shrank?)");
        goto done;
    }
    f->header[n] = '\0';
    f->header_len = (size_t)n;
    if (fgetc(fp) != EOF) {
        st_err(err, errlen, path, NULL, "file grew while being read");
        goto done;
    }
    st = EBMC_OK;
done:
    fclose(fp);
    return st;
}

/* Header -> f->root, f->t, f->by_name, f->meta_*; every rule of the format. */
static ebmc_status parse_header(const char *path, ebmc_st_file *f, char *err, size_t errlen) {
    const char *h = f->header;
    size_t n = f->header_len;
    size_t good = st_utf8_valid_prefix((const unsigned char *)h, n);
    if (good != n) {
        st_err(err, errlen, path, NULL, "header is not valid UTF-8 (bad byte 0x%02x at offset %zu)",
               (unsigned char)h[good], good);
        return EBMC_E_IO;
    }
    if (n == 0 || h[0] != '{') {
        st_err(err, errlen, path, NULL, "header is not a JSON object (it must start with '{')");
        return EBMC_E_IO;
    }
    char msg[256];
    const char *key;
    size_t keylen;
    if (!header_lex_ok(h, n, msg, sizeof msg, &key, &keylen)) {
        if (key) {
            char name[201];
            size_t l = keylen < 200 ? keylen : 200;
            memcpy(name, key, l);
            name[l] = '\0';
            st_err(err, errlen, path, name, "%s", msg);
        } else {
            st_err(err, errlen, path, NULL, "%s", msg);
        }
        return EBMC_E_IO;
    }
    const char *end = NULL;
    f->root = cJSON_ParseWithLengthOpts(h, n, &end, 0);
    if (!f->root) {
        size_t at = end && end >= h && end <= h + n ? (size_t)(end - h) : 0;
        st_err(err, errlen, path, NULL, "header is not valid JSON (error near header offset %zu)",
               at);
        return EBMC_E_IO;
    }
    for (const char *p = end; p < h + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st_err(err, errlen, path, NULL,
                   "header has text after the JSON object (at header offset %zu)",
                   (size_t)(p - h));
            return EBMC_E_IO;
        }
    if (!cJSON_IsObject(f->root)) {
        st_err(err, errlen, path, NULL, "header is not a JSON object");
        return EBMC_E_IO;
    }

    int total = cJSON_GetArraySize(f->root);
    st_entry *e = malloc((size_t)(total > 0 ? total : 1) * sizeof *e);
    if (!e) {
        st_err(err, errlen, path, NULL, "out of memory");
        return EBMC_E_NOMEM;
    }
    int nt = 0;
    bool have_meta = false;
    ebmc_status st = EBMC_E_IO;
    for (const cJSON *it = f->root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (have_meta) {
                st_err(err, errlen, path, NULL, "duplicate key \"__metadata__\"");
                goto fail;
            }
            have_meta = true;
            if (!parse_meta(path, f, it, err, errlen)) goto fail;
            continue;
        }
        if (!parse_entry(path, it, &e[nt], err, errlen)) goto fail;
        nt++;
    }

    /* data-offset order; ties (empty tensors) by name so the order is deterministic */
    qsort(e, (size_t)nt, sizeof *e, cmp_entry_offsets);
    f->t = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *f->t);
    f->by_name = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *f->by_name);
    if (!f->t || !f->by_name) {
        st_err(err, errlen, path, NULL, "out of memory");
        st = EBMC_E_NOMEM;
        goto fail;
    }
    for (int i = 0; i < nt; i++) {
        f->t[i] = e[i].t;
        f->by_name[i] = &f->t[i];
    }
    f->n = nt;
    qsort(f->by_name, (size_t)nt, sizeof *f->by_name, st_cmp_name_ptr);
    for (int i = 1; i < nt; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            st_err(err, errlen, path, f->by_name[i]->name, "duplicate tensor name");
            goto fail;
        }

    /* the offsets tile [0, data_len) exactly */
    uint64_t pos = 0;
    for (int i = 0; i < nt; i++) {
        if (e[i].begin > pos) {
            if (i == 0)
                st_err(err, errlen, path, e[i].t.name,
                       "data does not start at offset 0: the first tensor begins at %llu",
                       (unsigned long long)e[i].begin);
            else
                st_err(err, errlen, path, e[i].t.name,
                       "hole of %llu bytes in the data: it begins at %llu, but tensor '%s' "
                       "ends at %llu",
                       (unsigned long long)(e[i].begin - pos), (unsigned long long)e[i].begin,
                       e[i - 1].t.name, (unsigned long long)pos);
            goto fail;
        }
        if (e[i].begin < pos) {
            st_err(err, errlen, path, e[i].t.name,
                   "data_offsets [%llu, %llu] overlap tensor '%s', which ends at %llu",
                   (unsigned long long)e[i].begin, (unsigned long long)e[i].end,
                   e[i - 1].t.name, (unsigned long long)pos);
            goto fail;
        }
        pos = e[i].end;
    }
    if (pos != (uint64_t)f->data_len) {
        if (pos < (uint64_t)f->data_len)
            st_err(err, errlen, path, NULL,
                   "the tensors cover %llu bytes of data, but the file has %zu after the header "
                   "(last end != file size - 8 - N: trailing bytes)",
                   (unsigned long long)pos, f->data_len);
        else
            st_err(err, errlen, path, nt ? e[nt - 1].t.name : NULL,
                   "data ends at %llu, but the file has only %zu bytes after the header "
                   "(last end != file size - 8 - N: truncated?)",
                   (unsigned long long)pos, f->data_len);
        goto fail;
    }
    for (int i = 0; i < nt; i++) f->t[i].data = f->data + e[i].begin;
    free(e);
    return EBMC_OK;
fail:
    free(e);
    return st;
}

ebmc_status ebmc_st_open(const char *path, ebmc_st_file **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out) {
        st_err(err, errlen, path, NULL, "ebmc_st_open: out is NULL");
        return EBMC_E_INVALID;
    }
    *out = NULL;
    if (!path || !*path) {
        st_err(err, errlen, "(null)", NULL, "no file name given");
        return EBMC_E_INVALID;
    }
    ebmc_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        st_err(err, errlen, path, NULL, "out of memory");
        return EBMC_E_NOMEM;
    }
    ebmc_status st = read_file(path, f, err, errlen);
    if (st == EBMC_OK) st = parse_header(path, f, err, errlen);
    if (st != EBMC_OK) {
        ebmc_st_close(f);
        return st;
    }
    *out = f;
    return EBMC_OK;
}
