/* Config module: schema-driven INI files and section.key=value overrides.
 *   - defaults, every value type and syntax (quotes, escapes, inline comments, BOM, CRLF,
 *     indentation, lines longer than inih's 200-byte buffer)
 *   - file then command line (the command line wins), atomic loads (a bad file changes nothing)
 *   - every error kind with its message: file, line, key, the did-you-mean suggestion
 *   - required keys
 *   - the resolved config: loads back to identical values, its JSON parses (cJSON), atomic write
 *     (missing directory, a write that fails half-way: nothing left behind)
 *   - programming errors (unknown key, wrong getter, bad schema) exit through ebmc_fail. */
#include "testutil.h"
#include "ebmc/config.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char DIRP[256]; /* a fresh mkdtemp directory per run */

static int setup(void **state) {
    (void)state;
    return tu_tmpdir_create(DIRP, sizeof DIRP, "test_config");
}

static int teardown(void **state) {
    (void)state;
    tu_tmpdir_remove(DIRP);
    return 0;
}

static const char *tpath(const char *name) { return tu_path(DIRP, "%s", name); }

static void write_text(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* The schema of these tests; [train] appears again after [sampler] (seed), to check grouping. */
static const ebmc_cfg_key SCHEMA[] = {
    {"data", "path", EBMC_CFG_STRING, NULL, "folder with the CIFAR-10 binary batches", 0, -1, NULL},
    {"data", "batch", EBMC_CFG_INT, "64", "images per batch", 1, 4096, NULL},
    {"train", "lr_e", EBMC_CFG_FLOAT, "1e-4", "learning rate of the energy net", 0, 1, NULL},
    {"train", "steps", EBMC_CFG_INT, "1000", "training iterations", 1, 1e9, NULL},
    {"train", "ema", EBMC_CFG_BOOL, "yes", "keep an EMA copy of E", 0, -1, NULL},
    {"sampler", "kind", EBMC_CFG_CHOICE, "langevin", "the MCMC sampler", 0, -1,
     "langevin|hmc|mala"},
    {"sampler", "step_size", EBMC_CFG_FLOAT, "10", "Langevin step size", 0, -1, NULL},
    {"train", "seed", EBMC_CFG_INT, "-1", "seed (-1: from the clock)", 0, -1, NULL},
    {"log", "tag", EBMC_CFG_STRING, "", "free text for the run", 0, -1, NULL},
    {"log", "out", EBMC_CFG_STRING, "runs/default", NULL, 0, -1, NULL},
};
#define NSCHEMA ((int)(sizeof SCHEMA / sizeof SCHEMA[0]))

static ebmc_config_t *make(void) { return ebmc_config_create(SCHEMA, NSCHEMA); }

/* writes `text` to DIR/name and loads it */
static ebmc_status load_text(ebmc_config_t *c, const char *name, const char *text, char *err,
                             size_t errlen) {
    const char *p = tpath(name);
    write_text(p, text, strlen(text));
    err[0] = '\0';
    return ebmc_config_load(c, p, err, errlen);
}

#define assert_contains(hay, needle)                                                            \
    do {                                                                                        \
        if (!strstr((hay), (needle))) {                                                         \
            print_error("'%s' does not contain '%s'\n", (hay), (needle));                       \
            fail();                                                                             \
        }                                                                                       \
    } while (0)

/* ------------------------------------------------------------------------------------------ */

static void test_defaults(void **state) {
    (void)state;
    ebmc_config_t *c = make();
    assert_int_equal(ebmc_config_int(c, "data", "batch"), 64);
    assert_true(ebmc_config_float(c, "train", "lr_e") == 1e-4);
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 1000);
    assert_true(ebmc_config_bool(c, "train", "ema"));
    assert_string_equal(ebmc_config_str(c, "sampler", "kind"), "langevin");
    assert_true(ebmc_config_float(c, "sampler", "step_size") == 10.0);
    assert_int_equal(ebmc_config_int(c, "train", "seed"), -1);
    assert_string_equal(ebmc_config_str(c, "log", "tag"), "");
    assert_string_equal(ebmc_config_str(c, "log", "out"), "runs/default");
    for (int i = 0; i < NSCHEMA; i++)
        assert_false(ebmc_config_is_set(c, SCHEMA[i].section, SCHEMA[i].key));
    char err[512];
    assert_int_equal(ebmc_config_check_required(c, err, sizeof err), EBMC_E_INVALID);
    assert_contains(err, "missing required key 'data.path'");
    assert_contains(err, "data.path=VALUE");
    ebmc_config_free(c);
}

static void test_values_of_each_type(void **state) {
    (void)state;
    ebmc_config_t *c = make();
    char err[512];
    const char *text = "# a comment\n"
                       "; another comment\n"
                       "\n"
                       "[data]\n"
                       "path = /data/cifar 10   # inline comment after whitespace\n"
                       "batch=+128 ; inline comment\n"
                       "[train]  # comment after a section\n"
                       "lr_e = 2.5e-3\n"
                       "steps = 0042\n"
                       "ema = OFF\n"
                       "seed = -7\n"
                       "[sampler]\n"
                       "kind = \"hmc\"\n"
                       "step_size = .5\n"
                       "[log]\n"
                       "tag = a#b;c\n"
                       "out =\n";
    assert_int_equal(load_text(c, "types.ini", text, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_config_str(c, "data", "path"), "/data/cifar 10");
    assert_int_equal(ebmc_config_int(c, "data", "batch"), 128);
    assert_true(ebmc_config_float(c, "train", "lr_e") == 2.5e-3);
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 42);
    assert_false(ebmc_config_bool(c, "train", "ema"));
    assert_int_equal(ebmc_config_int(c, "train", "seed"), -7);
    assert_string_equal(ebmc_config_str(c, "sampler", "kind"), "hmc");
    assert_true(ebmc_config_float(c, "sampler", "step_size") == 0.5);
    assert_string_equal(ebmc_config_str(c, "log", "tag"), "a#b;c"); /* no whitespace: text */
    assert_string_equal(ebmc_config_str(c, "log", "out"), "");
    for (int i = 0; i < NSCHEMA; i++)
        assert_true(ebmc_config_is_set(c, SCHEMA[i].section, SCHEMA[i].key));
    assert_int_equal(ebmc_config_check_required(c, err, sizeof err), EBMC_OK);

    /* every boolean spelling, any case */
    static const char *truthy[] = {"true", "TRUE", "yes", "Yes", "on", "ON", "1"};
    static const char *falsy[] = {"false", "False", "no", "NO", "off", "oFf", "0"};
    char arg[64];
    for (int i = 0; i < 7; i++) {
        snprintf(arg, sizeof arg, "train.ema=%s", truthy[i]);
        assert_int_equal(ebmc_config_set_arg(c, arg, err, sizeof err), EBMC_OK);
        assert_true(ebmc_config_bool(c, "train", "ema"));
        snprintf(arg, sizeof arg, "train.ema=%s", falsy[i]);
        assert_int_equal(ebmc_config_set_arg(c, arg, err, sizeof err), EBMC_OK);
        assert_false(ebmc_config_bool(c, "train", "ema"));
    }
    /* 64-bit integers at both ends (seed has no range) */
    assert_int_equal(ebmc_config_set_arg(c, "train.seed=-9223372036854775808", err, sizeof err),
                     EBMC_OK);
    assert_true(ebmc_config_int(c, "train", "seed") == INT64_MIN);
    assert_int_equal(ebmc_config_set_arg(c, "train.seed=9223372036854775807", err, sizeof err),
                     EBMC_OK);
    assert_true(ebmc_config_int(c, "train", "seed") == INT64_MAX);
    /* range ends are inclusive */
    assert_int_equal(ebmc_config_set_arg(c, "train.lr_e=1", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_set_arg(c, "train.lr_e=0", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_set_arg(c, "data.batch=4096", err, sizeof err), EBMC_OK);
    ebmc_config_free(c);
}

/* Syntax inih alone would get wrong: indentation (inih: a continuation of the previous value),
 * a BOM, CRLF line ends, a line longer than inih's 200-byte buffer (inih: split in two, every
 * later line number shifted). */
static void test_syntax_details(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    const char *text = "\xEF\xBB\xBF[train]\r\n"
                       "steps = 5\r\n"
                       "    ema = no\r\n"
                       "\t  [log]\r\n"
                       "  tag = indented\r\n";
    assert_int_equal(load_text(c, "indent.ini", text, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 5);
    assert_false(ebmc_config_bool(c, "train", "ema"));
    assert_string_equal(ebmc_config_str(c, "log", "tag"), "indented");
    ebmc_config_free(c);

    /* CR-only line ends (classic Mac OS) are line breaks too, not one long comment line; line
     * numbers count them, and "\r\n" is one break, not two */
    c = make();
    assert_int_equal(load_text(c, "cr.ini", "# made on a Mac\r[train]\rsteps = 6\r\r[log]\rtag = cr\r",
                               err, sizeof err),
                     EBMC_OK);
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 6);
    assert_string_equal(ebmc_config_str(c, "log", "tag"), "cr");
    ebmc_config_free(c);
    c = make();
    assert_int_equal(load_text(c, "cr2.ini", "# x\r[train]\r\nsteps = 6\n\rstepz = 1\r", err,
                               sizeof err),
                     EBMC_E_INVALID);
    assert_contains(err, "cr2.ini:5: unknown key 'stepz' in [train]");
    ebmc_config_free(c);

    /* a 1000-character value on line 2, then an error on line 4 */
    char longv[1001];
    memset(longv, 'x', 1000);
    longv[1000] = '\0';
    size_t cap = 2200;
    char *t = malloc(cap);
    assert_non_null(t);
    snprintf(t, cap, "[log]\ntag = %s\nout = \"%s\"\n", longv, longv);
    c = make();
    assert_int_equal(load_text(c, "long.ini", t, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_config_str(c, "log", "tag"), longv);
    assert_string_equal(ebmc_config_str(c, "log", "out"), longv);
    ebmc_config_free(c);
    snprintf(t, cap, "[log]\ntag = %s\n\n[train]\nstepz = 3\n", longv);
    c = make();
    assert_int_equal(load_text(c, "long2.ini", t, err, sizeof err), EBMC_E_INVALID);
    assert_contains(err, "long2.ini:5: unknown key 'stepz' in [train]");
    free(t);
    ebmc_config_free(c);

    /* empty and comment-only files are fine */
    c = make();
    assert_int_equal(load_text(c, "empty.ini", "", err, sizeof err), EBMC_OK);
    assert_int_equal(load_text(c, "comments.ini", "# x\n;y\n\n   \n", err, sizeof err), EBMC_OK);
    assert_false(ebmc_config_is_set(c, "train", "steps"));
    /* no newline at the end of the last line */
    assert_int_equal(load_text(c, "nonl.ini", "[train]\nsteps = 77", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 77);
    ebmc_config_free(c);
}

static void test_strings(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    const char *text = "[log]\n"
                       "tag = \"  a # b ; \\\"q\\\" back\\\\slash  \"   # a comment\n"
                       "out = runs/x y ;comment\n"
                       "[data]\n"
                       "path=\"\"\n";
    assert_int_equal(load_text(c, "strings.ini", text, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_config_str(c, "log", "tag"), "  a # b ; \"q\" back\\slash  ");
    assert_string_equal(ebmc_config_str(c, "log", "out"), "runs/x y");
    assert_string_equal(ebmc_config_str(c, "data", "path"), "");
    assert_true(ebmc_config_is_set(c, "data", "path"));
    /* the command line has no comments; quotes work the same */
    assert_int_equal(ebmc_config_set_arg(c, "log.tag=a #b ;c", err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_config_str(c, "log", "tag"), "a #b ;c");
    assert_int_equal(ebmc_config_set_arg(c, "log.tag=\" x = y \"", err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_config_str(c, "log", "tag"), " x = y ");
    assert_int_equal(ebmc_config_set_arg(c, "sampler.kind=\"mala\"", err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_config_str(c, "sampler", "kind"), "mala");
    ebmc_config_free(c);
}

static void test_file_then_cli(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    assert_int_equal(load_text(c, "base.ini", "[train]\nlr_e = 0.01\nsteps = 10\n", err,
                               sizeof err),
                     EBMC_OK);
    /* a second file over the first (its own duplicate check) */
    assert_int_equal(load_text(c, "over.ini", "[train]\nsteps = 20\n", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 20);
    assert_true(ebmc_config_float(c, "train", "lr_e") == 0.01);
    assert_int_equal(ebmc_config_set_arg(c, "train.lr_e=0.02", err, sizeof err), EBMC_OK);
    assert_true(ebmc_config_float(c, "train", "lr_e") == 0.02);
    assert_int_equal(ebmc_config_set_arg(c, " train.lr_e = 0.03 ", err, sizeof err), EBMC_OK);
    assert_true(ebmc_config_float(c, "train", "lr_e") == 0.03); /* the later one wins */
    assert_int_equal(ebmc_config_set_arg(c, "data.batch=32", err, sizeof err), EBMC_OK);
    assert_true(ebmc_config_is_set(c, "data", "batch"));
    assert_false(ebmc_config_is_set(c, "sampler", "kind"));
    assert_int_equal(ebmc_config_int(c, "data", "batch"), 32);
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 20);
    ebmc_config_free(c);
}

/* One error per row: the file, and what the single message must contain. */
typedef struct {
    const char *text;
    const char *want[3];
    const char *not_want;
} err_row;

static const err_row FILE_ERRORS[] = {
    /* unknown section / key, with and without a suggestion */
    {"[trian]\nlr_e = 1\n", {":1: unknown section [trian]; did you mean [train]?"}, NULL},
    {"[train]\n[Sampler]\n", {":2: unknown section [Sampler]; did you mean [sampler]?"}, NULL},
    {"[zzzzzzzz]\n", {":1: unknown section [zzzzzzzz]"}, "did you mean"},
    {"[train]\nlr_ee = 0.1\n", {":2: unknown key 'lr_ee' in [train]; did you mean 'train.lr_e'?"},
     NULL},
    {"\n[train]\nlre = 0.1\n", {":3: unknown key 'lre'", "did you mean 'train.lr_e'?"}, NULL},
    {"[train]\nbatch = 3\n", {":2: unknown key 'batch' in [train]; did you mean 'data.batch'?"},
     NULL},
    {"[sampler]\nstepsize = 3\n", {"did you mean 'sampler.step_size'?"}, NULL},
    {"[train]\nzzzzzzzz = 1\n", {":2: unknown key 'zzzzzzzz' in [train]"}, "did you mean"},
    {"[train]\nLR_E = 1\n", {"unknown key 'LR_E' in [train]; did you mean 'train.lr_e'?"},
     NULL}, /* case-sensitive keys; the suggestion ignores case */
    {"[train]\ntrain.lr_e = 1\n", {":2: 'train.lr_e': in a file, write 'lr_e = ...' under [train]"},
     NULL},
    {"sampler.kind = hmc\n", {":1: 'sampler.kind': in a file, write 'kind = ...' under [sampler]"},
     NULL},
    {"lr_e = 1\n", {":1: key 'lr_e' comes before any [section]; did you mean 'train.lr_e'?"},
     NULL},
    /* given twice, also across a repeated section */
    {"[train]\nsteps = 1\n\nsteps = 2\n", {":4: 'train.steps' is given twice (first on line 2)"},
     NULL},
    {"[train]\nema = 1\n[log]\ntag = x\n[train]\nema = 0\n",
     {":6: 'train.ema' is given twice (first on line 2)"}, NULL},
    /* values */
    {"[train]\nsteps = 1e-4x\n", {":2: train.steps: expected an integer, got '1e-4x'"}, NULL},
    {"[train]\nsteps = 12 34\n", {"expected an integer, got '12 34'"}, NULL},
    {"[train]\nsteps =\n", {"expected an integer, got ''"}, NULL},
    {"[train]\nsteps = 0x10\n", {"expected an integer, got '0x10'"}, NULL},
    {"[train]\nseed = 99999999999999999999\n",
     {":2: train.seed: integer 99999999999999999999 does not fit in 64 bits"}, NULL},
    {"[train]\nlr_e = 0.1abc\n", {":2: train.lr_e: expected a number, got '0.1abc'"}, NULL},
    {"[sampler]\nstep_size = nan\n", {"expected a finite number, got 'nan'"}, NULL},
    {"[sampler]\nstep_size = -Infinity\n", {"expected a finite number, got '-Infinity'"}, NULL},
    {"[sampler]\nstep_size = 1e999\n", {"number 1e999 is too large"}, NULL},
    {"[train]\nema = maybe\n", {":2: train.ema: expected a boolean", "got 'maybe'"}, NULL},
    {"[train]\nlr_e = 5\n", {":2: train.lr_e: 5 is out of range [0, 1]"}, NULL},
    {"[train]\nlr_e = -1e-9\n", {"-1e-9 is out of range [0, 1]"}, NULL},
    {"[data]\nbatch = 0\n", {":2: data.batch: 0 is out of range [1, 4096]"}, NULL},
    {"[sampler]\nkind = hmcc\n",
     {":2: sampler.kind: 'hmcc' is not one of langevin|hmc|mala; did you mean 'hmc'?"}, NULL},
    {"[sampler]\nkind = gibbs\n", {"'gibbs' is not one of langevin|hmc|mala"}, "did you mean"},
    {"[sampler]\nkind = HMC\n", {"'HMC' is not one of langevin|hmc|mala; did you mean 'hmc'?"},
     NULL},
    /* quotes */
    {"[log]\ntag = \"abc\n", {":2: log.tag: unterminated quoted value"}, NULL},
    {"[log]\ntag = \"a\\nb\"\n", {":2: log.tag: unknown escape '\\n'"}, NULL},
    {"[log]\ntag = \"a\" b\n", {":2: log.tag: unexpected text after the closing quote: 'b'"},
     NULL},
    /* lines that are none of the four kinds */
    {"[train]\njust words\n",
     {":2: expected '[section]', 'key = value', a comment or a blank line, got 'just words'"},
     NULL},
    {"[train]\nsteps: 5\n", {":2: expected '[section]'", "got 'steps: 5'"}, NULL},
    {"[train] extra\n", {":1: expected '[section]'", "got '[train] extra'"}, NULL},
    {"[train\nsteps = 1\n", {":1: expected '[section]'", "got '[train'"}, NULL},
    {"[train]\n= 5\n", {":2: expected '[section]'", "got '= 5'"}, NULL},
};

static void test_file_errors(void **state) {
    (void)state;
    char err[512];
    int nrows = (int)(sizeof FILE_ERRORS / sizeof FILE_ERRORS[0]);
    for (int r = 0; r < nrows; r++) {
        const err_row *row = &FILE_ERRORS[r];
        char name[32];
        snprintf(name, sizeof name, "bad%02d.ini", r);
        ebmc_config_t *c = make();
        ebmc_status st = load_text(c, name, row->text, err, sizeof err);
        print_message("  row %2d: %s\n", r, err);
        if (st != EBMC_E_INVALID) {
            print_error("row %d: status %d for:\n%s\n", r, (int)st, row->text);
            fail();
        }
        assert_contains(err, tpath(name)); /* the message starts with the file's path */
        assert_true(strncmp(err, tpath(name), strlen(tpath(name))) == 0);
        assert_null(strchr(err, '\n'));    /* one line */
        for (int w = 0; w < 3 && row->want[w]; w++) assert_contains(err, row->want[w]);
        if (row->not_want && strstr(err, row->not_want)) {
            print_error("row %d: '%s' should not contain '%s'\n", r, err, row->not_want);
            fail();
        }
        ebmc_config_free(c);
    }
}

/* A file with an error changes nothing, even the keys before the error. */
static void test_load_is_atomic(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    assert_int_equal(ebmc_config_set_arg(c, "log.tag=kept", err, sizeof err), EBMC_OK);
    assert_int_equal(load_text(c, "partial.ini",
                               "[train]\nsteps = 5\n[log]\ntag = changed\n[train]\nema = maybe\n",
                               err, sizeof err),
                     EBMC_E_INVALID);
    assert_contains(err, ":6: train.ema");
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 1000);
    assert_false(ebmc_config_is_set(c, "train", "steps"));
    assert_string_equal(ebmc_config_str(c, "log", "tag"), "kept");
    ebmc_config_free(c);
}

static void test_io_errors(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    const char *missing = tpath("no_such.ini");
    assert_int_equal(ebmc_config_load(c, missing, err, sizeof err), EBMC_E_IO);
    assert_contains(err, missing);
    assert_contains(err, "No such file or directory");
    /* a directory */
    assert_int_equal(ebmc_config_load(c, DIRP, err, sizeof err), EBMC_E_IO);
    assert_contains(err, DIRP);
    assert_contains(err, "not a regular file (a directory)");
    /* not a text file */
    const char bin[] = "[train]\nsteps = 1\n\0\x01\x02";
    write_text(tpath("bin.ini"), bin, sizeof bin - 1);
    assert_int_equal(ebmc_config_load(c, tpath("bin.ini"), err, sizeof err), EBMC_E_INVALID);
    assert_contains(err, "bin.ini:3: contains a NUL byte");
    ebmc_config_free(c);
}

static void test_cli_errors(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    static const struct {
        const char *arg, *want;
    } rows[] = {
        {"train.lrr=1", "command-line argument 'train.lrr=1': unknown key 'train.lrr'; did you "
                        "mean 'train.lr_e'?"},
        {"trian.steps=1", "unknown key 'trian.steps'; did you mean 'train.steps'?"},
        {"train.batch=8", "unknown key 'train.batch'; did you mean 'data.batch'?"},
        {"lr_e=0.1", "command-line argument 'lr_e=0.1': expected section.key=value; did you mean "
                     "'train.lr_e'?"},
        {"train.steps", "command-line argument 'train.steps': expected section.key=value"},
        {"", "command-line argument '': expected section.key=value"},
        {"train.lr_e=abc", "command-line argument 'train.lr_e=abc': train.lr_e: expected a "
                           "number, got 'abc'"},
        {"train.lr_e=2", "train.lr_e: 2 is out of range [0, 1]"},
        {"train.steps=1 # no comments here", "expected an integer, got '1 # no comments here'"},
        {"sampler.kind=lagevin", "'lagevin' is not one of langevin|hmc|mala; did you mean "
                                 "'langevin'?"},
        {"log.tag=a\nb", "command-line argument 'log.tag=a\\nb': log.tag: a value cannot contain "
                         "a line break"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        err[0] = '\0';
        assert_int_equal(ebmc_config_set_arg(c, rows[r].arg, err, sizeof err), EBMC_E_INVALID);
        print_message("  %s\n", err);
        assert_contains(err, rows[r].want);
        assert_null(strchr(err, '\n'));
    }
    /* nothing changed */
    for (int i = 0; i < NSCHEMA; i++)
        assert_false(ebmc_config_is_set(c, SCHEMA[i].section, SCHEMA[i].key));
    assert_int_equal(ebmc_config_int(c, "train", "steps"), 1000);
    ebmc_config_free(c);
}

static const ebmc_cfg_key SCHEMA_REQ[] = {
    {"data", "path", EBMC_CFG_STRING, NULL, "dataset folder", 0, -1, NULL},
    {"run", "out", EBMC_CFG_STRING, NULL, "run folder", 0, -1, NULL},
    {"run", "steps", EBMC_CFG_INT, NULL, "iterations", 1, -1 /* unchecked */, NULL},
    {"run", "seed", EBMC_CFG_INT, "0", "seed", 0, -1, NULL},
};

static void test_required(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = ebmc_config_create(SCHEMA_REQ, 4);
    assert_int_equal(ebmc_config_check_required(c, err, sizeof err), EBMC_E_INVALID);
    assert_contains(err, "missing required keys 'data.path', 'run.out', 'run.steps'");
    assert_int_equal(load_text(c, "req.ini", "[run]\nout = /tmp/r\n", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_check_required(c, err, sizeof err), EBMC_E_INVALID);
    assert_contains(err, "missing required keys 'data.path', 'run.steps'");
    assert_null(strstr(err, "run.out"));
    assert_int_equal(ebmc_config_set_arg(c, "run.steps=0", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_check_required(c, err, sizeof err), EBMC_E_INVALID);
    assert_contains(err, "missing required key 'data.path': set it in [data]");
    assert_int_equal(ebmc_config_set_arg(c, "data.path=/d", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_check_required(c, err, sizeof err), EBMC_OK);
    assert_string_equal(ebmc_config_str(c, "data", "path"), "/d");
    assert_int_equal(ebmc_config_int(c, "run", "steps"), 0);
    ebmc_config_free(c);
}

/* Values that stress the writer: quotes, comment characters, backslashes, spaces at the ends,
 * UTF-8, floats that need 17 digits, the 64-bit extremes. */
static void set_stress_values(ebmc_config_t *c) {
    char err[512];
    static const char *args[] = {
        "data.path=\" /data/my cifar \\\"v2\\\" # not a comment ; nor this \\\\ \"",
        "data.batch=4096",
        "train.lr_e=0.1",
        "train.steps=999999937",
        "train.ema=off",
        "train.seed=-9223372036854775808",
        "sampler.kind=mala",
        "sampler.step_size=0.33333333333333331" /* 1/3 */,
        "log.tag=\"caf\xc3\xa9 = \xe2\x82\xac; [x]\"",
    };
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        ebmc_status st = ebmc_config_set_arg(c, args[i], err, sizeof err);
        if (st != EBMC_OK) print_error("%s\n", err);
        assert_int_equal(st, EBMC_OK);
    }
    assert_string_equal(ebmc_config_str(c, "data", "path"),
                        " /data/my cifar \"v2\" # not a comment ; nor this \\ ");
    assert_true(ebmc_config_float(c, "sampler", "step_size") == 1.0 / 3.0);
}

static void assert_same_values(const ebmc_config_t *a, const ebmc_config_t *b) {
    for (int i = 0; i < NSCHEMA; i++) {
        const char *s = SCHEMA[i].section, *k = SCHEMA[i].key;
        switch (SCHEMA[i].type) {
        case EBMC_CFG_INT: assert_true(ebmc_config_int(a, s, k) == ebmc_config_int(b, s, k)); break;
        case EBMC_CFG_FLOAT: {
            double x = ebmc_config_float(a, s, k), y = ebmc_config_float(b, s, k);
            assert_memory_equal(&x, &y, sizeof x); /* bit-identical */
            break;
        }
        case EBMC_CFG_BOOL: assert_true(ebmc_config_bool(a, s, k) == ebmc_config_bool(b, s, k)); break;
        case EBMC_CFG_STRING:
        case EBMC_CFG_CHOICE:
            assert_string_equal(ebmc_config_str(a, s, k), ebmc_config_str(b, s, k));
            break;
        }
    }
}

static void test_round_trip(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    set_stress_values(c);
    const char *path = tpath("resolved.ini");
    assert_int_equal(ebmc_config_write(c, path, err, sizeof err), EBMC_OK);

    ebmc_config_t *d = make();
    assert_int_equal(ebmc_config_load(d, path, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_check_required(d, err, sizeof err), EBMC_OK);
    assert_same_values(c, d);
    for (int i = 0; i < NSCHEMA; i++) /* every key is written, so every key is set */
        assert_true(ebmc_config_is_set(d, SCHEMA[i].section, SCHEMA[i].key));

    /* the text is a fixed point, and shaped as documented */
    char *t1 = ebmc_config_to_ini(c), *t2 = ebmc_config_to_ini(d);
    assert_string_equal(t1, t2);
    print_message("%s", t1);
    char *p_data = strstr(t1, "\n[data]\n"), *p_train = strstr(t1, "\n[train]\n"),
         *p_sampler = strstr(t1, "\n[sampler]\n"), *p_log = strstr(t1, "\n[log]\n");
    assert_true(p_data && p_train && p_sampler && p_log);
    assert_true(p_data < p_train && p_train < p_sampler && p_sampler < p_log);
    assert_null(strstr(p_train + 1, "\n[train]\n")); /* one [train]; seed is inside it */
    char *p_seed = strstr(t1, "\nseed = ");
    assert_true(p_seed && p_train < p_seed && p_seed < p_sampler);
    assert_contains(t1, "# learning rate of the energy net  (default: 0.0001)\nlr_e = 0.1\n");
    assert_contains(t1, "# keep an EMA copy of E  (default: true)\nema = false\n");
    assert_contains(t1, "# images per batch  (default: 64)\nbatch = 4096\n");
    assert_contains(t1, "# folder with the CIFAR-10 binary batches  (required)\n");
    assert_contains(t1, "step_size = 0.3333333333333333\n"); /* 16 digits read back */
    assert_contains(t1, "seed = -9223372036854775808\n");
    assert_contains(t1, "# the MCMC sampler  (default: langevin)\nkind = mala\n");
    assert_contains(t1, "# Langevin step size  (default: 10)\n");
    assert_contains(t1, "\nout = runs/default\n"); /* unchanged: no comment (no help) */
    assert_null(strstr(t1, "(default: runs/default)"));
    free(t1);
    free(t2);

    /* the defaults-only config round-trips too (empty string, required key unset) */
    ebmc_config_t *e = make();
    assert_int_equal(ebmc_config_write(e, path, err, sizeof err), EBMC_OK);
    ebmc_config_t *f = make();
    assert_int_equal(ebmc_config_load(f, path, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_check_required(f, err, sizeof err), EBMC_E_INVALID);
    assert_int_equal(ebmc_config_set_arg(e, "data.path=x", err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_set_arg(f, "data.path=x", err, sizeof err), EBMC_OK);
    assert_same_values(e, f);
    ebmc_config_free(c);
    ebmc_config_free(d);
    ebmc_config_free(e);
    ebmc_config_free(f);
}

static void test_json(void **state) {
    (void)state;
    ebmc_config_t *c = make();
    char *j0 = ebmc_config_to_json(c); /* data.path unset: null */
    cJSON *o = cJSON_Parse(j0);
    assert_non_null(o);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "data.path")));
    cJSON_Delete(o);
    free(j0);

    set_stress_values(c);
    char *j = ebmc_config_to_json(c);
    print_message("%s\n", j);
    assert_null(strchr(j, '\n'));
    o = cJSON_Parse(j);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), NSCHEMA);
    cJSON *it;
    it = cJSON_GetObjectItemCaseSensitive(o, "data.path");
    assert_true(cJSON_IsString(it));
    assert_string_equal(it->valuestring, ebmc_config_str(c, "data", "path"));
    it = cJSON_GetObjectItemCaseSensitive(o, "log.tag");
    assert_true(cJSON_IsString(it));
    assert_string_equal(it->valuestring, "caf\xc3\xa9 = \xe2\x82\xac; [x]");
    it = cJSON_GetObjectItemCaseSensitive(o, "data.batch");
    assert_true(cJSON_IsNumber(it));
    assert_true(it->valuedouble == 4096);
    it = cJSON_GetObjectItemCaseSensitive(o, "sampler.step_size");
    assert_true(cJSON_IsNumber(it));
    assert_true(it->valuedouble == 1.0 / 3.0);
    it = cJSON_GetObjectItemCaseSensitive(o, "train.ema");
    assert_true(cJSON_IsFalse(it));
    it = cJSON_GetObjectItemCaseSensitive(o, "sampler.kind");
    assert_true(cJSON_IsString(it));
    assert_string_equal(it->valuestring, "mala");
    /* int64 exact in the text (a double cannot hold it) */
    assert_contains(j, "\"train.seed\":-9223372036854775808");
    cJSON_Delete(o);
    free(j);

    /* control characters are escaped */
    char err[256];
    assert_int_equal(ebmc_config_set_arg(c, "log.tag=a\tb\x01", err, sizeof err), EBMC_OK);
    j = ebmc_config_to_json(c);
    o = cJSON_Parse(j);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "log.tag")->valuestring, "a\tb\x01");
    cJSON_Delete(o);
    free(j);
    ebmc_config_free(c);
}

static void test_write_failures(void **state) {
    (void)state;
    char err[512];
    ebmc_config_t *c = make();
    set_stress_values(c);
    int before = count_entries(DIRP);
    const char *bad = tpath("missing_dir/sub/config.ini");
    assert_int_equal(ebmc_config_write(c, bad, err, sizeof err), EBMC_E_WRITE);
    print_message("  %s\n", err);
    assert_contains(err, bad);
    assert_int_equal(count_entries(DIRP), before);

    /* a write that fails half-way (file size limit): the old file stays, no temporary */
    const char *path = tpath("keep.ini");
    write_text(path, "[train]\nsteps = 3\n", 18);
    before = count_entries(DIRP);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        rl.rlim_cur = 100;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(11);
        char e2[512] = "";
        ebmc_status st = ebmc_config_write(c, path, e2, sizeof e2);
        printf("  child: %s: %s\n", ebmc_status_str(st), e2);
        fflush(stdout);
        _exit(st == EBMC_E_WRITE && strstr(e2, path) ? 0 : 1);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_int_equal(count_entries(DIRP), before);
    ebmc_config_t *d = make();
    assert_int_equal(ebmc_config_load(d, path, err, sizeof err), EBMC_OK);
    assert_int_equal(ebmc_config_int(d, "train", "steps"), 3);
    ebmc_config_free(d);
    ebmc_config_free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* programming errors: the process exits with ebmc_fail's status 3                            */

typedef void (*child_fn)(void);

static void expect_fail_exit(child_fn fn, const char *want) {
    char out[600];
    snprintf(out, sizeof out, "%s/child_stderr.txt", DIRP);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(20);
        dup2(fd, 2);
        fn();
        _exit(0); /* should not get here */
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 3);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    remove(out);
    assert_contains(buf, want);
}

static ebmc_config_t *g_child_cfg; /* reachable at exit: no leak report under ASan */

static void child_unknown_key(void) {
    ebmc_config_t *c = g_child_cfg = make();
    (void)ebmc_config_int(c, "train", "stepz");
}
static void child_wrong_type(void) {
    ebmc_config_t *c = g_child_cfg = make();
    (void)ebmc_config_float(c, "train", "steps");
}
static void child_required_unset(void) {
    ebmc_config_t *c = g_child_cfg = make();
    (void)ebmc_config_str(c, "data", "path");
}
static void child_is_set_unknown(void) {
    ebmc_config_t *c = g_child_cfg = make();
    (void)ebmc_config_is_set(c, "nope", "x");
}
static void child_bad_default(void) {
    static const ebmc_cfg_key s[] = {{"a", "b", EBMC_CFG_INT, "12x", NULL, 0, -1, NULL}};
    (void)ebmc_config_create(s, 1);
}
static void child_default_out_of_range(void) {
    static const ebmc_cfg_key s[] = {{"a", "b", EBMC_CFG_FLOAT, "2", NULL, 0, 1, NULL}};
    (void)ebmc_config_create(s, 1);
}
static void child_duplicate_key(void) {
    static const ebmc_cfg_key s[] = {{"a", "b", EBMC_CFG_BOOL, "1", NULL, 0, -1, NULL},
                                     {"a", "b", EBMC_CFG_BOOL, "0", NULL, 0, -1, NULL}};
    (void)ebmc_config_create(s, 2);
}
static void child_bad_name(void) {
    static const ebmc_cfg_key s[] = {{"a", "Bad-Name", EBMC_CFG_BOOL, "1", NULL, 0, -1, NULL}};
    (void)ebmc_config_create(s, 1);
}
static void child_bad_choices(void) {
    static const ebmc_cfg_key s[] = {{"a", "b", EBMC_CFG_CHOICE, "x", NULL, 0, -1, "x||y"}};
    (void)ebmc_config_create(s, 1);
}

static void test_programming_errors(void **state) {
    (void)state;
    expect_fail_exit(child_unknown_key, "key not in the config schema");
    expect_fail_exit(child_unknown_key, "\"train\", \"stepz\"");
    expect_fail_exit(child_wrong_type, "wrong getter for a INT key");
    expect_fail_exit(child_required_unset, "required key has no value");
    expect_fail_exit(child_is_set_unknown, "key not in the config schema");
    expect_fail_exit(child_bad_default, "expected an integer, got '12x'");
    expect_fail_exit(child_default_out_of_range, "2 is out of range [0, 1]");
    expect_fail_exit(child_duplicate_key, "key declared twice");
    expect_fail_exit(child_bad_name, "[a-z0-9_]+");
    expect_fail_exit(child_bad_choices, "CHOICE needs choices");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_of_each_type),
        cmocka_unit_test(test_syntax_details),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_file_then_cli),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_load_is_atomic),
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_write_failures),
        cmocka_unit_test(test_programming_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
