#!/usr/bin/python3
"""PyTorch parity of ONE Dual-MCMC training iteration (src/host/train_dualmcmc.c dm_iteration)
against the authors' train.py (jcui1224/dual-MCMC, `fit`; specs/teaching.md 1(b)-1(d)),
re-implemented here with the same random numbers.

Usage: /usr/bin/python3 tests/oracle/test_dualmcmc_step_torch.py /path/to/dm_step_dump [--perturb]

`dm_step_dump OUT` builds a tiny dualmcmc_cifar10 trainer (ngf=ndf=8, nif=4, nz=8, batch 4,
K_x=3, K_z=2, the paper's step sizes, noise, lambdas and T, CPU backend), saves the initial
weights E0/G0/I0.safetensors, runs dm_iteration(it=1, epoch=0) on one loader batch and saves
E1/G1/I1.safetensors plus step.safetensors (the batch, intermediate tensors, dm_t.hmet and the
resolved config as metadata). Here:
  1. Philox4x32-10 in numpy (uint64 products, vectorised over all counters), checked on the three
     Random123 known-answer vectors, and Box-Muller in double as include/ebmc/philox.h;
     counter = (element/4, chain, step, stream), key = run.seed (lo, hi). Streams: the prior z 4
     (step = iteration), the reparameterisation eps 5 (step = iteration), the x-chains 1 (their
     own step counter from 0: the first chain draws steps 0..K_x-1, the fine-tune chain
     K_x..2K_x-1), the latent chain 3 (steps 0..K_z-1).
  2. The reference iteration, modules from test_nets_torch.py (DualE with torch spectral_norm,
     DualG, DualI) loaded from E0/G0/I0 with strict=True, all in train mode, torch.optim.Adam per
     net (betas (beta1, beta2), the configured weight decay, the epoch-0 learning rate), in the
     order of the authors' train.py (HEAD):
       z ~ N(0,I); samples = G(z) (graph kept); samples_corr = langevin_x(samples)
       (mu, logvar) = I(x); z0 = eps*exp(logvar/2) + mu; z~ = langevin_z(z0, x)
       errG = g_factor*mse_sum(G(z~), x)/B + lambda_s*mse_sum(samples, samples_corr)/B; G step
       with no_grad: et = E(x)                      (logging forward: advances SN's u)
       errI = g_factor*mean NLL(z~|mu,logvar) + lambda_i*mean NLL(z|I(samples_corr)); I step
       Eng_T = E(x); samples = G_new(z); samples = langevin_x(samples); Eng_F = E(samples)
       errE = (mean Eng_T - mean Eng_F) / T, T = (tau/s)^2; E step
     langevin_x: x <- x - (s^2/2) grad sum E(x) + tau xi;
     langevin_z: z <- z - (s_z^2/2)(grad mse_sum(G(z), x)/sigma^2 + z/sigma_p^2) + n xi.
     Note that train.py evaluates Eng_T = E(x) BEFORE the fine-tune chain: with spectral norm in
     training mode every E forward advances u, v, so where that forward sits changes both E(x)
     (and its gradient) and every step of the fine-tune chain. EBMC_DM_ORDER=c moves it after the
     chain (dm_iteration's order); the other order is always run too, as a diagnostic column.
  3. Comparisons, relative L2 ||C - ref|| / ||ref|| (float64 norms), ALWAYS against the float64
     run of the same recipe (same float32 weights, inputs and float32 Philox noise, converted
     exactly): the metrics (dm_t.hmet), the losses, the intermediate tensors (z, mu, logvar, z~,
     G(z~), I(x~), G_new(z), x~', E(x), E(x~'), the fine-tune energy trace), every parameter and
     buffer of E1, G1, I1 and every parameter's update p1 - p0 (what Adam's step carries; p1 alone
     is dominated by p0). Exact rows: Philox known answers and the prior z, metric names, T, the
     chain step counters, BatchNorm's num_batches_tracked, the state_dict names, and Adam's
     bound max|p1 - p0| <= lr for the parameters whose gradient is zero analytically.

Tolerance, derived per row from the computation (no number tuned to one machine's rounding):
  bound = K_MCA * e_mca + FLOOR + e_adam + e_store,    pass iff error <= bound,
  e_mca   the row's largest relative L2 deviation from the float64 run over N_MCA = 6 float64
          runs under a float32 rounding model (Monte Carlo arithmetic, class Rounding): every
          accumulation of n terms in every Conv2d/Linear/BatchNorm2d forward AND backward (input,
          weight and bias gradients, batch mean and variance, running buffers), the losses and
          the Langevin updates gets an error u sqrt(n) sum|terms| U[-1,1], u = 2^-24: the
          probabilistic float32 rounding-error bound of a sum (Higham & Mary 2019). Its effect is
          propagated by the computation itself, so it measures each row's conditioning: Langevin
          amplification, BatchNorm's near-cancelling batch means, and gradients that cancel (G's
          conv biases feeding BatchNorm, analytic gradient 0) all show up at their real size.
          K_MCA = 2 covers the sampling of a max over 6 runs; on this build the model is already
          2-50x above both C's and torch float32's actual error (every row prints torch
          float32's error and headroom under the same bound as a check of the model).
  e_adam  the response of the row to the worst-case Adam step uncertainty: Adam's first step
          (any beta1) is -lr g/(|g| + 1e-8), g = grad + wd p0, ill-conditioned where |g| is small
          (a sign flip moves an element by 2 lr). With dg = K_MCA * (largest gradient deviation
          seen in the MCA runs, per element), each element's step may move by
          max|step(g +- dg) - step(g)| (exact: step is monotone in g); the float64 iteration is
          rerun with every step moved by that amount with random signs, and e_adam is the row's
          deviation. This carries e.g. a flipped G conv-bias step into the running_mean of the
          next G forward (G1 block3.bn_2.running_mean, which failed a fixed 1e-4 against torch
          float32 on one machine: torch had flipped such a step, ebmc had not), the
          fine-tune chain and E's update. The row "adam first-step model" checks the formula
          against torch's step in float64.
  e_store the float32 storage rounding of the row, half an ulp per element: relative to the
          update p1 - p0 for the update rows (p1 is rounded to ulp(p1), up to ~2e-4 of an update
          of size lr = 3e-4 on a parameter of size 1: this is the smallest headroom, ~1.2, and it
          is deterministic, since Adam's saturated step lands on the same float32 value in every
          correct float32 implementation).
  FLOOR   8 eps_f32 (9.5e-7): the last few roundings of each element that no model above sees
          (e.g. the power iteration of spectral norm, u and v).
Each row prints its error, bound, headroom = bound/error and the parts of the bound; the end
prints the worst headrooms. --perturb also runs the self-test: the same check must FAIL on the
dump with G's Adam steps scaled by 1.01 (learning rate 1% off), and separately on each G
running_mean with its largest element scaled by 1.01; exit 0 iff the clean run passes and every
defect is detected. Exit status 0 iff all rows pass, 77 (skip) without PyTorch/numpy, 2 on a
usage error. OMP_NUM_THREADS, when set, also sets torch's thread count (default min(2, cores)).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("oracle_dualmcmc_step: SKIPPED \u2014 PyTorch/numpy not installed "
          "(Debian: apt-get install python3-torch python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_nets_torch as NT  # noqa: E402  (st_read, to_torch, DualE/G/I, DEFAULTS, rel_l2)

STREAM_X, STREAM_Z, STREAM_PRIOR, STREAM_EPS = 1, 3, 4, 5
METRICS = ["recon", "sample", "nllq", "nlll", "et", "ef", "etlog", "egen0", "egen1", "ex0", "ex1"]

# Philox4x32-10 + Box-Muller: python/ebmc_torch.py (one copy; its known answers are checked here)
from ebmc_torch import M32, PHILOX_KAT, philox4x32_10, philox_normals  # noqa: E402,F401

# ------------------------------------------------------------------ float32 rounding model (MCA)

U32 = 2.0 ** -24          # unit roundoff of float32 (half an ulp of 1)
EPS32 = 2.0 ** -23        # float32 machine epsilon


class Rounding:
    """Monte Carlo arithmetic in float64: every accumulation of n terms gets an error
    u sqrt(n) sum|terms| * U[-1, 1] (U independent per result element; u = 2^-24), the
    probabilistic rounding-error bound of a float32 sum (Higham & Mary 2019, lambda = 1),
    and every elementwise result a relative error u * U. Installed on the float64 reference's
    Conv2d, Linear and BatchNorm2d (forward AND backward: input, weight and bias gradients,
    batch statistics and running buffers) and on the Langevin updates and losses."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def U(self, like):
        return torch.rand(like.shape, generator=self.gen, dtype=like.dtype) * 2 - 1

    def acc(self, abs_sum, n):
        """the error of an accumulation of n terms whose absolute values sum to abs_sum"""
        return U32 * float(np.sqrt(max(n, 1))) * abs_sum * self.U(abs_sum)

    def rel(self, t, n=1):
        """t rounded (n = 1) or summed from n same-signed terms (|terms| sum = |t|)"""
        return t + self.acc(t.detach().abs(), n)

    def install(self, net):
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.forward = (lambda x, m=m: _NoisyConv.apply(x, m.weight, m.bias, m, self))
            elif isinstance(m, nn.Linear):
                m.forward = (lambda x, m=m: _NoisyLinear.apply(x, m.weight, m.bias, self))
            elif isinstance(m, nn.BatchNorm2d):
                m.forward = (lambda x, m=m: _NoisyBN.apply(x, m.weight, m.bias, m, self))
        return net


class _NoisyConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, m, r):
        st, pd = m.stride, m.padding
        y = F.conv2d(x, w, b, st, pd)
        A = F.conv2d(x.abs(), w.abs(), None if b is None else b.abs(), st, pd)
        ctx.save_for_backward(x, w)
        ctx.m, ctx.r, ctx.hasb = m, r, b is not None
        return y + r.acc(A, w[0].numel() + (b is not None))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        m, r = ctx.m, ctx.r
        st, pd = m.stride, m.padding
        gx = gw = gb = None
        nsp = g.shape[0] * g.shape[2] * g.shape[3]
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input(x.shape, w, g, st, pd)
            gx = gx + r.acc(torch.nn.grad.conv2d_input(x.shape, w.abs(), g.abs(), st, pd),
                            w.shape[0] * w.shape[2] * w.shape[3])
        if ctx.needs_input_grad[1]:
            gw = torch.nn.grad.conv2d_weight(x, w.shape, g, st, pd)
            gw = gw + r.acc(torch.nn.grad.conv2d_weight(x.abs(), w.shape, g.abs(), st, pd), nsp)
        if ctx.hasb and ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3)) + r.acc(g.abs().sum((0, 2, 3)), nsp)
        return gx, gw, gb, None, None


class _NoisyLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, r):
        y = F.linear(x, w, b)
        A = F.linear(x.abs(), w.abs(), None if b is None else b.abs())
        ctx.save_for_backward(x, w)
        ctx.r, ctx.hasb = r, b is not None
        return y + r.acc(A, w.shape[1] + (b is not None))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        r = ctx.r
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g @ w + r.acc(g.abs() @ w.abs(), w.shape[0])
        if ctx.needs_input_grad[1]:
            gw = g.t() @ x + r.acc(g.abs().t() @ x.abs(), g.shape[0])
        if ctx.hasb and ctx.needs_input_grad[2]:
            gb = g.sum(0) + r.acc(g.abs().sum(0), g.shape[0])
        return gx, gw, gb, None


class _NoisyBN(torch.autograd.Function):
    """training-mode BatchNorm2d (biased batch variance, unbiased running_var) with the batch
    statistics' accumulation errors (mean: u sqrt(N) mean|x|; variance: u sqrt(N) mean x^2,
    which also covers E[x^2] - E[x]^2 cancellation) and those of the backward's reductions."""

    @staticmethod
    def forward(ctx, x, gamma, beta, m, r):
        N = x.numel() // x.shape[1]
        sh = (1, -1, 1, 1)
        mean = x.mean((0, 2, 3))
        mean = mean + r.acc(x.abs().mean((0, 2, 3)), N)
        xc = x - mean.view(sh)
        var = (xc * xc).mean((0, 2, 3))
        var = var + r.acc((x * x).mean((0, 2, 3)), N)
        rstd = 1.0 / torch.sqrt(var + m.eps)
        xh = xc * rstd.view(sh)
        y = gamma.view(sh) * xh + beta.view(sh)
        y = y + r.acc((gamma.view(sh) * xh).abs() + beta.abs().view(sh), 2)
        mo = m.momentum
        m.running_mean.mul_(1 - mo).add_(mo * mean)
        m.running_mean.add_(r.acc(m.running_mean.abs(), 2))
        m.running_var.mul_(1 - mo).add_(mo * var * N / (N - 1))
        m.running_var.add_(r.acc(m.running_var.abs(), 2))
        m.num_batches_tracked.add_(1)
        ctx.save_for_backward(xh, gamma, rstd)
        ctx.r = r
        return y

    @staticmethod
    def backward(ctx, g):
        xh, gamma, rstd = ctx.saved_tensors
        r = ctx.r
        N = xh.numel() // xh.shape[1]
        sh = (1, -1, 1, 1)
        gb = g.sum((0, 2, 3)) + r.acc(g.abs().sum((0, 2, 3)), N)
        gg = (g * xh).sum((0, 2, 3)) + r.acc((g * xh).abs().sum((0, 2, 3)), N)
        k = (gamma * rstd).view(sh)
        t1, t2 = (gb / N).view(sh), (gg / N).view(sh)
        gx = k * (g - t1 - xh * t2)
        gx = gx + r.acc(k.abs() * (g.abs() + t1.abs() + (xh * t2).abs()), 3)
        return gx, gg, gb, None, None

# ------------------------------------------------------------------ the reference iteration


class Noise:
    """The iteration's random numbers, as torch tensors of a given dtype."""

    def __init__(self, seed, B, nz, img_shape, it):
        self.seed, self.B, self.nz, self.img_shape, self.it = seed, B, nz, img_shape, it
        self.img = int(np.prod(img_shape))

    def prior(self):
        return philox_normals(self.seed, STREAM_PRIOR, self.it, self.B, self.nz).reshape(self.B, self.nz, 1, 1)

    def eps(self):
        return philox_normals(self.seed, STREAM_EPS, self.it, self.B, self.nz).reshape(self.B, self.nz, 1, 1)

    def x_step(self, k):
        return philox_normals(self.seed, STREAM_X, k, self.B, self.img).reshape((self.B,) + self.img_shape)

    def z_step(self, k):
        return philox_normals(self.seed, STREAM_Z, k, self.B, self.nz).reshape(self.B, self.nz, 1, 1)


def mse_sum(a, b):
    return ((a - b) ** 2).sum()   # nn.MSELoss(reduction='sum')


def diag_normal_NLL(z, mu, logvar):
    """train.py's diag_normal_NLL: per row 0.5 sum logvar + 0.5 sum (z-mu)^2 / (1e-6 + e^logvar)"""
    return (0.5 * logvar.squeeze().sum(dim=1) +
            0.5 * ((z - mu) * (z - mu) / (1e-6 + torch.exp(logvar))).squeeze().sum(dim=1))


def adam_first_step(g, p0, lr, wd):
    """torch.optim.Adam's first step (any beta1: m^ = g, sqrt(v^) = |g|), g = grad + wd p0"""
    g = g + wd * p0
    return -lr * g / (np.abs(g) + 1e-8)


def reference(files, cfg, order, dtype, mca=None, jitter=None):
    """One iteration of train.py's fit. order 'authors': Eng_T = E(x) before the fine-tune chain
    (train.py); 'c': after it (dm_iteration). mca: a Rounding (float32 rounding model) or None;
    jitter: (generator, {role: {param: array}}): after each optimiser step, param += +-array
    (random signs). Returns a dict of numpy results (and each net's gradients at its step)."""
    E0, G0, I0, step = files["E0"], files["G0"], files["I0"], files["step"]
    c = dict(NT.DEFAULTS[cfg["model.arch"]])
    for k in ("nz", "ngf", "ndf", "nif"):
        if cfg[f"model.{k}"]:
            c[k] = cfg[f"model.{k}"]
    celeba = cfg["model.arch"] == "dualmcmc_celeba64"
    nets = {}
    for role, cls, sd in (("E", NT.DualE, E0), ("G", NT.DualG, G0), ("I", NT.DualI, I0)):
        m = cls(c, celeba)
        m.load_state_dict({k: NT.to_torch(v) for k, v in sd.items()}, strict=True)
        nets[role] = m.to(dtype).train()
        if mca is not None:
            mca.install(nets[role])
    netE, netG, netI = nets["E"], nets["G"], nets["I"]
    R = mca.rel if mca is not None else (lambda t, n=1: t)
    grads = {}

    def do_step(role, net, opt):
        grads[role] = {k: p.grad.detach().numpy().copy() for k, p in net.named_parameters()}
        opt.step()
        if jitter is not None:
            gen, d = jitter
            with torch.no_grad():
                for k, p in net.named_parameters():
                    s = torch.randint(0, 2, p.shape, generator=gen).to(dtype) * 2 - 1
                    p.add_(s * torch.from_numpy(d[role][k]).to(dtype))

    def adam(net, r):
        return torch.optim.Adam(net.parameters(), lr=cfg[f"train.lr_{r}"],
                                betas=(cfg[f"train.beta1_{r}"], cfg["train.beta2"]),
                                weight_decay=cfg[f"train.wd_{r}"], eps=1e-8)
    optE, optG, optI = adam(netE, "e"), adam(netG, "g"), adam(netI, "i")
    # epoch 0: ExponentialLR.step(epoch=0) leaves lr = lr0 * gamma^0

    x = torch.from_numpy(step["x"]).to(dtype)
    B = x.shape[0]
    nz = c["nz"]
    noise = Noise(int(cfg["run.seed"]), B, nz, tuple(x.shape[1:]), 1)
    T_ = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dtype)  # noqa: E731
    Kx, Kz = int(cfg["langevin_x.steps"]), int(cfg["langevin_z.steps"])
    sx, tau = cfg["langevin_x.step_size"], cfg["langevin_x.noise"]
    sz, nsz = cfg["langevin_z.step_size"], cfg["langevin_z.noise"]
    sig, psig = cfg["langevin_z.sigma"], cfg["langevin_z.prior_sigma"]
    gf, ls, li = cfg["train.g_factor"], cfg["train.lambda_s"], cfg["train.lambda_i"]
    Tmp = (tau / sx) ** 2 if cfg["train.use_temp"] and tau > 0 else 1.0
    xsteps = [0]   # the x-chain's own step counter
    out = {}

    def langevin_x(x0):
        trace = []
        xx = x0.clone().detach()
        xx.requires_grad = True
        for _ in range(Kx):
            energy = netE(xx)[0].sum()
            trace.append(R(energy.detach(), B).item())
            grad = torch.autograd.grad(energy, xx)[0]
            xx.data = R(xx.data - R(0.5 * sx * sx * grad))
            if tau > 0:
                xx.data = R(xx.data + R(tau * T_(noise.x_step(xsteps[0]))))
            xsteps[0] += 1
        return xx.detach(), trace

    def langevin_z(z0, xt):
        zz = z0.clone().detach()
        zz.requires_grad = True
        for k in range(Kz):
            err = mse_sum(netG(zz)[0], xt)
            grad = torch.autograd.grad(err, zz)[0]
            zz.data = R(R(zz.data - R(0.5 * sz * sz * R(grad / sig / sig + 1.0 / (psig * psig) * zz.data, 2)))
                        + R(nsz * T_(noise.z_step(k))))
        return zz.detach()

    # ---- G: samples, the data-space chain, the latent chain, G's step
    z = T_(noise.prior())
    out["z"] = z.numpy()
    samples = netG(z)[0]
    samples_corr, tr = langevin_x(samples)
    out["m.ex0"], out["m.ex1"] = tr[0], tr[-1]
    optG.zero_grad()
    mu, logvar = netI(x)
    out["mu"], out["logvar"] = mu.detach().numpy(), logvar.detach().numpy()
    std = torch.exp(logvar.mul(0.5))
    z_input = R(R(T_(noise.eps()).mul(std)) + mu)          # reparametrize
    z_corr = langevin_z(z_input, x)
    out["z_tilde"] = z_corr.numpy()
    recon = netG(z_corr.detach())[0]
    out["g_z_tilde"] = recon.detach().numpy()
    errRecon = R(mse_sum(recon, x), x.numel()) / B
    errSample = R(mse_sum(samples, samples_corr), x.numel()) / B
    out["m.recon"], out["m.sample"] = errRecon.item() * B, errSample.item() * B
    errG = gf * errRecon + ls * errSample
    errG.backward()
    do_step("G", netG, optG)
    with torch.no_grad():
        out["m.etlog"] = R(netE(x)[0].sum(), B).item()            # `et` (advances SN's u)

    # ---- I
    optI.zero_grad()
    nll_q = R(diag_normal_NLL(z_corr, mu, logvar), 2 * nz)
    mu_g, lv_g = netI(samples_corr)
    out["mu_gen"], out["logvar_gen"] = mu_g.detach().numpy(), lv_g.detach().numpy()
    nll_l = R(diag_normal_NLL(z, mu_g, lv_g), 2 * nz)
    out["m.nllq"], out["m.nlll"] = nll_q.sum().item(), nll_l.sum().item()
    errI = gf * nll_q.mean() + li * nll_l.mean()
    errI.backward()
    do_step("I", netI, optI)

    # ---- E
    optE.zero_grad()
    if order == "authors":
        Eng_T = netE(x)[0].squeeze()
    samples = netG(z)[0]
    out["x0_new"] = samples.detach().numpy()
    if cfg["train.fine_tune"]:
        samples, tr = langevin_x(samples)
        out["m.egen0"], out["m.egen1"] = tr[0], tr[-1]
        out["trace_ft"] = np.array(tr)
    out["x_tilde_ft"] = samples.detach().numpy()
    if order == "c":
        Eng_T = netE(x)[0].squeeze()
    Eng_F = netE(samples.detach())[0].squeeze()
    out["e_x"], out["e_xt"] = Eng_T.detach().numpy(), Eng_F.detach().numpy()
    out["m.et"], out["m.ef"] = R(Eng_T.sum(), B).item(), R(Eng_F.sum(), B).item()
    errE = Eng_T.mean() - Eng_F.mean()
    (errE / Tmp).backward()
    do_step("E", netE, optE)

    out["steps"] = np.array([xsteps[0], Kz])
    for role, net in nets.items():
        sd = net.state_dict()
        out[role + "1"] = {k: v.detach().numpy() for k, v in sd.items()}
    out["zero_grad_params"] = {"G": set(netG.zero_grad_params)}
    out["param_names"] = {role: {k for k, _ in net.named_parameters()} for role, net in nets.items()}
    out["grad"] = grads
    return out

# ------------------------------------------------------------------ comparison

K_MCA = 2.0          # the modelled error (max over N_MCA runs) is multiplied by this
N_MCA = 6            # Monte Carlo arithmetic runs of the float64 reference
FLOOR = 8 * EPS32    # relative L2 every row may carry: a few float32 roundings of each element

results = []


def row(group, qty, val, ok, note=""):
    """an exact row (Philox, names, counters)"""
    results.append(ok)
    v = f"{val:.3e}" if isinstance(val, float) else str(val)
    print(f"{group:<7} {qty:<46} {v:>28}  {'ok' if ok else 'FAIL'}{('  ' + note) if note else ''}",
          flush=True)


def store_err(vals, denom):
    """relative L2 of storing vals in float32 (half an ulp per element) against ||denom||"""
    v = np.asarray(vals, dtype=np.float64)
    q = np.spacing(np.abs(v).astype(np.float32)).astype(np.float64) / 2
    d = np.linalg.norm(np.asarray(denom, dtype=np.float64))
    return float(np.linalg.norm(q) / d) if d > 0 else float(np.linalg.norm(q))


def build_refs(files, cfg, order, other):
    """the float64 reference, N_MCA float64 runs under the float32 rounding model, the Adam
    worst-case response, and (diagnostics) torch float32 in both orders"""
    refs = {"f64": reference(files, cfg, order, torch.float64)}
    refs["mca"] = [reference(files, cfg, order, torch.float64, mca=Rounding(1000 + i))
                   for i in range(N_MCA)]
    dstep, model_err = {}, {}
    for role in "EGI":
        r = role.lower()
        lr, wd = cfg[f"train.lr_{r}"], cfg[f"train.wd_{r}"]
        dstep[role] = {}
        for n, g0 in refs["f64"]["grad"][role].items():
            p0 = files[role + "0"][n].astype(np.float64)
            dg = K_MCA * np.max([np.abs(m["grad"][role][n] - g0) for m in refs["mca"]], axis=0)
            s0 = adam_first_step(g0, p0, lr, wd)
            dstep[role][n] = np.maximum(np.abs(adam_first_step(g0 + dg, p0, lr, wd) - s0),
                                        np.abs(adam_first_step(g0 - dg, p0, lr, wd) - s0))
            model_err[role + " " + n] = float(np.abs(s0 - (refs["f64"][role + "1"][n] - p0)).max()) / lr
    refs["adam_model_err"] = model_err
    refs["adam"] = reference(files, cfg, order, torch.float64,
                             jitter=(torch.Generator().manual_seed(7), dstep))
    refs["t32"] = reference(files, cfg, order, torch.float32)
    refs["alt"] = reference(files, cfg, other, torch.float32)
    return refs


def make_rows(files, cfg, refs):
    """[(group, qty, ours, get, denom_get)]: get(ref) -> the reference value; denom_get for the
    store-rounding term (None: the value itself; else (stored values, norm base))"""
    step = files["step"]
    met = step["metrics"]
    rows = []
    for i, name in enumerate(METRICS):
        rows.append(("metric", f"hmet[{name}]", np.float64(met[i]), lambda r, k="m." + name: r[k], None))
    B = float(step["x"].shape[0])
    T_ref = (cfg["langevin_x.noise"] / cfg["langevin_x.step_size"]) ** 2
    cm = {"m." + n: float(met[i]) for i, n in enumerate(METRICS)}
    for lname, f in (("loss_g", lambda m: cfg["train.g_factor"] * m["m.recon"] / B + cfg["train.lambda_s"] * m["m.sample"] / B),
                     ("loss_i", lambda m: cfg["train.g_factor"] * m["m.nllq"] / B + cfg["train.lambda_i"] * m["m.nlll"] / B),
                     ("loss_e", lambda m: (m["m.et"] - m["m.ef"]) / B / T_ref)):
        rows.append(("loss", lname, f(cm), f, None))
    for key in ("z", "mu", "logvar", "z_tilde", "g_z_tilde", "mu_gen", "logvar_gen", "x0_new",
                "x_tilde_ft", "e_x", "e_xt", "trace_ft"):
        rows.append(("tensor", key, step[key], lambda r, k=key: r[k], None))
    f64 = refs["f64"]
    for role in "EGI":
        ours1, ours0 = files[role + "1"], files[role + "0"]
        params = f64["param_names"][role]
        for name in sorted(f64[role + "1"]):
            if name not in ours1 or f64[role + "1"][name].dtype == np.int64:
                continue
            rows.append((role + "1", name, ours1[name], lambda r, k=role + "1", n=name: r[k][n], None))
            if name in params:
                p0 = ours0[name].astype(np.float64)
                rows.append((role + "1", name + " update p1-p0", ours1[name].astype(np.float64) - p0,
                             lambda r, k=role + "1", n=name, p0=p0: r[k][n].astype(np.float64) - p0,
                             lambda r, k=role + "1", n=name: r[k][n]))
    return rows


def evaluate(rows, refs, other, verbose=True):
    """checks every row; returns [(ok, headroom, label)]"""
    out = []
    for group, qty, ours, get, store_get in rows:
        ref = get(refs["f64"])
        e = NT.rel_l2(ours, ref)
        e_mca = max(NT.rel_l2(get(m), ref) for m in refs["mca"])
        e_adam = NT.rel_l2(get(refs["adam"]), ref)
        e_st = store_err(ref if store_get is None else store_get(refs["f64"]), ref)
        bound = K_MCA * e_mca + FLOOR + e_adam + e_st
        ok = e <= bound
        head = bound / e if e > 0 else float("inf")
        out.append((ok, head, f"{group} {qty}", e, bound))
        results.append(ok)
        if verbose:
            e32 = NT.rel_l2(get(refs["t32"]), ref)
            h32 = bound / e32 if e32 > 0 else float("inf")
            print(f"{group:<7} {qty:<46} {e:9.2e} {bound:9.2e} {head:9.3g}  {'ok' if ok else 'FAIL'}  "
                  f"[mca {e_mca:.1e} adam {e_adam:.1e} store {e_st:.1e}; torch32 {e32:.1e} "
                  f"(x{h32:.3g}); C-vs-{other}-order-torch32 {NT.rel_l2(ours, get(refs['alt'])):.1e}]",
                  flush=True)
    return out


def zero_grad_rows(files, cfg, refs):
    """parameters with an analytically zero gradient: also Adam's bound max|p1 - p0| <= lr"""
    for role, zero in refs["f64"]["zero_grad_params"].items():
        lr = cfg[f"train.lr_{role.lower()}"]
        for name in sorted(zero):
            m = float(np.abs(files[role + "1"][name].astype(np.float64) - files[role + "0"][name]).max()) / lr
            row(role + "1", name + " max|p1-p0|/lr <= 1", m, m <= 1.0 + 1e-3)


def perturbed(files, what, cfg):
    """a copy of the dump with a realistic defect on the ebmc side"""
    f = {k: dict(v) for k, v in files.items()}
    if what == "lr":      # G's Adam step as if the learning rate were 1% high
        for n in files["G1"]:
            if files["G1"][n].dtype == np.int64 or "running" in n:
                continue
            p0, p1 = files["G0"][n].astype(np.float64), files["G1"][n].astype(np.float64)
            f["G1"][n] = (p0 + 1.01 * (p1 - p0)).astype(np.float32)
    else:                 # one running_mean element 1% off (as if one channel's momentum were)
        n = what
        a = files["G1"][n].copy()
        i = int(np.argmax(np.abs(a)))
        a[i] *= np.float32(1.01)
        f["G1"][n] = a
    return f


def main():
    args = [a for a in sys.argv[1:] if a != "--perturb"]
    self_test = "--perturb" in sys.argv[1:]
    if len(args) != 1:
        print(__doc__)
        return 2
    tool = args[0]
    if not os.access(tool, os.X_OK):
        print(f"oracle_dualmcmc_step: {tool} is not an executable")
        return 2
    nt = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(nt) if nt.isdigit() and int(nt) > 0 else max(1, min(2, os.cpu_count() or 1)))
    order = os.environ.get("EBMC_DM_ORDER", "authors")
    other = "c" if order == "authors" else "authors"
    t0 = time.time()

    # 1. Philox
    for ctr, key, want in PHILOX_KAT:
        got = philox4x32_10(*ctr, *key)
        got = tuple(int(g) for g in got)
        row("philox", "KAT " + " ".join(f"{v:08x}" for v in ctr[:1] + key[:1]) + "..",
            " ".join(f"{g:08x}" for g in got), got == want,
            "" if got == want else "want " + " ".join(f"{w:08x}" for w in want))

    with tempfile.TemporaryDirectory(prefix="ebmc_dmstep_") as tmp:
        p = subprocess.run([tool, tmp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            row("dump", "dm_step_dump", p.returncode, False, p.stdout.strip().replace("\n", " | "))
            return finish(t0, [])
        files = {}
        for n in ("E0", "G0", "I0", "E1", "G1", "I1", "step"):
            files[n], meta = NT.st_read(os.path.join(tmp, n + ".safetensors"))
            if n == "step":
                step_meta = meta
    cfg = json.loads(step_meta["config"])
    step = files["step"]
    names_ok = step_meta.get("metrics", "").split(",") == METRICS
    row("dump", "metric names", step_meta.get("metrics"), names_ok)
    T_c = float(step_meta["T"])
    T_ref = (cfg["langevin_x.noise"] / cfg["langevin_x.step_size"]) ** 2
    row("dump", "T = (tau/s)^2", abs(T_c - T_ref) / T_ref, abs(T_c - T_ref) <= 1e-12 * T_ref)
    row("dump", "loader epoch of the batch", step_meta["epoch"], step_meta["epoch"] == "0")

    # the prior z is pure Philox: bit-exact (up to libm's last-ulp of double, invisible in float)
    B, nz = step["z"].shape[0], step["z"].shape[1]
    zp = philox_normals(int(cfg["run.seed"]), STREAM_PRIOR, 1, B, nz).reshape(B, nz, 1, 1)
    dz = float(np.abs(zp.astype(np.float64) - step["z"]).max())
    row("philox", "prior z (stream 4, step 1) max|diff|", dz, dz == 0.0)

    refs = build_refs(files, cfg, order, other)
    am = max(refs["adam_model_err"].values())
    row("adam", "first-step model vs float64 step, max/lr", am, am <= 1e-9)

    print(f"{'group':<7} {'quantity (relative L2 against float64)':<46} {'error':>9} {'bound':>9} "
          f"{'headroom':>9}  ok")
    checked = evaluate(make_rows(files, cfg, refs), refs, other)
    st_ok = list(step["steps"]) == list(refs["f64"]["steps"])
    row("tensor", "chain step counters (x, z)", f"{list(step['steps'])} vs {list(refs['f64']['steps'])}", st_ok)
    for role in "EGI":
        ours1, theirs = files[role + "1"], refs["f64"][role + "1"]
        miss, extra = sorted(set(theirs) - set(ours1)), sorted(set(ours1) - set(theirs))
        row(role + "1", "names == state_dict", len(miss) + len(extra), not miss and not extra,
            (f"missing: {miss} " if miss else "") + (f"extra: {extra}" if extra else ""))
        for name in sorted(theirs):
            if name in ours1 and theirs[name].dtype == np.int64:
                row(role + "1", name, f"{int(ours1[name])} vs {int(theirs[name])}",
                    int(ours1[name]) == int(theirs[name]))
    zero_grad_rows(files, cfg, refs)
    rc = finish(t0, checked)
    if not self_test:
        return rc

    # 2. self-test: realistic defects on the ebmc side must fail the same check
    print("# self-test (--perturb): each defect below must make the check fail")
    ok_all = True
    for what in ["lr"] + sorted(n for n in files["G1"] if n.endswith("running_mean")):
        res = evaluate(make_rows(perturbed(files, what, cfg), cfg, refs), refs, other, verbose=False)
        bad = [(e / b, lab, e, b) for ok, _, lab, e, b in res if not ok]
        bad.sort(reverse=True)
        desc = "G's Adam step x1.01 (lr 1% high)" if what == "lr" else f"G1 {what}: largest element x1.01"
        print(f"# {desc}: {'DETECTED' if bad else 'NOT DETECTED'}, {len(bad)} rows fail" +
              ("; worst: " + "; ".join(f"{lab} error {e:.2e} = {r:.3g} x bound {b:.2e}" for r, lab, e, b in bad[:3])
               if bad else ""))
        ok_all &= bool(bad)
    print(f"self-test {'passed' if ok_all else 'FAILED'}: clean run {'passed' if rc == 0 else 'failed'}")
    return 0 if ok_all and rc == 0 else 1


def finish(t0, checked):
    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    if checked:
        w = sorted(checked, key=lambda c: c[1])[:4]
        print("# worst headroom (bound / error): " + "; ".join(f"{lab} {h:.3g} ({e:.2e} <= {b:.2e})"
                                                            for _, h, lab, e, b in w))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {time.time() - t0:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
