/* The TensorBoard event file writer (src/host/io/tboard.c) on its own: CRC-32C known answers,
 * the TFRecord frame and the Event bytes of a scalar worked out by hand, and what the resume
 * path does with what a killed run left: steps after the checkpoint, a cut record, a corrupt
 * record before the checkpoint's length, a file shorter than it. TensorBoard's own reader reads
 * ebmc's files in tests/oracle/test_tboard.py. */
#include "testutil.h"
#include "ebmc/tboard.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char DIRP[256];

static int setup(void **state) {
    (void)state;
    return tu_tmpdir_create(DIRP, sizeof DIRP, "test_tboard");
}

static int teardown(void **state) {
    (void)state;
    tu_tmpdir_remove(DIRP);
    return 0;
}

static void test_crc32c_known_answers(void **state) {
    (void)state;
    /* RFC 3720 B.4 (iSCSI) and the CRC catalogue's check value */
    assert_int_equal(ebmc_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
    assert_int_equal(ebmc_crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(ebmc_crc32c(0, ones, 32), 0x62A8AB43u);
    assert_int_equal(ebmc_crc32c(0, inc, 32), 0x46DD794Eu);
    /* continuing a CRC over a split equals the whole (the slicing-by-8 and byte paths agree) */
    for (size_t k = 0; k <= 32; k++) assert_int_equal(ebmc_crc32c(ebmc_crc32c(0, inc, k), inc + k, 32 - k), 0x46DD794Eu);
}

static int64_t file_size(const char *path) {
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n + 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static uint32_t le32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static uint32_t masked(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

/* the only event file of dir */
static void event_file(const char *dir, char *out, size_t n) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "events.out.tfevents.", 20)) snprintf(out, n, "%s/%s", dir, e->d_name), found++;
    closedir(d);
    assert_int_equal(found, 1);
}

/* the scan of path: `valid` bytes (-1: the whole file), recs records, the last step, and a stop
 * reason containing `why` ("" : none) */
static void expect_scan(const char *path, int64_t valid, int64_t recs, int64_t last, const char *why) {
    int64_t v, r, l;
    char w[256];
    assert_int_equal(ebmc_tb_scan(path, &v, &r, &l, w, sizeof w), EBMC_OK);
    assert_int_equal(v, valid < 0 ? file_size(path) : valid);
    assert_int_equal(r, recs);
    assert_int_equal(l, last);
    if (*why) assert_non_null(strstr(w, why));
    else assert_string_equal(w, "");
}

static void test_frame_and_scalar_bytes(void **state) {
    (void)state;
    char err[512], dir[300], path[600];
    snprintf(dir, sizeof dir, "%s/frame", DIRP);
    ebmc_tb_t *tb = ebmc_tb_create(dir, err, sizeof err);
    assert_non_null(tb);
    int64_t first = ebmc_tb_bytes(tb);
    ebmc_tb_begin(tb, 300, 1.5);
    ebmc_tb_scalar(tb, "loss", 0.25f);
    ebmc_tb_end(tb);
    assert_int_equal(ebmc_tb_flush(tb, true, err, sizeof err), EBMC_OK);
    event_file(dir, path, sizeof path);
    ebmc_tb_close(tb);
    size_t n;
    uint8_t *b = slurp(path, &n);
    /* Event { wall_time: 1.5 (field 1, fixed64), step: 300 (field 2, varint ac 02),
     *         summary (field 5) { value (field 1) { tag "loss" (1), simple_value 0.25f (2, fixed32) } } } */
    const uint8_t want[] = {0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0xac, 0x02, 0x2a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04,
                            'l', 'o', 's', 's', 0x15, 0, 0, 0x80, 0x3e};
    const uint8_t *r = b + first;
    assert_int_equal(n - (size_t)first, 12 + sizeof want + 4);
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len |= (uint64_t)r[i] << (8 * i);
    assert_int_equal(len, sizeof want);
    assert_int_equal(le32(r + 8), masked(ebmc_crc32c(0, r, 8)));
    assert_memory_equal(r + 12, want, sizeof want);
    assert_int_equal(le32(r + 12 + sizeof want), masked(ebmc_crc32c(0, want, sizeof want)));
    /* the first record: { wall_time, file_version "brain.Event:2" (field 3) } */
    assert_memory_equal(b + 12 + 9, "\x1a\x0d" "brain.Event:2", 15);
    expect_scan(path, (int64_t)n, 2, 300, "");
    free(b);
}

/* a file with the first record, steps 1..k each one scalar; its length after step `ckpt` */
static int64_t write_steps(const char *dir, int k, int ckpt, char *path, size_t n) {
    char err[512];
    ebmc_tb_t *tb = ebmc_tb_create(dir, err, sizeof err);
    assert_non_null(tb);
    int64_t at = -1;
    for (int s = 1; s <= k; s++) {
        ebmc_tb_begin(tb, s, 100.0 + s);
        ebmc_tb_scalar(tb, "x", (float)s);
        ebmc_tb_end(tb);
        if (s == ckpt) {
            assert_int_equal(ebmc_tb_flush(tb, true, err, sizeof err), EBMC_OK);
            at = ebmc_tb_bytes(tb);
        }
    }
    event_file(dir, path, n);
    ebmc_tb_close(tb);
    return at;
}

static void test_reopen_after_kill(void **state) {
    (void)state;
    char err[512], note[1024], dir[300], path[600];
    snprintf(dir, sizeof dir, "%s/kill", DIRP);
    int64_t keep = write_steps(dir, 7, 4, path, sizeof path);
    FILE *f = fopen(path, "ab"); /* a kill inside a write: 5 bytes of a header */
    fwrite("\x20\0\0\0\0", 1, 5, f);
    fclose(f);
    expect_scan(path, file_size(path) - 5, 8, 7, "cut record");
    ebmc_tb_t *tb = ebmc_tb_reopen(path, keep, note, sizeof note, err, sizeof err);
    assert_non_null(tb);
    assert_non_null(strstr(note, "(3 records of steps 5-7, which this run writes again)"));
    assert_non_null(strstr(note, "cut record"));
    assert_int_equal(file_size(path), keep);
    ebmc_tb_begin(tb, 5, 200.0); /* the resumed run goes on from there */
    ebmc_tb_scalar(tb, "x", 5.0f);
    ebmc_tb_end(tb);
    ebmc_tb_close(tb);
    expect_scan(path, -1, 6, 5, "");
    /* the same file again at the same length: nothing to say */
    tb = ebmc_tb_reopen(path, file_size(path), note, sizeof note, err, sizeof err);
    assert_non_null(tb);
    assert_string_equal(note, "");
    ebmc_tb_close(tb);
}

static void test_reopen_damaged(void **state) {
    (void)state;
    char err[512], note[1024], dir[300], path[600];
    snprintf(dir, sizeof dir, "%s/corrupt", DIRP);
    int64_t keep = write_steps(dir, 6, 6, path, sizeof path);
    size_t n;
    uint8_t *b = slurp(path, &n);
    /* flip one byte in the data of the record of step 3 (records: version, 1, 2, 3, ...) */
    int64_t at = 0;
    for (int r = 0; r < 3; r++) {
        uint64_t len = 0;
        for (int i = 0; i < 8; i++) len |= (uint64_t)b[at + i] << (8 * i);
        at += 16 + (int64_t)len;
    }
    FILE *f = fopen(path, "r+b");
    fseek(f, at + 14, SEEK_SET);
    fputc(b[at + 14] ^ 0x40, f);
    fclose(f);
    expect_scan(path, at, 3, 2, "CRC-32C");
    ebmc_tb_t *tb = ebmc_tb_reopen(path, keep, note, sizeof note, err, sizeof err);
    assert_non_null(tb);
    assert_non_null(strstr(note, "corrupt record"));
    assert_non_null(strstr(note, "at step 2"));
    assert_int_equal(file_size(path), at);
    assert_int_equal(ebmc_tb_bytes(tb), at);
    ebmc_tb_close(tb);
    /* shorter than the checkpoint recorded (lost after it): kept, said */
    tb = ebmc_tb_reopen(path, keep, note, sizeof note, err, sizeof err);
    assert_non_null(tb);
    assert_non_null(strstr(note, "shorter than"));
    ebmc_tb_close(tb);
    free(b);
    /* a missing file: an error naming it */
    char gone[700];
    snprintf(gone, sizeof gone, "%s/none", dir);
    assert_null(ebmc_tb_reopen(gone, 10, note, sizeof note, err, sizeof err));
    assert_non_null(strstr(err, gone));
}

static void test_truncate(void **state) {
    (void)state;
    char err[512], dir[300], path[600];
    snprintf(dir, sizeof dir, "%s/trunc", DIRP);
    ebmc_tb_t *tb = ebmc_tb_create(dir, err, sizeof err);
    assert_non_null(tb);
    int64_t marks[5];
    for (int s = 1; s <= 4; s++) {
        marks[s] = ebmc_tb_bytes(tb);
        ebmc_tb_begin(tb, s, 1.0);
        ebmc_tb_scalar(tb, "x", (float)s);
        ebmc_tb_end(tb);
        if (s == 2) assert_int_equal(ebmc_tb_flush(tb, false, err, sizeof err), EBMC_OK);
    }
    /* back to before step 4 (still in memory), then to before step 2 (on disk) */
    assert_int_equal(ebmc_tb_truncate(tb, marks[4], err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_tb_bytes(tb), marks[4]);
    assert_int_equal(ebmc_tb_truncate(tb, marks[2], err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_tb_bytes(tb), marks[2]);
    ebmc_tb_begin(tb, 2, 2.0);
    ebmc_tb_scalar(tb, "x", 2.0f);
    ebmc_tb_end(tb);
    event_file(dir, path, sizeof path);
    ebmc_tb_close(tb);
    expect_scan(path, -1, 3, 2, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_answers),
        cmocka_unit_test(test_frame_and_scalar_bytes),
        cmocka_unit_test(test_reopen_after_kill),
        cmocka_unit_test(test_reopen_damaged),
        cmocka_unit_test(test_truncate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
