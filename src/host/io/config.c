/* Schema-driven INI configuration (include/ebmc/config.h), part 1 of 3: the schema and its
 * values. This file holds the small helpers the three parts share (strings, errors, a growing
 * string, number formatting), key look-up, value copies, ebmc_config_create/_free (checking the
 * schema and parsing its defaults), ebmc_config_check_required and the typed getters. Parsing
 * INI files and command-line values, with the suggestions for misspelt names, is in
 * config_parse.c; writing the resolved config as INI or JSON is in config_write.c; the private
 * layout they share is config_internal.h. */
#include "config_internal.h"
#include "ebmc/fileio.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

char *cfg_xstrdup(const char *s) {
    size_t n = strlen(s);
    char *p = ebmc_xmalloc(n + 1, "config string");
    memcpy(p, s, n + 1);
    return p;
}

bool cfg_valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

void cfg_sb_reserve(sbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) ebmc_fail("realloc(config text)", "out of host memory", __func__, __FILE__, __LINE__);
    b->p = p;
    b->cap = cap;
}

void cfg_sb_putn(sbuf *b, const char *s, size_t n) {
    cfg_sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void cfg_sb_puts(sbuf *b, const char *s) { cfg_sb_putn(b, s, strlen(s)); }

void cfg_sb_putc(sbuf *b, char ch) { cfg_sb_putn(b, &ch, 1); }

void cfg_sb_printf(sbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        cfg_sb_putn(b, small, (size_t)n);
        return;
    }
    cfg_sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The fewest significant digits (15..17) that read back to exactly v. */
void cfg_fmt_double(char *buf, size_t n, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* schema look-ups                                                                            */

int cfg_find_key(const ebmc_config_t *c, const char *section, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->schema[i].section, section) && !strcmp(c->schema[i].key, key)) return i;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* values                                                                                     */

void cfg_val_clear(cfg_val *v) {
    free(v->s);
    memset(v, 0, sizeof *v);
}

void cfg_val_copy(cfg_val *dst, const cfg_val *src) {
    *dst = *src;
    dst->s = src->s ? cfg_xstrdup(src->s) : NULL;
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
        if (!k->section || !k->key || !cfg_valid_name(k->section) || !cfg_valid_name(k->key) ||
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
            if (!cfg_parse_value(k, k->def, false, &c->defv[i], why, sizeof why))
                schema_fail(schema, i, why);
            cfg_val_copy(&c->val[i], &c->defv[i]);
        }
    }
    return c;
}

void ebmc_config_free(ebmc_config_t *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        cfg_val_clear(&c->val[i]);
        cfg_val_clear(&c->defv[i]);
    }
    free(c->val);
    free(c->defv);
    free(c->set);
    free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* required keys                                                                              */

ebmc_status ebmc_config_check_required(const ebmc_config_t *c, char *err, size_t errlen) {
    EBMC_ASSERT(c != NULL);
    sbuf b = {0};
    int missing = 0, first = -1;
    for (int i = 0; i < c->n; i++) {
        if (c->val[i].has) continue;
        cfg_sb_printf(&b, "%s'%s.%s'", missing ? ", " : "", c->schema[i].section,
                      c->schema[i].key);
        if (first < 0) first = i;
        missing++;
    }
    if (!missing) return EBMC_OK;
    if (missing == 1)
        cfg_set_err(err, errlen,
                    "missing required key %s: set it in [%s] of the config file or with "
                    "%s.%s=VALUE on the command line", b.p, c->schema[first].section,
                    c->schema[first].section, c->schema[first].key);
    else
        cfg_set_err(err, errlen,
                    "missing required keys %s: set them in the config file or with "
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
    int i = cfg_find_key(c, section, key);
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
