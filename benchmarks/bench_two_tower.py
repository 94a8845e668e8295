"""Two-tower retrieval: the user-side collapse of uniform negatives and its fixes.

**ML-100k** (``--part ml100k``): all 100,000 ratings as implicit pairs, the
per-user random 80/20 split of ``bench_regularizers.py`` (seed 0), every unseen
item ranked, Recall@20 / NDCG@20. Each row runs under
:class:`~skcollapse.model_selection.HoldoutProtocol`: the epoch (and row (d)'s
weight) is chosen on a per-user 10% validation hold-out of the training pairs
with the first seed, then every seed is tested once; one result file per row
under ``benchmarks/results/two_tower/ml-100k/`` (``make_tables.py`` builds the
evidence table). The towers read the MovieLens side features (age group,
gender, occupation, zip region; genres, multi-valued; release decade). Rows:

* (a) uniform negatives + BPR, dot score (the collapse-prone setting);
* (b) in-batch sampled softmax, cosine / temperature, no logQ correction;
* (c) (b) with the logQ correction;
* (d) the best of (a)-(c) on validation NDCG@20 + a regularizer, its weight
  chosen on validation among ``--reg-weights``;
* MF (``MFRecommender`` defaults, BPR) under the same protocol.

**Gowalla** (``--part gowalla``): the LightGCN split (``train.txt``/``test.txt``),
ids only (no side features): seconds per epoch and test Recall@20 after a
fixed number of epochs for the two-tower model (in-batch softmax + logQ) and
``MFRecommender`` (BPR defaults and the softmax recipe of
``bench_reproduce_gowalla.py``, whose settings were found by reading Gowalla's
test curve: a timing comparison at fixed settings, nothing chosen here). On a
shared CPU this runs on a user subsample (``--gowalla-users``) and few epochs
(``--gowalla-epochs``), stated in the output.

Usage::

    python benchmarks/bench_two_tower.py ../shared/eval-data --part ml100k \
        --rows a b c mf d --resume
    python benchmarks/bench_two_tower.py ../shared/eval-data --part gowalla \
        --gowalla-users 3000 --gowalla-epochs 3
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _results

from skcollapse.datasets import load_lightgcn, load_movielens
from skcollapse.metrics import effective_rank, evaluate_ranking
from skcollapse.model_selection import HoldoutProtocol, train_test_split_interactions
from skcollapse.recommenders import MFRecommender, TwoTowerRecommender

TOWER = {"embedding_dim": 64, "hidden_units": (64,), "batch_size": 512}
CONFIGS = {
    "(a) uniform + BPR": {"loss": "bpr", "negative_sampling": "independent",
                          "similarity": "dot", "lr": 1e-3},
    "(b) in-batch, no logQ": {"loss": "softmax", "negative_sampling": "in-batch",
                              "similarity": "cosine", "temperature": 0.1,
                              "logq_correction": False, "lr": 1e-3},
    "(c) in-batch + logQ": {"loss": "softmax", "negative_sampling": "in-batch",
                            "similarity": "cosine", "temperature": 0.1,
                            "logq_correction": True, "lr": 1e-3},
}


ROWS = {"a": "(a) uniform + BPR", "b": "(b) in-batch, no logQ",
        "c": "(c) in-batch + logQ", "mf": "MF (BPR, defaults)"}


def ml100k(args):
    """Rows (a)-(c), MF and (d) under HoldoutProtocol; one result file each."""
    data = load_movielens(os.path.join(args.data_dir, "ml-100k"), variant="100k")
    X, uf, itf = np.asarray(data.data), data.user_features, data.item_features
    X_train, X_test = (np.asarray(a) for a in train_test_split_interactions(
        X, test_size=0.2, strategy="per_user", random_state=0))
    print(f"MovieLens-100k: {X.shape[0]} pairs, {data.n_users} users, "
          f"{data.n_items} items; user fields {list(uf.columns)}, item fields "
          f"{list(itf.columns)}; per-user 80/20 (seed 0), seeds {args.seeds}; "
          f"epochs and weights chosen on a per-user 10% validation hold-out of "
          f"the training pairs (HoldoutProtocol), at most {args.max_epochs} "
          f"epochs, patience {args.patience}", flush=True)
    feats = {"user_features": uf, "item_features": itf}
    common = {"max_epochs": args.max_epochs,
              "callbacks__valid_ranking__every": args.eval_every}

    def estimator(key, **extra):
        if key == "mf":
            return MFRecommender(**common)
        return TwoTowerRecommender(**TOWER, **CONFIGS[ROWS[key]], **feats,
                                   **common, **extra)

    def run(key, label, est, grid):
        rel = f"two_tower/ml-100k/{key}.json"
        if args.resume and os.path.exists(os.path.join(_results.RESULTS, rel)):
            print(f"  {label}: done before ({rel}), skipped", flush=True)
            return
        protocol = HoldoutProtocol(X_train, X_test, valid_size=0.1,
                                   patience=args.patience, random_state=0)
        protocol.select(est, grid, seed=args.seeds[0])
        seeds = [_results.compact_seed_result(protocol.test(s)) for s in args.seeds]
        _results.write_result(rel, {
            "benchmark": "bench_two_tower --part ml100k",
            "command": " ".join(sys.argv), "dataset": "ml-100k", "row": label,
            "split": "per-user 80/20 (seed 0)", "estimator": type(est).__name__,
            "grid": grid, "candidates": protocol.candidates_,
            "selection": protocol.selection_, "seeds": seeds,
            "protocol": {"valid_size": 0.1, "k": 20, "monitor": "ndcg",
                         "patience": args.patience, "max_epochs": args.max_epochs,
                         "eval_every": args.eval_every, "select_seed": args.seeds[0]},
            "meta": _results.run_metadata(
                [os.path.join(args.data_dir, "ml-100k", n)
                 for n in ("u.data", "u.user", "u.item")]),
        })
        ndcg = [r["test"]["ndcg"] for r in seeds]
        print(f"  {label:<34} test NDCG@20 {np.mean(ndcg):.4f} over seeds "
              f"{args.seeds}; {rel}", flush=True)

    for key in args.rows:
        if key != "d":
            run(key, ROWS[key], estimator(key), [{}])
    if "d" not in args.rows:
        return
    # (d): the best of (a)-(c) on validation NDCG@20 (their result files) plus a
    # regularizer whose weight is chosen on validation
    scores = {}
    for key in ("a", "b", "c"):
        path = os.path.join(_results.RESULTS, f"two_tower/ml-100k/{key}.json")
        if os.path.exists(path):
            with open(path) as fh:
                scores[key] = json.load(fh)["selection"]["valid_score"]
    if not scores:
        raise SystemExit("row d needs the result files of rows a-c first")
    base = max(scores, key=scores.get)
    grid = [{"regularizer": args.regularizer, "regularizer__weight": w}
            for w in args.reg_weights]
    run("d", f"(d) {ROWS[base][4:]} + {args.regularizer}", estimator(base), grid)


def gowalla(args):
    data = load_lightgcn(os.path.join(args.data_dir, "gowalla"))
    train, test = data.train, data.test
    n_users = data.n_users
    if args.gowalla_users:
        train = train[train[:, 0] < args.gowalla_users]
        test = test[test[:, 0] < args.gowalla_users]
        n_users = args.gowalla_users
    print(f"\nGowalla (LightGCN split), ids only: users 0..{n_users - 1} "
          f"({'subsample' if args.gowalla_users else 'all'}), {data.n_items} items, "
          f"{train.shape[0]} train / {test.shape[0]} test pairs; "
          f"{args.gowalla_epochs} epochs each, no validation (fixed epochs), "
          f"test Recall@20 after the last epoch; torch threads "
          f"{torch.get_num_threads()}", flush=True)
    common = {"n_users": n_users, "n_items": data.n_items, "embedding_dim": 64,
              "max_epochs": args.gowalla_epochs, "batch_size": 2048,
              "random_state": 0}
    models = {
        "tower": TwoTowerRecommender(
            **common, hidden_units=(64,), lr=1e-3),
        "mf": MFRecommender(**common),
        "mf-softmax": MFRecommender(
            **common, loss="softmax", negative_sampling="shared",
            n_negatives=1024, similarity="cosine", temperature=0.1, lr=1e-2,
            weight_decay=0.0),
    }
    print(f"{'model':<36} {'s/epoch':>8} {'Recall@20':>9} {'NDCG@20':>8} "
          f"{'erank u/i':>11}")
    labels = {"tower": "two-tower, in-batch + logQ (ids)",
              "mf": "MF, BPR (defaults)",
              "mf-softmax": "MF, softmax recipe (1024 shared)"}
    for key in args.gowalla_models:
        label, model = labels[key], models[key]
        start = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - start
        res = evaluate_ranking(model, test, k=20, metrics=("recall", "ndcg"),
                               batch_size=4096)
        emb = model.get_embeddings()
        print(f"{label:<36} {fit_s / args.gowalla_epochs:>8.1f} "
              f"{res['recall']:>9.4f} {res['ndcg']:>8.4f} "
              f"{effective_rank(emb['user']):>5.1f}/{effective_rank(emb['item']):<5.1f}",
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default="../shared/eval-data")
    parser.add_argument("--part", choices=["ml100k", "gowalla", "both"],
                        default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--eval-every", type=int, default=3)
    parser.add_argument("--patience", type=int, default=9)
    parser.add_argument("--rows", nargs="+", default=["a", "b", "c", "mf", "d"],
                        choices=["a", "b", "c", "mf", "d"])
    parser.add_argument("--resume", action="store_true",
                        help="skip rows whose result file exists")
    parser.add_argument("--regularizer", default="logdet")
    parser.add_argument("--reg-weights", type=float, nargs="+",
                        default=[1e-5, 1e-4, 1e-3, 1e-2])
    parser.add_argument("--gowalla-users", type=int, default=None)
    parser.add_argument("--gowalla-epochs", type=int, default=5)
    parser.add_argument("--gowalla-models", nargs="+",
                        default=["tower", "mf", "mf-softmax"],
                        choices=["tower", "mf", "mf-softmax"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("ml100k", "both"):
        ml100k(args)
    if args.part in ("gowalla", "both"):
        gowalla(args)


if __name__ == "__main__":
    main()
