/* ebmc import CONFIG WEIGHTS_DIR --out RUN_DIR [section.key=value ...]: a run directory from
 * network weights alone (e.g. the Dual-MCMC authors' checkpoint, converted by
 * scripts/import_dualmcmc.py into E/G/I.safetensors with its state_dict names): the recipe of
 * CONFIG is set up, each network of its checkpoint items is filled from WEIGHTS_DIR/<name>.safetensors
 * (every tensor present with its shape; none left over), and the run is saved as iteration 0
 * with fresh optimiser state, so `ebmc sample`, `ebmc eval` and `ebmc score` accept it. */
#include "ebmc/nn.h"
#include "ebmc/safetensors.h"
#include "ebmc/train.h"
#include "ebmc/cli.h"
#include "train/shell.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

/* net's tensors from path by name (BatchNorm counters skipped), all checked before any copy */
static ebmc_status fill_net(ebmc_net_t *net, const char *path, char *err, size_t errlen) {
    ebmc_st_file *f;
    EBMC_TRY(ebmc_st_open(path, &f, err, errlen));
    ebmc_status s = EBMC_OK;
    int used = 0;
    for (int pass = 0; pass < 2 && !s; pass++)
        for (int i = 0; i < ebmc_net_tensor_count(net) && !s; i++) {
            const ebmc_net_tensor *t = ebmc_net_tensor_at(net, i);
            const ebmc_st_tensor *x = ebmc_st_find(f, t->name);
            if (t->is_counter) {
                used += pass == 0 && x;
                continue;
            }
            bool ok = x && x->dtype == EBMC_DT_F32 && ebmc_st_numel(x) == (int64_t)t->count && x->ndim == t->ndim;
            for (int d = 0; ok && d < t->ndim; d++) ok = x->shape[d] == t->shape[d];
            if (!ok) {
                ebmc_set_err(err, errlen, "%s: tensor '%s' %s (the config's %s net has it with %zu values)", path,
                             t->name, x ? "has another dtype or shape" : "is missing", ebmc_net_name(net), t->count);
                s = EBMC_E_IO;
            } else if (pass == 0 && ebmc_st_nonfinite(x) >= 0) {
                ebmc_set_err(err, errlen, "%s: tensor '%s' is not finite (NaN or Inf at element %lld)", path, t->name,
                             (long long)ebmc_st_nonfinite(x));
                s = EBMC_E_IO;
            } else if (pass == 0) {
                used++;
            } else {
                s = ebmc_copy(ebmc_net_ctx(net), t->data, x->data, t->count * sizeof(float), EBMC_COPY_H2D);
            }
        }
    if (!s && used != ebmc_st_count(f)) {
        ebmc_set_err(err, errlen, "%s: %d tensors the config's %s net does not have (another architecture? HINT: "
                     "model.* of the config)", path, ebmc_st_count(f) - used, ebmc_net_name(net));
        s = EBMC_E_IO;
    }
    ebmc_st_close(f);
    return s;
}

static ebmc_status import_nets(ebmc_run_t *run, const char *wdir, char *err, size_t errlen) {
    const ebmc_recipe *rc = ebmc_run_recipe(run);
    ebmc_ckpt_item items[EBMC_MAX_CKPT_ITEMS];
    int n = rc->ckpt_items(ebmc_run_state(run), items, EBMC_MAX_CKPT_ITEMS), nets = 0;
    char path[PATH_MAX + 64];
    for (int i = 0; i < n; i++) {
        if (items[i].kind != EBMC_ITEM_NET) continue;
        snprintf(path, sizeof path, "%s/%s.safetensors", wdir, items[i].name);
        EBMC_TRY(fill_net(items[i].ptr, path, err, errlen));
        nets++;
    }
    return nets ? EBMC_OK : (ebmc_set_err(err, errlen, "recipe %s has no network", rc->name), EBMC_E_INVALID);
}

void ebmc_import_usage(FILE *f) {
    fprintf(f, "usage: ebmc import CONFIG WEIGHTS_DIR --out RUN_DIR [section.key=value ...]\n"
               "  WEIGHTS_DIR holds one <net>.safetensors per network of the recipe (Dual-MCMC: E, G, I),\n"
               "  state_dict names (scripts/import_dualmcmc.py writes them from the authors' .pth); RUN_DIR\n"
               "  must not exist (an import never writes into an existing run)\n");
}

int ebmc_import_main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--out")) {
        ebmc_import_usage(stderr);
        return EBMC_EXIT_USAGE;
    }
    const char *out = argv[3];
    char err[PATH_MAX + 1024] = "", path[PATH_MAX + 64], stage[PATH_MAX + 32];
    struct stat sb;
    if (lstat(out, &sb) == 0) { /* never into an existing run (its config and checkpoints would be replaced) */
        fprintf(stderr, "ebmc import: %s already exists: an import writes a new run directory, never into an "
                        "existing one (HINT: --out a new path)\n", out);
        return EBMC_EXIT_USAGE;
    }
    const ebmc_recipe *rc;
    ebmc_config_t *cfg = NULL;
    ebmc_run_t *run = NULL;
    ebmc_status s = ebmc_recipe_load_config(argv[0], argc - 4, argv + 4, &rc, &cfg, err, sizeof err);
    if (!s) s = ebmc_run_open(rc, cfg, false, &run, err, sizeof err);
    if (!s) s = import_nets(run, argv[1], err, sizeof err);
    /* staged in OUT.tmp.PID and renamed into place whole: no half-made run under OUT */
    snprintf(stage, sizeof stage, "%s.tmp.%ld", out, (long)getpid());
    snprintf(path, sizeof path, "%s/checkpoints", stage);
    if (!s && ebmc_mkdir_p(path)) s = EBMC_E_WRITE, ebmc_set_err(err, sizeof err, "%s: cannot create: %s", path,
                                                                 strerror(errno));
    snprintf(path, sizeof path, "%s/config.ini", stage);
    if (!s) s = ebmc_config_write(cfg, path, err, sizeof err);
    snprintf(path, sizeof path, "%s/checkpoints/iter_00000000", stage);
    if (!s) s = ebmc_run_save(run, path, 0, err, sizeof err);
    if (!s && rename(stage, out)) s = EBMC_E_WRITE, ebmc_set_err(err, sizeof err, "%s: cannot rename %s into place: %s",
                                                                 out, stage, strerror(errno));
    if (s) { /* what was staged goes (ebmc_run_save removes its own folder on failure) */
        snprintf(path, sizeof path, "%s/config.ini", stage), remove(path);
        snprintf(path, sizeof path, "%s/checkpoints/iter_00000000", stage), rmdir(path);
        snprintf(path, sizeof path, "%s/checkpoints", stage), rmdir(path);
        rmdir(stage);
    }
    if (!s) printf("ebmc import: the %s networks of %s in %s/checkpoints/iter_00000000 (iteration 0): ebmc "
                   "sample/eval/score %s\n", rc->name, argv[1], out, out);
    else fprintf(stderr, "ebmc import: %s\n", err);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return !s ? EBMC_EXIT_OK : s == EBMC_E_IO ? EBMC_EXIT_DATA : s == EBMC_E_INVALID ? EBMC_EXIT_CONFIG : EBMC_EXIT_ERROR;
}
