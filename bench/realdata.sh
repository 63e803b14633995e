#!/usr/bin/env bash
# Real-data head-to-head on the CPU (issue 27 items 4-5): the same recipe and config trained by
# ebmc and by its authors' own PyTorch loop (bench/authors/, copied with attribution, changed only
# in widths, batch, data path, device and a wall-time limit) for the same wall time, one after the
# other with the same thread count; then N test-time samples of each, FID of each against the
# CIFAR-10 test set (`ebmc eval`, the real FID Inception), a side-by-side grid and a results file.
#
#   bench/realdata.sh [--recipe dualmcmc|shortrun|coopvaebm|coopnets|persistent] [--minutes M]
#                     [--threads T] [--parallel] [--samples N] [--ref-n R] [--eval-generator]
#                     [--from-runs]
#                     [--data DIR] [--out DIR] [--results DIR] [--tag NAME]
#
#   --minutes M     wall time of each side's training, from process start (default 45)
#   --threads T     OMP_NUM_THREADS of both sides, also for sampling and FID (default 2)
#   --parallel      train both sides at the same time, each with T threads (--threads 1 on a
#                   2-core machine: one core each; anything else running slows both alike);
#                   default: one after the other. Sampling stays at T threads; the FID passes
#                   then use 2T
#   --samples N     test-time samples per side (default 10000)
#   --ref-n R       the first R images of the CIFAR-10 test set as FID reference (default 10000);
#                   its statistics are cached in ${XDG_CACHE_HOME:-~/.cache}/ebmc/realdata/
#   --eval-generator  dualmcmc: also the FID of the generator's samples G(z) (default: only the
#                   revised samples, the EBM's test-time samples, the authors' "fid ebm")
#   --from-runs     no training: --out holds a finished run of this script (both trained sides,
#                   the authors' samples); ebmc's samples, the FIDs and the results are made
#                   again (e.g. after a change to `ebmc eval`); --minutes etc. as that run's
#   --data DIR      folder with data_batch_1..5.bin and test_batch.bin (default:
#                   data/cifar-10-batches-bin, else $EBMC_DATA/cifar-10-batches-bin, else
#                   $EBMC_DATA/cifar-10-binary.tar.xz extracted into the cache folder above)
#   --out DIR       run folders, samples and logs (default runs/realdata-<recipe>-<stamp>)
#   --results DIR   where realdata-<recipe>[-<tag>]-<stamp>.{md,json,png} go (default bench/results)
#   --tag NAME      a word in those names, e.g. trial for a short functional run
#
# Needs build/ebmc ($EBMC_BIN; a CPU build is enough), /usr/bin/python3 (or $EBMC_PYTHON) with torch,
# numpy and PIL, CIFAR-10 and the Inception weights (scripts/get_inception.sh).
# Exit status: 0 done; 2 usage; 3 no authors' loop for that recipe yet; 77 a prerequisite
# (data, weights, torch, build/ebmc) is missing (ctest reads it as "skipped"); 1 anything else.
set -euo pipefail
cd "$(dirname "$0")/.."

argv="$*"
recipe=dualmcmc minutes=45 threads=2 samples=10000 ref_n=10000 eval_gen=0 tag="" parallel=0 from_runs=0
data="" out="" results=bench/results
usage() { sed -n '8,11p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --recipe) recipe="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --samples) samples="$2"; shift 2 ;;
    --ref-n) ref_n="$2"; shift 2 ;;
    --eval-generator) eval_gen=1; shift ;;
    --parallel) parallel=1; shift ;;
    --from-runs) from_runs=1; shift ;;
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "realdata: unknown argument '$1'" >&2; usage ;;
  esac
done
die() { echo "realdata: error: $*" >&2; exit 1; }
skip() { echo "realdata: skipped: $*" >&2; exit 77; }

# ---- the recipe table: ebmc config, authors' loop, its width/batch arguments, sample arrays
ini_get() { # FILE SECTION KEY -> value (the config files' own syntax: [section], key = value)
  awk -v s="[$2]" -v k="$3" '/^\[/{in_s = ($1 == s)} in_s && $1 == k && $2 == "=" {print $3; exit}' "$1"; }
case "$recipe" in
  dualmcmc)
    cfg=configs/cifar10_dual_mcmc_small.ini
    authors=bench/authors/dualmcmc_cifar10.py
    authors_args=(--ngf "$(ini_get $cfg model ngf)" --ndf "$(ini_get $cfg model ndf)"
                  --nif "$(ini_get $cfg model nif)" --batch-size "$(ini_get $cfg train batch_size)")
    arrays=(revised); [ $eval_gen = 1 ] && arrays+=(generator)
    authors_src="jcui1224/dual-MCMC@aac3c4c train.py, nets.py, config.py, task_fid.py" ;;
  shortrun)
    cfg=configs/cifar10_shortrun_small.ini
    authors=bench/authors/shortrun_cifar10.py
    authors_args=(--nf "$(ini_get $cfg model ndf)" --batch-size "$(ini_get $cfg train batch_size)")
    arrays=(samples)
    authors_src="enijkamp/short_run@d779e9a train_cifar10_minimal.py" ;;
  coopvaebm|coopnets|persistent)
    echo "realdata: --recipe $recipe: no authors' PyTorch loop wired yet (coopvaebm and coopnets:" \
         "the official code is TensorFlow, coopnets' PyTorch port is not copied here; persistent:" \
         "openai/ebm_code_release is TensorFlow). Wired: dualmcmc, shortrun." >&2
    exit 3 ;;
  *) echo "realdata: unknown recipe '$recipe'" >&2; usage ;;
esac

# ---- prerequisites
py="${EBMC_PYTHON:-/usr/bin/python3}"
ebmc="${EBMC_BIN:-build/ebmc}"
[ -x "$ebmc" ] || skip "$ebmc not built (cmake -S . -B build && cmake --build build)"
"$py" -c "import torch, numpy, PIL" 2>/dev/null || skip "$py lacks torch, numpy or PIL"
weights="${EBMC_INCEPTION:-${XDG_CACHE_HOME:-$HOME/.cache}/ebmc/inception-2015-12-05.safetensors}"
[ -f "$weights" ] || skip "no FID Inception weights at $weights (scripts/get_inception.sh)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ebmc/realdata"
if [ -z "$data" ]; then
  data=data/cifar-10-batches-bin
  if [ ! -f "$data/test_batch.bin" ] && [ -n "${EBMC_DATA:-}" ]; then
    if [ -f "$EBMC_DATA/cifar-10-batches-bin/test_batch.bin" ]; then data="$EBMC_DATA/cifar-10-batches-bin"
    elif [ -f "$EBMC_DATA/cifar-10-binary.tar.xz" ]; then
      data="$cache/cifar-10-batches-bin"
      if [ ! -f "$data/test_batch.bin" ]; then
        mkdir -p "$cache" && tar xJf "$EBMC_DATA/cifar-10-binary.tar.xz" -C "$cache"
      fi
    fi
  fi
fi
for f in data_batch_1.bin data_batch_5.bin test_batch.bin; do
  [ -f "$data/$f" ] || skip "no CIFAR-10 at $data ($f; scripts/download_cifar10.sh, --data or EBMC_DATA)"
done

stamp=$(date -u +%Y%m%d-%H%M%S)
out="${out:-runs/realdata-$recipe-$stamp}"
mkdir -p "$out" "$results"
out=$(cd "$out" && pwd)
secs=$(awk -v m="$minutes" 'BEGIN { s = m * 60; if (s < 1) s = 1; printf "%.0f", s }')
export OMP_NUM_THREADS="$threads"
now() { date +%s.%N; }
log() { echo "realdata: $*" >&2; }

# ---- 0. the hyperparameters: every authors' setting against the ebmc config (dualmcmc)
if [ "$recipe" = dualmcmc ]; then
  "$py" "$authors" --check-config "$cfg" --data "$data" --out "$out/authors" --minutes 0 \
    "${authors_args[@]}" >"$out/check_config.log" 2>&1 || { cat "$out/check_config.log" >&2; die "$cfg differs from the authors' settings"; }
  log "$(head -1 "$out/check_config.log")"
fi

# ---- 1. ebmc: SIGTERM at the limit; it finishes the iteration under way and checkpoints
train_ebmc() {
  log "ebmc train $cfg for ${minutes} min, $threads threads"
  local rc
  now >"$out/ebmc_t0"
  set +e
  timeout -s TERM -k 600 "$secs" "$ebmc" train "$cfg" data.path="$data" run.out_dir="$out" \
    run.name=ebmc >"$out/ebmc_train.log" 2>&1
  rc=$?
  set -e
  now >"$out/ebmc_t1"
  [ $rc = 0 ] || [ $rc = 124 ] || { tail -5 "$out/ebmc_train.log" >&2; die "ebmc train exited $rc"; }
  [ -s "$out/ebmc/metrics.jsonl" ] && [ -d "$out/ebmc/checkpoints" ] \
    || { tail -5 "$out/ebmc_train.log" >&2; die "ebmc train ended (exit $rc) before its first iteration's checkpoint: no $out/ebmc/metrics.jsonl or checkpoints (a longer --minutes?)"; }
}

# ---- 2. the authors' loop (training, then its test-time samples)
train_authors() {
  log "authors' loop $authors for ${minutes} min, $threads threads"
  "$py" "$authors" --data "$data" --out "$out/authors" --minutes "$minutes" --samples "$samples" \
    "${authors_args[@]}" >"$out/authors_train.log" 2>&1 || { tail -5 "$out/authors_train.log" >&2; die "the authors' loop failed"; }
}

if [ $from_runs = 1 ]; then
  for f in ebmc_t0 ebmc_t1 authors/result.json ebmc/metrics.jsonl; do
    [ -s "$out/$f" ] || die "--from-runs: $out/$f is missing (not a finished run of this script)"
  done
  log "--from-runs: the trained runs in $out"
elif [ $parallel = 1 ]; then # both at once, each with its own $threads threads (e.g. 1 + 1 on 2 cores)
  train_ebmc & pe=$!
  train_authors & pa=$!
  rce=0 rca=0
  wait $pe || rce=$?
  wait $pa || rca=$?
  [ $rce = 0 ] && [ $rca = 0 ] || die "a side failed (ebmc exit $rce, authors' loop exit $rca; the logs are in $out)"
else # one after the other, never at the same time
  train_ebmc
  train_authors
fi
t0=$(cat "$out/ebmc_t0") t1=$(cat "$out/ebmc_t1")
ebmc_iters=$(tail -1 "$out/ebmc/metrics.jsonl" | sed -n 's/.*"iter":\([0-9]*\).*/\1/p')
batch=$(ini_get $cfg train batch_size)

# ---- 3. ebmc's test-time samples
log "ebmc sample --n $samples"
ts=$(now)
"$ebmc" sample "$out/ebmc" --n "$samples" --out "$out/ebmc/samples" >"$out/ebmc_sample.log" 2>&1 \
  || { tail -5 "$out/ebmc_sample.log" >&2; die "ebmc sample failed"; }
ebmc_sample_s=$(awk -v a="$ts" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')

# ---- 4. FID against the first R test images (statistics cached per R and weights file)
# (with --parallel the FID passes, which compare nothing, use both sides' threads together)
fid_threads=$threads; [ $parallel = 1 ] && fid_threads=$((2 * threads))
mkdir -p "$cache"
wsha=$(sha256sum "$weights" | cut -c1-12)
# the front end is part of the key: statistics made before ebmc fed these weights through the TF
# graph's front end (2026-12-08) are not reused
ref="$cache/cifar10_test_n${ref_n}_${wsha}_fe-tf.npz"
if [ ! -f "$ref" ]; then
  log "reference statistics of $ref_n CIFAR-10 test images (cached in $ref)"
  "$py" - "$data/test_batch.bin" "$out/cifar10_test.npy" <<'EOF'
import sys, numpy as np
r = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, 3073)[:, 1:].reshape(-1, 3, 32, 32)
np.save(sys.argv[2], np.ascontiguousarray(r.transpose(0, 2, 3, 1)))
EOF
  OMP_NUM_THREADS=$fid_threads "$ebmc" eval --stats "$out/cifar10_test.npy" --n-ref "$ref_n" --out "$ref.part.npz" >"$out/ref_stats.log" 2>&1 \
    || { tail -5 "$out/ref_stats.log" >&2; die "reference statistics failed"; }
  mv "$ref.part.npz" "$ref"
  rm -f "$out/cifar10_test.npy"
fi
for a in "${arrays[@]}"; do
  for side in ebmc authors; do
    npy="$out/$side/$a.npy"; [ $side = ebmc ] && npy="$out/ebmc/samples/$a.npy"
    log "FID of $side $a ($samples samples)"
    OMP_NUM_THREADS=$fid_threads "$ebmc" eval --npy "$npy" --ref "$ref" --out "$out/fid_${side}_$a.json" >"$out/fid_${side}_$a.log" 2>&1 \
      || { tail -5 "$out/fid_${side}_$a.log" >&2; die "ebmc eval of $npy failed"; }
  done
done

# ---- 5. grid, results .md/.json
base="$results/realdata-$recipe${tag:+-$tag}-$stamp"
"$py" - "$out" "$base" "$recipe" "$cfg" "$authors" "$authors_src" "$minutes" "$threads" "$samples" \
  "$ref_n" "$ref" "$t0" "$t1" "${ebmc_iters:-0}" "$batch" "$ebmc_sample_s" "${arrays[*]}" "$argv" "$parallel" <<'EOF'
import json, os, platform, subprocess, sys
import numpy as np
from PIL import Image, ImageDraw
(out, base, recipe, cfg, authors, authors_src, minutes, threads, samples, ref_n, ref, t0, t1,
 ebmc_iters, batch, ebmc_sample_s, arrays, argv, parallel) = sys.argv[1:]
arrays = arrays.split()
ebmc_wall = float(t1) - float(t0)
auth = json.load(open(os.path.join(out, "authors", "result.json")))
def fid(side, a):
    j = json.load(open(os.path.join(out, f"fid_{side}_{a}.json")))
    def find(o):  # the FID number wherever the JSON keeps it
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "fid" and isinstance(v, (int, float)): return float(v)
                r = find(v)
                if r is not None: return r
        if isinstance(o, list):
            for v in o:
                r = find(v)
                if r is not None: return r
        return None
    return find(j)
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return ""
res = {
    "recipe": recipe, "config": cfg, "authors_loop": authors, "authors_source": authors_src,
    "minutes": float(minutes), "threads": int(threads), "samples": int(samples), "parallel": parallel == "1",
    "reference": {"set": "CIFAR-10 test_batch.bin", "n": int(ref_n), "stats": ref},
    "ebmc": {"iterations": int(ebmc_iters), "wall_s": round(ebmc_wall, 1),
             "images_per_s": round(int(ebmc_iters) * int(batch) / ebmc_wall, 3),
             "sample_s": float(ebmc_sample_s),
             "fid": {a: fid("ebmc", a) for a in arrays}},
    "authors": {"iterations": auth["iterations"], "wall_s": round(auth["wall_s"], 1),
                "images_per_s": round(auth["images_per_s"], 3), "stopped": auth["stopped"],
                "sample_s": round(auth.get("sample_s", 0.0), 1),
                "fid": {a: fid("authors", a) for a in arrays}},
    "machine": {"cpu": sh("lscpu | sed -n 's/^Model name: *//p'"), "cores": os.cpu_count(),
                "load_before": sh("cat /proc/loadavg"), "os": platform.platform()},
    "versions": {"ebmc_commit": sh("git rev-parse --short HEAD") + (" (dirty)" if sh("git status --porcelain -uno") else ""),
                 "ebmc": sh(os.environ.get("EBMC_BIN", "build/ebmc") + " --version 2>&1 | head -1"), "python": platform.python_version(),
                 "torch": auth.get("torch"), "numpy": np.__version__},
    "command": "bench/realdata.sh " + argv,
    "out": out,
}
# side by side: the first 64 samples of each side's last array, 8x8, 2x upscaled
tiles = []
for side in ("ebmc", "authors"):
    a = arrays[0]
    p = os.path.join(out, "ebmc", "samples", f"{a}.npy") if side == "ebmc" else os.path.join(out, "authors", f"{a}.npy")
    x = np.load(p)[:64]
    n = 8; rows = (len(x) + n - 1) // n; g = np.full((rows * 34, n * 34, 3), 255, np.uint8)
    for i, im in enumerate(x):
        r, c = divmod(i, n); g[r * 34 + 1:r * 34 + 33, c * 34 + 1:c * 34 + 33] = im
    tiles.append(Image.fromarray(g).resize((n * 68, rows * 68), Image.NEAREST))
W = tiles[0].width
canvas = Image.new("RGB", (2 * W + 24, max(t.height for t in tiles) + 28), "white")
d = ImageDraw.Draw(canvas)
for k, (side, im) in enumerate(zip(("ebmc", "authors' loop"), tiles)):
    canvas.paste(im, (k * (W + 24), 28))
    it = res["ebmc" if k == 0 else "authors"]["iterations"]
    f = res["ebmc" if k == 0 else "authors"]["fid"][arrays[0]]
    d.text((k * (W + 24) + 4, 8), f"{side}: {recipe} {arrays[0]}, {it} iterations, FID {f:.1f} (n={samples})", fill="black")
canvas.save(base + ".png")
res["grid"] = os.path.basename(base + ".png")
json.dump(res, open(base + ".json", "w"), indent=1)
e, a_ = res["ebmc"], res["authors"]
L = [f"# Real data: ebmc vs the authors' loop, {recipe}, {minutes} min each", "",
     f"`{res['command']}` at {res['versions']['ebmc_commit']}; {res['machine']['cpu']}, "
     f"{threads} threads (OMP_NUM_THREADS), " + ("the two sides trained at the same time" if parallel == "1" else "the two sides one after the other") + "; load average "
     f"before: {res['machine']['load_before']}.", "",
     f"Config `{cfg}`; authors' loop `{authors}` ({authors_src}); torch {res['versions']['torch']}.",
     f"FID: `ebmc eval`, {samples} test-time samples per side against the first {ref_n} CIFAR-10 test images.", "",
     "| | ebmc | authors' loop |", "|---|---|---|",
     f"| iterations in {minutes} min | {e['iterations']} | {a_['iterations']} |",
     f"| wall s (process start to stop) | {e['wall_s']} | {a_['wall_s']} |",
     f"| training images/s | {e['images_per_s']} | {a_['images_per_s']} |",
     f"| sampling s ({samples}) | {e['sample_s']} | {a_['sample_s']} |"]
for a in arrays:
    L.append(f"| FID {a} | {e['fid'][a]:.2f} | {a_['fid'][a]:.2f} |")
L += ["", f"![samples]({res['grid']})", ""]
if int(samples) < 10000 or int(ref_n) < 10000:
    L += [f"With {samples} samples and {ref_n} reference images the FIDs are biased upwards and noisy; "
          "they say little beyond 'both pipelines run'.", ""]
open(base + ".md", "w").write("\n".join(L))
print(json.dumps({"ebmc": e, "authors": a_}, indent=1))
EOF
log "results: $base.md, $base.json, $base.png; runs in $out"
