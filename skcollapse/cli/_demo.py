"""``skcollapse demo``: train MF and LightGCN on built-in data, print one table.

By default there is no download: the data come from
:func:`skcollapse.datasets.make_interactions` (planted low-rank preferences and a
long-tailed popularity). ``--dataset ml-100k`` (or another MovieLens release of
:data:`DEMO_DATASETS`) uses :func:`skcollapse.datasets.fetch_movielens` instead,
which downloads and verifies the archive once and reads the cache afterwards.
Either way the interactions are split per user 80/20. Every model of :data:`DEMO_MODELS` is trained once per entry of
:data:`DEMO_REGULARIZERS`; the table reports ranking quality on the held-out
interactions, the collapse metrics of the user and item tables, and fit time,
next to two non-neural baselines (item popularity and EASE), then says in words
what each regularizer changed beyond the noise this run can measure (a paired
test over users for accuracy, a bootstrap over items for erank).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from skcollapse.cli import CLIError
from skcollapse.cli._threads import busy_machine_hint

#: ``(label, estimator class path)`` of the models the demo trains.
DEMO_MODELS = [
    ("MF", "skcollapse.recommenders.MFRecommender"),
    ("LightGCN", "skcollapse.recommenders.LightGCNRecommender"),
]

#: Regularizer settings the demo trains each model with. ``regularizer`` is what
#: the estimators' ``regularizer=`` takes (``None``, a registered name, ...);
#: ``params`` are extra estimator parameters (e.g. ``{"regularizer__weight":
#: 0.1}`` or ``{"loss": "align"}``). Append entries to show more regularizers.
DEMO_REGULARIZERS = [
    {"label": "none", "regularizer": None, "params": {}},
    # two anti-collapse regularizers at their defaults (skcollapse.regularizers,
    # chosen on validation data): a penalty on the shape of the batch
    # covariance, and a whitening layer. The demo's own words say what each
    # changed on this run, beyond its noise or not.
    {"label": "logdet", "regularizer": "logdet", "params": {}},
    {"label": "dbn", "regularizer": "dbn", "params": {}},
]

#: ``--dataset`` choices besides ``"synthetic"``: MovieLens releases, by the
#: variant name :func:`~skcollapse.datasets.fetch_movielens` takes (the larger
#: releases train for minutes to hours on a CPU, so they are left out).
DEMO_DATASETS = {
    "ml-100k": "100k",
    "ml-latest-small": "latest-small",
    "ml-1m": "1m",
}

#: Estimator settings shared by every demo model (sized for < 2 min on 2 cores).
DEMO_SETTINGS = {
    "embedding_dim": 32,
    "batch_size": 1024,
    "max_epochs": 20,
    "lr": 1e-2,
}

#: Collapse metrics of the user and item tables in the table (metric registry).
_TABLE_METRICS = ("effective_rank", "information_abundance")
_TABLES = ("user", "item")


def _metric_column(metric, table):
    """Column header of a table's metric, e.g. ``"erank item"``."""
    from skcollapse.metrics import get_collapse_metric

    return f"{get_collapse_metric(metric).short_label} {table}"


_COLUMNS = [
    "model",
    "regularizer",
    "Recall@20",
    "NDCG@20",
    "coverage@20",
    *(_metric_column(m, t) for m in _TABLE_METRICS for t in _TABLES),
    "fit s",
]


#: Columns printed with their own format: seconds as 0.00 throughout (the
#: default 4-significant-figure format mixed 0.001707 and 7.236e-04).
_FORMATS = {"fit s": "{:.2f}"}


def add_parser(subparsers):
    """Register the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="train MF and LightGCN on built-in data and compare them",
        description=(
            "Train MF and LightGCN (and every regularizer of the demo list) on a "
            "built-in synthetic implicit-feedback set (no download) or on "
            "MovieLens (--dataset ml-100k), then print "
            "Recall@20, NDCG@20, catalogue coverage, effective rank and "
            "information abundance of the user/item embeddings, and fit seconds."
        ),
    )
    parser.add_argument("--device", default="cpu",
                        help="torch device to train and rank on (cpu, cuda)")
    parser.add_argument(
        "--dataset",
        default="synthetic",
        choices=["synthetic", *DEMO_DATASETS],
        help=(
            "interactions to train on: built-in synthetic data (default, no "
            "download) or a MovieLens release, downloaded once into the data home "
            "and checked against its pinned SHA-256"
        ),
    )
    parser.add_argument(
        "--data-home",
        default=None,
        help="folder of the data sets (default: $SKCOLLAPSE_DATA or "
        "~/skcollapse_data). A MovieLens copy is read from DIR/ml-100k/ (the "
        "extracted archive, with u.data) or DIR/movielens/ml-100k/ (the download "
        "cache), likewise ml-1m and ml-latest-small, or from the official zip in "
        "either folder; it is downloaded only when none is there",
    )
    parser.add_argument("--users", type=int, default=None,
                        help="number of users of the synthetic data (default 1000)")
    parser.add_argument("--items", type=int, default=None,
                        help="number of items of the synthetic data (default 600)")
    parser.add_argument("--epochs", type=int, default=DEMO_SETTINGS["max_epochs"],
                        help="training epochs per model")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON instead of a table")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr")
    from skcollapse.cli._report import add_report_argument

    add_report_argument(parser)
    parser.set_defaults(func=run_demo)
    return parser


def _import(path):
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _baseline_rows(train, test, n_users, n_items):
    """Rows of the non-neural baselines: item popularity and EASE (closed form)."""
    from skcollapse.metrics import evaluate_ranking
    from skcollapse.recommenders import EASERecommender, PopularityRecommender

    rows = []
    for label, est in (
        ("Popularity", PopularityRecommender(n_users=n_users, n_items=n_items)),
        ("EASE", EASERecommender(n_users=n_users, n_items=n_items)),
    ):
        t0 = time.perf_counter()
        est.fit(train)
        fit_s = time.perf_counter() - t0
        res = evaluate_ranking(est, test, k=20, metrics=("recall", "ndcg", "coverage"))
        rows.append(
            {
                "model": label,
                "regularizer": "-",
                "Recall@20": res["recall"],
                "NDCG@20": res["ndcg"],
                "coverage@20": res["coverage"],
                **{_metric_column(m, t): None for m in _TABLE_METRICS for t in _TABLES},
                "fit s": fit_s,
            }
        )
    return rows


def erank_change(base_table, table, *, n_boot=200, min_change=1.0, random_state=0):
    """Change of the effective rank from ``base_table`` to ``table`` and whether
    it is beyond the sampling noise of the rows.

    Both tables hold the same items (row ``r`` is the same item in both), so
    the bootstrap resamples items once for both tables (a paired bootstrap).

    Returns
    -------
    diff : float
        ``erank(table) - erank(base_table)``.
    sign : int
        ``+1``/``-1`` when the 95% bootstrap interval of the difference lies
        above/below zero and the change is at least ``min_change`` (one whole
        direction of the space by default: the bootstrap sees the sampling of
        items, not the seed, and two seeds' tables differ by a fraction of a
        direction), ``0`` otherwise.
    """
    from skcollapse.metrics import effective_rank

    A, B = np.asarray(base_table), np.asarray(table)
    diff = effective_rank(B) - effective_rank(A)
    rng = np.random.default_rng(random_state)
    boots = np.empty(n_boot)
    for j in range(n_boot):
        idx = rng.integers(0, A.shape[0], A.shape[0])
        boots[j] = effective_rank(B[idx]) - effective_rank(A[idx])
    lo, hi = np.percentile(boots, [2.5, 97.5])
    sign = 1 if lo > 0 else -1 if hi < 0 else 0
    if abs(diff) < min_change:
        sign = 0
    return float(diff), sign


def ndcg_change(base_per_user, per_user, *, alpha=0.05, min_change=0.01):
    """Relative change of mean NDCG@20 and its sign: ``+1``/``-1`` when a paired
    Wilcoxon test over the held-out users gives p < ``alpha`` *and* the change
    is at least ``min_change`` of the baseline's NDCG@20, ``0`` (within noise)
    otherwise. Returns ``(rel, sign, p)``.

    The size floor is there because one run has no seed noise: two fits from
    the same seed differ user by user so consistently that the paired test
    calls a 0.1% change significant, while seeds alone move NDCG@20 by more
    (standard deviation 0.2-2.2% over three seeds of MF and LightGCN on
    MovieLens-100k, the evidence page).
    """
    from scipy.stats import wilcoxon

    a, b = np.asarray(base_per_user, float), np.asarray(per_user, float)
    rel = (b.mean() - a.mean()) / a.mean() if a.mean() else 0.0
    d = b - a
    p = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    sign = 0 if (p >= alpha or abs(rel) < min_change) else (1 if d.mean() > 0 else -1)
    return float(rel), sign, p


def explain_table(rows, dim, details=None):
    """The demo table in words: what the columns mean, and for each regularized
    row whether it changed accuracy and spread beyond the noise this one run
    can measure.

    Parameters
    ----------
    rows : list of dict
        The demo's rows (``"model"``, ``"regularizer"``, ``"NDCG@20"`` and the
        ``"erank item"`` column).
    dim : int
        The embedding size, the largest erank a table can have.
    details : dict or None, default=None
        ``(model, regularizer) -> {"ndcg": per-user NDCG@20, "item": item
        table}`` of each trained row. Accuracy is compared by a paired
        Wilcoxon test over the held-out users (p < 0.05) and a change of at
        least 1% (:func:`ndcg_change`), spread by a paired
        bootstrap over items of the item table's erank (95% interval, and at
        least one direction: :func:`erank_change`). Without
        them nothing is called a change: one run has no noise estimate.

    Returns
    -------
    str
        Plain-text lines, one per regularized row after a short legend.
    """
    erank = _metric_column("effective_rank", "item")
    lines = [
        "How to read this table: NDCG@20 and Recall@20 are accuracy on the held-out",
        "interactions (higher is better). erank is the effective rank of a table: how",
        f"many directions its rows really use, at most the embedding size ({dim});",
        "higher means less collapse. Below, each regularizer against the same model",
        "alone: a change is named only beyond the noise of this run (accuracy: paired",
        "test over users, p < 0.05, and at least 1% of NDCG@20; erank: at least 1",
        "and beyond a bootstrap over items), else 'within noise'.",
    ]
    details = details or {}
    base = {r["model"]: r for r in rows if r["regularizer"] == "none"}
    for r in rows:
        b = base.get(r["model"])
        if b is None or r is b or r.get(erank) is None:
            continue
        d_ndcg = (r["NDCG@20"] - b["NDCG@20"]) / b["NDCG@20"] if b["NDCG@20"] else 0.0
        d_erank = r[erank] - b[erank]
        got = details.get((r["model"], r["regularizer"]))
        ref = details.get((b["model"], b["regularizer"]))
        acc, spread, p = 0, 0, None
        if got is not None and ref is not None:
            _, acc, p = ndcg_change(ref["ndcg"], got["ndcg"])
            _, spread = erank_change(ref["item"], got["item"])
        if acc < 0:
            verdict = "hurts: lower accuracy"
        elif acc > 0:
            verdict = "helps: higher accuracy" + (
                ", more spread" if spread > 0 else "")
        elif spread > 0:
            verdict = "spreads the table; accuracy within noise"
        elif spread < 0:
            verdict = "less spread; accuracy within noise"
        else:
            verdict = "within noise"
        p_text = "" if p is None else (", p<0.001" if p < 1e-3 else f", p={p:.3f}")
        lines.append(
            f"  {r['model']} + {r['regularizer']}: item erank {b[erank]:.1f} -> "
            f"{r[erank]:.1f} ({d_erank:+.1f}), NDCG@20 {b['NDCG@20']:.3f} -> "
            f"{r['NDCG@20']:.3f} ({100 * d_ndcg:+.1f}%{p_text}): {verdict}."
        )
    lines.append(
        "One seed and one data set; the evidence across seeds and data sets is "
        "benchmarks/bench_regularizers.py (docs: Measured evidence)."
    )
    return "\n".join(lines)


def _demo_data(args, progress):
    """``(train, test, n_users, n_items, description)`` of ``--dataset``."""
    from skcollapse.model_selection import train_test_split_interactions

    if args.dataset == "synthetic":
        from skcollapse.datasets import make_interactions

        n_users = 1000 if args.users is None else args.users
        n_items = 600 if args.items is None else args.items
        if n_users < 1:
            raise CLIError(f"--users must be >= 1, got {n_users}.")
        if n_items < 10:
            raise CLIError(f"--items must be >= 10, got {n_items}.")
        X = make_interactions(n_users, n_items, random_state=args.seed)
        source = f"make_interactions, seed {args.seed}"
    else:
        from skcollapse.datasets import fetch_movielens

        for flag in ("users", "items"):
            if getattr(args, flag) is not None:
                raise CLIError(
                    f"--{flag} sets the size of the synthetic data; it cannot be "
                    f"used with --dataset {args.dataset}."
                )
        variant = DEMO_DATASETS[args.dataset]
        progress(f"loading MovieLens {variant} (downloaded once, then cached) ...")
        try:
            # 0-based codes: the demo fixes n_users/n_items, so that items only
            # in the held-out part still have a row (as on the synthetic data)
            bunch = fetch_movielens(variant, data_home=args.data_home, codes=True)
        except OSError as exc:
            raise CLIError(
                f"--dataset {args.dataset}: could not download or read MovieLens "
                f"{variant}: {exc}"
            ) from exc
        X = np.asarray(bunch.data, dtype=np.int64)
        n_users, n_items = int(bunch.n_users), int(bunch.n_items)
        source = f"MovieLens {variant}, every rating as an interaction"
    train, test = train_test_split_interactions(
        X, test_size=0.2, strategy="per_user", random_state=args.seed
    )
    return train, test, n_users, n_items, source


def run_demo(args):
    """Train the demo models and print the comparison table."""
    from skcollapse.metrics import (
        collapse_metrics,
        evaluate_ranking,
        get_embedding_tables,
    )
    from skcollapse.utils._device import resolve_device

    started = time.perf_counter()
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}.")
    device = resolve_device(args.device, name="--device")

    def progress(message):
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    if device.type == "cpu":
        hint = busy_machine_hint()
        if hint:
            progress(hint)

    train, test, n_users, n_items, source = _demo_data(args, progress)
    progress(
        f"data: {n_users} users, {n_items} items, {train.shape[0]} training "
        f"and {test.shape[0]} held-out interactions ({source})"
    )
    rows = _baseline_rows(train, test, n_users, n_items)
    runs = [(m, r) for r in DEMO_REGULARIZERS for m in DEMO_MODELS]
    models = {}  # row label -> fitted estimator, for --report
    details = {}  # (model, regularizer) -> per-user NDCG and item table
    if args.report:
        from skcollapse.cli._report import check_report_dir

        check_report_dir(args.report)  # fail before training, not after
    for step, ((label, path), reg) in enumerate(runs, start=1):
        cls = _import(path)
        params = {
            **DEMO_SETTINGS,
            "max_epochs": args.epochs,
            "n_users": n_users,
            "n_items": n_items,
            "random_state": args.seed,
            "device": args.device,
            "regularizer": reg["regularizer"],
            **reg.get("params", {}),
        }
        if args.report:  # per-epoch erank/IA for the report's history plot
            from skcollapse.cli._report import report_callbacks

            params["callbacks"] = report_callbacks()
        progress(f"[{step}/{len(runs)}] {label} (regularizer: {reg['label']}) ...")
        est = cls(**params)
        t0 = time.perf_counter()
        est.fit(train)
        fit_s = time.perf_counter() - t0
        models[label if reg["label"] == "none" else f"{label} + {reg['label']}"] = est
        res = evaluate_ranking(est, test, k=20, metrics=("recall", "ndcg", "coverage"))
        emb = get_embedding_tables(est)
        details[(label, reg["label"])] = {
            "ndcg": evaluate_ranking(est, test, k=20, metrics=("ndcg",),
                                     per_user=True)["ndcg"],
            "item": emb["item"],
        }
        spec = collapse_metrics(emb, metrics=list(_TABLE_METRICS))
        rows.append(
            {
                "model": label,
                "regularizer": reg["label"],
                "Recall@20": res["recall"],
                "NDCG@20": res["ndcg"],
                "coverage@20": res["coverage"],
                **{
                    _metric_column(m, t): spec[t][m]
                    for m in _TABLE_METRICS
                    for t in _TABLES
                },
                "fit s": fit_s,
            }
        )
        progress(
            f"[{step}/{len(runs)}] {label} done in {fit_s:.1f} s: "
            f"NDCG@20 {res['ndcg']:.4f}"
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        from skcollapse.cli._report import markdown_table

        print(markdown_table(_COLUMNS, rows, _FORMATS), end="")
        print()
        print(explain_table(rows, DEMO_SETTINGS["embedding_dim"], details))
    if args.report:
        from skcollapse.cli._report import write_demo_report

        write_demo_report(args, rows, _COLUMNS, models, train, data=source)
    took = (f"demo done in {time.perf_counter() - started:.0f} s of wall time "
            f"({len(runs)} fits and 2 baselines)")
    if args.json:  # stdout stays one JSON document
        progress(took)
    else:
        print(took)
    return 0
