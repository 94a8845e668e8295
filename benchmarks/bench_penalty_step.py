"""CPU seconds of an MF training step with each regularizer, and of its penalty alone.

A quick, load-tolerant look at what a regularizer adds to an MF-BPR step on
Gowalla-sized batches (d=64, batch 2048, one negative): for every configuration
``MFRecommender`` is fitted for ``--steps`` training steps (interrupted after
them), and the CPU seconds (``time.process_time``, this process, one torch
thread by default) of every step are recorded; the first step (warm-up, set-up)
is dropped and the median reported, with its ratio to ``regularizer=None``.
For a penalty-only regularizer on the compiled step, the CPU seconds spent in
the penalty's value and gradient (``CompiledBPRStep``'s penalty call) are
reported separately ("penalty"); "path" says whether the steps ran on the
compiled step or on the torch step.

CPU seconds, not wall seconds, because the machines this is run on are often
shared: a step's CPU time is what it computes, its wall time also what it waits.
Epoch ratios under load and on idle machines are ``bench_speed.py``'s job.

Data: ``gowalla`` (the LightGCN split's training pairs, ``DATA_DIR/gowalla``),
``ml-100k`` (all 100,000 pairs of ``DATA_DIR/ml-100k/u.data``: few users and
items, so a batch repeats rows much more than Gowalla's) or ``synthetic``
(30,000 users, 41,000 items, 810,000 pairs with Zipf-like item and user
popularity, the size of Gowalla; no data folder needed).

Usage::

    python benchmarks/bench_penalty_step.py [DATA_DIR] \\
        [--data gowalla|ml-100k|synthetic] \\
        [--regularizers logdet ...] [--steps 40] [--threads 1] \\
        [--set uniformity:max_rows=256 ...]
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skorch.callbacks import Callback

from skcollapse.recommenders import MFRecommender, _fast
from skcollapse.regularizers import get_regularizer_names

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

DIM, BATCH = 64, 2048


class _StepTimer(Callback):
    """CPU seconds of every training step; stops the fit after ``steps + 1``."""

    def __init__(self, steps):
        self.steps = steps

    def initialize(self):
        self.cpu_ = []
        self.compiled_ = False
        self._c = None
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        self._c = time.process_time()

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        self.cpu_.append(time.process_time() - self._c)
        self.compiled_ = bool(net._fit_state_.compiled_step)
        if len(self.cpu_) >= self.steps + 1:
            raise KeyboardInterrupt  # skorch ends training cleanly on it


def synthetic_pairs(n_users=30_000, n_items=41_000, n_pairs=810_000, seed=0):
    """Distinct (user, item) pairs with Zipf-like popularity on both sides."""
    rng = np.random.default_rng(seed)
    pu = 1.0 / np.arange(1, n_users + 1) ** 0.6
    pi = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users = rng.choice(n_users, size=int(n_pairs * 1.1), p=pu / pu.sum())
    items = rng.choice(n_items, size=int(n_pairs * 1.1), p=pi / pi.sum())
    keys = np.unique(users.astype(np.int64) * n_items + items)
    keys = rng.permutation(keys)[:n_pairs]
    return np.column_stack([keys // n_items, keys % n_items])


def load_gowalla(data_dir):
    pairs = []
    with open(Path(data_dir) / "gowalla" / "train.txt") as f:
        for line in f:
            ids = line.split()
            if len(ids) > 1:
                u = int(ids[0])
                pairs.extend((u, int(i)) for i in ids[1:])
    return np.asarray(pairs, dtype=np.int64)


def time_config(X, reg, params, args):
    """Median CPU seconds of a step and of its penalty call (or None)."""
    timer = _StepTimer(args.steps)
    penalty_cpu = []
    original = _fast.CompiledBPRStep._penalty_grads

    def timed(self, *a, **k):
        c = time.process_time()
        out = original(self, *a, **k)
        penalty_cpu.append(time.process_time() - c)
        return out

    _fast.CompiledBPRStep._penalty_grads = timed
    try:
        model = MFRecommender(
            embedding_dim=DIM, batch_size=BATCH, max_epochs=1, random_state=0,
            regularizer=reg, callbacks=[timer],
            **{f"regularizer__{k}": v for k, v in params.items()},
        )
        model.fit(X)
    finally:
        _fast.CompiledBPRStep._penalty_grads = original
    step = statistics.median(timer.cpu_[1:])
    pen = statistics.median(penalty_cpu[1:]) if len(penalty_cpu) > 1 else None
    return step, pen, timer.compiled_


def parse_sets(values):
    """``NAME:PARAM=VALUE`` strings as ``{NAME: {PARAM: VALUE}}`` (VALUE a
    Python literal, else the string)."""
    out = {}
    for v in values or []:
        name, _, assignment = v.partition(":")
        key, _, raw = assignment.partition("=")
        try:
            value = ast.literal_eval(raw)  # numbers, None, True/False
        except (ValueError, SyntaxError):
            value = raw
        out.setdefault(name, {})[key] = value
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", default=None)
    parser.add_argument("--data", choices=("gowalla", "ml-100k", "synthetic"),
                        default=None)
    parser.add_argument("--regularizers", nargs="+",
                        default=[n for n in get_regularizer_names()
                                 if not n.startswith("directspec")])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", metavar="NAME:PARAM=VALUE",
                        help="regularizer parameters other than the defaults")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = args.data or ("gowalla" if args.data_dir else "synthetic")
    if data == "gowalla":
        X = load_gowalla(args.data_dir)
    elif data == "ml-100k":
        X = np.loadtxt(Path(args.data_dir) / "ml-100k" / "u.data", dtype=np.int64,
                       usecols=(0, 1)) - 1  # 1-based ids
    else:
        X = synthetic_pairs()
    sets = parse_sets(args.set)
    print(f"{data}: {X.shape[0]} pairs, {np.unique(X[:, 0]).size} users, "
          f"{np.unique(X[:, 1]).size} items; d={DIM}, batch {BATCH}, 1 negative; "
          f"torch {torch.__version__}, {args.threads} thread(s); load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; median CPU s of "
          f"{args.steps} steps (first dropped)", flush=True)
    print(f"{'regularizer':<14} {'path':<9} {'step ms':>8} {'x None':>7} "
          f"{'penalty ms':>10}")
    base = None
    for reg in [None, *args.regularizers]:
        params = sets.get(reg or "None", {})
        step, pen, compiled = time_config(X, reg, params, args)
        base = step if reg is None else base
        label = (reg or "None") + ("*" if params else "")
        path = "compiled" if compiled else "torch"
        print(f"{label:<14} {path:<9} {1e3 * step:>8.2f} {step / base:>7.2f} "
              + (f"{1e3 * pen:>10.2f}" if pen is not None else f"{'':>10}"),
              flush=True)
    if sets:
        print("* " + "; ".join(f"{k}: {v}" for k, v in sets.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
