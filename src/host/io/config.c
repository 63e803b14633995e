/* Schema-driven INI configuration: see include/ebmc/config.h.
 *
 * Parsing uses inih (libinih, Debian bookworm: release 55). That build calls the handler without
 * a line number (INI_HANDLER_LINENO 0) and is laxer than ebmc's syntax: it accepts `key: value`,
 * text after `]`, indented lines as continuations of the previous value, only ` ;` as an inline
 * comment, no quotes, and it splits lines longer than 199 bytes in two (shifting every later line
 * number). So the file is read here and handed to ini_parse_stream through a reader that gives
 * inih exactly one physical line per call, counts the lines (inih calls the handler for a line
 * before it asks for the next one, so the reader's count is the handler's line), checks each line
 * against ebmc's stricter syntax, and passes on a normalised form: "" for blanks and comments,
 * "[name]" for a section, "key=" for a key line. inih tracks the current section and calls the
 * handler; the handler takes the key and the raw value text from the reader's state and parses
 * the value by ebmc's rules. The first error stops the parse (the reader then returns NULL).
 * inih's runtime option globals are left untouched. */
#include "ebmc/config.h"
#include "ebmc/fileio.h"

#include <ini.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_NAME_MAX 64                    /* longest section or key name in a schema */
#define CFG_FILE_MAX ((size_t)64 << 20)    /* a config file larger than this is refused */

typedef struct {
    bool has;   /* false: a required key that was never given */
    int64_t i;  /* INT */
    double f;   /* FLOAT */
    bool b;     /* BOOL */
    char *s;    /* STRING, CHOICE (malloc'd) */
} cfg_val;

struct ebmc_config {
    const ebmc_cfg_key *schema; /* (n) referenced, not copied */
    int n;
    cfg_val *val;               /* (n) current values */
    cfg_val *defv;              /* (n) parsed defaults (has == false: required) */
    bool *set;                  /* (n) given in a file or on the command line */
};

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *p = ebmc_xmalloc(n + 1, "config string");
    memcpy(p, s, n + 1);
    return p;
}

static char *xstrndup(const char *s, size_t n) {
    char *p = ebmc_xmalloc(n + 1, "config string");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

static char *lskip(char *s) {
    while (is_blank(*s)) s++;
    return s;
}

static void rtrim(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (is_blank(s[n - 1]) || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
}

static bool valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* A growing string. */
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) ebmc_fail("realloc(config text)", "out of host memory", __func__, __FILE__, __LINE__);
    b->p = p;
    b->cap = cap;
}

static void sb_putn(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_putc(sbuf *b, char ch) { sb_putn(b, &ch, 1); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        sb_putn(b, small, (size_t)n);
        return;
    }
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The fewest significant digits (15..17) that read back to exactly v. */
static void fmt_double(char *buf, size_t n, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* schema look-ups and suggestions                                                            */

static int find_key(const ebmc_config_t *c, const char *section, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->schema[i].section, section) && !strcmp(c->schema[i].key, key)) return i;
    return -1;
}

static bool section_known(const ebmc_config_t *c, const char *section) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->schema[i].section, section)) return true;
    return false;
}

/* Optimal-string-alignment distance (edits: insert, delete, substitute, swap two neighbours),
 * ignoring case: it only ranks suggestions for names that matched nothing exactly. */
#define OSA_MAX 255
static char lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }

static int osa_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > OSA_MAX || m > OSA_MAX) return 1 << 20;
    int rows[3][OSA_MAX + 1];
    int *pp = rows[0], *p = rows[1], *cur = rows[2]; /* rows i-2, i-1, i */
    for (size_t j = 0; j <= m; j++) p[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int cost = lower(a[i - 1]) != lower(b[j - 1]);
            int d = p[j] + 1;
            if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;
            if (p[j - 1] + cost < d) d = p[j - 1] + cost;
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]) &&
                pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            cur[j] = d;
        }
        int *t = pp;
        pp = p;
        p = cur;
        cur = t;
    }
    return p[m];
}

/* How many edits still count as "close" to a name of this length. */
static int close_enough(const char *name) { return 1 + (int)strlen(name) / 4; }

/* The schema key nearest to section.key (section may be ""), or -1 when none is close: the
 * distance of the full "section.key" names, or of the key names plus one when the section
 * differs (so a key written in the wrong section is found in its right one). */
static int suggest_key(const ebmc_config_t *c, const char *section, const char *key) {
    char full[2 * OSA_MAX + 2];
    snprintf(full, sizeof full, "%s%s%s", section, *section ? "." : "", key);
    int best = -1, best_d = 1 << 20;
    for (int i = 0; i < c->n; i++) {
        const ebmc_cfg_key *k = &c->schema[i];
        char cand[2 * CFG_NAME_MAX + 2];
        snprintf(cand, sizeof cand, "%s.%s", k->section, k->key);
        int d = osa_distance(full, cand);
        int dk = osa_distance(key, k->key) + (strcmp(section, k->section) != 0);
        if (dk < d) d = dk;
        if (d <= close_enough(k->key) && d < best_d) {
            best = i;
            best_d = d;
        }
    }
    return best;
}

/* The nearest known section name, or NULL. */
static const char *suggest_section(const ebmc_config_t *c, const char *section) {
    const char *best = NULL;
    int best_d = 1 << 20;
    for (int i = 0; i < c->n; i++) {
        const char *s = c->schema[i].section;
        int d = osa_distance(section, s);
        if (d <= close_enough(s) && d < best_d) {
            best = s;
            best_d = d;
        }
    }
    return best;
}

/* Appends "; did you mean 'section.key'?" for the nearest key, if any. */
static void append_key_hint(char *msg, size_t len, const ebmc_config_t *c, const char *section,
                            const char *key) {
    int s = suggest_key(c, section, key);
    size_t used = strlen(msg);
    if (s >= 0 && used < len)
        snprintf(msg + used, len - used, "; did you mean '%s.%s'?", c->schema[s].section,
                 c->schema[s].key);
}

/* ------------------------------------------------------------------------------------------ */
/* values                                                                                     */

static void val_clear(cfg_val *v) {
    free(v->s);
    memset(v, 0, sizeof *v);
}

static void val_copy(cfg_val *dst, const cfg_val *src) {
    *dst = *src;
    dst->s = src->s ? xstrdup(src->s) : NULL;
}

static bool val_equal(ebmc_cfg_type t, const cfg_val *a, const cfg_val *b) {
    if (a->has != b->has) return false;
    if (!a->has) return true;
    switch (t) {
    case EBMC_CFG_INT: return a->i == b->i;
    case EBMC_CFG_FLOAT: return a->f == b->f;
    case EBMC_CFG_BOOL: return a->b == b->b;
    case EBMC_CFG_STRING:
    case EBMC_CFG_CHOICE: return !strcmp(a->s, b->s);
    }
    return false;
}

/* The value's text from what follows '=': surrounding whitespace trimmed; a double-quoted value
 * unescaped (\" and \\); with `comments`, an unquoted value ends at a '#' or ';' that follows
 * whitespace, and a quoted one may be followed by whitespace and a comment. *out is malloc'd. */
static bool value_text(const char *raw, bool comments, char **out, char *why, size_t whylen) {
    const char *p = raw;
    while (is_blank(*p)) p++;
    char *text;
    if (*p == '"') {
        sbuf b = {0};
        sb_reserve(&b, 0);
        b.p[0] = '\0';
        const char *q = p + 1;
        for (;;) {
            if (*q == '\0') {
                free(b.p);
                set_err(why, whylen, "unterminated quoted value %s (no closing '\"')", p);
                return false;
            }
            if (*q == '"') break;
            if (*q == '\\') {
                if (q[1] == '"' || q[1] == '\\') {
                    sb_putc(&b, q[1]);
                    q += 2;
                    continue;
                }
                free(b.p);
                if (q[1] == '\0')
                    set_err(why, whylen, "unterminated quoted value %s (no closing '\"')", p);
                else
                    set_err(why, whylen,
                            "unknown escape '\\%c' in a quoted value (only \\\" and \\\\)", q[1]);
                return false;
            }
            sb_putc(&b, *q++);
        }
        const char *r = q + 1;
        while (is_blank(*r) || *r == '\r' || *r == '\n') r++;
        if (*r && !(comments && (*r == '#' || *r == ';'))) {
            free(b.p);
            set_err(why, whylen, "unexpected text after the closing quote: '%s'", r);
            return false;
        }
        text = b.p;
    } else {
        size_t n = strlen(p);
        if (comments) {
            for (const char *q = p; *q; q++)
                if ((*q == '#' || *q == ';') && q > raw && is_blank(q[-1])) {
                    n = (size_t)(q - p);
                    break;
                }
        }
        text = xstrndup(p, n);
        rtrim(text);
    }
    if (strpbrk(text, "\r\n")) {
        free(text);
        set_err(why, whylen, "a value cannot contain a line break");
        return false;
    }
    *out = text;
    return true;
}

static bool in_range(const ebmc_cfg_key *k, double v) {
    return k->min > k->max || (v >= k->min && v <= k->max);
}

static void range_err(const ebmc_cfg_key *k, const char *text, char *why, size_t whylen) {
    char lo[40], hi[40];
    fmt_double(lo, sizeof lo, k->min);
    fmt_double(hi, sizeof hi, k->max);
    set_err(why, whylen, "%s is out of range [%s, %s]", text, lo, hi);
}

/* Parses `text` (already unquoted) as k's type into *out (out->s malloc'd for strings). */
static bool parse_typed(const ebmc_cfg_key *k, const char *text, cfg_val *out, char *why,
                        size_t whylen) {
    memset(out, 0, sizeof *out);
    switch (k->type) {
    case EBMC_CFG_INT: {
        const char *d = text + (*text == '+' || *text == '-');
        bool ok = *d != '\0';
        for (const char *q = d; *q; q++)
            if (*q < '0' || *q > '9') ok = false;
        if (!ok) {
            set_err(why, whylen, "expected an integer, got '%s'", text);
            return false;
        }
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == ERANGE) {
            set_err(why, whylen, "integer %s does not fit in 64 bits", text);
            return false;
        }
        if (!in_range(k, (double)v)) {
            range_err(k, text, why, whylen);
            return false;
        }
        out->i = (int64_t)v;
        break;
    }
    case EBMC_CFG_FLOAT: {
        char *end = NULL;
        errno = 0;
        double v = *text && !is_blank(*text) ? strtod(text, &end) : 0.0;
        if (!*text || is_blank(*text) || end == text || *end) {
            set_err(why, whylen, "expected a number, got '%s'", text);
            return false;
        }
        if (isnan(v) || (isinf(v) && errno != ERANGE)) {
            set_err(why, whylen, "expected a finite number, got '%s'", text);
            return false;
        }
        if (isinf(v)) {
            set_err(why, whylen, "number %s is too large for a double", text);
            return false;
        }
        if (!in_range(k, v)) {
            range_err(k, text, why, whylen);
            return false;
        }
        out->f = v;
        break;
    }
    case EBMC_CFG_BOOL: {
        static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
        for (int j = 0; j < 4; j++) {
            if (!strcasecmp(text, yes[j])) {
                out->b = true;
                goto done;
            }
            if (!strcasecmp(text, no[j])) {
                out->b = false;
                goto done;
            }
        }
        set_err(why, whylen, "expected a boolean (true/false, yes/no, on/off, 1/0), got '%s'",
                text);
        return false;
    }
    case EBMC_CFG_STRING: out->s = xstrdup(text); break;
    case EBMC_CFG_CHOICE: {
        const char *best = NULL;
        size_t best_len = 0;
        int best_d = 1 << 20;
        for (const char *p = k->choices; *p;) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == strlen(text) && !strncmp(p, text, len)) {
                out->s = xstrdup(text);
                goto done;
            }
            char cand[OSA_MAX + 1];
            snprintf(cand, sizeof cand, "%.*s", (int)len, p);
            int d = osa_distance(text, cand);
            if (d <= close_enough(cand) && d < best_d) {
                best = p;
                best_len = len;
                best_d = d;
            }
            p += len + (bar != NULL);
        }
        if (best)
            set_err(why, whylen, "'%s' is not one of %s; did you mean '%.*s'?", text, k->choices,
                    (int)best_len, best);
        else
            set_err(why, whylen, "'%s' is not one of %s", text, k->choices);
        return false;
    }
    default: set_err(why, whylen, "bad type %d in the schema", (int)k->type); return false;
    }
done:
    out->has = true;
    return true;
}

/* raw text after '=' -> value, with the error (without location) in why */
static bool parse_value(const ebmc_cfg_key *k, const char *raw, bool comments, cfg_val *out,
                        char *why, size_t whylen) {
    char *text;
    if (!value_text(raw, comments, &text, why, whylen)) return false;
    bool ok = parse_typed(k, text, out, why, whylen);
    free(text);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* create / free                                                                              */

static _Noreturn void schema_fail(const ebmc_cfg_key *schema, int i, const char *what) {
    static char stmt[256];
    snprintf(stmt, sizeof stmt, "ebmc_config_create: schema[%d] %s.%s", i,
             schema[i].section ? schema[i].section : "(null)",
             schema[i].key ? schema[i].key : "(null)");
    ebmc_fail(stmt, what, __func__, __FILE__, __LINE__);
}

ebmc_config_t *ebmc_config_create(const ebmc_cfg_key *schema, int n) {
    EBMC_ASSERT(n >= 0 && (n == 0 || schema != NULL));
    char why[512];
    ebmc_config_t *c = ebmc_xcalloc(1, sizeof *c, "ebmc_config_t");
    c->schema = schema;
    c->n = n;
    c->val = ebmc_xcalloc((size_t)n, sizeof *c->val, "config values");
    c->defv = ebmc_xcalloc((size_t)n, sizeof *c->defv, "config defaults");
    c->set = ebmc_xcalloc((size_t)n, sizeof *c->set, "config flags");
    for (int i = 0; i < n; i++) {
        const ebmc_cfg_key *k = &schema[i];
        if (!k->section || !k->key || !valid_name(k->section) || !valid_name(k->key) ||
            strlen(k->section) > CFG_NAME_MAX || strlen(k->key) > CFG_NAME_MAX)
            schema_fail(schema, i, "section and key must be [a-z0-9_]+, at most 64 characters");
        if ((unsigned)k->type > (unsigned)EBMC_CFG_CHOICE) schema_fail(schema, i, "bad type");
        for (int j = 0; j < i; j++)
            if (!strcmp(schema[j].section, k->section) && !strcmp(schema[j].key, k->key))
                schema_fail(schema, i, "key declared twice");
        if (k->help && strpbrk(k->help, "\r\n")) schema_fail(schema, i, "help must be one line");
        if (k->type == EBMC_CFG_CHOICE) {
            const char *ch = k->choices;
            if (!ch || !*ch || ch[0] == '|' || ch[strlen(ch) - 1] == '|' || strstr(ch, "||") ||
                strpbrk(ch, "\"\\\r\n"))
                schema_fail(schema, i, "CHOICE needs choices \"a|b|c\" (non-empty, no quotes)");
        }
        if (k->def) {
            if (!parse_value(k, k->def, false, &c->defv[i], why, sizeof why))
                schema_fail(schema, i, why);
            val_copy(&c->val[i], &c->defv[i]);
        }
    }
    return c;
}

void ebmc_config_free(ebmc_config_t *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        val_clear(&c->val[i]);
        val_clear(&c->defv[i]);
    }
    free(c->val);
    free(c->defv);
    free(c->set);
    free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* loading a file through inih                                                                */

typedef struct {
    ebmc_config_t *c;
    const char *path;
    char *buf;          /* the file, NUL-terminated; lines are cut in place */
    size_t size, pos;
    int lineno;         /* the physical line last handed to inih (1-based) */
    const char *key;    /* key line: the key as written */
    const char *value;  /* key line: the raw text after '=' */
    cfg_val *val;       /* (n) staged values, committed only if the whole file is good */
    bool *set;          /* (n) staged flags */
    int *line_of;       /* (n) the line where this file gave the key, 0 if it did not */
    bool failed;
    char *err;
    size_t errlen;
} load_state;

static void load_fail(load_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void load_fail(load_state *st, const char *fmt, ...) {
    if (st->failed) return;
    st->failed = true;
    if (!st->err || st->errlen == 0) return;
    int n = snprintf(st->err, st->errlen, "%s:%d: ", st->path, st->lineno);
    if (n < 0 || (size_t)n >= st->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void syntax_fail(load_state *st, const char *line) {
    load_fail(st, "expected '[section]', 'key = value', a comment or a blank line, got '%s'",
              line);
}

/* inih's ini_reader: one physical line per call, checked and normalised (see the top). */
static char *cfg_reader(char *str, int num, void *stream) {
    load_state *st = stream;
    if (st->failed || st->pos >= st->size) return NULL;
    if (num < CFG_NAME_MAX + 8) { /* "[name]" and "name=" must fit inih's line buffer */
        load_fail(st, "inih's line buffer is too small (%d bytes)", num);
        return NULL;
    }
    char *line = st->buf + st->pos;
    char *nl = memchr(line, '\n', st->size - st->pos);
    size_t len = nl ? (size_t)(nl - line) : st->size - st->pos;
    st->pos += len + (nl != NULL);
    line[len] = '\0';
    st->lineno++;
    st->key = st->value = NULL;
    str[0] = '\0';
    if (st->lineno == 1 && !strncmp(line, "\xEF\xBB\xBF", 3)) line += 3; /* UTF-8 BOM */
    char *s = lskip(line);
    rtrim(s);
    if (*s == '\0' || *s == '#' || *s == ';') return str; /* blank or comment */

    if (*s == '[') {
        char *close = strchr(s, ']');
        char *rest = close ? lskip(close + 1) : NULL;
        if (!close || (*rest && *rest != '#' && *rest != ';')) {
            syntax_fail(st, s);
            return str;
        }
        *close = '\0';
        const char *name = s + 1;
        if (!section_known(st->c, name)) { /* every schema section is a valid name */
            const char *sug = suggest_section(st->c, name);
            if (sug)
                load_fail(st, "unknown section [%s]; did you mean [%s]?", name, sug);
            else
                load_fail(st, "unknown section [%s]", name);
            return str;
        }
        snprintf(str, (size_t)num, "[%s]", name); /* fits: names are at most 64 characters */
        return str;
    }

    char *eq = strchr(s, '=');
    char *colon = strchr(s, ':');
    char *key_end = eq;
    while (key_end && key_end > s && is_blank(key_end[-1])) key_end--;
    if (!eq || (colon && colon < eq) || key_end == s) {
        syntax_fail(st, s);
        return str;
    }
    st->value = eq + 1;
    *key_end = '\0';
    st->key = s;
    /* the handler reads the key from st->key; inih only needs a well-formed line that fits */
    if (valid_name(s) && strlen(s) + 2 < (size_t)num)
        snprintf(str, (size_t)num, "%s=", s);
    else
        snprintf(str, (size_t)num, "_=");
    return str;
}

/* inih's handler (no line number in Debian's build: it is st->lineno). */
static int cfg_handler(void *user, const char *section, const char *name, const char *value) {
    (void)name;
    (void)value;
    load_state *st = user;
    if (st->failed) return 0;
    if (!st->key) { /* cannot happen: inih only calls us for lines the reader made "key=" */
        load_fail(st, "internal error: unexpected key line");
        return 0;
    }
    const ebmc_config_t *c = st->c;
    char msg[512];
    const char *dot = strchr(st->key, '.');
    if (dot) { /* "train.lr_e = 1" in a file: the command-line form */
        char sec[2 * CFG_NAME_MAX + 2];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - st->key), st->key);
        int j = strlen(sec) <= CFG_NAME_MAX ? find_key(c, sec, dot + 1) : -1;
        if (j >= 0) {
            load_fail(st, "'%s': in a file, write '%s = ...' under [%s]", st->key, dot + 1, sec);
            return 0;
        }
    }
    if (!*section) {
        snprintf(msg, sizeof msg, "key '%s' comes before any [section]", st->key);
        append_key_hint(msg, sizeof msg, c, "", st->key);
        load_fail(st, "%s", msg);
        return 0;
    }
    int i = find_key(c, section, st->key);
    if (i < 0) {
        snprintf(msg, sizeof msg, "unknown key '%s' in [%s]", st->key, section);
        append_key_hint(msg, sizeof msg, c, section, st->key);
        load_fail(st, "%s", msg);
        return 0;
    }
    if (st->line_of[i]) {
        load_fail(st, "'%s.%s' is given twice (first on line %d)", section, st->key,
                  st->line_of[i]);
        return 0;
    }
    cfg_val v;
    if (!parse_value(&c->schema[i], st->value, true, &v, msg, sizeof msg)) {
        load_fail(st, "%s.%s: %s", section, st->key, msg);
        return 0;
    }
    val_clear(&st->val[i]);
    st->val[i] = v;
    st->set[i] = true;
    st->line_of[i] = st->lineno;
    return 1;
}

/* The whole file, NUL-terminated (malloc'd), or NULL with "PATH: problem" in err. */
static char *read_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    sbuf b = {0};
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + got > CFG_FILE_MAX) {
            set_err(err, errlen, "%s: too large for a config file (over %zu bytes)", path,
                    CFG_FILE_MAX);
            free(b.p);
            fclose(f);
            return NULL;
        }
        sb_putn(&b, chunk, got);
    }
    if (ferror(f)) {
        int e = errno;
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(e));
        free(b.p);
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (!b.p) {
        sb_reserve(&b, 0);
        b.p[0] = '\0';
    }
    *size = b.len;
    return b.p;
}

ebmc_status ebmc_config_load(ebmc_config_t *c, const char *path, char *err, size_t errlen) {
    EBMC_ASSERT(c != NULL);
    if (!path || !*path) {
        set_err(err, errlen, "(no config file name given)");
        return EBMC_E_IO;
    }
    size_t size = 0;
    char *buf = read_file(path, &size, err, errlen);
    if (!buf) return EBMC_E_IO;
    const char *nul = memchr(buf, '\0', size);
    if (nul) {
        int line = 1;
        for (const char *q = buf; q < nul; q++) line += *q == '\n';
        set_err(err, errlen, "%s:%d: contains a NUL byte (not a text file?)", path, line);
        free(buf);
        return EBMC_E_INVALID;
    }

    load_state st = {.c = c, .path = path, .buf = buf, .size = size, .err = err, .errlen = errlen};
    size_t n = (size_t)c->n;
    st.val = ebmc_xcalloc(n, sizeof *st.val, "config staging");
    st.set = ebmc_xcalloc(n, sizeof *st.set, "config staging");
    st.line_of = ebmc_xcalloc(n, sizeof *st.line_of, "config staging");
    for (size_t i = 0; i < n; i++) {
        val_copy(&st.val[i], &c->val[i]);
        st.set[i] = c->set[i];
    }

    int r = ini_parse_stream(cfg_reader, &st, cfg_handler, &st);
    if (!st.failed && r != 0) { /* inih found something the reader let through */
        if (r > 0) st.lineno = r;
        load_fail(&st, "%s", r == -2 ? "out of memory in the INI parser" : "cannot parse this line");
    }

    if (st.failed) {
        for (size_t i = 0; i < n; i++) val_clear(&st.val[i]);
        free(st.val);
    } else {
        for (size_t i = 0; i < n; i++) val_clear(&c->val[i]);
        free(c->val);
        c->val = st.val;
        memcpy(c->set, st.set, n * sizeof *st.set);
    }
    free(st.set);
    free(st.line_of);
    free(buf);
    return st.failed ? EBMC_E_INVALID : EBMC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* command line                                                                               */

/* s with control characters written as \n, \t, \xNN, so a message stays on one line */
static void printable(const char *s, char *out, size_t n) {
    size_t k = 0;
    for (const unsigned char *q = (const unsigned char *)s; *q && k + 5 < n; q++) {
        if (*q == '\n') k += (size_t)snprintf(out + k, n - k, "\\n");
        else if (*q == '\t') k += (size_t)snprintf(out + k, n - k, "\\t");
        else if (*q < 0x20 || *q == 0x7f) k += (size_t)snprintf(out + k, n - k, "\\x%02x", *q);
        else out[k++] = (char)*q;
    }
    out[k] = '\0';
}

ebmc_status ebmc_config_set_arg(ebmc_config_t *c, const char *a, char *err, size_t errlen) {
    EBMC_ASSERT(c != NULL);
    if (!a) a = "";
    char shown[1024];
    printable(a, shown, sizeof shown);
    const char *eq = strchr(a, '=');
    char *lhs = xstrndup(a, eq ? (size_t)(eq - a) : strlen(a));
    char *name = lskip(lhs);
    rtrim(name);
    char *dot = strchr(name, '.');
    char msg[512];
    ebmc_status st = EBMC_E_INVALID;
    if (!eq || !dot) {
        snprintf(msg, sizeof msg, "expected section.key=value");
        if (*name && !dot) append_key_hint(msg, sizeof msg, c, "", name);
        set_err(err, errlen, "command-line argument '%s': %s", shown, msg);
        goto out;
    }
    *dot = '\0';
    const char *section = name, *key = dot + 1;
    int i = find_key(c, section, key);
    if (i < 0) {
        snprintf(msg, sizeof msg, "unknown key '%s.%s'", section, key);
        append_key_hint(msg, sizeof msg, c, section, key);
        set_err(err, errlen, "command-line argument '%s': %s", shown, msg);
        goto out;
    }
    cfg_val v;
    if (!parse_value(&c->schema[i], eq + 1, false, &v, msg, sizeof msg)) {
        set_err(err, errlen, "command-line argument '%s': %s.%s: %s", shown, section,
                key, msg);
        goto out;
    }
    val_clear(&c->val[i]);
    c->val[i] = v;
    c->set[i] = true;
    st = EBMC_OK;
out:
    free(lhs);
    return st;
}

ebmc_status ebmc_config_check_required(const ebmc_config_t *c, char *err, size_t errlen) {
    EBMC_ASSERT(c != NULL);
    sbuf b = {0};
    int missing = 0, first = -1;
    for (int i = 0; i < c->n; i++) {
        if (c->val[i].has) continue;
        sb_printf(&b, "%s'%s.%s'", missing ? ", " : "", c->schema[i].section, c->schema[i].key);
        if (first < 0) first = i;
        missing++;
    }
    if (!missing) return EBMC_OK;
    if (missing == 1)
        set_err(err, errlen, "missing required key %s: set it in [%s] of the config file or with "
                "%s.%s=VALUE on the command line", b.p, c->schema[first].section,
                c->schema[first].section, c->schema[first].key);
    else
        set_err(err, errlen, "missing required keys %s: set them in the config file or with "
                "section.key=VALUE on the command line", b.p);
    free(b.p);
    return EBMC_E_INVALID;
}

/* ------------------------------------------------------------------------------------------ */
/* getters                                                                                    */

static const char *type_name(ebmc_cfg_type t) {
    switch (t) {
    case EBMC_CFG_INT: return "INT";
    case EBMC_CFG_FLOAT: return "FLOAT";
    case EBMC_CFG_BOOL: return "BOOL";
    case EBMC_CFG_STRING: return "STRING";
    case EBMC_CFG_CHOICE: return "CHOICE";
    }
    return "?";
}

/* The key's index, or ebmc_fail: not in the schema, wrong getter, or no value. */
static int need_key(const ebmc_config_t *c, const char *section, const char *key,
                    const char *getter, int type_mask, bool need_value) {
    static char stmt[256], what[256];
    EBMC_ASSERT(c != NULL && section != NULL && key != NULL);
    snprintf(stmt, sizeof stmt, "%s(c, \"%s\", \"%s\")", getter, section, key);
    int i = find_key(c, section, key);
    if (i < 0) ebmc_fail(stmt, "key not in the config schema (programming error)", getter,
                         __FILE__, __LINE__);
    if (!(type_mask & (1 << c->schema[i].type))) {
        snprintf(what, sizeof what, "wrong getter for a %s key (programming error)",
                 type_name(c->schema[i].type));
        ebmc_fail(stmt, what, getter, __FILE__, __LINE__);
    }
    if (need_value && !c->val[i].has)
        ebmc_fail(stmt, "required key has no value (call ebmc_config_check_required first)",
                  getter, __FILE__, __LINE__);
    return i;
}

int64_t ebmc_config_int(const ebmc_config_t *c, const char *section, const char *key) {
    return c->val[need_key(c, section, key, __func__, 1 << EBMC_CFG_INT, true)].i;
}

double ebmc_config_float(const ebmc_config_t *c, const char *section, const char *key) {
    return c->val[need_key(c, section, key, __func__, 1 << EBMC_CFG_FLOAT, true)].f;
}

bool ebmc_config_bool(const ebmc_config_t *c, const char *section, const char *key) {
    return c->val[need_key(c, section, key, __func__, 1 << EBMC_CFG_BOOL, true)].b;
}

const char *ebmc_config_str(const ebmc_config_t *c, const char *section, const char *key) {
    int mask = (1 << EBMC_CFG_STRING) | (1 << EBMC_CFG_CHOICE);
    return c->val[need_key(c, section, key, __func__, mask, true)].s;
}

bool ebmc_config_is_set(const ebmc_config_t *c, const char *section, const char *key) {
    return c->set[need_key(c, section, key, __func__, 0x1f, false)];
}

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                    */

/* A string as an INI value: bare when it is plainly safe, else quoted with \" and \\. */
static void sb_ini_string(sbuf *b, const char *s) {
    bool bare = *s != '\0';
    for (const char *q = s; *q && bare; q++)
        bare = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
               strchr("_-./+:@,%~", *q);
    if (bare) {
        sb_puts(b, s);
        return;
    }
    sb_putc(b, '"');
    for (const char *q = s; *q; q++) {
        if (*q == '"' || *q == '\\') sb_putc(b, '\\');
        sb_putc(b, *q);
    }
    sb_putc(b, '"');
}

static void sb_json_string(sbuf *b, const char *s) {
    sb_putc(b, '"');
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '"' || *q == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)*q);
        } else if (*q < 0x20) {
            sb_printf(b, "\\u%04x", *q);
        } else {
            sb_putc(b, (char)*q);
        }
    }
    sb_putc(b, '"');
}

static void sb_value(sbuf *b, ebmc_cfg_type t, const cfg_val *v, bool json) {
    char num[40];
    if (!v->has) {
        sb_puts(b, json ? "null" : "");
        return;
    }
    switch (t) {
    case EBMC_CFG_INT: sb_printf(b, "%" PRId64, v->i); break;
    case EBMC_CFG_FLOAT:
        fmt_double(num, sizeof num, v->f);
        sb_puts(b, num);
        break;
    case EBMC_CFG_BOOL: sb_puts(b, v->b ? "true" : "false"); break;
    case EBMC_CFG_STRING:
    case EBMC_CFG_CHOICE:
        if (json)
            sb_json_string(b, v->s);
        else
            sb_ini_string(b, v->s);
        break;
    }
}

/* Key indices (malloc'd, n of them): sections in the order they first appear in the schema,
 * keys in schema order within each section. */
static int *grouped_order(const ebmc_config_t *c) {
    int *order = ebmc_xmalloc((size_t)c->n * sizeof *order, "config order");
    int m = 0;
    for (int s = 0; s < c->n; s++) {
        bool seen = false;
        for (int t = 0; t < s && !seen; t++)
            seen = !strcmp(c->schema[t].section, c->schema[s].section);
        if (seen) continue;
        for (int i = s; i < c->n; i++)
            if (!strcmp(c->schema[i].section, c->schema[s].section)) order[m++] = i;
    }
    return order;
}

char *ebmc_config_to_ini(const ebmc_config_t *c) {
    EBMC_ASSERT(c != NULL);
    sbuf b = {0};
    sb_puts(&b, "# ebmc resolved configuration: every key after defaults, config files and\n"
                "# command-line overrides; \"(default: X)\" marks a value that differs.\n");
    const char *cur = NULL;
    int *order = grouped_order(c);
    for (int o = 0; o < c->n; o++) {
        int i = order[o];
        const ebmc_cfg_key *k = &c->schema[i];
        const cfg_val *v = &c->val[i];
        if (!cur || strcmp(cur, k->section)) {
            sb_printf(&b, "\n[%s]\n", k->section);
            cur = k->section;
        }
        bool has_help = k->help && *k->help;
        bool differs = k->def && !val_equal(k->type, v, &c->defv[i]);
        if (has_help || differs || !k->def) {
            sb_printf(&b, "#%s%s", has_help ? " " : "", has_help ? k->help : "");
            if (!k->def) sb_puts(&b, "  (required)");
            if (differs) {
                sb_puts(&b, "  (default: ");
                sb_value(&b, k->type, &c->defv[i], false);
                sb_putc(&b, ')');
            }
            sb_putc(&b, '\n');
        }
        if (!v->has) {
            sb_printf(&b, "# %s =   (not set)\n", k->key);
            continue;
        }
        sb_printf(&b, "%s = ", k->key);
        sb_value(&b, k->type, v, false);
        sb_putc(&b, '\n');
    }
    free(order);
    return b.p;
}

char *ebmc_config_to_json(const ebmc_config_t *c) {
    EBMC_ASSERT(c != NULL);
    sbuf b = {0};
    sb_putc(&b, '{');
    int *order = grouped_order(c);
    for (int o = 0; o < c->n; o++) {
        const ebmc_cfg_key *k = &c->schema[order[o]];
        sb_printf(&b, "%s\"%s.%s\":", o ? "," : "", k->section, k->key);
        sb_value(&b, k->type, &c->val[order[o]], true);
    }
    free(order);
    sb_putc(&b, '}');
    return b.p;
}

ebmc_status ebmc_config_write(const ebmc_config_t *c, const char *path, char *err,
                              size_t errlen) {
    EBMC_ASSERT(c != NULL);
    char tmp[4096];
    FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) return EBMC_E_IO;
    char *text = ebmc_config_to_ini(c);
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n) {
        int e = errno;
        free(text);
        ebmc_atomic_abort(f, tmp);
        set_err(err, errlen, "%s: cannot write: %s", path, strerror(e));
        return EBMC_E_IO;
    }
    free(text);
    return ebmc_atomic_commit(f, tmp, path, err, errlen);
}
