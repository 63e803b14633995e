#!/usr/bin/env bash
# Installs what ebmc needs to build (and, with --tests, to run its tests) on Debian bookworm,
# then configures and builds it into build/. Packages already present are not touched; missing
# ones are installed with apt-get (as root, or through sudo).
#   scripts/setup.sh [--tests]
# The CUDA toolkit (nvcc, cuDNN 9, cuBLAS, cuRAND) is expected to be installed already; without
# nvcc, ebmc is built with the CPU backend only.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--tests" ] && want_tests=1

pkgs=(cmake make gcc pkg-config libinih-dev libstb-dev libcjson-dev zlib1g-dev libopenblas-dev
      liblapacke-dev libssl-dev  # ebmc eval: FID's eigenproblems (LAPACKE), file hashes (OpenSSL)
      libdnnl-dev)               # the CPU backend's convolutions (oneDNN)
# data-parallel training over MPI ranks (mpirun -np N ebmc train ...; README "Several GPUs")
pkgs+=(libopenmpi-dev openmpi-bin)
[ $want_tests = 1 ] && pkgs+=(libcmocka-dev python3-torch python3-numpy python3-torchvision python3-pil python3-scipy python3-requests  # + clean-fid (oracle_fid_real)
                                   clang libclang-rt-14-dev
                                   python3-pip python3-protobuf)  # TensorBoard's reader (below)
# ebmc plot draws with matplotlib (README "Watching a run")
pkgs+=(python3-matplotlib)
# libclang-rt-14-dev: libFuzzer and the sanitizers (only recommended by clang-14 in bookworm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
mkdir -p build
# one line per step; each step's own output goes to a log in build/, shown only when it fails
step() { # step "what" LOG command...
  local what=$1 log=$2; shift 2
  echo "ebmc setup: $what (log: $log)"
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "ebmc setup: $what failed (the end of $log is above)" >&2
    exit 1
  fi
}
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  step "updating the Debian package lists" build/setup-apt.log $SUDO apt-get update
  step "installing ${#missing[@]} Debian packages: ${missing[*]}" build/setup-apt.log \
    env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# the tests read ebmc's TensorBoard event files with TensorBoard's own reader: PyPI's tensorboard
# (not packaged in bookworm), pinned to a release that works with bookworm's protobuf 3.21, with
# absl-py, into build/pydeps (tests/oracle/test_tboard.py puts it on its path)
if [ $want_tests = 1 ] && ! PYTHONPATH=build/pydeps /usr/bin/python3 -c "import tensorboard, absl" 2>/dev/null; then
  step "installing tensorboard 2.15.2 and absl-py 2.1.0 into build/pydeps (pip)" build/setup-pip.log \
    /usr/bin/python3 -m pip install --no-deps --target build/pydeps tensorboard==2.15.2 absl-py==2.1.0
fi

# nvcc is often installed outside PATH
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
if command -v nvcc >/dev/null 2>&1; then
  cuda_flag=-DEBMC_CUDA=ON
else
  echo "ebmc setup: nvcc not found: building the CPU backend only"
  cuda_flag=-DEBMC_CUDA=OFF
fi

jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 8 ] && jobs=8
tests_flag=-DEBMC_TESTS=OFF
[ $want_tests = 1 ] && tests_flag=-DEBMC_TESTS=ON
step "configuring" build/configure.log cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$cuda_flag" "$tests_flag"
grep -E "^-- ebmc" build/configure.log | sed 's/^-- ebmc: */ebmc setup: /' || true
step "building with $jobs jobs" build/build.log cmake --build build -j "$jobs"
