#!/usr/bin/python3
"""PyTorch oracle for the ebmc CPU reference backend.

Usage: /usr/bin/python3 tests/oracle/test_ops_torch.py /path/to/libebmc.so

Loads libebmc with ctypes, creates a CPU context and compares the forward and backward of every op
in include/ebmc/backend.h against PyTorch (float32, CPU). Each comparison prints one row

    op  case  quantity  rel_l2  tol  ok

where rel_l2 = ||ours - torch||_2 / ||torch||_2 (computed in float64; the absolute norm when the
reference is all zeros; inf when ours has a NaN/Inf). Backward ops are run twice: beta = 0 with the
output pre-filled with NaN (it must not be read) and beta = 1 with a random pre-fill (expected:
pre-fill + gradient). Every output buffer has sentinel guard regions on both sides; a write outside
the tensor fails the row. Gradients are autograd's of sum(r * y) for a random r, with dy = r.

The last line is "N passed, M failed"; exit status 0 iff M == 0, 77 (skip) when PyTorch or numpy
is not importable, 2 on a usage or library-loading error.
"""
import ctypes as C
import faulthandler
import math
import os
import sys
import traceback

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("oracle_ops: SKIPPED \u2014 PyTorch not installed "
          "(Debian: apt-get install python3-torch python3-numpy)")
    sys.exit(77)

TOL = 1e-5
SEED = int(os.environ.get("EBMC_ORACLE_SEED", "20240917"))   # override to vary the inputs

# ------------------------------------------------------------------ C structs (include/ebmc/backend.h)


class CtxOpts(C.Structure):
    _fields_ = [("kind", C.c_int), ("device", C.c_int), ("precision", C.c_int),
                ("deterministic", C.c_bool), ("quiet", C.c_bool)]


class ConvDesc(C.Structure):
    _fields_ = [(f, C.c_int) for f in (
        "n", "c_in", "h", "w", "c_out", "kh", "kw", "stride_h", "stride_w",
        "pad_t", "pad_b", "pad_l", "pad_r", "out_pad_h", "out_pad_w", "transposed", "has_bias")]

    def __repr__(self):
        return "ConvDesc(" + ", ".join(f"{f}={getattr(self, f)}" for f, _ in self._fields_) + ")"


class LinearDesc(C.Structure):
    _fields_ = [("n", C.c_int), ("in_", C.c_int), ("out", C.c_int)]


class T4Desc(C.Structure):
    _fields_ = [("n", C.c_int), ("c", C.c_int), ("h", C.c_int), ("w", C.c_int)]


class ActDesc(C.Structure):
    _fields_ = [("kind", C.c_int), ("slope", C.c_float), ("count", C.c_size_t)]


class BnDesc(C.Structure):
    _fields_ = [("n", C.c_int), ("c", C.c_int), ("h", C.c_int), ("w", C.c_int),
                ("eps", C.c_float), ("momentum", C.c_float)]


class SnDesc(C.Structure):
    _fields_ = [("rows", C.c_int), ("cols", C.c_int), ("n_power_iter", C.c_int),
                ("eps", C.c_float)]


class UpsampleDesc(C.Structure):
    _fields_ = [("n", C.c_int), ("c", C.c_int), ("h", C.c_int), ("w", C.c_int),
                ("mode", C.c_int)]


class GpoolDesc(C.Structure):
    _fields_ = [("n", C.c_int), ("c", C.c_int), ("h", C.c_int), ("w", C.c_int),
                ("mode", C.c_int)]


class AxpbyDesc(C.Structure):
    _fields_ = [("count", C.c_size_t), ("a", C.c_float), ("b", C.c_float)]


class FillDesc(C.Structure):
    _fields_ = [("count", C.c_size_t), ("value", C.c_float)]


class ReduceDesc(C.Structure):
    _fields_ = [("rows", C.c_int), ("cols", C.c_size_t), ("mode", C.c_int), ("beta", C.c_float)]


class AdamDesc(C.Structure):
    _fields_ = [("count", C.c_size_t), ("lr", C.c_double), ("beta1", C.c_double),
                ("beta2", C.c_double), ("eps", C.c_double), ("weight_decay", C.c_double),
                ("step", C.c_long)]


# enums
BACKEND_CPU = 0
ACT_IDENTITY, ACT_RELU, ACT_LRELU, ACT_TANH, ACT_SILU = range(5)
UPS_BILINEAR_AC, UPS_NEAREST = 0, 1
GPOOL_AVG, GPOOL_SUM = 0, 1
REDUCE_SUM, REDUCE_SUMSQ = 0, 1

# ------------------------------------------------------------------ library

P = C.c_void_p
F32 = C.c_float
I32 = C.c_int


def load_lib(path):
    lib = C.CDLL(path)

    def proto(name, res, *args):
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = list(args)

    PC = C.POINTER(ConvDesc)
    proto("ebmc_ctx_opts_default", CtxOpts)
    proto("ebmc_ctx_create", I32, C.POINTER(CtxOpts), C.POINTER(P), C.c_char_p, C.c_size_t)
    proto("ebmc_ctx_free", None, P)
    proto("ebmc_ctx_kind", I32, P)
    proto("ebmc_ctx_error", C.c_char_p, P)
    proto("ebmc_conv_desc_make", ConvDesc, *([I32] * 8))
    proto("ebmc_convt_desc_make", ConvDesc, *([I32] * 9))
    proto("ebmc_conv_desc_same_tf", ConvDesc, *([I32] * 8))
    proto("ebmc_conv_out_hw", I32, PC, C.POINTER(I32), C.POINTER(I32))
    for nm in ("x", "w", "y"):
        proto(f"ebmc_conv_{nm}_count", C.c_size_t, PC)
    for pre in ("conv2d", "convt2d"):
        proto(f"ebmc_{pre}_fwd", I32, P, PC, P, P, P)
        proto(f"ebmc_{pre}_bwd_data", I32, P, PC, P, P, P, F32)
        proto(f"ebmc_{pre}_bwd_filter", I32, P, PC, P, P, P, F32)
    PL = C.POINTER(LinearDesc)
    proto("ebmc_linear_fwd", I32, P, PL, P, P, P, P)
    proto("ebmc_linear_bwd_data", I32, P, PL, P, P, P, F32)
    proto("ebmc_linear_bwd_filter", I32, P, PL, P, P, P, P, F32)
    PT = C.POINTER(T4Desc)
    proto("ebmc_bias_fwd", I32, P, PT, P, P)
    proto("ebmc_bias_bwd", I32, P, PT, P, P, F32)
    PA = C.POINTER(ActDesc)
    proto("ebmc_act_fwd", I32, P, PA, P, P)
    proto("ebmc_act_bwd", I32, P, PA, P, P, P, P, F32)
    PB = C.POINTER(BnDesc)
    proto("ebmc_bn_fwd", I32, P, PB, *([P] * 8))
    proto("ebmc_bn_bwd", I32, P, PB, *([P] * 8), F32, F32)
    PS = C.POINTER(SnDesc)
    proto("ebmc_sn_power", I32, P, PS, P, P, P, P, P)
    proto("ebmc_sn_bwd", I32, P, PS, P, P, P, P, P, P, F32)
    PU = C.POINTER(UpsampleDesc)
    proto("ebmc_upsample_fwd", I32, P, PU, P, P)
    proto("ebmc_upsample_bwd", I32, P, PU, P, P, F32)
    proto("ebmc_avgpool2_fwd", I32, P, PT, P, P)
    proto("ebmc_avgpool2_bwd", I32, P, PT, P, P, F32)
    PG = C.POINTER(GpoolDesc)
    proto("ebmc_gpool_fwd", I32, P, PG, P, P)
    proto("ebmc_gpool_bwd", I32, P, PG, P, P, F32)
    proto("ebmc_axpby", I32, P, C.POINTER(AxpbyDesc), P, P)
    proto("ebmc_fill", I32, P, C.POINTER(FillDesc), P)
    proto("ebmc_reduce", I32, P, C.POINTER(ReduceDesc), P, P)
    proto("ebmc_adam", I32, P, C.POINTER(AdamDesc), P, P, P, P)
    return lib


LIB = None
CTX = None

# ------------------------------------------------------------------ buffers and results

GUARD = 32
SENTINEL = np.float32(1.2345678e30)


class Buf:
    """A float32 output buffer of n elements with sentinel guards on both sides."""

    def __init__(self, shape, fill=None):
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
        n = int(np.prod(shape))
        self.shape = shape
        self.full = np.full(n + 2 * GUARD, SENTINEL, dtype=np.float32)
        self.flat = self.full[GUARD:GUARD + n]
        if fill is not None:
            self.flat[:] = np.asarray(fill, dtype=np.float32).ravel()
        else:
            self.flat[:] = np.nan

    @property
    def ptr(self):
        return self.full.ctypes.data + GUARD * 4

    @property
    def a(self):
        return self.flat.reshape(self.shape)

    def guards_ok(self):
        return bool(np.all(self.full[:GUARD] == SENTINEL) and np.all(self.full[-GUARD:] == SENTINEL))


def ptr(a):
    if a is None:
        return None
    if isinstance(a, Buf):
        return a.ptr
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags["C_CONTIGUOUS"], \
        "inputs must be C-contiguous float32 arrays"
    return a.ctypes.data


class CallFailed(Exception):
    pass


N_PASS = 0
N_FAIL = 0
FAILURES = []


def row(op, case, qty, err, tol, ok, note=""):
    global N_PASS, N_FAIL
    if ok:
        N_PASS += 1
    else:
        N_FAIL += 1
        FAILURES.append(f"{op}  {case}  {qty}  {err:.3e}  {note}")
    e = f"{err:.3e}" if isinstance(err, float) else str(err)
    print(f"{op:<18} {case:<46} {qty:<26} {e:>10}  {tol:.0e}  {'ok' if ok else 'FAIL'}"
          + (f"  ({note})" if note else ""), flush=True)


def rel_l2(ours, ref):
    a = np.asarray(ours, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    if a.shape != r.shape:
        return math.inf
    if not np.all(np.isfinite(a)):
        return math.inf
    nd = float(np.linalg.norm(a - r))
    nr = float(np.linalg.norm(r))
    return nd / nr if nr > 0 else nd


def compare(op, case, qty, ours, ref, tol=TOL):
    note = ""
    guards = True
    if isinstance(ours, Buf):
        guards = ours.guards_ok()
        if not guards:
            note = "guard region overwritten"
        ours = ours.a
    if isinstance(ref, torch.Tensor):
        ref = ref.detach().numpy()
    if np.size(ours) != np.size(ref):
        row(op, case, qty, math.inf, tol, False, f"size {np.size(ours)} != torch {np.size(ref)}")
        return
    err = rel_l2(ours, ref)
    ok = err < tol and guards
    if not ok and not note:
        a = np.asarray(ours, dtype=np.float64).ravel()
        r = np.asarray(ref, dtype=np.float64).ravel()
        d = np.abs(a - r)
        d[~np.isfinite(d)] = np.inf
        i = int(np.argmax(d))
        note = f"worst at flat index {i}: ours {a[i]:.7g} torch {r[i]:.7g}"
    row(op, case, qty, err, tol, ok, note)


def check(op, case, qty, cond, note=""):
    row(op, case, qty, 0.0 if cond else math.inf, TOL, bool(cond), note)


def call(name, *args):
    st = getattr(LIB, name)(CTX, *args)
    if st != 0:
        raise CallFailed(f"{name} returned status {st}: {LIB.ebmc_ctx_error(CTX).decode(errors='replace')}")


RNG = np.random.default_rng(SEED)


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def away_from_zero(*shape, lo=0.05, hi=3.0):
    m = RNG.uniform(lo, hi, shape)
    s = np.where(RNG.integers(0, 2, shape) == 1, 1.0, -1.0)
    return (m * s).astype(np.float32)


def T(a, grad=False):
    t = torch.from_numpy(np.array(a, dtype=np.float32, copy=True))
    return t.requires_grad_(grad)


def run_case(op, case, fn):
    """Runs one case; a failed call or a Python error fails the case with one row."""
    try:
        fn()
    except CallFailed as e:
        row(op, case, "call status", math.inf, TOL, False, str(e))
    except Exception as e:  # a bug in this script or a crash-free misbehaviour: report, go on
        row(op, case, "python error", math.inf, TOL, False, f"{type(e).__name__}: {e}")
        traceback.print_exc()


def bwd_twice(op, case, qty, shape, ref, fn):
    """fn(buf_ptr, beta) runs the backward; checks beta=0 over NaN and beta=1 over a random fill."""
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    b0 = Buf(shape)
    fn(b0.ptr, 0.0)
    compare(op, case, f"{qty} beta=0", b0, ref)
    pre = randn(*shape)
    b1 = Buf(shape, pre)
    fn(b1.ptr, 1.0)
    compare(op, case, f"{qty} beta=1", b1, pre + ref)

# ------------------------------------------------------------------ convolution


def tf_same_pads(n_in, k, s, transposed):
    """TensorFlow 'SAME' padding, computed here independently of the library."""
    big = n_in * s if transposed else n_in
    small = n_in if transposed else -(-n_in // s)
    total = max((small - 1) * s + k - big, 0)
    return total // 2, total - total // 2


def torch_conv(x, w, d):
    if d.pad_t == d.pad_b and d.pad_l == d.pad_r:
        return F.conv2d(x, w, stride=(d.stride_h, d.stride_w), padding=(d.pad_t, d.pad_l))
    xp = F.pad(x, (d.pad_l, d.pad_r, d.pad_t, d.pad_b))
    return F.conv2d(xp, w, stride=(d.stride_h, d.stride_w), padding=0)


def torch_convt(x, w, d, ho, wo):
    if d.pad_t == d.pad_b and d.pad_l == d.pad_r:
        return F.conv_transpose2d(x, w, stride=(d.stride_h, d.stride_w), padding=(d.pad_t, d.pad_l),
                                  output_padding=(d.out_pad_h, d.out_pad_w))
    # asymmetric (TF 'SAME'): the full transposed conv, (H-1)*s + K, cropped pad_t/pad_l at the
    # top/left; rows past the full output (output padding beyond pad_b) are zero.
    full = F.conv_transpose2d(x, w, stride=(d.stride_h, d.stride_w), padding=0)
    eh = max(0, d.pad_t + ho - full.shape[2])
    ew = max(0, d.pad_l + wo - full.shape[3])
    if eh or ew:
        full = F.pad(full, (0, ew, 0, eh))
    return full[:, :, d.pad_t:d.pad_t + ho, d.pad_l:d.pad_l + wo]


def conv_case(op, case, d):
    transposed = bool(d.transposed)
    ho, wo = C.c_int(0), C.c_int(0)
    rc = LIB.ebmc_conv_out_hw(C.byref(d), C.byref(ho), C.byref(wo))
    if rc != 0:
        raise CallFailed(f"ebmc_conv_out_hw returned {rc} for {d!r}")
    ho, wo = ho.value, wo.value
    xs = (d.n, d.c_in, d.h, d.w)
    ws = (d.c_in, d.c_out, d.kh, d.kw) if transposed else (d.c_out, d.c_in, d.kh, d.kw)
    ys = (d.n, d.c_out, ho, wo)
    x = randn(*xs)
    w = randn(*ws, scale=1.0 / math.sqrt(d.c_in * d.kh * d.kw))
    xt, wt = T(x, True), T(w, True)
    yt = torch_convt(xt, wt, d, ho, wo) if transposed else torch_conv(xt, wt, d)
    check(op, case, "out shape / counts",
          tuple(yt.shape) == ys and LIB.ebmc_conv_x_count(C.byref(d)) == x.size
          and LIB.ebmc_conv_w_count(C.byref(d)) == w.size
          and LIB.ebmc_conv_y_count(C.byref(d)) == int(np.prod(ys)),
          f"ebmc {ys} torch {tuple(yt.shape)}")
    r = randn(*ys)
    (yt * T(r)).sum().backward()
    pre = "convt2d" if transposed else "conv2d"
    y = Buf(ys)
    call(f"ebmc_{pre}_fwd", C.byref(d), ptr(x), ptr(w), y.ptr)
    compare(op, case, "fwd y", y, yt)
    bwd_twice(op, case, "bwd_data dx", xs, xt.grad,
              lambda p, beta: call(f"ebmc_{pre}_bwd_data", C.byref(d), ptr(r), ptr(w), p, beta))
    bwd_twice(op, case, "bwd_filter dw", ws, wt.grad,
              lambda p, beta: call(f"ebmc_{pre}_bwd_filter", C.byref(d), ptr(x), ptr(r), p, beta))


def test_conv():
    mk = LIB.ebmc_conv_desc_make            # (n, c_in, h, w, c_out, k, s, p)
    cases = [
        ("3x3 s1 p1 9x9 N2", mk(2, 3, 9, 9, 4, 3, 1, 1)),
        ("3x3 s1 p1 8x13 N3", mk(3, 2, 8, 13, 5, 3, 1, 1)),
        ("3x3 s2 p1 13x11 N2", mk(2, 3, 13, 11, 4, 3, 2, 1)),
        ("4x4 s2 p1 16x16 N2", mk(2, 3, 16, 16, 8, 4, 2, 1)),
        ("4x4 s2 p1 15x15 N2", mk(2, 4, 15, 15, 3, 4, 2, 1)),
        ("4x4 s1 p0 (valid) 4x4->1x1 N4", mk(4, 8, 4, 4, 1, 4, 1, 0)),
        ("4x4 s1 p0 (valid) 11x9 N2", mk(2, 3, 11, 9, 4, 4, 1, 0)),
        ("1x1 s1 p0 7x7 N2", mk(2, 5, 7, 7, 6, 1, 1, 0)),
        ("1x1 s2 p0 7x7 N2", mk(2, 3, 7, 7, 4, 1, 2, 0)),
        ("5x5 s2 p2 17x17 N2", mk(2, 3, 17, 17, 4, 5, 2, 2)),
        ("5x5 s1 p2 6x5 N1", mk(1, 2, 6, 5, 3, 5, 1, 2)),
        # a larger image: the CPU backend's batch chunk of 2 images (992 columns each)
        ("3x3 s1 p1 32x31 N2 C8 (large)", mk(2, 8, 32, 31, 8, 3, 1, 1)),
        # the batch in GEMM chunks of 3 images (Ho*Wo = 400: 1024 columns) and a last one of 2;
        # im2col, col2im (> 2^18 floats) and GEMMs (> 2^22 MACs) split among the OpenMP threads
        ("3x3 s1 p1 20x20 N5 C32->32 (batch chunks 3+2)", mk(5, 32, 20, 20, 32, 3, 1, 1)),
    ]
    same = [  # (n, c_in, h, w, c_out, k, s)
        (2, 3, 16, 16, 4, 3, 2),
        (2, 3, 15, 15, 4, 4, 2),
        (2, 2, 9, 7, 3, 3, 1),
        (2, 3, 13, 10, 2, 5, 2),
        (1, 2, 8, 8, 3, 4, 1),
    ]
    for n, ci, h, w, co, k, s in same:
        d = LIB.ebmc_conv_desc_same_tf(n, ci, h, w, co, k, s, 0)
        case = f"SAME-tf {k}x{k} s{s} {h}x{w} N{n}"
        pt, pb = tf_same_pads(h, k, s, False)
        pl, pr = tf_same_pads(w, k, s, False)
        check("conv2d", case, "desc pads/out",
              (d.pad_t, d.pad_b, d.pad_l, d.pad_r, d.out_pad_h, d.out_pad_w, d.transposed)
              == (pt, pb, pl, pr, 0, 0, 0),
              f"tblr ebmc ({d.pad_t},{d.pad_b},{d.pad_l},{d.pad_r}) tf ({pt},{pb},{pl},{pr})")
        cases.append((case + f" pads t{d.pad_t}b{d.pad_b}l{d.pad_l}r{d.pad_r}", d))
    for case, d in cases:
        run_case("conv2d", case, lambda d=d, case=case: conv_case("conv2d", case, d))


def test_convt():
    mk = LIB.ebmc_convt_desc_make            # (n, c_in, h, w, c_out, k, s, p, op)
    cases = [
        ("4x4 s1 p0 1x1->4x4 N4 (gen. first)", mk(4, 8, 1, 1, 6, 4, 1, 0, 0)),
        ("4x4 s2 p1 7x7 N2", mk(2, 5, 7, 7, 3, 4, 2, 1, 0)),
        ("4x4 s2 p1 8x5 N2", mk(2, 3, 8, 5, 4, 4, 2, 1, 0)),
        ("3x3 s1 p1 9x9 N2", mk(2, 4, 9, 9, 3, 3, 1, 1, 0)),
        ("3x3 s2 p1 op1 5x6 N2", mk(2, 3, 5, 6, 2, 3, 2, 1, 1)),
        ("5x5 s2 p2 op1 7x7 N2", mk(2, 3, 7, 7, 4, 5, 2, 2, 1)),
        ("5x5 s2 p2 op0 6x9 N1", mk(1, 2, 6, 9, 3, 5, 2, 2, 0)),
        ("1x1 s1 p0 5x5 N3", mk(3, 4, 5, 5, 2, 1, 1, 0, 0)),
        ("4x4 s2 p1 16x15 N2 C8->24 (large)", mk(2, 8, 16, 15, 24, 4, 2, 1, 0)),
        # GEMM chunks of 5 images (15x15 = 225 columns each) and a last one of 2; OpenMP paths
        ("4x4 s2 p1 15x15 N7 C16->32 (batch chunks 5+2)", mk(7, 16, 15, 15, 32, 4, 2, 1, 0)),
    ]
    same = [  # (n, c_in, h, w, c_out, k, s)
        (2, 4, 16, 16, 3, 3, 2),
        (2, 3, 7, 5, 2, 5, 2),
        (2, 3, 8, 8, 4, 4, 2),
        (2, 2, 9, 7, 3, 3, 1),
        (2, 3, 5, 6, 2, 1, 2),       # K < s: no pad, output_padding 1
    ]
    for n, ci, h, w, co, k, s in same:
        d = LIB.ebmc_conv_desc_same_tf(n, ci, h, w, co, k, s, 1)
        case = f"SAME-tf T {k}x{k} s{s} {h}x{w}->{h * s}x{w * s} N{n}"
        pt, pb = tf_same_pads(h, k, s, True)
        pl, pr = tf_same_pads(w, k, s, True)
        ho, wo = C.c_int(0), C.c_int(0)
        rc = LIB.ebmc_conv_out_hw(C.byref(d), C.byref(ho), C.byref(wo))
        check("convt2d", case, "desc pads/out",
              (d.pad_t, d.pad_b, d.pad_l, d.pad_r, d.transposed) == (pt, pb, pl, pr, 1)
              and rc == 0 and (ho.value, wo.value) == (h * s, w * s),
              f"tblr ebmc ({d.pad_t},{d.pad_b},{d.pad_l},{d.pad_r}) tf ({pt},{pb},{pl},{pr}); "
              f"out {ho.value}x{wo.value}")
        cases.append((case + f" pads t{d.pad_t}b{d.pad_b}l{d.pad_l}r{d.pad_r}", d))
    for case, d in cases:
        run_case("convt2d", case, lambda d=d, case=case: conv_case("convt2d", case, d))

# ------------------------------------------------------------------ linear, bias, activations


def linear_case(case, n, fin, fout):
    d = LinearDesc(n, fin, fout)
    x = randn(n, fin)
    w = randn(fout, fin, scale=1.0 / math.sqrt(fin))
    b = randn(fout)
    r = randn(n, fout)
    for with_bias in (True, False):
        xt, wt, bt = T(x, True), T(w, True), T(b, True)
        yt = F.linear(xt, wt, bt if with_bias else None)
        (yt * T(r)).sum().backward()
        tag = "bias" if with_bias else "no bias"
        y = Buf((n, fout))
        call("ebmc_linear_fwd", C.byref(d), ptr(x), ptr(w), ptr(b) if with_bias else None, y.ptr)
        compare("linear", case, f"fwd y ({tag})", y, yt)
        if with_bias:
            bwd_twice("linear", case, "bwd_data dx", (n, fin), xt.grad,
                      lambda p, beta: call("ebmc_linear_bwd_data", C.byref(d), ptr(r), ptr(w), p,
                                           beta))
        for beta in (0.0, 1.0):
            pre_w = randn(fout, fin) if beta else None
            pre_b = randn(fout) if beta else None
            dw = Buf((fout, fin), pre_w)
            db = Buf((fout,), pre_b) if with_bias else None
            call("ebmc_linear_bwd_filter", C.byref(d), ptr(x), ptr(r), dw.ptr,
                 db.ptr if with_bias else None, beta)
            ew = wt.grad.numpy() + (pre_w if beta else 0)
            compare("linear", case, f"dw ({tag}) beta={beta:g}", dw, ew)
            if with_bias:
                compare("linear", case, f"db beta={beta:g}", db, bt.grad.numpy() + (pre_b if beta else 0))


def test_linear():
    for case, n, fin, fout in [("N3 7->5", 3, 7, 5), ("N4 16->1 (energy head)", 4, 16, 1),
                               ("N1 9->12", 1, 9, 12), ("N4 33->17", 4, 33, 17)]:
        run_case("linear", case, lambda c=case, n=n, i=fin, o=fout: linear_case(c, n, i, o))


def bias_case(case, shape):
    n, c, h, w = shape
    d = T4Desc(n, c, h, w)
    b = randn(c)
    y0 = randn(*shape)
    y = Buf(shape, y0)
    call("ebmc_bias_fwd", C.byref(d), ptr(b), y.ptr)
    compare("bias", case, "fwd y += b (in place)", y, y0 + b.reshape(1, c, 1, 1))
    bt = T(b, True)
    yt = T(y0) + bt.view(1, c, 1, 1)
    r = randn(*shape)
    (yt * T(r)).sum().backward()
    bwd_twice("bias", case, "bwd db", (c,), bt.grad,
              lambda p, beta: call("ebmc_bias_bwd", C.byref(d), ptr(r), p, beta))


def test_bias():
    for case, shape in [("(2,5,7,3)", (2, 5, 7, 3)), ("(N,F)=(4,6)", (4, 6, 1, 1)),
                        ("(3,4,1,9)", (3, 4, 1, 9)), ("(1,8,5,5)", (1, 8, 5, 5))]:
        run_case("bias", case, lambda c=case, s=shape: bias_case(c, s))


ACTS = [
    ("identity", ACT_IDENTITY, 0.0, lambda t: t),
    ("relu", ACT_RELU, 0.0, F.relu),
    ("lrelu(0.2)", ACT_LRELU, 0.2, lambda t: F.leaky_relu(t, 0.2)),
    ("tanh", ACT_TANH, 0.0, torch.tanh),
    ("silu", ACT_SILU, 0.0, F.silu),
]


def act_case(name, kind, slope, tf, count):
    case = f"{name} n={count}"
    d = ActDesc(kind, slope, count)
    x = away_from_zero(count)
    xt = T(x, True)
    yt = tf(xt)
    r = randn(count)
    (yt * T(r)).sum().backward()
    y = Buf(count)
    call("ebmc_act_fwd", C.byref(d), ptr(x), y.ptr)
    compare("act", case, "fwd y", y, yt)
    yv = np.ascontiguousarray(y.a)
    bwd_twice("act", case, "bwd dx", (count,), xt.grad,
              lambda p, beta: call("ebmc_act_bwd", C.byref(d), ptr(x), ptr(yv), ptr(r), p, beta))
    # in place: y == x forward; dx == dy backward; the input the op does not use passed as NULL
    xy = x.copy()
    call("ebmc_act_fwd", C.byref(d), ptr(xy), ptr(xy))
    compare("act", case, "fwd in place (y==x)", xy, yt)
    g = r.copy()
    xin, yin = (None, ptr(yv)) if kind == ACT_TANH else (ptr(x), None)
    call("ebmc_act_bwd", C.byref(d), xin, yin, ptr(g), ptr(g), 0.0)
    compare("act", case, "bwd dx==dy, unused=NULL", g, xt.grad)


def test_act():
    for name, kind, slope, tf in ACTS:
        for count in (210, 1001, 70001):
            run_case("act", f"{name} n={count}",
                     lambda a=(name, kind, slope, tf, count): act_case(*a))

# ------------------------------------------------------------------ batch norm


def bn_case(case, shape):
    n, c, h, w = shape
    eps, mom = 1e-5, 0.1
    d = BnDesc(n, c, h, w, eps, mom)
    x = (randn(*shape) * (1.0 + RNG.uniform(0, 2, (1, c, 1, 1)))
         + RNG.uniform(-1, 1, (1, c, 1, 1))).astype(np.float32)
    gamma = randn(c)                         # N(0,1), as the Dual-MCMC code initialises it
    beta = randn(c, scale=0.5)
    rm0 = randn(c, scale=0.3)
    rv0 = RNG.uniform(0.5, 2.0, c).astype(np.float32)

    mod = (torch.nn.BatchNorm2d if h * w > 1 else torch.nn.BatchNorm1d)(c, eps=eps, momentum=mom)
    mod.train()
    with torch.no_grad():
        mod.weight.copy_(T(gamma))
        mod.bias.copy_(T(beta))
        mod.running_mean.copy_(T(rm0))
        mod.running_var.copy_(T(rv0))
    xt = T(x if h * w > 1 else x.reshape(n, c), True)
    yt = mod(xt)
    r = randn(*yt.shape)
    (yt * T(r)).sum().backward()
    _, sm_t, si_t = torch.ops.aten.native_batch_norm(T(x), T(gamma), T(beta), None, None, True,
                                                     mom, eps)

    y = Buf(shape)
    sm, si = Buf(c), Buf(c)
    rm, rv = Buf(c, rm0), Buf(c, rv0)
    call("ebmc_bn_fwd", C.byref(d), ptr(x), ptr(gamma), ptr(beta), y.ptr, sm.ptr, si.ptr,
         rm.ptr, rv.ptr)
    compare("bn", case, "fwd y", y, yt)
    compare("bn", case, "save_mean", sm, sm_t)
    compare("bn", case, "save_invstd", si, si_t)
    compare("bn", case, "running_mean", rm, mod.running_mean)
    compare("bn", case, "running_var (unbiased)", rv, mod.running_var)
    y2, sm2, si2 = Buf(shape), Buf(c), Buf(c)
    call("ebmc_bn_fwd", C.byref(d), ptr(x), ptr(gamma), ptr(beta), y2.ptr, sm2.ptr, si2.ptr,
         None, None)
    compare("bn", case, "fwd y (running=NULL)", y2, yt)

    smv, siv = np.ascontiguousarray(sm.a), np.ascontiguousarray(si.a)
    for bdx, bpar in ((0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)):
        pdx = randn(*shape) if bdx else None
        pg = randn(c) if bpar else None
        pb = randn(c) if bpar else None
        dx, dg, db = Buf(shape, pdx), Buf(c, pg), Buf(c, pb)
        call("ebmc_bn_bwd", C.byref(d), ptr(x), ptr(r), ptr(gamma), ptr(smv), ptr(siv),
             dx.ptr, dg.ptr, db.ptr, bdx, bpar)
        tag = f"b_dx={bdx:g} b_par={bpar:g}"
        compare("bn", case, f"dx {tag}", dx, xt.grad.numpy().reshape(shape) + (pdx if bdx else 0))
        compare("bn", case, f"dgamma {tag}", dg, mod.weight.grad.numpy() + (pg if bpar else 0))
        compare("bn", case, f"dbeta {tag}", db, mod.bias.grad.numpy() + (pb if bpar else 0))


def test_bn():
    for case, shape in [("2d (4,6,5,7)", (4, 6, 5, 7)), ("2d (2,3,9,9)", (2, 3, 9, 9)),
                        ("2d N1 (1,4,3,3)", (1, 4, 3, 3)), ("1d (N,F)=(8,5)", (8, 5, 1, 1)),
                        ("1d (N,F)=(3,16)", (3, 16, 1, 1))]:
        run_case("bn", case, lambda c=case, s=shape: bn_case(c, s))

# ------------------------------------------------------------------ spectral norm


def sn_case(case, make_module, n_iter, in_shape):
    torch.manual_seed(SEED + n_iter)
    mod = make_module()
    # torch refuses n_power_iterations=0; ebmc's 0 ("reuse u, v") is torch's eval-mode forward
    mod = torch.nn.utils.spectral_norm(mod, n_power_iterations=max(n_iter, 1), eps=1e-12)
    if n_iter == 0:
        # u, v as training leaves them (a few power iterations), then eval: with the random initial
        # u, v sigma = u.Wv can be near 0 and the comparison ill-conditioned.
        mod.train()
        with torch.no_grad():
            for _ in range(3):
                mod(torch.randn(*in_shape))
        mod.weight_orig.grad = None
    mod.train(n_iter > 0)
    W0 = mod.weight_orig.detach().clone()
    rows = W0.shape[0]
    Wm = W0.reshape(rows, -1)
    cols = Wm.shape[1]
    u0 = mod.weight_u.detach().clone()
    v0 = mod.weight_v.detach().clone()
    d = SnDesc(rows, cols, n_iter, 1e-12)
    mod(torch.randn(*in_shape))                    # the pre-forward hook: power iteration(s)
    wsn_t = mod.weight                             # depends on weight_orig (u, v held constant)
    u_t, v_t = mod.weight_u.detach().clone(), mod.weight_v.detach().clone()
    sigma_t = torch.dot(u_t, Wm @ v_t)
    r = randn(*W0.shape)
    (wsn_t * T(r)).sum().backward()
    dW_t = mod.weight_orig.grad

    w = np.ascontiguousarray(W0.numpy())
    u, v = Buf(rows, u0.numpy()), Buf(cols, v0.numpy())
    sigma, wsn = Buf(1), Buf(W0.shape)
    call("ebmc_sn_power", C.byref(d), ptr(w), u.ptr, v.ptr, sigma.ptr, wsn.ptr)
    compare("sn", case, "u", u, u_t)
    compare("sn", case, "v", v, v_t)
    compare("sn", case, "sigma", sigma, sigma_t.reshape(1))
    compare("sn", case, "w_sn == module.weight", wsn, wsn_t)
    if n_iter == 0:
        check("sn", case, "u, v unchanged",
              np.array_equal(u.a, u0.numpy()) and np.array_equal(v.a, v0.numpy())
              and torch.equal(u_t, u0) and torch.equal(v_t, v0))
    uv, vv, sv = (np.ascontiguousarray(b.a) for b in (u, v, sigma))
    bwd_twice("sn", case, "bwd dW", W0.shape, dW_t,
              lambda p, beta: call("ebmc_sn_bwd", C.byref(d), ptr(w), ptr(uv), ptr(vv), ptr(sv),
                                   ptr(r), p, beta))


def test_sn():
    cases = [
        ("Conv2d(4,6,3)", lambda: torch.nn.Conv2d(4, 6, 3, padding=1), (2, 4, 5, 5)),
        ("Conv2d(3,8,4,s2)", lambda: torch.nn.Conv2d(3, 8, 4, stride=2, padding=1), (2, 3, 8, 8)),
        ("Conv2d(8,1,4) (disc. last)", lambda: torch.nn.Conv2d(8, 1, 4), (2, 8, 4, 4)),
        ("Linear(7,5)", lambda: torch.nn.Linear(7, 5), (3, 7)),
        ("Linear(16,1)", lambda: torch.nn.Linear(16, 1), (3, 16)),
        ("Linear(5,12)", lambda: torch.nn.Linear(5, 12), (3, 5)),
    ]
    for name, mk, ins in cases:
        for n_iter in (1, 0, 2):
            case = f"{name} iters={n_iter}"
            run_case("sn", case, lambda c=case, m=mk, k=n_iter, s=ins: sn_case(c, m, k, s))

# ------------------------------------------------------------------ upsample, pools


def upsample_case(case, mode, shape):
    n, c, h, w = shape
    d = UpsampleDesc(n, c, h, w, mode)
    x = randn(*shape)
    xt = T(x, True)
    if mode == UPS_BILINEAR_AC:
        yt = F.interpolate(xt, size=(2 * h, 2 * w), mode="bilinear", align_corners=True)
    else:
        yt = F.interpolate(xt, size=(2 * h, 2 * w), mode="nearest")
    r = randn(n, c, 2 * h, 2 * w)
    (yt * T(r)).sum().backward()
    y = Buf((n, c, 2 * h, 2 * w))
    call("ebmc_upsample_fwd", C.byref(d), ptr(x), y.ptr)
    compare("upsample", case, "fwd y", y, yt)
    bwd_twice("upsample", case, "bwd dx", shape, xt.grad,
              lambda p, beta: call("ebmc_upsample_bwd", C.byref(d), ptr(r), p, beta))


def test_upsample():
    for mname, mode in (("bilinear-ac", UPS_BILINEAR_AC), ("nearest", UPS_NEAREST)):
        for shape in [(2, 3, 1, 1), (2, 3, 5, 7), (1, 2, 8, 8), (3, 2, 4, 1), (2, 2, 1, 6)]:
            case = f"{mname} {shape}"
            run_case("upsample", case, lambda c=case, m=mode, s=shape: upsample_case(c, m, s))


def avgpool_case(case, shape):
    n, c, h, w = shape
    d = T4Desc(n, c, h, w)
    x = randn(*shape)
    xt = T(x, True)
    yt = F.avg_pool2d(xt, 2)
    r = randn(*yt.shape)
    (yt * T(r)).sum().backward()
    y = Buf(tuple(yt.shape))
    call("ebmc_avgpool2_fwd", C.byref(d), ptr(x), y.ptr)
    compare("avgpool2", case, "fwd y", y, yt)
    bwd_twice("avgpool2", case, "bwd dx", shape, xt.grad,
              lambda p, beta: call("ebmc_avgpool2_bwd", C.byref(d), ptr(r), p, beta))


def test_avgpool():
    for shape in [(2, 3, 8, 8), (2, 3, 7, 9), (3, 4, 5, 3), (2, 2, 2, 2), (1, 2, 17, 16)]:
        case = f"{shape}"
        run_case("avgpool2", case, lambda c=case, s=shape: avgpool_case(c, s))


def gpool_case(case, mode, shape):
    n, c, h, w = shape
    d = GpoolDesc(n, c, h, w, mode)
    x = randn(*shape)
    xt = T(x, True)
    yt = xt.mean(dim=(2, 3)) if mode == GPOOL_AVG else xt.sum(dim=(2, 3))
    r = randn(n, c)
    (yt * T(r)).sum().backward()
    y = Buf((n, c))
    call("ebmc_gpool_fwd", C.byref(d), ptr(x), y.ptr)
    compare("gpool", case, "fwd y", y, yt)
    bwd_twice("gpool", case, "bwd dx", shape, xt.grad,
              lambda p, beta: call("ebmc_gpool_bwd", C.byref(d), ptr(r), p, beta))


def test_gpool():
    for mname, mode in (("avg", GPOOL_AVG), ("sum", GPOOL_SUM)):
        for shape in [(2, 5, 7, 7), (3, 4, 1, 1), (2, 3, 4, 5), (1, 8, 16, 16)]:
            case = f"{mname} {shape}"
            run_case("gpool", case, lambda c=case, m=mode, s=shape: gpool_case(c, m, s))

# ------------------------------------------------------------------ axpby, fill, reduce


def test_axpby():
    def one(count, a, b, alias=False):
        case = f"n={count} a={a:g} b={b:g}" + (" x==y" if alias else "")
        d = AxpbyDesc(count, a, b)
        x = randn(count)
        if alias:
            y = Buf(count, x)
            call("ebmc_axpby", C.byref(d), y.ptr, y.ptr)
            ref = (T(x) * a + T(x) * b)
        else:
            y0 = randn(count) if b != 0 else None
            y = Buf(count, y0)          # b == 0: NaN, must not be read
            call("ebmc_axpby", C.byref(d), ptr(x), y.ptr)
            ref = T(x) * a + (T(y0) * b if b != 0 else 0)
        compare("axpby", case, "y", y, ref)

    for args in [(1000, 0.7, -1.3), (1000, -2.5, 0.0), (1, 3.0, 1.0), (777, 2.0, 0.5, True),
                 (4099, 1.0, 1.0)]:
        run_case("axpby", str(args), lambda a=args: one(*a))


def test_fill():
    def one(count, value):
        d = FillDesc(count, value)
        y = Buf(count)
        call("ebmc_fill", C.byref(d), y.ptr)
        compare("fill", f"n={count} value={value:g}", "y", y, torch.full((count,), value))

    for args in [(777, 0.25), (1, -3.5), (4096, 0.0)]:
        run_case("fill", str(args), lambda a=args: one(*a))


def test_reduce():
    def one(rows, cols, mode):
        mname = "sum" if mode == REDUCE_SUM else "sumsq"
        # mean 0.5: a sum of zero-mean data can land near 0, and a relative error of a near-zero
        # scalar measures the data, not the op; the reference is summed in float64 for the same
        # reason (1000 float32 additions alone are ~1e-6 off).
        x = randn(rows, cols) + np.float32(0.5)
        xt = T(x).double()
        ref = (xt.sum(dim=1) if mode == REDUCE_SUM else (xt * xt).sum(dim=1)).float()
        for beta in (0.0, 1.0):
            case = f"{mname} rows={rows} cols={cols}"
            d = ReduceDesc(rows, cols, mode, beta)
            pre = (np.abs(randn(rows)) * np.sign(ref.numpy())).astype(np.float32) if beta else None
            out = Buf(rows, pre)
            call("ebmc_reduce", C.byref(d), ptr(x), out.ptr)
            compare("reduce", case, f"out beta={beta:g}", out, ref.numpy() + (pre if beta else 0))

    for rows, cols in [(1, 1000), (5, 37), (8, 1), (3, 4097)]:
        for mode in (REDUCE_SUM, REDUCE_SUMSQ):
            run_case("reduce", f"{mode} {rows}x{cols}", lambda r=rows, c=cols, m=mode: one(r, c, m))

# ------------------------------------------------------------------ adam


def adam_case(case, count, lr, b1, b2, eps, wd, gscale, check_update):
    p0 = randn(count)
    grads = [randn(count, scale=gscale) for _ in range(5)]
    pt = torch.nn.Parameter(T(p0))
    # The descriptor holds the hyper-parameters in double, as torch's Python floats: both get the
    # same plain values (ebmc rounds 1 - beta2 etc. from the double, as torch's kernels do).
    opt = torch.optim.Adam([pt], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    param, m, v = Buf(count, p0), Buf(count, np.zeros(count)), Buf(count, np.zeros(count))
    worst = {"param": 0.0, "m (exp_avg)": 0.0, "v (exp_avg_sq)": 0.0}
    guards = True
    grad_untouched = True
    for step in range(1, 6):
        g = grads[step - 1]
        pt.grad = T(g)
        opt.step()
        st = opt.state[pt]
        gc = g.copy()
        d = AdamDesc(count, lr, b1, b2, eps, wd, step)
        call("ebmc_adam", C.byref(d), param.ptr, ptr(gc), m.ptr, v.ptr)
        grad_untouched &= np.array_equal(gc, g)
        guards &= param.guards_ok() and m.guards_ok() and v.guards_ok()
        for q, ours, ref in (("param", param.a, pt.detach()), ("m (exp_avg)", m.a, st["exp_avg"]),
                             ("v (exp_avg_sq)", v.a, st["exp_avg_sq"])):
            e = rel_l2(ours, ref.numpy())
            worst[q] = max(worst[q], e) if not math.isnan(e) else math.inf
    for q, e in worst.items():
        row("adam", case, f"{q} worst of 5", e, TOL, e < TOL)
    if check_update:
        compare("adam", case, "update p5-p0", param.a - p0, pt.detach().numpy() - p0)
    check("adam", case, "grad unchanged, guards", grad_untouched and guards)


def test_adam():
    cases = [
        ("dual-mcmc lr3e-4 b(0,0.9) wd5e-4", 257, 3e-4, 0.0, 0.9, 1e-8, 5e-4, 1e-3, False),
        ("lr2e-4 b(0.5,0.999) wd0", 300, 2e-4, 0.5, 0.999, 1e-8, 0.0, 1.0, False),
        ("lr0.05 b(0.9,0.999) wd1e-2 eps1e-6", 513, 0.05, 0.9, 0.999, 1e-6, 1e-2, 0.1, True),
        ("lr1e-3 b(0.9,0.999) wd1e-4 n=70001", 70001, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 1.0, True),
    ]
    for c in cases:
        run_case("adam", c[0], lambda a=c: adam_case(*a))

# ------------------------------------------------------------------ bad calls


def test_bad_calls():
    def fresh_ctx():
        opts = LIB.ebmc_ctx_opts_default()
        opts.kind = BACKEND_CPU
        opts.quiet = True
        ctx = P()
        err = C.create_string_buffer(512)
        st = LIB.ebmc_ctx_create(C.byref(opts), C.byref(ctx), err, 512)
        if st != 0:
            raise CallFailed(f"ebmc_ctx_create: {err.value.decode(errors='replace')}")
        return ctx

    def expect_fail(case, fn):
        ctx = fresh_ctx()            # a fresh context: its error text is empty until this call
        try:
            st = fn(ctx)
            msg = LIB.ebmc_ctx_error(ctx).decode(errors="replace")
        finally:
            LIB.ebmc_ctx_free(ctx)
        check("bad call", case, "status!=0, message", st != 0 and len(msg) > 0,
              f"status {st}: {msg}")

    big = Buf(4096, np.zeros(4096))
    x, w = np.zeros(4096, np.float32), np.zeros(4096, np.float32)
    mk = LIB.ebmc_conv_desc_make
    bad = mk(1, 1, 3, 3, 1, 5, 1, 0)           # 5x5 kernel on a 3x3 input, no padding
    good = mk(1, 2, 5, 5, 3, 3, 1, 1)
    ho, wo = C.c_int(0), C.c_int(0)
    rc = LIB.ebmc_conv_out_hw(C.byref(bad), C.byref(ho), C.byref(wo))
    check("bad call", "conv 5x5 on 3x3 p0", "conv_out_hw != 0", rc != 0, f"returned {rc}")
    expect_fail("conv fwd 5x5 on 3x3 p0",
                lambda c: LIB.ebmc_conv2d_fwd(c, C.byref(bad), ptr(x), ptr(w), big.ptr))
    expect_fail("conv bwd_data 5x5 on 3x3 p0",
                lambda c: LIB.ebmc_conv2d_bwd_data(c, C.byref(bad), ptr(x), ptr(w), big.ptr, 0.0))
    expect_fail("conv fwd x=NULL",
                lambda c: LIB.ebmc_conv2d_fwd(c, C.byref(good), None, ptr(w), big.ptr))
    expect_fail("conv bwd_filter dw=NULL",
                lambda c: LIB.ebmc_conv2d_bwd_filter(c, C.byref(good), ptr(x), ptr(x), None, 1.0))
    expect_fail("convt fwd with a conv desc",
                lambda c: LIB.ebmc_convt2d_fwd(c, C.byref(good), ptr(x), ptr(w), big.ptr))
    expect_fail("linear fwd w=NULL",
                lambda c: LIB.ebmc_linear_fwd(c, C.byref(LinearDesc(2, 3, 4)), ptr(x), None, None,
                                              big.ptr))
    expect_fail("bn fwd desc=NULL",
                lambda c: LIB.ebmc_bn_fwd(c, None, ptr(x), ptr(x), ptr(x), big.ptr, big.ptr,
                                          big.ptr, None, None))
    expect_fail("act fwd x=NULL",
                lambda c: LIB.ebmc_act_fwd(c, C.byref(ActDesc(ACT_RELU, 0.0, 10)), None, big.ptr))
    check("bad call", "all", "no write to outputs", bool(np.all(big.flat == 0)) and big.guards_ok())

# ------------------------------------------------------------------ main


def main():
    global LIB, CTX
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} /path/to/libebmc.so", file=sys.stderr)
        return 2
    try:
        LIB = load_lib(os.path.abspath(sys.argv[1]))
    except (OSError, AttributeError) as e:
        print(f"oracle_ops: cannot load {sys.argv[1]}: {e}", file=sys.stderr)
        return 2
    faulthandler.enable()        # a crash inside the library still names the case being run
    torch.set_num_threads(2)
    torch.manual_seed(SEED)

    opts = LIB.ebmc_ctx_opts_default()
    opts.kind = BACKEND_CPU
    opts.quiet = True
    ctx = P()
    err = C.create_string_buffer(512)
    st = LIB.ebmc_ctx_create(C.byref(opts), C.byref(ctx), err, 512)
    if st != 0 or not ctx.value:
        print(f"oracle_ops: ebmc_ctx_create(CPU) failed with {st}: {err.value.decode()}",
              file=sys.stderr)
        return 2
    CTX = ctx
    print(f"oracle_ops: torch {torch.__version__}, numpy {np.__version__}, library {sys.argv[1]}, "
          f"backend kind {LIB.ebmc_ctx_kind(CTX)} (0 = CPU), tol rel_l2 < {TOL:g}")
    print(f"{'op':<18} {'case':<46} {'quantity':<26} {'rel_l2':>10}  tol    ok")
    check("ctx", "CPU context", "kind == CPU", LIB.ebmc_ctx_kind(CTX) == BACKEND_CPU)

    for t in (test_conv, test_convt, test_linear, test_bias, test_act, test_bn, test_sn,
              test_upsample, test_avgpool, test_gpool, test_axpby, test_fill, test_reduce,
              test_adam, test_bad_calls):
        run_case(t.__name__, "(setup)", t)

    LIB.ebmc_ctx_free(CTX)
    if FAILURES:
        print("\nfailures:")
        for f in FAILURES:
            print("  " + f)
    print(f"{N_PASS} passed, {N_FAIL} failed")
    return 0 if N_FAIL == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
