/* .npz files: a zip archive of .npy members, as numpy's np.savez (stored) and np.savez_compressed
 * (deflated) write them. Writing: float64 members, stored, CRC-32 from zlib. Reading: through the
 * zip's central directory (zip64 size fields accepted), members stored or deflated (zlib's raw
 * inflate). See include/ebmc/npy.h. */
#include "ebmc/npy.h"
#include "ebmc/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

#define DOS_DATE ((1980 - 1980) << 9 | 1 << 5 | 1) /* 1980-01-01, as zipfile's default */

typedef struct {
    char name[80];
    uint32_t crc, size, offset;
} zmember;

/* One stored member: local header, the .npy header, the float64 data (host order is
 * little-endian on every platform ebmc builds for). */
static int write_member(FILE *f, zmember *m, const char *name, int ndim, const int64_t *shape,
                        const double *data, uint32_t offset) {
    char hdr[1024];
    size_t hn = ebmc_npy_header(hdr, sizeof hdr, "<f8", ndim, shape);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    uint64_t size = hn + count * 8;
    if (!hn || size > 0xfffffffful - 1024) return -1;
    snprintf(m->name, sizeof m->name, "%s.npy", name);
    m->crc = (uint32_t)crc32(crc32(0, (const Bytef *)hdr, (uInt)hn), (const Bytef *)data, (uInt)(count * 8));
    m->size = (uint32_t)size, m->offset = offset;
    uint8_t lh[30] = {0};
    put32(lh, 0x04034b50), put16(lh + 4, 20), put16(lh + 12, DOS_DATE);
    put32(lh + 14, m->crc), put32(lh + 18, m->size), put32(lh + 22, m->size);
    put16(lh + 26, (unsigned)strlen(m->name));
    if (fwrite(lh, 1, 30, f) != 30 || fwrite(m->name, 1, strlen(m->name), f) != strlen(m->name) ||
        fwrite(hdr, 1, hn, f) != hn || fwrite(data, 8, count, f) != count)
        return -1;
    return 0;
}

static int write_directory(FILE *f, const zmember *m, int n, uint32_t cd_offset) {
    uint32_t cd_size = 0;
    for (int i = 0; i < n; i++) {
        uint8_t ch[46] = {0};
        size_t nl = strlen(m[i].name);
        put32(ch, 0x02014b50), put16(ch + 4, 20), put16(ch + 6, 20), put16(ch + 14, DOS_DATE);
        put32(ch + 16, m[i].crc), put32(ch + 20, m[i].size), put32(ch + 24, m[i].size);
        put16(ch + 28, (unsigned)nl), put32(ch + 38, 0644u << 16), put32(ch + 42, m[i].offset);
        if (fwrite(ch, 1, 46, f) != 46 || fwrite(m[i].name, 1, nl, f) != nl) return -1;
        cd_size += 46 + (uint32_t)nl;
    }
    uint8_t eo[22] = {0};
    put32(eo, 0x06054b50), put16(eo + 8, (unsigned)n), put16(eo + 10, (unsigned)n);
    put32(eo + 12, cd_size), put32(eo + 16, cd_offset);
    return fwrite(eo, 1, 22, f) == 22 ? 0 : -1;
}

ebmc_status ebmc_npz_write_f64(const char *path, int n, const char *const *names,
                               const int *ndim, const int64_t (*shapes)[4],
                               const double *const *data, char *err, size_t errlen) {
    if (n < 1 || n > 16) {
        ebmc_set_err(err, errlen, "%s: an .npz of 1..16 arrays, not %d", path, n);
        return EBMC_E_INVALID;
    }
    char tmp[4096];
    FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) return EBMC_E_WRITE;
    zmember m[16];
    uint32_t off = 0;
    for (int i = 0; i < n; i++) {
        if (write_member(f, &m[i], names[i], ndim[i], shapes[i], data[i], off)) {
            ebmc_set_err(err, errlen, "%s: writing member %s.npy failed (disk full, or over 4 GB)", path, names[i]);
            ebmc_atomic_abort(f, tmp);
            return EBMC_E_WRITE;
        }
        off += 30 + (uint32_t)strlen(m[i].name) + m[i].size;
    }
    if (write_directory(f, m, n, off)) {
        ebmc_set_err(err, errlen, "%s: writing the zip directory failed", path);
        ebmc_atomic_abort(f, tmp);
        return EBMC_E_WRITE;
    }
    return ebmc_atomic_commit(f, tmp, path, err, errlen);
}

/* ---- reading ---- */

typedef struct {
    uint32_t method, crc;
    uint64_t csize, usize, local;
} zentry;

/* Applies a zip64 extra field (id 1) to the fields that are 0xffffffff, in the zip order. */
static void zip64_extra(const uint8_t *x, size_t len, zentry *e) {
    for (size_t p = 0; p + 4 <= len;) {
        uint32_t id = get16(x + p), sz = get16(x + p + 2);
        if (p + 4 + sz > len) return;
        if (id == 1) {
            const uint8_t *v = x + p + 4, *end = v + sz;
            if (e->usize == 0xffffffffu && v + 8 <= end) e->usize = get64(v), v += 8;
            if (e->csize == 0xffffffffu && v + 8 <= end) e->csize = get64(v), v += 8;
            if (e->local == 0xffffffffu && v + 8 <= end) e->local = get64(v);
        }
        p += 4 + sz;
    }
}

/* Finds member `want` in the central directory of the archive z (n bytes). */
static int find_entry(const uint8_t *z, size_t n, const char *want, zentry *e) {
    if (n < 22) return -1;
    size_t eo = n - 22;
    while (eo > 0 && get32(z + eo) != 0x06054b50 && n - eo < 22 + 65535) eo--;
    if (get32(z + eo) != 0x06054b50) return -1;
    uint64_t cd = get32(z + eo + 16), entries = get16(z + eo + 10);
    for (uint64_t i = 0; i < entries && cd + 46 <= n; i++) {
        const uint8_t *c = z + cd;
        if (get32(c) != 0x02014b50) return -1;
        size_t nl = get16(c + 28), xl = get16(c + 30), cl = get16(c + 32);
        if (cd + 46 + nl + xl > n) return -1;
        if (nl == strlen(want) && !memcmp(c + 46, want, nl)) {
            *e = (zentry){get16(c + 10), get32(c + 16), get32(c + 20), get32(c + 24), get32(c + 42)};
            zip64_extra(c + 46 + nl, xl, e);
            return 0;
        }
        cd += 46 + nl + xl + cl;
    }
    return 1; /* not there */
}

static ebmc_status inflate_raw(const uint8_t *src, uint64_t csize, uint8_t *dst, uint64_t usize) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return EBMC_E_NOMEM;
    zs.next_in = (Bytef *)src, zs.avail_in = (uInt)csize;
    zs.next_out = dst, zs.avail_out = (uInt)usize;
    int r = inflate(&zs, Z_FINISH);
    bool ok = r == Z_STREAM_END && zs.total_out == usize;
    inflateEnd(&zs);
    return ok ? EBMC_OK : EBMC_E_IO;
}

/* The member's bytes, uncompressed, CRC checked (*out malloc'd). */
static ebmc_status member_bytes(const uint8_t *z, size_t n, const zentry *e, uint8_t **out) {
    *out = NULL;
    /* every bound by subtraction from n: a zip64 offset or size near 2^64 must not wrap */
    if (e->local > n || n - e->local < 30 || get32(z + e->local) != 0x04034b50) return EBMC_E_IO;
    uint64_t data = e->local + 30 + get16(z + e->local + 26) + get16(z + e->local + 28); /* < n + 2^17 */
    /* the size to allocate is bounded by what the member can hold: stored, its own size; deflated,
     * DEFLATE's largest expansion (1032:1, a 258-byte match per 2 bits of a fixed-Huffman block),
     * so a 1 KB file cannot make us allocate gigabytes */
    if (data > n || e->csize > n - data || (e->method != 0 && e->method != 8) || e->usize > ((uint64_t)1 << 34) ||
        (e->method == 0 ? e->usize != e->csize : e->usize > 1032 * e->csize + 64))
        return EBMC_E_IO;
    uint8_t *buf = malloc(e->usize ? e->usize : 1);
    if (!buf) return EBMC_E_NOMEM;
    ebmc_status s = EBMC_OK;
    if (e->method == 0) {
        memcpy(buf, z + data, e->usize);
    } else {
        s = inflate_raw(z + data, e->csize, buf, e->usize);
    }
    if (!s && (uint32_t)crc32(0, buf, (uInt)e->usize) != e->crc) s = EBMC_E_IO;
    if (s) free(buf);
    else *out = buf;
    return s;
}

static ebmc_status read_all(const char *path, uint8_t **buf, size_t *n, char *err, size_t errlen) {
    FILE *f = ebmc_fopen_read(path, err, errlen);
    if (!f) return EBMC_E_IO;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = sz > 0 ? malloc((size_t)sz) : NULL;
    *n = *buf && fread(*buf, 1, (size_t)sz, f) == (size_t)sz ? (size_t)sz : 0;
    fclose(f);
    if (!*n) {
        free(*buf);
        *buf = NULL;
        ebmc_set_err(err, errlen, "%s: empty or unreadable", path);
        return EBMC_E_IO;
    }
    return EBMC_OK;
}

ebmc_status ebmc_npz_read_f64(const char *path, const char *name, ebmc_npy_info *info,
                              double **out, char *err, size_t errlen) {
    *out = NULL;
    uint8_t *z, *m = NULL;
    size_t n;
    EBMC_TRY(read_all(path, &z, &n, err, errlen));
    char member[128], what[4096 + 160];
    snprintf(member, sizeof member, "%s.npy", name);
    snprintf(what, sizeof what, "%s:%s", path, member);
    zentry e;
    int r = find_entry(z, n, member, &e);
    ebmc_status s = r ? EBMC_E_IO : member_bytes(z, n, &e, &m);
    free(z);
    if (r) {
        ebmc_set_err(err, errlen, r < 0 ? "%s: not a zip archive (.npz) or a damaged one"
                                        : "%s: has no array '%s' (an .npz of np.savez(path, mu=..., sigma=...)?)",
                     path, name);
        return EBMC_E_IO;
    }
    if (s) {
        ebmc_set_err(err, errlen, "%s: damaged member (bad CRC, size or compression)", what);
        return s;
    }
    s = ebmc_npy_parse(m, e.usize, e.usize, what, info, err, errlen);
    if (!s && info->dtype == EBMC_NPY_U8) {
        ebmc_set_err(err, errlen, "%s: uint8 data where float64 statistics were expected", what);
        s = EBMC_E_IO;
    }
    double *d = s ? NULL : malloc((info->count ? info->count : 1) * sizeof(double));
    if (!s && !d) s = EBMC_E_NOMEM;
    for (size_t i = 0; !s && i < info->count; i++) {
        const uint8_t *p = m + info->data_offset + i * info->itemsize;
        if (info->dtype == EBMC_NPY_F64) memcpy(&d[i], p, 8);
        else {
            float v;
            memcpy(&v, p, 4);
            d[i] = v;
        }
    }
    free(m);
    if (s) free(d);
    else *out = d;
    return s;
}
