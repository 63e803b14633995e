#!/usr/bin/python3
"""The curves of an ebmc run as one PNG (what `ebmc plot RUN_DIR [--out F.png]` runs): matplotlib
(Debian: python3-matplotlib), Agg backend, from RUN_DIR/metrics.jsonl.

Panels: losses and errors; mean energies (or scores f) of data and samples; the energy gap the
divergence guard watches; the chains (energy at the first and last step, particle moves, ESS,
buffer fill, resamplings); throughput (images/s, chain-steps/s); the rest (learning rates and a
recipe's own numbers). A metric goes to the first panel whose rule matches its name; a divergence
event of the run is a red dashed line in every panel; a non-finite value is a gap in its curve
and counted in its legend. Curves longer than 200 points get a moving average over 1/50 of the
run drawn over the raw values.

Usage: ebmc_plot.py RUN_DIR OUT.png
Exit status: 0 written; 1 no matplotlib / cannot write; 65 no or malformed metrics.jsonl."""
import json
import math
import os
import sys

PANELS = [  # (title, rule on the metric name)
    ("losses and errors", lambda k: k.startswith(("loss", "nll")) or k.endswith("_err") or k == "kl"),
    ("energy gap (guarded)", lambda k: k.endswith("_gap")),
    ("chains", lambda k: "chain" in k or k in ("move_rms", "ess_frac", "cv2", "buffer_fill", "resamplings")),
    ("mean energies / scores", lambda k: k.startswith(("e_", "f_"))),
    ("throughput", lambda k: k in ("images_per_s", "chain_steps_per_s")),
    ("learning rates and other", lambda k: True),
]
SKIP = {"iter", "epoch", "sec"}
RULE_ORDER = [4, 0, 1, 2, 3, 5]  # throughput's rule first: chain_steps_per_s is a rate, not a chain statistic


def fail(code, msg):
    print(f"ebmc plot: {msg}", file=sys.stderr)
    sys.exit(code)


def read_metrics(path):
    rows, events = [], []
    try:
        f = open(path)
    except OSError as e:
        fail(65, f"{path}: cannot read: {e.strerror} (HINT: RUN_DIR is the folder ebmc train wrote)")
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                if n > 1 and not line.endswith("\n"):
                    break  # the last line, cut by a killed run: the records before it stand
                fail(65, f"{path}:{n}: not a JSON line")
            if "event" in r:
                events.append(r)
            elif isinstance(r.get("iter"), int):
                rows.append(r)
    if not rows:
        fail(65, f"{path}: no iteration records yet")
    return rows, events


def moving_average(v, w):
    out, acc, cnt, q = [], 0.0, 0, []
    for x in v:
        q.append(x)
        if math.isfinite(x):
            acc, cnt = acc + x, cnt + 1
        if len(q) > w:
            y = q.pop(0)
            if math.isfinite(y):
                acc, cnt = acc - y, cnt - 1
        out.append(acc / cnt if cnt else float("nan"))
    return out


def main(run_dir, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail(1, "matplotlib is not installed for " + sys.executable +
             " (HINT: apt-get install python3-matplotlib, or EBMC_PYTHON=a Python that has it)")
    rows, events = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys and k not in SKIP and not k.endswith("_nonfinite")]
    groups, labels = [[] for _ in PANELS], {}
    for k in keys:
        groups[next(i for i in RULE_ORDER if PANELS[i][1](k))].append(k)
    recipe = ""
    try:
        for line in open(os.path.join(run_dir, "config.ini")):
            if line.startswith("recipe ="):
                recipe = line.split("=", 1)[1].strip()
                break
    except OSError:
        pass
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    its = [r["iter"] for r in rows]
    w = max(len(rows) // 50, 1)
    for ax, (title, _), ks in zip(axes.flat, PANELS, groups):
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        for i, k in enumerate(ks):
            v = [float(r[k]) if isinstance(r.get(k), (int, float)) else float("nan") for r in rows]
            bad = sum(1 for r in rows if k in r and not isinstance(r[k], (int, float)))
            label = labels[k] = k + (f" ({bad} non-finite)" if bad else "")
            color = f"C{i % 10}"
            if len(v) > 200:
                ax.plot(its, v, color=color, alpha=0.25, linewidth=0.6)
                ax.plot(its, moving_average(v, w), color=color, linewidth=1.3, label=label)
            else:
                ax.plot(its, v, color=color, linewidth=1.2, marker="." if len(v) < 30 else None, label=label)
        for e in events:
            if isinstance(e.get("iter"), int):
                ax.axvline(e["iter"], color="red", linestyle="--", linewidth=0.8)
        if title == "throughput" and ks:
            ax.set_yscale("log")  # images/s and chain-steps/s differ by the chain length
        if ks:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "(none logged)", ha="center", va="center", transform=ax.transAxes, color="gray")
    div = sum(1 for e in events if e.get("event") == "divergence")
    fig.suptitle(f"{os.path.basename(os.path.normpath(run_dir))}: recipe {recipe or '?'}, iterations "
                 f"{its[0]}-{its[-1]}" + (f", {div} divergence recoveries (red)" if div else ""), fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    tmp = f"{out}.tmp.{os.getpid()}.png"
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fail(1, f"{out}: cannot write: {e.strerror}")
    for (title, _), ks in zip(PANELS, groups):
        print(f"ebmc plot: panel '{title}': {', '.join(labels[k] for k in ks) or '-'}", file=sys.stderr)
    print(f"ebmc plot: {len(keys)} curves of {len(rows)} iterations written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
