#!/usr/bin/env python3
"""`ebmc import` through scripts/import_dualmcmc.py: the networks of a tiny trained Dual-MCMC run
are packed the way the authors' train.py saves them (torch.save of a dict with netE, netG, netI as
state_dicts, a DataParallel "module." prefix on netE, BatchNorm counters as int64, an optimiser
state), imported into a new run directory, and both runs sample bit-identical images with the same
seed (generator and EBM-revised arrays); a checkpoint of another width is refused (exit 65).

usage: test_import_torch.py EBMC SOURCE_DIR   (exit 77 without PyTorch)"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:
    print("skip: %s" % e)
    sys.exit(77)

DT = {"F32": np.float32, "I64": np.int64, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy())
    return out


def main():
    ebmc, src = sys.argv[1], sys.argv[2]
    cfg = os.path.join(src, "configs", "quickstart.ini")
    common = ["train.batch_size=10", "data.count=20", "run.backend=cpu"]
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([ebmc, "train", cfg, "run.out_dir=" + d, "run.name=a", "train.iterations=2",
                        "log.ckpt_every=2"] + common, check=True)
        ck = os.path.join(d, "a", "checkpoints", "iter_00000002")
        nets = {k: read_safetensors(os.path.join(ck, n + ".safetensors")) for k, n in
                (("netE", "E"), ("netG", "G"), ("netI", "I"))}
        nets["netE"] = {"module." + k: v for k, v in nets["netE"].items()}  # as DataParallel saves it
        pth = os.path.join(d, "authors.pth")
        torch.save(dict(nets, optE={"state": {}}, epoch=1), pth)
        imp = [sys.executable, os.path.join(src, "scripts", "import_dualmcmc.py"), pth, cfg, "--ebmc", ebmc]
        subprocess.run(imp + ["--out", os.path.join(d, "b")] + common, check=True)
        for run in ("a", "b"):
            subprocess.run([ebmc, "sample", os.path.join(d, run), "--n", "10", "--seed", "7", "--out",
                            os.path.join(d, "s_" + run)], check=True)
        ok = True
        for arr in ("generator", "revised"):
            x, y = (np.load(os.path.join(d, "s_" + r, arr + ".npy")) for r in ("a", "b"))
            same = x.shape == y.shape and np.array_equal(x, y)
            print("%s samples of the trained and the imported run: %s %s" % (arr, x.shape, "identical" if same else "DIFFER"))
            ok = ok and same
        r = subprocess.run(imp + ["--out", os.path.join(d, "c"), "model.ndf=16"] + common)
        print("import into another width (model.ndf=16): exit %d (want 65)" % r.returncode)
        ok = ok and r.returncode == 65
        # not a zip (a legacy or damaged .pth), not a dict, a FIFO: one message, exit 65, no traceback
        bad = os.path.join(d, "text.pth")
        with open(bad, "w") as f:
            f.write("not a checkpoint\n")
        lst = os.path.join(d, "list.pth")
        torch.save([1, 2], lst)
        fifo = os.path.join(d, "fifo.pth")
        os.mkfifo(fifo)
        for p in (bad, lst, fifo):
            r = subprocess.run([sys.executable, imp[1], p, cfg, "--ebmc", ebmc, "--out", os.path.join(d, "x")],
                               capture_output=True, text=True, timeout=60)
            good = r.returncode == 65 and "Traceback" not in r.stderr and p in r.stderr
            print("import of %s: exit %d, %s (want 65, one message)" % (os.path.basename(p), r.returncode,
                                                                      r.stderr.strip().splitlines()[-1:]))
            ok = ok and good
    print("import oracle:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
