/* ebmc loglik RUN_DIR: the evaluation of a particle-dynamics run (specs/particles.md 2(b)) at its
 * newest checkpoint (or a checkpoint folder): for 2-D models the grid log-likelihood (200 x 200
 * over [-5, 5]^2, log Z by log-sum-exp x cell area) of --points data examples and the unbiased
 * MMD^2 (kernel exp(-|x - y|^2)) between the particles and as many data examples; for image
 * models AIS (linear beta schedule, MALA; --ais-chains, --ais-steps, --ais-step) for log Z with
 * its standard error, and the log-likelihood -mean E(data) - log Z. One line of text and, with
 * --json FILE, the numbers as JSON. */
#include "recipes/particles.h"
#include "ebmc/train.h"
#include "ebmc/cli.h"
#include "ebmc/fileio.h"
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* the authors' AIS (necludov/particle-EBMs scripts/MNIST_scripts/eval_MNIST.py:59-60, 91-94):
 * n_particles 1000, n_iter 10^5, dt 1e-2 */
enum { AIS_CHAINS = 1000, AIS_STEPS = 100000 };

typedef struct {
    const char *in, *json;
    int points, grid;
    pd_ais_opts ais;
} ll_args;

void ebmc_loglik_usage(FILE *f) {
    fprintf(f, "usage: ebmc loglik RUN_DIR|CHECKPOINT_DIR [--points K] [--grid G] [--ais-chains C]\n"
                    "                   [--ais-steps T] [--ais-step DT] [--seed S] [--json FILE]\n"
                    "  2-D models: grid log-likelihood of K data points (default 10000) on a G x G grid\n"
                    "  (default 200) over [-5,5]^2 and MMD^2 of the particles against data; image models:\n"
                    "  AIS log Z (default the authors' eval_MNIST.py: 1000 chains, 100000 MALA steps, dt 1e-2;\n"
                    "  a shorter run is reported as a short run, not as the authors' estimate) and the\n"
                    "  log-likelihood\n");
}

static int usage_loglik(void) {
    ebmc_loglik_usage(stderr);
    return EBMC_EXIT_USAGE;
}

static int parse(int argc, char **argv, ll_args *a) {
    *a = (ll_args){.points = 10000, .grid = 200, .ais = {AIS_CHAINS, AIS_STEPS, 1e-2, 1}};
    for (int i = 0; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (k[0] != '-') {
            if (a->in) return usage_loglik();
            a->in = k;
            continue;
        }
        if (!v) return usage_loglik();
        i++;
        if (!strcmp(k, "--json")) { a->json = v; continue; }
        /* option, range, whole number */
        static const struct { const char *flag; double lo, hi; bool integer; } opts[] = {
            {"--points", 2, 1e7, true}, {"--grid", 2, 4000, true}, {"--ais-chains", 1, 1e6, true},
            {"--ais-steps", 2, 1e8, true}, {"--ais-step", 1e-12, 1e3, false}, {"--seed", 0, 9007199254740992.0, true}};
        int o = 0, n_opts = (int)(sizeof opts / sizeof opts[0]);
        while (o < n_opts && strcmp(k, opts[o].flag)) o++;
        double x;
        if (o == n_opts) {
            fprintf(stderr, "ebmc loglik: unknown option '%s'\n", k);
            return usage_loglik();
        }
        if (!ebmc_arg_number("loglik", k, v, opts[o].lo, opts[o].hi, opts[o].integer, &x)) return EBMC_EXIT_USAGE;
        if (o == 0) a->points = (int)x;
        else if (o == 1) a->grid = (int)x;
        else if (o == 2) a->ais.chains = (int)x;
        else if (o == 3) a->ais.steps = (int)x;
        else if (o == 4) a->ais.dt = x;
        else a->ais.seed = (uint64_t)x;
    }
    return a->in ? 0 : usage_loglik();
}

/* K data examples from the run's loader (host, K x D) */
static float *data_points(ebmc_run_t *run, int K, int D, char *err, size_t errlen) {
    float *x = ebmc_xmalloc((size_t)K * D * sizeof(float), "data points");
    int B = ebmc_run_batch_size(run);
    for (int i = 0; i < K; i += B) {
        int64_t ep;
        if (ebmc_run_next_batch(run, &ep, err, errlen)) {
            free(x);
            return NULL;
        }
        int m = K - i < B ? K - i : B;
        memcpy(x + (size_t)i * D, ebmc_run_batch(run), (size_t)m * D * sizeof(float));
    }
    return x;
}

static ebmc_status evaluate(ebmc_run_t *run, const ll_args *a, int64_t it, char *err, size_t errlen) {
    pd_t *t = ebmc_run_state(run);
    float *x = data_points(run, a->points, t->D, err, errlen);
    if (!x) return EBMC_E_IO;
    double logl = 0, logz = 0, se = 0, acc = 0, mmd = NAN, me = 0;
    ebmc_status s;
    if (t->D == 2) {
        s = pd_grid_loglik(t, a->grid, x, a->points, &logl, &logz);
        if (!s) {
            float *parts = ebmc_xmalloc((size_t)t->N * 2 * sizeof(float), "particles");
            s = ebmc_copy(t->ctx, parts, ebmc_chain_state(t->chain), (size_t)t->N * 2 * sizeof(float), EBMC_COPY_D2H);
            int m = a->points < t->N ? a->points : t->N;
            if (!s) mmd = pd_mmd2(parts, t->N, x, m, 2, 1.0);
            free(parts);
        }
        if (!s) printf("ebmc loglik: iteration %" PRId64 ": grid log-likelihood %.4f (log Z %.4f, %dx%d grid, %d points), "
                       "MMD^2 %.5f\n", it, logl, logz, a->grid, a->grid, a->points, mmd);
    } else {
        s = pd_ais(t, &a->ais, &logz, &se, &acc);
        if (!s) s = pd_mean_energy(t, x, a->points, &me);
        logl = -me - logz;
        bool short_run = a->ais.chains < AIS_CHAINS || a->ais.steps < AIS_STEPS;
        if (!s) printf("ebmc loglik: iteration %" PRId64 ": AIS log Z %.4f +- %.4f (%d chains, %d steps, dt %g, "
                       "acceptance %.3f); log-likelihood %.4f over %d points%s\n", it, logz, se, a->ais.chains,
                       a->ais.steps, a->ais.dt, acc, logl, a->points,
                       short_run ? " [SHORT RUN: fewer chains or steps than the authors' 1000 x 100000; AIS "
                                   "underestimates log Z in expectation, more so with fewer steps: not comparable "
                                   "to their numbers]" : "");
    }
    if (s && !err[0]) snprintf(err, errlen, "%s", ebmc_ctx_error(t->ctx));
    if (!s && a->json) {
        char tmp[PATH_MAX + 32];
        FILE *f = ebmc_atomic_open(a->json, tmp, sizeof tmp, err, errlen);
        if (!f) s = EBMC_E_WRITE;
        else if (fprintf(f, "{\"iteration\": %" PRId64 ", \"loglik\": %.6f, \"logz\": %.6f, \"logz_se\": %.6f, "
                            "\"mmd2\": %.6g, \"ais_acceptance\": %.4f, \"ais_short_run\": %s}\n", it, logl, logz, se, mmd, acc,
                            t->D != 2 && (a->ais.chains < AIS_CHAINS || a->ais.steps < AIS_STEPS) ? "true" : "false") < 0) {
            snprintf(err, errlen, "%s: cannot write: %s", a->json, strerror(errno));
            ebmc_atomic_abort(f, tmp);
            s = EBMC_E_WRITE;
        } else {
            s = ebmc_atomic_commit(f, tmp, a->json, err, errlen);
        }
    }
    free(x);
    return s;
}

static void locate(const char *in, char *ckpt, char *cfgpath) {
    struct stat st;
    snprintf(cfgpath, PATH_MAX + 32, "%s/config.ini", in);
    if (stat(cfgpath, &st) == 0) {
        if (ebmc_latest_checkpoint(in, ckpt, PATH_MAX) < 0) ckpt[0] = 0;
    } else {
        snprintf(ckpt, PATH_MAX, "%s", in);
        snprintf(cfgpath, PATH_MAX + 32, "%s/../../config.ini", in);
    }
}

int ebmc_loglik_main(int argc, char **argv) {
    ll_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc;
    char ckpt[PATH_MAX], cfgpath[PATH_MAX + 32], err[PATH_MAX + 1024] = "";
    locate(a.in, ckpt, cfgpath);
    if (!ckpt[0]) {
        fprintf(stderr, "ebmc loglik: %s has no checkpoint\n", a.in);
        return EBMC_EXIT_DATA;
    }
    const ebmc_recipe *recipe;
    ebmc_config_t *cfg;
    ebmc_status s = ebmc_recipe_load_config(cfgpath, 0, NULL, &recipe, &cfg, err, sizeof err);
    if (s) {
        fprintf(stderr, "ebmc loglik: %s\n", err);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_CONFIG;
    }
    if (strcmp(recipe->name, "particles")) {
        fprintf(stderr, "ebmc loglik: %s: run.recipe = %s; loglik evaluates particles runs\n", cfgpath, recipe->name);
        ebmc_config_free(cfg);
        return EBMC_EXIT_CONFIG;
    }
    ebmc_run_t *run = NULL;
    int64_t it = 0;
    s = ebmc_run_open(recipe, cfg, true, &run, err, sizeof err);
    if (!s) s = ebmc_run_load(run, ckpt, &it, err, sizeof err);
    if (!s) s = evaluate(run, &a, it, err, sizeof err);
    if (s) fprintf(stderr, "ebmc loglik: %s\n", err);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return s ? (s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR) : EBMC_EXIT_OK;
}
