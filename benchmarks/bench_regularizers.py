"""Do the anti-collapse regularizers help? Accuracy, collapse, coverage and cost.

Two protocols, both printing each regularizer next to ``None`` measured in the
same run:

``--protocol select`` (the evidence table)
    For each data set x model (MF, LightGCN) x regularizer (``None`` and each
    registered built-in), :class:`~skcollapse.model_selection.HoldoutProtocol`
    chooses the regularizer's main parameter from ``GRIDS`` (fixed before the
    runs) and the epoch on a per-user validation hold-out of the *training*
    pairs (``PerUserValidSplit(0.1)``, the same pairs for every candidate;
    early stopping on validation NDCG@20 restores the best epoch), with the
    first seed. The chosen setting is then trained with every seed and the test
    pairs are ranked once per seed (every pair of the training data filtered).
    Each (data set, model, setting) writes a result file under
    ``benchmarks/results/regularizers/`` (candidates and their validation
    curves, the selection, each seed's test metrics, per-user test metrics,
    erank/IA of the tables, timings, commit and data checksums); the tables
    are made from these files by ``benchmarks/make_tables.py``, with a paired
    test over users beside the seed spread. ``test_legacy_filter`` in the files
    is the figure the ranking-filter bug fixed in December 2026 gave (only the
    training part filtered), kept to measure that bug. Non-neural baselines
    (popularity, ItemKNN, EASE; parameter chosen on the same hold-out, refitted
    on all training pairs) run beside them.

``--protocol defaults`` ("defaults are not a trap")
    ``MFRecommender()`` / ``LightGCNRecommender()`` at their defaults (fixed
    ``max_epochs``, no validation), with ``regularizer="<name>"`` at that
    regularizer's defaults, on MovieLens-100k per-user 80/20; for each the test
    Recall@20 relative to ``None`` and the change of item/user erank. A
    regularizer passes when it keeps at least 95% of ``None``'s Recall@20 (mean
    over seeds) and raises the item-table erank. **A report read on the test
    split; it chooses nothing.** The defaults come from
    ``choose_defaults.py`` (validation figures only); until December 2026 they
    were chosen from this protocol's test figures, which is why its older table
    on the evidence page is labelled as test-read.

``--correlate`` (after runs with ``--json``)
    Kendall's tau between the collapse metrics and *test* NDCG@20 over the
    configurations of earlier runs: an analysis of test figures, labelled as
    such; nothing is chosen from it.

Data
----
* ``ml-100k``: ``ml-100k/u.data``, every rating as an interaction, per-user
  random 80/20 train/test split (seed 0, the same for every seed of the models).
* ``citeulike``: the DirectSpec authors' split (``citeulike/train.csv``,
  ``test.csv``).
* ``gowalla``: the LightGCN split (``gowalla/train.txt``, ``test.txt``). MF runs
  on all of it; LightGCN on a random subset of ``--gowalla-users`` users (all
  their interactions; 0 = all) because full-graph propagation on a shared 2-core
  CPU takes minutes an epoch. The subset is printed with the results.

Usage::

    python benchmarks/bench_regularizers.py ../shared/eval-data --protocol defaults
    python benchmarks/bench_regularizers.py ../shared/eval-data --correlate a.json b.json
    python benchmarks/bench_regularizers.py ../shared/eval-data --protocol select \\
        [--datasets ml-100k citeulike gowalla] [--models mf lightgcn] \\
        [--regularizers dbn logdet ...] [--seeds 0 1 2] [--max-epochs 60] \\
        [--patience 5] [--gowalla-users 5000] [--refit] [--resume]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _results
import torch
from skorch.callbacks import Callback

from skcollapse import recommenders
from skcollapse.datasets import load_lightgcn
from skcollapse.metrics import (
    effective_rank,
    evaluate_ranking,
    information_abundance,
)
from skcollapse.model_selection import HoldoutProtocol, train_test_split_interactions
from skcollapse.recommenders import LightGCNRecommender, MFRecommender
from skcollapse.regularizers import get_regularizer_names

MODELS = {"mf": ("MF", MFRecommender), "lightgcn": ("LightGCN", LightGCNRecommender)}

# The grid each regularizer's main parameter is chosen from, on validation data
# only. Written before any of these runs, as decades (or halvings for
# DirectSpec's alpha and DBN's eps) around the values of the methods' papers;
# the regularizer's other parameters stay at their defaults.
GRIDS = {
    None: [{}],
    "logdet": [{"weight": w} for w in (1e-5, 1e-4, 1e-3, 1e-2)],
    "sv_variance": [{"weight": w} for w in (1e-3, 1e-2, 1e-1, 1.0)],
    "coding_rate": [{"weight": w} for w in (1e-5, 1e-4, 1e-3, 1e-2)],
    "uniformity": [{"weight": w} for w in (1e-3, 1e-2, 1e-1, 1.0)],
    "directau": [{"weight": w} for w in (1e-3, 1e-2, 1e-1, 1.0)],
    "dbn": [{"eps": e} for e in (3.0, 30.0, 300.0)],
    "directspec": [{"alpha": a} for a in (0.25, 0.5, 1.0)],
    "directspec+": [{"alpha": a} for a in (0.25, 0.5, 1.0)],
}

class TrainTime(Callback):
    """Record the seconds spent in training batches each epoch (``train_s``)."""

    def on_epoch_begin(self, net, **kwargs):
        self._total = 0.0

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self._start = time.perf_counter()

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            self._total += time.perf_counter() - self._start

    def on_epoch_end(self, net, **kwargs):
        net.history.record("train_s", self._total)


# ----------------------------------------------------------------------- data
def load_ml100k(data_dir):
    raw = np.loadtxt(
        os.path.join(data_dir, "ml-100k", "u.data"), dtype=np.int64, usecols=(0, 1)
    )
    X_train, X_test = train_test_split_interactions(
        raw, test_size=0.2, strategy="per_user", random_state=0
    )
    return np.asarray(X_train), np.asarray(X_test), "per-user 80/20 (seed 0)"


def load_citeulike(data_dir):
    import pandas as pd

    folder = os.path.join(data_dir, "citeulike")
    train = pd.read_csv(os.path.join(folder, "train.csv")).to_numpy()[:, :2]
    test = pd.read_csv(os.path.join(folder, "test.csv")).to_numpy()[:, :2]
    return train.astype(np.int64), test.astype(np.int64), "DirectSpec authors' split"


def load_gowalla(data_dir, n_keep, seed=0):
    data = load_lightgcn(os.path.join(data_dir, "gowalla"))
    train, test = np.asarray(data.train), np.asarray(data.test)
    if not n_keep or n_keep >= data.n_users:
        return train, test, "LightGCN split, all users"
    rng = np.random.default_rng(seed)
    keep = np.zeros(data.n_users, dtype=bool)
    keep[rng.choice(data.n_users, size=n_keep, replace=False)] = True
    train, test = train[keep[train[:, 0]]], test[keep[test[:, 0]]]
    test = test[np.isin(test[:, 1], train[:, 1])]  # items never trained on
    return (
        train,
        test,
        (
            f"LightGCN split, random {n_keep}/{data.n_users} users (seed {seed}), "
            f"{np.unique(train[:, 1]).size}/{data.n_items} items"
        ),
    )


def load(dataset, data_dir, model, args):
    if dataset == "ml-100k":
        return load_ml100k(data_dir)
    if dataset == "citeulike":
        return load_citeulike(data_dir)
    if dataset == "gowalla":
        return load_gowalla(data_dir, args.gowalla_users if model == "lightgcn" else 0)
    raise SystemExit(f"unknown dataset {dataset!r}")


# ------------------------------------------------------------------- fitting
def reg_kwargs(reg, params):
    if reg is None:
        return {}
    return {"regularizer": reg, **{f"regularizer__{k}": v for k, v in params.items()}}


def summarize(est, X_test, fit_s):
    test = evaluate_ranking(est, X_test, k=20, metrics=("recall", "ndcg", "coverage"))
    emb = est.get_embeddings()
    hist = est.history
    train_s = [float(s) for s in hist[:, "train_s"]] if "train_s" in hist[-1] else []
    valid = [v for v in hist[:, "valid_ndcg"]] if "valid_ndcg" in hist[-1] else []
    return {
        "recall": test["recall"],
        "ndcg": test["ndcg"],
        "coverage": test["coverage"],
        "erank_item": effective_rank(emb["item"]),
        "erank_user": effective_rank(emb["user"]),
        "ia_item": information_abundance(emb["item"]),
        "val_ndcg": max(valid) if valid else float("nan"),
        "best_epoch": int(np.argmax(valid)) + 1 if valid else len(hist),
        "epochs": len(hist),
        "train_s": statistics.median(train_s) if train_s else float("nan"),
        "fit_s": fit_s,
    }


def fit_defaults(cls, reg, X_train, X_test, seed, args):
    est = cls(
        random_state=seed,
        device=args.device,
        callbacks=[("train_time", TrainTime())],
        **reg_kwargs(reg, {}),
    )
    start = time.perf_counter()
    est.fit(X_train)
    return summarize(est, X_test, time.perf_counter() - start)


def mean_std(values):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(
        values
    ) > 1 else 0.0


def versus(a, b):
    """``+``/``-`` when mean(a) - mean(b) exceeds twice its standard error."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    se = math.sqrt(sa**2 / len(a) + sb**2 / len(b))
    if abs(ma - mb) > 2 * se and len(a) > 1 and len(b) > 1:
        return "+" if ma > mb else "-"
    return "~"


def fmt_params(params):
    return (
        ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in params.items()
        )
        or "defaults"
    )


def pm(values, digits=4):
    m, s = mean_std(values)
    return f"{m:.{digits}f}±{s:.{digits}f}"


# ------------------------------------------------------------ select protocol
BASELINES = [
    ("PopularityRecommender", [{}]),
    ("ItemKNNRecommender", [{"n_neighbors": k} for k in (50, 200)]),
    ("EASERecommender", [{"alpha": a} for a in (100.0, 500.0)]),
]


def data_files(dataset, data_dir):
    folder = os.path.join(data_dir, dataset)
    names = {"ml-100k": ["u.data"], "citeulike": ["train.csv", "test.csv"],
             "gowalla": ["train.txt", "test.txt"], "yelp2018": ["train.txt", "test.txt"]}
    return [os.path.join(folder, n) for n in names[dataset]]


def select_one(args, dataset, note, X_train, X_test, label, estimator, grid, setting):
    """One protocol run: choose on validation, test every seed once, save."""
    rel = f"regularizers/{dataset}/{label}-{setting}.json"
    if args.resume and os.path.exists(os.path.join(_results.RESULTS, rel)):
        print(f"  {label} {setting}: done before ({rel}), skipped", flush=True)
        return
    protocol = HoldoutProtocol(
        X_train, X_test, valid_size=0.1, k=20, patience=args.patience,
        refit=args.refit, random_state=0,
    )
    protocol.select(estimator, grid, seed=args.seeds[0])
    for c in protocol.candidates_:
        print(f"  {label} {setting} {fmt_params(c['params'])}: valN@20 "
              f"{c['valid_score']:.4f} (epoch {c['epochs']}), {c['fit_s']:.0f} s",
              flush=True)
    trained = hasattr(estimator, "train_split")
    # the baselines are deterministic: one seed is their result
    seeds = [
        _results.compact_seed_result(
            protocol.test(seed, legacy_filter=trained and not args.refit))
        for seed in (args.seeds if trained else args.seeds[:1])
    ]
    record = {
        "benchmark": "bench_regularizers --protocol select",
        "command": " ".join(sys.argv),
        "dataset": dataset,
        "split": note,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "model": label,
        "setting": setting,
        "estimator": type(estimator).__name__,
        "fixed_params": {k: v for k, v in estimator.get_params(deep=False).items()
                         if k in ("embedding_dim", "max_epochs", "device")},
        "grid": grid,
        "protocol": {"valid_size": 0.1, "k": 20, "monitor": "ndcg",
                     "patience": args.patience, "refit": args.refit,
                     "valid_random_state": 0, "select_seed": args.seeds[0]},
        "candidates": protocol.candidates_,
        "selection": protocol.selection_,
        "seeds": seeds,
        "meta": _results.run_metadata(data_files(dataset, args.data_dir)),
    }
    path = _results.write_result(rel, record)
    ndcg = [r["test"]["ndcg"] for r in seeds]
    print(f"  -> {fmt_params(protocol.selection_['params'])}: test NDCG@20 "
          f"{pm(ndcg)} over seeds {[r['seed'] for r in seeds]}; "
          f"{os.path.relpath(path)}", flush=True)


def run_select(args, regs, results):
    for dataset in args.datasets:
        for key in args.models:
            label, cls = MODELS[key]
            X_train, X_test, note = load(dataset, args.data_dir, key, args)
            print(
                f"\n=== {label} on {dataset} ({note}): {len(X_train)} train / "
                f"{len(X_test)} test pairs; d={args.embedding_dim}, seeds "
                f"{args.seeds}, at most {args.max_epochs} epochs, patience "
                f"{args.patience}; load avg {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            for reg in regs:
                est = cls(
                    embedding_dim=args.embedding_dim, max_epochs=args.max_epochs,
                    device=args.device, callbacks=[("train_time", TrainTime())],
                    **({} if reg is None else {"regularizer": reg}),
                )
                grid = [reg_kwargs(reg, p) for p in GRIDS.get(reg, [{}])]
                if reg is not None:
                    grid = [{k: v for k, v in g.items() if k != "regularizer"}
                            for g in grid]
                select_one(args, dataset, note, X_train, X_test, label, est, grid,
                           reg or "none")
            if args.baselines and key == args.models[0]:
                for name, grid in BASELINES:
                    est = getattr(recommenders, name)()
                    select_one(args, dataset, note, X_train, X_test,
                               name.replace("Recommender", ""), est, grid, "baseline")
    print("\nTables: python benchmarks/make_tables.py (reads benchmarks/results/)")


def run_defaults(args, regs, results):
    X_train, X_test, note = load_ml100k(args.data_dir)
    for key in args.models:
        label, cls = MODELS[key]
        print(
            f"\n=== {label}() at its defaults on ml-100k ({note}), seeds {args.seeds}; "
            f"load avg {os.getloadavg()[0]:.1f}\n"
            f"{'regularizer':<12} {'R@20':>15} {'N@20':>15} {'R/None':>6} "
            f"{'erank_i':>13} {'erank_u':>13} {'cost':>6}  verdict",
            flush=True,
        )
        base = None
        for reg in regs:
            runs = [
                fit_defaults(cls, reg, X_train, X_test, s, args) for s in args.seeds
            ]
            results.append(
                {
                    "protocol": "defaults",
                    "model": label,
                    "regularizer": reg or "None",
                    "runs": runs,
                }
            )
            if base is None:
                base = runs

            def get(k, runs=runs):
                return [r[k] for r in runs]

            def b(k, base=base):
                return statistics.mean(r[k] for r in base)

            ratio = statistics.mean(get("recall")) / b("recall")
            ei, eu = (
                statistics.mean(get("erank_item")),
                statistics.mean(get("erank_user")),
            )
            cost = statistics.median(get("train_s")) / statistics.median(
                r["train_s"] for r in base
            )
            verdict = ""
            if reg is not None:
                verdict = "pass" if ratio >= 0.95 and ei > b("erank_item") else "FAIL"
                if ratio < 0.95:
                    verdict += " (recall)"
                if ei <= b("erank_item"):
                    verdict += " (erank)"
            print(
                f"{reg or 'None':<12} {pm(get('recall')):>15} {pm(get('ndcg')):>15} "
                f"{ratio:>6.3f} {ei:>6.1f} ({ei - b('erank_item'):+5.1f}) "
                f"{eu:>6.1f} ({eu - b('erank_user'):+5.1f}) {cost:>5.2f}x  {verdict}",
                flush=True,
            )


def correlate(paths, n_boot=2000, seed=0):
    """Kendall's tau between collapse metrics and test NDCG@20 over configurations.

    Reads the ``--json`` files of earlier runs; per (protocol, data set, model)
    every configuration (regularizer and parameters, mean over its seeds) is
    one point. The interval is a percentile bootstrap over configurations.
    """
    from scipy.stats import kendalltau

    groups = {}
    for path in paths:
        with open(path) as fh:
            for rec in json.load(fh):
                if "runs" not in rec:
                    continue  # a baseline row: no embedding tables
                key = (rec["protocol"], rec.get("dataset", "ml-100k"), rec["model"])
                runs = rec["runs"]
                point = {
                    m: statistics.mean(r[m] for r in runs)
                    for m in ("ndcg", "erank_item", "erank_user", "ia_item")
                    if all(m in r for r in runs)
                }
                config = f"{rec['regularizer']}:{sorted(rec.get('params', {}).items())}"
                groups.setdefault(key, {})[config] = point  # a rerun replaces
    rng = np.random.default_rng(seed)
    print(
        f"{'protocol':<9} {'data':<9} {'model':<9} {'n':>3} {'metric':<11} "
        f"{'tau':>6} {'95% bootstrap':>17}"
    )
    for (protocol, dataset, model), configs in groups.items():
        points = list(configs.values())
        if len(points) < 5:
            print(
                f"{protocol:<9} {dataset:<9} {model:<9} {len(points):>3} too few "
                "configurations for a rank correlation"
            )
            continue
        ndcg = np.array([p["ndcg"] for p in points])
        for metric in ("erank_item", "erank_user", "ia_item"):
            if not all(metric in p for p in points):
                continue
            x = np.array([p[metric] for p in points])
            tau = kendalltau(x, ndcg).statistic
            boots = []
            for _ in range(n_boot):
                idx = rng.integers(0, len(x), len(x))
                if np.unique(idx).size < 3:
                    continue
                t = kendalltau(x[idx], ndcg[idx]).statistic
                if not math.isnan(t):
                    boots.append(t)
            lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan,) * 2
            print(
                f"{protocol:<9} {dataset:<9} {model:<9} {len(x):>3} {metric:<11} "
                f"{tau:>6.2f}  [{lo:>6.2f}, {hi:>6.2f}]"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder with ml-100k/, citeulike/, gowalla/")
    parser.add_argument("--protocol", choices=["select", "defaults"], default="select")
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"])
    parser.add_argument(
        "--models", nargs="+", default=["mf", "lightgcn"], choices=sorted(MODELS)
    )
    parser.add_argument(
        "--regularizers",
        nargs="*",
        default=None,
        help="registered names (default: every built-in)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--gowalla-users", type=int, default=5000)
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument(
        "--refit", action="store_true",
        help="select: train each seed's final model on all training pairs for the "
        "selected epochs (default: the model of its own validation-best epoch)",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="select: skip settings whose result file exists",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write all results here")
    parser.add_argument(
        "--correlate",
        nargs="+",
        default=None,
        metavar="JSON",
        help="instead of training: Kendall's tau between collapse metrics and test "
        "NDCG@20 over the configurations of earlier --json files",
    )
    args = parser.parse_args()
    if args.correlate:
        correlate(args.correlate)
        return
    torch.set_num_threads(args.threads)
    names = args.regularizers
    if names is None:
        names = [n for n in GRIDS if n is not None and n in get_regularizer_names()]
    regs = [None, *names]
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    results = []
    if args.protocol == "defaults":
        run_defaults(args, regs, results)
    else:
        run_select(args, regs, results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
