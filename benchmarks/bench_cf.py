"""Speed and quality of the CF recommenders against lean PyTorch loops.

Usage::

    python benchmarks/bench_cf.py /path/to/eval-data [--repeats 3]
        [--sections mf,lightgcn,eval,quality] [--lightgcn-steps 40] [--device cpu]

``eval-data`` must hold ``gowalla/train.txt``, ``gowalla/test.txt`` (the LightGCN
split) and ``ml-100k/u.data``. Every figure is printed next to a baseline measured
in the same run, as a median over ``--repeats``:

* ``mf``: seconds per MF-BPR epoch on Gowalla (dim 64, batch 2048, 1 negative):
  ``MFRecommender`` (its fused step, and the autograd step it replaces) vs a
  lean loop with sparse embedding gradients and ``torch.optim.SparseAdam``,
  epochs interleaved.
* ``lightgcn``: seconds per LightGCN epoch (3 layers), estimated from the median
  step time over ``--lightgcn-steps`` steps times the steps per epoch, for
  ``LightGCNRecommender`` vs a lean loop with a CSR adjacency
  (``torch.sparse.mm``) and dense Adam.
* ``eval``: seconds of full-ranking Recall/NDCG@20 over all Gowalla test users,
  ``skcollapse.metrics.evaluate_ranking`` on a fitted model vs a lean
  ``U @ I.T`` + mask + ``topk`` loop on the same embeddings.
* ``quality``: Recall/NDCG@20 on MovieLens-100k (per-user random 80/20 split of
  ``u.data``) with default settings, next to a popularity baseline.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lean import LeanLightGCN, LeanMF, _sync, lean_eval
from skorch.callbacks import Callback

from skcollapse.metrics import evaluate_ranking
from skcollapse.recommenders import LightGCNRecommender, MFRecommender

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

DIM, BATCH = 64, 2048


# ------------------------------------------------------------------------ data
def load_lightgcn_split(path):
    users, items = [], []
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            ids = np.asarray(parts[1:], dtype=np.int64)
            users.append(np.full(ids.shape[0], int(parts[0]), dtype=np.int64))
            items.append(ids)
    return np.column_stack([np.concatenate(users), np.concatenate(items)])


def load_ml100k(path, seed=0):
    data = np.loadtxt(path, dtype=np.int64, usecols=(0, 1))
    data -= 1  # ids start at 1 in u.data
    rng = np.random.default_rng(seed)
    data = data[rng.permutation(data.shape[0])]
    data = data[np.argsort(data[:, 0], kind="stable")]
    _, start, count = np.unique(data[:, 0], return_index=True, return_counts=True)
    rank = np.arange(data.shape[0]) - np.repeat(start, count)
    test = rank < np.repeat(np.ceil(0.2 * count).astype(np.int64), count)
    return data[~test], data[test]


def median(values):
    return statistics.median(values)


# ------------------------------------------------------------------------ lean loops
def lean_mf_epoch(train, n_users, n_items, device, seed):
    """One MF-BPR epoch of a fresh :class:`_lean.LeanMF`: (wall, CPU) seconds."""
    model = LeanMF(train, n_users, n_items, dim=DIM, batch_size=BATCH, lr=1e-3,
                   seed=seed, device=device)
    t0, c0 = time.perf_counter(), time.process_time()
    model.epoch()
    return time.perf_counter() - t0, time.process_time() - c0


def lean_lightgcn_steps(train, n_users, n_items, device, seed, steps):
    """Median seconds per step of :class:`_lean.LeanLightGCN` (first dropped)."""
    model = LeanLightGCN(train, n_users, n_items, dim=DIM, n_layers=3,
                         batch_size=BATCH, lr=1e-3, seed=seed, device=device)
    times = []
    model.epoch(max_steps=steps, step_times=times)
    return median(times[1:] if len(times) > 2 else times)


class _StopAfter(Callback):
    """Record per-step seconds; stop training after ``steps`` steps."""

    def __init__(self, steps, device):
        self.steps = steps
        self.device = device

    def initialize(self):
        self.times_ = []
        self._t = None
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        self._t = time.perf_counter()

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        _sync(self.device)
        self.times_.append(time.perf_counter() - self._t)
        if len(self.times_) >= self.steps:
            raise KeyboardInterrupt  # skorch ends training cleanly on it


# ------------------------------------------------------------------------ sections
class _EpochCPU(Callback):
    """CPU seconds of each epoch (this process), in the history as ``cpu_dur``."""

    def on_epoch_begin(self, net, **kwargs):
        self._c = time.process_time()

    def on_epoch_end(self, net, **kwargs):
        net.history.record("cpu_dur", time.process_time() - self._c)


def _mf_model(args, fused):
    model = MFRecommender(
        embedding_dim=DIM, batch_size=BATCH, max_epochs=1, lr=1e-3,
        random_state=0, device=args.device, warm_start=True,
        callbacks=[("cpu", _EpochCPU())],
    )
    if not fused:  # the autograd step (infer + get_loss + backward)
        model._fused_step_applies = lambda: False
    return model


def bench_mf(gowalla, args):
    """MF-BPR epochs, interleaved: fused step, autograd step, lean loop.

    Each model trains one warm-up epoch, then one epoch per round (``warm_start``
    fits continue training), alternating with a lean-loop epoch, so the three
    see the same machine load; the loss of each epoch is printed too.
    """
    train, _ = gowalla
    n_users, n_items = int(train[:, 0].max()) + 1, int(train[:, 1].max()) + 1
    fused, plain = _mf_model(args, True).fit(train), _mf_model(args, False).fit(train)
    t_fused, t_plain, lean = [], [], []
    c_fused, c_plain, c_lean = [], [], []
    for r in range(args.repeats):
        for model, times, cpu in ((fused, t_fused, c_fused), (plain, t_plain, c_plain)):
            model.fit(train)
            times.append(float(model.history[-1, "dur"]))
            cpu.append(float(model.history[-1, "cpu_dur"]))
        wall, cpu = lean_mf_epoch(train, n_users, n_items, args.device, r)
        lean.append(wall)
        c_lean.append(cpu)
    m_fused, m_plain, m_lean = median(t_fused), median(t_plain), median(lean)
    cf, cp, cl = median(c_fused), median(c_plain), median(c_lean)
    loss_f = [round(float(v), 4) for v in fused.history[:, "train_loss"]]
    loss_p = [round(float(v), 4) for v in plain.history[:, "train_loss"]]
    print(f"MF-BPR epoch (Gowalla, {train.shape[0]} pairs, median of "
          f"{args.repeats} interleaved rounds): MFRecommender {m_fused:.2f} s "
          f"(fused step; autograd step {m_plain:.2f} s), lean sparse-grad "
          f"SparseAdam loop {m_lean:.2f} s, ratio ours/lean {m_fused / m_lean:.2f} "
          f"(autograd step/lean {m_plain / m_lean:.2f}); CPU s: ours {cf:.2f}, "
          f"autograd step {cp:.2f}, lean {cl:.2f}, ratio ours/lean {cf / cl:.2f} "
          f"(autograd step/lean {cp / cl:.2f})")
    print(f"  train loss per epoch, fused {loss_f}; autograd {loss_p}")
    return fused


def bench_lightgcn(gowalla, args):
    train, _ = gowalla
    n_users, n_items = int(train[:, 0].max()) + 1, int(train[:, 1].max()) + 1
    steps_per_epoch = math.ceil(train.shape[0] / BATCH)
    stop = _StopAfter(args.lightgcn_steps, args.device)
    model = LightGCNRecommender(
        embedding_dim=DIM, batch_size=BATCH, n_layers=3, max_epochs=1, lr=1e-3,
        random_state=0, device=args.device, callbacks=[stop],
    )
    model.fit(train)
    t_ours = median(stop.times_[1:])
    t_lean = lean_lightgcn_steps(
        train, n_users, n_items, args.device, 0, args.lightgcn_steps
    )
    print(f"LightGCN epoch (3 layers, {steps_per_epoch} steps, median of "
          f"{args.lightgcn_steps} steps x steps/epoch): LightGCNRecommender "
          f"{t_ours * steps_per_epoch:.1f} s, lean CSR loop "
          f"{t_lean * steps_per_epoch:.1f} s, ratio ours/lean {t_ours / t_lean:.2f}")


def bench_eval(gowalla, args, model=None):
    train, test = gowalla
    if model is None:
        model = MFRecommender(embedding_dim=DIM, max_epochs=1, random_state=0,
                              device=args.device).fit(train)
    n_users, n_items = model.n_users_, model.n_items_
    test = test[(test[:, 0] < n_users) & (test[:, 1] < n_items)]
    test_csr = sp.csr_matrix(
        (np.ones(test.shape[0]), (test[:, 0], test[:, 1])), shape=(n_users, n_items)
    )
    emb = model.get_embeddings()
    ours, lean = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = evaluate_ranking(model, test, k=20, metrics=("recall", "ndcg"))
        ours.append(time.perf_counter() - t0)
        t, r, n = lean_eval(emb["user"], emb["item"], model.user_items_, test_csr,
                            args.device)
        lean.append(t)
    print(f"Full-ranking eval (Gowalla, {np.unique(test[:, 0]).shape[0]} users x "
          f"{n_items} items): evaluate_ranking {median(ours):.2f} s "
          f"(recall {res['recall']:.4f}, ndcg {res['ndcg']:.4f}), lean loop "
          f"{median(lean):.2f} s (recall {r:.4f}, ndcg {n:.4f}), ratio ours/lean "
          f"{median(ours) / median(lean):.2f}")


def bench_quality(ml, args):
    train, test = ml
    n_users, n_items = int(train[:, 0].max()) + 1, 1682
    pop = np.bincount(train[:, 1], minlength=n_items)
    R = sp.csr_matrix(
        (np.ones(train.shape[0]), (train[:, 0], train[:, 1])), shape=(n_users, n_items)
    )

    class Popularity:
        n_users_, n_items_, item_popularity_ = n_users, n_items, pop

        def recommend(self, users, n=10, filter_already_liked_items=True):
            S = np.tile(pop.astype(float), (len(users), 1))
            S[R[users].nonzero()] = -np.inf
            return np.argsort(-S, axis=1, kind="stable")[:, :n], None

    res = evaluate_ranking(Popularity(), test, metrics=("recall", "ndcg"))
    print(f"ML-100k popularity: Recall@20 {res['recall']:.4f} "
          f"NDCG@20 {res['ndcg']:.4f}")
    for cls in (MFRecommender, LightGCNRecommender):
        recalls, ndcgs, secs = [], [], []
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            model = cls(random_state=seed, device=args.device, n_items=n_items)
            model.fit(train)
            secs.append(time.perf_counter() - t0)
            res = evaluate_ranking(model, test, metrics=("recall", "ndcg"))
            recalls.append(res["recall"])
            ndcgs.append(res["ndcg"])
        print(f"ML-100k {cls.__name__} (defaults): Recall@20 {median(recalls):.4f} "
              f"NDCG@20 {median(ndcgs):.4f} fit {median(secs):.1f} s "
              f"(median of {args.repeats} seeds)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_data", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", default="mf,lightgcn,eval,quality")
    parser.add_argument("--lightgcn-steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: the figures do not depend on how "
                        "busy the other cores are)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sections = set(args.sections.split(","))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, device {args.device}")
    gowalla = ml = None
    if sections & {"mf", "lightgcn", "eval"}:
        gowalla = (
            load_lightgcn_split(args.eval_data / "gowalla" / "train.txt"),
            load_lightgcn_split(args.eval_data / "gowalla" / "test.txt"),
        )
    if "quality" in sections:
        ml = load_ml100k(args.eval_data / "ml-100k" / "u.data")
    model = None
    if "mf" in sections:
        model = bench_mf(gowalla, args)
    if "lightgcn" in sections:
        bench_lightgcn(gowalla, args)
    if "eval" in sections:
        bench_eval(gowalla, args, model)
    if "quality" in sections:
        bench_quality(ml, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
