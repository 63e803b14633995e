/* Image folders and tars: PNGs and a JPEG of known content made here, crop + resize, the cache
 * (made, reused untouched, rebuilt), corrupt files (an error naming them, or skipped and
 * counted), links, truncated and gzip'd tars. Every expected error is checked to name the file.
 * CIFAR-10/MNIST are tested in test_data_files.c, the synthetic sets and the loader in
 * test_data_synth.c; the shared fixtures are in testutil_data.c. */
#define _GNU_SOURCE /* symlink, link, truncate, utimensat */
#include "testutil_data.h"

#include <stb/stb_image_write.h>

#include <errno.h>
#include <fcntl.h> /* AT_FDCWD */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

    /* links: a folder linking to itself and one linking to its parent (loops), a second link
     * to a folder, a link and a hard link to a file: each real file is listed once, by its
     * first name in sorted order (the walk does not depend on readdir's order) */
    char lk[1024], to[1024];
    snprintf(lk, sizeof lk, "%s/self", src);
    assert_int_equal(symlink(".", lk), 0);
    EXPECT_OK(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR));
    check_sources(ds, 8); /* was 164 images: self/self/... until stat's ELOOP, 40 links deep */
    ebmc_data_free(ds);
    snprintf(lk, sizeof lk, "%s/a/up", src);
    assert_int_equal(symlink("..", lk), 0);
    snprintf(lk, sizeof lk, "%s/c", src);
    assert_int_equal(symlink("a", lk), 0);
    snprintf(lk, sizeof lk, "%s/b/red_again.png", src);
    assert_int_equal(symlink("../a/red.png", lk), 0);
    snprintf(lk, sizeof lk, "%s/zz_grey_hard.png", src);
    snprintf(to, sizeof to, "%s/grey.png", src);
    assert_int_equal(link(to, lk), 0);
    EXPECT_OK(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR));
    check_sources(ds, 8);
    ebmc_data_free(ds);
    const char *lnk[] = {"self", "a/up", "c", "b/red_again.png", "zz_grey_hard.png"};
    for (int i = 0; i < 5; i++) {
        snprintf(lk, sizeof lk, "%s/%s", src, lnk[i]);
        assert_int_equal(remove(lk), 0);
    }

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
    /* ... and by an image replaced with another of the same byte size, written in place (same
     * inode) with its old modification time put back: the key covers the files' bytes */
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, false, &ds, ERR, sizeof ERR));
    ebmc_data_free(ds);
    snprintf(p, sizeof p, "%s/a/red.png", src);
    struct stat sr;
    stat_of(p, &sr);
    size_t rn, gn;
    unsigned char *red = read_file(p, &rn);
    const char *green = tp("cache/green.png");
    uint8_t gpx[20 * 16 * 3];
    for (int i = 0; i < 20 * 16; i++) gpx[3 * i] = 30, gpx[3 * i + 1] = 200, gpx[3 * i + 2] = 40;
    assert_true(stbi_write_png(green, 20, 16, 3, gpx, 20 * 3));
    unsigned char *gb = read_file(green, &gn);
    assert_true(gn <= rn); /* padded after IEND (ignored by decoders) to the old size */
    unsigned char *same = calloc(rn, 1);
    assert_non_null(same);
    memcpy(same, gb, gn);
    f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(fwrite(same, 1, rn, f), rn);
    assert_int_equal(fclose(f), 0);
    const struct timespec times[2] = {sr.st_atim, sr.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
    stat_of(p, &s2);
    assert_int_equal(s2.st_size, sr.st_size);
    assert_true(s2.st_ino == sr.st_ino && s2.st_mtim.tv_nsec == sr.st_mtim.tv_nsec);
    EXPECT_OK(ebmc_data_images(src, 8, NULL, cache, false, &ds, ERR, sizeof ERR));
    const int green_rgb[3] = {30, 200, 40};
    check_constant(ds, IM_RED, green_rgb, 2);
    ebmc_data_free(ds);
    write_bytes(p, red, rn); /* back as it was */
    free(red);
    free(gb);
    free(same);
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
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, badc, false, &ds, ERR, sizeof ERR), ds, EBMC_E_WRITE,
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
    /* named .png but another format stb_image also reads: a 0x0 PGM decoded and aborted
     * stb_image_resize (fuzzing); a BMP is not what the name says either */
    write_bytes(bad, "P5 0 0 255\n", 11);
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                bad, "not a JPEG or PNG file");
    write_bytes(bad, "BM\0\0\0\0", 6);
    EXPECT_FAIL(ebmc_data_images(src, 8, NULL, NULL, false, &ds, ERR, sizeof ERR), ds, EBMC_E_IO,
                bad, "not a JPEG or PNG file");
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


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_images_folder_tar),
        cmocka_unit_test(test_images_cache),
        cmocka_unit_test(test_images_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
