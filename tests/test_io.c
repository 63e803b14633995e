/* Checkpoint file layer: safetensors writer and reader, atomic file replacement.
 *   - round trips of every dtype, scalars, empty tensors and metadata
 *   - the reference layout: byte-exact against the reference writer's own test vectors, header
 *     8-aligned and space-padded, data tiled with no gaps, reference tensor order
 *   - every malformed file the reader must reject (built byte by byte here): EBMC_E_IO with a
 *     message naming the file, the problem and, where there is one, the tensor
 *   - unusual but valid files it must accept
 *   - the atomic writer: no temporary left behind, never a half-written target. */
#include "testutil.h"
#include "ebmc/fileio.h"
#include "ebmc/safetensors.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char DIRP[256]; /* a fresh mkdtemp directory per run */

static int setup(void **state) { return tu_tmpdir_create(DIRP, sizeof DIRP, "test_io"); }

static int teardown(void **state) {
    tu_tmpdir_remove(DIRP);
    return 0;
}

static const char *tpath(const char *name) { return tu_path(DIRP, "%s", name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* the whole file (malloc'd), or NULL if it does not exist */
static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat sb;
    assert_int_equal(fstat(fileno(f), &sb), 0);
    *n = (size_t)sb.st_size;
    unsigned char *p = malloc(*n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* entries of DIRP whose name contains ".tmp." */
static int count_temporaries(void) {
    DIR *d = opendir(DIRP);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* le64(N) + header (json_len bytes, padded with spaces to a multiple of 8 if pad) + data_len
 * bytes of pattern; returns the size. */
static size_t build(unsigned char *out, size_t cap, const char *json, size_t json_len, bool pad,
                    size_t data_len) {
    size_t n = json_len;
    if (pad) n += (8 - n % 8) % 8;
    assert_true(8 + n + data_len <= cap);
    for (int k = 0; k < 8; k++) out[k] = (unsigned char)((uint64_t)n >> (8 * k));
    memcpy(out + 8, json, json_len);
    memset(out + 8 + json_len, ' ', n - json_len);
    for (size_t i = 0; i < data_len; i++) out[8 + n + i] = (unsigned char)(i * 7 + 1);
    return 8 + n + data_len;
}

static unsigned char RAW[1 << 16];

/* writes raw to DIR/label.safetensors, opens it: EBMC_E_IO, *out NULL, message naming the file,
 * containing word, and "tensor 'TENSOR'" when tensor is given */
static void expect_reject_raw(const char *label, const unsigned char *raw, size_t n,
                              const char *word, const char *tensor) {
    char name[128];
    snprintf(name, sizeof name, "%s.safetensors", label);
    const char *path = tpath(name);
    write_bytes(path, raw, n);
    ebmc_st_file *f = (ebmc_st_file *)(uintptr_t)1;
    char err[1024] = "";
    ebmc_status st = ebmc_st_open(path, &f, err, sizeof err);
    printf("  %-22s -> %-9s %s\n", label, ebmc_status_str(st), err);
    assert_int_equal(st, EBMC_E_IO);
    assert_null(f);
    assert_non_null(strstr(err, path));
    if (!strstr(err, word)) fail_msg("%s: message lacks \"%s\": %s", label, word, err);
    if (tensor) {
        char t[256];
        snprintf(t, sizeof t, "tensor '%s'", tensor);
        if (!strstr(err, t)) fail_msg("%s: message does not name %s: %s", label, t, err);
    }
}

static void expect_reject(const char *label, const char *json, size_t data_len, const char *word,
                          const char *tensor) {
    size_t n = build(RAW, sizeof RAW, json, strlen(json), true, data_len);
    expect_reject_raw(label, RAW, n, word, tensor);
}

/* writes, opens, returns the open file (the caller closes it) */
static ebmc_st_file *expect_accept(const char *label, const char *json, bool pad,
                                   size_t data_len) {
    char name[128];
    snprintf(name, sizeof name, "%s.safetensors", label);
    const char *path = tpath(name);
    size_t n = build(RAW, sizeof RAW, json, strlen(json), pad, data_len);
    write_bytes(path, RAW, n);
    ebmc_st_file *f = NULL;
    char err[1024] = "";
    ebmc_status st = ebmc_st_open(path, &f, err, sizeof err);
    if (st != EBMC_OK) fail_msg("%s: rejected: %s", label, err);
    assert_non_null(f);
    assert_string_equal(ebmc_st_path(f), path);
    return f;
}

/* ------------------------------------------------------------------ writer + reader */

static void test_dtype_table(void **state) {
    static const struct {
        ebmc_dtype dt;
        size_t size;
        const char *s;
    } want[] = {{EBMC_DT_F32, 4, "F32"}, {EBMC_DT_F64, 8, "F64"},  {EBMC_DT_I64, 8, "I64"},
                {EBMC_DT_I32, 4, "I32"}, {EBMC_DT_U8, 1, "U8"},    {EBMC_DT_BF16, 2, "BF16"},
                {EBMC_DT_F16, 2, "F16"}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        assert_int_equal(ebmc_dtype_size(want[i].dt), want[i].size);
        assert_string_equal(ebmc_dtype_str(want[i].dt), want[i].s);
    }
    assert_int_equal(ebmc_dtype_size((ebmc_dtype)99), 0);
    assert_string_equal(ebmc_dtype_str((ebmc_dtype)99), "?");
}

static void test_roundtrip(void **state) {
    float w[2 * 3 * 4];
    double d[5];
    int64_t step = 1234567890123LL, big[3] = {-1, INT64_MAX, INT64_MIN};
    int32_t ia[4] = {-7, 0, 7, INT32_MAX};
    uint8_t u[3] = {0, 128, 255};
    uint16_t bf[2] = {0x3F80, 0xC000}, hf[2] = {0x3C00, 0x7C00};
    float scalar = -0.25f;
    for (int i = 0; i < 24; i++) w[i] = (float)i * 0.37f - 2.0f;
    for (int i = 0; i < 5; i++) d[i] = 1.0 / (i + 3);
    ebmc_st_tensor t[] = {
        {"block2.conv1.weight_orig", EBMC_DT_F32, 4, {2, 3, 2, 2}, w},
        {"d", EBMC_DT_F64, 1, {5}, d},
        {"step", EBMC_DT_I64, 0, {0}, &step},
        {"big", EBMC_DT_I64, 1, {3}, big},
        {"ia", EBMC_DT_I32, 2, {2, 2}, ia},
        {"u", EBMC_DT_U8, 1, {3}, u},
        {"bf", EBMC_DT_BF16, 1, {2}, bf},
        {"hf", EBMC_DT_F16, 2, {1, 2}, hf},
        {"scalar", EBMC_DT_F32, 0, {0}, &scalar},
        {"empty", EBMC_DT_F32, 3, {4, 0, 2}, NULL},
        {"empty_u8", EBMC_DT_U8, 1, {0}, NULL},
    };
    int n = (int)(sizeof t / sizeof *t);
    const char *const meta[][2] = {{"format", "pt"},
                                   {"config", "[train]\nlr = 1e-4\n\"quoted\" \\ tab\t\x01"},
                                   {"step", "1200"},
                                   {"", "empty key"},
                                   {"unicode", "\xc3\xa9\xe2\x9c\x93"}};
    const char *path = tpath("rt.safetensors");
    char err[512];
    assert_int_equal(ebmc_st_write(path, t, n, meta, 5, err, sizeof err), EBMC_OK);
    assert_int_equal(count_temporaries(), 0);

    ebmc_st_file *f = NULL;
    ebmc_status st = ebmc_st_open(path, &f, err, sizeof err);
    if (st != EBMC_OK) fail_msg("%s", err);
    assert_int_equal(ebmc_st_count(f), n);
    assert_string_equal(ebmc_st_path(f), path);
    for (int i = 0; i < n; i++) {
        const ebmc_st_tensor *g = ebmc_st_find(f, t[i].name);
        if (!g) fail_msg("tensor '%s' missing", t[i].name);
        assert_string_equal(g->name, t[i].name);
        assert_int_equal(g->dtype, t[i].dtype);
        assert_int_equal(g->ndim, t[i].ndim);
        for (int k = 0; k < t[i].ndim; k++) assert_int_equal(g->shape[k], t[i].shape[k]);
        size_t bytes = (size_t)ebmc_st_numel(&t[i]) * ebmc_dtype_size(t[i].dtype);
        assert_int_equal(ebmc_st_numel(g), ebmc_st_numel(&t[i]));
        if (bytes) assert_memory_equal(g->data, t[i].data, bytes);
        /* reference order keeps every tensor aligned to its dtype */
        assert_int_equal((uintptr_t)g->data % ebmc_dtype_size(g->dtype), 0);
    }
    assert_null(ebmc_st_find(f, "nope"));
    assert_null(ebmc_st_find(f, ""));
    assert_null(ebmc_st_find(f, "__metadata__"));
    assert_null(ebmc_st_at(f, -1));
    assert_null(ebmc_st_at(f, n));
    assert_int_equal(ebmc_st_meta_count(f), 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(ebmc_st_meta_key(f, i), meta[i][0]); /* file order = given order */
        assert_string_equal(ebmc_st_meta(f, meta[i][0]), meta[i][1]);
    }
    assert_null(ebmc_st_meta_key(f, 5));
    assert_null(ebmc_st_meta(f, "absent"));
    ebmc_st_close(f);
    ebmc_st_close(NULL);

    /* no tensors, no metadata: the reference writes "{}" + 6 spaces */
    path = tpath("none.safetensors");
    assert_int_equal(ebmc_st_write(path, NULL, 0, NULL, 0, err, sizeof err), EBMC_OK);
    size_t len;
    unsigned char *raw = read_all(path, &len);
    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    assert_int_equal(len, sizeof empty);
    assert_memory_equal(raw, empty, sizeof empty);
    free(raw);
    assert_int_equal(ebmc_st_open(path, &f, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_st_count(f), 0);
    assert_int_equal(ebmc_st_meta_count(f), 0);
    ebmc_st_close(f);
}

/* Byte-exact against the test vectors of the reference implementation
 * (huggingface/safetensors, safetensors/src/tensor.rs: test_serialization, test_empty,
 * test_serialization_forced_alignement). */
static void test_reference_vectors(void **state) {
    static const float v[6] = {0, 1, 2, 3, 4, 5};
    static const unsigned char vdata[24] = {0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64,
                                            0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64};
    struct {
        const char *label;
        ebmc_st_tensor t;
        int n;
        const char *const (*meta)[2];
        const char *header; /* before padding */
    } cases[] = {
        {"serialization", {"attn.0", EBMC_DT_F32, 3, {1, 2, 3}, v}, 1, NULL,
         "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}"},
        {"forced_alignment", {"attn0", EBMC_DT_F32, 4, {1, 1, 2, 3}, v}, 1, NULL,
         "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}"},
        {"empty_with_metadata", {0}, 0, (const char *const[][2]){{"framework", "pt"}},
         "{\"__metadata__\":{\"framework\":\"pt\"}}"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char err[512], name[64];
        snprintf(name, sizeof name, "ref_%s.safetensors", cases[c].label);
        const char *path = tpath(name);
        assert_int_equal(ebmc_st_write(path, &cases[c].t, cases[c].n, cases[c].meta,
                                       cases[c].meta ? 1 : 0, err, sizeof err),
                         EBMC_OK);
        unsigned char want[256];
        size_t wn = build(want, sizeof want, cases[c].header, strlen(cases[c].header), true, 0);
        if (cases[c].n) {
            memcpy(want + wn, vdata, 24);
            wn += 24;
        }
        size_t len;
        unsigned char *raw = read_all(path, &len);
        printf("  %-20s N = %u, %zu bytes\n", cases[c].label, (unsigned)raw[0], len);
        assert_int_equal(len, wn);
        assert_memory_equal(raw, want, wn);
        free(raw);
    }
}

/* header 8-aligned and space-padded; data tiled from 0 to the end with no gaps; reference order */
static void test_layout_and_order(void **state) {
    static uint8_t buf[4096];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)i;
    /* every dtype, names chosen so that neither input order nor plain name order is the answer */
    ebmc_st_tensor t[] = {
        {"a_u8", EBMC_DT_U8, 1, {3}, buf},          {"b_f16", EBMC_DT_F16, 1, {5}, buf},
        {"c_bf16", EBMC_DT_BF16, 1, {1}, buf},      {"d_i32", EBMC_DT_I32, 1, {3}, buf},
        {"z_f32", EBMC_DT_F32, 2, {1, 3}, buf},     {"B_f32", EBMC_DT_F32, 0, {0}, buf},
        {"e_f64", EBMC_DT_F64, 1, {2}, buf},        {"f_i64", EBMC_DT_I64, 1, {1}, buf},
        {"a_f32_empty", EBMC_DT_F32, 1, {0}, NULL}, {"y_u8", EBMC_DT_U8, 1, {1}, buf},
        {"\xc3\xa9_f32", EBMC_DT_F32, 1, {1}, buf},
    };
    /* safetensors' Dtype order, descending: I64 F64 F32 I32 BF16 F16 U8; then bytewise name */
    static const char *const want[] = {"f_i64", "e_f64", "B_f32", "a_f32_empty", "z_f32",
                                       "\xc3\xa9_f32", "d_i32", "c_bf16", "b_f16", "a_u8",
                                       "y_u8"};
    int n = (int)(sizeof t / sizeof *t);
    const char *path = tpath("order.safetensors");
    char err[512];
    assert_int_equal(ebmc_st_write(path, t, n, (const char *const[][2]){{"k", "v"}}, 1, err,
                                   sizeof err),
                     EBMC_OK);
    size_t len;
    unsigned char *raw = read_all(path, &len);
    uint64_t hn = 0;
    for (int k = 0; k < 8; k++) hn |= (uint64_t)raw[k] << (8 * k);
    assert_int_equal(hn % 8, 0);
    assert_true(8 + hn <= len);
    assert_int_equal(raw[8], '{');
    size_t last = 8 + hn - 1, spaces = 0;
    while (raw[last] == ' ') last--, spaces++;
    assert_int_equal(raw[last], '}');
    assert_true(spaces < 8);
    /* "__metadata__" comes first, tensors follow in data order */
    assert_memory_equal(raw + 8, "{\"__metadata__\":{\"k\":\"v\"},\"f_i64\":", 34);

    ebmc_st_file *f = NULL;
    assert_int_equal(ebmc_st_open(path, &f, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_st_count(f), n);
    const unsigned char *base = ebmc_st_at(f, 0)->data, *pos = base;
    for (int i = 0; i < n; i++) {
        const ebmc_st_tensor *g = ebmc_st_at(f, i);
        printf("  %2d %-12s %-4s offset %td\n", i, g->name, ebmc_dtype_str(g->dtype),
               (const unsigned char *)g->data - base);
        assert_string_equal(g->name, want[i]);
        assert_ptr_equal(g->data, pos); /* no gap */
        assert_int_equal((pos - base) % ebmc_dtype_size(g->dtype), 0);
        pos += (size_t)ebmc_st_numel(g) * ebmc_dtype_size(g->dtype);
    }
    assert_int_equal((size_t)(pos - base), len - 8 - hn); /* last end == file size - 8 - N */
    /* data starts right after the header */
    assert_memory_equal(raw + 8 + hn, buf, 8); /* f_i64's bytes */
    free(raw);
    ebmc_st_close(f);
}

static void test_write_invalid(void **state) {
    float x[4] = {0};
    const char *path = tpath("invalid.safetensors");
    char err[512];
    struct {
        const char *label;
        ebmc_st_tensor t[2];
        int n;
        const char *word;
    } cases[] = {
        {"duplicate", {{"w", EBMC_DT_F32, 1, {1}, x}, {"w", EBMC_DT_U8, 1, {1}, x}}, 2,
         "duplicate"},
        {"empty name", {{"", EBMC_DT_F32, 1, {1}, x}}, 1, "non-empty"},
        {"NULL name", {{NULL, EBMC_DT_F32, 1, {1}, x}}, 1, "non-empty"},
        {"reserved", {{"__metadata__", EBMC_DT_F32, 1, {1}, x}}, 1, "reserved"},
        {"negative dim", {{"w", EBMC_DT_F32, 2, {2, -1}, x}}, 1, "negative"},
        {"ndim 9", {{"w", EBMC_DT_F32, 9, {1}, x}}, 1, "ndim"},
        {"ndim -1", {{"w", EBMC_DT_F32, -1, {1}, x}}, 1, "ndim"},
        {"bad dtype", {{"w", (ebmc_dtype)42, 1, {1}, x}}, 1, "dtype"},
        {"NULL data", {{"w", EBMC_DT_F32, 1, {4}, NULL}}, 1, "NULL"},
        {"bad UTF-8", {{"w\xff", EBMC_DT_F32, 1, {1}, x}}, 1, "UTF-8"},
        {"overflow", {{"w", EBMC_DT_F32, 3, {1LL << 40, 1LL << 40, 4}, x}}, 1, "overflow"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        ebmc_status st = ebmc_st_write(path, cases[c].t, cases[c].n, NULL, 0, err, sizeof err);
        printf("  %-14s -> %s: %s\n", cases[c].label, ebmc_status_str(st), err);
        assert_int_equal(st, EBMC_E_INVALID);
        assert_non_null(strstr(err, path));
        if (!strstr(err, cases[c].word)) fail_msg("%s: no \"%s\" in: %s", cases[c].label,
                                                  cases[c].word, err);
        assert_int_equal(access(path, F_OK), -1); /* nothing written */
    }
    ebmc_st_tensor ok = {"w", EBMC_DT_F32, 1, {1}, x};
    const char *const dup[][2] = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
    assert_int_equal(ebmc_st_write(path, &ok, 1, dup, 3, err, sizeof err), EBMC_E_INVALID);
    assert_non_null(strstr(err, "duplicate metadata key 'a'"));
    const char *const nul[][2] = {{"a", NULL}};
    assert_int_equal(ebmc_st_write(path, &ok, 1, nul, 1, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_st_write(path, &ok, -1, NULL, 0, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_st_write(path, NULL, 1, NULL, 0, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_st_write(path, &ok, 1, NULL, 2, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_st_write(NULL, &ok, 1, NULL, 0, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_temporaries(), 0);
}

/* ------------------------------------------------------------------ reader: rejections */

static void test_reject_framing(void **state) {
    unsigned char b[64] = {0};
    expect_reject_raw("empty_file", b, 0, "shorter than the 8-byte", NULL);
    expect_reject_raw("seven_bytes", b, 7, "shorter than the 8-byte", NULL);
    /* N = 100,000,001 */
    uint64_t big = 100000001;
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(big >> (8 * k));
    memcpy(b + 8, "{}      ", 8);
    expect_reject_raw("header_too_large", b, 16, "HeaderTooLarge", NULL);
    memset(b, 0xff, 8);
    expect_reject_raw("header_len_max", b, 16, "HeaderTooLarge", NULL);
    /* N = 100 in a 24-byte file */
    memset(b, 0, 8);
    b[0] = 100;
    expect_reject_raw("header_past_eof", b, 24, "beyond the end of the file", NULL);
    b[0] = 17; /* one byte past the end */
    expect_reject_raw("header_past_eof_by_1", b, 24, "beyond the end of the file", NULL);
    b[0] = 0;
    expect_reject_raw("header_len_zero", b, 8, "JSON object", NULL);
    /* a NUL byte inside the header */
    size_t n = build(RAW, sizeof RAW, "{\"w\0\":{}}", 9, true, 0);
    expect_reject_raw("nul_in_header", RAW, n, "NUL", NULL);

    /* not a file / no file */
    const char *dir = tpath("a_directory.safetensors");
    assert_int_equal(mkdir(dir, 0755), 0);
    ebmc_st_file *f = NULL;
    char err[512];
    assert_int_equal(ebmc_st_open(dir, &f, err, sizeof err), EBMC_E_IO);
    assert_null(f);
    assert_non_null(strstr(err, dir));
    printf("  directory              -> %s\n", err);
    const char *missing = tpath("missing.safetensors");
    assert_int_equal(ebmc_st_open(missing, &f, err, sizeof err), EBMC_E_IO);
    assert_null(f);
    printf("  missing                -> %s\n", err);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
}

#define T_OK(name) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_reject_header_json(void **state) {
    expect_reject("bad_utf8", "{\"w\xff\":{}}", 0, "UTF-8", NULL);
    expect_reject("overlong_utf8", "{\"w\xc0\xaf\":{}}", 0, "UTF-8", NULL);
    expect_reject("surrogate_utf8", "{\"w\xed\xa0\x80\":{}}", 0, "UTF-8", NULL);
    expect_reject("cut_utf8", "{\"w\":{}}\xe2\x9c", 0, "UTF-8", NULL);
    expect_reject("above_10ffff", "{\"w\xf4\x90\x80\x80\":{}}", 0, "UTF-8", NULL);
    expect_reject("unterminated", "{\"w\":", 0, "not valid JSON", NULL);
    expect_reject("trailing_comma", "{" T_OK("w") ",}", 8, "not valid JSON", NULL);
    expect_reject("single_quotes", "{'w':{}}", 0, "not valid JSON", NULL);
    expect_reject("lone_surrogate", "{\"\\ud800\":{}}", 0, "not valid JSON", NULL);
    expect_reject("array", "[1,2]", 0, "JSON object", NULL);
    expect_reject("string", "\"str\"", 0, "JSON object", NULL);
    expect_reject("leading_space", " {}", 0, "JSON object", NULL);
    expect_reject("text_after", "{} x", 0, "after the JSON object", NULL);
    expect_reject("two_objects", "{}{}", 0, "after the JSON object", NULL);
    expect_reject("nul_escape", "{\"w\\u0000x\":{}}", 0, "NUL", NULL);
    expect_reject("raw_control", "{\"w\x01\":{}}", 0, "control character", NULL);
}

static void test_reject_entries(void **state) {
    static const struct {
        const char *label, *json;
        size_t data;
        const char *word, *tensor;
    } C[] = {
        {"entry_number", "{\"w\":5}", 0, "not an object", "w"},
        {"entry_array", "{\"w\":[0,8]}", 0, "not an object", "w"},
        {"entry_null", "{\"w\":null}", 0, "not an object", "w"},
        {"no_dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "missing field \"dtype\"", "w"},
        {"no_shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8,
         "missing field \"shape\"", "w"},
        {"no_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8,
         "missing field \"data_offsets\"", "w"},
        {"dup_field", "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],"
                      "\"data_offsets\":[0,8]}}", 8, "duplicate field \"dtype\"", "w"},
        {"dtype_number", "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "dtype is not a string", "w"},
        {"dtype_unknown", "{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "unknown dtype", "w"},
        {"dtype_lowercase", "{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         8, "unknown dtype", "w"},
        {"dtype_i16", "{\"w\":{\"dtype\":\"I16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8,
         "unsupported dtype", "w"},
        {"shape_number", "{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
         "shape is not an array", "w"},
        {"shape_string", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
         8, "shape[0] is not a number", "w"},
        {"shape_null", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,null],\"data_offsets\":[0,8]}}",
         8, "shape[1] is not a number", "w"},
        {"shape_negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
         8, "negative", "w"},
        {"shape_1.5", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8,
         "not an integer", "w"},
        {"shape_2.0", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
         "not an integer", "w"},
        {"shape_2e0", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8,
         "not an integer", "w"},
        {"shape_2^53", "{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740992],"
                       "\"data_offsets\":[0,8]}}", 8, "2^53", "w"},
        {"shape_2^64", "{\"w\":{\"dtype\":\"U8\",\"shape\":[18446744073709551617],"
                       "\"data_offsets\":[0,8]}}", 8, "2^53", "w"},
        {"shape_9_dims", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],"
                         "\"data_offsets\":[0,8]}}", 8, "at most 8", "w"},
        {"offsets_number", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":8}}", 8,
         "two integers", "w"},
        {"offsets_three", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8,
         "two integers", "w"},
        {"offsets_one", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8,
         "two integers", "w"},
        {"offsets_object", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", 8,
         "two integers", "w"},
        {"offsets_strings", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                            "\"data_offsets\":[\"0\",\"8\"]}}", 8,
         "data_offsets[0] is not a number", "w"},
        {"offsets_negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],"
                             "\"data_offsets\":[-8,-8]}}", 0, "negative", "w"},
        {"offsets_fraction", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                             "\"data_offsets\":[0,8.5]}}", 8, "not an integer", "w"},
        {"offsets_2^53", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                         "\"data_offsets\":[0,9007199254740993]}}", 8, "2^53", "w"},
        {"begin_gt_end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
         "begin > end", "w"},
        {"size_mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
         "needs 12", "w"},
        {"size_mismatch_dtype", "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],"
                                "\"data_offsets\":[0,8]}}", 8, "needs 16", "w"},
        {"scalar_mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}}", 8,
         "needs 4", "w"},
        {"size_overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
                          "\"data_offsets\":[0,0]}}", 0, "overflows", "w"},
        {"size_overflow_dtype", "{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
                                "\"data_offsets\":[0,0]}}", 0, "2^53", "w"},
        {"size_overflow_mul", "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,536870912],"
                              "\"data_offsets\":[0,0]}}", 0, "overflows", "w"},
    };
    for (size_t i = 0; i < sizeof C / sizeof *C; i++)
        expect_reject(C[i].label, C[i].json, C[i].data, C[i].word, C[i].tensor);
}

static void test_reject_names_and_metadata(void **state) {
    expect_reject("dup_tensor", "{" T_OK("w") ",\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                                "\"data_offsets\":[8,16]}}", 16, "duplicate tensor name", "w");
    expect_reject("dup_tensor_same", "{" T_OK("w") "," T_OK("w") "}", 8, "duplicate tensor name",
                  "w");
    expect_reject("dup_tensor_dtypes", "{\"v\":{\"dtype\":\"U8\",\"shape\":[8],"
                                       "\"data_offsets\":[0,8]}," T_OK("v") "}",
                  8, "duplicate tensor name", "v");
    expect_reject("meta_string", "{\"__metadata__\":\"x\"," T_OK("w") "}", 8, "__metadata__",
                  NULL);
    expect_reject("meta_null", "{\"__metadata__\":null," T_OK("w") "}", 8, "__metadata__", NULL);
    expect_reject("meta_array", "{\"__metadata__\":[\"a\"]," T_OK("w") "}", 8, "__metadata__",
                  NULL);
    expect_reject("meta_number", "{\"__metadata__\":{\"k\":1}," T_OK("w") "}", 8, "not a string",
                  NULL);
    expect_reject("meta_float", "{\"__metadata__\":{\"k\":1.5}," T_OK("w") "}", 8,
                  "not a string", NULL);
    expect_reject("meta_object", "{\"__metadata__\":{\"k\":{\"a\":\"b\"}}," T_OK("w") "}", 8,
                  "not a string", NULL);
    expect_reject("meta_bool", "{\"__metadata__\":{\"k\":true}," T_OK("w") "}", 8,
                  "not a string", NULL);
    expect_reject("meta_dup_key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}," T_OK("w") "}", 8,
                  "duplicate \"__metadata__\" key 'k'", NULL);
    expect_reject("meta_twice", "{\"__metadata__\":{},\"__metadata__\":{}," T_OK("w") "}", 8,
                  "duplicate key \"__metadata__\"", NULL);
}

#define T_AT(name, dt, shape, b, e)                                                            \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_reject_offsets(void **state) {
    expect_reject("overlap", "{" T_AT("a", "F32", "[2]", 0, 8) "," T_AT("b", "F32", "[2]", 4, 12)
                  "}", 12, "overlap", "b");
    expect_reject("overlap_same", "{" T_AT("a", "F32", "[2]", 0, 8) ","
                  T_AT("b", "F32", "[2]", 0, 8) "}", 8, "overlap", "b");
    expect_reject("overlap_inside", "{" T_AT("a", "F32", "[4]", 0, 16) ","
                  T_AT("b", "F32", "[1]", 4, 8) "," T_AT("c", "F32", "[2]", 16, 24) "}", 24,
                  "overlap", "b");
    expect_reject("hole", "{" T_AT("a", "F32", "[1]", 0, 4) "," T_AT("b", "F32", "[1]", 8, 12)
                  "}", 12, "hole of 4 bytes", "b");
    expect_reject("not_from_0", "{" T_AT("a", "F32", "[1]", 4, 8) "}", 8, "offset 0", "a");
    expect_reject("not_from_0_empty_first", "{" T_AT("e", "F32", "[0]", 4, 4) ","
                  T_AT("a", "F32", "[1]", 4, 8) "}", 8, "offset 0", NULL);
    expect_reject("trailing_bytes", "{" T_AT("a", "F32", "[1]", 0, 4) "}", 8, "trailing", NULL);
    expect_reject("no_tensors_data", "{}", 8, "trailing", NULL);
    expect_reject("no_tensors_1_byte", "{\"__metadata__\":{}}", 1, "trailing", NULL);
    expect_reject("truncated", "{" T_AT("a", "F32", "[2]", 0, 8) "}", 4, "truncated", "a");
    expect_reject("truncated_all", "{" T_AT("a", "F32", "[2]", 0, 8) "}", 0, "truncated", "a");
}

/* ------------------------------------------------------------------ reader: acceptances */

static void test_accept_unusual(void **state) {
    /* no padding at all (the reference reader does not demand it) */
    ebmc_st_file *f = expect_accept("no_pad", "{}", false, 0);
    assert_int_equal(ebmc_st_count(f), 0);
    ebmc_st_close(f);
    /* whitespace and newlines; an unknown field; empty metadata */
    f = expect_accept("pretty", "{\n  \"__metadata__\" : { },\n\t\"w\" : {\"data_offsets\": "
                                "[ 0 , 8 ], \"extra\": [1, {\"x\": \"y\"}], \"shape\": [ 2 ], "
                                "\"dtype\": \"F32\"}\r\n}\n",
                      true, 8);
    assert_int_equal(ebmc_st_count(f), 1);
    assert_int_equal(ebmc_st_meta_count(f), 0);
    assert_int_equal(ebmc_st_find(f, "w")->shape[0], 2);
    ebmc_st_close(f);
    /* empty tensors sharing offsets with others, a scalar, a huge empty tensor */
    f = expect_accept("empties",
                      "{" T_AT("e0", "F32", "[0]", 0, 0) "," T_AT("a", "F32", "[2]", 0, 8) ","
                      T_AT("e1", "I64", "[2,0]", 8, 8) "," T_AT("s", "F32", "[]", 8, 12) ","
                      T_AT("huge", "U8", "[0,9007199254740991,9007199254740991]", 12, 12) "}",
                      true, 12);
    assert_int_equal(ebmc_st_count(f), 5);
    const ebmc_st_tensor *s = ebmc_st_find(f, "s");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(ebmc_st_numel(s), 1);
    assert_int_equal(ebmc_st_find(f, "e1")->ndim, 2);
    assert_int_equal(ebmc_st_numel(ebmc_st_find(f, "huge")), 0);
    assert_string_equal(ebmc_st_at(f, 0)->name, "e0"); /* offset order, ties by name */
    assert_string_equal(ebmc_st_at(f, 1)->name, "a");
    assert_string_equal(ebmc_st_at(f, 4)->name, "huge");
    ebmc_st_close(f);
    /* any contiguous order is fine: a U8 tensor first leaves the F32 data unaligned */
    f = expect_accept("unaligned",
                      "{" T_AT("w", "F32", "[2]", 3, 11) "," T_AT("b", "U8", "[3]", 0, 3) "}",
                      true, 11);
    const ebmc_st_tensor *w = ebmc_st_find(f, "w");
    const unsigned char *b = ebmc_st_find(f, "b")->data;
    assert_ptr_equal((const unsigned char *)w->data, b + 3);
    assert_int_equal(b[0], 1);
    assert_int_equal(((const unsigned char *)w->data)[0], (unsigned char)(3 * 7 + 1));
    ebmc_st_close(f);
    /* names: escapes decoded, UTF-8 kept, "" allowed by the format */
    f = expect_accept("names", "{" T_AT("a\\\"b\\\\c\\n\\u00e9", "U8", "[1]", 0, 1) ","
                      T_AT("\xe2\x9c\x93", "U8", "[1]", 1, 2) "," T_AT("", "U8", "[1]", 2, 3)
                      "}", true, 3);
    assert_non_null(ebmc_st_find(f, "a\"b\\c\n\xc3\xa9"));
    assert_non_null(ebmc_st_find(f, "\xe2\x9c\x93"));
    assert_non_null(ebmc_st_find(f, ""));
    ebmc_st_close(f);
}

/* ------------------------------------------------------------------ atomic writes */

static void test_atomic_missing_dir(void **state) {
    float x[2] = {1, 2};
    ebmc_st_tensor t = {"w", EBMC_DT_F32, 1, {2}, x};
    const char *path = tpath("no/such/dir/w.safetensors");
    char err[512];
    ebmc_status st = ebmc_st_write(path, &t, 1, NULL, 0, err, sizeof err);
    printf("  %s\n", err);
    assert_int_equal(st, EBMC_E_WRITE);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_temporaries(), 0);
}

static void test_atomic_overwrite(void **state) {
    const char *path = tpath("over.safetensors");
    static float big[4096], small[3] = {7, 8, 9};
    for (int i = 0; i < 4096; i++) big[i] = (float)i;
    ebmc_st_tensor tb = {"big", EBMC_DT_F32, 1, {4096}, big};
    ebmc_st_tensor ts = {"small", EBMC_DT_F32, 1, {3}, small};
    char err[512];
    write_bytes(path, "old junk that is not a safetensors file", 39);
    assert_int_equal(ebmc_st_write(path, &tb, 1, NULL, 0, err, sizeof err), EBMC_OK);
    size_t n1, n2;
    unsigned char *r1 = read_all(path, &n1);
    free(r1);
    assert_true(n1 > 4096 * 4);
    /* a smaller file replaces a larger one completely (no stale tail) */
    assert_int_equal(ebmc_st_write(path, &ts, 1, NULL, 0, err, sizeof err), EBMC_OK);
    unsigned char *r2 = read_all(path, &n2);
    const char *hdr = "{\"small\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    unsigned char want[256];
    size_t wn = build(want, sizeof want, hdr, strlen(hdr), true, 0);
    memcpy(want + wn, small, 12);
    wn += 12;
    assert_int_equal(n2, wn);
    assert_memory_equal(r2, want, wn);
    free(r2);
    assert_int_equal(count_temporaries(), 0);

    /* a rejected write leaves the old file untouched */
    ebmc_st_tensor dup[2] = {ts, ts};
    assert_int_equal(ebmc_st_write(path, dup, 2, NULL, 0, err, sizeof err), EBMC_E_INVALID);
    r2 = read_all(path, &n2);
    assert_int_equal(n2, wn);
    assert_memory_equal(r2, want, wn);
    free(r2);
    assert_int_equal(count_temporaries(), 0);
}

/* A write that fails half-way (the file size limit hit after 64 KiB of a 1 MiB tensor) leaves
 * the old file as it was and no temporary. Run in a child: the limit is per process. */
static void test_atomic_failed_write(void **state) {
    const char *path = tpath("half.safetensors");
    static const char old[] = "the previous checkpoint";
    write_bytes(path, old, sizeof old);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        rl.rlim_cur = 65536;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(11);
        size_t n = 1 << 18;
        float *x = calloc(n, sizeof *x);
        if (!x) _exit(12);
        ebmc_st_tensor t = {"w", EBMC_DT_F32, 1, {(int64_t)n}, x};
        char err[512] = "";
        ebmc_status st = ebmc_st_write(path, &t, 1, NULL, 0, err, sizeof err);
        printf("  child: %s: %s\n", ebmc_status_str(st), err);
        fflush(stdout);
        if (st != EBMC_E_WRITE) _exit(13);
        if (!strstr(err, path) || !strstr(err, "File too large")) _exit(14);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    size_t n;
    unsigned char *r = read_all(path, &n);
    assert_int_equal(n, sizeof old);
    assert_memory_equal(r, old, sizeof old);
    free(r);
    assert_int_equal(count_temporaries(), 0);
}

static void test_atomic_helpers(void **state) {
    const char *path = tpath("cfg.json");
    char tmp[600], err[512];
    write_bytes(path, "{\"old\":1}", 9);
    /* abort: target untouched, temporary gone */
    FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, sizeof err);
    assert_non_null(f);
    assert_non_null(strstr(tmp, ".tmp."));
    assert_int_equal(strncmp(tmp, path, strlen(path)), 0);
    fputs("{\"new\":", f);
    ebmc_atomic_abort(f, tmp);
    assert_int_equal(access(tmp, F_OK), -1);
    size_t n;
    unsigned char *r = read_all(path, &n);
    assert_int_equal(n, 9);
    assert_memory_equal(r, "{\"old\":1}", 9);
    free(r);
    /* commit: replaced completely */
    f = ebmc_atomic_open(path, tmp, sizeof tmp, err, sizeof err);
    assert_non_null(f);
    fputs("{}", f);
    assert_int_equal(ebmc_atomic_commit(f, tmp, path, err, sizeof err), EBMC_OK);
    r = read_all(path, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(r, "{}", 2);
    free(r);
    assert_int_equal(count_temporaries(), 0);
    /* a temporary name that does not fit */
    char small[8];
    assert_null(ebmc_atomic_open(path, small, sizeof small, err, sizeof err));
    assert_non_null(strstr(err, "too long"));
    assert_string_equal(small, "");
    /* a directory that does not exist */
    const char *bad = tpath("nope/cfg.json");
    assert_null(ebmc_atomic_open(bad, tmp, sizeof tmp, err, sizeof err));
    assert_non_null(strstr(err, bad));
    assert_string_equal(tmp, "");
    ebmc_atomic_abort(NULL, NULL); /* harmless */
    assert_int_equal(count_temporaries(), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_layout_and_order),
        cmocka_unit_test(test_write_invalid),
        cmocka_unit_test(test_reject_framing),
        cmocka_unit_test(test_reject_header_json),
        cmocka_unit_test(test_reject_entries),
        cmocka_unit_test(test_reject_names_and_metadata),
        cmocka_unit_test(test_reject_offsets),
        cmocka_unit_test(test_accept_unusual),
        cmocka_unit_test(test_atomic_missing_dir),
        cmocka_unit_test(test_atomic_overwrite),
        cmocka_unit_test(test_atomic_failed_write),
        cmocka_unit_test(test_atomic_helpers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
