#!/usr/bin/python3
"""The derivation of bench/run.py's gate bounds at the headline sizes, measured on the CPU (issue 22):
for each gated quantity, the derived bound (gate_bounds.bound: FACTOR x the float64 move under the
precision's emulated rounding) for fp32 and TF32, beside the deviation from float64 of correct
implementations (ebmc's CPU backend in fp32, PyTorch in fp32, an independent TF32 emulation) and of
deliberately wrong ones. Prints a Markdown table (and JSON with --json FILE).

    /usr/bin/python3 bench/gate_table.py build/tests/tools/nn_dump [--quick] [--json FILE]

Nets (ebmc's initial weights, written by nn_dump; ebmc's fp32 output and input gradient of
sum_i r_i out_i from the same run):
  dualmcmc-cifar10 E at full width (512 channels), batch 100     energy, input gradient
  shortrun nf64 E, batch 64 (x-chain/shortrun-nf64/b64/k60)       energy, input gradient,
       16 chains x 60 steps of its update (x <- x + grad f + 0.01 xi, fixed noise)
--quick: widths 16 / nf 8 and batch 8, K 10 (a check of the script).
Wrong implementations: the first weight tensor x (1 + 0.01 N(0,1)) (energies, gradients), the
gradient's sign; the trajectory with the update's sign flipped, its step x 1.1 and x 2, its noise
x 1.1 and x 2 (all in float64).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gate_bounds as GB  # noqa: E402
import peer_torch as PT  # noqa: E402
NT = PT.NT


def load(nn_dump, arch, kv, tmp, dump=None):
    """ebmc's dump (nn_dump ARCH E DIR ...), made here or given (dump: a folder it wrote)"""
    d = dump or os.path.join(tmp, arch)
    os.makedirs(d, exist_ok=True)
    t = time.time()
    if not dump:
        subprocess.run([nn_dump, arch, "E", d] + [f"{k}={v}" for k, v in kv.items()], check=True)
    model, _ = NT.st_read(os.path.join(d, "model.safetensors"))
    io, _ = NT.st_read(os.path.join(d, "io.safetensors"))
    c = dict(NT.DEFAULTS[arch])
    c.update({k: v for k, v in kv.items() if k in c})
    sd = {k: NT.to_torch(v) for k, v in model.items()}
    print(f"  ebmc (CPU, fp32) {arch} {kv}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    return c, sd, io


def module(arch, c, sd, dtype, jitter_first=None):
    """the net; jitter_first: every element of the first weight tensor x (1 + jitter N(0,1)) (a
    wrong weight that spectral norm does not normalise away, unlike a uniform scale)"""
    m = NT.build(arch, "E", c)
    s = dict(sd)
    if jitter_first:
        k = sorted(k for k in s if s[k].is_floating_point() and s[k].dim() >= 2)[0]
        g = torch.Generator().manual_seed(3)
        s[k] = s[k] * (1 + jitter_first * torch.randn(s[k].shape, generator=g))
    m.load_state_dict(s, strict=True)
    for p in m.parameters():
        p.requires_grad_(False)   # input gradients only (the emulation skips weight gradients)
    return m.to(dtype).train()


def out_grad(m, x, r, dtype):
    """(out, d(sum r out)/dx) of module m, training mode as nn_dump (spectral norm advances)"""
    xs = x.to(dtype).clone().requires_grad_(True)
    out = m(xs)[0]
    (g,) = torch.autograd.grad((r.to(dtype).reshape(out.shape) * out).sum(), xs)
    return out.detach().double().numpy(), g.double().numpy()


def table_rows(nn_dump, quick, tmp, trials, chains, progress, only=None, dump=None, rows_of=None):
    rows = []
    # ---- energies and input gradients
    nets = [("shortrun", {"ndf": 8 if quick else 64, "batch": 8 if quick else 64}),
            ("dualmcmc_cifar10", {"ndf": 16 if quick else 512, "batch": 8 if quick else 100})]
    for arch, kv in nets:
        if only and arch != only:
            continue
        nt = trials.get(arch, GB.TRIALS)
        c, sd, io = load(nn_dump, arch, kv, tmp, dump)
        if rows_of:
            # the first rows of ebmc's batch: E has no coupling across the batch (spectral norm's
            # power iteration does not depend on it), so they are the batch-rows_of computation
            io = {k: (v[:rows_of] if k in ("x", "r0", "out0", "dx") else v) for k, v in io.items()}
        x, r = torch.from_numpy(io["x"]), torch.from_numpy(io["r0"])
        name = f"{arch} ndf {kv['ndf']} batch {kv['batch']}" + (f", first {rows_of} rows" if rows_of else "")
        t = time.time()

        def f64():
            return out_grad(module(arch, c, sd, torch.float64), x, r, torch.float64)
        ref = f64()
        t32 = out_grad(module(arch, c, sd, torch.float32), x, r, torch.float32)
        b32, mv32 = GB.bound(f64, ref, "fp32", trials=nt, real=lambda: t32)   # as run.py: PyTorch's fp32 a trial
        btf, mvtf = GB.bound(f64, ref, "tf32", trials=nt)   # no TF32 on the CPU: emulated trials only
        print(f"  bounds {name}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        with GB.emulate("tf32", 3, seed=99):     # an independent TF32 draw (not among the trials)
            ttf = f64()
        bad_w = out_grad(module(arch, c, sd, torch.float64, 0.01), x, r, torch.float64)
        for i, q in enumerate(("energy", "input gradient")):
            ours = io["out0"] if i == 0 else io["dx"]
            rows.append(dict(net=name, q=q, b32=b32[i], btf=btf[i],
                             moves32=[m[i] for m in mv32], movestf=[m[i] for m in mvtf],
                             ebmc=GB.rel_l2(ours.reshape(ref[i].shape), ref[i]),
                             torch32=GB.rel_l2(t32[i], ref[i]), tf32emu=GB.rel_l2(ttf[i], ref[i]),
                             wrong={"first weight x (1 + 0.01 N(0,1))": GB.rel_l2(bad_w[i], ref[i]),
                                    **({"gradient sign": GB.rel_l2(-ref[1], ref[1])} if i == 1 else {})}))
            progress(rows[-1])
        if arch != "shortrun":
            continue
        # ---- trajectories of the short-run update (x <- x + grad f + 0.01 xi)
        B, K = chains if not quick else 4, 10 if quick else 60
        case = {"a": 1.0, "b": 0.0, "c": 0.01, "scale": -1.0}
        g = torch.Generator().manual_seed(5)
        xi = torch.randn((K, B) + tuple(x.shape[1:]), generator=g, dtype=torch.float64)
        start = x[:B].double()

        def traj(dtype, A=None, cc=None):
            m = module(arch, c, sd, dtype)
            cs = dict(case)
            if cc is not None:
                cs["c"] = cc
            s = PT.Sampler(m, "x", cs, "torch-eager-fp32", B, K, torch.device("cpu"),
                           noise=lambda k: xi[k].to(dtype))
            if A is not None:
                s.A = A
            s.set_start(start.to(dtype))
            return (s.run().detach().double().numpy(),)
        t = time.time()
        tref = traj(torch.float64)
        tt32 = traj(torch.float32)
        tb32, tmv32 = GB.bound(lambda: traj(torch.float64), tref, "fp32", trials=nt, real=lambda: tt32)
        tbtf, tmvtf = GB.bound(lambda: traj(torch.float64), tref, "tf32", trials=nt)
        print(f"  trajectory bounds: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        with GB.emulate("tf32", 3, seed=99):
            ttf = traj(torch.float64)
        A0 = case["a"] * case["scale"]
        rows.append(dict(net=f"shortrun ndf {kv['ndf']}, {B} chains", q=f"trajectory, K={K}",
                         b32=tb32[0], btf=tbtf[0], moves32=[m[0] for m in tmv32],
                         movestf=[m[0] for m in tmvtf], ebmc=None,
                         torch32=GB.rel_l2(tt32[0], tref[0]), tf32emu=GB.rel_l2(ttf[0], tref[0]),
                         wrong={"sign (ascent)": GB.rel_l2(traj(torch.float64, A=-A0)[0], tref[0]),
                                "step x 1.1": GB.rel_l2(traj(torch.float64, A=1.1 * A0)[0], tref[0]),
                                "step x 2": GB.rel_l2(traj(torch.float64, A=2 * A0)[0], tref[0]),
                                "noise x 1.1": GB.rel_l2(traj(torch.float64, cc=0.011)[0], tref[0]),
                                "noise x 2": GB.rel_l2(traj(torch.float64, cc=0.02)[0], tref[0])}))
        progress(rows[-1])
    return rows


def markdown(rows, cpu):
    L = [f"Derived gate bounds (bench/gate_bounds.py: {GB.FACTOR} x the largest float64 move in "
         f"{GB.TRIALS} trials of emulated rounding) on {cpu}; relative L2 against float64.", "",
         "| net | quantity | bound fp32 | bound TF32 | ebmc CPU fp32 | PyTorch fp32 | TF32-emulated (independent draw) | "
         "wrong implementation |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        e = "-" if r["ebmc"] is None else f"{r['ebmc']:.2e}"
        w = "; ".join(f"{k}: {v:.2e} ({v / r['btf']:.3g}x TF32 bound, {v / r['b32']:.3g}x fp32)" for k, v in r["wrong"].items())
        L.append(f"| {r['net']} | {r['q']} ({len(r['moves32'])} trials) | {r['b32']:.2e} | {r['btf']:.2e} | {e} | {r['torch32']:.2e} | "
                 f"{r['tf32emu']:.2e} | {w} |")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("nn_dump")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--trials-dual", type=int, default=GB.TRIALS, help="trials for the full-width Dual-MCMC E "
                    "(each an emulated float64 pass at batch 100: ~10 min on a loaded 2-core CPU)")
    ap.add_argument("--chains", type=int, default=16, help="trajectory chains (the gate's 16)")
    ap.add_argument("--trials", type=int, default=GB.TRIALS, help="trials for the short-run net")
    ap.add_argument("--only", choices=["shortrun", "dualmcmc_cifar10"], help="one of the two nets")
    ap.add_argument("--dump", help="with --only: the folder nn_dump wrote for that net (not rerun)")
    ap.add_argument("--rows", type=int, help="with --dump: evaluate its first ROWS examples only (CPU time)")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    cpu = "?"
    for line in subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    with tempfile.TemporaryDirectory(prefix="ebmc_gate_table_") as tmp:
        def progress(r):
            print("ROW " + json.dumps(r), file=sys.stderr, flush=True)
        rows = table_rows(a.nn_dump, a.quick, tmp, {"dualmcmc_cifar10": a.trials_dual, "shortrun": a.trials},
                          a.chains, progress, a.only, a.dump, a.rows)
    print(markdown(rows, cpu))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(cpu=cpu, factor=GB.FACTOR, trials=GB.TRIALS, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
