/* step_dump_util.h: the error helper, device->host copy and run opening shared by the *_step_dump oracle
 * tools. Define STEP_DUMP_TOOL (the tool's name, a string literal) before including it. */
#ifndef EBMC_STEP_DUMP_UTIL_H
#define EBMC_STEP_DUMP_UTIL_H
#include "ebmc/backend.h"
#include "ebmc/common.h"
#include "ebmc/config.h"
#include "ebmc/recipe.h"
#include <stdio.h>
#include <stdlib.h>

#ifndef STEP_DUMP_TOOL
#error "define STEP_DUMP_TOOL before including step_dump_util.h"

/* the tool's defaults, then the command line's key=value overrides from argv[first], then open
 * the run; prints the error and returns 1 on failure (main returns it) */
static inline int open_run(const ebmc_recipe *rc, ebmc_config_t *cfg, const char *const *defaults, size_t nd,
                           int argc, char **argv, int first, ebmc_run_t **run) {
    char err[1024];
    for (size_t i = 0; i < nd; i++)
        if (ebmc_config_set_arg(cfg, defaults[i], err, sizeof err)) return die("config", err);
    for (int i = first; i < argc; i++)
        if (ebmc_config_set_arg(cfg, argv[i], err, sizeof err)) return die("config", err);
    if (ebmc_config_check_required(cfg, err, sizeof err)) return die("config", err);
    if (ebmc_run_open(rc, cfg, true, run, err, sizeof err)) return die("set-up", err);
    return 0;
}
#endif

static int die(const char *what, const char *msg) {
    fprintf(stderr, STEP_DUMP_TOOL ": %s: %s\n", what, msg);
    return 1;
}

/* device -> new host buffer (kept until exit: the tool is short-lived) */
static float *host_copy(ebmc_ctx_t *ctx, const float *dev, size_t n) {
    float *h = ebmc_xmalloc((n ? n : 1) * sizeof(float), "dump");
    if (n && ebmc_copy(ctx, h, dev, n * sizeof(float), EBMC_COPY_D2H)) {
        fprintf(stderr, STEP_DUMP_TOOL ": copy: %s\n", ebmc_ctx_error(ctx));
        exit(1);
    }
    return h;
}

/* the tool's defaults, then the command line's key=value overrides from argv[first], then open
 * the run; prints the error and returns 1 on failure (main returns it) */
static inline int open_run(const ebmc_recipe *rc, ebmc_config_t *cfg, const char *const *defaults, size_t nd,
                           int argc, char **argv, int first, ebmc_run_t **run) {
    char err[1024];
    for (size_t i = 0; i < nd; i++)
        if (ebmc_config_set_arg(cfg, defaults[i], err, sizeof err)) return die("config", err);
    for (int i = first; i < argc; i++)
        if (ebmc_config_set_arg(cfg, argv[i], err, sizeof err)) return die("config", err);
    if (ebmc_config_check_required(cfg, err, sizeof err)) return die("config", err);
    if (ebmc_run_open(rc, cfg, true, run, err, sizeof err)) return die("set-up", err);
    return 0;
}
#endif
