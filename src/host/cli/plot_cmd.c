/* ebmc plot RUN_DIR [--out F.png]: the run's curves (metrics.jsonl) as one PNG, drawn by
 * matplotlib through Python: python/ebmc_plot.py (EBMC_PLOT_SCRIPT overrides its path) run by
 * /usr/bin/python3 (EBMC_PYTHON overrides it; Debian: python3-matplotlib). The default output
 * is RUN_DIR/curves.png. */
#include "ebmc/common.h"
#include "ebmc/train.h"
#include "ebmc/cli.h"
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EBMC_PLOT_SCRIPT
#define EBMC_PLOT_SCRIPT "python/ebmc_plot.py"
#endif

extern char **environ;

void ebmc_plot_usage(FILE *f) {
    fprintf(f, "usage: ebmc plot RUN_DIR [--out F.png]\n"
               "  one PNG of the run's curves from RUN_DIR/metrics.jsonl (losses, energies, the energy gap,\n"
               "  chain statistics, images/s); default RUN_DIR/curves.png. Drawn with matplotlib by\n"
               "  $EBMC_PYTHON (default /usr/bin/python3) running $EBMC_PLOT_SCRIPT (default %s)\n",
            EBMC_PLOT_SCRIPT);
}

int ebmc_plot_main(int argc, char **argv) {
    const char *run = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] != '-' && !run) {
            run = argv[i];
        } else {
            fprintf(stderr, "ebmc plot: unexpected argument '%s'\n", argv[i]);
            ebmc_plot_usage(stderr);
            return EBMC_EXIT_USAGE;
        }
    }
    if (!run) {
        ebmc_plot_usage(stderr);
        return EBMC_EXIT_USAGE;
    }
    char metrics[PATH_MAX + 32], def_out[PATH_MAX + 32];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    if (access(metrics, R_OK)) {
        fprintf(stderr, "ebmc plot: %s: cannot read: %s (HINT: RUN_DIR is the folder ebmc train wrote)\n", metrics,
                strerror(errno));
        return EBMC_EXIT_DATA;
    }
    snprintf(def_out, sizeof def_out, "%s/curves.png", run);
    const char *py = getenv("EBMC_PYTHON"), *script = getenv("EBMC_PLOT_SCRIPT");
    py = py && *py ? py : "/usr/bin/python3";
    script = script && *script ? script : EBMC_PLOT_SCRIPT;
    if (access(script, R_OK)) {
        fprintf(stderr, "ebmc plot: the plotting script %s: %s (HINT: EBMC_PLOT_SCRIPT=path/to/python/ebmc_plot.py)\n",
                script, strerror(errno));
        return EBMC_EXIT_ERROR;
    }
    char *args[] = {(char *)py, (char *)script, (char *)run, (char *)(out ? out : def_out), NULL};
    pid_t pid;
    int e = posix_spawn(&pid, py, NULL, NULL, args, environ);
    if (e) {
        fprintf(stderr, "ebmc plot: cannot run %s: %s (HINT: apt-get install python3 python3-matplotlib, or "
                "EBMC_PYTHON=a Python with matplotlib)\n", py, strerror(e));
        return EBMC_EXIT_ERROR;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return EBMC_EXIT_ERROR;
    if (WIFEXITED(st)) return WEXITSTATUS(st); /* the script's: 0, 1 (run-time), 65 (bad metrics) */
    fprintf(stderr, "ebmc plot: %s ended by signal %d\n", py, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return EBMC_EXIT_ERROR;
}
