/* Test tool for tests/oracle/test_dualmcmc_step_torch.py: builds a small Dual-MCMC trainer on the
 * CPU backend through the recipe table (ebmc_run_open, run.share_tapes=false), takes one batch from
 * its loader and runs ONE iteration
 * (iteration 1, epoch 0), writing into OUTDIR:
 *   E0/G0/I0.safetensors  the initial weights and buffers (ebmc_net_save: state_dict names)
 *   E1/G1/I1.safetensors  the same after the iteration (parameters, SN u/v, BN running stats)
 *   step.safetensors      the batch and the iteration's results:
 *     x            (B,C,H,W) the batch
 *     z            (B,nz,1,1) the prior draw (stream 4) that started both x-chains
 *     mu, logvar   I(x) (the forward that initialised the latent chain)
 *     z_tilde      (B,nz,1,1) the latent chain's final state z~
 *     g_z_tilde    G(z~) of G's update (G before its step)
 *     mu_gen, logvar_gen  I(x~) of I's update (x~ = the first x-chain's result)
 *     x0_new       G_new(z), the start of the fine-tune chain
 *     x_tilde_ft   x~', the fine-tune chain's final state
 *     e_x, e_xt    E(x) and E(x~') of E's update, (B,1,1,1)
 *     trace_ft     (K_x) sum_b E at each gradient evaluation of the fine-tune chain
 *     metrics      (M_COUNT) dm_t.hmet; also one scalar per entry, "m.<name>"
 *     steps        (2) int64: the x- and z-chain noise step counters after the iteration
 *   with metadata "config" (ebmc_config_to_json, every key), "metrics" (the names, in order),
 *   "T" (E's loss temperature, %.17g) and "epoch" (the loader's epoch of the batch).
 * usage: dm_step_dump OUTDIR [section.key=value ...]   (after this tool's defaults: see main) */
#include "ebmc/checkpoint.h"
#include "ebmc/config.h"
#include "ebmc/safetensors.h"
#include "recipes/dualmcmc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STEP_DUMP_TOOL "dm_step_dump"
#include "step_dump_util.h"

static const char *METRIC_NAMES[M_COUNT] = {"recon", "sample", "nllq", "nlll", "et", "ef", "etlog",
                                            "egen0", "egen1", "ex0", "ex1"};

static int save_nets(dm_t *t, const char *dir, int gen, char *err, size_t errlen) {
    ebmc_net_t *nets[3] = {t->E, t->G, t->I};
    const char *names = "EGI";
    char path[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%c%d.safetensors", dir, names[i], gen);
        if (ebmc_net_save(nets[i], path, NULL, 0, err, errlen)) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return die("usage", "dm_step_dump OUTDIR [section.key=value ...]");
    const char *out = argv[1];
    const ebmc_recipe *rc = ebmc_recipe_find("dualmcmc");
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024];
    /* a tiny CIFAR-10 Dual-MCMC: the paper's step sizes, noise, lambdas and T; short chains */
    const char *defaults[] = {
        "data.dataset=shapes", "data.count=8", "model.arch=dualmcmc_cifar10", "model.ngf=8",
        "model.ndf=8", "model.nif=4", "model.nz=8", "train.batch_size=4", "langevin_x.steps=3",
        "langevin_z.steps=2", "run.backend=cpu", "run.graphs=false",
        "run.share_tapes=false", /* every pass keeps its activations: they are dumped below */
    };
    ebmc_run_t *run;
    if (open_run(rc, cfg, defaults, sizeof defaults / sizeof defaults[0], argc, argv, 2, &run)) return 1;
    dm_t *t = ebmc_run_state(run);
    ebmc_ctx_t *ctx = t->ctx;
    if (save_nets(t, out, 0, err, sizeof err)) return die("save", err);

    int64_t epoch;
    if (ebmc_run_next_batch(run, &epoch, err, sizeof err)) return die("loader", err);
    if (ebmc_run_iteration(run, 1, epoch, true)) return die("iteration", ebmc_ctx_error(ctx));
    if (save_nets(t, out, 1, err, sizeof err)) return die("save", err);

    int B = t->B, nz = t->nz, C = t->c.mc.img_c, S = t->c.mc.img_size;
    size_t nimg = (size_t)B * t->img, nzb = (size_t)B * nz;
    ebmc_st_tensor ts[64];
    char mnames[M_COUNT][32];
    int nt = 0;
#define IMG(name, dev) ts[nt++] = (ebmc_st_tensor){name, EBMC_DT_F32, 4, {B, C, S, S}, host_copy(ctx, dev, nimg)}
#define LAT(name, dev) ts[nt++] = (ebmc_st_tensor){name, EBMC_DT_F32, 4, {B, nz, 1, 1}, host_copy(ctx, dev, nzb)}
#define SCL(name, dev) ts[nt++] = (ebmc_st_tensor){name, EBMC_DT_F32, 4, {B, 1, 1, 1}, host_copy(ctx, dev, (size_t)B)}
    ts[nt++] = (ebmc_st_tensor){"x", EBMC_DT_F32, 4, {B, C, S, S}, ebmc_run_batch(run)};
    LAT("z", t->z);
    LAT("mu", ebmc_tape_output(t->tIr, 0));
    LAT("logvar", ebmc_tape_output(t->tIr, 1));
    LAT("z_tilde", ebmc_chain_state(t->cz));
    IMG("g_z_tilde", ebmc_tape_output(t->tGr, 0));
    LAT("mu_gen", ebmc_tape_output(t->tIf, 0));
    LAT("logvar_gen", ebmc_tape_output(t->tIf, 1));
    IMG("x0_new", t->gen);
    IMG("x_tilde_ft", ebmc_chain_state(t->cx));
    SCL("e_x", ebmc_tape_output(t->tEr, 0));
    SCL("e_xt", ebmc_tape_output(t->tEf, 0));
    ts[nt++] = (ebmc_st_tensor){"trace_ft", EBMC_DT_F32, 1, {t->kx}, host_copy(ctx, ebmc_potential_trace(t->px), (size_t)t->kx)};
    ts[nt++] = (ebmc_st_tensor){"metrics", EBMC_DT_F32, 1, {M_COUNT}, t->hmet};
    for (int i = 0; i < M_COUNT; i++) {
        snprintf(mnames[i], sizeof mnames[i], "m.%s", METRIC_NAMES[i]);
        ts[nt++] = (ebmc_st_tensor){mnames[i], EBMC_DT_F32, 0, {0}, &t->hmet[i]};
    }
    int64_t steps[2] = {ebmc_chain_step(t->cx), ebmc_chain_step(t->cz)};
    ts[nt++] = (ebmc_st_tensor){"steps", EBMC_DT_I64, 1, {2}, steps};
#undef IMG
#undef LAT
#undef SCL

    char *cfg_json = ebmc_config_to_json(cfg);
    char mlist[512] = "", tbuf[64], ebuf[32];
    for (int i = 0; i < M_COUNT; i++) {
        strcat(mlist, METRIC_NAMES[i]);
        if (i + 1 < M_COUNT) strcat(mlist, ",");
    }
    snprintf(tbuf, sizeof tbuf, "%.17g", t->T);
    snprintf(ebuf, sizeof ebuf, "%lld", (long long)epoch);
    const char *meta[][2] = {{"config", cfg_json}, {"metrics", mlist}, {"T", tbuf}, {"epoch", ebuf}};
    char path[4096];
    snprintf(path, sizeof path, "%s/step.safetensors", out);
    if (ebmc_st_write(path, ts, nt, meta, 4, err, sizeof err)) return die("write", err);
    printf("dm_step_dump: B=%d nz=%d %dx%dx%d, K_x=%d K_z=%d, T=%g: %d tensors written to %s\n", B, nz, C, S,
           S, t->kx, t->kz, t->T, nt, out);
    free(cfg_json);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return 0;
}
