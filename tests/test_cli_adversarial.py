#!/usr/bin/env python3
"""Every subcommand of ebmc over a table of hostile arguments (issue 23): non-regular files
(/dev/zero, a FIFO, a directory, /dev/full as an output), huge, negative and NaN numbers,
existing outputs, missing files, NaN weights, --help. Each row names the arguments, the exit
status the README documents and a piece of the one message that must name the problem (for
exit 0: of the usage text on stdout); nothing may hang (ROW_TIMEOUT), crash or leave a
half-written output behind.

usage: test_cli_adversarial.py EBMC SOURCE_DIR [--list]

Add a case by adding one line to ROWS: (arguments, exit status, text expected on stderr); a row
that begins "ulimit-f " runs under a file-size limit of FSIZE_LIMIT bytes (a full disk: EFBIG,
never a death by SIGXFSZ). In the
arguments, {run} is a trained 2-D run, {ckpt} its checkpoint folder, {cfg} its config, {pts} a
float32 (N, 2) .npy of points, {big} a float32 (2, 1048576) .npy (a covariance of 8 TB), {zero}
/dev/zero, {fifo} a FIFO named *.npy, {dir} a directory named *.npy, {missing} a file that does
not exist, {out} a fresh output path (per row; it must not exist afterwards when the row fails),
{full} a symbolic link to /dev/full (a link, so that a
writer that renames onto it replaces the link, never the device), {nanw} a weights folder holding a NaN, {fifow} one whose E.safetensors is a FIFO, {npz} a valid .npz of statistics,
{badpsd} an .npz whose sigma is not positive semi-definite, {wide} a uint8 image .npy 100000
pixels wide, {imgs} two 8x8 RGB uint8 images. Exit statuses (README): 0 done, 1 run-time failure, 2 usage, 64 bad
configuration, 65 missing or malformed data/checkpoint/config file."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed")
    sys.exit(77)

ROW_TIMEOUT = 10  # seconds: a row that takes longer hangs (a FIFO, /dev/zero)
FSIZE_LIMIT = 512  # bytes a "ulimit-f" row may write to one file (ulimit -f)

SUBCOMMANDS = ["train", "sample", "data", "eval", "score", "import", "bench", "loglik", "plot", "info", "smoke"]

ROWS = [
    # --- --help and -h: the usage on stdout, exit 0
    *[(f"{c} --help", 0, f"usage: ebmc {c}") for c in SUBCOMMANDS],
    *[(f"{c} -h", 0, f"usage: ebmc {c}") for c in SUBCOMMANDS],
    ("sample {run} --help", 0, "usage: ebmc sample"),
    # --- numbers: huge, negative, NaN, fractional (finding 8: range-checked before any cast)
    ("sample {run} --steps 99999999999 --out {out}", 2, "--steps"),
    ("sample {run} --steps -1 --out {out}", 2, "--steps"),
    ("sample {run} --n nan --out {out}", 2, "--n"),
    ("sample {run} --n 0.5 --out {out}", 2, "--n"),
    ("sample {run} --seed 1e30 --out {out}", 2, "--seed"),
    ("sample {run} --step-size inf --out {out}", 2, "--step-size"),
    ("eval --npy {pts} --ref {pts} --steps 99999999999", 2, "--steps"),
    ("eval --npy {pts} --ref {pts} --batch 1e12", 2, "--batch"),
    ("eval --npy {pts} --ref {pts} --splits -3", 2, "--splits"),
    ("eval --npy {pts} --ref {pts} --n-ref 0", 2, "--n-ref"),
    ("eval --npy {pts} --ref {pts} --seed nan", 2, "--seed"),
    ("data {cfg} --out {out} --n 99999999999999999999", 2, "--n"),
    ("data {cfg} --out {out} --first -1", 2, "--first"),
    ("loglik {run} --points 1e300", 2, "--points"),
    ("loglik {run} --seed -5", 2, "--seed"),
    ("smoke --batch 99999999999", 2, "--batch"),
    ("bench --quick --rounds 99999999999", 2, "--rounds"),
    # --- eval's own options (finding 13)
    ("eval --npy {pts} --ref {pts} --backend bogus", 2, "--backend"),
    ("eval --npy {pts} --ref {pts} --precision bf16", 2, "--precision"),
    # --- non-regular files, refused before they are opened for reading (finding 6)
    ("eval --npy {pts} --ref {zero}", 65, "/dev/zero: not a regular file"),
    ("eval --npy {pts} --ref {fifo}", 65, "not a regular file"),
    ("eval --npy {fifo} --ref {pts}", 65, "not a regular file"),
    ("eval --npy {pts} --ref {dir}", 65, "not a regular file"),
    ("import {cfg} {fifow} --out {out}", 65, "E.safetensors: not a regular file (a FIFO)"),
    ("score {run} {fifo}", 65, "not a regular file"),
    ("score {run} {zero}", 65, "not a regular file"),
    ("train {zero}", 65, "not a regular file"),
    ("train {cfg} data.dataset=npy data.path={fifo} run.out_dir={out}", 65, "not a regular file"),
    # keys added in issues 24/25: out of range or not a choice, refused before anything is written
    ("train {cfg} log.grid_scale=0 run.out_dir={out}", 64, "log.grid_scale: 0 is out of range [1, 16]"),
    ("train {cfg} log.grid_scale=17 run.out_dir={out}", 64, "log.grid_scale: 17 is out of range"),
    ("train {src}/configs/gmm50_jarzynski.ini train.l2_coeff=-1 run.out_dir={out}", 64, "train.l2_coeff: -1 is out of range"),
    ("train {src}/configs/quickstart.ini data.shape_bg=purple run.out_dir={out}", 64, "data.shape_bg: 'purple' is not one of"),
    ("train {src}/configs/toy2d_coopnets.ini sample.bn=eval run.out_dir={out}", 64, "sample.bn: 'eval' is not one of"),
    ("train {src}/configs/quickstart.ini data.shape_color=nan run.out_dir={out}", 64, "data.shape_color: 'nan' is not one of"),
    ("data {cfg} data.dataset=npy data.path={zero} --out {out}", 65, "not a regular file"),
    ("import {cfg} {zero} --out {out}", 65, "/dev/zero/E.safetensors: cannot open: Not a directory"),
    # --- missing files
    ("eval --npy {pts} --ref {missing}", 65, "{missing}"),
    ("sample {missing}", 65, "{missing}"),
    ("score {run} {missing}", 65, "{missing}"),
    ("loglik {missing}", 65, "{missing}"),
    ("plot {missing}", 65, "{missing}"),
    ("train --resume {missing}", 65, "{missing}"),
    # --- a reference too wide for its covariance (findings 2, 3)
    ("eval --npy {pts} --ref {big}", 1, "1048576-dimensional"),
    ("eval --stats {big} --out {out}", 1, "1048576-dimensional"),
    # --- statistics that are not a covariance, no reference rows (finding 13)
    ("eval --npy {pts} --ref {badpsd}", 65, "positive semi-definite"),
    ("eval --npy {wide} --ref {npz}", 65, "4096"),
    # --- existing outputs: an import never writes into an existing run (finding 4)
    ("import {cfg} {ckpt} --out {run}", 2, "already exists"),
    # --- NaN weights (finding 7)
    ("import {cfg} {nanw} --out {out}", 65, "not finite"),
    # --- outputs that cannot be written: exit 1 (finding 9)
    ("score {run} {pts} --out {full}", 1, "{full}"),
    ("eval --npy {pts} --ref {pts} --out {full}", 1, "{full}"),
    ("data {cfg} --out {full}", 1, "{full}"),
    ("ulimit-f sample {run} --out {out}", 1, "File too large"),
    ("ulimit-f score {run} {pts} --out {out}.jsonl", 1, "File too large"),
    ("ulimit-f data {cfg} --out {out}", 1, "File too large"),
    ("ulimit-f eval --npy {pts} --ref {pts} --out {out}.json", 1, "File too large"),
    ("ulimit-f train {cfg} run.out_dir={out}", 1, "File too large"),
    ("ulimit-f train --resume {run} train.iterations=4", 1, "File too large"),
    ("ulimit-f import {cfg} {ckpt} --out {out}", 1, "File too large"),
]

# Signals: (train arguments, exit status, message). Two SIGTERMs 0.2 s apart, SIGNAL_AFTER s after
# the start, must stop the run part-way through its first, long iteration (README: exit 5), in
# every recipe's inner loops (finding 5: jarzynski's walkers), with a message that says no
# checkpoint exists yet (finding 13: not "iteration -1 is kept").
SIGNAL_AFTER = 1.5
SIGNAL_ROWS = [
    ("train {src}/configs/gmm50_jarzynski.ini run.out_dir={out} jarzynski.steps=100000 data.count=2000 "
     "jarzynski.walkers=2000 train.batch_size=2000", 5, "before the run's first checkpoint"),
    ("train {cfg} run.out_dir={out} langevin_x.steps=100000 train.batch_size=400", 5, "before the run's first checkpoint"),
]


def run_signal_row(ebmc, args, env):
    import signal
    t0 = time.time()
    p = subprocess.Popen([ebmc] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         stdin=subprocess.DEVNULL)
    time.sleep(SIGNAL_AFTER)
    p.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=ROW_TIMEOUT)
        return p.returncode, out, err, time.time() - t0
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return "hang", out, err, time.time() - t0


def run_row(ebmc, args, env):
    t0 = time.time()
    limit = None
    if args[0] == "ulimit-f":
        import resource
        args = args[1:]
        limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))
    try:
        p = subprocess.run([ebmc] + args, capture_output=True, text=True, timeout=ROW_TIMEOUT, env=env,
                           stdin=subprocess.DEVNULL, preexec_fn=limit)
        return p.returncode, p.stdout, p.stderr, time.time() - t0
    except subprocess.TimeoutExpired as e:
        return "hang", e.stdout or "", e.stderr or "", time.time() - t0


def st_write(path, tensors):
    """A safetensors file of float32 tensors (name -> numpy array)."""
    import json
    hdr, off, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype="<f4").tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    import json
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        a, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + a:8 + n + e], dtype="<f4").reshape(v["shape"]).copy()
    return out


def npz_stats(path, mu, sigma):
    np.savez(path, mu=mu, sigma=sigma)


def fixtures(ebmc, src, tmp, env):
    cfg = os.path.join(tmp, "toy.ini")
    with open(cfg, "w") as f:
        f.write("[run]\nrecipe = dualmcmc\nbackend = cpu\nout_dir = %s\nname = run\n"
                "[data]\ndataset = toy2d\ntoy = gmm8\ncount = 400\n"
                "[model]\narch = toy2d\nnz = 2\nhidden = 16\n"
                "[train]\niterations = 2\nbatch_size = 20\n"
                "[langevin_x]\nsteps = 2\n[langevin_z]\nsteps = 2\n"
                "[log]\ngrid_every = 0\nckpt_every = 2\n"
                "[sample]\nn = 50\nsteps = 2\n" % tmp)
    p = subprocess.run([ebmc, "train", cfg], capture_output=True, text=True, env=env, timeout=120)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
        sys.exit("FAIL: the fixture run did not train")
    run = os.path.join(tmp, "run")
    ckpt = os.path.join(run, "checkpoints", "iter_00000002")
    pts = os.path.join(tmp, "pts.npy")
    np.save(pts, np.random.default_rng(1).normal(size=(64, 2)).astype(np.float32))
    big = os.path.join(tmp, "big.npy")
    np.save(big, np.zeros((2, 1048576), np.float32))
    wide = os.path.join(tmp, "wide.npy")
    np.save(wide, np.zeros((1, 1, 100000, 3), np.uint8))
    imgs = os.path.join(tmp, "imgs.npy")
    np.save(imgs, np.zeros((2, 8, 8, 3), np.uint8))
    fifo = os.path.join(tmp, "fifo.npy")
    os.mkfifo(fifo)
    fifow = os.path.join(tmp, "fifow")
    os.mkdir(fifow)
    os.mkfifo(os.path.join(fifow, "E.safetensors"))
    d = os.path.join(tmp, "dir.npy")
    os.mkdir(d)
    nanw = os.path.join(tmp, "nanw")
    os.mkdir(nanw)
    for net in os.listdir(ckpt):
        if net == "state.safetensors" or not net.endswith(".safetensors"):
            continue
        t = st_read(os.path.join(ckpt, net))
        if net == "E.safetensors":
            k = sorted(t)[0]
            t[k].flat[0] = np.nan
        st_write(os.path.join(nanw, net), t)
    npz = os.path.join(tmp, "stats.npz")
    npz_stats(npz, np.zeros(2048), np.eye(2048))
    badpsd = os.path.join(tmp, "badpsd.npz")
    npz_stats(badpsd, np.zeros(2), np.array([[1.0, 0.0], [0.0, -5.0]]))
    full = os.path.join(tmp, "full.npy")
    os.symlink("/dev/full", full)
    return dict(run=run, ckpt=ckpt, cfg=cfg, pts=pts, big=big, zero="/dev/zero", fifo=fifo, dir=d,
                missing=os.path.join(tmp, "missing.npy"), full=full, nanw=nanw, npz=npz, badpsd=badpsd,
                wide=wide, imgs=imgs, fifow=fifow)


def snapshot(path):
    """file -> (size, mtime) under path: to see that a refused command left a run as it was"""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            st = os.stat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ebmc, src = sys.argv[1], sys.argv[2]
    if "--list" in sys.argv:
        for r in ROWS:
            print(r)
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="1", EBMC_INCEPTION="")
    tmp = tempfile.mkdtemp(prefix="ebmc_adv_")
    t0 = time.time()
    fails = 0
    try:
        fx = fixtures(ebmc, src, tmp, env)
        fx["src"] = src
        run_before = snapshot(fx["run"])
        for i, (args, want_rc, want_msg) in enumerate(ROWS):
            fx["out"] = os.path.join(tmp, "out%d" % i)
            argv = [a.format(**fx) for a in args.split()]
            msg = want_msg.format(**fx)
            rc, out, err, secs = run_row(ebmc, argv, env)
            text = out if want_rc == 0 else err
            ok = rc == want_rc and msg in text
            left = [os.path.relpath(os.path.join(r, f), tmp) for p in os.listdir(tmp) if p.startswith("out%d" % i)
                    for r, _, fs in os.walk(os.path.join(tmp, p)) for f in fs]
            left += [p for p in os.listdir(tmp) if p.startswith("out%d" % i) and os.path.isfile(os.path.join(tmp, p))]
            if ok and want_rc != 0 and left:
                ok, err = False, err + "\n(a failed command left %s behind)" % left
            status = "ok  " if ok else "FAIL"
            first = (text.strip().splitlines() or [""])[-1][:150] if ok else (err.strip() or out.strip())[-400:]
            print("%s %-62s rc %-4s (want %d) %.2fs  %s" % (status, args, rc, want_rc, secs, first))
            if not ok:
                print("     want a message containing: %r" % msg)
                fails += 1
        for i, (args, want_rc, want_msg) in enumerate(SIGNAL_ROWS):
            fx["out"] = os.path.join(tmp, "sig%d" % i)
            rc, out, err, secs = run_signal_row(ebmc, [a.format(**fx) for a in args.split()], env)
            ok = rc == want_rc and want_msg in err
            print("%s %-62s rc %-4s (want %d) %.2fs  %s" % ("ok  " if ok else "FAIL", "2x SIGTERM: " + args[:50], rc,
                                                            want_rc, secs, (err.strip().splitlines() or [""])[-1][:150]))
            if not ok:
                print("     want a message containing: %r" % want_msg)
                fails += 1
        if snapshot(fx["run"]) != run_before:
            print("FAIL: the fixture run was modified by a refused command")
            fails += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d of %d rows failed (%.1f s)" % (fails, len(ROWS) + len(SIGNAL_ROWS), time.time() - t0))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
