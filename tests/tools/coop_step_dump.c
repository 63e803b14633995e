/* Test tool for tests/oracle/test_coop_step_torch.py: builds a small coopvaebm or coopnets trainer
 * on the CPU backend through the recipe table (run.share_tapes=false: every pass keeps its
 * activations), takes one batch from its loader, runs ONE iteration (iteration 1, epoch 0) and
 * writes into OUTDIR:
 *   E0/G0[/I0].safetensors  the initial weights and buffers (state_dict names; coopvaebm: the
 *                           encoder heads' biases drawn N(0, 0.5^2), see main)
 *   E1/G1[/I1].safetensors  the same after the iteration
 *   step.safetensors        x (B,C,H,W) the batch; z (N,nz,1,1) the prior draw; x0 = G(z);
 *                           x_tilde the chains' final state; f_x (B) and f_xt (N) E's outputs of
 *                           its update; trace (K) sum f at each gradient evaluation;
 *                           coopvaebm: mu, s = I(x~), eps, z_enc, g_zenc = G(z_enc);
 *                           coopnets: z_used (the latent chain's result, or z), g_fit = G(z_used);
 *                           metrics (C_COUNT) coop_t.hmet; steps (2) int64 the chains' counters
 *   with metadata "config" (every key, JSON), "recipe", "metrics" (names), "epoch".
 * usage: coop_step_dump RECIPE OUTDIR [section.key=value ...] */
#include "ebmc/checkpoint.h"
#include "ebmc/config.h"
#include "ebmc/safetensors.h"
#include "recipes/coop.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STEP_DUMP_TOOL "coop_step_dump"
#include "step_dump_util.h"

static int save_nets(coop_t *t, const char *dir, int gen, char *err, size_t errlen) {
    ebmc_net_t *nets[3] = {t->E, t->G, t->I};
    const char *names = "EGI";
    char path[4096];
    for (int i = 0; i < 3; i++) {
        if (!nets[i]) continue;
        snprintf(path, sizeof path, "%s/%c%d.safetensors", dir, names[i], gen);
        if (ebmc_net_save(nets[i], path, NULL, 0, err, errlen)) return 1;
    }
    return 0;
}

/* a tiny CIFAR-sized trainer: the recipe's own step sizes, sigma_ref and learning rates; widths,
 * chains and steps small; noise on (so the chains' noise is checked too) */
static const char *const DEFAULTS_VAE[] = {
    "data.dataset=shapes", "data.count=8", "model.arch=coopvaebm", "model.ngf=4", "model.ndf=4",
    "model.nif=4", "model.nz=8", "train.batch_size=4", "train.chains=6", "langevin.steps=3",
    "langevin.noise=0.002", "run.backend=cpu", "run.graphs=false", "run.share_tapes=false", NULL};
static const char *const DEFAULTS_NETS[] = {
    "data.dataset=shapes", "data.count=8", "model.arch=coopnets_cifar", "model.ngf=4", "model.ndf=4",
    "model.nz=8", "train.batch_size=4", "train.chains=6", "langevin.steps=3", "train.gen_steps=2",
    "run.backend=cpu", "run.graphs=false", "run.share_tapes=false", NULL};

int main(int argc, char **argv) {
    if (argc < 3) return die("usage", "coop_step_dump coopvaebm|coopnets OUTDIR [section.key=value ...]");
    const ebmc_recipe *rc = ebmc_recipe_find(argv[1]);
    if (!rc || (strcmp(argv[1], "coopvaebm") && strcmp(argv[1], "coopnets"))) return die("recipe", argv[1]);
    bool vae = !strcmp(argv[1], "coopvaebm");
    const char *out = argv[2];
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024];
    char rsel[64];
    snprintf(rsel, sizeof rsel, "run.recipe=%s", argv[1]);
    if (ebmc_config_set_arg(cfg, rsel, err, sizeof err)) return die("config", err);
    for (const char *const *d = vae ? DEFAULTS_VAE : DEFAULTS_NETS; *d; d++)
        if (ebmc_config_set_arg(cfg, *d, err, sizeof err)) return die("config", err);
    for (int i = 3; i < argc; i++)
        if (ebmc_config_set_arg(cfg, argv[i], err, sizeof err)) return die("config", err);
    if (ebmc_config_check_required(cfg, err, sizeof err)) return die("config", err);
    ebmc_run_t *run;
    if (ebmc_run_open(rc, cfg, true, &run, err, sizeof err)) return die("set-up", err);
    coop_t *t = ebmc_run_state(run);
    ebmc_ctx_t *ctx = t->ctx;
    /* The encoder's heads start at zero bias and tiny weights, where the KL term and its
     * gradient vanish (mu = 0, s = 0): give their biases N(0, 0.5^2) values, so that one
     * iteration exercises the KL and the reparameterisation with e^s != 1 (the saved I0 holds
     * them: the reference starts from the same weights). */
    const char *heads[2] = {"fc_mu.bias", "fc_logstd.bias"};
    for (int i = 0; vae && !strcmp(t->c.mc.arch, "coopvaebm") && i < 2; i++) {
        const ebmc_net_tensor *b = ebmc_net_tensor_find(t->I, heads[i]);
        ebmc_rng_key key = {77, 21, NULL, (uint32_t)i};
        if (!b || ebmc_init_normal(ctx, b->data, 1, b->count, 0.5f, key)) return die("heads", heads[i]);
    }
    if (save_nets(t, out, 0, err, sizeof err)) return die("save", err);
    int64_t epoch;
    if (ebmc_run_next_batch(run, &epoch, err, sizeof err)) return die("loader", err);
    if (ebmc_run_iteration(run, 1, epoch, true)) return die("iteration", ebmc_ctx_error(ctx));
    if (save_nets(t, out, 1, err, sizeof err)) return die("save", err);

    int B = t->B, N = t->N, nz = t->nz, C = t->c.mc.img_c, S = t->c.mc.img_size, K = t->c.steps;
    size_t nimg = (size_t)N * t->img, nzb = (size_t)N * nz;
    ebmc_st_tensor ts[32];
    int nt = 0;
#define IMG(name, dev) ts[nt++] = (ebmc_st_tensor){name, EBMC_DT_F32, 4, {N, C, S, S}, host_copy(ctx, dev, nimg)}
#define LAT(name, dev) ts[nt++] = (ebmc_st_tensor){name, EBMC_DT_F32, 4, {N, nz, 1, 1}, host_copy(ctx, dev, nzb)}
    ts[nt++] = (ebmc_st_tensor){"x", EBMC_DT_F32, 4, {B, C, S, S}, ebmc_run_batch(run)};
    LAT("z", t->z);
    IMG("x0", t->gen);
    IMG("x_tilde", ebmc_chain_state(t->cx));
    ts[nt++] = (ebmc_st_tensor){"f_x", EBMC_DT_F32, 1, {B}, host_copy(ctx, ebmc_tape_output(t->tEd, 0), (size_t)B)};
    ts[nt++] = (ebmc_st_tensor){"f_xt", EBMC_DT_F32, 1, {N}, host_copy(ctx, ebmc_tape_output(t->tEs, 0), (size_t)N)};
    ts[nt++] = (ebmc_st_tensor){"trace", EBMC_DT_F32, 1, {K}, host_copy(ctx, ebmc_potential_trace(t->px), (size_t)K)};
    if (vae) {
        LAT("mu", ebmc_tape_output(t->tI, 0));
        LAT("s", ebmc_tape_output(t->tI, 1));
        LAT("eps", t->eps);
        LAT("z_enc", t->zenc);
        IMG("g_zenc", ebmc_tape_output(t->tGu, 0));
    } else {
        LAT("z_used", t->cz ? ebmc_chain_state(t->cz) : t->z);
        IMG("g_fit", ebmc_tape_output(t->tGu, 0));
    }
    ts[nt++] = (ebmc_st_tensor){"metrics", EBMC_DT_F32, 1, {C_COUNT}, t->hmet};
    int64_t steps[2] = {ebmc_chain_step(t->cx), t->cz ? ebmc_chain_step(t->cz) : 0};
    ts[nt++] = (ebmc_st_tensor){"steps", EBMC_DT_I64, 1, {2}, steps};
#undef IMG
#undef LAT
    char *cfg_json = ebmc_config_to_json(cfg);
    char ebuf[32];
    snprintf(ebuf, sizeof ebuf, "%lld", (long long)epoch);
    const char *meta[][2] = {{"config", cfg_json}, {"recipe", argv[1]}, {"metrics", "edata,erev,egen,elast,recon,kl"},
                             {"epoch", ebuf}};
    char path[4096];
    snprintf(path, sizeof path, "%s/step.safetensors", out);
    if (ebmc_st_write(path, ts, nt, meta, 4, err, sizeof err)) return die("write", err);
    printf("coop_step_dump: %s B=%d N=%d nz=%d %dx%dx%d K=%d: %d tensors written to %s\n", argv[1], B, N, nz, C, S,
           S, K, nt, out);
    free(cfg_json);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return 0;
}
