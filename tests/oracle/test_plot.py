#!/usr/bin/python3
"""`ebmc plot` (src/host/cli/plot_cmd.c running python/ebmc_plot.py with matplotlib).

Usage: /usr/bin/python3 tests/oracle/test_plot.py EBMC

A 40-iteration toy2d Dual-MCMC run, then:
  - ebmc plot RUN writes RUN/curves.png (exit 0): a 1500x850 PNG, not blank; every metric of
    metrics.jsonl (but iter, epoch, sec) in exactly one panel, chain_steps_per_s under
    throughput, e_gap alone under the energy gap; no red (no divergence event);
  - a divergence event line and a null (non-finite) value added: red dashed lines appear and the
    legend counts the non-finite value (the panel list on stderr says so);
  - a cut last line (a killed run) is ignored; a malformed line before the end is refused with
    exit 65 naming file:line; a folder without metrics.jsonl: exit 65 naming the file; --out to
    a folder that does not exist: exit 1, nothing written.
Exit status 0 when every check passes, 1 otherwise, 77 (skip) without matplotlib."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import matplotlib  # noqa: F401
    import matplotlib.image as mpimg
except ImportError:
    print("test_plot: SKIPPED \u2014 no matplotlib/numpy for " + sys.executable + " (Debian: python3-matplotlib)")
    sys.exit(77)

EBMC = sys.argv[1]
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def plot(*args):
    return subprocess.run([EBMC, "plot"] + list(args), capture_output=True, text=True)


def red_pixels(png):
    a = mpimg.imread(png)[..., :3]
    return int(np.sum((a[..., 0] > 0.9) & (a[..., 1] < 0.3) & (a[..., 2] < 0.3)))


def panels(stderr):
    out = {}
    for line in stderr.splitlines():
        if line.startswith("ebmc plot: panel '"):
            title, ks = line[len("ebmc plot: panel '"):].split("': ", 1)
            out[title] = [] if ks == "-" else ks.split(", ")
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="test_plot.")
    subprocess.run([EBMC, "train", os.path.join(ROOT, "configs", "toy2d_dual_mcmc.ini"), f"run.out_dir={tmp}",
                    "run.name=toy", "train.iterations=40", "log.quiet=true", "log.tensorboard=false"], check=True,
                   capture_output=True)
    run = os.path.join(tmp, "toy")
    p = plot(run)
    png = os.path.join(run, "curves.png")
    check(p.returncode == 0 and os.path.exists(png), f"ebmc plot RUN: exit {p.returncode}, {png} written")
    a = mpimg.imread(png)
    check(a.shape[:2] == (850, 1500) and float(a[..., :3].std()) > 0.05, f"a 1500x850 PNG with content ({a.shape})")
    rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    keys = [k for k in rows[0] if k not in ("iter", "epoch", "sec")]
    got = panels(p.stderr)
    flat = [k for ks in got.values() for k in ks]
    check(sorted(flat) == sorted(keys), f"every metric in exactly one panel ({len(flat)} of {len(keys)})")
    check("chain_steps_per_s" in got.get("throughput", []) and got.get("energy gap (guarded)") == ["e_gap"],
          "chain_steps_per_s under throughput, e_gap alone under the energy gap")
    check(red_pixels(png) == 0, "no red without a divergence event")

    with open(os.path.join(run, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"event": "divergence", "iter": 20, "e_gap": 1e5, "recovery": 1, "restarts": 1}) + "\n")
        r = dict(rows[-1], iter=41, loss_e=None, loss_e_nonfinite="nan")
        f.write(json.dumps(r) + "\n")
        f.write('{"iter": 42, "epoch": 0, "loss_e": 1.2')  # cut by a kill
    p = plot(run, "--out", os.path.join(tmp, "b.png"))
    check(p.returncode == 0, f"a cut last line is ignored (exit {p.returncode})")
    check(red_pixels(os.path.join(tmp, "b.png")) > 100, "the divergence event is drawn (red)")
    check(any("loss_e (1 non-finite)" in ks for ks in panels(p.stderr).values()),
          "loss_e plotted with its null value counted in the legend")
    p = plot(os.path.join(tmp, "toy"), "--out", os.path.join(tmp, "nowhere", "x.png"))
    check(p.returncode == 1 and not os.path.exists(os.path.join(tmp, "nowhere")), f"unwritable --out: exit {p.returncode}")

    lines = open(os.path.join(run, "metrics.jsonl")).read().splitlines(True)
    lines.insert(5, "{not json\n")
    open(os.path.join(run, "metrics.jsonl"), "w").writelines(lines)
    p = plot(run, "--out", os.path.join(tmp, "c.png"))
    check(p.returncode == 65 and "metrics.jsonl:6: not a JSON line" in p.stderr and not os.path.exists(
        os.path.join(tmp, "c.png")), f"a malformed line: exit {p.returncode}, {p.stderr.strip()!r}")
    os.makedirs(os.path.join(tmp, "empty"))
    p = plot(os.path.join(tmp, "empty"))
    check(p.returncode == 65 and "empty/metrics.jsonl" in p.stderr, f"no metrics.jsonl: exit {p.returncode}")
    shutil.rmtree(tmp)
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main())
