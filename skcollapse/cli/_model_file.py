"""The model file: a fitted estimator saved with its metadata, in a versioned format.

``skcollapse train`` writes one, ``skcollapse score MODEL`` reads one, and
:func:`save_model` / :func:`load_model` (exported from :mod:`skcollapse.cli`) let
Python code do the same.

Format, version 1
-----------------
A short text header followed by a pickle::

    SKCOLLAPSE-MODEL\\n                                  <- MODEL_MAGIC
    {"format_version": 1, "model": "mf", ...}\\n     <- one JSON line of metadata
    <pickle of {"estimator": ..., "user_ids": ..., "item_ids": ...}>

* ``format_version`` (int) is always present. A reader refuses any version it
  does not know (:data:`FORMAT_VERSION` is the one this release writes and
  reads); the number changes whenever the layout changes incompatibly.
* The rest of the JSON line is free-form metadata (``skcollapse train`` stores
  the model name, parameters, data description, metrics, seed, versions, ...);
  non-JSON values are stored as their ``repr``.
* ``user_ids`` / ``item_ids`` are ``None`` or arrays mapping each 0-based code
  the estimator was trained on to the original id (code ``c`` is ``user_ids[c]``).

:func:`read_model_header` reads the metadata without unpickling anything;
:func:`load_model` unpickles the estimator, so (as with any pickle) only load
files you trust.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path

import numpy as np

from skcollapse.utils._sklearn_compat import validate_params

__all__ = [
    "FORMAT_VERSION",
    "MODEL_MAGIC",
    "check_output_path",
    "is_model_file",
    "load_model",
    "load_model_tables",
    "read_model_header",
    "save_model",
]

#: First bytes of every model file.
MODEL_MAGIC = b"SKCOLLAPSE-MODEL\n"
#: Version of the file layout this release writes and reads.
FORMAT_VERSION = 1
#: Versions :func:`load_model` reads.
SUPPORTED_VERSIONS = (1,)


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


@validate_params(
    {
        "estimator": "no_validation",
        "path": [str, os.PathLike],
        "user_ids": ["array-like", None],
        "item_ids": ["array-like", None],
        "overwrite": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def save_model(
    estimator, path, /, *, user_ids=None, item_ids=None, overwrite=False, **meta
):
    """Save a fitted estimator and its metadata to a model file.

    Parameters
    ----------
    estimator : object
        The fitted estimator (pickled; e.g. an ``MFRecommender``).
    path : str or path-like
        File to write. It is written next to its final name and moved into
        place, so a failed write never leaves a truncated model file.
    user_ids, item_ids : array-like or None, default=None
        Original id of each user / item code the estimator was trained on.
    overwrite : bool, default=False
        Replace an existing file.
    **meta
        Metadata stored in the JSON header (``format_version`` is reserved; any
        other name, ``estimator`` and ``path`` included, is free).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    OSError
        The errors of :func:`check_output_path`, checked before anything is
        written: ``FileExistsError`` if ``path`` exists and ``overwrite`` is
        False, ``IsADirectoryError``, ``FileNotFoundError`` (no such folder),
        ``NotADirectoryError``, ``PermissionError``.

    Examples
    --------
    >>> from skcollapse.cli import load_model, save_model
    >>> save_model(estimator, "mf.skc", model="mf")  # doctest: +SKIP
    >>> estimator = load_model("mf.skc")  # doctest: +SKIP
    """
    if "format_version" in meta:
        raise ValueError("format_version is set by save_model itself.")
    path = check_output_path(path, overwrite=overwrite)
    header = {"format_version": FORMAT_VERSION, **_json_ready(meta)}
    payload = {"estimator": estimator, "user_ids": user_ids, "item_ids": item_ids}
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(MODEL_MAGIC)
            fh.write(json.dumps(header, sort_keys=True).encode("utf-8") + b"\n")
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_output_path(path, *, overwrite=False) -> Path:
    """Check that a model file can be written at ``path``, before any work.

    ``skcollapse train`` calls it before training, so that a wrong ``--output``
    fails at once instead of after the fit; :func:`save_model` calls it again.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    IsADirectoryError
        If ``path`` is a folder.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    NotADirectoryError
        If the "folder" of ``path`` is a file.
    PermissionError
        If the folder is not writable.

    Each error's ``strerror`` is a full sentence naming the path.
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, f"{path} is a folder; give a file name", str(path)
        )
    if path.exists() and not overwrite:
        raise FileExistsError(
            errno.EEXIST,
            f"{path} exists; pass --overwrite (overwrite=True) to replace it",
            str(path),
        )
    if not parent.exists():
        raise FileNotFoundError(
            errno.ENOENT,
            f"cannot write {path}: folder {parent} does not exist; create it or "
            "choose another file",
            str(path),
        )
    if not parent.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot write {path}: {parent} is not a folder", str(path)
        )
    if not os.access(parent, os.W_OK | os.X_OK):  # the file is written beside
        raise PermissionError(  # its final name, then moved: the folder counts
            errno.EACCES,
            f"cannot write {path}: no write permission in folder {parent}",
            str(path),
        )
    return path


def is_model_file(path) -> bool:
    """Whether ``path`` starts with the model-file magic bytes."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MODEL_MAGIC)) == MODEL_MAGIC
    except OSError:
        return False


def read_model_header(path) -> dict:
    """Metadata of a model file, read without unpickling the model.

    Raises
    ------
    ValueError
        If the file is not a model file, its header is damaged, or its format
        version is not one this release reads.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    with open(path, "rb") as fh:
        if fh.read(len(MODEL_MAGIC)) != MODEL_MAGIC:
            raise ValueError(f"{path} is not a skcollapse model file")
        line = fh.readline()
    try:
        header = json.loads(line.decode("utf-8"))
        version = header.get("format_version")  # a JSON object, or damaged
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise ValueError(f"{path}: the model file header is damaged") from None
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"{path}: model file format version {version!r} is not supported; this "
            f"skcollapse reads format version {FORMAT_VERSION} (files written by a "
            "newer skcollapse need that release)"
        )
    return header


@validate_params(
    {"path": [str, os.PathLike], "return_metadata": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_model(path, *, return_metadata=False):
    """Load the estimator saved by :func:`save_model` or ``skcollapse train``.

    The estimator is unpickled: only load model files you trust.

    Parameters
    ----------
    path : str or path-like
        The model file.
    return_metadata : bool, default=False
        Also return the metadata: the JSON header (``format_version`` included)
        plus ``"user_ids"`` and ``"item_ids"`` (original id of each code, or
        None).

    Returns
    -------
    estimator : object
    metadata : dict
        Only with ``return_metadata=True``.

    Raises
    ------
    ValueError
        If the file is not a model file, its format version is unknown, or it
        cannot be unpickled.
    """
    path = Path(path)
    header = read_model_header(path)
    with open(path, "rb") as fh:
        fh.read(len(MODEL_MAGIC))
        fh.readline()
        try:
            payload = pickle.load(fh)
        except (
            pickle.UnpicklingError,
            EOFError,
            AttributeError,
            ImportError,
            ValueError,
        ) as exc:
            raise ValueError(f"{path}: cannot load the model ({exc})") from None
    if not isinstance(payload, dict) or "estimator" not in payload:
        raise ValueError(f"{path}: the model file holds no estimator")
    if not return_metadata:
        return payload["estimator"]
    metadata = {
        **header,
        "user_ids": payload.get("user_ids"),
        "item_ids": payload.get("item_ids"),
    }
    return payload["estimator"], metadata


def load_model_tables(path) -> dict:
    """The embedding tables (``get_embeddings()``) of a saved model, as numpy."""
    estimator = load_model(path)
    getter = getattr(estimator, "get_embeddings", None)
    if not callable(getter):
        raise TypeError(f"{path}: the saved model has no get_embeddings()")
    tables = {}
    for name, table in getter().items():
        if hasattr(table, "detach"):
            table = table.detach().cpu().numpy()
        tables[str(name)] = np.asarray(table)
    return tables
