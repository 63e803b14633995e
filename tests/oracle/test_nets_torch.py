#!/usr/bin/python3
"""PyTorch parity of ebmc's whole networks (src/host/models.c) against modules written here from
the architecture specification (specs/teaching.md 1(e) Dual-MCMC, 2(b) CoopVAEBM, 3.1 CoopNets
CIFAR port, 3.2 short-run) and, for toy2d / mnist (ebmc's own small nets), from models.c.

Usage: /usr/bin/python3 tests/oracle/test_nets_torch.py /path/to/nn_dump

For every case, `nn_dump ARCH ROLE DIR key=value...` writes DIR/model.safetensors (the initial
weights and buffers) and DIR/io.safetensors (x, out<i>, r<i>, dx, grad.<param>, after.<buffer>
after ONE training-mode forward and a full backward of sum_i r_i * out_i). Here:
  1. the torch module loads model.safetensors with load_state_dict(strict=True), so every tensor
     name must match in both directions (spectral norm: weight_orig / weight_u / weight_v;
     BatchNorm: weight, bias, running_mean, running_var, num_batches_tracked);
  2. module.train(); out = module(x)  -> compared with out<i>;
  3. loss = sum_i (r_i * out_i).sum(); backward -> x.grad vs dx, every parameter's .grad vs
     grad.<name> (for spectral norm the gradient w.r.t. weight_orig);
  4. the module's buffers after the forward (SN u, v; BN running stats, num_batches_tracked) vs
     after.<name>.
Criterion: rel_l2 = ||ours - torch||_2 / ||torch||_2 < 1e-5 (float32 on both sides, norms in
float64). Parameters whose gradient is zero analytically -- a per-channel bias whose channel
constant reaches the loss only through BatchNorm (directly, or through upsampling, 1x1 convs and
residual adds, as in every Dual-MCMC generator block) -- are compared by
max |ours - torch64| < 1e-6 * scale, scale = max |grad| of the same layer's weight, where torch64
is the same module run in float64: the float32 torch value of such a sum is itself rounding noise
(up to ~5e-6 * scale in the CelebA-64 generator), so it cannot serve as the reference. The float64
value must be < 1e-12 * scale, which confirms that the gradient is indeed zero.
Also checked per case: the tensor-name sets (model, grad.*, after.*) and the output shapes.

Prints one row per comparison (case, quantity, rel_l2, ok); the last line is "N passed, M failed";
exit status 0 iff M == 0, 77 (skip) without PyTorch/numpy, 2 on a usage error.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("oracle_nets: SKIPPED \u2014 PyTorch/numpy not installed "
          "(Debian: apt-get install python3-torch python3-numpy)")
    sys.exit(77)

TOL = 1e-5            # relative L2
ZERO_TOL = 1e-6       # analytically zero gradients: max abs error / scale
ZERO64 = 1e-12        # ... and the float64 torch value / scale must be below this
LRELU = 0.2           # every LeakyReLU of the recipes (TF default; short-run l=0.2; Dual-MCMC 0.2)
# CoopNets CIFAR port: the spec (3.1) names "LReLU" without a slope. ebmc uses 0.2; the port's
# nn.LeakyReLU() default would be 0.01 (see the report / models.c) -- kept as ebmc's here.
COOPNETS_LRELU = 0.01   # the port's nn.LeakyReLU() default

# ------------------------------------------------------------------ safetensors (stdlib + numpy)

_NP = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


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


class EBMBlock(nn.Module):
    """h = ReLU -> conv3x3 -> ReLU -> conv3x3 -> [avgpool 2]; shortcut conv1x1 (when channels
    change or downsampling) -> [avgpool 2], else identity."""

    def __init__(self, cin, cout, down):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.learnable_sc = cin != cout or down
        if self.learnable_sc:
            self.sc = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)

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
# 100 fc outputs (the port backpropagates ones(num_chain, z_size)).
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
        out = self.leakyrelu(self.bn1(self.convt1(z)))
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

    def forward(self, x):
        w = self.weight_orig.flatten(1)
        with torch.no_grad():
            if self.training:
                self.weight_v.copy_(F.normalize(w.t() @ self.weight_u, dim=0, eps=1e-12))
                self.weight_u.copy_(F.normalize(w @ self.weight_v, dim=0, eps=1e-12))
        sigma = self.weight_u @ (w @ self.weight_v)
        if self.lower_bound:
            sigma = torch.clamp(sigma + 1e-6, min=1.0)
        if self.gb is not None:
            x = x + self.gb.view(1, -1, 1, 1)
        y = F.conv2d(x, self.weight_orig / sigma, None, 1, 1)
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

# ------------------------------------------------------------------ cases

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
    raise ValueError(arch)


def expected_shape(role, c, i):
    """Per-sample output shape (C,H,W) the recipes need: G makes images of the size E and I take,
    E one scalar, I two nz-vectors (a Linear's (F,) counts as (F,1,1), as in ebmc)."""
    if role == "G":
        return (c["img_c"], c["img_size"], c["img_size"])
    return (1, 1, 1) if role == "E" else (c["nz"], 1, 1)


def as_chw(shape):
    """per-sample shape padded to 3 dims with trailing 1s, as ebmc stores (N,F) as (N,F,1,1)"""
    return tuple(shape) + (1,) * (3 - len(shape))


CASES = []
for role, kv in (("E", dict(ndf=8)), ("G", dict(ngf=8, nz=8)), ("I", dict(nif=4, nz=8))):
    CASES.append(("dualmcmc_cifar10", role, kv))
for role, kv in (("E", dict(ndf=32)), ("G", dict(ngf=32, nz=8)), ("I", dict(nif=2, nz=8))):
    CASES.append(("dualmcmc_celeba64", role, kv))
CASES.append(("shortrun", "E", dict(ndf=4)))
for role in "EGI":
    CASES.append(("coopvaebm", role, dict(ndf=4, ngf=4, nif=4, nz=8, img_size=32)))
for role in "EG":
    CASES.append(("coopnets_cifar", role, dict(ndf=4, ngf=4, nz=8)))
for role in "EGI":
    CASES.append(("toy2d", role, dict(hidden=16)))
for role in "EGI":
    CASES.append(("mnist", role, dict(ndf=4, ngf=4, nif=4, nz=8)))
CASES.append(("igebm", "E", dict(ndf=4)))

BATCH = 4
SEED = int(os.environ.get("EBMC_ORACLE_SEED", "1"))   # nn_dump seed=: weights, x and r; override to vary

# ------------------------------------------------------------------ comparison

results = []   # ok flag of every row


def row(case, qty, val, ok, note=""):
    results.append(ok)
    v = f"{val:.3e}" if isinstance(val, float) else str(val)
    print(f"{case:<34} {qty:<42} {v:>11}  {'ok' if ok else 'FAIL'}{('  ' + note) if note else ''}",
          flush=True)


def rel_l2(ours, ref):
    a = np.asarray(ours, dtype=np.float64).ravel()
    b = np.asarray(ref, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return float("inf")
    if not np.all(np.isfinite(a)):
        return float("inf")
    nb = np.linalg.norm(b)
    d = np.linalg.norm(a - b)
    return float(d / nb) if nb > 0 else float(d)


def float64_run(arch, role, c, model, io):
    """The same module, weights and inputs in float64: out<i>, dx, grad.<param>, after.<buffer>.
    The reference for analytically zero gradients, and a diagnostic for failing rows."""
    m = build(arch, role, c)
    m.load_state_dict({k: to_torch(v) for k, v in model.items()}, strict=True)
    m = m.double().train()
    x = to_torch(io["x"]).double().requires_grad_(True)
    outs = m(x)
    loss = sum((to_torch(io[f"r{i}"]).double().reshape(o.shape) * o).sum()
               for i, o in enumerate(outs))
    loss.backward()
    r = {f"out{i}": o.detach().numpy() for i, o in enumerate(outs)}
    r["dx"] = x.grad.numpy()
    r.update({"grad." + k: p.grad.numpy() for k, p in m.named_parameters()})
    r.update({"after." + k: b.numpy() for k, b in m.named_buffers() if b.is_floating_point()})
    return r


def run_case(nn_dump, arch, role, kv, tmp):
    c = dict(DEFAULTS[arch])
    c.update(kv)
    case = f"{arch}.{role}" + "".join(f" {k}={v}" for k, v in kv.items()
                                      if k in ("img_size",))
    d = os.path.join(tmp, f"{arch}_{role}_{len(results)}")
    os.makedirs(d)
    args = [nn_dump, arch, role, d] + [f"{k}={v}" for k, v in kv.items()] + [
        f"batch={BATCH}", f"seed={SEED}"]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        row(case, "nn_dump", p.returncode, False, p.stdout.strip().replace("\n", " | "))
        return
    model, meta = st_read(os.path.join(d, "model.safetensors"))
    io, _ = st_read(os.path.join(d, "io.safetensors"))
    ok_meta = meta.get("arch") == arch and meta.get("role") == role
    row(case, "metadata arch/role", f"{meta.get('arch')}/{meta.get('role')}", ok_meta)

    f64 = {}

    def ref64(key):
        if not f64:
            f64.update(float64_run(arch, role, c, model, io))
        return f64[key]

    def check(qty, key, ours, ref):
        """rel_l2 row; a failing row also shows both float32 results against float64 torch"""
        e = rel_l2(ours, ref)
        note = ""
        if not e < TOL:
            r64 = ref64(key)
            note = f"vs float64 torch: ours {rel_l2(ours, r64):.1e}, torch f32 {rel_l2(ref, r64):.1e}"
        row(case, qty, e, e < TOL, note)

    torch.manual_seed(0)
    m = build(arch, role, c)
    # 1. names both ways, then strict loading
    sd_keys = set(m.state_dict().keys())
    missing, extra = sorted(sd_keys - set(model)), sorted(set(model) - sd_keys)
    row(case, "model.safetensors names == state_dict", len(missing) + len(extra),
        not missing and not extra,
        (f"missing in C: {missing} " if missing else "") + (f"extra in C: {extra}" if extra else ""))
    if missing or extra:
        return
    m.load_state_dict({k: to_torch(v) for k, v in model.items()}, strict=True)
    m.train()

    # 2. forward
    x = to_torch(io["x"]).clone().requires_grad_(True)
    outs = m(x)
    n_out = sum(1 for k in io if k.startswith("out"))
    row(case, "number of outputs", f"{n_out} vs {len(outs)}", n_out == len(outs))
    if n_out != len(outs):
        return
    loss = 0
    for i, o in enumerate(outs):
        ours = io[f"out{i}"]
        theirs = as_chw(o.shape[1:])
        shape_ok = ours.shape == (o.shape[0],) + theirs
        row(case, f"out{i} shape C {tuple(ours.shape[1:])} torch {theirs}",
            "same" if shape_ok else "differ", shape_ok)
        if not shape_ok:
            return
        want = expected_shape(role, c, i)
        row(case, f"out{i} shape vs recipe {want}", str(theirs), theirs == want,
            "" if theirs == want else "not the size the other nets of this config use")
        check(f"out{i}", f"out{i}", ours, o.detach().numpy())
        loss = loss + (to_torch(io[f"r{i}"]).reshape(o.shape) * o).sum()

    # 3. backward
    loss.backward()
    check("dx", "dx", io["dx"], x.grad.numpy())
    params = dict(m.named_parameters())
    gnames = {k[5:] for k in io if k.startswith("grad.")}
    miss, extra = sorted(set(params) - gnames), sorted(gnames - set(params))
    row(case, "grad.* names == parameters", len(miss) + len(extra), not miss and not extra,
        (f"missing: {miss} " if miss else "") + (f"extra: {extra}" if extra else ""))
    zero = getattr(m, "zero_grad_params", set())
    for name, prm in params.items():
        if name not in gnames:
            continue
        ours, ref = io["grad." + name], prm.grad.numpy()
        if name in zero:
            wname = name.rsplit(".", 1)[0] + ".weight"
            scale = float(np.abs(params[wname].grad.numpy()).max())
            ref = ref64("grad." + name)
            err = float(np.abs(ours.astype(np.float64) - ref).max()) / scale
            ref_zero = float(np.abs(ref).max()) / scale < ZERO64
            f32 = float(np.abs(prm.grad.numpy()).max()) / scale
            row(case, f"grad.{name} (zero: max|d|/scale)", err, err < ZERO_TOL and ref_zero,
                f"torch f32 noise {f32:.1e}" if ref_zero else
                "the float64 torch gradient is not ~0: the zero assumption is wrong")
        else:
            check(f"grad.{name}", "grad." + name, ours, ref)

    # 4. buffers after the forward
    buffers = dict(m.named_buffers())
    anames = {k[6:] for k in io if k.startswith("after.")}
    miss, extra = sorted(set(buffers) - anames), sorted(anames - set(buffers))
    row(case, "after.* names == buffers", len(miss) + len(extra), not miss and not extra,
        (f"missing: {miss} " if miss else "") + (f"extra: {extra}" if extra else ""))
    for name, b in buffers.items():
        if name not in anames:
            continue
        ours = io["after." + name]
        if b.dtype == torch.int64:
            ok = ours.shape == tuple(b.shape) and int(ours) == int(b)
            row(case, f"after.{name}", f"{int(ours)} vs {int(b)}", ok)
        else:
            check(f"after.{name}", "after." + name, ours, b.numpy())


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    nn_dump = sys.argv[1]
    if not os.access(nn_dump, os.X_OK):
        print(f"oracle_nets: {nn_dump} is not an executable")
        return 2
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    print(f"{'case':<34} {'quantity':<42} {'rel_l2':>11}  ok")
    with tempfile.TemporaryDirectory(prefix="ebmc_nets_") as tmp:
        for arch, role, kv in CASES:
            try:
                run_case(nn_dump, arch, role, kv, tmp)
            except Exception as ex:  # a crash in one case is a failure, not the end of the run
                row(f"{arch}.{role}", "exception", type(ex).__name__, False, str(ex)[:300])
    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    print(f"# torch {torch.__version__}, {len(CASES)} cases, {time.time() - t0:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
