#!/usr/bin/env bash
# Golden check for refactors: a fixed seed's 20-iteration runs (the quick-start widths with a
# checkpoint every 5 iterations, and the 2-D toy) with the ebmc of git revision REV and with
# this checkout's build/ebmc, compared file by file: every checkpoint tensor, every grid PNG and
# every metrics line (wall-clock fields aside) must be byte-identical.
#   scripts/golden-check.sh REV [--allow-new-config-keys]
# REV is built CPU-only in a temporary worktree (a few minutes on 2 cores). Both runs use the
# same run directory path and configs (this checkout's), so the checkpoints' config metadata is
# comparable; --allow-new-config-keys accepts keys the newer config gained (and a CPU run's
# precision metadata corrected from tf32 to fp32).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 REV [--allow-new-config-keys]" >&2; exit 2; }
rev=$1; shift
root=$(pwd)
work=$(mktemp -d /tmp/ebmc-golden.XXXXXX)
trap 'git -C "$root" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/src" "$rev"
echo "golden: building $rev (CPU only) in $work/src"
cmake -S "$work/src" -B "$work/build" -DEBMC_CUDA=OFF -DEBMC_TESTS=OFF >"$work/configure.log"
cmake --build "$work/build" -j "$(nproc)" >"$work/build.log"
[ -x build/ebmc ] || { echo "golden: build/ebmc missing: run scripts/setup.sh first" >&2; exit 1; }
run() { # run EBMC DEST
  local out=$work/run
  rm -rf "$out"
  OMP_NUM_THREADS=2 "$1" train configs/quickstart.ini run.out_dir="$out" run.name=qs train.iterations=20 \
    log.ckpt_every=5 log.keep=10 log.grid_every=10 log.quiet=true run.backend=cpu 2>>"$work/runs.log"
  OMP_NUM_THREADS=2 "$1" train configs/toy2d_dual_mcmc.ini run.out_dir="$out" run.name=toy train.iterations=20 \
    log.ckpt_every=10 log.keep=10 log.grid_every=10 log.quiet=true run.backend=cpu 2>>"$work/runs.log"
  mv "$out" "$2"
}
echo "golden: running $rev"
run "$work/build/ebmc" "$work/before"
echo "golden: running this checkout's build/ebmc"
run "$root/build/ebmc" "$work/after"
/usr/bin/python3 tests/tools/golden_compare.py "$work/before" "$work/after" "$@"
