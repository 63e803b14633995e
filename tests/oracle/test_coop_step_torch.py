#!/usr/bin/python3
"""PyTorch parity of ONE iteration of the cooperative-learning recipes (src/host/recipes/coop.c,
coopvaebm.c, coopnets.c) against the authors' training loops, re-implemented here in float64 with
the same random numbers:
  coopvaebm  jianwen-xie/CoopVAEBM model/model.py train() (specs/teaching.md 2(a)):
             z ~ N(0,I) (N chains); x0 = G(z); x~ = K steps x <- x - (d^2/2)(x/sr^2 - grad f) + c xi;
             E step on mean_N f(x~) - mean_B f(x); then ONE Adam step of the VAE (G and I) on
             mean_N [ |G(mu + eps e^s) - x~|^2 + w KL(N(mu, e^{2s}) || N(0,I)) ], (mu, s) = I(x~)
  coopnets   jianwen-xie/CoopNets model/model.py train() (specs/teaching.md 3.1): the same chains;
             z <- K_g steps z - (dg^2/2)(z + grad_z mean_N |x~ - G(z)|^2/(2 sg^2)) + dg xi;
             E step as above; G step on mean_N |x~ - G(z)|^2 / (2 sg^2)
Usage: /usr/bin/python3 tests/oracle/test_coop_step_torch.py /path/to/coop_step_dump RECIPE

`coop_step_dump RECIPE OUT` builds a tiny trainer (coopvaebm / coopnets_cifar nets of width 4,
nz 8, batch 4, 6 chains, 3 Langevin steps with noise on, coopnets 2 latent steps; the recipe's
own step sizes, sigma_ref and learning rates; CPU backend), saves the initial weights, runs one
iteration and saves the weights after it and the iteration's tensors (step.safetensors). Here the
modules of test_nets_torch.py (TF 'SAME' convolutions, TF BatchNorm) load those weights
(strict), in train mode, and the loop above runs with torch.optim.Adam, with the Philox normals of
test_dualmcmc_step_torch.py: the prior z (stream 4, step = iteration), eps (stream 5, step =
iteration), the x-chains (stream 1, steps 0..K-1), the latent chains (stream 3, steps 0..K_g-1).

Checks:
  exact   the Philox known answers; z and eps against the dump; the chains' step counters.
  rows    relative L2 ||C - ref64|| / ||ref64|| of x0, every chain state's energy trace, x~, E's
          outputs, I(x~), z_enc, G's update pass, the metrics (losses), and every buffer of the
          nets after the iteration (BatchNorm running statistics), against
              bound = K32 * e32 + FLOOR
          e32 is the same row's error of the same reference run in float32 (torch): the size of a
          correct float32 computation's rounding error for this row, which carries its
          conditioning (BatchNorm at 6 samples, the chain's amplification). Two float32
          implementations that sum in different orders have errors of the same order (rounding
          errors accumulate as random walks, ~u sqrt(n) kappa); K32 = 10 allows one to be ten
          times the other. FLOOR = 8 eps32 (~9.5e-7): the final roundings of each element.
  updates every parameter tensor's update p1 - p0 (what Adam's step carries; p1 alone is dominated
          by p0), relative L2 against
              bound = K32 * e32 + e_adam + e_store + FLOOR
          Adam's first step is -lr g/(|g| + eps), steep where |g| is near eps = 1e-8, which is
          where these nets' initial gradients lie (weights N(0, 0.005^2)); a sign flip moves an
          element by 2 lr. With dg = K32 max(|g32 - g64|, rms over the tensor of |g32 - g64|)
          (an element's gradient uncertainty, from the float32 run: an element's own float32
          error can be 0 by chance, its tensor's typical error cannot), an element may move by
          the largest change of the step over [g64 - dg, g64 + dg] (exact: the step is monotone
          in g); e_adam is the L2 norm of those moves relative to ||p1 - p0||. e_store: half an
          ulp of each p1 (its float32 storage), relative likewise. Parameters whose gradient is
          zero analytically (conv biases feeding BatchNorm) fall under the same rule.
Prints one row per comparison; the last line is "N passed, M failed"; exit status 0 iff M == 0,
77 (skip) without PyTorch/numpy, 2 on a usage error."""
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("oracle_coop_step: SKIPPED \u2014 PyTorch/numpy not installed "
          "(Debian: apt-get install python3-torch python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_nets_torch as NT  # noqa: E402  (st_read, build, DEFAULTS, rel_l2)
from test_dualmcmc_step_torch import philox_normals, philox4x32_10, PHILOX_KAT  # noqa: E402

STREAM_X, STREAM_Z, STREAM_PRIOR, STREAM_EPS = 1, 3, 4, 5
METRICS = ["edata", "erev", "egen", "elast", "recon", "kl"]
EPS32 = 2.0 ** -23
K32 = 10.0
FLOOR = 8 * EPS32
ADAM_EPS = 1e-8

results = []


def row(group, qty, val, ok, note=""):
    results.append(ok)
    v = f"{val:.3e}" if isinstance(val, float) else str(val)
    print(f"{group:<10} {qty:<44} {v:>11}  {'ok' if ok else 'FAIL'}{('  ' + note) if note else ''}",
          flush=True)

# ------------------------------------------------------------------ the reference iteration


def nets(files, arch, c, dtype):
    out = {}
    for role in ("E", "G", "I"):
        if role + "0" not in files:
            continue
        m = NT.build(arch, role, c)
        m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in files[role + "0"].items()}, strict=True)
        out[role] = m.to(dtype).train()
    return out


def langevin_x(E, x, K, a, b, cnoise, seed, dtype):
    """x <- x - a grad U - b x + c xi, U = -sum f; returns x~ and sum f at each evaluation"""
    trace = []
    n = x.shape[0]
    for k in range(K):
        x = x.detach().requires_grad_(True)
        f = E(x)[0].sum()
        (g,) = torch.autograd.grad(f, x)
        trace.append(f.detach())
        xi = torch.from_numpy(philox_normals(seed, STREAM_X, k, n, x[0].numel())).to(dtype).view_as(x)
        x = (x - a * (-g) - b * x + cnoise * xi).detach()
    return x, torch.stack(trace)


def langevin_z(G, z, target, K, dg, sg, seed, dtype):
    n = z.shape[0]
    for k in range(K):
        z = z.detach().requires_grad_(True)
        loss = ((target - G(z)[0]) ** 2).sum() / (2 * sg * sg * n)   # mean over the batch axis
        (g,) = torch.autograd.grad(loss, z)
        xi = torch.from_numpy(philox_normals(seed, STREAM_Z, k, n, z[0].numel())).to(dtype).view_as(z)
        z = (z - 0.5 * dg * dg * (z + g) + dg * xi).detach()
    return z


def adam_step(params, lr, b1, b2):
    opt = torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=ADAM_EPS)
    opt.step()


def reference(files, cfg, recipe, dtype):
    """one iteration; returns the named tensors, the nets after it and every parameter's gradient"""
    arch = cfg["model.arch"]
    c = dict(NT.DEFAULTS[arch])
    for k in ("nz", "ngf", "ndf", "nif"):
        if int(cfg["model." + k]):
            c[k] = int(cfg["model." + k])
    m = nets(files, arch, c, dtype)
    E, G = m["E"], m["G"]
    st = files["step"]
    seed, N, B = int(cfg["run.seed"]), int(cfg["train.chains"]), int(cfg["train.batch_size"])
    K, d, sr, cn = int(cfg["langevin.steps"]), float(cfg["langevin.step_size"]), float(cfg["langevin.sigma_ref"]), \
        float(cfg["langevin.noise"])
    T = lambda a: torch.from_numpy(np.array(a)).to(dtype)  # noqa: E731
    out = {}
    z = T(philox_normals(seed, STREAM_PRIOR, 1, N, c["nz"])).view(N, c["nz"], 1, 1)
    out["z"] = z
    x = T(st["x"])
    x0 = G(z)[0].detach()
    out["x0"] = x0
    a = 0.5 * d * d
    xt, trace = langevin_x(E, x0, K, a, a / (sr * sr), cn, seed, dtype)
    out["x_tilde"], out["trace"] = xt, trace
    zu = z
    if recipe == "coopnets" and int(cfg["train.gen_steps"]) > 0:
        zu = langevin_z(G, z, xt, int(cfg["train.gen_steps"]), float(cfg["train.gen_step_size"]),
                        float(cfg["train.sigma_g"]), seed, dtype)
        out["z_used"] = zu
    # E's update: mean_N f(x~) - mean_B f(x)
    f_xt, f_x = E(xt)[0].view(-1), E(x)[0].view(-1)
    out["f_xt"], out["f_x"] = f_xt.detach(), f_x.detach()
    (f_xt.mean() - f_x.mean()).backward()
    grads = {"E." + k: p.grad.detach().clone() for k, p in E.named_parameters()}
    lr_e, lr_g = float(cfg["train.lr_e"]), float(cfg["train.lr_g"])
    b1e, b1g, b2 = float(cfg["train.beta1_e"]), float(cfg["train.beta1_g"]), float(cfg["train.beta2"])
    adam_step(list(E.parameters()), lr_e, b1e, b2)
    met = {"edata": f_x.sum(), "erev": f_xt.sum(), "egen": trace[0], "elast": trace[-1]}
    if recipe == "coopvaebm":
        I = m["I"]
        mu, s = I(xt)
        eps = T(philox_normals(seed, STREAM_EPS, 1, N, c["nz"])).view_as(mu)
        k = 1.0 if arch == "coopvaebm" else 0.5
        zenc = mu + eps * torch.exp(k * s)
        rec = G(zenc.view(N, c["nz"], 1, 1))[0]
        sse = ((rec - xt) ** 2).flatten(1).sum(1)
        kl = 0.5 * (mu ** 2 + torch.exp(2 * k * s) - 1 - 2 * k * s).flatten(1).sum(1)
        (sse.mean() + float(cfg["train.kl_weight"]) * kl.mean()).backward()
        out.update(mu=mu.detach(), s=s.detach(), eps=eps, z_enc=zenc.detach(), g_zenc=rec.detach())
        met.update(recon=sse.sum(), kl=kl.sum())
        for net, nm in ((G, "G"), (I, "I")):
            grads.update({nm + "." + kk: p.grad.detach().clone() for kk, p in net.named_parameters()})
        adam_step(list(G.parameters()) + list(I.parameters()), lr_g, b1g, b2)
    else:
        sg = float(cfg["train.sigma_g"])
        gf = G(zu)[0]
        sse = ((xt - gf) ** 2).flatten(1).sum(1)
        (sse.mean() / (2 * sg * sg)).backward()
        out["g_fit"] = gf.detach()
        met.update(recon=sse.sum(), kl=torch.zeros((), dtype=dtype))
        grads.update({"G." + kk: p.grad.detach().clone() for kk, p in G.named_parameters()})
        adam_step(list(G.parameters()), lr_g, b1g, b2)
    out["metrics"] = torch.stack([met[k].detach().to(dtype) for k in METRICS])
    return out, m, grads

# ------------------------------------------------------------------ checks


def adam_first(g, lr):
    return -lr * g / (np.abs(g) + ADAM_EPS)


def check_rows(files, r64, r32):
    st = files["step"]
    for name in sorted(r64):
        if name in ("z", "eps"):
            continue
        ours = st[name]
        e, e32 = NT.rel_l2(ours, r64[name].numpy()), NT.rel_l2(r32[name].numpy(), r64[name].numpy())
        bound = K32 * e32 + FLOOR
        row("step", name, e, e <= bound, f"bound {bound:.2e} (torch f32 {e32:.2e}), headroom {bound / max(e, 1e-300):.1f}")


def check_nets(files, n64, n32, g64, g32, cfg):
    lrs = {"E": float(cfg["train.lr_e"]), "G": float(cfg["train.lr_g"]), "I": float(cfg["train.lr_g"])}
    for role, m64 in n64.items():
        ours1, ours0 = files[role + "1"], files[role + "0"]
        sd64, sd32 = m64.state_dict(), n32[role].state_dict()
        params = dict(m64.named_parameters())
        worst, worst_name = 0.0, ""
        for name, t in sd64.items():
            if name not in ours1:
                row("nets", f"{role}1 {name}", "missing", False)
                continue
            if t.dtype == torch.int64:
                ok = int(np.array(ours1[name])) == int(t)
                row("nets", f"{role}1 {name}", int(np.array(ours1[name])), ok, f"torch {int(t)}")
                continue
            if name not in params:  # a buffer: a row like the step's
                e, e32 = NT.rel_l2(ours1[name], t.numpy()), NT.rel_l2(sd32[name].numpy(), t.numpy())
                bound = K32 * e32 + FLOOR
                row("nets", f"{role}1 {name}", e, e <= bound, f"bound {bound:.2e}")
                continue
            p0 = np.array(ours0[name], dtype=np.float64)
            d_c = np.array(ours1[name], dtype=np.float64) - p0
            d64 = t.numpy() - p0
            d32 = sd32[name].numpy().astype(np.float64) - p0
            g = g64[f"{role}.{name}"].numpy()
            err32 = np.abs(g32[f"{role}.{name}"].numpy().astype(np.float64) - g)
            dg = K32 * np.maximum(err32, np.sqrt(np.mean(err32 ** 2)))
            lr = lrs[role]
            s0 = adam_first(g, lr)
            allowed = np.maximum(np.abs(adam_first(g - dg, lr) - s0), np.abs(adam_first(g + dg, lr) - s0))
            ulp = np.spacing(np.abs(np.array(ours1[name], dtype=np.float32))).astype(np.float64)
            n64 = max(np.linalg.norm(d64), 1e-300)
            e_adam, e_store = np.linalg.norm(allowed) / n64, np.linalg.norm(0.5 * ulp) / n64
            e, e32 = NT.rel_l2(d_c, d64), NT.rel_l2(d32, d64)
            bound = K32 * e32 + e_adam + e_store + FLOOR
            ok = e <= bound
            worst = max(worst, e / bound)
            if not ok or os.environ.get("EBMC_ORACLE_VERBOSE"):
                row("update", f"{role} {name}", e, ok,
                    f"bound {bound:.2e} (torch f32 {e32:.2e}, adam {e_adam:.2e}, store {e_store:.2e})")
            if e / bound >= worst:
                worst_name = f"{name}: {e:.2e} of bound {bound:.2e}"
        row("update", f"{role}: every update p1 - p0, worst error/bound", worst, worst <= 1, worst_name)


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("coopvaebm", "coopnets"):
        print(__doc__)
        return 2
    dump, recipe = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    t0 = time.time()
    for ctr, key, want in PHILOX_KAT:
        got = tuple(int(v) for v in philox4x32_10(*ctr, *key))
        row("philox", f"known answer {ctr[0]:#x}", "match" if got == want else "differ", got == want)
    with tempfile.TemporaryDirectory(prefix="ebmc_coop_") as tmp:
        r = subprocess.run([dump, recipe, tmp], capture_output=True, text=True)
        if r.returncode:
            print(r.stdout + r.stderr)
            row("dump", "coop_step_dump", r.returncode, False)
            return 1
        print(r.stdout.strip())
        files = {}
        for f in os.listdir(tmp):
            files[f.split(".")[0]], meta = NT.st_read(os.path.join(tmp, f))
            if f == "step.safetensors":
                cfg = json.loads(meta["config"])
                epoch = int(meta["epoch"])
    row("config", "loader epoch of the batch", epoch, epoch == 0)
    st = files["step"]
    seed, N = int(cfg["run.seed"]), int(cfg["train.chains"])
    nz = st["z"].shape[1]
    ok = np.array_equal(st["z"].reshape(N, nz), philox_normals(seed, STREAM_PRIOR, 1, N, nz))
    row("exact", "z = Philox stream 4, step 1", "equal" if ok else "differ", ok)
    if recipe == "coopvaebm":
        ok = np.array_equal(st["eps"].reshape(N, nz), philox_normals(seed, STREAM_EPS, 1, N, nz))
        row("exact", "eps = Philox stream 5, step 1", "equal" if ok else "differ", ok)
    K, Kg = int(cfg["langevin.steps"]), int(cfg["train.gen_steps"]) if recipe == "coopnets" else 0
    steps = [int(v) for v in st["steps"]]
    row("exact", "chain step counters (x, z)", str(steps), steps == [K, Kg], f"expected {[K, Kg]}")
    r64, n64, g64 = reference(files, cfg, recipe, torch.float64)
    r32, n32, g32 = reference(files, cfg, recipe, torch.float32)
    check_rows(files, r64, r32)
    check_nets(files, n64, n32, g64, g32, cfg)
    passed = sum(results)
    print(f"# {recipe}: torch {torch.__version__}, {time.time() - t0:.1f} s")
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
