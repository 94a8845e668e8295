"""Tables of DeepFM beside DNN and FM, from the result files of bench_deepfm.py.

``table_deepfm()`` reads ``benchmarks/results/deepfm/<dataset>/<model>.json``
and nothing else: one row per (data set, model) with test AUC and log loss,
mean ± std over the seeds, DeepFM's paired difference from each other model,
the mean per-field IA and the selected epochs. ``table_deepfm_field_ia()``
gives each field's IA (mean over seeds), one block per data set.

The paired comparison is the rule of ``tables_scaling.paired_mark`` with the
plan's ``alpha`` and ``min_se_multiple`` (recorded in each file): pair the fits
by seed, ``d = DeepFM - model``; ``>`` / ``<`` when a two-sided paired t-test
gives ``p < alpha`` and ``mean(d)`` is beyond ``min_se_multiple`` standard
errors, ``~`` otherwise. The marks say which value is larger, for AUC and log
loss alike (a lower log loss is the better one). The comparison was not
registered before the runs and decides nothing.
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results
from tables_scaling import NAMES, paired_mark

FOLDER = "deepfm"
MODEL_ORDER = ("fm", "dnn", "deepfm")
DATASET_ORDER = ("synthetic", "frappe")
DATASET_NAMES = {"synthetic": "planted CTR task", "frappe": "Frappe"}


def _records():
    """``{(dataset, model): record}``; files of two plans are refused."""
    recs = _results.read_results(FOLDER)
    shas = sorted({r["config"]["plan_sha256"] for r in recs})
    if len(shas) > 1:
        raise SystemExit(f"{FOLDER}: result files of {len(shas)} different plans "
                         f"({', '.join(s[:12] for s in shas)}); one plan per table")
    return {(r["dataset"], r["model"]): r for r in recs}


def _order(cells):
    datasets = [d for d in DATASET_ORDER if any(k[0] == d for k in cells)]
    datasets += sorted({d for d, _ in cells} - set(datasets))
    for dataset in datasets:
        models = [m for m in MODEL_ORDER if (dataset, m) in cells]
        models += sorted({m for d, m in cells if d == dataset} - set(models))
        yield dataset, models


def _by_seed(record, metric):
    return {int(s["seed"]): float(s["test"][metric]) for s in record["seeds"]}


def _pm(values):
    return _results.pm(values, 4)


def _versus(deepfm, other, metric):
    rule = deepfm["config"]["comparison"]
    cmp = paired_mark(_by_seed(other, metric), _by_seed(deepfm, metric),
                      alpha=rule["alpha"], min_se_multiple=rule["min_se_multiple"])
    if cmp["n"] < 2:
        return f"{cmp['diff']:+.4f} (n={cmp['n']})"
    p = cmp["p"]
    p_text = "p<0.001" if p < 1e-3 else f"p={p:.3f}"
    return f"{cmp['diff']:+.4f} {cmp['mark']} ({p_text}, n={cmp['n']})"


def table_deepfm():
    """Markdown: test AUC, log loss, DeepFM's paired differences, mean field IA."""
    cells = _records()
    if not cells:
        return "_No result files yet._\n"
    lines = [
        ("| data set | model | test AUC | test log loss | DeepFM − model, AUC "
         "| DeepFM − model, log loss | mean field IA | selected epoch (per seed) "
         "| seeds |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, models in _order(cells):
        deepfm = cells.get((dataset, "deepfm"))
        for model in models:
            rec = cells[(dataset, model)]
            seeds = rec["seeds"]
            compare = deepfm is not None and model != "deepfm"
            lines.append("| " + " | ".join([
                DATASET_NAMES.get(dataset, dataset), NAMES.get(model, model),
                _pm([s["test"]["roc_auc"] for s in seeds]),
                _pm([s["test"]["log_loss"] for s in seeds]),
                _versus(deepfm, rec, "roc_auc") if compare else "",
                _versus(deepfm, rec, "log_loss") if compare else "",
                f"{np.mean([s['ia']['mean'] for s in seeds]):.2f}",
                ", ".join(str(s["selected_epoch"]) for s in seeds),
                ", ".join(str(s["seed"]) for s in seeds),
            ]) + " |")
    any_rec = next(iter(cells.values()))
    rule = any_rec["config"]["comparison"]
    git = any_rec["config"].get("plan_git") or {}
    exp = any_rec["config"]["experiment"]
    plan = (f"`{any_rec['config']['plan']}` (SHA-256 "
            f"{any_rec['config']['plan_sha256'][:12]}"
            + (f", committed in {git['added_in'][:7]}" if git.get("added_in") else
               ", NOT COMMITTED") + ")")
    legend = (
        f"Test AUC and log loss, mean ± std over seeds; every model at embedding "
        f"size {exp['base_dim']} (one set), DNN and DeepFM with the MLP "
        f"{'-'.join(str(u) for u in exp['hidden_units'])}, sizes and protocol "
        f"from the plan {plan}; the epoch chosen on validation AUC, the test rows "
        "scored once. DeepFM − model: the mean over seeds of the paired "
        f"difference, marked by a two-sided paired t-test over seeds, `>`/`<` at "
        f"p < {rule['alpha']} with the mean difference beyond "
        f"{rule['min_se_multiple']:g} standard errors, `~` otherwise (the rule "
        "of the scaling table; the marks say which value is larger, and a lower "
        "log loss is better). Field IA: information abundance of each field's "
        "table, averaged over fields and seeds.")
    return "\n".join(lines) + "\n\n" + legend + "\n"


def table_deepfm_field_ia():
    """Markdown: each field's IA (mean over seeds), one table per data set."""
    cells = _records()
    if not cells:
        return "_No result files yet._\n"
    blocks = []
    for dataset, models in _order(cells):
        names = cells[(dataset, models[0])]["data"]["field_names"]
        lines = [f"**{DATASET_NAMES.get(dataset, dataset)}**", "",
                 "| model | " + " | ".join(names) + " | mean |",
                 "|---" * (len(names) + 2) + "|"]
        for model in models:
            per_seed = np.array([s["ia"]["fields"] for s in cells[(dataset, model)]
                                 ["seeds"]], dtype=np.float64)
            values = per_seed.mean(axis=0)
            lines.append(f"| {NAMES.get(model, model)} | "
                         + " | ".join(f"{v:.2f}" for v in values)
                         + f" | {values.mean():.2f} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


if __name__ == "__main__":
    print(table_deepfm())
    print(table_deepfm_field_ia())
