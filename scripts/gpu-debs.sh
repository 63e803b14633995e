#!/usr/bin/env bash
# Downloads, on a machine with a Debian/Ubuntu package registry, the .deb files that
# scripts/gpu-check.sh needs on a GPU machine without one (the build's libraries and headers,
# the test framework, pkg-config), into .debs/ (ignored by git). A device run then carries the
# folder (run's `carry: [".debs"]`); gpu-check.sh unpacks them into a private prefix (never into
# /) only when the system lacks them.
#   scripts/gpu-debs.sh [DIR]        (default: .debs)
# Packages: EBMC_GPU_DEBS below; ../shared/tools/offline-debs.sh does the same for any list.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.debs}
EBMC_GPU_DEBS=(libinih-dev libinih1 libstb-dev libstb0 libcjson-dev libcjson1 libcmocka-dev
               libcmocka0 zlib1g-dev pkg-config pkgconf pkgconf-bin libpkgconf3
               libopenblas-dev libopenblas-pthread-dev libopenblas0 libopenblas0-pthread libgfortran5
               libquadmath0 liblapacke-dev liblapacke libtmglib3 libssl-dev libssl3
               libdnnl-dev libdnnl2 ocl-icd-libopencl1)
mkdir -p "$dir"
(cd "$dir" && apt-get download "${EBMC_GPU_DEBS[@]}")
ls -l "$dir"/*.deb
du -sh "$dir"
echo "gpu-debs: $(ls "$dir"/*.deb | wc -l) packages in $dir; pass carry [\"$dir\"] to the device run"
