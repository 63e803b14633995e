/* The one parser of numeric command-line options (include/ebmc/cli.h). */
#include "ebmc/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool ebmc_arg_number(const char *cmd, const char *flag, const char *text, double lo, double hi, bool integer,
                     double *out) {
    char *end = NULL;
    errno = 0;
    double v = text ? strtod(text, &end) : NAN;
    bool ok = text && end != text && !*end && isfinite(v) && v >= lo && v <= hi && (!integer || v == floor(v));
    if (!ok) {
        fprintf(stderr, "ebmc %s: %s: '%s' is not a %s in [%.17g, %.17g]\n", cmd, flag, text ? text : "(missing)",
                integer ? "whole number" : "number", lo, hi);
        return false;
    }
    *out = v;
    return true;
}

const ebmc_sample_range *ebmc_sample_range_of(const char *flag) {
    static const ebmc_sample_range ranges[] = {
        {"--n", 1, 1e8, true},          {"--steps", 0, 1e7, true}, {"--step-size", 0, 1e6, false},
        {"--noise", 0, 1e6, false},     {"--seed", 0, 9007199254740992.0 /* 2^53: exact in a double */, true},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (!strcmp(flag, ranges[i].flag)) return &ranges[i];
    return NULL;
}
