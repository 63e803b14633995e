/* Test tool for tests/oracle/test_shortrun_step_torch.py: builds a small shortrun trainer on the
 * CPU backend through the recipe table (run.share_tapes=false), takes one loader batch and runs
 * ONE iteration (iteration 1), writing into OUTDIR:
 *   E0.safetensors, E1.safetensors  the score net before and after the iteration
 *   step.safetensors:
 *     x          (B,C,H,W) the batch
 *     x_data     the batch plus the data noise (what f(x_data) saw)
 *     x_q        (M,C,H,W) the chains' final states
 *     f_data     (B) f(x_data); f_q (M) f(x_q)
 *     trace      (K) sum_m f at each gradient evaluation of the chain
 *     grad.NAME  E's gradient of -L for each parameter (Adam does not change it)
 *     metrics    (SR_COUNT) sr_t.hmet
 *     steps      (1) int64: the chain's noise step counter after the iteration
 *   with metadata "config" (ebmc_config_to_json) and "epoch".
 * usage: sr_step_dump OUTDIR [section.key=value ...]   (after this tool's defaults: see main) */
#include "ebmc/checkpoint.h"
#include "ebmc/config.h"
#include "ebmc/safetensors.h"
#include "recipes/shortrun.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STEP_DUMP_TOOL "sr_step_dump"
#include "step_dump_util.h"

int main(int argc, char **argv) {
    if (argc < 2) return die("usage", "sr_step_dump OUTDIR [section.key=value ...]");
    const char *out = argv[1];
    const ebmc_recipe *rc = ebmc_recipe_find("shortrun");
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024], path[4096];
    /* the authors' CIFAR-10 net topology at width 4, their step, noise and data noise; 3 steps */
    const char *defaults[] = {"run.recipe=shortrun", "data.dataset=shapes", "data.count=8", "model.arch=shortrun", "model.ndf=4",
                              "train.batch_size=4", "train.chains=3", "langevin.steps=3", "run.backend=cpu",
                              "run.graphs=false", "run.share_tapes=false"};
    ebmc_run_t *run;
    if (open_run(rc, cfg, defaults, sizeof defaults / sizeof defaults[0], argc, argv, 2, &run)) return 1;
    sr_t *t = ebmc_run_state(run);
    ebmc_ctx_t *ctx = t->ctx;
    snprintf(path, sizeof path, "%s/E0.safetensors", out);
    if (ebmc_net_save(t->E, path, NULL, 0, err, sizeof err)) return die("save", err);
    int64_t epoch;
    if (ebmc_run_next_batch(run, &epoch, err, sizeof err)) return die("loader", err);
    if (ebmc_run_iteration(run, 1, epoch, true)) return die("iteration", ebmc_ctx_error(ctx));
    snprintf(path, sizeof path, "%s/E1.safetensors", out);
    if (ebmc_net_save(t->E, path, NULL, 0, err, sizeof err)) return die("save", err);

    int B = t->B, M = t->M, C = t->c.mc.img_c, S = t->c.mc.img_size, K = t->c.steps;
    ebmc_st_tensor ts[64];
    char gnames[32][96];
    int nt = 0;
    ts[nt++] = (ebmc_st_tensor){"x", EBMC_DT_F32, 4, {B, C, S, S}, ebmc_run_batch(run)};
    ts[nt++] = (ebmc_st_tensor){"x_data", EBMC_DT_F32, 4, {B, C, S, S}, host_copy(ctx, t->x_data, (size_t)B * t->img)};
    ts[nt++] = (ebmc_st_tensor){"x_q", EBMC_DT_F32, 4, {M, C, S, S}, host_copy(ctx, ebmc_chain_state(t->chain), (size_t)M * t->img)};
    ts[nt++] = (ebmc_st_tensor){"f_data", EBMC_DT_F32, 1, {B}, host_copy(ctx, ebmc_tape_output(t->tD, 0), (size_t)B)};
    ts[nt++] = (ebmc_st_tensor){"f_q", EBMC_DT_F32, 1, {M}, host_copy(ctx, ebmc_tape_output(t->tQ, 0), (size_t)M)};
    ts[nt++] = (ebmc_st_tensor){"trace", EBMC_DT_F32, 1, {K}, host_copy(ctx, ebmc_potential_trace(t->pot), (size_t)K)};
    ts[nt++] = (ebmc_st_tensor){"metrics", EBMC_DT_F32, 1, {SR_COUNT}, t->hmet};
    int ng = 0;
    for (int i = 0; i < ebmc_net_tensor_count(t->E) && ng < 32; i++) {
        const ebmc_net_tensor *p = ebmc_net_tensor_at(t->E, i);
        if (!p->grad) continue;
        snprintf(gnames[ng], sizeof gnames[ng], "grad.%s", p->name);
        ebmc_st_tensor g = {gnames[ng++], EBMC_DT_F32, p->ndim, {0}, host_copy(ctx, p->grad, p->count)};
        for (int d = 0; d < p->ndim; d++) g.shape[d] = p->shape[d];
        ts[nt++] = g;
    }
    int64_t steps[1] = {ebmc_chain_step(t->chain)};
    ts[nt++] = (ebmc_st_tensor){"steps", EBMC_DT_I64, 1, {1}, steps};
    char *cfg_json = ebmc_config_to_json(cfg), ebuf[32];
    snprintf(ebuf, sizeof ebuf, "%lld", (long long)epoch);
    const char *meta[][2] = {{"config", cfg_json}, {"epoch", ebuf}};
    snprintf(path, sizeof path, "%s/step.safetensors", out);
    if (ebmc_st_write(path, ts, nt, meta, 2, err, sizeof err)) return die("write", err);
    printf("sr_step_dump: B=%d M=%d %dx%dx%d K=%d: %d tensors written to %s\n", B, M, C, S, S, K, nt, out);
    free(cfg_json);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return 0;
}
