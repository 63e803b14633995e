#!/usr/bin/env python3
"""Unseen 2-D mixtures for the toy2d_*.ini recipes (issue 24, "beyond the authors' toy settings")
and the measurements that judge a recipe's samples of one.

A mixture is a list of components, each a Gaussian mode (centre, isotropic sd) or a ring (centre,
radius, radial sd), with unequal weights and several scales, placed inside the box the toy configs
were written for (|x| <= ~2.2, like gmm8's circle of radius 2). Two disjoint sets:
  tune:    the mixtures the configs may be tuned on;
  heldout: mixtures the configs were not tuned on (the test's; other layouts, scales, weights).

Measurements of samples S against a mixture (all in the data's own units):
  off:    the share of S beyond 4 sd of every component (Mahalanobis distance > 4; for a ring the
          radial distance |r - R| / sd > 4); the data have ~6e-5 (Gaussian) beyond 4 sd;
  w_err:  max over components of |share of S - weight|, S assigned to the component of least
          Mahalanobis distance (off-mode samples included);
  mmd2:   squared MMD (biased V-statistic) to held-out data, kernel sum over bandwidths
          0.05, 0.2, 1 of exp(-d^2 / (2 bw^2)), as tests/toy_metrics.c.

usage:
  toy_mixtures.py write SET NAME OUT.npy [--n N] [--seed S]   data of one mixture
  toy_mixtures.py list SET                                     names in a set
  toy_mixtures.py measure SET NAME SAMPLES.npy [--seed S]      the three numbers, one JSON line
"""
import argparse
import json
import sys

import numpy as np

# (kind, weight, centre x, centre y, sd, ring radius)
MIXTURES = {
    "tune": {
        # three scales, weights 0.45..0.1
        "scales3": [("g", 0.45, -1.2, -0.8, 0.15, 0),
                    ("g", 0.35, 1.3, 0.9, 0.05, 0),
                    ("g", 0.20, 0.9, -1.3, 0.30, 0)],
        # five modes of two scales, very unequal weights
        "unequal5": [("g", 0.40, 0.0, 1.6, 0.08, 0),
                     ("g", 0.25, -1.6, 0.2, 0.20, 0),
                     ("g", 0.15, 1.5, -0.2, 0.04, 0),
                     ("g", 0.12, -0.6, -1.5, 0.12, 0),
                     ("g", 0.08, 0.9, -1.5, 0.06, 0)],
        # a ring around a heavy narrow mode, and a wide one outside
        "ring_core": [("r", 0.40, -0.4, 0.3, 0.05, 1.0),
                      ("g", 0.35, -0.4, 0.3, 0.10, 0),
                      ("g", 0.25, 1.6, -1.2, 0.25, 0)],
    },
    "heldout": {
        # four modes, four scales (0.03..0.25), weights 0.5/0.25/0.15/0.1
        "scales4": [("g", 0.50, 1.1, 1.1, 0.25, 0),
                    ("g", 0.25, -1.4, 1.0, 0.03, 0),
                    ("g", 0.15, -1.0, -1.3, 0.10, 0),
                    ("g", 0.10, 1.4, -1.2, 0.06, 0)],
        # a large ring with a wide off-centre mode inside and a small dense one outside it
        "ring_pair": [("r", 0.30, 0.3, 0.0, 0.06, 1.5),
                      ("g", 0.45, -0.1, 0.2, 0.18, 0),
                      ("g", 0.25, 0.0, -2.0, 0.05, 0)],
        # six modes on a line and a row, weights 0.3 .. 0.05, two scales
        "six": [("g", 0.30, -1.8, -1.8, 0.10, 0),
                ("g", 0.22, 0.0, 0.0, 0.20, 0),
                ("g", 0.18, 1.8, 1.8, 0.05, 0),
                ("g", 0.14, 1.8, -1.6, 0.15, 0),
                ("g", 0.11, -1.8, 1.6, 0.04, 0),
                ("g", 0.05, 0.0, 1.9, 0.08, 0)],
    },
}


def sample(mix, n, seed):
    rng = np.random.default_rng(seed)
    w = np.array([c[1] for c in mix])
    comp = rng.choice(len(mix), size=n, p=w / w.sum())
    out = np.empty((n, 2))
    for k, (kind, _, cx, cy, sd, rad) in enumerate(mix):
        idx = np.nonzero(comp == k)[0]
        if kind == "g":
            out[idx] = np.array([cx, cy]) + sd * rng.standard_normal((len(idx), 2))
        else:
            th = rng.uniform(0, 2 * np.pi, len(idx))
            r = rad + sd * rng.standard_normal(len(idx))
            out[idx] = np.stack([cx + r * np.cos(th), cy + r * np.sin(th)], 1)
    return out.astype(np.float32), comp


def mahalanobis(mix, x):
    """(n, K): the distance of each point to each component in that component's sds"""
    x = np.asarray(x, np.float64)
    d = np.empty((len(x), len(mix)))
    for k, (kind, _, cx, cy, sd, rad) in enumerate(mix):
        r = np.hypot(x[:, 0] - cx, x[:, 1] - cy)
        d[:, k] = r / sd if kind == "g" else np.abs(r - rad) / sd
    return d


def mmd2(x, y):
    def mk(a, b):
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d / (2 * bw * bw)).mean() for bw in (0.05, 0.2, 1.0))
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(mk(x, x) + mk(y, y) - 2 * mk(x, y))


def measure(mix, s, seed=777, n_ref=2000):
    s = np.asarray(s, np.float64)
    fin = np.all(np.isfinite(s), 1)
    n_bad = int((~fin).sum())
    s = s[fin]
    d = mahalanobis(mix, s)
    off = float((d.min(1) > 4).mean())
    near = d.argmin(1)
    w = np.array([c[1] for c in mix])
    share = np.bincount(near, minlength=len(mix)) / len(s)
    ref, _ = sample(mix, n_ref, seed)
    m = min(len(s), 2000)
    return {"off": off, "w_err": float(np.abs(share - w).max()), "mmd2": mmd2(s[:m], ref),
            "shares": [round(float(v), 4) for v in share], "weights": w.tolist(), "n": len(s),
            "nonfinite": n_bad}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["write", "list", "measure"])
    ap.add_argument("set", choices=list(MIXTURES))
    ap.add_argument("name", nargs="?")
    ap.add_argument("file", nargs="?")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "list":
        print(" ".join(MIXTURES[a.set]))
        return 0
    mix = MIXTURES[a.set][a.name]
    if a.cmd == "write":
        x, _ = sample(mix, a.n, a.seed)
        np.save(a.file, x)
        return 0
    s = np.load(a.file).reshape(-1, 2)
    r = measure(mix, s, seed=a.seed + 1000)
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
