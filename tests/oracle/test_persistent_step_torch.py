#!/usr/bin/python3
"""PyTorch parity of ONE persistent (IGEBM) training iteration (src/host/recipes/persistent.c),
replay-buffer reuse included, against the authors' loop (openai/ebm_code_release train.py,
utils.py ReplayBuffer, data.py; specs/teaching.md 3.3), re-implemented here in float64 with the
same random numbers.

Usage: /usr/bin/python3 tests/oracle/test_persistent_step_torch.py /path/to/pc_step_dump [--perturb]

`pc_step_dump OUT` builds a tiny persistent trainer (ResNet32Large at width 4, batch 4, K = 3
steps of the code's step 10 and noise 0.005, l2_coeff 1, Adam (0, 0.999) lr 3e-4, a uint8 buffer
of 10; the clip at 0.001 so that it acts on about half of this small net's gradient elements), runs iterations 1-2, saves the checkpoint ck0 (weights, Adam state, chain
counter, buffer), runs iteration 3 and saves E1 and step.safetensors. Here, from ck0:
  1. Philox (test_dualmcmc_step_torch.py, checked on Random123's known answers): data
     dequantisation U(0, 1/256) on stream 6 (step = iteration 3); the buffer draw on stream 2
     (step 3): per chain the uniforms of group 0xFFFFFFFF (u0 < 0.95: reuse; entry floor(u1 *
     count)) and per element group (fresh U[0,1] noise, or the entry's dequantisation
     (q + u)/256); the chain's noise on stream 1 from its checkpointed counter.
  2. The reference iteration in float64, IgebmE (test_nets_torch.py) loaded from ck0/E strict:
       x+ = q/256 + u/256 (data.py: im * 255/256 + U(0, 1/256), im = q/255)
       E(x+) in training mode: THE power iteration of this iteration (TensorFlow: one u.assign
       per session run); every later forward uses the same W/sigma (eval mode: no update)
       x- = buffer draw; K times: x += 0.005 n_k; x <- clamp(x - 10 clip(grad E(x), 0.01), 0, 1)
       loss = mean E(x+) - mean E(x-) + l2 (mean E(x+)^2 + mean E(x-)^2)
       dropout 0.5 after every block's c1 in every forward (ResNet32Large(train=True)), masks from
       ebmc's Philox keys (ebmc_torch.PhiloxDropout: stream 12 step 2 it / 2 it + 1 for E(x+) /
       E(x-), stream 11 and the chain's counter + k for Langevin step k)
  3. Rows:
     exact      Philox known answers; the buffer after the push, byte for byte, from C's own
                x- (floor(255 (x - lo)/(hi - lo)) clipped, compress_x_mod's 255 levels: the
                same float32 operations); the
                counters after (chain step, fill count, next slot); the state_dict names.
     rel. L2    ||C - ref|| / ||ref|| for x+, x-, E(x+), E(x-), the energy trace and every
                parameter gradient, bound K_MCA e_mca + FLOOR as test_shortrun_step_torch.py:
                e_mca the largest deviation of 6 float64 runs under the float32 rounding model
                (DM.Rounding on fc5 and on every spectrally normalised conv through DM's noisy
                conv, forward and backward; a relative u on each Langevin update).
     Adam       per element from ck0's exp_avg / exp_avg_sq / step on C's gradient, the
                authors' clipped Adam (custom_adam.py, adam_step; the dump's bound
                1 sqrt(v_hat) + 1e-5 so that it clips ~60 % of the elements):
                |(p1 - p0) - step| <= ulp(p1) + 16 eps_f32 |step|.
--perturb: the check must FAIL on dumps with the Langevin step 1% off, the gradient clip 1%
off, the regulariser l2_coeff 1% off, the re-initialisation probability 0.05 -> 0.5 (the
buffer draw), dropout off (model.dropout = 0: the old behaviour) and plain Adam
(train.optimizer = adam: the old behaviour), each against the reference computed from that dump's own ck0; exit 0 iff the clean run passes and every defect is detected. Exit 77 (skip)
without PyTorch/numpy.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("oracle_persistent_step: SKIPPED \u2014 PyTorch/numpy not installed "
          "(Debian: apt-get install python3-torch python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_nets_torch as NT  # noqa: E402
import test_dualmcmc_step_torch as DM  # noqa: E402

NT._NP.setdefault("U8", "u1")
STREAM_X, STREAM_REPLAY, STREAM_DATA, STREAM_DROP_X, STREAM_DROP = 1, 2, 6, 11, 12
REPLAY_GROUP = 0xFFFFFFFF
N_MCA, K_MCA = 6, 2.0
EPS32 = 2.0 ** -23
FLOOR = 8 * EPS32


def uniforms(seed, stream, step, group, chain):
    """the four float32 uniforms of counter (group, chain, step, stream)"""
    r = DM.philox4x32_10(group, chain, step, stream, seed & 0xFFFFFFFF, seed >> 32)
    return np.array([((int(x) + 0.5) * 2.3283064365386963e-10) for x in r], dtype=np.float32)


def elem_uniforms(seed, stream, step, n, elems):
    groups = (elems + 3) // 4
    g, ch = np.meshgrid(np.arange(groups, dtype=np.uint64), np.arange(n, dtype=np.uint64))
    r = DM.philox4x32_10(g, ch, step, stream, seed & 0xFFFFFFFF, seed >> 32)
    out = np.stack([((x.astype(np.float64) + 0.5) * 2.3283064365386963e-10).astype(np.float32) for x in r], -1)
    return out.reshape(n, groups * 4)[:, :elems]


# ebmc's DROPOUT as IgebmE.dropout (python/ebmc_torch.py; Run.sample uses it on the buffer chain)
Dropout = NT.PhiloxDropout


def run_dump(tool, out, extra=()):
    p = subprocess.run([tool, out] + list(extra), capture_output=True, text=True)
    if p.returncode:
        print(p.stdout + p.stderr)
        raise SystemExit(f"pc_step_dump failed ({p.returncode})")
    step, meta = NT.st_read(os.path.join(out, "step.safetensors"))
    ck, _ = NT.st_read(os.path.join(out, "ck0", "state.safetensors"))
    e0, _ = NT.st_read(os.path.join(out, "ck0", "E.safetensors"))
    e1, _ = NT.st_read(os.path.join(out, "E1.safetensors"))
    offs = {k: int(v) for k, v in (kv.rsplit(":", 1) for kv in meta["offsets"].split(","))}
    return {"step": step, "ck": ck, "E0": e0, "E1": e1, "cfg": json.loads(meta["config"]), "it": int(meta["it"]),
            "offsets": offs}


def buffer_draw(d, cfg, shape):
    """utils.py ReplayBuffer.sample + the 5% mask + decompress, with ebmc's Philox draws"""
    ck, seed, it = d["ck"], cfg["run.seed"], d["it"]
    B, img = shape[0], int(np.prod(shape[1:]))
    count = int(ck["buffer.count"])
    if count < B + 1:
        count = 0   # the code's len(buffer) > batch_size
    lo, hi = cfg["langevin.lo"], cfg["langevin.hi"]
    q = ck["buffer.data"].reshape(cfg["buffer.size"], img).astype(np.float64)
    r = elem_uniforms(seed, STREAM_REPLAY, it, B, img).astype(np.float64)
    x = np.empty((B, img))
    reused = 0
    for ch in range(B):
        u = uniforms(seed, STREAM_REPLAY, it, REPLAY_GROUP, ch)
        reuse = count > 0 and u[0] < np.float32(1.0 - cfg["buffer.reinit"])
        j = min(int(u[1] * np.float32(count)), count - 1) if count else 0
        x[ch] = lo + (q[j] + r[ch]) * (hi - lo) / 256 if reuse else lo + (hi - lo) * r[ch]
        reused += reuse
    return x.reshape(shape), reused


def mca_conv(m, x, r):
    """IgebmConv's forward with DM's float32 rounding model on the convolution (both passes)"""
    sigma = m.sigma()
    if m.gb is not None:
        x = r.rel(x + m.gb.view(1, -1, 1, 1))
    y = DM._NoisyConv.apply(x, m.weight_orig / sigma, None, m._geom, r)
    return r.rel(y * m.g.view(1, -1, 1, 1)) if m.g is not None else y


class _Geom:
    stride, padding = (1, 1), (1, 1)


def make_net(cfg, e0, mca):
    c = dict(NT.DEFAULTS[cfg["model.arch"]])
    if cfg["model.ndf"]:
        c["ndf"] = cfg["model.ndf"]
    net = NT.build(cfg["model.arch"], "E", c)
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in e0.items()}, strict=True)
    net = net.double()
    if mca:
        mca.install(net)   # fc5
        for m in net.modules():
            if isinstance(m, NT.IgebmConv):
                m._geom = _Geom()
                m.forward = (lambda x, m=m: mca_conv(m, x, mca))
    return net


def reference(d, cfg, mca=None):
    st, seed, it = d["step"], cfg["run.seed"], d["it"]
    rel = (lambda t, n=1: mca.rel(t, n)) if mca else (lambda t, n=1: t)
    net = make_net(cfg, d["E0"], mca)
    x = st["x"].astype(np.float64)
    B, shape = x.shape[0], x.shape
    img = int(np.prod(shape[1:]))
    q = np.rint((x + 1) * 127.5)
    u = elem_uniforms(seed, STREAM_DATA, it, B, img).astype(np.float64).reshape(shape)
    x_pos = torch.from_numpy(q / 256 + u / 256)
    drop = Dropout(seed, cfg["model.dropout"]) if cfg["model.dropout"] > 0 else None
    net.dropout = drop
    net.train()
    if drop:
        drop.set(STREAM_DROP, 2 * it)
    e_pos = net(x_pos)[0].flatten()          # this iteration's power iteration
    net.eval()                               # the same W/sigma from here on
    x0, reused = buffer_draw(d, cfg, shape)
    xk = torch.from_numpy(x0)
    base = int(d["ck"]["chain_x.step"])
    a, clip, c = cfg["langevin.step_size"], cfg["langevin.clip"], cfg["langevin.noise"]
    lo, hi = cfg["langevin.lo"], cfg["langevin.hi"]
    trace = []
    for k in range(cfg["langevin.steps"]):
        n = torch.from_numpy(DM.philox_normals(seed, STREAM_X, base + k, B, img).astype(np.float64)).reshape(shape)
        xk = rel(xk.detach() + c * n).requires_grad_(True)
        if drop:
            drop.set(STREAM_DROP_X, base + k)
        e = net(xk)[0].sum()
        trace.append(e.item())
        g = torch.autograd.grad(e, [xk])[0]
        xk = torch.clamp(rel(xk.detach() - a * torch.clamp(g, -clip, clip), 2), lo, hi)
    x_neg = xk.detach()
    if drop:
        drop.set(STREAM_DROP, 2 * it + 1)
    e_neg = net(x_neg)[0].flatten()
    l2 = cfg["train.l2_coeff"]
    loss = e_pos.mean() - e_neg.mean() + l2 * ((e_pos ** 2).mean() + (e_neg ** 2).mean())
    net.zero_grad()
    loss.backward()
    out = {"x_pos": x_pos.numpy(), "x_neg": x_neg.numpy(), "e_pos": e_pos.detach().numpy(),
           "e_neg": e_neg.detach().numpy(), "trace": np.array(trace), "reused": reused}
    for name, p in net.named_parameters():
        out["grad." + name] = p.grad.numpy().copy()
    return out


def adam_step(g, m, v, t, cfg):
    """step t in float64 from state m, v (after t-1 steps): train.optimizer = adam_clip is the
    authors' custom_adam.py _apply_dense: g clipped to +-(3 sqrt(v / (1 - beta2_power)) + 0.1)
    (train.clip_std, train.clip_floor: the dump uses 0.5 and 0, so that the clip acts)
    with v the slot BEFORE this step and beta2_power = b2^t (TensorFlow updates it after the
    step), then training_ops.apply_adam: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),
    p -= lr_t m / (sqrt(v) + eps); adam is torch.optim.Adam (no weight decay)"""
    b1, b2, lr = cfg["train.beta1"], cfg["train.beta2"], cfg["train.lr"]
    if cfg["train.optimizer"] == "adam_clip":
        bound = cfg["train.clip_std"] * np.sqrt(v / (1 - b2 ** t)) + cfg["train.clip_floor"]
        g = np.clip(g, -bound, bound)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        return -lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + 1e-8)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return -lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + 1e-8)


def check(d, cfg, refs, verbose=True):
    """refs: (the float64 reference of d, e_mca per row)"""
    ref, e_mcas = refs
    st, rows = d["step"], []

    def row(ok, label, err, bound):
        rows.append((bool(ok), label, err, bound))
        if verbose:
            print(f"{'ok  ' if ok else 'FAIL'} {label:40s} error {err:.3e}  bound {bound:.3e}")

    for ctr, key, want in DM.PHILOX_KAT:
        got = tuple(int(v) for v in DM.philox4x32_10(*ctr, *key))
        row(got == want, f"philox KAT {ctr[0]:#x}", float(got != want), 0.0)
    # the push: C's own x- quantised with the same float32 operations, into slots head..
    lo, hi, size = np.float32(cfg["langevin.lo"]), np.float32(cfg["langevin.hi"]), cfg["buffer.size"]
    xn = st["x_neg"].reshape(st["x_neg"].shape[0], -1).astype(np.float32)
    qn = np.clip(np.floor((xn - lo) / (hi - lo) * np.float32(cfg["buffer.levels"])), 0, 255)
    want = d["ck"]["buffer.data"].reshape(size, -1).astype(np.float64).copy()
    head = int(d["ck"]["buffer.head"])
    for i in range(xn.shape[0]):
        want[(head + i) % size] = qn[i]
    nbad = int(np.sum(want != st["buffer"]))
    row(nbad == 0, "buffer after the push (bytes off)", float(nbad), 0.0)
    B = xn.shape[0]
    cnt_want = [int(d["ck"]["chain_x.step"]) + cfg["langevin.steps"], min(int(d["ck"]["buffer.count"]) + B, size),
                (head + B) % size]
    row(list(st["counts"]) == cnt_want, f"counters after {list(st['counts'])}", 0.0, 0.0)
    row(set(d["E0"]) == set(d["E1"]) and set("grad." + k for k in d["offsets"]) == {k for k in st if k.startswith("grad.")},
        "state_dict names", 0.0, 0.0)
    for key in ["x_pos", "x_neg", "e_pos", "e_neg", "trace"] + sorted(k for k in ref if k.startswith("grad.")):
        bound = K_MCA * e_mcas[key] + FLOOR
        err = NT.rel_l2(st[key], ref[key])
        row(err <= bound, key, err, bound)
    t = int(d["ck"]["optE.step"]) + 1
    if verbose and cfg["train.optimizer"] == "adam_clip":
        b2, n_cl, n_all = cfg["train.beta2"], 0, 0
        for name, off in d["offsets"].items():
            g = st["grad." + name].astype(np.float64).ravel()
            v = d["ck"]["optE.exp_avg_sq"][off:off + g.size].astype(np.float64)
            n_cl += int(np.sum(np.abs(g) > cfg["train.clip_std"] * np.sqrt(v / (1 - b2 ** t)) + cfg["train.clip_floor"]))
            n_all += g.size
        print(f"# clipped Adam: {n_cl} of {n_all} gradient elements clipped at step {t}")
    for name, off in sorted(d["offsets"].items()):
        g = st["grad." + name].astype(np.float64)
        n = g.size
        m = d["ck"]["optE.exp_avg"][off:off + n].astype(np.float64).reshape(g.shape)
        v = d["ck"]["optE.exp_avg_sq"][off:off + n].astype(np.float64).reshape(g.shape)
        step = adam_step(g, m, v, t, cfg)
        p0, p1 = d["E0"][name].astype(np.float64), d["E1"][name].astype(np.float64)
        bound = np.spacing(np.abs(d["E1"][name])).astype(np.float64) + 16 * EPS32 * np.abs(step)
        worst = float(np.max(np.abs((p1 - p0) - step) / bound))
        row(worst <= 1.0, f"adam {name}", worst, 1.0)
    return rows


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    tool, perturb = sys.argv[1], "--perturb" in sys.argv[2:]
    torch.set_num_threads(1)  # tiny nets: a second thread only spins
    with tempfile.TemporaryDirectory() as tmp:
        d = run_dump(tool, tmp)
        cfg = d["cfg"]
        ref = reference(d, cfg)
        print(f"# {ref['reused']} of {d['step']['x'].shape[0]} chains started from the buffer")
        runs = [reference(d, cfg, DM.Rounding(200 + i)) for i in range(N_MCA)]
        e_mcas = {k: max(NT.rel_l2(r[k], ref[k]) for r in runs) for k in ref if k != "reused"}
        rows = check(d, cfg, (ref, e_mcas))
        failed = [r for r in rows if not r[0]]
        print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
        rc = 1 if failed or ref["reused"] == 0 else 0
        if not perturb:
            return rc
        print("# self-test (--perturb): each defect below must make the check fail")
        ok_all = True
        defects = [("langevin.step_size", 1.01), ("langevin.clip", 1.01), ("train.l2_coeff", 1.01),
                   ("buffer.reinit", 10.0), ("model.dropout", 0.0), ("train.optimizer", "adam")]
        for i, (key, f) in enumerate(defects):
            sub = os.path.join(tmp, f"p{i}")
            os.mkdir(sub)
            dp = run_dump(tool, sub, [f"{key}={f}" if isinstance(f, str) else f"{key}={cfg[key] * f:.17g}"])
            # the reference from the defective dump's own ck0 (its warm-up ran with the defect
            # too) under the correct settings; the rounding model's e_mca of the clean run
            bad = [r for r in check(dp, cfg, (reference(dp, cfg), e_mcas), verbose=False) if not r[0]]
            print(f"# {key} {f if isinstance(f, str) else 'x' + str(f)}: {'DETECTED' if bad else 'NOT DETECTED'}, {len(bad)} rows fail" +
                  (f"; e.g. {bad[0][1]} error {bad[0][2]:.2e} > bound {bad[0][3]:.2e}" if bad else ""))
            ok_all &= bool(bad)
        print(f"self-test {'passed' if ok_all else 'FAILED'}; clean run {'passed' if rc == 0 else 'failed'}")
        return 0 if ok_all and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
