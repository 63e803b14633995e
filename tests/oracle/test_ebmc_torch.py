#!/usr/bin/python3
"""python/ebmc_torch.py against ebmc itself, for every recipe and architecture: a tiny run of each
(1-2 training iterations from the recipe's toy or image config at small widths; the built-in
data, or a .npy of random 28x28 grey images for the MNIST-shaped nets), then

  energy   `ebmc score RUN X.npy` vs ebmc_torch.load_run(RUN).energy(X) on the same 16 inputs
           (points N(0, 2^2); images uniform uint8, mapped x / 127.5 - 1 as ebmc score does).
  sample   `ebmc sample RUN --n N` vs load_run(RUN).sample(N) with ebmc's Philox draws, every
           array it writes (SAMPLE_NAMES): N = 250 points (two or three batches of the toy
           configs' chains) or 10 images (three batches of 4), at the recipe's test-time settings
           (sample.*); the checkpoint's particles and walkers (particles, jarzynski's image net)
           as many as the run has, at most N.

Bound, per element: |ebmc - ref64| <= K32 * max(|t32 - ref64|, rms over the batch of |t32 -
ref64|) + FLOOR |ref64|, where ref64 is ebmc_torch's module run in float64 and t32 the same
module in float32: the size of a correct float32 computation's rounding error for this input
(it carries the net's conditioning); two float32 implementations that sum in different orders
err by the same order (rounding errors accumulate as random walks), K32 = 10 allows one to be
ten times the other. FLOOR = 8 eps32: the last roundings of the output. Each row prints
max |ebmc - ref64| / bound (must be <= 1), the largest |ebmc - ref64|, the bound of the element
with the largest ratio, and the largest relative difference. ebmc sample's images are uint8
(floor(255 (x + 1)/2 + 0.5)): there the error is the distance from ref64 to the interval of x the
byte stands for (compare_u8), against the same bound.
--perturb: the PyTorch side gets the inputs scaled by (1 + 1e-3) (the defect of a wrong input
mapping, e.g. x / 128 - 1 for x / 127.5 - 1, which is 4e-3 off) and sample(N) the wrong key
(seed = run.seed, where ebmc sample's default is run.seed + 1): every energy row and every sample
row of an array drawn with Philox must then fail, and nothing else (exit 0 iff so).

Usage: /usr/bin/python3 tests/oracle/test_ebmc_torch.py EBMC [--perturb]
Exit status 0 when every row passes, 1 otherwise, 77 (skip) without PyTorch/numpy."""
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:
    print("oracle_ebmc_torch: SKIPPED \u2014 PyTorch/numpy not installed (Debian: python3-torch python3-numpy)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import ebmc_torch  # noqa: E402

K32, FLOOR = 10.0, 8 * 2.0 ** -23
# uint8 images: ebmc's (x + 1) / 2 * 255 + 0.5 in float32 is off the exact value by at most half an
# ulp of x + 1 (2^-23, 127.5 2^-23 < 2^-16 on the 0..255 scale) and half an ulp of two values below
# 256 (2^-17 each): 2^-15 on that scale; the interval of x a byte stands for is widened by twice
# that, in x (/ 127.5)
QSLACK = 2 * 2.0 ** -15 / 127.5
N = 16
# samples per run: 2 or 3 batches of the toy configs' 100 or 150 chains; 3 of the image runs' 4
NS_POINTS, NS_IMAGES = 250, 10
CFG = lambda n: os.path.join(ROOT, "configs", n)  # noqa: E731
SHAPES32 = ["data.dataset=shapes", "data.size=32", "data.count=64", "data.max_shapes=1"]
MNISTLIKE = ["data.dataset=npy", "data.path={npy28}"]
# (label, config, overrides): each recipe on its toy config and on each image architecture it takes.
# The coop image runs use sigma_ref = 0.5 (their configs: 0.016): the energy is -f + |x|^2/(2 sr^2)
# and ebmc score's float32 output carries an ulp of the whole; at 0.016 the reference term
# (~2e6 on a 3x32x32 image) would hide any error in f below 0.25. With it, their test-time chains
# shrink x by 1 - b = 1/2 a step (b = (d^2/2)/sr^2, d = 0.5): 4 steps there (the toy configs' 60
# and 30 would forget the start: G's output would not reach the revised samples). The IGEBM run
# samples 20 steps, not the toy config's 200 (its net is the slowest here, in float32 and float64).
CASES = [
    ("dualmcmc toy2d", "toy2d_dual_mcmc.ini", []),
    ("dualmcmc dualmcmc_cifar10", "quickstart.ini", ["train.batch_size=4"]),
    ("dualmcmc dualmcmc_celeba64", "quickstart.ini", ["model.arch=dualmcmc_celeba64", "model.ndf=32", "model.ngf=16",
                                                       "model.nif=2", "train.batch_size=2", "data.size=64"]),
    ("dualmcmc mnist", "quickstart.ini", ["model.arch=mnist", "model.ndf=4", "model.ngf=4", "model.nif=4",
                                          "train.batch_size=4"] + MNISTLIKE),
    ("shortrun toy2d", "toy2d_shortrun.ini", []),
    ("shortrun shortrun", "toy2d_shortrun.ini", ["model.arch=shortrun", "model.ndf=4", "train.batch_size=4",
                                                 "train.chains=4", "langevin.steps=2"] + SHAPES32),
    ("persistent toy2d", "toy2d_persistent.ini", []),
    ("persistent igebm", "toy2d_persistent.ini", ["model.arch=igebm", "model.ndf=4", "train.batch_size=4",
                                                  "buffer.size=16", "langevin.steps=2", "sample.steps=20"] + SHAPES32),
    ("coopvaebm toy2d", "toy2d_coopvaebm.ini", []),
    ("coopvaebm coopvaebm", "toy2d_coopvaebm.ini", ["model.arch=coopvaebm", "model.ndf=4", "model.ngf=4",
                                                    "model.nif=4", "model.nz=8", "train.batch_size=4",
                                                    "train.chains=4", "langevin.sigma_ref=0.5",
                                                    "sample.steps=4"] + SHAPES32),
    ("coopnets toy2d", "toy2d_coopnets.ini", []),
    ("coopnets coopnets_cifar", "toy2d_coopnets.ini", ["model.arch=coopnets_cifar", "model.ndf=4", "model.ngf=4",
                                                       "model.nz=8", "train.batch_size=4",
                                                       "train.chains=4", "langevin.sigma_ref=0.5",
                                                       "sample.steps=4"] + SHAPES32),
    ("jarzynski gmm", "gmm50_jarzynski.ini", ["data.dim=5", "model.dim=5", "jarzynski.walkers=64"]),
    ("jarzynski mnist", "mnist_jarzynski.ini", ["model.width=4", "jarzynski.walkers=8", "train.batch_size=4",
                                                "data.classes="] + MNISTLIKE),
    ("particles pd_mlp", "toy2d_particles.ini", ["model.hidden=16", "particles.count=64"]),
    ("particles pd_mnist", "mnist_particles.ini", ["model.ndf=4", "particles.count=8", "train.batch_size=4",
                                                   "data.classes="] + MNISTLIKE),
]
failures = []
keyed = set()   # the sample rows whose arrays come from Philox draws (check_sample)


def row(label, what, ratio, err, bound, rel, ok):
    print(f"{label:<28} {what:<17} {ratio:10.3g} {err:10.3g} {bound:10.3g} {rel:10.3g}  {'ok' if ok else 'FAIL'}",
          flush=True)
    if not ok:
        failures.append(f"{label} {what}")


def verdict(label, what, err, t32, t64, ok=True):
    """a row: the element errors err (of ebmc's output against t64) against the bound"""
    d32 = np.abs(t32 - t64)
    bound = K32 * np.maximum(d32, np.sqrt(np.mean(d32 ** 2))) + FLOOR * np.abs(t64)
    worst = int(np.argmax(err / bound))
    ratio = float(err[worst] / bound[worst])
    rel = float(np.max(err / np.maximum(np.abs(t64), 1e-30)))
    row(label, what, ratio, float(np.max(err)), float(bound[worst]), rel, bool(ok and ratio <= 1.0))
    return ratio, rel


def compare(label, what, ours, t32, t64):
    ours, t32, t64 = (np.asarray(a, dtype=np.float64).ravel() for a in (ours, t32, t64))
    return verdict(label, what, np.abs(ours - t64), t32, t64, np.all(np.isfinite(ours)))


def compare_u8(label, what, q, t32, t64):
    """ebmc sample's uint8 images q = floor(255 (x + 1)/2 + 0.5) (clamped) against float images:
    the error of an element is the distance from t64 to the interval of x that q stands for (its
    ends widened by QSLACK, the float32 roundings of that arithmetic), against compare's bound"""
    q, t32, t64 = (np.asarray(a, dtype=np.float64).ravel() for a in (q, t32, t64))
    lo = np.where(q > 0, (q - 0.5) / 127.5 - 1, -np.inf) - QSLACK
    hi = np.where(q < 255, (q + 0.5) / 127.5 - 1, np.inf) + QSLACK
    return verdict(label, what, np.maximum(np.maximum(lo - t64, t64 - hi), 0), t32, t64)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        print(p.stderr[-2000:])
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")
    return p


def as64(r):
    """the run's modules in float64 (a copy)"""
    import copy
    r64 = copy.copy(r)
    r64.nets = {k: copy.deepcopy(m).double() for k, m in r.nets.items()}
    r64.state = {k: v.double() if v.is_floating_point() else v for k, v in r.state.items()}
    return r64


def energy64(r64, x):
    """Run.energy in float64 (its float32 casts bypassed)"""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        x = torch.as_tensor(x, dtype=torch.float64).reshape((-1,) + r64._shape())
        r64._x = lambda v: v
        return r64.energy(x).detach().numpy()
    finally:
        torch.set_default_dtype(old)


def main(ebmc, perturb):
    tmp = tempfile.mkdtemp(prefix="test_ebmc_torch.")
    rng = np.random.default_rng(7)
    npy28 = os.path.join(tmp, "mnistlike.npy")
    np.save(npy28, rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8))
    print(f"{'case':<28} {'what':<17} {'err/bound':>10} {'max err':>10} {'its bound':>10} {'max rel':>10}")
    table = []
    for label, cfg, over in CASES:
        name = label.replace(" ", "_")
        over = [o.format(npy28=npy28) for o in over]
        run([ebmc, "train", CFG(cfg), f"run.out_dir={tmp}", f"run.name={name}", "train.iterations=2",
             "log.quiet=true", "log.grid_every=0", "log.tensorboard=false", "run.backend=cpu"] + over)
        rd = os.path.join(tmp, name)
        r = ebmc_torch.load_run(rd)
        m = r.model
        if m["arch"] == "gmm" or m["img_size"] == 1:
            d = m["dim"] if m["arch"] == "gmm" else m["img_c"]
            x = (2.0 * rng.standard_normal((N, d))).astype(np.float32)
            np.save(os.path.join(tmp, "x.npy"), x)
            xin = x
        else:
            u8 = rng.integers(0, 256, (N, m["img_size"], m["img_size"], m["img_c"]), dtype=np.uint8)
            np.save(os.path.join(tmp, "x.npy"), u8)
            xin = (u8.astype(np.float32) / np.float32(127.5) - np.float32(1)).transpose(0, 3, 1, 2).copy()
        out = os.path.join(tmp, "e.npy")
        run([ebmc, "score", rd, os.path.join(tmp, "x.npy"), "--out", out])
        e_ebmc = np.load(out)
        if perturb:  # a wrong input mapping, e.g. x / 128 - 1 for x / 127.5 - 1 (4e-3)
            xin = xin * np.float32(1 + 1e-3)
        with torch.no_grad():
            e32 = r.energy(xin).numpy()
            e64 = energy64(as64(r), xin)
        table.append((label,) + compare(label, "energy", e_ebmc, e32, e64))
        check_sample(ebmc, label, r, rd, NS_POINTS if m["arch"] == "gmm" or m["img_size"] == 1 else NS_IMAGES,
                     perturb)
        shutil.rmtree(rd)
    shutil.rmtree(tmp)
    print(f"{len(failures)} failed")
    if perturb:
        n_e = sum(f.endswith(" energy") for f in failures)
        n_s = sum(f in keyed for f in failures)
        ok = n_e == len(CASES) and n_s == len(keyed) and len(failures) == n_e + n_s
        print(f"perturbed: {n_e} of {len(CASES)} energy rows and {n_s} of {len(keyed)} keyed sample rows failed"
              + ("" if ok else " (all must, and no other row)"))
        return 0 if ok else 1
    return 1 if failures else 0


def check_sample(ebmc, label, r, rd, n, perturb):
    """`ebmc sample RD --n n` vs Run.sample(n) in float32 and float64, array by array (uint8
    images through compare_u8). perturb: Run.sample gets the wrong key, seed = run.seed (ebmc
    sample's default is run.seed + 1), which every array drawn with Philox must fail (recorded in
    `keyed`); the checkpoint's particles and walkers are copied, not drawn, and must pass."""
    held = {"particles": "particles", "jarzynski": "walkers.x"}.get(r.recipe)
    held = held if r.model["arch"] != "gmm" else None   # the mixture is drawn from, not its walkers
    if held:                 # the checkpoint's particles / walkers: at most all of them
        n = min(n, r.state[held].numel() // int(np.prod(r._shape())))
    sd = rd + "_samples"
    run([ebmc, "sample", rd, "--n", str(n), "--out", sd])
    kw = {"seed": int(r.config["run.seed"])} if perturb else {}
    t64 = sample64(r, n, **kw)         # first: it deep-copies the modules
    t32 = [a.numpy() for a in r.sample(n, **kw)]
    for name, a32, a64 in zip(ebmc_torch.SAMPLE_NAMES[r.recipe], t32, t64):
        if not held:
            keyed.add(f"{label} sample {name}")
        ours = np.load(os.path.join(sd, name + ".npy"))
        if ours.dtype == np.uint8:      # NHWC bytes of NCHW floats
            compare_u8(label, "sample " + name, ours.transpose(0, 3, 1, 2), a32, a64)
        else:
            compare(label, "sample " + name, ours, a32, a64)
    shutil.rmtree(sd)


def sample64(r, n, **kw):
    """Run.sample in float64: the same Philox draws (in double), the modules in double"""
    r64 = as64(r)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    real = ebmc_torch.philox_normals, ebmc_torch.philox_uniforms
    try:
        ebmc_torch.philox_normals = lambda *a: real[0](*a).astype(np.float64)
        ebmc_torch.philox_uniforms = lambda *a: real[1](*a).astype(np.float64)
        out = r64.sample(n, **kw)
    finally:
        ebmc_torch.philox_normals, ebmc_torch.philox_uniforms = real
        torch.set_default_dtype(old)
    return [a.numpy() for a in out]


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], "--perturb" in sys.argv[2:]))
