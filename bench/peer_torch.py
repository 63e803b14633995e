"""The PyTorch peer of `ebmc bench` (specs/performance.md 4): the same networks, loaded from the
safetensors files ebmc writes (`ebmc bench --export-weights DIR`), the same samplers and the same
Dual-MCMC training iteration, in the variants a PyTorch user would run. Imported by bench/run.py
(which times it interleaved with ebmc and checks the correctness gates); not a test by itself.

Reused, not copied: the modules of every ebmc architecture with matching state_dict names and the
safetensors reader (tests/oracle/test_nets_torch.py), and the Dual-MCMC pieces of the iteration
oracle (tests/oracle/test_dualmcmc_step_torch.py: the numpy Philox noise that replays ebmc's
random numbers, mse_sum, diag_normal_NLL). The training iteration below follows that oracle's
`reference` (the authors' train.py order) step for step, with the device, the variant's
precision and PyTorch's RNG instead of numpy noise, and no host synchronisation but one.

Samplers (as ebmc's, mcmc.h): with V the raw function (x-chain: sum of the net's outputs; z-chain:
mse_sum(G(z), target)) and the case's a, b, c and potential scale s (x: U = s V, s = +1 for the
Dual-MCMC E, -1 for the short-run score f; z: U = (k/2) V with k = 2/sigma^2):
    state <- state - (a s) grad V - b state + c xi,     xi ~ N(0, I)
i.e. Dual-MCMC x <- x - (s^2/2) grad sum E + tau xi; short-run x <- x + grad f + 0.01 xi; latent
z <- z - (s^2/2)(grad |x - G(z)|^2 / sigma^2 + z / sigma_p^2) + s xi.

Variants (VARIANTS; the precision class decides the tolerance of the gates and which dense-matmul
rate the FLOP fraction uses):
  torch-eager-tf32      eager, fp32 tensors, cudnn.benchmark; TF32 as PyTorch defaults it
                        (cudnn.allow_tf32 True, cuda.matmul.allow_tf32 False): the authors' code
  torch-eager-fp32      the same with TF32 off everywhere: the strict reference of the gates (and
                        the timed variant on the CPU)
  torch-eager-bf16-cl   autocast(bfloat16) + channels_last; chain state and energy sums fp32
  torch-compile         torch.compile(mode="reduce-overhead") of the energy (forward; its backward
                        is AOT-compiled) and of the update; autograd.grad between them (a compiled
                        autograd.grad is not supported by default: pytorch#133230); parameters
                        requires_grad_(False) while sampling (performance.md 2.4); tf32 class
  torch-cudagraph       a manual torch.cuda.graph capture of the whole K-step loop (forward,
                        autograd.grad, update with randn) on static buffers; one replay per unit
  torch-compile-bf16-cl, torch-cudagraph-bf16-cl   the last two on top of bf16 + channels_last
                        (performance.md 4.2's P2/P3; not run by default: ebmc has no bf16 yet)
The iteration case runs the eager variants only (a whole training iteration with three optimiser
steps is not compiled or captured here): the others report it as skipped.
"""
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "oracle"))
import test_nets_torch as NT  # noqa: E402  (modules, st_read, to_torch, DEFAULTS, rel_l2)
import test_dualmcmc_step_torch as DM  # noqa: E402  (Noise / philox_normals, mse_sum, NLL)
import gate_bounds as GB  # noqa: E402  (store: a chain state's fp32 storage while a bound is derived)

VARIANTS = {
    "torch-eager-tf32": dict(mode="eager", tf32=True, amp=None, cl=False, precision="tf32"),
    "torch-eager-fp32": dict(mode="eager", tf32=False, amp=None, cl=False, precision="fp32"),
    "torch-eager-bf16-cl": dict(mode="eager", tf32=True, amp=torch.bfloat16, cl=True, precision="bf16"),
    "torch-compile": dict(mode="compile", tf32=True, amp=None, cl=False, precision="tf32"),
    "torch-cudagraph": dict(mode="cudagraph", tf32=True, amp=None, cl=False, precision="tf32"),
    "torch-compile-bf16-cl": dict(mode="compile", tf32=True, amp=torch.bfloat16, cl=True, precision="bf16"),
    "torch-cudagraph-bf16-cl": dict(mode="cudagraph", tf32=True, amp=torch.bfloat16, cl=True, precision="bf16"),
}
DEFAULT_GPU = ["torch-eager-tf32", "torch-eager-bf16-cl", "torch-compile", "torch-cudagraph"]
DEFAULT_CPU = ["torch-eager-fp32"]


class Skip(Exception):
    """A variant that cannot run a case here (the reason goes into the results as a note)."""


def variant_unavailable(name, device):
    """None, or why the variant cannot run on this device / PyTorch."""
    v = VARIANTS[name]
    if device.type != "cuda":
        if v["mode"] != "eager" or v["amp"] is not None:
            return "skipped on the CPU (bf16 autocast, torch.compile and CUDA graphs are GPU variants)"
        if v["precision"] == "tf32":
            return "skipped on the CPU (no TF32 there: it would repeat torch-eager-fp32)"
    if v["mode"] == "compile" and not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    return None


class precision_flags:
    """The variant's TF32 switches for the duration of a block (they are process-wide in PyTorch
    and read when a kernel is chosen: at run time for eager, at capture time for graphs)."""

    def __init__(self, tf32):
        self.tf32 = tf32

    def __enter__(self):
        self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = self.tf32
        torch.backends.cuda.matmul.allow_tf32 = False   # PyTorch's default in both classes
        return self

    def __exit__(self, *a):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def variant_flags(name):
    """what a variant runs with, for the results file"""
    v = VARIANTS[name]
    return {"mode": v["mode"], "precision_class": v["precision"],
            "cudnn.allow_tf32": v["tf32"], "cuda.matmul.allow_tf32": False,
            "cudnn.benchmark": True, "autocast": str(v["amp"]).replace("torch.", "") if v["amp"] else None,
            "channels_last": v["cl"],
            "params_requires_grad_while_sampling": v["mode"] == "eager"}


def versions(device):
    v = {"torch": torch.__version__, "numpy": np.__version__,
         "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
         "cudnn.benchmark": True,
         "default cudnn.allow_tf32": True, "default cuda.matmul.allow_tf32": False,
         "float32_matmul_precision": torch.get_float32_matmul_precision() if hasattr(torch, "get_float32_matmul_precision") else None,
         "torch.compile": hasattr(torch, "compile")}
    try:
        import torch._dynamo.config as dc  # noqa: F401
        v["dynamo trace_autograd_ops"] = getattr(dc, "trace_autograd_ops", "absent")
    except Exception:
        v["dynamo trace_autograd_ops"] = "absent"
    if device.type == "cuda":
        v["device"] = torch.cuda.get_device_name(device)
        v["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return v


def setup_torch(device, threads=None):
    torch.backends.cudnn.benchmark = True
    if threads:
        torch.set_num_threads(threads)
    if hasattr(torch, "_dynamo"):
        try:
            import torch._dynamo.config as dc
            dc.cache_size_limit = max(getattr(dc, "cache_size_limit", 8), 256)
            if hasattr(dc, "accumulated_cache_size_limit"):
                dc.accumulated_cache_size_limit = max(dc.accumulated_cache_size_limit, 1024)
        except Exception:
            pass


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)

# ------------------------------------------------------------------ weights


class Weights:
    """manifest.json + the nets' state dicts (numpy) written by ebmc bench --export-weights."""

    def __init__(self, wdir):
        self.dir = wdir
        with open(os.path.join(wdir, "manifest.json")) as f:
            self.manifest = json.load(f)
        self._sd = {}

    def state_dict(self, net, role):
        key = (net, role)
        if key not in self._sd:
            fn = self.manifest["nets"][net]["files"][role]
            sd, _ = NT.st_read(os.path.join(self.dir, fn))
            sd = {k: NT.to_torch(v) for k, v in sd.items()}
            if os.environ.get("EBMC_BENCH_PERTURB") == "1":
                # the gate test: one weight of the PyTorch side scaled by 1.01 -> the gates must fail
                for k in sorted(sd):
                    if sd[k].is_floating_point() and sd[k].dim() >= 2:
                        sd[k] = sd[k] * 1.01
                        break
            self._sd[key] = sd
        return self._sd[key]

    def build(self, net, role, device, cl=False):
        spec = self.manifest["nets"][net]
        c = dict(NT.DEFAULTS[spec["arch"]])
        for k in ("nz", "ngf", "ndf", "nif", "img_c", "img_size"):
            c[k] = spec[k]
        m = NT.build(spec["arch"], role, c)
        m.load_state_dict(self.state_dict(net, role), strict=True)
        m = m.to(device).train()
        if cl:
            m = m.to(memory_format=torch.channels_last)
        return m

    def reset(self, module, net, role):
        """Parameters and buffers back to the file's values, in place (tensor identity and memory
        format kept, so compiled and captured code stays valid): spectral norm's u, v and
        BatchNorm's statistics advance with every training-mode forward."""
        with torch.no_grad():
            module.load_state_dict(self.state_dict(net, role), strict=True)

# ------------------------------------------------------------------ samplers


class Sampler:
    """One (net, kind, variant, batch, K) chain: run() is one timed unit (the start state copied
    in, then K steps). kind 'x': V = sum(net(x)), 'z': V = mse_sum(G(z), target)."""

    def __init__(self, module, kind, case, variant, batch, steps, device, noise=None):
        self.m, self.kind, self.vname = module, kind, variant
        self.v = VARIANTS[variant]
        self.B, self.K, self.device = batch, steps, device
        self.a, self.b, self.c = float(case["a"]), float(case["b"]), float(case["c"])
        s = float(case["scale"]) if kind == "x" else 0.5 * float(case["k"])
        self.A = self.a * s
        self.noise = noise          # None: torch.randn; else a callable k -> (B, ...) tensor
        self.amp = self.v["amp"] if device.type == "cuda" else None
        self.cl = self.v["cl"] and kind == "x"
        self.start = None
        self.target = None
        self.out = None
        self._ready = False

    # -- the pieces, written once for every variant
    def _f(self, s):
        """(per-sample output, V) of state s"""
        if self.amp is not None:
            # no cast cache under graph capture (torch.cuda.make_graphed_callables' rule)
            with torch.autocast(self.device.type, dtype=self.amp,
                                cache_enabled=self.v["mode"] != "cudagraph"):
                out = self.m(s)[0]
        else:
            out = self.m(s)[0]
        if out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()   # autocast's output; a float64 reference stays float64
        if self.kind == "x":
            return out, out.sum()
        return out, ((out - self.target) ** 2).sum()

    def _update(self, s, g, k):
        xi = torch.randn_like(s) if self.noise is None else self.noise(k)
        if self.b != 0.0:
            return s - self.A * g - self.b * s + self.c * xi
        return s - self.A * g + self.c * xi

    def _step(self, s, k, f):
        s = s.detach().requires_grad_(True)
        _, val = f(s)
        (g,) = torch.autograd.grad(val, s)
        with torch.no_grad():
            return GB.store(self._update(s.detach(), g, k))   # identity unless a bound is derived

    def set_start(self, start, target=None):
        """start (B, ...) and, for z, the target images; copied into the sampler's buffers"""
        fmt = torch.channels_last if self.cl else torch.contiguous_format
        if self.start is None:
            self.start = torch.empty_like(start, memory_format=fmt)
        self.start.copy_(start)
        if self.kind == "z":
            if self.target is None:
                self.target = torch.empty_like(target)
            self.target.copy_(target)

    def prepare(self, start, target=None):
        """buffers, compilation or capture (untimed)"""
        self.set_start(start, target)
        mode = self.v["mode"]
        if mode in ("compile", "cudagraph"):
            for p in self.m.parameters():
                p.requires_grad_(False)
        with precision_flags(self.v["tf32"]):
            if mode == "compile":
                self._f_c = torch.compile(self._f, mode="reduce-overhead", dynamic=False)
                self._upd_c = torch.compile(self._update_rng, mode="reduce-overhead", dynamic=False)
                for _ in range(3):
                    self._run_compiled()
            elif mode == "cudagraph":
                if self.noise is not None:
                    raise Skip("the shared-noise trajectory is an eager check")
                self.out = torch.empty_like(self.start)
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):       # warm-up: cuDNN autotuning, allocator
                    for _ in range(3):
                        self._loop()
                torch.cuda.current_stream(self.device).wait_stream(side)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self._loop()
            else:
                self._run_eager()
        self._ready = True

    def _update_rng(self, s, g):
        xi = torch.randn_like(s)
        if self.b != 0.0:
            return s - self.A * g - self.b * s + self.c * xi
        return s - self.A * g + self.c * xi

    def _run_eager(self):
        s = self.start.clone(memory_format=torch.channels_last if self.cl else torch.contiguous_format)
        for k in range(self.K):
            s = self._step(s, k, self._f)
        self.out = s
        return s

    def _run_compiled(self):
        mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
        s = self.start.clone()
        for k in range(self.K):
            if mark:
                mark()
            s = s.detach().requires_grad_(True)
            _, val = self._f_c(s)
            (g,) = torch.autograd.grad(val, s)
            with torch.no_grad():
                # a clone: the compiled update's output lives in the CUDA-graph pool and would be
                # overwritten by its next replay
                s = (self._upd_c(s.detach(), g) if self.noise is None else self._update(s.detach(), g, k)).clone()
        self.out = s
        return s

    def _loop(self):
        s = self.start.clone(memory_format=torch.channels_last if self.cl else torch.contiguous_format)
        for k in range(self.K):
            s = self._step(s, k, self._f)
        self.out.copy_(s)

    def run(self):
        """one timed unit (no synchronisation)"""
        mode = self.v["mode"]
        with precision_flags(self.v["tf32"]):
            if mode == "cudagraph":
                self.graph.replay()
                return self.out
            if mode == "compile":
                return self._run_compiled()
            return self._run_eager()

    def eval_out_grad(self, s, reset=None):
        """(per-sample output, grad V) at s in this variant's arithmetic (the gate). reset: called
        after any warm-up evaluation, so that the measured one starts from the file's state"""
        mode = self.v["mode"]
        with precision_flags(self.v["tf32"]):
            if mode == "compile":
                mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
                if mark:
                    mark()
                xs = s.detach().clone().requires_grad_(True)
                out, val = self._f_c(xs)
                (g,) = torch.autograd.grad(val, xs)
                return out.detach().clone(), g.clone()
            if mode == "cudagraph":
                xs = torch.empty_like(self.start)
                xs.copy_(s)
                res = {}

                def once():
                    x1 = xs.detach().requires_grad_(True)
                    out, val = self._f(x1)
                    (g,) = torch.autograd.grad(val, x1)
                    res["out"], res["g"] = out.detach(), g
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    once()
                torch.cuda.current_stream(self.device).wait_stream(side)
                return _capture_once(once, res, self.device, reset)
            xs = s.detach().clone(memory_format=torch.channels_last if self.cl else torch.contiguous_format)
            xs.requires_grad_(True)
            out, val = self._f(xs)
            (g,) = torch.autograd.grad(val, xs)
            return out.detach(), g.detach()


def _capture_once(fn, res, device, reset):
    """fn captured into a CUDA graph and replayed once (the gate's view of a captured variant);
    the spectral-norm / BatchNorm state is reset after the warm-up and advances once, as in one
    eager call"""
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize(device)
    if reset:
        reset()
    g.replay()
    torch.cuda.synchronize(device)
    return res["out"].clone(), res["g"].clone()

# ------------------------------------------------------------------ the training iteration


class Iteration:
    """One Dual-MCMC training iteration as the authors' train.py (the order of the oracle's
    `reference`): run(it) is one timed unit and returns the 11 metrics of ebmc's dm_t.hmet
    (recon, sample, nllq, nlll, et, ef, etlog, egen0, egen1, ex0, ex1) on the host, copied once at
    the end (ebmc also synchronises once per iteration). noise: None for PyTorch's RNG, or an
    oracle DM.Noise (ebmc's Philox stream) for the gate."""

    def __init__(self, weights, net, cfg, variant, device, x_host):
        v = VARIANTS[variant]
        if v["mode"] != "eager":
            raise Skip("the training iteration is timed eager only (no compiled or captured "
                       "whole iteration with three optimiser steps here)")
        self.v, self.device, self.cfg, self.net = v, device, cfg, net
        self.amp = v["amp"] if device.type == "cuda" else None
        self.E = weights.build(net, "E", device, v["cl"])
        self.G = weights.build(net, "G", device, v["cl"])
        self.I = weights.build(net, "I", device, v["cl"])
        self.weights = weights

        def adam(m, r):
            # floats: a config's "0" arrives as an int, and PyTorch 2.11 refuses mixed betas
            return torch.optim.Adam(m.parameters(), lr=float(cfg[f"train.lr_{r}"]),
                                    betas=(float(cfg[f"train.beta1_{r}"]), float(cfg["train.beta2"])),
                                    weight_decay=cfg[f"train.wd_{r}"], eps=1e-8)
        self.optE, self.optG, self.optI = adam(self.E, "e"), adam(self.G, "g"), adam(self.I, "i")
        self.x_host = x_host.pin_memory() if device.type == "cuda" else x_host
        self.B = x_host.shape[0]
        self.dtype = torch.float32

    def to_double(self):
        """the same iteration in float64 (the gates' reference and the bounds' emulation)"""
        for m in (self.E, self.G, self.I):
            m.double()   # parameters converted in place: the optimisers keep them
        self.x_host = self.x_host.double()
        self.dtype = torch.float64
        return self

    def reset(self):
        for m, r in ((self.E, "E"), (self.G, "G"), (self.I, "I")):
            self.weights.reset(m, self.net, r)
        for o in (self.optE, self.optG, self.optI):
            o.state.clear()

    def _fwd(self, m, x):
        if self.amp is not None:
            with torch.autocast(self.device.type, dtype=self.amp):
                outs = m(x)
            return tuple(o.float() for o in outs)
        return m(x)

    def run(self, it=1, noise=None):
        cfg, dev, B = self.cfg, self.device, self.B
        E, G, I = self.E, self.G, self.I
        Kx, Kz = int(cfg["langevin_x.steps"]), int(cfg["langevin_z.steps"])
        sx, tau = cfg["langevin_x.step_size"], cfg["langevin_x.noise"]
        sz, nsz = cfg["langevin_z.step_size"], cfg["langevin_z.noise"]
        sig, psig = cfg["langevin_z.sigma"], cfg["langevin_z.prior_sigma"]
        gf, ls, li = cfg["train.g_factor"], cfg["train.lambda_s"], cfg["train.lambda_i"]
        Tmp = (tau / sx) ** 2 if cfg["train.use_temp"] and tau > 0 else 1.0
        nz = self.G.lin_1.in_features
        T_ = (lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev, self.dtype))  # noqa: E731
        xsteps = [0]

        def randn(shape, k=None, which=None):
            if noise is None:
                return torch.randn(shape, device=dev, dtype=self.dtype)
            return T_(which(k) if k is not None else which())

        with precision_flags(self.v["tf32"]):
            x = self.x_host.to(dev, non_blocking=True)
            if self.v["cl"]:
                x = x.contiguous(memory_format=torch.channels_last)

            def langevin_x(x0):
                xx = x0.detach().clone()
                first = last = None
                for _ in range(Kx):
                    xx.requires_grad_(True)
                    energy = self._fwd(E, xx)[0].sum()
                    if first is None:
                        first = energy.detach()
                    last = energy.detach()
                    (grad,) = torch.autograd.grad(energy, xx)
                    with torch.no_grad():
                        xx = xx.detach() - 0.5 * sx * sx * grad
                        if tau > 0:
                            xx = xx + tau * randn(xx.shape, xsteps[0], noise and noise.x_step)
                        xx = GB.store(xx)
                    xsteps[0] += 1
                return xx.detach(), first, last

            def langevin_z(z0, xt):
                zz = z0.detach().clone()
                for k in range(Kz):
                    zz.requires_grad_(True)
                    err = DM.mse_sum(self._fwd(G, zz)[0], xt)
                    (grad,) = torch.autograd.grad(err, zz)
                    with torch.no_grad():
                        zz = zz.detach() - 0.5 * sz * sz * (grad / sig / sig + 1.0 / (psig * psig) * zz) \
                            + nsz * randn(zz.shape, k, noise and noise.z_step)
                        zz = GB.store(zz)
                return zz.detach()

            z = randn((B, nz, 1, 1), None, noise and noise.prior)
            samples = self._fwd(G, z)[0]
            samples_corr, ex0, ex1 = langevin_x(samples)
            self.optG.zero_grad()
            mu, logvar = self._fwd(I, x)
            std = torch.exp(logvar.mul(0.5))
            z_input = randn((B, nz, 1, 1), None, noise and noise.eps).mul(std).add_(mu)
            z_corr = langevin_z(z_input, x)
            recon = self._fwd(G, z_corr.detach())[0]
            errRecon = DM.mse_sum(recon, x) / B
            errSample = DM.mse_sum(samples, samples_corr) / B
            (gf * errRecon + ls * errSample).backward()
            self.optG.step()
            with torch.no_grad():
                etlog = self._fwd(E, x)[0].sum()
            self.optI.zero_grad()
            nll_q = DM.diag_normal_NLL(z_corr, mu, logvar)
            mu_g, lv_g = self._fwd(I, samples_corr)
            nll_l = DM.diag_normal_NLL(z, mu_g, lv_g)
            (gf * nll_q.mean() + li * nll_l.mean()).backward()
            self.optI.step()
            self.optE.zero_grad()
            Eng_T = self._fwd(E, x)[0].squeeze()
            samples = self._fwd(G, z)[0]
            if cfg["train.fine_tune"]:
                samples, egen0, egen1 = langevin_x(samples)
            else:
                egen0 = egen1 = torch.tensor(float("nan"), device=dev, dtype=self.dtype)
            Eng_F = self._fwd(E, samples.detach())[0].squeeze()
            errE = Eng_T.mean() - Eng_F.mean()
            (errE / Tmp).backward()
            self.optE.step()
            m = torch.stack([(errRecon * B).detach(), (errSample * B).detach(), nll_q.sum().detach(),
                             nll_l.sum().detach(), Eng_T.sum().detach(), Eng_F.sum().detach(), etlog,
                             egen0, egen1, ex0, ex1]).to(torch.float64 if self.dtype == torch.float64 else torch.float32)
        return m.cpu()   # the one host synchronisation


def philox_noise_fn(seed, stream, n_chains, shape, device):
    """k -> ebmc's Philox N(0,1) draws of a chain (stream, step k) as a tensor (the trajectory
    gate: the PyTorch chain with exactly ebmc's noise)"""
    elems = int(np.prod(shape))

    def f(k):
        a = DM.philox_normals(seed, stream, k, n_chains, elems).reshape((n_chains,) + tuple(shape))
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)
    return f


def matmul_rates(device, n=None):
    """dense matmul FLOP/s of this GPU as PyTorch runs it: fp32 strict, tf32, bf16 (median of 10
    n x n x n products); on the CPU fp32 only"""
    out = {}
    if device.type != "cuda":
        n = n or 256
        kinds = [("fp32", torch.float32, False)]
    else:
        n = n or 8192
        kinds = [("fp32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)]
    for name, dt, tf32 in kinds:
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.rand(n, n, device=device, dtype=dt)
        b = torch.rand(n, n, device=device, dtype=dt)
        ts = []
        for r in range(12):
            sync(device)
            t0 = time.perf_counter()
            torch.mm(a, b)
            sync(device)
            if r >= 2:
                ts.append(time.perf_counter() - t0)
        torch.backends.cuda.matmul.allow_tf32 = saved
        out[name] = 2.0 * n ** 3 / float(np.median(ts))
    return out, n
