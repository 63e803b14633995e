#!/usr/bin/python3
"""ebmc's sample grids and .npy files against torchvision and numpy.

Usage: /usr/bin/python3 tests/oracle/test_grid_torchvision.py /path/to/grid_dump

For each case, a random float32 (n, c, h, w) array (values inside and outside the value range,
exact edge values, quantisation boundaries, and in some cases NaN and +-Inf) is written raw and:

  (a) `grid_dump png` writes the PNG; torchvision.utils.save_image(tensor, nrow=, padding=,
      pad_value=, normalize=, value_range=) writes its own; both are read with PIL and must be
      equal pixel for pixel (same size, RGB).
  (b) `grid_dump npy` writes the uint8 NHWC array; the file must be byte-identical to
      numpy.save of the array computed here with torch's own ops (clamp, sub, div, mul(255),
      add(0.5), clamp(0, 255), uint8), and numpy.load must give that array.
  (c) `grid_dump f32` writes '<f4' arrays of several shapes (scalar, empty, NaN/Inf values): byte-
      identical to numpy.save, and numpy.load gives the same bits.
  (d) bad arguments: grid_dump fails and writes no file.

NaN: torchvision's clamps leave a NaN in place and its uint8 cast is undefined behaviour; on
x86-64 it gives 0, which is ebmc's documented choice. ebmc's side is checked against 0 always;
torchvision is only compared where it also gave 0 (a note is printed otherwise).

The last line is "N passed, M failed"; exit status 0 iff M == 0, 77 (skip) without torch,
torchvision, numpy or PIL, 2 on a usage error.
"""
import io
import math
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torchvision
    from torchvision.utils import save_image
    from PIL import Image
except ImportError as e:
    print(f"oracle_grid: SKIPPED \u2014 {e} (Debian: apt-get install python3-torch "
          "python3-torchvision python3-numpy python3-pil)")
    sys.exit(77)

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print(f"FAIL: {what}")
    return cond


def run_tool(tool, args):
    return subprocess.run([tool] + [str(a) for a in args], capture_output=True, text=True)


def boundary_values(lo, hi):
    """Values whose x*255+0.5 lands on or next to every integer, mapped into [lo, hi]."""
    k = np.arange(-1, 258, dtype=np.float64)
    base = ((k - 0.5) / 255.0).astype(np.float32)
    vals = np.concatenate([base, np.nextafter(base, np.float32(-np.inf)),
                           np.nextafter(base, np.float32(np.inf))])
    return (vals.astype(np.float64) * (hi - lo) + lo).astype(np.float32)


def make_input(rng, n, c, h, w, lo, hi, special):
    span = hi - lo
    x = rng.uniform(lo - 0.3 * span, hi + 0.3 * span, size=(n, c, h, w)).astype(np.float32)
    flat = x.reshape(-1)
    edges = np.array([lo, hi, (lo + hi) / 2, lo - 1e-7, hi + 1e-7, 0.0, -0.0, 0.5, 1.0, -1.0],
                     dtype=np.float32)
    m = min(flat.size, edges.size)
    flat[:m] = edges[:m]
    if special == "boundary":
        b = boundary_values(lo, hi)
        m = min(flat.size, b.size)
        pos = rng.permutation(flat.size)[:m]
        flat[pos] = b[:m]
    if special == "nonfinite":
        pos = rng.permutation(flat.size)[:max(3, flat.size // 10)]
        for i, p in enumerate(pos):
            flat[p] = [np.nan, np.inf, -np.inf][i % 3]
    return x


def torch_quantize_nhwc(x, lo, hi):
    """The .npy reference, with torch's ops in save_image's order."""
    t = torch.from_numpy(x.copy())
    t = t.clamp(min=lo, max=hi).sub_(lo).div_(max(hi - lo, 1e-5))
    u = t.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()
    u = np.ascontiguousarray(u.transpose(0, 2, 3, 1))
    u[np.isnan(x.transpose(0, 2, 3, 1))] = 0  # ebmc's documented NaN choice
    return u


def float_canvas(x, nrow, padding, pad_value):
    """The (H, W, 3) float canvas make_grid builds, before normalisation and quantisation: used
    here only to locate NaN values."""
    n, c, h, w = x.shape
    xr = np.repeat(x, 3, axis=1) if c == 1 else x
    if n == 1:
        return xr[0].transpose(1, 2, 0)
    xmaps = min(nrow, n)
    ymaps = -(-n // xmaps)
    g = np.full(((h + padding) * ymaps + padding, (w + padding) * xmaps + padding, 3),
                pad_value, dtype=np.float32)
    for k in range(n):
        y0 = (k // xmaps) * (h + padding) + padding
        x0 = (k % xmaps) * (w + padding) + padding
        g[y0:y0 + h, x0:x0 + w, :] = xr[k].transpose(1, 2, 0)
    return g


def npy_bytes(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def grid_case(tool, tmp, idx, rng, n, c, h, w, nrow, padding, pad_value, normalize, lo, hi,
              special=None):
    name = (f"case {idx}: n={n} c={c} h={h} w={w} nrow={nrow} padding={padding} "
            f"pad_value={pad_value} normalize={normalize} range=[{lo}, {hi}] {special or ''}")
    lo, hi = float(np.float32(lo)), float(np.float32(hi))  # what the C side receives
    x = make_input(rng, n, c, h, w, lo, hi, special)
    raw = os.path.join(tmp, f"in{idx}.f32")
    x.tofile(raw)
    ours_png = os.path.join(tmp, f"ours{idx}.png")
    ref_png = os.path.join(tmp, f"ref{idx}.png")
    ours_npy = os.path.join(tmp, f"ours{idx}.npy")

    # (a) PNG vs torchvision
    r = run_tool(tool, ["png", ours_png, raw, n, c, h, w, nrow, padding, repr(pad_value),
                        int(normalize), repr(lo), repr(hi)])
    if not check(r.returncode == 0, f"{name}: grid_dump png failed: {r.stderr.strip()}"):
        return
    kwargs = dict(nrow=nrow, padding=padding, pad_value=pad_value, normalize=normalize)
    if normalize:
        kwargs["value_range"] = (lo, hi)
    save_image(torch.from_numpy(x.copy()), ref_png, **kwargs)
    with Image.open(ours_png) as im:
        mode = im.mode
        ours = np.asarray(im.convert("RGB"))
    with Image.open(ref_png) as im:
        ref = np.asarray(im.convert("RGB"))
    check(mode == "RGB", f"{name}: PNG mode {mode}, expected RGB")
    if not check(ours.shape == ref.shape, f"{name}: size {ours.shape} vs torchvision {ref.shape}"):
        return
    # where the input (or the pad value) is NaN, torchvision's value is undefined behaviour:
    # ebmc must give 0 there; torchvision is compared everywhere else (disagreement on NaN is
    # only noted)
    nan_px = np.isnan(float_canvas(x, nrow, padding, pad_value))
    nan_count = int(np.isnan(x).sum()) + (1 if math.isnan(pad_value) and n > 1 else 0)
    if nan_count:
        differ_tv = int((ref[nan_px] != ours[nan_px]).sum())
        if differ_tv:
            print(f"note: {name}: torchvision wrote {differ_tv} NaN channel values differently "
                  "(undefined behaviour in its uint8 cast)")
        check(int(ours[nan_px].max(initial=0)) == 0, f"{name}: NaN not written as 0")
        want = f"{nan_count} NaN value{'' if nan_count == 1 else 's'} written as 0"
        check(want in r.stdout, f"{name}: expected warning '{want}', got '{r.stdout.strip()}'")
    else:
        check(r.stdout.strip() == "", f"{name}: unexpected output '{r.stdout.strip()}'")
    keep = ~nan_px
    bad = int((ours[keep] != ref[keep]).sum())
    if not check(bad == 0, f"{name}: {bad} channel values differ from torchvision"):
        diff = np.argwhere(ours != ref)[:5]
        for d in diff:
            print(f"    at (y, x, ch) = {tuple(d)}: ebmc {ours[tuple(d)]}, "
                  f"torchvision {ref[tuple(d)]}")

    # (b) .npy uint8 NHWC vs numpy.save of torch's quantisation
    r = run_tool(tool, ["npy", ours_npy, raw, n, c, h, w, repr(lo), repr(hi)])
    if not check(r.returncode == 0, f"{name}: grid_dump npy failed: {r.stderr.strip()}"):
        return
    want = torch_quantize_nhwc(x, lo, hi)
    with open(ours_npy, "rb") as f:
        got_bytes = f.read()
    check(got_bytes == npy_bytes(want), f"{name}: .npy file differs from numpy.save's")
    got = np.load(ours_npy)
    check(got.dtype == np.uint8 and got.shape == (n, h, w, c) and np.array_equal(got, want),
          f"{name}: .npy array {got.dtype} {got.shape} differs from the reference")
    hl = int.from_bytes(got_bytes[8:10], "little")
    check(got_bytes[:8] == b"\x93NUMPY\x01\x00" and (10 + hl) % 64 == 0,
          f"{name}: .npy magic/version/alignment")


def f32_cases(tool, tmp, rng):
    shapes = [(), (5,), (2, 3, 4), (0, 3), (3, 0), (1, 1, 1, 1, 1, 1, 1, 1), (12345,)]
    for i, shape in enumerate(shapes):
        a = rng.standard_normal(size=shape).astype(np.float32) if shape else \
            np.array(rng.standard_normal(), dtype=np.float32)
        if a.size >= 5:
            flat = a.reshape(-1)
            flat[:5] = [np.nan, np.inf, -np.inf, -0.0, 1e-45]
        raw = os.path.join(tmp, f"f32_{i}.raw")
        out = os.path.join(tmp, f"f32_{i}.npy")
        a.tofile(raw)
        r = run_tool(tool, ["f32", out, raw] + list(shape))
        if not check(r.returncode == 0, f"f32 {shape}: grid_dump failed: {r.stderr.strip()}"):
            continue
        with open(out, "rb") as f:
            data = f.read()
        check(data == npy_bytes(a), f"f32 {shape}: file differs from numpy.save's")
        b = np.load(out)
        check(b.dtype == np.dtype("<f4") and b.shape == shape and
              np.array_equal(b.view(np.uint32), a.view(np.uint32)),
              f"f32 {shape}: numpy.load gives other values")


def error_cases(tool, tmp):
    raw = os.path.join(tmp, "err.f32")
    np.zeros((2, 3, 4, 4), dtype=np.float32).tofile(raw)
    bad = [
        ("nrow 0", ["png", None, raw, 2, 3, 4, 4, 0, 2, "0", 1, "-1", "1"]),
        ("negative padding", ["png", None, raw, 2, 3, 4, 4, 8, -1, "0", 1, "-1", "1"]),
        ("c = 2", ["png", None, raw, 2, 2, 4, 6, 8, 2, "0", 1, "-1", "1"]),
        ("lo == hi", ["png", None, raw, 2, 3, 4, 4, 8, 2, "0", 1, "1", "1"]),
        ("lo > hi", ["npy", None, raw, 2, 3, 4, 4, "1", "-1"]),
        ("NaN range", ["npy", None, raw, 2, 3, 4, 4, "nan", "1"]),
        ("missing directory", ["png", os.path.join(tmp, "no", "such", "dir", "x.png"), raw,
                               2, 3, 4, 4, 8, 2, "0", 1, "-1", "1"]),
    ]
    for i, (what, args) in enumerate(bad):
        out = args[1] or os.path.join(tmp, f"err{i}.out")
        args = [args[0], out] + args[2:]
        r = run_tool(tool, args)
        check(r.returncode == 1 and r.stderr.strip() != "" and not os.path.exists(out),
              f"error case '{what}': rc {r.returncode}, stderr '{r.stderr.strip()}', "
              f"exists {os.path.exists(out)}")
    leftovers = [f for f in os.listdir(tmp) if ".tmp." in f]
    check(not leftovers, f"temporary files left behind: {leftovers}")


def main():
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        print(__doc__.strip().splitlines()[2])
        return 2
    tool = sys.argv[1]
    print(f"oracle_grid: torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"numpy {np.__version__}")
    rng = np.random.default_rng(20240611)
    #        n  c  h  w nrow pad pad_value norm    lo    hi  special
    cases = [
        (1, 3, 5, 7, 8, 2, 0.0, True, -1, 1, None),          # n == 1: no padding
        (1, 1, 6, 4, 8, 3, 0.5, True, 0, 1, None),           # n == 1, one channel
        (3, 3, 4, 6, 8, 2, 0.0, True, -1, 1, None),          # n < nrow
        (10, 1, 5, 3, 4, 2, 0.5, True, -1, 1, None),         # non-multiple, c = 1
        (16, 3, 6, 5, 4, 0, 0.0, True, 0, 1, None),          # multiple, padding 0
        (7, 3, 3, 4, 3, 3, 0.5, False, 0, 1, None),          # no normalize, values outside
        (9, 1, 4, 4, 2, 3, 0.0, True, 0, 1, None),
        (5, 3, 2, 9, 1, 2, 0.5, True, -0.5, 2.5, None),      # one column, range width 3
        (2, 3, 8, 3, 8, 2, 1.3, True, -1, 1, None),          # pad value above 1
        (4, 3, 3, 5, 3, 2, -0.2, False, -1, 1, None),        # pad value below 0
        (64, 3, 8, 8, 8, 2, 0.0, True, -1, 1, None),         # the ebmc default
        (3, 1, 20, 26, 2, 2, 0.0, True, -1, 1, "boundary"),  # rounding edges, [-1, 1]
        (3, 3, 13, 10, 3, 0, 0.5, True, 0, 1, "boundary"),   # rounding edges, [0, 1]
        (2, 3, 12, 11, 2, 2, 0.0, False, 0, 1, "boundary"),  # rounding edges, unnormalised
        (3, 3, 10, 9, 2, 2, 0.0, True, -0.2, 2.9, "boundary"),  # range width 3.1
        (6, 3, 4, 5, 4, 2, 0.0, True, -1, 1, "nonfinite"),
        (5, 1, 5, 4, 2, 3, 0.5, False, 0, 1, "nonfinite"),
        (4, 3, 3, 3, 3, 2, float("nan"), True, -1, 1, None),  # NaN pad value
    ]
    with tempfile.TemporaryDirectory(prefix="ebmc_grid_") as tmp:
        for i, c in enumerate(cases):
            grid_case(tool, tmp, i, rng, *c)
        f32_cases(tool, tmp, rng)
        error_cases(tool, tmp)
    print(f"{PASSED} passed, {FAILED} failed")
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
