/* The architectures of Particle Dynamics for Learning EBMs (Neklyudov, Jaini & Welling 2021;
 * specs/particles.md 2(a), 2(b)), with the state_dict names of necludov/particle-EBMs' modules:
 *   pd_mlp    models.EBM(networks.SmallMLP(D), base_dist): E(x) = MLP(x) - log N(x; mu, sigma),
 *             MLP = Linear(D,H)-Swish(H)-Linear(H,H)-Swish(H)-Linear(H,1) with a learnable Swish
 *             slope per unit; names net.net.{0,2,4}.{weight,bias}, net.net.{1,3}.beta, base_mu,
 *             base_logstd. D = img_c (2 for the toy data), H = hidden (300).
 *   pd_mnist  models.EBM(networks.MNISTSmallConvNet(nc=64, relu=False)) without a base: five
 *             spectral-norm convolutions (3/1/1, 4/2/1 x3, 3/1/0) with Swish(nc) after each, then
 *             Linear(nc, 1); names net.net.{0,2,4,6,8}.{weight_orig,bias,weight_u,weight_v},
 *             net.net.{1,3,5,7,9}.beta, net.out.{weight,bias}. 28x28x1 input. */
#include "nn/models_pd.h"
#include <stdio.h>
#include <string.h>

static const ebmc_init DEF = {EBMC_INIT_DEFAULT, 0};

bool ebmc_model_pd_defaults(const char *arch, ebmc_model_cfg *c) {
    if (!strcmp(arch, "pd_mlp")) {
        c->hidden = 300; c->img_c = 2; c->img_size = 1;
    } else if (!strcmp(arch, "pd_mnist")) {
        c->ndf = 64; c->img_c = 1; c->img_size = 28;
    } else {
        return false;
    }
    return true;
}

static ebmc_net_t *pd_mlp(const ebmc_model_cfg *c) {
    ebmc_net_t *net = ebmc_net_create("E", c->img_c, 1, 1);
    int x = ebmc_nn_linear(net, 0, "net.net.0", c->hidden, true, false, DEF, DEF);
    x = ebmc_nn_pswish(net, x, "net.net.1");
    x = ebmc_nn_linear(net, x, "net.net.2", c->hidden, true, false, DEF, DEF);
    x = ebmc_nn_pswish(net, x, "net.net.3");
    x = ebmc_nn_linear(net, x, "net.net.4", 1, true, false, DEF, DEF);
    int b = ebmc_nn_gauss_base(net, 0, "base_");
    ebmc_net_output(net, ebmc_nn_add(net, x, b));
    return net;
}

static ebmc_net_t *pd_mnist(const ebmc_model_cfg *c) {
    ebmc_net_t *net = ebmc_net_create("E", 1, c->img_size, c->img_size);
    const int k[5] = {3, 4, 4, 4, 3}, s[5] = {1, 2, 2, 2, 1}, p[5] = {1, 1, 1, 1, 0};
    int x = 0;
    for (int i = 0; i < 5; i++) {
        char conv[32], act[32];
        snprintf(conv, sizeof conv, "net.net.%d", 2 * i);
        snprintf(act, sizeof act, "net.net.%d", 2 * i + 1);
        ebmc_conv_spec sp = {.c_out = c->ndf, .k = k[i], .stride = s[i], .pad = p[i], .bias = true, .sn = true,
                             .w_init = DEF, .b_init = DEF};
        x = ebmc_nn_pswish(net, ebmc_nn_conv(net, x, conv, &sp), act);
    }
    ebmc_net_output(net, ebmc_nn_linear(net, x, "net.out", 1, true, false, DEF, DEF));
    return net;
}

ebmc_net_t *ebmc_model_pd_build(const ebmc_model_cfg *c, ebmc_net_role role, char *err, size_t errlen) {
    if (role != EBMC_NET_E) return NULL; /* an EBM alone */
    if (!strcmp(c->arch, "pd_mlp")) {
        if (c->img_size != 1 || c->hidden < 1) {
            snprintf(err, errlen, "pd_mlp: needs points (img_size 1) and hidden >= 1");
            return NULL;
        }
        return pd_mlp(c);
    }
    if (strcmp(c->arch, "pd_mnist")) {
        snprintf(err, errlen, "unknown architecture '%s'", c->arch);
        return NULL;
    }
    if (c->img_size != 28 || c->img_c != 1) {
        snprintf(err, errlen, "pd_mnist: needs 1x28x28 images, got %dx%dx%d", c->img_c, c->img_size, c->img_size);
        return NULL;
    }
    return pd_mnist(c);
}
