"""Build the README's and the docs' result tables from benchmarks/results/.

Every published table lives between two markers in a Markdown file::

    <!-- BEGIN TABLE regularizers-ml-100k -->
    ...generated...
    <!-- END TABLE regularizers-ml-100k -->

and is made here from the committed result files only. ``python
benchmarks/make_tables.py`` rewrites the tables in place; ``--check`` changes
nothing and exits 1 if a committed table differs from what the files give
(``tests/test_result_tables.py`` runs it in CI).

Verdicts: ``+``/``-`` when a setting's test NDCG@20 differs from ``None``'s of
the same model both by a paired Wilcoxon test over users (p < 0.05, each user's
value averaged over seeds) and by more than twice the seeds' standard error,
in the same direction (:func:`skcollapse.model_selection.paired_comparison`);
``~`` otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _results

ROOT = _results.ROOT
TARGETS = ("README.md", os.path.join("docs", "user_guide", "evidence.md"),
           os.path.join("docs", "scaling.md"))
MARK = re.compile(
    r"(<!-- BEGIN TABLE (?P<name>[\w.+-]+) -->\n)(?P<body>.*?)(<!-- END TABLE (?P=name) -->)",
    re.DOTALL,
)
MODEL_ORDER = ("MF", "LightGCN")
REG_ORDER = ("none", "logdet", "sv_variance", "coding_rate", "uniformity", "directau",
             "dbn", "directspec", "directspec+")


pm = _results.pm


def fmt_params(params):
    if not params:
        return "—"
    out = []
    for k, v in params.items():
        k = k.replace("regularizer__", "")
        out.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(out)


def _seeds(rec):
    return [_results.expand_seed_result(s) for s in rec["seeds"]]


def _verdict(rec, base):
    from skcollapse.model_selection import paired_comparison

    a, b = _seeds(rec), _seeds(base)
    if a[0]["per_user"]["users_sha"] != b[0]["per_user"]["users_sha"]:
        raise SystemExit(f"{rec['_path']} and {base['_path']}: different test users")
    cmp = paired_comparison(a, b, metric="ndcg")
    p = cmp["p_value"]
    p_text = "p<0.001" if p < 1e-3 else f"p={p:.3f}"
    return f"{cmp['verdict']} ({cmp['diff']:+.3f}, {p_text})"


def _sort_key(rec):
    model = rec["model"]
    m = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
    s = REG_ORDER.index(rec["setting"]) if rec["setting"] in REG_ORDER else len(REG_ORDER)
    return (m, s, model)


def table_select(dataset):
    """The select-protocol table of one data set (neural models and baselines)."""
    recs = [r for r in _results.read_results(f"regularizers/{dataset}")
            if r["dataset"] == dataset]
    if not recs:
        return "_No result files yet._\n"
    recs.sort(key=_sort_key)
    base = {r["model"]: r for r in recs if r["setting"] == "none"}
    lines = [
        ("| model | regularizer | chosen on validation | valid NDCG@20 | Recall@20 "
         "| NDCG@20 | vs None (NDCG@20) | item erank | user erank | coverage@20 "
         "| epoch | seeds |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        seeds = r["seeds"]
        trained = r["setting"] != "baseline"
        versus = ""
        if trained and r["setting"] != "none" and r["model"] in base:
            versus = _verdict(r, base[r["model"]])
        tables = [s.get("tables") or {} for s in seeds]
        item = [t["item"]["erank"] for t in tables if "item" in t]
        user = [t["user"]["erank"] for t in tables if "user" in t]
        epochs = [s["epochs"] for s in seeds if s.get("epochs")]
        cells = [
            r["model"], r["setting"] if trained else "(baseline)",
            fmt_params(r["selection"]["params"]),
            f"{r['selection']['valid_score']:.4f}",
            pm([s["test"]["recall"] for s in seeds]),
            pm([s["test"]["ndcg"] for s in seeds]),
            versus,
            f"{np.mean(item):.1f}" if item else "—",
            f"{np.mean(user):.1f}" if user else "—",
            f"{np.mean([s['test']['coverage'] for s in seeds]):.3f}",
            f"{np.mean(epochs):.1f}" if epochs else "—",
            str(len(seeds)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_filter_fix(dataset):
    """Test NDCG@20/Recall@20 with the old ranking filter beside the fixed one."""
    recs = [r for r in _results.read_results(f"regularizers/{dataset}")
            if r["setting"] != "baseline"
            and all("test_legacy_filter" in s for s in r["seeds"])]
    if not recs:
        return "_No result files yet._\n"
    recs.sort(key=_sort_key)
    lines = [
        ("| model | regularizer | Recall@20 before | Recall@20 after | NDCG@20 before "
         "| NDCG@20 after | NDCG@20 change |"),
        "|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        s = r["seeds"]
        old_n = np.mean([x["test_legacy_filter"]["ndcg"] for x in s])
        new_n = np.mean([x["test"]["ndcg"] for x in s])
        lines.append(
            f"| {r['model']} | {r['setting']} "
            f"| {np.mean([x['test_legacy_filter']['recall'] for x in s]):.3f} "
            f"| {np.mean([x['test']['recall'] for x in s]):.3f} "
            f"| {old_n:.3f} | {new_n:.3f} | {100 * (new_n / old_n - 1):+.1f}% |"
        )
    return "\n".join(lines) + "\n"


def table_summary(datasets=("ml-100k", "citeulike")):
    """One row per regularizer, one column per (data set, model): the verdict
    against no regularizer, the change of test NDCG@20, the item erank."""
    from skcollapse.model_selection import paired_comparison

    cols, cells, regs = [], {}, []
    for dataset in datasets:
        recs = [r for r in _results.read_results(f"regularizers/{dataset}")
                if r["setting"] != "baseline"]
        base = {r["model"]: r for r in recs if r["setting"] == "none"}
        for r in sorted(recs, key=_sort_key):
            if r["model"] not in base:
                continue
            col = f"{r['model']}, {dataset}"
            if col not in cols:
                cols.append(col)
            if r["setting"] == "none":
                continue
            if r["setting"] not in regs:
                regs.append(r["setting"])
            b = base[r["model"]]
            cmp = paired_comparison(_seeds(r), _seeds(b), metric="ndcg")
            bn = np.mean([s["test"]["ndcg"] for s in b["seeds"]])

            def erank(rec):
                return np.mean([s["tables"]["item"]["erank"] for s in rec["seeds"]])

            word = {"+": "better", "-": "worse", "~": "within noise"}[cmp["verdict"]]
            cells[(r["setting"], col)] = (
                f"{100 * cmp['diff'] / bn:+.1f}% ({word}); erank "
                f"{erank(b):.0f} → {erank(r):.0f}"
            )
    if not cells:
        return "_No result files yet._\n"
    regs.sort(key=lambda x: REG_ORDER.index(x) if x in REG_ORDER else len(REG_ORDER))
    lines = ["| regularizer | " + " | ".join(cols) + " |",
             "|---|" + "---|" * len(cols)]
    for reg in regs:
        lines.append(f"| `{reg}` | " + " | ".join(
            cells.get((reg, c), "not run yet") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def table_two_tower(dataset="ml-100k"):
    """Two-tower rows under the protocol, each against MF (paired test)."""
    recs = _results.read_results(f"two_tower/{dataset}")
    if not recs:
        return "_No result files yet._\n"
    order = {"a": 0, "b": 1, "c": 2, "d": 3, "mf": 4}
    recs.sort(key=lambda r: order.get(os.path.basename(r["_path"])[:-5], 9))
    mf = next((r for r in recs if r["_path"].endswith("/mf.json")), None)
    lines = [
        ("| row | chosen on validation | valid NDCG@20 | Recall@20 | NDCG@20 "
         "| vs MF (NDCG@20) | erank user tower | erank item tower | epoch | seeds |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        seeds = r["seeds"]
        versus = "" if (mf is None or r is mf) else _verdict(r, mf)
        tables = [s.get("tables") or {} for s in seeds]
        cells = [
            r["row"], fmt_params(r["selection"]["params"]),
            f"{r['selection']['valid_score']:.4f}",
            pm([s["test"]["recall"] for s in seeds]),
            pm([s["test"]["ndcg"] for s in seeds]), versus,
            f"{np.mean([t['user']['erank'] for t in tables]):.1f}",
            f"{np.mean([t['item']['erank'] for t in tables]):.1f}",
            f"{np.mean([s['epochs'] for s in seeds]):.1f}", str(len(seeds)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_defaults():
    """Each regularizer's default, chosen by choose_defaults.py on validation."""

    rec = _results.read_result("defaults.json")
    if rec is None:
        return "_No result files yet._\n"
    cells = rec["tuning_cells"]
    lines = [
        "| regularizer | value | " + " | ".join(f"valid NDCG@20 vs None, {c}" for c in cells)
        + " | score | item erank gain | chosen |",
        "|---|---|" + "---|" * len(cells) + "---|---|---|",
    ]
    for reg, r in rec["regularizers"].items():
        for cand in r["candidates"]:
            rel = cand["relative_valid_ndcg"]
            chosen = cand["params"] == r["chosen"]
            lines.append(
                f"| {reg} | {fmt_params(cand['params'])} | "
                + " | ".join(f"{rel[c]:.3f}" if c in rel else "—" for c in cells)
                + f" | {cand['score']:.3f} | {cand['erank_gain']:+.1f} | "
                + ("**chosen**" if chosen else "") + " |"
            )
    return "\n".join(lines) + "\n"


def table_scaling_prereg():
    try:
        from tables_scaling import table_scaling_prereg as make
    except ImportError:
        return "_No result files yet._\n"
    return make()


def table_depth(dataset):
    from plot_depth import table_depth as make

    return make(dataset)


LEADERBOARD_DATASETS = ("gowalla", "yelp2018", "citeulike")


def _leaderboard_groups():
    """``{(dataset, label): [seed record, ...]}`` of the leaderboard seed files
    (grid files and smoke runs left out), seeds in order."""
    groups = {}
    for rec in _results.read_results("leaderboard"):
        if "seeds" not in rec or rec.get("smoke"):
            continue
        groups.setdefault((rec["dataset"], rec["label"]), []).append(rec)
    for recs in groups.values():
        recs.sort(key=lambda r: r["seed"])
    return groups


def _leaderboard_order(label):
    from leaderboard import RECIPES

    recipe, _, reg = label.partition("+")
    reg = reg or "none"
    refit = recipe.endswith("-refit")
    recipe = recipe.removesuffix("-refit")
    names = list(RECIPES)
    at = names.index(recipe) if recipe in names else len(names)
    return (at, refit, REG_ORDER.index(reg) if reg in REG_ORDER else len(REG_ORDER),
            label)


def _merged(recs):
    """The seed files of one setting as one record (for the paired test)."""
    return {"seeds": [s for r in recs for s in r["seeds"]], "_path": recs[0]["_path"]}


def table_leaderboard():
    """Validation-selected test results of benchmarks/leaderboard.py, mean ± std
    over the seed files of each (data set, recipe), beside the BARS reference
    figures (typed from their source and labelled as such)."""
    from leaderboard import BARS, BARS_SOURCE

    groups = _leaderboard_groups()
    head = ("| data set | row | source | Recall@20 | NDCG@20 | vs recipe without "
            "regularizer (NDCG@20) | item erank | user erank | Recall@20 head "
            "/ torso / tail | coverage@20 | chosen on validation | epoch | fit "
            "(min) | seeds |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for dataset in LEADERBOARD_DATASETS:
        labels = sorted((lb for ds, lb in groups if ds == dataset),
                        key=_leaderboard_order)
        for label in labels:
            recs = groups[(dataset, label)]
            seeds = [s for r in recs for s in r["seeds"]]
            versus = ""
            base = groups.get((dataset, label.partition("+")[0]))
            if "+" in label and base is not None:
                versus = _verdict(_merged(recs), _merged(base))
            tables = [s.get("tables") or {} for s in seeds]
            item = [t["item"]["erank"] for t in tables if "item" in t]
            user = [t["user"]["erank"] for t in tables if "user" in t]
            buckets = []
            for name in ("head", "torso", "tail"):
                vals = [s["extra"]["bucket_recall"][name]["recall"] for s in seeds
                        if s.get("extra") and s["extra"]["bucket_recall"][name]
                        ["recall"] is not None]
                buckets.append(f"{np.mean(vals):.3f}" if vals else "—")
            settings = {json_key(r["selection"]["params"]) for r in recs}
            chosen = (fmt_params(recs[0]["selection"]["params"]) if len(settings) == 1
                      else "differs by seed")
            epochs = [s["epochs"] for s in seeds if s.get("epochs")]
            # a refit trains the chosen epochs, but they were chosen within a
            # validation run that the time budget may have cut short
            stopped = any(s.get("stopped_by_time") for s in seeds) or any(
                c.get("stopped_by_time") for r in recs for c in r.get("candidates", [])
                if c.get("params") == r["selection"]["params"])
            epoch = f"{np.mean(epochs):.1f}" if epochs else "—"
            if stopped:
                epoch += " (time budget)"
            cells = [
                dataset, f"`{label}`", "this page's protocol",
                pm([s["test"]["recall"] for s in seeds], 4),
                pm([s["test"]["ndcg"] for s in seeds], 4),
                versus,
                f"{np.mean(item):.1f}" if item else "—",
                f"{np.mean(user):.1f}" if user else "—",
                " / ".join(buckets),
                f"{np.mean([s['test']['coverage'] for s in seeds]):.3f}",
                chosen, epoch,
                f"{np.mean([s['fit_s'] + (s.get('select_fit_s') or 0) for s in seeds]) / 60:.1f}",
                ", ".join(str(s["seed"]) for s in seeds),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        for name, recall, ndcg in BARS.get(dataset, []):
            lines.append(
                f"| {dataset} | {name} | reference (BARS) | {recall:.4f} | "
                f"{ndcg:.4f} |  | — | — | — | — | — | — | — | — |"
            )
    note = (f"\nReference rows: {BARS_SOURCE}; published runs, most read at the "
            "best *test* epoch, not under this protocol. `-refit` rows: the "
            "seed's final model trained again on all of train.txt for the epochs "
            "its validation run chose (their fit time is the two fits'). Rows "
            "of `ease`, `itemknn` and `popularity`: the fit time is the final "
            "fit's on all of train.txt (each candidate's fit on the validation "
            "carve is in the result file).\n")
    if not groups:
        return ("_No leaderboard result files yet: the rows below are the "
                "reference figures only._\n\n" + "\n".join(lines) + "\n" + note)
    return "\n".join(lines) + "\n" + note


SPEED_ORDER = {"mf": ("implicit", "lean", "skcollapse"),
               "lightgcn": ("recbole", "lean", "skcollapse")}
SPEED_NAMES = {"implicit": "implicit BPR", "lean": "lean PyTorch loop",
               "skcollapse": "skcollapse", "recbole": "RecBole"}


def table_speed():
    """Seconds per epoch of bench_speed.py's result files, each ratio against
    the baseline timed in the same run, with issue 27's targets."""
    recs = _results.read_results("speed")
    if not recs:
        return "_No result files yet._\n"
    lines = [("| part | data set | implementation | s/epoch | CPU s/epoch | ratio | "
              "target | verdict | threads | load before | commit |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {"mf": 0, "regularizers": 1, "lightgcn": 2}
    for rec in sorted(recs, key=lambda r: (order.get(r["part"], 9), r["dataset"])):
        part, rows = rec["part"], rec["rows"]
        ratios, targets = rec.get("ratios", {}), rec.get("targets", {})
        cfg = rec["config"]
        if part == "regularizers":
            names = ["None", *sorted(k for k in rows if k != "None")]
        else:
            names = [k for k in SPEED_ORDER.get(part, ()) if k in rows]
            names += sorted(k for k in rows if k not in names)
        for name in names:
            row = rows[name]
            if part == "regularizers":
                label = f"`{name}`" if name != "None" else "None"
                ratio = ratios.get(name)
                ratio_s = f"{ratio:.2f}x None" if ratio is not None else "—"
                target = targets.get(name)
            elif name == "skcollapse":
                label = SPEED_NAMES[name]
                ratio_s = " / ".join(f"{ratios[k]:.2f}x {SPEED_NAMES[k]}"
                                     for k in SPEED_ORDER[part] if k in ratios)
                ratio = None
                target = None
            else:
                label = SPEED_NAMES.get(name, name)
                ratio = ratios.get(name)
                ratio_s = (f"skcollapse = {ratio:.2f}x this"
                           if ratio is not None else "—")
                target = targets.get(name)
            if row.get("median_s") is None:
                lines.append(f"| {part} | {rec['dataset']} | {label} | — | — | — | — | "
                             f"{row.get('note') or 'not run'} | {cfg['threads']} | "
                             f"{cfg['load_before']:.1f} | {rec['meta']['commit'][:7]} |")
                continue
            verdict = ""
            target_s = "—"
            if target is not None and ratio is not None:
                target_s = f"<= {target:g}x"
                verdict = "meets" if ratio <= target else "misses"
            lines.append(
                f"| {part} | {rec['dataset']} | {label} | {row['median_s']:.3f} | "
                f"{row['median_cpu_s']:.3f} | {ratio_s} | {target_s} | {verdict} | "
                f"{cfg['threads']} | {cfg['load_before']:.1f} | "
                f"{rec['meta']['commit'][:7]}{' (dirty)' if rec['meta'].get('dirty') else ''} |"
            )
    return "\n".join(lines) + "\n"


def json_key(params):
    import json

    return json.dumps(params, sort_keys=True, default=str)


def _codebooks(name):
    import tables_codebooks

    return getattr(tables_codebooks, name)()


def _deepfm(name):
    import tables_deepfm

    return getattr(tables_deepfm, name)()


def _resn(dataset):
    import tables_resn

    return tables_resn.table_resn(dataset)


THREAD_SETTINGS = {"default": "torch's default (threads spin while they wait)",
                   "passive": "`OMP_WAIT_POLICY=PASSIVE`",
                   "1-thread": "`OMP_NUM_THREADS=1`"}


def table_threads():
    """The demo's wall time per OpenMP setting, idle and beside busy cores
    (bench_threads.py)."""
    rec = _results.read_result(os.path.join("threads", "demo.json"))
    if rec is None:
        return "_No result file yet (`python benchmarks/bench_threads.py`)._\n"
    busy = rec["config"]["busy"]
    head = (f"| setting | idle cores (s) | {busy} of {rec['config']['cpus']} cores "
            "busy (s) | busy / idle (medians) |")
    lines = [head, "|---|---|---|---|"]
    settings = [k for k in THREAD_SETTINGS if k in rec["config"]["settings"]]
    for setting in settings:
        cells, medians = [], []
        for condition in ("idle", "busy"):
            walls = [r["wall_s"] for r in rec["runs"]
                     if r["setting"] == setting and r["condition"] == condition]
            cells.append(", ".join(f"{w:.1f}" for w in walls) if walls else "—")
            medians.append(float(np.median(walls)) if walls else None)
        ratio = (f"{medians[1] / medians[0]:.1f}x" if None not in medians else "—")
        lines.append(f"| {THREAD_SETTINGS[setting]} | {cells[0]} | {cells[1]} | "
                     f"{ratio} |")
    meta = rec["meta"]
    return ("\n".join(lines) + f"\n\nWall seconds of `python -m skcollapse demo "
            f"--quiet` in a fresh process, {rec['config']['repeats']} runs each, "
            f"settings interleaved; busy: {busy} process(es) each holding one core "
            f"(`while True: pass`). Commit {meta['commit'][:7]}, {meta['date'][:10]}; "
            f"command `{rec['command']}`.\n")


TABLES = {
    "summary": table_summary,
    "defaults": table_defaults,
    "two-tower-ml-100k": table_two_tower,
    "scaling-prereg": table_scaling_prereg,
    "deepfm": lambda: _deepfm("table_deepfm"),
    "deepfm-field-ia": lambda: _deepfm("table_deepfm_field_ia"),
    "regularizers-ml-100k": lambda: table_select("ml-100k"),
    "regularizers-citeulike": lambda: table_select("citeulike"),
    "filter-fix-ml-100k": lambda: table_filter_fix("ml-100k"),
    "depth-ml-100k": lambda: table_depth("ml-100k"),
    "depth-citeulike": lambda: table_depth("citeulike"),
    "resn-ml-1m": lambda: _resn("ml-1m"),
    "leaderboard": table_leaderboard,
    "speed": table_speed,
    "threads": table_threads,
    "codebooks": lambda: _codebooks("table_codebooks"),
    "codebooks-planted": lambda: _codebooks("table_codebooks_planted"),
    "codebooks-erank": lambda: _codebooks("table_codebooks_erank"),
    "codebooks-peer": lambda: _codebooks("table_codebooks_peer"),
    "codebooks-validation": lambda: _codebooks("table_codebooks_validation"),
    "codebook-defaults": lambda: _codebooks("table_codebook_defaults"),
}


def render(text, tables=None):
    """``text`` with every marked table replaced by its generated body."""
    tables = TABLES if tables is None else tables
    cache = {}

    def body(match):
        name = match.group("name")
        if name not in tables:
            raise SystemExit(f"no generator for table {name!r}")
        if name not in cache:
            cache[name] = tables[name]()
        return match.group(1) + cache[name] + match.group(4)

    return MARK.sub(body, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    stale = []
    for rel in TARGETS:
        path = os.path.join(ROOT, rel)
        with open(path) as fh:
            text = fh.read()
        new = render(text)
        if new != text:
            stale.append(rel)
            if not args.check:
                with open(path, "w") as fh:
                    fh.write(new)
    if args.check and stale:
        print("out of date (run python benchmarks/make_tables.py): " + ", ".join(stale))
        return 1
    print(("updated: " + ", ".join(stale)) if stale else "tables up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
