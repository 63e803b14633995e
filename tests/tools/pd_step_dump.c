/* Test tool for tests/oracle/test_particles_step_torch.py: a small particles run on the CPU
 * backend (ebmc_run_open; Langevin noise off, so the reference needs no noise), iteration 1
 * (base from the batch, the particles' start), a checkpoint OUTDIR/A, the next batch written to
 * OUTDIR/batch.f32 (float32 (B, D), raw), iteration 2, a checkpoint OUTDIR/B. The oracle redoes
 * iteration 2 from A in float64 with the authors' update and compares with B.
 * usage: pd_step_dump OUTDIR [section.key=value ...]   (after this tool's defaults: see main) */
#include "ebmc/recipe.h"
#include <stdio.h>
#include <stdlib.h>

static int die(const char *what, const char *msg) {
    fprintf(stderr, "pd_step_dump: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) return die("usage", "pd_step_dump OUTDIR [section.key=value ...]");
    const char *defaults[] = {"run.recipe=particles", "run.backend=cpu", "run.seed=5", "data.dataset=toy2d",
                              "data.toy=8gaussians", "data.count=1000", "train.batch_size=16", "model.hidden=12",
                              "particles.count=10", "particles.init_steps=20", "particles.steps=3",
                              "particles.step_size=1e-2", "particles.noise=0", "train.lr=1e-2"};
    const ebmc_recipe *rc = ebmc_recipe_find("particles");
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024], path[4096];
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (ebmc_config_set_arg(cfg, defaults[i], err, sizeof err)) return die(defaults[i], err);
    for (int i = 2; i < argc; i++)
        if (ebmc_config_set_arg(cfg, argv[i], err, sizeof err)) return die(argv[i], err);
    ebmc_run_t *run;
    if (ebmc_run_open(rc, cfg, true, &run, err, sizeof err)) return die("open", err);
    for (int64_t it = 1; it <= 2; it++) {
        int64_t ep;
        if (ebmc_run_next_batch(run, &ep, err, sizeof err)) return die("batch", err);
        if (it == 2) {
            snprintf(path, sizeof path, "%s/A", argv[1]);
            if (ebmc_run_save(run, path, 1, err, sizeof err)) return die("save A", err);
            snprintf(path, sizeof path, "%s/batch.f32", argv[1]);
            FILE *f = fopen(path, "wb");
            size_t n = (size_t)ebmc_run_batch_size(run) * 2;
            if (!f || fwrite(ebmc_run_batch(run), sizeof(float), n, f) != n || fclose(f)) return die(path, "write");
        }
        if (ebmc_run_iteration(run, it, ep, false)) return die("iteration", ebmc_ctx_error(ebmc_run_ctx(run)));
    }
    snprintf(path, sizeof path, "%s/B", argv[1]);
    if (ebmc_run_save(run, path, 2, err, sizeof err)) return die("save B", err);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return 0;
}
