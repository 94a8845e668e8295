"""DirectSpec on CiteULike: skcollapse's recipe, with and without spectrum balancing.

The split is the DirectSpec authors' own (``citeulike/train.csv`` and
``test.csv``, 5,551 users, 16,980 items). The recipe is that of
``tanatosuu/directspec`` ``directspec_mf.py`` with their README's CiteULike
settings, expressed with skcollapse's public parameters::

    MFRecommender(embedding_dim=64, loss="bce", n_negatives=0, weight_decay=0,
                  regularizer="directspec", regularizer__alpha=1.0,
                  regularizer__tau=3.0, regularizer__shrink_norm=0.03,
                  regularizer__keep_norm=False,
                  init="xavier_uniform", optimizer=torch.optim.SGD, lr=180,
                  batch_size=256, sampling="user",
                  callbacks=[LRScheduler(ExponentialLR, gamma=0.9995)])

and again with ``regularizer__alpha=0`` (the same training without balancing:
the collapse the paper describes). It prints Recall@20 and NDCG@20 over all
test users (Recall with the full ``|test items|`` denominator, not the reference
script's truncation at 20) and the effective rank of the user and item tables
after ``--epochs`` epochs.

The reference script is run separately as a baseline and is never part of
this project. For the comparison in the README (30 epochs, CPU):
- fetch ``tanatosuu/directspec`` and run its ``directspec_mf.py`` with the README's
  CiteULike flags (``--embedding_size=64 --lr=180 --batch_size=256 --alpha=1.0
  --tau=3.0 --shrink_norm=0.03``);
- change only ``range(300)`` to 30 epochs, drop ``.cuda()``, and replace the
  per-batch ``torch.multinomial`` over dense 0/1 rows by the same draw (a
  uniform positive of each user) from per-user item lists; that call is about
  145 ms a batch on a CPU;
- save its two tables and score them with ``skcollapse.metrics.recall_at_k`` /
  ``ndcg_at_k`` (train items excluded, full ``|test|`` denominator) and
  ``effective_rank``.

Usage::

    python benchmarks/bench_directspec_citeulike.py ../shared/eval-data --epochs 30
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np
import pandas as pd
import torch
from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import ExponentialLR

from skcollapse.metrics import effective_rank, evaluate_ranking
from skcollapse.recommenders import MFRecommender


def recipe(alpha, epochs, seed):
    return MFRecommender(
        n_users=5551, n_items=16980, embedding_dim=64, loss="bce", n_negatives=0,
        weight_decay=0, regularizer="directspec", regularizer__alpha=alpha,
        regularizer__tau=3.0, regularizer__shrink_norm=0.03,
        regularizer__keep_norm=False, init="xavier_uniform",
        optimizer=torch.optim.SGD, lr=180.0, batch_size=256, sampling="user",
        max_epochs=epochs, random_state=seed,
        callbacks=[LRScheduler(ExponentialLR, gamma=0.9995)],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_data")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--alphas", default="1.0,0.0")
    args = parser.parse_args()
    folder = os.path.join(args.eval_data, "citeulike")
    train = pd.read_csv(os.path.join(folder, "train.csv")).to_numpy()
    test = pd.read_csv(os.path.join(folder, "test.csv")).to_numpy()
    print(f"CiteULike (DirectSpec split): {len(train)} train / {len(test)} test pairs; "
          f"{args.epochs} epochs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'alpha':>5} {'seed':>4} {'Recall@20':>9} {'NDCG@20':>8} {'erank U':>8} "
          f"{'erank I':>8} {'s/epoch':>8}")
    for alpha in (float(a) for a in args.alphas.split(",")):
        rows = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            model = recipe(alpha, args.epochs, seed).fit(train)
            secs = (time.perf_counter() - start) / args.epochs
            res = evaluate_ranking(model, test, k=20, metrics=("recall", "ndcg"))
            emb = model.get_embeddings()
            row = (res["recall"], res["ndcg"], effective_rank(emb["user"]),
                   effective_rank(emb["item"]))
            rows.append(row)
            print(f"{alpha:5.1f} {seed:4d} {row[0]:9.4f} {row[1]:8.4f} {row[2]:8.1f} "
                  f"{row[3]:8.1f} {secs:8.2f}", flush=True)
        if args.seeds > 1:
            mean, std = np.mean(rows, axis=0), np.std(rows, axis=0)
            print(f"{alpha:5.1f} mean {mean[0]:.4f}±{std[0]:.4f} "
                  f"{mean[1]:.4f}±{std[1]:.4f} {mean[2]:.1f} {mean[3]:.1f}")


if __name__ == "__main__":
    main()
