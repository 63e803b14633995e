/* Data sets and the batch loader.
 *   - CIFAR-10: fake batch files with known bytes (both folder layouts), truncated/missing/wrong
 *     files; the real set when $EBMC_DATA/cifar-10-batches-bin exists (else SKIP)
 *   - MNIST: fake idx files, plain and gzip'd, padding, bad magic/dims/sizes; the real set when
 *     $EBMC_DATA/mnist exists (else SKIP)
 *   - image folders and tars: PNGs and a JPEG of known content made here, crop + resize, the cache
 *     (made, reused untouched, rebuilt), corrupt files (error naming them, or skipped and counted)
 *   - shapes and 2-D toys: determinism by seed, ranges, mode coverage
 *   - the loader: permutations, determinism, resume, flips, drop_last
 * Every expected error is checked to name the file (or, for the loader, the data set). */
#define _GNU_SOURCE /* nftw, symlink, truncate */
#include "testutil.h"
#include "ebmc/data.h"

#include <stb/stb_image_write.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char ROOT[256]; /* a fresh mkdtemp directory per run */
static char ERR[2048];

static int setup(void **state) {
    (void)state;
    return tu_tmpdir_create(ROOT, sizeof ROOT, "test_data");
}

static int teardown(void **state) {
    (void)state;
    tu_tmpdir_remove(ROOT);
    return 0;
}

/* ROOT/rel */
#define tp(...) tu_path(ROOT, __VA_ARGS__)

static void mkdirs(const char *path) {
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

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static unsigned char *read_file(const char *path, size_t *n) {
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

static void check_word(const char *word) {
    if (word && !strstr(ERR, word)) fail_msg("message lacks \"%s\": %s", word, ERR);
}

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

/* ================================================================ CIFAR-10 */

#define CREC 3073

static uint8_t cifar_label(int i) { return (uint8_t)((i * 3) % 10); }
static uint8_t cifar_byte(int i, int j) { /* pixel j (0..3071, CHW) of item i */
    return j == 0 ? (uint8_t)i : (uint8_t)((i * 7 + j * 13 + (j >> 5)) & 255);
}

/* dir/data_batch_1..5.bin (train) or dir/test_batch.bin, `rec` records each, items numbered
 * through the files (the test file's items start at 200) */
static void write_cifar(const char *dir, bool train, int rec) {
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
    /* a good image file with a bad labels file */
    write_gz(imgz, IDX, len);
    const char *lab = tp("mnist/bad/train-labels-idx1-ubyte");
    len = make_idx(IDX, 0x801, 4, 0, 0, false, 4, 0);
    write_bytes(lab, IDX, len);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, lab, "4 labels for 3");
    len = make_idx(IDX, 0x803, 3, 0, 0, false, 3, 0);
    write_bytes(lab, IDX, len);
    EXPECT_FAIL(ebmc_data_mnist(d, true, 0, &ds, ERR, sizeof ERR), ds, EBMC_E_IO, lab, "magic");
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

/* ================================================================ image folders and tars */

/* the source images: rel path -> (w, h, kind) */
#define GRAD_W 24
static void make_sources(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/a", dir);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/b", dir);
    mkdirs(p);
    uint8_t img[GRAD_W * GRAD_W * 3];
    for (int i = 0; i < 20 * 16; i++) img[3 * i] = 200, img[3 * i + 1] = 30, img[3 * i + 2] = 40;
    snprintf(p, sizeof p, "%s/a/red.png", dir);
    assert_true(stbi_write_png(p, 20, 16, 3, img, 20 * 3));
    for (int y = 0; y < GRAD_W; y++)
        for (int x = 0; x < GRAD_W; x++) {
            uint8_t *q = img + 3 * (y * GRAD_W + x);
            q[0] = (uint8_t)(10 * x), q[1] = (uint8_t)(255 - 10 * x), q[2] = 128;
        }
    snprintf(p, sizeof p, "%s/a/grad.png", dir);
    assert_true(stbi_write_png(p, GRAD_W, GRAD_W, 3, img, GRAD_W * 3));
    for (int i = 0; i < 16 * 16; i++) img[3 * i] = 20, img[3 * i + 1] = 40, img[3 * i + 2] = 220;
    snprintf(p, sizeof p, "%s/b/blue.jpg", dir);
    assert_true(stbi_write_jpg(p, 16, 16, 3, img, 95));
    memset(img, 77, 18 * 17);
    snprintf(p, sizeof p, "%s/grey.png", dir);
    assert_true(stbi_write_png(p, 18, 17, 1, img, 18));
    /* ignored: other extensions and hidden files */
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    write_bytes(p, "not an image", 12);
    snprintf(p, sizeof p, "%s/.hidden.png", dir);
    write_bytes(p, "garbage", 7);
}

/* sorted: a/grad.png, a/red.png, b/blue.jpg, grey.png */
enum { IM_GRAD = 0, IM_RED = 1, IM_BLUE = 2, IM_GREY = 3 };

static void check_constant(const ebmc_dataset_t *ds, int i, const int rgb[3], int tol) {
    int c, h, w;
    ebmc_data_shape(ds, &c, &h, &w);
    const uint8_t *u = ebmc_data_u8(ds) + (size_t)i * c * h * w;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < h * w; j++)
            if (abs((int)u[k * h * w + j] - rgb[k]) > tol)
                fail_msg("image %d channel %d pixel %d: %d, expected %d +- %d", i, k, j,
                         u[k * h * w + j], rgb[k], tol);
}

static void check_sources(const ebmc_dataset_t *ds, int size) {
    int c, h, w;
    assert_int_equal(ebmc_data_count(ds), 4);
    ebmc_data_shape(ds, &c, &h, &w);
    assert_int_equal(c, 3);
    assert_int_equal(h, size);
    assert_int_equal(w, size);
    check_constant(ds, IM_RED, (int[]){200, 30, 40}, 0);
    check_constant(ds, IM_BLUE, (int[]){20, 40, 220}, 3); /* JPEG */
    check_constant(ds, IM_GREY, (int[]){77, 77, 77}, 0);
    /* the gradient stays monotone left to right (R up, G down, B flat), in every row */
    const uint8_t *g = ebmc_data_u8(ds) + (size_t)IM_GRAD * 3 * size * size;
    for (int y = 0; y < size; y++) {
        for (int x = 1; x < size; x++) {
            assert_true(g[y * size + x] >= g[y * size + x - 1]);
            assert_true(g[size * size + y * size + x] <= g[size * size + y * size + x - 1]);
            assert_int_equal(g[2 * size * size + y * size + x], 128);
        }
        assert_true(g[y * size + size - 1] - g[y * size] > 100);
    }
}

/* a ustar archive of files (name within the tar, path on disk); `prefix_split`: store names with
 * a '/' in the ustar prefix field; adds a directory entry and a pax header naming one member */
static void tar_header(FILE *f, const char *name, const char *prefix, uint64_t size, char type) {
    uint8_t h[512] = {0};
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    if (prefix) snprintf((char *)h + 345, 155, "%s", prefix);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    assert_int_equal(fwrite(h, 1, 512, f), 512);
}

static void tar_data(FILE *f, const void *p, size_t n) {
    static const uint8_t zero[512];
    assert_int_equal(fwrite(p, 1, n, f), n);
    if (n % 512) assert_int_equal(fwrite(zero, 1, 512 - n % 512, f), 512 - n % 512);
}

static void make_tar(const char *tar, const char *srcdir, const char *corrupt_member) {
    FILE *f = fopen(tar, "wb");
    assert_non_null(f);
    const char *rel[4] = {"a/grad.png", "a/red.png", "b/blue.jpg", "grey.png"};
    tar_header(f, "a/", NULL, 0, '5');
    for (int k = 0; k < 4; k++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", srcdir, rel[k]);
        size_t n;
        unsigned char *d = read_file(p, &n);
        if (k == 0) { /* name split into prefix "a" + "grad.png" */
            tar_header(f, "grad.png", "a", n, '0');
        } else if (k == 3) { /* the name comes from a pax extended header */
            const char *rec = "17 path=grey.png\n";
            tar_header(f, "PaxHeaders/grey", NULL, strlen(rec), 'x');
            tar_data(f, rec, strlen(rec));
            tar_header(f, "wrong-name-grey.png", NULL, n, '0');
        } else {
            tar_header(f, rel[k], NULL, n, '0');
        }
        tar_data(f, d, n);
        free(d);
    }
    tar_header(f, "./README.txt", NULL, 5, '0');
    tar_data(f, "hello", 5);
    if (corrupt_member) {
        tar_header(f, corrupt_member, NULL, 100, '0');
        uint8_t junk[100];
        for (int i = 0; i < 100; i++) junk[i] = (uint8_t)(i * 37 + 11);
        tar_data(f, junk, 100);
    }
    static const uint8_t zero[1024];
    assert_int_equal(fwrite(zero, 1, 1024, f), 1024);
    assert_int_equal(fclose(f), 0);
}

static void test_images_folder_tar(void **state) {
    const char *src = tp("img/src");
    make_sources(src);
    ebmc_dataset_t *ds = NULL, *dt = NULL;
    EXPECT_OK(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR));
    assert_string_equal(ebmc_data_name(ds), "images");
    check_sources(ds, 8);
    /* the same from a tar */
    const char *tar = tp("img/src.tar");
    make_tar(tar, src, NULL);
    EXPECT_OK(ebmc_data_images(tar, 8, NULL, NULL, false, &dt, ERR, sizeof ERR));
    check_sources(dt, 8);
    assert_memory_equal(ebmc_data_u8(ds), ebmc_data_u8(dt), 4 * 3 * 64);
    ebmc_data_free(ds);
    ebmc_data_free(dt);

    /* a fractional box: constant images stay constant; the gradient follows the box */
    const float box[4] = {1.5f, 2.5f, 13.5f, 14.5f};
    EXPECT_OK(ebmc_data_images(src, 8, box, NULL, false, &ds, ERR, sizeof ERR));
    check_sources(ds, 8);
    const uint8_t *g = ebmc_data_u8(ds);
    for (int x = 2; x < 6; x++) { /* away from the clamped image edge */
        /* output pixel x samples source x-coordinate 1.5 + (x + 0.5) * 12/8; R(u) = 10 (u - 0.5) */
        double want = 10.0 * (1.5 + (x + 0.5) * 1.5 - 0.5);
        for (int y = 0; y < 8; y++)
            if (fabs(g[y * 8 + x] - want) > 2.0)
                fail_msg("gradient with box, column %d: %d, expected %.1f", x, g[y * 8 + x], want);
    }
    ebmc_data_free(ds);
    /* upsampling works too */
    EXPECT_OK(ebmc_data_images(tar, 40, NULL, NULL, false, &ds, ERR, sizeof ERR));
    check_sources(ds, 40);
    ebmc_data_free(ds);

    /* the CelebA preparation at half resolution: box (9.5, 19.5, 79.5, 89.5) of an 89x109 image
     * to 64x64. Pixels 10..78 x 20..88 are one colour, the rest another: the output's interior
     * is the first colour exactly, its border mixes in the half pixels the box cuts */
    const char *cel = tp("img/celeba");
    mkdirs(cel);
    static uint8_t face[109 * 89 * 3];
    for (int y = 0; y < 109; y++)
        for (int x = 0; x < 89; x++) {
            bool in = x >= 10 && x < 79 && y >= 20 && y < 89;
            uint8_t *q = face + 3 * (y * 89 + x);
            q[0] = in ? 180 : 10, q[1] = in ? 120 : 250, q[2] = in ? 60 : 10;
        }
    char p[1024];
    snprintf(p, sizeof p, "%s/000001.png", cel);
    assert_true(stbi_write_png(p, 89, 109, 3, face, 89 * 3));
    const float cbox[4] = {9.5f, 19.5f, 79.5f, 89.5f};
    EXPECT_OK(ebmc_data_images(cel, 64, cbox, NULL, false, &ds, ERR, sizeof ERR));
    const uint8_t *u = ebmc_data_u8(ds);
    for (int y = 2; y < 62; y++)
        for (int x = 2; x < 62; x++) {
            assert_int_equal(u[y * 64 + x], 180);
            assert_int_equal(u[4096 + y * 64 + x], 120);
            assert_int_equal(u[8192 + y * 64 + x], 60);
        }
    assert_true(u[0] < 180 && u[0] > 10); /* the corner mixes both */
    ebmc_data_free(ds);
}

static void stat_of(const char *p, struct stat *sb) {
    if (stat(p, sb) != 0) fail_msg("%s: %s", p, strerror(errno));
}

static bool same_file_state(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void test_images_cache(void **state) {
    const char *src = tp("cache/src"), *cache = tp("cache/c.bin");
    make_sources(src);
    ebmc_dataset_t *ref = NULL, *ds = NULL;
    EXPECT_OK(ebmc_data_images(src, 8, NULL, NULL, false, &ref, ERR, sizeof ERR));
    /* made */
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, false, &ds, ERR, sizeof ERR));
    assert_memory_equal(ebmc_data_u8(ds), ebmc_data_u8(ref), 4 * 3 * 64);
    ebmc_data_free(ds);
    struct stat s1, s2;
    stat_of(cache, &s1);
    assert_int_equal(s1.st_size, 40 + 4 * 3 * 64);
    size_t n;
    unsigned char *raw = read_file(cache, &n);
    assert_memory_equal(raw, "EBMCIMGC", 8);
    assert_int_equal(raw[8], EBMC_IMAGE_CACHE_VERSION);
    assert_int_equal(raw[12], 4);
    assert_int_equal(raw[16], 3);
    assert_int_equal(raw[20], 8);
    assert_memory_equal(raw + 40, ebmc_data_u8(ref), 4 * 3 * 64);
    /* reused: the data come from the cache (poisoned here to prove it), the file untouched */
    raw[40] ^= 0xff;
    FILE *f = fopen(cache, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputc(raw[40], f);
    fclose(f);
    stat_of(cache, &s1);
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, false, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_u8(ds)[0], raw[40]);
    ebmc_data_free(ds);
    stat_of(cache, &s2);
    assert_true(same_file_state(&s1, &s2));
    free(raw);
    /* invalidated by a new size: rebuilt */
    EXPECT_OK(ebmc_data_images(src, 6, NULL, cache, false, &ds, ERR, sizeof ERR));
    check_sources(ds, 6);
    ebmc_data_free(ds);
    stat_of(cache, &s2);
    assert_false(same_file_state(&s1, &s2));
    assert_int_equal(s2.st_size, 40 + 4 * 3 * 36);
    /* ... by another box, and by another source list */
    stat_of(cache, &s1);
    const float box[4] = {0, 0, 16, 16};
    EXPECT_OK(ebmc_data_images(src, 6, box, cache, false, &ds, ERR, sizeof ERR));
    ebmc_data_free(ds);
    stat_of(cache, &s2);
    assert_false(same_file_state(&s1, &s2));
    char p[1024];
    snprintf(p, sizeof p, "%s/b/blue2.png", src);
    uint8_t px[16 * 16 * 3];
    memset(px, 99, sizeof px);
    assert_true(stbi_write_png(p, 16, 16, 3, px, 48));
    EXPECT_OK(ebmc_data_images(src, 6, box, cache, false, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_count(ds), 5);
    ebmc_data_free(ds);
    remove(p);
    /* a damaged cache is rebuilt, not an error */
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, false, &ds, ERR, sizeof ERR));
    ebmc_data_free(ds);
    assert_int_equal(truncate(cache, 100), 0);
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, false, &ds, ERR, sizeof ERR));
    assert_memory_equal(ebmc_data_u8(ds), ebmc_data_u8(ref), 4 * 3 * 64);
    ebmc_data_free(ds);
    stat_of(cache, &s2);
    assert_int_equal(s2.st_size, 40 + 4 * 3 * 64);
    /* a cache that cannot be written: an error naming it */
    const char *badc = tp("cache/no/such/dir/c.bin");
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, badc, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                badc, NULL);
    ebmc_data_free(ref);
}

static void test_images_errors(void **state) {
    const char *src = tp("bad/src");
    make_sources(src);
    ebmc_dataset_t *ds = NULL;
    /* a corrupt file: an error naming it; with skip_bad, left out and counted */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/b/broken.png", src);
    write_bytes(bad, "\x89PNG\r\n\x1a\n this is not a PNG", 27);
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                bad, "decode");
    EXPECT_OK(ebmc_data_images(src, 8, NULL, NULL, true, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_count(ds), 4);
    assert_int_equal(ebmc_data_images_skipped(ds), 1);
    check_sources(ds, 8);
    ebmc_data_free(ds);
    /* the skip count survives the cache */
    const char *cache = tp("bad/c.bin");
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, true, &ds, ERR, sizeof ERR));
    ebmc_data_free(ds);
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, true, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_images_skipped(ds), 1);
    assert_int_equal(ebmc_data_count(ds), 4);
    ebmc_data_free(ds);
    /* ... and a cache made with skip_bad is not reused without it */
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, cache, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                bad, "decode");
    /* an empty file, and a dangling link */
    write_bytes(bad, "", 0);
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                bad, "empty");
    remove(bad);
    char link[1024];
    snprintf(link, sizeof link, "%s/gone.png", src);
    assert_int_equal(symlink("/nonexistent/ebmc/x.png", link), 0);
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                link, "cannot open");
    remove(link);
    /* a corrupt member of a tar names the archive and the member */
    const char *tar = tp("bad/x.tar");
    make_tar(tar, src, "zz/junk.jpg");
    char want[1200];
    snprintf(want, sizeof want, "%s:zz/junk.jpg", tar);
    EXPECT_FAIL(ebmc_data_images(tar, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                want, "decode");
    EXPECT_OK(ebmc_data_images(tar, 8, NULL, NULL, true, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_count(ds), 4);
    assert_int_equal(ebmc_data_images_skipped(ds), 1);
    ebmc_data_free(ds);
    /* a truncated tar; something that is not a tar; a gzip'd tar */
    make_tar(tar, src, NULL);
    size_t n;
    unsigned char *t = read_file(tar, &n);
    write_bytes(tar, t, 512 + 100);
    EXPECT_FAIL(ebmc_data_images(tar, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                tar, "truncated");
    memset(t, 'x', 2048);
    write_bytes(tar, t, 2048);
    EXPECT_FAIL(ebmc_data_images(tar, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                tar, "not a tar");
    free(t);
    const char *tgz = tp("bad/x.tar.gz");
    write_gz(tgz, "whatever, it is gzip", 20);
    EXPECT_FAIL(ebmc_data_images(tgz, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                tgz, "gzip");
    /* a box that does not fit an image: names the image */
    const float big[4] = {0, 0, 20, 20};
    char small[1024];
    snprintf(small, sizeof small, "%s/a/red.png", src);
    EXPECT_FAIL(ebmc_data_images(src, 8, big, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                small, "does not fit");
    /* bad arguments, no images, no such path */
    const float inv[4] = {5, 0, 5, 10};
    EXPECT_FAIL(ebmc_data_images(src, 8, inv, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_INVALID,
                src, "box");
    EXPECT_FAIL(ebmc_data_images(src, 0, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_INVALID,
                src, "size");
    const char *empty = tp("bad/empty");
    mkdirs(empty);
    EXPECT_FAIL(ebmc_data_images(empty, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                empty, "no images");
    const char *none = tp("bad/none");
    EXPECT_FAIL(ebmc_data_images(none, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                none, NULL);
}

/* ================================================================ shapes, toys */

static void test_shapes(void **state) {
    ebmc_dataset_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    const int n = 64, s = 32;
    const size_t per = 3 * s * s;
    EXPECT_OK(ebmc_data_shapes(n, s, 1, &a, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes(n, s, 1, &b, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes(n, s, 2, &c, ERR, sizeof ERR));
    EXPECT_OK(ebmc_data_shapes(8, s, 1, &d, ERR, sizeof ERR)); /* image i depends on (seed, i) only */
    assert_string_equal(ebmc_data_name(a), "shapes");
    int ch, h, w;
    ebmc_data_shape(a, &ch, &h, &w);
    assert_int_equal(ch, 3);
    assert_int_equal(h, s);
    assert_int_equal(w, s);
    const uint8_t *ua = ebmc_data_u8(a), *uc = ebmc_data_u8(c);
    assert_memory_equal(ua, ebmc_data_u8(b), n * per);
    assert_memory_equal(ua, ebmc_data_u8(d), 8 * per);
    assert_memory_not_equal(ua, uc, per);
    int same_as_c = 0, lo = 255, hi = 0, distinct = 0;
    for (int i = 0; i < n; i++) {
        same_as_c += !memcmp(ua + i * per, uc + i * per, per);
        if (i && memcmp(ua + i * per, ua, per)) distinct++;
        /* every image shows something: a range of at least 100 levels in some channel */
        int ilo = 255, ihi = 0;
        for (size_t k = 0; k < per; k++) {
            int v = ua[i * per + k];
            ilo = v < ilo ? v : ilo;
            ihi = v > ihi ? v : ihi;
        }
        assert_true(ihi - ilo >= 100);
        lo = ilo < lo ? ilo : lo;
        hi = ihi > hi ? ihi : hi;
    }
    printf("  shapes: value range %d..%d, %d of %d images differ from image 0\n", lo, hi, distinct,
           n - 1);
    assert_int_equal(same_as_c, 0);
    assert_int_equal(distinct, n - 1);
    assert_true(lo <= 25 && hi >= 240);
    ebmc_data_free(a);
    ebmc_data_free(b);
    ebmc_data_free(c);
    ebmc_data_free(d);
    ebmc_dataset_t *x = NULL;
    EXPECT_FAIL(ebmc_data_shapes(0, 32, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", NULL);
    EXPECT_FAIL(ebmc_data_shapes(4, 4, 1, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes", NULL);
}

static void check_modes(const char *kind, int want_m, int n) {
    ebmc_dataset_t *ds = NULL;
    EXPECT_OK(ebmc_data_toy2d(kind, n, 3, &ds, ERR, sizeof ERR));
    assert_int_equal(ebmc_data_kind_of(ds), EBMC_DATA_F32_POINTS);
    assert_null(ebmc_data_u8(ds));
    int c, h, w;
    ebmc_data_shape(ds, &c, &h, &w);
    assert_int_equal(c, 2);
    assert_int_equal(h, 1);
    assert_int_equal(w, 1);
    const float *cen, *p = ebmc_data_f32(ds);
    float sd;
    int m = ebmc_toy2d_modes(ds, &cen, &sd);
    assert_int_equal(m, want_m);
    assert_true(fabsf(sd - 0.05f) < 1e-6f);
    const int32_t *comp = ebmc_toy2d_components(ds);
    assert_non_null(comp);
    int count[32] = {0};
    for (int i = 0; i < n; i++) {
        int best = 0;
        float bd = 1e30f;
        for (int k = 0; k < m; k++) {
            float dx = p[2 * i] - cen[2 * k], dy = p[2 * i + 1] - cen[2 * k + 1];
            float d2 = dx * dx + dy * dy;
            if (d2 < bd) bd = d2, best = k;
        }
        assert_int_equal(best, comp[i]);
        assert_true(sqrtf(bd) < 6 * sd);
        count[best]++;
    }
    const double pk = 1.0 / m, se = sqrt(pk * (1 - pk) / n);
    double worst = 0;
    for (int k = 0; k < m; k++) worst = fmax(worst, fabs((double)count[k] / n - pk) / se);
    printf("  %s: %d modes, worst share off by %.2f SE\n", kind, m, worst);
    assert_true(worst < 5.0);
    ebmc_data_free(ds);
}

static void test_toy2d(void **state) {
    check_modes("gmm8", 8, 20000);
    check_modes("gmm25", 25, 20000);
    /* gmm8 centres: radius 2 */
    ebmc_dataset_t *ds = NULL, *d2 = NULL;
    EXPECT_OK(ebmc_data_toy2d("gmm8", 10, 1, &ds, ERR, sizeof ERR));
    const float *cen;
    ebmc_toy2d_modes(ds, &cen, NULL);
    for (int k = 0; k < 8; k++) assert_true(fabsf(hypotf(cen[2 * k], cen[2 * k + 1]) - 2.0f) < 1e-5f);
    assert_string_equal(ebmc_data_name(ds), "toy2d-gmm8");
    ebmc_data_free(ds);
    /* rings and spiral: deterministic, in range, components present, no modes */
    const char *kinds[2] = {"rings", "spiral"};
    for (int k = 0; k < 2; k++) {
        EXPECT_OK(ebmc_data_toy2d(kinds[k], 5000, 9, &ds, ERR, sizeof ERR));
        EXPECT_OK(ebmc_data_toy2d(kinds[k], 5000, 9, &d2, ERR, sizeof ERR));
        assert_memory_equal(ebmc_data_f32(ds), ebmc_data_f32(d2), 5000 * 2 * sizeof(float));
        assert_int_equal(ebmc_toy2d_modes(ds, NULL, NULL), 0);
        const float *p = ebmc_data_f32(ds);
        const int32_t *comp = ebmc_toy2d_components(ds);
        int per[4] = {0};
        for (int i = 0; i < 5000; i++) {
            float r = hypotf(p[2 * i], p[2 * i + 1]);
            assert_true(r < 2.5f);
            per[comp[i]]++;
            if (k == 0) assert_true(fabsf(r - 0.5f * (comp[i] + 1)) < 0.3f);
        }
        if (k == 0) assert_true(per[0] < per[1] && per[1] < per[2] && per[2] < per[3]);
        else assert_true(abs(per[0] - per[1]) < 400);
        ebmc_data_free(ds);
        ebmc_data_free(d2);
    }
    EXPECT_FAIL(ebmc_data_toy2d("moons", 10, 1, &ds, ERR, sizeof ERR), ds, EBMC_E_INVALID, "moons", NULL);
}

/* ================================================================ loader */

static ebmc_loader_t *make_loader(const ebmc_dataset_t *ds, int batch, uint64_t seed, bool shuffle,
                                  bool hflip, bool drop_last) {
    ebmc_loader_t *l = NULL;
    ebmc_loader_opts o = {shuffle, hflip, drop_last};
    EXPECT_OK(ebmc_loader_create(ds, batch, seed, o, &l, ERR, sizeof ERR));
    return l;
}

/* index of point (x, y) in ds */
static int point_index(const ebmc_dataset_t *ds, const float *q) {
    const float *p = ebmc_data_f32(ds);
    for (int i = 0; i < ebmc_data_count(ds); i++)
        if (p[2 * i] == q[0] && p[2 * i + 1] == q[1]) return i;
    fail_msg("point (%g, %g) is not in the data set", q[0], q[1]);
    return -1;
}

static void test_loader_epochs(void **state) {
    ebmc_dataset_t *ds = NULL;
    EXPECT_OK(ebmc_data_toy2d("gmm25", 103, 5, &ds, ERR, sizeof ERR));
    float out[10 * 2];
    for (int drop = 0; drop < 2; drop++) {
        ebmc_loader_t *l = make_loader(ds, 10, 42, true, false, drop);
        int64_t nb = ebmc_loader_batches_per_epoch(l);
        assert_int_equal(nb, drop ? 10 : 11);
        int order[2][103], seen[103];
        for (int e = 0; e < 2; e++) {
            memset(seen, 0, sizeof seen);
            int k = 0;
            for (int64_t b = 0; b < nb; b++) {
                int n;
                int64_t ep;
                EXPECT_OK(ebmc_loader_next(l, out, &n, &ep));
                assert_int_equal(ep, e);
                assert_int_equal(n, (!drop && b == nb - 1) ? 3 : 10);
                for (int i = 0; i < n; i++) {
                    int idx = point_index(ds, out + 2 * i);
                    seen[idx]++;
                    order[e][k++] = idx;
                }
                for (int i = n; i < 10; i++) assert_true(out[2 * i] == 0 && out[2 * i + 1] == 0);
            }
            int once = 0, never = 0;
            for (int i = 0; i < 103; i++) once += seen[i] == 1, never += seen[i] == 0;
            assert_int_equal(once, drop ? 100 : 103);
            assert_int_equal(never, drop ? 3 : 0);
        }
        /* epochs differ; the state moved on to the next epoch's start */
        assert_memory_not_equal(order[0], order[1], 100 * sizeof(int));
        int64_t e, p;
        ebmc_loader_get_state(l, &e, &p);
        assert_int_equal(e, 2);
        assert_int_equal(p, 0);
        ebmc_loader_free(l);
    }
    /* shuffle off: the identity order */
    ebmc_loader_t *l = make_loader(ds, 10, 42, false, false, true);
    int n;
    EXPECT_OK(ebmc_loader_next(l, out, &n, NULL));
    assert_memory_equal(out, ebmc_data_f32(ds), 20 * sizeof(float));
    ebmc_loader_free(l);
    ebmc_data_free(ds);
}

static void test_loader_determinism_resume(void **state) {
    ebmc_dataset_t *ds = NULL;
    const char *d = tp("loader/cifar");
    write_cifar(d, true, 10); /* 50 images */
    EXPECT_OK(ebmc_data_cifar10_ex(d, true, 10, &ds, ERR, sizeof ERR));
    const size_t item = 3 * 32 * 32;
    const int B = 8, T = 20;
    float *ref = malloc(sizeof(float) * item * B * T), *out = malloc(sizeof(float) * item * B);
    assert_non_null(ref);
    assert_non_null(out);
    int64_t st_e[T], st_p[T];
    ebmc_loader_t *a = make_loader(ds, B, 7, true, true, true), *b = make_loader(ds, B, 7, true, true, true);
    ebmc_loader_t *c = make_loader(ds, B, 8, true, true, true);
    assert_int_equal(ebmc_loader_batches_per_epoch(a), 6);
    bool differs = false;
    for (int t = 0; t < T; t++) {
        ebmc_loader_get_state(a, &st_e[t], &st_p[t]);
        assert_int_equal(st_e[t], t / 6);
        assert_int_equal(st_p[t], (t % 6) * B);
        int n;
        int64_t e;
        EXPECT_OK(ebmc_loader_next(a, ref + (size_t)t * item * B, &n, &e));
        assert_int_equal(e, t / 6);
        EXPECT_OK(ebmc_loader_next(b, out, &n, &e));
        assert_memory_equal(out, ref + (size_t)t * item * B, sizeof(float) * item * B);
        EXPECT_OK(ebmc_loader_next(c, out, &n, &e));
        differs |= memcmp(out, ref + (size_t)t * item * B, sizeof(float) * item * B) != 0;
    }
    assert_true(differs);
    /* resume anywhere: a fresh loader set to a saved state continues exactly */
    const int starts[4] = {0, 3, 6, 13};
    for (int s = 0; s < 4; s++) {
        ebmc_loader_t *r = make_loader(ds, B, 7, true, true, true);
        EXPECT_OK(ebmc_loader_set_state(r, st_e[starts[s]], st_p[starts[s]]));
        for (int t = starts[s]; t < T; t++) {
            int n;
            EXPECT_OK(ebmc_loader_next(r, out, &n, NULL));
            if (memcmp(out, ref + (size_t)t * item * B, sizeof(float) * item * B))
                fail_msg("resumed at batch %d: batch %d differs", starts[s], t);
        }
        ebmc_loader_free(r);
    }
    /* the end of an epoch is the next one's start; bad states are refused */
    EXPECT_OK(ebmc_loader_set_state(b, 1, 48));
    int64_t e, p;
    ebmc_loader_get_state(b, &e, &p);
    assert_int_equal(e, 2);
    assert_int_equal(p, 0);
    assert_int_equal(ebmc_loader_set_state(b, 1, 4), EBMC_E_INVALID);
    assert_non_null(strstr(ebmc_loader_error(b), "cifar10-train"));
    assert_int_equal(ebmc_loader_set_state(b, -1, 0), EBMC_E_INVALID);
    assert_int_equal(ebmc_loader_set_state(b, 0, 56), EBMC_E_INVALID);
    ebmc_loader_get_state(b, &e, &p);
    assert_int_equal(e, 2);
    assert_int_equal(p, 0);
    ebmc_loader_free(a);
    ebmc_loader_free(b);
    ebmc_loader_free(c);
    free(ref);
    free(out);
    ebmc_data_free(ds);
}

static void test_loader_hflip(void **state) {
    ebmc_dataset_t *ds = NULL;
    const char *d = tp("loader/flip");
    write_cifar(d, true, 40); /* 200 images, none symmetric */
    EXPECT_OK(ebmc_data_cifar10_ex(d, true, 40, &ds, ERR, sizeof ERR));
    const size_t item = 3 * 32 * 32;
    const int B = 20;
    float *out = malloc(sizeof(float) * item * B);
    assert_non_null(out);
    ebmc_loader_t *l = make_loader(ds, B, 11, false, true, true);
    int flipped[2] = {0, 0};
    for (int e = 0; e < 2; e++)
        for (int b = 0; b < 10; b++) {
            int n;
            EXPECT_OK(ebmc_loader_next(l, out, &n, NULL));
            for (int i = 0; i < B; i++) {
                const uint8_t *src = ebmc_data_u8(ds) + (size_t)(b * B + i) * item;
                const float *o = out + (size_t)i * item;
                bool same = true, mirror = true;
                for (size_t row = 0; row < 96; row++)
                    for (int x = 0; x < 32; x++) {
                        same &= o[row * 32 + x] == (float)src[row * 32 + x] / 127.5f - 1.0f;
                        mirror &= o[row * 32 + x] == (float)src[row * 32 + 31 - x] / 127.5f - 1.0f;
                    }
                assert_true(same != mirror);
                flipped[e] += mirror;
            }
        }
    printf("  hflip: %d and %d of 200 flipped in epochs 0 and 1\n", flipped[0], flipped[1]);
    for (int e = 0; e < 2; e++) assert_true(flipped[e] > 70 && flipped[e] < 130);
    /* the values: byte 0 -> -1, 255 -> 1 */
    ebmc_loader_t *m = make_loader(ds, B, 11, false, false, true);
    int n;
    EXPECT_OK(ebmc_loader_next(m, out, &n, NULL));
    for (size_t k = 0; k < item * B; k++) {
        assert_true(out[k] >= -1.0f && out[k] <= 1.0f);
        assert_true(out[k] == (float)ebmc_data_u8(ds)[k] / 127.5f - 1.0f);
    }
    ebmc_loader_free(m);
    ebmc_loader_free(l);
    free(out);
    ebmc_data_free(ds);
}

static void test_loader_drop_last_and_errors(void **state) {
    ebmc_dataset_t *ds = NULL, *pts = NULL;
    EXPECT_OK(ebmc_data_shapes(25, 8, 3, &ds, ERR, sizeof ERR));
    float out[10 * 3 * 64];
    ebmc_loader_t *l = make_loader(ds, 10, 1, true, false, true);
    assert_int_equal(ebmc_loader_batches_per_epoch(l), 2);
    for (int t = 0; t < 5; t++) {
        int n;
        int64_t e;
        EXPECT_OK(ebmc_loader_next(l, out, &n, &e));
        assert_int_equal(n, 10);
        assert_int_equal(e, t / 2);
    }
    ebmc_loader_free(l);
    l = make_loader(ds, 10, 1, true, false, false);
    assert_int_equal(ebmc_loader_batches_per_epoch(l), 3);
    for (int t = 0; t < 6; t++) {
        int n;
        int64_t e;
        memset(out, 0x7f, sizeof out);
        EXPECT_OK(ebmc_loader_next(l, out, &n, &e));
        assert_int_equal(n, t % 3 == 2 ? 5 : 10);
        assert_int_equal(e, t / 3);
        if (n == 5)
            for (size_t k = 5 * 3 * 64; k < 10 * 3 * 64; k++) assert_true(out[k] == 0.0f);
    }
    ebmc_loader_free(l);
    /* errors name the data set */
    ebmc_loader_t *x = NULL;
    ebmc_loader_opts o = {true, false, true};
    EXPECT_FAIL(ebmc_loader_create(ds, 26, 1, o, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes",
                "drop_last");
    EXPECT_FAIL(ebmc_loader_create(ds, 0, 1, o, &x, ERR, sizeof ERR), x, EBMC_E_INVALID, "shapes",
                "batch");
    EXPECT_OK(ebmc_data_toy2d("gmm8", 30, 1, &pts, ERR, sizeof ERR));
    o.hflip = true;
    EXPECT_FAIL(ebmc_loader_create(pts, 10, 1, o, &x, ERR, sizeof ERR), x, EBMC_E_INVALID,
                "toy2d-gmm8", "hflip");
    ebmc_data_free(pts);
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
        cmocka_unit_test(test_images_folder_tar),
        cmocka_unit_test(test_images_cache),
        cmocka_unit_test(test_images_errors),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_toy2d),
        cmocka_unit_test(test_loader_epochs),
        cmocka_unit_test(test_loader_determinism_resume),
        cmocka_unit_test(test_loader_hflip),
        cmocka_unit_test(test_loader_drop_last_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
