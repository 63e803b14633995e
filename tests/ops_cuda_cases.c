/* The parity cases of test_ops_cuda: what one row of its table means for each op, as
 * descriptors, buffers (inputs, poisoned outputs, accumulated outputs) with their fills, and a
 * label; the host fills, the consistent BatchNorm statistics and spectral-norm u, the seed of a
 * case from its label, and the call of the row's op on a context. Linked into the test_ops_cuda
 * executable; the rows and the runner are in test_ops_cuda.c. */
#include "ops_cuda_cases.h"
#include "ebmc/comm.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static void add(pcase *pc, const char *name, size_t n, int role, int fill) {
    pc->b[pc->nb++] = (bspec){name, n, role, fill, false, false};
}

/* n doubles (2n float slots), compared as doubles */
static void add_f64(pcase *pc, const char *name, size_t n, int role, int fill) {
    pc->b[pc->nb++] = (bspec){name, 2 * n, role, fill, false, true};
}

/* The Philox key of a sampler row: s = 1 reads the step from a device counter buffer (added
 * last, so parity_call_op can point step_base at it), else a fixed offset. */
static ebmc_rng_key row_key(const prow *r, pcase *pc) {
    ebmc_rng_key k = {.seed = 0x0123456789ABCDEFull ^ (uint64_t)r->n, .stream = 5,
                      .step_base = NULL, .step_offset = r->s ? 3u : 11u};
    pc->step_buf = -1;
    return k;
}

/* Sampler rows with an odd chain count run as a data-parallel rank whose chain 0 is global chain
 * 1000 + 3 n (ebmc_ctx_set_chain_offset 1000, ebmc_ctx_set_chain_rank 3 for an op on n chains):
 * the offset must reach the CPU's and the kernels' Philox counters alike. */
static uint32_t row_chain0(const prow *r) {
    bool sampler = r->op == EBMC_OP_LANGEVIN || r->op == EBMC_OP_RNG || r->op == EBMC_OP_REPARAM ||
                   r->op == EBMC_OP_REPLAY_SAMPLE || r->op == EBMC_OP_DROPOUT;
    return sampler && (r->n & 1) ? 1000u : 0u;
}

static void add_step_buf(const prow *r, pcase *pc) {
    if (!r->s) return;
    pc->step_buf = pc->nb;
    add(pc, "step", 1, B_IN, F_STEP);
}

static bool is_convt(ebmc_op op) {
    return op >= EBMC_OP_CONVT2D_FWD && op <= EBMC_OP_CONVT2D_BWD_FILTER;
}

static ebmc_conv_desc conv_of(const prow *r) {
    if (r->pad == SAME)
        return ebmc_conv_desc_same_tf(r->n, r->c, r->h, r->w, r->co, r->k, r->s, is_convt(r->op));
    if (is_convt(r->op))
        return ebmc_convt_desc_make(r->n, r->c, r->h, r->w, r->co, r->k, r->s, r->pad, r->opad);
    return ebmc_conv_desc_make(r->n, r->c, r->h, r->w, r->co, r->k, r->s, r->pad);
}

/* The weighted-walker ops and the Gaussian mixture (cpu/jarzynski_cpu.c, kernels/jarzynski.cu) */
static void jz_build_case(const prow *r, pcase *pc, size_t cnt, int ob) {
    const size_t E = (size_t)r->c * r->h * r->w, n = (size_t)r->n;
    switch (r->op) {
    case EBMC_OP_JZ_LOGW:
        pc->jzl = (ebmc_jz_logw_desc){r->n, E, (ebmc_jz_mode)r->var, r->x1, r->k ? 0.1 : sqrt(2.0 * r->x1)};
        snprintf(pc->label, sizeof pc->label, "jz_logw (%d,%zu) %s h %g sigma %g", r->n, E,
                 r->var ? "ediff" : "ula", r->x1, pc->jzl.sigma);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "x_new", cnt, B_IN, F_NORMAL);
        add(pc, "u_old", n, B_IN, F_NORMAL);
        add(pc, "g_old", cnt, B_IN, F_NORMAL);
        add(pc, "u_new", n, B_IN, F_NORMAL);
        add(pc, "g_new", cnt, B_IN, F_NORMAL);
        add_f64(pc, "logw", n, B_INOUT, F_LOGW);
        break;
    case EBMC_OP_JZ_STATS:
        pc->jzs = (ebmc_jz_stats_desc){r->n, r->x1};
        snprintf(pc->label, sizeof pc->label, "jz_stats n %d w_scale %g%s", r->n, r->x1, r->var ? " no w" : "");
        add_f64(pc, "logw", n, B_IN, F_LOGW);
        add_f64(pc, "stats", EBMC_JZ_STATS_LEN, B_INOUT, F_LOGW); /* [5..7] must stay */
        if (!r->var) add(pc, "w", n, B_OUT, F_NORMAL);
        break;
    case EBMC_OP_JZ_RESAMPLE:
        pc->jzr = (ebmc_jz_resample_desc){r->n, (ebmc_resample_scheme)r->var, r->x1, row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "jz_resample n %d %s threshold %g", r->n,
                 r->var ? "multinomial" : "systematic", r->x1);
        add_f64(pc, "logw", n, B_INOUT, F_LOGW);
        add_f64(pc, "stats", EBMC_JZ_STATS_LEN, B_INOUT, F_ZEROD);
        add_f64(pc, "cdf", n, B_IN, F_ZEROD); /* scratch */
        add(pc, "idx", n, B_OUT, F_INDEX);
        pc->b[pc->nb - 1].bytes = true;
        add_step_buf(r, pc);
        break;
    case EBMC_OP_GMM_EVAL: case EBMC_OP_GMM_PGRAD: {
        pc->gmm = (ebmc_gmm_desc){r->n, r->c, r->co, r->x1, r->beta};
        snprintf(pc->label, sizeof pc->label, "%s n %d dim %d k %d scale %g beta %g%s", ebmc_op_name(r->op), r->n, r->c,
                 r->co, r->x1, r->beta, r->var ? " var" : "");
        add(pc, "x", n * r->c, B_IN, F_SHIFTED);
        add(pc, "means", (size_t)r->co * r->c, B_IN, F_NORMAL);
        if (r->op == EBMC_OP_GMM_EVAL) {
            add(pc, "z", (size_t)r->co, B_IN, F_NORMAL);
            add(pc, "u", n, B_OUT, F_NORMAL);
            add(pc, "resp", n * r->co, B_OUT, F_NORMAL);
            if (!r->var) add(pc, "grad", n * r->c, B_OUT, F_NORMAL);
        } else {
            add(pc, "resp", n * r->co, B_IN, F_POS);
            add(pc, "w", n, B_IN, F_POS);
            add(pc, "gmeans", (size_t)r->co * r->c, ob, F_NORMAL);
            add(pc, "gz", (size_t)r->co, ob, F_NORMAL);
        }
        break;
    }
    default: break; /* ops without a parity row */
    }
}

/* Descriptors, buffers and a printable label of a row. */
void parity_build_case(const prow *r, pcase *pc) {
    memset(pc, 0, sizeof *pc);
    const int ob = r->beta != 0 ? B_INOUT : B_OUT; /* the role of an output with beta */
    const size_t cnt = (size_t)r->n * r->c * r->h * r->w;
    switch (r->op) {
    case EBMC_OP_CONV2D_FWD: case EBMC_OP_CONV2D_BWD_DATA: case EBMC_OP_CONV2D_BWD_FILTER:
    case EBMC_OP_CONVT2D_FWD: case EBMC_OP_CONVT2D_BWD_DATA: case EBMC_OP_CONVT2D_BWD_FILTER: {
        ebmc_conv_desc d = conv_of(r);
        pc->conv = d;
        int ho = 0, wo = 0;
        ebmc_conv_out_hw(&d, &ho, &wo);
        const size_t nx = ebmc_conv_x_count(&d), nw = ebmc_conv_w_count(&d),
                     ny = ebmc_conv_y_count(&d);
        snprintf(pc->label, sizeof pc->label,
                 "%s (%d,%d,%d,%d) k%d s%d pad t%d b%d l%d r%d op%d -> (%d,%d,%d,%d) beta %g",
                 ebmc_op_name(r->op), d.n, d.c_in, d.h, d.w, d.kh, d.stride_h, d.pad_t, d.pad_b,
                 d.pad_l, d.pad_r, d.out_pad_h, d.n, d.c_out, ho, wo, r->beta);
        if (r->op == EBMC_OP_CONV2D_FWD || r->op == EBMC_OP_CONVT2D_FWD) {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "y", ny, B_OUT, F_NORMAL);
        } else if (r->op == EBMC_OP_CONV2D_BWD_DATA || r->op == EBMC_OP_CONVT2D_BWD_DATA) {
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "dx", nx, ob, F_NORMAL);
        } else {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "dw", nw, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_LINEAR_FWD: case EBMC_OP_LINEAR_BWD_DATA: case EBMC_OP_LINEAR_BWD_FILTER: {
        pc->lin = (ebmc_linear_desc){.n = r->n, .in = r->c, .out = r->co};
        const size_t nx = (size_t)r->n * r->c, nw = (size_t)r->co * r->c,
                     ny = (size_t)r->n * r->co;
        snprintf(pc->label, sizeof pc->label, "%s x(%d,%d) W(%d,%d)%s beta %g",
                 ebmc_op_name(r->op), r->n, r->c, r->co, r->c,
                 r->var ? (r->op == EBMC_OP_LINEAR_FWD ? " +b" : " +db") : "", r->beta);
        if (r->op == EBMC_OP_LINEAR_FWD) {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            if (r->var) add(pc, "b", (size_t)r->co, B_IN, F_NORMAL);
            add(pc, "y", ny, B_OUT, F_NORMAL);
        } else if (r->op == EBMC_OP_LINEAR_BWD_DATA) {
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "dx", nx, ob, F_NORMAL);
        } else {
            add(pc, "x", nx, B_IN, F_NORMAL);
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "dw", nw, ob, F_NORMAL);
            if (r->var) add(pc, "db", (size_t)r->co, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_BIAS_FWD: case EBMC_OP_BIAS_BWD:
        pc->t4 = (ebmc_t4_desc){r->n, r->c, r->h, r->w};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->n, r->c, r->h, r->w, r->beta);
        if (r->op == EBMC_OP_BIAS_FWD) {
            add(pc, "b", (size_t)r->c, B_IN, F_NORMAL);
            add(pc, "y", cnt, B_INOUT, F_NORMAL); /* in place: y += b */
        } else {
            add(pc, "dy", cnt, B_IN, F_NORMAL);
            add(pc, "db", (size_t)r->c, ob, F_NORMAL);
        }
        break;
    case EBMC_OP_ACT_FWD: case EBMC_OP_ACT_BWD: {
        static const char *const kinds[] = {"identity", "relu", "lrelu", "tanh", "silu"};
        pc->act = (ebmc_act_desc){.kind = (ebmc_act_kind)r->var, .slope = r->x1, .count = cnt};
        snprintf(pc->label, sizeof pc->label, "%s %s count %zu beta %g", ebmc_op_name(r->op),
                 kinds[r->var], cnt, r->beta);
        if (r->op == EBMC_OP_ACT_FWD) {
            add(pc, "x", cnt, B_IN, F_AWAY);
            add(pc, "y", cnt, B_OUT, F_NORMAL);
        } else {
            add(pc, "x", cnt, B_IN, F_AWAY);
            add(pc, "y", cnt, B_IN, F_TANH);
            add(pc, "dy", cnt, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_BN_FWD: case EBMC_OP_BN_BWD: {
        pc->bn = (ebmc_bn_desc){r->n, r->c, r->h, r->w, 1e-5f, 0.1f};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d,%d)%s beta %g", ebmc_op_name(r->op),
                 r->n, r->c, r->h, r->w, r->var ? " +running" : "", r->beta);
        const size_t c = (size_t)r->c;
        if (r->op == EBMC_OP_BN_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "gamma", c, B_IN, F_POS);
            add(pc, "beta", c, B_IN, F_NORMAL);
            add(pc, "y", cnt, B_OUT, F_NORMAL);
            add(pc, "save_mean", c, B_OUT, F_NORMAL);
            add(pc, "save_invstd", c, B_OUT, F_NORMAL);
            if (r->var) {
                add(pc, "running_mean", c, B_INOUT, F_NORMAL);
                add(pc, "running_var", c, B_INOUT, F_POS);
            }
        } else {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "dy", cnt, B_IN, F_NORMAL);
            add(pc, "gamma", c, B_IN, F_POS);
            add(pc, "save_mean", c, B_IN, F_NORMAL);   /* replaced by x's statistics */
            add(pc, "save_invstd", c, B_IN, F_POS);    /* idem */
            add(pc, "dx", cnt, ob, F_NORMAL);
            add(pc, "dgamma", c, ob, F_NORMAL);
            add(pc, "dbeta", c, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_SN_POWER: case EBMC_OP_SN_BWD: {
        const int rows = r->co, cols = r->c * r->k * r->k;
        /* s: IGEBM's lower bound; x1 = 1: its divisor-1 regime (W tiny, or sigma = 1 given) */
        pc->sn = (ebmc_sn_desc){rows, cols, r->var, 1e-12f, r->s};
        snprintf(pc->label, sizeof pc->label, "%s W(%d,%d) iters %d beta %g%s%s",
                 ebmc_op_name(r->op), rows, cols, r->var, r->beta, r->s ? " lower_bound" : "",
                 r->x1 == 1.0f ? " (divisor 1)" : "");
        const size_t nw = (size_t)rows * cols;
        if (r->op == EBMC_OP_SN_POWER) {
            add(pc, "w", nw, B_IN, r->x1 == 1.0f ? F_SMALLPOS : F_NORMAL);
            add(pc, "u", (size_t)rows, B_INOUT, F_UNIT);
            add(pc, "v", (size_t)cols, B_INOUT, F_UNIT);
            add(pc, "sigma", 1, B_OUT, F_NORMAL);
            add(pc, "w_sn", nw, B_OUT, F_NORMAL);
        } else {
            add(pc, "w", nw, B_IN, F_NORMAL);
            add(pc, "u", (size_t)rows, B_IN, F_UNIT);
            add(pc, "v", (size_t)cols, B_IN, F_UNIT);
            add(pc, "sigma", 1, B_IN, r->x1 == 1.0f ? F_ONEBITS : F_SIGMA);
            add(pc, "dw_sn", nw, B_IN, F_NORMAL);
            add(pc, "dw", nw, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_UPSAMPLE_FWD: case EBMC_OP_UPSAMPLE_BWD:
        pc->up = (ebmc_upsample_desc){r->n, r->c, r->h, r->w, (ebmc_upsample_mode)r->var};
        snprintf(pc->label, sizeof pc->label, "%s %s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->var == EBMC_UPSAMPLE_NEAREST ? "nearest" : "bilinear-ac", r->n, r->c, r->h,
                 r->w, r->beta);
        if (r->op == EBMC_OP_UPSAMPLE_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "y", 4 * cnt, B_OUT, F_NORMAL);
        } else {
            add(pc, "dy", 4 * cnt, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    case EBMC_OP_AVGPOOL2_FWD: case EBMC_OP_AVGPOOL2_BWD: {
        pc->t4 = (ebmc_t4_desc){r->n, r->c, r->h, r->w};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->n, r->c, r->h, r->w, r->beta);
        const size_t ny = (size_t)r->n * r->c * (r->h / 2) * (r->w / 2);
        if (r->op == EBMC_OP_AVGPOOL2_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "y", ny, B_OUT, F_NORMAL);
        } else {
            add(pc, "dy", ny, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    }
    case EBMC_OP_GPOOL_FWD: case EBMC_OP_GPOOL_BWD:
        pc->gp = (ebmc_gpool_desc){r->n, r->c, r->h, r->w, (ebmc_gpool_mode)r->var};
        snprintf(pc->label, sizeof pc->label, "%s %s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->var == EBMC_GPOOL_SUM ? "sum" : "avg", r->n, r->c, r->h, r->w, r->beta);
        if (r->op == EBMC_OP_GPOOL_FWD) {
            add(pc, "x", cnt, B_IN, F_NORMAL);
            add(pc, "y", (size_t)r->n * r->c, B_OUT, F_NORMAL);
        } else {
            add(pc, "dy", (size_t)r->n * r->c, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
        }
        break;
    case EBMC_OP_AXPBY:
        pc->ax = (ebmc_axpby_desc){.count = cnt, .a = r->x1, .b = r->beta};
        snprintf(pc->label, sizeof pc->label, "axpby count %zu a %g b %g", cnt, r->x1, r->beta);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "y", cnt, ob, F_NORMAL);
        break;
    case EBMC_OP_FILL:
        pc->fill = (ebmc_fill_desc){.count = cnt, .value = r->x1};
        snprintf(pc->label, sizeof pc->label, "fill count %zu value %g", cnt, r->x1);
        add(pc, "y", cnt, B_OUT, F_NORMAL);
        break;
    case EBMC_OP_REDUCE: {
        const size_t cols = (size_t)r->c * r->h * r->w;
        pc->red = (ebmc_reduce_desc){.rows = r->n, .cols = cols,
                                     .mode = (ebmc_reduce_mode)r->var, .beta = r->beta};
        snprintf(pc->label, sizeof pc->label, "reduce %s (%d,%zu) beta %g",
                 r->var == EBMC_REDUCE_SUMSQ ? "sumsq" : "sum", r->n, cols, r->beta);
        /* mean 1: a row sum of zero-mean data can cancel to ~0 and make a one-element nmse
         * measure the cancellation (K u^2 |x|^2 / S^2), not the reduction */
        add(pc, "x", (size_t)r->n * cols, B_IN, F_SHIFTED);
        add(pc, "out", (size_t)r->n, ob, F_NORMAL);
        break;
    }
    case EBMC_OP_ADAM:
        pc->adam = (ebmc_adam_desc){.count = cnt, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999,
                                    .eps = 1e-8, .weight_decay = r->x1, .step = 1,
                                    .clip_std = r->co ? 3.0 : 0.0, .clip_floor = r->co ? 0.1 : 0.0};
        snprintf(pc->label, sizeof pc->label, "adam count %zu steps %d wd %g%s", cnt, r->var,
                 r->x1, r->co ? " clipped (IGEBM)" : "");
        add(pc, "param", cnt, B_INOUT, F_NORMAL);
        add(pc, "grad", cnt, B_IN, F_NORMAL);
        add(pc, "m", cnt, B_INOUT, F_NORMAL);
        add(pc, "v", cnt, B_INOUT, F_SMALLPOS);
        break;
    case EBMC_OP_LANGEVIN: {
        static const char *const modes[] = {"off", "after", "next"};
        const size_t E = (size_t)r->c * r->h * r->w;
        pc->lgv = (ebmc_langevin_desc){.n_chains = r->n, .chain_elems = E, .a = 0.1f, .b = 0.05f,
                                       .c = 0.3f, .clip = r->x1, .clamp = r->co != 0, .lo = -1.0f,
                                       .hi = 1.0f, .noise = (ebmc_noise_mode)r->var,
                                       .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "langevin (%d,%zu) noise %s clip %g clamp %d step %s",
                 r->n, E, modes[r->var], r->x1, r->co, r->s ? "counter" : "offset");
        add(pc, "x", cnt, B_INOUT, F_NORMAL);
        add(pc, "g", cnt, B_IN, F_NORMAL);
        add_step_buf(r, pc);
        break;
    }
    case EBMC_OP_DROPOUT: {
        const size_t E = (size_t)r->c * r->h * r->w;
        pc->drop = (ebmc_dropout_desc){.rows = r->n, .row_elems = E, .group_off = (uint32_t)r->k, .p = r->x1,
                                       .beta = r->beta, .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "dropout (%d,%zu) p %g groups from %d beta %g step %s", r->n, E,
                 r->x1, r->k, r->beta, r->s ? "counter" : "offset");
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "y", cnt, ob, F_NORMAL);
        add_step_buf(r, pc);
        break;
    }
    case EBMC_OP_RNG: {
        const size_t E = (size_t)r->c * r->h * r->w;
        const bool nrm = r->var == EBMC_RNG_NORMAL;
        pc->rng = (ebmc_rng_desc){.n_chains = r->n, .chain_elems = E, .dist = (ebmc_rng_dist)r->var,
                                  .p0 = nrm ? 0.5f : -1.0f, .p1 = nrm ? 2.0f : 3.0f,
                                  .accumulate = r->beta != 0, .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "rng %s (%d,%zu)%s step %s", nrm ? "normal" : "uniform",
                 r->n, E, r->beta != 0 ? " accumulate" : "", r->s ? "counter" : "offset");
        add(pc, "y", cnt, ob, F_NORMAL);
        add_step_buf(r, pc);
        break;
    }
    case EBMC_OP_REPARAM: {
        const size_t E = (size_t)r->c * r->h * r->w;
        pc->rep = (ebmc_reparam_desc){.n_chains = r->n, .chain_elems = E, .k = r->x1,
                                      .rng = row_key(r, pc)};
        snprintf(pc->label, sizeof pc->label, "reparam (%d,%zu) k %g step %s", r->n, E, r->x1,
                 r->s ? "counter" : "offset");
        add(pc, "mu", cnt, B_IN, F_NORMAL);
        add(pc, "s", cnt, B_IN, F_NORMAL);
        add(pc, "z", cnt, B_OUT, F_NORMAL);
        add_step_buf(r, pc);
        break;
    }
    case EBMC_OP_SCALED_DIFF:
        pc->sdiff = (ebmc_scaled_diff_desc){.count = cnt, .alpha = r->x1, .beta = r->beta};
        snprintf(pc->label, sizeof pc->label, "scaled_diff count %zu alpha %g beta %g", cnt, r->x1,
                 r->beta);
        add(pc, "a", cnt, B_IN, F_NORMAL);
        add(pc, "b", cnt, B_IN, F_NORMAL);
        add(pc, "out", cnt, ob, F_NORMAL);
        break;
    case EBMC_OP_COUNTER_ADD:
        pc->cnt = (ebmc_counter_desc){.delta = (uint32_t)r->co};
        snprintf(pc->label, sizeof pc->label, "counter_add delta %d", r->co);
        add(pc, "counter", 1, B_INOUT, F_ONEBITS);
        pc->b[pc->nb - 1].bytes = true;
        break;
    case EBMC_OP_REPLAY_SAMPLE: case EBMC_OP_REPLAY_PUSH: {
        const size_t E = (size_t)r->c * r->h * r->w, entries = (size_t)r->co * E;
        const bool push = r->op == EBMC_OP_REPLAY_PUSH;
        pc->replay = (ebmc_replay_desc){.n_chains = r->n, .chain_elems = E, .capacity = r->co,
                                        .count = push ? r->co : r->k, .head = push ? r->k : 0,
                                        .p_reuse = r->x1, .lo = -1.0f, .hi = 1.0f,
                                        .u8 = r->var != 0, .rng = row_key(r, pc),
                                        .push_levels = (float)r->opad}; /* opad: 255 as IGEBM */
        snprintf(pc->label, sizeof pc->label, "%s %s (%d,%zu) capacity %d %s %d p_reuse %g levels %d",
                 ebmc_op_name(r->op), r->var ? "u8" : "f32", r->n, E, r->co,
                 push ? "head" : "count", r->k, r->x1, r->opad ? r->opad : 256);
        /* uint8 storage lives in a float buffer of ceil(bytes/4) (random bytes are valid
         * quantised values) and is compared byte for byte */
        const size_t nbuf = r->var ? CEIL_DIV(entries, (size_t)4) : entries;
        if (push) {
            add(pc, "buffer", nbuf, B_INOUT, F_NORMAL); /* slots not pushed to must stay */
            pc->b[pc->nb - 1].bytes = r->var != 0;
            add(pc, "x", cnt, B_IN, F_TANH);
        } else {
            add(pc, "buffer", nbuf, B_IN, F_NORMAL);
            add(pc, "x", cnt, B_OUT, F_NORMAL);
            add_step_buf(r, pc);
        }
        break;
    }
    case EBMC_OP_GAUSS_NLL: {
        const size_t cols = (size_t)r->c * r->h * r->w;
        pc->nll = (ebmc_gauss_nll_desc){.rows = r->n, .cols = cols, .eps = 1e-6f, .scale = r->x1,
                                        .beta = r->beta};
        snprintf(pc->label, sizeof pc->label, "gauss_nll (%d,%zu) scale %g beta %g%s", r->n, cols,
                 r->x1, r->beta, r->var ? " no loss" : "");
        add(pc, "z", cnt, B_IN, F_NORMAL);
        add(pc, "mu", cnt, B_IN, F_NORMAL);
        add(pc, "s", cnt, B_IN, F_NORMAL);
        add(pc, "dmu", cnt, ob, F_NORMAL);
        add(pc, "ds", cnt, ob, F_NORMAL);
        if (!r->var) add(pc, "loss", (size_t)r->n, B_OUT, F_NORMAL);
        break;
    }
    case EBMC_OP_CHAN_SCALE_FWD: case EBMC_OP_CHAN_SCALE_BWD:
        pc->t4 = (ebmc_t4_desc){r->n, r->c, r->h, r->w};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d,%d) beta %g", ebmc_op_name(r->op),
                 r->n, r->c, r->h, r->w, r->beta);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "s", (size_t)r->c, B_IN, F_NORMAL);
        if (r->op == EBMC_OP_CHAN_SCALE_FWD) {
            add(pc, "y", cnt, B_OUT, F_NORMAL);
        } else {
            add(pc, "dy", cnt, B_IN, F_NORMAL);
            add(pc, "dx", cnt, ob, F_NORMAL);
            add(pc, "ds", (size_t)r->c, ob, F_NORMAL);
        }
        break;
    case EBMC_OP_GAUSS_KL: {
        const size_t cols = (size_t)r->c * r->h * r->w;
        pc->kl = (ebmc_gauss_kl_desc){.rows = r->n, .cols = cols, .k = r->x1, .weight = 2.0f,
                                      .scale = 0.5f, .beta = r->beta};
        snprintf(pc->label, sizeof pc->label, "gauss_kl (%d,%zu) k %g beta %g%s", r->n, cols,
                 r->x1, r->beta, r->var == 1 ? " no loss" : r->var == 2 ? " no eps/dz" : "");
        add(pc, "mu", cnt, B_IN, F_NORMAL);
        add(pc, "s", cnt, B_IN, F_NORMAL);
        add(pc, "eps", cnt, B_IN, F_NORMAL);
        add(pc, "dz", cnt, B_IN, F_NORMAL);
        add(pc, "dmu", cnt, ob, F_NORMAL);
        add(pc, "ds", cnt, ob, F_NORMAL);
        if (r->var != 1) add(pc, "loss", (size_t)r->n, B_OUT, F_NORMAL);
        break;
    }
    case EBMC_OP_PSWISH_FWD: case EBMC_OP_PSWISH_BWD: {
        pc->psw = (ebmc_pswish_desc){r->n, r->c, (size_t)r->h * r->w};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d,%d) beta %g%s", ebmc_op_name(r->op), r->n, r->c,
                 r->h * r->w, r->beta, r->var ? " no db" : "");
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "b", (size_t)r->c, B_IN, F_SIGMA);
        if (r->op == EBMC_OP_PSWISH_FWD) {
            add(pc, "y", cnt, B_OUT, F_NORMAL);
            break;
        }
        add(pc, "dy", cnt, B_IN, F_NORMAL);
        add(pc, "dx", cnt, ob, F_NORMAL);
        if (!r->var) add(pc, "db", (size_t)r->c, ob, F_NORMAL);
        break;
    }
    case EBMC_OP_GBASE_FWD: case EBMC_OP_GBASE_BWD: {
        const int cols = r->c * r->h * r->w;
        pc->gb = (ebmc_gbase_desc){r->n, cols};
        snprintf(pc->label, sizeof pc->label, "%s (%d,%d) beta %g var %d", ebmc_op_name(r->op), r->n, cols,
                 r->beta, r->var);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "mu", (size_t)cols, B_IN, F_NORMAL);
        add(pc, "logstd", (size_t)cols, B_IN, F_TANH);
        if (r->op == EBMC_OP_GBASE_FWD) {
            add(pc, "y", (size_t)r->n, B_OUT, F_NORMAL);
            break;
        }
        add(pc, "dy", (size_t)r->n, B_IN, F_NORMAL);
        add(pc, "dx", cnt, r->var == 1 ? B_IN : ob, F_NORMAL);
        add(pc, "dmu", (size_t)cols, r->var == 2 ? B_IN : ob, F_NORMAL);
        add(pc, "dlogstd", (size_t)cols, r->var == 2 ? B_IN : ob, F_NORMAL);
        break;
    }
    case EBMC_OP_ROWS_COPY: {
        const size_t E = (size_t)r->c * r->h * r->w;
        const int xr = r->var == 3 ? r->co : r->n; /* var 3: the walkers' gather from co rows */
        pc->rows = (ebmc_rows_desc){r->n, E, xr, r->n};
        snprintf(pc->label, sizeof pc->label, "rows_copy %d x %zu var %d", r->n, E, r->var);
        add(pc, "x", (size_t)xr * E, B_IN, F_NORMAL);
        add(pc, "src", (size_t)r->n, B_IN, r->var == 3 ? F_INDEX : F_PERM);
        add(pc, "dst", (size_t)r->n, B_IN, F_PERM);
        add(pc, "y", cnt, B_INOUT, F_NORMAL); /* rows not written must stay */
        break;
    }
    case EBMC_OP_POOL2D_FWD: {
        pc->pool = (ebmc_pool_desc){r->n, r->c, r->h, r->w, r->k, r->s, r->pad, (ebmc_pool_mode)r->var, r->co != 0};
        const int ho = (r->h + 2 * r->pad - r->k) / r->s + 1, wo = (r->w + 2 * r->pad - r->k) / r->s + 1;
        snprintf(pc->label, sizeof pc->label, "pool2d %s k%d s%d p%d%s (%d,%d,%d,%d)", r->var ? "avg" : "max",
                 r->k, r->s, r->pad, r->co ? " count_include_pad" : "", r->n, r->c, r->h, r->w);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "y", (size_t)r->n * r->c * ho * wo, B_OUT, F_NORMAL);
        break;
    }
    case EBMC_OP_RESIZE_FWD:
        pc->rsz = (ebmc_resize_desc){r->n, r->c, r->h, r->w, r->co, r->k, r->var == 1};
        snprintf(pc->label, sizeof pc->label, "resize bilinear%s (%d,%d,%d,%d) -> %dx%d", r->var == 1 ? " tf1" : "",
                 r->n, r->c, r->h, r->w, r->co, r->k);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "y", (size_t)r->n * r->c * r->co * r->k, B_OUT, F_NORMAL);
        break;
    case EBMC_OP_CHAN_COPY:
        pc->ccp = (ebmc_chan_copy_desc){r->n, r->c, r->h * r->w, r->co, r->k};
        snprintf(pc->label, sizeof pc->label, "chan_copy (%d,%d,%d) into [%d,%d) of %d", r->n, r->c, r->h * r->w,
                 r->k, r->k + r->c, r->co);
        add(pc, "x", cnt, B_IN, F_NORMAL);
        add(pc, "y", (size_t)r->n * r->co * r->h * r->w, B_INOUT, F_NORMAL);
        break;
    default: jz_build_case(r, pc, cnt, ob); break;
    }
    if (row_chain0(r)) {
        size_t len = strlen(pc->label);
        snprintf(pc->label + len, sizeof pc->label - len, " chain0 %u rank 3", row_chain0(r));
    }
}

void parity_fill_host(tu_rng *rng, float *h, size_t n, int fill) {
    switch (fill) {
    case F_AWAY: tu_fill_away_from_zero(rng, h, n, 0.05f, 2.0f); break;
    case F_POS: tu_fill_uniform(rng, h, n, 0.5f, 1.5f); break;
    case F_TANH: tu_fill_uniform(rng, h, n, -0.99f, 0.99f); break;
    case F_SMALLPOS: tu_fill_uniform(rng, h, n, 0.0f, 1e-3f); break;
    case F_SIGMA: tu_fill_uniform(rng, h, n, 0.5f, 2.0f); break;
    case F_SHIFTED:
        tu_fill_normal(rng, h, n, 1.0f);
        for (size_t i = 0; i < n; i++) h[i] += 1.0f;
        break;
    case F_STEP: /* a uint32 counter in a float slot */
        for (size_t i = 0; i < n; i++) {
            const uint32_t v = STEP_BASE;
            memcpy(&h[i], &v, sizeof v);
        }
        break;
    case F_ONEBITS: for (size_t i = 0; i < n; i++) h[i] = 1.0f; break;
    case F_LOGW: case F_ZEROD:
        for (size_t i = 0; i + 1 < n; i += 2) {
            const double v = fill == F_ZEROD ? 0.0 : 5.0 * tu_uniform(rng, -1.0f, 1.0f) + 2.0 * tu_uniform(rng, -1.0f, 1.0f) - 6.0;
            memcpy(&h[i], &v, sizeof v);
        }
        break;
    case F_INDEX:
        for (size_t i = 0; i < n; i++) {
            const int32_t v = (int32_t)(tu_next(rng) >> 34);
            memcpy(&h[i], &v, sizeof v);
        }
        break; /* (it fell through to F_PERM: the gather rows never had a repeated index) */
    case F_PERM:
        for (size_t i = 0; i < n; i++) {
            const int32_t v = (int32_t)((7 * i + 3) % n);
            memcpy(&h[i], &v, sizeof v);
        }
        break;
    case F_UNIT: {
        tu_fill_normal(rng, h, n, 1.0f);
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)h[i] * h[i];
        s = sqrt(s);
        for (size_t i = 0; i < n; i++) h[i] = (float)(h[i] / s);
        break;
    }
    default: tu_fill_normal(rng, h, n, 1.0f); break;
    }
}

/* BN backward: save_mean/save_invstd consistent with x, as the forward would leave them */
void parity_bn_stats_host(const ebmc_bn_desc *d, const float *x, float *mean, float *invstd) {
    const size_t hw = (size_t)d->h * d->w, m = (size_t)d->n * hw;
    for (int c = 0; c < d->c; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < d->n; n++)
            for (size_t i = 0; i < hw; i++) s += x[((size_t)n * d->c + c) * hw + i];
        const double mu = s / (double)m;
        for (int n = 0; n < d->n; n++)
            for (size_t i = 0; i < hw; i++) {
                const double t = x[((size_t)n * d->c + c) * hw + i] - mu;
                ss += t * t;
            }
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(ss / (double)m + d->eps));
    }
}

/* sn_power without iterations: u = W v / ||W v||, so that sigma = u . (W v) = ||W v|| has no
 * cancellation (a random u could make sigma ~ 0 and its relative error large) */
void parity_sn_align_u(const ebmc_sn_desc *d, const float *w, float *u, const float *v) {
    double ss = 0;
    for (int i = 0; i < d->rows; i++) {
        double a = 0;
        for (int j = 0; j < d->cols; j++) a += (double)w[(size_t)i * d->cols + j] * v[j];
        u[i] = (float)a;
        ss += a * a;
    }
    for (int i = 0; i < d->rows; i++) u[i] = (float)(u[i] / sqrt(ss));
}

void parity_fix_host(const prow *r, const pcase *pc, float *const *host) {
    if (r->op == EBMC_OP_ROWS_COPY && r->var == 3) /* ancestors: indices into co rows, repeats allowed */
        for (int i = 0; i < r->n; i++) {
            int32_t v;
            memcpy(&v, &host[1][i], sizeof v);
            v %= r->co;
            memcpy(&host[1][i], &v, sizeof v);
        }
    if (r->op == EBMC_OP_JZ_RESAMPLE) { /* stats[0..4] of the log-weights, as jz_stats leaves them */
        const double *a = (const double *)host[0];
        double *st = (double *)host[1], m = -INFINITY, s1 = 0, s2 = 0;
        for (int i = 0; i < r->n; i++) m = a[i] > m ? a[i] : m;
        for (int i = 0; i < r->n; i++) s1 += exp(a[i] - m), s2 += exp(2 * (a[i] - m));
        st[0] = m, st[1] = s1, st[2] = s2, st[3] = m + log(s1 / r->n), st[4] = s1 * s1 / s2;
        st[5] = 1.25, st[6] = 3;
    }
}

/* FNV-1a of the label: a row's data depends on the row, not on its position in the table */
uint64_t parity_label_seed(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static ebmc_status call_op(ebmc_ctx_t *ctx, const prow *r, const pcase *pc, float *const *p);

/* Runs the row's op on ctx with buffers p[] (in the order parity_build_case added them), with
 * the row's chain offset. */
ebmc_status parity_call_op(ebmc_ctx_t *ctx, const prow *r, const pcase *pc, float *const *p) {
    ebmc_ctx_set_chain_offset(ctx, row_chain0(r));
    ebmc_ctx_set_chain_rank(ctx, row_chain0(r) ? 3u : 0u);
    ebmc_status s = call_op(ctx, r, pc, p);
    ebmc_ctx_set_chain_offset(ctx, 0);
    ebmc_ctx_set_chain_rank(ctx, 0);
    return s;
}

static ebmc_status call_op(ebmc_ctx_t *ctx, const prow *r, const pcase *pc, float *const *p) {
    switch (r->op) {
    case EBMC_OP_CONV2D_FWD: return ebmc_conv2d_fwd(ctx, &pc->conv, p[0], p[1], p[2]);
    case EBMC_OP_CONV2D_BWD_DATA:
        return ebmc_conv2d_bwd_data(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_CONV2D_BWD_FILTER:
        return ebmc_conv2d_bwd_filter(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_CONVT2D_FWD: return ebmc_convt2d_fwd(ctx, &pc->conv, p[0], p[1], p[2]);
    case EBMC_OP_CONVT2D_BWD_DATA:
        return ebmc_convt2d_bwd_data(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_CONVT2D_BWD_FILTER:
        return ebmc_convt2d_bwd_filter(ctx, &pc->conv, p[0], p[1], p[2], r->beta);
    case EBMC_OP_LINEAR_FWD:
        return r->var ? ebmc_linear_fwd(ctx, &pc->lin, p[0], p[1], p[2], p[3])
                      : ebmc_linear_fwd(ctx, &pc->lin, p[0], p[1], NULL, p[2]);
    case EBMC_OP_LINEAR_BWD_DATA:
        return ebmc_linear_bwd_data(ctx, &pc->lin, p[0], p[1], p[2], r->beta);
    case EBMC_OP_LINEAR_BWD_FILTER:
        return ebmc_linear_bwd_filter(ctx, &pc->lin, p[0], p[1], p[2], r->var ? p[3] : NULL,
                                      r->beta);
    case EBMC_OP_BIAS_FWD: return ebmc_bias_fwd(ctx, &pc->t4, p[0], p[1]);
    case EBMC_OP_BIAS_BWD: return ebmc_bias_bwd(ctx, &pc->t4, p[0], p[1], r->beta);
    case EBMC_OP_ACT_FWD: return ebmc_act_fwd(ctx, &pc->act, p[0], p[1]);
    case EBMC_OP_ACT_BWD: return ebmc_act_bwd(ctx, &pc->act, p[0], p[1], p[2], p[3], r->beta);
    case EBMC_OP_BN_FWD:
        return ebmc_bn_fwd(ctx, &pc->bn, p[0], p[1], p[2], p[3], p[4], p[5],
                           r->var ? p[6] : NULL, r->var ? p[7] : NULL);
    case EBMC_OP_BN_BWD:
        return ebmc_bn_bwd(ctx, &pc->bn, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], r->beta,
                           r->beta);
    case EBMC_OP_CHAN_SCALE_FWD: return ebmc_chan_scale_fwd(ctx, &pc->t4, p[0], p[1], p[2]);
    case EBMC_OP_CHAN_SCALE_BWD:
        return ebmc_chan_scale_bwd(ctx, &pc->t4, p[0], p[1], p[2], p[3], p[4], r->beta, r->beta);
    case EBMC_OP_SN_POWER: return ebmc_sn_power(ctx, &pc->sn, p[0], p[1], p[2], p[3], p[4]);
    case EBMC_OP_SN_BWD:
        return ebmc_sn_bwd(ctx, &pc->sn, p[0], p[1], p[2], p[3], p[4], p[5], r->beta);
    case EBMC_OP_UPSAMPLE_FWD: return ebmc_upsample_fwd(ctx, &pc->up, p[0], p[1]);
    case EBMC_OP_UPSAMPLE_BWD: return ebmc_upsample_bwd(ctx, &pc->up, p[0], p[1], r->beta);
    case EBMC_OP_AVGPOOL2_FWD: return ebmc_avgpool2_fwd(ctx, &pc->t4, p[0], p[1]);
    case EBMC_OP_AVGPOOL2_BWD: return ebmc_avgpool2_bwd(ctx, &pc->t4, p[0], p[1], r->beta);
    case EBMC_OP_GPOOL_FWD: return ebmc_gpool_fwd(ctx, &pc->gp, p[0], p[1]);
    case EBMC_OP_GPOOL_BWD: return ebmc_gpool_bwd(ctx, &pc->gp, p[0], p[1], r->beta);
    case EBMC_OP_AXPBY: return ebmc_axpby(ctx, &pc->ax, p[0], p[1]);
    case EBMC_OP_FILL: return ebmc_fill(ctx, &pc->fill, p[0]);
    case EBMC_OP_REDUCE: return ebmc_reduce(ctx, &pc->red, p[0], p[1]);
    case EBMC_OP_ADAM: {
        ebmc_adam_desc d = pc->adam;
        for (int t = 1; t <= r->var; t++) { /* several steps on the same state */
            d.step = t;
            ebmc_status s = ebmc_adam(ctx, &d, p[0], p[1], p[2], p[3]);
            if (s != EBMC_OK) return s;
        }
        return EBMC_OK;
    }
    case EBMC_OP_LANGEVIN: {
        ebmc_langevin_desc d = pc->lgv;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_langevin(ctx, &d, p[0], p[1]);
    }
    case EBMC_OP_DROPOUT: {
        ebmc_dropout_desc d = pc->drop;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_dropout(ctx, &d, p[0], p[1]);
    }
    case EBMC_OP_RNG: {
        ebmc_rng_desc d = pc->rng;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_rng(ctx, &d, p[0]);
    }
    case EBMC_OP_REPARAM: {
        ebmc_reparam_desc d = pc->rep;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_reparam(ctx, &d, p[0], p[1], p[2]);
    }
    case EBMC_OP_SCALED_DIFF: return ebmc_scaled_diff(ctx, &pc->sdiff, p[0], p[1], p[2]);
    case EBMC_OP_COUNTER_ADD: return ebmc_counter_add(ctx, &pc->cnt, (uint32_t *)p[0]);
    case EBMC_OP_REPLAY_SAMPLE: {
        ebmc_replay_desc d = pc->replay;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_replay_sample_op(ctx, &d, p[0], p[1]);
    }
    case EBMC_OP_REPLAY_PUSH: return ebmc_replay_push_op(ctx, &pc->replay, p[0], p[1]);
    case EBMC_OP_GAUSS_NLL:
        return ebmc_gauss_nll(ctx, &pc->nll, p[0], p[1], p[2], r->var ? NULL : p[5], p[3], p[4]);
    case EBMC_OP_GAUSS_KL:
        return ebmc_gauss_kl(ctx, &pc->kl, p[0], p[1], r->var == 2 ? NULL : p[2], r->var == 2 ? NULL : p[3],
                             r->var == 1 ? NULL : p[6], p[4], p[5]);
    case EBMC_OP_JZ_LOGW:
        return ebmc_jz_logw(ctx, &pc->jzl, p[0], p[1], p[2], p[3], p[4], p[5], (double *)p[6]);
    case EBMC_OP_JZ_STATS:
        return ebmc_jz_stats(ctx, &pc->jzs, (const double *)p[0], (double *)p[1], r->var ? NULL : p[2]);
    case EBMC_OP_JZ_RESAMPLE: {
        ebmc_jz_resample_desc d = pc->jzr;
        if (pc->step_buf >= 0) d.rng.step_base = (const uint32_t *)p[pc->step_buf];
        return ebmc_jz_resample(ctx, &d, (double *)p[0], (double *)p[1], (double *)p[2], (int32_t *)p[3]);
    }
    case EBMC_OP_GMM_EVAL:
        return ebmc_gmm_eval_op(ctx, &pc->gmm, p[0], p[1], p[2], p[3], r->var ? NULL : p[5], p[4]);
    case EBMC_OP_GMM_PGRAD: return ebmc_gmm_pgrad(ctx, &pc->gmm, p[0], p[1], p[2], r->var ? NULL : p[3], p[4], p[5]);
    case EBMC_OP_PSWISH_FWD: return ebmc_pswish_fwd(ctx, &pc->psw, p[0], p[1], p[2]);
    case EBMC_OP_PSWISH_BWD:
        return ebmc_pswish_bwd(ctx, &pc->psw, p[0], p[1], p[2], p[3], r->var ? NULL : p[4], r->beta, r->beta);
    case EBMC_OP_GBASE_FWD: return ebmc_gbase_fwd(ctx, &pc->gb, p[0], p[1], p[2], p[3]);
    case EBMC_OP_GBASE_BWD:
        return ebmc_gbase_bwd(ctx, &pc->gb, p[0], p[1], p[2], p[3], r->var == 1 ? NULL : p[4],
                              r->var == 2 ? NULL : p[5], r->var == 2 ? NULL : p[6], r->beta, r->beta);
    case EBMC_OP_ROWS_COPY:
        return ebmc_rows_copy(ctx, &pc->rows, p[0], r->var == 1 ? NULL : (const int32_t *)p[1],
                              r->var >= 2 ? NULL : (const int32_t *)p[2], p[3]);
    case EBMC_OP_POOL2D_FWD: return ebmc_pool2d_fwd(ctx, &pc->pool, p[0], p[1]);
    case EBMC_OP_RESIZE_FWD: return ebmc_resize_fwd(ctx, &pc->rsz, p[0], p[1]);
    case EBMC_OP_CHAN_COPY: return ebmc_chan_copy(ctx, &pc->ccp, p[0], p[1]);
    default: break; /* ops without a parity row */
    }
    return EBMC_E_INVALID;
}
