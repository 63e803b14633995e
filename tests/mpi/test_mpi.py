#!/usr/bin/env python3
"""Data-parallel training over MPI ranks on the CPU backend (issue 15), driven through mpirun.

usage: test_mpi.py CASE EBMC MPI_TRAIN      (CASE: equiv_dualmcmc, equiv_mle2d, equiv_shortrun, equiv_coopnets,
                                             equiv_coopvaebm, equiv_particles, smoke_persistent, smoke_jarzynski, recover,
                                             resume, refuse, stop, killed, hung)

  equiv_*  1 rank with global batch 2B and 2 ranks with 2B (B each) train T = 20 iterations from
           the same seed: the same data order (the loader's, sliced), the same per-chain noise
           (keyed by the global chain index) and averaged gradients, so the parameters differ
           only through summation order. Bound per parameter tensor, T * (ulp(m) + max(ulp(m),
           lr * A * n * u)), m = max|theta|, u = 2^-24: in each iteration the two runs' updated
           parameters may round to neighbouring floats (1 ulp), and the gradients' reassociation
           error (n = 2B summands over the batch: relative n*u) reaches the parameter through
           Adam's step lr * m_hat / sqrt(v_hat), whose size is at most lr * A with
           A = (1 - beta1) / (sqrt(1 - beta2) (1 - beta1 / sqrt(beta2))). The bound is first
           order: it does not model amplification through the chains' dynamics. A real defect (a
           rank drawing the other rank's noise, a wrong slice, no all-reduce) moves parameters by
           ~lr per step: 100x the bound and more.
           equiv_shortrun, equiv_coopnets, equiv_coopvaebm, equiv_particles: the same for recipes that count their
           chains (train.chains) or particles apart from the batch: a rank runs its share, and n
           in the bound is the larger count of summands.
  smoke_*  recipes not equivalent to one process by design (persistent: a replay buffer per rank;
           jarzynski: walkers weighted and resampled within each rank): 2 ranks train 20
           iterations with one metrics line each, the shell's check that the ranks hold the same
           parameters passes at each checkpoint (iterations 10, 20), and resume is bit-exact.
  recover  the divergence guard's recovery (a NaN at iteration 15) under 2 ranks ends as in one
           process (the bound above).
  resume   2 ranks: 20 iterations in one go vs 10, then --resume to 20: bit-identical.
  refuse   resuming a 2-rank run with 1 process, and a batch that 3 ranks cannot split: exit 64
           with a message naming the problem.
  stop     SIGTERM to rank 1 alone: every rank stops after the same iteration; one checkpoint
           there; exit 0.
  killed   rank 1 killed (SIGKILL) mid-run: the job ends (non-zero) within a timeout.
  hung     rank 1 stopped (SIGSTOP) mid-run: rank 0 reports its collective timed out
           (run.comm_timeout = 3 s) and aborts the job, within 3 s + a margin.
Exit 77 (skip) when ebmc was built without MPI or mpirun is missing."""
import json
import os
import shutil
import signal
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

ITERS = 20

DM_INI = """[run]
recipe = dualmcmc
backend = cpu
[data]
dataset = toy2d
count = 512
[model]
arch = toy2d
nz = 2
hidden = 16
[train]
iterations = 20
batch_size = 16
lr_e = 1e-3
lr_g = 1e-3
lr_i = 1e-3
[langevin_x]
steps = 5
step_size = 0.1
noise = 0.01
[langevin_z]
steps = 3
[log]
quiet = true
ckpt_every = 10
keep = 4
grid_every = 0
"""

# (lr, beta1, beta2, summands n of a batch gradient): DM_INI's largest lr with Dual-MCMC's Adam
# (beta1 0, beta2 0.9), and the mle2d fixture's Adam (1e-3, 0.5, 0.999); global batch 16
DM_ADAM = (1e-3, 0.0, 0.9, 16)
MLE_ADAM = (1e-3, 0.5, 0.999, 16)

MLE_INI = """[run]
recipe = mle2d
backend = cpu
[data]
dataset = toy2d
count = 512
[train]
iterations = 20
batch_size = 16
[mle2d]
hidden = 16
steps = 5
[log]
quiet = true
ckpt_every = 10
keep = 4
"""

# Recipes of main beyond Dual-MCMC (toy sizes: the CPU budget). shortrun and coopnets count their
# chains apart from the data batch (train.chains, global: each rank runs its share), so their
# gradients are sums over max(B, chains) summands; particles (alpha: no re-initialisation) splits
# particles.count and starts its base from the global batch's statistics.
SR_INI = """[run]
recipe = shortrun
backend = cpu
[data]
dataset = toy2d
count = 512
[model]
arch = toy2d
hidden = 16
[train]
iterations = 20
batch_size = 16
chains = 32
lr = 1e-3
data_noise = 0.01
[langevin]
steps = 5
step_size = 0.02
noise = 0.01
init_lo = -3
init_hi = 3
[log]
quiet = true
ckpt_every = 10
keep = 4
grid_every = 0
"""
SR_ADAM = (1e-3, 0.9, 0.999, 32)

COOP_INI = """[run]
recipe = coopnets
backend = cpu
[data]
dataset = toy2d
count = 512
[model]
arch = toy2d
nz = 2
hidden = 16
[train]
iterations = 20
batch_size = 16
chains = 24
lr_e = 1e-3
lr_g = 1e-3
sigma_g = 0.3
[langevin]
steps = 5
step_size = 0.5
sigma_ref = 3
noise = 0.1
[log]
quiet = true
ckpt_every = 10
keep = 4
grid_every = 0
"""
COOP_ADAM = (1e-3, 0.5, 0.999, 24)
# CoopVAEBM: the same chains, an encoder I, the VAE's reparameterisation noise per chain
COOPVAE_INI = COOP_INI.replace("recipe = coopnets", "recipe = coopvaebm").replace("sigma_g = 0.3", "lr_decay = 1")

PD_INI = """[run]
recipe = particles
backend = cpu
[data]
dataset = toy2d
toy = 8gaussians
count = 512
[model]
arch = pd_mlp
hidden = 16
[train]
iterations = 20
batch_size = 16
lr = 1e-3
[particles]
method = alpha
count = 32
steps = 3
init_steps = 5
[log]
quiet = true
ckpt_every = 10
keep = 4
grid_every = 0
"""
PD_ADAM = (1e-3, 0.0, 0.999, 32)

# not equivalent to one process by design (each rank its own replay buffer / its own weighted,
# resampled walkers): smoke tests (2 ranks run, one metrics line per iteration, the ranks' shared
# parameters agree at each checkpoint, resume bit-exact)
PC_INI = """[run]
recipe = persistent
backend = cpu
[data]
dataset = toy2d
count = 512
[model]
arch = toy2d
hidden = 16
[train]
iterations = 20
batch_size = 16
lr = 1e-3
[buffer]
size = 64
reinit = 0.05
[langevin]
steps = 5
step_size = 1
clip = 0.01
noise = 0.005
lo = -3
hi = 3
[log]
quiet = true
ckpt_every = 10
keep = 4
grid_every = 0
"""

JZ_INI = """[run]
recipe = jarzynski
backend = cpu
[data]
dataset = gmm
dim = 4
count = 512
[model]
arch = gmm
components = 2
dim = 4
[train]
iterations = 20
batch_size = 16
[jarzynski]
walkers = 64
weights = on
ess_threshold = 0.9
[log]
quiet = true
ckpt_every = 10
keep = 4
grid_every = 0
"""


def env():
    e = dict(os.environ)
    # CI runs as root; two ranks on two (loaded) cores; one OpenMP thread per rank; shared memory
    # and TCP on loopback only
    e.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1",
              "OMPI_MCA_btl": "self,vader,tcp", "OMPI_MCA_btl_tcp_if_include": "lo",
              "OMPI_MCA_oob_tcp_if_include": "lo", "OMPI_MCA_rmaps_base_oversubscribe": "1"})
    return e


def mpirun(n, argv, timeout=120, **kw):
    cmd = ["mpirun", "--oversubscribe", "-np", str(n)] + argv
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout, **kw)


def single(argv, timeout=120):
    e = env()
    return subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout)


def load_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    types = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, z = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + a:8 + n + z], dtype=types[v["dtype"]]).reshape(v["shape"])
    return out, h.get("__metadata__", {})


def ckpt(run, it):
    return os.path.join(run, "checkpoints", "iter_%08d" % it)


def check(ok, msg):
    print(("ok:   " if ok else "FAIL: ") + msg)
    return ok


def must(r, what):
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        raise SystemExit("FAIL: %s exited %d" % (what, r.returncode))


def ulp(x):
    return float(np.spacing(np.float32(x)))


def compare_nets(a, b, lr, beta1, beta2, n):
    """every network tensor of checkpoint folders a, b within the summation-order bound"""
    u = 2.0 ** -24
    amp = (1 - beta1) / (np.sqrt(1 - beta2) * (1 - beta1 / np.sqrt(beta2)))
    adam = lr * amp * n * u
    ok, worst = True, 0.0
    for f in sorted(os.listdir(a)):
        if f == "state.safetensors":
            continue
        A, _ = load_st(os.path.join(a, f))
        B, _ = load_st(os.path.join(b, f))
        for k in A:
            big = float(np.abs(A[k]).max())
            tol = ITERS * (ulp(big) + max(ulp(big), adam))
            d = float(np.abs(A[k].astype(np.float64) - B[k].astype(np.float64)).max())
            worst = max(worst, d / tol)
            if d > tol:
                ok = check(False, "%s %s: max |1 rank - 2 ranks| = %.3g > %.3g" % (f, k, d, tol))
    check(ok, "all parameters within T*(ulp + max(ulp, lr*A*n*u)) (lr*A*n*u = %.3g); worst at %.3f of its "
          "bound" % (adam, worst))
    return ok


def case_equiv(tmp, prog, ini, adam):
    cfg = os.path.join(tmp, "c.ini")
    open(cfg, "w").write(ini)
    od = "run.out_dir=" + tmp
    must(single([prog, "train", cfg, od, "run.name=one"] if prog.endswith("ebmc") else
                [prog, cfg, od, "run.name=one"]), "1 rank")
    argv = [prog, "train", cfg] if prog.endswith("ebmc") else [prog, cfg]
    t0 = time.time()
    r = mpirun(2, argv + [od, "run.name=two"])
    must(r, "2 ranks")
    print("2 ranks: %.1f s wall" % (time.time() - t0))
    one, two = os.path.join(tmp, "one"), os.path.join(tmp, "two")
    ok = compare_nets(ckpt(one, ITERS), ckpt(two, ITERS), *adam)
    _, meta = load_st(os.path.join(ckpt(two, ITERS), "state.safetensors"))
    ok &= check(meta.get("ranks") == "2", "the 2-rank checkpoint records ranks = 2 (%s)" % meta.get("ranks"))
    lines = [json.loads(x) for x in open(os.path.join(two, "metrics.jsonl")) if x.startswith('{"iter"')]
    ok &= check([x["iter"] for x in lines] == list(range(1, ITERS + 1)),
                "metrics.jsonl: one line per iteration (rank 0 alone writes)")
    return ok


def case_recover(tmp, prog, ini):
    """a NaN at iteration 15 (the mle2d fixture's nan_at, once): the guard's recovery under 2 ranks
    (rank 0 picks the checkpoint of iteration 10, every rank reloads it, all reseed) ends as the
    same recovery in one process does"""
    cfg = os.path.join(tmp, "c.ini")
    open(cfg, "w").write(ini)
    od = ["run.out_dir=" + tmp, "mle2d.nan_at=15", "mle2d.nan_times=1"]
    must(single([prog, cfg, "run.name=one"] + od), "1 rank")
    must(mpirun(2, [prog, cfg, "run.name=two"] + od), "2 ranks")
    two = os.path.join(tmp, "two")
    lines = [json.loads(x) for x in open(os.path.join(two, "metrics.jsonl"))]
    events = [x for x in lines if x.get("event") == "divergence"]
    ok = check(len(events) == 1 and events[0]["iter"] == 15, "one divergence event, at 15: %s" % events)
    ok &= check([x["iter"] for x in lines if "iter" in x and "event" not in x] == list(range(1, ITERS + 1)),
                "iterations 1..20 logged once each after the recovery")
    ok &= compare_nets(ckpt(os.path.join(tmp, "one"), ITERS), ckpt(two, ITERS), *MLE_ADAM)
    return ok


def case_resume(tmp, prog, ini):
    cfg = os.path.join(tmp, "c.ini")
    open(cfg, "w").write(ini)
    od = "run.out_dir=" + tmp
    must(mpirun(2, [prog, "train", cfg, od, "run.name=full"]), "2 ranks, 20 iterations")
    must(mpirun(2, [prog, "train", cfg, od, "run.name=half", "train.iterations=10"]), "2 ranks, 10 iterations")
    half = os.path.join(tmp, "half")
    r = mpirun(2, [prog, "train", "--resume", half, "train.iterations=20"])
    must(r, "2 ranks, resumed to 20")
    ok = True
    a, b = ckpt(os.path.join(tmp, "full"), ITERS), ckpt(half, ITERS)
    for f in sorted(os.listdir(a)):
        A, _ = load_st(os.path.join(a, f))
        B, _ = load_st(os.path.join(b, f))
        for k in A:
            if A[k].tobytes() != B[k].tobytes():
                ok = check(False, "%s %s differs after resume" % (f, k))
    check(ok, "resumed 2-rank run bit-identical to the uninterrupted one (every tensor of iteration 20)")
    return ok


def case_smoke(tmp, prog, ini):
    """a recipe whose 2-rank run is not one process's by design: it runs, logs every iteration
    once, passes the shell's rank agreement check at each checkpoint, and resumes bit-exactly"""
    ok = case_resume(tmp, prog, ini)
    full = os.path.join(tmp, "full")
    lines = [json.loads(x) for x in open(os.path.join(full, "metrics.jsonl")) if x.startswith('{"iter"')]
    ok &= check([x["iter"] for x in lines] == list(range(1, ITERS + 1)),
                "metrics.jsonl: one line per iteration (rank 0 alone writes)")
    return ok


def case_refuse(tmp, prog, ini):
    cfg = os.path.join(tmp, "c.ini")
    open(cfg, "w").write(ini)
    od = "run.out_dir=" + tmp
    must(mpirun(2, [prog, "train", cfg, od, "run.name=two", "train.iterations=10"]), "2 ranks")
    r = single([prog, "train", "--resume", os.path.join(tmp, "two"), "train.iterations=20"])
    ok = check(r.returncode == 64 and "trained with 2 ranks and this launch has 1" in r.stderr,
               "resume with 1 process refused (exit %d): %s" % (r.returncode, r.stderr.strip()[-200:]))
    r = mpirun(3, [prog, "train", cfg, od, "run.name=three"])
    ok &= check(r.returncode != 0 and "does not divide evenly among 3 ranks" in r.stderr,
                "batch 16 on 3 ranks refused (exit %d)" % r.returncode)
    ok &= check(not os.path.exists(os.path.join(tmp, "three", "checkpoints")), "and nothing trained")
    return ok


def rank_pid(parent, rank, deadline):
    """pid of the process of MPI rank `rank` under mpirun (its OMPI_COMM_WORLD_RANK)"""
    while time.time() < deadline:
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                env_ = open("/proc/%s/environ" % p, "rb").read().split(b"\0")
                stat = open("/proc/%s/stat" % p).read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and ("OMPI_COMM_WORLD_RANK=%d" % rank).encode() in env_:
                return int(p)
        time.sleep(0.05)
    return None


def case_fault(tmp, prog, ini, sig):
    cfg = os.path.join(tmp, "c.ini")
    open(cfg, "w").write(ini)
    run = os.path.join(tmp, "long")
    argv = ["mpirun", "--oversubscribe", "-np", "2", prog, "train", cfg, "run.out_dir=" + tmp, "run.name=long",
            "train.iterations=100000000", "log.ckpt_every=0", "run.comm_timeout=3"]
    p = subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    try:
        deadline = time.time() + 60
        metrics = os.path.join(run, "metrics.jsonl")
        while time.time() < deadline and p.poll() is None:  # training is under way
            if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 5:
                break
            time.sleep(0.1)
        victim = rank_pid(p.pid, 1, deadline)
        if not check(victim is not None and p.poll() is None, "2 ranks training; rank 1 is pid %s" % victim):
            return False
        t0 = time.time()
        os.kill(victim, sig)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            return check(False, "the job still runs 60 s after rank 1 got signal %d: a hang" % sig)
        dt = time.time() - t0
        print(err.strip()[-1500:])
        ok = check(p.returncode != 0, "mpirun exited %d after %.1f s" % (p.returncode, dt))
        if sig == signal.SIGSTOP:
            ok &= check("rank 0 of 2" in err and "no answer from the other ranks" in err,
                        "rank 0 says its collective timed out")
            ok &= check(dt < 3 + 20, "within run.comm_timeout (3 s) + 20 s")
        else:  # the launcher notices the death and ends the job; it names the rank and the signal
            ok &= check(dt < 30, "within 30 s")
            ok &= check("rank 1" in err and ("signal 9" in err or "Killed" in err), "the message names rank 1's death")
        return ok
    finally:  # nothing of the job outlives the test, whatever happened
        rank0 = rank_pid(p.pid, 0, time.time() + 1) if p.poll() is None else None
        for q in (victim, rank0, p.pid):
            if q:
                try:
                    os.kill(q, signal.SIGKILL)
                except OSError:
                    pass
        p.wait()


def case_stop(tmp, prog, ini):
    """SIGTERM to rank 1 alone: both ranks stop after the same iteration, rank 0 writes its
    checkpoint, the job exits 0"""
    cfg = os.path.join(tmp, "c.ini")
    open(cfg, "w").write(ini)
    run = os.path.join(tmp, "long")
    argv = ["mpirun", "--oversubscribe", "-np", "2", prog, "train", cfg, "run.out_dir=" + tmp, "run.name=long",
            "train.iterations=100000000", "log.ckpt_every=0"]
    p = subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    try:
        deadline = time.time() + 60
        metrics = os.path.join(run, "metrics.jsonl")
        while time.time() < deadline and p.poll() is None:
            if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 5:
                break
            time.sleep(0.1)
        victim = rank_pid(p.pid, 1, deadline)
        if not check(victim is not None, "rank 1 is pid %s" % victim):
            return False
        os.kill(victim, signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        its = [json.loads(x)["iter"] for x in open(metrics) if x.startswith('{"iter"')]
        ck = sorted(os.listdir(os.path.join(run, "checkpoints")))
        ok = check(p.returncode == 0, "mpirun exited %d" % p.returncode)
        ok &= check(its == list(range(1, len(its) + 1)) and ck == ["iter_%08d" % its[-1]],
                    "one checkpoint, at the last logged iteration (%d): %s" % (its[-1], ck))
        ok &= check("stopped by a signal to another rank" in err, "rank 0 says why it stopped")
        return ok
    finally:
        for q in (victim, p.pid):
            if q and p.poll() is None:
                try:
                    os.kill(q, signal.SIGKILL)
                except OSError:
                    pass
        p.wait()


def main():
    case, ebmc, mpi_train = sys.argv[1], sys.argv[2], sys.argv[3]
    if not shutil.which("mpirun"):
        print("SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)")
        return 77
    info = subprocess.run([ebmc, "info"], capture_output=True, text=True).stdout
    if "MPI: built" not in info:
        print("SKIP: this ebmc was built without MPI (EBMC_MPI=OFF or no MPI found)")
        return 77
    tmp = tempfile.mkdtemp(prefix="ebmc_mpi_%s_" % case)
    try:
        if case == "equiv_dualmcmc":
            ok = case_equiv(tmp, ebmc, DM_INI, DM_ADAM)
        elif case == "equiv_mle2d":
            ok = case_equiv(tmp, mpi_train, MLE_INI, MLE_ADAM)
        elif case == "equiv_shortrun":
            ok = case_equiv(tmp, ebmc, SR_INI, SR_ADAM)
        elif case == "equiv_coopnets":
            ok = case_equiv(tmp, ebmc, COOP_INI, COOP_ADAM)
        elif case == "equiv_coopvaebm":
            ok = case_equiv(tmp, ebmc, COOPVAE_INI, COOP_ADAM)
        elif case == "equiv_particles":
            ok = case_equiv(tmp, ebmc, PD_INI, PD_ADAM)
        elif case == "smoke_persistent":
            ok = case_smoke(tmp, ebmc, PC_INI)
        elif case == "smoke_jarzynski":
            ok = case_smoke(tmp, ebmc, JZ_INI)
        elif case == "recover":
            ok = case_recover(tmp, mpi_train, MLE_INI)
        elif case == "resume":
            ok = case_resume(tmp, ebmc, DM_INI)
        elif case == "refuse":
            ok = case_refuse(tmp, ebmc, DM_INI)
        elif case == "stop":
            ok = case_stop(tmp, ebmc, DM_INI)
        elif case == "killed":
            ok = case_fault(tmp, ebmc, DM_INI, signal.SIGKILL)
        elif case == "hung":
            ok = case_fault(tmp, ebmc, DM_INI, signal.SIGSTOP)
        else:
            raise SystemExit("unknown case " + case)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
