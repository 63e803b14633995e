/* Data sets read from files: CIFAR-10 and MNIST.
 *   - CIFAR-10: fake batch files with known bytes (both folder layouts), truncated/missing/wrong
 *     files; the real set when $EBMC_DATA/cifar-10-batches-bin exists (else SKIP)
 *   - MNIST: fake idx files, plain and gzip'd, padding, bad magic/dims/sizes; the real set when
 *     $EBMC_DATA/mnist exists (else SKIP)
 * Every expected error is checked to name the file. Image folders and tars are tested in
 * test_data_images.c, the synthetic sets and the loader in test_data_synth.c; the shared
 * fixtures are in testutil_data.c. */
#define _GNU_SOURCE /* truncate */
#include "testutil_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the readers under test, with the arguments of the error tests */
static ebmc_status load_cifar3(const char *dir, ebmc_dataset_t **ds) {
    return ebmc_data_cifar10_ex(dir, true, 3, ds, ERR, sizeof ERR);
}
static ebmc_status load_mnist(const char *dir, ebmc_dataset_t **ds) {
    return ebmc_data_mnist(dir, true, 0, ds, ERR, sizeof ERR);
}

/* A folder, then a FIFO, where `load` wants the file `at`: refused, named as such, never read
 * (a FIFO would block). */
static void check_not_regular(const char *dir, const char *at,
                              ebmc_status (*load)(const char *, ebmc_dataset_t **)) {
    ebmc_dataset_t *ds = NULL;
    mkdirs(at);
    EXPECT_FAIL(load(dir, &ds), ds, EBMC_E_IO, at, "is a directory");
    assert_int_equal(rmdir(at), 0);
    assert_int_equal(mkfifo(at, 0600), 0);
    EXPECT_FAIL(load(dir, &ds), ds, EBMC_E_IO, at, "is not a regular file (a FIFO)");
    assert_int_equal(remove(at), 0);
}

/* ================================================================ CIFAR-10 */

static void check_cifar(const ebmc_dataset_t *ds, bool train, int rec) {
    int n = train ? 5 * rec : rec, c, h, w;
    assert_int_equal(ebmc_data_count(ds), n);
    assert_int_equal(ebmc_data_kind_of(ds), EBMC_DATA_U8_IMAGES);
    ebmc_data_shape(ds, &c, &h, &w);
    assert_int_equal(c, 3);
    assert_int_equal(h, 32);
    assert_int_equal(w, 32);
    assert_string_equal(ebmc_data_name(ds), train ? "cifar10-train" : "cifar10-test");
    assert_null(ebmc_data_f32(ds));
    const uint8_t *u = ebmc_data_u8(ds), *lab = ebmc_data_labels(ds);
    assert_non_null(u);
    assert_non_null(lab);
    for (int k = 0; k < n; k++) {
        int i = (train ? 0 : 200) + k;
        assert_int_equal(lab[k], cifar_label(i));
        for (int j = 0; j < 3072; j++)
            if (u[(size_t)k * 3072 + j] != cifar_byte(i, j))
                fail_msg("item %d byte %d: %d, expected %d", k, j, u[(size_t)k * 3072 + j],
                         cifar_byte(i, j));
    }
    /* layout: (N,3,32,32), plane c = R,G,B, row-major */
    const int b = train ? 0 : 200;
    assert_int_equal(u[1 * 3072 + 2 * 1024 + 5 * 32 + 7], cifar_byte(b + 1, 2 * 1024 + 5 * 32 + 7));
}

static void test_cifar_fake(void **state) {
    ebmc_dataset_t *ds = NULL;
    const char *d1 = tp("cifar/flat");
    write_cifar(d1, true, 3);
    write_cifar(d1, false, 4);
    EXPECT_OK(ebmc_data_cifar10_ex(d1, true, 3, &ds, ERR, sizeof ERR));
    check_cifar(ds, true, 3);
    ebmc_data_free(ds);
    EXPECT_OK(ebmc_data_cifar10_ex(d1, false, 4, &ds, ERR, sizeof ERR));
    check_cifar(ds, false, 4);
    ebmc_data_free(ds);
    /* the parent of cifar-10-batches-bin/ works too */
    const char *d2 = tp("cifar/parent"), *d2s = tp("cifar/parent/cifar-10-batches-bin");
    write_cifar(d2s, true, 2);
    EXPECT_OK(ebmc_data_cifar10_ex(d2, true, 2, &ds, ERR, sizeof ERR));
    check_cifar(ds, true, 2);
    ebmc_data_free(ds);
    EXPECT_OK(ebmc_data_cifar10_ex(d2s, true, 2, &ds, ERR, sizeof ERR));
    check_cifar(ds, true, 2);
    ebmc_data_free(ds);
    /* the strict reader wants 10000 records per file */
    ds = NULL;
    EXPECT_FAIL(ebmc_data_cifar10(d1, true, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                tp("cifar/flat/data_batch_1.bin"), "found 9219 bytes, expected 30730000");
}

static void test_cifar_errors(void **state) {
    ebmc_dataset_t *ds = NULL;
    const char *d = tp("cifar/bad");
    write_cifar(d, true, 3);
    /* truncated */
    const char *b3 = tp("cifar/bad/data_batch_3.bin");
    assert_int_equal(truncate(b3, 3 * CREC - 100), 0);
    EXPECT_FAIL(ebmc_data_cifar10_ex(d, true, 3, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, b3,
                "found 9119 bytes, expected 9219");
    assert_non_null(strstr(ERR, "truncated"));
    /* missing */
    write_cifar(d, true, 3);
    const char *b4 = tp("cifar/bad/data_batch_4.bin");
    assert_int_equal(remove(b4), 0);
    EXPECT_FAIL(ebmc_data_cifar10_ex(d, true, 3, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, b4,
                "missing");
    EXPECT_FAIL(ebmc_data_cifar10_ex(d, false, 3, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                tp("cifar/bad/test_batch.bin"), "missing");
    check_not_regular(d, b4, load_cifar3);
    /* a label out of range: not CIFAR-10 */
    write_cifar(d, true, 3);
    const char *b2 = tp("cifar/bad/data_batch_2.bin");
    FILE *f = fopen(b2, "r+b");
    assert_non_null(f);
    fseek(f, CREC, SEEK_SET);
    fputc(57, f);
    fclose(f);
    EXPECT_FAIL(ebmc_data_cifar10_ex(d, true, 3, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, b2,
                "label 57");
    /* no such directory; bad arguments */
    const char *nd = tp("cifar/nowhere");
    EXPECT_FAIL(ebmc_data_cifar10(nd, true, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, nd, NULL);
    EXPECT_FAIL(ebmc_data_cifar10_ex(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_INVALID, d,
                NULL);
}

static void test_cifar_real(void **state) {
    const char *root = getenv("EBMC_DATA");
    char dir[1024];
    struct stat sb;
    if (!root || !root[0]) {
        printf("SKIP: real CIFAR-10: EBMC_DATA is not set\n");
        skip();
    }
    snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", root);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("SKIP: real CIFAR-10: %s does not exist (extract cifar-10-binary.tar.* there)\n", dir);
        skip();
    }
    ebmc_dataset_t *ds = NULL;
    EXPECT_OK(ebmc_data_cifar10(root, true, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_count(ds), 50000);
    const uint8_t *u = ebmc_data_u8(ds);
    const double want[3] = {0.4914, 0.4822, 0.4465};
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (size_t i = 0; i < 50000; i++)
            for (int j = 0; j < 1024; j++) s += u[i * 3072 + (size_t)c * 1024 + j];
        double mean = s / (50000.0 * 1024 * 255);
        printf("  CIFAR-10 train channel %d mean %.4f (expected %.4f)\n", c, mean, want[c]);
        assert_true(fabs(mean - want[c]) < 1e-3);
    }
    int per[10] = {0};
    for (int i = 0; i < 50000; i++) per[ebmc_data_labels(ds)[i]]++;
    for (int k = 0; k < 10; k++) assert_int_equal(per[k], 5000);
    ebmc_data_free(ds);
    EXPECT_OK(ebmc_data_cifar10(dir, false, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_count(ds), 10000);
    ebmc_data_free(ds);
}

/* ================================================================ MNIST */

static size_t make_idx(uint8_t *buf, uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                       bool three_dims, size_t data_len, int seed) {
    uint32_t hdr[4] = {magic, n, rows, cols};
    int nh = three_dims ? 4 : 2;
    for (int k = 0; k < nh; k++)
        for (int b = 0; b < 4; b++) buf[4 * k + b] = (uint8_t)(hdr[k] >> (24 - 8 * b));
    for (size_t i = 0; i < data_len; i++)
        buf[4 * nh + i] = three_dims ? (uint8_t)((i * 11 + (size_t)seed) & 255) : (uint8_t)(i % 10);
    return 4 * (size_t)nh + data_len;
}

static uint8_t IDX[16 + 5 * 784 + 64];

static void test_mnist_fake(void **state) {
    ebmc_dataset_t *ds = NULL;
    /* plain, with labels */
    const char *d = tp("mnist/plain");
    mkdirs(d);
    size_t len = make_idx(IDX, 0x803, 5, 28, 28, true, 5 * 784, 3);
    write_bytes(tp("mnist/plain/train-images-idx3-ubyte"), IDX, len);
    len = make_idx(IDX, 0x801, 5, 0, 0, false, 5, 0);
    write_bytes(tp("mnist/plain/train-labels-idx1-ubyte"), IDX, len);
    EXPECT_OK(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR));
    int c, h, w;
    ebmc_data_shape(ds, &c, &h, &w);
    assert_int_equal(ebmc_data_count(ds), 5);
    assert_int_equal(c, 1);
    assert_int_equal(h, 28);
    assert_int_equal(w, 28);
    assert_string_equal(ebmc_data_name(ds), "mnist-train");
    for (size_t i = 0; i < 5 * 784; i++) assert_int_equal(ebmc_data_u8(ds)[i], (i * 11 + 3) & 255);
    assert_non_null(ebmc_data_labels(ds));
    for (int i = 0; i < 5; i++) assert_int_equal(ebmc_data_labels(ds)[i], i);
    ebmc_data_free(ds);

    /* gzip'd, no labels, padded to 32 (centred) */
    const char *g = tp("mnist/gz");
    mkdirs(g);
    len = make_idx(IDX, 0x803, 4, 28, 28, true, 4 * 784, 5);
    write_gz(tp("mnist/gz/t10k-images-idx3-ubyte.gz"), IDX, len);
    EXPECT_OK(ebmc_data_mnist(g, false, 32, &ds, ERR, sizeof ERR));
    ebmc_data_shape(ds, &c, &h, &w);
    assert_int_equal(ebmc_data_count(ds), 4);
    assert_int_equal(h, 32);
    assert_int_equal(w, 32);
    assert_string_equal(ebmc_data_name(ds), "mnist-test");
    assert_null(ebmc_data_labels(ds));
    const uint8_t *u = ebmc_data_u8(ds);
    for (int i = 0; i < 4; i++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int v = u[((size_t)i * 32 + y) * 32 + x];
                bool in = y >= 2 && y < 30 && x >= 2 && x < 30;
                int want = in ? (int)((((size_t)i * 784 + (y - 2) * 28 + (x - 2)) * 11 + 5) & 255) : 0;
                if (v != want) fail_msg("item %d (%d,%d): %d, expected %d", i, y, x, v, want);
            }
    ebmc_data_free(ds);
    /* gzip'd labels next to gzip'd images */
    len = make_idx(IDX, 0x801, 4, 0, 0, false, 4, 0);
    write_gz(tp("mnist/gz/t10k-labels-idx1-ubyte.gz"), IDX, len);
    EXPECT_OK(ebmc_data_mnist(g, false, 0, &ds, ERR, sizeof ERR));
    assert_non_null(ebmc_data_labels(ds));
    assert_int_equal(ebmc_data_labels(ds)[3], 3);
    ebmc_data_free(ds);
}

static void test_mnist_errors(void **state) {
    ebmc_dataset_t *ds = NULL;
    const char *d = tp("mnist/bad");
    mkdirs(d);
    const char *img = tp("mnist/bad/train-images-idx3-ubyte");
    const char *imgz = tp("mnist/bad/train-images-idx3-ubyte.gz");
    /* missing */
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                tp("mnist/bad/train-images-idx3-ubyte[.gz]"), "missing");
    /* bad magic */
    size_t len = make_idx(IDX, 0x801, 2, 28, 28, true, 2 * 784, 0);
    write_bytes(img, IDX, len);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, img, "magic");
    /* wrong dims */
    len = make_idx(IDX, 0x803, 2, 27, 28, true, 2 * 27 * 28, 0);
    write_bytes(img, IDX, len);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, img, "27x28");
    /* truncated data, trailing data, short header */
    len = make_idx(IDX, 0x803, 3, 28, 28, true, 3 * 784, 0);
    write_bytes(img, IDX, len - 10);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, img, "truncated");
    write_bytes(img, IDX, len + 0);
    len = make_idx(IDX, 0x803, 2, 28, 28, true, 3 * 784, 0);
    write_bytes(img, IDX, len);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, img, "trailing");
    write_bytes(img, IDX, 9);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, img, "header");
    remove(img);
    /* gzip'd and truncated: the decompressed data are short */
    len = make_idx(IDX, 0x803, 3, 28, 28, true, 3 * 784, 0);
    write_gz(imgz, IDX, len - 784);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, imgz, "truncated");
    /* a gzip file cut in the middle */
    write_gz(imgz, IDX, len);
    size_t zn;
    unsigned char *z = read_file(imgz, &zn);
    write_bytes(imgz, z, zn / 2);
    free(z);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, imgz, NULL);
    /* a corrupt gzip file is named so, with zlib's message, even when the damage made the
     * stream decode to more bytes than the header announces: the error then lies past the
     * announced end (here a bad CRC after 130 images where 100 are announced; large enough
     * that zlib's first buffer does not reach it; the reader said "trailing data") */
    uint8_t *big = malloc(16 + 130 * 784);
    assert_non_null(big);
    size_t blen;
    for (int announced = 100; announced <= 130; announced += 30) {
        /* 130: the same at the announced length (the CRC is checked at the stream's end) */
        blen = make_idx(big, 0x803, (uint32_t)announced, 28, 28, true, 130 * 784, 0);
        write_gz(imgz, big, blen);
        z = read_file(imgz, &zn);
        z[zn - 8] ^= 0x40; /* the CRC-32 in the gzip trailer */
        write_bytes(imgz, z, zn);
        free(z);
        EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, imgz,
                    "corrupt gzip data");
        check_word("incorrect data check");
    }
    /* a sound gzip file with more data than announced is still "trailing data" */
    blen = make_idx(big, 0x803, 100, 28, 28, true, 130 * 784, 0);
    write_gz(imgz, big, blen);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, imgz,
                "trailing data");
    free(big);
    /* a good image file with a bad labels file */
    write_gz(imgz, IDX, len);
    const char *lab = tp("mnist/bad/train-labels-idx1-ubyte");
    len = make_idx(IDX, 0x801, 4, 0, 0, false, 4, 0);
    write_bytes(lab, IDX, len);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, lab, "4 labels for 3");
    len = make_idx(IDX, 0x803, 3, 0, 0, false, 3, 0);
    write_bytes(lab, IDX, len);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, lab, "magic");
    /* not a regular file where the images should be: named as such, never read (a FIFO
     * would block, /dev/zero never ends) */
    remove(lab);
    remove(imgz);
    check_not_regular(d, img, load_mnist);
    assert_int_equal(symlink("/dev/zero", imgz), 0);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, imgz,
                "is not a regular file (a character device)");
    remove(imgz);
    /* the same for the labels */
    len = make_idx(IDX, 0x803, 3, 28, 28, true, 3 * 784, 0);
    write_bytes(img, IDX, len);
    check_not_regular(d, lab, load_mnist);
    /* bad pad_to */
    EXPECT_FAIL(ebmc_data_mnist(d, true, 20, &ds, ERR, sizeof ERR), ds, EBMC_E_INVALID, d, "pad_to");
}

static void test_mnist_real(void **state) {
    const char *root = getenv("EBMC_DATA");
    char dir[1024];
    struct stat sb;
    if (!root || !root[0]) {
        printf("SKIP: real MNIST: EBMC_DATA is not set\n");
        skip();
    }
    snprintf(dir, sizeof dir, "%s/mnist", root);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("SKIP: real MNIST: %s does not exist\n", dir);
        skip();
    }
    ebmc_dataset_t *ds = NULL;
    EXPECT_OK(ebmc_data_mnist(dir, true, 0, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_count(ds), 60000);
    double s = 0;
    const uint8_t *u = ebmc_data_u8(ds);
    for (size_t i = 0; i < (size_t)60000 * 784; i++) s += u[i];
    double mean = s / (60000.0 * 784 * 255);
    printf("  MNIST train mean pixel %.4f (expected 0.1307)\n", mean);
    assert_true(fabs(mean - 0.1307) < 1e-3);
    assert_non_null(ebmc_data_labels(ds));
    ebmc_data_free(ds);
    EXPECT_OK(ebmc_data_mnist(dir, false, 32, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_count(ds), 10000);
    ebmc_data_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar_fake),
        cmocka_unit_test(test_cifar_errors),
        cmocka_unit_test(test_cifar_real),
        cmocka_unit_test(test_mnist_fake),
        cmocka_unit_test(test_mnist_errors),
        cmocka_unit_test(test_mnist_real),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
