"""Result files of the benchmarks: what ran, on which data, at which commit.

Every benchmark run that feeds a published table writes one JSON file per
(data set, model, setting) under ``benchmarks/results/<benchmark>/``: the
configuration, the seeds, the git commit, the data files' SHA-256, the
validation curves and the selected setting, the test metrics of each seed,
the erank/IA of each table, timings, and each seed's per-user test metrics
(quantised to 16 bits, so that a paired test over users can be recomputed from
the files alone). ``benchmarks/make_tables.py`` builds every README/docs table
from these files.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import platform
import subprocess
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SKCOLLAPSE_BENCH_RESULTS redirects the files (smoke runs, tests)
RESULTS = os.environ.get("SKCOLLAPSE_BENCH_RESULTS") or os.path.join(
    ROOT, "benchmarks", "results")

_SCALE = 65535


def pm(values, digits=3):
    """``"mean ± std"`` of a table cell (sample std, ``ddof=1``); one value
    alone, without a spread. Every generated table formats its spreads so."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def git_commit():
    """``(commit, dirty)`` of the checkout the benchmark runs from."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
            capture_output=True, text=True, check=True,
        ).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, dirty


# the checkout when the benchmark process started (the code it imported), not
# when a result file is written: a long run must not take a later HEAD's name
_STARTED_AT = git_commit()
# the 1-minute load average when the process started: a time-budgeted run
# reaches fewer epochs on a busy machine (read once, before the run loads it)
_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def run_metadata(data_files=()):
    """Commit and load average (at process start), versions, machine and the
    data's checksums."""
    import sklearn
    import torch

    commit, dirty = _STARTED_AT
    return {
        "commit": commit,
        "dirty": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "cpus": os.cpu_count(),
        "load_avg_at_start": _LOAD_AT_START,
        "torch_threads": torch.get_num_threads(),
        "data": {os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p):
                 sha256(p) for p in data_files},
    }


def encode_unit(values):
    """Values in [0, 1] as base64 of zlib-compressed uint16 (resolution 1.5e-5)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size and (v.min() < -1e-9 or v.max() > 1 + 1e-9):
        raise ValueError("per-user metrics must lie in [0, 1].")
    q = np.rint(np.clip(v, 0.0, 1.0) * _SCALE).astype("<u2")
    return base64.b64encode(zlib.compress(q.tobytes(), 9)).decode("ascii")


def decode_unit(text):
    q = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<u2")
    return q.astype(np.float64) / _SCALE


def users_digest(users):
    u = np.asarray(users)
    return hashlib.sha256(np.ascontiguousarray(u.astype(str)).tobytes()).hexdigest()[:16]


def compact_seed_result(result):
    """A :meth:`HoldoutProtocol.test` result as JSON: per-user arrays quantised."""
    out = {k: v for k, v in result.items() if k != "per_user"}
    pu = result["per_user"]
    out["per_user"] = {
        "n_users": int(np.asarray(pu["user"]).size),
        "users_sha": users_digest(pu["user"]),
        "recall": encode_unit(pu["recall"]),
        "ndcg": encode_unit(pu["ndcg"]),
    }
    return out


def expand_seed_result(record):
    """The inverse of :func:`compact_seed_result` (users as 0..n-1 rows)."""
    out = dict(record)
    pu = record["per_user"]
    out["per_user"] = {
        "user": np.arange(pu["n_users"]),
        "users_sha": pu["users_sha"],
        "recall": decode_unit(pu["recall"]),
        "ndcg": decode_unit(pu["ndcg"]),
    }
    return out


def _clean(obj):
    """JSON-ready: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return str(obj)


def write_result(relpath, record):
    """Write ``record`` to ``benchmarks/results/<relpath>`` (JSON, sorted keys)."""
    path = os.path.join(RESULTS, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(_clean(record), fh, indent=1, sort_keys=True, default=_default,
                  allow_nan=False)
        fh.write("\n")
    return path


def read_result(relpath):
    """The result file ``benchmarks/results/<relpath>``, or ``None`` if absent."""
    path = os.path.join(RESULTS, relpath)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def read_results(subfolder):
    """Every result file under ``benchmarks/results/<subfolder>``, sorted by path."""
    folder = os.path.join(RESULTS, subfolder)
    out = []
    for dirpath, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if name.endswith(".json"):
                with open(os.path.join(dirpath, name)) as fh:
                    rec = json.load(fh)
                rec["_path"] = os.path.relpath(os.path.join(dirpath, name), RESULTS)
                out.append(rec)
    return out
