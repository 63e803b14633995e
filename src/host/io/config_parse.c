/* Schema-driven INI configuration (include/ebmc/config.h), part 2 of 3: parsing text. This file
 * holds value parsing (quoting, inline comments, INT/FLOAT/BOOL/STRING/CHOICE with ranges), the
 * suggestions for misspelt sections, keys and choices (optimal-string-alignment distance),
 * ebmc_config_load (an INI file) and ebmc_config_set_arg (a command-line "section.key=value").
 * The schema, values and getters are in config.c, the writers in config_write.c.
 *
 * Parsing uses inih (libinih, Debian bookworm: release 55). That build calls the handler without
 * a line number (INI_HANDLER_LINENO 0) and is laxer than ebmc's syntax: it accepts `key: value`,
 * text after `]`, indented lines as continuations of the previous value, only ` ;` as an inline
 * comment, no quotes, and it splits lines longer than 199 bytes in two (shifting every later line
 * number). So the file is read here and handed to ini_parse_stream through a reader that gives
 * inih exactly one physical line per call (ended by LF, CRLF or a lone CR), counts the lines
 * (inih calls the handler for a line before it asks for the next one, so the reader's count is
 * the handler's line), checks each line against ebmc's stricter syntax, and passes on a
 * normalised form: "" for blanks and comments, "[name]" for a section, "key=" for a key line.
 * inih tracks the current section and calls the handler; the handler takes the key and the raw
 * value text from the reader's state and parses the value by ebmc's rules. The first error stops the parse (the reader then returns NULL).
 * inih's runtime option globals are left untouched. */
#include "config_internal.h"
#include "ebmc/fileio.h"

#include <ini.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_FILE_MAX ((size_t)64 << 20)    /* a config file larger than this is refused */

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

static char *xstrndup(const char *s, size_t n) {
    char *p = ebmc_xmalloc(n + 1, "config string");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
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

/* ------------------------------------------------------------------------------------------ */
/* section look-up and suggestions                                                            */

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

/* The value's text from what follows '=': surrounding whitespace trimmed; a double-quoted value
 * unescaped (\" and \\); with `comments`, an unquoted value ends at a '#' or ';' that follows
 * whitespace, and a quoted one may be followed by whitespace and a comment. *out is malloc'd. */
static bool value_text(const char *raw, bool comments, char **out, char *why, size_t whylen) {
    const char *p = raw;
    while (is_blank(*p)) p++;
    char *text;
    if (*p == '"') {
        sbuf b = {0};
        cfg_sb_reserve(&b, 0);
        b.p[0] = '\0';
        const char *q = p + 1;
        for (;;) {
            if (*q == '\0') {
                free(b.p);
                cfg_set_err(why, whylen, "unterminated quoted value %s (no closing '\"')", p);
                return false;
            }
            if (*q == '"') break;
            if (*q == '\\') {
                if (q[1] == '"' || q[1] == '\\') {
                    cfg_sb_putc(&b, q[1]);
                    q += 2;
                    continue;
                }
                free(b.p);
                if (q[1] == '\0')
                    cfg_set_err(why, whylen, "unterminated quoted value %s (no closing '\"')", p);
                else
                    cfg_set_err(why, whylen,
                            "unknown escape '\\%c' in a quoted value (only \\\" and \\\\)", q[1]);
                return false;
            }
            cfg_sb_putc(&b, *q++);
        }
        const char *r = q + 1;
        while (is_blank(*r) || *r == '\r' || *r == '\n') r++;
        if (*r && !(comments && (*r == '#' || *r == ';'))) {
            free(b.p);
            cfg_set_err(why, whylen, "unexpected text after the closing quote: '%s'", r);
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
        cfg_set_err(why, whylen, "a value cannot contain a line break");
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
    cfg_fmt_double(lo, sizeof lo, k->min);
    cfg_fmt_double(hi, sizeof hi, k->max);
    cfg_set_err(why, whylen, "%s is out of range [%s, %s]", text, lo, hi);
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
            cfg_set_err(why, whylen, "expected an integer, got '%s'", text);
            return false;
        }
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == ERANGE) {
            cfg_set_err(why, whylen, "integer %s does not fit in 64 bits", text);
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
            cfg_set_err(why, whylen, "expected a number, got '%s'", text);
            return false;
        }
        if (isnan(v) || (isinf(v) && errno != ERANGE)) {
            cfg_set_err(why, whylen, "expected a finite number, got '%s'", text);
            return false;
        }
        if (isinf(v)) {
            cfg_set_err(why, whylen, "number %s is too large for a double", text);
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
        cfg_set_err(why, whylen,
                    "expected a boolean (true/false, yes/no, on/off, 1/0), got '%s'", text);
        return false;
    }
    case EBMC_CFG_STRING: out->s = cfg_xstrdup(text); break;
    case EBMC_CFG_CHOICE: {
        const char *best = NULL;
        size_t best_len = 0;
        int best_d = 1 << 20;
        for (const char *p = k->choices; *p;) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == strlen(text) && !strncmp(p, text, len)) {
                out->s = cfg_xstrdup(text);
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
            cfg_set_err(why, whylen, "'%s' is not one of %s; did you mean '%.*s'?", text,
                        k->choices, (int)best_len, best);
        else
            cfg_set_err(why, whylen, "'%s' is not one of %s", text, k->choices);
        return false;
    }
    default: cfg_set_err(why, whylen, "bad type %d in the schema", (int)k->type); return false;
    }
done:
    out->has = true;
    return true;
}

/* raw text after '=' -> value, with the error (without location) in why */
bool cfg_parse_value(const ebmc_cfg_key *k, const char *raw, bool comments, cfg_val *out,
                        char *why, size_t whylen) {
    char *text;
    if (!value_text(raw, comments, &text, why, whylen)) return false;
    bool ok = parse_typed(k, text, out, why, whylen);
    free(text);
    return ok;
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
    /* a line ends at "\n", "\r\n" or a lone "\r" (classic Mac OS): without the last, a file
     * with CR-only line ends would be one line, all of it a comment when it starts with one */
    char *line = st->buf + st->pos;
    size_t len = strcspn(line, "\r\n"); /* the buffer holds no NUL before st->size */
    size_t brk = 0;
    if (st->pos + len < st->size) brk = (line[len] == '\r' && line[len + 1] == '\n') ? 2 : 1;
    st->pos += len + brk;
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
    if (cfg_valid_name(s) && strlen(s) + 2 < (size_t)num)
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
        int j = strlen(sec) <= CFG_NAME_MAX ? cfg_find_key(c, sec, dot + 1) : -1;
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
    int i = cfg_find_key(c, section, st->key);
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
    if (!cfg_parse_value(&c->schema[i], st->value, true, &v, msg, sizeof msg)) {
        load_fail(st, "%s.%s: %s", section, st->key, msg);
        return 0;
    }
    cfg_val_clear(&st->val[i]);
    st->val[i] = v;
    st->set[i] = true;
    st->line_of[i] = st->lineno;
    return 1;
}

/* The whole file, NUL-terminated (malloc'd), or NULL with "PATH: problem" in err. */
static char *read_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = ebmc_fopen_read(path, err, errlen);
    if (!f) return NULL;
    sbuf b = {0};
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + got > CFG_FILE_MAX) {
            cfg_set_err(err, errlen, "%s: too large for a config file (over %zu bytes)", path,
                        CFG_FILE_MAX);
            free(b.p);
            fclose(f);
            return NULL;
        }
        cfg_sb_putn(&b, chunk, got);
    }
    if (ferror(f)) {
        int e = errno;
        cfg_set_err(err, errlen, "%s: cannot read: %s", path, strerror(e));
        free(b.p);
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (!b.p) {
        cfg_sb_reserve(&b, 0);
        b.p[0] = '\0';
    }
    *size = b.len;
    return b.p;
}

ebmc_status ebmc_config_load(ebmc_config_t *c, const char *path, char *err, size_t errlen) {
    EBMC_ASSERT(c != NULL);
    if (!path || !*path) {
        cfg_set_err(err, errlen, "(no config file name given)");
        return EBMC_E_IO;
    }
    size_t size = 0;
    char *buf = read_file(path, &size, err, errlen);
    if (!buf) return EBMC_E_IO;
    const char *nul = memchr(buf, '\0', size);
    if (nul) {
        int line = 1;
        for (const char *q = buf; q < nul; q++) /* LF, CRLF and a lone CR, as the reader */
            line += *q == '\n' || (*q == '\r' && q[1] != '\n');
        cfg_set_err(err, errlen, "%s:%d: contains a NUL byte (not a text file?)", path, line);
        free(buf);
        return EBMC_E_INVALID;
    }

    load_state st = {.c = c, .path = path, .buf = buf, .size = size, .err = err, .errlen = errlen};
    size_t n = (size_t)c->n;
    st.val = ebmc_xcalloc(n, sizeof *st.val, "config staging");
    st.set = ebmc_xcalloc(n, sizeof *st.set, "config staging");
    st.line_of = ebmc_xcalloc(n, sizeof *st.line_of, "config staging");
    for (size_t i = 0; i < n; i++) {
        cfg_val_copy(&st.val[i], &c->val[i]);
        st.set[i] = c->set[i];
    }

    int r = ini_parse_stream(cfg_reader, &st, cfg_handler, &st);
    if (!st.failed && r != 0) { /* inih found something the reader let through */
        if (r > 0) st.lineno = r;
        load_fail(&st, "%s", r == -2 ? "out of memory in the INI parser" : "cannot parse this line");
    }

    if (st.failed) {
        for (size_t i = 0; i < n; i++) cfg_val_clear(&st.val[i]);
        free(st.val);
    } else {
        for (size_t i = 0; i < n; i++) cfg_val_clear(&c->val[i]);
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
        cfg_set_err(err, errlen, "command-line argument '%s': %s", shown, msg);
        goto out;
    }
    *dot = '\0';
    const char *section = name, *key = dot + 1;
    int i = cfg_find_key(c, section, key);
    if (i < 0) {
        snprintf(msg, sizeof msg, "unknown key '%s.%s'", section, key);
        append_key_hint(msg, sizeof msg, c, section, key);
        cfg_set_err(err, errlen, "command-line argument '%s': %s", shown, msg);
        goto out;
    }
    cfg_val v;
    if (!cfg_parse_value(&c->schema[i], eq + 1, false, &v, msg, sizeof msg)) {
        cfg_set_err(err, errlen, "command-line argument '%s': %s.%s: %s", shown, section,
                    key, msg);
        goto out;
    }
    cfg_val_clear(&c->val[i]);
    c->val[i] = v;
    c->set[i] = true;
    st = EBMC_OK;
out:
    free(lhs);
    return st;
}
