#!/usr/bin/env bash
# Downloads the four MNIST idx files (gzip'd, as originally distributed) from the mirror that
# torchvision uses (https://ossci-datasets.s3.amazonaws.com/mnist/), checks their md5s and prints
# the path for the config. ebmc reads the .gz files directly; nothing is extracted.
#   scripts/download_mnist.sh [DIR]          (default: data; files go to DIR/mnist)
# Needs curl or wget and md5sum (or macOS md5). Files already present and verified are kept.
set -euo pipefail

DIR="${1:-data}"
OUT="$DIR/mnist"
BASE="https://ossci-datasets.s3.amazonaws.com/mnist"
FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
       t10k-labels-idx1-ubyte.gz)
MD5S=(f68b3c2dcbeaaa9fbdd348bbdeb94873 d53e105ee54ea40749a09fcbcd1e9432
      9fb629c4189551a2d022fa330f9573f3 ec29112dd5afa0611ce80d1b7f02629c)

die() { echo "download_mnist: error: $*" >&2; exit 1; }

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
  else die "neither md5sum nor md5 found; cannot verify $1"; fi
}

fetch() { # URL FILE
  local url="$1" out="$2"
  echo "download_mnist: downloading $url"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 --connect-timeout 30 -o "$out.part" "$url" || die "curl could not download $url"
  elif command -v wget >/dev/null 2>&1; then
    wget -q --show-progress --tries=3 -O "$out.part" "$url" || die "wget could not download $url"
  else
    die "neither curl nor wget found; install one, or download $url by hand into $OUT"
  fi
  mv -f "$out.part" "$out"
}

mkdir -p "$OUT" || die "cannot create $OUT"
for i in "${!FILES[@]}"; do
  f="$OUT/${FILES[$i]}"
  if [ -f "$f" ] && [ "$(md5_of "$f")" = "${MD5S[$i]}" ]; then
    echo "download_mnist: $f already present and verified"
    continue
  fi
  fetch "$BASE/${FILES[$i]}" "$f"
  got="$(md5_of "$f")"
  [ "$got" = "${MD5S[$i]}" ] || die "$f: md5 $got, expected ${MD5S[$i]} (a damaged or incomplete download; delete it and retry)"
done

abs="$(cd "$OUT" && pwd)"
echo "MNIST ready: $abs"
echo "In the config:  [data] dataset = mnist, path = $abs"
echo "or on the command line:  data.path=$abs"
