"""Does each LightGCN layer collapse the embeddings faster? erank per epoch by depth.

Peng et al. (arXiv 2406.12032, as the survey in ``shared/seeds`` reads them):
each propagation layer of a graph recommender is a low-pass filter, so more
layers make the embeddings collapse faster. This benchmark trains
:class:`~skcollapse.recommenders.LightGCNRecommender` with ``n_layers`` in
``--layers`` (default 1-4) on each data set, everything else fixed, and records
the effective rank of the propagated user and item tables (the ones the model
ranks with) after every epoch with a
:class:`~skcollapse.callbacks.CollapseMonitor` (``record_initial=True``, so the
values before training are kept too).

Protocol (:class:`~skcollapse.model_selection.HoldoutProtocol`, as
``bench_regularizers.py --protocol select``): the only choice is the epoch, made
on a per-user validation hold-out of the *training* pairs
(``PerUserValidSplit(0.1)``, the same pairs for every depth and seed; early
stopping on validation NDCG@20 with ``--patience``, the best epoch's weights
restored) with the first seed; every seed is then trained the same way and the
test pairs are ranked once. Each (data set, depth) writes
``benchmarks/results/depth/<dataset>/lightgcn-L<depth>.json``: the selection,
each seed's test metrics and per-user values, its erank/IA per epoch
(``collapse_history``), its validation curve, timings, commit and data
checksums. ``benchmarks/plot_depth.py`` draws the figure (erank per epoch, one
colour per depth) and ``benchmarks/make_tables.py`` the table from these files.

Data (as ``bench_regularizers.py``): ``ml-100k`` (``ml-100k/u.data``, every
rating an interaction, per-user random 80/20 split, seed 0) and ``citeulike``
(the DirectSpec authors' ``citeulike/train.csv``, ``test.csv``).

Usage::

    python benchmarks/bench_depth.py ../shared/eval-data \\
        [--datasets ml-100k citeulike] [--layers 1 2 3 4] [--seeds 0 1 2] \\
        [--max-epochs 100] [--patience 10] [--embedding-dim 64] [--resume]

A smoke run that writes nowhere near the committed files::

    SKCOLLAPSE_BENCH_RESULTS=/tmp/depth-smoke python benchmarks/bench_depth.py \\
        ../shared/eval-data --datasets ml-100k --max-epochs 2 --seeds 0
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import _results
import torch
from bench_regularizers import (
    TrainTime,
    data_files,
    load_citeulike,
    load_ml100k,
    pm,
)

from skcollapse.callbacks import CollapseMonitor
from skcollapse.model_selection import HoldoutProtocol
from skcollapse.recommenders import LightGCNRecommender

FOLDER = "depth"
LOADERS = {"ml-100k": load_ml100k, "citeulike": load_citeulike}


def result_path(dataset, n_layers):
    return f"{FOLDER}/{dataset}/lightgcn-L{n_layers}.json"


def make_estimator(n_layers, args):
    return LightGCNRecommender(
        n_layers=n_layers, embedding_dim=args.embedding_dim,
        max_epochs=args.max_epochs, device=args.device,
        callbacks=[("train_time", TrainTime()),
                   ("collapse", CollapseMonitor(metrics=("erank", "ia"),
                                                record_initial=True))],
    )


def fmt_curve(values, width=8):
    """A few values of a per-epoch list: the first ``width``, then the last."""
    vals = [v for v in values if v is not None]
    if len(vals) <= width:
        return " ".join(f"{v:.1f}" for v in vals)
    return " ".join(f"{v:.1f}" for v in vals[:width]) + f" ... {vals[-1]:.1f}"


def run_depth(args, dataset, n_layers, X_train, X_test, note):
    rel = result_path(dataset, n_layers)
    if args.resume and os.path.exists(os.path.join(_results.RESULTS, rel)):
        print(f"  L={n_layers}: done before ({rel}), skipped", flush=True)
        return
    protocol = HoldoutProtocol(
        X_train, X_test, valid_size=0.1, k=20, patience=args.patience,
        random_state=0,
    )
    estimator = make_estimator(n_layers, args)
    protocol.select(estimator, [{}], seed=args.seeds[0])
    cand = protocol.candidates_[0]
    print(f"  L={n_layers}: valid NDCG@20 {cand['valid_score']:.4f} at epoch "
          f"{cand['epochs']} of {len(cand['valid_curve'])}, {cand['fit_s']:.0f} s",
          flush=True)
    seeds = []
    for seed in args.seeds:
        result = protocol.test(seed)
        hist = result.get("collapse_history", {})
        init = hist.get("initial", {})
        print(f"    seed {seed}: test NDCG@20 {result['test']['ndcg']:.4f} "
              f"(epoch {result['epochs']}); item erank {init.get('erank_item', 0):.1f}"
              f" | {fmt_curve(hist.get('erank_item', []))}; user erank "
              f"{init.get('erank_user', 0):.1f} | "
              f"{fmt_curve(hist.get('erank_user', []))}", flush=True)
        seeds.append(_results.compact_seed_result(result))
    record = {
        "benchmark": "bench_depth",
        "command": " ".join(sys.argv),
        "dataset": dataset,
        "split": note,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "model": "LightGCN",
        "n_layers": n_layers,
        "setting": f"L{n_layers}",
        "estimator": type(estimator).__name__,
        "fixed_params": {k: v for k, v in estimator.get_params(deep=False).items()
                         if k in ("n_layers", "embedding_dim", "max_epochs", "lr",
                                  "batch_size", "loss", "device")},
        "grid": [{}],
        "protocol": {"valid_size": 0.1, "k": 20, "monitor": "ndcg",
                     "patience": args.patience, "refit": False,
                     "valid_random_state": 0, "select_seed": args.seeds[0]},
        "candidates": protocol.candidates_,
        "selection": protocol.selection_,
        "seeds": seeds,
        "meta": _results.run_metadata(data_files(dataset, args.data_dir)),
    }
    path = _results.write_result(rel, record)
    print(f"  -> L={n_layers}: test NDCG@20 "
          f"{pm([s['test']['ndcg'] for s in seeds])} over seeds {args.seeds}; "
          f"{os.path.relpath(path)}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder with ml-100k/ and citeulike/")
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "citeulike"],
                        choices=sorted(LOADERS))
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resume", action="store_true",
                        help="skip (data set, depth) pairs whose result file exists")
    args = parser.parse_args(argv)
    if any(L < 0 for L in args.layers):
        parser.error("--layers must be non-negative (0 is matrix factorisation)")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device "
          f"{args.device}; results under {_results.RESULTS}/{FOLDER}", flush=True)
    for dataset in args.datasets:
        X_train, X_test, note = LOADERS[dataset](args.data_dir)
        print(f"\n=== LightGCN on {dataset} ({note}): {len(X_train)} train / "
              f"{len(X_test)} test pairs; d={args.embedding_dim}, layers "
              f"{args.layers}, seeds {args.seeds}, at most {args.max_epochs} "
              f"epochs, patience {args.patience}; load avg "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for n_layers in args.layers:
            run_depth(args, dataset, n_layers, X_train, np.asarray(X_test), note)
    print("\nFigure: python benchmarks/plot_depth.py; tables: "
          "python benchmarks/make_tables.py", flush=True)


if __name__ == "__main__":
    main()
