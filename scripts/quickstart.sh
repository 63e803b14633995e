#!/usr/bin/env bash
# Quick start, step 1 of 2: set up, build, and run the main job: Dual-MCMC teaching on the
# built-in shapes data (configs/quickstart.ini), on the GPU when there is one, else the CPU; then
# samples from the trained model. Output: runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
./build/ebmc info
if [ -e runs/quickstart/config.ini ]; then
  echo "quickstart: runs/quickstart exists; delete it to train again. Sampling from it:"
else
  ./build/ebmc train configs/quickstart.ini
fi
./build/ebmc sample runs/quickstart
echo "quickstart: sample grids in runs/quickstart/samples/ (iter_*_revised.png: EBM-revised samples;"
echo "            final-*/revised.png: 64 test-time samples, 8x8 at 2x scale), metrics in runs/quickstart/metrics.jsonl"
# the check (README "Quick start"): MMD^2 of 1000 revised samples to held-out shapes, against the
# generator's, an earlier checkpoint's and an untrained model's, and the shape kinds (reported);
# needs numpy (python3-numpy)
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  /usr/bin/python3 scripts/quickstart_check.py --ebmc ./build/ebmc --grid 8 runs/quickstart || true
else
  echo "quickstart: the check (scripts/quickstart_check.py) needs numpy: apt-get install python3-numpy"
fi
