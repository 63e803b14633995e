/* ebmc command line: the subcommands' table (--help for each), info, smoke. */
#include "ebmc/backend.h"
#include "ebmc/bench.h"
#include "ebmc/cli.h"
#include "ebmc/recipe.h"
#include "ebmc/train.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: ebmc <command> [options]\n"
            "commands:\n"
            "  train CONFIG [section.key=value ...]\n"
            "                             train with a recipe (run.recipe; default dualmcmc, configs/*.ini);\n"
            "                             --resume RUN_DIR continues a run; --print-config shows the\n"
            "                             resolved config with the recipe's keys\n"
            "  sample RUN_DIR [--n N ...]  samples of a trained model (PNG grids and .npy)\n"
            "  data CONFIG --out F.npy [--n N] [--first I]\n"
            "                             examples of the config's data set as .npy (e.g. held-out\n"
            "                             shapes to compare samples with: run.seed=OTHER)\n"
            "  eval RUN_DIR [--n N] [--ref STATS.npz|DATA] [--weights F]\n"
            "                             FID, IS and KID of samples (or --npy F) with the protocol as JSON;\n"
            "                             --stats DATA --out F.npz writes pytorch-fid statistics\n"
            "  score RUN_DIR INPUT [--out F.jsonl|F.npy]\n"
            "                             the energy of each image or point of INPUT (.npy or a config)\n"
            "  import CONFIG WEIGHTS_DIR --out RUN_DIR\n"
            "                             a run from network weights alone (scripts/import_dualmcmc.py\n"
            "                             converts the Dual-MCMC authors' .pth)\n"
            "  bench [--quick] [--cases L] [--json FILE] ...\n"
            "                             sampler and training-iteration throughput (median,\n"
            "                             p10/p90, FLOP fraction); ebmc bench --help for all options\n"
            "  loglik RUN_DIR [--points K ...]\n"
            "                             a particles run's log-likelihood (2-D: 200x200 grid;\n"
            "                             images: AIS log Z +- s.e.) and MMD^2 of its particles\n"
            "  plot RUN_DIR [--out F.png]  the run's curves as one PNG (matplotlib; default RUN_DIR/curves.png)\n"
            "  info                       build versions, devices, and which backend would run\n"
            "  smoke [--backend B] [--batch N]\n"
            "                             run a chain of ops (SN, conv, BN, ReLU, upsample, pool,\n"
            "                             conv backward) on backend B (auto, cpu, cuda; default auto)\n"
            "                             at a Dual-MCMC CIFAR-10 layer shape; check the results\n"
            "                             are finite and, on CUDA, agree with the CPU reference\n"
            "  help                       this text\n"
            "  version                    the ebmc version\n");
}

/* deterministic pseudo-random floats in [-1, 1) */
static void fill_rand(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 4503599627370496.0 - 1.0);
    }
}

typedef struct {
    ebmc_ctx_t *ctx;
    float *x, *w, *y, *dy, *dx, *dw, *g, *b, *mean, *inv, *z, *u, *v, *sig;
} smoke_bufs;

#define NT 14
static int smoke_alloc(ebmc_ctx_t *ctx, smoke_bufs *B, const size_t *sizes) {
    float **p = &B->x;
    B->ctx = ctx;
    for (int i = 0; i < NT; i++) {
        if (ebmc_alloc(ctx, (void **)&p[i], sizes[i] * sizeof(float)) != EBMC_OK) return -1;
    }
    return 0;
}

static void smoke_free(smoke_bufs *B) {
    float **p = &B->x;
    for (int i = 0; i < NT; i++) ebmc_free(B->ctx, p[i]);
}

/* Runs one op sequence: conv fwd/bwd, BN, act, pool, upsample, SN, linear, adam; returns the
 * outputs (y of conv, dx, dw) copied to host in out. */
static int smoke_run(ebmc_ctx_t *ctx, int batch, const float *hx, const float *hw, const float *hdy,
                     float *out_y, float *out_dx, float *out_dw, double *secs) {
    const int C = 64, H = 16;
    ebmc_conv_desc cd = ebmc_conv_desc_make(batch, C, H, H, C, 3, 1, 1);
    size_t nx = ebmc_conv_x_count(&cd), nw = ebmc_conv_w_count(&cd);
    size_t sizes[NT] = {nx, nw, nx, nx, nx, nw, (size_t)C, (size_t)C, (size_t)C, (size_t)C,
                        4 * nx, (size_t)C, (size_t)C * 9 * C, 1};
    smoke_bufs B;
    memset(&B, 0, sizeof B);
    if (smoke_alloc(ctx, &B, sizes)) {
        fprintf(stderr, "ebmc smoke: allocation failed: %s\n", ebmc_ctx_error(ctx));
        smoke_free(&B);
        return -1;
    }
    ebmc_status s = EBMC_OK;
#define RUN(call) do { if (s == EBMC_OK) { s = (call); if (s) fprintf(stderr, "ebmc smoke: %s failed: %s\n", #call, ebmc_ctx_error(ctx)); } } while (0)
    RUN(ebmc_copy(ctx, B.x, hx, nx * 4, EBMC_COPY_H2D));
    RUN(ebmc_copy(ctx, B.w, hw, nw * 4, EBMC_COPY_H2D));
    RUN(ebmc_copy(ctx, B.dy, hdy, nx * 4, EBMC_COPY_H2D));
    ebmc_fill_desc f1 = {.count = (size_t)C, .value = 1.0f}, f0 = {.count = (size_t)C, .value = 0.0f};
    RUN(ebmc_fill(ctx, &f1, B.g));
    RUN(ebmc_fill(ctx, &f0, B.b));
    RUN(ebmc_sync(ctx));
    double t0 = ebmc_now_s();
    ebmc_bn_desc bn = {.n = batch, .c = C, .h = H, .w = H, .eps = 1e-5f, .momentum = 0.1f};
    ebmc_act_desc act = {.kind = EBMC_ACT_RELU, .count = nx};
    ebmc_upsample_desc up = {.n = batch, .c = C, .h = H, .w = H, .mode = EBMC_UPSAMPLE_BILINEAR_AC};
    ebmc_t4_desc pool = {.n = batch, .c = C, .h = 2 * H, .w = 2 * H};
    ebmc_sn_desc sn = {.rows = C, .cols = C * 9, .n_power_iter = 1, .eps = 1e-12f};
    ebmc_fill_desc fu = {.count = (size_t)C, .value = 0.125f}, fv = {.count = (size_t)C * 9, .value = 1.0f / 24.0f};
    RUN(ebmc_fill(ctx, &fu, B.u));
    RUN(ebmc_fill(ctx, &fv, B.v));
    RUN(ebmc_sn_power(ctx, &sn, B.w, B.u, B.v, B.sig, B.dw));            /* dw := W/sigma */
    RUN(ebmc_conv2d_fwd(ctx, &cd, B.x, B.dw, B.y));
    RUN(ebmc_bn_fwd(ctx, &bn, B.y, B.g, B.b, B.y, B.mean, B.inv, NULL, NULL));
    RUN(ebmc_act_fwd(ctx, &act, B.y, B.y));
    RUN(ebmc_upsample_fwd(ctx, &up, B.y, B.z));
    RUN(ebmc_avgpool2_fwd(ctx, &pool, B.z, B.y));
    RUN(ebmc_conv2d_bwd_data(ctx, &cd, B.dy, B.dw, B.dx, 0.0f));
    RUN(ebmc_conv2d_bwd_filter(ctx, &cd, B.x, B.dy, B.dw, 0.0f));
    RUN(ebmc_sync(ctx));
    *secs = ebmc_now_s() - t0;
    RUN(ebmc_copy(ctx, out_y, B.y, nx * 4, EBMC_COPY_D2H));
    RUN(ebmc_copy(ctx, out_dx, B.dx, nx * 4, EBMC_COPY_D2H));
    RUN(ebmc_copy(ctx, out_dw, B.dw, nw * 4, EBMC_COPY_D2H));
#undef RUN
    smoke_free(&B);
    return s == EBMC_OK ? 0 : -1;
}

static double nmse(const float *a, const float *r, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - r[i];
        num += d * d;
        den += (double)r[i] * r[i];
    }
    return den > 0 ? num / den : num;
}

static int all_finite(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

static void smoke_usage(FILE *f) {
    fprintf(f, "usage: ebmc smoke [--backend auto|cpu|cuda] [--batch N]\n"
               "  a chain of ops (SN, conv, BN, ReLU, upsample, pool, conv backward) at a Dual-MCMC\n"
               "  CIFAR-10 layer shape on backend B (default auto), batch N (1..4096, default 8); checks\n"
               "  the results are finite and, on CUDA, agree with the CPU reference\n");
}

static int cmd_smoke(int argc, char **argv) {
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    int batch = 8;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            const char *b = argv[++i];
            if (!strcmp(b, "auto")) o.kind = EBMC_BACKEND_AUTO;
            else if (!strcmp(b, "cpu")) o.kind = EBMC_BACKEND_CPU;
            else if (!strcmp(b, "cuda")) o.kind = EBMC_BACKEND_CUDA;
            else { fprintf(stderr, "ebmc smoke: unknown backend '%s' (auto, cpu, cuda)\n", b); return 2; }
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            double v;
            if (!ebmc_arg_number("smoke", "--batch", argv[++i], 1, 4096, true, &v)) return 2;
            batch = (int)v;
        } else {
            fprintf(stderr, "ebmc smoke: unknown option '%s'\n", argv[i]);
            smoke_usage(stderr);
            return 2;
        }
    }
    ebmc_ctx_t *ctx;
    char err[512];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err) != EBMC_OK) {
        fprintf(stderr, "ebmc smoke: %s\n", err);
        return 1;
    }
    const int C = 64, H = 16;
    size_t nx = (size_t)batch * C * H * H, nw = (size_t)C * C * 9;
    float *hx = malloc(nx * 4), *hw = malloc(nw * 4), *hdy = malloc(nx * 4);
    float *y = malloc(nx * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4);
    float *ry = malloc(nx * 4), *rdx = malloc(nx * 4), *rdw = malloc(nw * 4);
    if (!hx || !hw || !hdy || !y || !dx || !dw || !ry || !rdx || !rdw) {
        fprintf(stderr, "ebmc smoke: out of host memory\n");
        return 1;
    }
    fill_rand(hx, nx, 1);
    fill_rand(hw, nw, 2);
    fill_rand(hdy, nx, 3);
    double secs = 0;
    int rc = smoke_run(ctx, batch, hx, hw, hdy, y, dx, dw, &secs);
    const char *bname = ebmc_ctx_ops(ctx)->name;
    if (rc == 0) {
        int fin = all_finite(y, nx) && all_finite(dx, nx) && all_finite(dw, nw);
        printf("smoke: backend %s, batch %d, 64ch 16x16: sn_power, conv3x3 fwd, bn, relu, "
               "bilinear x2, avgpool2, conv bwd-data, conv bwd-filter: %.3f ms, outputs %s\n",
               bname, batch, secs * 1e3, fin ? "finite" : "NOT FINITE");
        if (!fin) rc = -1;
        if (rc == 0 && ebmc_ctx_kind(ctx) == EBMC_BACKEND_CUDA) {
            ebmc_ctx_opts oc = ebmc_ctx_opts_default();
            oc.kind = EBMC_BACKEND_CPU;
            ebmc_ctx_t *cpu;
            double cs = 0;
            if (ebmc_ctx_create(&oc, &cpu, err, sizeof err) == EBMC_OK &&
                smoke_run(cpu, batch, hx, hw, hdy, ry, rdx, rdw, &cs) == 0) {
                double e1 = nmse(y, ry, nx), e2 = nmse(dx, rdx, nx), e3 = nmse(dw, rdw, nw);
                double tol = ebmc_ctx_precision(ctx) != EBMC_PREC_FP32 ? 1e-5 : 1e-9;
                printf("smoke: cuda vs cpu reference nmse: y %.2e, dx %.2e, dw %.2e (tolerance %.0e)\n",
                       e1, e2, e3, tol);
                if (!(e1 <= tol && e2 <= tol && e3 <= tol)) rc = -1;
                ebmc_ctx_free(cpu);
            } else {
                rc = -1;
            }
        }
    }
    printf("smoke: %s\n", rc == 0 ? "OK" : "FAILED");
    free(hx); free(hw); free(hdy); free(y); free(dx); free(dw); free(ry); free(rdx); free(rdw);
    ebmc_ctx_free(ctx);
    return rc == 0 ? 0 : 1;
}

/* run.precision = auto per recipe: "Precision (run.precision = auto): dualmcmc tf32_conv, ..." */
static void print_precisions(FILE *f) {
    char names[512];
    ebmc_recipe_names(names, sizeof names);
    fprintf(f, "Precision (run.precision = auto, on a GPU):");
    const char *sep = " ";
    for (char *s, *p = strtok_r(names, "|", &s); p; p = strtok_r(NULL, "|", &s), sep = ", ")
        fprintf(f, "%s%s %s", sep, p, ebmc_precision_name(ebmc_recipe_find(p)->precision));
    fprintf(f, "\n");
}

static void info_usage(FILE *f) {
    fprintf(f, "usage: ebmc info\n  build versions, devices, and which backend would run\n");
}

static int cmd_info(int argc, char **argv) {
    if (argc > 0) {
        fprintf(stderr, "ebmc info: unexpected argument '%s'\n", argv[0]);
        info_usage(stderr);
        return 2;
    }
    ebmc_print_build_info(stdout);
    print_precisions(stdout);
    return 0;
}

/* The subcommands, one line each: `ebmc NAME ... --help` (or -h) prints usage(stdout) and
 * exits 0 before the command parses anything. */
static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
    void (*usage)(FILE *f);
} commands[] = {
    {"train", ebmc_train_main, ebmc_train_usage},
    {"sample", ebmc_sample_main, ebmc_sample_usage},
    {"data", ebmc_data_main, ebmc_data_usage},
    {"eval", ebmc_eval_main, ebmc_eval_usage},
    {"score", ebmc_score_main, ebmc_score_usage},
    {"import", ebmc_import_main, ebmc_import_usage},
    {"bench", ebmc_bench_main, ebmc_bench_usage},
    {"loglik", ebmc_loglik_main, ebmc_loglik_usage},
    {"plot", ebmc_plot_main, ebmc_plot_usage},
    {"info", cmd_info, info_usage},
    {"smoke", cmd_smoke, smoke_usage},
};

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* a full disk under `ulimit -f` is an EFBIG write error to report (exit 1), not a silent death */
    signal(SIGXFSZ, SIG_IGN);
    const char *cmd = argv[1];
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(cmd, commands[c].name)) continue;
        for (int i = 2; i < argc; i++)
            if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                commands[c].usage(stdout);
                return 0;
            }
        return commands[c].main(argc - 2, argv + 2);
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("ebmc %s\n", EBMC_VERSION_STRING);
        return 0;
    }
    fprintf(stderr, "ebmc: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
