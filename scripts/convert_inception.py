#!/usr/bin/env python3
"""Converts pytorch-fid's FID Inception weights (a PyTorch .pth state_dict) into the safetensors
file `ebmc eval` reads (--weights, or $EBMC_INCEPTION).

    wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception.safetensors

Needs PyTorch (to read the .pth) and numpy. The tensors keep their state_dict names
(Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.running_var, ..., fc.weight, fc.bias) as
float32; BatchNorm's num_batches_tracked counters are dropped (eval mode does not read them).
The metadata records what was converted: "ebmc_inception" (the .pth's name without extension,
or --kind) and "source_sha256" (of the .pth). Refuses a state_dict that is not the FID Inception
(missing Mixed_7c, or an fc layer other than 2048 -> 1008: torchvision's ImageNet Inception has
1000 classes and other weights, and gives other FID values)."""
import argparse
import hashlib
import json
import os
import struct
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_safetensors(path, tensors, meta):
    """The safetensors layout: u64 header length, JSON header (dtype, shape, data_offsets), data."""
    header, offset, blobs = {"__metadata__": meta}, 0, []
    for name in sorted(tensors):
        a = tensors[name]
        b = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pth", help="pt_inception-2015-12-05-6726825d.pth (pytorch-fid's release)")
    ap.add_argument("out", help="the .safetensors to write")
    ap.add_argument("--kind", help="the metadata 'ebmc_inception' (default: the .pth's name)")
    a = ap.parse_args()
    import torch

    sd = torch.load(a.pth, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    need = ["Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight"]
    missing = [k for k in need if k not in sd]
    if missing or tuple(sd["fc.weight"].shape) != (1008, 2048):
        sys.exit("convert_inception: %s is not pytorch-fid's FID Inception (missing %s, or fc is not 2048 -> 1008); "
                 "download https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth" % (a.pth, missing or "nothing"))
    tensors = {k: v.detach().to(torch.float32).numpy() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    kind = a.kind or os.path.splitext(os.path.basename(a.pth))[0]
    write_safetensors(a.out, tensors, {"ebmc_inception": kind, "source_sha256": sha256(a.pth)})
    print("convert_inception: %d tensors of %s written to %s (ebmc_inception = %s)" % (len(tensors), a.pth, a.out, kind))


if __name__ == "__main__":
    main()
