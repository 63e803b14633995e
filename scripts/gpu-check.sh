#!/usr/bin/env bash
# The GPU check (issues 17, 22): one command for a machine with an NVIDIA GPU, no package registry
# and no build of its own. The GPU machine builds nothing: scripts/gpu-bundle.sh builds ebmc, its
# tests and tools HERE for the H100/H200 (sm_90a, RPATH $ORIGIN) with the few libraries they need
# into build-gpu-carry/ebmc-gpu.tar.gz (about 31 MiB), which the device run carries; this script
# unpacks it there, finds the GPU machine's own cuDNN / cuBLAS / cuRAND (PyTorch's wheels in the
# venv, or the image's toolkit) and the driver, and runs the parts of the plan below, each under
# `timeout` with its own time box, all within a deadline (360 s) that leaves a second try inside
# the 15 minutes of device time. A part whose prerequisite failed is skipped; the others still run.
#
# The next session with a GPU, from this repository's root here:
#   scripts/gpu-bundle.sh          (here: build + bundle, ~30 s when the build is up to date)
#   scripts/gpu-check.sh --rehearse   (here, optional: the same check in a bare root, no GPU)
#   run(command="bash scripts/gpu-check.sh --out $OUT", carry=["build-gpu-carry"], timeout_s=390)
#
#   scripts/gpu-check.sh [--out DIR] [--bundle DIR] [--deadline S]   the check (default out: $OUT,
#                                                         else gpu-check-out; bundle: build-gpu-carry)
#   scripts/gpu-check.sh --rehearse [--cache DIR]     the check rehearsed here, in a bare Debian
#        bookworm root (debootstrap --variant=minbase, cached in DIR, default
#        /var/cache/ebmc-rehearse; its first run needs Debian's mirror and PyPI), with the CUDA
#        toolkit read-only, no network, nothing but the working tree and the carried bundle: every
#        part that needs no GPU runs as on the GPU machine, the rest report NOGPU. Root only.
#   scripts/gpu-check.sh --dry-run [--build DIR] [--bundle DIR]   the plan and the CPU-side
#                                                         prerequisites (CI: gpu_check_dry_run)
#   scripts/gpu-check.sh --self-test                   the part runner's own test (CI:
#                                                         gpu_check_self_test)
#   scripts/gpu-check.sh --carry-size [--bundle DIR]   what a device run carries, in MiB (<= 64)
#
# Output (DIR), written part by part so that a killed run still returns what finished (the device
# returns at most 8 files): summary.txt (the plan, then one line per part as it ends: status,
# seconds, box), logs.txt (each part's full log, appended as it ends), running.log (the log of the
# part still running, if killed), and at the end results.tar.gz (every log, the bench JSON and
# Markdown, the quick start's grids and metrics). Statuses: PASS; FAIL; TIMEOUT (past its box);
# SKIP (a prerequisite did not pass); NA (cannot run on this machine, e.g. compute-sanitizer under
# gVisor: a note says why); NOGPU (rehearsal only: needs the GPU). Exit status: 0 when no part
# FAILed, TIMEd OUT or was SKIPped; 1 otherwise; 2 usage. On the GPU machine a CUDA test that exits
# 77 (no usable device) is a FAIL.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-lib.sh

MODE=check
OUTDIR=${OUT:-gpu-check-out}
BUNDLE=build-gpu-carry
BUILD=build
CACHE=${EBMC_REHEARSE_CACHE:-/var/cache/ebmc-rehearse}
DEADLINE=360
REHEARSAL=0 # set inside the rehearsal root: no GPU there
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) MODE=dry ;;
    --self-test) MODE=selftest ;;
    --rehearse) MODE=rehearse ;;
    --carry-size) MODE=carrysize ;;
    --rehearsal) REHEARSAL=1 ;;
    --out) OUTDIR=$2; shift ;;
    --bundle) BUNDLE=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --cache) CACHE=$2; shift ;;
    --deadline) DEADLINE=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  [ $# -gt 0 ] && shift
done

# the sanitizers' rows: ebmc's own kernels (no cuDNN/cuBLAS rows), small sizes, one precision
SAN_ARGS=(--own-kernels --skip-large --test test_parity_fp32)
# ---- the plan: name | time box (s) | kind | what. kind: - runs anywhere (also in the rehearsal);
# T a CUDA test (in the rehearsal it runs to its device probe and must exit 77); G needs the GPU
# (not run in the rehearsal). Each box: the bound of its time with a margin (README, "The GPU
# check": how each was derived). The boxes sum to <= 360 s (the deadline).
PLAN=(
  "env|5|-|os-release, glibc, kernel (gVisor?), GPU and driver; where libcuda, cuDNN, cuBLAS, cuRAND, NCCL were found"
  "unpack|8|-|the bundle ($BUNDLE/ebmc-gpu.tar.gz) unpacked; SHA-256 of every file; built from this tree"
  "load|10|-|every executable of the bundle loads: libraries found, every symbol bound (ld.so, LD_BIND_NOW)"
  "plan|5|-|gpu-check's dry-run logic on the bundle: bench cases (ebmc bench --list), bench/run.py's flags, configs, the CUDA tests' flags"
  "python|25|-|python3, PyTorch, numpy, torch.cuda, cuDNN versions; bench/run.py and its helpers import"
  "info|8|-|ebmc info: versions, devices; on the GPU machine AUTO must pick CUDA"
  "test_ops_cuda|60|T|CUDA-vs-CPU parity rows (FP32, TF32, training widths), bad calls, workspace, device 1 from a thread"
  "test_mcmc_cuda|30|T|GPU chains: CPU parity (FP32, TF32), graph vs eager, replays, capture errors, fallback"
  "quickstart|20|G|ebmc train configs/quickstart.ini, 100 iterations on the GPU, grids"
  "recipes|30|G|every other recipe's 2-D config, 20 iterations each on the GPU (no crash, no NaN, exit 0)"
  "memcheck|20|G|compute-sanitizer memcheck: test_ops_cuda ${SAN_ARGS[*]}"
  "racecheck|15|G|compute-sanitizer racecheck: the same rows (reductions, BatchNorm, spectral norm, sampler)"
  "gates|45|G|bench/run.py --gates-only on the headline cases"
  "bench|75|G|bench/run.py on the headline cases (its gates again, then 3 rounds after 1 warm-up; torch eager TF32 and CUDA graph)"
)
# the headline benchmark cases (ebmc bench --list): Dual-MCMC CIFAR-10 x-chain and one training
# iteration at batch 100, a short-run chain
CASES='x-chain/dualmcmc-cifar10/b100/*,iteration/dualmcmc-cifar10/b100,x-chain/shortrun-nf64/b64/*'
CUDA_TESTS=(test_ops_cuda test_mcmc_cuda)
RUN_PY_FLAGS=(--gates-only --cases --ebmc --out --rounds --warmup --torch-variants)
RECIPE_CONFIGS=(toy2d_shortrun toy2d_persistent toy2d_coopvaebm toy2d_coopnets gmm50_jarzynski toy2d_particles)
# the GPU machine's libraries the bundle needs (and NCCL, reported only: the bundle is built
# without MPI); libcuda.so.1 is the driver's
NV_LIBS=(libcuda.so.1 libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnccl.so.2)
NV_NEEDED=(libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcurand.so.10)

plan_total() { local t=0 p; for p in "${PLAN[@]}"; do t=$((t + $(echo "$p" | cut -d'|' -f2))); done; echo $t; }
plan_field() { local p; for p in "${PLAN[@]}"; do [ "${p%%|*}" = "$1" ] && { echo "$p" | cut -d'|' -f"$2"; return; }; done; }
print_plan() {
  echo "gpu-check plan (each part under timeout; boxes $(plan_total) s, deadline $DEADLINE s):"
  local p name box kind what
  for p in "${PLAN[@]}"; do
    IFS='|' read -r name box kind what <<<"$p"
    printf "  %-15s %4s s  %s  %s\n" "$name" "$box" "$kind" "$what"
  done
}

# ---------------------------------------------------------------------------- the part runner
# part NAME [needs PART...] -- COMMAND...: runs COMMAND (a command, or a function of this
# script) in a fresh `bash -o pipefail` under NAME's box (cut to what is left of the deadline);
# its output goes to $OUTDIR/running.log, then, when it ends, to the end of $OUTDIR/logs.txt, and
# one line to $OUTDIR/summary.txt. Exit 78 from COMMAND means "cannot run on this machine" (NA).
declare -A STATUS
PART_VARS="PLAN CASES RUN_PY_FLAGS SAN_ARGS RECIPE_CONFIGS NV_LIBS NV_NEEDED EBMC_LEFT_TO_MACHINE DEADLINE"
part() {
  local name=$1; shift
  local need
  if [ $REHEARSAL = 1 ] && [ "$(plan_field "$name" 3)" = G ]; then
    STATUS[$name]=NOGPU
    part_line "$name" NOGPU 0 "$(plan_field "$name" 2)" "needs the GPU: not run in the rehearsal"
    return
  fi
  while [ "$1" != "--" ]; do
    need=$1; shift
    if [ "${STATUS[$need]:-}" != PASS ]; then
      STATUS[$name]=SKIP
      part_line "$name" SKIP 0 "$(plan_field "$name" 2)" "$need: ${STATUS[$need]:-not run}"
      return
    fi
  done
  shift
  local box kind t1 rc st note left
  box=$(plan_field "$name" 2); kind=$(plan_field "$name" 3)
  left=$((DEADLINE - ($(date +%s) - T0)))
  if [ "$left" -lt 3 ]; then
    STATUS[$name]=SKIP; part_line "$name" SKIP 0 "$box" "deadline ($DEADLINE s) reached"; return
  fi
  [ "$box" -gt "$left" ] && { note="box cut to the $left s left of the deadline"; box=$left; }
  echo "== $name (box $box s): $*" >"$OUTDIR/running.log"
  t1=$(date +%s)
  # the child gets this script's functions and lists; pipefail: `cmake --build | tail` fails
  timeout -k 5 "$box" bash -o pipefail -c "$(declare -p $PART_VARS 2>/dev/null); $(declare -f); \"\$@\"" \
    "part:$name" "$@" >>"$OUTDIR/running.log" 2>&1
  rc=$?
  case $rc in
    0) st=PASS ;;
    78) st=NA ;;
    124|137) st=TIMEOUT ;;
    77) if [ $REHEARSAL = 1 ] && [ "$kind" = T ]; then st=NOGPU; note="exit 77 at its device probe, as expected without a GPU"
        elif [ $REHEARSAL = 1 ] && [ "$name" = python ]; then st=NA; note="no PyTorch in the rehearsal root (see its log)"
        else st=FAIL; note="exit 77: found no usable GPU or PyTorch"; fi ;;
    *) st=FAIL ;;
  esac
  STATUS[$name]=$st
  part_line "$name" "$st" "$(( $(date +%s) - t1 ))" "$box" "exit $rc${note:+; $note}"
  { echo; echo "######## $name: $st (exit $rc)"; cat "$OUTDIR/running.log"; } >>"$OUTDIR/logs.txt"
  cp "$OUTDIR/running.log" "$W/logs/$name.log" 2>/dev/null
  rm -f "$OUTDIR/running.log"
}
part_line() { # NAME STATUS SECONDS BOX NOTE
  printf "%-15s %-8s %4s s / %4s s  (%s)\n" "$1" "$2" "$3" "$4" "$5" | tee -a "$OUTDIR/summary.txt"
}
# final_status: 1 when a part FAILed, TIMEd OUT or was SKIPped, else 0 (PASS, NA, NOGPU)
final_status() {
  local p
  for p in "${PLAN[@]}"; do
    case "${STATUS[${p%%|*}]:-unrun}" in PASS|NA|NOGPU) ;; *) return 1 ;; esac
  done
  return 0
}

# find_nv_libs DIR...: "SONAME DIR" for each of NV_LIBS, from the first DIR that has it
find_nv_libs() {
  local l d
  for l in "${NV_LIBS[@]}"; do
    for d in "$@"; do
      [ -e "$d/$l" ] && { echo "$l $d"; break; }
    done
  done
}
# the folders searched, in order: PyTorch's wheels (the venv's site-packages/nvidia/*/lib), the
# image's CUDA toolkit, the driver's folders, the system's
nv_lib_dirs() {
  local sp d
  for sp in $(python3 -c 'import site, sysconfig; print(" ".join(dict.fromkeys([sysconfig.get_paths()["purelib"]] + site.getsitepackages())))' 2>/dev/null); do
    for d in "$sp"/nvidia/*/lib "$sp"/nvidia/*/lib64 "$sp"/torch/lib; do [ -d "$d" ] && echo "$d"; done
  done
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
           /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /lib/x86_64-linux-gnu; do
    [ -d "$d" ] && echo "$d"
  done
  # and wherever the loader's cache knows them (a driver injected elsewhere)
  ldconfig -p 2>/dev/null | awk '/(libcuda|libcudnn|libcublas|libcurand|libnccl)[^ ]*\.so/ {print $NF}' |
    xargs -r -n1 dirname | sort -u
  return 0
}
# with_libs COMMAND...: COMMAND with the GPU machine's NVIDIA libraries (found by the env part) on
# LD_LIBRARY_PATH; only the bundle's programs get it (PyTorch keeps its own)
with_libs() { LD_LIBRARY_PATH="${NV_LD_PATH:-}${LD_LIBRARY_PATH:+${NV_LD_PATH:+:}$LD_LIBRARY_PATH}" "$@"; }
ldso() { ls /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 2>/dev/null | head -1; }

# ---------------------------------------------------------------------------- the parts
part_env() {
  echo "---- /etc/os-release"; cat /etc/os-release 2>/dev/null || echo "(none)"
  echo "---- glibc: $(getconf GNU_LIBC_VERSION 2>/dev/null || echo unknown); kernel: $(uname -sr)"
  case "$(uname -r)" in 4.4.0*) echo "kernel 4.4.0: gVisor (compute-sanitizer refuses the GPU there)"; echo "SANDBOX=gvisor" >>"$W/env.sh" ;; esac
  echo "---- CPU: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2-) x $(nproc)"
  echo "---- GPU"
  local gpu_ok=1
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || gpu_ok=0
  else
    echo "nvidia-smi not found"; gpu_ok=0
  fi
  echo "---- libraries (searched: PyTorch's wheels, the CUDA toolkit, the driver's and the system's folders)"
  local found dirs="" l d missing=0
  found=$(find_nv_libs $(nv_lib_dirs))
  for l in "${NV_LIBS[@]}"; do
    d=$(awk -v l="$l" '$1 == l {print $2}' <<<"$found")
    if [ -n "$d" ]; then
      echo "  $l: $d ($(readlink -f "$d/$l" | xargs basename))"
      case ":$dirs:" in *":$d:"*) ;; *) dirs=${dirs:+$dirs:}$d ;; esac
    else
      echo "  $l: NOT FOUND"
      case " ${NV_NEEDED[*]} " in *" $l "*) missing=1 ;; esac
      [ "$l" = libcuda.so.1 ] && [ "$REHEARSAL" = 0 ] && missing=1
    fi
  done
  echo "NV_LD_PATH=\"$dirs\"" >>"$W/env.sh"
  echo "LD_LIBRARY_PATH for the bundle's programs: $dirs"
  SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer /opt/nvidia/*/*/compute-sanitizer 2>/dev/null | head -1)
  echo "compute-sanitizer: ${SAN:-not found}"
  echo "SAN=\"$SAN\"" >>"$W/env.sh"
  [ $missing = 0 ] || { echo "env: a needed library was not found (above)"; return 1; }
  [ $gpu_ok = 1 ] || [ "$REHEARSAL" = 1 ] || { echo "env: no GPU seen by nvidia-smi"; return 1; }
}

part_unpack() {
  local tb="$BUNDLE/ebmc-gpu.tar.gz" f sum size name bad=0 n=0
  [ -f "$tb" ] || { echo "no $tb: build it here with scripts/gpu-bundle.sh and carry [\"$BUNDLE\"]"; return 1; }
  mkdir -p "$W/bundle"
  if command -v gzip >/dev/null; then tar -C "$W/bundle" -xzf "$tb" || return 1
  else python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$tb" "$W/bundle" || return 1; fi
  sed -n '1,/^files/p' "$W/bundle/bin/MANIFEST.txt"
  while read -r sum size name; do
    f="$W/bundle/bin/$name"
    n=$((n + 1))
    [ "$(sha256sum "$f" 2>/dev/null | cut -d' ' -f1)" = "$sum" ] || { echo "SHA-256 differs or file missing: $name"; bad=1; }
  done < <(sed -n '/^files/,$p' "$W/bundle/bin/MANIFEST.txt" | tail -n +2)
  echo "$n files checked against the manifest's SHA-256"
  local want have
  want=$(awk '/^source-hash:/ {print $2}' "$W/bundle/bin/MANIFEST.txt"); have=$(source_hash)
  if [ "$want" = "$have" ]; then echo "built from this tree (source hash $have)"
  else echo "STALE bundle: built from sources with hash $want, this tree has $have: run scripts/gpu-bundle.sh again"; bad=1; fi
  return $bad
}

part_load() {
  local f ld out bad=0 n=0
  ld=$(ldso); [ -n "$ld" ] || { echo "no dynamic loader found"; return 1; }
  # the executables and libebmc.so (the other libraries have no RPATH of their own: they load
  # through an executable's, and every executable's closure holds all of them)
  for f in "$BIN"/*; do
    is_elf "$f" || continue
    case "$(basename "$f")" in libebmc.so) ;; lib*.so*) continue ;; esac
    n=$((n + 1))
    # the loader's own listing with every symbol bound now: a missing library or symbol (an older
    # cuDNN, a glibc too old) is reported here rather than at the first call
    out=$(LD_TRACE_LOADED_OBJECTS=1 LD_WARN=yes LD_BIND_NOW=yes with_libs "$ld" "$f" 2>&1)
    if [ $? != 0 ] || grep -qE 'not found|undefined symbol|version .* not found' <<<"$out"; then
      echo "FAIL $(basename "$f"):"; grep -E 'not found|undefined|version' <<<"$out" | head -5; bad=1
    fi
  done
  echo "$n executables and libebmc.so: every library found and every symbol bound ($( [ $bad = 0 ] && echo yes || echo NO))"
  echo "---- where ebmc's libraries come from:"; LD_TRACE_LOADED_OBJECTS=1 with_libs "$ld" "$BIN/libebmc.so" | sed 's/ (0x[0-9a-f]*)//'
  # wrappers with the libraries' path, for the programs that PyTorch's python starts (bench/run.py)
  mkdir -p "$W/run"
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "${NV_LD_PATH:-}" "$BIN/ebmc" >"$W/run/ebmc"
  chmod +x "$W/run/ebmc"
  "$W/run/ebmc" --version || bad=1
  return $bad
}

# the checks --dry-run and the "plan" part share: the bench cases, bench/run.py's flags, configs,
# the CUDA tests' flags (EBMC is the ebmc to ask, TESTS the folder of the test executables)
plan_checks() { # EBMC TESTS [ast]: ast reads bench/run.py's flags from its source, never --help
  local ebmc=$1 tests=$2 mode=${3:-} fail=0 names pat hit n helptext how rc py t
  ok() { echo "  ok    $*"; }
  bad() { echo "  FAIL  $*"; fail=1; }
  [ "$(plan_total)" -le "$DEADLINE" ] && ok "time boxes sum to $(plan_total) s <= $DEADLINE (the deadline)" ||
    bad "time boxes sum to $(plan_total) s > $DEADLINE"
  for t in timeout tar gzip sha256sum; do command -v $t >/dev/null && ok "$t found" || bad "$t not found"; done
  if [ -x "$ebmc" ]; then
    names=$(with_libs "$ebmc" bench --list --backend cuda 2>/dev/null | grep '"name"' | sed 's/.*"name":[[:space:]]*"\([^"]*\)".*/\1/')
    IFS=',' read -ra pats <<<"$CASES"
    for pat in "${pats[@]}"; do
      hit=0
      while read -r n; do [[ -n "$n" && "$n" == $pat ]] && hit=1; done <<<"$names"
      [ $hit = 1 ] && ok "bench case '$pat' exists (ebmc bench --list)" || bad "bench case '$pat' matches no case of ebmc bench --list"
    done
  else
    echo "  skip  no ebmc at $ebmc: bench case names not checked"
  fi
  # the CUDA tests accept the flags this script gives them: a filter that matches no test runs
  # none (exit 0 with a GPU, 77 without); an unknown flag exits 2
  if [ -x "$tests/test_ops_cuda" ]; then
    with_libs "$tests/test_ops_cuda" "${SAN_ARGS[@]:0:2}" --test no_such_test_zz >/dev/null 2>&1; rc=$?
    case $rc in 0|77) ok "test_ops_cuda accepts ${SAN_ARGS[*]:0:2} --test (exit $rc)" ;; *) bad "test_ops_cuda ${SAN_ARGS[*]:0:2} --test: exit $rc" ;; esac
    with_libs "$tests/test_ops_cuda" --no-such-flag >/dev/null 2>&1; rc=$?
    [ $rc = 2 ] && ok "test_ops_cuda refuses an unknown flag (exit 2)" || bad "test_ops_cuda --no-such-flag: exit $rc, not 2"
  else
    echo "  skip  no $tests/test_ops_cuda: its flags not checked"
  fi
  # bench/run.py's flags: from --help where PyTorch is installed, else from its argparse source
  py=$(command -v python3 || true)
  if [ -n "$py" ]; then
    rc=ast
    [ "$mode" = ast ] || { helptext=$("$py" bench/run.py --help 2>/dev/null); rc=$?; }
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
      how="argparse source$( [ $rc = ast ] && echo '; the python part runs --help' || echo " (no PyTorch here: --help exits $rc)")"
    else
      how="--help"
    fi
    for f in "${RUN_PY_FLAGS[@]}"; do
      grep -q -- "$f" <<<"$helptext" && ok "bench/run.py accepts $f ($how)" || bad "bench/run.py lacks $f ($how)"
    done
  else
    bad "python3 not found"
  fi
  for c in quickstart "${RECIPE_CONFIGS[@]}"; do [ -f "configs/$c.ini" ] && ok "configs/$c.ini exists" || bad "configs/$c.ini missing"; done
  return $fail
}
part_plan() { plan_checks "$BIN/ebmc" "$BIN" ast; } # --help imports PyTorch (seconds): the python part's

part_python() {
  command -v python3 || { echo "no python3"; return 1; }
  # every helper bench/run.py imports (peer_torch, the oracles' modules) compiles
  python3 -m py_compile bench/*.py tests/oracle/*.py && echo "bench/*.py tests/oracle/*.py compile" || return 1
  python3 - <<'PY' || return $?
import sys
print("python", sys.version.split()[0], sys.executable)
try:
    import numpy
    print("numpy", numpy.__version__)
except ImportError as e:
    print("numpy: not importable:", e)
try:
    import torch
except ImportError as e:
    print("PyTorch: not importable:", e)
    sys.exit(77)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "cuDNN", torch.backends.cudnn.version())
PY
  python3 bench/run.py --help >/dev/null || return $?
  echo "bench/run.py --help: its helpers import"
}

part_info() {
  with_libs "$BIN/ebmc" info | tee "$W/info.txt" || return 1
  # on the GPU machine the CUDA backend must be the one AUTO picks
  [ "$REHEARSAL" = 1 ] || ! grep -q '^backend: cpu' "$W/info.txt" || { echo "info: ebmc picks the CPU backend on the GPU machine"; return 1; }
}

part_recipes() {
  local c rc=0
  for c in "${RECIPE_CONFIGS[@]}"; do
    echo "== $c"
    with_libs "$BIN/ebmc" train "configs/$c.ini" train.iterations=20 run.backend=cuda run.out_dir="$W/recipes" \
      run.name="$c" log.quiet=true || { echo "$c: FAILED (exit $?)"; rc=1; }
    tail -1 "$W/recipes/$c/metrics.jsonl" 2>/dev/null
  done
  return $rc
}

part_sanitize() { # TOOL
  [ "${SANDBOX:-}" = gvisor ] && { echo "gVisor: compute-sanitizer refuses the GPU there (\"Device not supported\"): not run"; return 78; }
  [ -n "${SAN:-}" ] || { echo "compute-sanitizer not found"; return 1; }
  local out rc
  with_libs "$SAN" --tool "$1" --error-exitcode 9 "$BIN/test_ops_cuda" "${SAN_ARGS[@]}" 2>&1 | tee "$W/san-$1.txt"; rc=$?
  if [ $rc != 0 ] && grep -qiE 'Device not supported|not supported on this (platform|device)' "$W/san-$1.txt"; then
    echo "compute-sanitizer refused this GPU or machine (above): not run"; return 78
  fi
  return $rc
}

# ---------------------------------------------------------------------------- --carry-size
carry_bytes() { # what a device run carries: the working tree (tracked and untracked-not-ignored) + BUNDLE
  local tree bun
  tree=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  bun=$(du -sb "$BUNDLE" 2>/dev/null | cut -f1)
  echo "$tree ${bun:-0}"
}
if [ $MODE = carrysize ]; then
  read -r tree bun < <(carry_bytes)
  echo "working tree $((tree / 1024)) KiB + $BUNDLE $((bun / 1024)) KiB = $(( (tree + bun) / 1048576 )) MiB of 64 MiB"
  [ $((tree + bun)) -le $((64 * 1048576)) ]
  exit $?
fi

# ---------------------------------------------------------------------------- --dry-run (CI)
if [ $MODE = dry ]; then
  print_plan
  echo "dry run: CPU-side checks"
  fail=0
  bash -n "$0" && echo "  ok    bash syntax of $0" || { echo "  FAIL  bash syntax of $0"; fail=1; }
  if [ -f "$BUILD/CTestTestfile.cmake" ]; then
    listed=$(ctest --test-dir "$BUILD" -N 2>/dev/null)
    for t in "${CUDA_TESTS[@]}"; do
      grep -qE "Test +#[0-9]+: $t\$" <<<"$listed" && echo "  ok    ctest -N lists $t" || { echo "  FAIL  ctest -N in $BUILD does not list $t"; fail=1; }
    done
  else
    echo "  skip  no configured build in $BUILD: test names not checked (pass --build)"
  fi
  plan_checks "$BUILD/ebmc" "$BUILD" || fail=1
  if [ -f "$BUNDLE/MANIFEST.txt" ]; then
    [ "$(awk '/^source-hash:/ {print $2}' "$BUNDLE/MANIFEST.txt")" = "$(source_hash)" ] &&
      echo "  ok    $BUNDLE was built from this tree" ||
      echo "  note  $BUNDLE is stale (built from other sources): run scripts/gpu-bundle.sh before a device run"
  else
    echo "  note  no $BUNDLE: run scripts/gpu-bundle.sh before a device run"
  fi
  [ $fail = 0 ] && echo "gpu-check --dry-run: OK" || echo "gpu-check --dry-run: FAILED"
  exit $fail
fi

# ---------------------------------------------------------------------------- --self-test (CI)
if [ $MODE = selftest ]; then
  fail=0
  check() { if [ "$2" = "$3" ]; then echo "  ok    $1"; else echo "  FAIL  $1: got '$2', want '$3'"; fail=1; fi; }
  OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/ebmc-gpu-selftest.XXXXXX")
  W=$OUTDIR/w; mkdir -p "$W/logs"
  export OUTDIR W
  T0=$(date +%s)
  PLAN=("st_pipe|10|-|" "st_fn|10|-|" "st_ok|10|-|" "st_out|10|-|" "st_dep|10|-|" "st_slow|1|-|"
        "st_77|10|T|" "st_na|10|G|" "st_late|10|-|")
  st_pipe_fn() { false | cat; }
  st_build_like() { (echo "compiler output"; exit 3) | tail -1; } # cmake --build ... | tail
  st_written() { # the parts before it have their summary line and log in OUTDIR already
    grep -q '^st_ok  *PASS' "$OUTDIR/summary.txt" && grep -q 'st_ok says hello' "$OUTDIR/logs.txt" &&
      [ -f "$OUTDIR/running.log" ] && grep -q '== st_out' "$OUTDIR/running.log"
  }
  echo "gpu-check --self-test: the part runner"
  part st_pipe -- st_pipe_fn; check "a function whose 'false | cat' fails is FAIL (pipefail)" "${STATUS[st_pipe]}" FAIL
  part st_fn -- st_build_like; check "a function whose 'build | tail' fails is FAIL (pipefail)" "${STATUS[st_fn]}" FAIL
  part st_ok -- bash -c 'echo "st_ok says hello" | cat'; check "a passing pipeline is PASS" "${STATUS[st_ok]}" PASS
  part st_out -- st_written; check "summary line and log are in OUTDIR as soon as a part ends" "${STATUS[st_out]}" PASS
  part st_dep st_fn -- touch "$OUTDIR/st_dep_ran"
  check "a part whose prerequisite failed is SKIP and does not run" "${STATUS[st_dep]}:$([ -e "$OUTDIR/st_dep_ran" ] && echo ran)" SKIP:
  t=$(date +%s); part st_slow -- sleep 30; t=$(( $(date +%s) - t ))
  check "a part past its box is TIMEOUT, killed within box + 5 s" "${STATUS[st_slow]}:$([ $t -le 6 ] && echo fast)" TIMEOUT:fast
  part st_77 -- bash -c 'exit 77'; check "exit 77 of a CUDA test on the GPU machine is FAIL" "${STATUS[st_77]}" FAIL
  REHEARSAL=1 part st_77 -- bash -c 'exit 77'; check "exit 77 of a CUDA test in the rehearsal is NOGPU" "${STATUS[st_77]}" NOGPU
  REHEARSAL=1 part st_na -- touch "$OUTDIR/st_na_ran"
  check "a GPU part in the rehearsal is NOGPU and does not run" "${STATUS[st_na]}:$([ -e "$OUTDIR/st_na_ran" ] && echo ran)" NOGPU:
  part st_na -- bash -c 'exit 78'; check "exit 78 (cannot run here) is NA" "${STATUS[st_na]}" NA
  DEADLINE=$(( $(date +%s) - T0 + 2 )) part st_late -- true
  check "a part that would start with < 3 s of the deadline left is SKIP" "${STATUS[st_late]}" SKIP
  check "the summary has one line per part run" "$(grep -c '^st_' "$OUTDIR/summary.txt")" 11
  check "final status: failures -> 1" "$(final_status; echo $?)" 1
  for p in "${PLAN[@]}"; do STATUS[${p%%|*}]=PASS; done; STATUS[st_na]=NA; STATUS[st_77]=NOGPU
  check "final status: only PASS, NA, NOGPU -> 0" "$(final_status; echo $?)" 0
  STATUS[st_ok]=SKIP; check "final status: a SKIP -> 1" "$(final_status; echo $?)" 1
  # the library search: the first folder that has a library wins, in the order given
  fake=$OUTDIR/fake; mkdir -p "$fake/venv/nvidia/cudnn/lib" "$fake/venv/nvidia/cu13/lib" "$fake/cuda/lib64"
  touch "$fake/venv/nvidia/cudnn/lib/libcudnn.so.9" "$fake/venv/nvidia/cu13/lib/libcublas.so.13" \
        "$fake/cuda/lib64/libcublas.so.13" "$fake/cuda/lib64/libcurand.so.10"
  got=$(find_nv_libs "$fake/venv/nvidia/cudnn/lib" "$fake/venv/nvidia/cu13/lib" "$fake/cuda/lib64" | sed "s|$fake/||g" | tr '\n' ';')
  check "libraries found in the first folder that has them" "$got" "libcudnn.so.9 venv/nvidia/cudnn/lib;libcublas.so.13 venv/nvidia/cu13/lib;libcurand.so.10 cuda/lib64;"
  rm -rf "$OUTDIR"
  [ $fail = 0 ] && echo "gpu-check --self-test: OK" || echo "gpu-check --self-test: FAILED"
  exit $fail
fi

# ---------------------------------------------------------------------------- --rehearse
if [ $MODE = rehearse ]; then
  [ "$OUTDIR" = "${OUT:-gpu-check-out}" ] && OUTDIR=gpu-check-out/rehearsal # not the check's own
  exec bash scripts/gpu-rehearse.sh --cache "$CACHE" --bundle "$BUNDLE" --out "$OUTDIR"
fi

# ---------------------------------------------------------------------------- the check
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
rm -f "$OUTDIR/summary.txt" "$OUTDIR/logs.txt" "$OUTDIR/running.log" "$OUTDIR/results.tar.gz"
W=$(mktemp -d "${TMPDIR:-/tmp}/ebmc-gpu-check.XXXXXX")
mkdir -p "$W/logs" "$W/bench" "$W/runs"
: >"$W/env.sh"
BIN=$W/bundle/bin
T0=$(date +%s)
export W BIN BUNDLE REHEARSAL OUTDIR PYTHONUNBUFFERED=1
# a kill (TERM, INT) still leaves the summary so far and the running part's log in OUTDIR
trap 'echo "gpu-check: killed after $(( $(date +%s) - T0 )) s" | tee -a "$OUTDIR/summary.txt"; exit 1' TERM INT
{ print_plan; echo; echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)'); $( [ $REHEARSAL = 1 ] && echo 'REHEARSAL (no GPU)' || echo 'on the GPU machine')"; echo; } |
  tee "$OUTDIR/summary.txt"

part env -- part_env
# what the env part found, for every later part: NV_LD_PATH, SAN, SANDBOX
source "$W/env.sh"; export NV_LD_PATH SAN SANDBOX
part unpack -- part_unpack
part load unpack -- part_load
part plan load -- part_plan
part python -- part_python
part info load -- part_info
part test_ops_cuda load env -- with_libs "$BIN/test_ops_cuda"
part test_mcmc_cuda load env -- with_libs "$BIN/test_mcmc_cuda"
part quickstart load env -- with_libs "$BIN/ebmc" train configs/quickstart.ini train.iterations=100 \
  run.backend=cuda run.out_dir="$W/runs" run.name=quickstart log.grid_every=50
part recipes load env -- part_recipes
part memcheck load env -- part_sanitize memcheck
part racecheck load env -- part_sanitize racecheck
# last: the gates and the benchmark, the longest parts; the deadline cuts only these
# EBMC_BENCH_BOUND_TRIALS=1: the gate bounds from the round-to-nearest emulation (and PyTorch's own
# run) only -- each emulated trial is a float64 pass of the headline nets, and three do not fit the box
part gates load env python -- env EBMC_BENCH_BOUND_TRIALS=1 python3 bench/run.py --gates-only \
  --ebmc "$W/run/ebmc" --out "$W/bench" --cases "$CASES" --torch-variants torch-eager-tf32
part bench gates -- env EBMC_BENCH_BOUND_TRIALS=1 python3 bench/run.py --ebmc "$W/run/ebmc" --out "$W/bench" \
  --cases "$CASES" --rounds 3 --warmup 1 --torch-variants torch-eager-tf32,torch-cudagraph

# ---- the end: totals, failed parts' tails, the tarball
{
  echo
  echo "total $(( $(date +%s) - T0 )) s of the $DEADLINE s deadline"
  for p in "${PLAN[@]}"; do
    n=${p%%|*}
    case "${STATUS[$n]:-}" in
      FAIL|TIMEOUT) echo; echo "---- $n (${STATUS[$n]}): last 25 lines of its log (all of it: logs.txt)"; tail -25 "$W/logs/$n.log" ;;
    esac
  done
} >>"$OUTDIR/summary.txt"
cp "$OUTDIR/summary.txt" "$W/logs/summary.txt"
[ -d "$W/runs/quickstart" ] && cp -r "$W/runs/quickstart" "$W/quickstart" 2>/dev/null
find "$W/quickstart" -name '*.safetensors' -delete 2>/dev/null # checkpoints: large, not needed
tar -czf "$OUTDIR/results.tar.gz" -C "$W" logs bench $( [ -d "$W/quickstart" ] && echo quickstart )
echo
echo "==== gpu-check summary ($OUTDIR/summary.txt; every log: logs.txt; bench JSON/Markdown, grids: results.tar.gz)"
sed -n '/^env /,$p' "$OUTDIR/summary.txt"
rm -rf "$W"
final_status
exit $?
