/* defines: the fixtures the data-set tests share (test_data_files.c, test_data_images.c,
 * test_data_synth.c): the scratch folder ROOT, made by setup() and removed by teardown(), and
 * tp() for paths in it; the error buffer ERR with EXPECT_FAIL/EXPECT_OK; small file writers
 * (plain, gzip'd) and a reader; and fake CIFAR-10 batch files of known content (write_cifar),
 * which the CIFAR tests check and the loader tests feed on. */
#ifndef EBMC_TESTUTIL_DATA_H
#define EBMC_TESTUTIL_DATA_H

#include "testutil.h"
#include "ebmc/data.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern char ROOT[256]; /* a fresh mkdtemp directory per run */
extern char ERR[2048];

int setup(void **state);
int teardown(void **state);

/* ROOT/rel */
#define tp(...) tu_path(ROOT, __VA_ARGS__)

void mkdirs(const char *path);                              /* mkdir -p */
void write_bytes(const char *path, const void *p, size_t n);
void write_gz(const char *path, const void *p, size_t n);   /* gzip'd */
unsigned char *read_file(const char *path, size_t *n);      /* malloc'd, n bytes (+1 spare) */
void check_word(const char *word); /* fails unless ERR contains word (NULL: no check) */

/* the call failed with st, left *out NULL, and its message names `path` and contains `word` */
#define EXPECT_FAIL(call, ds, want_st, path, word)                                                 \
    do {                                                                                           \
        ERR[0] = '\0';                                                                             \
        ebmc_status st_ = (call);                                                                  \
        printf("  expected failure: %s\n", ERR);                                                   \
        assert_int_equal(st_, (want_st));                                                          \
        assert_null(ds);                                                                           \
        if (!strstr(ERR, (path))) fail_msg("message does not name %s: %s", (path), ERR);          \
        check_word(word);                                                                          \
    } while (0)

#define EXPECT_OK(call)                                                                            \
    do {                                                                                           \
        ERR[0] = '\0';                                                                             \
        ebmc_status st_ = (call);                                                                  \
        if (st_ != EBMC_OK) fail_msg("%s failed: %s: %s", #call, ebmc_status_str(st_), ERR);       \
    } while (0)

/* ---- fake CIFAR-10 */

#define CREC 3073

uint8_t cifar_label(int i);
uint8_t cifar_byte(int i, int j); /* pixel j (0..3071, CHW) of item i */
/* dir/data_batch_1..5.bin (train) or dir/test_batch.bin, `rec` records each, items numbered
 * through the files (the test file's items start at 200) */
void write_cifar(const char *dir, bool train, int rec);

#endif
