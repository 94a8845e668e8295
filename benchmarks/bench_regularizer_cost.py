"""What each built-in regularizer adds to a training epoch (MF and LightGCN, ML-100k).

For every registered regularizer at its defaults, the seconds per training epoch
of ``MFRecommender`` and ``LightGCNRecommender`` (d=64, batch 2048, BPR with one
negative, all 100,000 pairs of ``ml-100k/u.data``) are printed relative to the
same model without a regularizer, measured in the same run. Repeats are
interleaved (None, dbn, ..., None, dbn, ...) and every figure is a median, so a
noisy shared machine moves numerator and denominator alike.

An epoch is estimated as the median training step times the steps per epoch
(the first step of a fit, warm-up and regularizer setup, is dropped); each fit
trains ``--epochs`` epochs, or stops after ``--steps N`` steps (for a quick
look at very slow configurations). Wall and CPU seconds (this process, one
torch thread) are both printed: on a loaded machine the CPU column is the
steadier. ``None/autograd`` is MF without a regularizer through the autograd
step, which every regularized MF fit takes (the plain ``None`` row uses the
fused MF-BPR step).

Usage::

    python benchmarks/bench_regularizer_cost.py ../shared/eval-data \\
        [--models mf lightgcn] [--regularizers dbn logdet ...] [--repeats 3] \\
        [--epochs 3] [--steps N] [--threads 1]
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skorch.callbacks import Callback

from skcollapse.recommenders import LightGCNRecommender, MFRecommender
from skcollapse.regularizers import get_regularizer_names

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

MODELS = {"mf": MFRecommender, "lightgcn": LightGCNRecommender}
DIM, BATCH = 64, 2048


class _StepTimer(Callback):
    """Per-step wall and CPU seconds; optionally stop after ``steps`` steps."""

    def __init__(self, steps=None):
        self.steps = steps

    def initialize(self):
        self.times_, self.cpu_ = [], []
        self._t = self._c = None
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        self._t, self._c = time.perf_counter(), time.process_time()

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        self.times_.append(time.perf_counter() - self._t)
        self.cpu_.append(time.process_time() - self._c)
        if self.steps is not None and len(self.times_) >= self.steps + 1:
            raise KeyboardInterrupt  # skorch ends training cleanly on it


def seconds_per_epoch(cls, X, reg, args, fused=True):
    """(wall, CPU) seconds per epoch: median step x steps per epoch.

    The first step of a fit (warm-up, regularizer setup) is dropped. CPU time
    (of this process, one torch thread) is what the step computes; wall time
    also holds what a loaded machine makes it wait.
    """
    timer = _StepTimer(args.steps)
    model = cls(
        embedding_dim=DIM, batch_size=BATCH, max_epochs=args.epochs,
        random_state=0, regularizer=reg, callbacks=[timer],
    )
    if not fused:  # MF's autograd step, the one a regularized MF fit takes
        model._fused_step_applies = lambda: False
    model.fit(X)
    steps_per_epoch = math.ceil(X.shape[0] / BATCH)
    return (statistics.median(timer.times_[1:]) * steps_per_epoch,
            statistics.median(timer.cpu_[1:]) * steps_per_epoch)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_data", type=Path, help="folder holding ml-100k/u.data")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--regularizers", nargs="+", default=get_regularizer_names())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    raw = np.loadtxt(args.eval_data / "ml-100k" / "u.data", dtype=np.int64,
                     usecols=(0, 1))
    X = raw - 1  # 1-based ids in u.data
    print(
        f"ML-100k, {X.shape[0]} pairs, d={DIM}, batch {BATCH}, BPR, 1 negative; "
        f"torch {torch.__version__}, {args.threads} thread(s), load "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        + (f"{args.steps} steps per fit" if args.steps else
           f"{args.epochs} epochs per fit (first dropped)")
        + f", median of {args.repeats} interleaved repeats",
        flush=True,
    )
    configs = [None, "None/autograd", *args.regularizers]
    for key in args.models:
        cls = MODELS[key]
        times = {c: [] for c in configs}
        for _ in range(args.repeats):
            for reg in configs:
                if reg == "None/autograd":
                    if cls is not MFRecommender:
                        continue
                    times[reg].append(seconds_per_epoch(cls, X, None, args, False))
                else:
                    times[reg].append(seconds_per_epoch(cls, X, reg, args))
        base = [statistics.median(t[k] for t in times[None]) for k in (0, 1)]
        print(f"\n{cls.__name__}: seconds per epoch (wall, CPU), and relative to no "
              "regularizer")
        print(f"{'regularizer':<14} {'wall s':>8} {'x None':>7} {'CPU s':>8} "
              f"{'x None':>7}")
        for reg in configs:
            if not times[reg]:
                continue
            wall = statistics.median(t[0] for t in times[reg])
            cpu = statistics.median(t[1] for t in times[reg])
            print(f"{reg or 'None':<14} {wall:>8.3f} {wall / base[0]:>7.2f} "
                  f"{cpu:>8.3f} {cpu / base[1]:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
