/* The run shell's config keys, the recipe registry and the composed schemas: a recipe's full
 * schema is the shell's head keys (run, data, the loop's train keys), the recipe's own keys,
 * then the shell's tail keys (guard, log). */
#include "ebmc/recipe.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "ebmc/train.h"
#include "ebmc/fileio.h"
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U 1, 0 /* range unchecked */

static const ebmc_cfg_key SHELL_HEAD[] = {
    {"run", "recipe", EBMC_CFG_STRING, "dualmcmc", "the training algorithm (a recipe: see ebmc train --help)", U, NULL},
    {"run", "out_dir", EBMC_CFG_STRING, "runs", "parent folder of run directories", U, NULL},
    {"run", "name", EBMC_CFG_STRING, "", "run directory name (empty: <config name>-<date>-<time>)", U, NULL},
    {"run", "seed", EBMC_CFG_INT, "1234", "seed of every random number: weights, data order, chains", 0, 4294967295.0, NULL},
    {"run", "backend", EBMC_CFG_CHOICE, "auto", "auto: CUDA when a GPU is found, else the CPU", U, "auto|cpu|cuda"},
    {"run", "device", EBMC_CFG_INT, "0", "CUDA device ordinal", 0, 64, NULL},
    {"run", "precision", EBMC_CFG_CHOICE, "auto", "arithmetic on the GPU: fp32 (no TF32 tensor cores), tf32_conv (TF32 convolutions, fp32 matmuls: PyTorch's defaults), tf32 (TF32 convolutions and matmuls); auto: the recipe's default (ebmc info lists them; fp32 for recipes that subtract nearly equal quantities). The CPU computes in fp32 whatever it says. A resumed run keeps its checkpoint's", U, "auto|fp32|tf32_conv|tf32"},
    {"run", "graphs", EBMC_CFG_BOOL, "true", "capture each Langevin chain once as a CUDA graph and replay it", U, NULL},
    {"run", "share_tapes", EBMC_CFG_BOOL, "true", "passes that are never live at the same time share activation memory (false: every pass keeps its own, for inspection)", U, NULL},
    {"run", "comm_timeout", EBMC_CFG_FLOAT, "600", "data-parallel ranks (mpirun): seconds a rank waits for the others in a collective before it aborts the job (a rank died or hangs)", 1, 1e7, NULL},
    {"run", "profile_iters", EBMC_CFG_STRING, "", "W:N: after W iterations of this run, N inside cudaProfilerStart/Stop (nsys --capture-range=cudaProfilerApi); empty: off", U, NULL},

    {"data", "dataset", EBMC_CFG_CHOICE, "shapes", "training data", U, "shapes|cifar10|mnist|images|toy2d|gmm|npy"},
    {"data", "path", EBMC_CFG_STRING, "", "cifar10: folder of data_batch_*.bin; mnist: folder of idx files; images: folder or .tar; npy: a .npy of uint8 images (N,H,W,C) or float32 points (N,D)", U, NULL},
    {"data", "size", EBMC_CFG_INT, "32", "shapes/images: image size in pixels", 4, 1024, NULL},
    {"data", "count", EBMC_CFG_INT, "10000", "shapes/toy2d: number of examples generated", 1, 1e8, NULL},
    {"data", "max_shapes", EBMC_CFG_INT, "3", "shapes: 1..max_shapes shapes per image (the count uniform)", 1, 3, NULL},
    {"data", "shape_min", EBMC_CFG_FLOAT, "0.12", "shapes: smallest shape radius, a fraction of data.size (radii uniform in shape_min..shape_max)", 0.01, 0.5, NULL},
    {"data", "shape_max", EBMC_CFG_FLOAT, "0.28", "shapes: largest shape radius, a fraction of data.size (<= 0.5: wholly inside)", 0.01, 0.5, NULL},
    {"data", "shape_bg", EBMC_CFG_CHOICE, "varied", "shapes: background: varied (dark muted colours, half of them two-tone) or black", U, "varied|black"},
    {"data", "shape_color", EBMC_CFG_CHOICE, "hue", "shapes: shape colour: hue (bright, saturated, random hue) or white", U, "hue|white"},
    {"data", "toy", EBMC_CFG_CHOICE, "gmm8", "toy2d: the 2-D distribution", U, "gmm8|gmm25|rings|spiral|8gaussians|swissroll|pinwheel|checkerboard|pd_rings|2spirals"},
    {"data", "hflip", EBMC_CFG_BOOL, "false", "random horizontal flips", U, NULL},
    {"data", "crop", EBMC_CFG_STRING, "", "images: crop box x0,y0,x1,y1 in source pixels (empty: the centred square)", U, NULL},
    {"data", "cache", EBMC_CFG_STRING, "", "images: prepared uint8 cache (empty: <path>.ebmc-<size>.cache)", U, NULL},
    {"data", "classes", EBMC_CFG_STRING, "", "mnist/cifar10: keep the first COUNT images of each CLASS, \"CLASS:COUNT,...\" (empty: all)", U, NULL},
    {"data", "dim", EBMC_CFG_INT, "50", "gmm: dimension of the teacher's points", 1, 4096, NULL},
    {"data", "mnist_pad", EBMC_CFG_INT, "0", "mnist: pad 28x28 images to this size (0: keep)", 0, 64, NULL},
    {"data", "resize", EBMC_CFG_CHOICE, "catmull_rom", "images: resize filter (pil_bilinear: torchvision's Resize on PIL images, as the Dual-MCMC authors; needs an integer crop)", U, "catmull_rom|pil_bilinear"},
    {"data", "split", EBMC_CFG_CHOICE, "all", "images: all, or celeba_train (files 000001-162770, or the rows marked 0 of data.partition)", U, "all|celeba_train"},
    {"data", "partition", EBMC_CFG_STRING, "", "images: CelebA's list_eval_partition.txt for data.split = celeba_train", U, NULL},

    {"train", "epochs", EBMC_CFG_INT, "301", "epochs (the learning rates decay once per epoch)", 0, 1e9, NULL},
    {"train", "iterations", EBMC_CFG_INT, "0", "stop after this many iterations (0: epochs x batches per epoch)", 0, 1e12, NULL},
    {"train", "batch_size", EBMC_CFG_INT, "100", "data examples per iteration (with N ranks: the global batch, batch_size/N per rank)", 1, 65536, NULL},
};

static const ebmc_cfg_key SHELL_TAIL[] = {
    {"guard", "max_gap", EBMC_CFG_FLOAT, "1e4", "|the recipe's guarded gap| (Dual-MCMC: mean E(data) - mean E(samples)) beyond this is a divergence", 0, 1e30, NULL},
    {"guard", "max_recoveries", EBMC_CFG_INT, "3", "reloads of the last good checkpoint before giving up (exit 4)", 0, 1000, NULL},

    {"log", "grid_every", EBMC_CFG_INT, "500", "write sample grids every N iterations (0: only at the end)", 0, 1e12, NULL},
    {"log", "ckpt_every", EBMC_CFG_INT, "1000", "write a checkpoint every N iterations (0: only at the end)", 0, 1e12, NULL},
    {"log", "keep", EBMC_CFG_INT, "10", "checkpoints kept (the oldest are deleted)", 1, 100000, NULL},
    {"log", "grid_nrow", EBMC_CFG_INT, "10", "images per grid row", 1, 1000, NULL},
    {"log", "grid_scale", EBMC_CFG_INT, "1", "grid PNGs (training and ebmc sample) enlarged by this factor, each pixel a square block (nearest)", 1, 16, NULL},
    {"log", "progress_every", EBMC_CFG_INT, "50", "a plain progress line every N iterations when stderr is not a terminal", 1, 1e9, NULL},
    {"log", "quiet", EBMC_CFG_BOOL, "false", "no progress output", U, NULL},
    {"log", "tensorboard", EBMC_CFG_BOOL, "true", "TensorBoard event file in <run>/tb: every metric at its iteration, the grids as images, the config as text", U, NULL},

    {"sample", "n", EBMC_CFG_INT, "100", "samples written by ebmc sample", 1, 1e8, NULL},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define EBMC_RECIPE(name) extern const ebmc_recipe ebmc_recipe_##name;
#include "recipes/recipes.def"
#undef EBMC_RECIPE

enum { MAX_RECIPES = 32 };
static struct {
    const ebmc_recipe *r;
    ebmc_cfg_key *schema; /* composed on first use, kept for the life of the process */
    int n;
} g_reg[MAX_RECIPES] = {
#define EBMC_RECIPE(name) {&ebmc_recipe_##name, NULL, 0},
#include "recipes/recipes.def"
#undef EBMC_RECIPE
};
static int g_nreg =
#define EBMC_RECIPE(name) +1
#include "recipes/recipes.def"
#undef EBMC_RECIPE
    ;

const ebmc_recipe *ebmc_recipe_find(const char *name) {
    for (int i = 0; i < g_nreg; i++)
        if (!strcmp(g_reg[i].r->name, name)) return g_reg[i].r;
    return NULL;
}

ebmc_precision ebmc_recipe_precision(const ebmc_recipe *rc, const ebmc_config_t *cfg) {
    ebmc_precision p;
    if (ebmc_precision_parse(ebmc_config_str(cfg, "run", "precision"), &p)) return p;
    return rc->precision; /* auto (the schema admits nothing else) */
}

bool ebmc_recipe_register(const ebmc_recipe *r) {
    if (g_nreg >= MAX_RECIPES || !r || !r->name || ebmc_recipe_find(r->name)) return false;
    g_reg[g_nreg++].r = r;
    return true;
}

const char *ebmc_recipe_names(char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < g_nreg && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? "|" : "", g_reg[i].r->name);
    return buf;
}

const ebmc_cfg_key *ebmc_recipe_schema(const ebmc_recipe *r, int *n) {
    for (int i = 0; i < g_nreg; i++) {
        if (g_reg[i].r != r) continue;
        if (!g_reg[i].schema) {
            int total = COUNT(SHELL_HEAD) + r->n_keys + COUNT(SHELL_TAIL);
            ebmc_cfg_key *s = ebmc_xcalloc((size_t)total, sizeof *s, "schema");
            memcpy(s, SHELL_HEAD, sizeof SHELL_HEAD);
            if (r->n_keys) memcpy(s + COUNT(SHELL_HEAD), r->keys, (size_t)r->n_keys * sizeof *s);
            memcpy(s + COUNT(SHELL_HEAD) + r->n_keys, SHELL_TAIL, sizeof SHELL_TAIL);
            g_reg[i].schema = s;
            g_reg[i].n = total;
        }
        *n = g_reg[i].n;
        return g_reg[i].schema;
    }
    ebmc_fail("ebmc_recipe_schema", "recipe not registered", __func__, __FILE__, __LINE__);
}

ebmc_sample_cfg ebmc_sample_cfg_read(const ebmc_config_t *cfg) {
    return (ebmc_sample_cfg){(int)ebmc_config_int(cfg, "sample", "steps"),
                             ebmc_config_float(cfg, "sample", "step_size"),
                             ebmc_config_float(cfg, "sample", "noise")};
}

ebmc_sample_cfg ebmc_sample_cfg_apply(ebmc_sample_cfg c, const ebmc_sample_opts *o) {
    if (o->steps >= 0) c.steps = (int)o->steps;
    if (o->step_size >= 0) c.step = o->step_size;
    if (o->noise >= 0) c.noise = o->noise;
    return c;
}

ebmc_status ebmc_recipe_model_read(const ebmc_config_t *cfg, ebmc_model_cfg *mc,
                                   const char *const *widths, char *err, size_t errlen) {
    const char *arch = ebmc_config_str(cfg, "model", "arch");
    if (!ebmc_model_defaults(arch, mc)) {
        snprintf(err, errlen, "model.arch: unknown architecture '%s'", arch);
        return EBMC_E_INVALID;
    }
    static const char *const keys[5] = {"nz", "ngf", "ndf", "nif", "hidden"};
    int *fields[5] = {&mc->nz, &mc->ngf, &mc->ndf, &mc->nif, &mc->hidden};
    for (int i = 0; widths && widths[i]; i++)
        for (int j = 0; j < 5; j++)
            if (!strcmp(widths[i], keys[j]) && ebmc_config_int(cfg, "model", keys[j]))
                *fields[j] = (int)ebmc_config_int(cfg, "model", keys[j]);
    return EBMC_OK;
}

void ebmc_recipe_model_data_shape(const void *typed, int *c, int *h, int *w) {
    const ebmc_model_cfg *mc = typed; /* the typed config's first member */
    *c = mc->img_c, *h = mc->img_size, *w = mc->img_size;
}

void ebmc_recipe_model_sample_shape(void *state, int *c, int *h, int *w) {
    ebmc_recipe_model_data_shape(state, c, h, w); /* the state's first member is the typed config */
}

ebmc_plan_row ebmc_plan_net_row(const char *name, ebmc_net_t *net, const ebmc_adam_t *opt,
                                ebmc_tape_t *const *tapes, int nt) {
    ebmc_plan_row r = {.name = name, .params = ebmc_net_param_count(net)};
    r.param_bytes = r.params * sizeof(float);
    r.grad_bytes = r.param_bytes;
    r.optim_bytes = 2 * ebmc_adam_state_count(opt) * sizeof(float);
    for (int i = 0; i < nt; i++) {
        if (!tapes[i]) continue;
        r.tapes++;
        if (!ebmc_tape_shares(tapes[i])) {
            r.arenas++;
            r.tape_bytes += ebmc_tape_bytes(tapes[i]);
        }
    }
    return r;
}

ebmc_config_t *ebmc_recipe_config_create(const ebmc_recipe *r) {
    int n;
    const ebmc_cfg_key *s = ebmc_recipe_schema(r, &n);
    return ebmc_config_create(s, n);
}

/* ---- which recipe a config selects: run.recipe in the file (a light scan: the full, strict
 * parse follows with the recipe's schema), overridden by run.recipe=... on the command line */

typedef struct {
    char value[128];
    bool found;
} peek_t;

static int peek_handler(void *user, const char *section, const char *name, const char *value) {
    peek_t *p = user;
    if (!strcmp(section, "run") && !strcmp(name, "recipe")) {
        size_t n = strlen(value);
        if (n >= 2 && value[0] == '"' && value[n - 1] == '"') { /* a quoted value */
            value++;
            n -= 2;
        }
        snprintf(p->value, sizeof p->value, "%.*s", (int)n, value);
        p->found = true;
    }
    return 1;
}

const ebmc_recipe *ebmc_recipe_select(const char *config_path, int n_args, char *const *args,
                                      char *err, size_t errlen) {
    peek_t p = {"dualmcmc", false};
    const char *where = "the default";
    if (config_path) {
        char why[64];
        FILE *f = ebmc_fopen_read(config_path, why, sizeof why);
        if (f) { /* a missing or non-regular file is reported by the strict load that follows */
            ini_parse_file(f, peek_handler, &p);
            fclose(f);
            if (p.found) where = config_path;
        }
    }
    for (int i = 0; i < n_args; i++)
        if (!strncmp(args[i], "run.recipe=", 11)) {
            snprintf(p.value, sizeof p.value, "%s", args[i] + 11);
            where = "the command line";
        }
    const ebmc_recipe *r = ebmc_recipe_find(p.value);
    if (!r) {
        char names[512];
        snprintf(err, errlen, "%s: run.recipe: unknown recipe '%s' (known: %s)", where, p.value,
                 ebmc_recipe_names(names, sizeof names));
    }
    return r;
}

ebmc_status ebmc_recipe_load_config(const char *config_path, int n_args, char *const *args,
                                    const ebmc_recipe **r, ebmc_config_t **out, char *err, size_t errlen) {
    *out = NULL;
    *r = ebmc_recipe_select(config_path, n_args, args, err, errlen);
    if (!*r) return EBMC_E_INVALID;
    ebmc_config_t *cfg = ebmc_recipe_config_create(*r);
    ebmc_status s = config_path ? ebmc_config_load(cfg, config_path, err, errlen) : EBMC_OK;
    for (int i = 0; !s && i < n_args; i++) s = ebmc_config_set_arg(cfg, args[i], err, errlen);
    if (!s) s = ebmc_config_check_required(cfg, err, errlen);
    if (s) {
        ebmc_config_free(cfg);
        *r = NULL;
        return s;
    }
    *out = cfg;
    return EBMC_OK;
}
