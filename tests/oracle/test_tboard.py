#!/usr/bin/python3
"""ebmc's TensorBoard event files (src/host/io/tboard.c, the run shell) read back by TensorBoard's
own reader (PyPI `tensorboard`, its EventAccumulator and the record reader under it, which checks
both CRC-32Cs of every record).

Usage: /usr/bin/python3 tests/oracle/test_tboard.py EBMC PYDEPS [--perturb]

PYDEPS: the folder scripts/setup.sh --tests pip-installs `tensorboard` into (build/pydeps).
Three runs of configs/quickstart.ini at batch 4 (20 iterations, checkpoints every 8, grids every
5; the shapes data are built in):
  straight   20 iterations in one go
  resumed    8, then --resume to 20 (bit-exact resume: the same metrics but the timings)
  killed     SIGKILL as soon as the event file holds a step after the checkpoint of iteration 8
             and before the next one; a cut record is appended (a kill inside a write), then
             --resume: ebmc must say that it drops those steps and the cut record
Each run must give, per scalar tag, one value at every iteration 1..20 (count == 20, no
duplicate step), each the float32 rounding of the value metrics.jsonl holds: TensorBoard's is
fl32(v) of the reported double v, metrics.jsonl's v printed with 9 significant digits (within
5e-9 |v|), and a float32 ulp is at least 6e-8 |v|, so the two float32 roundings are equal or
one ulp apart (equal for metrics that are float32 numbers: 9 digits round-trip them); every
grid as an image at iterations 5, 10, 15, 20 (and the last iteration of the first process when
it was resumed) byte for byte the PNG in samples/; the config as
text at the first step of each process (the text of config.ini); wall times non-decreasing.
The killed run's file, before the resume, is read by TensorBoard up to the cut record (which it
ignores). The divergence guard's reloads (a resume whose every iteration breaks guard.max_gap:
three reloads of iteration 8's checkpoint, then exit 4) leave steps 1..9 once, as metrics.jsonl. log.tensorboard =
false writes no tb/ folder.
--perturb: the killed run is resumed from a checkpoint whose record of the event file's length
is removed (the defect of a writer that starts a new file per process and cuts nothing): the
checks must then see the duplicated steps; exit 0 iff they do.
Exit status 0 when every check passes, 1 otherwise, 77 (skip) without tensorboard."""
import glob
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

if len(sys.argv) < 3:
    print(__doc__)
    sys.exit(2)
EBMC, PYDEPS = sys.argv[1], sys.argv[2]
PERTURB = "--perturb" in sys.argv[3:]
sys.path.insert(0, PYDEPS)
try:
    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.backend.event_processing import event_file_loader as efl
except ImportError as e:
    print(f"SKIPPED: no tensorboard reader ({e}); scripts/setup.sh --tests installs it into {PYDEPS}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "..", "configs", "quickstart.ini")
TOTAL, CKPT, GRID = 20, 8, 5
ARGS = ["train.batch_size=4", f"log.ckpt_every={CKPT}", f"log.grid_every={GRID}", "log.quiet=true"]
TIMINGS = {"sec", "images_per_s", "chain_steps_per_s"}
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def train(out, name, *extra, resume=False):
    cmd = [EBMC, "train"] + (["--resume", os.path.join(out, name)] if resume else
                             [CONFIG, f"run.out_dir={out}", f"run.name={name}"]) + ARGS + list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")
    return p.stderr


def accumulate(run_dir):
    acc = ea.EventAccumulator(os.path.join(run_dir, "tb"), size_guidance={
        ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def metrics(run_dir):
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return [r for r in rows if "iter" in r and "event" not in r]


def f32(x):
    return np.float32(x)


def check_run(run_dir, label, config_steps, ends=()):
    """config_steps: the first step of each process (0 and each resume's checkpoint); ends: the
    last iterations of processes that finished before the last one (they write grids)."""
    acc = accumulate(run_dir)
    tags = acc.Tags()
    rows = metrics(run_dir)
    check([r["iter"] for r in rows] == list(range(1, TOTAL + 1)), f"{label}: metrics.jsonl holds iterations 1..{TOTAL} once")
    names = [k for k in rows[0] if k != "iter" and not k.endswith("_nonfinite")]
    check(sorted(tags["scalars"]) == sorted(names), f"{label}: scalar tags = metrics.jsonl's fields but iter "
          f"({len(names)}: {', '.join(sorted(names))})")
    exact = total = worst = 0
    for tag in sorted(tags["scalars"]):
        ev = acc.Scalars(tag)
        steps = [e.step for e in ev]
        check(steps == list(range(1, TOTAL + 1)), f"{label}: {tag}: {len(ev)} values at steps "
              f"{steps[0]}..{steps[-1]}, {len(steps) - len(set(steps))} duplicate steps (want {TOTAL}, 0)")
        ref = {r["iter"]: r[tag] for r in rows}
        for e in ev:
            got = f32(e.value)
            if ref.get(e.step) is None:  # a non-finite value: null in JSON
                ok = not np.isfinite(got)
            else:
                want = f32(ref[e.step])
                ulps = abs(int(got.view(np.int32)) - int(want.view(np.int32)))
                ok = ulps <= 1
                exact += ulps == 0
                worst = max(worst, ulps)
            total += 1
            if not ok:
                check(False, f"{label}: {tag} at step {e.step}: TensorBoard {got!r}, metrics.jsonl {ref[e.step]!r}")
                break
    check(worst <= 1, f"{label}: every scalar within {worst} float32 ulp of metrics.jsonl's (bound 1); "
          f"{exact} of {total} equal")
    walls = sorted((e.step, e.wall_time) for t in tags["scalars"] for e in acc.Scalars(t))
    check(all(a[1] <= b[1] for a, b in zip(walls, walls[1:])), f"{label}: wall times do not go back")
    grids = sorted({os.path.basename(p)[len("iter_00000000_"):-4] for p in glob.glob(os.path.join(run_dir, "samples", "*.png"))})
    check(sorted(tags["images"]) == [f"samples/{g}" for g in grids], f"{label}: image tags = the grids {grids}")
    for g in grids:
        ims = acc.Images(f"samples/{g}")
        # every GRID iterations and at each process's last one (the checkpoint it resumed from)
        want_steps = sorted(set(range(GRID, TOTAL + 1, GRID)) | set(ends) | {TOTAL})
        check([i.step for i in ims] == want_steps, f"{label}: samples/{g} at steps {[i.step for i in ims]}")
        same = all(i.encoded_image_string == open(os.path.join(run_dir, "samples", f"iter_{i.step:08d}_{g}.png"), "rb").read()
                   for i in ims)
        check(same, f"{label}: samples/{g}: every image byte for byte the PNG in samples/")
    text = acc.Tensors("config")
    cfg = open(os.path.join(run_dir, "config.ini")).read()
    check([t.step for t in text] == config_steps, f"{label}: config text at steps {[t.step for t in text]} "
          f"(want {config_steps})")
    last = text[-1].tensor_proto.string_val[0].decode()
    check(last == "```\n" + cfg + "```\n", f"{label}: the last config text is config.ini in a code block")
    return acc


def raw_steps(path):
    from tensorboard.compat.proto import event_pb2
    return [event_pb2.Event.FromString(r).step for r in efl.RawEventFileLoader(path).Load()]


def main():
    tmp = tempfile.mkdtemp(prefix="test_tboard.")
    # straight
    train(tmp, "straight", f"train.iterations={TOTAL}")
    files = glob.glob(os.path.join(tmp, "straight", "tb", "events.out.tfevents.*"))
    check(len(files) == 1, f"straight: one event file in tb/ ({len(files)})")
    a = check_run(os.path.join(tmp, "straight"), "straight", [0])

    # resumed (cleanly)
    train(tmp, "resumed", f"train.iterations={CKPT}")
    train(tmp, "resumed", f"train.iterations={TOTAL}", resume=True)
    check(len(glob.glob(os.path.join(tmp, "resumed", "tb", "*"))) == 1, "resumed: still one event file")
    b = check_run(os.path.join(tmp, "resumed"), "resumed", [0, CKPT], ends=[CKPT])
    same = all([e.value for e in a.Scalars(t)] == [e.value for e in b.Scalars(t)]
               for t in a.Tags()["scalars"] if t not in TIMINGS)
    check(same, "resumed: every metric's curve equals the straight run's (bit-exact resume)")

    # killed with SIGKILL between checkpoints, a cut record appended, resumed
    run = os.path.join(tmp, "killed")
    p = subprocess.Popen([EBMC, "train", CONFIG, f"run.out_dir={tmp}", "run.name=killed",
                          f"train.iterations={TOTAL}"] + ARGS, stderr=subprocess.PIPE, text=True)
    # the event file gets the steps after a checkpoint at the next grid (or a second later):
    # stop the process as soon as it holds one, see where it stands, then kill it
    seen, t0 = [], time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        fs = glob.glob(os.path.join(run, "tb", "events.out.tfevents.*"))
        seen = raw_steps(fs[0]) if fs else []
        if max(seen, default=0) > CKPT:
            p.send_signal(signal.SIGSTOP)
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    ckpts = sorted(os.listdir(os.path.join(run, "checkpoints")))
    path = glob.glob(os.path.join(run, "tb", "events.out.tfevents.*"))[0]
    before = raw_steps(path)
    last_ckpt = int(ckpts[-1][len("iter_"):]) if ckpts else -1
    check(last_ckpt == CKPT and max(before) > CKPT,
          f"killed: SIGKILL after the checkpoint of iteration {last_ckpt} with steps up to {max(before)} in the file")
    with open(path, "ab") as f:  # a kill inside a write: a header whose record never came
        f.write(struct.pack("<Q", 1000) + b"\x01\x02\x03")
    after = raw_steps(path)
    check(after == before, f"killed: TensorBoard reads the file up to the cut record and ignores it "
          f"({len(after)} records, as before it)")
    if PERTURB:  # the defect: the checkpoint forgets the event file, so nothing is cut on resume
        st = os.path.join(run, "checkpoints", ckpts[-1], "state.safetensors")
        raw = open(st, "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        head = json.loads(raw[8:8 + n])
        head["__metadata__"].pop("tensorboard_bytes")
        h = json.dumps(head).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        open(st, "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
    err = train(tmp, "killed", resume=True)
    print("      ebmc said: " + " | ".join(l for l in err.splitlines() if "tb/" in l))
    if not PERTURB:
        dropped = [k for k in before if k > CKPT]
        check(f"steps {min(dropped)}-{max(dropped)}, which this run writes again" in err and "cut record" in err,
              f"killed: ebmc says it drops steps {min(dropped)}-{max(dropped)} and the cut record")
    check_run(run, "killed", [0, CKPT])

    # the divergence guard's reload: resumed with a gap bound every iteration breaks, it reloads
    # the checkpoint of iteration 8 three times and gives up at the fourth try (exit 4); each
    # reload cuts the event file back, so it holds steps 1..8 once and the last try's step 9
    # (as metrics.jsonl: the iteration that made it give up is logged)
    train(tmp, "guard", f"train.iterations={CKPT}")
    p = subprocess.run([EBMC, "train", "--resume", os.path.join(tmp, "guard"), f"train.iterations={TOTAL}",
                        "guard.max_gap=1e-30"] + ARGS, capture_output=True, text=True)
    acc = accumulate(os.path.join(tmp, "guard"))
    steps = [e.step for e in acc.Scalars("loss_e")]
    jsonl = [r["iter"] for r in metrics(os.path.join(tmp, "guard"))]
    check(p.returncode == 4 and steps == jsonl == list(range(1, CKPT + 2)),
          f"guard: exit {p.returncode} after 3 reloads; loss_e at steps {steps}, metrics.jsonl {jsonl} "
          f"(want 4; 1..{CKPT + 1} once)")

    # off
    train(tmp, "off", "train.iterations=2", "log.tensorboard=false")
    check(not os.path.exists(os.path.join(tmp, "off", "tb")), "log.tensorboard = false: no tb/ folder")
    import shutil
    shutil.rmtree(tmp)
    print(f"{len(failures)} failed")
    if PERTURB:
        print("perturbed: the duplicated steps " + ("were detected" if failures else "were NOT detected"))
        return 0 if failures else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
