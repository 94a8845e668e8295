"""Two-tower retrieval: the user-side collapse of uniform negatives and its fixes.

**ML-100k** (``--part ml100k``): all 100,000 ratings as implicit pairs,
per-user random 80/20 test split (``train_test_split_interactions``, one split
per seed), every unseen item ranked, Recall@20 / NDCG@20. Epochs are selected
on validation data: 10% of each user's training pairs (``PerUserValidSplit``),
``valid_recall`` every ``--eval-every`` epochs, ``EarlyStopping(load_best=True)``;
the test split is scored once. The towers read the MovieLens side features
(``load_movielens(...).user_features`` / ``.item_features``: age group, gender,
occupation, zip region; genres (multi-valued), release decade). Rows:

* (a) uniform negatives + BPR, dot score (the collapse-prone setting);
* (b) in-batch sampled softmax, cosine / temperature, no logQ correction;
* (c) (b) with the logQ correction;
* (d) the best of (a)-(c) on validation Recall@20 (seed 0) + a regularizer,
  its weight chosen on validation among ``--reg-weights`` (seed 0);
* MF (``MFRecommender`` defaults, BPR) on the same splits and protocol.

``erank`` is the effective rank (Roy & Vetterli) of the user / item tower
outputs (``get_embeddings()["user"]``/``["item"]``); the reference is the erank
of a Gaussian matrix of the same shape.

**Gowalla** (``--part gowalla``): the LightGCN split (``train.txt``/``test.txt``),
ids only (no side features): seconds per epoch and test Recall@20 after a
fixed number of epochs for the two-tower model (in-batch softmax + logQ) and
``MFRecommender`` (BPR defaults and the softmax recipe of
``bench_reproduce_gowalla.py``). On a shared CPU this runs on a user subsample
(``--gowalla-users``) and few epochs (``--gowalla-epochs``), stated in the
output.

Usage (on a shared 2-core CPU each line stays under ~25 minutes; one seed per
call, results appended to a JSON-lines file, then one table)::

    for s in 0 1 2; do python benchmarks/bench_two_tower.py ../shared/eval-data \
        --part ml100k --seeds $s --rows a b c mf --max-epochs 24 --eval-every 3 \
        --patience 6 --out ml100k.jsonl; done
    python benchmarks/bench_two_tower.py ../shared/eval-data --part ml100k \
        --seeds 0 --rows d --d-base c --regularizer logdet --reg-weights 0.01 0.1 \
        --max-epochs 24 --eval-every 3 --patience 6 --out ml100k.jsonl
    python benchmarks/bench_two_tower.py --summarize ml100k.jsonl
    python benchmarks/bench_two_tower.py ../shared/eval-data --part gowalla \
        --gowalla-users 3000 --gowalla-epochs 3
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skorch.callbacks import EarlyStopping

from skcollapse.datasets import load_lightgcn, load_movielens
from skcollapse.metrics import effective_rank, evaluate_ranking
from skcollapse.model_selection import PerUserValidSplit, train_test_split_interactions
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


def random_erank(shape, seed=0):
    return effective_rank(np.random.default_rng(seed).standard_normal(shape))


def validated(params, args, seed):
    """Protocol parameters: per-user validation split and early stopping."""
    return {
        **params,
        "max_epochs": args.max_epochs,
        "random_state": seed,
        "train_split": PerUserValidSplit(0.1, random_state=seed),
        "callbacks": [("early_stopping", EarlyStopping(
            monitor="valid_recall", lower_is_better=False,
            patience=args.patience, load_best=True))],
        "callbacks__valid_ranking__every": args.eval_every,
    }


def run(label, model, X_train, X_test):
    start = time.perf_counter()
    model.fit(X_train)
    fit_s = time.perf_counter() - start
    res = evaluate_ranking(model, X_test, k=20, metrics=("recall", "ndcg"),
                           batch_size=model.n_users_)
    emb = model.get_embeddings()
    res["erank_user"] = effective_rank(emb["user"])
    res["erank_item"] = effective_rank(emb["item"])
    res["valid_recall"] = max(model.history[:, "valid_recall"])
    res["epochs"] = len(model.history)
    res["fit_s"] = fit_s
    print(f"  {label:<34} R@20 {res['recall']:.4f} N@20 {res['ndcg']:.4f} "
          f"erank u/i {res['erank_user']:5.1f}/{res['erank_item']:5.1f} "
          f"valid R@20 {res['valid_recall']:.4f} epochs {res['epochs']:3d} "
          f"fit {fit_s:5.1f}s", flush=True)
    return res


ROWS = {"a": "(a) uniform + BPR", "b": "(b) in-batch, no logQ",
        "c": "(c) in-batch + logQ", "mf": "MF (BPR, defaults)"}


def ml100k(args):
    import json

    data = load_movielens(os.path.join(args.data_dir, "ml-100k"), variant="100k")
    X, uf, itf = data.data, data.user_features, data.item_features
    print(f"MovieLens-100k: {X.shape[0]} pairs, {data.n_users} users, "
          f"{data.n_items} items; user fields {list(uf.columns)}, item fields "
          f"{list(itf.columns)}; per-user 80/20, seeds {args.seeds}; epochs chosen "
          f"on a per-user 10% validation split (every {args.eval_every}, patience "
          f"{args.patience}, max {args.max_epochs}); batch {TOWER['batch_size']}; "
          f"torch threads {torch.get_num_threads()}", flush=True)
    feats = {"user_features": uf, "item_features": itf}

    def tower(cfg, seed, **extra):
        return TwoTowerRecommender(**validated({**TOWER, **cfg, **feats, **extra},
                                               args, seed))

    def record(row, seed, res):
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps({"row": row, "seed": seed, **res}) + "\n")

    for seed in args.seeds:
        X_train, X_test = train_test_split_interactions(
            X, test_size=0.2, strategy="per_user", random_state=seed)
        print(f"seed {seed}")
        for key in args.rows:
            if key == "d":
                continue
            label = ROWS[key]
            model = (MFRecommender(**validated({}, args, seed)) if key == "mf"
                     else tower(CONFIGS[label], seed))
            record(label, seed, run(label, model, X_train, X_test))
    if "d" not in args.rows:
        return
    # (d): --d-base (the best of (a)-(c) on validation) + a regularizer whose
    # weight is chosen on the first seed's validation Recall@20
    base = ROWS[args.d_base]
    print(f"(d) base {base}; {args.regularizer} weight chosen on seed "
          f"{args.seeds[0]} validation among {args.reg_weights}")
    weight = None
    for seed in args.seeds:
        X_train, X_test = train_test_split_interactions(
            X, test_size=0.2, strategy="per_user", random_state=seed)
        weights = args.reg_weights if weight is None else [weight]
        scored = []
        for w in weights:
            label = f"(d) {base[4:]} + {args.regularizer}:{w:g}"
            res = run(label, tower(CONFIGS[base], seed, regularizer=args.regularizer,
                                   regularizer__weight=w), X_train, X_test)
            scored.append((res["valid_recall"], w, label, res))
        _, weight, label, res = max(scored, key=lambda t: t[0])
        record(label, seed, res)


def summarize(path):
    import json

    rows = {}
    with open(path) as fh:
        for line in fh:
            rec = json.loads(line)
            rows.setdefault(rec["row"], []).append(rec)
    ref_u = random_erank((943, TOWER["embedding_dim"]))
    ref_i = random_erank((1682, TOWER["embedding_dim"]))
    header = (f"{'row':<40} {'seeds':>5} {'Recall@20':>15} {'NDCG@20':>15} "
              f"{'erank user':>10} {'erank item':>10} {'epochs':>6}")
    print(f"ML-100k test, mean +- std over seeds (epoch chosen on validation); "
          f"embedding_dim {TOWER['embedding_dim']}; erank of a Gaussian matrix "
          f"of the same shape: user {ref_u:.1f}, item {ref_i:.1f}")
    print(header)
    print("-" * len(header))
    for label, results in rows.items():
        def ms(key, results=results):
            vals = [r[key] for r in results]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            return f"{statistics.mean(vals):.4f} +- {sd:.4f}"
        print(f"{label:<40} {len(results):>5} {ms('recall'):>15} {ms('ndcg'):>15} "
              f"{statistics.mean(r['erank_user'] for r in results):>10.1f} "
              f"{statistics.mean(r['erank_item'] for r in results):>10.1f} "
              f"{statistics.median(r['epochs'] for r in results):>6.0f}")


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
    parser.add_argument("--d-base", choices=["a", "b", "c"], default="c")
    parser.add_argument("--out", default=None,
                        help="append one JSON line per (row, seed) to this file")
    parser.add_argument("--summarize", default=None,
                        help="print the table of a --out file and exit")
    parser.add_argument("--regularizer", default="logdet")
    parser.add_argument("--reg-weights", type=float, nargs="+",
                        default=[0.01, 0.1])
    parser.add_argument("--gowalla-users", type=int, default=None)
    parser.add_argument("--gowalla-epochs", type=int, default=5)
    parser.add_argument("--gowalla-models", nargs="+",
                        default=["tower", "mf", "mf-softmax"],
                        choices=["tower", "mf", "mf-softmax"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    torch.set_num_threads(args.threads)
    if args.part in ("ml100k", "both"):
        ml100k(args)
    if args.part in ("gowalla", "both"):
        gowalla(args)


if __name__ == "__main__":
    main()
