"""ReSN side by side: skcollapse's ``regularizer="resn"`` against the authors' code.

Lin et al., "How Do Recommendation Models Amplify Popularity Bias? An Analysis
from the Spectral Perspective" (WSDM 2025), code ``LIN452/ReSN`` (TensorFlow 1).
Their code runs as it is through ``benchmarks/peers/resn_reference.py`` in its
own environment (``benchmarks/peers/setup_resn.sh``); it saves the user and item
tables at every evaluation. This script makes the split both sides train on,
scores the saved tables of the authors' runs with skcollapse's metric code, trains
skcollapse's :class:`~skcollapse.recommenders.MFRecommender` with and without
``regularizer="resn"`` on the same split, scores it with the same code, and writes
one JSON file per (side, setting) under ``benchmarks/results/resn/<dataset>/``.

Data: the authors' MovieLens-1M split, shipped in their repository
(``data/ml-1m/train.txt``, ``test.txt``: ``user item item ...`` lines, 6,040
users, 3,706 items with ids up to 3951; 800,167 train and 200,042 test pairs: every rating of MovieLens-1M, split 80/20). It is GroupLens data (no redistribution): the scripts
take its folder as an argument and nothing of it is committed.

Protocol (nothing is selected on the test split)
------------------------------------------------
* ``split``: ``PerUserValidSplit(0.1, random_state=0)`` holds out 10% of every
  user's training pairs for validation. Both sides train on the remaining
  pairs (``WORK/split/train.txt``); the authors' code is given the real test
  file as its ``test.txt``.
* The authors' code checks NDCG@20 on its ``test.txt`` every 10 epochs and
  reports the best one: **it selects the epoch on the test split**. That figure
  is kept (``authors_selection``) but not used: here every side's epoch is the
  one of best *validation* NDCG@20 among the same checkpoints (after 1, 11, 21,
  ... epochs; early stop after 100 epochs without a better one, their rule),
  and the test pairs are ranked once at that epoch.
* Both sides are scored by :func:`score_tables`: scores ``U Vᵀ``, every training
  pair (train and validation) filtered for the test ranking, the training
  pairs for the validation ranking, top 20, then
  :func:`skcollapse.metrics.recall_at_k` and :func:`~skcollapse.metrics.ndcg_at_k`
  (the LightGCN convention, as their evaluator: recall over all held-out items,
  NDCG's ideal over ``min(|rel|, 20)``).

The authors' hyper-parameters (README command ``python main.py regmf --lr 0.002
--dataset ml-1m --reglam_list 0.01 --alpha0 0 --dim 256``; ``main.py``
defaults ``--max_iters 221 --batch_size 11 --lam 1e-5``) and how ours map:

=====================  =========================================  ===========================
their setting          meaning in their code                      ours
=====================  =========================================  ===========================
dim 256                embedding width                            ``embedding_dim=256``
xavier initialiser     U(+-sqrt(6/(rows+dim))) per table          ``init="xavier_uniform"``
lr 0.002, Adam         dense Adam over both tables                ``lr=0.002``, torch's Adam
batch_size 11          2**11 users a step, all their positives    ``batch_size=ceil(n_train /
                       (~3 steps an epoch on ML-1M)               n_steps)``: the same number
                                                                  of steps an epoch
max_iters 221          epochs                                     ``max_epochs=221``
neg_num 4              uniform negatives a positive, not the      ``n_negatives=4``,
                       user's own items                           ``"independent"``
weighted_mse           sum (1-sig(s+))^2 + sum sig(s-)^2          :class:`AuthorsMSE` (mean
                                                                  over positives; Adam does
                                                                  not see the scale)
lam 1e-5               1e-5/2 ||Theta||^2 on a loss summed over   ``weight_decay=0`` (a row's
                       ~240k positives a step                     pull is 1e-4 to 1e-6 of its
                                                                  data gradient)
reglam 0.01            0.01 ||Y q||^2, Y = sig(U_b Vᵀ) (batch     ``regularizer__weight`` on
                       users x all items), q = Yᵀ1/|Yᵀ1| held     validation from ``c / B²``,
                       constant: one power step                   c in ``--resn-c``
=====================  =========================================  ===========================

skcollapse's ReSN is ``||U_b V_bᵀ||₂²`` of the batch's own user and positive
item rows (``B`` pairs, raw scores, 5 power steps on ``d x d`` factors); its size
grows with ``B²``, so its weight is given as ``c / B²`` and ``c`` is chosen on
validation (``--resn-c``, default decades around 0.3, the share the authors'
``0.01 ||Y q||²`` takes of their summed loss per positive when the scores
are of order one). The two penalties are not the same function; the weights do
not transfer.

Usage::

    bash benchmarks/peers/setup_resn.sh            # their environment (once)
    python benchmarks/bench_resn.py split PEER/data/ml-1m --work WORK
    benchmarks/peers/.venv-resn/bin/python benchmarks/peers/resn_reference.py \\
        PEER --train WORK/split/train.txt --test WORK/split/test.txt \\
        --work WORK/reference --reglam 0 0.01
    python benchmarks/bench_resn.py reference PEER/data/ml-1m --work WORK
    python benchmarks/bench_resn.py ours PEER/data/ml-1m --work WORK

(``PEER``: a work tree of ``LIN452/ReSN``.) The authors' code is not seeded
(``resn_reference.py`` says why): for their spread, repeat the reference run
into ``WORK/reference-2``, ... and score each with ``reference --ref
reference-2``. A smoke run (a user subsample, a few
epochs, results away from the committed files)::

    SKCOLLAPSE_BENCH_RESULTS=/tmp/resn-smoke python benchmarks/bench_resn.py \\
        split PEER/data/ml-1m --work /tmp/resn-smoke --max-users 600
    ... resn_reference.py ... --max-iters 12 --neg-epochs 2
    SKCOLLAPSE_BENCH_RESULTS=/tmp/resn-smoke python benchmarks/bench_resn.py \\
        ours PEER/data/ml-1m --work /tmp/resn-smoke --max-epochs 12 --resn-c 1
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import _results
import torch
from skorch.callbacks import Callback

from skcollapse.datasets import read_lightgcn_file
from skcollapse.metrics import effective_rank, ndcg_at_k, recall_at_k
from skcollapse.model_selection import PerUserValidSplit
from skcollapse.nn import CFLoss, row_scores
from skcollapse.recommenders import MFRecommender

K = 20
EVAL_EVERY = 10  # trainer.py: evaluates when i % 10 == 0, i.e. after 1, 11, 21, ...
PATIENCE = 100  # trainer.py: stops when i - best_iter > 100
AUTHORS = {  # README command and main.py defaults
    "dim": 256, "lr": 0.002, "max_iters": 221, "batch_exp": 11, "lam": 1e-5,
    "neg_num": 4, "reglam": 0.01,
}
RESN_C = (0.03, 0.3, 3.0)


# ------------------------------------------------------------------ split files
def write_split(path, pairs, n_users):
    """``pairs`` in the authors' format: one ``user item item ...`` line a user."""
    order = np.lexsort((np.arange(len(pairs)), pairs[:, 0]))
    pairs = pairs[order]
    bounds = np.searchsorted(pairs[:, 0], np.arange(n_users + 1))
    with open(path, "w") as fh:
        for u in range(n_users):
            items = pairs[bounds[u]:bounds[u + 1], 1]
            fh.write(" ".join([str(u), *map(str, items.tolist())]) + "\n")


def make_split(args):
    """``WORK/split/{train,valid,test}.txt`` and ``split.json``."""
    train = read_lightgcn_file(os.path.join(args.data, "train.txt"))
    test = read_lightgcn_file(os.path.join(args.data, "test.txt"))
    n_users = int(max(train[:, 0].max(), test[:, 0].max())) + 1
    note = "all users"
    if args.max_users and args.max_users < n_users:
        rng = np.random.default_rng(args.seed)
        keep = np.sort(rng.choice(n_users, size=args.max_users, replace=False))
        remap = np.full(n_users, -1)
        remap[keep] = np.arange(keep.size)
        train, test = train[remap[train[:, 0]] >= 0], test[remap[test[:, 0]] >= 0]
        train[:, 0], test[:, 0] = remap[train[:, 0]], remap[test[:, 0]]
        n_users = keep.size
        note = f"random {keep.size} users (seed {args.seed}), ids remapped"
    tr, va = PerUserValidSplit(args.valid_size, random_state=args.seed)(train)
    fit, valid = train[np.asarray(tr.indices)], train[np.asarray(va.indices)]
    out = os.path.join(args.work, "split")
    os.makedirs(out, exist_ok=True)
    for name, pairs in (("train", fit), ("valid", valid), ("test", test)):
        write_split(os.path.join(out, f"{name}.txt"), pairs, n_users)
    info = {"source": os.path.abspath(args.data), "users": note,
            "valid": f"PerUserValidSplit({args.valid_size}, random_state={args.seed})",
            "n_users": n_users,
            "n_items": int(max(train[:, 1].max(), test[:, 1].max())) + 1,
            "n_train": len(fit), "n_valid": len(valid), "n_test": len(test),
            "data": {f: _results.sha256(os.path.join(args.data, f))
                     for f in ("train.txt", "test.txt")}}
    with open(os.path.join(out, "split.json"), "w") as fh:
        json.dump(info, fh, indent=1, sort_keys=True)
    print(f"split: {info}", flush=True)
    return info


def load_split(work):
    folder = os.path.join(work, "split")
    with open(os.path.join(folder, "split.json")) as fh:
        info = json.load(fh)
    pairs = {name: read_lightgcn_file(os.path.join(folder, f"{name}.txt"))
             for name in ("train", "valid", "test")}
    return info, pairs


# ---------------------------------------------------------------- one metric code
def _csr(pairs, shape):
    return sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=shape)


class Scorer:
    """Validation and test metrics of ``(U, V)`` tables: the same code for both sides.

    Validation ranks every item but the user's training pairs; test ranks every
    item but the training and validation pairs (all the model may know). Top
    ``K`` by ``U Vᵀ``, then skcollapse's ``recall_at_k`` / ``ndcg_at_k`` over
    the users with held-out items.
    """

    def __init__(self, info, pairs, chunk=2048):
        shape = (info["n_users"], info["n_items"])
        self.shape, self.chunk = shape, chunk
        self.seen = {"valid": _csr(pairs["train"], shape),
                     "test": _csr(np.concatenate([pairs["train"], pairs["valid"]]), shape),
                     # the authors' evaluator's mask: only the pairs it trained on
                     "test_train_filter": _csr(pairs["train"], shape)}
        self.relevant = {k: _csr(pairs[k], shape) for k in ("valid", "test")}
        self.relevant["test_train_filter"] = self.relevant["test"]

    def top(self, U, V, split):
        U = torch.as_tensor(np.asarray(U, dtype=np.float32))
        V = torch.as_tensor(np.asarray(V, dtype=np.float32))
        seen = self.seen[split]
        out = np.empty((U.shape[0], K), dtype=np.int64)
        for s in range(0, U.shape[0], self.chunk):
            S = U[s:s + self.chunk] @ V.T
            block = seen[s:s + self.chunk].tocoo()
            S[torch.as_tensor(block.row), torch.as_tensor(block.col)] = -torch.inf
            out[s:s + self.chunk] = torch.topk(S, K, dim=1).indices.numpy()
        return out

    def __call__(self, U, V, split):
        rec = self.top(U, V, split)
        rel = self.relevant[split]
        return {"recall": recall_at_k(rel, rec, k=K), "ndcg": ndcg_at_k(rel, rec, k=K)}


def tables_summary(U, V):
    return {"erank_user": effective_rank(np.asarray(U, dtype=np.float64)),
            "erank_item": effective_rank(np.asarray(V, dtype=np.float64))}


def select_on_valid(curve):
    """Index of the best validation NDCG@20 (first of ties, their ``>`` rule)."""
    best = 0
    for j, point in enumerate(curve):
        if point["valid"]["ndcg"] > curve[best]["valid"]["ndcg"]:
            best = j
    return best


# ------------------------------------------------------------- the authors' side
def pad(table, n_rows):
    """Their tables have ``max id + 1`` rows of the files they were given (an
    id seen only in validation has none): zero rows up to ``n_rows``."""
    out = np.zeros((n_rows, table.shape[1]), dtype=np.float32)
    out[:table.shape[0]] = table[:n_rows]
    return out


def score_reference(args):
    info, pairs = load_split(args.work)
    scorer = Scorer(info, pairs)
    ref = os.path.join(args.work, args.ref)
    with open(os.path.join(ref, "meta.json")) as fh:
        meta = json.load(fh)
    for run_dir in sorted(glob.glob(os.path.join(ref, "runs", "reglam-*"))):
        with open(os.path.join(run_dir, "log.json")) as fh:
            log = json.load(fh)
        curve = []
        for path in sorted(glob.glob(os.path.join(run_dir, "emb-e*.npz"))):
            z = np.load(path)
            U, V = pad(z["user"], info["n_users"]), pad(z["item"], info["n_items"])
            epoch = int(os.path.basename(path)[5:9])
            theirs = next((e for e in log["evals"] if e["epoch"] == epoch), {})
            # validation only while choosing (test is read once, below)
            curve.append({"epoch": epoch, "valid": scorer(U, V, "valid"),
                          **tables_summary(U, V),
                          "authors_test": {k: theirs.get(k) for k in ("ndcg", "recall")},
                          "wall_s": theirs.get("wall_s"), "_path": path})
            print(f"  {log['tag']} epoch {epoch:3d}: valN {curve[-1]['valid']['ndcg']:.4f}"
                  f"; erank_i {curve[-1]['erank_item']:.1f}", flush=True)
        if not curve:
            continue
        best = curve[select_on_valid(curve)]
        z = np.load(best["_path"])
        U, V = pad(z["user"], info["n_users"]), pad(z["item"], info["n_items"])
        best["test"] = scorer(U, V, "test")
        # the check that both metric codes agree, at the chosen epoch: ours with
        # their evaluator's mask, beside their evaluator's own value
        best["test_train_filter"] = scorer(U, V, "test_train_filter")
        print(f"  {log['tag']} chosen epoch {best['epoch']}: testN "
              f"{best['test']['ndcg']:.4f}; same mask as theirs "
              f"{best['test_train_filter']['ndcg']:.4f}, their evaluator "
              f"{best['authors_test'].get('ndcg') or float('nan'):.4f}", flush=True)
        for point in curve:
            point.pop("_path")
        setting = "none" if log["reglam"] == 0 else f"resn-beta{log['reglam']:g}"
        record = {
            "benchmark": "bench_resn reference", "command": " ".join(sys.argv),
            "side": "authors (LIN452/ReSN as it is)", "reference_run": args.ref,
            "dataset": args.dataset,
            "split": info, "setting": setting, "reglam": log["reglam"],
            "config": {"authors_command": meta["authors_command"],
                       "reference_command": meta["command"],
                       "checkout_commit": meta.get("checkout_commit"),
                       "prepared": meta["prepared"],
                       "versions": {k: meta[k] for k in ("python", "tensorflow", "numpy")}},
            "selection": {"rule": "best validation NDCG@20 over the saved "
                                  "checkpoints (every 10 epochs)",
                          "epoch": best["epoch"]},
            "test": best["test"], "valid": best["valid"],
            "erank_user": best["erank_user"], "erank_item": best["erank_item"],
            "authors_selection": log["authors_selection"],
            "curve": curve,
            "train_s": (log.get("finished") or 0) - log["started"] or None,
            "meta": _results.run_metadata(
                [os.path.join(args.data, "train.txt"), os.path.join(args.data, "test.txt")]),
        }
        suffix = "" if args.ref == "reference" else f"-{args.ref}"
        path = _results.write_result(
            f"resn/{args.dataset}/authors-{setting}{suffix}.json", record)
        print(f"authors {setting}: epoch {best['epoch']} (validation) test R@20 "
              f"{best['test']['recall']:.4f} N@20 {best['test']['ndcg']:.4f}; "
              f"their own test-selected N@20 {log['authors_selection']['ndcg']} at "
              f"epoch {log['authors_selection']['epoch']}; {os.path.relpath(path)}",
              flush=True)


# ------------------------------------------------------------------- our side
class AuthorsMSE(CFLoss):
    """The authors' ``weighted_mse`` (``src/models/recommenders.py``), our code:
    ``(1 - sigmoid(s_ui))² + sum_j sigmoid(s_uj)²`` per positive, averaged over
    the batch's positives (theirs sums; Adam's steps do not depend on the scale,
    only the other terms' weights do, and those are mapped accordingly)."""

    def forward(self, user, pos, neg=None, neg_mask=None, **kwargs):
        pos_s = (user * pos).sum(-1)
        loss = (1.0 - torch.sigmoid(pos_s)).pow(2)
        if neg is not None:
            # row_scores: einsum("bd,bnd->bn") with a backward in the rows'
            # own layout (einsum's was the costliest part of the step)
            neg_s = row_scores(user, neg) if neg.dim() == 3 else user @ neg.T
            terms = torch.sigmoid(neg_s).pow(2)
            if neg_mask is not None:
                terms = terms.masked_fill(neg_mask, 0.0)
            loss = loss + terms.sum(-1)
        return loss.mean()


class Checkpoints(Callback):
    """Every ``EVAL_EVERY`` epochs (1, 11, 21, ...): validation metrics and
    erank of the tables; keeps the best-validation tables; stops after
    ``PATIENCE`` epochs without a better validation NDCG@20 (the authors' rule,
    on validation instead of test). The test split is not read here: the
    caller scores the kept tables once."""

    def __init__(self, scorer, n_users, n_items):
        self.scorer, self.n_users, self.n_items = scorer, n_users, n_items

    def on_train_begin(self, net, **kwargs):
        self.curve, self.best, self.best_tables = [], None, None
        self._start = time.perf_counter()

    def tables(self, net):
        emb = net.get_embeddings()
        U = np.zeros((self.n_users, emb["user"].shape[1]), dtype=np.float32)
        V = np.zeros((self.n_items, emb["item"].shape[1]), dtype=np.float32)
        U[np.asarray(net.user_ids_, dtype=np.int64)] = emb["user"]
        V[np.asarray(net.item_ids_, dtype=np.int64)] = emb["item"]
        return U, V

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        if (epoch - 1) % EVAL_EVERY:
            return
        U, V = self.tables(net)
        point = {"epoch": epoch, "valid": self.scorer(U, V, "valid"),
                 **tables_summary(U, V),
                 "wall_s": time.perf_counter() - self._start,
                 "train_loss": float(net.history[-1, "train_loss"])}
        self.curve.append(point)
        print(f"    epoch {epoch:3d}: loss {point['train_loss']:.4f} valN "
              f"{point['valid']['ndcg']:.4f} "
              f"erank_i {point['erank_item']:.1f} ({point['wall_s']:.0f} s)", flush=True)
        if self.best is None or point["valid"]["ndcg"] > self.best["valid"]["ndcg"]:
            self.best, self.best_tables = point, (U, V)
        if epoch - self.best["epoch"] > PATIENCE:
            raise KeyboardInterrupt  # skorch ends fit() on it, as EarlyStopping does


def make_ours(args, info, n_pos, c, seed, scorer):
    n_steps = info["n_users"] // 2 ** AUTHORS["batch_exp"] + 1
    batch = math.ceil(n_pos / n_steps) if args.batch_size is None else args.batch_size
    kwargs = {}
    if c is not None:
        kwargs = {"regularizer": "resn", "regularizer__weight": c / batch**2}
    criterion = AuthorsMSE if args.loss == "authors-mse" else CFLoss
    est = MFRecommender(
        n_users=info["n_users"], n_items=info["n_items"],
        embedding_dim=AUTHORS["dim"], loss="bce", n_negatives=AUTHORS["neg_num"],
        negative_sampling="independent", init="xavier_uniform",
        lr=AUTHORS["lr"], batch_size=batch, max_epochs=args.max_epochs,
        weight_decay=args.weight_decay, criterion=criterion, random_state=seed,
        # TF1's Adam moves every row's moments each step (their MF's gradient is
        # dense anyway: the score matrix of the batch users against all items)
        optimizer=torch.optim.Adam,
        callbacks=[("checkpoints", Checkpoints(scorer, info["n_users"], info["n_items"]))],
        **kwargs)
    return est, batch


def run_ours(args):
    info, pairs = load_split(args.work)
    scorer = Scorer(info, pairs)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    settings = [("none", None)] + [(f"resn-c{c:g}", c) for c in args.resn_c]
    if args.only:
        settings = [s for s in settings if s[0] in args.only]
    for seed in args.seeds:
        for setting, c in settings:
            rel = f"resn/{args.dataset}/ours-{args.loss}-{setting}-seed{seed}.json"
            if args.resume and os.path.exists(os.path.join(_results.RESULTS, rel)):
                print(f"{setting} seed {seed}: done before ({rel})", flush=True)
                continue
            est, batch = make_ours(args, info, len(pairs["train"]), c, seed, scorer)
            print(f"ours {setting} seed {seed}: batch {batch} pairs, "
                  f"{est.get_params().get('regularizer__weight', 0):.3g} weight", flush=True)
            start = time.perf_counter()
            est.fit(pairs["train"])
            fit_s = time.perf_counter() - start
            cb = dict(est.callbacks_)["checkpoints"]
            best = dict(cb.best)
            best["test"] = scorer(*cb.best_tables, "test")  # once, after the choice
            record = {
                "benchmark": "bench_resn ours", "command": " ".join(sys.argv),
                "side": "skcollapse", "dataset": args.dataset, "split": info,
                "setting": setting, "seed": seed,
                "config": {"estimator": "MFRecommender", "loss": args.loss,
                           "resn_c": c, "batch_size": batch,
                           "params": {k: v for k, v in est.get_params().items()
                                      if k in ("embedding_dim", "lr", "n_negatives",
                                               "negative_sampling", "init", "batch_size",
                                               "max_epochs", "weight_decay", "regularizer",
                                               "regularizer__weight", "random_state")}},
                "selection": {"rule": "best validation NDCG@20 over the checkpoints "
                                      f"(every {EVAL_EVERY} epochs; stop after {PATIENCE} "
                                      "without a better one)", "epoch": best["epoch"]},
                "test": best["test"], "valid": best["valid"],
                "erank_user": best["erank_user"], "erank_item": best["erank_item"],
                "curve": cb.curve, "fit_s": fit_s, "epochs": len(est.history),
                "meta": _results.run_metadata(
                    [os.path.join(args.data, "train.txt"),
                     os.path.join(args.data, "test.txt")]),
            }
            path = _results.write_result(rel, record)
            print(f"ours {setting} seed {seed}: epoch {best['epoch']} (validation) test "
                  f"R@20 {best['test']['recall']:.4f} N@20 {best['test']['ndcg']:.4f}, "
                  f"erank_i {best['erank_item']:.1f}, {fit_s:.0f} s; "
                  f"{os.path.relpath(path)}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["split", "reference", "ours"])
    ap.add_argument("data", help="folder with the authors' train.txt and test.txt")
    ap.add_argument("--work", required=True, help="scratch folder (split, reference run)")
    ap.add_argument("--dataset", default=None, help="name in the result paths "
                    "(default: the data folder's name)")
    ap.add_argument("--ref", default="reference", help="reference: the run's folder "
                    "under WORK (repeat the authors' run into reference-2, ... for "
                    "its spread: their code is not seeded)")
    ap.add_argument("--valid-size", type=float, default=0.1)
    ap.add_argument("--max-users", type=int, default=0, help="split: a user subsample")
    ap.add_argument("--seed", type=int, default=0, help="split: validation draw")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--resn-c", type=float, nargs="+", default=list(RESN_C),
                    help="ours: ReSN weight candidates, as c / batch_size**2")
    ap.add_argument("--only", nargs="+", help="ours: run only these settings "
                    "(none, resn-c<c>)")
    ap.add_argument("--loss", choices=["authors-mse", "bce"], default="authors-mse")
    ap.add_argument("--max-epochs", type=int, default=AUTHORS["max_iters"])
    ap.add_argument("--batch-size", type=int, default=None,
                    help="ours: pairs a step (default: as many steps an epoch as theirs)")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    args.dataset = args.dataset or os.path.basename(os.path.normpath(args.data))
    if args.step == "split":
        make_split(args)
    elif args.step == "reference":
        score_reference(args)
    else:
        run_ours(args)


if __name__ == "__main__":
    main()
