#!/usr/bin/python3
"""PyTorch parity of ebmc's whole networks (src/host/models.c) against modules written from
the architecture specification (they live in python/ebmc_torch.py, the file users load ebmc runs
into PyTorch with, so what is checked here is what they get) (specs/teaching.md 1(e) Dual-MCMC, 2(b) CoopVAEBM, 3.1 CoopNets
CIFAR port, 3.2 short-run) and, for toy2d / mnist (ebmc's own small nets), from models.c.

Usage: /usr/bin/python3 tests/oracle/test_nets_torch.py /path/to/nn_dump

For every case, `nn_dump ARCH ROLE DIR key=value...` writes DIR/model.safetensors (the initial
weights and buffers) and DIR/io.safetensors (x, out<i>, r<i>, dx, grad.<param>, after.<buffer>
after ONE training-mode forward and a full backward of sum_i r_i * out_i). Here:
  1. the torch module loads model.safetensors with load_state_dict(strict=True), so every tensor
     name must match in both directions (spectral norm: weight_orig / weight_u / weight_v;
     BatchNorm: weight, bias, running_mean, running_var, num_batches_tracked);
  2. module.train(); out = module(x)  -> compared with out<i>;
  3. loss = sum_i (r_i * out_i).sum(); backward -> x.grad vs dx, every parameter's .grad vs
     grad.<name> (for spectral norm the gradient w.r.t. weight_orig);
  4. the module's buffers after the forward (SN u, v; BN running stats, num_batches_tracked) vs
     after.<name>.
Criterion: rel_l2 = ||ours - torch||_2 / ||torch||_2 < 1e-5 (float32 on both sides, norms in
float64). Parameters whose gradient is zero analytically -- a per-channel bias whose channel
constant reaches the loss only through BatchNorm (directly, or through upsampling, 1x1 convs and
residual adds, as in every Dual-MCMC generator block) -- are compared by
max |ours - torch64| < 1e-6 * scale, scale = max |grad| of the same layer's weight, where torch64
is the same module run in float64: the float32 torch value of such a sum is itself rounding noise
(up to ~5e-6 * scale in the CelebA-64 generator), so it cannot serve as the reference. The float64
value must be < 1e-12 * scale, which confirms that the gradient is indeed zero.
Also checked per case: the tensor-name sets (model, grad.*, after.*) and the output shapes.

Prints one row per comparison (case, quantity, rel_l2, ok); the last line is "N passed, M failed";
exit status 0 iff M == 0, 77 (skip) without PyTorch/numpy, 2 on a usage error.
"""
import json
import math
import os
import struct
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
    print("oracle_nets: SKIPPED \u2014 PyTorch/numpy not installed "
          "(Debian: apt-get install python3-torch python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
# the modules (one place: python/ebmc_torch.py, what users load runs with), DEFAULTS, build,
# st_read, to_torch, LRELU
from ebmc_torch import *  # noqa: E402,F401,F403
from ebmc_torch import _NP  # noqa: E402,F401

TOL = 1e-5            # relative L2
ZERO_TOL = 1e-6       # analytically zero gradients: max abs error / scale
ZERO64 = 1e-12        # ... and the float64 torch value / scale must be below this

# ------------------------------------------------------------------ cases


def expected_shape(role, c, i):
    """Per-sample output shape (C,H,W) the recipes need: G makes images of the size E and I take,
    E one scalar, I two nz-vectors (a Linear's (F,) counts as (F,1,1), as in ebmc)."""
    if role == "G":
        return (c["img_c"], c["img_size"], c["img_size"])
    return (1, 1, 1) if role == "E" else (c["nz"], 1, 1)


def as_chw(shape):
    """per-sample shape padded to 3 dims with trailing 1s, as ebmc stores (N,F) as (N,F,1,1)"""
    return tuple(shape) + (1,) * (3 - len(shape))


CASES = []
for role, kv in (("E", dict(ndf=8)), ("G", dict(ngf=8, nz=8)), ("I", dict(nif=4, nz=8))):
    CASES.append(("dualmcmc_cifar10", role, kv))
for role, kv in (("E", dict(ndf=32)), ("G", dict(ngf=32, nz=8)), ("I", dict(nif=2, nz=8))):
    CASES.append(("dualmcmc_celeba64", role, kv))
CASES.append(("shortrun", "E", dict(ndf=4)))
for role in "EGI":
    CASES.append(("coopvaebm", role, dict(ndf=4, ngf=4, nif=4, nz=8, img_size=32)))
for role in "EG":
    CASES.append(("coopnets_cifar", role, dict(ndf=4, ngf=4, nz=8)))
for role in "EGI":
    CASES.append(("toy2d", role, dict(hidden=16)))
for role in "EGI":
    CASES.append(("mnist", role, dict(ndf=4, ngf=4, nif=4, nz=8)))
CASES.append(("igebm", "E", dict(ndf=4)))

BATCH = 4
SEED = int(os.environ.get("EBMC_ORACLE_SEED", "1"))   # nn_dump seed=: weights, x and r; override to vary

# ------------------------------------------------------------------ comparison

results = []   # ok flag of every row


def row(case, qty, val, ok, note=""):
    results.append(ok)
    v = f"{val:.3e}" if isinstance(val, float) else str(val)
    print(f"{case:<34} {qty:<42} {v:>11}  {'ok' if ok else 'FAIL'}{('  ' + note) if note else ''}",
          flush=True)


def rel_l2(ours, ref):
    a = np.asarray(ours, dtype=np.float64).ravel()
    b = np.asarray(ref, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return float("inf")
    if not np.all(np.isfinite(a)):
        return float("inf")
    nb = np.linalg.norm(b)
    d = np.linalg.norm(a - b)
    return float(d / nb) if nb > 0 else float(d)


def float64_run(arch, role, c, model, io):
    """The same module, weights and inputs in float64: out<i>, dx, grad.<param>, after.<buffer>.
    The reference for analytically zero gradients, and a diagnostic for failing rows."""
    m = build(arch, role, c)
    m.load_state_dict({k: to_torch(v) for k, v in model.items()}, strict=True)
    m = m.double().train()
    x = to_torch(io["x"]).double().requires_grad_(True)
    outs = m(x)
    loss = sum((to_torch(io[f"r{i}"]).double().reshape(o.shape) * o).sum()
               for i, o in enumerate(outs))
    loss.backward()
    r = {f"out{i}": o.detach().numpy() for i, o in enumerate(outs)}
    r["dx"] = x.grad.numpy()
    r.update({"grad." + k: p.grad.numpy() for k, p in m.named_parameters()})
    r.update({"after." + k: b.numpy() for k, b in m.named_buffers() if b.is_floating_point()})
    return r


def run_case(nn_dump, arch, role, kv, tmp):
    c = dict(DEFAULTS[arch])
    c.update(kv)
    case = f"{arch}.{role}" + "".join(f" {k}={v}" for k, v in kv.items()
                                      if k in ("img_size",))
    d = os.path.join(tmp, f"{arch}_{role}_{len(results)}")
    os.makedirs(d)
    args = [nn_dump, arch, role, d] + [f"{k}={v}" for k, v in kv.items()] + [
        f"batch={BATCH}", f"seed={SEED}"]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        row(case, "nn_dump", p.returncode, False, p.stdout.strip().replace("\n", " | "))
        return
    model, meta = st_read(os.path.join(d, "model.safetensors"))
    io, _ = st_read(os.path.join(d, "io.safetensors"))
    ok_meta = meta.get("arch") == arch and meta.get("role") == role
    row(case, "metadata arch/role", f"{meta.get('arch')}/{meta.get('role')}", ok_meta)

    f64 = {}

    def ref64(key):
        if not f64:
            f64.update(float64_run(arch, role, c, model, io))
        return f64[key]

    def check(qty, key, ours, ref):
        """rel_l2 row; a failing row also shows both float32 results against float64 torch"""
        e = rel_l2(ours, ref)
        note = ""
        if not e < TOL:
            r64 = ref64(key)
            note = f"vs float64 torch: ours {rel_l2(ours, r64):.1e}, torch f32 {rel_l2(ref, r64):.1e}"
        row(case, qty, e, e < TOL, note)

    torch.manual_seed(0)
    m = build(arch, role, c)
    # 1. names both ways, then strict loading
    sd_keys = set(m.state_dict().keys())
    missing, extra = sorted(sd_keys - set(model)), sorted(set(model) - sd_keys)
    row(case, "model.safetensors names == state_dict", len(missing) + len(extra),
        not missing and not extra,
        (f"missing in C: {missing} " if missing else "") + (f"extra in C: {extra}" if extra else ""))
    if missing or extra:
        return
    m.load_state_dict({k: to_torch(v) for k, v in model.items()}, strict=True)
    m.train()

    # 2. forward
    x = to_torch(io["x"]).clone().requires_grad_(True)
    outs = m(x)
    n_out = sum(1 for k in io if k.startswith("out"))
    row(case, "number of outputs", f"{n_out} vs {len(outs)}", n_out == len(outs))
    if n_out != len(outs):
        return
    loss = 0
    for i, o in enumerate(outs):
        ours = io[f"out{i}"]
        theirs = as_chw(o.shape[1:])
        shape_ok = ours.shape == (o.shape[0],) + theirs
        row(case, f"out{i} shape C {tuple(ours.shape[1:])} torch {theirs}",
            "same" if shape_ok else "differ", shape_ok)
        if not shape_ok:
            return
        want = expected_shape(role, c, i)
        row(case, f"out{i} shape vs recipe {want}", str(theirs), theirs == want,
            "" if theirs == want else "not the size the other nets of this config use")
        check(f"out{i}", f"out{i}", ours, o.detach().numpy())
        loss = loss + (to_torch(io[f"r{i}"]).reshape(o.shape) * o).sum()

    # 3. backward
    loss.backward()
    check("dx", "dx", io["dx"], x.grad.numpy())
    params = dict(m.named_parameters())
    gnames = {k[5:] for k in io if k.startswith("grad.")}
    miss, extra = sorted(set(params) - gnames), sorted(gnames - set(params))
    row(case, "grad.* names == parameters", len(miss) + len(extra), not miss and not extra,
        (f"missing: {miss} " if miss else "") + (f"extra: {extra}" if extra else ""))
    zero = getattr(m, "zero_grad_params", set())
    for name, prm in params.items():
        if name not in gnames:
            continue
        ours, ref = io["grad." + name], prm.grad.numpy()
        if name in zero:
            wname = name.rsplit(".", 1)[0] + ".weight"
            scale = float(np.abs(params[wname].grad.numpy()).max())
            ref = ref64("grad." + name)
            err = float(np.abs(ours.astype(np.float64) - ref).max()) / scale
            ref_zero = float(np.abs(ref).max()) / scale < ZERO64
            f32 = float(np.abs(prm.grad.numpy()).max()) / scale
            row(case, f"grad.{name} (zero: max|d|/scale)", err, err < ZERO_TOL and ref_zero,
                f"torch f32 noise {f32:.1e}" if ref_zero else
                "the float64 torch gradient is not ~0: the zero assumption is wrong")
        else:
            check(f"grad.{name}", "grad." + name, ours, ref)

    # 4. buffers after the forward
    buffers = dict(m.named_buffers())
    anames = {k[6:] for k in io if k.startswith("after.")}
    miss, extra = sorted(set(buffers) - anames), sorted(anames - set(buffers))
    row(case, "after.* names == buffers", len(miss) + len(extra), not miss and not extra,
        (f"missing: {miss} " if miss else "") + (f"extra: {extra}" if extra else ""))
    for name, b in buffers.items():
        if name not in anames:
            continue
        ours = io["after." + name]
        if b.dtype == torch.int64:
            ok = ours.shape == tuple(b.shape) and int(ours) == int(b)
            row(case, f"after.{name}", f"{int(ours)} vs {int(b)}", ok)
        else:
            check(f"after.{name}", "after." + name, ours, b.numpy())


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    nn_dump = sys.argv[1]
    if not os.access(nn_dump, os.X_OK):
        print(f"oracle_nets: {nn_dump} is not an executable")
        return 2
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    print(f"{'case':<34} {'quantity':<42} {'rel_l2':>11}  ok")
    with tempfile.TemporaryDirectory(prefix="ebmc_nets_") as tmp:
        for arch, role, kv in CASES:
            try:
                run_case(nn_dump, arch, role, kv, tmp)
            except Exception as ex:  # a crash in one case is a failure, not the end of the run
                row(f"{arch}.{role}", "exception", type(ex).__name__, False, str(ex)[:300])
    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    print(f"# torch {torch.__version__}, {len(CASES)} cases, {time.time() - t0:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
