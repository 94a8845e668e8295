"""``skcollapse score``: collapse metrics of the embedding tables in a file."""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import sys
import tokenize
import zipfile
from pathlib import Path

import numpy as np

from skcollapse.cli import CLIError

_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv", ".skc")
#: What the table's footnote says of the default metrics.
_DEFAULT_NOTE = (
    "erank and IA range from 1 (all rows along one direction) to min(n, d). "
    "norm_std is about 1/sqrt(d) for isotropic embeddings and reaches 0 only "
    "when all rows point one way; it barely reacts to a low-rank subspace."
)


def add_parser(subparsers):
    """Register the ``score`` sub-command."""
    parser = subparsers.add_parser(
        "score",
        help="collapse metrics of tables (erank, IA, norm_std; --metrics for others)",
        description=(
            "Score every embedding table in FILE (.npy; .npz: every 2-D array; "
            ".pt/.pth: a tensor or a state dict, every 2-D numeric tensor; .csv: "
            "numbers only, an optional header row; .skc: a model file written by "
            "'skcollapse train' or save_model, its get_embeddings() tables (read "
            "without running any code from it; a format-1 file, a pickle, is "
            "refused: convert a trusted one with 'skcollapse convert'); a RecBole "
            "checkpoint "
            "or a TorchRec state dict: its embedding tables; implicit's save() "
            ".npz: its user and item factors). Without FILE, or with "
            "--example, score a built-in collapsed and a healthy synthetic table. "
            "With --codes, FILE holds semantic-ID codes (an integer array of shape "
            "(n_items, n_levels), e.g. a quantizer's transform output) and the "
            "codebook metrics are reported instead: per-level usage and "
            "perplexity, collision rate, largest collision group."
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
    parser.add_argument(
        "--metrics", metavar="NAMES", default=None,
        help=(
            "comma-separated collapse metrics, by name or alias, or 'all' "
            "(default: erank,ia,norm_std); any metric registered with "
            "skcollapse.metrics.register_collapse_metric is one"
        ),
    )
    parser.add_argument(
        "--codes", action="store_true",
        help=(
            "FILE holds integer semantic-ID codes (n_items, n_levels): report "
            "codebook usage, perplexity and collisions"
        ),
    )
    parser.add_argument(
        "--codebook-size", metavar="K", type=int, default=None,
        help="codes per level, for --codes (default: the largest code + 1)",
    )
    parser.set_defaults(func=run_score)
    return parser


# ------------------------------------------------------------------ loading files
#: First bytes of a .npy file, of a zip archive (.npz, torch.save) and of a
#: protocol >= 2 pickle (torch.save(..., _use_new_zipfile_serialization=False)).
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"
#: What numpy raises on a damaged .npy/.npz: a bad header is parsed as a Python
#: literal (ValueError, SyntaxError, TokenError); a bad archive is a BadZipFile.
_DAMAGED_NUMPY = (
    ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError,
    zipfile.BadZipFile, NotImplementedError,
)
#: What torch.load(weights_only=True) raises on a damaged or foreign file.
_DAMAGED_TORCH = (
    pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError,
    KeyError, IndexError, TypeError, AttributeError, AssertionError, struct.error,
)


def _numeric_2d(value):
    """A non-empty 2-D array of floats or integers (the rule for every format)."""
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 2
        and value.dtype.kind in "fiu"
        and value.size > 0
    )


def _cannot_read(path, what):
    return CLIError(f"cannot read {path}: {what}")


def _first_bytes(path, n=8):
    """The first ``n`` bytes of ``path``; an empty file is refused here."""
    with open(path, "rb") as fh:
        head = fh.read(n)
    if not head:
        raise _cannot_read(path, "the file is empty (0 bytes)")
    return head


def _why(exc):
    """A short, one-line reason from a loader's exception."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: why a ``.npy``/``.npz`` file that starts with neither header is refused
_NOT_NUMPY = {
    ".npy": "not a .npy file (it does not start with the NumPy header that "
    "np.save writes)",
    ".npz": "not a .npz file (not a zip archive as np.savez writes)",
}


def _load_numpy(path):
    """Tables of a ``.npy`` or ``.npz`` file, told apart by their first bytes as
    np.load does: an ``.npz`` under the other name is read as one, and the
    other way round."""
    head = _first_bytes(path)
    if head.startswith(_ZIP_MAGIC):
        return _load_npz(path)
    if head.startswith(_NPY_MAGIC):
        return _load_npy(path)
    raise _cannot_read(path, _NOT_NUMPY[path.suffix.lower()])


def _load_npy(path):
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except _DAMAGED_NUMPY as exc:
        if "Python objects" in str(exc) or "Object arrays" in str(exc):
            raise _cannot_read(
                path, "it holds Python objects (dtype=object), not numbers; save a "
                "numeric array, e.g. np.save(path, np.asarray(E, dtype=float))"
            ) from None
        raise _cannot_read(
            path, f"the file is damaged or truncated ({_why(exc)})"
        ) from None
    return {path.stem: arr}


def _load_npz(path):
    tables = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                try:
                    arr = data[key]
                except ValueError as exc:
                    if "Object arrays" in str(exc):  # needs pickle: not embeddings
                        continue
                    raise
                if _numeric_2d(arr) or key == "factors":
                    tables[key] = arr
    except _DAMAGED_NUMPY as exc:
        raise _cannot_read(
            path, f"the .npz archive is damaged or truncated ({_why(exc)})"
        ) from None
    factors = tables.pop("factors", None)
    if "user_factors" in tables and "item_factors" in tables:
        # implicit's save(): the latent factors, without BPR/LMF bias columns
        from skcollapse.adapters import extract_embeddings

        return extract_embeddings({**tables, "factors": factors})
    return tables


def _collect_torch(obj, prefix, out, torch):
    if isinstance(obj, torch.Tensor):
        numeric = not (obj.is_complex() or obj.dtype == torch.bool)
        if obj.ndim == 2 and numeric and obj.numel() > 0:
            out[prefix or "tensor"] = obj.detach()
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _collect_torch(value, f"{prefix}.{key}" if prefix else str(key), out, torch)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _collect_torch(value, f"{prefix}.{i}" if prefix else str(i), out, torch)


def _unsupported_global(exc):
    """The class/function name a weights-only load refused, or None."""
    import re

    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return match.group(1) if match else None


def _load_torch(path):
    import torch

    head = _first_bytes(path)
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        raise _cannot_read(
            path, "not a torch file (neither the zip archive nor the legacy pickle "
            "that torch.save writes)"
        )
    try:
        # weights_only: tensors and containers only, no pickled code is run
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except _DAMAGED_TORCH as exc:
        name = _unsupported_global(exc)
        recbole = _read_checkpoint(path) if name is not None else None
        if recbole is not None:
            return recbole
        if name is not None:  # a well-formed pickle of more than tensors
            raise _cannot_read(
                path, f"it holds a pickled Python object ({name}), not only "
                "tensors, and skcollapse does not run pickled code. If it is a "
                "whole model saved with torch.save(model), save its weights "
                "instead: torch.save(model.state_dict(), path)"
            ) from None
        if head.startswith(_ZIP_MAGIC):
            what = "torch could not read its zip archive"
        else:
            what = "its pickle data is invalid or ends early"
        raise _cannot_read(path, f"the file is damaged or truncated ({what})") from None
    from skcollapse.adapters import checkpoint_kind, extract_embeddings

    if checkpoint_kind(obj) in ("recbole", "torchrec"):
        # a checkpoint dict or a TorchRec state dict: its embedding tables only
        return extract_embeddings(obj)
    tables = {}
    _collect_torch(obj, "", tables, torch)
    return tables


def _read_checkpoint(path):
    """The tables of a checkpoint dict holding pickled objects of another library
    (RecBole's ``{"config": Config, "state_dict": ...}``), read without running
    them; None when the file is something else (e.g. a whole pickled model)."""
    from skcollapse.adapters import checkpoint_kind, extract_embeddings, load_checkpoint

    try:
        obj = load_checkpoint(path)
    except _DAMAGED_TORCH:
        return None
    if checkpoint_kind(obj) != "recbole":
        return None
    try:
        return extract_embeddings(obj)
    except ValueError:
        return None


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
        return load_model_tables(path)  # never unpickles: format 1 is refused
    suffix = path.suffix.lower()
    if suffix == ".skc":
        _first_bytes(path)  # an empty file says so
        raise _cannot_read(
            path, "it is not a skcollapse model file, or it is damaged (it does not "
            "start with the line SKCOLLAPSE-MODEL that 'skcollapse train' and "
            "save_model write); train or save the model again, or score its "
            "embeddings saved as .npy/.npz"
        )
    if suffix in (".npy", ".npz"):
        tables = _load_numpy(path)
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
        raise CLIError(
            f"{path} holds no 2-D numeric array to score; save each embedding table "
            "as a 2-D array of numbers (one row per user or item)"
        )
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
def resolve_metrics(metrics=None):
    """Registry entries of ``--metrics`` (a comma-separated string, a list, or
    None for the defaults); an unknown name is a :class:`CLIError`."""
    from skcollapse.metrics import resolve_collapse_metrics

    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
        if metrics == ["all"]:
            metrics = "all"
    try:
        return resolve_collapse_metrics(metrics, name="--metrics")
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from None


def score_tables(tables, *, metrics=None, center=False, row_normalize=False,
                 relative=False):
    """Metrics of each table, as a list of JSON-ready dicts.

    ``metrics``: collapse metric names (see :func:`resolve_metrics`); the
    relative value of a metric without a random-table reference is ``None``.
    """
    from skcollapse.metrics import collapse_metrics, random_reference

    entries = resolve_metrics(metrics)
    names = [m.name for m in entries]
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
                m.name: values[m.name] / random_reference(
                    tuple(shape), m.name, center=center, row_normalize=row_normalize
                ) if m.has_reference else None
                for m in entries
            }
        rows.append(row)
    return rows


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def format_table(rows, *, metrics=None, relative=False):
    """Human-readable table of :func:`score_tables` output (the same ``metrics``)."""
    entries = resolve_metrics(metrics)
    columns = [(m.name, m.short_label) for m in entries]
    header = ["table", "shape"] + [label for _, label in columns]
    if relative:
        header += [f"{label}/random" for _, label in columns]
    body = []
    for row in rows:
        cells = [row["name"], " x ".join(str(s) for s in row["shape"])]
        cells += [_fmt(row[key]) for key, _ in columns]
        if relative:
            cells += [_fmt(row["relative"][key]) for key, _ in columns]
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        left = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        right = [c.rjust(w) for c, w in zip(r[2:], widths[2:])]
        lines.append("  ".join(left + right).rstrip())
    explained = {"effective_rank", "information_abundance", "normalized_std"}
    if any(m.name in explained for m in entries):
        lines.append(_DEFAULT_NOTE)
    for m in entries:
        if m.name not in explained:
            better = "higher" if m.greater_is_better else "lower"
            lines.append(f"{m.short_label}: {m.description} ({better} is healthier).")
    return "\n".join(lines)


def _hint_codes(tables):
    """A note on stderr when an integer table is scored as embeddings."""
    from skcollapse.cli._codes import looks_like_codes

    for name, table in tables.items():
        if looks_like_codes(table):
            print(
                f"skcollapse: note: table {name!r} holds non-negative integers; it "
                "is scored as an embedding table. If it holds semantic-ID codes, "
                "add --codes.", file=sys.stderr,
            )


def _report(args, source, key, rows, format_rows) -> int:
    """Print the scores: ``{"source": ..., key: rows}`` with ``--json``, else the
    source and ``format_rows(rows)``."""
    if args.json:
        json.dump({"source": source, key: rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"source: {source}")
        print(format_rows(rows))
    return 0


def _run_codes(args) -> int:
    from skcollapse.cli._codes import format_codes, score_codes

    embedding_only = [flag for flag, on in (
        ("--metrics", args.metrics is not None), ("--center", args.center),
        ("--row-normalize", args.row_normalize), ("--relative", args.relative),
        ("--example", args.example)) if on]
    if embedding_only:
        raise CLIError(
            f"{', '.join(embedding_only)} applies to embedding tables, not to --codes"
        )
    if args.file is None:
        raise CLIError("--codes needs FILE, a file of integer codes")
    if args.codebook_size is not None and args.codebook_size < 1:
        raise CLIError(f"--codebook-size must be at least 1, got {args.codebook_size}")
    tables = load_tables(args.file)
    source = os.fspath(args.file)
    try:
        rows = score_codes(tables, codebook_size=args.codebook_size)
    except CLIError as exc:
        raise CLIError(f"{source}: {exc}") from None
    return _report(args, source, "codes", rows, format_codes)


def run_score(args) -> int:
    """Handler of ``skcollapse score``."""
    if getattr(args, "codes", False):
        return _run_codes(args)
    if getattr(args, "codebook_size", None) is not None:
        raise CLIError("--codebook-size applies to --codes only")
    metrics = args.metrics
    resolve_metrics(metrics)  # a wrong name fails before any file is read
    if args.example or args.file is None:
        tables = example_tables()
        source = "built-in example (make_collapsed_embeddings)"
    else:
        tables = load_tables(args.file)
        source = os.fspath(args.file)
        _hint_codes(tables)
    try:
        rows = score_tables(
            tables, metrics=metrics, center=args.center,
            row_normalize=args.row_normalize, relative=args.relative,
        )
    except CLIError as exc:  # name the file the table came from
        raise CLIError(f"{source}: {exc}") from None
    return _report(
        args, source, "tables", rows,
        lambda rows: format_table(rows, metrics=metrics, relative=args.relative),
    )
