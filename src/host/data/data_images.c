/* Image folders and uncompressed tars of JPEG/PNG: list, crop, resize (stb_image_resize,
 * Catmull-Rom, linear), cache (uint8 NCHW behind a small header, written atomically). */
#include "data/data_internal.h"
#include "ebmc/fileio.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

/* ------------------------------------------------------------ the list of sources */

typedef struct {
    char *rel;     /* path relative to the folder, or the member name in the tar */
    uint64_t size; /* bytes (0 when a folder entry could not be stat'ed) */
    uint64_t off;  /* tar: offset of the data */
} src_item;

/* A set of files or folders by (device, inode): a folder walk visits each folder once (a
 * symbolic link loop, or a second link to a folder, is not walked again) and lists each file
 * once (a second link or name of a file is left out). Open addressing, linear probing. */
typedef struct {
    uint64_t *k; /* (cap, 2): dev, ino; ino 0 marks a free slot (no file has inode 0) */
    size_t n, cap;
} inode_set;

static uint64_t inode_slot(uint64_t dev, uint64_t ino) {
    uint64_t h = (dev * 0x9e3779b97f4a7c15ull) ^ ino;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

/* 1: added, 0: already there, -1: out of memory */
static int inode_add(inode_set *S, uint64_t dev, uint64_t ino) {
    if (ino == 0) return 1;
    if (2 * (S->n + 1) > S->cap) {
        size_t nc = S->cap ? 2 * S->cap : 256;
        uint64_t *k = calloc(nc, 2 * sizeof *k);
        if (!k) return -1;
        for (size_t i = 0; i < S->cap; i++) {
            if (!S->k[2 * i + 1]) continue;
            size_t j = inode_slot(S->k[2 * i], S->k[2 * i + 1]) & (nc - 1);
            while (k[2 * j + 1]) j = (j + 1) & (nc - 1);
            k[2 * j] = S->k[2 * i];
            k[2 * j + 1] = S->k[2 * i + 1];
        }
        free(S->k);
        S->k = k;
        S->cap = nc;
    }
    size_t j = inode_slot(dev, ino) & (S->cap - 1);
    for (; S->k[2 * j + 1]; j = (j + 1) & (S->cap - 1))
        if (S->k[2 * j] == dev && S->k[2 * j + 1] == ino) return 0;
    S->k[2 * j] = dev;
    S->k[2 * j + 1] = ino;
    S->n++;
    return 1;
}

typedef struct {
    src_item *v;
    size_t n, cap;
} src_list;

static void list_free(src_list *L) {
    for (size_t i = 0; i < L->n; i++) free(L->v[i].rel);
    free(L->v);
    L->v = NULL;
    L->n = L->cap = 0;
}

static ebmc_status list_add(src_list *L, const char *rel, uint64_t size, uint64_t off,
                            const char *where, char *err, size_t errlen) {
    if (L->n == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 256;
        src_item *v = realloc(L->v, nc * sizeof *v);
        if (!v) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, where, "out of memory listing images");
        L->v = v;
        L->cap = nc;
    }
    char *s = strdup(rel);
    if (!s) return ebmc_data_err(EBMC_E_NOMEM, err, errlen, where, "out of memory listing images");
    L->v[L->n++] = (src_item){s, size, off};
    return EBMC_OK;
}

static int item_cmp(const void *a, const void *b) {
    return strcmp(((const src_item *)a)->rel, ((const src_item *)b)->rel);
}

/* *.jpg, *.jpeg, *.png in any case; not hidden (a name starting with '.') */
static bool wanted_name(const char *relpath) {
    const char *base = strrchr(relpath, '/');
    base = base ? base + 1 : relpath;
    if (base[0] == '.' || base[0] == '\0') return false;
    const char *dot = strrchr(base, '.');
    if (!dot) return false;
    char ext[8];
    size_t k = 0;
    for (const char *p = dot + 1; *p && k < sizeof ext - 1; p++) ext[k++] = (char)tolower((unsigned char)*p);
    ext[k] = '\0';
    if (strlen(dot + 1) != k) return false;
    return !strcmp(ext, "jpg") || !strcmp(ext, "jpeg") || !strcmp(ext, "png");
}

#define MAX_DEPTH 64

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The visible entries of folder `full` (malloc'd names, sorted), so that the walk, and with it
 * which of two names of one file is kept, does not depend on the order of readdir. */
static ebmc_status list_folder(const char *full, char ***names, size_t *count, char *err,
                               size_t errlen) {
    *names = NULL;
    *count = 0;
    DIR *d = opendir(full);
    if (!d) return ebmc_data_err(EBMC_E_IO, err, errlen, full, "cannot open folder (%s)", strerror(errno));
    char **v = NULL;
    size_t n = 0, cap = 0;
    ebmc_status st = EBMC_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue; /* ".", "..", hidden files and folders */
        char *s = NULL;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            char **w = realloc(v, nc * sizeof *w);
            if (w) v = w, cap = nc;
        }
        if (n == cap || !(s = strdup(de->d_name))) {
            st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, full, "out of memory listing images");
            break;
        }
        v[n++] = s;
    }
    closedir(d);
    if (st != EBMC_OK) {
        for (size_t i = 0; i < n; i++) free(v[i]);
        free(v);
        return st;
    }
    if (n) qsort(v, n, sizeof *v, name_cmp);
    *names = v;
    *count = n;
    return EBMC_OK;
}

/* Lists the images under root/rel, following symbolic links, but visiting each folder and
 * listing each file once (by device and inode, in `seen`): a link loop (a folder linking to
 * itself or to a parent) does not multiply the images, nor does a second link to a folder. */
static ebmc_status scan_dir(const char *root, const char *rel, int depth, src_list *L,
                            inode_set *seen, char *err, size_t errlen) {
    char full[4096];
    int k = rel[0] ? snprintf(full, sizeof full, "%s/%s", root, rel)
                   : snprintf(full, sizeof full, "%s", root);
    if (k < 0 || (size_t)k >= sizeof full)
        return ebmc_data_err(EBMC_E_IO, err, errlen, root, "path of '%s' too long", rel);
    if (depth > MAX_DEPTH)
        return ebmc_data_err(EBMC_E_IO, err, errlen, full, "folders nested more than %d deep",
                             MAX_DEPTH);
    char **names;
    size_t count;
    ebmc_status st = list_folder(full, &names, &count, err, errlen);
    if (st != EBMC_OK) return st;
    for (size_t e = 0; e < count && st == EBMC_OK; e++) {
        const char *name = names[e];
        char crel[4096], cfull[4096];
        k = rel[0] ? snprintf(crel, sizeof crel, "%s/%s", rel, name)
                   : snprintf(crel, sizeof crel, "%s", name);
        int k2 = snprintf(cfull, sizeof cfull, "%s/%s", root, crel);
        if (k < 0 || (size_t)k >= sizeof crel || k2 < 0 || (size_t)k2 >= sizeof cfull) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, full, "path of '%s' too long", name);
            break;
        }
        struct stat sb;
        if (stat(cfull, &sb) != 0) {
            /* a dangling link or a file that vanished: an image that cannot be read (reported,
             * or skipped, when it is decoded) */
            if (wanted_name(crel)) st = list_add(L, crel, 0, 0, root, err, errlen);
            continue;
        }
        bool dir = S_ISDIR(sb.st_mode);
        if (!dir && !(S_ISREG(sb.st_mode) && wanted_name(crel))) continue;
        int fresh = inode_add(seen, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
        if (fresh < 0)
            st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, root, "out of memory listing images");
        else if (fresh && dir)
            st = scan_dir(root, crel, depth + 1, L, seen, err, errlen);
        else if (fresh)
            st = list_add(L, crel, (uint64_t)sb.st_size, 0, root, err, errlen);
    }
    for (size_t e = 0; e < count; e++) free(names[e]);
    free(names);
    return st;
}

/* tar numbers: octal (NUL/space padded) or GNU base-256 (high bit of the first byte) */
static bool tar_num(const uint8_t *p, int len, uint64_t *v) {
    *v = 0;
    if (p[0] & 0x80) {
        if (p[0] != 0x80) return false; /* negative or too large */
        for (int i = 1; i < len; i++) {
            if (*v >> 56) return false;
            *v = (*v << 8) | p[i];
        }
        return true;
    }
    int i = 0;
    while (i < len && p[i] == ' ') i++;
    for (; i < len && p[i] >= '0' && p[i] <= '7'; i++) {
        if (*v >> 60) return false;
        *v = (*v << 3) | (uint64_t)(p[i] - '0');
    }
    for (; i < len; i++) /* an all-blank field reads as 0 */
        if (p[i] != ' ' && p[i] != '\0') return false;
    return true;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

/* The pax "path" record in an extended header, or NULL. */
static char *pax_path(const char *buf, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t len = 0, j = i;
        while (j < n && buf[j] >= '0' && buf[j] <= '9') len = len * 10 + (size_t)(buf[j++] - '0');
        /* "LEN KEY=VALUE\n": LEN counts the whole record, itself included, so it ends past
         * the space, at a '\n'; a shorter one (fuzzing found "3 path=...") would make the
         * value's length negative */
        if (j >= n || buf[j] != ' ' || len < j - i + 2 || len > n - i || buf[i + len - 1] != '\n')
            return NULL;
        const char *kv = buf + j + 1, *end = buf + i + len - 1; /* *end == '\n' */
        if ((size_t)(end - kv) > 5 && !strncmp(kv, "path=", 5)) {
            size_t m = (size_t)(end - kv) - 5;
            char *s = malloc(m + 1);
            if (!s) return NULL;
            memcpy(s, kv + 5, m);
            s[m] = '\0';
            return s;
        }
        i += len;
    }
    return NULL;
}

static ebmc_status scan_tar(const char *path, FILE *f, src_list *L, char *err, size_t errlen) {
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0)
        return ebmc_data_err(EBMC_E_IO, err, errlen, path, "cannot stat (%s)", strerror(errno));
    const uint64_t fsize = (uint64_t)sb.st_size;
    uint64_t off = 0;
    char *pending = NULL; /* name from a GNU 'L' or pax 'x' header, for the next entry */
    ebmc_status st = EBMC_OK;
    uint8_t h[512];
    for (;;) {
        if (off >= fsize) break; /* no end-of-archive blocks: accepted */
        size_t got = 0;
        memset(h, 0, sizeof h);
        if (fseeko(f, (off_t)off, SEEK_SET) == 0) got = fread(h, 1, 512, f);
        const char *kind = "";
        if (off == 0 && h[0] == 0x1f && h[1] == 0x8b)
            kind = "; it is gzip-compressed: extract it (tar xzf) or gunzip it first";
        else if (off == 0 && h[0] == 0xfd && !memcmp(h + 1, "7zXZ", 4))
            kind = "; it is xz-compressed: extract it (tar xJf) or unxz it first";
        else if (off == 0 && h[0] == 'P' && h[1] == 'K')
            kind = "; it is a zip archive: unzip it and pass the folder";
        if (got != 512) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                               "%s: incomplete header at offset %llu%s",
                               kind[0] ? "not a tar archive" : "truncated tar",
                               (unsigned long long)off, kind);
            break;
        }
        if (all_zero(h, 512)) break; /* end of archive */
        uint64_t chk, size;
        unsigned sum_u = 0;
        int sum_s = 0;
        for (int i = 0; i < 512; i++) {
            uint8_t b = (i >= 148 && i < 156) ? ' ' : h[i];
            sum_u += b;
            sum_s += (signed char)b;
        }
        if (!tar_num(h + 148, 8, &chk) || (chk != sum_u && (int64_t)chk != sum_s)) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                               "not a tar archive, or a corrupt one: bad header checksum at offset "
                               "%llu%s", (unsigned long long)off, kind);
            break;
        }
        if (!tar_num(h + 124, 12, &size)) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, path, "bad size field in the tar header at offset %llu",
                               (unsigned long long)off);
            break;
        }
        const uint64_t data = off + 512, next = data + ((size + 511) / 512) * 512;
        char type = (char)h[156];
        char name[257];
        if (!memcmp(h + 257, "ustar", 5) && h[345]) {
            snprintf(name, sizeof name, "%.155s/%.100s", (const char *)h + 345, (const char *)h);
        } else {
            snprintf(name, sizeof name, "%.100s", (const char *)h);
        }
        const char *ename = pending ? pending : name;
        if (data + size > fsize) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                               "truncated tar: member '%s' needs %llu bytes at offset %llu, the file "
                               "has %llu", ename, (unsigned long long)size, (unsigned long long)data,
                               (unsigned long long)fsize);
            break;
        }
        if (type == 'L' || type == 'x') {
            if (size > (1u << 20)) {
                st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                                   "tar extended header at offset %llu too long (%llu bytes)",
                                   (unsigned long long)off, (unsigned long long)size);
                break;
            }
            char *buf = malloc(size + 1);
            if (!buf) {
                st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "out of memory");
                break;
            }
            if (fread(buf, 1, size, f) != size) {
                free(buf);
                st = ebmc_data_err(EBMC_E_IO, err, errlen, path, "cannot read at offset %llu",
                                   (unsigned long long)data);
                break;
            }
            buf[size] = '\0';
            free(pending);
            if (type == 'L') {
                pending = buf;
            } else {
                pending = pax_path(buf, size);
                free(buf);
            }
        } else {
            if ((type == '0' || type == '\0' || type == '7')) {
                const char *r = ename;
                while (r[0] == '.' && r[1] == '/') r += 2;
                if (wanted_name(r) && (st = list_add(L, r, size, data, path, err, errlen))) break;
            }
            if (type != 'g') {
                free(pending);
                pending = NULL;
            }
        }
        off = next;
    }
    free(pending);
    return st;
}

/* ------------------------------------------------------------ hash and cache */

typedef struct {
    const char *root;  /* folder or tar path */
    FILE *tar;         /* open tar, or NULL for a folder */
} src_ctx;

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return fnv1a(h, b, 8);
}

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* A 64-bit hash of n bytes (xxHash64's round and final mix, one lane): fast enough that hashing
 * every image costs little next to decoding it. Change detection, not cryptography. */
static uint64_t bytes_hash(uint64_t h, const uint8_t *p, size_t n) {
    const uint64_t P1 = 0x9e3779b185ebca87ull, P2 = 0xc2b2ae3d27d4eb4full;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int b = 0; b < 8; b++) w |= (uint64_t)p[i + b] << (8 * b);
        h = rotl64(h + w * P2, 31) * P1;
    }
    for (; i < n; i++) h = rotl64(h ^ (p[i] * 0x27d4eb2f165667c5ull), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    return h;
}

/* The hash of item it's bytes, read in chunks (a folder's file, or a tar member's data); an
 * item that cannot be read hashes as such ("unreadable" and its error), so that it counts as
 * changed once it can be read. */
static uint64_t item_hash(const src_ctx *S, const src_item *it, uint8_t *buf, size_t cap) {
    uint64_t h = 0x27d4eb2f165667c5ull;
    FILE *f = S->tar;
    uint64_t left = it->size;
    int e = 0;
    if (f) {
        if (fseeko(f, (off_t)it->off, SEEK_SET) != 0) e = errno ? errno : EIO;
    } else {
        char full[4200];
        snprintf(full, sizeof full, "%s/%s", S->root, it->rel);
        char why[64];
        if (!(f = ebmc_fopen_read(full, why, sizeof why))) e = errno ? errno : EIO;
        left = UINT64_MAX; /* to its end: the size listed may be stale */
    }
    while (!e && left > 0) {
        size_t want = left < cap ? (size_t)left : cap;
        size_t got = fread(buf, 1, want, f);
        h = bytes_hash(h, buf, got);
        if (got < want) {
            if (ferror(f)) e = errno ? errno : EIO;
            else if (S->tar) e = EIO; /* the tar shrank */
            break;
        }
        left -= got;
    }
    if (f && !S->tar) fclose(f);
    if (e) h = fnv_u64(fnv1a(h, "unreadable", 10), (uint64_t)e);
    return h;
}

/* The cache key. It covers the sorted list of images (relative path or member name, size and
 * the hash of every byte of the file or member), the box, size, skip_bad and the cache version:
 * an image replaced by another of the same size (even in place, with its old modification time
 * put back) invalidates the cache; a copy of the same files elsewhere does not. It costs a read
 * of every image, far less than decoding and resizing them. *nomem: out of memory. */
static uint64_t source_hash(const src_ctx *S, const src_list *L, const float *box, int size,
                            bool skip_bad, bool *nomem) {
    uint64_t h = 0xcbf29ce484222325ull;
    const size_t cap = (size_t)1 << 20;
    uint8_t *buf = malloc(cap);
    *nomem = !buf;
    if (!buf) return 0;
    h = fnv1a(h, "ebmc-images", 11);
    h = fnv_u64(h, EBMC_IMAGE_CACHE_VERSION);
    h = fnv_u64(h, L->n);
    for (size_t i = 0; i < L->n; i++) {
        h = fnv1a(h, L->v[i].rel, strlen(L->v[i].rel) + 1);
        h = fnv_u64(h, L->v[i].size);
        h = fnv_u64(h, item_hash(S, &L->v[i], buf, cap));
    }
    free(buf);
    h = fnv_u64(h, box ? 1 : 0);
    for (int i = 0; box && i < 4; i++) {
        uint32_t u;
        memcpy(&u, &box[i], 4);
        h = fnv_u64(h, u);
    }
    h = fnv_u64(h, (uint64_t)size);
    h = fnv_u64(h, skip_bad ? 1 : 0);
    return h;
}

#define CACHE_MAGIC "EBMCIMGC"
#define CACHE_HEADER 40

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return get32(p) | ((uint64_t)get32(p + 4) << 32); }

/* 1: loaded into ds; 0: not usable (why says so; "" when the file does not exist). */
static int cache_load(const char *cpath, uint64_t hash, int size, ebmc_dataset_t *ds, char *why,
                      size_t wlen) {
    why[0] = '\0';
    char e[PATH_MAX + 128];
    FILE *f = ebmc_fopen_read(cpath, e, sizeof e);
    if (!f) {
        if (errno != ENOENT) snprintf(why, wlen, "cannot be opened (%s)", errno == EINVAL ? "not a regular file" : strerror(errno));
        return 0;
    }
    uint8_t h[CACHE_HEADER];
    struct stat sb;
    int ok = 0;
    if (fstat(fileno(f), &sb) != 0 || fread(h, 1, CACHE_HEADER, f) != CACHE_HEADER) {
        snprintf(why, wlen, "is damaged (shorter than its %d-byte header)", CACHE_HEADER);
    } else if (memcmp(h, CACHE_MAGIC, 8) != 0) {
        snprintf(why, wlen, "is not an ebmc image cache (bad magic)");
    } else if (get32(h + 8) != EBMC_IMAGE_CACHE_VERSION) {
        snprintf(why, wlen, "has version %u, this build writes %u", get32(h + 8),
                 EBMC_IMAGE_CACHE_VERSION);
    } else if (get64(h + 24) != hash || get32(h + 16) != 3 || get32(h + 20) != (uint32_t)size) {
        snprintf(why, wlen, "was made from other images, box, size or skip_bad setting");
    } else {
        uint32_t n = get32(h + 12);
        uint64_t bytes = (uint64_t)n * 3 * (uint64_t)size * (uint64_t)size;
        if (n == 0 || n > INT_MAX || (uint64_t)sb.st_size != CACHE_HEADER + bytes) {
            snprintf(why, wlen, "is damaged (%lld bytes, its header says %llu)",
                     (long long)sb.st_size, (unsigned long long)(CACHE_HEADER + bytes));
        } else {
            uint8_t *p = malloc(bytes);
            if (!p) {
                snprintf(why, wlen, "is too large to load (%llu bytes)", (unsigned long long)bytes);
            } else if (fread(p, 1, bytes, f) != bytes) {
                free(p);
                snprintf(why, wlen, "cannot be read (%s)", strerror(errno));
            } else {
                ds->u8 = p;
                ds->n = (int)n;
                ds->skipped = (int)get32(h + 32);
                ok = 1;
            }
        }
    }
    fclose(f);
    return ok;
}

/* ------------------------------------------------------------ decoding */

/* The bytes of item it (malloc'd) or NULL with a reason in why. */
static uint8_t *read_item(const src_ctx *S, const src_item *it, size_t *len, char *why, size_t wlen) {
    *len = 0;
    if (S->tar) {
        if (it->size > (uint64_t)INT_MAX) {
            snprintf(why, wlen, "too large (%llu bytes)", (unsigned long long)it->size);
            return NULL;
        }
        uint8_t *p = malloc(it->size ? it->size : 1);
        if (!p) {
            snprintf(why, wlen, "out of memory (%llu bytes)", (unsigned long long)it->size);
            return NULL;
        }
        if (fseeko(S->tar, (off_t)it->off, SEEK_SET) != 0 || fread(p, 1, it->size, S->tar) != it->size) {
            free(p);
            snprintf(why, wlen, "cannot read the member's data (%s)", strerror(errno));
            return NULL;
        }
        *len = it->size;
        return p;
    }
    char full[4200];
    snprintf(full, sizeof full, "%s/%s", S->root, it->rel);
    char e[64];
    FILE *f = ebmc_fopen_read(full, e, sizeof e);
    if (!f) {
        snprintf(why, wlen, "cannot open (%s)", errno == EINVAL ? "not a regular file" : strerror(errno));
        return NULL;
    }
    struct stat sb;
    uint8_t *p = NULL;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > INT_MAX) {
        snprintf(why, wlen, "cannot stat, or larger than 2 GiB");
    } else if (!(p = malloc(sb.st_size ? (size_t)sb.st_size : 1))) {
        snprintf(why, wlen, "out of memory (%lld bytes)", (long long)sb.st_size);
    } else if (fread(p, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        snprintf(why, wlen, "cannot read (%s)", ferror(f) ? strerror(errno) : "file shrank");
        free(p);
        p = NULL;
    } else {
        *len = (size_t)sb.st_size;
    }
    fclose(f);
    return p;
}

/* Decodes, crops and resizes one image into dst (3,size,size). false with a reason in why. */
static bool prepare_one(const uint8_t *bytes, size_t len, const float *box, int size, ebmc_resize_filter rf,
                        uint8_t *dst, uint8_t *hwc /* (size,size,3) scratch */, char *why, size_t wlen) {
    int w = 0, h = 0, comp = 0;
    if (len == 0) {
        snprintf(why, wlen, "cannot decode: empty file");
        return false;
    }
    /* stb_image also reads PNM, BMP, GIF, PSD, TGA, HDR and PIC, and took a 0x0 PGM (which then
     * aborted stb_image_resize): only the formats the name promises go to it, and no empty
     * image (stb_image itself refuses PNGs over 1 GiB decoded) */
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    bool png = len >= 8 && !memcmp(bytes, png_sig, 8), jpg = len >= 3 && bytes[0] == 0xff &&
                                                              bytes[1] == 0xd8 && bytes[2] == 0xff;
    if (!png && !jpg) {
        snprintf(why, wlen, "cannot decode: not a JPEG or PNG file (it starts with neither signature)");
        return false;
    }
    uint8_t *px = stbi_load_from_memory(bytes, (int)len, &w, &h, &comp, 3);
    if (px && (w < 1 || h < 1)) {
        stbi_image_free(px);
        snprintf(why, wlen, "cannot decode: the image is %dx%d pixels", w, h);
        return false;
    }
    if (!px) {
        const char *r = stbi_failure_reason();
        snprintf(why, wlen, "cannot decode as JPEG or PNG (stb_image: %s)", r ? r : "unknown error");
        return false;
    }
    float b[4];
    if (box) {
        memcpy(b, box, sizeof b);
        if (b[2] > (float)w || b[3] > (float)h) {
            snprintf(why, wlen, "the box (%g, %g, %g, %g) does not fit the %dx%d image", b[0], b[1],
                     b[2], b[3], w, h);
            stbi_image_free(px);
            return false;
        }
    } else {
        float side = (float)(w < h ? w : h);
        b[0] = 0.5f * ((float)w - side);
        b[1] = 0.5f * ((float)h - side);
        b[2] = b[0] + side;
        b[3] = b[1] + side;
    }
    int ok;
    if (rf == EBMC_RESIZE_PIL_BILINEAR) { /* PIL: crop to whole pixels, then Image.resize */
        int x0 = (int)b[0], y0 = (int)b[1], x1 = (int)b[2], y1 = (int)b[3];
        ok = ebmc_pil_resize_bilinear(px + ((size_t)y0 * w + x0) * 3, x1 - x0, y1 - y0, w * 3, size, hwc);
    } else
    ok = stbir_resize_region(px, w, h, 0, hwc, size, size, 0, STBIR_TYPE_UINT8, 3,
                                 STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                                 STBIR_FILTER_CATMULLROM, STBIR_FILTER_CATMULLROM,
                                 STBIR_COLORSPACE_LINEAR, NULL, b[0] / (float)w, b[1] / (float)h,
                                 b[2] / (float)w, b[3] / (float)h);
    stbi_image_free(px);
    if (!ok) {
        snprintf(why, wlen, "resize failed (out of memory?)");
        return false;
    }
    const size_t plane = (size_t)size * size;
    for (size_t i = 0; i < plane; i++) /* (H,W,3) -> (3,H,W) */
        for (int c = 0; c < 3; c++) dst[c * plane + i] = hwc[3 * i + (size_t)c];
    return true;
}

/* ------------------------------------------------------------ the entry point */

ebmc_status ebmc_data_images(const char *path, int size, const float *box, const char *cache_path,
                             bool skip_bad, ebmc_dataset_t **out, char *err, size_t errlen) {
    ebmc_images_opts o = {EBMC_RESIZE_CATMULL_ROM, EBMC_SPLIT_ALL, NULL};
    return ebmc_data_images_ex(path, size, box, cache_path, skip_bad, &o, out, err, errlen);
}

/* Keeps the CelebA train partition's images of L (data_celeba.c). */
static ebmc_status keep_split(src_list *L, const ebmc_images_opts *o, char *err, size_t errlen) {
    uint8_t *part = NULL;
    long np = 0;
    if (o->partition_file && o->partition_file[0] &&
        ebmc_celeba_partition_load(o->partition_file, &part, &np, err, errlen))
        return EBMC_E_IO;
    size_t k = 0;
    for (size_t i = 0; i < L->n; i++) {
        if (ebmc_celeba_in_train(L->v[i].rel, part, np)) L->v[k++] = L->v[i];
        else free(L->v[i].rel);
    }
    L->n = k;
    free(part);
    return EBMC_OK;
}

ebmc_status ebmc_data_images_ex(const char *path, int size, const float *box, const char *cache_path,
                                bool skip_bad, const ebmc_images_opts *o, ebmc_dataset_t **out, char *err,
                                size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!out) return ebmc_data_err(EBMC_E_INVALID, err, errlen, path, "images: out is NULL");
    if (!path || !path[0])
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, "(no path)", "images: no folder or tar given");
    if (size < 1 || size > 1024)
        return ebmc_data_err(EBMC_E_INVALID, err, errlen, path, "images: size %d is not in 1..1024", size);
    if (box) {
        bool fin = isfinite(box[0]) && isfinite(box[1]) && isfinite(box[2]) && isfinite(box[3]);
        if (!fin || box[0] < 0 || box[1] < 0 || box[2] <= box[0] || box[3] <= box[1])
            return ebmc_data_err(EBMC_E_INVALID, err, errlen, path,
                                 "images: bad crop box (%g, %g, %g, %g): need 0 <= x0 < x1, "
                                 "0 <= y0 < y1 (pixels of the source)", box[0], box[1], box[2], box[3]);
        if (o->resize == EBMC_RESIZE_PIL_BILINEAR &&
            (box[0] != floorf(box[0]) || box[1] != floorf(box[1]) || box[2] != floorf(box[2]) || box[3] != floorf(box[3])))
            return ebmc_data_err(EBMC_E_INVALID, err, errlen, path, "images: the PIL resize crops whole pixels: "
                                 "the box (%g, %g, %g, %g) must be integers", box[0], box[1], box[2], box[3]);
    }
    if (cache_path && !cache_path[0]) cache_path = NULL;

    struct stat sb;
    if (stat(path, &sb) != 0)
        return ebmc_data_err(EBMC_E_IO, err, errlen, path, "images: cannot find the folder or tar (%s)",
                             strerror(errno));
    src_ctx S = {path, NULL};
    src_list L = {0};
    ebmc_dataset_t *ds = NULL;
    FILE *cf = NULL;
    char tmp[4200] = "";
    uint8_t *hwc = NULL;
    ebmc_status st = EBMC_OK;
    if (S_ISDIR(sb.st_mode)) {
        inode_set seen = {0};
        if (inode_add(&seen, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino) < 0)
            st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "out of memory");
        else
            st = scan_dir(path, "", 0, &L, &seen, err, errlen);
        free(seen.k);
    } else if (S_ISREG(sb.st_mode)) {
        S.tar = ebmc_fopen_read(path, err, errlen);
        if (!S.tar) return EBMC_E_IO;
        st = scan_tar(path, S.tar, &L, err, errlen);
    } else {
        return ebmc_data_err(EBMC_E_IO, err, errlen, path, "neither a folder nor a tar file");
    }
    if (st == EBMC_OK && o->split == EBMC_SPLIT_CELEBA_TRAIN) st = keep_split(&L, o, err, errlen);
    if (st != EBMC_OK) goto done;
    if (L.n == 0) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path,
                           "no images (*.jpg, *.jpeg, *.png) found%s", S.tar ? " in the tar" : "");
        goto done;
    }
    if (L.n > INT_MAX) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path, "too many images (%zu)", L.n);
        goto done;
    }
    qsort(L.v, L.n, sizeof *L.v, item_cmp);

    ds = ebmc_data_alloc("images");
    if (!ds) {
        st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "out of memory");
        goto done;
    }
    ds->kind = EBMC_DATA_U8_IMAGES;
    ds->c = 3;
    ds->h = ds->w = size;

    uint64_t hash = 0;
    if (cache_path) {
        bool nomem = false;
        hash = source_hash(&S, &L, box, size, skip_bad, &nomem);
        if (o->resize != EBMC_RESIZE_CATMULL_ROM) hash = fnv_u64(hash, 0x5049u + (uint64_t)o->resize); /* "PI" */
        if (nomem) {
            st = ebmc_data_err(EBMC_E_NOMEM, err, errlen, path, "out of memory");
            goto done;
        }
        char why[512];
        if (cache_load(cache_path, hash, size, ds, why, sizeof why)) {
            if (ds->skipped)
                fprintf(stderr, "ebmc: %s: %d bad images were left out when the cache %s was made\n",
                        path, ds->skipped, cache_path);
            goto done;
        }
        if (why[0])
            fprintf(stderr, "ebmc: image cache %s %s; rebuilding it from %s\n", cache_path, why, path);
        cf = ebmc_atomic_open(cache_path, tmp, sizeof tmp, err, errlen);
        if (!cf) {
            st = EBMC_E_WRITE; /* err: "CACHE: cannot create ..." */
            goto done;
        }
    }
    if (L.n >= 1000 || cache_path)
        fprintf(stderr, "ebmc: preparing %zu images from %s at %dx%d%s%s\n", L.n, path, size, size,
                cache_path ? " into the cache " : "", cache_path ? cache_path : "");

    const size_t per = (size_t)3 * size * size;
    ds->u8 = ebmc_data_malloc(L.n * per, path, "the prepared images", err, errlen);
    hwc = ebmc_data_malloc(per, path, "resize scratch", err, errlen);
    if (!ds->u8 || !hwc) {
        st = EBMC_E_NOMEM;
        goto done;
    }
    size_t kept = 0, bad = 0;
    char first_bad[1024] = "";
    for (size_t i = 0; i < L.n; i++) {
        char why[512] = "";
        size_t len = 0;
        uint8_t *bytes = read_item(&S, &L.v[i], &len, why, sizeof why);
        bool ok = bytes && prepare_one(bytes, len, box, size, o->resize, ds->u8 + kept * per, hwc, why, sizeof why);
        free(bytes);
        if (ok) {
            kept++;
        } else {
            if (!skip_bad) {
                st = ebmc_data_err(EBMC_E_IO, err, errlen, NULL, "%s%s%s: %s", path,
                                   S.tar ? ":" : "/", L.v[i].rel, why);
                goto done;
            }
            if (!bad++)
                snprintf(first_bad, sizeof first_bad, "%s%s%s: %s", path, S.tar ? ":" : "/",
                         L.v[i].rel, why);
        }
        if (L.n >= 20000 && (i + 1) % 20000 == 0)
            fprintf(stderr, "ebmc: %s: %zu / %zu images prepared\n", path, i + 1, L.n);
    }
    if (bad)
        fprintf(stderr, "ebmc: %s: left out %zu of %zu images that could not be read or decoded "
                        "(skip_bad; the first: %s)\n", path, bad, L.n, first_bad);
    if (kept == 0) {
        st = ebmc_data_err(EBMC_E_IO, err, errlen, path, "none of the %zu images could be used (the first: %s)",
                           L.n, first_bad);
        goto done;
    }
    if (kept < L.n) {
        uint8_t *p = realloc(ds->u8, kept * per);
        if (p) ds->u8 = p;
    }
    ds->n = (int)kept;
    ds->skipped = (int)bad;

    if (cf) {
        uint8_t h[CACHE_HEADER] = {0};
        memcpy(h, CACHE_MAGIC, 8);
        put32(h + 8, EBMC_IMAGE_CACHE_VERSION);
        put32(h + 12, (uint32_t)kept);
        put32(h + 16, 3);
        put32(h + 20, (uint32_t)size);
        put32(h + 24, (uint32_t)hash);
        put32(h + 28, (uint32_t)(hash >> 32));
        put32(h + 32, (uint32_t)bad);
        if (fwrite(h, 1, CACHE_HEADER, cf) != CACHE_HEADER || fwrite(ds->u8, 1, kept * per, cf) != kept * per) {
            st = ebmc_data_err(EBMC_E_IO, err, errlen, cache_path, "cannot write the cache (%s)",
                               strerror(errno));
            goto done;
        }
        FILE *f = cf;
        cf = NULL;
        st = ebmc_atomic_commit(f, tmp, cache_path, err, errlen);
    }
done:
    if (cf) ebmc_atomic_abort(cf, tmp);
    if (S.tar) fclose(S.tar);
    free(hwc);
    list_free(&L);
    if (st != EBMC_OK) {
        ebmc_data_free(ds);
        return st;
    }
    *out = ds;
    return EBMC_OK;
}
