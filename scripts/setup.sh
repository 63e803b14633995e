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

pkgs=(cmake make gcc pkg-config libinih-dev libstb-dev libcjson-dev zlib1g-dev libopenblas-dev)
[ $want_tests = 1 ] && pkgs+=(libcmocka-dev python3-torch python3-numpy python3-torchvision python3-pil)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ebmc setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
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
mkdir -p build
tests_flag=-DEBMC_TESTS=OFF
[ $want_tests = 1 ] && tests_flag=-DEBMC_TESTS=ON
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$cuda_flag" "$tests_flag" >build/configure.log \
  || { cat build/configure.log; echo "ebmc setup: cmake configure failed (log above)" >&2; exit 1; }
grep -E "^-- ebmc" build/configure.log || true
cmake --build build -j "$jobs"
