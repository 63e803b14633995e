/* defines: ebmc_tb_t (a TensorBoard event file, appended), ebmc_tb_scan (checks one),
 * ebmc_crc32c */
#ifndef EBMC_TBOARD_H
#define EBMC_TBOARD_H

#include "ebmc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A TensorBoard event file: TFRecord framing around serialized tensorflow.Event protobufs,
 *
 *     uint64 length (little endian), uint32 masked CRC-32C of those 8 bytes,
 *     length bytes of Event,         uint32 masked CRC-32C of them
 *
 * (masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8). The Events written: the first record
 * {wall_time, file_version: "brain.Event:2"}; then {wall_time, step, summary {value {tag, ...}}}
 * with simple_value (scalars), image {height, width, colorspace 3, encoded_image_string (PNG)}
 * or a DT_STRING tensor with plugin "text" metadata (text). Only the fields ebmc writes are
 * encoded (by hand: two wire types, a few lines; TensorBoard's own reader checks them in
 * tests/oracle/test_tboard.py).
 *
 * Records are collected in memory and written with write(2) at ebmc_tb_flush, whole: the file
 * only ever ends between records, except when the process dies inside that write. */
typedef struct ebmc_tb ebmc_tb_t;

/* Creates dir (if needed) and dir/events.out.tfevents.<seconds>.<host>.ebmc, starting with the
 * file_version record. NULL with "PATH: problem" in err when it cannot. */
ebmc_tb_t *ebmc_tb_create(const char *dir, char *err, size_t errlen);
/* Reopens an existing event file for appending, cut at `keep` bytes (what a checkpoint recorded:
 * the events after it are written again by the resumed run). Whatever the file holds after
 * `keep`, and anything wrong before it, is said in `note` (empty when nothing was): bytes dropped
 * and the steps they held, a cut last record, a corrupt record (then the file is cut before it)
 * or a file shorter than `keep`. NULL with "PATH: problem" in err when it cannot be opened. */
ebmc_tb_t *ebmc_tb_reopen(const char *path, int64_t keep, char *note, size_t notelen, char *err, size_t errlen);
void ebmc_tb_close(ebmc_tb_t *tb); /* flushes (errors ignored: flush first to see them); NULL is fine */

/* One Event of several values at `step`: begin, any number of scalar/image/text, end. */
void ebmc_tb_begin(ebmc_tb_t *tb, int64_t step, double wall_time);
void ebmc_tb_scalar(ebmc_tb_t *tb, const char *tag, float value);
void ebmc_tb_image(ebmc_tb_t *tb, const char *tag, const uint8_t *png, size_t len, int height, int width);
void ebmc_tb_text(ebmc_tb_t *tb, const char *tag, const char *text); /* markdown, as TensorBoard shows it */
void ebmc_tb_end(ebmc_tb_t *tb);

/* Writes the records collected so far; `durable`: and fsyncs the file (before a checkpoint
 * records its length). EBMC_E_IO with "PATH: problem" in err. */
ebmc_status ebmc_tb_flush(ebmc_tb_t *tb, bool durable, char *err, size_t errlen);
/* Cuts the file back to `bytes` (a length ebmc_tb_bytes returned earlier: a record boundary),
 * dropping the records collected after it too: the divergence guard's reload. */
ebmc_status ebmc_tb_truncate(ebmc_tb_t *tb, int64_t bytes, char *err, size_t errlen);
/* The file's length once everything collected is flushed; its path. */
int64_t ebmc_tb_bytes(const ebmc_tb_t *tb);
const char *ebmc_tb_path(const ebmc_tb_t *tb);

/* Reads the records of an event file: *valid the bytes in whole records with correct CRCs from
 * the start, *records their count, *last_step the largest step among them (-1: none). `why`:
 * what stops the scan before the end of the file (a cut record, a bad CRC, a length beyond the
 * file), empty when the file is whole. EBMC_E_IO when the file cannot be read. */
ebmc_status ebmc_tb_scan(const char *path, int64_t *valid, int64_t *records, int64_t *last_step, char *why,
                         size_t whylen);

/* Seconds since the epoch (the Events' wall_time). */
double ebmc_tb_wall(void);

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of n bytes, continuing from crc (0 to
 * start): ebmc_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t ebmc_crc32c(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
