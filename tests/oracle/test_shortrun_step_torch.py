#!/usr/bin/python3
"""PyTorch parity of ONE shortrun training iteration (src/host/recipes/shortrun.c) against the
authors' loop (enijkamp/short_run train_cifar10_minimal.py; specs/teaching.md 3.2), re-implemented
here in float64 with the same random numbers.

Usage: /usr/bin/python3 tests/oracle/test_shortrun_step_torch.py /path/to/sr_step_dump [--perturb]

`sr_step_dump OUT` builds a tiny shortrun trainer (the authors' net F at n_f = 4, batch 4, 3
chains, K = 3 steps of the code's size and noise, data noise 0.03, CPU backend), saves E0, runs
iteration 1 on one loader batch and saves E1 and step.safetensors. Here:
  1. Philox4x32-10 in numpy (from test_dualmcmc_step_torch.py, checked on Random123's known
     answers); streams: chain noise 1 (steps 0..K-1), uniform start 2 (step = iteration 1), data
     noise 6 (step = iteration 1). Uniforms are (x + 0.5) 2^-32 rounded to float.
  2. The reference iteration, ShortRunE of test_nets_torch.py loaded from E0 (strict), float64:
       x_p_d = x + sigma n                                      (sample_p_d's noise())
       x_k = U[lo, hi]; K times: x_k += step * grad f(x_k).sum() + eps n_k      (sample_q)
       L = f(x_p_d).mean() - f(x_q).mean(); (-L).backward()
  3. Rows:
     exact      Philox known answers; x_data == fl32(x + fl32(sigma n)) bit for bit (the same two
                float32 operations); the chain's step counter == K; the state_dict names.
     rel. L2    ||C - ref|| / ||ref|| against the float64 run for x_q, f(x_data), f(x_q), the
                chain's f trace, every parameter gradient. Bound = K_MCA e_mca + FLOOR, e_mca the
                largest deviation of N_MCA float64 runs under the float32 rounding model of
                test_dualmcmc_step_torch.py (Rounding: every accumulation of n terms in every
                Conv2d forward and backward gets u sqrt(n) sum|terms| U[-1,1], u = 2^-24; each
                Langevin update and the data noise a relative u), K_MCA = 2 for sampling a max
                of 6, FLOOR = 8 eps_f32 for the last roundings no model sees.
     Adam       per element, E1 - E0 against torch.optim.Adam's first step (float64) on C's own
                gradient (so an ill-conditioned step where |g| ~ eps does not depend on the
                gradient's rounding): |(p1 - p0) - step| <= ulp(p1) + 16 eps_f32 |step| (the
                storage rounding of p1 plus the float32 operations of the step).
--perturb also runs the self-test: the same check must FAIL on dumps with the Langevin step
1% off, the data noise 1% off and the learning rate 1% off; exit 0 iff the clean run passes and
every defect is detected. Exit 77 (skip) without PyTorch/numpy.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:
    print("oracle_shortrun_step: SKIPPED \u2014 PyTorch/numpy not installed "
          "(Debian: apt-get install python3-torch python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_nets_torch as NT  # noqa: E402
import test_dualmcmc_step_torch as DM  # noqa: E402  (philox, Rounding)

STREAM_X, STREAM_INIT, STREAM_DATA = 1, 2, 6
N_MCA, K_MCA = 6, 2.0
EPS32 = 2.0 ** -23
FLOOR = 8 * EPS32


from ebmc_torch import philox_uniforms  # noqa: E402  (python/ebmc_torch.py)


def run_dump(tool, out, extra=()):
    p = subprocess.run([tool, out] + list(extra), capture_output=True, text=True)
    if p.returncode:
        print(p.stdout + p.stderr)
        raise SystemExit(f"sr_step_dump failed ({p.returncode})")
    step, meta = NT.st_read(os.path.join(out, "step.safetensors"))
    e0, _ = NT.st_read(os.path.join(out, "E0.safetensors"))
    e1, _ = NT.st_read(os.path.join(out, "E1.safetensors"))
    return {"step": step, "E0": e0, "E1": e1, "cfg": json.loads(meta["config"])}


def make_net(cfg, e0):
    arch = cfg["model.arch"]
    c = dict(NT.DEFAULTS[arch])
    if cfg["model.ndf"]:
        c["ndf"] = cfg["model.ndf"]
    if cfg["model.hidden"]:
        c["hidden"] = cfg["model.hidden"]
    net = NT.build(arch, "E", c)
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in e0.items()}, strict=True)
    return net.double().train()


def reference(d, cfg, mca=None):
    """one iteration of the authors' loop in float64 (mca: a DM.Rounding or None)"""
    st = d["step"]
    net = make_net(cfg, d["E0"])
    if mca:
        mca.install(net)
    rel = (lambda t, n=1: mca.rel(t, n)) if mca else (lambda t, n=1: t)
    seed, K = cfg["run.seed"], cfg["langevin.steps"]
    x = torch.from_numpy(st["x"].astype(np.float64))
    B, M = x.shape[0], st["x_q"].shape[0]
    img = int(np.prod(x.shape[1:]))
    shape = tuple(x.shape[1:])
    nd = DM.philox_normals(seed, STREAM_DATA, 1, B, img).reshape((B,) + shape)
    x_data = rel(x + cfg["train.data_noise"] * torch.from_numpy(nd.astype(np.float64)))
    lo, hi = cfg["langevin.init_lo"], cfg["langevin.init_hi"]
    u = philox_uniforms(seed, STREAM_INIT, 1, M, img).astype(np.float64)
    xk = torch.from_numpy(lo + (hi - lo) * u).reshape((M,) + shape)
    trace = []
    for k in range(K):
        xk = xk.detach().requires_grad_(True)
        f = net(xk)[0].sum()
        trace.append(f.item())
        g = torch.autograd.grad(f, [xk])[0]
        n = torch.from_numpy(DM.philox_normals(seed, STREAM_X, k, M, img).astype(np.float64)).reshape(xk.shape)
        xk = rel(xk.detach() + cfg["langevin.step_size"] * g + cfg["langevin.noise"] * n, 3)
    x_q = xk.detach()
    net.zero_grad()
    f_data, f_q = net(x_data)[0].flatten(), net(x_q)[0].flatten()
    L = f_data.mean() - f_q.mean()
    (-L).backward()
    out = {"x_q": x_q.numpy(), "f_data": f_data.detach().numpy(), "f_q": f_q.detach().numpy(),
           "trace": np.array(trace)}
    for name, p in net.named_parameters():
        out["grad." + name] = p.grad.numpy().copy()
    return out


def adam_first_step(g, cfg):
    """torch.optim.Adam's first step in float64 on the gradient g (no weight decay)"""
    p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=cfg["train.lr"], betas=(cfg["train.beta1"], cfg["train.beta2"]), eps=1e-8)
    p.grad = torch.from_numpy(g.astype(np.float64))
    opt.step()
    return p.detach().numpy()


def check(d, cfg, refs, verbose=True):
    """-> list of (ok, label, error, bound)"""
    ref, runs = refs
    st, rows = d["step"], []

    def row(ok, label, err, bound):
        rows.append((bool(ok), label, err, bound))
        if verbose:
            print(f"{'ok  ' if ok else 'FAIL'} {label:34s} error {err:.3e}  bound {bound:.3e}")

    # exact rows
    for ctr, key, want in DM.PHILOX_KAT:
        got = tuple(int(v) for v in DM.philox4x32_10(*ctr, *key))
        row(got == want, f"philox KAT {ctr[0]:#x}", float(got != want), 0.0)
    B = st["x"].shape[0]
    nd = DM.philox_normals(cfg["run.seed"], STREAM_DATA, 1, B, int(np.prod(st["x"].shape[1:])))
    want = st["x"] + (np.float32(cfg["train.data_noise"]) * nd).reshape(st["x"].shape)
    nbad = int(np.sum(want.astype(np.float32) != st["x_data"]))
    row(nbad == 0, "x_data bit-exact (elements off)", float(nbad), 0.0)
    row(int(st["steps"][0]) == cfg["langevin.steps"], "chain step counter", float(st["steps"][0]), cfg["langevin.steps"])
    row(set(d["E0"]) == set(d["E1"]) and set("grad." + k for k in d["E0"]) == set(k for k in st if k.startswith("grad.")),
        "state_dict names", 0.0, 0.0)
    # float64 rows under the rounding model
    for key in ["x_q", "f_data", "f_q", "trace"] + sorted(k for k in ref if k.startswith("grad.")):
        e_mca = max(NT.rel_l2(r[key], ref[key]) for r in runs)
        bound = K_MCA * e_mca + FLOOR
        row(NT.rel_l2(st[key], ref[key]) <= bound, key, NT.rel_l2(st[key], ref[key]), bound)
    # Adam on C's gradient, element-wise
    for name in sorted(d["E0"]):
        p0, p1 = d["E0"][name].astype(np.float64), d["E1"][name].astype(np.float64)
        step = adam_first_step(st["grad." + name], cfg)
        err = np.abs((p1 - p0) - step)
        bound = np.spacing(np.abs(d["E1"][name])).astype(np.float64) + 16 * EPS32 * np.abs(step)
        worst = float(np.max(err / bound))
        row(worst <= 1.0, f"adam {name} (worst err/bound)", worst, 1.0)
    return rows


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    tool, perturb = sys.argv[1], "--perturb" in sys.argv[2:]
    torch.set_num_threads(1)  # tiny nets: a second thread only spins
    with tempfile.TemporaryDirectory() as tmp:
        d = run_dump(tool, tmp)
        cfg = d["cfg"]
        ref = reference(d, cfg)
        runs = [reference(d, cfg, DM.Rounding(100 + i)) for i in range(N_MCA)]
        rows = check(d, cfg, (ref, runs))
        failed = [r for r in rows if not r[0]]
        print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
        rc = 1 if failed else 0
        if not perturb:
            return rc
        print("# self-test (--perturb): each defect below must make the check fail")
        ok_all = True
        defects = [("langevin.step_size", 1.01), ("train.data_noise", 1.01), ("train.lr", 1.01)]
        for i, (key, f) in enumerate(defects):
            sub = os.path.join(tmp, f"p{i}")
            os.mkdir(sub)
            dp = run_dump(tool, sub, [f"{key}={cfg[key] * f:.17g}"])
            bad = [r for r in check(dp, cfg, (ref, runs), verbose=False) if not r[0]]
            print(f"# {key} x{f}: {'DETECTED' if bad else 'NOT DETECTED'}, {len(bad)} rows fail" +
                  (f"; e.g. {bad[0][1]} error {bad[0][2]:.2e} > bound {bad[0][3]:.2e}" if bad else ""))
            ok_all &= bool(bad)
        print(f"self-test {'passed' if ok_all else 'FAILED'}; clean run {'passed' if rc == 0 else 'failed'}")
        return 0 if ok_all and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
