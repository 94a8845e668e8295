"""Reproduce MovieLens-100k top-20 ranking: popularity, MF and LightGCN (+ regularizers).

Protocol: all 100,000 ratings as implicit interactions, per-user random 80/20
split (``PerUserShuffleSplit``, one split per seed), every item not seen in
training ranked for every test user, Recall@20 / NDCG@20 (LightGCN convention,
``skcollapse.metrics``). Medians over seeds.

There is no published number for this exact split; the references printed are
the ones recorded in issue 3 for the same protocol on this machine: a
popularity ranking (about 0.17 Recall@20) and a lean hand-written BPR-MF loop
(0.254 Recall@20).

Usage::

    python benchmarks/bench_reproduce_ml100k.py ../shared/eval-data \
        [--seeds 0 1 2] [--regularizers logdet directspec:1.0] [--device cpu]

The data folder may hold ``ml-100k/`` (extracted) or nothing: then the official
archive is fetched with ``fetch_movielens("100k")`` (needs internet once).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skcollapse.datasets import fetch_movielens, load_movielens
from skcollapse.metrics import effective_rank, evaluate_ranking
from skcollapse.model_selection import train_test_split_interactions

REFERENCES = {
    "Popularity": ("issue 3, same protocol", 0.17),
    "MF": ("issue 3, lean BPR-MF loop", 0.254),
}
METRICS = ("recall", "ndcg", "coverage", "gini")


class PopularityRanker:
    """Rank unseen items by training popularity (the baseline to beat)."""

    def __init__(self, n_users, n_items):
        self.n_users = n_users
        self.n_items = n_items

    def fit(self, X):
        X = np.asarray(X)
        self.n_users_, self.n_items_ = self.n_users, self.n_items
        self.item_popularity_ = np.bincount(X[:, 1], minlength=self.n_items_)
        self._seen = sp.csr_matrix(
            (np.ones(X.shape[0]), (X[:, 0], X[:, 1])),
            shape=(self.n_users_, self.n_items_),
        )
        return self

    def recommend(self, users, n=10, filter_already_liked_items=True):
        users = np.asarray(users)
        scores = np.tile(self.item_popularity_.astype(float), (users.shape[0], 1))
        if filter_already_liked_items:
            scores[self._seen[users].nonzero()] = -np.inf
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        return ids, np.take_along_axis(scores, ids, axis=1)


def load(data_dir):
    folder = os.path.join(data_dir, "ml-100k") if data_dir else None
    if folder and os.path.isfile(os.path.join(folder, "u.data")):
        return load_movielens(folder, variant="100k", codes=True)
    # 0-based codes: the models below fix n_users/n_items to the data's size
    return fetch_movielens("100k", codes=True)


def parse_regularizers(specs):
    out = []
    for spec in specs:
        name, _, weight = spec.partition(":")
        out.append((name, float(weight) if weight else None))
    return out


def make_models(args, n_users, n_items):
    try:
        from skcollapse.recommenders import LightGCNRecommender, MFRecommender
    except ImportError:
        print("skcollapse.recommenders has no MF/LightGCN yet: popularity only.")
        return [("Popularity", None, lambda seed: PopularityRanker(n_users, n_items))]

    def factory(cls, regularizer, weight, extra):
        def build(seed):
            params = dict(
                n_users=n_users,
                n_items=n_items,
                random_state=seed,
                device=args.device,
                **extra,
            )
            if regularizer is not None:
                params["regularizer"] = regularizer
                if weight is not None:
                    params["regularizer__weight"] = weight
            return cls(**params)

        return build

    mf_extra = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
    models = [("Popularity", None, lambda seed: PopularityRanker(n_users, n_items))]
    for label, cls in (("MF", MFRecommender), ("LightGCN", LightGCNRecommender)):
        models.append((label, None, factory(cls, None, None, mf_extra)))
        for name, weight in parse_regularizers(args.regularizers):
            tag = name if weight is None else f"{name}:{weight:g}"
            models.append((label, tag, factory(cls, name, weight, mf_extra)))
    return models


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default="../shared/eval-data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--regularizers",
        nargs="*",
        default=["logdet", "directspec"],
        help="registered names, optionally name:weight",
    )
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    bunch = load(args.data_dir)
    X = bunch.data
    print(
        f"MovieLens-100k: {X.shape[0]} interactions, {bunch.n_users} users, "
        f"{bunch.n_items} items; per-user 80/20, seeds {args.seeds}, device "
        f"{args.device}; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    rows = {}
    models = make_models(args, bunch.n_users, bunch.n_items)
    for seed in args.seeds:
        X_train, X_test = train_test_split_interactions(
            X, test_size=0.2, strategy="per_user", random_state=seed
        )
        for label, reg, build in models:
            model = build(seed)
            start = time.perf_counter()
            model.fit(X_train)
            fit_s = time.perf_counter() - start
            result = evaluate_ranking(model, X_test, k=20, metrics=METRICS)
            result["fit_s"] = fit_s
            if hasattr(model, "get_embeddings"):
                result["erank_item"] = effective_rank(model.get_embeddings()["item"])
            rows.setdefault((label, reg), []).append(result)
            print(
                f"  seed {seed} {label:<10} {reg or '-':<14} "
                f"R@20 {result['recall']:.4f}  N@20 {result['ndcg']:.4f}  "
                f"fit {fit_s:.1f}s",
                flush=True,
            )

    header = (
        f"{'model':<10} {'regularizer':<14} {'Recall@20':>9} {'NDCG@20':>8} "
        f"{'cover':>6} {'gini':>6} {'erank(i)':>8} {'fit s':>7} | "
        f"{'reference':>9} {'gap':>7}  source"
    )
    print("\nMedians over seeds")
    print(header)
    print("-" * len(header))
    for (label, reg), results in rows.items():
        med = {key: statistics.median(r[key] for r in results) for key in results[0]}
        ref = REFERENCES.get(label) if reg is None else None
        ref_txt = (
            f"{ref[1]:>9.3f} {med['recall'] - ref[1]:>+7.3f}  {ref[0]}"
            if ref
            else f"{'':>9} {'':>7}"
        )
        erank = f"{med['erank_item']:>8.1f}" if "erank_item" in med else f"{'':>8}"
        print(
            f"{label:<10} {reg or '-':<14} {med['recall']:>9.4f} {med['ndcg']:>8.4f} "
            f"{med['coverage']:>6.3f} {med['gini']:>6.3f} {erank} "
            f"{med['fit_s']:>7.1f} | {ref_txt}"
        )


if __name__ == "__main__":
    main()
