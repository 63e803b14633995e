#!/usr/bin/env python3
"""Turns a Dual-MCMC authors' checkpoint (a PyTorch .pth holding a dict with netE, netG, netI and
optimiser states, as jcui1224/dual-MCMC's train.py saves it) into an ebmc run directory that
`ebmc sample`, `ebmc eval` and `ebmc score` accept. The networks' state_dict names are ebmc's
already (E, G, I of model.arch = dualmcmc_cifar10 / dualmcmc_celeba64); a DataParallel "module."
prefix is dropped; optimiser states are not imported (the run starts at iteration 0 with fresh
Adam state). The config (e.g. configs/cifar10_dual_mcmc.ini) must describe the same architecture:
`ebmc import` refuses a tensor it lacks, one of another shape and one left over.

    python3 scripts/import_dualmcmc.py ckpt.pth configs/cifar10_dual_mcmc.ini --out runs/authors \\
        [--ebmc build/ebmc] [section.key=value ...]

Needs PyTorch (to read the .pth) and numpy."""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_inception import write_safetensors  # noqa: E402  (the same safetensors writer)


def state_dict(v):
    sd = v.state_dict() if hasattr(v, "state_dict") else v
    return {(k[7:] if k.startswith("module.") else k): t for k, t in sd.items() if not k.endswith("num_batches_tracked")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pth")
    ap.add_argument("config")
    ap.add_argument("--out", required=True, help="the run directory to create")
    ap.add_argument("--ebmc", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "ebmc"))
    a, overrides = ap.parse_known_args()
    import torch

    # one message and exit 65 (README: a missing or malformed file), never a traceback
    if not os.path.isfile(a.pth):
        print("import_dualmcmc: %s: %s" % (a.pth, "not a regular file" if os.path.exists(a.pth) else
                                           "no such file"), file=sys.stderr)
        sys.exit(65)
    try:
        ck = torch.load(a.pth, map_location="cpu")
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... by format
        print("import_dualmcmc: %s: not a PyTorch checkpoint torch.load reads (%s: %s)" %
              (a.pth, type(e).__name__, str(e).splitlines()[0] if str(e) else ""), file=sys.stderr)
        sys.exit(65)
    if not isinstance(ck, dict):
        print("import_dualmcmc: %s holds a %s, not the dict of netE, netG, netI" % (a.pth, type(ck).__name__),
              file=sys.stderr)
        sys.exit(65)
    missing = [k for k in ("netE", "netG", "netI") if k not in ck]
    if missing:
        print("import_dualmcmc: %s has no %s (keys: %s)" % (a.pth, ", ".join(missing), ", ".join(map(str, ck))),
              file=sys.stderr)
        sys.exit(65)
    with tempfile.TemporaryDirectory() as d:
        for key, name in (("netE", "E"), ("netG", "G"), ("netI", "I")):
            sd = state_dict(ck[key])
            write_safetensors(os.path.join(d, name + ".safetensors"),
                              {k: v.detach().to(torch.float32).numpy() for k, v in sd.items()},
                              {"source": os.path.basename(a.pth), "net": key})
        r = subprocess.run([a.ebmc, "import", a.config, d, "--out", a.out] + overrides)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
