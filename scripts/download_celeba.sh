#!/usr/bin/env bash
# Downloads CelebA's aligned and cropped images (img_align_celeba.zip, 202,599 JPEGs of 178x218,
# about 1.4 GB), checks the md5, unzips it and prints the path for the config.
#   scripts/download_celeba.sh [DIR]         (default: data; images go to DIR/img_align_celeba)
# CelebA is distributed by its authors through Google Drive, linked from the official page
#   https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html
# Google Drive limits automated downloads (quota, confirmation pages), so this may fail; it then
# says how to download the file by hand. CelebA's terms allow non-commercial research use only.
# Needs curl or wget, unzip, md5sum (or macOS md5).
set -euo pipefail

DIR="${1:-data}"
ID="0B7EVK8r0v71pZjFTYXZWM3FlRnM"          # img_align_celeba.zip on the authors' Drive
RESOURCEKEY="0-dYn9z10tMJOBAkviAcfdyQ"
MD5="00d2c5bc6d35e252742224ab0c1e8fcb"      # as torchvision.datasets.CelebA lists it
ZIP="$DIR/img_align_celeba.zip"
OUT="$DIR/img_align_celeba"
PAGE="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
URL="https://drive.usercontent.google.com/download?id=$ID&export=download&confirm=t&resourcekey=$RESOURCEKEY"

die() { echo "download_celeba: error: $*" >&2; exit 1; }

manual() {
  cat >&2 <<MSG
download_celeba: error: $1
  Download img_align_celeba.zip by hand: open $PAGE,
  follow "Align&Cropped Images" (Google Drive) -> Img -> img_align_celeba.zip, save it as
    $ZIP
  and run this script again: it verifies the md5 and unzips it.
MSG
  exit 1
}

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
  else die "neither md5sum nor md5 found; cannot verify $1"; fi
}

command -v unzip >/dev/null 2>&1 || die "unzip not found (Debian/Ubuntu: apt-get install unzip)"
mkdir -p "$DIR" || die "cannot create $DIR"

if [ -f "$ZIP" ] && [ "$(md5_of "$ZIP")" = "$MD5" ]; then
  echo "download_celeba: $ZIP already present and verified"
else
  echo "download_celeba: downloading img_align_celeba.zip (about 1.4 GB) from Google Drive"
  ok=0
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 --connect-timeout 30 -o "$ZIP.part" "$URL" && ok=1
  elif command -v wget >/dev/null 2>&1; then
    wget -q --show-progress --tries=3 -O "$ZIP.part" "$URL" && ok=1
  else
    manual "neither curl nor wget found"
  fi
  [ $ok = 1 ] || { rm -f "$ZIP.part"; manual "the download from Google Drive failed"; }
  if [ "$(head -c 2 "$ZIP.part")" != "PK" ]; then
    rm -f "$ZIP.part"
    manual "Google Drive sent a web page instead of the zip (quota exceeded or a confirmation page)"
  fi
  mv -f "$ZIP.part" "$ZIP"
  got="$(md5_of "$ZIP")"
  [ "$got" = "$MD5" ] || manual "$ZIP: md5 $got, expected $MD5 (damaged or incomplete download; delete it)"
  echo "download_celeba: md5 verified"
fi

echo "download_celeba: unzipping into $DIR"
unzip -q -o "$ZIP" -d "$DIR" || die "cannot unzip $ZIP"
if [ ! -f "$OUT/000001.jpg" ] || [ ! -f "$OUT/202599.jpg" ]; then
  die "$OUT is incomplete after unzipping"
fi

abs="$(cd "$OUT" && pwd)"
echo "CelebA ready: $abs (202,599 images, 178x218)"
echo "In the config:  [data] dataset = images, path = $abs"
echo "or on the command line:  data.path=$abs"
echo "The first run prepares a cache of the cropped, resized images (a few minutes); later runs reuse it."
