/* The CUDA backend's convolutions: cuDNN (legacy API) plans, their cache in cuda_priv, and the
 * six convolution ops of the op table.
 *
 * Every conv/transposed-conv op is run as one cuDNN call on a convolution "P":
 *   conv2d fwd / bwd-data / bwd-filter     -> P = the descriptor's convolution,
 *                                             cudnnConvolutionForward / BackwardData / Filter
 *   convt2d fwd      -> BackwardData of P   with P the convolution whose adjoint the transposed
 *   convt2d bwd-data -> Forward of P        conv is: input (N,Cout,Ho,Wo), weight (Cin,Cout,KH,KW)
 *   convt2d bwd-filt -> BackwardFilter of P read as a conv weight (K=Cin, C=Cout), output
 *                       (input = dy,        (N,Cin,H,W), pads top pad_t, bottom pad_b-out_pad_h,
 *                        grad-out = x)      left pad_l, right pad_r-out_pad_w.
 * cuDNN pads symmetrically and not negatively, so P's pads (t,b,l,r) are split into a symmetric
 * part ph = max(0, min(t,b)) that cuDNN applies and an explicit remainder (t-ph top, b-ph bottom;
 * a negative remainder crops) applied by pad2d_copy into the workspace: forward/bwd-filter pad
 * the input before the call, bwd-data computes the gradient of the padded input in the
 * workspace and crops it back (adding beta*dx). Symmetric non-negative pads take the native path
 * with no copy. A plan (descriptors, candidate algorithms, the geometry above) is built once per
 * (op, descriptor, precision, determinism) and cached in priv.
 *
 * Batches smaller than the one a tape planned (a partial last chunk, a data batch on a larger
 * chain tape) have plans of their own, with cuDNN's heuristics for their N: once the workspace is
 * frozen (or a graph is being captured) a new plan takes the first candidate that fits the
 * reserved workspace (conv_pick; the classic fallbacks need none), never EBMC_E_WORKSPACE. When
 * cuDNN fails to execute the chosen algorithm, the next candidate runs (conv_run_candidates,
 * logged once per plan), as PyTorch does; only when every one fails is it an error. */
#include "backend/cuda/cuda_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/conv_math.h"
#include "pad.h"

/* cuDNN algorithms asking for more workspace than this are skipped (a faster algorithm is not
 * worth a gigabyte of device memory on every plan). */
#define CONV_MAX_ALGO_WS ((size_t)1 << 30)
/* workspace sub-buffers start on 256-byte boundaries (cudaMalloc's alignment) */
#define WS_ALIGN(b) (((b) + (size_t)255) & ~(size_t)255)
#define PERF_MAX 16

typedef enum { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_FILTER = 2 } conv_kind;

typedef struct {
    int op;                     /* ebmc_op */
    ebmc_conv_desc d;           /* compared field by field (conv_key_eq) */
    int precision;              /* ebmc_precision */
    int deterministic;
} conv_key;

struct conv_plan {
    conv_key key;
    conv_kind kind;             /* the cuDNN call */
    /* P: input (n,c,h,w), filter (k,c,kh,kw), stride (sh,sw), output (n,k,ho,wo). cuDNN sees
     * the input as (n,c,hp,wp) = X shifted down/right by (off_top,off_left), zero-filled or
     * cropped, with symmetric pads (ph,pw). */
    int n, c, h, w, k, kh, kw, sh, sw;
    int hp, wp, off_top, off_left, ph, pw, ho, wo;
    bool explicit_pad;          /* (hp,wp,off_top,off_left) != (h,w,0,0): pad2d_copy needed */
    size_t pad_bytes;           /* the (n,c,hp,wp) buffer in the workspace; 0 if native */
    size_t algo_bytes;          /* cuDNN workspace of algo */
    int algo;                   /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    cudnnMathType_t math;       /* set on cd; FP32: always CUDNN_FMA_MATH (conv_entry_math) */
    conv_choice cand[PERF_MAX + 2]; /* every acceptable algorithm, in cuDNN's order */
    int n_cand, cur;            /* (algo, math, algo_bytes) = cand[cur] */
    bool fell_back;             /* a candidate failed to execute (logged once) */
    cudnnTensorDescriptor_t xd; /* (n,c,hp,wp) */
    cudnnTensorDescriptor_t yd; /* (n,k,ho,wo) */
    cudnnFilterDescriptor_t wd; /* (k,c,kh,kw) */
    cudnnConvolutionDescriptor_t cd;
};

static void conv_plan_destroy(conv_plan *pl) {
    if (!pl) return;
    /* destroy calls on valid descriptors cannot fail short of a corrupted cuDNN; checked anyway */
    if (pl->xd) CUDNN_CHECK(cudnnDestroyTensorDescriptor(pl->xd));
    if (pl->yd) CUDNN_CHECK(cudnnDestroyTensorDescriptor(pl->yd));
    if (pl->wd) CUDNN_CHECK(cudnnDestroyFilterDescriptor(pl->wd));
    if (pl->cd) CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(pl->cd));
    free(pl);
}

static bool op_is_convt(ebmc_op op) {
    return op == EBMC_OP_CONVT2D_FWD || op == EBMC_OP_CONVT2D_BWD_DATA ||
           op == EBMC_OP_CONVT2D_BWD_FILTER;
}

bool cuda_op_is_conv(ebmc_op op) {
    return op == EBMC_OP_CONV2D_FWD || op == EBMC_OP_CONV2D_BWD_DATA ||
           op == EBMC_OP_CONV2D_BWD_FILTER || op_is_convt(op);
}

static bool conv_key_eq(const conv_key *a, const conv_key *b) {
    const ebmc_conv_desc *x = &a->d, *y = &b->d;
    return a->op == b->op && a->precision == b->precision &&
           a->deterministic == b->deterministic && x->n == y->n && x->c_in == y->c_in &&
           x->h == y->h && x->w == y->w && x->c_out == y->c_out && x->kh == y->kh &&
           x->kw == y->kw && x->stride_h == y->stride_h && x->stride_w == y->stride_w &&
           x->pad_t == y->pad_t && x->pad_b == y->pad_b && x->pad_l == y->pad_l &&
           x->pad_r == y->pad_r && x->out_pad_h == y->out_pad_h && x->out_pad_w == y->out_pad_w &&
           x->transposed == y->transposed && x->has_bias == y->has_bias;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Fills the geometry of pl (everything but the cuDNN objects) from (op, d). */
static ebmc_status conv_geometry(ebmc_op op, const ebmc_conv_desc *d, conv_plan *pl, char *err,
                                 size_t errlen) {
    int t, b, l, r;
    if (d->n < 1 || d->c_in < 1 || d->c_out < 1 || d->h < 1 || d->w < 1 || d->kh < 1 ||
        d->kw < 1 || d->stride_h < 1 || d->stride_w < 1) {
        snprintf(err, errlen, "non-positive size in the descriptor");
        return EBMC_E_INVALID;
    }
    if (!op_is_convt(op)) {
        pl->n = d->n, pl->c = d->c_in, pl->h = d->h, pl->w = d->w, pl->k = d->c_out;
        t = d->pad_t, b = d->pad_b, l = d->pad_l, r = d->pad_r;
    } else {
        /* P's input is the transposed conv's output (N,Cout,Ho,Wo) */
        const long long ho = (long long)(d->h - 1) * d->stride_h - d->pad_t - d->pad_b + d->kh +
                             d->out_pad_h;
        const long long wo = (long long)(d->w - 1) * d->stride_w - d->pad_l - d->pad_r + d->kw +
                             d->out_pad_w;
        if (ho < 1 || wo < 1 || ho > INT_MAX || wo > INT_MAX) {
            snprintf(err, errlen, "transposed convolution output %lldx%lld is empty or too large",
                     ho, wo);
            return EBMC_E_INVALID;
        }
        pl->n = d->n, pl->c = d->c_out, pl->h = (int)ho, pl->w = (int)wo, pl->k = d->c_in;
        t = d->pad_t, b = d->pad_b - d->out_pad_h, l = d->pad_l, r = d->pad_r - d->out_pad_w;
    }
    pl->kind = (op == EBMC_OP_CONV2D_FWD || op == EBMC_OP_CONVT2D_BWD_DATA) ? CONV_FWD
               : (op == EBMC_OP_CONV2D_BWD_DATA || op == EBMC_OP_CONVT2D_FWD) ? CONV_BWD_DATA
                                                                               : CONV_BWD_FILTER;
    pl->kh = d->kh, pl->kw = d->kw, pl->sh = d->stride_h, pl->sw = d->stride_w;
    pl->ph = imax(0, imin(t, b));
    pl->pw = imax(0, imin(l, r));
    pl->off_top = t - pl->ph;
    pl->off_left = l - pl->pw;
    const long long hp = (long long)pl->h + (t - pl->ph) + (b - pl->ph);
    const long long wp = (long long)pl->w + (l - pl->pw) + (r - pl->pw);
    if (hp < 1 || wp < 1 || hp > INT_MAX || wp > INT_MAX) {
        snprintf(err, errlen, "padded input %lldx%lld is empty or too large", hp, wp);
        return EBMC_E_INVALID;
    }
    pl->hp = (int)hp, pl->wp = (int)wp;
    if (hp + 2LL * pl->ph < pl->kh || wp + 2LL * pl->pw < pl->kw) {
        snprintf(err, errlen, "kernel %dx%d larger than the padded input %lldx%lld", pl->kh,
                 pl->kw, hp + 2LL * pl->ph, wp + 2LL * pl->pw);
        return EBMC_E_INVALID;
    }
    pl->ho = (int)((hp + 2LL * pl->ph - pl->kh) / pl->sh + 1);
    pl->wo = (int)((wp + 2LL * pl->pw - pl->kw) / pl->sw + 1);
    if (op_is_convt(op) && (pl->ho != d->h || pl->wo != d->w)) {
        /* cannot happen for a valid descriptor (the division above is exact); a guard */
        snprintf(err, errlen,
                 "transposed convolution geometry: equivalent convolution gives %dx%d, not %dx%d",
                 pl->ho, pl->wo, d->h, d->w);
        return EBMC_E_INVALID;
    }
    pl->explicit_pad =
        pl->hp != pl->h || pl->wp != pl->w || pl->off_top != 0 || pl->off_left != 0;
    /* legacy cuDNN tensors hold fewer than 2^31 elements */
    const double xs = (double)pl->n * pl->c * pl->hp * pl->wp;
    const double ys = (double)pl->n * pl->k * pl->ho * pl->wo;
    const double ws = (double)pl->k * pl->c * pl->kh * pl->kw;
    const double xs0 = (double)pl->n * pl->c * pl->h * pl->w;
    if (xs > INT_MAX || ys > INT_MAX || ws > INT_MAX || xs0 > INT_MAX) {
        snprintf(err, errlen, "tensor of 2^31 elements or more (cuDNN's legacy API limit)");
        return EBMC_E_UNSUPPORTED;
    }
    pl->pad_bytes = pl->explicit_pad ? (size_t)xs * sizeof(float) : 0;
    return EBMC_OK;
}

#define PLAN_TRY(call)                                                                          \
    do {                                                                                        \
        cudnnStatus_t s_ = (call);                                                              \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                       \
            snprintf(err, errlen, "%s: %s", #call, cudnnGetErrorString(s_));                    \
            return EBMC_E_UNSUPPORTED;                                                          \
        }                                                                                       \
    } while (0)

static const char *conv_math_name(cudnnMathType_t m) {
    switch (m) {
    case CUDNN_DEFAULT_MATH: return "DEFAULT";
    case CUDNN_TENSOR_OP_MATH: return "TENSOR_OP";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "TENSOR_OP_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH: return "FMA";
    default: return "?";
    }
}

static const char *const conv_kind_name[] = {"fwd", "bwd-data", "bwd-filter"};

/* One heuristics entry of any of the three kinds. */
typedef struct {
    int algo;
    cudnnStatus_t status;
    cudnnDeterminism_t det;
    cudnnMathType_t math;
    size_t memory;
} conv_cand;

/* cuDNN's v7 heuristics for the plan's kind, fastest first, into c (at most PERF_MAX). */
static cudnnStatus_t conv_heuristics(cudnnHandle_t h, const conv_plan *pl, conv_cand *c, int *n) {
    int req = 0, got = 0;
    cudnnStatus_t st;
    *n = 0;
#define CONV_HEUR_(perf_t, maxcount, query)                                                     \
    do {                                                                                        \
        perf_t perf[PERF_MAX];                                                                  \
        if ((st = maxcount(h, &req)) != CUDNN_STATUS_SUCCESS) return st;                        \
        req = imax(1, imin(req, PERF_MAX));                                                     \
        if ((st = query) != CUDNN_STATUS_SUCCESS) return st;                                    \
        for (int i = 0; i < got; i++)                                                           \
            c[i] = (conv_cand){(int)perf[i].algo, perf[i].status, perf[i].determinism,          \
                               perf[i].mathType, perf[i].memory};                               \
    } while (0)
    switch (pl->kind) {
    case CONV_FWD:
        CONV_HEUR_(cudnnConvolutionFwdAlgoPerf_t, cudnnGetConvolutionForwardAlgorithmMaxCount,
                   cudnnGetConvolutionForwardAlgorithm_v7(h, pl->xd, pl->wd, pl->cd, pl->yd, req,
                                                          &got, perf));
        break;
    case CONV_BWD_DATA:
        CONV_HEUR_(cudnnConvolutionBwdDataAlgoPerf_t,
                   cudnnGetConvolutionBackwardDataAlgorithmMaxCount,
                   cudnnGetConvolutionBackwardDataAlgorithm_v7(h, pl->wd, pl->yd, pl->cd, pl->xd,
                                                               req, &got, perf));
        break;
    case CONV_BWD_FILTER:
        CONV_HEUR_(cudnnConvolutionBwdFilterAlgoPerf_t,
                   cudnnGetConvolutionBackwardFilterAlgorithmMaxCount,
                   cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, pl->xd, pl->yd, pl->cd, pl->wd,
                                                                 req, &got, perf));
        break;
    }
#undef CONV_HEUR_
    *n = imin(got, PERF_MAX);
    return CUDNN_STATUS_SUCCESS;
}

/* The workspace of algo under the math type currently set on pl->cd. */
static cudnnStatus_t conv_algo_ws(cudnnHandle_t h, const conv_plan *pl, int algo, size_t *ws) {
    switch (pl->kind) {
    case CONV_FWD:
        return cudnnGetConvolutionForwardWorkspaceSize(h, pl->xd, pl->wd, pl->cd, pl->yd,
                                                       (cudnnConvolutionFwdAlgo_t)algo, ws);
    case CONV_BWD_DATA:
        return cudnnGetConvolutionBackwardDataWorkspaceSize(
            h, pl->wd, pl->yd, pl->cd, pl->xd, (cudnnConvolutionBwdDataAlgo_t)algo, ws);
    case CONV_BWD_FILTER:
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(
            h, pl->xd, pl->yd, pl->cd, pl->wd, (cudnnConvolutionBwdFilterAlgo_t)algo, ws);
    }
    return CUDNN_STATUS_BAD_PARAM;
}

/* Appends (algo, math) to the plan's candidates when its workspace under math (set on pl->cd for
 * the query) is known and within CONV_MAX_ALGO_WS, and it is not there yet. */
static void conv_add(cudnnHandle_t h, conv_plan *pl, int algo, cudnnMathType_t math) {
    size_t ws = 0;
    for (int i = 0; i < pl->n_cand; i++)
        if (pl->cand[i].algo == algo && pl->cand[i].math == math) return;
    if (pl->n_cand == PERF_MAX + 2 || cudnnSetConvolutionMathType(pl->cd, math) != CUDNN_STATUS_SUCCESS) return;
    if (conv_algo_ws(h, pl, algo, &ws) != CUDNN_STATUS_SUCCESS || ws > CONV_MAX_ALGO_WS) return;
    pl->cand[pl->n_cand++] = (conv_choice){algo, math, ws, false};
}

/* Makes cand[i] the plan's algorithm (its math set on cd). */
static cudnnStatus_t conv_use(conv_plan *pl, int i) {
    pl->cur = i;
    pl->algo = pl->cand[i].algo, pl->math = pl->cand[i].math, pl->algo_bytes = pl->cand[i].bytes;
    return cudnnSetConvolutionMathType(pl->cd, pl->math);
}

/* The workspace an algorithm of pl may use: cap (the context's, SIZE_MAX while it may grow) less
 * the padding buffer. */
static size_t conv_algo_cap(const conv_plan *pl, size_t cap) {
    const size_t pad = pl->explicit_pad ? WS_ALIGN(pl->pad_bytes) : 0;
    return cap == SIZE_MAX ? SIZE_MAX : cap >= pad ? cap - pad : 0;
}

/* The candidates: every heuristic entry (cuDNN's v7 heuristics, fastest first) that succeeded,
 * is deterministic when asked, has a math type conv_entry_math accepts and whose workspace,
 * re-queried under the math the plan will run with, is within CONV_MAX_ALGO_WS; then the classic
 * algorithms PyTorch falls back to (forward: IMPLICIT_PRECOMP_GEMM, then IMPLICIT_GEMM; backward:
 * ALGO_1) that cuDNN accepts under the query math. Picks the first whose workspace fits cap
 * (conv_pick); sets pl->algo, pl->math (also on cd), pl->algo_bytes; logs it (EBMC_DEBUG). */
static ebmc_status conv_choose_algo(cudnnHandle_t h, conv_plan *pl, ebmc_precision prec, bool det,
                                    size_t cap, char *err, size_t errlen) {
    const cudnnMathType_t base = conv_query_math(prec);
    conv_cand cand[PERF_MAX];
    int n = 0;
    PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, base));
    PLAN_TRY(conv_heuristics(h, pl, cand, &n));
    pl->n_cand = 0;
    for (int i = 0; i < n; i++) {
        if (cand[i].status != CUDNN_STATUS_SUCCESS) continue;
        if (det && cand[i].det != CUDNN_DETERMINISTIC) continue;
        const int m = conv_entry_math(cand[i].math, prec);
        if (m < 0 || cand[i].memory > CONV_MAX_ALGO_WS) continue;
        conv_add(h, pl, cand[i].algo, (cudnnMathType_t)m);
    }
    const int n_heur = pl->n_cand;
    static const int fwd_fallback[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                       CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
    static const int bwd_data_fallback[] = {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1};
    static const int bwd_filter_fallback[] = {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1};
    const int *fb = pl->kind == CONV_FWD        ? fwd_fallback
                    : pl->kind == CONV_BWD_DATA ? bwd_data_fallback
                                                : bwd_filter_fallback;
    const int n_fb = pl->kind == CONV_FWD ? 2 : 1;
    for (int i = 0; i < n_fb; i++) conv_add(h, pl, fb[i], base);
    const size_t acap = conv_algo_cap(pl, cap);
    const int pick = conv_pick(pl->cand, pl->n_cand, 0, acap);
    if (pick < 0) {
        if (acap < CONV_MAX_ALGO_WS)
            snprintf(err, errlen, "none of cuDNN's %d %s%s algorithms for this shape fits the %zu bytes of "
                     "workspace left (frozen at %zu bytes; padding takes %zu)", pl->n_cand,
                     det ? "deterministic " : "", prec == EBMC_PREC_FP32 ? "FP32 (FMA math)" : "FP32/TF32",
                     acap, cap, pl->explicit_pad ? WS_ALIGN(pl->pad_bytes) : (size_t)0);
        else
            snprintf(err, errlen, "cuDNN offers no %s%s algorithm for this shape within %zu MiB of "
                     "workspace", det ? "deterministic " : "",
                     prec == EBMC_PREC_FP32 ? "FP32 (FMA math)" : "FP32/TF32",
                     CONV_MAX_ALGO_WS >> 20);
        return pl->n_cand ? EBMC_E_WORKSPACE : EBMC_E_UNSUPPORTED;
    }
    PLAN_TRY(conv_use(pl, pick));
    const char *how = pick < n_heur ? "heuristics" : "fallback";
    ebmc_debug("conv plan %s P=(n%d c%d %dx%d) k%d %dx%d s%dx%d pad%dx%d %s: algo %d math %s "
               "workspace %zu bytes (%s, %d heuristic entries)",
               conv_kind_name[pl->kind], pl->n, pl->c, pl->hp, pl->wp, pl->k, pl->kh, pl->kw, pl->sh,
               pl->sw, pl->ph, pl->pw, prec == EBMC_PREC_FP32 ? "fp32" : "tf32", pl->algo,
               conv_math_name(pl->math), pl->algo_bytes, how, n);
    return EBMC_OK;
}

/* Creates the cuDNN objects of a plan whose geometry is filled, and chooses its algorithm.
 * Failures are returned (planning runs inside supports()); pl keeps what was created so that
 * conv_plan_destroy releases it. */
static ebmc_status conv_plan_build(cudnnHandle_t h, conv_plan *pl, ebmc_precision prec, bool det,
                                   size_t cap, char *err, size_t errlen) {
    PLAN_TRY(cudnnCreateTensorDescriptor(&pl->xd));
    PLAN_TRY(cudnnCreateTensorDescriptor(&pl->yd));
    PLAN_TRY(cudnnCreateFilterDescriptor(&pl->wd));
    PLAN_TRY(cudnnCreateConvolutionDescriptor(&pl->cd));
    PLAN_TRY(cudnnSetTensor4dDescriptor(pl->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, pl->n, pl->c,
                                        pl->hp, pl->wp));
    PLAN_TRY(cudnnSetFilter4dDescriptor(pl->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, pl->k, pl->c,
                                        pl->kh, pl->kw));
    PLAN_TRY(cudnnSetConvolution2dDescriptor(pl->cd, pl->ph, pl->pw, pl->sh, pl->sw, 1, 1,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, conv_query_math(prec)));
    int on = 0, oc = 0, oh = 0, ow = 0;
    PLAN_TRY(cudnnGetConvolution2dForwardOutputDim(pl->cd, pl->xd, pl->wd, &on, &oc, &oh, &ow));
    if (on != pl->n || oc != pl->k || oh != pl->ho || ow != pl->wo) {
        snprintf(err, errlen, "cuDNN output (%d,%d,%d,%d) differs from the expected (%d,%d,%d,%d)",
                 on, oc, oh, ow, pl->n, pl->k, pl->ho, pl->wo);
        return EBMC_E_INVALID;
    }
    PLAN_TRY(cudnnSetTensor4dDescriptor(pl->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, pl->n, pl->k,
                                        pl->ho, pl->wo));
    return conv_choose_algo(h, pl, prec, det, cap, err, errlen);
}

/* The workspace a new plan may count on: unbounded while it may still grow, the reserved bytes
 * once it is frozen (the loop) or while a graph is being captured (growing would allocate). */
static size_t conv_ws_cap(const ebmc_ctx_t *ctx) {
    return ctx->ws_frozen || cuda_stream_capturing(cpriv(ctx)) ? ctx->ws_bytes : SIZE_MAX;
}

/* The cached plan of (op, d) under the context's precision and determinism; built on first use,
 * its algorithm within cap bytes of workspace (conv_ws_cap). Takes priv, opts and cap (not the
 * context) so that the const supports()/workspace_size() can plan. */
static ebmc_status conv_plan_get(cuda_priv *p, const ebmc_ctx_opts *o, size_t cap, ebmc_op op,
                                 const ebmc_conv_desc *d, conv_plan **out, char *err,
                                 size_t errlen) {
    conv_key key;
    memset(&key, 0, sizeof key);
    key.op = (int)op;
    key.d = *d;
    key.precision = (int)o->precision;
    key.deterministic = o->deterministic ? 1 : 0;
    for (int i = 0; i < p->n_plans; i++)
        if (conv_key_eq(&p->plans[i]->key, &key)) {
            *out = p->plans[i];
            return EBMC_OK;
        }
    if (d->transposed != (op_is_convt(op) ? 1 : 0)) {
        snprintf(err, errlen, "descriptor has transposed=%d for %s", d->transposed,
                 ebmc_op_name(op));
        return EBMC_E_INVALID;
    }
    conv_plan *pl = calloc(1, sizeof *pl);
    if (!pl) {
        snprintf(err, errlen, "out of host memory for a convolution plan");
        return EBMC_E_NOMEM;
    }
    pl->key = key;
    ebmc_status st = conv_geometry(op, d, pl, err, errlen);
    if (st == EBMC_OK) {
        /* A shape first seen inside a graph capture (e.g. a chain run on fewer chains than its
         * tape was planned for) is planned here, during the capture. cuDNN's heuristic queries
         * run on the host and enqueue nothing on the stream, but are not documented as
         * capture-safe: this thread's capture mode is relaxed around them, so that an internal
         * "potentially unsafe" call cannot invalidate the capture. (Its workspace must still fit:
         * cuda_get_workspace refuses to grow during a capture.) */
        const bool relax = cuda_stream_capturing(p);
        enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
        if (relax) CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
        st = conv_plan_build(p->cudnn, pl, o->precision, o->deterministic, cap, err, errlen);
        if (relax) CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode)); /* restores it */
    }
    if (st == EBMC_OK && p->n_plans == p->cap_plans) {
        const int cap = p->cap_plans ? 2 * p->cap_plans : 16;
        conv_plan **np = realloc(p->plans, (size_t)cap * sizeof *np);
        if (!np) {
            snprintf(err, errlen, "out of host memory for the plan cache");
            st = EBMC_E_NOMEM;
        } else {
            p->plans = np;
            p->cap_plans = cap;
        }
    }
    if (st != EBMC_OK) {
        conv_plan_destroy(pl);
        return st;
    }
    p->plans[p->n_plans++] = pl;
    *out = pl;
    return EBMC_OK;
}

static size_t conv_plan_ws(const conv_plan *pl) {
    return (pl->explicit_pad ? WS_ALIGN(pl->pad_bytes) : 0) + pl->algo_bytes;
}

/* One execution of P's cuDNN call with a candidate (conv_run_candidates' callback). */
typedef struct {
    ebmc_ctx_t *ctx;
    conv_plan *pl;
    const float *a, *b;
    float *out;
    float beta;
    ebmc_status st;   /* a failure that is not cuDNN's (the workspace): no other candidate */
    cudnnStatus_t cs; /* cuDNN's status of the last try */
} conv_run_t;

/* Runs P's cuDNN call with candidate c:
 *   CONV_FWD:        a = X (n,c,h,w),  b = W (k,c,kh,kw),  out = Y (n,k,ho,wo)   = conv + beta*out
 *   CONV_BWD_DATA:   a = dY (n,k,ho,wo), b = W,            out = dX (n,c,h,w)    = adj + beta*out
 *   CONV_BWD_FILTER: a = X,            b = dY,             out = dW (k,c,kh,kw)  = corr + beta*out
 * beta == 0 never reads out (cuDNN documents that it does not read the output then). A cuDNN
 * call that fails returns false with nothing written but the workspace (beta * out is applied by
 * the call that succeeds; cuDNN reports NOT_SUPPORTED / BAD_PARAM / EXECUTION_FAILED when it cannot
 * launch, before anything is written -- a kernel that fails after writing part of out with
 * beta != 0 would be retried onto that partial result, a case no fallback can repair). */
static bool conv_run_one(void *user, const conv_choice *c) {
    conv_run_t *r = user;
    ebmc_ctx_t *ctx = r->ctx;
    conv_plan *pl = r->pl;
    cuda_priv *p = cpriv(ctx);
    if (r->st != EBMC_OK) return true; /* stop: not a cuDNN failure */
    const int idx = (int)(c - pl->cand);
    if ((r->cs = conv_use(pl, idx)) != CUDNN_STATUS_SUCCESS) return false;
    void *ws = NULL;
    if ((r->st = cuda_get_workspace(ctx, conv_plan_ws(pl), &ws)) != EBMC_OK) return true;
    float *xp = pl->explicit_pad ? (float *)ws : NULL; /* (n,c,hp,wp) */
    void *algo_ws = pl->algo_bytes ? (char *)ws + (pl->explicit_pad ? WS_ALIGN(pl->pad_bytes) : 0) : NULL;
    const int nc = pl->n * pl->c;
    const float one = 1.f, zero = 0.f;
    const float beta = r->beta;
    cudnnStatus_t cs = CUDNN_STATUS_SUCCESS;
    switch (pl->kind) {
    case CONV_FWD: {
        const float *x = r->a;
        if (pl->explicit_pad) {
            pad2d_copy(r->a, nc, pl->h, pl->w, xp, pl->hp, pl->wp, pl->off_top, pl->off_left, 0.f, p->stream);
            x = xp;
        }
        cs = cudnnConvolutionForward(p->cudnn, &one, pl->xd, x, pl->wd, r->b, pl->cd,
                                     (cudnnConvolutionFwdAlgo_t)pl->algo, algo_ws, pl->algo_bytes, &beta,
                                     pl->yd, r->out);
        break;
    }
    case CONV_BWD_DATA:
        if (pl->explicit_pad) {
            cs = cudnnConvolutionBackwardData(p->cudnn, &one, pl->wd, r->b, pl->yd, r->a, pl->cd,
                                              (cudnnConvolutionBwdDataAlgo_t)pl->algo, algo_ws,
                                              pl->algo_bytes, &zero, pl->xd, xp);
            /* crop (or zero-extend) the padded input's gradient back:
             * dX[i,j] = dXp[i+off_top, j+off_left] + beta*dX[i,j] */
            if (cs == CUDNN_STATUS_SUCCESS)
                pad2d_copy(xp, nc, pl->hp, pl->wp, r->out, pl->h, pl->w, -pl->off_top, -pl->off_left, beta,
                           p->stream);
        } else {
            cs = cudnnConvolutionBackwardData(p->cudnn, &one, pl->wd, r->b, pl->yd, r->a, pl->cd,
                                              (cudnnConvolutionBwdDataAlgo_t)pl->algo, algo_ws,
                                              pl->algo_bytes, &beta, pl->xd, r->out);
        }
        break;
    case CONV_BWD_FILTER: {
        const float *x = r->a;
        if (pl->explicit_pad) {
            pad2d_copy(r->a, nc, pl->h, pl->w, xp, pl->hp, pl->wp, pl->off_top, pl->off_left, 0.f, p->stream);
            x = xp;
        }
        cs = cudnnConvolutionBackwardFilter(p->cudnn, &one, pl->xd, x, pl->yd, r->b, pl->cd,
                                            (cudnnConvolutionBwdFilterAlgo_t)pl->algo, algo_ws, pl->algo_bytes,
                                            &beta, pl->wd, r->out);
        break;
    }
    }
    r->cs = cs;
    return cs == CUDNN_STATUS_SUCCESS;
}

/* P's cuDNN call with the plan's algorithm, or the next candidate when cuDNN fails to run it. */
static ebmc_status conv_exec(ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d, const float *a,
                             const float *b, float *out, float beta) {
    cuda_priv *p = cpriv(ctx);
    conv_plan *pl = NULL;
    char err[512];
    const size_t cap = conv_ws_cap(ctx);
    ebmc_status st = conv_plan_get(p, &ctx->opts, cap, op, d, &pl, err, sizeof err);
    if (st != EBMC_OK) return ebmc_ctx_seterr(ctx, st, "%s: %s", ebmc_op_name(op), err);
    conv_run_t r = {ctx, pl, a, b, out, beta, EBMC_OK, CUDNN_STATUS_SUCCESS};
    const int was = pl->cur;
    EBMC_NVTX_PUSH(ebmc_op_name(op));
    const int failed = conv_run_candidates(pl->cand, pl->n_cand, &pl->cur, conv_algo_cap(pl, cap), conv_run_one, &r);
    EBMC_NVTX_POP();
    if (r.st != EBMC_OK) return r.st;
    if (failed != 0 && !pl->fell_back) {
        pl->fell_back = true;
        fprintf(stderr, "ebmc: notice: cuDNN could not run %s algorithm %d for %s (N=%d, C=%d, %dx%d, K=%d, "
                "%dx%d): %s; %s (logged once per shape)\n", conv_kind_name[pl->kind], pl->cand[was].algo,
                ebmc_op_name(op), pl->n, pl->c, pl->hp, pl->wp, pl->k, pl->kh, pl->kw, cudnnGetErrorString(r.cs),
                failed < 0 ? "no other candidate runs" : "using the next candidate");
        if (failed > 0)
            ebmc_debug("conv plan %s: now algo %d math %d workspace %zu bytes", conv_kind_name[pl->kind],
                       pl->algo, (int)pl->math, pl->algo_bytes);
    }
    if (failed < 0)
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "%s: cuDNN failed to execute all %d candidate algorithms "
                               "(last: algo %d: %s)", ebmc_op_name(op), pl->n_cand, pl->algo,
                               cudnnGetErrorString(r.cs));
    return EBMC_OK;
}

/* conv2d: P is the descriptor's convolution */
ebmc_status cuda_conv2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                            const float *w, float *y) {
    return conv_exec(ctx, EBMC_OP_CONV2D_FWD, d, x, w, y, 0.f);
}
ebmc_status cuda_conv2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy,
                                 const float *w, float *dx, float beta) {
    return conv_exec(ctx, EBMC_OP_CONV2D_BWD_DATA, d, dy, w, dx, beta);
}
ebmc_status cuda_conv2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                                   const float *dy, float *dw, float beta) {
    return conv_exec(ctx, EBMC_OP_CONV2D_BWD_FILTER, d, x, dy, dw, beta);
}
/* transposed: x (N,Cin,H,W) is P's output side, y (N,Cout,Ho,Wo) P's input side */
ebmc_status cuda_convt2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                             const float *w, float *y) {
    return conv_exec(ctx, EBMC_OP_CONVT2D_FWD, d, x, w, y, 0.f); /* P bwd-data, dY = x */
}
ebmc_status cuda_convt2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy,
                                  const float *w, float *dx, float beta) {
    return conv_exec(ctx, EBMC_OP_CONVT2D_BWD_DATA, d, dy, w, dx, beta); /* P fwd, X = dy */
}
ebmc_status cuda_convt2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                                    const float *dy, float *dw, float beta) {
    /* P bwd-filter with P's input = dy and P's output gradient = x */
    return conv_exec(ctx, EBMC_OP_CONVT2D_BWD_FILTER, d, dy, x, dw, beta);
}

/* ---- for the op table: supports(), workspace_size(), fini ---- */

bool cuda_conv_supports(const ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d) {
    conv_plan *pl = NULL;
    char err[512];
    return conv_plan_get(cpriv(ctx), &ctx->opts, conv_ws_cap(ctx), op, d, &pl, err, sizeof err) == EBMC_OK;
}

size_t cuda_conv_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d) {
    conv_plan *pl = NULL;
    char err[512];
    if (conv_plan_get(cpriv(ctx), &ctx->opts, conv_ws_cap(ctx), op, d, &pl, err, sizeof err) != EBMC_OK) return 0;
    return conv_plan_ws(pl);
}

void cuda_conv_plans_release(cuda_priv *p) {
    for (int i = 0; i < p->n_plans; i++) conv_plan_destroy(p->plans[i]);
    free(p->plans);
    p->plans = NULL;
    p->n_plans = p->cap_plans = 0;
}
