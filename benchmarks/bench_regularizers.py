"""Do the anti-collapse regularizers help? Accuracy, collapse, coverage and cost.

Two protocols, both printing each regularizer next to ``None`` measured in the
same run:

``--protocol select`` (the evidence table)
    For each data set x model (MF, LightGCN) x regularizer (``None`` and each
    registered built-in), every configuration of a small grid of the
    regularizer's own parameters (the first is its default) is trained with a
    per-user validation hold-out (``PerUserValidSplit(0.1)`` of the training
    pairs) and early stopping on validation NDCG@20 that restores the best
    epoch (skorch's ``EarlyStopping(load_best=True)``). The configuration with
    the best validation NDCG@20 (seed 0) is then trained with every seed and
    reported **once** on the test split: Recall@20, NDCG@20 (mean ± std over
    seeds), item- and user-table effective rank (erank; at most the embedding
    dimension, higher is more spread), catalogue coverage@20 and the training
    cost (median seconds of the training batches per epoch, as a ratio to
    ``None`` in the same run; validation ranking is not counted). ``vs None``
    says whether test NDCG@20 differs from ``None``'s by more than the seed
    noise: ``+``/``-`` when ``|Δmean| > 2·sqrt(s1²/n + s2²/n)``, ``~`` otherwise.
    Non-neural baselines (popularity, ItemKNN, EASE, with their parameter chosen
    on the same validation hold-out) are printed beside them when available.

``--protocol defaults`` ("defaults are not a trap")
    ``MFRecommender()`` / ``LightGCNRecommender()`` at their defaults (fixed
    ``max_epochs``, no validation), with ``regularizer="<name>"`` at that
    regularizer's defaults, on MovieLens-100k per-user 80/20; for each the test
    Recall@20 relative to ``None`` and the change of item/user erank. A
    regularizer passes when it keeps at least 95% of ``None``'s Recall@20 (mean
    over seeds) and raises the item-table erank.

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
        [--regularizers dbn logdet ...] [--seeds 0 1 2] [--grid small|defaults] \\
        [--max-epochs 60] \\
        [--patience 5] [--gowalla-users 5000] [--json results.json]
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

import torch
from skorch.callbacks import Callback, EarlyStopping

from skcollapse import recommenders
from skcollapse.datasets import load_lightgcn
from skcollapse.metrics import (
    effective_rank,
    evaluate_ranking,
    information_abundance,
)
from skcollapse.model_selection import PerUserValidSplit, train_test_split_interactions
from skcollapse.recommenders import LightGCNRecommender, MFRecommender
from skcollapse.regularizers import get_regularizer_names

MODELS = {"mf": ("MF", MFRecommender), "lightgcn": ("LightGCN", LightGCNRecommender)}

# Parameters of each regularizer tried on validation data (regularizer__<name>).
# The first entry is always the regularizer's defaults.
GRIDS = {
    None: [{}],
    "dbn": [{}, {"eps": 0.1, "relative_eps": False}],
    "logdet": [{}, {"weight": 1e-3}],
    "directspec": [{}, {"alpha": 0.5}],
    "directspec+": [{}, {"alpha": 0.5}],
    "directau": [{}, {"weight": 0.05}],
    "uniformity": [{}, {"weight": 0.05}],
    "sv_variance": [{}, {"weight": 0.1}],
    "coding_rate": [{}, {"weight": 1e-2}],
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


def fit_select(cls, reg, params, X_train, X_test, seed, args):
    est = cls(
        embedding_dim=args.embedding_dim,
        max_epochs=args.max_epochs,
        random_state=seed,
        device=args.device,
        train_split=PerUserValidSplit(0.1, random_state=seed),
        callbacks=[
            ("train_time", TrainTime()),
            (
                "early_stopping",
                EarlyStopping(
                    monitor="valid_ndcg",
                    lower_is_better=False,
                    patience=args.patience,
                    load_best=True,
                ),
            ),
        ],
        **reg_kwargs(reg, params),
    )
    start = time.perf_counter()
    est.fit(X_train)
    return summarize(est, X_test, time.perf_counter() - start)


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


# ---------------------------------------------------------------- baselines
def baselines(X_train, X_test):
    """Popularity, ItemKNN and EASE, their parameter chosen on validation."""
    candidates = [
        ("PopularityRecommender", [{}]),
        ("ItemKNNRecommender", [{"n_neighbors": k} for k in (50, 200)]),
        ("EASERecommender", [{"alpha": a} for a in (100.0, 500.0)]),
    ]
    X_fit, X_val = train_test_split_interactions(
        X_train, test_size=0.1, strategy="per_user", random_state=0
    )
    rows = []
    for name, grid in candidates:
        cls = getattr(recommenders, name, None)
        if cls is None:
            continue
        best = None
        for params in grid:
            try:
                est = cls(**params).fit(np.asarray(X_fit))
            except (TypeError, ValueError, MemoryError) as exc:
                print(f"  {name}({params}) skipped: {exc}")
                continue
            val = evaluate_ranking(est, np.asarray(X_val), k=20, metrics=("ndcg",))
            if best is None or val["ndcg"] > best[1]:
                best = (params, val["ndcg"])
        if best is None:
            continue
        start = time.perf_counter()
        est = cls(**best[0]).fit(X_train)
        fit_s = time.perf_counter() - start
        test = evaluate_ranking(
            est, X_test, k=20, metrics=("recall", "ndcg", "coverage")
        )
        rows.append((name.replace("Recommender", ""), best[0], best[1], test, fit_s))
    return rows


# -------------------------------------------------------------------- main
SELECT_HEADER = (
    f"{'regularizer':<12} {'chosen params':<28} {'valN@20':>7} {'R@20':>15} "
    f"{'N@20':>15} {'vs None':>7} {'erank_i':>7} {'erank_u':>7} {'cov@20':>6} "
    f"{'cost':>6} {'epochs':>6}"
)


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
            table = {}
            for reg in regs:
                grid = GRIDS.get(reg, [{}])
                if args.grid == "defaults":
                    grid = grid[:1]
                tried = []
                for params in grid:
                    r = fit_select(
                        cls, reg, params, X_train, X_test, args.seeds[0], args
                    )
                    tried.append((params, r))
                    print(
                        f"  {reg or 'None'} {fmt_params(params)}: valN@20 "
                        f"{r['val_ndcg']:.4f} (epoch {r['best_epoch']}/{r['epochs']})",
                        flush=True,
                    )
                params, first = max(tried, key=lambda t: t[1]["val_ndcg"])
                runs = [first] + [
                    fit_select(cls, reg, params, X_train, X_test, s, args)
                    for s in args.seeds[1:]
                ]
                table[reg] = (params, runs)
                results.append(
                    {
                        "protocol": "select",
                        "dataset": dataset,
                        "model": label,
                        "regularizer": reg or "None",
                        "params": params,
                        "runs": runs,
                    }
                )
            base = table[None][1]
            base_cost = statistics.median(r["train_s"] for r in base)
            print(
                f"\n--- {label} on {dataset}: test metrics of the configuration "
                "chosen on validation (mean±std over seeds)"
            )
            print(SELECT_HEADER)
            for reg, (params, runs) in table.items():

                def get(k, runs=runs):
                    return [r[k] for r in runs]

                cost = statistics.median(get("train_s")) / base_cost
                print(
                    f"{reg or 'None':<12} {fmt_params(params):<28} "
                    f"{statistics.mean(get('val_ndcg')):>7.4f} {pm(get('recall')):>15} "
                    f"{pm(get('ndcg')):>15} "
                    f"{'' if reg is None else versus(get('ndcg'), [r['ndcg'] for r in base]):>7} "
                    f"{statistics.mean(get('erank_item')):>7.1f} "
                    f"{statistics.mean(get('erank_user')):>7.1f} "
                    f"{statistics.mean(get('coverage')):>6.3f} {cost:>5.2f}x "
                    f"{statistics.mean(get('best_epoch')):>6.1f}",
                    flush=True,
                )
            if args.baselines and key == args.models[0]:
                for name, params, val, test, fit_s in baselines(X_train, X_test):
                    print(
                        f"{name:<12} {fmt_params(params):<28} {val:>7.4f} "
                        f"{test['recall']:>15.4f} {test['ndcg']:>15.4f} {'':>7} "
                        f"{'':>7} {'':>7} {test['coverage']:>6.3f}  (fit {fit_s:.1f} s)",
                        flush=True,
                    )
                    results.append(
                        {
                            "protocol": "select",
                            "dataset": dataset,
                            "model": name,
                            "params": params,
                            "val_ndcg": val,
                            "test": test,
                        }
                    )


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
    parser.add_argument(
        "--grid",
        choices=["small", "defaults"],
        default="small",
        help="select: each regularizer's small grid, or its defaults only",
    )
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--gowalla-users", type=int, default=5000)
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
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
