/* ebmc_bench_chain: Langevin chain throughput of the Dual-MCMC CIFAR-10 EBM (full width,
 * ndf = 512) on the CUDA backend, eager (every op launched from the host) against one CUDA graph
 * per K-step run (specs/performance.md 2.1).
 *
 *   ebmc_bench_chain [--batch 100] [--steps 30] [--rounds 10] [--ndf 512] [--fp32] [--det]
 *
 * One round = one ebmc_chain_run of K steps on `batch` chains followed by ebmc_sync, timed with
 * clock_gettime(CLOCK_MONOTONIC); eager and graph rounds alternate (so clock or thermal drift
 * hits both alike) after two untimed warm-up rounds each (the graph's first run captures and
 * instantiates; its time is printed separately). Reported: the median (and min/max) per
 * variant, Langevin steps/s = K / t, chain-steps/s = batch * K / t, and the ratio graph/eager
 * of the throughputs. Default precision: TF32 with non-deterministic cuDNN algorithms allowed
 * (the training default); --fp32 for strict FP32, --det for deterministic algorithms.
 * Without a CUDA device it prints one line and exits 0 (a benchmark, not a test). */
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--batch N] [--steps K] [--rounds R] [--ndf W] [--fp32] [--det]\n",
            argv0);
}

#define CK(ctx, call)                                                                          \
    do {                                                                                       \
        ebmc_status s_ = (call);                                                               \
        if (s_ != EBMC_OK) {                                                                   \
            fprintf(stderr, "ebmc_bench_chain: %s: %s\n", #call, ebmc_ctx_error(ctx));         \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

/* One timed round: K steps, then wait for the device. */
static int timed_run(ebmc_ctx_t *ctx, ebmc_chain_t *ch, int batch, double *t) {
    const double t0 = ebmc_now_s();
    if (ebmc_chain_run(ch, batch) != EBMC_OK) {
        fprintf(stderr, "ebmc_bench_chain: chain run: %s\n", ebmc_chain_error(ch));
        return 1;
    }
    CK(ctx, ebmc_sync(ctx));
    *t = ebmc_now_s() - t0;
    return 0;
}

int main(int argc, char **argv) {
    int batch = 100, steps = 30, rounds = 10, ndf = 512;
    bool fp32 = false, det = false;
    for (int i = 1; i < argc; i++) {
        const bool more = i + 1 < argc;
        if (!strcmp(argv[i], "--batch") && more) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && more) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && more) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ndf") && more) ndf = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fp32")) fp32 = true;
        else if (!strcmp(argv[i], "--det")) det = true;
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (batch < 1 || steps < 1 || rounds < 1 || ndf < 1) {
        usage(argv[0]);
        return 2;
    }
    if (ebmc_cuda_device_count() <= 0) {
        printf("ebmc_bench_chain: no CUDA device here (or a build without CUDA); nothing to "
               "measure\n");
        return 0;
    }
    ebmc_print_build_info(stdout);

    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CUDA;
    o.precision = fp32 ? EBMC_PREC_FP32 : EBMC_PREC_TF32;
    o.deterministic = det;
    ebmc_ctx_t *ctx = NULL;
    char err[512];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err) != EBMC_OK) {
        fprintf(stderr, "ebmc_bench_chain: CUDA context: %s\n", err);
        return 1;
    }
    ebmc_model_cfg cfg;
    ebmc_model_defaults("dualmcmc_cifar10", &cfg);
    cfg.ndf = ndf;
    ebmc_net_t *E = ebmc_model_build(&cfg, EBMC_NET_E, err, sizeof err);
    if (!E) {
        fprintf(stderr, "ebmc_bench_chain: %s\n", err);
        return 1;
    }
    if (ebmc_net_finalize(E, ctx, false, 1) != EBMC_OK) {
        fprintf(stderr, "ebmc_bench_chain: %s\n", ebmc_net_error(E));
        return 1;
    }
    ebmc_potential *pot = NULL;
    CK(ctx, ebmc_potential_energy(E, batch, 1.0f, &pot)); /* plans the tape and workspace */
    const ebmc_langevin_params p = ebmc_langevin_dualmcmc_x(0.5f, 1e-3f, steps);
    ebmc_chain_t *eager = NULL, *graph = NULL;
    CK(ctx, ebmc_chain_create(pot, &p, batch, 1234, 1, &eager));
    CK(ctx, ebmc_chain_create(pot, &p, batch, 1234, 1, &graph));
    ebmc_chain_set_graph(eager, false);
    ebmc_chain_set_graph(graph, true);
    if (!ebmc_chain_graph_active(graph)) {
        fprintf(stderr, "ebmc_bench_chain: the CUDA backend reports no graph support\n");
        return 1;
    }
    const ebmc_rng_key k0 = {7, 9, NULL, 0};
    CK(ctx, ebmc_init_uniform(ctx, ebmc_chain_state(eager), batch, pot->elems, -1, 1, k0));
    CK(ctx, ebmc_init_uniform(ctx, ebmc_chain_state(graph), batch, pot->elems, -1, 1, k0));

    printf("\nDual-MCMC CIFAR-10 EBM, ndf %d, batch %d, K = %d steps per run, %s%s, %d rounds\n",
           ndf, batch, steps, fp32 ? "FP32" : "TF32", det ? ", deterministic cuDNN" : "",
           rounds);
    double t_first = 0, t = 0;
    if (timed_run(ctx, graph, batch, &t_first)) return 1; /* capture + instantiate + launch */
    for (int w = 0; w < 2; w++) {                          /* warm-up: clocks, caches, plans */
        if (timed_run(ctx, eager, batch, &t) || timed_run(ctx, graph, batch, &t)) return 1;
    }
    double *te = calloc((size_t)rounds, sizeof *te), *tg = calloc((size_t)rounds, sizeof *tg);
    if (!te || !tg) return 1;
    for (int r = 0; r < rounds; r++) { /* alternate the order: neither always runs first */
        const bool eager_first = r % 2 == 0;
        if (eager_first && timed_run(ctx, eager, batch, &te[r])) return 1;
        if (timed_run(ctx, graph, batch, &tg[r])) return 1;
        if (!eager_first && timed_run(ctx, eager, batch, &te[r])) return 1;
    }
    qsort(te, (size_t)rounds, sizeof *te, cmp_double);
    qsort(tg, (size_t)rounds, sizeof *tg, cmp_double);
    const double me = rounds % 2 ? te[rounds / 2] : 0.5 * (te[rounds / 2 - 1] + te[rounds / 2]);
    const double mg = rounds % 2 ? tg[rounds / 2] : 0.5 * (tg[rounds / 2 - 1] + tg[rounds / 2]);
    printf("graph capture + instantiate + first run: %.2f ms\n", 1e3 * t_first);
    printf("%-6s | %10s | %10s | %10s | %12s | %14s\n", "", "median ms", "min ms", "max ms",
           "steps/s", "chain-steps/s");
    printf("%-6s | %10.3f | %10.3f | %10.3f | %12.1f | %14.0f\n", "eager", 1e3 * me, 1e3 * te[0],
           1e3 * te[rounds - 1], steps / me, (double)batch * steps / me);
    printf("%-6s | %10.3f | %10.3f | %10.3f | %12.1f | %14.0f\n", "graph", 1e3 * mg, 1e3 * tg[0],
           1e3 * tg[rounds - 1], steps / mg, (double)batch * steps / mg);
    printf("per Langevin step: eager %.3f ms, graph %.3f ms; throughput ratio graph/eager %.3f\n",
           1e3 * me / steps, 1e3 * mg / steps, me / mg);
    free(te);
    free(tg);
    ebmc_chain_free(eager);
    ebmc_chain_free(graph);
    ebmc_potential_free(pot);
    ebmc_net_free(E);
    ebmc_ctx_free(ctx);
    return 0;
}
