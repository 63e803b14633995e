#!/usr/bin/env bash
# Builds HERE what the GPU check runs on the GPU machine, so that the GPU machine builds nothing
# (issue 22): ebmc, libebmc.so, every test and tool, compiled for the H100/H200 (sm_90a machine
# code only: CMAKE_CUDA_ARCHITECTURES=90a-real) with RPATH $ORIGIN (DT_RPATH, so it also serves
# the libraries' own dependencies), and beside them the shared libraries they need that the GPU
# machine's image may lack (OpenBLAS and its LAPACK, LAPACKE, oneDNN, OpenSSL's libcrypto, inih,
# cJSON, zlib, gfortran, quadmath, gomp, the CUDA runtime libcudart), debug info stripped, in one
# gzip'd tarball:
#
#   build-gpu-carry/ebmc-gpu.tar.gz   what travels (run's carry: ["build-gpu-carry"])
#   build-gpu-carry/MANIFEST.txt      the build (commit, nvcc, options), each file's SHA-256, the
#                                     libraries left to the GPU machine, the source hash
#
# Left to the GPU machine (found there by gpu-check.sh's "env" part and put on LD_LIBRARY_PATH):
# glibc, libstdc++, libgcc_s, the driver's libcuda, and cuDNN 9, cuBLAS/cuBLASLt 13, cuRAND 10
# (PyTorch's wheels under the venv's site-packages/nvidia/*/lib, or the image's CUDA toolkit):
# together over 1 GB, far over the 64 MiB a device run carries. The build is single-process
# (EBMC_MPI=OFF: no MPI or NCCL to carry) and has no fuzz targets.
#
#   scripts/gpu-bundle.sh [--build DIR] [--out DIR]     (defaults: build-gpu-bundle, build-gpu-carry)
#
# Needs what scripts/setup.sh --tests installs, and nvcc (/usr/local/cuda). ccache is used when
# installed (CCACHE_BASEDIR=/work as in the common build). Exit: 0 done, 1 failed, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-gpu-bundle
OUT=build-gpu-carry
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "gpu-bundle: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
source scripts/gpu-lib.sh

for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
  [ -x "$d/nvcc" ] && { export PATH="$PATH:$d"; break; }
done
command -v nvcc >/dev/null || { echo "gpu-bundle: nvcc not found (the CUDA toolkit)" >&2; exit 1; }

launch=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-/work}
  launch=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
          -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
# The options that make the build relocatable and single-GPU. CMAKE_BUILD_WITH_INSTALL_RPATH with
# CMAKE_INSTALL_RPATH=$ORIGIN puts only $ORIGIN into every executable and libebmc.so (no absolute
# folder of this machine); --disable-new-dtags makes it a DT_RPATH, which the loader also uses for
# the dependencies of the bundled libraries (liblapacke -> liblapack -> libgfortran), where a
# DT_RUNPATH would serve the direct ones only.
OPTS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBMC_CUDA=ON -DEBMC_TESTS=ON -DEBMC_MPI=OFF -DEBMC_FUZZ=OFF
      -DCMAKE_CUDA_ARCHITECTURES=90a-real
      -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN'
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags)
echo "gpu-bundle: configuring $BUILD: ${OPTS[*]}"
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" "${OPTS[@]}" "${launch[@]}" >"$BUILD/gpu-bundle-configure.log" 2>&1 ||
  { tail -30 "$BUILD/gpu-bundle-configure.log"; echo "gpu-bundle: configure failed ($BUILD/gpu-bundle-configure.log)" >&2; exit 1; }
jobs=$(nproc); [ "$jobs" -gt 8 ] && jobs=8
echo "gpu-bundle: building $BUILD (-j$jobs)"
cmake --build "$BUILD" -j "$jobs" >"$BUILD/gpu-bundle-build.log" 2>&1 ||
  { tail -40 "$BUILD/gpu-bundle-build.log"; echo "gpu-bundle: build failed ($BUILD/gpu-bundle-build.log)" >&2; exit 1; }

# ---- stage: every ELF executable of the build's top folder, libebmc.so, and the libraries
stage=$(mktemp -d "${TMPDIR:-/tmp}/ebmc-gpu-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
n_exe=0
for f in "$BUILD"/* "$BUILD"/libebmc.so*; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  case "$(basename "$f")" in fuzz_*) continue ;; esac # configure-time probes of the fuzz targets
  is_elf "$f" || continue
  case "$f" in *.so*) ;; *) [ -x "$f" ] || continue; n_exe=$((n_exe + 1)) ;; esac
  objcopy --strip-debug "$f" "$stage/bin/$(basename "$f")"
done
[ -e "$BUILD/libebmc.so" ] && [ ! -e "$stage/bin/libebmc.so" ] && cp -P "$BUILD/libebmc.so" "$stage/bin/"
# libebmc.so is linked by its SONAME when it has one
soname=$(objdump -p "$stage/bin/libebmc.so" 2>/dev/null | awk '/SONAME/ {print $2}')
[ -n "$soname" ] && [ ! -e "$stage/bin/$soname" ] && cp "$stage/bin/libebmc.so" "$stage/bin/$soname"

# the libraries: every one ldd resolves for a staged file, except those left to the GPU machine
declare -A seen
for f in "$stage"/bin/*; do
  is_elf "$f" || continue
  while read -r name path; do
    [ -n "$path" ] || continue
    left_to_machine "$name" && continue
    [ -n "${seen[$name]:-}" ] && continue
    seen[$name]=1
    [ -e "$stage/bin/$name" ] || cp -L "$path" "$stage/bin/$name"
  done < <(LD_LIBRARY_PATH= ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
done
chmod -R u+w "$stage/bin"

# every staged ELF: RPATH $ORIGIN (a DT_RPATH) and no absolute folder of this machine
bad=0
for f in "$stage"/bin/*; do
  is_elf "$f" || continue
  case "$(basename "$f")" in lib*.so*) [ "$(basename "$f")" != libebmc.so ] && [ "$(basename "$f")" != "$soname" ] && continue ;; esac
  rp=$(objdump -p "$f" | awk '$1 == "RPATH" {print $2}')
  rn=$(objdump -p "$f" | awk '$1 == "RUNPATH" {print $2}')
  if [ "$rp" != '$ORIGIN' ] || [ -n "$rn" ]; then
    echo "gpu-bundle: $(basename "$f"): RPATH '$rp' RUNPATH '$rn' (want RPATH \$ORIGIN only)" >&2; bad=1
  fi
done
[ $bad = 0 ] || exit 1

# ---- the manifest and the tarball
mkdir -p "$OUT"
{
  echo "ebmc GPU bundle (scripts/gpu-bundle.sh)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release; echo "$PRETTY_NAME"), glibc $(ldd --version | head -1 | awk '{print $NF}')"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "nvcc: $(nvcc --version | tail -1)"
  echo "cmake options: ${OPTS[*]}"
  echo "source-hash: $(source_hash)"
  echo "executables: $n_exe"
  echo "left to the GPU machine: $(left_to_machine_list)"
  echo "needs glibc >= $(for f in "$stage"/bin/*; do is_elf "$f" && objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)," \
       "libstdc++ >= GLIBCXX_$(for f in "$stage"/bin/*; do is_elf "$f" && ! [[ "$(basename "$f")" =~ ^libstdc ]] && objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBCXX_[0-9][0-9.]*' | sed 's/GLIBCXX_//' | sort -uV | tail -1)"
  echo "needed from the GPU machine:"
  for f in "$stage"/bin/*; do is_elf "$f" && objdump -p "$f" | awk '$1 == "NEEDED" {print $2}'; done | sort -u |
    while read -r n; do [ -e "$stage/bin/$n" ] || echo "  $n"; done
  echo "files (sha256, bytes, name):"
  (cd "$stage/bin" && for f in *; do printf '  %s %s %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"; done)
} >"$stage/MANIFEST.txt"
cp "$stage/MANIFEST.txt" "$stage/bin/MANIFEST.txt"
tar -C "$stage" -czf "$OUT/ebmc-gpu.tar.gz.part" bin
mv "$OUT/ebmc-gpu.tar.gz.part" "$OUT/ebmc-gpu.tar.gz"
cp "$stage/MANIFEST.txt" "$OUT/MANIFEST.txt"
raw=$(du -sb "$stage/bin" | cut -f1)
echo "gpu-bundle: $n_exe executables and $(ls "$stage"/bin | grep -c '\.so') libraries, $((raw / 1048576)) MiB unpacked," \
     "$(( $(stat -c %s "$OUT/ebmc-gpu.tar.gz") / 1048576 )) MiB in $OUT/ebmc-gpu.tar.gz"
echo "gpu-bundle: the device run carries [\"$OUT\"] (scripts/gpu-check.sh --carry-size measures what travels)"
