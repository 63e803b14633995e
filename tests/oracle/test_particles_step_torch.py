#!/usr/bin/env python3
"""One particle-dynamics iteration against a float64 PyTorch re-implementation of the authors'
update (necludov/particle-EBMs scripts/toy_scripts/alpha_toy.py and beta_toy.py, core/models.py
EBM(SmallMLP(2)) with its Gaussian base).

pd_step_dump (tests/tools/pd_step_dump.c) runs a small particles trainer on the CPU backend with
the Langevin noise off, saves checkpoint A after iteration 1, the batch of iteration 2 and
checkpoint B after it. Here iteration 2 is redone from A in float64:
  previous = copy(E); loss = mean E(batch) - mean E(particles); Adam(betas=(0, 0.999)) step
  alpha: x += grad_x [E_prev(x) - E(x)]
  beta:  x -= grad_x [grad_theta E(x) . (theta - theta_prev)]     (double backward)
  K Langevin steps without noise: x += (eps/2)(-grad_x E(x))
and compared with B: the parameter update theta_B - theta_A, the particles' displacement
x_B - x_A, and (alpha) E_prev = theta_A.

Tolerances. ebmc computes in float32 (u = 2^-24 ~ 6e-8). The loss gradient sums B + N = 26
per-example terms: its error is <= 26 u kappa |g|, kappa = sum|terms| / |sum terms|, which the
data-minus-particles difference keeps below ~100 here: ~2e-4 relative. Adam with beta1 = 0
divides g by sqrt(v), a scale-free ratio, so the update inherits that relative error: rel-L2 of
the update <= 1e-3. The displacement is a difference of two O(1) gradients (rounding u |grad E|,
absolute ~1e-7 against a displacement ~1e-2) plus the parameters' relative error carried through:
rel-L2 <= 2e-3. Beta: ebmc evaluates the linearised field by the central difference
(grad E(theta - d) - grad E(theta + d)) / 2, exact to O(|d|^3): it is compared with the float64
central difference at the same tolerance, and that with the exact double-backward field, which
must agree to 1e-2 relative (the O(|d|^2) term at lr = 1e-2).
With --perturb the dump's particles are changed by 1e-3 (one element) before comparing: every
check must then fail (exit 0 only if it does)."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print("skip: %s" % e)
    sys.exit(77)
import test_nets_torch as NT  # noqa: E402  (st_read)

ORDER = ["net.net.0.weight", "net.net.0.bias", "net.net.1.beta", "net.net.2.weight", "net.net.2.bias",
         "net.net.3.beta", "net.net.4.weight", "net.net.4.bias", "base_mu", "base_logstd"]
LR, K, STEP = 1e-2, 3, 1e-2


def energy(p, x):
    h = x @ p["net.net.0.weight"].T + p["net.net.0.bias"]
    h = h * torch.sigmoid(p["net.net.1.beta"][None, :] * h)
    h = h @ p["net.net.2.weight"].T + p["net.net.2.bias"]
    h = h * torch.sigmoid(p["net.net.3.beta"][None, :] * h)
    out = (h @ p["net.net.4.weight"].T + p["net.net.4.bias"]).squeeze(-1)
    base = torch.distributions.Normal(p["base_mu"], p["base_logstd"].exp())
    return out - base.log_prob(x).view(x.size(0), -1).sum(1)


def grad_x(p, x):
    x = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(energy(p, x).sum(), [x])[0]


def load(d, name):
    t, _ = NT.st_read(os.path.join(d, name))
    return t


def reference(tmp, method):
    A, st = load(tmp + "/A", "E.safetensors"), load(tmp + "/A", "state.safetensors")
    p = {k: torch.tensor(A[k], dtype=torch.float64, requires_grad=True) for k in ORDER}
    n = [A[k].size for k in ORDER]
    m = torch.tensor(st["optE.exp_avg"], dtype=torch.float64)
    v = torch.tensor(st["optE.exp_avg_sq"], dtype=torch.float64)
    step = int(np.asarray(st["optE.step"]).reshape(-1)[0]) + 1
    x = torch.tensor(st["particles"], dtype=torch.float64).view(-1, 2)
    batch = torch.tensor(np.fromfile(tmp + "/batch.f32", dtype=np.float32), dtype=torch.float64).view(-1, 2)
    prev = {k: t.detach().clone() for k, t in p.items()}
    loss = energy(p, batch).mean() - energy(p, x).mean()
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, [p[k] for k in ORDER])])
    v = 0.999 * v + 0.001 * g * g  # beta1 = 0: m = g
    theta = torch.cat([prev[k].reshape(-1) for k in ORDER])
    theta = theta - LR * g / ((v / (1 - 0.999 ** step)).sqrt() + 1e-8)
    new = {k: t.reshape(prev[k].shape) for k, t in zip(ORDER, torch.split(theta, n))}
    if method == "alpha":
        move = grad_x(prev, x) - grad_x(new, x)
        exact = None
    else:
        d = {k: new[k] - prev[k] for k in ORDER}
        plus = {k: new[k] + d[k] for k in ORDER}
        move = (grad_x(prev, x) - grad_x(plus, x)) / 2
        q = {k: t.detach().clone().requires_grad_(True) for k, t in new.items()}
        xx = x.detach().clone().requires_grad_(True)
        ge = torch.autograd.grad(energy(q, xx).sum(), [q[k] for k in ORDER], create_graph=True)
        dedt = sum((a * d[k]).sum() for a, k in zip(ge, ORDER))
        exact = -torch.autograd.grad(dedt, [xx])[0]
    y = x + move
    for _ in range(K):
        y = y - STEP / 2 * grad_x(new, y)
    return theta - torch.cat([prev[k].reshape(-1) for k in ORDER]), y - x, move, exact


def rel(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check(tool, method, perturb):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([tool, tmp, "particles.method=" + method], check=True)
        dtheta, dx, move, exact = reference(tmp, method)
        A, B = load(tmp + "/A", "E.safetensors"), load(tmp + "/B", "E.safetensors")
        xa = load(tmp + "/A", "state.safetensors")["particles"].astype(np.float64)
        xb = load(tmp + "/B", "state.safetensors")["particles"].astype(np.float64)
        if perturb:
            xb = xb.copy()
            xb.reshape(-1)[3] += 1e-3
        ours = np.concatenate([(B[k].astype(np.float64) - A[k]).ravel() for k in ORDER])
        r = {"update": rel(ours, dtheta.numpy()), "displacement": rel(xb - xa, dx.numpy())}
        ok = r["update"] <= 1e-3 and r["displacement"] <= 2e-3
        if method == "beta":
            r["cd_vs_exact_beta"] = rel(move.numpy(), exact.numpy())
            ok = ok and r["cd_vs_exact_beta"] <= 1e-2
        else:
            Bp = load(tmp + "/B", "E_prev.safetensors")
            r["E_prev"] = max(float(np.abs(Bp[k] - A[k]).max()) for k in ORDER)
            ok = ok and r["E_prev"] == 0.0
        print("%s: %s -> %s" % (method, ", ".join("%s %.3g" % kv for kv in r.items()), "ok" if ok else "FAIL"))
        return ok


def main():
    tool, perturb = sys.argv[1], "--perturb" in sys.argv
    torch.set_default_dtype(torch.float64)
    results = [check(tool, m, perturb) for m in ("alpha", "beta")]
    if perturb:
        print("perturbed: every check must fail:", "yes" if not any(results) else "NO")
        return 0 if not any(results) else 1
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
