#!/usr/bin/env python3
"""ebmc's Inception-v3 (CPU backend, float32) against pytorch-fid's network in PyTorch (float64),
both with the same random weights.

The PyTorch side is pytorch-fid's definition (mseitzer/pytorch-fid, src/pytorch_fid/inception.py:
fid_inception_v3() and InceptionV3's blocks/forward), rebuilt here from torchvision's Inception3
and the FIDInceptionA/C/E_1/E_2 classes copied from it, since pytorch-fid is not a Debian package.
Random weights (He-scaled convolutions, BatchNorm statistics near 1) go through
scripts/convert_inception.py, as real weights would; the input is 2 images of 32 x 32 in [0, 1]
(pytorch-fid's range; ebmc reads 2x - 1) resized to 299 inside both networks.

Tolerance, derived: a float32 convolution of K-term dot products carries a relative error of
about sqrt(K) u (u = 2^-24, rounding errors of random sign); layers compose, so along the longest
path of the network the relative errors add up to at most sum_l sqrt(K_l) u (~1500 u here); a
factor 4 covers the spread. Checked in the relative L2 norm of pool3 and of the logits, and
element-wise against the same bound times the largest |value|.

usage: test_inception_torch.py INCEPTION_DUMP CONVERT_SCRIPT   (exit 77: PyTorch missing)"""
import math
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision.models.inception as tvi
except ImportError as e:
    print("skip: %s" % e)
    sys.exit(77)


# ---- pytorch-fid's blocks (verbatim forward methods) ----
class FIDInceptionA(tvi.InceptionA):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(tvi.InceptionC):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b = self.branch7x7dbl_1(x)
        b = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(b))))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, b, branch_pool], 1)


class FIDInceptionE_1(tvi.InceptionE):
    pool = "avg"

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        else:  # FIDInceptionE_2: max pooling
            branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, b3, bd, branch_pool], 1)


class FIDInceptionE_2(FIDInceptionE_1):
    pool = "max"


def fid_inception_v3():
    m = tvi.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    m.Mixed_5b = FIDInceptionA(192, pool_features=32)
    m.Mixed_5c = FIDInceptionA(256, pool_features=64)
    m.Mixed_5d = FIDInceptionA(288, pool_features=64)
    m.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    m.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    m.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    m.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    m.Mixed_7b = FIDInceptionE_1(1280)
    m.Mixed_7c = FIDInceptionE_2(2048)
    return m


def pool3(m, x):
    """pytorch-fid's InceptionV3(resize_input=True, normalize_input=True) up to block 3."""
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    for mod in [m.Conv2d_1a_3x3, m.Conv2d_2a_3x3, m.Conv2d_2b_3x3]:
        x = mod(x)
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    x = m.Conv2d_4a_3x3(m.Conv2d_3b_1x1(x))
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    for name in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                 "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
        x = getattr(m, name)(x)
    return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def randomize(m, g):
    for mod in m.modules():
        if isinstance(mod, torch.nn.Conv2d):
            fan_in = mod.weight[0].numel()
            mod.weight.data = torch.randn(mod.weight.shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.data = torch.rand(c, generator=g) + 0.5
            mod.bias.data = (torch.rand(c, generator=g) - 0.5) * 0.4
            mod.running_mean.data = (torch.rand(c, generator=g) - 0.5) * 0.4
            mod.running_var.data = torch.rand(c, generator=g) + 0.5
    m.fc.weight.data = torch.randn(m.fc.weight.shape, generator=g) / math.sqrt(2048)
    m.fc.bias.data = torch.randn(m.fc.bias.shape, generator=g)


def path_bound(m):
    """sum of sqrt(K) over the convolutions of the longest branch of each block"""
    def k(mod):
        return math.sqrt(mod.conv.weight[0].numel())
    s = sum(k(getattr(m, n)) for n in ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1",
                                        "Conv2d_4a_3x3"])
    for name in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                 "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
        s += sum(k(c) for c in getattr(m, name).children())  # every branch: an upper bound of the longest
    return s


def main():
    dump, convert = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    m = fid_inception_v3()
    randomize(m, g)
    m.eval()
    x = torch.rand((2, 3, 32, 32), generator=g)
    with tempfile.TemporaryDirectory() as d:
        pth, st = os.path.join(d, "w.pth"), os.path.join(d, "w.safetensors")
        torch.save(m.state_dict(), pth)
        subprocess.run([sys.executable, convert, pth, st, "--kind", "random-test-weights"], check=True)
        xn = os.path.join(d, "x.npy")
        np.save(xn, (2 * x - 1).numpy().astype(np.float32))
        p3, lg = os.path.join(d, "pool3.npy"), os.path.join(d, "logits.npy")
        subprocess.run([dump, st, xn, p3, lg], check=True)
        got_p, got_l = np.load(p3).astype(np.float64), np.load(lg).astype(np.float64)
    m64 = m.double()
    with torch.no_grad():
        ref_p = pool3(m64, x.double())
        ref_l = (ref_p @ m64.fc.weight.t()).numpy()  # the fc without bias (ebmc's IS logits)
        ref_p = ref_p.numpy()
    tol = 4 * path_bound(m) * 2.0 ** -24
    ok = True
    for name, got, ref in [("pool3", got_p, ref_p), ("logits", got_l, ref_l)]:
        rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        worst = np.abs(got - ref).max() / np.abs(ref).max()
        print("%-6s shape %s: relative L2 error %.2e, worst element %.2e of max|ref| (tolerance %.2e)"
              % (name, got.shape, rel, worst, tol))
        ok = ok and rel <= tol and worst <= tol and got.shape == ref.shape
    print("inception oracle:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
