"""What bench/authors/*_cifar10.py share in place of torchvision (not the authors' code): the
CIFAR-10 binary files ebmc reads, and ebmc sample's uint8 quantisation."""
import os

import numpy as np
import torch as t


def load_cifar10_bin(folder):
    """data_batch_1..5.bin (3073-byte records: label, 1024 R, 1024 G, 1024 B), as ebmc reads them,
    as the authors' transform leaves them: ToTensor + Normalize((0.5,)*3, (0.5,)*3) (Resize(32) is
    the identity on CIFAR-10). (50000, 3, 32, 32) float32 in [-1, 1]."""
    parts = []
    for k in range(1, 6):
        raw = np.fromfile(os.path.join(folder, f"data_batch_{k}.bin"), dtype=np.uint8)
        parts.append(raw.reshape(-1, 3073)[:, 1:].reshape(-1, 3, 32, 32))
    x = t.from_numpy(np.concatenate(parts)).float().div(255.0)
    return (x - 0.5) / 0.5


def to_uint8_nhwc(x):
    """ebmc's quantisation (src/host/io/image.c quantize_value) of (x + 1) / 2: (N,C,H,W) in
    [-1, 1] -> (N,H,W,C) uint8."""
    u = ((x + 1.0) / 2.0).clamp(0.0, 1.0).mul(255.0).add(0.5).clamp(0.0, 255.0)
    return u.to(t.uint8).permute(0, 2, 3, 1).contiguous().numpy()
