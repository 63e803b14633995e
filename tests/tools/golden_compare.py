#!/usr/bin/env python3
"""Golden check (scripts/golden-check.sh): two run trees of the same fixed-seed runs. Checkpoint files byte-identical (or, with
--allow-new-config-keys, identical tensors and metadata with the config JSON allowed to gain
keys); metrics.jsonl identical line by line except the wall-clock fields."""
import json, os, struct, sys
TIMING = {"sec", "images_per_s", "chain_steps_per_s"}
def st(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8+n]), b[8+n:]
a, b = sys.argv[1], sys.argv[2]; allow = '--allow-new-config-keys' in sys.argv
bad = 0; nfiles = 0
fa = sorted(os.path.relpath(os.path.join(r, f), a) for r, _, fs in os.walk(a) for f in fs)
fb = sorted(os.path.relpath(os.path.join(r, f), b) for r, _, fs in os.walk(b) for f in fs)
for f in sorted(set(fa) - set(fb)): print("only in before:", f); bad += 1
for f in sorted(set(fb) - set(fa)): print("only in after:", f)
for f in sorted(set(fa) & set(fb)):
    pa, pb = os.path.join(a, f), os.path.join(b, f); nfiles += 1
    if f.endswith('.safetensors'):
        if open(pa,'rb').read() == open(pb,'rb').read(): continue
        ha, da = st(pa); hb, db = st(pb)
        ma, mb = ha.pop('__metadata__', {}), hb.pop('__metadata__', {})
        ca, cb = json.loads(ma.pop('config', '{}')), json.loads(mb.pop('config', '{}'))
        new = set(cb) - set(ca)
        metad = {k: (ma.get(k), mb.get(k)) for k in set(ma) | set(mb) if ma.get(k) != mb.get(k)}
        ok = allow and da == db and ha == hb and set(ca) <= set(cb) and all(ca[k] == cb[k] for k in ca)
        ok = ok and all(k == 'precision' and v == ('tf32', 'fp32') for k, v in metad.items())
        print(("same tensors, config gained %s%s: " % (sorted(new), ", precision tf32 -> fp32 (CPU run)" if metad else "") if ok else "DIFFERENT: ") + f); bad += not ok
    elif f.endswith('.jsonl'):
        la, lb = open(pa).read().splitlines(), open(pb).read().splitlines()
        if len(la) != len(lb): print("DIFFERENT line count:", f); bad += 1; continue
        for i, (x, y) in enumerate(zip(la, lb)):
            x, y = json.loads(x), json.loads(y)
            for k in TIMING: x.pop(k, None); y.pop(k, None)
            if list(x.items()) != list(y.items()):
                print("DIFFERENT metrics %s line %d" % (f, i + 1)); bad += 1; break
    elif f.endswith('.png') or f.endswith('.npy'):
        if open(pa,'rb').read() != open(pb,'rb').read(): print("DIFFERENT:", f); bad += 1
print("golden: %d files compared, %d different" % (nfiles, bad)); sys.exit(bad != 0)
