/* defines: the scratch folder of a fuzz target (fz_dir: one mkdtemp folder per process, removed
 * at exit) and fz_write (the input as a file in it), shared by the libFuzzer targets
 * tests/fuzz/fuzz_*.c. The loaders read paths, so every input goes through a file. Header-only:
 * each target is one translation unit plus the library sources (CMakeLists.txt, EBMC_FUZZ). */
#ifndef EBMC_FUZZ_UTIL_H
#define EBMC_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fz_dir_[256];

static int fz_rm_(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void fz_cleanup_(void) { nftw(fz_dir_, fz_rm_, 8, FTW_DEPTH | FTW_PHYS); }

/* The scratch folder (made on first use). */
static const char *fz_dir(void) {
    if (!fz_dir_[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fz_dir_, sizeof fz_dir_, "%s/ebmc_fuzz.XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(fz_dir_)) {
            perror("ebmc fuzz: mkdtemp");
            abort();
        }
        atexit(fz_cleanup_);
    }
    return fz_dir_;
}

/* fz_dir()/name, with the n bytes of p (n may be 0); returns the path (static buffer per call
 * site is the caller's: out, outlen). */
static const char *fz_write(const char *name, const uint8_t *p, size_t n, char *out,
                            size_t outlen) {
    snprintf(out, outlen, "%s/%s", fz_dir(), name);
    FILE *f = fopen(out, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(out);
        abort();
    }
    return out;
}

/* removes fz_dir()/name if it exists */
static void fz_remove(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fz_dir(), name);
    unlink(p);
}

/* with EBMC_FUZZ_VERBOSE set, each input's outcome on stderr (to check a seed: run the target
 * on the file alone) */
static void fz_report(const char *what, int st, const char *err) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("EBMC_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s\n", what, st == 0 ? "OK" : err);
}

#endif
