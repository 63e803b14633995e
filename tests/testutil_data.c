/* The fixtures the data-set tests share; see testutil_data.h. */
#include "testutil_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

char ROOT[256];
char ERR[2048];

int setup(void **state) {
    (void)state;
    return tu_tmpdir_create(ROOT, sizeof ROOT, "test_data");
}

int teardown(void **state) {
    (void)state;
    tu_tmpdir_remove(ROOT);
    return 0;
}

void mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) fail_msg("mkdir %s: %s", tmp, strerror(errno));
}

void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    struct stat sb;
    assert_int_equal(fstat(fileno(f), &sb), 0);
    *n = (size_t)sb.st_size;
    unsigned char *p = malloc(*n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

void check_word(const char *word) {
    if (word && !strstr(ERR, word)) fail_msg("message lacks \"%s\": %s", word, ERR);
}

/* ================================================================ fake CIFAR-10 */

uint8_t cifar_label(int i) { return (uint8_t)((i * 3) % 10); }
uint8_t cifar_byte(int i, int j) { /* pixel j (0..3071, CHW) of item i */
    return j == 0 ? (uint8_t)i : (uint8_t)((i * 7 + j * 13 + (j >> 5)) & 255);
}

/* dir/data_batch_1..5.bin (train) or dir/test_batch.bin, `rec` records each, items numbered
 * through the files (the test file's items start at 200) */
void write_cifar(const char *dir, bool train, int rec) {
    mkdirs(dir);
    uint8_t *buf = malloc((size_t)rec * CREC);
    assert_non_null(buf);
    for (int f = 0; f < (train ? 5 : 1); f++) {
        for (int r = 0; r < rec; r++) {
            int i = (train ? 0 : 200) + f * rec + r;
            buf[(size_t)r * CREC] = cifar_label(i);
            for (int j = 0; j < 3072; j++) buf[(size_t)r * CREC + 1 + j] = cifar_byte(i, j);
        }
        char p[1024];
        if (train)
            snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, f + 1);
        else
            snprintf(p, sizeof p, "%s/test_batch.bin", dir);
        write_bytes(p, buf, (size_t)rec * CREC);
    }
    free(buf);
}
