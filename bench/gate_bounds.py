"""The bounds of bench/run.py's correctness gates, derived from the float64 reference and the
sensitivity of the net itself (issue 22), not guessed.

A gated quantity q (energies, input gradients, K-step trajectories, the training iteration's
metrics) is computed in float64: q64. The same computation is then rerun in float64 *with the
rounding of a precision emulated* at every convolution and matmul (F.conv2d, F.conv_transpose2d,
F.linear are patched for the duration):

  operands   the input and the weight of the forward, and the incoming gradient of the backward
             (an operand of the backward's convolutions), rounded to the precision's significand:
             fp32 24 bits, TF32 11 bits (10 stored; the tensor cores' operand format), round to
             nearest in trial 0, towards zero (truncation, as some TF32 kernels do) in trial 1,
             and to nearest after a random relative jitter of one unit in the last place in
             trials >= 2 (another draw of which pre-activations land on the other side of a kink);
  results    every output element y of a convolution / matmul (and of its backward) stored in
             fp32: N(0, 1) * 2^-24 * |y|. The accumulation's own error is not modelled: a
             random-walk model of recursive summation (Higham & Mary, SIAM J. Sci. Comput. 2019:
             sqrt(K) 2^-24 times the terms' or the result's magnitude) made the full-width
             Dual-MCMC E's input gradient move 3e-3, where ebmc's and PyTorch's fp32 are 4.6e-7
             from float64 (cuDNN, oneDNN and BLAS sum in blocks). Instead the real fp32 (and, on a
             GPU, TF32) computation of PyTorch on this device is one more trial (bound(real=...));
  storage    a chain's state after every update (fp32 in both precisions: 24 bits, the trial's
             rounding), through store() (the samplers call it; identity outside emulate()).

The emulated result moves from q64 by kink flips (ReLU / LeakyReLU slopes, spectral norm), by
cancellation and by everything the net amplifies -- that is the sensitivity of this net at these
weights and inputs. The bound of the gate is FACTOR[prec] x the largest move over TRIALS trials
and PyTorch's own computation in that precision on this device (real=). FACTOR covers what the
model leaves out: in fp32, where operand rounding is tiny, mostly the summation order, which
differs between implementations (measured on the CPU: ebmc's short-run n_f 64 energy is 1.75e-6
from float64, PyTorch's 5.2e-7, the emulation's 1.3e-7..3.2e-7): 10; in TF32 the operands'
rounding dominates and is what the trials draw (an independent draw lands at ~1/3 of 4x their
maximum): 4. Both also cover the spread of a heavy-tailed count of kink flips beyond the trials. A correct
implementation in that precision must land within it; a wrong sign, step, noise scale or weight
moves q by O(1) x the step's share of the state, orders of magnitude more (bench/run.py's table,
issue 22's note).

Computed at gate time from the weights and inputs actually checked (on the GPU machine in
float64 on the GPU; on the CPU here for --cpu): nothing stored goes stale when a net, an
initialisation or a size changes. Cost: TRIALS emulated float64 evaluations per precision (each
about 2x a plain one: the rounding of every operand); EBMC_BENCH_BOUND_TRIALS=1 keeps only the round-to-nearest trial where gate time is
short (the full-size training iteration is ~1e14 FLOP per float64 run).
"""
import contextlib
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

BITS = {"fp32": 24, "tf32": 11}   # significand bits of the operands
ACC_U = 2.0 ** -24                 # the fp32 accumulator's unit roundoff (both precisions)
FACTOR = {"fp32": 10.0, "tf32": 4.0}
TRIALS = int(os.environ.get("EBMC_BENCH_BOUND_TRIALS", "3"))   # 1: round to nearest only (cheapest)
MIN_REL = 2.0 ** -24               # no bound below fp32's own rounding of the result


def round_bits(x, bits, mode, jitter=None):
    """x (float64) rounded to `bits` significant bits: mode 'nearest' (ties to even) or 'trunc';
    jitter: a tensor of relative offsets applied first (in units of the last place)"""
    if jitter is not None:
        x = x * (1.0 + jitter * 2.0 ** (1 - bits))
    m, e = torch.frexp(x)                       # x = m 2^e, |m| in [0.5, 1)
    s = m * 2.0 ** bits
    s = torch.round(s) if mode == "nearest" else torch.trunc(s)
    return s * torch.pow(2.0, (e - bits).to(x.dtype))


class _Emu:
    """the rounding of one trial: operand rounding and a generator for the sums' error"""

    def __init__(self, prec, trial, seed):
        self.bits = BITS[prec]
        self.mode = "trunc" if trial == 1 else "nearest"
        self.jit = trial >= 2
        self.seed = 1000 * seed + 17 * trial + BITS[prec]
        self.gens = {}

    def gen(self, device):
        """this trial's generator on the tensors' device (drawn there: no host copies)"""
        if device not in self.gens:
            self.gens[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self.gens[device]

    def noise_like(self, t):
        return torch.randn(t.shape, generator=self.gen(t.device), dtype=torch.float64, device=t.device)

    def uniform_pm1(self, t):
        return torch.rand(t.shape, generator=self.gen(t.device), dtype=torch.float64, device=t.device) * 2 - 1

    def rnd(self, t):
        return round_bits(t, self.bits, self.mode, self.uniform_pm1(t) if self.jit else None)


def _sum_err(emu, y, k):
    """outputs y stored in fp32 (k, the reduction length, is kept for the record)"""
    return emu.noise_like(y) * ACC_U * y.abs()


class _Bilinear(torch.autograd.Function):
    """y = op(x, w) (op bilinear: a convolution or matmul without bias) with emu's rounding of
    the operands and the fp32 sums' error, forward and backward; k = (forward, input-gradient,
    weight-gradient) reduction lengths"""

    @staticmethod
    def forward(ctx, x, w, op, emu, k):
        xr, wr = emu.rnd(x), emu.rnd(w)
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.enable_grad():
            # the graph the backward needs, built once here (not recomputed there)
            xa = xr.detach().requires_grad_(need_x)
            wa = wr.detach().requires_grad_(need_w)
            y = op(xa, wa)
        with torch.no_grad():
            out = y.detach() + _sum_err(emu, y.detach(), k[0])
        ctx.graph = (xa, wa, y)
        ctx.emu, ctx.k = emu, k
        return out

    @staticmethod
    def backward(ctx, dy):
        xa, wa, y = ctx.graph
        emu, k = ctx.emu, ctx.k
        dyr = emu.rnd(dy)
        dx = dw = None
        ins = [t for t in (xa, wa) if t.requires_grad]
        g = dict(zip([id(t) for t in ins], torch.autograd.grad(y, ins, dyr)))
        if xa.requires_grad:
            dx = g[id(xa)] + _sum_err(emu, g[id(xa)], k[1])
        if wa.requires_grad:
            dw = g[id(wa)] + _sum_err(emu, g[id(wa)], k[2])
        ctx.graph = None
        return dx, dw, None, None, None


def _bias(y, bias, axis):
    if bias is None:
        return y
    shape = [1] * y.dim()
    shape[axis] = -1
    return y + bias.reshape(shape)


_ACTIVE = []   # the emulation in force (store() rounds with it)


def store(t):
    """t as the fp32 storage of a chain's state would hold it under the active emulation"""
    if not _ACTIVE:
        return t
    emu = _ACTIVE[-1]
    return round_bits(t, 24, emu.mode, emu.uniform_pm1(t) if emu.jit else None)


@contextlib.contextmanager
def emulate(prec, trial, seed=0):
    """F.conv2d, F.conv_transpose2d and F.linear computed with prec's rounding (on float64
    tensors) inside the block; modules call them through torch.nn.functional, so nets need no
    change"""
    emu = _Emu(prec, trial, seed)
    c2, ct, ln = F.conv2d, F.conv_transpose2d, F.linear

    def conv2d(x, w, bias=None, *a, **kw):
        def op(u, v):
            return c2(u, v, None, *a, **kw)
        hw = w.shape[2] * w.shape[3]
        nhw = x.shape[0] * x.shape[2] * x.shape[3]   # stride ignored: conservative
        return _bias(_Bilinear.apply(x, w, op, emu, (w[0].numel(), w.shape[0] * hw, nhw)), bias, 1)

    def conv_transpose2d(x, w, bias=None, *a, **kw):
        def op(u, v):
            return ct(u, v, None, *a, **kw)
        hw = w.shape[2] * w.shape[3]
        nhw = x.shape[0] * x.shape[2] * x.shape[3]
        return _bias(_Bilinear.apply(x, w, op, emu, (w.shape[0] * hw, w[0].numel(), nhw)), bias, 1)

    def linear(x, w, bias=None):
        def op(u, v):
            return ln(u, v)
        return _bias(_Bilinear.apply(x, w, op, emu, (w.shape[1], w.shape[0], x.numel() // x.shape[-1])),
                     bias, x.dim() - 1)

    F.conv2d, F.conv_transpose2d, F.linear = conv2d, conv_transpose2d, linear
    _ACTIVE.append(emu)
    try:
        yield
    finally:
        F.conv2d, F.conv_transpose2d, F.linear = c2, ct, ln
        _ACTIVE.pop()


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    n = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / n) if n > 0 else float(np.linalg.norm(a - b))


def bound(fn, ref, prec, seed=0, trials=TRIALS, real=None):
    """FACTOR[prec] x the largest relative-L2 move of fn()'s results (a tuple of arrays) from ref (a
    tuple) over `trials` emulations of prec and real() (the same computation in prec itself, if
    given). Returns (bounds per result, moves per trial: real's last when given)."""
    moves = []
    for t in range(trials):
        with emulate(prec, t, seed):
            out = fn()
        moves.append([rel_l2(o, r) for o, r in zip(out, ref)])
    if real is not None:
        moves.append([rel_l2(o, r) for o, r in zip(real(), ref)])
    worst = np.max(np.asarray(moves), axis=0)
    return [max(FACTOR[prec] * float(w), MIN_REL) for w in worst], moves


def metric_bound(fn, ref, prec, scale, seed=0, trials=TRIALS, real=None):
    """as bound, for scalar metrics compared as |a - b| / max(|a|, |b|, scale) (the iteration)"""
    moves = []
    ref_ = np.asarray(ref, dtype=np.float64)
    outs = []
    for t in range(trials):
        with emulate(prec, t, seed):
            outs.append(np.asarray(fn(), dtype=np.float64))
    if real is not None:
        outs.append(np.asarray(real(), dtype=np.float64))
    for out in outs:
        d = np.abs(out - ref_) / np.maximum(np.maximum(np.abs(out), np.abs(ref_)), scale)
        moves.append(np.where(np.isfinite(ref_), d, 0.0))
    worst = np.max(np.asarray(moves), axis=0)
    return [max(FACTOR[prec] * float(w), MIN_REL) for w in worst], moves
