/* Test tool for tests/oracle/test_nets_torch.py: builds one network on the CPU backend, saves its
 * initial weights as OUT/model.safetensors, runs one forward pass (spectral-norm power iteration
 * and BatchNorm running statistics advance, as in PyTorch's training mode) and a full backward
 * with random output gradients, and writes OUT/io.safetensors with:
 *   x, out<i>, r<i> (the output gradients), dx, grad.<parameter name>, after.<buffer name>.
 * usage: nn_dump ARCH E|G|I OUTDIR [key=value ...]   keys: nz ngf ndf nif hidden img_size batch seed */
#include "ebmc/checkpoint.h"
#include "ebmc/models.h"
#include "ebmc/safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t S = 88172645463325252ull;
static double unif(void) {
    S ^= S << 13; S ^= S >> 7; S ^= S << 17;
    return ((double)(S >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(void) { return (float)(sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif())); }

static int die(const char *msg) {
    fprintf(stderr, "nn_dump: %s\n", msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) return die("usage: nn_dump ARCH E|G|I OUTDIR [key=value ...]");
    ebmc_model_cfg cfg;
    if (!ebmc_model_defaults(argv[1], &cfg)) return die("unknown architecture");
    int role = argv[2][0] == 'E' ? EBMC_NET_E : argv[2][0] == 'G' ? EBMC_NET_G : EBMC_NET_I;
    int batch = 4;
    unsigned long long seed = 1;
    for (int i = 4; i < argc; i++) {
        char k[32];
        long v;
        if (sscanf(argv[i], "%31[^=]=%ld", k, &v) != 2) return die("bad key=value");
        if (!strcmp(k, "nz")) cfg.nz = (int)v;
        else if (!strcmp(k, "ngf")) cfg.ngf = (int)v;
        else if (!strcmp(k, "ndf")) cfg.ndf = (int)v;
        else if (!strcmp(k, "nif")) cfg.nif = (int)v;
        else if (!strcmp(k, "hidden")) cfg.hidden = (int)v;
        else if (!strcmp(k, "img_size")) cfg.img_size = (int)v;
        else if (!strcmp(k, "batch")) batch = (int)v;
        else if (!strcmp(k, "seed")) seed = (unsigned long long)v;
        else return die("unknown key");
    }
    S += seed * 0x9E3779B97F4A7C15ull;
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    o.kind = EBMC_BACKEND_CPU;
    ebmc_ctx_t *ctx;
    char err[512];
    if (ebmc_ctx_create(&o, &ctx, err, sizeof err)) return die(err);
    ebmc_net_t *net = ebmc_model_build(&cfg, role, err, sizeof err);
    if (!net) return die(err);
    if (ebmc_net_finalize(net, ctx, true, seed)) return die(ebmc_net_error(net));
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", argv[3]);
    if (ebmc_net_save(net, path, NULL, 0, err, sizeof err)) return die(err);

    ebmc_tape_t *tape;
    if (ebmc_tape_create(net, batch, true, &tape)) return die(ebmc_net_error(net));
    int c, h, w;
    ebmc_net_input_shape(net, &c, &h, &w);
    size_t nx = (size_t)batch * c * h * w;
    float *x = malloc(nx * 4), *dx = malloc(nx * 4);
    for (size_t i = 0; i < nx; i++) x[i] = role == EBMC_NET_G ? normal() : (float)(2 * unif() - 1);
    if (ebmc_net_forward(net, tape, batch, x)) return die(ebmc_ctx_error(ctx));
    int no = ebmc_net_n_outputs(net);
    float *r[2];
    const float *dys[2];
    ebmc_st_tensor t[512];
    char names[512][160];
    int nt = 0;
    t[nt++] = (ebmc_st_tensor){"x", EBMC_DT_F32, 4, {batch, c, h, w}, x};
    for (int i = 0; i < no; i++) {
        int v = ebmc_net_output_value(net, i), oc, oh, ow;
        ebmc_net_value_shape(net, v, &oc, &oh, &ow);
        size_t n = (size_t)batch * oc * oh * ow;
        r[i] = malloc(n * 4);
        for (size_t k = 0; k < n; k++) r[i][k] = normal();
        dys[i] = r[i];
        snprintf(names[nt], sizeof names[0], "out%d", i);
        t[nt++] = (ebmc_st_tensor){names[nt - 1], EBMC_DT_F32, 4, {batch, oc, oh, ow}, ebmc_tape_output(tape, i)};
        snprintf(names[nt], sizeof names[0], "r%d", i);
        t[nt++] = (ebmc_st_tensor){names[nt - 1], EBMC_DT_F32, 4, {batch, oc, oh, ow}, r[i]};
    }
    if (ebmc_net_backward(net, tape, dys, EBMC_GRAD_FULL, dx, 0.0f)) return die(ebmc_ctx_error(ctx));
    t[nt++] = (ebmc_st_tensor){"dx", EBMC_DT_F32, 4, {batch, c, h, w}, dx};
    int64_t counter = ebmc_net_bn_batches(net);
    for (int i = 0; i < ebmc_net_tensor_count(net) && nt < 510; i++) {
        const ebmc_net_tensor *p = ebmc_net_tensor_at(net, i);
        ebmc_st_tensor e = {names[nt], EBMC_DT_F32, p->ndim, {0}, NULL};
        for (int d = 0; d < p->ndim; d++) e.shape[d] = p->shape[d];
        if (p->trainable) {
            snprintf(names[nt], sizeof names[0], "grad.%s", p->name);
            e.data = p->grad;
        } else {
            snprintf(names[nt], sizeof names[0], "after.%s", p->name);
            e.data = p->is_counter ? (const void *)&counter : (const void *)p->data;
            if (p->is_counter) e.dtype = EBMC_DT_I64;
        }
        t[nt++] = e;
    }
    snprintf(path, sizeof path, "%s/io.safetensors", argv[3]);
    if (ebmc_st_write(path, t, nt, NULL, 0, err, sizeof err)) return die(err);
    printf("nn_dump: %s %s: %zu parameters, %d tensors written to %s\n", argv[1], argv[2],
           ebmc_net_param_count(net), nt, argv[3]);
    return 0;
}
