/* defines: ebmc_status, ebmc_status_str, ebmc_fail, EBMC_ASSERT, EBMC_CHECK_GEN, EBMC_TRY,
 * ebmc_now_s, ebmc_mkdir_p, ebmc_version */
#ifndef EBMC_COMMON_H
#define EBMC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EBMC_VERSION_STRING "0.1.0"

/* Every fallible ebmc call returns one of these; the context keeps a message saying why. */
typedef enum {
    EBMC_OK = 0,
    EBMC_E_INVALID = 1,     /* bad argument: shapes, sizes, null pointers */
    EBMC_E_UNSUPPORTED = 2, /* the backend lacks this op or this configuration of it */
    EBMC_E_WORKSPACE = 3,   /* the planned workspace is too small for this call */
    EBMC_E_DEVICE = 4,      /* no usable device, or a device call failed */
    EBMC_E_NOMEM = 5,       /* allocation failed */
    EBMC_E_IO = 6,          /* file missing, truncated or malformed */
    EBMC_E_INTERRUPTED = 7, /* stopped part-way at the user's request (ebmc_interrupt_level() >= 2) */
    EBMC_E_WRITE = 8        /* an output could not be written (disk full: ENOSPC, EFBIG; permission; a
                               device or FIFO where a file was to be written): exit status 1 */
} ebmc_status;

const char *ebmc_status_str(ebmc_status s);

/* The one sink for failures that cannot be handed back to a caller (CUDA/cuDNN/cuBLAS/cuRAND
 * errors, failed allocations at start-up): prints the statement, its error, function, file:line
 * and, when known, the device; then exits with status 3. */
#if defined(__cplusplus)
[[noreturn]]
#else
_Noreturn
#endif
void ebmc_fail(const char *stmt, const char *err, const char *func, const char *file, int line);

/* Sets the device named in ebmc_fail's messages on this thread (-1: none). */
void ebmc_fail_set_device(int device);

/* The sink of the CUDA check family (CUDA_CHECK, CUDNN_CHECK, ... in backend/cuda_check.h):
 * ebmc_fail, except on a thread inside a graph capture (between ebmc_fail_defer_begin and
 * ebmc_fail_defer_end), where nothing has run on the device yet: there the first failure is
 * recorded and the call returns, so that the capture can be ended cleanly and reported (and the
 * work run eagerly) instead of killing the process. Memory and assertion failures stay fatal. */
void ebmc_fail_device(const char *stmt, const char *err, const char *func, const char *file,
                      int line);
/* Starts deferring this thread's device failures (nests; the outermost begin clears the record). */
void ebmc_fail_defer_begin(void);
/* Stops deferring (at the outermost end); true when a failure was recorded since the outermost
 * begin, its message then in msg (may be NULL). */
bool ebmc_fail_defer_end(char *msg, size_t len);

/* Debug lines on stderr ("ebmc: debug: ..."), on when the environment variable EBMC_DEBUG is set
 * to anything but "" or "0" (read once). */
bool ebmc_debug_enabled(void);
void ebmc_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define EBMC_CHECK_GEN(T, call, ok, str)                                                        \
    do {                                                                                        \
        T r_ = (call);                                                                          \
        if (r_ != (ok)) ebmc_fail(#call, str(r_), __func__, __FILE__, __LINE__);                \
    } while (0)

/* Stays on in release builds. */
#define EBMC_ASSERT(cond)                                                                       \
    do {                                                                                        \
        if (!(cond)) ebmc_fail(#cond, "assertion failed", __func__, __FILE__, __LINE__);        \
    } while (0)

/* malloc/calloc that never return NULL (they fail through ebmc_fail). For set-up only. */
void *ebmc_xmalloc(size_t bytes, const char *what);
void *ebmc_xcalloc(size_t count, size_t size, const char *what);

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

/* Returns the status of `call` from the enclosing function when it is not EBMC_OK. */
#define EBMC_TRY(call)                                                                          \
    do {                                                                                        \
        ebmc_status s_ = (call);                                                                \
        if (s_ != EBMC_OK) return s_;                                                           \
    } while (0)

/* The user's request to stop (set from a signal handler: async-signal-safe): 0 none, 1 stop
 * after this iteration, 2 stop at once. Long loops (Langevin chains run eagerly) check it
 * between steps and return EBMC_E_INTERRUPTED at level 2. */
void ebmc_interrupt_set(int level);
int ebmc_interrupt_level(void);

/* printf into a caller's message buffer (err may be NULL or errlen 0: nothing is written). */
void ebmc_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Seconds on the monotonic clock. */
double ebmc_now_s(void);
/* mkdir -p: every missing folder of path (mode 0755). 0, or -1 with errno set. */
int ebmc_mkdir_p(const char *path);

#ifdef __cplusplus
}
#endif
#endif
