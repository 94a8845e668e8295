"""Choose RQVAE's collapse-fix defaults from held-out items' figures only.

The procedure. Its thresholds are those of ``choose_defaults.py``; it was
written before this script was first run, but after the held-out figures it
reads had been published on the evidence page ("Which setting reconstructs
held-out items best"), so its author had seen them:

1. **Tuning tables**: the planted tables of ``bench_codebooks.py``
   (``planted-*``: 64 clusters, effective rank 4 and 64) and its
   MovieLens-100k MF item tables (``ml-100k-mf-*``). The two-tower and
   Gowalla tables are kept for reporting; nothing here reads them.
2. **Figures**: only the held-out figures of the candidates in each tuning
   table's result file (``rows[*].candidates[*].valid``: the quantizer
   fitted with the first seed on 80% of the table's items, measured on the
   other 20%), never the whole-catalogue figures the evidence tables report.
   A candidate is named by the fixes it switches on
   (``tables_codebooks.fix_settings``: its parameters that differ from the
   un-fixed RQ-VAE), so one fix at one setting of its grid, or a combination
   of fixes the grid holds.
3. **Per tuning table**, a candidate's *ratio* is its held-out relative
   reconstruction error divided by that of the un-fixed RQ-VAE (``rqvae-none``)
   of the same file. Its **score** is the geometric mean of its ratios over
   the tuning tables; its **collisions** the mean of its held-out collision
   rates over the tuning tables.
4. **Rule**: a candidate is *safe* when it was measured on every tuning
   table, its ratio is at most 1.01 on each (no table more than 1% worse)
   and its collisions are at most the un-fixed RQ-VAE's; it *helps* when its
   score is at most 0.99. The safe candidate that helps with the lowest score
   becomes the default: its fixes at its settings, every other fix off
   (``tables_codebooks.UNFIXED``). If no candidate is safe and helps, every
   fix stays off. A fix that is safe and helps on its own but is not part of
   the winner stays off too: either a candidate combining it with the
   winner's fixes was measured on every tuning table (then the rule above
   already ranked that combination below the winner), or it was not, and
   the output lists the fix (``also_safe_alone``) so that the combination
   can be added to the grid of ``bench_codebooks.py``.

Parameters the grid does not vary (``n_levels``, ``codebook_size``,
``commitment_weight``, the architecture, the training loop) are not chosen
here. The tuning runs used 3 levels of 64 codes, latent 32, one hidden layer
of 128, 50 epochs, batch 256 and lr 1e-3 (``bench_codebooks.py``'s
defaults).

``python benchmarks/choose_codebook_defaults.py`` prints every candidate and
the choice and writes ``benchmarks/results/codebook_defaults.json``;
``benchmarks/make_tables.py`` renders the evidence page's table from that
file, and ``audit_test_selection.py`` (rule R3) checks that the file is what
this script makes of the result files and that ``RQVAE``'s defaults are the
file's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results
from tables_codebooks import UNFIXED, fix_settings

TUNING = re.compile(r"^(planted-.+|ml-100k-mf-.+)$")
BASELINE_ROW = "rqvae-none"
WORSE_AT_MOST = 1.01
HELPS_AT_MOST = 0.99
OUTPUT = "codebook_defaults.json"


def _key(settings):
    return json.dumps(settings, sort_keys=True)


def collect(results_dir=None):
    """``(tables, base, candidates)`` of the tuning tables' held-out figures.

    ``base`` is ``{table: (relative error, collision rate)}`` of the un-fixed
    RQ-VAE; ``candidates`` is ``{key: {"settings": ..., "rows": [...],
    "points": {table: (relative error, collision rate)}}}`` of every other
    RQ-VAE candidate.
    """
    folder = os.path.join(results_dir or _results.RESULTS, "codebooks")
    tables, base, cands = [], {}, {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(".json"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            rec = json.load(fh)
        table = rec.get("table", "")
        if not TUNING.match(table):
            continue
        rows = rec.get("rows") or {}
        if BASELINE_ROW not in rows:
            continue
        tables.append(table)
        for row, r in rows.items():
            for c in r.get("candidates", []):
                if c.get("quantizer") != "RQVAE":
                    continue
                v = c["valid"]
                point = (float(v["relative_reconstruction_error"]),
                         float(v["collision_rate"]))
                settings = fix_settings(c["params"])
                if row == BASELINE_ROW:
                    base[table] = point
                    continue
                entry = cands.setdefault(_key(settings), {
                    "settings": settings, "rows": [], "points": {}})
                if row not in entry["rows"]:
                    entry["rows"].append(row)
                entry["points"][table] = point
    return sorted(tables), base, cands


def choose(tables, base, cands):
    """Apply the rule of the module docstring; returns the record it writes."""
    if not tables:
        raise ValueError("no tuning table with an un-fixed RQ-VAE candidate")
    base_coll = float(np.mean([base[t][1] for t in tables]))
    out = []
    for entry in cands.values():
        measured = [t for t in tables if t in entry["points"]]
        ratio = {t: entry["points"][t][0] / base[t][0] for t in measured}
        coll = {t: entry["points"][t][1] for t in measured}
        complete = len(measured) == len(tables)
        score = float(np.exp(np.mean(np.log(list(ratio.values()))))) if ratio else None
        mean_coll = float(np.mean(list(coll.values()))) if coll else None
        safe = (complete and max(ratio.values()) <= WORSE_AT_MOST
                and mean_coll <= base_coll)
        out.append({
            "settings": entry["settings"], "rows": entry["rows"],
            "ratio": ratio, "collision_rate": coll, "complete": complete,
            "score": score, "mean_collision_rate": mean_coll, "safe": bool(safe),
            "helps": bool(safe and score <= HELPS_AT_MOST),
        })
    out.sort(key=lambda c: (not c["complete"],
                            c["score"] if c["score"] is not None else np.inf,
                            _key(c["settings"])))
    winners = [c for c in out if c["helps"]]
    chosen = winners[0]["settings"] if winners else {}
    singles = [c for c in winners if len(_fixes(c["settings"])) == 1]
    combined = [set(_fixes(c["settings"])) for c in out if c["complete"]]
    also = sorted(f for f in {f for c in singles for f in _fixes(c["settings"])}
                  - set(_fixes(chosen))
                  if not any(fixes >= {*_fixes(chosen), f} for fixes in combined))
    return {
        "tuning_tables": tables,
        "unfixed": dict(UNFIXED),
        "unfixed_relative_error": {t: base[t][0] for t in tables},
        "unfixed_collision_rate": {t: base[t][1] for t in tables},
        "unfixed_mean_collision_rate": base_coll,
        "thresholds": {"worse_at_most": WORSE_AT_MOST, "helps_at_most": HELPS_AT_MOST},
        "candidates": out,
        "chosen": chosen,
        "defaults": {**UNFIXED, **chosen},
        "also_safe_alone": also,
    }


def _fixes(settings):
    """The fixes (parameters of UNFIXED) a setting switches on."""
    return [k for k in settings if k in UNFIXED]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    tables, base, cands = collect()
    if not tables:
        raise SystemExit("no result files of the tuning tables yet")
    rec = choose(tables, base, cands)
    print(f"tuning tables: {', '.join(tables)}")
    print(f"un-fixed RQ-VAE: mean held-out collision rate "
          f"{rec['unfixed_mean_collision_rate']:.4f}")
    for c in rec["candidates"]:
        worst = max(c["ratio"].values()) if c["ratio"] else float("nan")
        print(f"  {json.dumps(c['settings'], sort_keys=True):70s} score "
              f"{c['score']:.3f}  worst ratio {worst:.3f}  collisions "
              f"{c['mean_collision_rate']:.4f}  "
              + ("helps" if c["helps"] else "safe" if c["safe"]
                 else "incomplete" if not c["complete"] else "-"))
    print(f"chosen: {rec['chosen'] or 'every fix off'}; defaults {rec['defaults']}")
    if rec["also_safe_alone"]:
        print(f"also safe and helping alone, its combination with the choice "
              f"not measured yet: "
              f"{rec['also_safe_alone']}")
    _results.write_result(OUTPUT, {"procedure": __doc__, **rec,
                                   "meta": _results.run_metadata()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
