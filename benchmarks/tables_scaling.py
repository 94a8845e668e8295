"""Tables of the pre-registered multi-embedding scaling run, from its result files.

``table_scaling_prereg()`` reads ``benchmarks/results/scaling-prereg/*.json``
(written by ``bench_scaling.py --preregistered``) and nothing else: one row per
model, SE base..10x and ME 2x..10x columns, test AUC mean ± std over the seeds,
each ME cell marked by the plan's decision rule (its ``decision_rule`` entry,
copied into every result file), then the verdict on the claim. The rule
(``benchmarks/preregistered/me_synthetic.json``): pair the SE and ME fits of a
scale by seed, ``d = AUC(ME) - AUC(SE)``; ``>`` / ``<`` when a two-sided paired
t-test gives ``p < alpha`` and ``mean(d)`` is beyond ``min_se_multiple``
standard errors, ``~`` otherwise; the claim holds when at every decisive scale
at least ``min_models_per_scale`` models are ``>`` and none ``<``, goes the other
way in the mirror case, and is not supported otherwise.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results

FOLDER = "scaling-prereg"
NAMES = {"dnn": "DNN", "ipnn": "IPNN", "nfwfm": "NFwFM", "xdeepfm": "xDeepFM",
         "dcnv2": "DCNv2", "finalmlp": "FinalMLP", "deepfm": "DeepFM", "fm": "FM"}


def test_auc_by_seed(record):
    return {int(s["seed"]): float(s["test"]["roc_auc"]) for s in record["seeds"]}


def paired_mark(se, me, *, alpha=0.05, min_se_multiple=2.0):
    """The decision rule for one (model, scale): ``se``, ``me`` map seed -> AUC.

    Returns a dict: ``mark`` (``">"``, ``"<"`` or ``"~"``), ``diff`` (mean of
    ME - SE over the common seeds), ``p`` (two-sided paired t-test), ``n``.
    """
    seeds = sorted(set(se) & set(me))
    d = np.array([me[s] - se[s] for s in seeds], dtype=np.float64)
    n = int(d.size)
    if n < 2:
        return {"mark": "~", "diff": float(d.mean()) if n else math.nan,
                "p": math.nan, "n": n}
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    sem = sd / math.sqrt(n)
    if sd == 0.0:  # every seed the same difference
        p = 0.0 if mean != 0.0 else 1.0
    else:
        p = float(2 * stats.t.sf(abs(mean) / sem, n - 1))
    mark = "~"
    if p < alpha and mean > min_se_multiple * sem:
        mark = ">"
    elif p < alpha and mean < -min_se_multiple * sem:
        mark = "<"
    return {"mark": mark, "diff": mean, "p": p, "n": n}


def prereg_verdict(marks, models, rule):
    """``holds``, ``other way``, ``not supported`` or ``incomplete`` (with counts).

    ``marks`` maps ``(model, scale)`` to a mark for the cells with both SE and
    ME results.
    """
    scales = rule["decisive_scales"]
    need = rule["min_models_per_scale"]
    missing = [(m, s) for s in scales for m in models if (m, s) not in marks]
    if missing:
        done = len(scales) * len(models) - len(missing)
        return "incomplete", f"{done} of {len(scales) * len(models)} decisive cells"
    up = {s: sum(marks[(m, s)] == ">" for m in models) for s in scales}
    down = {s: sum(marks[(m, s)] == "<" for m in models) for s in scales}
    counts = "; ".join(f"{s}x: {up[s]} '>' and {down[s]} '<' of {len(models)}"
                       for s in scales)
    if all(up[s] >= need and down[s] == 0 for s in scales):
        return "holds", counts
    if all(down[s] >= need and up[s] == 0 for s in scales):
        return "other way", counts
    return "not supported", counts


def _pm(values):
    return _results.pm(values, 4)


def _scale_name(s):
    return "base" if s == 1 else f"{s}x"


def table_scaling_prereg():
    """Markdown: test AUC per model and scale with the rule's marks, and the verdict."""
    recs = _results.read_results(FOLDER)
    if not recs:
        return "_No result files yet._\n"
    shas = sorted({r["config"]["plan_sha256"] for r in recs})
    if len(shas) > 1:
        raise SystemExit(f"{FOLDER}: result files of {len(shas)} different plans "
                         f"({', '.join(s[:12] for s in shas)}); one plan per table")
    config = recs[0]["config"]
    exp, rule = config["experiment"], config["decision_rule"]
    cells = {(r["model"], r["kind"], int(r["scale"])): r for r in recs}
    models = list(exp["models"]) + sorted(
        {m for m, _, _ in cells} - set(exp["models"]))
    se_scales = list(exp["se_scales"])
    me_scales = [s for s in exp["me_scales"] if s > 1]
    marks, lines = {}, []
    lines.append("| model | " + " | ".join(
        [f"SE {_scale_name(s)}" for s in se_scales]
        + [f"ME {_scale_name(s)}" for s in me_scales]) + " |")
    lines.append("|---" * (1 + len(se_scales) + len(me_scales)) + "|")
    for m in models:
        row = [NAMES.get(m, m)]
        for s in se_scales:
            rec = cells.get((m, "SE", s))
            row.append(_pm(list(test_auc_by_seed(rec).values())) if rec else "–")
        for s in me_scales:
            rec = cells.get((m, "ME", s))
            if rec is None:
                row.append("–")
                continue
            me = test_auc_by_seed(rec)
            text = _pm(list(me.values()))
            se_rec = cells.get((m, "SE", s))
            if se_rec is not None:
                cmp = paired_mark(test_auc_by_seed(se_rec), me, alpha=rule["alpha"],
                                  min_se_multiple=rule["min_se_multiple"])
                marks[(m, s)] = cmp["mark"]
                text += f" {cmp['mark']}"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    seeds = {s: len(exp.get("seeds_by_scale", {}).get(str(s), exp["seeds"]))
             for s in sorted(set(se_scales) | set(me_scales))}
    verdict, counts = prereg_verdict(marks, list(exp["models"]), rule)
    git = config.get("plan_git") or {}
    plan = (f"`{config['plan']}` (SHA-256 {shas[0][:12]}"
            + (f", committed in {git['added_in'][:7]}" if git.get("added_in") else
               ", NOT COMMITTED") + ")")
    per_scale = ", ".join(f"{n} at {_scale_name(s)}" for s, n in seeds.items())
    decisive = ", ".join(f"{s}x" for s in rule["decisive_scales"])
    legend = (
        f"Test AUC, mean ± std over seeds ({per_scale}); ME is marked against SE "
        "of the same width by the pre-registered rule: paired t-test over seeds, "
        f"`>`/`<` at p < {rule['alpha']} with the mean difference beyond "
        f"{rule['min_se_multiple']:g} standard errors, `~` otherwise. Plan {plan}.")
    claim = (
        f"**Claim 'ME above SE' ({decisive} decide; at least "
        f"{rule['min_models_per_scale']} models '>' at each and none '<'): "
        f"{verdict}** ({counts}).")
    lines += ["", legend, "", claim]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table_scaling_prereg())
