/* JSONL metrics records and the stderr progress line. See include/ebmc/log.h. */
#include "ebmc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- JSONL */

/* Room kept at the end of buf for "}\n" and the NUL, so that a record that has no overflow
 * always closes. */
#define JSONL_TAIL 3
#define JSONL_CAP (sizeof(((ebmc_jsonl *)0)->buf) - JSONL_TAIL)

static bool put_raw(ebmc_jsonl *l, const char *s, size_t n) {
    if (n > JSONL_CAP - l->len) return false;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

static bool put_str(ebmc_jsonl *l, const char *s) { return put_raw(l, s, strlen(s)); }

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;      /* no overlong forms */
        if (c == 0xed) hi = 0x9f;      /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;      /* no overlong forms */
        if (c == 0xf4) hi = 0x8f;      /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) return 0; /* also stops at the NUL */
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

/* "str" + suffix (suffix: plain ASCII, not escaped), as a JSON string. */
static bool put_escaped_sfx(ebmc_jsonl *l, const char *str, const char *suffix) {
    const unsigned char *s = (const unsigned char *)str;
    if (!put_raw(l, "\"", 1)) return false;
    while (*s) {
        unsigned char c = *s;
        char esc[8];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                e = esc;
            }
        }
        if (e) {
            if (!put_str(l, e)) return false;
            s++;
            continue;
        }
        size_t n = utf8_seq(s);
        if (n == 0) { /* one byte of invalid UTF-8: U+FFFD REPLACEMENT CHARACTER */
            if (!put_str(l, "\\ufffd")) return false;
            s++;
            continue;
        }
        if (!put_raw(l, (const char *)s, n)) return false;
        s += n;
    }
    return put_str(l, suffix) && put_raw(l, "\"", 1);
}

static bool put_escaped(ebmc_jsonl *l, const char *str) { return put_escaped_sfx(l, str, ""); }

/* A field: [","] "key": then the value written by the caller between field_open and
 * field_close. On any shortfall the record is rolled back to before the field and flagged. */
static bool field_open(ebmc_jsonl *l, const char *key) {
    if (l->overflow || l->len == 0) return false;
    if (l->buf[l->len - 1] != '{' && !put_raw(l, ",", 1)) return false;
    return put_escaped(l, key ? key : "") && put_raw(l, ":", 1);
}

static void field_close(ebmc_jsonl *l, size_t len0, bool ok) {
    if (!ok && l->len != 0 && !l->overflow) {
        l->len = len0;
        l->overflow = true;
    }
    if (l->len < sizeof l->buf) l->buf[l->len] = '\0';
}

void ebmc_jsonl_begin(ebmc_jsonl *l) {
    l->buf[0] = '{';
    l->buf[1] = '\0';
    l->len = 1;
    l->overflow = false;
}

void ebmc_jsonl_int(ebmc_jsonl *l, const char *key, int64_t v) {
    size_t len0 = l->len;
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)v);
    bool ok = field_open(l, key) && put_str(l, num);
    field_close(l, len0, ok);
}

void ebmc_jsonl_num(ebmc_jsonl *l, const char *key, double v) {
    size_t len0 = l->len;
    bool ok = field_open(l, key);
    if (ok && isfinite(v)) {
        char num[48];
        snprintf(num, sizeof num, "%.9g", v);
        for (char *c = num; *c; c++) /* a locale with a decimal comma */
            if (*c == ',') *c = '.';
        ok = put_str(l, num);
    } else if (ok) {
        const char *what = isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
        ok = put_str(l, "null") && put_raw(l, ",", 1) &&
             put_escaped_sfx(l, key ? key : "", "_nonfinite") &&
             put_raw(l, ":", 1) && put_escaped(l, what);
    }
    field_close(l, len0, ok);
}

void ebmc_jsonl_str(ebmc_jsonl *l, const char *key, const char *v) {
    size_t len0 = l->len;
    bool ok = field_open(l, key) && (v ? put_escaped(l, v) : put_str(l, "null"));
    field_close(l, len0, ok);
}

void ebmc_jsonl_bool(ebmc_jsonl *l, const char *key, bool v) {
    size_t len0 = l->len;
    bool ok = field_open(l, key) && put_str(l, v ? "true" : "false");
    field_close(l, len0, ok);
}

static bool write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        s += k;
        n -= (size_t)k;
    }
    return true;
}

ebmc_status ebmc_jsonl_append(ebmc_jsonl *l, const char *path, char *err, size_t errlen) {
    if (!path || !*path) {
        ebmc_set_err(err, errlen, "(null): no file name given");
        return EBMC_E_INVALID;
    }
    if (!l || l->len == 0 || l->len > JSONL_CAP || l->buf[0] != '{') {
        ebmc_set_err(err, errlen, "%s: JSONL record was never begun (ebmc_jsonl_begin); not written",
                path);
        return EBMC_E_INVALID;
    }
    if (l->overflow) {
        ebmc_set_err(err, errlen,
                "%s: JSONL record longer than %zu bytes: fields were dropped, line not written",
                path, JSONL_CAP);
        return EBMC_E_INVALID;
    }
    char line[sizeof l->buf + 1];
    size_t n = 0;
    line[n++] = '\n'; /* used only after a cut line, see below */
    memcpy(line + n, l->buf, l->len);
    n += l->len;
    line[n++] = '}';
    line[n++] = '\n';

    bool readable = true;
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EACCES) {
        readable = false;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        ebmc_set_err(err, errlen, "%s: cannot open for appending: %s", path, strerror(errno));
        return EBMC_E_WRITE;
    }
    /* An earlier crash may have cut the last line: start on a line of our own. */
    size_t skip = 1;
    struct stat sb;
    if (readable && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        char last = '\n';
        if (pread(fd, &last, 1, sb.st_size - 1) == 1 && last != '\n') skip = 0;
    }
    if (!write_all(fd, line + skip, n - skip)) {
        int e = errno;
        close(fd);
        ebmc_set_err(err, errlen, "%s: append failed: %s", path, strerror(e));
        return EBMC_E_WRITE;
    }
    if (close(fd) != 0) {
        ebmc_set_err(err, errlen, "%s: closing after append failed: %s", path, strerror(errno));
        return EBMC_E_WRITE;
    }
    return EBMC_OK;
}

/* ---- progress */

#define PROGRESS_TEXT_MAX 200
#define PROGRESS_MIN_INTERVAL 0.1 /* seconds between terminal redraws (tqdm's mininterval) */

struct ebmc_progress {
    int64_t total, start; /* iterations; total <= 0: unknown */
    int plain_every;
    bool quiet;
    FILE *f;
    bool tty;
    double t0;            /* monotonic seconds at create */
    double last_draw;     /* terminal: time of the last redraw */
    bool updated;         /* update was called at least once */
    bool drawn;           /* terminal: something is on the line */
    bool finished;
    int64_t it;           /* the latest iteration */
    int64_t last_printed; /* plain: the iteration of the last line printed, -1 none */
    size_t last_len;      /* terminal: length of the line on screen */
    char text[PROGRESS_TEXT_MAX + 1];
};

ebmc_progress_t *ebmc_progress_create(int64_t total, int64_t start, int plain_every, bool quiet) {
    ebmc_progress_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->total = total;
    p->start = start;
    p->plain_every = plain_every;
    p->quiet = quiet;
    p->f = stderr;
    p->tty = isatty(fileno(stderr)) == 1;
    p->t0 = ebmc_now_s();
    p->it = start;
    p->last_printed = -1;
    return p;
}

void ebmc_progress_set_stream(ebmc_progress_t *p, FILE *f, bool is_tty) {
    if (!p) return;
    p->f = f ? f : stderr;
    p->tty = is_tty;
}

void ebmc_progress_free(ebmc_progress_t *p) { free(p); }

/* mm:ss, or h:mm:ss from an hour on (tqdm's format_interval). */
static void fmt_interval(char *out, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(out, n, "?");
        return;
    }
    long long t = (long long)s;
    if (t >= 3600)
        snprintf(out, n, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(out, n, "%02lld:%02lld", t / 60, t % 60);
}

static size_t format_line(const ebmc_progress_t *p, double now, char *out, size_t n) {
    double elapsed = now - p->t0;
    int64_t done = p->it - p->start;
    double rate = elapsed > 0 && done > 0 ? (double)done / elapsed : 0.0;
    char el[32], rem[32], rt[48];
    fmt_interval(el, sizeof el, elapsed);
    if (rate <= 0)
        snprintf(rt, sizeof rt, "? it/s");
    else if (rate >= 1.0)
        snprintf(rt, sizeof rt, "%.2f it/s", rate);
    else
        snprintf(rt, sizeof rt, "%.2f s/it", 1.0 / rate);
    int k;
    if (p->total > 0) {
        int64_t left = p->total - p->it;
        fmt_interval(rem, sizeof rem, rate > 0 ? (double)(left > 0 ? left : 0) / rate : -1.0);
        double pct = 100.0 * (double)p->it / (double)p->total;
        k = snprintf(out, n, "%lld/%lld %3.0f%% [%s<%s, %s]", (long long)p->it,
                     (long long)p->total, pct, el, rem, rt);
    } else {
        k = snprintf(out, n, "%lld [%s, %s]", (long long)p->it, el, rt);
    }
    if (k < 0) k = 0;
    size_t len = (size_t)k < n ? (size_t)k : n - 1;
    if (p->text[0] && len < n - 1) {
        k = snprintf(out + len, n - len, " %s", p->text);
        if (k > 0) len += (size_t)k < n - len ? (size_t)k : n - len - 1;
    }
    return len;
}

static void draw_tty(ebmc_progress_t *p, double now) {
    char line[512];
    size_t len = format_line(p, now, line, sizeof line);
    fputc('\r', p->f);
    fwrite(line, 1, len, p->f);
    for (size_t i = len; i < p->last_len; i++) fputc(' ', p->f); /* cover a longer old line */
    fflush(p->f);
    p->last_len = len;
    p->last_draw = now;
    p->drawn = true;
}

static void print_plain(ebmc_progress_t *p, double now) {
    char line[512];
    size_t len = format_line(p, now, line, sizeof line);
    fwrite(line, 1, len, p->f);
    fputc('\n', p->f);
    fflush(p->f);
    p->last_printed = p->it;
}

static void set_text(ebmc_progress_t *p, const char *text) {
    if (!text) {
        p->text[0] = '\0';
        return;
    }
    size_t n = strnlen(text, PROGRESS_TEXT_MAX + 1);
    if (n > PROGRESS_TEXT_MAX) { /* cut, but not inside a UTF-8 sequence */
        n = PROGRESS_TEXT_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        p->text[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    p->text[n] = '\0';
}

void ebmc_progress_update(ebmc_progress_t *p, int64_t it, const char *text) {
    if (!p || p->finished) return;
    p->it = it;
    p->updated = true;
    set_text(p, text);
    if (p->quiet) return;
    double now = ebmc_now_s();
    bool last = p->total > 0 && it >= p->total;
    if (p->tty) {
        if (!p->drawn || last || now - p->last_draw >= PROGRESS_MIN_INTERVAL) draw_tty(p, now);
    } else {
        bool due = (p->plain_every > 0 && it % p->plain_every == 0) || last;
        if (due && it != p->last_printed) print_plain(p, now);
    }
}

void ebmc_progress_finish(ebmc_progress_t *p) {
    if (!p || p->finished) return;
    p->finished = true;
    if (p->quiet || !p->updated) return;
    double now = ebmc_now_s();
    if (p->tty) {
        draw_tty(p, now);
        fputc('\n', p->f);
        fflush(p->f);
    } else if (p->it != p->last_printed) {
        print_plain(p, now);
    }
}
