/* step_dump_util.h: the error helper and device->host copy shared by the *_step_dump oracle
 * tools. Define STEP_DUMP_TOOL (the tool's name, a string literal) before including it. */
#ifndef EBMC_STEP_DUMP_UTIL_H
#define EBMC_STEP_DUMP_UTIL_H
#include "ebmc/backend.h"
#include "ebmc/common.h"
#include <stdio.h>
#include <stdlib.h>

#ifndef STEP_DUMP_TOOL
#error "define STEP_DUMP_TOOL before including step_dump_util.h"
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
#endif
