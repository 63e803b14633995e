#!/usr/bin/python3
"""Did a shapes model learn? Its EBM-revised samples against held-out data and baselines.

Kernel two-sample statistic (MMD^2, unbiased, Gaussian kernels at 0.5, 1 and 2 times the median
distance, summed) between held-out data and sets of samples, all made by `ebmc sample` at the
run's test-time settings (the same z for every model):

  revised      the trained model's EBM-revised samples (G(z), then sample.steps Langevin steps on E)
  generator    the trained model's generator samples G(z)
  iteration K  the revised samples of the run's earliest kept checkpoint
  untrained    the revised samples of the same config's model at its initial weights (a
               one-iteration run with zero learning rates)

on two features: the pixels, and the shapes' coverage masks (0 where the brightest channel is
at most the shapes data set's brightest background, 1 from its dimmest shape up: colour left
out, the shapes' outlines, places and sizes kept). Held-out data: the config's data set made with
other seeds (`ebmc data ... run.seed=S`), so no training image is among them. Reference rows: a
second held-out set (the noise floor) and that set blurred by 1 and 2 pixels (how far blur alone
moves the statistic).

Asserted, per feature: revised < untrained, decided on NB disjoint blocks of the sets: the
per-block difference of the two MMD^2 must have mean - 3 x its standard error > 0 (a bound from
the blocks themselves, not a tuned threshold). Reported the same way, not asserted: revised
against iteration K (a short run is not better than its early checkpoint for every seed) and
against the generator (at the quick start's sizes the revision moves pixels little).

Asserted for shapes data with --kinds (reported otherwise): the shape kinds. Each image is called a triangle, circle or square by
the fill ratio of its coverage mask in its bounding box (0.5, pi/4, 1: the nearest), "none"
without a shape. For each of the three kinds, the revised samples' share must be within
KIND_TOL = 0.10 of the held-out data's, measured on KIND_REF = 5000 held-out images (another
seed) and on the n revised samples. The sampling error of a share p from m images is
sqrt(p (1 - p) / m); of the difference, sqrt(p (1 - p) (1/n + 1/KIND_REF)): at p = 1/3 and the
default n = 1000 that is 0.0167, so 3 standard errors (0.050) are half the tolerance and a model
whose shares equal the data's passes with probability > 99.7% per kind. With --kinds the check
refuses (exit 2) an n for which 3 standard errors exceed KIND_TOL / 2 (n < 1000), where the
bound would mostly measure noise. The quick start (configs/quickstart.ini) does not pass it yet
(README "Quick start"), so the ctest does not give --kinds.

Usage:
  quickstart_check.py [--ebmc BIN] RUN_DIR          check a trained run (e.g. runs/quickstart)
  quickstart_check.py [--ebmc BIN] --train CONFIG [section.key=value ...]
                                                    train CONFIG (with overrides) in a temporary
                                                    folder first, then check it (the ctest)
  options: --n N (samples and held-out examples per set, default 1000), --blocks NB (default 5),
           --seed S (run.seed of the --train run), --keep (keep the temporary folder),
           --kinds (assert the shape kinds' shares, see above; needs --n 1000 or more),
           --grid G (also check that `ebmc sample` writes its grid as the config says: an 8x8
           grid of G images per row at log.grid_scale; 0: not checked, the default)
Exit status: 0 when all assertions pass, 1 when one fails, 2 on usage or ebmc errors, 77
(skipped) without numpy.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    print("quickstart_check: SKIPPED \u2014 numpy is not installed (Debian: python3-numpy)")
    sys.exit(77)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELD_SEEDS = (900001, 900002)  # data seeds of the two held-out sets (training uses run.seed)
KIND_SEED = 900003             # data seed of the kinds' reference set
KIND_REF = 5000                # its size
KIND_TOL = 0.10                # asserted: |share of revised - share of held-out| per kind
SCALES = (0.5, 1.0, 2.0)       # kernel bandwidths: these multiples of the median distance
BLURS = (1.0, 2.0)             # reference rows: held-out set B blurred by these sigmas (pixels)


def run(cmd, quiet=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout)
        print(f"quickstart_check: failed (exit {p.returncode}): {' '.join(cmd)}")
        sys.exit(2)
    if not quiet:
        print(p.stdout, end="")
    return p.stdout


def load(path):
    a = np.load(path)
    return a.reshape(a.shape[0], -1).astype(np.float64) / 255.0


def sqdist(a, b):
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def mmd2(x, y, bws):
    """unbiased MMD^2 summed over the Gaussian kernels exp(-d^2 / (2 bw^2))"""
    dxx, dyy, dxy = sqdist(x, x), sqdist(y, y), sqdist(x, y)
    n, m = len(x), len(y)
    total = 0.0
    for bw in bws:
        g = 1.0 / (2.0 * bw * bw)
        kxx, kyy, kxy = np.exp(-g * dxx), np.exp(-g * dyy), np.exp(-g * dxy)
        total += ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                  - 2.0 * kxy.mean())
    return total


def blur(x, shape, sigma):
    """Gaussian blur (sigma pixels, edges replicated) of flattened (N, H*W*C) images"""
    h, w, c = shape
    r = int(np.ceil(3 * sigma))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2.0 * sigma * sigma))
    k /= k.sum()
    p = np.pad(x.reshape(-1, h, w, c), ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    y = sum(k[i] * p[:, i:i + h] for i in range(2 * r + 1))
    y = sum(k[i] * y[:, :, i:i + w] for i in range(2 * r + 1))
    return y.reshape(len(x), -1)


def mask(x, shape):
    """the shapes' coverage: 0 where the brightest channel is at most the shapes data set's brightest
    background (HSV value 0.42), 1 from its dimmest shape (0.75) up, linear between"""
    v = x.reshape(-1, shape[0] * shape[1], shape[2]).max(2)
    return np.clip((v - 0.42) / (0.75 - 0.42), 0.0, 1.0)


# fill ratio (shape pixels / bounding-box pixels) of the three kinds: upright equilateral triangle
# 0.5, circle pi/4, axis-aligned square 1; an image is called the kind of the nearest, "none"
# without a shape of at least MIN_AREA pixels
KINDS = (("triangle", 0.5), ("circle", np.pi / 4), ("square", 1.0))
MIN_AREA = 9


def kinds(x, shape):
    """each image's shape kind by the fill ratio of its coverage mask (> 0.5) in its bounding box:
    a soft blob fills its box as an ellipse does (pi/4) and is called a circle"""
    m = mask(x, shape).reshape(-1, shape[0], shape[1]) > 0.5
    out = []
    for mi in m:
        area = int(mi.sum())
        if area < MIN_AREA:
            out.append("none")
            continue
        rows, cols = np.flatnonzero(mi.any(1)), np.flatnonzero(mi.any(0))
        fill = area / float((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1))
        out.append(min(KINDS, key=lambda k: abs(k[1] - fill))[0])
    return out


def kind_table(sets, shape):
    """prints the kinds' shares in each set; returns {set: {kind: share}}"""
    names = [k for k, _ in KINDS] + ["none"]
    print("quickstart_check: shape kinds by fill ratio of the coverage mask in its bounding box "
          "(triangle 0.5, circle 0.785, square 1; a soft blob counts as a circle):")
    print(f"  {'':<24} {'images':>7} " + " ".join(f"{k:>8}" for k in names))
    shares = {}
    for name, x in sets.items():
        ks = kinds(x, shape)
        shares[name] = {k: ks.count(k) / len(ks) for k in names}
        print(f"  {name:<24} {len(ks):7d} " + " ".join(f"{shares[name][k]:8.3f}" for k in names))
    return shares


def kind_check(shares, ref, n, m):
    """each kind's share in the n revised samples within KIND_TOL of the m held-out images'"""
    ok = True
    for k, _ in KINDS:
        p, q = shares[ref][k], shares["revised"][k]
        se = np.sqrt(max(p * (1 - p), 1.0 / m) * (1.0 / n + 1.0 / m))
        passed = abs(q - p) <= KIND_TOL
        ok &= passed
        print(f"  {k:<9} revised {q:.3f} vs held-out {p:.3f}: |difference| {abs(q - p):.3f} "
              f"{'<=' if passed else '>'} {KIND_TOL:.2f}: {'PASS' if passed else 'FAIL'} "
              f"(3 s.e. of the difference {3 * se:.3f})")
    return ok


def png_size(path):
    """(width, height) from a PNG's IHDR chunk"""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def grid_check(ebmc, run_dir, config, g, tmp):
    """`ebmc sample --n G*G` must write a G x G grid at the config's log.grid_scale (the quick
    start's pictures): the PNG's size from torchvision's layout (padding 2) times the scale"""
    cfg = open(os.path.join(run_dir, "config.ini")).read()
    scale = int(re.search(r"^grid_scale\s*=\s*(\d+)", cfg, re.M).group(1))
    nrow = int(re.search(r"^grid_nrow\s*=\s*(\d+)", cfg, re.M).group(1))
    size = int(re.search(r"^size\s*=\s*(\d+)", cfg, re.M).group(1))
    out = os.path.join(tmp, "samples-grid")
    run([ebmc, "sample", run_dir, "--n", str(g * g), "--out", out])
    want = ((size + 2) * g + 2) * scale
    got = png_size(os.path.join(out, "revised.png"))
    passed = nrow == g and got == (want, want)
    print(f"quickstart_check: ebmc sample's grid of {g * g}: {got[0]}x{got[1]} pixels, log.grid_nrow {nrow}, "
          f"log.grid_scale {scale} (want {g} per row, {want}x{want}): {'PASS' if passed else 'FAIL'}")
    return passed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--ebmc", default=os.path.join(REPO, "build", "ebmc"))
    ap.add_argument("--train", metavar="CONFIG")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--grid", type=int, default=0)
    ap.add_argument("--kinds", action="store_true")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--keep", action="store_true")
    argv = sys.argv[1:]
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]  # section.key=value
    args = ap.parse_args([a for a in argv if a not in overrides])
    if (args.train is None) == (args.run_dir is None) or args.n < 2 * args.blocks:
        ap.print_usage()
        print("quickstart_check: give RUN_DIR or --train CONFIG, and --n >= 2 x --blocks")
        return 2
    se3 = 3.0 * np.sqrt(2.0 / 9.0 * (1.0 / args.n + 1.0 / KIND_REF))  # at p = 1/3
    if args.kinds and se3 > KIND_TOL / 2:
        print(f"quickstart_check: --n {args.n} is too few for the kinds' bound: 3 standard errors of a share's "
              f"difference are {se3:.3f} > {KIND_TOL / 2:.2f} (half the tolerance); use --n 1000 or more")
        return 2
    tmp = tempfile.mkdtemp(prefix="ebmc-qscheck-")
    try:
        return check(args, overrides, tmp)
    finally:
        if args.keep:
            print(f"quickstart_check: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def check(args, overrides, tmp):
    ebmc, n = args.ebmc, args.n
    common = ["log.quiet=true", f"run.out_dir={tmp}"]
    if args.train:
        config = args.train
        over = list(overrides) + ([f"run.seed={args.seed}"] if args.seed is not None else [])
        t0 = time.time()
        run([ebmc, "train", config, "run.name=trained"] + common + over)
        print(f"quickstart_check: trained {config} {' '.join(over)} in {time.time() - t0:.1f} s")
        run_dir = os.path.join(tmp, "trained")
    else:
        run_dir = args.run_dir
        config = os.path.join(run_dir, "config.ini")
        over = list(overrides)
    # the untrained model: the same config, one iteration with zero learning rates
    zero = ["train.iterations=1", "train.lr_e=0", "train.lr_g=0", "train.lr_i=0", "log.grid_every=0",
            "log.ckpt_every=0"]
    run([ebmc, "train", config, "run.name=untrained"] + over + common + zero)
    ck = os.path.join(run_dir, "checkpoints")
    its = sorted(int(m.group(1)) for m in (re.fullmatch(r"iter_(\d+)", d) for d in os.listdir(ck)) if m)
    if len(its) < 2:
        print(f"quickstart_check: {ck} has {len(its)} checkpoint(s); the check needs an earlier one too")
        return 2
    early_dir = os.path.join(ck, f"iter_{its[0]:08d}")
    sets = {}
    for name, rd in (("trained", run_dir), ("early", early_dir), ("untrained", os.path.join(tmp, "untrained"))):
        out = os.path.join(tmp, f"samples-{name}")
        run([ebmc, "sample", rd, "--n", str(n), "--out", out])
        sets[name] = out
    gen = load(os.path.join(sets["trained"], "generator.npy"))
    rev = load(os.path.join(sets["trained"], "revised.npy"))
    unt = load(os.path.join(sets["untrained"], "revised.npy"))
    early = load(os.path.join(sets["early"], "revised.npy"))
    held = []
    for s in HELD_SEEDS:
        path = os.path.join(tmp, f"held-{s}.npy")
        run([ebmc, "data", config, f"run.seed={s}", f"data.count={n}", "--out", path] + [
            o for o in over if o.startswith("data.")])
        held.append(load(path))
    a, b = held
    if a.shape[1:] != rev.shape[1:]:
        print(f"quickstart_check: held-out examples {a.shape} and samples {rev.shape} differ in shape")
        return 2
    shape = np.load(os.path.join(sets["trained"], "revised.npy")).shape[1:]  # (H, W, C)
    refs = {f"held-out blurred {s:g} px": blur(b, shape, s) for s in BLURS}
    early_name = f"revised at iteration {its[0]}"
    samples = {"revised": rev, "generator": gen, early_name: early, "untrained": unt, "held-out B": b, **refs}
    feats = [("pixels", lambda x: x)]
    if shape[2] == 3:
        feats.append(("shape masks", lambda x: mask(x, shape)))
    ok = True
    for fname, f in feats:
        fa = f(a)
        # bandwidths from the held-out data alone: the median pairwise distance within set A
        med = float(np.median(np.sqrt(sqdist(fa, fa)[np.triu_indices(len(fa), 1)])))
        bws = [s * med for s in SCALES]
        fs = {k: f(x) for k, x in samples.items()}
        full = {k: mmd2(x, fa, bws) for k, x in fs.items()}
        floor = abs(full["held-out B"])
        print(f"quickstart_check: MMD^2 on {fname} to {n} held-out examples (unbiased; Gaussian kernels, "
              f"bandwidths {', '.join(f'{s:g}' for s in SCALES)} x the median distance {med:.2f}, summed):")
        for k, v in full.items():
            note = {"held-out B": "  (noise floor: a second held-out set)",
                    "revised": "  <- the EBM-revised samples"}.get(k, "  (reference)" if k in refs else "")
            print(f"  {k:<24} {v:9.5f}{note}")
        nb = args.blocks
        bl = {k: np.array_split(fs[k], nb) for k in ("revised", "generator", "untrained", early_name)}
        bla = np.array_split(fa, nb)

        def blockdiff(other):
            d = np.array([mmd2(bl[other][i], bla[i], bws) - mmd2(bl["revised"][i], bla[i], bws) for i in range(nb)])
            return d.mean(), d.std(ddof=1) / np.sqrt(nb)

        # asserted: the revised samples are closer than the untrained model's and than those of the
        # run's earliest kept checkpoint (training made them better)
        m, se = blockdiff("untrained")
        passed = m - 3.0 * se > 0
        ok &= passed
        print(f"  revised < untrained: {'PASS' if passed else 'FAIL'}  by {full['untrained'] - full['revised']:.5f} "
              f"({(full['untrained'] - full['revised']) / max(floor, 1e-12):.0f}x the floor); {nb} blocks of "
              f"{n // nb}: mean difference {m:.5f}, 3 s.e. {3 * se:.5f}")
        # reported, not asserted: the earlier checkpoint (short runs are not monotone for every
        # seed) and the generator (at the quick start's sizes the revision moves pixels by ~1/255)
        for other, label in ((early_name, f"iteration {its[0]}"), ("generator", "generator")):
            m, se = blockdiff(other)
            verdict = ("revised closer" if m - 3 * se > 0 else "revised farther" if m + 3 * se < 0
                       else "no difference beyond noise")
            print(f"  (revised vs {label}: {label} - revised = {full[other] - full['revised']:+.5f}; {nb} blocks: "
                  f"mean {m:+.5f}, 3 s.e. {3 * se:.5f}: {verdict})")
    if shape[2] == 3:
        sets = {"held-out A": a, "revised": rev, "generator": gen, early_name: early, "untrained": unt}
        ref = "held-out A"
        if args.kinds:  # the reference set of KIND_REF images (without --kinds: held-out A, n images)
            path = os.path.join(tmp, f"held-{KIND_SEED}.npy")
            run([ebmc, "data", config, f"run.seed={KIND_SEED}", f"data.count={KIND_REF}", "--out", path] + [
                o for o in over if o.startswith("data.")])
            ref = f"held-out ({KIND_REF})"
            sets = {ref: load(path), **sets}
        shares = kind_table(sets, shape)
        print(f"quickstart_check: shape kinds of the {n} revised samples within {KIND_TOL:.2f} of {ref}'s "
              f"({'asserted' if args.kinds else 'reported, not asserted: no --kinds'}):")
        kinds_ok = kind_check(shares, ref, n, KIND_REF if args.kinds else n)
        if args.kinds:
            ok &= kinds_ok
    if args.grid:
        ok &= grid_check(ebmc, run_dir, config, args.grid, tmp)
    print(f"quickstart_check: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
