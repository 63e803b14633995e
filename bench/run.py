#!/usr/bin/env python3
"""ebmc against PyTorch on one GPU, in one job: the one command of the benchmark
(specs/performance.md 4).

    python3 bench/run.py [--out bench/results] [--rounds N] [--quick] [--cases LIST] ...
    python3 bench/run.py --cpu [--rounds N]     # ebmc vs PyTorch on the CPU: the CPU plan's sizes
    python3 bench/run.py --cpu --quick --out DIR  # functional test on the CPU (tiny sizes)

When the python3 that runs it has no PyTorch, it runs itself again under the first of $EBMC_PYTHON
and /usr/bin/python3 (Debian's python3-torch) that has PyTorch and numpy, and says so.

Steps:
  1. `ebmc bench --export-weights W`: ebmc writes every net's weights (safetensors with PyTorch
     state_dict names) and manifest.json (the cases: nets, batches, K, update coefficients, FLOP
     counts): both sides run the same cases with identical weights.
  2. One long-lived `ebmc bench --serve` process (a line protocol on stdin/stdout) keeps ebmc's
     contexts, plans and captured graphs warm for the whole job.
  3. Correctness gates (performance.md 4.5), before anything is timed; a failed gate ends the job
     with exit status 3 and a message naming the gate. Every implementation -- each of ebmc's and
     each PyTorch variant -- is compared with the float64 reference (the PyTorch modules in
     float64, same weights, inputs and noise), within a bound DERIVED for its precision at gate
     time (gate_bounds.py): 10 (fp32) or 4 (TF32) x the largest move of the float64 result under that precision's
     emulated rounding (fp32: operands to 24 bits; TF32: 11 bits; results stored in fp32) in 3
     trials and in PyTorch's own computation in that precision -- the sensitivity of this net
     at these weights, kinks included. bf16 variants (PyTorch only)
     keep fixed bounds (TOL_*).
       energy / grad    E(x) (or G(z)) and the input gradient at the same input and weights,
                        relative L2
       traj             K steps with ebmc's own Philox noise replayed in PyTorch (the oracle's
                        numpy Philox): the final states, relative L2 (eager variants): same
                        update, step sizes, sign and noise scale
       dist-*           the sampler with each side's own RNG: many chains (all from one image for
                        the x-chains, so their spread is the noise's): the mean final state, the
                        spread across chains (ratio within 1/1.25 .. 1.25) and the mean energy of
                        the final states agree within 3 standard errors plus a precision margin
                        (both sides' derived trajectory bounds)
       iteration:*      one full Dual-MCMC training iteration with ebmc's noise: the 11 metrics
                        (losses, energies), relative to max(|value|, batch)
  4. Timing: every (case, implementation) pair, ebmc's and PyTorch's, interleaved: W untimed
     warm-up units each (compilation and capture happen here), then R rounds, each running every
     pair once in an order rotated by one per round. A unit is bracketed by device
     synchronisations on both sides and timed by the host clock (ebmc inside its process, PyTorch
     here; CUDA-event times are recorded too).
  5. Results: <out>/<gpu>-<date>.json (raw per-round times, gpu, driver, CUDA, cuDNN, PyTorch,
     nvidia-smi clocks before and after, the command line, gates) and .md (the README table);
     the table printed with ebmc / PyTorch throughput ratios and FLOP fractions.
Without a GPU it refuses unless --cpu is given: then ebmc's CPU backend runs against PyTorch on
the CPU (torch-eager-fp32; bf16, compile and CUDA-graph variants are skipped with a note), both
sides with the same number of threads: OMP_NUM_THREADS, else every core. Without --quick these are
the CPU plan's cases (`ebmc bench --backend cpu --list`: the short-run net at n_f 64, Dual-MCMC at
the quick start's widths), 5 rounds, results into bench/results/cpu-<date>.json with the CPU
model, core count, threads, load average before and after, and `ebmc info`'s BLAS line. With
--quick it is a functional test (tiny sizes, one thread, 2 rounds) and nothing is ever written
into bench/results. Exit: 0 ok, 2 usage / no GPU, 3 a gate failed, 1 anything else; 77 when no
Python with PyTorch and numpy is found.

EBMC_BENCH_PERTURB=1 scales one weight of the PyTorch side by 1.01 (the gate test);
EBMC_BENCH_INJECT=sign|step|noise makes ebmc's gate chains deliberately wrong (ascent, step x 1.1,
noise x 1.1: bench_gates.c), which the derived gates must catch (tests/bench/test_bench_run.py).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(REPO, "bench", "results")


def python_with_torch():
    """another interpreter that has PyTorch and numpy: $EBMC_PYTHON, then Debian's /usr/bin/python3"""
    for c in (os.environ.get("EBMC_PYTHON"), "/usr/bin/python3"):
        if not c or not os.access(c, os.X_OK):
            continue
        r = subprocess.run([c, "-c", "import numpy, torch"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            return c
    return None


try:
    import numpy as np
    import torch
except ImportError:
    other = None if os.environ.get("EBMC_BENCH_REEXEC") else python_with_torch()
    if other:
        print(f"bench/run.py: {sys.executable} has no PyTorch/numpy; running under {other}",
              file=sys.stderr, flush=True)
        os.environ["EBMC_BENCH_REEXEC"] = "1"
        os.execv(other, [other, os.path.abspath(__file__)] + sys.argv[1:])
    print("bench/run.py: SKIPPED \u2014 PyTorch/numpy not installed for %s, nor in $EBMC_PYTHON or "
          "/usr/bin/python3 (Debian: apt-get install python3-torch python3-numpy; or a CUDA PyTorch "
          "from pip; or EBMC_PYTHON=/path/to/python)" % sys.executable)
    sys.exit(77)

import peer_torch as PT  # noqa: E402
import gate_bounds as GB  # noqa: E402
NT, DM = PT.NT, PT.DM

# The bounds of the fp32 and TF32 gates are derived at gate time (gate_bounds.py): FACTOR x how far
# the float64 result moves under that precision's emulated rounding, kinks included, for these
# weights and inputs. Fixed bounds remain only for PyTorch's bf16 variants (ebmc has no bf16; they
# check PyTorch's own autocast against float64): measured on the CPU at the --quick widths, bf16
# autocast is off by 8e-3 (energies), 6.7e-2 (short-run nf8 gradients), 1.3e-1 (Dual-MCMC E, width
# 8): checked at 5e-2 / 2e-1 / 3e-1, which still catches a semantic error (wrong weights, sign,
# scale: >= 1). TOL_DIST is the dist-* margin where no trajectory bound was derived (bf16).
REF = "torch-eager-fp32"
TOL_OUT = {"bf16": 5e-2}
TOL_GRAD = {"bf16": 2e-1}
TOL_DIST = {"fp32": 1e-3, "tf32": 2e-2, "bf16": 5e-2}
TOL_ITER = {"bf16": 3e-1}
SPREAD_RATIO = 1.25
METRICS = ["recon", "sample", "nllq", "nlll", "et", "ef", "etlog", "egen0", "egen1", "ex0", "ex1"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class EbmcServer:
    """`ebmc bench --serve`: one JSON answer per command line"""

    def __init__(self, cmd):
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self.p.stdout.readline()
        if not ans:
            raise RuntimeError(f"ebmc bench --serve exited (status {self.p.wait()}) on '{line}'")
        r = json.loads(ans)
        if not r.get("ok"):
            raise RuntimeError(f"ebmc bench --serve: '{line}': {r.get('error')}")
        return r

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        self.p.wait(timeout=120)


def find_ebmc(arg):
    for c in ([arg] if arg else []) + [os.environ.get("EBMC"), os.path.join(REPO, "build", "ebmc")]:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return None


def nvidia_smi():
    q = "name,driver_version,pstate,clocks.sm,clocks.mem,clocks.max.sm,power.draw,power.limit,temperature.gpu"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
        if out.returncode == 0:
            return [dict(zip(q.split(","), (v.strip() for v in line.split(","))))
                    for line in out.stdout.strip().splitlines()]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


def cpu_machine(ebmc):
    """the CPU run's machine: model, cores, threads, load average, ebmc's BLAS"""
    model = None
    try:
        for line in subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    blas = None
    try:
        info = subprocess.run([ebmc, "info"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        field = {k: v.strip() for k, _, v in (ln.partition(":") for ln in info.stdout.splitlines())}
        blas, conv = field.get("CPU BLAS"), field.get("CPU convolutions")
        gemm = field.get("CPU GEMM (linear layers, small convolutions)")
        if blas and gemm:
            blas = f"{blas}; GEMM: {gemm}"
        if blas and conv:
            blas = f"{blas}; convolutions: {conv}"
        simd = field.get("CPU element-wise loops")
        if blas and simd:
            blas = f"{blas}; element-wise loops: {simd}"
    except OSError:
        pass
    return dict(cpu_model=model, cores=os.cpu_count(), affinity=len(os.sched_getaffinity(0)),
                threads=int(os.environ.get("OMP_NUM_THREADS", "0")), ebmc_blas=blas,
                torch_threads=torch.get_num_threads(), loadavg_before=os.getloadavg(),
                env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "EBMC_CPU_GEMM", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                  "OPENBLAS_NUM_THREADS") if k in os.environ})


def pct(v, q):
    return float(np.percentile(np.asarray(v, dtype=np.float64), q)) if len(v) else float("nan")


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "unknown"

# ------------------------------------------------------------------ the PyTorch side's objects


class Peer:
    """modules (per net, role, variant) and samplers (per net, kind, variant, batch, K), cached"""

    def __init__(self, weights, device):
        self.w, self.device = weights, device
        self.modules, self.samplers = {}, {}
        self.case = {c["name"]: c for c in weights.manifest["cases"]}

    def module(self, net, role, variant):
        key = (net, role, variant)
        if key not in self.modules:
            self.modules[key] = self.w.build(net, role, self.device, PT.VARIANTS[variant]["cl"])
        return self.modules[key]

    def chain_case(self, net, kind):
        for c in self.w.manifest["cases"]:
            if c["net"] == net and c["kind"] == ("x-chain" if kind == "x" else "z-chain"):
                return c
        return None

    def sampler(self, net, kind, variant, batch, steps, start, target=None):
        key = (net, kind, variant, batch, steps)
        if key not in self.samplers:
            role = "E" if kind == "x" else "G"
            s = PT.Sampler(self.module(net, role, variant), kind, self.chain_case(net, kind), variant,
                           batch, steps, self.device)
            s.prepare(start, target)
            self.samplers[key] = s
        return self.samplers[key]

    def reset(self, net, kind, variant):
        self.w.reset(self.module(net, "E" if kind == "x" else "G", variant), net, "E" if kind == "x" else "G")


def starts(case, manifest, device, seed=7):
    """fixed start states (and latent targets) of a timed case, from a seeded generator"""
    net = manifest["nets"][case["net"]]
    g = torch.Generator().manual_seed(seed)
    B = case["batch"]
    img = (B, net["img_c"], net["img_size"], net["img_size"])
    if case["kind"] == "x-chain":
        return (torch.rand(img, generator=g) * 2 - 1).to(device), None
    z = torch.randn((B, net["nz"], 1, 1), generator=g).to(device)
    return z, (torch.rand(img, generator=g) * 2 - 1).to(device)

# ------------------------------------------------------------------ gates


def ebmc_pairs(precision, ebmc_impls):
    """the ebmc implementations a PyTorch variant of this precision class is compared with"""
    want = "fp32" if precision == "fp32" else "tf32"
    out = [i for i in ebmc_impls if i["precision"] == want]
    if not out and ebmc_impls and ebmc_impls[0]["name"] == "ebmc-cpu":
        out = ebmc_impls
    return out


class Bounds:
    """the derived bounds of one (kind, net): float64 references, computed once, and
    gate_bounds.bound per precision, computed when a gate first needs it"""

    def __init__(self, peer, kind, net, case, device):
        self.peer, self.kind, self.net, self.case, self.device = peer, kind, net, case, device
        self.role = "E" if kind == "x" else "G"
        self.m64 = peer.w.build(net, self.role, device).double()
        self.m32 = peer.w.build(net, self.role, device)   # PyTorch's own fp32 / TF32: one trial
        for p in list(self.m64.parameters()) + list(self.m32.parameters()):
            p.requires_grad_(False)   # input gradients only: the emulation skips weight gradients
        self.cache = {}

    def _variant(self, prec):
        """the eager PyTorch variant computing in prec (its TF32 flags; the CPU has no TF32)"""
        return "torch-eager-tf32" if prec == "tf32" else REF

    def _eval(self, xin, tgt, prec=None):
        m = self.m64 if prec is None else self.m32
        dt = torch.float64 if prec is None else torch.float32
        self.peer.w.reset(m, self.net, self.role)
        s = PT.Sampler(m, self.kind, self.case, self._variant(prec), xin.shape[0], 1, self.device)
        s.set_start(xin.to(dt), tgt.to(dt) if tgt is not None else None)
        o, g = s.eval_out_grad(xin.to(dt))
        return o.double().cpu().numpy(), g.double().cpu().numpy()

    def out_grad(self, xin, tgt, prec):
        """((out64, grad64), (bound out, bound grad), moves)"""
        if "og64" not in self.cache:
            self.cache["og64"] = self._eval(xin, tgt)
        ref = self.cache["og64"]
        if ("og", prec) not in self.cache:
            self.cache[("og", prec)] = GB.bound(lambda: self._eval(xin, tgt), ref, prec,
                                                real=lambda: self._eval(xin, tgt, prec))
        b, moves = self.cache[("og", prec)]
        return ref, b, moves

    def _traj(self, start, tgt, nf, prec=None):
        m = self.m64 if prec is None else self.m32
        dt = torch.float64 if prec is None else torch.float32
        self.peer.w.reset(m, self.net, self.role)
        t = PT.Sampler(m, self.kind, self.case, self._variant(prec), start.shape[0], self.K, self.device,
                       noise=lambda k: nf(k).to(dt))
        t.set_start(start.to(dt), tgt.to(dt) if tgt is not None else None)
        return (t.run().detach().double().cpu().numpy(),)

    def traj(self, start, tgt, nf, K, prec):
        """(x64 after K steps, bound, moves)"""
        self.K = K
        if "x64" not in self.cache:
            self.cache["x64"] = self._traj(start, tgt, nf)
        ref = self.cache["x64"]
        if ("traj", prec) not in self.cache:
            self.cache[("traj", prec)] = GB.bound(lambda: self._traj(start, tgt, nf), ref, prec,
                                                  real=lambda: self._traj(start, tgt, nf, prec))
        b, moves = self.cache[("traj", prec)]
        return ref[0], b[0], moves

    def known(self, what, prec):
        return self.cache.get((what, prec))


def fmt_moves(moves, i=0):
    return "/".join(f"{m[i]:.1e}" for m in moves)


def run_gates(peer, manifest, gdir, variants, ebmc_impls, device, iterations, cases):
    """Every implementation (ebmc's, each PyTorch variant) against the float64 reference within
    the bound derived for its precision (gate_bounds: FACTOR x the float64 result's move under
    that precision's emulated rounding); bf16 variants keep fixed bounds (TOL_*: ebmc has no
    bf16, they are only PyTorch's own check)."""
    rows = []
    used = {("x" if c["kind"] == "x-chain" else "z", c["net"]) for c in cases if c["kind"] != "iteration"}

    def row(gate, net, tv, ev, val, tol, ok, note=""):
        rows.append(dict(gate=gate, net=net, torch=tv, ebmc=ev, value=float(val), tol=float(tol),
                         ok=bool(ok), note=note))
        flag = "ok" if ok else "FAIL"
        log(f"  gate {gate:<18} {net:<26} {tv:<24} vs {ev:<16} {val:10.3e} (tol {tol:.1e}) {flag}"
            f"{'  ' + note if note else ''}")

    def derived(prec):
        return prec in GB.BITS

    seed = int(manifest["seed"])
    variants = [REF] + [v for v in variants if v != REF]
    for key, gs in manifest["gate_sizes"].items():
        kind, net = key.split("/", 1)
        if (kind, net) not in used:
            continue
        case = peer.chain_case(net, kind)
        dumps = {}
        for e in ebmc_impls:
            f = os.path.join(gdir, f"gate.{kind}.{net}.{e['name']}.safetensors")
            dumps[e["name"]] = NT.st_read(f)
        bg, bt, bd, K = gs["batch"], gs["traj_batch"], gs["dist_batch"], gs["steps"]
        some = next(iter(dumps.values()))
        meta = some[1]
        xin = torch.from_numpy(some[0]["x" if kind == "x" else "z"]).to(device)
        tgt = torch.from_numpy(some[0]["target"]).to(device) if kind == "z" else None
        B = Bounds(peer, kind, net, case, device)
        oname = "energy" if kind == "x" else "output"
        nf = PT.philox_noise_fn(seed, int(meta["stream_traj"]), bt, tuple(xin.shape[1:]), device)
        st_t, tg_t = xin[:bt], tgt[:bt] if tgt is not None else None
        # 1. energies and input gradients of ebmc's implementations (performance.md 4.5.1)
        for e in ebmc_impls:
            d = dumps[e["name"]][0]
            (o64, g64), (bo, bgr), moves = B.out_grad(xin, tgt, e["precision"])
            for q, a_, r_, tol, i in ((oname, d["out"], o64, bo, 0), ("grad", d["grad"], g64, bgr, 1)):
                err = NT.rel_l2(a_.reshape(r_.shape), r_)
                row(q, net, "float64", e["name"], err, tol, err <= tol,
                    f"ebmc against float64; bound {GB.FACTOR[e['precision']]:g} x the float64 move under {e['precision']} "
                    f"rounding ({fmt_moves(moves, i)} in {len(moves)} trials)")
        # 2. trajectories of ebmc's implementations with its own Philox noise, against float64
        for e in ebmc_impls:
            x64, tol, moves = B.traj(st_t, tg_t, nf, K, e["precision"])
            xe = dumps[e["name"]][0][f"traj_{kind}K"].reshape(x64.shape).astype(np.float64)
            et = NT.rel_l2(xe, x64)
            row("traj", net, "float64", e["name"], et, tol, et <= tol,
                f"{bt} chains, K={K}, ebmc's Philox noise; bound {GB.FACTOR[e['precision']]:g} x the float64 move under "
                f"{e['precision']} rounding ({fmt_moves(moves)} in {len(moves)} trials)")
        for v in variants:
            prec = PT.VARIANTS[v]["precision"]
            pairs = ebmc_pairs(prec, ebmc_impls)
            try:
                # 1. the variant's energies and gradients against float64
                st0, tg0 = starts(case, manifest, device)
                smp = peer.sampler(net, kind, v, bg, K, st0, tg0)
                peer.reset(net, kind, v)
                if kind == "z":
                    smp.set_start(xin, tgt)
                out, g = smp.eval_out_grad(xin, reset=lambda: peer.reset(net, kind, v))
                out, g = out.float().cpu().numpy(), g.float().cpu().numpy()
                if derived(prec):
                    (o64, g64), (bo, bgr), _ = B.out_grad(xin, tgt, prec)
                else:
                    (o64, g64), _, _ = B.out_grad(xin, tgt, "fp32")
                    bo, bgr = TOL_OUT[prec], TOL_GRAD[prec]
                for q, a_, r_, tol in ((oname, out, o64, bo), ("grad", g, g64, bgr)):
                    err = NT.rel_l2(a_.reshape(r_.shape), r_)
                    row(q, net, v, "float64", err, tol, err <= tol,
                        "PyTorch variant against float64" + ("" if derived(prec) else " (fixed bf16 bound)"))
                # 2. the variant's trajectory with ebmc's noise (eager fp32 / tf32 variants)
                if PT.VARIANTS[v]["mode"] == "eager" and derived(prec):
                    tr = PT.Sampler(peer.module(net, B.role, v), kind, case, v, bt, K, device, noise=nf)
                    peer.reset(net, kind, v)
                    tr.set_start(st_t, tg_t)
                    xk = tr.run().detach().float().cpu().numpy()
                    x64, tol, _ = B.traj(st_t, tg_t, nf, K, prec)
                    et = NT.rel_l2(xk.astype(np.float64), x64)
                    row("traj", net, v, "float64", et, tol, et <= tol, f"{bt} chains, K={K}, ebmc's Philox noise")
                # 3. distribution with each side's own RNG (bd chains); the precision margin is
                # the derived trajectory bound of both sides (each final state is within its
                # bound of the float64 chain)
                if kind == "x":
                    s0 = xin[:1].expand((bd,) + tuple(xin.shape[1:])).contiguous()
                    t0 = None
                else:
                    s0, t0 = xin[:bd], tgt[:bd]
                ds = peer.sampler(net, kind, v, bd, K, s0, t0)
                peer.reset(net, kind, v)
                ds.set_start(s0, t0)
                xk = ds.run().detach().float()
                outk = None
                if kind == "x":
                    with torch.no_grad(), PT.precision_flags(PT.VARIANTS[v]["tf32"]):
                        outk = ds._f(xk.contiguous(memory_format=torch.channels_last) if ds.cl else xk)[0]
                    outk = outk.float().cpu().numpy().ravel()
                xk = xk.cpu().numpy().reshape(bd, -1)
                e = pairs[0]
                d = dumps[e["name"]][0]
                ek = d[f"dist_{kind}K"].reshape(bd, -1).astype(np.float64)
                margin, emargin = dist_margins(B, prec, e["precision"])
                dist_rows(row, net, v, e["name"], margin, emargin, kind, ek, xk.astype(np.float64),
                          d.get("dist_outK"), outk)
            except PT.Skip as ex:
                log(f"  gate {net} {v}: skipped: {ex}")
            except Exception as ex:  # a variant that fails to run is reported, not fatal
                row("runs", net, v, "-", float("nan"), 0, False, f"{type(ex).__name__}: {str(ex)[:300]}")
    # the training iteration: every side against the float64 iteration with ebmc's noise (the
    # metrics relative to max(|value|, batch), as the oracle test)
    for cname, it in iterations.items():
        case = peer.case[cname]
        cfg, net = case["config"], case["net"]
        d, meta = NT.st_read(os.path.join(gdir, f"gate.iteration.{net}.{ebmc_impls[0]['name']}.safetensors"))
        x = d["x"]
        nb = x.shape[0]
        names = meta["metrics"].split(",")

        def noise(nz, x=x, cfg=cfg):
            return DM.Noise(int(cfg["run.seed"]), x.shape[0], nz, tuple(x.shape[1:]), 1)
        o64 = PT.Iteration(peer.w, net, cfg, REF, device, torch.from_numpy(x.copy())).to_double()

        def run64(o64=o64, noise=noise):
            o64.reset()
            return o64.run(1, noise(o64.G.lin_1.in_features)).numpy()
        ref = run64()
        bounds = {}

        def run_in(prec, net=net, cfg=cfg, x=x, noise=noise):
            o = PT.Iteration(peer.w, net, cfg, "torch-eager-tf32" if prec == "tf32" else REF, device,
                             torch.from_numpy(x.copy()))
            return o.run(1, noise(o.G.lin_1.in_features)).numpy()

        def check(who_t, who_e, vals, prec):
            if prec in GB.BITS and prec not in bounds:
                bounds[prec] = GB.metric_bound(run64, ref, prec, nb, real=lambda: run_in(prec))
            for i, n in enumerate(names):
                if not np.isfinite(vals[i]) and not np.isfinite(ref[i]):
                    continue
                tol = bounds[prec][0][i] if prec in bounds else TOL_ITER[prec]
                err = abs(vals[i] - ref[i]) / max(abs(vals[i]), abs(ref[i]), nb)
                row(f"iteration:{n}", net, who_t, who_e, err, tol, err <= tol,
                    f"{vals[i]:.6g}, float64 {ref[i]:.6g}")
        for e in ebmc_impls:
            de, _ = NT.st_read(os.path.join(gdir, f"gate.iteration.{net}.{e['name']}.safetensors"))
            check("float64", e["name"], de["metrics"].astype(np.float64), e["precision"])
        for v, obj in it.items():
            obj.x_host.copy_(torch.from_numpy(x))
            obj.reset()
            m = obj.run(1, noise(obj.G.lin_1.in_features)).numpy().astype(np.float64)
            check(v, "float64", m, PT.VARIANTS[v]["precision"])
            obj.reset()
    return rows


def dist_margins(B, tprec, eprec):
    """the dist-* gates' precision margins (relative): the sum of both sides' derived trajectory
    bounds (states) and trajectory + energy bounds (energies); TOL_DIST where none is derived"""
    m = e = 0.0
    for p in (tprec, eprec):
        t, og = B.known("traj", p), B.known("og", p)
        if t is None or og is None:
            return TOL_DIST[tprec], TOL_DIST[tprec]
        m += t[0][0]
        e += t[0][0] + og[0][0]
    return m, e


def dist_rows(row, net, tv, ev, margin, emargin, kind, xe, xt, oe, ot):
    """the dist-* gates: xe, xt (B, elems) final states of ebmc and PyTorch; oe, ot energies;
    margin, emargin: the precision margins (relative) of the states and of the energies"""
    B = xe.shape[0]
    me, mt = xe.mean(0), xt.mean(0)
    se, st = xe.std(0, ddof=1), xt.std(0, ddof=1)
    err = np.linalg.norm(me - mt)
    allowed = 3 * np.sqrt(((se ** 2 + st ** 2) / B).sum()) + margin * np.linalg.norm(mt)
    row("dist-mean", net, tv, ev, err / max(allowed, 1e-30), 1.0, err <= allowed,
        f"|mean_e - mean_t| {err:.3e}, allowed {allowed:.3e} ({B} chains)")
    spe, spt = float(se.mean()), float(st.mean())
    ratio = spe / spt if spt > 0 else float("inf")
    ok = 1 / SPREAD_RATIO <= ratio <= SPREAD_RATIO
    row("dist-spread", net, tv, ev, ratio, SPREAD_RATIO, ok,
        f"mean std across chains: ebmc {spe:.4e}, torch {spt:.4e}" +
        (" (all chains from one start: the noise's spread)" if kind == "x" else ""))
    if oe is not None and ot is not None:
        oe = np.asarray(oe, dtype=np.float64).ravel()
        ot = np.asarray(ot, dtype=np.float64).ravel()
        d = abs(oe.mean() - ot.mean())
        allowed = 3 * np.sqrt(oe.var(ddof=1) / B + ot.var(ddof=1) / B) + emargin * (abs(ot.mean()) + ot.std())
        row("dist-energy", net, tv, ev, d / max(allowed, 1e-30), 1.0, d <= allowed,
            f"mean E: ebmc {oe.mean():.6g}, torch {ot.mean():.6g}, allowed diff {allowed:.3e}")

# ------------------------------------------------------------------ timing


def timed_torch(fn, device):
    if device.type == "cuda":
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        e0.record()
        fn()
        e1.record()
        torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        return t1 - t0, e0.elapsed_time(e1) * 1e-3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, None


def case_selected(name, pats):
    import fnmatch
    if not pats:
        return True
    for p in pats.split(","):
        if (any(ch in p for ch in "*?[") and fnmatch.fnmatch(name, p)) or name.startswith(p):
            return True
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="results folder (default bench/results; with --cpu a temporary folder)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds (default 20; --cpu 5; --cpu --quick 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed units per pair (default 3; --cpu 1)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (ebmc bench --quick)")
    ap.add_argument("--cpu", action="store_true", help="on the CPU: the CPU plan's cases (with --quick: "
                    "a functional test at tiny sizes)")
    ap.add_argument("--cases", help="comma-separated case names, prefixes or globs")
    ap.add_argument("--torch-variants", help="comma-separated (default: %s)" % ",".join(PT.DEFAULT_GPU))
    ap.add_argument("--ebmc-impls", help="comma-separated (default: ebmc bench's)")
    ap.add_argument("--ebmc", help="the ebmc binary (default $EBMC or build/ebmc)")
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the weights and gate dumps")
    ap.add_argument("--gates-only", action="store_true", help="stop after the correctness gates "
                    "(writes <out>/<gpu>-<date>.gates.json; a first check on a new machine)")
    a = ap.parse_args()

    if a.cpu:
        device = torch.device("cpu")
        rounds, warmup = a.rounds or (2 if a.quick else 5), 1 if a.warmup is None else a.warmup
        if a.quick:
            out = a.out or tempfile.mkdtemp(prefix="ebmc-bench-cpu-")
            o, r = os.path.realpath(out), os.path.realpath(RESULTS)
            if o == r or o.startswith(r + os.sep):
                log("bench/run.py: a --cpu --quick run never writes into bench/results (its numbers "
                    "are no benchmark); pass --out TMPDIR")
                return 2
        else:
            out = a.out or RESULTS
    else:
        if not torch.cuda.is_available():
            log("bench/run.py: no CUDA GPU visible to PyTorch here (torch %s, CUDA %s). The benchmark "
                "runs ebmc and PyTorch on one GPU.\nHINT: run it on the GPU machine, or pass --cpu for "
                "a functional test on the CPU (quick sizes; no results file in bench/results)."
                % (torch.__version__, torch.version.cuda))
            return 2
        device = torch.device("cuda", a.device)
        torch.cuda.set_device(device)
        rounds, warmup = a.rounds or 20, 3 if a.warmup is None else a.warmup
        out = a.out or RESULTS
    ebmc = find_ebmc(a.ebmc)
    if not ebmc:
        log("bench/run.py: the ebmc binary was not found (build it: cmake -S . -B build && "
            "cmake --build build -j; or pass --ebmc PATH / set EBMC)")
        return 2
    if a.cpu:
        # the same threads on both sides (ebmc's OpenMP team, PyTorch's intra-op threads);
        # OMP_NUM_THREADS set outside wins. A functional run (--quick): one thread (thread teams
        # only slow tiny ops down, badly so on a shared machine); the benchmark: every core.
        os.environ.setdefault("OMP_NUM_THREADS", "1" if a.quick else str(len(os.sched_getaffinity(0))))
    PT.setup_torch(device, threads=int(os.environ["OMP_NUM_THREADS"]) if a.cpu else None)
    machine = cpu_machine(ebmc) if a.cpu else None
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ebmc-bench-")
    backend = ["--backend", "cpu" if a.cpu else "cuda"]
    if not a.cpu:
        backend += ["--device", str(a.device)]
    common = backend + (["--quick"] if a.quick else []) + (["--impls", a.ebmc_impls] if a.ebmc_impls else [])
    wdir, gdir = os.path.join(work, "weights"), os.path.join(work, "gates")
    server = None
    try:
        t_start = time.time()
        subprocess.run([ebmc, "bench", "--export-weights", wdir] + common, check=True)
        weights = PT.Weights(wdir)
        man = weights.manifest
        ebmc_impls = man["impls"]
        if a.torch_variants:
            variants = a.torch_variants.split(",")
            for v in variants:
                if v not in PT.VARIANTS:
                    log(f"bench/run.py: unknown PyTorch variant '{v}' (one of {', '.join(PT.VARIANTS)})")
                    return 2
        else:
            variants = list(PT.DEFAULT_CPU + PT.DEFAULT_GPU if a.cpu else PT.DEFAULT_GPU)
        skipped = []
        runnable = []
        for v in variants:
            why = PT.variant_unavailable(v, device)
            if why:
                skipped.append(dict(impl=v, case="*", reason=why))
                log(f"bench/run.py: {v}: {why}")
            else:
                runnable.append(v)
        # the strict-fp32 eager reference takes part in the gates even when it is not timed
        gate_variants = runnable + ([] if "torch-eager-fp32" in runnable else ["torch-eager-fp32"])

        server = EbmcServer([ebmc, "bench", "--serve", "--weights", wdir] + common)
        info = server.ask("info")
        smi_before = nvidia_smi() if device.type == "cuda" else None
        log(f"bench/run.py: ebmc on {info['gpu']} ({info['backend']}); PyTorch {torch.__version__} on {device}")
        tmm, tmm_n = PT.matmul_rates(device)

        # ---- gates
        log("bench/run.py: correctness gates")
        cases = [c for c in man["cases"] if case_selected(c["name"], a.cases)]
        if not cases:
            log(f"bench/run.py: --cases '{a.cases}' matches none of: " + ", ".join(c["name"] for c in man["cases"]))
            return 2
        server.ask(f"gate {gdir} {a.cases}" if a.cases else f"gate {gdir}")
        iterations = {}
        for c in cases:
            if c["kind"] != "iteration":
                continue
            iterations[c["name"]] = {}
            xb = NT.st_read(os.path.join(gdir, f"gate.iteration.{c['net']}.{ebmc_impls[0]['name']}.safetensors"))[0]["x"]
            for v in gate_variants:
                try:
                    iterations[c["name"]][v] = PT.Iteration(weights, c["net"], c["config"], v, device,
                                                            torch.from_numpy(xb.copy()))
                except PT.Skip as ex:
                    skipped.append(dict(impl=v, case=c["name"], reason=str(ex)))
        peer = Peer(weights, device)
        gates = run_gates(peer, man, gdir, gate_variants, ebmc_impls, device, iterations, cases)
        failed = [g for g in gates if not g["ok"]]
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        gpu = info["gpu"] if not a.cpu else "cpu"
        base = os.path.join(out, f"{slug(gpu)}-{stamp}")
        if failed:
            with open(base + ".gates-failed.json", "w") as f:
                json.dump(dict(gpu=gpu, command=sys.argv, gates=gates), f, indent=1)
            log("\nbench/run.py: CORRECTNESS GATE FAILED: ebmc and PyTorch disagree, so no timing is "
                "reported:")
            for g in failed:
                log(f"  {g['gate']} {g['net']}: {g['torch']} vs {g['ebmc']}: {g['value']:.3e} > tol "
                    f"{g['tol']:.1e} {g['note']}")
            log(f"(all gates: {base}.gates-failed.json)")
            return 3
        log(f"bench/run.py: {len(gates)} gate checks passed")
        if a.gates_only:
            with open(base + ".gates.json", "w") as f:
                json.dump(dict(gpu=gpu, command=sys.argv, versions=dict(ebmc=info["versions"], torch=PT.versions(device)),
                               gates=gates, skipped=skipped), f, indent=1)
            log(f"bench/run.py: --gates-only: wrote {base}.gates.json")
            return 0

        # ---- timed pairs: (case, impl); PyTorch samplers / iterations prepared (compiled, captured)
        pairs = []
        torch_units = {}
        for c in cases:
            for e in ebmc_impls:
                pairs.append((c["name"], e["name"]))
            for v in runnable:
                try:
                    if c["kind"] == "iteration":
                        if v not in iterations[c["name"]]:
                            raise PT.Skip("the training iteration is timed eager only")
                        obj = iterations[c["name"]][v]
                        obj.reset()
                        ctr = [1]

                        def unit(obj=obj, ctr=ctr):
                            ctr[0] += 1
                            return obj.run(ctr[0])
                        torch_units[(c["name"], v)] = unit
                    else:
                        kind = "x" if c["kind"] == "x-chain" else "z"
                        s0, t0 = starts(c, man, device)
                        smp = peer.sampler(c["net"], kind, v, c["batch"], c["steps"], s0, t0)
                        smp.set_start(s0, t0)
                        torch_units[(c["name"], v)] = smp.run
                    pairs.append((c["name"], v))
                except PT.Skip as ex:
                    skipped.append(dict(impl=v, case=c["name"], reason=str(ex)))
                except Exception as ex:
                    skipped.append(dict(impl=v, case=c["name"], reason=f"failed: {type(ex).__name__}: {str(ex)[:300]}"))
                    log(f"bench/run.py: {v} on {c['name']} failed to prepare: {ex}")
        times = {p: [] for p in pairs}
        events = {p: [] for p in pairs}
        log(f"bench/run.py: {len(pairs)} pairs, {warmup} warm-up units each, {rounds} rounds")
        for p in pairs:
            if p[1].startswith("ebmc"):
                if warmup:
                    server.ask(f"run {p[0]} {p[1]} {warmup}")
            else:
                for _ in range(warmup):
                    timed_torch(torch_units[p], device)
        for r in range(rounds):
            order = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
            for p in order:
                if p[1].startswith("ebmc"):
                    times[p].append(server.ask(f"run {p[0]} {p[1]} 1")["times_s"][0])
                else:
                    w, ev = timed_torch(torch_units[p], device)
                    times[p].append(w)
                    events[p].append(ev)
            log(f"  round {r + 1}/{rounds} done ({time.time() - t_start:.0f} s)")
        smi_after = nvidia_smi() if device.type == "cuda" else None

        # ---- results
        cmap = {c["name"]: c for c in man["cases"]}
        rate_of = {"fp32": info["matmul"].get("fp32"), "tf32": info["matmul"].get("tf32"),
                   "bf16": tmm.get("bf16")}
        rows = []
        for p in pairs:
            c, impl = cmap[p[0]], p[1]
            t = times[p]
            med = pct(t, 50)
            prec = next((e["precision"] for e in ebmc_impls if e["name"] == impl), None) or PT.VARIANTS[impl]["precision"]
            mm = rate_of.get(prec) or (rate_of["tf32"] if prec == "bf16" else None)
            rows.append(dict(case=p[0], impl=impl, median_s=med, p10_s=pct(t, 10), p90_s=pct(t, 90),
                             rate=c["units_per_unit"] / med, rate_unit=c["rate_unit"],
                             flop_fraction=(c["flop_per_unit"] / med / mm) if mm else None,
                             flop_per_unit=c["flop_per_unit"], flop_per_s=c["flop_per_unit"] / med,
                             precision=prec, times_s=t,
                             flags=None if impl.startswith("ebmc") else PT.variant_flags(impl),
                             event_times_s=events[p] if events[p] and events[p][0] is not None else None))
        by = {(r["case"], r["impl"]): r for r in rows}
        ratios = []
        for c in cases:
            for e in ebmc_impls:
                if (c["name"], e["name"]) not in by:
                    continue
                for v in runnable:
                    if (c["name"], v) in by:
                        ratios.append(dict(case=c["name"], ebmc=e["name"], torch=v,
                                           ratio=by[(c["name"], v)]["median_s"] / by[(c["name"], e["name"])]["median_s"]))
        result = dict(
            gpu=gpu, driver=(smi_before or [{}])[0].get("driver_version") if smi_before else None,
            versions=dict(ebmc=info["versions"], torch=PT.versions(device)),
            command=[sys.executable] + sys.argv, date=datetime.datetime.now().isoformat(timespec="seconds"),
            cpu=a.cpu, quick=a.quick, rounds=rounds, warmup=warmup,
            timing=("every (case, impl) pair once per round, order rotated by one per round; a unit "
                    "is bracketed by device synchronisations and timed by the host clock (ebmc in its "
                    "--serve process, PyTorch in this one); event_times_s: CUDA events of the "
                    "PyTorch units"),
            matmul=dict(ebmc=info["matmul"], ebmc_n=info.get("matmul_n"), torch=tmm, torch_n=tmm_n,
                        used={k: v for k, v in rate_of.items() if v}),
            nvidia_smi=dict(before=smi_before, after=smi_after),
            machine=dict(machine, loadavg_after=os.getloadavg()) if machine else None,
            fairness=["same weights (ebmc's export), batches, K, step sizes and noise scales on both sides",
                      "no host synchronisation inside a unit on either side, except the iteration's one "
                      "metrics copy on both sides",
                      "PyTorch: cudnn.benchmark=True; TF32 flags as PyTorch defaults them (cudnn on, matmul "
                      "off) in the tf32 class, all off in torch-eager-fp32",
                      "torch-compile: mode=reduce-overhead, parameters requires_grad_(False) while sampling; "
                      "autograd.grad outside the compiled energy (pytorch#133230)",
                      "scope: ebmc graph = one CUDA graph per K-step chain; torch-cudagraph = one captured "
                      "K-step loop; torch-compile = compiled energy and update with eager glue",
                      "ebmc's iteration uses deterministic cuDNN algorithms (as ebmc train); its chains "
                      "may use any (as cudnn.benchmark)"],
            gates=gates, rows=rows, ratios=ratios, skipped=skipped,
            manifest=dict(cases=man["cases"], nets=man["nets"]))
        md = markdown(result, cases)
        print(md)
        with open(base + ".json", "w") as f:
            json.dump(result, f, indent=1)
        with open(base + ".md", "w") as f:
            f.write(md)
        log(f"bench/run.py: wrote {base}.json and {base}.md ({time.time() - t_start:.0f} s)")
        return 0
    finally:
        if server:
            server.close()
        if a.keep:
            log(f"bench/run.py: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def fmt_t(s):
    return f"{s * 1e3:.3f} ms" if s < 10 else f"{s:.2f} s"


def markdown(res, cases):
    L = []
    kind = ('CPU functional run, quick sizes' if res['quick'] else 'the CPU plan') if res['cpu'] else \
        ('quick sizes' if res['quick'] else 'full sizes')
    L.append(f"Benchmark: ebmc vs PyTorch on **{res['gpu']}** ({res['date']}; {kind}; "
             f"{res['rounds']} interleaved rounds, median [p10, p90]).")
    tv = res["versions"]["torch"]
    L.append("")
    L.append(f"PyTorch {tv['torch']}, CUDA {tv['cuda']}, cuDNN {tv['cudnn']}; driver {res['driver']}. "
             f"Command: `{' '.join(res['command'][1:])}`")
    m = res.get("machine")
    if m:
        L.append("")
        L.append(f"CPU: {m['cpu_model']}, {m['cores']} cores; {m['threads']} threads per side "
                 f"(PyTorch {m['torch_threads']}); ebmc BLAS: {m['ebmc_blas']}; load average "
                 f"before {m['loadavg_before'][0]:.2f}, after {m['loadavg_after'][0]:.2f}; env {m['env']}.")
    L.append("")
    L.append("| case | impl | median | p10 | p90 | rate | FLOP fraction |")
    L.append("|---|---|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        ff = f"{r['flop_fraction']:.3f}" if r["flop_fraction"] is not None else "-"
        L.append(f"| {r['case']} | {r['impl']} | {fmt_t(r['median_s'])} | {fmt_t(r['p10_s'])} | "
                 f"{fmt_t(r['p90_s'])} | {r['rate']:.4g} {r['rate_unit']} | {ff} |")
    tvs = sorted({x["torch"] for x in res["ratios"]})
    if tvs:
        L.append("")
        L.append("Throughput ratio ebmc / PyTorch (> 1: ebmc faster):")
        L.append("")
        L.append("| case | ebmc impl | " + " | ".join(tvs) + " |")
        L.append("|---|---|" + "---:|" * len(tvs))
        keys = []
        for x in res["ratios"]:
            if (x["case"], x["ebmc"]) not in keys:
                keys.append((x["case"], x["ebmc"]))
        for k in keys:
            vals = {x["torch"]: x["ratio"] for x in res["ratios"] if (x["case"], x["ebmc"]) == k}
            L.append(f"| {k[0]} | {k[1]} | " + " | ".join(f"{vals[t]:.2f}x" if t in vals else "-" for t in tvs) + " |")
    if res["skipped"]:
        L.append("")
        L.append("Not run: " + "; ".join(f"{s['impl']} ({s['case']}): {s['reason']}" for s in res["skipped"]))
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
