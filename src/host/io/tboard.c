/* TensorBoard event files (include/ebmc/tboard.h): TFRecord framing, CRC-32C and the few
 * protobuf fields of tensorflow.Event / Summary that ebmc writes.
 *
 * Field numbers (tensorflow/core/util/event.proto, core/framework/summary.proto, tensor.proto):
 *   Event         1 wall_time double, 2 step int64, 3 file_version string, 5 summary Summary
 *   Summary       1 value (repeated) Value
 *   Value         1 tag string, 2 simple_value float, 4 image Image, 8 tensor TensorProto,
 *                 9 metadata SummaryMetadata
 *   Image         1 height int32, 2 width int32, 3 colorspace int32, 4 encoded_image_string bytes
 *   TensorProto   1 dtype (DT_STRING = 7), 2 tensor_shape (empty: a scalar), 8 string_val bytes
 *   SummaryMetadata 1 plugin_data PluginData { 1 plugin_name string } */
#include "ebmc/tboard.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5, MAX_DEPTH = 8 };

struct ebmc_tb {
    int fd;
    char path[PATH_MAX];
    int64_t written;       /* bytes in the file */
    uint8_t *buf;          /* records collected, not yet written */
    size_t len, cap;
    bool oom;              /* a record did not fit in memory: flush says so */
    size_t rec_start;      /* the Event being built: its offset in buf */
    size_t open[MAX_DEPTH]; /* offsets of the open length-delimited fields' contents */
    int depth;
};

/* ---- CRC-32C */

static uint32_t g_crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        g_crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            g_crc_table[t][i] = (g_crc_table[t - 1][i] >> 8) ^ g_crc_table[0][g_crc_table[t - 1][i] & 0xff];
}

uint32_t ebmc_crc32c(uint32_t crc, const void *data, size_t n) {
    static int ready = 0;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) { /* idempotent: racing threads compute the same table */
        crc_init();
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) { /* slicing by 8 */
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = g_crc_table[7][lo & 0xff] ^ g_crc_table[6][(lo >> 8) & 0xff] ^ g_crc_table[5][(lo >> 16) & 0xff] ^
              g_crc_table[4][lo >> 24] ^ g_crc_table[3][p[4]] ^ g_crc_table[2][p[5]] ^ g_crc_table[1][p[6]] ^
              g_crc_table[0][p[7]];
    }
    while (n--) crc = (crc >> 8) ^ g_crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

static uint32_t masked_crc(const void *data, size_t n) {
    uint32_t c = ebmc_crc32c(0, data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- the record buffer and protobuf fields */

static bool reserve(ebmc_tb_t *tb, size_t more) {
    if (tb->oom) return false;
    if (tb->len + more <= tb->cap) return true;
    size_t cap = tb->cap ? tb->cap : 65536;
    while (cap < tb->len + more) cap *= 2;
    uint8_t *b = realloc(tb->buf, cap);
    if (!b) return !(tb->oom = true);
    tb->buf = b, tb->cap = cap;
    return true;
}

static void put(ebmc_tb_t *tb, const void *p, size_t n) {
    if (!reserve(tb, n)) return;
    memcpy(tb->buf + tb->len, p, n);
    tb->len += n;
}

static size_t varint_encode(uint8_t *out, uint64_t v) {
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void put_varint(ebmc_tb_t *tb, uint64_t v) {
    uint8_t b[10];
    put(tb, b, varint_encode(b, v));
}

static void put_key(ebmc_tb_t *tb, int field, int wire) { put_varint(tb, (uint64_t)field << 3 | (uint64_t)wire); }

static void put_le(ebmc_tb_t *tb, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(tb, b, (size_t)bytes);
}

static void put_bytes(ebmc_tb_t *tb, int field, const void *p, size_t n) {
    put_key(tb, field, WIRE_LEN);
    put_varint(tb, n);
    put(tb, p, n);
}

static void put_double(ebmc_tb_t *tb, int field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_key(tb, field, WIRE_I64);
    put_le(tb, u, 8);
}

/* A length-delimited field whose size is known only at its end: the key now, the contents,
 * then msg_end moves them up by the length's varint. */
static void msg_begin(ebmc_tb_t *tb, int field) {
    put_key(tb, field, WIRE_LEN);
    if (tb->depth < MAX_DEPTH) tb->open[tb->depth] = tb->len;
    tb->depth++;
}

static void msg_end(ebmc_tb_t *tb) {
    size_t start = tb->open[--tb->depth];
    uint8_t b[10];
    size_t n = tb->oom ? 0 : varint_encode(b, tb->len - start);
    if (!reserve(tb, n)) return;
    memmove(tb->buf + start + n, tb->buf + start, tb->len - start);
    memcpy(tb->buf + start, b, n);
    tb->len += n;
}

/* The TFRecord frame around the Event built since rec_start: 12 bytes in front, 4 behind. */
static void frame(ebmc_tb_t *tb) {
    if (!reserve(tb, 16)) return;
    size_t n = tb->len - tb->rec_start;
    memmove(tb->buf + tb->rec_start + 12, tb->buf + tb->rec_start, n);
    uint8_t *h = tb->buf + tb->rec_start;
    for (int i = 0; i < 8; i++) h[i] = (uint8_t)((uint64_t)n >> (8 * i));
    uint32_t lc = masked_crc(h, 8);
    for (int i = 0; i < 4; i++) h[8 + i] = (uint8_t)(lc >> (8 * i));
    tb->len += 12;
    put_le(tb, masked_crc(h + 12, n), 4);
}

static void event_begin(ebmc_tb_t *tb, double wall) {
    tb->rec_start = tb->len;
    tb->depth = 0;
    put_double(tb, 1, wall);
}

void ebmc_tb_begin(ebmc_tb_t *tb, int64_t step, double wall_time) {
    event_begin(tb, wall_time);
    put_key(tb, 2, WIRE_VARINT);
    put_varint(tb, (uint64_t)step);
    msg_begin(tb, 5); /* summary */
}

void ebmc_tb_end(ebmc_tb_t *tb) {
    msg_end(tb);
    frame(tb);
}

void ebmc_tb_scalar(ebmc_tb_t *tb, const char *tag, float value) {
    uint32_t u;
    memcpy(&u, &value, 4);
    msg_begin(tb, 1); /* value */
    put_bytes(tb, 1, tag, strlen(tag));
    put_key(tb, 2, WIRE_I32);
    put_le(tb, u, 4);
    msg_end(tb);
}

void ebmc_tb_image(ebmc_tb_t *tb, const char *tag, const uint8_t *png, size_t len, int height, int width) {
    msg_begin(tb, 1);
    put_bytes(tb, 1, tag, strlen(tag));
    msg_begin(tb, 4); /* image */
    const int64_t f[3] = {height, width, 3};
    for (int i = 0; i < 3; i++) {
        put_key(tb, i + 1, WIRE_VARINT);
        put_varint(tb, (uint64_t)f[i]);
    }
    put_bytes(tb, 4, png, len);
    msg_end(tb);
    msg_end(tb);
}

void ebmc_tb_text(ebmc_tb_t *tb, const char *tag, const char *text) {
    msg_begin(tb, 1);
    put_bytes(tb, 1, tag, strlen(tag));
    msg_begin(tb, 8); /* tensor */
    put_key(tb, 1, WIRE_VARINT);
    put_varint(tb, 7); /* DT_STRING */
    put_bytes(tb, 2, "", 0); /* tensor_shape {}: a scalar */
    put_bytes(tb, 8, text, strlen(text));
    msg_end(tb);
    msg_begin(tb, 9); /* metadata */
    msg_begin(tb, 1); /* plugin_data */
    put_bytes(tb, 1, "text", 4);
    msg_end(tb);
    msg_end(tb);
    msg_end(tb);
}

/* ---- the file */

double ebmc_tb_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ebmc_tb_t *tb_new(const char *path, int fd) {
    ebmc_tb_t *tb = calloc(1, sizeof *tb);
    if (!tb) return NULL;
    tb->fd = fd;
    snprintf(tb->path, sizeof tb->path, "%s", path);
    return tb;
}

ebmc_tb_t *ebmc_tb_create(const char *dir, char *err, size_t errlen) {
    if (ebmc_mkdir_p(dir)) {
        snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return NULL;
    }
    char host[128] = "localhost", path[PATH_MAX];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    double wall = ebmc_tb_wall();
    long long sec = (long long)wall;
    int fd = -1;
    /* a name of its own (TensorBoard reads every events.out.tfevents.* of the folder, in name order) */
    for (int k = 0; k < 100 && fd < 0; k++) {
        snprintf(path, sizeof path, "%s/events.out.tfevents.%lld.%s", dir, sec + k, host);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create an event file: %s", dir, strerror(errno));
        return NULL;
    }
    ebmc_tb_t *tb = tb_new(path, fd);
    if (!tb) {
        close(fd);
        unlink(path);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    event_begin(tb, wall);
    put_bytes(tb, 3, "brain.Event:2", 13);
    frame(tb);
    return tb;
}

/* ---- reading back */

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* The step of a serialized Event (-1 when it has none or does not parse). */
static int64_t event_step(const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t key, v;
        if (!read_varint(&p, end, &key)) return -1;
        switch (key & 7) {
        case WIRE_VARINT:
            if (!read_varint(&p, end, &v)) return -1;
            if (key >> 3 == 2) return (int64_t)v;
            break;
        case WIRE_I64: p += 8; break;
        case WIRE_I32: p += 4; break;
        case WIRE_LEN:
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p)) return -1;
            p += v;
            break;
        default: return -1;
        }
    }
    return -1;
}

static uint32_t le32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

typedef struct {
    int64_t valid, records, first_step, last_step; /* first/last: smallest/largest step seen */
    char why[256];
} scan_t;

/* Records of fd from byte `from` (a record boundary) to its end `size`. */
static ebmc_status scan_fd(int fd, int64_t from, int64_t size, scan_t *s) {
    memset(s, 0, sizeof *s);
    s->valid = from;
    s->first_step = s->last_step = -1;
    uint8_t *data = NULL;
    size_t cap = 0;
    ebmc_status st = EBMC_OK;
    for (int64_t at = from; at < size;) {
        uint8_t h[12];
        if (size - at < 12) {
            snprintf(s->why, sizeof s->why, "a cut record at byte %" PRId64 " (%" PRId64 " bytes of a 12-byte header)",
                     at, size - at);
            break;
        }
        if (pread(fd, h, 12, at) != 12) {
            st = EBMC_E_IO;
            break;
        }
        uint64_t n = 0;
        for (int i = 0; i < 8; i++) n |= (uint64_t)h[i] << (8 * i);
        if (le32(h + 8) != masked_crc(h, 8)) {
            snprintf(s->why, sizeof s->why, "a corrupt record header at byte %" PRId64 " (its length's CRC-32C differs)", at);
            break;
        }
        if (n > (uint64_t)(size - at - 12) || (uint64_t)(size - at - 12) - n < 4) {
            snprintf(s->why, sizeof s->why, "a cut record at byte %" PRId64 " (%" PRIu64 " bytes announced, %" PRId64
                     " there)", at, n + 16, size - at);
            break;
        }
        if (n + 4 > cap) {
            uint8_t *g = realloc(data, (size_t)n + 4);
            if (!g) {
                st = EBMC_E_NOMEM;
                break;
            }
            data = g, cap = (size_t)n + 4;
        }
        if (pread(fd, data, (size_t)n + 4, at + 12) != (ssize_t)(n + 4)) {
            st = EBMC_E_IO;
            break;
        }
        if (le32(data + n) != masked_crc(data, (size_t)n)) {
            snprintf(s->why, sizeof s->why, "a corrupt record at byte %" PRId64 " (its data's CRC-32C differs)", at);
            break;
        }
        int64_t step = event_step(data, (size_t)n);
        if (step >= 0 && (s->first_step < 0 || step < s->first_step)) s->first_step = step;
        if (step > s->last_step) s->last_step = step;
        at += 16 + (int64_t)n;
        s->valid = at;
        s->records++;
    }
    free(data);
    return st;
}

/* path opened (O_RDONLY or O_RDWR) and its size; -1 with "PATH: problem" in err */
static int open_sized(const char *path, int mode, int64_t *size, char *err, size_t errlen) {
    int fd = open(path, mode | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    *size = sb.st_size;
    return fd;
}

static ebmc_status read_failed(const char *path, ebmc_status st, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: cannot read: %s", path, st == EBMC_E_NOMEM ? "out of memory" : strerror(errno));
    return st;
}

ebmc_status ebmc_tb_scan(const char *path, int64_t *valid, int64_t *records, int64_t *last_step, char *why,
                         size_t whylen) {
    int64_t size;
    int fd = open_sized(path, O_RDONLY, &size, why, whylen);
    if (fd < 0) return EBMC_E_IO;
    scan_t s;
    ebmc_status st = scan_fd(fd, 0, size, &s);
    close(fd);
    if (st) return read_failed(path, st, why, whylen);
    *valid = s.valid, *records = s.records, *last_step = s.last_step;
    snprintf(why, whylen, "%s", s.why);
    return EBMC_OK;
}

ebmc_tb_t *ebmc_tb_reopen(const char *path, int64_t keep, char *note, size_t notelen, char *err, size_t errlen) {
    note[0] = 0;
    int64_t size;
    int fd = open_sized(path, O_RDWR, &size, err, errlen);
    if (fd < 0) return NULL;
    scan_t head, tail;
    int64_t upto = keep < size ? keep : size;
    ebmc_status st = scan_fd(fd, 0, upto, &head);
    if (!st && head.valid == upto && upto < size) st = scan_fd(fd, upto, size, &tail);
    if (st) {
        read_failed(path, st, err, errlen);
        close(fd);
        return NULL;
    }
    if (head.valid < upto) /* damage before the checkpoint's length */
        snprintf(note, notelen, "%s: %s; cut there, at step %" PRId64 ": TensorBoard loses the events of the "
                 "steps after it up to the checkpoint", path, head.why, head.last_step);
    else if (size < keep)
        snprintf(note, notelen, "%s: %" PRId64 " bytes, shorter than the %" PRId64 " the checkpoint recorded (lost "
                 "after the checkpoint was written): the events up to step %" PRId64 " are kept", path, size, keep,
                 head.last_step);
    else if (size > keep && tail.records)
        snprintf(note, notelen, "%s: dropped %" PRId64 " bytes written after the checkpoint (%" PRId64 " records of "
                 "steps %" PRId64 "-%" PRId64 ", which this run writes again)%s%s", path, size - keep, tail.records,
                 tail.first_step, tail.last_step, tail.why[0] ? "; they end in " : "", tail.why);
    else if (size > keep)
        snprintf(note, notelen, "%s: dropped %" PRId64 " bytes written after the checkpoint: %s", path, size - keep,
                 tail.why);
    if (head.valid < size && ftruncate(fd, head.valid)) {
        snprintf(err, errlen, "%s: cannot cut it back to %" PRId64 " bytes: %s", path, head.valid, strerror(errno));
        close(fd);
        return NULL;
    }
    ebmc_tb_t *tb = tb_new(path, fd);
    if (!tb) {
        snprintf(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    tb->written = head.valid;
    return tb;
}

ebmc_status ebmc_tb_flush(ebmc_tb_t *tb, bool durable, char *err, size_t errlen) {
    if (tb->oom) {
        snprintf(err, errlen, "%s: out of host memory for the events", tb->path);
        return EBMC_E_NOMEM;
    }
    size_t done = 0;
    while (done < tb->len) {
        ssize_t w = pwrite(tb->fd, tb->buf + done, tb->len - done, tb->written + (int64_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(err, errlen, "%s: cannot write: %s", tb->path, w < 0 ? strerror(errno) : "no progress");
            return EBMC_E_IO;
        }
        done += (size_t)w;
    }
    tb->written += (int64_t)tb->len;
    tb->len = 0;
    if (durable && fsync(tb->fd)) {
        snprintf(err, errlen, "%s: cannot sync: %s", tb->path, strerror(errno));
        return EBMC_E_IO;
    }
    return EBMC_OK;
}

ebmc_status ebmc_tb_truncate(ebmc_tb_t *tb, int64_t bytes, char *err, size_t errlen) {
    if (bytes > tb->written) { /* still in memory */
        size_t n = (size_t)(bytes - tb->written);
        tb->len = n < tb->len ? n : tb->len;
        return EBMC_OK;
    }
    tb->len = 0;
    tb->oom = false;
    if (ftruncate(tb->fd, bytes)) {
        snprintf(err, errlen, "%s: cannot cut it back to %" PRId64 " bytes: %s", tb->path, bytes, strerror(errno));
        return EBMC_E_IO;
    }
    tb->written = bytes;
    return EBMC_OK;
}

int64_t ebmc_tb_bytes(const ebmc_tb_t *tb) { return tb->written + (int64_t)tb->len; }
const char *ebmc_tb_path(const ebmc_tb_t *tb) { return tb->path; }

void ebmc_tb_close(ebmc_tb_t *tb) {
    if (!tb) return;
    char e[64];
    ebmc_tb_flush(tb, false, e, sizeof e);
    close(tb->fd);
    free(tb->buf);
    free(tb);
}
