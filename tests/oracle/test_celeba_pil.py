#!/usr/bin/env python3
"""CelebA as the Dual-MCMC authors prepare it, against Pillow itself: PNG images of CelebA's size
(178 x 218; PNG so that both sides decode the same pixels) named like CelebA's files go through
`ebmc data` with data.resize = pil_bilinear, the authors' crop (15, 40, 163, 188) and size 64,
and must equal PIL's img.crop(box).resize((64, 64), Image.BILINEAR) (what torchvision's
Resize(64) does to the 148 x 148 crop) byte for byte; one non-square region (the centred
square of a 90 x 50 image, upscaled to 64) too. data.split = celeba_train keeps files 1..162770,
or with data.partition the rows marked 0.

usage: test_celeba_pil.py EBMC   (exit 77 without numpy or Pillow)"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image
except ImportError as e:
    print("skip: %s" % e)
    sys.exit(77)


def image(rng, w, h):
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = 127 + 100 * np.sin(xx / 7.0 + rng.uniform(0, 6))[..., None] * np.cos(yy / 11.0)[..., None]
    noise = rng.integers(-40, 40, (h, w, 3))
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def ebmc_data(ebmc, d, folder, out, extra):
    cfg = os.path.join(d, "c.ini")
    with open(cfg, "w") as f:
        f.write("[data]\ndataset = images\n")
    subprocess.run([ebmc, "data", cfg, "data.path=" + folder, "data.size=64", "data.resize=pil_bilinear",
                    "data.cache=" + os.path.join(d, out + ".cache"), "--out", os.path.join(d, out)] + extra, check=True)
    return np.load(os.path.join(d, out))


def main():
    ebmc = sys.argv[1]
    rng = np.random.default_rng(7)
    ok = True
    with tempfile.TemporaryDirectory() as d:
        folder = os.path.join(d, "img")
        os.mkdir(folder)
        names = ["000001.png", "000002.png", "162770.png", "162771.png", "202599.png"]
        pix = {n: image(rng, 178, 218) for n in names}
        for n, a in pix.items():
            Image.fromarray(a).save(os.path.join(folder, n))
        box = (15, 40, 163, 188)
        got = ebmc_data(ebmc, d, folder, "train.npy", ["data.crop=15,40,163,188", "data.split=celeba_train"])
        want = np.stack([np.asarray(Image.fromarray(pix[n]).crop(box).resize((64, 64), Image.BILINEAR))
                         for n in names[:3]])
        diff = np.abs(got.astype(int) - want.astype(int))
        print("celeba_train: %d of %d images kept (want 3); max |ebmc - PIL| = %d over %s"
              % (got.shape[0], len(names), diff.max() if got.shape == want.shape else -1, want.shape))
        ok = ok and got.shape == want.shape and diff.max() == 0
        part = os.path.join(d, "list_eval_partition.txt")
        with open(part, "w") as f:
            f.write("000001.jpg 0\n000002.jpg 1\n162770.jpg 2\n162771.jpg 0\n202599.jpg 2\n")
        got = ebmc_data(ebmc, d, folder, "part.npy", ["data.crop=15,40,163,188", "data.split=celeba_train",
                                                      "data.partition=" + part])
        want = np.stack([np.asarray(Image.fromarray(pix[n]).crop(box).resize((64, 64), Image.BILINEAR))
                         for n in ("000001.png", "162771.png")])
        print("partition file: %d images kept (want 2), identical to PIL: %s"
              % (got.shape[0], got.shape == want.shape and np.array_equal(got, want)))
        ok = ok and got.shape == want.shape and np.array_equal(got, want)
        small = os.path.join(d, "small")
        os.mkdir(small)
        a = image(rng, 90, 50)
        Image.fromarray(a).save(os.path.join(small, "x.png"))
        got = ebmc_data(ebmc, d, small, "up.npy", [])  # the centred 50 x 50 square, upscaled
        want = np.asarray(Image.fromarray(a).crop((20, 0, 70, 50)).resize((64, 64), Image.BILINEAR))[None]
        print("upscaling 50 -> 64: identical to PIL: %s" % np.array_equal(got, want))
        ok = ok and np.array_equal(got, want)
    print("celeba PIL oracle:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
