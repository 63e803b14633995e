#!/usr/bin/python3
"""ctest bench_smoke / bench_gate_perturb: bench/run.py on the CPU (quick sizes) as a functional
test of the whole benchmark: weight export, the ebmc --serve protocol, the correctness gates
(ebmc CPU against PyTorch CPU eager fp32) and the interleaved timing.

Usage: /usr/bin/python3 tests/bench/test_bench_run.py smoke|perturb|wrong /path/to/ebmc

  smoke    run.py --cpu --quick --rounds 2 --out TMP must exit 0 and write TMP/cpu-<date>.json
           with gpu, versions, rows (case, impl, median_s, p10_s, p90_s, rate, rate_unit,
           flop_fraction; ebmc and torch rows for every case), gates (all passed) and the GPU
           variants noted as skipped; nothing may appear in bench/results. Also: --cpu --quick
           with --out bench/results is refused (2), and so is a GPU run without a GPU (2); the CPU
           plan (`ebmc bench --backend cpu --list`) has the real-size CPU cases; run.py started
           by a Python without PyTorch runs itself under one with it.
  perturb  with EBMC_BENCH_PERTURB=1 (one PyTorch-side weight scaled by 1.01) run.py must exit 3
           with "CORRECTNESS GATE FAILED" and write no results file.
  wrong    the derived gates catch a deliberately wrong ebmc chain (EBMC_BENCH_INJECT=sign, step
           x 1.1, noise x 1.1: bench_gates.c): --gates-only on one quick short-run x-chain exits 3
           with the traj gate failing by at least 10x its derived bound (ascent and noise: the dist
           gates too), while the same case unperturbed passes every gate with its deviation
           below the bound.
Exit status 0 on success, 1 on failure, 77 (skip) without PyTorch/numpy.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy  # noqa: F401  (run.py needs it)
    import torch
except ImportError:
    print("bench tests: SKIPPED \u2014 PyTorch/numpy not installed")
    sys.exit(77)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO, "bench", "run.py")
RESULTS = os.path.join(REPO, "bench", "results")
failures = []


def check(cond, what):
    print(f"{'ok  ' if cond else 'FAIL'} {what}", flush=True)
    if not cond:
        failures.append(what)


def results_snapshot():
    return sorted(glob.glob(os.path.join(RESULTS, "*")))


def run(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([sys.executable, RUN] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=e)
    return p.returncode, p.stdout


def smoke(ebmc):
    before = results_snapshot()
    with tempfile.TemporaryDirectory(prefix="ebmc_bench_smoke_") as tmp:
        rc, out = run(["--cpu", "--quick", "--rounds", "2", "--out", tmp, "--ebmc", ebmc])
        check(rc == 0, f"run.py --cpu exits 0 (got {rc})")
        if rc != 0:
            print(out[-6000:])
            return
        files = glob.glob(os.path.join(tmp, "cpu-*.json"))
        check(len(files) == 1, f"one results file in the --out folder ({files})")
        check(len(glob.glob(os.path.join(tmp, "cpu-*.md"))) == 1, "the Markdown table beside it")
        if not files:
            return
        with open(files[0]) as f:
            d = json.load(f)
        for k in ("gpu", "versions", "rows", "gates", "command", "rounds", "skipped", "matmul", "ratios"):
            check(k in d, f"key '{k}'")
        check(d.get("gpu") == "cpu" and d.get("cpu") is True, "gpu 'cpu', cpu true")
        check(d.get("rounds") == 2, "2 rounds")
        check("torch" in d["versions"] and "ebmc" in d["versions"], "versions of ebmc and torch")
        keys = ("case", "impl", "median_s", "p10_s", "p90_s", "rate", "rate_unit", "flop_fraction")
        rows = d.get("rows", [])
        check(rows and all(all(k in r for k in keys) for r in rows), f"every row has {keys}")
        check(all(len(r["times_s"]) == 2 and r["p10_s"] <= r["median_s"] <= r["p90_s"] for r in rows),
              "two raw times per row, p10 <= median <= p90")
        cases = {r["case"] for r in rows}
        impls = {r["impl"] for r in rows}
        check(len(cases) == 7, f"the 7 quick cases ({sorted(cases)})")
        check(impls == {"ebmc-cpu", "torch-eager-fp32"}, f"impls ebmc-cpu and torch-eager-fp32 ({impls})")
        check(all((c, i) in {(r["case"], r["impl"]) for r in rows} for c in cases for i in impls),
              "every case timed by both")
        check(len(d["ratios"]) == len(cases), "one ebmc/torch ratio per case")
        g = d.get("gates", [])
        check(len(g) >= 30 and all(x["ok"] for x in g), f"{len(g)} gate checks, all passed")
        kinds = {x["gate"].split(":")[0] for x in g}
        check({"energy", "output", "grad", "traj", "dist-mean", "dist-spread", "dist-energy",
               "iteration"} <= kinds, f"every kind of gate ran ({sorted(kinds)})")
        sk = {s["impl"] for s in d.get("skipped", [])}
        check({"torch-eager-bf16-cl", "torch-compile", "torch-cudagraph", "torch-eager-tf32"} <= sk,
              f"the GPU variants are noted as skipped ({sorted(sk)})")
    check(results_snapshot() == before, "nothing written into bench/results")
    # the CPU plan (run.py --cpu without --quick): real sizes that fit two cores
    p = subprocess.run([ebmc, "bench", "--backend", "cpu", "--list"], stdout=subprocess.PIPE, text=True)
    names = [c["name"] for c in json.loads(p.stdout)["cases"]] if p.returncode == 0 else []
    check({"x-chain/shortrun-nf64/b16/k10", "iteration/dualmcmc-quickstart/b16"} <= set(names),
          f"the CPU plan has the short-run n_f 64 chain and the quick-start iteration ({names})")
    # a Python without PyTorch (here: this one without site-packages) runs run.py under one with it
    e = dict(os.environ, EBMC_PYTHON=sys.executable)
    e.pop("EBMC_BENCH_REEXEC", None)
    p = subprocess.run([sys.executable, "-S", RUN, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=e)
    check(p.returncode == 0 and "running under" in p.stdout and "--cpu" in p.stdout,
          f"run.py finds the Python with PyTorch (rc {p.returncode}: {p.stdout[:300]})")
    rc, out = run(["--cpu", "--quick", "--out", RESULTS, "--ebmc", ebmc])
    check(rc == 2 and "never writes into bench/results" in out, "--cpu --out bench/results is refused")
    if not torch.cuda.is_available():
        rc, out = run(["--quick", "--ebmc", ebmc])
        check(rc == 2 and "--cpu" in out, "without a GPU (and no --cpu) it refuses with a hint")
    check(results_snapshot() == before, "still nothing in bench/results")


def perturb(ebmc):
    before = results_snapshot()
    with tempfile.TemporaryDirectory(prefix="ebmc_bench_perturb_") as tmp:
        rc, out = run(["--cpu", "--quick", "--rounds", "1", "--out", tmp, "--ebmc", ebmc,
                       "--cases", "x-chain/shortrun-nf4/b4"], env={"EBMC_BENCH_PERTURB": "1"})
        check(rc == 3, f"run.py exits 3 when PyTorch's weights are perturbed (got {rc})")
        check("CORRECTNESS GATE FAILED" in out, "with a clear message")
        check("energy" in out and "FAIL" in out, "naming the failing gate")
        check(not glob.glob(os.path.join(tmp, "cpu-*[0-9].json")), "and no results file")
        if rc != 3:
            print(out[-4000:])
        # the same case unperturbed passes: the failure comes from the perturbation
        rc, out = run(["--cpu", "--quick", "--rounds", "1", "--out", tmp, "--ebmc", ebmc,
                       "--cases", "x-chain/shortrun-nf4/b4", "--gates-only"])
        check(rc == 0, f"unperturbed, the same gates pass (got {rc})")
    check(results_snapshot() == before, "nothing written into bench/results")


def gates_of(out):
    """(gate, value, tol, ok) of every gate line run.py logged"""
    import re
    rows = []
    for m in re.finditer(r"gate (\S+)\s+.*?\s(\S+) \(tol (\S+)\) (ok|FAIL)", out):
        rows.append((m.group(1), float(m.group(2)), float(m.group(3)), m.group(4) == "ok"))
    return rows


def wrong(ebmc):
    case = "x-chain/shortrun-nf4/b16"
    with tempfile.TemporaryDirectory(prefix="ebmc_bench_wrong_") as tmp:
        base = ["--cpu", "--quick", "--out", tmp, "--ebmc", ebmc, "--cases", case, "--gates-only"]
        rc, out = run(base)
        g = gates_of(out)
        check(rc == 0 and g and all(x[3] for x in g), f"the correct chain passes every derived gate (rc {rc})")
        traj = [x for x in g if x[0] == "traj" and "ebmc" in out]
        if rc != 0:
            print(out[-4000:])
        for inj in ("sign", "step", "noise"):
            rc, out = run(base, env={"EBMC_BENCH_INJECT": inj})
            g = gates_of(out)
            tr = [x for x in g if x[0] == "traj" and not x[3]]
            check(rc == 3 and "CORRECTNESS GATE FAILED" in out, f"{inj}: run.py exits 3 (got {rc})")
            worst = max((x[1] / x[2] for x in tr), default=0.0)
            check(worst >= 10, f"{inj}: the traj gate fails by {worst:.3g}x its derived bound (>= 10x)")
            if rc != 3:
                print(out[-4000:])
        check(traj and all(x[1] < x[2] for x in traj), "unperturbed, the traj deviation is below its bound")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("smoke", "perturb", "wrong"):
        print(__doc__)
        return 2
    ebmc = os.path.abspath(sys.argv[2])
    {"smoke": smoke, "perturb": perturb, "wrong": wrong}[sys.argv[1]](ebmc)
    print(f"{'FAILED: ' + '; '.join(failures) if failures else 'all passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
