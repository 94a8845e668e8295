"""Benchmark: effective rank + information abundance of a 1,000,000 x 128 table.

Compares, in one run and on the same matrices (float32, an isotropic one and a
collapsed one: rank 8 plus 1e-3 noise):

- skcollapse: erank + IA from one chunked float64 Gram pass
  (``collapse_metrics(E, metrics=["effective_rank", "information_abundance"])``);
- ``np.linalg.svd(E, compute_uv=False)`` (the obvious baseline);
- one float32 ``E.T @ E`` (the speed floor of any Gram route), and the error a
  plain float32 Gram makes; also timed with BLAS limited to one thread, a
  baseline that oversubscribed cores do not distort (multi-threaded OpenBLAS
  calls slow down badly when other processes load the cores);

and prints medians, the ratios, and the relative error of every route against a
float64 SVD reference. Targets: >= 12x faster than the SVD, <= 3x the float32
Gram, relative error <= 1e-6 on both matrices.

Then a streaming run: a table larger than 2 GB written to a memmap in a temporary
directory and scored by a child process, which reports its peak RSS
(``VmHWM`` of ``/proc/self/status``, else ``ru_maxrss``; target < 0.5 GB).

Run from the repository root::

    python benchmarks/bench_metrics.py              # full benchmark (~5-10 min)
    python benchmarks/bench_metrics.py --tune       # also time Gram chunk sizes
    python benchmarks/bench_metrics.py --n 200000 --stream-gb 0.3   # quick look
    python benchmarks/bench_metrics.py --only-dask --dask-gb 100   # dask, issue 8
    python benchmarks/bench_metrics.py --only-dask --dask-gb 70 \\
        --dask-store /big/disk/table.f32     # chunks read from a file on disk

Timings on a shared machine are noisy: the load average is printed before and
after, and medians over ``--repeats`` runs are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skcollapse.datasets import make_collapsed_embeddings
from skcollapse.metrics import _gram, collapse_metrics
from skcollapse.metrics._spectrum import erank_from_spectrum, ia_from_spectrum

METRICS = ["effective_rank", "information_abundance"]


def erank_ia(sigma):
    sigma = np.asarray(sigma, dtype=np.float64)
    p = sigma / sigma.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum())), float(sigma.sum() / sigma.max())


def median_time(func, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times, out


def rel(a, b):
    return abs(a - b) / abs(b)


def bench_matrix(name, E, args):
    print(f"\n== {name}: {E.shape[0]:,} x {E.shape[1]} {E.dtype} ==", flush=True)
    t0 = time.perf_counter()
    ref_sigma = np.linalg.svd(E.astype(np.float64), compute_uv=False)
    t_ref = time.perf_counter() - t0
    ref_erank, ref_ia = erank_ia(ref_sigma)
    print(f"float64 SVD reference: erank={ref_erank:.10f} IA={ref_ia:.10f} "
          f"({t_ref:.2f} s, once)")

    # Interleaved rounds, so that the load of a shared machine hits every route
    # alike; medians over the rounds.
    ts_sk, ts_gram, ts_gram1, ts_svd = [], [], [], []
    for r in range(max(args.repeats, args.svd_repeats)):
        if r < args.repeats:
            _, (t,), out = median_time(lambda: collapse_metrics(E, metrics=METRICS), 1)
            ts_sk.append(t)
            _, (t,), G = median_time(lambda: E.T @ E, 1)
            ts_gram.append(t)
            with threadpool_limits(limits=1, user_api="blas"):
                _, (t,), _ = median_time(lambda: E.T @ E, 1)
            ts_gram1.append(t)
        if r < args.svd_repeats:
            _, (t,), s32 = median_time(lambda: np.linalg.svd(E, compute_uv=False), 1)
            ts_svd.append(t)
    t_sk, t_gram, t_gram1, t_svd = (
        float(np.median(x)) for x in (ts_sk, ts_gram, ts_gram1, ts_svd)
    )
    g_erank, g_ia = erank_ia(np.sqrt(np.clip(np.linalg.eigvalsh(
        G.astype(np.float64)), 0, None))[::-1])
    s_erank, s_ia = erank_ia(s32)

    rows = [
        ("skcollapse erank+IA", t_sk, ts_sk, out["effective_rank"],
         out["information_abundance"]),
        ("np.linalg.svd float32", t_svd, ts_svd, s_erank, s_ia),
        ("float32 E.T @ E", t_gram, ts_gram, g_erank, g_ia),
        ("  same, 1 BLAS thread", t_gram1, ts_gram1, g_erank, g_ia),
    ]
    print(f"{'route':<24}{'median s':>10}  {'rel.err erank':>14}{'rel.err IA':>12}"
          "  all runs (s)")
    for label, t, ts, er, ia in rows:
        runs = " ".join(f"{x:.3f}" for x in ts)
        print(f"{label:<24}{t:>10.3f}  {rel(er, ref_erank):>14.2e}"
              f"{rel(ia, ref_ia):>12.2e}  {runs}")
    speedup = t_svd / t_sk
    vs_gram = t_sk / t_gram
    err = max(rel(out["effective_rank"], ref_erank),
              rel(out["information_abundance"], ref_ia))
    print(f"speed-up vs SVD: {speedup:.1f}x (target >= 12x) "
          f"[{'ok' if speedup >= 12 else 'MISSED'}]")
    print(f"time vs float32 Gram: {vs_gram:.2f}x (target <= 3x) "
          f"[{'ok' if vs_gram <= 3 else 'MISSED'}]; vs the 1-thread float32 Gram "
          f"(load-robust baseline): {t_sk / t_gram1:.2f}x")
    print(f"skcollapse max relative error: {err:.2e} (target <= 1e-6) "
          f"[{'ok' if err <= 1e-6 else 'MISSED'}]", flush=True)
    return {"name": name, "skcollapse_s": t_sk, "svd_s": t_svd, "gram32_s": t_gram,
            "gram32_1thread_s": t_gram1, "speedup_vs_svd": speedup,
            "ratio_vs_gram32": vs_gram, "rel_err": err}


def tune(E, repeats):
    print("\n== Gram chunk size (elements per float64 chunk) ==")
    saved = _gram._CHUNK_ELEMENTS
    try:
        for exp in (16, 17, 18, 19, 20, 21, 22):
            _gram._CHUNK_ELEMENTS = 1 << exp
            t, _, _ = median_time(lambda: collapse_metrics(E, metrics=METRICS), repeats)
            rows = _gram._chunk_rows(E.shape[1], None)
            print(f"2**{exp:<3} ({rows:>6} rows, {8 * (1 << exp) / 2**20:5.1f} MiB): "
                  f"{t:.3f} s", flush=True)
    finally:
        _gram._CHUNK_ELEMENTS = saved


# The child reports its own peak RSS. On Linux, VmHWM of /proc/self/status is the
# high-water mark of *this* process image (anonymous + file-backed pages, so memmap
# pages count); ru_maxrss is not used there because exec() carries the parent's
# peak over into it when the child is spawned with vfork.
_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from skcollapse.metrics import collapse_metrics


def peak_kb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


n, d = (int(x) for x in sys.argv[2].split("x"))
E = np.memmap(sys.argv[1], dtype=np.float32, mode="r", shape=(n, d))
base = peak_kb()
t0 = time.perf_counter()
out = collapse_metrics(E, metrics=["effective_rank", "information_abundance"])
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "peak_rss_kb": peak_kb(),
                  "rss_after_import_kb": base, **out}))
"""


def stream(args):
    d = 128
    n = int(args.stream_gb * 2**30 / (4 * d)) + 1
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "table.f32"
        rng = np.random.default_rng(0)
        basis = np.linalg.qr(rng.standard_normal((d, 8)))[0].astype(np.float32)
        t0 = time.perf_counter()
        with open(path, "wb") as fh:  # plain writes: the parent never maps it
            for start in range(0, n, 262_144):
                rows = min(262_144, n - start)
                block = rng.standard_normal((rows, 8), dtype=np.float32) @ basis.T
                block += 1e-3 * rng.standard_normal((rows, d), dtype=np.float32)
                fh.write(block.tobytes())
        size = path.stat().st_size
        print(f"\n== streaming: {n:,} x {d} float32 memmap, {size / 2**30:.2f} GiB "
              f"(written in {time.perf_counter() - t0:.1f} s) ==", flush=True)
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), f"{n}x{d}",
             str(Path(__file__).resolve().parents[1])],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode:
            print(proc.stderr)
            raise SystemExit("streaming child failed")
        res = json.loads(proc.stdout)
        peak_gb = res["peak_rss_kb"] / 2**20
        print(f"erank={res['effective_rank']:.6f} IA={res['information_abundance']:.6f}"
              f" in {res['seconds']:.2f} s ({size / 2**30 / res['seconds']:.2f} GiB/s)")
        print(f"child peak RSS: {peak_gb:.3f} GiB (after imports "
              f"{res['rss_after_import_kb'] / 2**20:.3f} GiB; target < 0.5 GiB) "
              f"[{'ok' if peak_gb < 0.5 else 'MISSED'}]")
        return {"stream_gib": size / 2**30, "stream_s": res["seconds"],
                "peak_rss_gib": peak_gb}


def _worker_peak_kb(reset=False):
    """VmHWM of this worker process; ``reset=True`` restarts the high-water mark."""
    if reset:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            return None
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _collapsed_block(i, rows, d, basis):
    rng = np.random.default_rng(1000 + i)
    block = rng.standard_normal((rows, basis.shape[1]), dtype=np.float32) @ basis.T
    block += 1e-3 * rng.standard_normal((rows, d), dtype=np.float32)
    return block


def _read_block(path, i, rows, d):
    """Rows ``[i*rows, (i+1)*rows)`` of the raw float32 store at ``path``."""
    with open(path, "rb") as fh:
        fh.seek(i * rows * d * 4)
        block = np.fromfile(fh, dtype=np.float32, count=rows * d)
    return block.reshape(rows, d)


def _write_store(path, n_blocks, rows, d, basis):
    """Write the blocks of ``_collapsed_block`` one after another (raw float32)."""
    size = n_blocks * rows * d * 4
    if os.path.exists(path) and os.path.getsize(path) == size:
        print(f"store {path} exists ({size / 2**30:.1f} GiB): reused", flush=True)
        return
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        for i in range(n_blocks):
            _collapsed_block(i, rows, d, basis).tofile(fh)
    print(f"wrote {size / 2**30:.1f} GiB to {path} in {time.perf_counter() - t0:.0f} s",
          flush=True)


def _expected_collapsed(d, r, noise):
    """erank and IA of the population covariance ``B B^T + noise^2 I`` (B orthonormal).

    Singular values of ``n`` rows are ``sqrt(n * eigenvalue)``; the ratios (all that
    erank and IA depend on) converge to these at rate 1/sqrt(n).
    """
    sigma = np.sqrt(np.r_[np.full(r, 1.0 + noise**2), np.full(d - r, noise**2)])
    return erank_from_spectrum(sigma), ia_from_spectrum(sigma)


def dask_stream(args):
    """Issue 8: a table larger than RAM on a LocalCluster; time and memory per worker.

    Without ``--dask-store`` the blocks are generated inside the workers and never
    stored; with it they are first written to one raw float32 file and the
    workers read their chunks from disk (a memmap-style store).
    """
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    d, rows = 128, 65_536  # 32 MiB blocks
    n_blocks = max(1, int(args.dask_gb * 2**30 / (4 * d * rows)))
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((d, 8)))[0]
    basis = basis.astype(np.float32)
    if args.dask_store:
        _write_store(args.dask_store, n_blocks, rows, d, basis)
        read = dask.delayed(_read_block, pure=True)
        parts = [read(args.dask_store, i, rows, d) for i in range(n_blocks)]
        origin = f"read in chunks from the raw store {args.dask_store}"
    else:
        make = dask.delayed(_collapsed_block, pure=True)
        parts = [make(i, rows, d, basis) for i in range(n_blocks)]
        origin = "generated blockwise in the workers, never stored"
    D = da.concatenate([
        da.from_delayed(p, shape=(rows, d), dtype=np.float32) for p in parts
    ])
    gib = D.nbytes / 2**30
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"\n== dask: {D.shape[0]:,} x {d} float32 ({gib:.2f} GiB = {gib / ram:.1f}x "
          f"this machine's {ram:.1f} GiB RAM; {origin}) on a LocalCluster, "
          f"{args.dask_workers} worker processes x 1 thread ==", flush=True)
    with LocalCluster(n_workers=args.dask_workers, threads_per_worker=1,
                      processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("skcollapse.metrics"))  # imports not counted
        client.run(_worker_peak_kb, True)
        base = client.run(_worker_peak_kb)
        t0 = time.perf_counter()
        out = collapse_metrics(D, metrics=METRICS)
        elapsed = time.perf_counter() - t0
        peaks = client.run(_worker_peak_kb)
    peak = {w.rsplit(":", 1)[-1]: (kb or 0) / 2**20 for w, kb in peaks.items()}
    want_erank, want_ia = _expected_collapsed(d, basis.shape[1], 1e-3)
    print(f"erank={out['effective_rank']:.6f} IA={out['information_abundance']:.6f} "
          f"in {elapsed:.1f} s ({gib / elapsed:.2f} GiB/s)")
    print(f"population values: erank={want_erank:.6f} IA={want_ia:.6f} (relative "
          f"gaps {out['effective_rank'] / want_erank - 1:+.1e}, "
          f"{out['information_abundance'] / want_ia - 1:+.1e})")
    print("peak RSS per worker (GiB): "
          + ", ".join(f"{v:.3f}" for v in peak.values())
          + " (after imports: "
          + ", ".join(f"{(kb or 0) / 2**20:.3f}" for kb in base.values()) + ")")
    result = {"dask_gib": gib, "ram_gib": ram, "stored": bool(args.dask_store),
              "dask_s": elapsed, "worker_peak_gib": list(peak.values()),
              "effective_rank": out["effective_rank"],
              "information_abundance": out["information_abundance"]}
    if args.dask_store:
        # baseline: the lean single-process loop a user would write by hand, on
        # the same store (read a chunk, accumulate a float64 Gram, eigvalsh)
        t0 = time.perf_counter()
        gram = np.zeros((d, d))
        for i in range(n_blocks):
            block = _read_block(args.dask_store, i, rows, d).astype(np.float64)
            gram += block.T @ block
        sigma = np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1], 0, None))
        lean_erank = erank_from_spectrum(sigma)
        lean_s = time.perf_counter() - t0
        print(f"lean numpy loop over the same store (one process): erank="
              f"{lean_erank:.6f} in {lean_s:.1f} s; dask / lean = "
              f"{elapsed / lean_s:.2f}x")
        result.update(lean_s=lean_s, lean_erank=lean_erank)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--svd-repeats", type=int, default=3)
    parser.add_argument("--stream-gb", type=float, default=2.2)
    parser.add_argument("--tmpdir", default=None, help="where the memmap goes")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--dask-gb", type=float, default=0.0,
                        help="also score a lazily generated dask table of this size "
                        "on a LocalCluster (issue 8; e.g. 100 for a table several "
                        "times larger than RAM)")
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--dask-store", default=None,
                        help="write the dask table to this raw float32 file first "
                        "(reused when it exists with the right size) and let the "
                        "workers read their chunks from it")
    parser.add_argument("--only-dask", action="store_true",
                        help="run only the dask section")
    parser.add_argument("--tune", action="store_true",
                        help="also time the Gram route over chunk sizes")
    args = parser.parse_args(argv)

    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} (shared machine: expect noise)")
    if args.only_dask:
        print(json.dumps([dask_stream(args)]))
        return
    rng = np.random.default_rng(0)
    iso = rng.standard_normal((args.n, args.d), dtype=np.float32)
    results = [bench_matrix("isotropic", iso, args)]
    del iso
    col = make_collapsed_embeddings(args.n, args.d, effective_rank=8, noise=1e-3,
                                    dtype=np.float32, random_state=0)
    results.append(bench_matrix("collapsed (rank 8 + 1e-3 noise)", col, args))
    if args.tune:
        tune(col, max(3, args.repeats // 2))
    del col
    if not args.skip_stream:
        results.append(stream(args))
    if args.dask_gb > 0:
        results.append(dask_stream(args))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
