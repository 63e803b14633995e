#!/usr/bin/env bash
# Downloads the official CIFAR-10 binary version (https://www.cs.toronto.edu/~kriz/cifar.html),
# checks its md5, extracts it and prints the path for the config.
#   scripts/download_cifar10.sh [DIR]        (default: data)
# Result: DIR/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin. Needs curl or wget, tar,
# gzip, md5sum (or macOS md5). A complete archive already in DIR is not downloaded again.
set -euo pipefail

DIR="${1:-data}"
URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5="c32a1d4ab5d03f1284b67883e8d87530"
ARCHIVE="$DIR/cifar-10-binary.tar.gz"
OUT="$DIR/cifar-10-batches-bin"

die() { echo "download_cifar10: error: $*" >&2; exit 1; }

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
  else die "neither md5sum nor md5 found; cannot verify $1"; fi
}

fetch() { # URL FILE: downloads to FILE.part, then renames
  local url="$1" out="$2"
  echo "download_cifar10: downloading $url"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 --connect-timeout 30 -o "$out.part" "$url" || die "curl could not download $url"
  elif command -v wget >/dev/null 2>&1; then
    wget -q --show-progress --tries=3 -O "$out.part" "$url" || die "wget could not download $url"
  else
    die "neither curl nor wget found; install one, or download $url by hand into $DIR"
  fi
  mv -f "$out.part" "$out"
}

mkdir -p "$DIR" || die "cannot create $DIR"
if [ -f "$ARCHIVE" ] && [ "$(md5_of "$ARCHIVE")" = "$MD5" ]; then
  echo "download_cifar10: $ARCHIVE already present and verified"
else
  fetch "$URL" "$ARCHIVE"
  got="$(md5_of "$ARCHIVE")"
  [ "$got" = "$MD5" ] || die "$ARCHIVE: md5 $got, expected $MD5 (a damaged or incomplete download; delete it and retry)"
  echo "download_cifar10: md5 verified"
fi

echo "download_cifar10: extracting into $DIR"
tar xzf "$ARCHIVE" -C "$DIR" || die "cannot extract $ARCHIVE"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
  [ -f "$OUT/$f.bin" ] || die "$OUT/$f.bin missing after extraction"
  size=$(wc -c < "$OUT/$f.bin" | tr -d ' ')
  [ "$size" = 30730000 ] || die "$OUT/$f.bin has $size bytes, expected 30730000"
done

abs="$(cd "$OUT" && pwd)"
echo "CIFAR-10 ready: $abs"
echo "In the config:  [data] dataset = cifar10, path = $abs"
echo "or on the command line:  data.path=$abs"
