#!/usr/bin/env bash
# The rehearsal of the GPU check on this machine (scripts/gpu-check.sh --rehearse; issue 22): the
# check runs exactly as on the GPU machine, in a bare root file system with no GPU and no network,
# holding nothing but what a device run carries:
#   - a Debian bookworm root (debootstrap --variant=minbase, plus python3 and a venv at
#     /opt/torch/.venv with PyTorch 2.11 (CUDA 13) and numpy, where the GPU machine's python3
#     lives; no compiler, no CMake, no pkg-config, no -dev package), cached in CACHE/root and used
#     read-only through an overlay;
#   - the CUDA toolkit of this machine (/usr/local/cuda) bind-mounted read-only; the venv's
#     site-packages/nvidia/*/lib (PyTorch's wheels' layout, where the GPU machine has cuDNN,
#     cuBLAS, cuRAND, NCCL) link to its libraries;
#   - the working tree as it travels (tracked and untracked-not-ignored files) and the carried
#     bundle (build-gpu-carry, made first by scripts/gpu-bundle.sh);
#   - private mount, PID and network namespaces (unshare -m -p -n: only a loopback device).
# Then `scripts/gpu-check.sh --rehearsal --out /out` runs there; every part that needs no GPU
# must PASS, CUDA tests must reach their device probe (NOGPU), and the rest report NOGPU. Then,
# beyond the check, `bench/run.py --cpu --quick` runs there (the bench's Python side on the
# GPU machine's PyTorch and numpy 2, against the bundle's ebmc on the CPU). Last, what came back
# is checked against the device's limits (at most 8 files, 16 MiB each, plain names) and what
# travels against its 64 MiB.
#
#   scripts/gpu-rehearse.sh [--cache DIR] [--bundle DIR] [--out DIR]
#     (defaults: /var/cache/ebmc-rehearse, build-gpu-carry, gpu-check-out/rehearsal)
#
# Root only. The first run makes the root (debootstrap from deb.debian.org, PyTorch's and numpy's
# wheels from PyPI through this machine's pip: minutes, 4 GB of disk); later runs reuse it. Not
# part of ctest (slow, network on the first run). Exit: 0 the rehearsal passed, 1 it did not, 2
# usage or not root.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=/var/cache/ebmc-rehearse
BUNDLE=build-gpu-carry
OUT=gpu-check-out/rehearsal
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE=$2; shift ;;
    --bundle) BUNDLE=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "gpu-rehearse: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "gpu-rehearse: needs root (namespaces, overlay, chroot)" >&2; exit 2; }
[ -d /usr/local/cuda/lib64 ] || { echo "gpu-rehearse: no CUDA toolkit at /usr/local/cuda" >&2; exit 1; }
case "$OUT" in gpu-check-out|gpu-check-out/*) ;; *) echo "gpu-rehearse: --out must be under gpu-check-out/ (ignored by git)" >&2; exit 2 ;; esac
T0=$(date +%s)
stamp() { echo "gpu-rehearse: [$(( $(date +%s) - T0 )) s] $*"; }

# ---- 1. the bundle (here: the build and the libraries, as for a device run)
stamp "the bundle: scripts/gpu-bundle.sh --out $BUNDLE"
t=$(date +%s)
bash scripts/gpu-bundle.sh --out "$BUNDLE"
T_BUNDLE=$(( $(date +%s) - t ))

# ---- 2. the root, made once
# The GPU machine's Python: python3 in a venv at /opt/torch/.venv with PyTorch 2.11 (CUDA 13) and
# numpy; NVIDIA's libraries in the wheels' layout under site-packages/nvidia/*/lib (the folders
# libtorch_cuda.so's RPATH names). Here: bookworm's python 3.11 (the GPU machine's is 3.12), the
# same torch 2.11.0 wheel, the newest numpy for 3.11; cuSPARSELt, NVSHMEM and cuFile from their
# wheels; cuDNN, cuBLAS, cuRAND, NCCL and the rest linked from the read-only toolkit
# (/usr/local/cuda: cuDNN 9.19 as torch 2.11 pins, cuBLAS 13.1 where torch pins 13.0.2).
ROOTFS=$CACHE/root
VENV=/opt/torch/.venv
SP=$VENV/lib/python3.11/site-packages
TORCH_WHEELS=(torch==2.11.0 nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5 nvidia-cufile
              filelock typing-extensions sympy mpmath networkx jinja2 markupsafe fsspec 'setuptools<82' numpy)
t=$(date +%s)
if [ ! -d "$ROOTFS$SP/torch" ]; then
  stamp "making the bare root in $ROOTFS (once: debootstrap, then PyTorch's wheels, ~2.5 GB)"
  mkdir -p "$CACHE"
  if [ ! -x "$CACHE/root.tmp$VENV/bin/python3" ]; then
    command -v debootstrap >/dev/null || apt-get install -y --no-install-recommends debootstrap
    rm -rf "$CACHE/root.tmp"
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$CACHE/root.tmp" \
      http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 ||
      { tail -20 "$CACHE/debootstrap.log"; echo "gpu-rehearse: debootstrap failed" >&2; exit 1; }
    chroot "$CACHE/root.tmp" python3 -m venv "$VENV"
  fi
  # the wheels, fetched by this machine's pip (the root has no network, nor this network's
  # certificates), installed offline without dependencies (the list is complete for import torch)
  plat=(); for n in 17 24 27 28 31 34 35; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
  mkdir -p "$CACHE/wheels-torch"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    "${plat[@]}" --platform manylinux2014_x86_64 -d "$CACHE/wheels-torch" "${TORCH_WHEELS[@]}"
  mkdir -p "$CACHE/root.tmp/tmp/w"
  cp "$CACHE"/wheels-torch/*.whl "$CACHE/root.tmp/tmp/w/"
  chroot "$CACHE/root.tmp" /bin/sh -c "$VENV/bin/pip install -q --no-index --no-deps --no-cache-dir --no-compile /tmp/w/*.whl && rm -rf /tmp/w"
  nv=$CACHE/root.tmp$SP/nvidia
  mkdir -p "$nv/cudnn/lib" "$nv/cu13/lib" "$nv/nccl/lib"
  for f in $(cd /usr/local/cuda/lib64 && ls libcudnn*.so.9); do ln -sf "/usr/local/cuda/lib64/$f" "$nv/cudnn/lib/$f"; done
  for f in libcublas.so.13 libcublasLt.so.13 libcudart.so.13 libcufft.so.12 libcupti.so.13 libcurand.so.10 \
           libcusolver.so.12 libcusparse.so.12 libnvrtc.so.13 libnvrtc-builtins.so.13.0 libnvJitLink.so.13; do
    [ -e "/usr/local/cuda/lib64/$f" ] || { echo "gpu-rehearse: the toolkit lacks $f (import torch needs it)" >&2; exit 1; }
    ln -sf "/usr/local/cuda/lib64/$f" "$nv/cu13/lib/$f"
  done
  ln -sf /usr/local/cuda/lib64/libnccl.so.2 "$nv/nccl/lib/libnccl.so.2"
  rm -rf "$ROOTFS"
  mv "$CACHE/root.tmp" "$ROOTFS"
fi
T_ROOT=$(( $(date +%s) - t ))

# ---- 3. the run: an overlay over the root, the travelling tree and the bundle copied in
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$RUN"' EXIT
mkdir -p "$RUN/upper/work/repo" "$RUN/work" "$RUN/merged" "$RUN/out" "$RUN/extra"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$RUN/upper/work/repo" -xf -
tar -cf - "$BUNDLE" | tar -C "$RUN/upper/work/repo" -xf -
stamp "the tree that travels: $(bash scripts/gpu-check.sh --carry-size --bundle "$BUNDLE")"
# what runs in the root: the check as on the GPU machine, then, beyond it, the bench's Python side
# on the GPU machine's PyTorch and numpy 2, on the CPU (bench/run.py --cpu --quick, the bundle's ebmc)
cat >"$RUN/upper/work/inner.sh" <<EOF
cd /work/repo
bash scripts/gpu-check.sh --rehearsal --out "\$OUT"
echo \$? >/extra/check.rc
mkdir -p /tmp/b && tar -C /tmp/b -xzf "$BUNDLE/ebmc-gpu.tar.gz" || exit 1
nv=\$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib | paste -sd:)
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec /tmp/b/bin/ebmc "\$@"\n' "\$nv" >/tmp/b/ebmc && chmod +x /tmp/b/ebmc
t=\$(date +%s)
PYTHONUNBUFFERED=1 timeout 600 python3 bench/run.py --cpu --quick --ebmc /tmp/b/ebmc --out /tmp/bench-cpu \
  >/extra/bench-cpu-quick.log 2>&1
echo \$? \$(( \$(date +%s) - t )) >/extra/bench-cpu.rc
EOF
CUDA_REAL=$(readlink -f /usr/local/cuda)
stamp "running scripts/gpu-check.sh --rehearsal in the root (no network, $CUDA_REAL read-only)"
t=$(date +%s)
set +e
unshare --mount --pid --net --fork --kill-child bash -euo pipefail -c '
  R=$1 ROOTFS=$2 CUDA_REAL=$3 BUNDLE=$4
  M=$R/merged
  mount --make-rprivate /
  mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$R/upper,workdir=$R/work" "$M"
  mkdir -p "$M/usr/local/cuda" "$M/out"
  mount --bind "$CUDA_REAL" "$M/usr/local/cuda"
  mount -o remount,bind,ro "$M/usr/local/cuda"
  mount --bind "$R/out" "$M/out"
  mount -t proc proc "$M/proc"
  mount -t tmpfs tmpfs "$M/tmp"
  mount -t tmpfs tmpfs "$M/dev"
  for d in null zero random urandom tty; do touch "$M/dev/$d"; mount --bind "/dev/$d" "$M/dev/$d"; done
  ln -s /proc/self/fd "$M/dev/fd"; mkdir -p "$M/dev/shm"
  echo "rehearsal root: network interfaces: $(awk "NR > 2 {print \$1}" /proc/net/dev | tr "\n" " ")"
  mkdir -p "$M/extra"; mount --bind "$R/extra" "$M/extra"
  exec chroot "$M" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/opt/torch/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    OUT=/out /bin/bash /work/inner.sh
' rehearse "$RUN" "$ROOTFS" "$CUDA_REAL" "$BUNDLE"
RC=$?
set -e
[ $RC = 0 ] && RC=$(cat "$RUN/extra/check.rc" 2>/dev/null || echo 1)
T_RUN=$(( $(date +%s) - t ))

# ---- 4. what came back, against the device's limits, and the verdict
rm -rf "$OUT" "$OUT-extra"; mkdir -p "$OUT"
cp -r "$RUN/out/." "$OUT/"
fail=0
nfiles=$(find "$OUT" -type f | wc -l)
[ "$nfiles" -le 8 ] && stamp "ok: $nfiles files in OUT (at most 8 come back)" || { stamp "FAIL: $nfiles files in OUT, over the 8 that come back"; fail=1; }
while read -r f; do
  s=$(stat -c %s "$f"); b=$(basename "$f")
  [ "$s" -le $((16 * 1048576)) ] || { stamp "FAIL: $f is $s bytes, over 16 MiB"; fail=1; }
  [[ "$b" =~ ^[A-Za-z0-9._-]+$ ]] || { stamp "FAIL: $f: a name the device does not return"; fail=1; }
done < <(find "$OUT" -type f)
bash scripts/gpu-check.sh --carry-size --bundle "$BUNDLE" >/dev/null || { stamp "FAIL: what travels is over 64 MiB"; fail=1; }
# every part that needs no GPU passed, every CUDA test reached its device probe
while read -r name st _; do
  case "$name:$st" in
    *:PASS|test_*_cuda:NOGPU) ;;
    *:NOGPU) grep -qE "^  \"$name\\|[0-9]+\\|G\\|" scripts/gpu-check.sh ||
               { stamp "FAIL: $name is NOGPU but needs no GPU"; fail=1; } ;;
    *) stamp "FAIL: part $name: $st"; fail=1 ;;
  esac
done < <(sed -n '/^env /,/^$/p' "$OUT/summary.txt" | grep -E '^[a-z_]+ +[A-Z]+ ')
[ $RC = 0 ] || { stamp "FAIL: gpu-check.sh exited $RC in the root"; fail=1; }
mkdir -p "$OUT-extra"; cp "$RUN/extra/bench-cpu-quick.log" "$OUT-extra/" 2>/dev/null || true
read -r brc bs < <(cat "$RUN/extra/bench-cpu.rc" 2>/dev/null || echo "1 0")
if [ "$brc" = 0 ]; then stamp "ok: bench/run.py --cpu --quick in the root (PyTorch 2.11, numpy 2): exit 0 in $bs s"
else stamp "FAIL: bench/run.py --cpu --quick in the root: exit $brc (log: $OUT-extra/bench-cpu-quick.log)"; tail -15 "$OUT-extra/bench-cpu-quick.log"; fail=1; fi
echo
echo "==== gpu-check rehearsal: bundle ${T_BUNDLE} s, root ${T_ROOT} s, check in the root ${T_RUN} s; summary ($OUT/summary.txt):"
sed -n '/^env /,$p' "$OUT/summary.txt"
[ $fail = 0 ] && echo "gpu-check rehearsal: PASSED" || echo "gpu-check rehearsal: FAILED"
exit $fail
