"""Side by side: the RQ-VAE of EdoardoBotta/RQ-VAE-Recommender (a TIGER
reproduction) and skcollapse's RQVAE on the same item table.

The peer is run as it is, from its own checkout, never copied: this script puts
``--peer-dir`` (a clone of https://github.com/EdoardoBotta/RQ-VAE-Recommender)
on ``sys.path``, builds its ``modules.rqvae.RqVae`` and trains it the way its
``train_rqvae.py`` does: ``AdamW(lr, weight_decay=0.01)``, random batches, the
first step's forward pass on up to 20,000 items initialising every codebook by
its own k-means, ``gumbel_t=0.2``. Its data loading (``data.processed.ItemData``,
Amazon/MovieLens text features) is replaced by a ``data.schemas.SeqBatch``
whose ``x`` is the item table, the only input its RQ-VAE reads. Its only
dependency missing from the project's environment is ``einops``
(``--deps-dir``: ``pip install --target DIR einops``). Its ``forward`` is
``torch.compile``-d; ``TORCH_COMPILE_DISABLE=1`` (set here unless
``--compile``) runs the same code eagerly, which a 2-core CPU needs.

Matched settings (skcollapse's ``RQVAE(init="kmeans", dead_code_threshold=0)``,
the ``rqvae-kmeans`` row of ``bench_codebooks.py``; no restart, which the
peer does not have): 3 levels, 64 codes, latent 32, one hidden layer
of 128, commitment 0.25, straight-through (``--mode ste``; the peer's default
is Gumbel-softmax, ``--mode gumbel``), batch 256, lr 1e-3, as many steps as 50
epochs. Codes come from the peer's ``get_semantic_ids`` in eval mode, the
reconstruction from its ``decode`` of the summed codes; skcollapse's metric
functions measure both quantizers. The table is the one ``bench_codebooks.py``
wrote to its cache (checked by checksum against its result file).

Usage::

    pip install --target /tmp/peer-rqvae/deps einops
    git clone <mirror of EdoardoBotta/RQ-VAE-Recommender> /tmp/peer-rqvae/RQ-VAE-Recommender
    python benchmarks/peers/botta_rqvae.py --peer-dir /tmp/peer-rqvae/RQ-VAE-Recommender \\
        --deps-dir /tmp/peer-rqvae/deps --table ml-100k-mf-none --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(BENCH))
sys.path.insert(0, BENCH)


def metrics(codes, X, X_hat, K):
    from skcollapse.quantization import (
        code_perplexity,
        code_usage,
        collision_rate,
        largest_collision_group,
        reconstruction_error,
    )

    return {
        "usage": code_usage(codes, K).tolist(),
        "perplexity": code_perplexity(codes, K).tolist(),
        "collision_rate": collision_rate(codes),
        "largest_collision_group": largest_collision_group(codes),
        "relative_reconstruction_error": reconstruction_error(X, X_hat, relative=True),
    }


def run_peer(X, seed, args):
    import torch
    from data.schemas import SeqBatch
    from modules.quantize import QuantizeForwardMode
    from modules.rqvae import RqVae

    np.random.seed(seed)  # the peer's k-means draws its first centres from numpy
    torch.manual_seed(seed)
    mode = {"ste": QuantizeForwardMode.STE,
            "gumbel": QuantizeForwardMode.GUMBEL_SOFTMAX}[args.mode]
    model = RqVae(input_dim=X.shape[1], embed_dim=args.latent_dim,
                  hidden_dims=list(args.hidden), codebook_size=args.codebook_size,
                  codebook_kmeans_init=True, codebook_mode=mode,
                  n_layers=args.levels, commitment_weight=0.25, n_cat_features=0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    Xt = torch.from_numpy(X.astype(np.float32))
    n = len(Xt)

    def batch(x):
        empty = torch.empty(0)
        return SeqBatch(user_ids=empty, ids=empty, ids_fut=empty, x=x, x_fut=empty,
                        seq_mask=empty)

    steps = args.epochs * -(-n // args.batch_size)
    t = 0.2
    start = time.perf_counter()
    model.train()
    model(batch(Xt[: min(20000, n)]), t)  # train_rqvae.py: k-means init at iter 0
    for _ in range(steps):
        rows = torch.randint(0, n, (args.batch_size,))  # RandomSampler batches
        opt.zero_grad()
        out = model(batch(Xt[rows]), gumbel_t=t)
        out.loss.backward()
        opt.step()
    fit_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        q = model.get_semantic_ids(Xt)
        codes = q.sem_ids.cpu().numpy().astype(np.int64)
        X_hat = model.decode(q.embeddings.sum(axis=-1)).cpu().numpy()
    return codes, X_hat.astype(np.float64), fit_s, steps


def run_ours(X, seed, args):
    from skcollapse.quantization import RQVAE

    start = time.perf_counter()
    q = RQVAE(n_levels=args.levels, codebook_size=args.codebook_size,
              latent_dim=args.latent_dim, hidden_layer_sizes=tuple(args.hidden),
              init="kmeans", dead_code_threshold=0, max_epochs=args.epochs,
              batch_size=args.batch_size,
              lr=args.lr, random_state=seed).fit(X)
    codes = q.transform(X)
    return codes, q.inverse_transform(codes), time.perf_counter() - start


def peer_commit(peer_dir):
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=peer_dir, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-dir", required=True)
    parser.add_argument("--deps-dir", default=None)
    parser.add_argument("--table", default="ml-100k-mf-none")
    parser.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "skcollapse-codebook-tables"))
    parser.add_argument("--mode", choices=["ste", "gumbel"], default="ste")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--hidden", nargs="+", type=int, default=[128])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true",
                        help="keep the peer's torch.compile (slow to start on a CPU)")
    args = parser.parse_args(argv)
    if not args.compile:
        os.environ["TORCH_COMPILE_DISABLE"] = "1"
    import torch

    torch.set_num_threads(args.threads)
    if args.deps_dir:
        sys.path.append(os.path.abspath(args.deps_dir))
    sys.path.insert(0, os.path.abspath(args.peer_dir))

    import _results
    from bench_codebooks import scale

    X = scale(np.load(os.path.join(args.cache_dir, f"{args.table}.npy")))
    sha = hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()[:16]
    bench = os.path.join(_results.RESULTS, "codebooks", f"{args.table}.json")
    if os.path.exists(bench):
        with open(bench) as fh:
            expected = json.load(fh)["table_sha"]
        if expected != sha:
            raise SystemExit(f"{args.table}: the cached table is not the one of {bench}")
    rows = {"peer": [], "skcollapse": []}
    for seed in args.seeds:
        codes, X_hat, fit_s, steps = run_peer(X, seed, args)
        rows["peer"].append({"seed": seed, "fit_s": fit_s, "steps": steps,
                             **metrics(codes, X, X_hat, args.codebook_size)})
        codes, X_hat, fit_s = run_ours(X, seed, args)
        rows["skcollapse"].append({"seed": seed, "fit_s": fit_s,
                                   **metrics(codes, X, X_hat, args.codebook_size)})
        for who in rows:
            r = rows[who][-1]
            print(f"seed {seed} {who:10s} usage {np.round(r['usage'], 3)} "
                  f"perplexity {np.round(r['perplexity'], 1)} collisions "
                  f"{r['collision_rate']:.3f} largest {r['largest_collision_group']} "
                  f"rel.err {r['relative_reconstruction_error']:.4f} "
                  f"{r['fit_s']:.0f}s", flush=True)
    record = {
        "table": args.table, "table_sha": sha, "shape": list(X.shape),
        "peer": {"repo": "EdoardoBotta/RQ-VAE-Recommender",
                 "commit": peer_commit(args.peer_dir), "class": "modules.rqvae.RqVae",
                 "mode": args.mode, "compiled": args.compile},
        "config": {k: v for k, v in vars(args).items()
                   if k not in ("peer_dir", "deps_dir", "cache_dir")},
        "rows": rows,
        **_results.run_metadata(),
    }
    path = _results.write_result(
        os.path.join("codebooks", "peers", f"botta-{args.mode}-{args.table}.json"),
        record)
    print(f"-> {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
