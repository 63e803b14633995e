#!/usr/bin/env bash
# The GPU check (issue 17): one command for a machine with an NVIDIA GPU and no package registry.
# It builds ebmc (from the .deb files of scripts/gpu-debs.sh, unpacked into a private prefix, when
# the system lacks the libraries), runs the CUDA tests, bench/run.py --gates-only, a short
# benchmark of the headline cases, a 100-iteration quick start on the GPU and compute-sanitizer
# (memcheck, racecheck) over the CUDA tests. Every part runs under `timeout` with its own time
# box (the plan below; at most 8 minutes together), so one hang cannot eat the rest; a part
# whose prerequisite failed is skipped, the others still run.
#
#   scripts/gpu-check.sh [--out DIR] [--debs DIR] [--build DIR]   the check (default out:
#                                                                  gpu-check-out, debs: .debs,
#                                                                  build: build-gpu)
#   scripts/gpu-check.sh --dry-run [--build DIR] [--debs DIR]      prints the plan and checks the
#                                                                  CPU-side prerequisites (CI)
#
# Output (DIR): summary.txt (one line per part: status, seconds, box; then each failed part's
# log tail) and gpu-check.tar.gz (every log, the bench JSON/Markdown, the quick start's grids
# and metrics, ebmc info). The summary is also printed last. Exit status: 0 when every part
# passed, 1 otherwise (on a GPU machine a CUDA test that skips, exit 77, is a failure: it found
# no usable device).
#
# On the device machine:  run(command="bash scripts/gpu-check.sh --out $OUT", carry=[".debs"])
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0
OUTDIR=gpu-check-out
DEBS=.debs
BUILD=build-gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUTDIR=$2; shift ;;
    --debs) DEBS=$2; shift ;;
    --build) BUILD=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# ---- the plan: name | time box (s) | what. The boxes sum to <= 480 s (8 minutes). ----
PLAN=(
  "prereqs|15|system libraries, or $DEBS/*.deb unpacked into a private prefix"
  "build|110|cmake configure + build (CUDA backend, tests; -j\$(nproc))"
  "info|10|ebmc info: versions, devices, the backend AUTO picks"
  "test_ops_cuda|60|CUDA-vs-CPU parity rows (FP32, TF32, training widths), bad calls, workspace, device 1 from a thread"
  "test_mcmc_cuda|45|GPU chains: CPU parity (FP32, TF32), graph vs eager, replays, capture errors, fallback"
  "gates|60|bench/run.py --gates-only on the headline cases"
  "bench|45|bench/run.py on the headline cases (5 rounds; torch eager TF32 and CUDA graph)"
  "quickstart|30|ebmc train configs/quickstart.ini, 100 iterations on the GPU, grids"
  "recipes|20|every other recipe's 2-D config, 20 iterations each on the GPU (no crash, no NaN, exit 0)"
  "memcheck|45|compute-sanitizer memcheck: test_ops_cuda --skip-large, test_mcmc_cuda graph tests"
  "racecheck|30|compute-sanitizer racecheck: test_ops_cuda --skip-large (reductions, BN, SN)"
)
# the headline benchmark cases (ebmc bench --list): Dual-MCMC CIFAR-10 x-chain and one training
# iteration at batch 100, a short-run chain
CASES='x-chain/dualmcmc-cifar10/b100/*,iteration/dualmcmc-cifar10/b100,x-chain/shortrun-nf64/b64/*'
CUDA_TESTS=(test_ops_cuda test_mcmc_cuda)
RUN_PY_FLAGS=(--gates-only --cases --ebmc --out --rounds --warmup --torch-variants)
PC_MODULES="inih stb libcjson cmocka openblas lapacke libcrypto"

plan_total() { local t=0 p; for p in "${PLAN[@]}"; do t=$((t + $(echo "$p" | cut -d'|' -f2))); done; echo $t; }

print_plan() {
  echo "gpu-check plan (each part under timeout; total $(plan_total) s of 480):"
  local p
  for p in "${PLAN[@]}"; do
    IFS='|' read -r name box what <<<"$p"
    printf "  %-15s %4s s  %s\n" "$name" "$box" "$what"
  done
}

# Points pkg-config and the compilers at a prefix holding the unpacked .debs.
use_prefix() {
  local sr=$1 multi=usr/lib/x86_64-linux-gnu
  export PATH="$sr/usr/bin:$PATH"
  # OpenBLAS: Debian installs its openblas.pc and libraries under openblas-pthread/ and links
  # them into place with update-alternatives, which unpacking a .deb does not run
  export PKG_CONFIG_LIBDIR="$sr/$multi/pkgconfig:$sr/$multi/openblas-pthread/pkgconfig:$sr/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$sr"
  export LD_LIBRARY_PATH="$sr/$multi:$sr/$multi/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CMAKE_PREFIX_PATH="$sr/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
}

unpack_debs() { # DIR SYSROOT
  local f n=0
  mkdir -p "$2"
  for f in "$1"/*.deb; do [ -e "$f" ] || continue; dpkg-deb -x "$f" "$2" || return 1; n=$((n + 1)); done
  # lapacke.pc requires lapack.pc, which Debian links into place with update-alternatives (as
  # for OpenBLAS above): point it at OpenBLAS's LAPACK, as the alternative would
  local pc="$2/usr/lib/x86_64-linux-gnu/pkgconfig"
  if [ -f "$pc/lapacke.pc" ] && [ ! -e "$pc/lapack.pc" ]; then
    ln -s ../openblas-pthread/pkgconfig/lapack-openblas.pc "$pc/lapack.pc"
  fi
  [ $n -gt 0 ]
}

# ---------------------------------------------------------------------------- --dry-run (CI)
if [ $DRY = 1 ]; then
  print_plan
  fail=0
  ok() { echo "  ok    $*"; }
  bad() { echo "  FAIL  $*"; fail=1; }
  echo "dry run: CPU-side checks"
  [ "$(plan_total)" -le 480 ] && ok "time boxes sum to $(plan_total) s <= 480" || bad "time boxes sum to $(plan_total) s > 480"
  bash -n "$0" && ok "bash syntax of $0" || bad "bash syntax of $0"
  for t in timeout tar; do command -v $t >/dev/null && ok "$t found" || bad "$t not found"; done
  if [ -f "$BUILD/CTestTestfile.cmake" ]; then
    listed=$(ctest --test-dir "$BUILD" -N 2>/dev/null)
    for t in "${CUDA_TESTS[@]}"; do
      grep -qE "Test +#[0-9]+: $t\$" <<<"$listed" && ok "ctest -N lists $t" || bad "ctest -N in $BUILD does not list $t"
    done
    if [ -x "$BUILD/ebmc" ]; then
      names=$("$BUILD/ebmc" bench --list --backend cuda 2>/dev/null | grep '"name"' | sed 's/.*"name":[[:space:]]*"\([^"]*\)".*/\1/')
      IFS=',' read -ra pats <<<"$CASES"
      for pat in "${pats[@]}"; do
        hit=0
        while read -r n; do [[ -n "$n" && "$n" == $pat ]] && hit=1; done <<<"$names"
        [ $hit = 1 ] && ok "bench case '$pat' exists (ebmc bench --list)" || bad "bench case '$pat' matches no case of ebmc bench --list"
      done
    else
      echo "  skip  $BUILD/ebmc not built: bench case names not checked"
    fi
  else
    echo "  skip  no configured build in $BUILD: test and case names not checked (pass --build)"
  fi
  # bench/run.py's flags: from --help where PyTorch is installed, else from its argparse source
  py=$(command -v python3 || true)
  if [ -n "$py" ]; then
    helptext=$("$py" bench/run.py --help 2>/dev/null); rc=$?
    if [ $rc != 0 ]; then
      helptext=$("$py" - <<'PY'
import ast
src = open("bench/run.py").read()
for node in ast.walk(ast.parse(src)):
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
        for a in node.args:
            if isinstance(a, ast.Constant) and isinstance(a.value, str): print(a.value)
PY
)
      how="argparse source (no PyTorch here: --help exits $rc)"
    else
      how="--help"
    fi
    for f in "${RUN_PY_FLAGS[@]}"; do
      grep -q -- "$f" <<<"$helptext" && ok "bench/run.py accepts $f ($how)" || bad "bench/run.py lacks $f ($how)"
    done
  else
    bad "python3 not found"
  fi
  for s in scripts/gpu-debs.sh configs/quickstart.ini; do [ -e "$s" ] && ok "$s exists" || bad "$s missing"; done
  # the .deb logic: unpack into a scratch prefix, and pkg-config (from the prefix when it carries
  # one) must resolve every module there, with headers and libraries that exist
  if ls "$DEBS"/*.deb >/dev/null 2>&1; then
    sr=$(mktemp -d)
    if unpack_debs "$DEBS" "$sr"; then
      ok "unpacked $(ls "$DEBS"/*.deb | wc -l) .debs of $DEBS into a scratch prefix"
      (
        use_prefix "$sr"
        for m in $PC_MODULES; do
          fl=$(pkg-config --cflags --libs "$m" 2>&1) || { echo "  FAIL  pkg-config $m from $DEBS: $fl"; exit 1; }
          for w in $fl; do
            case "$w" in
              -I*) [ -d "${w#-I}" ] || { echo "  FAIL  $m: include folder ${w#-I} missing"; exit 1; } ;;
              -L*) [ -d "${w#-L}" ] || { echo "  FAIL  $m: library folder ${w#-L} missing"; exit 1; } ;;
              -l*) ls "$sr"/usr/lib/x86_64-linux-gnu/lib"${w#-l}".so* >/dev/null 2>&1 \
                     || ls /usr/lib/x86_64-linux-gnu/lib"${w#-l}".so* >/dev/null 2>&1 \
                     || { echo "  FAIL  $m: lib${w#-l}.so not in the prefix"; exit 1; } ;;
            esac
          done
          echo "  ok    pkg-config $m from the prefix: $fl"
        done
        [ -f "$sr/usr/include/zlib.h" ] && echo "  ok    zlib.h in the prefix" || { echo "  FAIL  zlib.h not in the prefix"; exit 1; }
      ) || fail=1
    else
      bad "could not unpack $DEBS/*.deb"
    fi
    rm -rf "$sr"
  else
    echo "  skip  no $DEBS/*.deb here (scripts/gpu-debs.sh makes them): the .deb logic was not exercised"
  fi
  [ $fail = 0 ] && echo "gpu-check --dry-run: OK" || echo "gpu-check --dry-run: FAILED"
  exit $fail
fi

# ---------------------------------------------------------------------------- the check
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/ebmc-gpu-check.XXXXXX")
mkdir -p "$W/logs" "$W/bench" "$W/runs"
SUMMARY=$W/summary.txt
declare -A STATUS
T0=$(date +%s)
for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
  [ -x "$d/nvcc" ] && { export PATH="$PATH:$d"; break; }
done
print_plan | tee "$W/logs/plan.txt"

box_of() { local p; for p in "${PLAN[@]}"; do [ "${p%%|*}" = "$1" ] && { echo "$p" | cut -d'|' -f2; return; }; done; echo 60; }

# part NAME [needs PART...] -- COMMAND...: runs COMMAND under NAME's box, logs to logs/NAME.log
part() {
  local name=$1; shift
  local need
  while [ "$1" != "--" ]; do
    need=$1; shift
    if [ "${STATUS[$need]:-}" != PASS ]; then
      STATUS[$name]="SKIP"
      printf "%-15s SKIP     %4s s / %4s s  (%s did not pass)\n" "$name" 0 "$(box_of "$name")" "$need" | tee -a "$SUMMARY"
      return
    fi
  done
  shift
  local box t1 rc st
  box=$(box_of "$name")
  echo "== $name (box $box s): $*" | tee -a "$W/logs/progress.txt"
  t1=$(date +%s)
  if [ "$(type -t "$1")" = function ]; then # a function of this script: in a child bash
    timeout -k 5 "$box" bash -c "$(declare -f use_prefix unpack_debs "$1"); $(printf '%q ' "$@")" \
      >"$W/logs/$name.log" 2>&1
  else
    timeout -k 5 "$box" "$@" >"$W/logs/$name.log" 2>&1
  fi
  rc=$?
  case $rc in
    0) st=PASS ;;
    77) st=SKIP ;;
    124|137) st=TIMEOUT ;;
    *) st=FAIL ;;
  esac
  STATUS[$name]=$st
  printf "%-15s %-8s %4s s / %4s s  (exit %s)\n" "$name" "$st" "$(( $(date +%s) - t1 ))" "$box" "$rc" | tee -a "$SUMMARY"
}

export W DEBS BUILD PC_MODULES
prereqs() {
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  command -v nvcc >/dev/null && nvcc --version | tail -2
  if command -v pkg-config >/dev/null && pkg-config --exists $PC_MODULES 2>/dev/null; then
    echo "system libraries: $PC_MODULES found by pkg-config"
    return 0
  fi
  echo "system lacks some of: $PC_MODULES; unpacking $DEBS/*.deb into $W/prefix"
  unpack_debs "$DEBS" "$W/prefix" || { echo "no usable $DEBS/*.deb (make them with scripts/gpu-debs.sh and carry the folder)"; return 1; }
  echo "prefix=$W/prefix" >"$W/prefix.env"
  (use_prefix "$W/prefix"; pkg-config --cflags --libs $PC_MODULES)
}
part prereqs -- prereqs
[ -f "$W/prefix.env" ] && use_prefix "$W/prefix"

build() {
  local py
  py=$(command -v python3 || echo /usr/bin/python3)
  cmake -S . -B "$BUILD" -DEBMC_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBMC_ORACLE_PYTHON="$py" &&
    cmake --build "$BUILD" -j "$(nproc)" 2>&1 | tee "$W/logs/build-output.txt" | tail -40 ||
    { echo "build: FAILED (above)"; return 1; }
  echo "build: $(grep -ci "warning" "$W/logs/build-output.txt") lines mention a warning"
  grep -q "EBMC_CUDA:BOOL=ON" "$BUILD/CMakeCache.txt" && [ -x "$BUILD/test_ops_cuda" ] ||
    { echo "build: the CUDA backend was not built"; return 1; }
}
part build prereqs -- build

part info build -- "$BUILD/ebmc" info
part test_ops_cuda build -- "$BUILD/test_ops_cuda"
part test_mcmc_cuda build -- "$BUILD/test_mcmc_cuda"
export PYTHONUNBUFFERED=1
part gates build -- python3 bench/run.py --gates-only --ebmc "$BUILD/ebmc" --out "$W/bench" \
  --cases "$CASES" --torch-variants torch-eager-tf32
part bench gates -- python3 bench/run.py --ebmc "$BUILD/ebmc" --out "$W/bench" --cases "$CASES" \
  --rounds 5 --warmup 3 --torch-variants torch-eager-tf32,torch-cudagraph
part quickstart build -- "$BUILD/ebmc" train configs/quickstart.ini train.iterations=100 \
  run.backend=cuda run.out_dir="$W/runs" run.name=quickstart log.grid_every=50

# the recipes added after Dual-MCMC: each one's 2-D config, briefly, on the GPU (their CUDA paths
# have never run elsewhere); the divergence guard turns a NaN into a failed run
recipes() {
  local c rc=0
  for c in toy2d_shortrun toy2d_persistent toy2d_coopvaebm toy2d_coopnets gmm50_jarzynski toy2d_particles; do
    [ -f "configs/$c.ini" ] || { echo "configs/$c.ini missing"; rc=1; continue; }
    echo "== $c"
    "$BUILD/ebmc" train "configs/$c.ini" train.iterations=20 run.backend=cuda run.out_dir="$W/recipes" \
      run.name="$c" log.quiet=true || { echo "$c: FAILED (exit $?)"; rc=1; }
    tail -1 "$W/recipes/$c/metrics.jsonl" 2>/dev/null
  done
  return $rc
}
part recipes build -- recipes

SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
export SAN
sanitize() { # TOOL
  [ -n "$SAN" ] || { echo "compute-sanitizer not found"; return 1; }
  local tool=$1 rc=0
  "$SAN" --tool "$tool" --error-exitcode 9 "$BUILD/test_ops_cuda" --skip-large || rc=$?
  if [ "$tool" = memcheck ]; then
    "$SAN" --tool memcheck --error-exitcode 9 "$BUILD/test_mcmc_cuda" --filter "test_graph*" || rc=$?
  fi
  return $rc
}
part memcheck build -- sanitize memcheck
part racecheck build -- sanitize racecheck

# ---- summary and the tarball
{
  echo
  echo "total $(( $(date +%s) - T0 )) s; commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
  for p in "${PLAN[@]}"; do
    n=${p%%|*}
    case "${STATUS[$n]:-}" in
      FAIL|TIMEOUT) echo; echo "---- $n (${STATUS[$n]}): last 25 lines of logs/$n.log"; tail -25 "$W/logs/$n.log" ;;
    esac
  done
} >>"$SUMMARY"
cp "$SUMMARY" "$W/logs/summary.txt"
[ -d "$W/runs/quickstart" ] && cp -r "$W/runs/quickstart" "$W/quickstart" 2>/dev/null
rm -rf "$W/runs"
find "$W/quickstart" -name '*.safetensors' -delete 2>/dev/null # checkpoints: large, not needed
tar -czf "$OUTDIR/gpu-check.tar.gz" -C "$W" logs bench $( [ -d "$W/quickstart" ] && echo quickstart )
cp "$SUMMARY" "$OUTDIR/summary.txt"
echo
echo "==== gpu-check summary ($OUTDIR/summary.txt; logs, bench JSON/Markdown, grids: $OUTDIR/gpu-check.tar.gz)"
cat "$SUMMARY"
rm -rf "$W"
for p in "${PLAN[@]}"; do
  [ "${STATUS[${p%%|*}]:-}" = PASS ] || exit 1
done
exit 0
