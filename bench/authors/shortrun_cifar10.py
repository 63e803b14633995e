"""The short-run EBM authors' CIFAR-10 training loop, for bench/realdata.sh --recipe shortrun.

Copied from enijkamp/short_run (https://github.com/enijkamp/short_run), commit
d779e9af02f234abb708d9bf1a4e3117202650f8 (2019-10-28), train_cifar10_minimal.py, by Erik
Nijkamp, Mitch Hill, Song-Chun Zhu and Ying Nian Wu, "Learning Non-Convergent Non-Persistent
Short-Run MCMC Toward Energy-Based Model", NeurIPS 2019. The repository carries no licence file;
this copy is kept for a like-for-like benchmark with attribution. The whole file is the loop:
  :4-11 settings   :19-34 the net F   :40-51 data noise, p_0, sample_q   :56-63 Adam and the step
Changed, and nothing else: the width n_f and the batch m (command line; bench/realdata.sh passes
those of configs/cifar10_shortrun_small.ini); the data (the CIFAR-10 binary training files ebmc
reads, ToTensor + Normalize(0.5, 0.5) as :38; Resize(32) is the identity); device = cpu; threads
from OMP_NUM_THREADS; a wall-time limit (--minutes from process start, checked at the end of each
iteration, as ebmc finishes its iteration on SIGTERM) instead of n_i = 10^5; the plotting/printing
every 100 iterations (:65-67) replaced by a progress line; output: ckpt.pth, result.json and
samples.npy (N samples by the code's own sampler sample_q, K = 100 from U[-1, 1] in batches of m,
as its plots; uint8 NHWC quantised as ebmc sample does: mul(255).add(0.5).clamp(0, 255) of
(x + 1) / 2 after the plot's clamp to [-1, 1]).
"""
import time
T_START = time.time()

import argparse
import json
import os
import sys

import numpy as np
import torch as t, torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cifar10_bin import load_cifar10_bin, to_uint8_nhwc  # noqa: E402  (not the authors')

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--data", required=True, help="folder with data_batch_1..5.bin")
ap.add_argument("--out", required=True)
ap.add_argument("--nf", type=int, required=True)
ap.add_argument("--batch-size", type=int, required=True)
ap.add_argument("--minutes", type=float, required=True)
ap.add_argument("--samples", type=int, default=0)
ap.add_argument("--progress-every", type=int, default=10)
a = ap.parse_args()
t.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

seed = 1
im_sz = 32
sigma = 3e-2 # decrease until training is unstable
n_ch = 3
m = a.batch_size  # was 8**2
K = 100
n_f = a.nf  # was 64 # increase until compute is exhausted
n_i = 10**5

t.manual_seed(seed)

device = t.device('cpu')

class F(nn.Module):
    def __init__(self, n_c=n_ch, n_f=n_f, l=0.2):
        super(F, self).__init__()
        self.f = nn.Sequential(
            nn.Conv2d(n_c, n_f, 3, 1, 1),
            nn.LeakyReLU(l),
            nn.Conv2d(n_f, n_f * 2, 4, 2, 1),
            nn.LeakyReLU(l),
            nn.Conv2d(n_f * 2, n_f * 4, 4, 2, 1),
            nn.LeakyReLU(l),
            nn.Conv2d(n_f * 4, n_f * 8, 4, 2, 1),
            nn.LeakyReLU(l),
            nn.Conv2d(n_f * 8, 1, 4, 1, 0))

    def forward(self, x):
        return self.f(x).squeeze()

f = F().to(device)

p_d = load_cifar10_bin(a.data).to(device)
noise = lambda x: x + sigma * t.randn_like(x)
def sample_p_d():
    p_d_i = t.LongTensor(m).random_(0, p_d.shape[0])
    return noise(p_d[p_d_i]).detach()

sample_p_0 = lambda: t.FloatTensor(m, n_ch, im_sz, im_sz).uniform_(-1, 1).to(device)
def sample_q(K=K):
    x_k = t.autograd.Variable(sample_p_0(), requires_grad=True)
    for k in range(K):
        f_prime = t.autograd.grad(f(x_k).sum(), [x_k], retain_graph=True)[0]
        x_k.data += f_prime + 1e-2 * t.randn_like(x_k)
    return x_k.detach()

optim = t.optim.Adam(f.parameters(), lr=1e-4, betas=[.9, .999])

deadline = T_START + 60.0 * a.minutes
it = 0
for i in range(n_i):
    x_p_d, x_q = sample_p_d(), sample_q()
    L = f(x_p_d).mean() - f(x_q).mean()
    optim.zero_grad()
    (-L).backward()
    optim.step()
    it += 1
    if it % a.progress_every == 0:
        print(f"authors: iter {it} L {L.item():.4f} {time.time() - T_START:.0f}s", file=sys.stderr, flush=True)
    if time.time() >= deadline:
        break
t_end = time.time()

os.makedirs(a.out, exist_ok=True)
t.save({'iterations': it, 'f': f.state_dict(), 'optim': optim.state_dict()}, os.path.join(a.out, "ckpt.pth"))
res = {"side": "authors", "iterations": it, "stopped": "wall-time limit" if it < n_i else "n_i done",
       "batch_size": m, "threads": t.get_num_threads(), "wall_s": t_end - T_START,
       "images_per_s": it * m / max(t_end - T_START, 1e-9), "torch": t.__version__, "nf": n_f}
if a.samples > 0:
    t0 = time.time()
    out = []
    while sum(len(o) for o in out) < a.samples:
        out.append(to_uint8_nhwc(t.clamp(sample_q(), -1., 1.)))
    np.save(os.path.join(a.out, "samples.npy"), np.concatenate(out)[:a.samples])
    res["sample_s"] = time.time() - t0
    res["samples"] = a.samples
with open(os.path.join(a.out, "result.json"), "w") as fh:
    json.dump(res, fh, indent=1)
print(f"authors: {it} iterations in {res['wall_s']:.1f} s, {res['images_per_s']:.2f} images/s", file=sys.stderr)
