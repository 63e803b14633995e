#!/usr/bin/env python3
"""`ebmc eval` on points against numpy: the statistics file `ebmc eval --stats` writes loads with
np.load and holds pytorch-fid's layout (mu, sigma = np.mean, np.cov(rowvar=False), float64); the
FID matches pytorch-fid's formula computed here with numpy (tr sqrtm(S1 S2) as the sum of the
square roots of the eigenvalues of S1 S2); the KID matches torch-fidelity's unbiased MMD^2
with the kernel (x.y/d + 1)^3 on full subsets (subset size = set size: no randomness).

Tolerances: float32 points widened to float64 on both sides; the covariances agree to ~N eps
relative, and the FID's eigen-solvers (LAPACK dsyevd of S1^1/2 S2 S1^1/2 against numpy's geev of
S1 S2) to ~d * cond * eps: 1e-9 relative leaves 3+ orders of margin at d = 4.

usage: test_eval_numpy.py EBMC   (exit 77 without numpy)"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("skip: no numpy")
    sys.exit(77)


def fid_numpy(mu1, s1, mu2, s2):
    ev = np.linalg.eigvals(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev.real, 0, None)).sum())


def kid_numpy(x, y):
    d, m = x.shape[1], x.shape[0]
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def main():
    ebmc = sys.argv[1]
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((70, 4)) * [1, 2, 0.5, 3] + 0.3).astype(np.float32)
    b = (rng.standard_normal((70, 4)) @ rng.standard_normal((4, 4))).astype(np.float32)
    ok = True
    with tempfile.TemporaryDirectory() as d:
        pa, pb, pz, pj = (os.path.join(d, f) for f in ("a.npy", "b.npy", "b.npz", "j.json"))
        np.save(pa, a), np.save(pb, b)
        subprocess.run([ebmc, "eval", "--stats", pb, "--out", pz], check=True)
        z = np.load(pz)
        mu, sigma = z["mu"], z["sigma"]
        b64 = b.astype(np.float64)
        e_mu = np.abs(mu - b64.mean(0)).max() / np.abs(b64.mean(0)).max()
        e_s = np.abs(sigma - np.cov(b64, rowvar=False)).max() / np.abs(sigma).max()
        print("stats .npz: keys %s, mu %s %s, sigma %s; errors vs numpy %.2e, %.2e"
              % (sorted(z.files), mu.shape, mu.dtype, sigma.shape, e_mu, e_s))
        ok = ok and sorted(z.files) == ["mu", "sigma"] and mu.dtype == np.float64 and e_mu < 1e-12 and e_s < 1e-12
        subprocess.run([ebmc, "eval", "--npy", pa, "--ref", pb, "--kid-size", "70", "--kid-subsets", "2",
                        "--out", pj], check=True)
        m = json.load(open(pj))["metrics"]["npy"]
    a64 = a.astype(np.float64)
    f_ref = fid_numpy(a64.mean(0), np.cov(a64, rowvar=False), b64.mean(0), np.cov(b64, rowvar=False))
    k_ref = kid_numpy(a64, b64)
    e_f, e_k = abs(m["fid"] - f_ref) / abs(f_ref), abs(m["kid_mean"] - k_ref) / abs(k_ref)
    print("FID ebmc %.12g numpy %.12g (rel %.2e); KID ebmc %.12g numpy %.12g (rel %.2e)"
          % (m["fid"], f_ref, e_f, m["kid_mean"], k_ref, e_k))
    ok = ok and e_f < 1e-9 and e_k < 1e-9 and m["kid_std"] < 1e-9 * abs(k_ref)
    print("eval numpy oracle:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
