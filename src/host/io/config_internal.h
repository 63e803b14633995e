/* defines: the private layout of ebmc_config_t (cfg_val, struct ebmc_config), a growing string
 * (sbuf), and the helpers that config.c (schema, values, getters), config_parse.c (INI files
 * and command-line values) and config_write.c (INI and JSON output) share. Not installed: the
 * public API is include/ebmc/config.h. */
#ifndef EBMC_CONFIG_INTERNAL_H
#define EBMC_CONFIG_INTERNAL_H

#include "ebmc/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_NAME_MAX 64                    /* longest section or key name in a schema */

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

/* A growing string. */
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

/* hidden: the split made these extern; they stay out of libebmc.so's exported symbols */
#pragma GCC visibility push(hidden)

char *cfg_xstrdup(const char *s);
/* vsnprintf into err (nothing when err is NULL or errlen is 0) */
#define cfg_set_err ebmc_set_err /* the one error setter (ebmc/common.h) */
bool cfg_valid_name(const char *s); /* [a-z0-9_]+ */

void cfg_sb_reserve(sbuf *b, size_t extra);
void cfg_sb_putn(sbuf *b, const char *s, size_t n);
void cfg_sb_puts(sbuf *b, const char *s);
void cfg_sb_putc(sbuf *b, char ch);
void cfg_sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The fewest significant digits (15..17) that read back to exactly v. */
void cfg_fmt_double(char *buf, size_t n, double v);

int cfg_find_key(const ebmc_config_t *c, const char *section, const char *key); /* -1: none */
void cfg_val_clear(cfg_val *v);
void cfg_val_copy(cfg_val *dst, const cfg_val *src);

/* raw text after '=' -> value (out->s malloc'd for strings), with the error (without location)
 * in why; `comments`: an inline comment may follow the value (config_parse.c) */
bool cfg_parse_value(const ebmc_cfg_key *k, const char *raw, bool comments, cfg_val *out,
                     char *why, size_t whylen);

#pragma GCC visibility pop

#endif
