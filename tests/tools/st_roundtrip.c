/* st_roundtrip: the C half of the safetensors oracle (tests/oracle/test_safetensors_py.py).
 *
 *   st_roundtrip write PATH   writes the fixed set below with ebmc_st_write
 *   st_roundtrip check PATH   opens PATH with ebmc_st_open and verifies it holds exactly that set
 *                             (any tensor order in the file)
 *
 * Exit status: 0 ok, 1 a failure (one line on stderr says what), 2 usage.
 *
 * The fixed set; values by element index i = 0 .. numel-1 in row-major order:
 *   name        dtype  shape     value
 *   "a.weight"  F32    [3,4,5]   i*0.5 - 3
 *   "b.f64"     F64    [7]       (i - 3) / 8
 *   "c.step"    I64    [2,3]     (i - 2) * 3000000000
 *   "d.i32"     I32    [5]       i*i - 7
 *   "e.u8"      U8     [2,2,3]   (i*37) mod 256
 *   "f.bf16"    BF16   [4]       i*1.5 - 2   (the top 16 bits of the float32: exact)
 *   "g.f16"     F16    [3]       (i - 1)*0.5 (IEEE half bits 0xB800, 0x0000, 0x3800)
 *   "s.scalar"  F32    []        42.5
 *   "z.empty"   F32    [0,3]     no data
 * metadata: "format" = "pt", "note" = ST_NOTE (quotes, backslash, tab, newline, \x01, UTF-8). */
#include "ebmc/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_NOTE "ebmc \"st\" test \\ tab\tnl\nctl\x01 utf8 \xc3\xa9\xe2\x9c\x93"
#define N_SET 9

typedef struct {
    const char *name;
    ebmc_dtype dtype;
    int ndim;
    int64_t shape[3];
} set_entry;

static const set_entry SET[N_SET] = {
    {"a.weight", EBMC_DT_F32, 3, {3, 4, 5}}, {"b.f64", EBMC_DT_F64, 1, {7}},
    {"c.step", EBMC_DT_I64, 2, {2, 3}},      {"d.i32", EBMC_DT_I32, 1, {5}},
    {"e.u8", EBMC_DT_U8, 3, {2, 2, 3}},      {"f.bf16", EBMC_DT_BF16, 1, {4}},
    {"g.f16", EBMC_DT_F16, 1, {3}},          {"s.scalar", EBMC_DT_F32, 0, {0}},
    {"z.empty", EBMC_DT_F32, 2, {0, 3}},
};

static int64_t numel(const set_entry *e) {
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
    return n;
}

/* The expected bytes of entry k (malloc'd; *len bytes). */
static void *make_data(int k, size_t *len) {
    const set_entry *e = &SET[k];
    int64_t n = numel(e);
    *len = (size_t)n * ebmc_dtype_size(e->dtype);
    unsigned char *p = malloc(*len ? *len : 1);
    if (!p) {
        fprintf(stderr, "st_roundtrip: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) {
        switch (k) {
        case 0: ((float *)p)[i] = (float)i * 0.5f - 3.0f; break;
        case 1: ((double *)p)[i] = (double)(i - 3) / 8.0; break;
        case 2: ((int64_t *)p)[i] = (i - 2) * 3000000000LL; break;
        case 3: ((int32_t *)p)[i] = (int32_t)(i * i - 7); break;
        case 4: p[i] = (unsigned char)((i * 37) % 256); break;
        case 5: {
            float f = (float)i * 1.5f - 2.0f;
            uint32_t u;
            memcpy(&u, &f, 4);
            ((uint16_t *)p)[i] = (uint16_t)(u >> 16);
            break;
        }
        case 6: {
            static const uint16_t half[3] = {0xB800, 0x0000, 0x3800};
            ((uint16_t *)p)[i] = half[i];
            break;
        }
        case 7: ((float *)p)[i] = 42.5f; break;
        default: break;
        }
    }
    return p;
}

static int do_write(const char *path) {
    ebmc_st_tensor t[N_SET];
    void *bufs[N_SET];
    /* handed over in a scrambled order: the writer must sort */
    static const int perm[N_SET] = {8, 4, 0, 6, 2, 7, 3, 1, 5};
    for (int j = 0; j < N_SET; j++) {
        int k = perm[j];
        size_t len;
        bufs[j] = make_data(k, &len);
        memset(&t[j], 0, sizeof t[j]);
        t[j].name = SET[k].name;
        t[j].dtype = SET[k].dtype;
        t[j].ndim = SET[k].ndim;
        for (int d = 0; d < SET[k].ndim; d++) t[j].shape[d] = SET[k].shape[d];
        t[j].data = bufs[j];
    }
    const char *const meta[2][2] = {{"format", "pt"}, {"note", ST_NOTE}};
    char err[1024];
    ebmc_status st = ebmc_st_write(path, t, N_SET, meta, 2, err, sizeof err);
    for (int j = 0; j < N_SET; j++) free(bufs[j]);
    if (st != EBMC_OK) {
        fprintf(stderr, "st_roundtrip: write failed (%s): %s\n", ebmc_status_str(st), err);
        return 1;
    }
    return 0;
}

static int do_check(const char *path) {
    char err[1024];
    ebmc_st_file *f = NULL;
    ebmc_status st = ebmc_st_open(path, &f, err, sizeof err);
    if (st != EBMC_OK) {
        fprintf(stderr, "st_roundtrip: open failed (%s): %s\n", ebmc_status_str(st), err);
        return 1;
    }
    int rc = 0;
    if (ebmc_st_count(f) != N_SET) {
        fprintf(stderr, "st_roundtrip: %s: %d tensors, expected %d\n", path, ebmc_st_count(f),
                N_SET);
        rc = 1;
    }
    for (int k = 0; k < N_SET && rc == 0; k++) {
        const set_entry *e = &SET[k];
        const ebmc_st_tensor *t = ebmc_st_find(f, e->name);
        if (!t) {
            fprintf(stderr, "st_roundtrip: %s: tensor '%s' missing\n", path, e->name);
            rc = 1;
            break;
        }
        bool shape_ok = t->dtype == e->dtype && t->ndim == e->ndim;
        for (int d = 0; shape_ok && d < e->ndim; d++) shape_ok = t->shape[d] == e->shape[d];
        if (!shape_ok) {
            fprintf(stderr, "st_roundtrip: %s: tensor '%s': dtype %s ndim %d, expected %s ndim %d"
                            " (or a dimension differs)\n",
                    path, e->name, ebmc_dtype_str(t->dtype), t->ndim, ebmc_dtype_str(e->dtype),
                    e->ndim);
            rc = 1;
            break;
        }
        size_t len;
        void *want = make_data(k, &len);
        if (len > 0 && memcmp(want, t->data, len) != 0) {
            size_t at = 0;
            while (((unsigned char *)want)[at] == ((const unsigned char *)t->data)[at]) at++;
            fprintf(stderr, "st_roundtrip: %s: tensor '%s': bytes differ from byte %zu\n", path,
                    e->name, at);
            rc = 1;
        }
        free(want);
    }
    const char *fmt = ebmc_st_meta(f, "format"), *note = ebmc_st_meta(f, "note");
    if (rc == 0 && (ebmc_st_meta_count(f) != 2 || !fmt || strcmp(fmt, "pt") != 0 || !note ||
                    strcmp(note, ST_NOTE) != 0)) {
        fprintf(stderr, "st_roundtrip: %s: metadata differs (%d keys; format=%s)\n", path,
                ebmc_st_meta_count(f), fmt ? fmt : "(absent)");
        rc = 1;
    }
    ebmc_st_close(f);
    if (rc == 0) printf("st_roundtrip: %s: all %d tensors and the metadata match\n", path, N_SET);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "write") != 0 && strcmp(argv[1], "check") != 0)) {
        fprintf(stderr, "usage: st_roundtrip write|check PATH\n");
        return 2;
    }
    return strcmp(argv[1], "write") == 0 ? do_write(argv[2]) : do_check(argv[2]);
}
