#!/usr/bin/python3
"""Independent check of ebmc's safetensors files against a reader and a writer written here from
the format description (huggingface/safetensors README.md, safetensors/src/tensor.rs), using only
the standard library (json, struct) and numpy.

Usage: /usr/bin/python3 tests/oracle/test_safetensors_py.py /path/to/st_roundtrip

  (a) `st_roundtrip write F`: F is parsed here (8-byte little-endian N, JSON header, offsets,
      numpy.frombuffer) and every dtype, shape, value and metadata entry is checked against the
      fixed set documented in tests/tools/st_roundtrip.c, together with the format rules: N % 8
      == 0, space padding, a JSON object starting with '{', data offsets tiling the buffer from 0
      to the end of the file, reference order, and a header byte-identical to the reference
      writer's (compact JSON, "__metadata__" first).
  (b) a file written here in the reference layout -> `st_roundtrip check F` must pass.
  (c) the same set in another contiguous order (by name, so data is unaligned) -> must pass.
  (d) a few broken files -> `st_roundtrip check` must fail naming the file.

The last line is "N passed, M failed"; exit status 0 iff M == 0, 77 (skip) without numpy, 2 on a
usage error.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("oracle_safetensors: SKIPPED \u2014 numpy not installed (Debian: apt-get install "
          "python3-numpy)")
    sys.exit(77)

NOTE = "ebmc \"st\" test \\ tab\tnl\nctl\x01 utf8 \u00e9\u2713"
META = {"format": "pt", "note": NOTE}

# name -> (dtype, shape, values as a numpy array of that dtype); see tests/tools/st_roundtrip.c


def fixed_set():
    def idx(shape):
        return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)

    bf = (idx([4]) * 1.5 - 2).astype(np.float32).view(np.uint32) >> 16
    return {
        "a.weight": ("F32", [3, 4, 5], (idx([3, 4, 5]) * 0.5 - 3).astype("<f4").reshape(3, 4, 5)),
        "b.f64": ("F64", [7], ((idx([7]) - 3) / 8.0).astype("<f8")),
        "c.step": ("I64", [2, 3], ((idx([6]) - 2) * 3000000000).astype("<i8").reshape(2, 3)),
        "d.i32": ("I32", [5], (idx([5]) ** 2 - 7).astype("<i4")),
        "e.u8": ("U8", [2, 2, 3], ((idx([12]) * 37) % 256).astype(np.uint8).reshape(2, 2, 3)),
        "f.bf16": ("BF16", [4], bf.astype("<u2")),
        "g.f16": ("F16", [3], ((idx([3]) - 1) * 0.5).astype("<f2")),
        "s.scalar": ("F32", [], np.array(42.5, dtype="<f4")),
        "z.empty": ("F32", [0, 3], np.zeros((0, 3), dtype="<f4")),
    }


NP_DTYPE = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1", "BF16": "<u2",
            "F16": "<f2"}
# safetensors' enum Dtype order (the reference writer sorts by it, descending, then by name)
REF_RANK = {"BOOL": 0, "U8": 1, "I8": 2, "F8_E5M2": 3, "F8_E4M3": 4, "I16": 5, "U16": 6,
            "F16": 7, "BF16": 8, "I32": 9, "U32": 10, "F32": 11, "F64": 12, "I64": 13, "U64": 14}

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"  ok    {what}")
    else:
        FAILED += 1
        print(f"  FAIL  {what}")
    return cond


def build_file(tensors, meta, order):
    """Bytes of a safetensors file holding `tensors` (name -> (dtype, shape, array)) laid out in
    `order`, with the reference writer's header: compact JSON, __metadata__ first, spaces to a
    multiple of 8."""
    header = {}
    if meta:
        header["__metadata__"] = meta
    blobs, off = [], 0
    for name in order:
        dt, shape, arr = tensors[name]
        b = np.ascontiguousarray(arr).astype(NP_DTYPE[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(blobs)


def ref_order(tensors):
    return sorted(tensors, key=lambda n: (-REF_RANK[tensors[n][0]], n.encode("utf-8")))


def parse(raw):
    """A minimal reader: returns (header dict, data buffer bytes, N)."""
    (n,) = struct.unpack("<Q", raw[:8])
    hb = raw[8:8 + n]
    return json.loads(hb.decode("utf-8")), raw[8 + n:], n, hb


def part_a(tool, tmp):
    print("(a) st_roundtrip write -> parsed here")
    path = os.path.join(tmp, "c_written.safetensors")
    r = subprocess.run([tool, "write", path], capture_output=True, text=True)
    if not check(r.returncode == 0, f"st_roundtrip write exits 0 ({r.stderr.strip()})"):
        return
    raw = open(path, "rb").read()
    check(not any(".tmp." in f for f in os.listdir(tmp)), "no temporary file left behind")
    header, data, n, hb = parse(raw)
    check(n % 8 == 0, f"header length N = {n} is a multiple of 8")
    check(hb[:1] == b"{", "header starts with '{'")
    body = hb.rstrip(b" ")
    check(body.endswith(b"}") and len(hb) - len(body) < 8, "header padded with < 8 spaces")
    exp = fixed_set()
    check(header.get("__metadata__") == META, "__metadata__ round-trips (escapes, UTF-8)")
    names = [k for k in header if k != "__metadata__"]
    check(sorted(names) == sorted(exp), f"tensor names {sorted(names)}")
    # tiling: sorted by offsets, contiguous from 0 to the end of the file
    spans = sorted((tuple(header[k]["data_offsets"]), k) for k in names)
    pos, tiled = 0, True
    for (b, e), _ in spans:
        tiled &= b == pos and e >= b
        pos = e
    check(tiled and pos == len(data) == len(raw) - 8 - n,
          f"offsets tile the data buffer [0, {len(data)}) with no gaps")
    check([k for _, k in spans] == ref_order(exp), "tensors in reference order (dtype, name)")
    check(list(header)[1:] == [k for _, k in spans] and list(header)[0] == "__metadata__",
          "header lists __metadata__ then tensors in data order")
    for name, (dt, shape, want) in exp.items():
        info = header.get(name)
        if not check(info is not None, f"{name} present"):
            continue
        b, e = info["data_offsets"]
        ok = info["dtype"] == dt and info["shape"] == shape
        arr = np.frombuffer(data[b:e], dtype=NP_DTYPE[dt]).reshape(shape)
        if dt in ("F32", "F64") and arr.size:
            check(ok and (8 + n + b) % arr.itemsize == 0, f"{name}: data aligned in the file")
        ok = ok and arr.shape == want.shape and np.array_equal(arr, want)
        check(ok, f"{name}: {dt} {shape} values match")
    # the header must be byte-identical to the reference writer's for the same input
    ref = build_file(exp, META, ref_order(exp))
    check(ref == raw, "whole file byte-identical to the reference layout written here")


def run_check(tool, path):
    return subprocess.run([tool, "check", path], capture_output=True, text=True)


def part_bcd(tool, tmp):
    exp = fixed_set()
    print("(b) reference layout written here -> st_roundtrip check")
    p = os.path.join(tmp, "py_ref.safetensors")
    open(p, "wb").write(build_file(exp, META, ref_order(exp)))
    r = run_check(tool, p)
    check(r.returncode == 0, f"check passes ({(r.stdout + r.stderr).strip()})")

    print("(c) name order (unaligned data) written here -> st_roundtrip check")
    p = os.path.join(tmp, "py_names.safetensors")
    open(p, "wb").write(build_file(exp, META, sorted(exp)))
    r = run_check(tool, p)
    check(r.returncode == 0, f"check passes ({(r.stdout + r.stderr).strip()})")

    print("(d) broken files -> st_roundtrip check fails naming the file")
    good = build_file(exp, META, ref_order(exp))
    cases = {
        "truncated": good[:-1],
        "trailing": good + b"\0",
        "short": good[:5],
        "badjson": good[:8] + b"[" + good[9:],
    }
    hdr, data, n, hb = parse(good)
    hdr["e.u8"]["shape"] = [2, 2, 2]
    hb2 = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False).encode()
    cases["sizemismatch"] = struct.pack("<Q", len(hb2)) + hb2 + data
    for name, raw in cases.items():
        p = os.path.join(tmp, f"bad_{name}.safetensors")
        open(p, "wb").write(raw)
        r = run_check(tool, p)
        check(r.returncode == 1 and p in r.stderr, f"{name}: rejected ({r.stderr.strip()})")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="ebmc_st_oracle.") as tmp:
        part_a(tool, tmp)
        part_bcd(tool, tmp)
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(0 if FAILED == 0 else 1)


if __name__ == "__main__":
    main()
