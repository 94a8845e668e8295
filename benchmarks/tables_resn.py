"""The "ReSN side by side" table, from the result files of bench_resn.py.

``table_resn(dataset)`` reads ``benchmarks/results/resn/<dataset>/`` and
nothing else:

* ``authors-<setting>[-reference-N].json``: the authors' code (``LIN452/ReSN``)
  run as it is, its saved tables scored by skcollapse's metric code; settings
  ``none`` and ``resn-beta<x>``; one file per reference run (their code is not
  seeded, so its spread comes from repeated runs).
* ``ours-<loss>-<setting>-seed<S>.json``: skcollapse's ``MFRecommender``;
  settings ``none`` and ``resn-c<c>`` (the ReSN weight is ``c / B²``).

It gives three parts:

1. One row per (side, setting): the runs, the epoch of each run (the best
   validation NDCG@20 among the checkpoints), validation NDCG@20, test
   Recall@20 and NDCG@20 (mean ± std over the runs when there are several),
   item and user erank at that epoch, the fit time, and for the authors' rows
   the figure their own script reports, whose epoch it chose on the test split
   (labelled so; it is shown, never used).
2. The ReSN weights tried on our side: ``c`` is chosen by the best validation
   NDCG@20 among the ``resn-c*`` files of seed 0 (ties: the smaller ``c``);
   that ``c`` is the ReSN row of part 1. Several ``resn-beta*`` settings of
   the authors' code are chosen among in the same way (their first reference
   run).
3. The comparison the issue asks for: ours / authors' test NDCG@20 and
   Recall@20 (means over runs), for no regularizer and for ReSN, and whether
   both ratios lie within 5% of 1.

Only the ``authors-mse`` loss (the authors' ``weighted_mse`` in our code) is
compared; files of another loss get their own rows. A side or setting without
files is named in the table, with the file it waits for. Files of different
splits are refused (a smoke run beside a full one).
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results

FOLDER = "resn"
DATASETS = ("ml-1m",)
LOSS = "authors-mse"  # the loss the comparison is made with
TOLERANCE = 0.05  # issue 31: "within 5% of their own run"
SPLIT_KEYS = ("n_users", "n_items", "n_train", "n_valid", "n_test", "users", "valid",
              "data")
COMMANDS = (
    "`bash benchmarks/peers/setup_resn.sh`; "
    "`python benchmarks/bench_resn.py split PEER/data/{d} --work WORK`; "
    "`benchmarks/peers/.venv-resn/bin/python benchmarks/peers/resn_reference.py "
    "PEER --train WORK/split/train.txt --test WORK/split/test.txt "
    "--work WORK/reference --reglam 0 0.01`; "
    "`python benchmarks/bench_resn.py reference PEER/data/{d} --work WORK`; "
    "`python benchmarks/bench_resn.py ours PEER/data/{d} --work WORK`"
)
_BETA = re.compile(r"^resn-beta(?P<x>.+)$")
_C = re.compile(r"^resn-c(?P<x>.+)$")


# ------------------------------------------------------------------ the files
def read_resn(dataset):
    """``(authors, ours)``: the two sides' records of one data set.

    ``authors``: ``{setting: [record, ...]}``, one record per reference run
    (``reference`` first). ``ours``: ``{loss: {setting: [record, ...]}}``,
    seeds in order. Raises ``SystemExit`` when the files are of different
    splits.
    """
    authors, ours, splits = {}, {}, {}
    for rec in _results.read_results(os.path.join(FOLDER, dataset)):
        name = os.path.basename(rec["_path"])
        split = {k: (rec.get("split") or {}).get(k) for k in SPLIT_KEYS}
        splits.setdefault(repr(sorted(split.items(), key=lambda kv: kv[0])),
                          []).append(name)
        if name.startswith("authors-"):
            authors.setdefault(rec["setting"], []).append(rec)
        elif name.startswith("ours-"):
            loss = rec["config"]["loss"]
            ours.setdefault(loss, {}).setdefault(rec["setting"], []).append(rec)
    if len(splits) > 1:
        groups = "; ".join(", ".join(names) for names in splits.values())
        raise SystemExit(f"{FOLDER}/{dataset}: result files of {len(splits)} different "
                         f"splits ({groups}); one split per table")
    for runs in authors.values():
        runs.sort(key=lambda r: _reference_order(r.get("reference_run", "reference")))
    for settings in ours.values():
        for runs in settings.values():
            runs.sort(key=lambda r: r["seed"])
    return authors, ours


def _reference_order(name):
    """``reference``, ``reference-2``, ``reference-10``: in that order."""
    tail = name.rpartition("-")[2]
    return (0, 0, name) if name == "reference" else (
        1, int(tail) if tail.isdigit() else 0, name)


def _number(pattern, setting):
    m = pattern.match(setting)
    return float(m.group("x")) if m else None


def choose_on_valid(settings, pattern, run_of):
    """The setting whose chosen run (``run_of(runs)``) has the best validation
    NDCG@20, among the settings matching ``pattern``; ties: the smallest
    weight. ``None`` when no such setting has that run. Returns
    ``(chosen, candidates)``, the candidates ``(setting, run or None)`` sorted by
    weight."""
    names = sorted((s for s in settings if pattern.match(s)),
                   key=lambda s: _number(pattern, s))
    candidates = [(s, run_of(settings[s])) for s in names]
    best = None
    for s, run in candidates:
        if run is None:
            continue
        if best is None or run["valid"]["ndcg"] > best[1]["valid"]["ndcg"]:
            best = (s, run)
    return (best[0] if best else None), candidates


def _seed0(runs):
    return next((r for r in runs if r["seed"] == 0), None)


def _first(runs):
    return runs[0] if runs else None


# ------------------------------------------------------------------ the cells
def _pm(values):
    return _results.pm(values, 4)


def _mean(values, digits=1):
    v = [x for x in values if x is not None]
    return f"{np.mean(v):.{digits}f}" if v else "—"


def _minutes(values):
    v = [x for x in values if x is not None]
    return f"{np.mean(v) / 60:.1f}" if v else "—"


def _runs_cell(runs, side):
    if side == "authors":
        names = [r.get("reference_run", "reference") for r in runs]
        return f"{len(runs)} ({', '.join(names)})"
    return f"{len(runs)} (seed{'s' * (len(runs) > 1)} " + ", ".join(
        str(r["seed"]) for r in runs) + ")"


def _row(side, label, setting, runs):
    """A row of part 1 from the runs of one (side, setting)."""
    theirs = "—"
    if side == "authors":
        sel = [r["authors_selection"] for r in runs]
        theirs = (_pm([s["ndcg"] for s in sel]) + " (epoch "
                  + ", ".join(str(s["epoch"]) for s in sel) + ")")
    time_key = "train_s" if side == "authors" else "fit_s"
    cells = [label, setting, _runs_cell(runs, side),
             ", ".join(str(r["selection"]["epoch"]) for r in runs),
             _pm([r["valid"]["ndcg"] for r in runs]),
             _pm([r["test"]["recall"] for r in runs]),
             _pm([r["test"]["ndcg"] for r in runs]),
             _mean([r["erank_item"] for r in runs]),
             _mean([r["erank_user"] for r in runs]),
             _minutes([r.get(time_key) for r in runs]), theirs]
    return "| " + " | ".join(cells) + " |"


def _missing_row(label, setting, why):
    return f"| {label} | {setting} | {why} |" + " |" * 8


def _ours_label(loss):
    return "skcollapse" if loss == LOSS else f"skcollapse ({loss} loss)"


def _c_setting(setting, runs):
    c = runs[0]["config"]["resn_c"]
    weight = runs[0]["config"]["params"].get("regularizer__weight")
    extra = f", weight c / B² = {weight:.3g}" if weight is not None else ""
    return f"ReSN, c = {c:g} (chosen on validation{extra})"


# ------------------------------------------------------------------ the table
def table_resn(dataset="ml-1m"):
    """Markdown: the side-by-side rows, the ReSN weights tried, the comparison."""
    authors, ours = read_resn(dataset)
    where = f"`benchmarks/results/{FOLDER}/{dataset}/`"
    if not authors and not ours:
        return (f"_The side-by-side has not been run yet: no result files under "
                f"{where}. Commands (`PEER`: a checkout of `LIN452/ReSN`): "
                + COMMANDS.format(d=dataset) + "._\n")
    head = ("| side | setting | runs | epoch (validation) | valid NDCG@20 | Recall@20 "
            "| NDCG@20 | item erank | user erank | fit (min) | their script's "
            "figure, epoch chosen on test: NDCG@20 |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    side_a = "authors' code (`LIN452/ReSN`)"

    # the authors' rows: none, then the ReSN setting (chosen on validation
    # when there are several betas)
    beta, beta_candidates = choose_on_valid(authors, _BETA, _first)
    chosen = {"authors": {}, "ours": {}}
    if "none" in authors:
        lines.append(_row("authors", side_a, "none", authors["none"]))
        chosen["authors"]["none"] = authors["none"]
    else:
        lines.append(_missing_row(side_a, "none", "authors' run not scored yet "
                                  "(`authors-none.json` missing)"))
    if beta is not None:
        runs = authors[beta]
        label = f"ReSN, β = {runs[0]['reglam']:g} (`--reglam_list`)"
        if len(beta_candidates) > 1:
            label += ", chosen on validation"
        lines.append(_row("authors", side_a, label, runs))
        chosen["authors"]["resn"] = runs
    else:
        lines.append(_missing_row(side_a, "ReSN", "authors' run not scored yet "
                                  "(`authors-resn-beta*.json` missing)"))

    # our rows: per loss, none, then the ReSN weight chosen on validation
    c_lines = []
    losses = [LOSS, *sorted(set(ours) - {LOSS})]
    for loss in losses:
        label = _ours_label(loss)
        settings = ours.get(loss, {})
        if "none" in settings:
            lines.append(_row("ours", label, "none", settings["none"]))
        else:
            lines.append(_missing_row(label, "none", "skcollapse run not done yet "
                                      f"(`ours-{loss}-none-seed*.json` missing)"))
        c, candidates = choose_on_valid(settings, _C, _seed0)
        if c is not None:
            lines.append(_row("ours", label, _c_setting(c, settings[c]), settings[c]))
        elif candidates:
            lines.append(_missing_row(label, "ReSN", "no seed-0 file to choose c on "
                                      f"(`ours-{loss}-resn-c*-seed0.json` missing)"))
        else:
            lines.append(_missing_row(label, "ReSN", "skcollapse run not done yet "
                                      f"(`ours-{loss}-resn-c*-seed*.json` missing)"))
        if loss == LOSS:
            chosen["ours"] = {k: settings[k] for k in ("none",) if k in settings}
            if c is not None:
                chosen["ours"]["resn"] = settings[c]
        for s, run in candidates:
            runs = settings[s]
            cells = [label, f"{runs[0]['config']['resn_c']:g}",
                     ", ".join(str(r["seed"]) for r in runs)]
            if run is None:
                cells += ["—", "—", "—", "no seed 0"]
            else:
                cells += [f"{run['valid']['ndcg']:.4f}", str(run["selection"]["epoch"]),
                          f"{run['erank_item']:.1f}", "**chosen**" if s == c else ""]
            c_lines.append("| " + " | ".join(cells) + " |")

    out = _split_line(authors, ours) + "\n".join(lines) + "\n"
    if c_lines:
        out += ("\nReSN weights tried on our side (the weight is c / B², B the pairs "
                "of a batch); c is chosen by seed 0's validation NDCG@20, and only "
                "the chosen c's test figures are read:\n\n"
                "| side | c | seeds | valid NDCG@20, seed 0 | epoch, seed 0 "
                "| item erank, seed 0 | |\n|---|---|---|---|---|---|---|\n"
                + "\n".join(c_lines) + "\n")
        from bench_resn import RESN_C

        tried = {runs[0]["config"]["resn_c"] for settings in ours.values()
                 for s, runs in settings.items() if s != "none"}
        pending = [c for c in RESN_C if c not in tried]
        if pending:
            out += ("\n**Not run yet** of the declared grid (`bench_resn.RESN_C`): c = "
                    + ", ".join(f"{c:g}" for c in pending)
                    + "; the choice above is among the values run so far.\n")
    if len(beta_candidates) > 1:
        out += ("\nThe authors' ReSN weights β: " + "; ".join(
            f"{authors[s][0]['reglam']:g}: valid NDCG@20 {run['valid']['ndcg']:.4f}"
            + (" (chosen)" if s == beta else "") for s, run in beta_candidates)
            + " (their first reference run).\n")
    out += "\n" + comparison(chosen["authors"], chosen["ours"]) + _metric_check(authors)
    return out


def _split_line(authors, ours):
    """The split every file was scored on (``read_resn`` checked they agree)."""
    recs = [r for runs in authors.values() for r in runs] + [
        r for settings in ours.values() for runs in settings.values() for r in runs]
    split = recs[0].get("split") or {}
    if not split:
        return ""
    n = {k: f"{v:,}" if isinstance(v, int) else "?" for k, v in split.items()}
    return (f"Split of every file: {split.get('users')}, {n.get('n_users')} users, "
            f"{n.get('n_items')} item ids; {n.get('n_train')} training, "
            f"{n.get('n_valid')} validation (`{split.get('valid')}`), "
            f"{n.get('n_test')} test pairs.\n\n")


def ratio_verdict(ours_value, authors_value, tolerance=TOLERANCE):
    """``(ratio, within)``: ours / authors and whether ``|ratio - 1| <= tolerance``."""
    ratio = ours_value / authors_value
    return ratio, bool(abs(ratio - 1.0) <= tolerance)


def comparison(authors, ours):
    """Part 3: ours / authors, test NDCG@20 and Recall@20, none and ReSN."""
    lines = [("| compared | authors' NDCG@20 | ours | ours / authors | authors' "
              "Recall@20 | ours | ours / authors | within 5% |"),
             "|---|---|---|---|---|---|---|---|"]
    for key, name in (("none", "none vs none"), ("resn", "ReSN vs ReSN")):
        missing = [who for who, side in (("authors' run", authors), ("our run", ours))
                   if key not in side]
        if missing:
            lines.append(f"| {name} | not compared: {' and '.join(missing)} missing "
                         "|" + " |" * 6)
            continue
        cells, verdicts = [name], []
        for metric in ("ndcg", "recall"):
            a = float(np.mean([r["test"][metric] for r in authors[key]]))
            o = float(np.mean([r["test"][metric] for r in ours[key]]))
            ratio, within = ratio_verdict(o, a)
            verdicts.append(within)
            cells += [f"{a:.4f}", f"{o:.4f}", f"{ratio:.3f} ({100 * (ratio - 1):+.1f}%)"]
        cells.append("yes" if all(verdicts) else "no")
        lines.append("| " + " | ".join(cells) + " |")
    return ("Ours against the authors' code (test figures at the epochs chosen on "
            "validation, means over the runs; the issue's criterion: both ratios "
            f"within {100 * TOLERANCE:g}% of 1):\n\n" + "\n".join(lines) + "\n"
            + _effect(authors, ours))


def _effect(authors, ours):
    """Each side's ReSN against its own run without it: NDCG@20 ratios on
    validation and test (whether the penalty helps on that side)."""
    cells = []
    for who, side in (("the authors' code", authors), ("skcollapse", ours)):
        if "none" not in side or "resn" not in side:
            continue
        ratios = []
        for part in ("valid", "test"):
            with_, without = (float(np.mean([r[part]["ndcg"] for r in side[k]]))
                              for k in ("resn", "none"))
            ratios.append(f"{part} {with_ / without:.3f}")
        cells.append(f"{who} {', '.join(ratios)}")
    if not cells:
        return ""
    return ("\nReSN against no regularizer on the same side (NDCG@20, with / "
            "without): " + "; ".join(cells) + ".\n")


def _metric_check(authors):
    """A line: our scorer with their evaluator's mask beside their evaluator, at
    the chosen epochs (both metric codes on the same tables)."""
    diffs = []
    for runs in authors.values():
        for rec in runs:
            epoch = rec["selection"]["epoch"]
            point = next((p for p in rec.get("curve", []) if p["epoch"] == epoch), {})
            mine = (point.get("test_train_filter") or {}).get("ndcg")
            theirs = (point.get("authors_test") or {}).get("ndcg")
            if mine is not None and theirs is not None:
                diffs.append(abs(mine - theirs))
    if not diffs:
        return ""
    return ("\nBoth metric codes on the authors' tables, at the chosen epochs: our "
            "scorer with their evaluator's mask (training pairs only) and their "
            f"evaluator differ by at most {max(diffs):.1e} in NDCG@20 "
            f"({len(diffs)} run{'s' * (len(diffs) != 1)}).\n")
