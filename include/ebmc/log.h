/* defines: ebmc_jsonl (one JSON object per line, append-only), ebmc_progress_t (stderr progress) */
#ifndef EBMC_LOG_H
#define EBMC_LOG_H

#include "ebmc/common.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- JSONL metrics: build one object, append it as one line; nothing is ever rewritten.
 *
 *     ebmc_jsonl l;
 *     ebmc_jsonl_begin(&l);
 *     ebmc_jsonl_int(&l, "step", 1200);
 *     ebmc_jsonl_num(&l, "loss", loss);
 *     if (ebmc_jsonl_append(&l, "run/metrics.jsonl", err, sizeof err) != EBMC_OK) ...
 *
 * gives {"step":1200,"loss":0.0310000004}. Keys and string values are escaped: '"' and '\' are
 * backslash-escaped, control characters become \b \f \n \r \t or \u00XX, valid UTF-8 passes
 * through unchanged and each byte of an invalid UTF-8 sequence becomes \ufffd, so every line is
 * valid JSON. Keys are not checked for duplicates. */
typedef struct {
    char buf[8192]; /* the object so far, "{..." (NUL-terminated) */
    size_t len;     /* bytes used in buf; 0 before ebmc_jsonl_begin */
    bool overflow;  /* a field did not fit: it was dropped and append will refuse the record */
} ebmc_jsonl;

void ebmc_jsonl_begin(ebmc_jsonl *l);
void ebmc_jsonl_int(ebmc_jsonl *l, const char *key, int64_t v);
/* %.9g (a float round-trips). JSON has no NaN or Inf: the value is written as null, followed by
 * a separate string field "<key>_nonfinite": "nan" | "inf" | "-inf". */
void ebmc_jsonl_num(ebmc_jsonl *l, const char *key, double v);
void ebmc_jsonl_str(ebmc_jsonl *l, const char *key, const char *v); /* NULL is written as null */
void ebmc_jsonl_bool(ebmc_jsonl *l, const char *key, bool v);

/* Closes the object and appends it, with '\n', to path (created if missing) in a single write(2)
 * on a descriptor opened O_APPEND, then closes it: a crash loses one line at most. If the file
 * does not end in '\n' (a line cut by an earlier crash), a '\n' is written first so the new record
 * starts a line of its own. Refuses (EBMC_E_INVALID, nothing written) a record that overflowed or
 * was never begun; EBMC_E_IO with "PATH: problem" in err when the file cannot be written. The
 * record is left as it was (call ebmc_jsonl_begin for the next one). */
ebmc_status ebmc_jsonl_append(ebmc_jsonl *l, const char *path, char *err, size_t errlen);

/* ---- Progress on stderr.
 *
 * Terminal: one line redrawn with '\r' (padded with spaces over a longer previous line), at most
 * every 0.1 s, plus always the first update and the last iteration; ebmc_progress_finish draws it
 * once more and ends it with '\n'. Not a terminal (CI logs, tee): a plain line when it is a
 * multiple of plain_every, and for the last iteration (at finish if it was not printed yet).
 * The line, tqdm-like:
 *
 *     1200/10000  12% [00:35<04:16, 34.2 it/s] loss 0.031 e_pos -1.92
 *
 * `it` counts completed iterations (1..total); the rate and the ETA count only the iterations
 * after `start` (a resumed run starts at its checkpoint's step). total <= 0: unknown, no percent
 * or ETA. text: a short caller summary (truncated to 200 bytes; control characters become
 * spaces). quiet: nothing is printed. */
typedef struct ebmc_progress ebmc_progress_t;

/* NULL only when out of memory. */
ebmc_progress_t *ebmc_progress_create(int64_t total, int64_t start, int plain_every, bool quiet);
void ebmc_progress_update(ebmc_progress_t *p, int64_t it, const char *text);
void ebmc_progress_finish(ebmc_progress_t *p);
void ebmc_progress_free(ebmc_progress_t *p); /* NULL is fine; does not finish */
/* For tests (and callers with another stream): the output stream and whether it is treated as
 * a terminal. The default is stderr, a terminal when isatty(fileno(stderr)). */
void ebmc_progress_set_stream(ebmc_progress_t *p, FILE *f, bool is_tty);

#ifdef __cplusplus
}
#endif
#endif
