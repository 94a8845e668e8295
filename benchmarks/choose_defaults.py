"""Choose each regularizer's default from validation figures only.

The procedure, fixed before its inputs were read:

1. **Tuning data**: the *training* part of MovieLens-100k (per-user 80/20,
   seed 0) and of the DirectSpec authors' CiteULike split. Their test parts
   are never read here; Gowalla and Yelp2018 are kept for reporting.
2. **Figures**: the candidates of ``bench_regularizers.py --protocol select``
   (its result files under ``benchmarks/results/regularizers/<data set>/``):
   for each model (MF, LightGCN) and each value of the regularizer's main
   parameter in its grid (``GRIDS`` there), the best validation NDCG@20 of a
   run with early stopping (seed 0, a per-user 10% hold-out of the training
   pairs) and the item table's erank at that epoch.
3. **Score** of a value: the geometric mean, over the tuning cells (data set
   x model), of its validation NDCG@20 relative to no regularizer in the same
   cell; its **spread**: the mean item-erank gain over no regularizer.
4. **Rule**: among the values that keep at least 99% of the validation
   NDCG@20 (score >= 0.99), the one with the largest spread; if none keeps
   99%, the value with the best score. A default that is not a trap first,
   and among those the one that fixes the most collapse.

``python benchmarks/choose_defaults.py`` prints the table and the choice of
each regularizer and writes ``benchmarks/results/defaults.json``; the table on
the evidence page is generated from that file.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results

TUNING = ("ml-100k", "citeulike")
MODELS = ("MF", "LightGCN")
KEEP = 0.99


def _key(params):
    return tuple(sorted((k.replace("regularizer__", ""), v) for k, v in params.items()))


def collect(datasets=TUNING):
    """``{reg: {value key: {cell: (valid ndcg, item erank)}}}`` and None's."""
    base, regs, cells = {}, {}, []
    for dataset in datasets:
        for rec in _results.read_results(f"regularizers/{dataset}"):
            if rec["model"] not in MODELS or rec["setting"] == "baseline":
                continue
            cell = (dataset, rec["model"])
            for cand in rec["candidates"]:
                point = (cand["valid_score"],
                         (cand.get("tables") or {}).get("item", {}).get("erank"))
                if rec["setting"] == "none":
                    base[cell] = point
                    cells.append(cell)
                else:
                    regs.setdefault(rec["setting"], {}).setdefault(
                        _key(cand["params"]), {})[cell] = point
    return base, regs, sorted(set(cells))


def choose(base, regs, cells):
    """Apply the rule; returns ``{reg: record}``."""
    out = {}
    for reg, values in sorted(regs.items()):
        rows = []
        for value, points in values.items():
            used = [c for c in cells if c in points]
            if not used:
                continue
            rel = [points[c][0] / base[c][0] for c in used]
            gain = [points[c][1] - base[c][1] for c in used
                    if points[c][1] is not None and base[c][1] is not None]
            rows.append({
                "params": dict(value),
                "cells": [f"{d}/{m}" for d, m in used],
                "relative_valid_ndcg": {f"{d}/{m}": r for (d, m), r in zip(used, rel)},
                "score": float(np.exp(np.mean(np.log(np.maximum(rel, 1e-12))))),
                "erank_gain": float(np.mean(gain)) if gain else float("nan"),
            })
        if not rows:
            continue
        complete = [r for r in rows if len(r["cells"]) == len(cells)]
        pool = complete or rows
        keep = [r for r in pool if r["score"] >= KEEP]
        chosen = (max(keep, key=lambda r: r["erank_gain"]) if keep
                  else max(pool, key=lambda r: r["score"]))
        out[reg] = {"candidates": rows, "chosen": chosen["params"],
                    "kept_accuracy": bool(keep), "complete": bool(complete)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TUNING))
    args = parser.parse_args(argv)
    base, regs, cells = collect(args.datasets)
    if not cells:
        raise SystemExit("no result files of the tuning data sets yet")
    chosen = choose(base, regs, cells)
    print(f"tuning cells: {', '.join(f'{d}/{m}' for d, m in cells)}")
    for reg, rec in chosen.items():
        print(f"\n{reg}: chosen {rec['chosen']}"
              + ("" if rec["kept_accuracy"] else " (no value kept 99%: best score)")
              + ("" if rec["complete"] else " (not every cell measured yet)"))
        for r in rec["candidates"]:
            print(f"  {r['params']}: score {r['score']:.3f}, erank gain "
                  f"{r['erank_gain']:+.1f} over {len(r['cells'])} cell(s)")
    _results.write_result("defaults.json", {
        "procedure": __doc__,
        "tuning_cells": [f"{d}/{m}" for d, m in cells],
        "none_valid_ndcg": {f"{d}/{m}": base[(d, m)][0] for d, m in cells},
        "regularizers": chosen,
        "meta": _results.run_metadata(),
    })


if __name__ == "__main__":
    main()
