#!/usr/bin/env bash
# Data-parallel throughput (issue 15): the same config and global batch trained by 1 rank and by
# N ranks (CPU ranks with one OpenMP thread each; GPUs with run.backend=cuda, one per rank), images/s from the median iteration time after a
# warm-up (metrics.jsonl "sec", rank 0's iteration wall time, gradient all-reduces included).
#   scripts/mpi_scaling.sh [CONFIG] [N] [k=v ...]
# defaults: configs/quickstart.ini, N = 2, train.batch_size=32 train.iterations=30.
# Needs an ebmc built with MPI (build/ebmc info: "MPI: built") and mpirun. On a loaded machine the
# numbers say little; run it on an idle one.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-configs/quickstart.ini}
n=${2:-2}
shift $(( $# > 2 ? 2 : $# )) || true
out=$(mktemp -d /tmp/ebmc_scaling.XXXXXX)
trap 'rm -rf "$out"' EXIT
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(run.out_dir="$out" run.backend=cpu train.batch_size=32 train.iterations=30 log.grid_every=0
        log.ckpt_every=0 log.quiet=true "$@")
run() { # run LOG command...: its stderr in LOG, shown when it fails
  local log=$1; shift
  "$@" 2>"$log" || { tail -n 20 "$log" >&2; echo "mpi_scaling: $* failed" >&2; exit 1; }
}
run "$out/r1.log" build/ebmc train "$cfg" "${common[@]}" run.name=r1
run "$out/rn.log" mpirun --oversubscribe -np "$n" build/ebmc train "$cfg" "${common[@]}" run.name=r$n
python3 - "$out" "$n" <<'PY'
import json, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
def rate(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl") if l.startswith('{"iter"')]
    warm = rows[len(rows) // 5:]  # the first fifth: warm-up
    sec = statistics.median(r["sec"] for r in warm)
    return rows[0]["images_per_s"] * rows[0]["sec"] / sec, sec  # images per iteration / median sec
r1, s1 = rate("r1")
rn, sn = rate(f"r{n}")
print(f"1 rank : {r1:9.1f} images/s (median iteration {s1 * 1e3:.1f} ms)")
print(f"{n} ranks: {rn:9.1f} images/s (median iteration {sn * 1e3:.1f} ms); speed-up {rn / r1:.2f}x, "
      f"efficiency {rn / r1 / n * 100:.0f}%")
PY
