"""ebmc models in PyTorch: the networks of every ebmc recipe and architecture as torch modules with
ebmc's tensor names (its checkpoints load with load_state_dict(strict=True)), built from a run's
config.ini; the recipe's energy and its test-time sampler (`ebmc sample`) with ebmc's Philox noise.

One file; needs only torch and numpy (safetensors files are read with numpy; the `safetensors`
package is not needed). Copy it anywhere.

    import ebmc_torch
    run = ebmc_torch.load_run("runs/my-run")          # the newest checkpoint (or checkpoint=DIR)
    run.nets["E"]                                     # torch modules, eval mode: E, G, I as the recipe has them
    e = run.energy(x)                                 # x: (N, C, H, W) in [-1, 1] (images) or (N, D) points
    gen, revised = run.sample(64)                     # dualmcmc; each recipe: what `ebmc sample` writes

`run.energy(x)` is the energy `ebmc score` reports (README "Evaluation"): dualmcmc, persistent,
particles and jarzynski's mnist net output E; shortrun and jarzynski's shortrun net the score f
(E = -f); coopvaebm and coopnets -f(x) + |x|^2 / (2 sigma_ref^2); persistent image models are
fed (x + 1) / 2; the jarzynski Gaussian mixture U(x) = -log sum_k exp(-|x - a_k|^2/2 - z_k).
Spectral norm uses the checkpoint's u, v without a power iteration (torch's eval mode), as
`ebmc score` does. `run.sample(n)` returns the arrays `ebmc sample` writes (SAMPLE_NAMES), drawn
with the same Philox keys: the same samples within float32 rounding (Run.sample, per recipe).

The modules are the ones tests/oracle/test_nets_torch.py checks against ebmc's forward and
backward passes, element by element, for every architecture.
"""
import configparser
import contextlib
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.spectral_norm import SpectralNorm

# ------------------------------------------------------------------ constants of the nets

LRELU = 0.2           # every LeakyReLU of the recipes (TF default; short-run l=0.2; Dual-MCMC 0.2)
# CoopNets CIFAR port: the spec (3.1) names "LReLU" without a slope. ebmc uses 0.2; the port's
# nn.LeakyReLU() default would be 0.01 (see the report / models.c) -- kept as ebmc's here.
COOPNETS_LRELU = 0.01   # the port's nn.LeakyReLU() default


# ------------------------------------------------------------------ safetensors (stdlib + numpy)

_NP = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "|u1"}


def st_read(path):
    """-> (dict name -> numpy array, metadata dict)"""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, d in header.items():
        b, e = d["data_offsets"]
        dt = np.dtype(_NP[d["dtype"]])
        shape = [int(s) for s in d["shape"]]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != count * dt.itemsize:
            raise ValueError(f"{path}: {name}: {e - b} bytes for shape {shape} {d['dtype']}")
        a = np.frombuffer(buf, dtype=dt, count=count, offset=base + b).reshape(shape)
        out[name] = a.astype(dt.newbyteorder("="))
    return out, meta


def to_torch(a):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(torch.int64) if a.dtype.kind == "i" else t.to(torch.float32)

# ------------------------------------------------------------------ TensorFlow 'SAME' layers


def same_pad(size, k, s):
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """nn.Conv2d with TensorFlow 'SAME' padding (the extra pixel bottom/right)."""

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        t, b = same_pad(x.shape[2], k, s)
        l, r = same_pad(x.shape[3], k, s)
        return F.conv2d(F.pad(x, (l, r, t, b)), self.weight, self.bias, self.stride, 0)


class ConvTranspose2dSame(nn.ConvTranspose2d):
    """nn.ConvTranspose2d with TensorFlow 'SAME' output size H*s: the full (H-1)*s+k result,
    cropped by total//2 at the start (total = (H-1)*s + k - H*s)."""

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        h, w = x.shape[2], x.shape[3]
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, 0)
        th, tw = (h - 1) * s + k - h * s, (w - 1) * s + k - w * s
        assert th >= 0 and tw >= 0, "kernel smaller than stride: not needed here"
        return y[:, :, th // 2:th // 2 + h * s, tw // 2:tw // 2 + w * s]

# ------------------------------------------------------------------ Dual-MCMC (spec 1(e))


class EBMBlockStart(nn.Module):
    """h = conv3x3 -> ReLU -> conv3x3 -> [avgpool 2]; shortcut [avgpool 2] -> conv1x1."""

    def __init__(self, cin, cout, down):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.learnable_sc = cin != cout or down
        if self.learnable_sc:
            self.sc = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x)))
        y = x
        if self.down:
            h, y = F.avg_pool2d(h, 2), F.avg_pool2d(y, 2)
        if self.learnable_sc:
            y = self.sc(y)
        return h + y


class EBMBlock(EBMBlockStart):
    """h = ReLU -> conv3x3 -> ReLU -> conv3x3 -> [avgpool 2]; shortcut conv1x1 (when channels
    change or downsampling) -> [avgpool 2], else identity. (The layers are the start block's.)"""

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        y = self.sc(x) if self.learnable_sc else x
        if self.down:
            h, y = F.avg_pool2d(h, 2), F.avg_pool2d(y, 2)
        return h + y


def add_sn(module):
    """torch spectral_norm on every Conv2d and Linear (1 power iteration per training forward)."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.spectral_norm(m)          # in place: weight -> weight_orig, weight_u, weight_v
    return module


class DualE(nn.Module):
    def __init__(self, c, celeba):
        super().__init__()
        ndf = c["ndf"]
        if celeba:   # Start 3->ndf/16 down, then x2 channels per block, all down (64 -> 2)
            w = [ndf >> (4 - i) for i in range(5)]
            downs = [True] * 5
        else:        # Start 3->ndf down, Block down (1x1 sc), 2 identity blocks
            w = [ndf] * 4
            downs = [True, True, False, False]
        self.conv_1 = EBMBlockStart(c["img_c"], w[0], downs[0])
        for i in range(1, len(w)):
            setattr(self, f"block{i + 1}", EBMBlock(w[i - 1], w[i], downs[i]))
        self.nb = len(w)
        setattr(self, f"lin_{self.nb + 1}", nn.Linear(w[-1], 1, bias=False))
        add_sn(self)

    def forward(self, x):
        h = self.conv_1(x)
        for i in range(2, self.nb + 1):
            h = getattr(self, f"block{i}")(h)
        h = F.relu(h).mean(dim=(2, 3))                        # global average pool
        return (getattr(self, f"lin_{self.nb + 1}")(h),)


class GenBlock(nn.Module):
    """h = BN -> ReLU -> [bilinear x2, align_corners] -> conv3x3 -> BN -> ReLU -> conv3x3;
    shortcut [upsample] -> conv1x1 (when upsampling or channels change)."""

    def __init__(self, cin, cout, up):
        super().__init__()
        self.up = up
        self.bn_1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.bn_2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.learnable_sc = cin != cout or up
        if self.learnable_sc:
            self.sc = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x):
        h = F.relu(self.bn_1(x))
        y = x
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
        h = self.conv2(F.relu(self.bn_2(self.conv1(h))))
        if self.learnable_sc:
            y = self.sc(y)
        return h + y


class DualG(nn.Module):
    def __init__(self, c, celeba):
        super().__init__()
        ngf, nz = c["ngf"], c["nz"]
        self.ngf = ngf
        self.lin_1 = nn.Linear(nz, 16 * ngf)
        nb = 4 if celeba else 3
        cin = ngf
        for i in range(nb):
            cout = cin // 2 if celeba else cin
            setattr(self, f"block{i + 2}", GenBlock(cin, cout, True))
            cin = cout
        self.nb = nb
        setattr(self, f"bn_{nb + 2}", nn.BatchNorm2d(cin))
        setattr(self, f"conv{nb + 2}", nn.Conv2d(cin, c["img_c"], 3, 1, 1))
        # a per-channel constant added by any block conv reaches the loss only through BatchNorm
        # (conv1 -> bn_2; conv2 and sc -> the next block's bn_1, and its upsample -> 1x1 sc ->
        # ... -> the final BN), so all their bias gradients vanish analytically
        self.zero_grad_params = {f"block{i + 2}.{n}.bias" for i in range(nb)
                                 for n in ("conv1", "conv2", "sc")}

    def forward(self, z):
        h = self.lin_1(z.flatten(1)).view(-1, self.ngf, 4, 4)
        for i in range(self.nb):
            h = getattr(self, f"block{i + 2}")(h)
        h = F.relu(getattr(self, f"bn_{self.nb + 2}")(h))
        return (torch.tanh(getattr(self, f"conv{self.nb + 2}")(h)),)


class DualI(nn.Module):
    def __init__(self, c, celeba):
        super().__init__()
        nif, layers, cin = c["nif"], [], c["img_c"]
        for i in range(4):
            cout = nif << i
            if i == 0 and not celeba:
                layers.append(nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            else:
                layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=False))
            layers.append(nn.LeakyReLU(LRELU))
            cin = cout
        self.main = nn.Sequential(*layers)
        self.conv51 = nn.Conv2d(cin, c["nz"], 4, 1, 0)   # mu
        self.conv52 = nn.Conv2d(cin, c["nz"], 4, 1, 0)   # log-variance

    def forward(self, x):
        h = self.main(x)
        return self.conv51(h), self.conv52(h)

# ------------------------------------------------------------------ short-run (spec 3.2)


class ShortRunE(nn.Module):
    def __init__(self, c):
        super().__init__()
        nf = c["ndf"]
        self.f = nn.Sequential(
            nn.Conv2d(c["img_c"], nf, 3, 1, 1), nn.LeakyReLU(LRELU),
            nn.Conv2d(nf, nf * 2, 4, 2, 1), nn.LeakyReLU(LRELU),
            nn.Conv2d(nf * 2, nf * 4, 4, 2, 1), nn.LeakyReLU(LRELU),
            nn.Conv2d(nf * 4, nf * 8, 4, 2, 1), nn.LeakyReLU(LRELU),
            nn.Conv2d(nf * 8, 1, 4, 1, 0))

    def forward(self, x):
        return (self.f(x),)

# ------------------------------------------------------------------ CoopVAEBM (spec 2(b))


class CoopVaeE(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, ic = c["ndf"], c["img_c"]
        self.conv1 = Conv2dSame(ic, d, 3, 1)
        self.conv2 = Conv2dSame(d, 2 * d, 4, 2)
        self.conv3 = Conv2dSame(2 * d, 4 * d, 4, 2)
        self.conv4 = Conv2dSame(4 * d, 4 * d, 4, 2)
        hw = c["img_size"] // 8
        self.fc = nn.Conv2d(4 * d, 1, hw, 1, 0)           # 'VALID' conv over the whole map

    def forward(self, x):
        for m in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = F.leaky_relu(m(x), LRELU)
        return (self.fc(x),)


class CoopVaeI(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, ic, nz = c["nif"], c["img_c"], c["nz"]
        self.conv1 = Conv2dSame(ic, d, 3, 1)
        self.conv2 = Conv2dSame(d, 2 * d, 4, 2)
        self.conv3 = Conv2dSame(2 * d, 4 * d, 4, 2)
        self.conv4 = Conv2dSame(4 * d, 8 * d, 4, 2)
        flat = 8 * d * (c["img_size"] // 8) ** 2
        self.fc_mu = nn.Linear(flat, nz)
        self.fc_logstd = nn.Linear(flat, nz)

    def forward(self, x):
        for m in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = F.leaky_relu(m(x), LRELU)
        h = x.flatten(1)
        return self.fc_mu(h), 0.5 * self.fc_logstd(h)     # second head: 0.5 * dense = log-std


class TFBatchNorm2d(nn.Module):
    """tf.contrib.layers.batch_norm defaults: no gamma (scale=False: weight fixed at 1, kept as a
    buffer so the state_dict names stay torch's), eps 1e-3, decay 0.999 (momentum 0.001)."""

    def __init__(self, ch):
        super().__init__()
        self.register_buffer("weight", torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))
        self.register_buffer("running_mean", torch.zeros(ch))
        self.register_buffer("running_var", torch.ones(ch))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        self.num_batches_tracked += 1
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=True, momentum=0.001, eps=1e-3)


class CoopVaeG(nn.Module):
    def __init__(self, c):
        super().__init__()
        g, nz = c["ngf"], c["nz"]
        self.deconv1 = nn.ConvTranspose2d(nz, 4 * g, 4, 1, 0)   # 1x1 -> 4x4 'VALID'
        self.bn1 = TFBatchNorm2d(4 * g)
        self.deconv2 = ConvTranspose2dSame(4 * g, 2 * g, 4, 2)
        self.bn2 = TFBatchNorm2d(2 * g)
        self.deconv3 = ConvTranspose2dSame(2 * g, g, 4, 2)
        self.bn3 = TFBatchNorm2d(g)
        self.deconv4 = ConvTranspose2dSame(g, g, 3, 2)
        self.deconv5 = ConvTranspose2dSame(g, c["img_c"], 3, 1)
        self.zero_grad_params = {"deconv1.bias", "deconv2.bias", "deconv3.bias"}

    def forward(self, z):
        h = F.leaky_relu(self.bn1(self.deconv1(z)), LRELU)
        h = F.leaky_relu(self.bn2(self.deconv2(h)), LRELU)
        h = F.leaky_relu(self.bn3(self.deconv3(h)), LRELU)
        h = F.leaky_relu(self.deconv4(h), LRELU)
        return (torch.tanh(self.deconv5(h)),)

# ------------------------------------------------------------------ CoopNets CIFAR port (spec 3.1)


# FANG-Xiaolin/pytorch-CoopNets model/model.py at HEAD (0b8639e), Descriptor_cifar and
# Generator_cifar (lines 71-147), copied with the widths as parameters (ndf = ngf = 64 and
# z_size = nz = 100 are the port's; its commented-out lines dropped); the energy is the sum of the
# 100 fc outputs (the port backpropagates ones(num_chain, z_size)). 32x32 images only.
class CoopNetsE(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["ndf"]
        self.conv1 = nn.Conv2d(c["img_c"], d, kernel_size=5, stride=2, padding=1)
        self.conv2 = nn.Conv2d(d, 2 * d, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(2 * d, 4 * d, kernel_size=3, stride=1, padding=1)
        self.fc = nn.Linear(8 * 8 * 4 * d, 100)
        self.leakyrelu = nn.LeakyReLU()

    def forward(self, x):
        out = self.leakyrelu(self.conv1(x))
        out = self.leakyrelu(self.conv2(out))
        out = self.leakyrelu(self.conv3(out))
        out = out.view(out.size(0), -1)
        return (self.fc(out).sum(dim=1, keepdim=True),)


class CoopNetsG(nn.Module):
    def __init__(self, c):
        super().__init__()
        g = c["ngf"]
        self.convt1 = nn.ConvTranspose2d(c["nz"], 4 * g, kernel_size=4, stride=1, padding=0)
        self.convt2 = nn.ConvTranspose2d(4 * g, 2 * g, kernel_size=5, stride=2, padding=2, output_padding=1)
        self.convt3 = nn.ConvTranspose2d(2 * g, g, kernel_size=5, stride=2, padding=2, output_padding=1)
        self.convt4 = nn.ConvTranspose2d(g, c["img_c"], kernel_size=5, stride=2, padding=2, output_padding=1)
        self.bn1 = nn.BatchNorm2d(4 * g)
        self.bn2 = nn.BatchNorm2d(2 * g)
        self.bn3 = nn.BatchNorm2d(g)
        self.leakyrelu = nn.LeakyReLU()
        self.tanh = nn.Tanh()
        self.zero_grad_params = {"convt1.bias", "convt2.bias", "convt3.bias"}

    def forward(self, z):
        out = self.leakyrelu(self.bn1(self.convt1(z.view(z.size(0), -1, 1, 1))))
        out = self.leakyrelu(self.bn2(self.convt2(out)))
        out = self.leakyrelu(self.bn3(self.convt3(out)))
        return (self.tanh(self.convt4(out)),)

# ------------------------------------------------------------------ toy2d, mnist (ebmc's own)


class Toy2d(nn.Module):
    def __init__(self, c, role):
        super().__init__()
        hid = c["hidden"]
        d_in = c["nz"] if role == "G" else c["img_c"]
        act = (lambda: nn.SiLU()) if role == "E" else (lambda: nn.LeakyReLU(LRELU))
        layers = [nn.Linear(d_in, hid), act(), nn.Linear(hid, hid), act()]
        self.role = role
        if role == "E":
            layers.append(nn.Linear(hid, 1))
        elif role == "G":
            layers.append(nn.Linear(hid, c["img_c"]))
        self.net = nn.Sequential(*layers)
        if role == "I":
            self.mu = nn.Linear(hid, c["nz"])
            self.logvar = nn.Linear(hid, c["nz"])

    def forward(self, x):
        h = self.net(x.flatten(1))
        return (self.mu(h), self.logvar(h)) if self.role == "I" else (h,)


class MnistG(nn.Module):
    def __init__(self, c):
        super().__init__()
        g, self.s = c["ngf"], c["img_size"] // 4
        self.g = g
        self.lin = nn.Linear(c["nz"], 4 * g * self.s * self.s)
        self.bn1 = nn.BatchNorm2d(4 * g)
        self.up1 = nn.ConvTranspose2d(4 * g, 2 * g, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(2 * g)
        self.up2 = nn.ConvTranspose2d(2 * g, g, 4, 2, 1)
        self.bn3 = nn.BatchNorm2d(g)
        self.out = nn.Conv2d(g, c["img_c"], 3, 1, 1)
        self.zero_grad_params = {"up1.bias", "up2.bias"}   # lin.bias is per position: not zero

    def forward(self, z):
        h = self.lin(z.flatten(1)).view(-1, 4 * self.g, self.s, self.s)
        h = F.relu(self.bn1(h))
        h = F.relu(self.bn2(self.up1(h)))
        h = F.relu(self.bn3(self.up2(h)))
        return (torch.tanh(self.out(h)),)


class MnistEI(nn.Module):
    def __init__(self, c, role):
        super().__init__()
        d = c["ndf"] if role == "E" else c["nif"]
        s = c["img_size"] // 4
        self.role = role
        self.conv1 = nn.Conv2d(c["img_c"], d, 3, 1, 1)
        self.conv2 = nn.Conv2d(d, 2 * d, 4, 2, 1)
        self.conv3 = nn.Conv2d(2 * d, 4 * d, 4, 2, 1)
        if role == "E":
            self.head = nn.Conv2d(4 * d, 1, s, 1, 0)
        else:
            self.mu = nn.Conv2d(4 * d, c["nz"], s, 1, 0)
            self.logvar = nn.Conv2d(4 * d, c["nz"], s, 1, 0)

    def forward(self, x):
        for m in (self.conv1, self.conv2, self.conv3):
            x = F.leaky_relu(m(x), LRELU)
        return (self.head(x),) if self.role == "E" else (self.mu(x), self.logvar(x))

# ------------------------------------------------------------------ IGEBM (spec 3.3)


class IgebmConv(nn.Module):
    """openai/ebm_code_release conv_block as ebmc's igebm uses it: 3x3 'SAME', no bias, the
    spectral_normed_weight of utils.py (one power iteration per training forward, as torch's
    spectral_norm; with lower_bound the divisor is max(sigma + 1e-6, 1)), optional extra bias gb
    added to the input and learned scale g on the output."""

    def __init__(self, c_in, c_out, extra_bias, scale, lower_bound):
        super().__init__()
        self.weight_orig = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.register_buffer("weight_u", F.normalize(torch.randn(c_out), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn(c_in * 9), dim=0))
        self.gb = nn.Parameter(torch.zeros(c_in)) if extra_bias else None
        self.g = nn.Parameter(torch.ones(c_out)) if scale else None
        self.lower_bound = lower_bound

    def sigma(self):
        """the spectral norm estimate (one power iteration in training mode), lower-bounded by 1
        where the authors' code bounds it"""
        w = self.weight_orig.flatten(1)
        with torch.no_grad():
            if self.training:
                self.weight_v.copy_(F.normalize(w.t() @ self.weight_u, dim=0, eps=1e-12))
                self.weight_u.copy_(F.normalize(w @ self.weight_v, dim=0, eps=1e-12))
        sigma = self.weight_u @ (w @ self.weight_v)
        return torch.clamp(sigma + 1e-6, min=1.0) if self.lower_bound else sigma

    def forward(self, x):
        if self.gb is not None:
            x = x + self.gb.view(1, -1, 1, 1)
        y = F.conv2d(x, self.weight_orig / self.sigma(), None, 1, 1)
        return y * self.g.view(1, -1, 1, 1) if self.g is not None else y


class IgebmE(nn.Module):
    """ResNet32Large (models.py), unconditional: c1_pre, 9 residual blocks, ReLU, sum pool, fc5"""
    NAMES = ["res_optim", "res_1", "res_2", "res_3", "res_4", "res_5", "res_6", "res_7", "res_8"]

    def __init__(self, c):
        super().__init__()
        d = c["ndf"]
        self.c1_pre = IgebmConv(c["img_c"], d, False, False, False)
        w = d
        for i, name in enumerate(self.NAMES):
            wo = d << (i // 3)
            setattr(self, name + "_res_c1", IgebmConv(w, wo, True, False, False))
            setattr(self, name + "_res_c2", IgebmConv(wo, wo, True, True, True))
            if w != wo:
                setattr(self, name + "_res_adaptive", IgebmConv(w, wo, False, False, False))
            w = wo
        self.fc5 = nn.Linear(w, 1)
        # ResNet32Large(train=True)'s tf.layers.dropout after each block's c1 (utils.py:538-539):
        # None (off, test time) or a callable (block index, c1 output) -> its dropped-out value
        self.dropout = None

    def forward(self, x):
        h = F.leaky_relu(self.c1_pre(x), LRELU)
        for i, name in enumerate(self.NAMES):
            c1 = getattr(self, name + "_res_c1")(h)
            if self.dropout is not None:
                c1 = self.dropout(i, c1)
            r = getattr(self, name + "_res_c2")(F.leaky_relu(c1, LRELU))
            sc = getattr(self, name + "_res_adaptive")(h) if hasattr(self, name + "_res_adaptive") else h
            r = r + sc
            if i % 3 == 0:
                r = F.avg_pool2d(r, 2)
            h = F.leaky_relu(r, LRELU)
        return (self.fc5(F.relu(h).sum(dim=(2, 3))),)


# ------------------------------------------------------------------ particle dynamics (models_pd.c)


class PSwish(nn.Module):
    """x * sigmoid(beta * x) with a learnable slope beta per unit (necludov/particle-EBMs Swish)"""

    def __init__(self, n):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(n))

    def forward(self, x):
        b = self.beta.view(1, -1, *([1] * (x.dim() - 2)))
        return x * torch.sigmoid(b * x)


class _Seq(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.net = nn.Sequential(*layers)


class PdMlp(nn.Module):
    """models.EBM(networks.SmallMLP(D), base): E(x) = MLP(x) - log N(x; mu, exp(logstd))"""

    def __init__(self, c):
        super().__init__()
        d, h = c["img_c"], c["hidden"]
        self.net = _Seq([nn.Linear(d, h), PSwish(h), nn.Linear(h, h), PSwish(h), nn.Linear(h, 1)])
        self.base_mu = nn.Parameter(torch.zeros(d))
        self.base_logstd = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        x = x.flatten(1)
        base = torch.distributions.Normal(self.base_mu, self.base_logstd.exp())
        return (self.net.net(x) - base.log_prob(x).sum(1, keepdim=True),)


class PdMnist(nn.Module):
    """models.EBM(networks.MNISTSmallConvNet(nc, relu=False)): five spectral-norm convolutions
    with Swish, then Linear(nc, 1)"""

    def __init__(self, c):
        super().__init__()
        nc, layers, cin = c["ndf"], [], 1
        for k, s, p in ((3, 1, 1), (4, 2, 1), (4, 2, 1), (4, 2, 1), (3, 1, 0)):
            layers += [nn.utils.spectral_norm(nn.Conv2d(cin, nc, k, s, p)), PSwish(nc)]
            cin = nc
        self.net = _Seq(layers)
        self.net.out = nn.Linear(nc, 1)

    def forward(self, x):
        return (self.net.out(self.net.net(x).flatten(1)),)


# ebmc_model_defaults() of src/host/models.c (the values a case does not override)
DEFAULTS = {
    "dualmcmc_cifar10": dict(nz=128, ngf=512, ndf=512, nif=128, img_c=3, img_size=32, hidden=0),
    "dualmcmc_celeba64": dict(nz=128, ngf=1024, ndf=1024, nif=128, img_c=3, img_size=64, hidden=0),
    "shortrun": dict(nz=0, ngf=0, ndf=64, nif=0, img_c=3, img_size=32, hidden=0),
    "coopvaebm": dict(nz=100, ngf=64, ndf=64, nif=64, img_c=3, img_size=32, hidden=0),
    "coopnets_cifar": dict(nz=100, ngf=64, ndf=64, nif=0, img_c=3, img_size=32, hidden=0),
    "toy2d": dict(nz=2, ngf=0, ndf=0, nif=0, img_c=2, img_size=1, hidden=128),
    "mnist": dict(nz=16, ngf=32, ndf=32, nif=32, img_c=1, img_size=28, hidden=0),
    "igebm": dict(nz=0, ngf=0, ndf=128, nif=0, img_c=3, img_size=32, hidden=0),
    "pd_mlp": dict(nz=0, ngf=0, ndf=0, nif=0, img_c=2, img_size=1, hidden=300),
    "pd_mnist": dict(nz=0, ngf=0, ndf=64, nif=0, img_c=1, img_size=28, hidden=0),
}


def build(arch, role, c):
    if arch in ("dualmcmc_cifar10", "dualmcmc_celeba64"):
        celeba = arch == "dualmcmc_celeba64"
        return {"E": DualE, "G": DualG, "I": DualI}[role](c, celeba)
    if arch == "shortrun":
        return ShortRunE(c)
    if arch == "coopvaebm":
        return {"E": CoopVaeE, "G": CoopVaeG, "I": CoopVaeI}[role](c)
    if arch == "coopnets_cifar":
        return {"E": CoopNetsE, "G": CoopNetsG}[role](c)
    if arch == "toy2d":
        return Toy2d(c, role)
    if arch == "mnist":
        return MnistG(c) if role == "G" else MnistEI(c, role)
    if arch == "igebm":
        return IgebmE(c)
    if arch == "pd_mlp":
        return PdMlp(c)
    if arch == "pd_mnist":
        return PdMnist(c)
    raise ValueError(arch)



# ------------------------------------------------------------------ Philox4x32-10 + Box-Muller

M32 = np.uint64(0xFFFFFFFF)
PHILOX_M0, PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Random123's philox4x32 with 10 rounds, vectorised: counters (arrays or ints, 32-bit
    values), key (k0, k1) ints. Returns four uint64 arrays holding 32-bit values."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & M32 for c in (c0, c1, c2, c3))
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0, k1 = int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF
    for _ in range(10):
        p0 = PHILOX_M0 * c0          # 32x32 -> 64 bits: exact in uint64
        p1 = PHILOX_M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + PHILOX_W0) & 0xFFFFFFFF, (k1 + PHILOX_W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


# Random123 kat_vectors, philox4x32 R=10: (counter, key) -> output
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff, 0xffffffff), (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


def philox_normals(seed, stream, step, n_chains, elems):
    """(n_chains, elems) float32 normals as ebmc_philox_normal4: element e of chain ch at `step`
    is output e % 4 of counter (e/4, ch, step, stream), key (seed lo, seed hi); Box-Muller in
    double on u = (x + 0.5) 2^-32 for the pairs (x0, x1), (x2, x3), then rounded to float."""
    groups = (elems + 3) // 4
    g, ch = np.meshgrid(np.arange(groups, dtype=np.uint64), np.arange(n_chains, dtype=np.uint64))
    r = philox4x32_10(g, ch, step, stream, seed & 0xFFFFFFFF, seed >> 32)
    u = [(x.astype(np.float64) + 0.5) * 2.3283064365386963e-10 for x in r]
    out = np.empty((n_chains, groups, 4), dtype=np.float32)
    for i in range(2):
        rad = np.sqrt(-2.0 * np.log(u[2 * i]))
        th = 6.283185307179586 * u[2 * i + 1]
        out[:, :, 2 * i] = (rad * np.cos(th)).astype(np.float32)
        out[:, :, 2 * i + 1] = (rad * np.sin(th)).astype(np.float32)
    return out.reshape(n_chains, groups * 4)[:, :elems]

def philox_uniforms(seed, stream, step, n, elems):
    groups = (elems + 3) // 4
    g, ch = np.meshgrid(np.arange(groups, dtype=np.uint64), np.arange(n, dtype=np.uint64))
    r = philox4x32_10(g, ch, step, stream, seed & 0xFFFFFFFF, seed >> 32)
    out = np.stack([((x.astype(np.float64) + 0.5) * 2.3283064365386963e-10).astype(np.float32) for x in r], -1)
    return out.reshape(n, groups * 4)[:, :elems]


# ------------------------------------------------------------------ ebmc's samplers (Run.sample)

# the arrays `ebmc sample` writes (NAME.npy), in the order Run.sample returns them
SAMPLE_NAMES = {"dualmcmc": ("generator", "revised"), "coopvaebm": ("generator", "revised"),
                "coopnets": ("generator", "revised"), "shortrun": ("samples",),
                "persistent": ("samples", "buffer"), "jarzynski": ("model",), "particles": ("particles",)}
# Philox streams of `ebmc sample` (src/host/recipes/*.h, src/host/mcmc/gmm.c): the chains' noise,
# the start (z or U[lo, hi]), persistent's buffer draw and the training chain's dropout masks, the
# Gaussian mixture's draws; the chain-level lanes of a buffer draw use element group 0xFFFFFFFF
STREAM_X, STREAM_SAMPLE, STREAM_SBUF, STREAM_DROP_X, STREAM_GMM_DRAW = 1, 9, 10, 11, 0x474D4432
REPLAY_GROUP = 0xFFFFFFFF


def f32(v):
    """v rounded to float32 (ebmc's (float) casts of its config values), as a Python float"""
    return float(np.float32(v))


@contextlib.contextmanager
def training(net):
    """net in training mode (BatchNorm's batch statistics, spectral norm's power iteration), its
    state (running statistics, u, v, batch counters) put back afterwards"""
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    try:
        yield net
    finally:
        net.load_state_dict(saved)
        net.eval()
        with torch.no_grad():   # spectral norm's W/sigma of the restored u, v, holding no graph
            for m in net.modules():
                for h in m._forward_pre_hooks.values():
                    if isinstance(h, SpectralNorm):
                        setattr(m, h.name, h.compute_weight(m, do_power_iteration=False))


class Chain:
    """ebmc's Langevin chain (src/host/mcmc/mcmc.c chain_sequence; the CPU backend's langevin):
    per step k, x <- clamp(x - a clip(grad U(x)) - b x + c xi_k) (noise after the gradient) or,
    noise_next (IGEBM), x += c xi_0 first and x <- clamp(x - a clip(grad U(x)) - b x) + c xi_{k+1}
    (none after the last). xi_k: Philox normals of (seed, stream, chain index, counter + k); the
    counter runs on over the chain's runs (+steps each), as ebmc's device counter. c = 0: no noise.
    on_step(counter + k) is called before each gradient (persistent's dropout keys)."""

    def __init__(self, grad, seed, stream=STREAM_X):
        self.grad, self.seed, self.stream, self.counter = grad, seed, stream, 0

    def _xi(self, x, step):
        n, elems = x.shape[0], x[0].numel()
        return torch.from_numpy(philox_normals(self.seed, self.stream, step, n, elems)).to(x).view_as(x)

    def run(self, x, steps, a, b, c, clip=0.0, box=None, noise_next=False, on_step=None):
        k0 = self.counter
        x = x.detach()
        if c != 0 and noise_next and steps > 0:
            x = x + c * self._xi(x, k0)
        for k in range(steps):
            if on_step:
                on_step(k0 + k)
            g = self.grad(x)
            if clip > 0:
                g = g.clamp(-clip, clip)
            x = x - a * g - b * x
            if c != 0 and not noise_next:
                x = x + c * self._xi(x, k0 + k)
            if box is not None:
                x = x.clamp(*box)
            if c != 0 and noise_next and k < steps - 1:
                x = x + c * self._xi(x, k0 + k + 1)
        self.counter += steps
        return x.detach()


class PhiloxDropout:
    """ebmc's DROPOUT (include/ebmc/backend.h ebmc_dropout_desc) as IgebmE.dropout: element e of
    sample r of block i's c1 output is kept iff the double uniform (k + 0.5) 2^-32 of lane e%4 of
    Philox counter (off_i + e/4, r, step, stream) is >= p (p: float32), and divided by float32(1 -
    p); off_i: the groups of the earlier blocks' c1 outputs (ceil(elems/4) each). One key per
    forward: set(stream, step) before it."""

    def __init__(self, seed, p):
        self.seed, self.p, self.key, self.off = seed, p, None, 0

    def set(self, stream, step):
        self.key, self.off = (stream, step), 0

    def __call__(self, i, c1):
        if i == 0:
            self.off = 0
        n, elems = c1.shape[0], int(np.prod(c1.shape[1:]))
        groups = (elems + 3) // 4
        g, ch = np.meshgrid(np.arange(self.off, self.off + groups, dtype=np.uint64), np.arange(n, dtype=np.uint64))
        stream, step = self.key
        r = philox4x32_10(g, ch, step, stream, self.seed & 0xFFFFFFFF, self.seed >> 32)
        u = np.stack([(x.astype(np.float64) + 0.5) * 2.3283064365386963e-10 for x in r], -1).reshape(n, groups * 4)
        keep = torch.from_numpy((u[:, :elems] >= float(np.float32(self.p))).reshape(c1.shape)).to(c1)
        self.off += groups
        return c1 / f32(1.0 - float(np.float32(self.p))) * keep


# ------------------------------------------------------------------ runs: config.ini, checkpoints

def read_config(path):
    """config.ini (as ebmc writes it) -> {"section.key": "value"} (quotes around a value removed)"""
    p = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    p.optionxform = str
    with open(path) as f:
        p.read_file(f)
    out = {}
    for s in p.sections():
        for k, v in p.items(s):
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            out[f"{s}.{k}"] = v
    return out


# the nets each recipe checkpoints (their files <ROLE>.safetensors) and which widths it reads
NETS = {"dualmcmc": "EGI", "coopvaebm": "EGI", "coopnets": "EG", "shortrun": "E", "persistent": "E",
        "particles": "E", "jarzynski": "E"}


def model_config(cfg):
    """The architecture and sizes of a run's nets, as src/host/train/*.c read them: the
    architecture's defaults (ebmc_model_defaults), then the non-zero model.{nz,ngf,ndf,nif,hidden}
    (persistent: also model.img_size; particles: model.dims = the points' dimension; jarzynski:
    model.width = ndf)."""
    recipe = cfg.get("run.recipe", "dualmcmc")
    arch = cfg["model.arch"]
    if arch == "gmm":
        return dict(arch="gmm", dim=int(cfg["model.dim"]), components=int(cfg["model.components"]))
    c = dict(DEFAULTS[arch])
    for k in ("nz", "ngf", "ndf", "nif", "hidden"):
        if int(cfg.get(f"model.{k}", "0") or 0):
            c[k] = int(cfg[f"model.{k}"])
    if recipe == "persistent" and int(cfg.get("model.img_size", "0") or 0):
        c["img_size"] = int(cfg["model.img_size"])
    if recipe == "particles" and arch == "pd_mlp":
        c["img_c"] = int(cfg["model.dims"])
    if recipe == "jarzynski" and int(cfg.get("model.width", "0") or 0):
        c["ndf"] = int(cfg["model.width"])
    c["arch"] = arch
    return c


def load_state(path):
    """a safetensors file -> ({name: torch tensor}, metadata)"""
    t, meta = st_read(path)
    return {k: to_torch(v) for k, v in t.items()}, meta


def newest_checkpoint(run_dir):
    d = os.path.join(run_dir, "checkpoints")
    its = sorted(int(n[5:]) for n in os.listdir(d) if n.startswith("iter_") and n[5:].isdigit())
    if not its:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    return os.path.join(d, f"iter_{its[-1]:08d}")


class Run:
    """A trained ebmc run: .recipe, .config ({"section.key": str}), .model (architecture and
    sizes), .nets ({"E": module, ...}, eval mode, strict-loaded), .state (state.safetensors'
    tensors), .checkpoint, .iteration."""

    def __init__(self, run_dir, checkpoint=None, device="cpu"):
        self.config = read_config(os.path.join(run_dir, "config.ini"))
        self.recipe = self.config.get("run.recipe", "dualmcmc")
        if self.recipe not in NETS:
            raise ValueError(f"{run_dir}: recipe {self.recipe} is not one ebmc_torch knows")
        self.model = model_config(self.config)
        self.checkpoint = checkpoint or newest_checkpoint(run_dir)
        self.device = torch.device(device)
        self.state, meta = load_state(os.path.join(self.checkpoint, "state.safetensors"))
        self.iteration = int(meta.get("iteration", -1))
        self.nets = {}
        if self.model["arch"] == "gmm":
            return
        for role in NETS[self.recipe]:
            net = build(self.model["arch"], role, self.model)
            weights, _ = load_state(os.path.join(self.checkpoint, f"{role}.safetensors"))
            net.load_state_dict(weights, strict=True)
            self.nets[role] = net.to(self.device).eval()

    def _x(self, x):
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        return x.reshape((-1,) + self._shape())

    def energy(self, x):
        """The energy `ebmc score` reports for each example of x ((N, C, H, W) images in [-1, 1] or
        (N, D) points): a float32 (N,) tensor, with gradients when x requires them."""
        x = self._x(x)
        r, m = self.recipe, self.model
        if m["arch"] == "gmm":
            a = self.state["gmm.means"].to(x).view(m["components"], m["dim"])
            z = self.state["gmm.z"].to(x).view(m["components"])
            d2 = ((x[:, None, :] - a[None]) ** 2).sum(-1)
            return -torch.logsumexp(-0.5 * d2 - z[None], dim=1)
        E = self.nets["E"]
        if r == "persistent" and m["img_size"] > 1:
            return E(0.5 * x + 0.5)[0].reshape(-1)          # IGEBM images live in [0, 1]
        out = E(x)[0].reshape(-1)
        if r == "shortrun" or (r == "jarzynski" and m["arch"] == "shortrun"):
            return -out                                     # the net outputs the score f
        if r in ("coopvaebm", "coopnets"):                  # exp(f) times N(0, sigma_ref^2 I)
            sr = float(self.config["langevin.sigma_ref"])
            return -out + x.flatten(1).double().pow(2).sum(1).div(2 * sr * sr).to(out.dtype)
        return out

    def _shape(self):
        """the shape of one example: (D,) points, (C, H, W) images"""
        m = self.model
        return (m["dim"],) if m["arch"] == "gmm" else \
            (m["img_c"],) if m["img_size"] == 1 else (m["img_c"], m["img_size"], m["img_size"])

    def sample(self, n, seed=None, steps=None, step_size=None, noise=None):
        """`ebmc sample RUN --n n [--seed S --steps K --step-size s --noise t]` in PyTorch, with
        ebmc's Philox noise: a tuple of float32 (n, C, H, W) images in [-1, 1] or (n, D) points,
        one per array ebmc sample writes (SAMPLE_NAMES[recipe], NAME.npy; images there as uint8
        NHWC, floor(255 (x + 1)/2 + 0.5) clamped). seed: ebmc sample's --seed (default run.seed
        + 1); steps, step_size, noise: the test-time Langevin settings (default sample.*).

          dualmcmc    (generator, revised): z ~ N(0, I) (stream 9, step = batch index, chain =
                      index in the batch of train.batch_size), G(z) with the batch's BatchNorm
                      statistics, then x <- x - (s^2/2) grad E(x) + noise xi_k (stream 1, k
                      counted over all batches); E's spectral norm does its power iteration at
                      every step, as ebmc's chain.
          coopvaebm,  (generator, revised): the same in batches of train.chains, the chain
          coopnets    x <- x - (d^2/2)(x/sigma_ref^2 - grad f(x)) [+ noise xi_k]; G's BatchNorm
                      from the running statistics (G.eval()) where sample.bn = running
                      (coopnets' default).
          shortrun    (samples,): batches of train.chains (0: train.batch_size) from
                      U[langevin.init_lo, init_hi] (stream 9, step = batch index), then
                      x <- x + s grad f(x) + noise xi_k (stream 1).
          persistent  (samples, buffer): samples as shortrun's start, U[langevin.lo, hi], then
                      x += noise xi; x <- clamp(x - s clip(grad E, langevin.clip), lo, hi)
                      (IGEBM's order, dropout off); buffer: entries drawn from the checkpoint's
                      replay buffer (stream 10) and langevin.steps more steps of the training
                      chain (langevin.*, dropout masks from stream 11 on igebm); the chain's
                      counter runs on over both. Images leave [0, 1] as 2x - 1.
          jarzynski   (model,): gmm: exact draws from the learned mixture (n floor(n p_c) per
                      component in order, noise stream 0x474D4432); image nets: the first n of the
                      checkpoint's walkers (no noise, no steps).
          particles   (particles,): the first n of the checkpoint's particles.
        jarzynski and particles take no test-time settings (ebmc sample ignores them too); n above
        the walkers or particles the checkpoint holds is a ValueError, as ebmc sample refuses."""
        cfg, r = self.config, self.recipe
        if n < 1:
            raise ValueError(f"sample({n}): n must be at least 1")
        seed = int(cfg["run.seed"]) + 1 if seed is None else int(seed)
        if r in ("jarzynski", "particles"):
            return self._sample_state(n, seed)
        st = dict(steps=int(cfg["sample.steps"]) if steps is None else int(steps),
                  step=f32(cfg["sample.step_size"] if step_size is None else step_size),
                  noise=f32(cfg["sample.noise"] if noise is None else noise))
        return getattr(self, "_sample_" + r)(n, seed, **st)

    def _batches(self, n, size, draw, run):
        """ebmc sample's loop: full batches of `size` chains (batch b: the start draw(b) and the
        chains run(b, x)) until n; -> the first n of each array run returns"""
        outs = [run(b, draw(b)) for b in range((n + size - 1) // size)]
        return tuple(torch.cat(a)[:n] for a in zip(*outs))

    def _grad(self, scale):
        """grad U for U(x) = scale sum_b E(x_b) (scale -1: a net that outputs the score f)"""
        E = self.nets["E"]

        def grad(x):
            x = x.detach().requires_grad_(True)
            g, = torch.autograd.grad(E(x)[0].sum(), [x])
            return g if scale > 0 else -g
        return grad

    def _generator_chain(self, n, seed, size, a, b, c, steps):
        """dualmcmc / coop: z ~ N(0, I) -> G -> `steps` chain steps on U = +-sum E"""
        G, E, nz = self.nets["G"], self.nets["E"], self.model["nz"]
        dtype = next(G.parameters()).dtype
        zshape = (size, nz) if self.model["arch"] == "toy2d" else (size, nz, 1, 1)
        chain = Chain(self._grad(1 if self.recipe == "dualmcmc" else -1), seed)

        # G's BatchNorm: the batch's statistics, or the running ones where sample.bn says so (coop
        # recipes; coopnets' default, the port's test() with G.eval())
        running = self.recipe != "dualmcmc" and self.config.get(
            "sample.bn", "running" if self.recipe == "coopnets" else "batch") == "running"

        def draw(bi):
            z = torch.from_numpy(philox_normals(seed, STREAM_SAMPLE, bi, size, nz)).to(self.device, dtype)
            with torch.no_grad(), contextlib.nullcontext() if running else training(G):
                return G(z.view(zshape))[0]

        # dualmcmc's E: spectral norm's power iteration at every forward, as ebmc's chain, u and v
        # carried on from batch to batch (put back at the end)
        with training(E) if self.recipe == "dualmcmc" else contextlib.nullcontext():
            return self._batches(n, size, draw, lambda bi, x0: (x0.clone(), chain.run(x0, steps, a, b, c)))

    def _sample_dualmcmc(self, n, seed, steps, step, noise):
        a = f32(np.float32(0.5) * np.float32(step) * np.float32(step))
        return self._generator_chain(n, seed, int(self.config["train.batch_size"]), a, 0.0, noise, steps)

    def _sample_coop(self, n, seed, steps, step, noise):
        a = np.float32(0.5) * np.float32(step) * np.float32(step)
        sr = np.float32(self.config["langevin.sigma_ref"])
        return self._generator_chain(n, seed, int(self.config["train.chains"]), f32(a), f32(a / (sr * sr)),
                                     noise, steps)

    _sample_coopvaebm = _sample_coopnets = _sample_coop

    def _uniform_start(self, seed, size, lo, hi):
        """U[lo, hi] starts of batch b as ebmc_init_uniform: lo + (hi - lo) u in float32"""
        dtype = next(self.nets["E"].parameters()).dtype
        elems = int(np.prod(self._shape()))

        def draw(bi):
            u = torch.from_numpy(philox_uniforms(seed, STREAM_SAMPLE, bi, size, elems)).to(self.device, dtype)
            return (lo + (f32(np.float32(hi) - np.float32(lo)) * u)).view((size,) + self._shape())
        return draw

    def _sample_shortrun(self, n, seed, steps, step, noise):
        cfg = self.config
        size = int(cfg["train.chains"]) or int(cfg["train.batch_size"])
        lo, hi = f32(cfg["langevin.init_lo"]), f32(cfg["langevin.init_hi"])
        chain = Chain(self._grad(-1), seed)
        return self._batches(n, size, self._uniform_start(seed, size, lo, hi),
                             lambda bi, x0: (chain.run(x0, steps, step, 0.0, noise),))

    def _sample_persistent(self, n, seed, steps, step, noise):
        cfg, E = self.config, self.nets["E"]
        size = int(cfg["train.batch_size"])
        lo, hi, clip = f32(cfg["langevin.lo"]), f32(cfg["langevin.hi"]), f32(cfg["langevin.clip"])
        t_steps = int(cfg["langevin.steps"])                    # the training chain's settings
        t_step, t_noise = f32(cfg["langevin.step_size"]), f32(cfg["langevin.noise"])
        p = f32(cfg.get("model.dropout", "0")) if self.model["arch"] == "igebm" else 0.0
        drop = PhiloxDropout(seed, p) if p > 0 else None
        chain = Chain(self._grad(1), seed)
        images = self.model["img_size"] > 1

        def run(bi, x0):
            xs = chain.run(x0, steps, step, 0.0, noise, clip=clip, box=(lo, hi), noise_next=True)
            E.dropout = drop                  # the training chain: ResNet32Large(train=True)
            try:
                xb = chain.run(self._replay_draw(seed, bi, size, lo, hi).to(x0), t_steps, t_step, 0.0, t_noise,
                               clip=clip, box=(lo, hi), noise_next=True,
                               on_step=(lambda k: drop.set(STREAM_DROP_X, k)) if drop else None)
            finally:
                E.dropout = None
            return tuple(2 * x - 1 if images else x for x in (xs, xb))
        return self._batches(n, size, self._uniform_start(seed, size, lo, hi), run)

    def _replay_draw(self, seed, bi, size, lo, hi):
        """persistent's buffer draw at test time (ebmc_replay_sample_op, reuse probability 1):
        chain ch takes entry j = int(u1 count) (u1: lane 1 of counter (0xFFFFFFFF, ch, batch
        index, stream 10), float32), dequantised lo + (q + u_e) (hi - lo)/256 with the element's
        uniform u_e of the same stream (uint8 buffers); fresh U[lo, hi] noise while it is empty"""
        data, count = self.state["buffer.data"], int(self.state["buffer.count"])
        elems = int(np.prod(self._shape()))
        u = philox_uniforms(seed, STREAM_SBUF, bi, size, elems)
        span = np.float32(hi) - np.float32(lo)
        if count == 0:
            x = np.float32(lo) + span * u
        else:
            lanes = philox4x32_10(REPLAY_GROUP, np.arange(size, dtype=np.uint64), bi, STREAM_SBUF,
                                  seed & 0xFFFFFFFF, seed >> 32)
            u1 = ((lanes[1].astype(np.float64) + 0.5) * 2.3283064365386963e-10).astype(np.float32)
            j = np.minimum((u1 * np.float32(count)).astype(np.int64), count - 1)
            rows = data.reshape(-1, elems)[torch.from_numpy(j)].numpy()
            if self.config.get("buffer.uint8", "true") == "true":    # q as stored (0..255)
                x = np.float32(lo) + (rows.astype(u.dtype) + u) * (span / np.float32(256))
            else:
                x = rows.astype(u.dtype)
        return torch.from_numpy(np.ascontiguousarray(x)).view((size,) + self._shape())

    def _sample_state(self, n, seed):
        """jarzynski and particles: no test-time chain (see sample)"""
        m = self.model
        if m["arch"] == "gmm":
            means = self.state["gmm.means"].view(m["components"], m["dim"])
            z = self.state["gmm.z"].view(-1).double()
            p = torch.exp(-(z - z.min()))
            counts = torch.floor(n * (p / p.sum())).long()
            comp = torch.full((n,), m["components"] - 1, dtype=torch.long)
            comp[:min(n, int(counts[:-1].sum()))] = torch.repeat_interleave(torch.arange(m["components"] - 1),
                                                                          counts[:-1])[:n]
            r = torch.from_numpy(philox_normals(seed, STREAM_GMM_DRAW, 0, n, m["dim"])).to(means)
            return (means[comp] + r,)
        key = "walkers.x" if self.recipe == "jarzynski" else "particles"
        x = self.state[key].view((-1,) + self._shape())
        if n > x.shape[0]:
            raise ValueError(f"sample({n}): the checkpoint has {x.shape[0]} {key.split('.')[0]}")
        return (x[:n].clone(),)


def load_run(run_dir, checkpoint=None, device="cpu"):
    """The run in run_dir at its newest checkpoint (or checkpoint=DIR): a Run"""
    return Run(run_dir, checkpoint, device)
