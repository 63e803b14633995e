#!/usr/bin/env python3
"""ctest realdata_smoke: bench/realdata.sh (ebmc vs the authors' PyTorch loop on CIFAR-10) at tiny
scale: 3 s of training per side, both at once (--parallel; each finishes its first iteration), 16 test-time samples, FID
against 16 test images. Asserts the run folders, sample arrays, grid and results files exist and
the FIDs and counts are finite numbers; and that a recipe without an authors' loop says so (exit
3). Skips (77) without CIFAR-10 (data/ or $EBMC_DATA), the Inception weights or torch.
    test_realdata.py EBMC_BIN SOURCE_DIR
"""
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    ebmc, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    script = os.path.join(src, "bench", "realdata.sh")
    env = dict(os.environ, EBMC_BIN=ebmc)

    r = subprocess.run(["bash", script, "--recipe", "coopnets"], env=env, cwd=src,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "no authors' PyTorch loop wired yet" in r.stderr, (r.returncode, r.stderr)

    # the settings check: the small config passes; one changed learning rate fails it
    chk = [sys.executable, os.path.join(src, "bench", "authors", "dualmcmc_cifar10.py"), "--data", "-",
           "--out", "-", "--ngf", "16", "--ndf", "16", "--nif", "16", "--batch-size", "32", "--minutes", "0",
           "--check-config"]
    ini = os.path.join(src, "configs", "cifar10_dual_mcmc_small.ini")
    try:
        import torch  # noqa: F401  (the authors' script imports it)
        have_torch = True
    except ImportError:
        have_torch = False
    if have_torch:
        r = subprocess.run(chk + [ini], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "38/38 settings equal" in r.stdout, (r.returncode, r.stdout, r.stderr)
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.ini")
            open(bad, "w").write(open(ini).read().replace("lr_g = 3e-4", "lr_g = 3.1e-4"))
            r = subprocess.run(chk + [bad], capture_output=True, text=True, timeout=120)
            assert r.returncode == 1 and "train.lr_g" in r.stdout, (r.returncode, r.stdout, r.stderr)

    with tempfile.TemporaryDirectory() as d:
        out, res = os.path.join(d, "out"), os.path.join(d, "res")
        r = subprocess.run(["bash", script, "--minutes", "0.05", "--parallel", "--samples", "16", "--ref-n", "16",
                            "--threads", "1", "--out", out, "--results", res],
                           env=env, cwd=src, capture_output=True, text=True, timeout=600)
        if r.returncode == 77:
            print(r.stderr.strip())
            return 77
        assert r.returncode == 0, f"exit {r.returncode}\n{r.stderr[-3000:]}"
        js = glob.glob(os.path.join(res, "realdata-dualmcmc-*.json"))
        assert len(js) == 1, js
        j = json.load(open(js[0]))
        for side in ("ebmc", "authors"):
            s = j[side]
            assert s["iterations"] >= 1, (side, s)
            assert math.isfinite(s["images_per_s"]) and s["images_per_s"] > 0, (side, s)
            f = s["fid"]["revised"]
            assert isinstance(f, float) and math.isfinite(f) and f > 0, (side, f)
        for p in (js[0][:-5] + ".md", js[0][:-5] + ".png",
                  os.path.join(out, "ebmc", "samples", "revised.npy"),
                  os.path.join(out, "authors", "revised.npy"), os.path.join(out, "authors", "ckpt.pth")):
            assert os.path.getsize(p) > 0, p
        for p in (os.path.join(out, "ebmc", "samples", "revised.npy"), os.path.join(out, "authors", "revised.npy")):
            a = np.load(p)
            assert a.shape == (16, 32, 32, 3) and a.dtype == np.uint8, (p, a.shape, a.dtype)
        print(f"realdata_smoke: ebmc {j['ebmc']['iterations']} it, FID {j['ebmc']['fid']['revised']:.1f}; "
              f"authors {j['authors']['iterations']} it, FID {j['authors']['fid']['revised']:.1f} (16 samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
