/* defines: ebmc_cfg_key (a schema row), ebmc_config_t (the values), ebmc_config_create/_free,
 * ebmc_config_load (INI file), ebmc_config_set_arg (CLI "section.key=value"),
 * ebmc_config_check_required, typed getters, ebmc_config_to_ini/_write (resolved config),
 * ebmc_config_to_json (checkpoint metadata). */
#ifndef EBMC_CONFIG_H
#define EBMC_CONFIG_H

#include "ebmc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A schema-driven INI config: the program declares every key it knows; nothing else is
 * accepted. Sections and keys are case-sensitive and spelled [a-z0-9_]+.
 *
 * File syntax (one construct per line):
 *     [section]                      # a section header (may be repeated)
 *     key = value                    # a value of the key's type
 *     # comment / ; comment          # whole-line comments; blank lines
 * Leading whitespace is ignored (there are no continuation lines). `key: value` is not accepted.
 * Values:
 *   INT     decimal, optional sign; trailing junk and 64-bit overflow are errors
 *   FLOAT   strtod syntax; junk, NaN, Inf and overflow are errors
 *   BOOL    true/false, yes/no, on/off, 1/0 (any case)
 *   STRING  the text with surrounding whitespace trimmed, or "double-quoted" (escapes \" and \\
 *           only; '#' and ';' inside quotes are text); no line breaks
 *   CHOICE  a STRING that must equal one of the key's choices exactly
 * Any value may be quoted (the quotes are removed before the type is parsed). An unquoted value
 * ends at " #" or " ;" (a '#' or ';' after whitespace: an inline comment); after a quoted value
 * only whitespace and a comment may follow. */
typedef enum {
    EBMC_CFG_INT = 0,
    EBMC_CFG_FLOAT,
    EBMC_CFG_BOOL,
    EBMC_CFG_STRING,
    EBMC_CFG_CHOICE
} ebmc_cfg_type;

typedef struct {
    const char *section, *key; /* [section] key = value; both [a-z0-9_]+ */
    ebmc_cfg_type type;
    const char *def;           /* default as text (parsed with the same rules), NULL = required */
    const char *help;          /* one line (no '\n'), written as a comment by ebmc_config_to_ini */
    double min, max;           /* INT/FLOAT: inclusive range; min > max means unchecked */
    const char *choices;       /* CHOICE: "a|b|c" */
} ebmc_cfg_key;

typedef struct ebmc_config ebmc_config_t;

/* A config with every default applied. The schema is validated (names, duplicates, choices,
 * every default parses and is in range): a bad schema is a programming error and goes to
 * ebmc_fail. The schema array is referenced, not copied: it must outlive the config (normally
 * a static const table). */
ebmc_config_t *ebmc_config_create(const ebmc_cfg_key *schema, int n);
void ebmc_config_free(ebmc_config_t *c);

/* Loads an INI file over the current values: all of it or nothing (on an error the config is
 * unchanged). Returns EBMC_E_IO when the file cannot be opened or read (err: "PATH: cannot open:
 * strerror"), EBMC_E_INVALID for anything wrong inside it. The message is one line,
 * "PATH:LINE: ..." for the first problem in the file:
 *   - unknown section       "unknown section [trian]; did you mean [train]?"
 *   - unknown key           "unknown key 'lr_ee' in [train]; did you mean 'train.lr_e'?"
 *                           (nearest section.key by edit distance, when close enough; a key
 *                           written in the wrong section is suggested in its right one)
 *   - a key before any [section], a key given twice in the file ("(first on line 3)")
 *   - a wrong value         "train.steps: expected an integer, got '1e-4x'"
 *   - out of range          "train.lr: 5 is out of range [0, 1]"
 *   - not a choice          "sampler.kind: 'hmcc' is not one of langevin|hmc; did you mean 'hmc'?"
 *   - a line that is not `key = value`, `[section]`, a comment or blank
 * Loading a file written by ebmc_config_write (for --resume) gives back the same values. */
ebmc_status ebmc_config_load(ebmc_config_t *c, const char *path, char *err, size_t errlen);

/* "section.key=value" from the command line: the same value syntax (quotes allowed; no inline
 * comments, a command line has none) and the same checks. The message names the argument:
 * "command-line argument 'train.lr=abc': train.lr: expected a number, got 'abc'". A later
 * assignment of the same key wins. EBMC_E_INVALID on any error; the config is then unchanged. */
ebmc_status ebmc_config_set_arg(ebmc_config_t *c, const char *assignment, char *err,
                                size_t errlen);

/* After loading: every required key (def == NULL) has a value, else EBMC_E_INVALID with a
 * message naming all the missing ones. */
ebmc_status ebmc_config_check_required(const ebmc_config_t *c, char *err, size_t errlen);

/* Typed getters. Asking for a key that is not in the schema, with the wrong getter for its
 * type, or for a required key that has no value (check_required not called) is a programming
 * error: ebmc_fail (exit 3). ebmc_config_str serves STRING and CHOICE keys; the pointer stays
 * valid until that key is set again or the config is freed. */
int64_t ebmc_config_int(const ebmc_config_t *c, const char *section, const char *key);
double ebmc_config_float(const ebmc_config_t *c, const char *section, const char *key);
bool ebmc_config_bool(const ebmc_config_t *c, const char *section, const char *key);
const char *ebmc_config_str(const ebmc_config_t *c, const char *section, const char *key);
/* True when the key was given in a file or on the command line (not just its default). */
bool ebmc_config_is_set(const ebmc_config_t *c, const char *section, const char *key);

/* The resolved config as INI text (malloc'd): every key, sections in the order they first
 * appear in the schema, each key preceded by "# help" and, where its value differs from the
 * default, "(default: X)"; required keys without a value appear commented out. Floats are
 * written with the fewest digits that read back to the same double. */
char *ebmc_config_to_ini(const ebmc_config_t *c);
/* ebmc_config_to_ini written atomically to path (ebmc_atomic_open/commit): on failure path is
 * left as it was, no temporary remains, EBMC_E_IO with "PATH: problem". */
ebmc_status ebmc_config_write(const ebmc_config_t *c, const char *path, char *err,
                              size_t errlen);
/* The same as a compact one-line JSON object {"section.key": value, ...} (malloc'd): numbers
 * as numbers, bools as true/false, strings and choices escaped, a missing required key null. */
char *ebmc_config_to_json(const ebmc_config_t *c);

#ifdef __cplusplus
}
#endif
#endif
