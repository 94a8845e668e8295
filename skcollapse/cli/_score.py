"""``skcollapse score``: collapse metrics of the embedding tables in a file."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from skcollapse.cli import CLIError
from skcollapse.metrics._registry import COLLAPSE_METRICS, DEFAULT_METRICS

_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv")
#: (metric name, column header) of the printed table, from the metric registry.
_COLUMNS = tuple((name, COLLAPSE_METRICS[name].short_label) for name in DEFAULT_METRICS)


def add_parser(subparsers):
    """Register the ``score`` sub-command."""
    parser = subparsers.add_parser(
        "score",
        help="effective rank, information abundance and normalized std of tables",
        description=(
            "Score every embedding table in FILE (.npy; .npz: every 2-D array; "
            ".pt/.pth: a tensor or a state dict, every 2-D floating weight; .csv: "
            "numbers only, an optional header row; a model file written by "
            "'skcollapse train': its get_embeddings() tables). Without FILE, or with "
            "--example, score a built-in collapsed and a healthy synthetic table."
        ),
    )
    parser.add_argument("file", nargs="?", metavar="FILE", help="file to score")
    parser.add_argument(
        "--example", action="store_true",
        help="score the built-in collapsed vs. healthy pair (ignores FILE)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--center", action="store_true", help="center columns before the spectrum"
    )
    parser.add_argument(
        "--row-normalize", action="store_true",
        help="L2-normalise rows before the spectrum (RecScope's IA)",
    )
    parser.add_argument(
        "--relative", action="store_true",
        help="also report each metric as a fraction of a random Gaussian table's",
    )
    parser.set_defaults(func=run_score)
    return parser


# ------------------------------------------------------------------ loading files
def _floating_2d(value):
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 2
        and value.dtype.kind in "fiu"
        and value.size > 0
    )


def _load_npy(path):
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise CLIError(f"{path}: cannot read as a numeric .npy array ({exc})") from None
    return {path.stem: arr}


def _load_npz(path):
    tables = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                try:
                    arr = data[key]
                except ValueError:  # object arrays need pickle: not embeddings
                    continue
                if _floating_2d(arr):
                    tables[key] = arr
    except (ValueError, OSError) as exc:
        raise CLIError(f"{path}: cannot read as .npz ({exc})") from None
    return tables


def _collect_torch(obj, prefix, out, torch):
    if isinstance(obj, torch.Tensor):
        if obj.ndim == 2 and obj.is_floating_point() and obj.numel() > 0:
            out[prefix or "tensor"] = obj.detach()
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _collect_torch(value, f"{prefix}.{key}" if prefix else str(key), out, torch)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _collect_torch(value, f"{prefix}.{i}" if prefix else str(i), out, torch)


def _load_torch(path):
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"{path}: cannot read as a torch file ({first})") from None
    tables = {}
    _collect_torch(obj, "", tables, torch)
    return tables


def _load_csv(path):
    import pandas as pd

    try:
        frame = pd.read_csv(path, header=None)
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path}: the CSV file is empty") from None
    except pd.errors.ParserError as exc:
        raise CLIError(f"{path}: cannot parse CSV ({exc})") from None
    try:
        arr = frame.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        # A header row? Then everything below it must be numeric.
        frame = pd.read_csv(path, header=0)
        try:
            arr = frame.to_numpy(dtype=np.float64)
        except (ValueError, TypeError):
            raise CLIError(
                f"{path}: the CSV must hold numbers only (one embedding per row, "
                "an optional header row)"
            ) from None
    return {path.stem: arr}


def load_tables(file):
    """Return ``{name: 2-D array or tensor}`` for every embedding table in ``file``."""
    path = Path(file)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.is_dir():
        raise CLIError(f"{path} is a directory; give a file ({', '.join(_SUFFIXES)})")
    from skcollapse.cli._model_file import is_model_file, load_model_tables

    if is_model_file(path):  # written by `skcollapse train`, whatever its suffix
        return load_model_tables(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        tables = _load_npy(path)
    elif suffix == ".npz":
        tables = _load_npz(path)
    elif suffix in (".pt", ".pth"):
        tables = _load_torch(path)
    elif suffix == ".csv":
        tables = _load_csv(path)
    else:
        raise CLIError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(_SUFFIXES)}"
        )
    if not tables:
        raise CLIError(f"{path} holds no 2-D numeric array to score")
    return tables


def example_tables(random_state=0):
    """The built-in pair: a collapsed (rank-4) and a healthy (isotropic) table."""
    from skcollapse.datasets import make_collapsed_embeddings

    n, d = 5000, 64
    return {
        "collapsed": make_collapsed_embeddings(
            n, d, effective_rank=4, noise=1e-3, random_state=random_state
        ),
        "healthy": make_collapsed_embeddings(
            n, d, effective_rank=d, noise=0.0, random_state=random_state + 1
        ),
    }


# ------------------------------------------------------------------ scoring
def score_tables(tables, *, center=False, row_normalize=False, relative=False):
    """Metrics of each table, as a list of JSON-ready dicts."""
    from skcollapse.metrics import collapse_metrics, random_reference

    names = [m for m, _ in _COLUMNS]
    rows = []
    for name, table in tables.items():
        try:
            values = collapse_metrics(
                table, metrics=names, center=center, row_normalize=row_normalize
            )
        except (ValueError, TypeError) as exc:
            raise CLIError(f"table {name!r}: {exc}") from None
        shape = [int(s) for s in table.shape]
        row = {"name": str(name), "shape": shape, **values}
        if relative:
            row["relative"] = {
                m: values[m] / random_reference(
                    tuple(shape), m, center=center, row_normalize=row_normalize
                )
                for m in names
            }
        rows.append(row)
    return rows


def _fmt(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def format_table(rows, *, relative=False):
    """Human-readable table of :func:`score_tables` output."""
    header = ["table", "shape"] + [label for _, label in _COLUMNS]
    if relative:
        header += [f"{label}/random" for _, label in _COLUMNS]
    body = []
    for row in rows:
        cells = [row["name"], " x ".join(str(s) for s in row["shape"])]
        cells += [_fmt(row[key]) for key, _ in _COLUMNS]
        if relative:
            cells += [_fmt(row["relative"][key]) for key, _ in _COLUMNS]
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        left = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        right = [c.rjust(w) for c, w in zip(r[2:], widths[2:])]
        lines.append("  ".join(left + right).rstrip())
    lines.append(
        "erank and IA range from 1 (all rows along one direction) to min(n, d). "
        "norm_std is about 1/sqrt(d) for isotropic embeddings and reaches 0 only "
        "when all rows point one way; it barely reacts to a low-rank subspace."
    )
    return "\n".join(lines)


def run_score(args) -> int:
    """Handler of ``skcollapse score``."""
    if args.example or args.file is None:
        tables = example_tables()
        source = "built-in example (make_collapsed_embeddings)"
    else:
        tables = load_tables(args.file)
        source = os.fspath(args.file)
    rows = score_tables(
        tables, center=args.center, row_normalize=args.row_normalize,
        relative=args.relative,
    )
    if args.json:
        json.dump({"source": source, "tables": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"source: {source}")
        print(format_table(rows, relative=args.relative))
    return 0
