"""One prepared GPU run: skcollapse next to lean PyTorch loops on the same device.

Usage::

    python benchmarks/gpu_suite.py /path/to/eval-data [--device cuda] [--quick]
        [--budget-s 450] [--no-pytest]

Sections, each printed next to a lean loop measured in the same run on the
same device (the loops of ``bench_cf.py`` and ``bench_ctr.py``):

1. ``MFRecommender`` seconds per MF-BPR epoch on Gowalla (d=64, batch 2048,
   one negative) vs a sparse-gradient ``SparseAdam`` loop;
2. ``LightGCNRecommender`` seconds per epoch on Gowalla (3 layers; median step
   x steps per epoch) vs a CSR ``torch.sparse.mm`` loop;
3. full-ranking Recall/NDCG@20 over every Gowalla test user,
   ``evaluate_ranking`` vs ``U @ I.T`` + mask + ``topk``;
4. ``DCNv2Classifier`` seconds per epoch on the Frappe validation file vs a
   lean DCNv2;
5. effective rank + information abundance of a float32 table on the device,
   as large as free memory allows (a quarter of it, halved on out-of-memory):
   ``skcollapse.metrics`` vs a lean ``E.T @ E`` + ``eigvalsh``, seconds and GB/s
   of the table read;
6. ``pytest -m gpu`` (the tests that need CUDA, and their CPU twins).

The whole suite is written to finish in under 8 minutes on one GPU; it prints
the seconds each section took and skips what would run past ``--budget-s``.
``--device cpu --quick`` runs every section on a slice of the data (Gowalla's
first 60,000 pairs, 5 LightGCN steps, one DCNv2 epoch, a 64 MB table) so the
script is checked end to end on a machine without a GPU; its figures say
nothing about a GPU.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_cf
import bench_ctr

from skcollapse.metrics import collapse_metrics
from skcollapse.metrics._spectrum import (
    erank_from_spectrum,
    ia_from_spectrum,
)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _free_bytes(device):
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return int(free)
    return 0


def bench_collapse_metrics(args):
    """erank + IA of the largest float32 table that fits, vs a lean Gram loop."""
    d = 128
    if args.quick:
        n_bytes = 64 * 2**20
    else:
        n_bytes = max(_free_bytes(args.device) // 4, 64 * 2**20)
    E = None
    while E is None:
        n = n_bytes // (4 * d)
        try:
            gen = torch.Generator(device=args.device).manual_seed(0)
            E = torch.randn(n, d, device=args.device, generator=gen)
            E[:, d // 2 :] *= 1e-2  # a partly collapsed table
            _sync(args.device)
        except torch.OutOfMemoryError:
            E = None
            n_bytes //= 2
            torch.cuda.empty_cache()
    gb = E.numel() * 4 / 1e9

    def ours():  # one spectrum for both metrics
        res = collapse_metrics(
            {"table": E}, metrics=["effective_rank", "information_abundance"]
        )["table"]
        return res["effective_rank"], res["information_abundance"]

    def lean():
        G = (E.T @ E).to(torch.float64)
        s = torch.linalg.eigvalsh(G).clamp_min(0).sqrt().flip(0)
        s_np = s.cpu().numpy()
        return erank_from_spectrum(s_np), ia_from_spectrum(s_np)

    times = {"ours": [], "lean": []}
    values = {}
    for _ in range(1 if args.quick else 3):
        for name, func in (("ours", ours), ("lean", lean)):
            _sync(args.device)
            t0 = time.perf_counter()
            values[name] = func()
            _sync(args.device)
            times[name].append(time.perf_counter() - t0)
    t_ours, t_lean = np.median(times["ours"]), np.median(times["lean"])
    print(
        f"erank+IA of a float32 {n:,} x {d} table ({gb:.2f} GB on {args.device}): "
        f"skcollapse.metrics {t_ours:.3f} s ({gb / t_ours:.3g} GB/s; erank "
        f"{values['ours'][0]:.2f}, IA {values['ours'][1]:.2f}), lean E.T@E + eigvalsh "
        f"{t_lean:.3f} s ({gb / t_lean:.3g} GB/s; erank {values['lean'][0]:.2f}, IA "
        f"{values['lean'][1]:.2f}), ratio ours/lean {t_ours / t_lean:.2f}",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_data", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget-s", type=float, default=450.0)
    parser.add_argument("--no-pytest", action="store_true")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; run with --device cpu --quick to check the "
              "script on a CPU.", file=sys.stderr)
        return 2
    start = time.perf_counter()
    name = (torch.cuda.get_device_name() if torch.device(args.device).type == "cuda"
            else "cpu")
    print(f"gpu_suite: device {args.device} ({name}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, quick={args.quick}", flush=True)
    # the argument object bench_cf's sections read
    cf_args = argparse.Namespace(
        repeats=1 if args.quick else 3,
        lightgcn_steps=5 if args.quick else 30,
        device=args.device,
    )
    gowalla = (
        bench_cf.load_lightgcn_split(args.eval_data / "gowalla" / "train.txt"),
        bench_cf.load_lightgcn_split(args.eval_data / "gowalla" / "test.txt"),
    )
    if args.quick:
        train = gowalla[0][:60_000]
        gowalla = (train, gowalla[1][np.isin(gowalla[1][:, 0], train[:, 0])])

    def left():
        return args.budget_s - (time.perf_counter() - start)

    def section(title, func):
        if left() <= 0:
            print(f"[skipped {title}: the {args.budget_s:.0f} s budget is spent]")
            return None
        t0 = time.perf_counter()
        print(f"\n== {title}", flush=True)
        out = func()
        print(f"[{title}: {time.perf_counter() - t0:.1f} s]", flush=True)
        return out

    model = section("MF-BPR epoch, Gowalla", lambda: bench_cf.bench_mf(gowalla, cf_args))
    section("LightGCN epoch, Gowalla",
            lambda: bench_cf.bench_lightgcn(gowalla, cf_args))
    section("full-ranking evaluation, Gowalla",
            lambda: bench_cf.bench_eval(gowalla, cf_args, model))
    section("DCNv2 epoch, Frappe", lambda: bench_ctr.run_speed(
        args.eval_data, 1 if args.quick else 3, 1 if args.quick else 2, args.device))
    section("erank + IA of a large table", lambda: bench_collapse_metrics(args))
    rc = 0
    if not args.no_pytest:
        t0 = time.perf_counter()
        print("\n== pytest -m gpu", flush=True)
        timeout = max(60.0, left() + 120.0)
        try:
            rc = subprocess.run(
                [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                 str(HERE.parent / "tests")],
                cwd=HERE.parent, timeout=timeout, check=False,
                env={**os.environ, "PYTHONPATH": str(HERE.parent)},
            ).returncode
        except subprocess.TimeoutExpired:
            print(f"pytest -m gpu ran past {timeout:.0f} s and was stopped")
            rc = 1
        print(f"[pytest -m gpu: rc {rc}, {time.perf_counter() - t0:.1f} s]")
    total = time.perf_counter() - start
    print(f"\ngpu_suite done in {total:.0f} s ({math.ceil(total / 60)} min)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
