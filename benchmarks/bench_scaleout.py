"""GridSearchCV on a dask cluster (joblib's dask backend) vs the same search run sequentially.

Usage::

    python benchmarks/bench_scaleout.py [--workers 2] [--repeats 3]
        [--n-users 2000] [--n-items 1000] [--epochs 5] [--folds 3]
        [--scheduler tcp://host:8786]

A grid over an ``MFRecommender`` and its regularizer
(``regularizer`` in {None, "logdet", "uniformity"} x ``regularizer__weight`` in
{1e-3, 1e-1}, per-user folds) is fitted on ``make_interactions`` data:

* ``sequential``: ``joblib.parallel_backend("sequential")`` in this process,
  with torch's default number of threads (what a laptop user gets), and again
  with ``torch.set_num_threads(1)`` (the per-core baseline a single-threaded
  worker is compared with; on a loaded machine torch's intra-op threads can
  make the default far slower);
* ``dask``: ``joblib.parallel_backend("dask")`` on a ``LocalCluster`` with
  ``--workers`` single-threaded worker processes on 127.0.0.1 (or the cluster at
  ``--scheduler``). The cluster start and the first (warm-up) search, which pays
  for importing torch and skcollapse in every worker, are reported separately.

Each search time is the median over ``--repeats``; the ratios are sequential /
dask (above 1: the cluster is faster). The script also checks that both searches
give the same ``cv_results_`` scores. The wall-clock ratio is bounded by the
number of free cores: on a 2-core machine it cannot exceed 2, and the per-task
overhead (pickling the estimator and data, scheduling) makes small fits slower
on the cluster. The machine's load average is printed next to the figures,
because a loaded machine distorts both.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import joblib
import torch
from sklearn.model_selection import GridSearchCV

from skcollapse.datasets import make_interactions
from skcollapse.model_selection import PerUserShuffleSplit
from skcollapse.recommenders import MFRecommender


def build_search(args):
    est = MFRecommender(
        n_users=args.n_users,
        n_items=args.n_items,
        embedding_dim=32,
        lr=0.01,
        max_epochs=args.epochs,
        batch_size=1024,
        random_state=0,
    )
    grid = {
        "regularizer": [None, "logdet", "uniformity"],
        "regularizer__weight": [1e-3, 1e-1],
    }
    cv = PerUserShuffleSplit(n_splits=args.folds, test_size=0.2, random_state=0)
    return GridSearchCV(est, grid, cv=cv, n_jobs=-1, refit=False)


def timed_search(args, X, backend):
    search = build_search(args)
    start = time.perf_counter()
    with joblib.parallel_backend(backend):
        search.fit(X)
    return time.perf_counter() - start, search.cv_results_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-users", type=int, default=2000)
    parser.add_argument("--n-items", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--scheduler", default=None, help="address of a running cluster")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.repeats < 1 or args.folds < 2:
        parser.error("--workers and --repeats must be >= 1, --folds >= 2")

    import distributed

    X = make_interactions(args.n_users, args.n_items, random_state=0)
    n_fits = 6 * args.folds
    print(
        f"data: {X.shape[0]} interactions, {args.n_users} users x {args.n_items} "
        f"items; grid: 6 candidates x {args.folds} folds = {n_fits} fits of "
        f"{args.epochs} epochs"
    )
    print(
        f"machine: {os.cpu_count()} CPU(s), torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )

    # sequential baselines (warm-up first: torch's first calls are slow)
    timed_search(args, X, "sequential")
    default_threads = torch.get_num_threads()
    seq = {}
    for threads in (default_threads, 1):
        torch.set_num_threads(threads)
        times, results = [], None
        for _ in range(args.repeats):
            t, results = timed_search(args, X, "sequential")
            times.append(t)
        seq[threads] = (times, results)
    torch.set_num_threads(default_threads)

    start = time.perf_counter()
    if args.scheduler:
        cluster = None
        client = distributed.Client(args.scheduler)
    else:
        cluster = distributed.LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = distributed.Client(cluster)
    startup = time.perf_counter() - start
    try:
        n_workers = len(client.scheduler_info()["workers"])
        warmup, _ = timed_search(args, X, "dask")
        dask_times, dask_results = [], None
        for _ in range(args.repeats):
            t, dask_results = timed_search(args, X, "dask")
            dask_times.append(t)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    diff = float(
        np.max(np.abs(seq[1][1]["mean_test_score"] - dask_results["mean_test_score"]))
    )
    dask_med = statistics.median(dask_times)

    def fmt(times):
        return f"median {statistics.median(times):.2f} s over {len(times)} " + (
            f"({', '.join(f'{t:.2f}' for t in times)})"
        )

    print(f"cluster start ({n_workers} workers x 1 thread): {startup:.2f} s")
    print(f"first dask search (workers import torch, warm up): {warmup:.2f} s")
    for threads in sorted(seq, reverse=True):
        print(f"sequential search, {threads} torch thread(s): {fmt(seq[threads][0])}")
    print(f"dask search, {n_workers} workers: {fmt(dask_times)}")
    for threads in sorted(seq, reverse=True):
        ratio = statistics.median(seq[threads][0]) / dask_med
        print(f"ratio sequential ({threads} thread(s)) / dask: {ratio:.2f}x")
    print(f"max |mean_test_score difference| dask vs sequential: {diff:.2e}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print(
        f"note: against the 1-thread baseline the ratio cannot exceed "
        f"min(cores, workers) = {min(os.cpu_count() or 1, n_workers)}x; a larger "
        "ratio against the default-thread baseline means torch's intra-op threads "
        "oversubscribe the cores (e.g. on a loaded machine). Small fits are "
        "dominated by per-task overhead"
    )


if __name__ == "__main__":
    main()
