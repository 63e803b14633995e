#include "ebmc/common.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

/* the device named in the fatal sink's message: per thread, as CUDA's current device is */
static _Thread_local int g_fail_device = -1;
/* deferred device failures of this thread's running graph capture (ebmc_fail_defer_begin) */
static _Thread_local int g_defer_depth;
static _Thread_local char g_defer_msg[512];

void ebmc_fail_set_device(int device) { g_fail_device = device; }

void ebmc_fail_device(const char *stmt, const char *err, const char *func, const char *file,
                      int line) {
    if (g_defer_depth <= 0) ebmc_fail(stmt, err, func, file, line);
    if (!g_defer_msg[0])
        snprintf(g_defer_msg, sizeof g_defer_msg, "%s: %s (in %s, %s:%d)", stmt, err ? err : "?",
                 func, file, line);
}

void ebmc_fail_defer_begin(void) {
    if (g_defer_depth++ == 0) g_defer_msg[0] = 0;
}

bool ebmc_fail_defer_end(char *msg, size_t len) {
    if (g_defer_depth > 0) g_defer_depth--;
    const bool failed = g_defer_msg[0] != 0;
    if (msg && len) snprintf(msg, len, "%s", g_defer_msg);
    if (g_defer_depth == 0) g_defer_msg[0] = 0;
    return failed;
}

bool ebmc_debug_enabled(void) {
    static int on = -1; /* a benign race: every thread computes the same value */
    if (on < 0) {
        const char *v = getenv("EBMC_DEBUG");
        on = v && v[0] && strcmp(v, "0") != 0;
    }
    return on;
}

void ebmc_debug(const char *fmt, ...) {
    if (!ebmc_debug_enabled()) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ebmc: debug: %s\n", line);
}

void ebmc_fail(const char *stmt, const char *err, const char *func, const char *file, int line) {
    fflush(stdout);
    fprintf(stderr, "ebmc: fatal: %s\n  error:    %s\n  in:       %s (%s:%d)\n", stmt,
            err ? err : "?", func, file, line);
    if (g_fail_device >= 0) fprintf(stderr, "  device:   cuda:%d\n", g_fail_device);
    exit(3);
}

void *ebmc_xmalloc(size_t bytes, const char *what) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) ebmc_fail(what, "out of host memory", __func__, __FILE__, __LINE__);
    return p;
}

void *ebmc_xcalloc(size_t count, size_t size, const char *what) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ebmc_fail(what, "out of host memory", __func__, __FILE__, __LINE__);
    return p;
}

const char *ebmc_status_str(ebmc_status s) {
    switch (s) {
    case EBMC_OK: return "ok";
    case EBMC_E_INVALID: return "invalid argument";
    case EBMC_E_UNSUPPORTED: return "unsupported";
    case EBMC_E_WORKSPACE: return "workspace too small";
    case EBMC_E_DEVICE: return "device error";
    case EBMC_E_NOMEM: return "out of memory";
    case EBMC_E_IO: return "i/o error";
    case EBMC_E_INTERRUPTED: return "interrupted";
    case EBMC_E_WRITE: return "write error";
    }
    return "unknown status";
}

double ebmc_now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int ebmc_mkdir_p(const char *path) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    return 0;
}

static volatile sig_atomic_t g_interrupt = 0;
void ebmc_interrupt_set(int level) { g_interrupt = level; }
int ebmc_interrupt_level(void) { return g_interrupt; }

void ebmc_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
