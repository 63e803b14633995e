/* The named architectures (specs/teaching.md 1(e), 2(b), 3.1, 3.2), with the PyTorch state_dict
 * names of the authors' modules where those exist:
 *   dualmcmc_cifar10   jcui1224/dual-MCMC nets.py: _Cifar10_netE (+ add_sn), _Cifar10_netG,
 *                      _Cifar10_netI. Names exact.
 *   dualmcmc_celeba64  the _CelebA64_* nets of the same repository's later nets.py, which we could
 *                      not read: topology from the spec; names follow the CIFAR-10 modules'
 *                      scheme (conv_1, block2.., lin_6 / lin_1, block2.., bn_6, conv6 / main.*,
 *                      conv51, conv52) and are an inference.
 *   shortrun           enijkamp/short_run F: f.0 .. f.8. The net outputs the score f (= -E).
 *   coopvaebm          jianwen-xie/CoopVAEBM net_type 'cifar', 32x32 only as the reference
 *                      (TensorFlow: no state_dict; names are ours; BatchNorm as tf.contrib's
 *                      default: no gamma, eps 1e-3, decay 0.999). The descriptor outputs the
 *                      score f (= -E).
 *   coopnets_cifar     FANG-Xiaolin/pytorch-CoopNets CIFAR nets at the port's HEAD
 *                      (Descriptor_cifar, Generator_cifar; LeakyReLU slope 0.01, torch's
 *                      default); names exact. The descriptor outputs the score f (= -E), the sum
 *                      of its 100 fc outputs.
 *   toy2d, mnist       small nets of ours for 2-D data and MNIST (28x28).
 *   igebm              openai/ebm_code_release models.py ResNet32Large (unconditional, TensorFlow:
 *                      names follow its variable scopes, c1_pre, res_optim_res_c1, ...). */
#include "ebmc/models.h"
#include "nn/models_pd.h"
#include <stdio.h>
#include <string.h>

static const char *const ARCHS[] = {"dualmcmc_cifar10", "dualmcmc_celeba64", "shortrun",
                                    "coopvaebm", "coopnets_cifar", "toy2d", "mnist", "igebm",
                                    "pd_mlp", "pd_mnist", NULL};

const char *const *ebmc_model_arch_list(void) { return ARCHS; }

bool ebmc_model_defaults(const char *arch, ebmc_model_cfg *c) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    c->img_c = 3;
    c->img_size = 32;
    if (!arch) return false;
    if (!strcmp(arch, "dualmcmc_cifar10")) {
        c->nz = 128; c->ngf = 512; c->ndf = 512; c->nif = 128;
    } else if (!strcmp(arch, "dualmcmc_celeba64")) {
        c->nz = 128; c->ngf = 1024; c->ndf = 1024; c->nif = 128; c->img_size = 64;
    } else if (!strcmp(arch, "shortrun")) {
        c->ndf = 64;
    } else if (!strcmp(arch, "coopvaebm")) {
        c->nz = 100; c->ngf = 64; c->ndf = 64; c->nif = 64;
    } else if (!strcmp(arch, "coopnets_cifar")) {
        c->nz = 100; c->ngf = 64; c->ndf = 64;
    } else if (!strcmp(arch, "toy2d")) {
        c->nz = 2; c->hidden = 128; c->img_c = 2; c->img_size = 1;
    } else if (!strcmp(arch, "mnist")) {
        c->nz = 16; c->ngf = 32; c->ndf = 32; c->nif = 32; c->img_c = 1; c->img_size = 28;
    } else if (!strcmp(arch, "igebm")) {
        c->ndf = 128;
    } else if (!ebmc_model_pd_defaults(arch, c)) { /* pd_mlp, pd_mnist: models_pd.c */
        return false;
    }
    return true;
}

/* ---- small builders ---- */

static const ebmc_init XAVIER = {EBMC_INIT_XAVIER_NORMAL, 0};
static const ebmc_init DEFAULT = {EBMC_INIT_DEFAULT, 0};
static const ebmc_init ZERO = {EBMC_INIT_ZERO, 0};
static const ebmc_init STD1 = {EBMC_INIT_NORMAL, 1.0f};

static int conv(ebmc_net_t *net, int in, const char *name, int c_out, int k, int s, int p,
                bool bias, bool sn, ebmc_init w, ebmc_init b) {
    ebmc_conv_spec sp = {.c_out = c_out, .k = k, .stride = s, .pad = p, .bias = bias, .sn = sn,
                         .w_init = w, .b_init = b};
    return ebmc_nn_conv(net, in, name, &sp);
}

static int conv_tf(ebmc_net_t *net, int in, const char *name, int c_out, int k, int s, bool tr,
                   ebmc_init w) {
    ebmc_conv_spec sp = {.c_out = c_out, .k = k, .stride = s, .same_tf = true, .bias = true,
                         .w_init = w, .b_init = ZERO};
    return tr ? ebmc_nn_convt(net, in, name, &sp) : ebmc_nn_conv(net, in, name, &sp);
}

/* ReLU / LeakyReLU(0.2), or SiLU for every one of them when cfg->smooth (tests only) */
static int act(ebmc_net_t *net, int in, const ebmc_model_cfg *c, ebmc_act_kind k) {
    return ebmc_nn_act(net, in, c->smooth ? EBMC_ACT_SILU : k, 0.2f);
}
#define relu(net, in) act(net, in, c, EBMC_ACT_RELU)
#define lrelu(net, in) act(net, in, c, EBMC_ACT_LRELU)

static const char *nm(char *buf, size_t n, const char *a, const char *b) {
    snprintf(buf, n, "%s.%s", a, b);
    return buf;
}

/* Dual-MCMC EBM blocks (no normalisation, convs without bias, SN everywhere, Xavier weights) */
static int ebm_block(const ebmc_model_cfg *c, ebmc_net_t *net, int x, const char *p, int c_in, int c_out, bool down,
                     bool start) {
    char b[96];
    int h = start ? x : relu(net, x);
    h = conv(net, h, nm(b, sizeof b, p, "conv1"), c_out, 3, 1, 1, false, true, XAVIER, DEFAULT);
    h = relu(net, h);
    h = conv(net, h, nm(b, sizeof b, p, "conv2"), c_out, 3, 1, 1, false, true, XAVIER, DEFAULT);
    if (down) h = ebmc_nn_avgpool2(net, h);
    int y = x;
    bool sc = c_in != c_out || down;
    if (start) { /* start block: pool, then 1x1 */
        if (down) y = ebmc_nn_avgpool2(net, y);
        if (sc) y = conv(net, y, nm(b, sizeof b, p, "sc"), c_out, 1, 1, 0, false, true, XAVIER, DEFAULT);
    } else {     /* block: 1x1, then pool */
        if (sc) y = conv(net, y, nm(b, sizeof b, p, "sc"), c_out, 1, 1, 0, false, true, XAVIER, DEFAULT);
        if (down) y = ebmc_nn_avgpool2(net, y);
    }
    return ebmc_nn_add(net, h, y);
}

/* Dual-MCMC generator block: BN(N(0,1) weights) -> ReLU -> [up] -> conv -> BN -> ReLU -> conv,
 * shortcut [up] -> 1x1 (learnable when upsampling or channels change) */
static int gen_block(const ebmc_model_cfg *c, ebmc_net_t *net, int x, const char *p, int c_in, int c_out, bool up) {
    char b[96];
    int h = ebmc_nn_bn(net, x, nm(b, sizeof b, p, "bn_1"), STD1);
    h = relu(net, h);
    if (up) h = ebmc_nn_upsample(net, h, EBMC_UPSAMPLE_BILINEAR_AC);
    h = conv(net, h, nm(b, sizeof b, p, "conv1"), c_out, 3, 1, 1, true, false, XAVIER, DEFAULT);
    h = ebmc_nn_bn(net, h, nm(b, sizeof b, p, "bn_2"), STD1);
    h = relu(net, h);
    h = conv(net, h, nm(b, sizeof b, p, "conv2"), c_out, 3, 1, 1, true, false, XAVIER, DEFAULT);
    int y = x;
    if (up) y = ebmc_nn_upsample(net, y, EBMC_UPSAMPLE_BILINEAR_AC);
    if (c_in != c_out || up)
        y = conv(net, y, nm(b, sizeof b, p, "sc"), c_out, 1, 1, 0, true, false, XAVIER, DEFAULT);
    return ebmc_nn_add(net, h, y);
}

static ebmc_net_t *dualmcmc(const ebmc_model_cfg *c, ebmc_net_role role, bool celeba) {
    char b[64];
    if (role == EBMC_NET_E) {
        ebmc_net_t *net = ebmc_net_create("E", c->img_c, c->img_size, c->img_size);
        int nb = celeba ? 5 : 4;
        int w[6];
        for (int i = 0; i < nb; i++) /* channel widths per block */
            w[i] = celeba ? c->ndf >> (nb - 1 - i) : c->ndf;
        int x = ebm_block(c, net, 0, "conv_1", c->img_c, w[0], true, true);
        for (int i = 1; i < nb; i++) {
            snprintf(b, sizeof b, "block%d", i + 1);
            bool down = celeba ? true : i < 2;
            x = ebm_block(c, net, x, b, w[i - 1], w[i], down, false);
        }
        x = relu(net, x);
        x = ebmc_nn_gpool(net, x, EBMC_GPOOL_AVG);
        snprintf(b, sizeof b, "lin_%d", nb + 1);
        x = ebmc_nn_linear(net, x, b, 1, false, true, DEFAULT, DEFAULT);
        ebmc_net_output(net, x);
        return net;
    }
    if (role == EBMC_NET_G) {
        ebmc_net_t *net = ebmc_net_create("G", c->nz, 1, 1);
        int x = ebmc_nn_linear(net, 0, "lin_1", 16 * c->ngf, true, false, DEFAULT, DEFAULT);
        x = ebmc_nn_reshape(net, x, c->ngf, 4, 4);
        int nb = celeba ? 4 : 3, cin = c->ngf;
        for (int i = 0; i < nb; i++) {
            int cout = celeba ? cin / 2 : cin;
            snprintf(b, sizeof b, "block%d", i + 2);
            x = gen_block(c, net, x, b, cin, cout, true);
            cin = cout;
        }
        snprintf(b, sizeof b, "bn_%d", nb + 2);
        x = ebmc_nn_bn(net, x, b, STD1);
        x = relu(net, x);
        snprintf(b, sizeof b, "conv%d", nb + 2);
        x = conv(net, x, b, c->img_c, 3, 1, 1, true, false, XAVIER, DEFAULT);
        x = ebmc_nn_act(net, x, EBMC_ACT_TANH, 0);
        ebmc_net_output(net, x);
        return net;
    }
    /* I: strided conv encoder, LReLU(0.2), no bias, no normalisation; heads conv4x4 valid */
    ebmc_net_t *net = ebmc_net_create("I", c->img_c, c->img_size, c->img_size);
    int x = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(b, sizeof b, "main.%d", 2 * i);
        int cout = c->nif << i;
        if (i == 0 && !celeba) x = conv(net, x, b, cout, 3, 1, 1, false, false, XAVIER, DEFAULT);
        else x = conv(net, x, b, cout, 4, 2, 1, false, false, XAVIER, DEFAULT);
        x = lrelu(net, x);
    }
    int mu = conv(net, x, "conv51", c->nz, 4, 1, 0, true, false, XAVIER, DEFAULT);
    int lv = conv(net, x, "conv52", c->nz, 4, 1, 0, true, false, XAVIER, DEFAULT);
    ebmc_net_output(net, mu);
    ebmc_net_output(net, lv);
    return net;
}

static ebmc_net_t *shortrun(const ebmc_model_cfg *c) {
    ebmc_net_t *net = ebmc_net_create("E", c->img_c, c->img_size, c->img_size);
    int nf = c->ndf;
    int x = conv(net, 0, "f.0", nf, 3, 1, 1, true, false, DEFAULT, DEFAULT);
    x = lrelu(net, x);
    x = conv(net, x, "f.2", nf * 2, 4, 2, 1, true, false, DEFAULT, DEFAULT);
    x = lrelu(net, x);
    x = conv(net, x, "f.4", nf * 4, 4, 2, 1, true, false, DEFAULT, DEFAULT);
    x = lrelu(net, x);
    x = conv(net, x, "f.6", nf * 8, 4, 2, 1, true, false, DEFAULT, DEFAULT);
    x = lrelu(net, x);
    x = conv(net, x, "f.8", 1, 4, 1, 0, true, false, DEFAULT, DEFAULT);
    ebmc_net_output(net, x);
    return net;
}

static ebmc_net_t *coopvaebm(const ebmc_model_cfg *c, ebmc_net_role role) {
    const ebmc_init N005 = {EBMC_INIT_NORMAL, 0.005f};
    if (role == EBMC_NET_E) {
        ebmc_net_t *net = ebmc_net_create("E", c->img_c, c->img_size, c->img_size);
        int d = c->ndf;
        int x = lrelu(net, conv_tf(net, 0, "conv1", d, 3, 1, false, N005));
        x = lrelu(net, conv_tf(net, x, "conv2", 2 * d, 4, 2, false, N005));
        x = lrelu(net, conv_tf(net, x, "conv3", 4 * d, 4, 2, false, N005));
        x = lrelu(net, conv_tf(net, x, "conv4", 4 * d, 4, 2, false, N005));
        int hw = c->img_size / 8;
        x = conv(net, x, "fc", 1, hw, 1, 0, true, false, N005, ZERO); /* covers the whole map */
        ebmc_net_output(net, x);
        return net;
    }
    if (role == EBMC_NET_I) {
        ebmc_net_t *net = ebmc_net_create("I", c->img_c, c->img_size, c->img_size);
        int d = c->nif;
        int x = lrelu(net, conv_tf(net, 0, "conv1", d, 3, 1, false, N005));
        x = lrelu(net, conv_tf(net, x, "conv2", 2 * d, 4, 2, false, N005));
        x = lrelu(net, conv_tf(net, x, "conv3", 4 * d, 4, 2, false, N005));
        x = lrelu(net, conv_tf(net, x, "conv4", 8 * d, 4, 2, false, N005));
        /* tf.layers.dense without an initializer: glorot_uniform kernel, zero bias */
        const ebmc_init GLOROT = {EBMC_INIT_XAVIER_UNIFORM, 0};
        int mu = ebmc_nn_linear(net, x, "fc_mu", c->nz, true, false, GLOROT, ZERO);
        int ls = ebmc_nn_linear(net, x, "fc_logstd", c->nz, true, false, GLOROT, ZERO);
        ls = ebmc_nn_scale(net, ls, 0.5f); /* the second head, scaled by 0.5, is the log-std */
        ebmc_net_output(net, mu);
        ebmc_net_output(net, ls);
        return net;
    }
    ebmc_net_t *net = ebmc_net_create("G", c->nz, 1, 1);
    int g = c->ngf;
    ebmc_conv_spec v4 = {.c_out = 4 * g, .k = 4, .stride = 1, .pad = 0, .bias = true, .w_init = N005, .b_init = ZERO};
    const ebmc_bn_spec tfbn = {DEFAULT, 1e-3f, 0.001f, true}; /* tf.contrib batch_norm */
    int x = ebmc_nn_convt(net, 0, "deconv1", &v4); /* 1x1 -> 4x4 'VALID' */
    x = lrelu(net, ebmc_nn_bn_ex(net, x, "bn1", &tfbn));
    x = lrelu(net, ebmc_nn_bn_ex(net, conv_tf(net, x, "deconv2", 2 * g, 4, 2, true, N005), "bn2", &tfbn));
    x = lrelu(net, ebmc_nn_bn_ex(net, conv_tf(net, x, "deconv3", g, 4, 2, true, N005), "bn3", &tfbn));
    x = lrelu(net, conv_tf(net, x, "deconv4", g, 3, 2, true, N005));
    x = conv_tf(net, x, "deconv5", c->img_c, 3, 1, true, N005);
    x = ebmc_nn_act(net, x, EBMC_ACT_TANH, 0);
    ebmc_net_output(net, x);
    return net;
}

static int lrelu001(ebmc_net_t *net, int in, const ebmc_model_cfg *c) {
    return ebmc_nn_act(net, in, c->smooth ? EBMC_ACT_SILU : EBMC_ACT_LRELU, 0.01f);
}

/* FANG-Xiaolin/pytorch-CoopNets model/model.py at HEAD (0b8639e), Descriptor_cifar and
 * Generator_cifar (lines 71-147), with ndf = 64, ngf = 64 giving the port's widths:
 *   E: conv1 5x5 s2 p1 (3 -> ndf) 32 -> 15, conv2 3x3 s2 p1 (-> 2 ndf) -> 8, conv3 3x3 s1 p1
 *      (-> 4 ndf) -> 8, each LeakyReLU(0.01); fc (4 ndf 8 8 = 16384 -> 100); f = the sum of the 100
 *      outputs (the port backpropagates ones(100))
 *   G: convt1 4x4 s1 p0 (nz -> 4 ngf) 1 -> 4, convt2..convt4 5x5 s2 p2 op1 (-> 2 ngf, ngf, 3)
 *      -> 8, 16, 32; BatchNorm + LeakyReLU(0.01) after the first three; tanh */
static ebmc_net_t *coopnets_cifar(const ebmc_model_cfg *c, ebmc_net_role role) {
    char b[32];
    if (role == EBMC_NET_E) {
        ebmc_net_t *net = ebmc_net_create("E", c->img_c, c->img_size, c->img_size);
        int x = lrelu001(net, conv(net, 0, "conv1", c->ndf, 5, 2, 1, true, false, DEFAULT, DEFAULT), c);
        x = lrelu001(net, conv(net, x, "conv2", 2 * c->ndf, 3, 2, 1, true, false, DEFAULT, DEFAULT), c);
        x = lrelu001(net, conv(net, x, "conv3", 4 * c->ndf, 3, 1, 1, true, false, DEFAULT, DEFAULT), c);
        x = ebmc_nn_linear(net, x, "fc", 100, true, false, DEFAULT, DEFAULT);
        x = ebmc_nn_reshape(net, x, 1, 1, 100);
        x = ebmc_nn_gpool(net, x, EBMC_GPOOL_SUM); /* f = sum of the 100 outputs */
        ebmc_net_output(net, x);
        return net;
    }
    ebmc_net_t *net = ebmc_net_create("G", c->nz, 1, 1);
    ebmc_conv_spec s1 = {.c_out = 4 * c->ngf, .k = 4, .stride = 1, .pad = 0, .bias = true, .w_init = DEFAULT, .b_init = DEFAULT};
    int x = lrelu001(net, ebmc_nn_bn(net, ebmc_nn_convt(net, 0, "convt1", &s1), "bn1", DEFAULT), c);
    for (int i = 2; i <= 4; i++) {
        int cout = i < 4 ? (4 * c->ngf) >> (i - 1) : c->img_c;
        ebmc_conv_spec sp = {.c_out = cout, .k = 5, .stride = 2, .pad = 2, .out_pad = 1, .bias = true, .w_init = DEFAULT, .b_init = DEFAULT};
        snprintf(b, sizeof b, "convt%d", i);
        x = ebmc_nn_convt(net, x, b, &sp);
        if (i < 4) {
            snprintf(b, sizeof b, "bn%d", i);
            x = lrelu001(net, ebmc_nn_bn(net, x, b, DEFAULT), c);
        }
    }
    x = ebmc_nn_act(net, x, EBMC_ACT_TANH, 0);
    ebmc_net_output(net, x);
    return net;
}

static ebmc_net_t *toy2d(const ebmc_model_cfg *c, ebmc_net_role role) {
    int d_in = role == EBMC_NET_G ? c->nz : c->img_c;
    ebmc_net_t *net = ebmc_net_create(role == EBMC_NET_E ? "E" : role == EBMC_NET_G ? "G" : "I", d_in, 1, 1);
    ebmc_act_kind a = (role == EBMC_NET_E || c->smooth) ? EBMC_ACT_SILU : EBMC_ACT_LRELU;
    int x = ebmc_nn_act(net, ebmc_nn_linear(net, 0, "net.0", c->hidden, true, false, DEFAULT, DEFAULT), a, 0.2f);
    x = ebmc_nn_act(net, ebmc_nn_linear(net, x, "net.2", c->hidden, true, false, DEFAULT, DEFAULT), a, 0.2f);
    if (role == EBMC_NET_E) {
        ebmc_net_output(net, ebmc_nn_linear(net, x, "net.4", 1, true, false, DEFAULT, DEFAULT));
    } else if (role == EBMC_NET_G) {
        ebmc_net_output(net, ebmc_nn_linear(net, x, "net.4", c->img_c, true, false, DEFAULT, DEFAULT));
    } else {
        ebmc_net_output(net, ebmc_nn_linear(net, x, "mu", c->nz, true, false, DEFAULT, DEFAULT));
        ebmc_net_output(net, ebmc_nn_linear(net, x, "logvar", c->nz, true, false, DEFAULT, DEFAULT));
    }
    return net;
}

static ebmc_net_t *mnist(const ebmc_model_cfg *c, ebmc_net_role role) {
    int s = c->img_size / 4;
    if (role == EBMC_NET_G) {
        ebmc_net_t *net = ebmc_net_create("G", c->nz, 1, 1);
        int g = c->ngf;
        int x = ebmc_nn_linear(net, 0, "lin", 4 * g * s * s, true, false, DEFAULT, DEFAULT);
        x = ebmc_nn_reshape(net, x, 4 * g, s, s);
        x = relu(net, ebmc_nn_bn(net, x, "bn1", DEFAULT));
        ebmc_conv_spec u1 = {.c_out = 2 * g, .k = 4, .stride = 2, .pad = 1, .bias = true, .w_init = XAVIER, .b_init = DEFAULT};
        x = relu(net, ebmc_nn_bn(net, ebmc_nn_convt(net, x, "up1", &u1), "bn2", DEFAULT));
        ebmc_conv_spec u2 = u1;
        u2.c_out = g;
        x = relu(net, ebmc_nn_bn(net, ebmc_nn_convt(net, x, "up2", &u2), "bn3", DEFAULT));
        x = conv(net, x, "out", c->img_c, 3, 1, 1, true, false, XAVIER, DEFAULT);
        ebmc_net_output(net, ebmc_nn_act(net, x, EBMC_ACT_TANH, 0));
        return net;
    }
    bool is_e = role == EBMC_NET_E;
    int d = is_e ? c->ndf : c->nif;
    ebmc_net_t *net = ebmc_net_create(is_e ? "E" : "I", c->img_c, c->img_size, c->img_size);
    int x = lrelu(net, conv(net, 0, "conv1", d, 3, 1, 1, true, false, XAVIER, DEFAULT));
    x = lrelu(net, conv(net, x, "conv2", 2 * d, 4, 2, 1, true, false, XAVIER, DEFAULT));
    x = lrelu(net, conv(net, x, "conv3", 4 * d, 4, 2, 1, true, false, XAVIER, DEFAULT));
    if (is_e) {
        ebmc_net_output(net, conv(net, x, "head", 1, s, 1, 0, true, false, XAVIER, DEFAULT));
    } else {
        ebmc_net_output(net, conv(net, x, "mu", c->nz, s, 1, 0, true, false, XAVIER, DEFAULT));
        ebmc_net_output(net, conv(net, x, "logvar", c->nz, s, 1, 0, true, false, XAVIER, DEFAULT));
    }
    return net;
}

/* IGEBM (ResNet32Large, utils.py smart_res_block / conv_block, unconditional): every conv 3x3
 * 'SAME' without bias (conv_block's use_bias is False: the 'b' variables are never used), with
 * spectral norm (W ~ N(0,1) before it). A residual block:
 *   h = conv_c1(x + gb1) -> [dropout p (utils.py:538-539, ResNet32Large(train=True))] ->
 *       LReLU(0.2) -> conv_c2(h + gb2) * g2     (c2: W ~ N(0, 1e-10) and the
 *       lower-bounded SN W / max(sigma + 1e-6, 1), so a block starts as its shortcut)
 *   y = LReLU(pool?(h + shortcut)),  shortcut = x, or the 'adaptive' conv when channels change
 *   (a 3x3 conv as the code's init_res_weight(k) gives it, not the 1x1 of the spec's summary) */
static int igebm_block(ebmc_net_t *net, int x, const ebmc_model_cfg *c, const char *name, int c_in, int c_out,
                       bool down) {
    const ebmc_init N1 = {EBMC_INIT_NORMAL, 1.0f}, NT = {EBMC_INIT_NORMAL, 1e-10f}, ONE = {EBMC_INIT_ONE, 0};
    char p[96];
    ebmc_conv_spec cs = {.c_out = c_out, .k = 3, .stride = 1, .same_tf = true, .sn = true, .w_init = N1};
    snprintf(p, sizeof p, "%s_res_c1", name);
    int h = ebmc_nn_conv(net, ebmc_nn_chan_bias(net, x, p, "gb", ZERO), p, &cs);
    if (c->dropout > 0) h = ebmc_nn_dropout(net, h, c->dropout); /* train=True: tf.layers.dropout(0.5) */
    h = lrelu(net, h);
    snprintf(p, sizeof p, "%s_res_c2", name);
    ebmc_conv_spec c2 = cs;
    c2.w_init = NT;
    c2.sn_lower_bound = true;
    h = ebmc_nn_conv(net, ebmc_nn_chan_bias(net, h, p, "gb", ZERO), p, &c2);
    h = ebmc_nn_chan_scale(net, h, p, "g", ONE);
    int sc = x;
    if (c_in != c_out) {
        snprintf(p, sizeof p, "%s_res_adaptive", name);
        sc = ebmc_nn_conv(net, x, p, &cs);
    }
    int y = ebmc_nn_add(net, h, sc);
    if (down) y = ebmc_nn_avgpool2(net, y);
    return lrelu(net, y);
}

/* ResNet32Large.forward: c1_pre (conv + LReLU), res_optim (down), res_1, res_2, res_3 (x2, down),
 * res_4, res_5, res_6 (x2, down), res_7, res_8; ReLU, sum over H and W, fc5 (no SN; Glorot
 * uniform, tf.contrib.layers.xavier_initializer's default, utils.py get_weight) -> the energy */
static ebmc_net_t *igebm(const ebmc_model_cfg *c) {
    ebmc_net_t *net = ebmc_net_create("E", c->img_c, c->img_size, c->img_size);
    const ebmc_init N1 = {EBMC_INIT_NORMAL, 1.0f};
    ebmc_conv_spec cs = {.c_out = c->ndf, .k = 3, .stride = 1, .same_tf = true, .sn = true, .w_init = N1};
    int x = lrelu(net, ebmc_nn_conv(net, 0, "c1_pre", &cs));
    static const char *const names[9] = {"res_optim", "res_1", "res_2", "res_3", "res_4", "res_5",
                                         "res_6", "res_7", "res_8"};
    int w = c->ndf;
    for (int i = 0; i < 9; i++) {
        int w_out = c->ndf << (i / 3);
        x = igebm_block(net, x, c, names[i], w, w_out, i % 3 == 0);
        w = w_out;
    }
    x = ebmc_nn_gpool(net, relu(net, x), EBMC_GPOOL_SUM);
    const ebmc_init GLOROT_U = {EBMC_INIT_XAVIER_UNIFORM, 0};
    x = ebmc_nn_linear(net, x, "fc5", 1, true, false, GLOROT_U, ZERO);
    ebmc_net_output(net, x);
    return net;
}

ebmc_net_t *ebmc_model_build(const ebmc_model_cfg *c, ebmc_net_role role, char *err,
                             size_t errlen) {
    const char *a = c->arch ? c->arch : "";
    ebmc_net_t *net = NULL;
    bool has_g = true, has_i = true;
    if (c->img_c < 1 || c->img_size < 1) {
        snprintf(err, errlen, "%s: image shape %dx%dx%d", a, c->img_c, c->img_size, c->img_size);
        return NULL;
    }
    if (!strcmp(a, "dualmcmc_cifar10") || !strcmp(a, "dualmcmc_celeba64")) {
        bool celeba = !strcmp(a, "dualmcmc_celeba64");
        if (c->img_size != (celeba ? 64 : 32)) {
            snprintf(err, errlen, "%s: image size must be %d, got %d", a, celeba ? 64 : 32, c->img_size);
            return NULL;
        }
        if (celeba && (c->ndf % 16 || c->ngf % 16)) {
            snprintf(err, errlen, "%s: ndf and ngf must be multiples of 16 (got %d, %d)", a, c->ndf, c->ngf);
            return NULL;
        }
        net = dualmcmc(c, role, celeba);
    } else if (!strcmp(a, "shortrun")) {
        has_g = has_i = false;
        if (role == EBMC_NET_E) net = shortrun(c);
    } else if (!strcmp(a, "coopvaebm")) {
        if (c->img_size != 32) {
            snprintf(err, errlen, "%s: the reference nets are for 32x32 images, got %d", a, c->img_size);
            return NULL;
        }
        net = coopvaebm(c, role);
    } else if (!strcmp(a, "coopnets_cifar")) {
        has_i = false;
        if (c->img_size != 32) {
            snprintf(err, errlen, "%s: the port's CIFAR nets are for 32x32 images, got %d", a, c->img_size);
            return NULL;
        }
        if (role != EBMC_NET_I) net = coopnets_cifar(c, role);
    } else if (!strcmp(a, "toy2d")) {
        net = toy2d(c, role);
    } else if (!strcmp(a, "igebm")) {
        has_g = has_i = false;
        if (c->img_size < 8) {
            snprintf(err, errlen, "%s: three 2x2 poolings need images of at least 8x8, got %d", a, c->img_size);
            return NULL;
        }
        if (role == EBMC_NET_E) net = igebm(c);
    } else if (!strcmp(a, "mnist")) {
        if (c->img_size % 4) {
            snprintf(err, errlen, "%s: image size must be a multiple of 4, got %d", a, c->img_size);
            return NULL;
        }
        net = mnist(c, role);
    } else if (!strncmp(a, "pd_", 3)) { /* models_pd.c */
        has_g = has_i = false;
        err[0] = '\0';
        net = ebmc_model_pd_build(c, role, err, errlen);
        if (!net && err[0]) return NULL;
    } else {
        snprintf(err, errlen, "unknown architecture '%s' (known: dualmcmc_cifar10, "
                 "dualmcmc_celeba64, shortrun, coopvaebm, coopnets_cifar, toy2d, mnist, igebm, pd_mlp, pd_mnist)", a);
        return NULL;
    }
    if (!net) {
        snprintf(err, errlen, "%s has no %s network", a,
                 role == EBMC_NET_G ? (has_g ? "such" : "generator") : (has_i ? "such" : "inference"));
        return NULL;
    }
    const char *roles[] = {"E", "G", "I"};
    char v[256];
    ebmc_net_set_meta(net, "arch", a);
    ebmc_net_set_meta(net, "role", roles[role]);
    snprintf(v, sizeof v, "{\"nz\": %d, \"ngf\": %d, \"ndf\": %d, \"nif\": %d, \"img_c\": %d, "
             "\"img_size\": %d, \"hidden\": %d}", c->nz, c->ngf, c->ndf, c->nif, c->img_c,
             c->img_size, c->hidden);
    ebmc_net_set_meta(net, "widths", v);
    return net;
}
