"""Anti-collapse regularizers on real data: accuracy, collapse, coverage and cost.

For MF and LightGCN (``skcollapse.recommenders``) and every regularizer (``None``
and each registered built-in), a small grid of the regularizer's own parameters
is trained; the configuration with the best validation NDCG@20 is reported on
the test split with Recall@20, NDCG@20, item/user effective rank (erank) and
information abundance (IA), catalogue coverage@20 and the median seconds per
training epoch (measured in the same run as the ``None`` baseline; the ratio to
it is printed). Then an ``embedding_dim`` sweep (default 32 -> 256) with and
without the best regularizer of each model.

Protocol
--------
* MovieLens-100k: ``ml-100k/u.data``, all ratings as implicit interactions,
  per-user random 80/20 train/test split (``train_test_split_interactions``,
  ``strategy="per_user"``).
* Gowalla: the LightGCN split (``gowalla/train.txt``, ``test.txt``). It is big
  for a shared 2-core CPU, so ``--gowalla-users`` keeps a random subset of
  users (all their interactions; items re-indexed over the kept users) and
  ``--gowalla-epochs`` caps training. Both are printed with the results.
* Validation: 1/8 of each user's training interactions (10% of the data) is
  held out for model selection; models are trained on the remaining 70% and
  evaluated on validation and test without refitting (the same for every
  configuration; validation items are not filtered from the test ranking).

Usage::

    python benchmarks/bench_regularizers.py ../shared/eval-data \\
        [--datasets ml-100k gowalla] [--models mf lightgcn] \\
        [--regularizers logdet dbn ...] [--grid small|single] [--max-epochs 20] \\
        [--dims 32 64 128 256] [--gowalla-users 3000] [--gowalla-epochs 5] \\
        [--threads 1] [--device cpu] [--json results.json]
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from skcollapse.datasets import load_lightgcn
from skcollapse.metrics import collapse_metrics, evaluate_ranking
from skcollapse.model_selection import train_test_split_interactions
from skcollapse.recommenders import LightGCNRecommender, MFRecommender

MODELS = {"mf": ("MF", MFRecommender), "lightgcn": ("LightGCN", LightGCNRecommender)}

# Small grids of each regularizer's own parameters (regularizer__<name>). The
# first entry is the library default (or the setting closest to it).
GRIDS = {
    None: [{}],
    "logdet": [{"weight": 1e-3}, {"weight": 1e-2}],
    "dbn": [{"eps": 0.1}, {"eps": 0.01}],
    "directspec": [
        {"alpha": 0.5, "tau": 3.0, "block_size": 256},
        {"alpha": 1.0, "tau": 3.0, "block_size": 256},
    ],
    "directspec+": [
        {"alpha": 0.5, "tau0": 2.5, "tau1": 3.0, "block_size": 256},
        {"alpha": 1.0, "tau0": 2.5, "tau1": 3.0, "block_size": 256},
    ],
    "directau": [{"weight": 0.1}, {"weight": 0.01}],
    "uniformity": [{"weight": 0.01}, {"weight": 0.1}],
    "sv_variance": [{"weight": 1e-2}, {"weight": 1e-3}],
    "coding_rate": [{"weight": 1e-3}, {"weight": 1e-4}],
}


def load_ml100k(data_dir, seed):
    path = os.path.join(data_dir, "ml-100k", "u.data")
    raw = np.loadtxt(path, dtype=np.int64, usecols=(0, 1))
    X = raw - 1  # ids are 1-based in u.data
    n_users, n_items = int(X[:, 0].max()) + 1, int(X[:, 1].max()) + 1
    X_train, X_test = train_test_split_interactions(
        X, test_size=0.2, strategy="per_user", random_state=seed
    )
    return np.asarray(X_train), np.asarray(X_test), n_users, n_items, ""


def load_gowalla(data_dir, seed, n_keep):
    data = load_lightgcn(os.path.join(data_dir, "gowalla"))
    train, test = np.asarray(data.train), np.asarray(data.test)
    note = f"all {data.n_users} users"
    if n_keep and n_keep < data.n_users:
        rng = np.random.default_rng(seed)
        keep = np.zeros(data.n_users, dtype=bool)
        keep[rng.choice(data.n_users, size=n_keep, replace=False)] = True
        train = train[keep[train[:, 0]]]
        test = test[keep[test[:, 0]]]
        user_map = np.full(data.n_users, -1)
        user_map[np.flatnonzero(keep)] = np.arange(n_keep)
        items = np.unique(train[:, 1])
        item_map = np.full(data.n_items, -1)
        item_map[items] = np.arange(items.size)
        test = test[item_map[test[:, 1]] >= 0]  # items never trained on
        train = np.column_stack([user_map[train[:, 0]], item_map[train[:, 1]]])
        test = np.column_stack([user_map[test[:, 0]], item_map[test[:, 1]]])
        note = (
            f"random subset of {n_keep}/{data.n_users} users (seed {seed}), "
            f"{items.size}/{data.n_items} items"
        )
    n_users = int(max(train[:, 0].max(), test[:, 0].max())) + 1
    n_items = int(train[:, 1].max()) + 1
    return train, test, n_users, n_items, note


def fit_and_score(cls, base, reg, params, X_fit, X_val, X_test):
    kwargs = dict(base)
    if reg is not None:
        kwargs["regularizer"] = reg
        kwargs.update({f"regularizer__{k}": v for k, v in params.items()})
    est = cls(**kwargs)
    start = time.perf_counter()
    est.fit(X_fit)
    fit_s = time.perf_counter() - start
    val = evaluate_ranking(est, X_val, k=20, metrics=("ndcg",))
    test = evaluate_ranking(est, X_test, k=20, metrics=("recall", "ndcg", "coverage"))
    spec = collapse_metrics(
        est.get_embeddings(), metrics=["effective_rank", "information_abundance"]
    )
    durs = [float(d) for d in est.history[:, "dur"]]
    return {
        "regularizer": reg or "None",
        "params": params,
        "val_ndcg": val["ndcg"],
        "recall": test["recall"],
        "ndcg": test["ndcg"],
        "coverage": test["coverage"],
        "erank_item": spec["item"]["effective_rank"],
        "erank_user": spec["user"]["effective_rank"],
        "ia_item": spec["item"]["information_abundance"],
        "ia_user": spec["user"]["information_abundance"],
        "s_per_epoch": statistics.median(durs),
        "fit_s": fit_s,
    }


def fmt_params(params):
    return (
        ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in params.items()
        )
        or "-"
    )


HEADER = (
    f"{'regularizer':<12} {'params':<36} {'valN@20':>7} {'R@20':>7} {'N@20':>7} "
    f"{'erank_i':>7} {'erank_u':>7} {'IA_i':>6} {'IA_u':>6} {'cov@20':>6} "
    f"{'s/ep':>6} {'x None':>6}"
)


def row(r, base_s):
    return (
        f"{r['regularizer']:<12} {fmt_params(r['params']):<36} {r['val_ndcg']:>7.4f} "
        f"{r['recall']:>7.4f} {r['ndcg']:>7.4f} {r['erank_item']:>7.1f} "
        f"{r['erank_user']:>7.1f} {r['ia_item']:>6.1f} {r['ia_user']:>6.1f} "
        f"{r['coverage']:>6.3f} {r['s_per_epoch']:>6.2f} "
        f"{r['s_per_epoch'] / base_s:>6.2f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder with ml-100k/ and gowalla/")
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "gowalla"])
    parser.add_argument("--models", nargs="+", default=["mf", "lightgcn"])
    parser.add_argument(
        "--regularizers",
        nargs="*",
        default=[k for k in GRIDS if k is not None],
        help="registered names to compare with None",
    )
    parser.add_argument("--grid", choices=["small", "single"], default="small")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--dims", type=int, nargs="*", default=[32, 64, 128, 256])
    parser.add_argument("--gowalla-users", type=int, default=3000)
    parser.add_argument("--gowalla-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--sweep",
        default=None,
        help="regularizer of the dim sweep as name[:key=value,...] (default: the "
        "best of this run by validation NDCG@20)",
    )
    parser.add_argument("--json", default=None, help="write all results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = []
    for dataset in args.datasets:
        if dataset == "ml-100k":
            X_train, X_test, n_users, n_items, note = load_ml100k(
                args.data_dir, args.seed
            )
            epochs = args.max_epochs
        elif dataset == "gowalla":
            X_train, X_test, n_users, n_items, note = load_gowalla(
                args.data_dir, args.seed, args.gowalla_users
            )
            epochs = min(args.max_epochs, args.gowalla_epochs)
        else:
            raise SystemExit(f"unknown dataset {dataset!r}")
        X_fit, X_val = train_test_split_interactions(
            X_train, test_size=0.125, strategy="per_user", random_state=args.seed
        )
        X_fit, X_val = np.asarray(X_fit), np.asarray(X_val)
        print(
            f"\n=== {dataset}: {n_users} users, {n_items} items, {len(X_fit)} fit / "
            f"{len(X_val)} val / {len(X_test)} test pairs; {note}; {epochs} epochs, "
            f"d={args.embedding_dim}, grid={args.grid}, {args.threads} thread(s), "
            f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
            flush=True,
        )
        for key in args.models:
            label, cls = MODELS[key]
            base = {
                "n_users": n_users,
                "n_items": n_items,
                "embedding_dim": args.embedding_dim,
                "max_epochs": epochs,
                "random_state": args.seed,
                "device": args.device,
            }
            print(f"\n--- {label}: every configuration (test metrics)\n{HEADER}")
            best = {}
            base_s = None
            for reg in [None, *args.regularizers]:
                grid = GRIDS.get(reg, [{}])
                if args.grid == "single":
                    grid = grid[:1]
                for params in grid:
                    r = fit_and_score(cls, base, reg, params, X_fit, X_val, X_test)
                    r.update(dataset=dataset, model=label, kind="grid")
                    results.append(r)
                    base_s = base_s or r["s_per_epoch"]
                    print(row(r, base_s), flush=True)
                    name = r["regularizer"]
                    if name not in best or r["val_ndcg"] > best[name]["val_ndcg"]:
                        best[name] = r
            print(
                f"\n--- {label} on {dataset}: best of each grid by validation NDCG@20"
            )
            print(HEADER)
            for r in best.values():
                print(row(r, base_s))
            if args.sweep:
                name, _, spec = args.sweep.partition(":")
                params = {}
                for item in filter(None, spec.split(",")):
                    key, _, value = item.partition("=")
                    params[key] = json.loads(value)
                best[f"sweep:{name}"] = {
                    "regularizer": name,
                    "params": params,
                    "val_ndcg": np.inf,
                }
            ranked = sorted(
                (r for n, r in best.items() if n != "None"),
                key=lambda r: r["val_ndcg"],
                reverse=True,
            )
            if not args.dims or not ranked:
                continue
            top = ranked[0]
            print(
                f"\n--- {label} on {dataset}: embedding_dim sweep, None vs "
                f"{top['regularizer']} ({fmt_params(top['params'])})"
            )
            print(f"{'dim':>4} " + HEADER)
            for dim in args.dims:
                for reg, params in ((None, {}), (top["regularizer"], top["params"])):
                    r = fit_and_score(
                        cls,
                        {**base, "embedding_dim": dim},
                        reg,
                        params,
                        X_fit,
                        X_val,
                        X_test,
                    )
                    r.update(dataset=dataset, model=label, kind="dim", dim=dim)
                    results.append(r)
                    print(f"{dim:>4} " + row(r, base_s), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
