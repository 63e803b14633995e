/* Test tool for tests/oracle/test_persistent_step_torch.py: builds a small persistent (IGEBM)
 * trainer on the CPU backend through the recipe table (run.share_tapes=false), runs two
 * iterations (so that the replay buffer holds more than one batch and is reused), saves a
 * checkpoint OUTDIR/ck0 (E.safetensors; state.safetensors: Adam state, chain counter, buffer
 * storage, fill count and next slot), then runs iteration 3 and writes:
 *   E1.safetensors    the net after it
 *   step.safetensors:
 *     x        (B,C,H,W) the batch of iteration 3 (in [-1,1]);  x_pos  the dequantised batch
 *     x_neg    the chains' final states;  e_pos, e_neg (B) E(x+), E(x-)
 *     trace    (K) sum_b E at each gradient evaluation of the chain
 *     grad.NAME  E's gradient of the loss;  metrics (PC_COUNT) pc_t.hmet
 *     buffer   the buffer storage after the push (uint8 as float values 0..255)
 *     counts   (3) int64: chain step counter, buffer fill count and next slot after
 *   with metadata "config" (ebmc_config_to_json), "it" (3) and "offsets" (NAME:offset of each
 *   parameter in the net's arena: the layout of ck0's optE.exp_avg and exp_avg_sq).
 * usage: pc_step_dump OUTDIR [section.key=value ...] */
#include "ebmc/checkpoint.h"
#include "ebmc/config.h"
#include "ebmc/safetensors.h"
#include "recipes/persistent.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STEP_DUMP_TOOL "pc_step_dump"
#include "step_dump_util.h"

static int step(ebmc_run_t *run, int64_t it, char *err, size_t errlen) {
    int64_t epoch;
    if (ebmc_run_next_batch(run, &epoch, err, errlen)) return 1;
    if (ebmc_run_iteration(run, it, epoch, true)) {
        snprintf(err, errlen, "%s", ebmc_ctx_error(ebmc_run_ctx(run)));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return die("usage", "pc_step_dump OUTDIR [section.key=value ...]");
    const char *out = argv[1];
    const ebmc_recipe *rc = ebmc_recipe_find("persistent");
    ebmc_config_t *cfg = ebmc_recipe_config_create(rc);
    char err[1024], path[4096];
    /* the code's sampler, regulariser, optimiser and buffer rules; ResNet32Large at width 4 on
     * 16x16 images; 3 steps; a buffer of 10 (batch 4: reused from iteration 3, wraps at its push); the clip at
     * 0.001, not 0.01: this small net's |dE/dx| has a median of ~9e-4, so the clip acts on about
     * half the elements (at 0.01 on none); the clipped Adam's bound at 0.5 sqrt(v_hat) + 0, not
     * 3 sqrt(v_hat) + 0.1: this net's gradients are far below 0.1, so the authors' bound acts on
     * none of them (at 0.5: on about a third) */
    const char *defaults[] = {"run.recipe=persistent", "data.dataset=shapes", "data.count=16", "data.size=16", "model.img_size=16", "model.arch=igebm",
                              "model.ndf=4", "train.batch_size=4", "langevin.steps=3", "buffer.size=10", "langevin.clip=0.001", "train.clip_std=1", "train.clip_floor=1e-5",
                              "run.backend=cpu", "run.graphs=false", "run.share_tapes=false"};
    ebmc_run_t *run;
    if (open_run(rc, cfg, defaults, sizeof defaults / sizeof defaults[0], argc, argv, 2, &run)) return 1;
    pc_t *t = ebmc_run_state(run);
    ebmc_ctx_t *ctx = t->ctx;
    for (int64_t it = 1; it <= 2; it++)
        if (step(run, it, err, sizeof err)) return die("warm-up", err);
    snprintf(path, sizeof path, "%s/ck0", out);
    if (ebmc_run_save(run, path, 2, err, sizeof err)) return die("save", err);
    if (step(run, 3, err, sizeof err)) return die("iteration", err);
    snprintf(path, sizeof path, "%s/E1.safetensors", out);
    if (ebmc_net_save(t->E, path, NULL, 0, err, sizeof err)) return die("save", err);

    int B = t->B, C = t->c.mc.img_c, S = t->c.mc.img_size, K = t->c.steps;
    size_t nimg = (size_t)B * t->img, nbuf = (size_t)t->c.buf_size * t->img;
    ebmc_st_tensor ts[96];
    static char gnames[64][96];
    int nt = 0;
    ts[nt++] = (ebmc_st_tensor){"x", EBMC_DT_F32, 4, {B, C, S, S}, ebmc_run_batch(run)};
    ts[nt++] = (ebmc_st_tensor){"x_pos", EBMC_DT_F32, 4, {B, C, S, S}, host_copy(ctx, t->x_pos, nimg)};
    ts[nt++] = (ebmc_st_tensor){"x_neg", EBMC_DT_F32, 4, {B, C, S, S}, host_copy(ctx, ebmc_chain_state(t->chain), nimg)};
    ts[nt++] = (ebmc_st_tensor){"e_pos", EBMC_DT_F32, 1, {B}, host_copy(ctx, ebmc_tape_output(t->tP, 0), (size_t)B)};
    ts[nt++] = (ebmc_st_tensor){"e_neg", EBMC_DT_F32, 1, {B}, host_copy(ctx, ebmc_tape_output(t->tN, 0), (size_t)B)};
    ts[nt++] = (ebmc_st_tensor){"trace", EBMC_DT_F32, 1, {K}, host_copy(ctx, ebmc_potential_trace(t->pot), (size_t)K)};
    ts[nt++] = (ebmc_st_tensor){"metrics", EBMC_DT_F32, 1, {PC_COUNT}, t->hmet};
    float *buf = ebmc_xmalloc(nbuf * sizeof(float), "dump");
    uint8_t *q = ebmc_xmalloc(nbuf, "dump");
    if (ebmc_copy(ctx, q, ebmc_replay_storage(t->buf), nbuf, EBMC_COPY_D2H)) return die("copy", ebmc_ctx_error(ctx));
    for (size_t i = 0; i < nbuf; i++) buf[i] = q[i];
    ts[nt++] = (ebmc_st_tensor){"buffer", EBMC_DT_F32, 2, {t->c.buf_size, (int64_t)t->img}, buf};
    int ng = 0;
    for (int i = 0; i < ebmc_net_tensor_count(t->E) && ng < 64; i++) {
        const ebmc_net_tensor *p = ebmc_net_tensor_at(t->E, i);
        if (!p->grad) continue;
        snprintf(gnames[ng], sizeof gnames[ng], "grad.%s", p->name);
        ebmc_st_tensor g = {gnames[ng++], EBMC_DT_F32, p->ndim, {0}, host_copy(ctx, p->grad, p->count)};
        for (int d = 0; d < p->ndim; d++) g.shape[d] = p->shape[d];
        ts[nt++] = g;
    }
    int64_t counts[3] = {ebmc_chain_step(t->chain), ebmc_replay_count(t->buf), ebmc_replay_head(t->buf)};
    ts[nt++] = (ebmc_st_tensor){"counts", EBMC_DT_I64, 1, {3}, counts};
    /* each parameter's offset in the arena (the order of optE.exp_avg / exp_avg_sq) */
    static char offs[8192];
    size_t used = 0;
    for (int i = 0; i < ebmc_net_tensor_count(t->E); i++) {
        const ebmc_net_tensor *p = ebmc_net_tensor_at(t->E, i);
        if (!p->grad) continue;
        used += (size_t)snprintf(offs + used, sizeof offs - used, "%s%s:%td", used ? "," : "", p->name,
                                 p->data - ebmc_net_params(t->E));
    }
    char *cfg_json = ebmc_config_to_json(cfg);
    const char *meta[][2] = {{"config", cfg_json}, {"it", "3"}, {"offsets", offs}};
    snprintf(path, sizeof path, "%s/step.safetensors", out);
    if (ebmc_st_write(path, ts, nt, meta, 3, err, sizeof err)) return die("write", err);
    printf("pc_step_dump: B=%d %dx%dx%d K=%d buffer %d: %d tensors written to %s\n", B, C, S, S, K,
           t->c.buf_size, nt, out);
    free(cfg_json);
    ebmc_run_free(run);
    ebmc_config_free(cfg);
    return 0;
}
