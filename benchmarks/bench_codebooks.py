"""Codebook collapse of semantic IDs, and what each fix changes.

For each item table, residual k-means and the RQ-VAE (without any fix, and
with each fix of :class:`skcollapse.quantization.RQVAE`) quantize the items
into ``--levels`` codes of ``--codebook-size``; the result files hold the
codebook metrics (per-level usage, perplexity, code and residual erank,
collision rate, largest collision group, reconstruction error) of every seed.

Item tables
-----------
``planted``
    ``--planted-clusters`` well-separated clusters (centres far apart, items a
    small isotropic spread around them), as many items as ML-100k has. The
    right answer is known: level 0 of a quantizer with ``K >= clusters`` codes
    should give each cluster its own code (with ``K`` = clusters, the default:
    ``level0_purity`` = 1, the share of
    items whose level-0 code is their cluster's majority code, and
    ``level0_codes_per_cluster`` = 1).
``planted-erank``
    Two tables of the same size and scale from
    :func:`skcollapse.datasets.make_collapsed_embeddings`: effective rank 4
    (collapsed) and 64 (healthy). The controlled test of "do codes from a less
    collapsed table collide less?".
``ml-100k``
    The item tables of each of ``--models`` trained on MovieLens-100k's
    per-user 80/20 training pairs (seed 0), with ``regularizer=None`` and with
    skcollapse regularizers at their defaults (``--regularizers``; defaults
    chosen on validation, see ``choose_defaults.py``). ``NAME:W`` sets the
    weight instead (e.g. ``logdet:0.01``, which raises the item erank at a
    cost in accuracy: a table to test the erank question with, not a
    recommended setting). Tables ``<data>-<model>-<regularizer>``, e.g.
    ``ml-100k-mf-none``, ``ml-100k-two-tower-logdet``. The models, ids only,
    ``random_state=0``:

    * ``mf``: ``MFRecommender`` at its defaults (BPR, 30 epochs);
    * ``two-tower``: ``TwoTowerRecommender`` at its documented defaults
      (in-batch sampled softmax with the logQ correction, cosine /
      temperature 0.1, dim 64, one hidden layer of 64, batch 2048, lr 1e-3),
      no side features (Gowalla has none; the same on both data sets); its
      item table is the item tower's output. Its epochs follow a step budget
      fixed from sizes alone (:data:`TWO_TOWER_STEPS`: the optimizer steps of
      its default 30 epochs on ML-100k), so ML-100k trains its default 30
      epochs and Gowalla 3 (``--two-tower-steps`` changes the budget, e.g. 1
      for a smoke run of one epoch).
``gowalla``
    The same on the LightGCN split of Gowalla (all users). Reported only:
    ``choose_codebook_defaults.py`` tunes on the planted and ML-100k MF
    tables.

Protocol (nothing chosen on a reported number)
----------------------------------------------
1. *Selection*, with the first seed only: the table's items are split 80/20
   (``--valid-size``, seeded). Each candidate setting of :data:`GRID` is
   fitted on the 80% and quantizes the 20%; the setting of each fix with the
   lowest held-out **relative reconstruction error** is kept (the quantizer's
   own objective, not the collision figures the table reports). The held-out
   usage and collisions are kept in the files beside it.
2. *Reporting*: each chosen setting is fitted on the whole catalogue (every
   item needs an ID) with every seed, and its codebook metrics are recorded.
   Seeds after the first took no part in the selection.
3. *Defaults*: ``choose_codebook_defaults.py`` reads the held-out figures of
   step 1 (never those of step 2) of the tuning tables and chooses
   ``RQVAE``'s defaults from them. So that a candidate means the same whatever
   those defaults are, every RQ-VAE candidate spells out each fix's parameter
   (``tables_codebooks.UNFIXED`` plus its own); ``rqvae-kmeans-restart``
   (k-means init with dead-code restart) joined the grid after the first run,
   because the two fixes passed the rule alone but their combination had not
   been measured.

Result files: ``benchmarks/results/codebooks/<table>.json`` (configuration,
seeds, commit, data checksums, the table's erank, the candidates' validation
figures, each chosen setting's per-seed metrics, timings).
``benchmarks/make_tables.py`` renders the ``codebooks`` table from them.

The item tables are also written to ``--cache-dir`` (outside the repository)
for the side-by-side run of ``benchmarks/peers/botta_rqvae.py``.

Usage::

    python benchmarks/bench_codebooks.py ../shared/eval-data \
        --tables planted planted-erank ml-100k --models mf --seeds 0 1 2
    python benchmarks/bench_codebooks.py ../shared/eval-data \
        --tables ml-100k gowalla --models two-tower --regularizers none --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import _results
import torch
from tables_codebooks import UNFIXED

from skcollapse.datasets import make_collapsed_embeddings
from skcollapse.metrics import effective_rank
from skcollapse.quantization import RQVAE, ResidualKMeans, codebook_metrics

# Every candidate, grouped by the fix it tests. Written before the first run:
# each fix alone on top of the un-fixed RQ-VAE (``UNFIXED``: random init,
# gradient codebooks, straight-through, no restart, no diversity penalty; every
# parameter spelled out, so a row means the same whatever RQVAE's defaults),
# its parameter on a short grid around the values of its paper, and then every
# fix at once. Within a group the validation criterion picks one setting.
# ``rqvae-kmeans-restart`` was added after the first run: k-means init and
# dead-code restart both reconstructed held-out items better than the un-fixed
# RQ-VAE, but their combination had not been a candidate, so
# ``choose_codebook_defaults.py`` could not make both defaults.
BASE = dict(UNFIXED)
GRID = {
    "rkm": [("ResidualKMeans", {})],
    "rqvae-none": [("RQVAE", BASE)],
    "rqvae-kmeans": [("RQVAE", {**BASE, "init": "kmeans"})],
    "rqvae-restart": [("RQVAE", {**BASE, "dead_code_threshold": t}) for t in (1, 4)],
    "rqvae-ema": [("RQVAE", {**BASE, "codebook_update": "ema", "ema_decay": d})
                  for d in (0.9, 0.99)],
    "rqvae-diversity": [("RQVAE", {**BASE, "diversity_weight": w})
                        for w in (0.01, 0.1, 1.0)],
    "rqvae-rotation": [("RQVAE", {**BASE, "straight_through": "rotation"})],
    "rqvae-kmeans-restart": [("RQVAE", {**BASE, "init": "kmeans",
                                        "dead_code_threshold": t}) for t in (1, 4)],
    "rqvae-all": [("RQVAE", {**BASE, "init": "kmeans", "dead_code_threshold": 1,
                             "codebook_update": "ema", "ema_decay": 0.99,
                             "diversity_weight": w, "straight_through": "rotation"})
                  for w in (0.0, 0.1)],
}
ROW_ORDER = list(GRID)
MODELS = ("mf", "two-tower")


# ----------------------------------------------------------------- tables
def planted_clusters(n_items, n_features, n_clusters, random_state=0):
    """Well-separated clusters: centres of norm ~10, spread 0.3 around them."""
    rng = np.random.default_rng(random_state)
    centres = rng.normal(size=(n_clusters, n_features))
    centres *= 10.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.arange(n_items) % n_clusters
    rng.shuffle(labels)
    X = centres[labels] + 0.3 * rng.normal(size=(n_items, n_features)) / np.sqrt(
        n_features)
    return X, labels


#: The two-tower model's training budget in optimizer steps: what its default
#: ``max_epochs=30`` at its default ``batch_size=2048`` take on ML-100k's
#: per-user 80/20 training pairs (79,619 pairs: 39 batches, 30 x 39 = 1,170).
#: Fixed before any two-tower table was made, from sizes only (no validation or
#: test figure): ML-100k trains its default 30 epochs, Gowalla (810,128 pairs,
#: 396 batches) 3 epochs, a few minutes on 2 cores instead of hours.
TWO_TOWER_STEPS = 1170


def two_tower_epochs(n_pairs, steps=TWO_TOWER_STEPS, batch_size=2048, max_epochs=30):
    """Epochs of ``batch_size`` over ``n_pairs`` that reach ``steps`` optimizer
    steps (rounded up), at most ``max_epochs`` and at least one."""
    per_epoch = -(-int(n_pairs) // int(batch_size))
    return max(1, min(int(max_epochs), -(-int(steps) // per_epoch)))


def _recommender(model, X_train, kw, args):
    """``(estimator, description)`` of ``model`` at its defaults (ids only)."""
    from skcollapse.recommenders import MFRecommender, TwoTowerRecommender

    if model == "mf":
        return MFRecommender(random_state=0, **kw), "MFRecommender"
    p = TwoTowerRecommender().get_params()
    epochs = two_tower_epochs(len(X_train), args.two_tower_steps, p["batch_size"],
                              p["max_epochs"])
    steps = -(-len(X_train) // p["batch_size"])
    return TwoTowerRecommender(random_state=0, max_epochs=epochs, **kw), (
        f"TwoTowerRecommender (ids only; defaults: {p['loss']} loss, "
        f"{p['negative_sampling']} negatives, logQ {p['logq_correction']}, "
        f"{p['similarity']} / {p['temperature']}, dim {p['embedding_dim']}, hidden "
        f"{tuple(p['hidden_units'])}, batch {p['batch_size']}, lr {p['lr']}; "
        f"max_epochs={epochs}: a budget of {args.two_tower_steps} optimizer "
        f"steps at {steps} per epoch, rounded up, at most the default "
        f"{p['max_epochs']}; fixed from sizes, not on validation or test)")


def trained_item_tables(dataset, args):
    """``{name: (item table, data files, note)}`` of each of ``args.models``
    (MF, two-tower) fitted on ``dataset``'s training pairs with each of
    ``args.regularizers``; the table of ``"item"`` in ``get_embeddings()``
    (the two-tower model's item tower outputs)."""
    from bench_regularizers import load_gowalla, load_ml100k

    if dataset == "ml-100k":
        X_train, _, note = load_ml100k(args.data_dir)
        files = [os.path.join(args.data_dir, "ml-100k", "u.data")]
    else:
        X_train, _, note = load_gowalla(args.data_dir, 0)
        files = [os.path.join(args.data_dir, "gowalla", n)
                 for n in ("train.txt", "test.txt")]
    out = {}
    for model in args.models:
        for reg in args.regularizers:
            start = time.perf_counter()
            name, _, weight = reg.partition(":")  # "logdet:0.01" sets the weight
            kw = {} if name == "none" else {"regularizer": name}
            if weight:
                kw["regularizer__weight"] = float(weight)
            est, what = _recommender(model, X_train, kw, args)
            est.fit(X_train)
            item = np.asarray(est.get_embeddings()["item"], dtype=np.float64)
            print(f"  {model} {dataset} regularizer={reg}: item table {item.shape}, "
                  f"erank {effective_rank(item):.1f}, "
                  f"{time.perf_counter() - start:.0f}s", flush=True)
            out[f"{dataset}-{model}-{reg.replace(':', '-')}"] = (
                item, files, f"{what}, regularizer={name!r} "
                + (f"weight={weight}, not its default" if weight else "at its defaults")
                + f", random_state=0, trained on {note} training pairs")
    return out


def item_tables(name, args):
    if name == "planted":
        X, labels = planted_clusters(args.planted_items, 64, args.planted_clusters)
        return {"planted-clusters": (X, [], (
            f"{args.planted_clusters} planted clusters, {args.planted_items} items, "
            "d=64"), labels)}
    if name == "planted-erank":
        return {
            f"planted-erank{r}": (make_collapsed_embeddings(
                args.planted_items, 64, effective_rank=r, noise=1e-3,
                random_state=0), [], (
                f"make_collapsed_embeddings({args.planted_items}, 64, "
                f"effective_rank={r}, noise=1e-3)"))
            for r in (4, 64)
        }
    if name in ("ml-100k", "gowalla"):
        return trained_item_tables(name, args)
    raise SystemExit(f"unknown table {name!r}")


# ------------------------------------------------------------- quantizers
def make(kind, params, seed, args):
    common = {"n_levels": args.levels, "codebook_size": args.codebook_size,
              "random_state": seed}
    if kind == "ResidualKMeans":
        return ResidualKMeans(**common, **params)
    return RQVAE(**common, latent_dim=args.latent_dim,
                 hidden_layer_sizes=tuple(args.hidden), max_epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, **params)


def scale(X):
    """Items divided by their mean norm (the quantizers' lr and init assume O(1))."""
    return X / np.mean(np.linalg.norm(X, axis=1))


def purity(codes0, labels):
    """Share of items whose level-0 code is their cluster's most common one,
    and the mean number of level-0 codes per cluster."""
    hits, per = 0, []
    for c in np.unique(labels):
        col = codes0[labels == c]
        hits += np.bincount(col).max()
        per.append(np.unique(col).size)
    return hits / len(labels), float(np.mean(per))


def measure(q, X, labels=None):
    m = codebook_metrics(q, X)
    if labels is not None:
        m["level0_purity"], m["level0_codes_per_cluster"] = purity(
            q.transform(X)[:, 0], labels)
    if isinstance(q, RQVAE):
        m["epochs"] = len(q.history_)
        m["dead_codes_restarted"] = int(np.sum(
            [h["dead_codes_restarted"] for h in q.history_]))
    return m


def run_table(name, X, labels, note, files, args):
    X = scale(X)
    rng = np.random.default_rng(args.seeds[0])
    perm = rng.permutation(len(X))
    n_valid = round(args.valid_size * len(X))
    valid, train = perm[:n_valid], perm[n_valid:]
    record = {
        "table": name, "note": note,
        "shape": list(X.shape), "item_erank": effective_rank(X),
        "table_sha": hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()[:16],
        "config": {k: v for k, v in vars(args).items()
                   if k not in ("tables", "data_dir", "cache_dir")},
        "selection": {"criterion": "held-out relative reconstruction error (lower)",
                      "seed": args.seeds[0], "valid_size": args.valid_size,
                      "n_train": len(train), "n_valid": len(valid)},
        "rows": {},
        **_results.run_metadata(files),
    }
    for row in args.rows:
        cands = []
        for kind, params in GRID[row]:
            start = time.perf_counter()
            q = make(kind, params, args.seeds[0], args).fit(X[train])
            m = measure(q, X[valid])
            cands.append({"params": params, "quantizer": kind,
                          "valid": {k: m[k] for k in (
                              "relative_reconstruction_error", "usage", "perplexity",
                              "collision_rate")},
                          "fit_s": time.perf_counter() - start})
        best = min(cands, key=lambda c: c["valid"]["relative_reconstruction_error"])
        seeds = []
        for seed in args.seeds:
            start = time.perf_counter()
            q = make(best["quantizer"], best["params"], seed, args).fit(X)
            m = measure(q, X, labels)
            m["seed"], m["fit_s"] = seed, time.perf_counter() - start
            seeds.append(m)
        record["rows"][row] = {"quantizer": best["quantizer"], "chosen": best["params"],
                               "candidates": cands, "seeds": seeds}
        coll = np.mean([s["collision_rate"] for s in seeds])
        err = np.mean([s["relative_reconstruction_error"] for s in seeds])
        print(f"  {name:22s} {row:16s} usage {np.mean([s['usage'] for s in seeds]):.3f} "
              f"collisions {coll:.3f} rel.err {err:.3f}", flush=True)
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--tables", nargs="+",
                        default=["planted", "planted-erank", "ml-100k"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="models whose item tables ml-100k/gowalla quantize")
    parser.add_argument("--regularizers", nargs="+",
                        default=["none", "logdet", "directspec"])
    parser.add_argument("--two-tower-steps", type=int, default=TWO_TOWER_STEPS,
                        help="the two-tower model's optimizer steps (epochs: "
                        "rounded up, at most its default 30); default %(default)s")
    parser.add_argument("--rows", nargs="+", default=ROW_ORDER, choices=ROW_ORDER)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--hidden", nargs="+", type=int, default=[128])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--valid-size", type=float, default=0.2)
    parser.add_argument("--planted-items", type=int, default=1682)
    parser.add_argument("--planted-clusters", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "skcollapse-codebook-tables"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.cache_dir, exist_ok=True)
    for table in args.tables:
        for name, spec in item_tables(table, args).items():
            X, files, note = spec[:3]
            labels = spec[3] if len(spec) > 3 else None
            np.save(os.path.join(args.cache_dir, f"{name}.npy"), X)
            start = time.perf_counter()
            rec = run_table(name, X, labels, note, files, args)
            rec["total_s"] = time.perf_counter() - start
            path = _results.write_result(os.path.join("codebooks", f"{name}.json"), rec)
            print(f"{name}: {rec['total_s']:.0f}s -> {os.path.relpath(path)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
