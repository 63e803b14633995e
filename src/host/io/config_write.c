/* Schema-driven INI configuration (include/ebmc/config.h), part 3 of 3: output. This file holds
 * ebmc_config_to_ini (the resolved config, grouped by section, with help lines and the defaults
 * of changed values), ebmc_config_to_json (one flat object, for checkpoint metadata) and
 * ebmc_config_write (the INI text, written atomically), with the quoting each format needs.
 * Values and parsing are in config.c and config_parse.c. */
#include "config_internal.h"
#include "ebmc/fileio.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                    */

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

/* A string as an INI value: bare when it is plainly safe, else quoted with \" and \\. */
static void sb_ini_string(sbuf *b, const char *s) {
    bool bare = *s != '\0';
    for (const char *q = s; *q && bare; q++)
        bare = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
               strchr("_-./+:@,%~", *q);
    if (bare) {
        cfg_sb_puts(b, s);
        return;
    }
    cfg_sb_putc(b, '"');
    for (const char *q = s; *q; q++) {
        if (*q == '"' || *q == '\\') cfg_sb_putc(b, '\\');
        cfg_sb_putc(b, *q);
    }
    cfg_sb_putc(b, '"');
}

static void sb_json_string(sbuf *b, const char *s) {
    cfg_sb_putc(b, '"');
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '"' || *q == '\\') {
            cfg_sb_putc(b, '\\');
            cfg_sb_putc(b, (char)*q);
        } else if (*q < 0x20) {
            cfg_sb_printf(b, "\\u%04x", *q);
        } else {
            cfg_sb_putc(b, (char)*q);
        }
    }
    cfg_sb_putc(b, '"');
}

static void sb_value(sbuf *b, ebmc_cfg_type t, const cfg_val *v, bool json) {
    char num[40];
    if (!v->has) {
        cfg_sb_puts(b, json ? "null" : "");
        return;
    }
    switch (t) {
    case EBMC_CFG_INT: cfg_sb_printf(b, "%" PRId64, v->i); break;
    case EBMC_CFG_FLOAT:
        cfg_fmt_double(num, sizeof num, v->f);
        cfg_sb_puts(b, num);
        break;
    case EBMC_CFG_BOOL: cfg_sb_puts(b, v->b ? "true" : "false"); break;
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
    cfg_sb_puts(&b, "# ebmc resolved configuration: every key after defaults, config files and\n"
                    "# command-line overrides; \"(default: X)\" marks a value that differs.\n");
    const char *cur = NULL;
    int *order = grouped_order(c);
    for (int o = 0; o < c->n; o++) {
        int i = order[o];
        const ebmc_cfg_key *k = &c->schema[i];
        const cfg_val *v = &c->val[i];
        if (!cur || strcmp(cur, k->section)) {
            cfg_sb_printf(&b, "\n[%s]\n", k->section);
            cur = k->section;
        }
        bool has_help = k->help && *k->help;
        bool differs = k->def && !val_equal(k->type, v, &c->defv[i]);
        if (has_help || differs || !k->def) {
            cfg_sb_printf(&b, "#%s%s", has_help ? " " : "", has_help ? k->help : "");
            if (!k->def) cfg_sb_puts(&b, "  (required)");
            if (differs) {
                cfg_sb_puts(&b, "  (default: ");
                sb_value(&b, k->type, &c->defv[i], false);
                cfg_sb_putc(&b, ')');
            }
            cfg_sb_putc(&b, '\n');
        }
        if (!v->has) {
            cfg_sb_printf(&b, "# %s =   (not set)\n", k->key);
            continue;
        }
        cfg_sb_printf(&b, "%s = ", k->key);
        sb_value(&b, k->type, v, false);
        cfg_sb_putc(&b, '\n');
    }
    free(order);
    return b.p;
}

char *ebmc_config_to_json(const ebmc_config_t *c) {
    EBMC_ASSERT(c != NULL);
    sbuf b = {0};
    cfg_sb_putc(&b, '{');
    int *order = grouped_order(c);
    for (int o = 0; o < c->n; o++) {
        const ebmc_cfg_key *k = &c->schema[order[o]];
        cfg_sb_printf(&b, "%s\"%s.%s\":", o ? "," : "", k->section, k->key);
        sb_value(&b, k->type, &c->val[order[o]], true);
    }
    free(order);
    cfg_sb_putc(&b, '}');
    return b.p;
}

ebmc_status ebmc_config_write(const ebmc_config_t *c, const char *path, char *err,
                              size_t errlen) {
    EBMC_ASSERT(c != NULL);
    char tmp[4096];
    FILE *f = ebmc_atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) return EBMC_E_WRITE;
    char *text = ebmc_config_to_ini(c);
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n) {
        int e = errno;
        free(text);
        ebmc_atomic_abort(f, tmp);
        cfg_set_err(err, errlen, "%s: cannot write: %s", path, strerror(e));
        return EBMC_E_WRITE;
    }
    free(text);
    return ebmc_atomic_commit(f, tmp, path, err, errlen);
}
