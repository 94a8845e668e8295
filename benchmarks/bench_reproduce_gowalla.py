"""Reproduce Gowalla (LightGCN split) Recall@20 / NDCG@20 for MF and LightGCN.

Protocol of NGCF/LightGCN/BARS ``Gowalla_m1``: the published ``train.txt`` /
``test.txt`` split (29,858 users, 40,981 items, 810,128 / 217,242
interactions), every item not in the user's training set ranked for every test
user, embedding size 64. Published Recall@20 / NDCG@20:

* LightGCN (paper, 3 layers): 0.1830 / 0.1554
* MF-BPR (BARS, sampled-softmax-style trainer with 300 negatives): 0.1627 / 0.1378

Each run trains under a time budget (training time only, evaluation excluded;
process CPU seconds by default, ``--clock wall`` for wall-clock seconds) and evaluates every ``--eval-every`` epochs from a skorch callback, so
the printed curve is Recall@20 against epochs and seconds. The best point is
printed beside the published number with the gap.

Usage (the first line is the recipe that reaches the published MF number on a
CPU: sampled softmax over 1024 uniform negatives shared by each batch, cosine
scores at temperature 0.1, Adam at lr 1e-2, no weight decay)::

    python benchmarks/bench_reproduce_gowalla.py ../shared/eval-data \
        --model mf --loss softmax --negative-sampling shared --n-negatives 1024 \
        --similarity cosine --temperature 0.1 --lr 1e-2 --weight-decay 0 \
        --clock wall --budget-min 30 --max-epochs 40 --eval-every 4
    python benchmarks/bench_reproduce_gowalla.py ../shared/eval-data \
        --model mf --loss bpr --budget-min 30
    python benchmarks/bench_reproduce_gowalla.py ../shared/eval-data \
        --model lightgcn --budget-min 30 --eval-every 5

``--subsample-users N`` keeps the first N users (a smoke run, not comparable).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skorch.callbacks import Callback

from skcollapse.datasets import load_lightgcn
from skcollapse.metrics import effective_rank, evaluate_ranking

PUBLISHED = {
    "mf": ("MF-BPR, BARS Gowalla_m1", 0.1627, 0.1378),
    "lightgcn": ("LightGCN, He et al. SIGIR'20 Table 4", 0.1830, 0.1554),
}


class RankingCurve(Callback):
    """Evaluate Recall/NDCG@20 every ``every`` epochs; stop after ``budget_s``.

    The budget counts training time only, on the process CPU clock
    (``clock="cpu"``: robust to other jobs sharing the cores) or the wall clock.
    """

    def __init__(self, X_test, *, every, budget_s, max_epochs, clock="cpu"):
        self.X_test = X_test
        self.every = every
        self.budget_s = budget_s
        self.max_epochs = max_epochs
        self.clock = clock

    def initialize(self):
        self.points_ = []
        self.train_cpu_s_ = 0.0
        self.train_wall_s_ = 0.0
        self.eval_s_ = 0.0
        self._start = None
        return self

    def on_epoch_begin(self, net, **kwargs):
        self._start = (time.process_time(), time.perf_counter())

    def on_epoch_end(self, net, **kwargs):
        self.train_cpu_s_ += time.process_time() - self._start[0]
        self.train_wall_s_ += time.perf_counter() - self._start[1]
        used = self.train_cpu_s_ if self.clock == "cpu" else self.train_wall_s_
        epoch = len(net.history)
        out_of_time = used >= self.budget_s
        last = out_of_time or epoch >= self.max_epochs
        loss = net.history[-1].get("train_loss", float("nan"))
        line = (
            f"  epoch {epoch:4d}  train cpu {self.train_cpu_s_:6.0f}s "
            f"wall {self.train_wall_s_:6.0f}s  loss {loss:.4f}"
        )
        if epoch % self.every == 0 or last:
            start = time.perf_counter()
            res = evaluate_ranking(
                net,
                self.X_test,
                k=20,
                metrics=("recall", "ndcg"),
                batch_size=net.n_users_,
            )
            self.eval_s_ += time.perf_counter() - start
            self.points_.append(
                (
                    epoch,
                    self.train_cpu_s_,
                    self.train_wall_s_,
                    res["recall"],
                    res["ndcg"],
                )
            )
            net.history.record("recall@20", res["recall"])
            net.history.record("ndcg@20", res["ndcg"])
            line += (
                f"  R@20 {res['recall']:.4f}  N@20 {res['ndcg']:.4f}"
                f"  (eval {time.perf_counter() - start:.1f}s)"
            )
        print(line, flush=True)
        if out_of_time:
            raise KeyboardInterrupt  # skorch's way to end training gracefully


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default="../shared/eval-data")
    parser.add_argument("--model", choices=["mf", "lightgcn"], default="mf")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--n-negatives", type=int, default=None)
    parser.add_argument("--negative-sampling", choices=["independent", "shared"],
                        default=None)
    parser.add_argument("--similarity", choices=["dot", "cosine"], default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--regularizer", default=None)
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--budget-min", type=float, default=30.0)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--subsample-users", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from skcollapse.recommenders import LightGCNRecommender, MFRecommender

    data = load_lightgcn(os.path.join(args.data_dir, "gowalla"))
    train, test = data.train, data.test
    n_users, n_items = data.n_users, data.n_items
    if args.subsample_users:
        train = train[train[:, 0] < args.subsample_users]
        test = test[test[:, 0] < args.subsample_users]
        n_users = args.subsample_users
    print(
        f"Gowalla: {n_users} users, {n_items} items, {train.shape[0]} train / "
        f"{test.shape[0]} test; model {args.model}, loss {args.loss}, dim {args.dim}, "
        f"batch {args.batch_size}, budget {args.budget_min} min, device "
        f"{args.device}; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    curve = RankingCurve(
        test,
        every=args.eval_every,
        budget_s=60.0 * args.budget_min,
        max_epochs=args.max_epochs,
        clock=args.clock,
    )
    params = {
        "n_users": n_users,
        "n_items": n_items,
        "embedding_dim": args.dim,
        "loss": args.loss,
        "batch_size": args.batch_size,
        "max_epochs": args.max_epochs,
        "random_state": args.seed,
        "device": args.device,
        "callbacks": [("ranking_curve", curve)],
    }
    for name in ("n_negatives", "negative_sampling", "similarity", "temperature",
                 "lr", "weight_decay", "regularizer"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    if args.model == "lightgcn":
        model = LightGCNRecommender(n_layers=args.n_layers, **params)
    else:
        model = MFRecommender(**params)
    shown = {k: v for k, v in params.items() if k != "callbacks"}
    print(f"  {type(model).__name__}({shown})", flush=True)
    start = time.perf_counter()
    model.fit(train)
    wall = time.perf_counter() - start
    points = curve.points_
    epochs = len(model.history)
    best = max(points, key=lambda p: p[3])
    emb = model.get_embeddings()
    print(
        f"\ntrained {epochs} epochs: training {curve.train_cpu_s_:.0f} CPU s / "
        f"{curve.train_wall_s_:.0f} wall s ({curve.train_wall_s_ / max(epochs, 1):.1f} "
        f"wall s/epoch); whole run {wall:.0f} wall s incl. {curve.eval_s_:.0f}s "
        f"evaluation; erank user {effective_rank(emb['user']):.1f}, item "
        f"{effective_rank(emb['item']):.1f} (of {args.dim})"
    )
    print("\ncurve: epoch, train CPU s, train wall s, Recall@20, NDCG@20")
    for epoch, cpu, secs, rec, ndcg in points:
        print(f"  {epoch:5d} {cpu:8.0f} {secs:8.0f} {rec:.4f} {ndcg:.4f}")
    source, pub_r, pub_n = PUBLISHED[args.model]
    print(f"\n{'':<28} {'Recall@20':>9} {'NDCG@20':>8}")
    print(f"{'published':<28} {pub_r:>9.4f} {pub_n:>8.4f}   {source}")
    print(
        f"{'ours (best, epoch ' + str(best[0]) + ')':<28} {best[3]:>9.4f} {best[4]:>8.4f}"
    )
    print(
        f"{'gap (ours - published)':<28} {best[3] - pub_r:>+9.4f} {best[4] - pub_n:>+8.4f}"
    )
    if args.subsample_users:
        print("(subsampled users: not comparable with the published numbers)")


if __name__ == "__main__":
    main()
