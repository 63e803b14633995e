"""The Dual-MCMC authors' CIFAR-10 training loop and nets, for bench/realdata.sh (issue 27 item 4).

Copied from jcui1224/dual-MCMC (https://github.com/jcui1224/dual-MCMC), commit
aac3c4cb5c1c8826974a2c79da1c08148fe90015 (2023-09-28), by Jiali Cui and Tian Han, "Learning
Energy-based Model via Dual-MCMC Teaching", NeurIPS 2023. The repository carries no licence file;
this copy is kept for a like-for-like benchmark with attribution, and holds only what the CIFAR-10
run needs:
  nets.py:6-15      weights_init                    nets.py:68-121   _GenBlock, _Cifar10_netG
  nets.py:24-44     _Cifar10_netI                   nets.py:151-223  EBMBlock(Start), _Cifar10_netE
  utils.py:28-34    add_sn                          train.py:17-62   reparametrize, diag_normal_NLL,
  train.py:78-169   fit (the iteration)                              langevin_z, langevin_x
  train.py:200-245  build_net{G,E,I} (cifar10)      task_fid.py:44-70 the test-time sampler
  config.py:1-40    cifar10_config
Changed, and nothing else: the widths (ngf, ndf, nif) and the batch size (command line; the
values bench/realdata.sh passes are those of configs/cifar10_dual_mcmc_small.ini); the data path
(the CIFAR-10 binary files ebmc reads instead of torchvision's pickles: the same 50,000 training
images, ToTensor + Normalize(0.5, 0.5) as dataset.py:283-285 does); device = cpu (MSELoss was
.cuda()); threads from OMP_NUM_THREADS; a wall-time limit (--minutes, from process start, checked
at the end of each iteration, as ebmc finishes its iteration on SIGTERM); the per-epoch image/checkpoint block
(train.py:171-196) replaced by one checkpoint at the end; logging reduced to a progress line.
Output (--out DIR): ckpt.pth (netG, netE, netI, opt*), result.json (iterations, seconds,
images/s), generator.npy and revised.npy (N test-time samples, uint8 NHWC, quantised as
ebmc sample does: mul(255).add(0.5).clamp(0, 255) of (x + 1) / 2), drawn with task_fid.py's
procedure: z ~ N(0, I), G(z), 70 Langevin steps of 0.4 with noise 1e-3 (task_fid.py:185-188),
batches of 100, BatchNorm in batch-statistics mode (the nets are never put in eval mode).
"""
import time
T_START = time.time()  # the wall-time limit counts from process start, imports included

import argparse
import json
import os
import random
import sys

import numpy as np
import torch as t
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import Variable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cifar10_bin import load_cifar10_bin, to_uint8_nhwc  # noqa: E402  (not the authors')

# ---- nets.py (verbatim but for the removed CelebA classes) ----

def weights_init(m):
    """
    xavier initialization
    """
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.xavier_normal_(m.weight)
    elif classname.find('BatchNorm') != -1:
        m.weight.data.normal_()
        m.bias.data.fill_(0)


class _Cifar10_netI(nn.Module):
    def __init__(self, nz, nif=64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(3, nif, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(nif, nif * 2, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(nif * 2, nif * 4, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(nif * 4, nif * 8, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.conv51 = nn.Conv2d(nif * 8, nz, 4, 1, 0)  # for mu
        self.conv52 = nn.Conv2d(nif * 8, nz, 4, 1, 0)  # for log_sigma

    def forward(self, input):
        oI_l4 = self.main(input)
        oI_mu = self.conv51(oI_l4)
        oI_log_sigma = self.conv52(oI_l4)
        return oI_mu, oI_log_sigma


class _GenBlock(nn.Module):
    def __init__(self, in_channels, out_channels, hidden_channels=None, upsample=False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels if hidden_channels is not None else out_channels
        self.learnable_sc = in_channels != out_channels or upsample
        self.upsample = upsample

        self.bn_1 = nn.BatchNorm2d(self.in_channels)
        self.bn_2 = nn.BatchNorm2d(self.hidden_channels)
        self.conv1 = nn.Conv2d(self.in_channels, self.hidden_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(self.hidden_channels, self.out_channels, 3, 1, 1)
        if self.learnable_sc:
            self.sc = nn.Conv2d(self.in_channels, self.out_channels, 1)

    def forward(self, x):
        h = x
        h = F.relu(self.bn_1(h))
        h = F.interpolate(h, scale_factor=2, mode='bilinear', align_corners=True) if self.upsample else h
        h = F.relu(self.bn_2(self.conv1(h)))
        h = self.conv2(h)

        y = x
        y = F.interpolate(y, scale_factor=2, mode='bilinear', align_corners=True) if self.upsample else y
        y = self.sc(y) if self.learnable_sc else y

        return h + y


class _Cifar10_netG(nn.Module):
    def __init__(self, nz, ngf=256, bottom_width=4):
        super().__init__()
        self.nz = nz
        self.ngf = ngf
        self.bottom_width = bottom_width

        self.lin_1 = nn.Linear(nz, (self.bottom_width**2)*self.ngf)
        self.block2 = _GenBlock(self.ngf, self.ngf, upsample=True)
        self.block3 = _GenBlock(self.ngf, self.ngf, upsample=True)
        self.block4 = _GenBlock(self.ngf, self.ngf, upsample=True)
        self.bn_5 = nn.BatchNorm2d(self.ngf)
        self.conv5 = nn.Conv2d(self.ngf, 3, 3, 1, 1)

    def forward(self, z):
        z = z.view(-1, z.shape[1])
        h = self.lin_1(z).view(-1, self.ngf, self.bottom_width, self.bottom_width) # 4x4
        h = self.block2(h) # 8x8
        h = self.block3(h) # 16x16
        h = self.block4(h) # 32x32
        h = F.relu(self.bn_5(h))
        h = self.conv5(h)
        h = F.tanh(h)

        return h


class EBMBlock(nn.Module):
    def __init__(self, in_channel, out_channel, hidden_channels=None, downsample=False):
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.hidden_channels = hidden_channels if hidden_channels is not None else out_channel
        self.learnable_sc = in_channel != out_channel or downsample
        self.downsample = downsample

        self.conv1 = nn.Conv2d(in_channel, self.hidden_channels, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(self.hidden_channels, out_channel, 3, 1, 1, bias=False)

        if self.learnable_sc:
            self.sc = nn.Conv2d(in_channel, out_channel, 1, bias=False)

    def forward(self, x):
        h = x
        h = F.relu(h)
        h = self.conv2(F.relu(self.conv1(h)))
        h = F.avg_pool2d(h, 2) if self.downsample else h

        y = x
        y = self.sc(y) if self.learnable_sc else y
        y = F.avg_pool2d(y, 2) if self.downsample else y
        return h + y


class EBMBlockStart(nn.Module):
    def __init__(self, in_channel, out_channel, hidden_channels=None, downsample=False):
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.hidden_channels = hidden_channels if hidden_channels is not None else out_channel
        self.learnable_sc = in_channel != out_channel or downsample
        self.downsample = downsample

        self.conv1 = nn.Conv2d(in_channel, self.hidden_channels, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(self.hidden_channels, out_channel, 3, 1, 1, bias=False)

        if self.learnable_sc:
            self.sc = nn.Conv2d(in_channel, out_channel, 1, bias=False)

    def forward(self, x):
        h = x
        h = F.relu(self.conv1(h))
        h = self.conv2(h)
        h = F.avg_pool2d(h, 2) if self.downsample else h

        y = x
        y = F.avg_pool2d(y, 2) if self.downsample else y
        y = self.sc(y) if self.learnable_sc else y

        return h + y


class _Cifar10_netE(nn.Module):
    def __init__(self, nc, ndf, ):
        super().__init__()
        self.nef = ndf
        # Build the layers
        self.conv_1 = EBMBlockStart(nc, self.nef, downsample=True)
        self.block2 = EBMBlock(self.nef, self.nef, downsample=True)
        self.block3 = EBMBlock(self.nef, self.nef, downsample=False)
        self.block4 = EBMBlock(self.nef, self.nef, downsample=False)
        self.lin_5 = nn.Linear(self.nef, 1, bias=False)

    def forward(self, x):
        x = self.conv_1(x)
        x = self.block2(x)
        x = self.block3(x)
        x = self.block4(x)
        x = F.relu(x)
        x = F.avg_pool2d(x, x.shape[2])
        x = self.lin_5(x.view(x.shape[0], -1))
        return x

# ---- utils.py ----

def add_sn(m):
    for name, layer in m.named_children():
        m.add_module(name, add_sn(layer))
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        return nn.utils.spectral_norm(m)
    else:
        return m

# ---- config.py: cifar10_config (ngf, ndf, nif, batch_size overridden from the command line) ----

cifar10_config = {
    'dataset': 'cifar10',
    'img_size': 32,
    'normalize_data': True,
    'fine_tune': True,
    'epochs': 301,
    'batch_size': 100,
    'Gfactor': 1.0,
    'Sfactor': 50.0,
    'Ifactor': 0.1,
    'e_l_steps': 30,
    'e_l_step_size': 0.5,
    'e_n_step_size': 0.001,
    'ngf': 512,
    'ndf': 512,
    'nif': 128,
    'add_sn': True,
    'use_temp': True,
    'use_noise': True,
    'nz' : 128,
    'sig' : 0.3,
    'l_steps' : 10,
    'l_step_size' : 0.1,
    'n_step_size' : 0.1,
    'prior_sig' : 1.0,
    'lrE': 1e-4,
    'lrG': 3e-4,
    'lrI': 1e-4,
    'beta1E' : 0.0,
    'beta1G' : 0.0,
    'beta1I' : 0.0,
    'e_decay' : 0.0,
    'i_decay' : 0.0005,
    'g_decay' : 0.0005,
    'e_gamma' : 0.998,
    'i_gamma' : 0.998,
    'g_gamma' : 0.998,
}

# ---- train.py ----

mse = nn.MSELoss(reduction='sum')  # was .cuda()


def reparametrize(mu, log_sigma):
    std = t.exp(log_sigma.mul(0.5))
    eps = Variable(std.data.new(std.size()).normal_())
    return eps.mul(std).add_(mu)


def diag_normal_NLL(z, z_mu, z_log_sigma):
    nll = 0.5 * t.sum(z_log_sigma.squeeze(), dim=1) + \
          0.5 * t.sum((t.mul(z - z_mu, z - z_mu) / (1e-6 + t.exp(z_log_sigma))).squeeze(), dim=1)
    return nll.squeeze()


def langevin_z(z, x, netG, args, should_print=True):
    l_steps = args.l_steps
    l_step_size = args.l_step_size
    n_step_size = args.n_step_size
    prior_sig = args.prior_sig
    batch_size = x.shape[0]
    z = z.clone().detach()
    z.requires_grad = True
    for istep in range(l_steps):
        inputV_recon = netG(z)
        errRecon = mse(inputV_recon, x)
        grad = t.autograd.grad(errRecon, z)[0]

        z.data = z.data - 0.5 * l_step_size * l_step_size * (grad / args.sig / args.sig + 1.0 / (
                prior_sig * prior_sig) * z.data) + n_step_size * t.randn_like(z).data
    return z.detach()


def langevin_x(x, netE, args, should_print=True):
    l_steps = args.e_l_steps
    l_step_size = args.e_l_step_size
    n_step_size = args.e_n_step_size
    x = x.clone().detach()
    x.requires_grad = True
    for istep in range(l_steps):
        energy = netE(x).sum()
        grad = t.autograd.grad(energy, x)[0]
        x.data = x.data - 0.5 * l_step_size * l_step_size * grad
        if args.use_noise:
            x.data = x.data + n_step_size * t.randn_like(x).data
    return x.detach()


def build_nets(args):  # train.py:200-245, the cifar10 branches
    netG = _Cifar10_netG(nz=args.nz, ngf=args.ngf)
    netG.apply(weights_init)
    netG.to(args.device)
    netE = _Cifar10_netE(nc=3, ndf=args.ndf)
    netE.apply(weights_init)
    netE.to(args.device)
    netE = add_sn(netE)
    netI = _Cifar10_netI(nz=args.nz, nif=args.nif)
    netI.apply(weights_init)
    netI.to(args.device)
    return netG, netE, netI


def fit(netG, netE, netI, dl_train, args, deadline):
    """train.py:78-169; returns (iterations, stopped_reason, optimisers). Stops at the end of
    the iteration during which time.time() passes the deadline (at least one iteration), as
    `ebmc train` does on SIGTERM."""
    optG = t.optim.Adam(netG.parameters(), lr=args.lrG, weight_decay=args.g_decay, betas=(args.beta1G, 0.9))
    optE = t.optim.Adam(netE.parameters(), lr=args.lrE, weight_decay=args.e_decay, betas=(args.beta1E, 0.9))
    optI = t.optim.Adam(netI.parameters(), lr=args.lrI, weight_decay=args.i_decay, betas=(args.beta1I, 0.9))
    lrG_schedule = t.optim.lr_scheduler.ExponentialLR(optG, args.g_gamma)
    lrE_schedule = t.optim.lr_scheduler.ExponentialLR(optE, args.e_gamma)
    lrI_schedule = t.optim.lr_scheduler.ExponentialLR(optI, args.i_gamma)

    noise = t.randn(args.batch_size, args.nz, 1, 1).to(args.device)
    args.mcmc_temp = (args.e_n_step_size/args.e_l_step_size)**2
    it = 0
    for ep in range(args.epochs):
        lrE_schedule.step(epoch=ep)
        lrG_schedule.step(epoch=ep)
        lrI_schedule.step(epoch=ep)

        for i, x in enumerate(dl_train, 0):
            x = x[0].to(args.device) if type(x) is list else x.to(args.device)
            batch_size = x.shape[0]

            # Train G: use the inferred z
            noise.resize_(batch_size, args.nz, 1, 1).normal_()
            noiseV = Variable(noise)
            samples = netG(noiseV)
            samples_corr = langevin_x(samples, netE, args, should_print=False)

            optG.zero_grad()
            infer_z_mu_true, infer_z_log_sigma_true = netI(x)
            z_input = reparametrize(infer_z_mu_true, infer_z_log_sigma_true)
            z_input_corr = langevin_z(z_input, x, netG, args, should_print=False)
            inputV_recon = netG(z_input_corr.detach())
            errRecon = mse(inputV_recon, x) / batch_size
            errSample = mse(samples, samples_corr) / batch_size

            errG = args.Gfactor * errRecon + args.Sfactor * errSample
            errG.backward()
            optG.step()

            # Train I: use the inferred z
            optI.zero_grad()
            neg_log_q_z = t.mean(diag_normal_NLL(z_input_corr, infer_z_mu_true, infer_z_log_sigma_true))
            infer_z_mu_gen, infer_z_log_sigma_gen = netI(samples_corr)
            errLatent = t.mean(diag_normal_NLL(noiseV, infer_z_mu_gen, infer_z_log_sigma_gen))
            errI = args.Gfactor * neg_log_q_z + args.Ifactor * errLatent
            errI.backward()
            optI.step()

            # Train E
            optE.zero_grad()
            Eng_T = netE(x).squeeze()
            E_T = t.mean(Eng_T)
            samples = netG(noiseV) # G should catch up within per-iteration, quicker, fine_tune to get better.
            if args.fine_tune:
                samples = langevin_x(samples, netE, args, should_print=False)
            Eng_F = netE(samples.detach()).squeeze()
            E_F = t.mean(Eng_F)
            errE = (E_T - E_F)
            errE_loss = errE / args.mcmc_temp if args.use_temp else errE
            errE_loss.backward()
            optE.step()
            it += 1

            if it % args.progress_every == 0:
                print(f"authors: iter {it} errG {errG.item():.2f} errI {errI.item():.2f} "
                      f"errE {errE_loss.item():.2f} E_T {E_T.item():.3f} E_F {E_F.item():.3f} "
                      f"{time.time() - T_START:.0f}s", file=sys.stderr, flush=True)

            if errE > 1e4 or errE < -1e4:
                return it, "explode (|errE| > 1e4)", (optG, optE, optI)
            if t.isnan(errE) or t.isnan(errG) or t.isnan(errI):
                return it, "explode (NaN)", (optG, optE, optI)
            if time.time() >= deadline:  # after the iteration, as ebmc's SIGTERM stop
                return it, "wall-time limit", (optG, optE, optI)
    return it, "epochs done", (optG, optE, optI)


def sample_test_time(netG, netE, args, n):
    """task_fid.py:44-70 with its defaults (task_fid.py:182-194): batches of 100, z ~ N(0, I),
    G(z), then langevin_x with 70 steps of 0.4, noise 1e-3."""
    test_args = argparse.Namespace(**vars(args))
    test_args.e_l_steps, test_args.e_l_step_size, test_args.e_n_step_size = 70, 0.4, 1e-3
    test_args.use_noise = True
    gen, rev = [], []
    done = 0
    while done < n:
        b = min(100, n - done)
        noiseV = t.randn(b, args.nz, 1, 1).to(args.device)
        syn = netG(noiseV).detach()
        syn_corr = langevin_x(syn, netE, test_args, should_print=False)
        gen.append(to_uint8_nhwc(syn))
        rev.append(to_uint8_nhwc(syn_corr))
        done += b
    return np.concatenate(gen), np.concatenate(rev)


# ---- not the authors': the ebmc config key of every setting above, checked by --check-config ----
EBMC_KEYS = {  # authors' key (config.py line) -> (section, key) of configs/cifar10_dual_mcmc_small.ini
    'epochs': ('train', 'epochs'),              # config.py:6
    'Gfactor': ('train', 'g_factor'),           # config.py:8
    'Sfactor': ('train', 'lambda_s'),           # config.py:9
    'Ifactor': ('train', 'lambda_i'),           # config.py:10
    'e_l_steps': ('langevin_x', 'steps'),       # config.py:11
    'e_l_step_size': ('langevin_x', 'step_size'),  # config.py:12
    'e_n_step_size': ('langevin_x', 'noise'),   # config.py:13
    'use_temp': ('train', 'use_temp'),          # config.py:18
    'fine_tune': ('train', 'fine_tune'),        # config.py:5
    'nz': ('model', 'nz'),                      # config.py:20
    'sig': ('langevin_z', 'sigma'),             # config.py:21
    'l_steps': ('langevin_z', 'steps'),         # config.py:22
    'l_step_size': ('langevin_z', 'step_size'),  # config.py:23
    'n_step_size': ('langevin_z', 'noise'),     # config.py:24
    'prior_sig': ('langevin_z', 'prior_sigma'),  # config.py:25
    'lrE': ('train', 'lr_e'), 'lrG': ('train', 'lr_g'), 'lrI': ('train', 'lr_i'),  # config.py:26-28
    'beta1E': ('train', 'beta1_e'), 'beta1G': ('train', 'beta1_g'), 'beta1I': ('train', 'beta1_i'),  # :29-31
    'e_decay': ('train', 'wd_e'), 'i_decay': ('train', 'wd_i'), 'g_decay': ('train', 'wd_g'),  # :32-34
    'e_gamma': ('train', 'gamma_e'), 'i_gamma': ('train', 'gamma_i'), 'g_gamma': ('train', 'gamma_g'),  # :35-37
}
EBMC_FIXED = {  # settings written into train.py / task_fid.py / dataset.py rather than config.py
    ('train', 'beta2'): 0.9,                    # train.py:80-82 betas=(beta1, 0.9)
    ('run', 'seed'): 1234,                      # train.py:249 set_seeds(1234) (different RNGs)
    ('data', 'hflip'): False,                   # dataset.py:283-285: no flip
    ('sample', 'steps'): 70, ('sample', 'step_size'): 0.4, ('sample', 'noise'): 1e-3,  # task_fid.py:185-188
    ('guard', 'max_gap'): 1e4,                  # train.py:161 (the code stops; ebmc reloads)
}


def check_config(ini, args):
    """Every hyperparameter of the authors' run against the ebmc config; returns the mismatches."""
    import configparser
    cp = configparser.ConfigParser(inline_comment_prefixes=("#",))
    cp.read(ini)
    def val(sec, key, ref):
        v = cp.get(sec, key)
        if isinstance(ref, bool):
            return v.strip().lower() == "true"
        return type(ref)(float(v)) if not isinstance(ref, str) else v
    bad = []
    want = {v: getattr(args, k) for k, v in EBMC_KEYS.items()}
    want.update(EBMC_FIXED)
    want.update({('model', 'ngf'): args.ngf, ('model', 'ndf'): args.ndf, ('model', 'nif'): args.nif,
                 ('train', 'batch_size'): args.batch_size})
    for (sec, key), ref in want.items():
        got = val(sec, key, ref)
        if (abs(got - ref) > 1e-12 * max(1.0, abs(ref))) if isinstance(ref, float) else got != ref:
            bad.append(f"{sec}.{key} = {got}, authors' {ref}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder with data_batch_1..5.bin")
    ap.add_argument("--out", required=True)
    ap.add_argument("--ngf", type=int, required=True)
    ap.add_argument("--ndf", type=int, required=True)
    ap.add_argument("--nif", type=int, required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--progress-every", type=int, default=10)
    ap.add_argument("--check-config", metavar="INI", help="compare every setting with this ebmc "
                    "config (EBMC_KEYS, EBMC_FIXED), print the table and exit: 0 all equal, 1 not")
    a = ap.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    t.set_num_threads(threads)
    deadline = T_START + 60.0 * a.minutes

    # set_seeds(1234) (train.py:249, 304-309)
    random.seed(a.seed)
    np.random.seed(a.seed)
    t.manual_seed(a.seed)

    args = argparse.Namespace(**cifar10_config)
    args.ngf, args.ndf, args.nif, args.batch_size = a.ngf, a.ndf, a.nif, a.batch_size
    args.device = "cpu"
    args.progress_every = a.progress_every
    if a.check_config:
        bad = check_config(a.check_config, args)
        n = len(EBMC_KEYS) + len(EBMC_FIXED) + 4
        print(f"check-config {a.check_config}: {n - len(bad)}/{n} settings equal" +
              "".join(f"\n  DIFFERENT: {b}" for b in bad))
        sys.exit(1 if bad else 0)
    os.makedirs(a.out, exist_ok=True)

    ds_train = t.utils.data.TensorDataset(load_cifar10_bin(a.data))
    dl_train = t.utils.data.DataLoader(ds_train, batch_size=args.batch_size, shuffle=True,
                                       num_workers=0, drop_last=True)
    netG, netE, netI = build_nets(args)

    t_train = time.time()
    iters, why, (optG, optE, optI) = fit(netG, netE, netI, dl_train, args, deadline)
    t_end = time.time()
    t.save({'iterations': iters, 'netG': netG.state_dict(), 'netE': netE.state_dict(),
            'netI': netI.state_dict(), 'optG': optG.state_dict(), 'optE': optE.state_dict(),
            'optI': optI.state_dict()}, os.path.join(a.out, "ckpt.pth"))

    res = {"side": "authors", "iterations": iters, "stopped": why,
           "batch_size": args.batch_size, "threads": threads,
           "wall_s": t_end - T_START, "train_s": t_end - t_train,
           "images_per_s": iters * args.batch_size / max(t_end - T_START, 1e-9),
           "torch": t.__version__, "ngf": args.ngf, "ndf": args.ndf, "nif": args.nif}
    if a.samples > 0:
        t0 = time.time()
        gen, rev = sample_test_time(netG, netE, args, a.samples)
        np.save(os.path.join(a.out, "generator.npy"), gen)
        np.save(os.path.join(a.out, "revised.npy"), rev)
        res["sample_s"] = time.time() - t0
        res["samples"] = a.samples
    with open(os.path.join(a.out, "result.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(f"authors: {iters} iterations in {res['wall_s']:.1f} s ({why}), "
          f"{res['images_per_s']:.2f} images/s", file=sys.stderr)


if __name__ == "__main__":
    main()
