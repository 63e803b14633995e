/* defines: ebmc_arg_number (the one parser of every numeric command-line option) and the usage
 * printers of the subcommands (ebmc <command> --help; the table is in src/host/cli/main.c). */
#ifndef EBMC_CLI_H
#define EBMC_CLI_H

#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parses text as the value of option flag of `ebmc cmd`: a finite decimal number (strtod's
 * syntax, the whole text), within [lo, hi], and a whole number when integer is set. The range
 * is checked on the double before any cast, so 99999999999, 1e300, -1, nan and 0.5 are refused
 * rather than wrapped or truncated. On failure prints one line to stderr,
 *   ebmc sample: --steps: '99999999999' is not a whole number in [0, 10000000]
 * and returns false (the caller exits EBMC_EXIT_USAGE). */
bool ebmc_arg_number(const char *cmd, const char *flag, const char *text, double lo, double hi, bool integer,
                     double *out);

/* The ranges of the test-time sampler options that `ebmc sample` and `ebmc eval` share: --n
 * [1, 1e8], --steps [0, 1e7] (whole numbers), --step-size and --noise [0, 1e6], --seed
 * [0, 2^53]; NULL for another flag. */
typedef struct {
    const char *flag;
    double lo, hi;
    bool integer;
} ebmc_sample_range;
const ebmc_sample_range *ebmc_sample_range_of(const char *flag);

/* the usage text of each subcommand (begins "usage: ebmc <command>") */
void ebmc_train_usage(FILE *f);
void ebmc_sample_usage(FILE *f);
void ebmc_data_usage(FILE *f);
void ebmc_eval_usage(FILE *f);
void ebmc_score_usage(FILE *f);
void ebmc_import_usage(FILE *f);
void ebmc_loglik_usage(FILE *f);
void ebmc_plot_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
