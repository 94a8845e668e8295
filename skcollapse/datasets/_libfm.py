"""Reader of libFM/libSVM files holding one-hot categorical fields (Frappe & co)."""

from __future__ import annotations

import os

import numpy as np

from skcollapse.utils._sklearn_compat import int_interval, validate_params


@validate_params(
    {
        "path": [str, os.PathLike],
        "n_fields": [None, int_interval(1, None, closed="left")],
        "dtype": "no_validation",  # a dtype-like, resolved and checked below
    },
    prefer_skip_nested_validation=True,
)
def load_libfm(path, *, n_fields=None, dtype=np.int64):
    """Load a libFM file of one-hot fields into an integer field matrix.

    Each line is ``label id:value id:value ...`` with exactly one active feature
    per field, fields in the same order on every line (the format of the
    Frappe / MovieLens-tag files of NFM, AFN and BARS). Feature ids are *global*
    (unique across fields), so column ``f`` of the result holds the global ids of
    field ``f``. Map them to per-field codes with ``OrdinalEncoder`` fitted on the
    training file (``handle_unknown="use_encoded_value", unknown_value=-1``), so
    that ids seen only in a test file go to the out-of-vocabulary row.

    Parameters
    ----------
    path : str or os.PathLike
        The libFM file.
    n_fields : int or None, default=None
        Expected number of fields; ``None`` takes the number of features on the
        first line. Every line must have that many features.
    dtype : numpy integer dtype, default=np.int64
        Dtype of the returned feature ids.

    Returns
    -------
    X : ndarray of shape (n_samples, n_fields)
        Global feature ids, one column per field.
    y : ndarray of shape (n_samples,), dtype int64
        Labels mapped to 0/1 (``-1`` and ``0`` are negatives, ``1`` positives).

    Raises
    ------
    ValueError
        If the file is empty, a line has a different number of features, a
        feature is not ``id:value`` with a non-negative integer id and value 1,
        or a label is not one of -1, 0, 1.

    Examples
    --------
    >>> # skipped by the doctests: needs a local libFM file (e.g. frappe)
    >>> from skcollapse.datasets import load_libfm
    >>> X, y = load_libfm("frappe/frappe.validation.libfm")  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (57722, 10)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path={path!r} is not an existing file.")
    if not np.issubdtype(np.dtype(dtype), np.integer):
        raise TypeError(f"dtype must be an integer dtype, got {dtype!r}.")
    with open(path, encoding="utf-8") as fh:
        lines = [line.split() for line in fh if line.strip()]
    if not lines:
        raise ValueError(f"{path!r} holds no samples.")
    if n_fields is None:
        n_fields = len(lines[0]) - 1
    lengths = np.fromiter((len(tok) for tok in lines), dtype=np.int64, count=len(lines))
    bad = np.flatnonzero(lengths != n_fields + 1)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{path!r} line {i + 1} has {lengths[i] - 1} features, expected "
            f"{n_fields} (one active feature per field)."
        )
    tokens = np.asarray(lines, dtype=object)
    labels = _parse_numbers(tokens[:, 0], path, "label", float)
    if not np.isin(labels, (-1.0, 0.0, 1.0)).all():
        i = int(np.flatnonzero(~np.isin(labels, (-1.0, 0.0, 1.0)))[0])
        raise ValueError(
            f"{path!r} line {i + 1}: label {tokens[i, 0]!r} is not one of -1, 0, 1; "
            "load_libfm reads binary (click) data only."
        )
    pairs = np.char.partition(tokens[:, 1:].astype(str), ":")
    if not (pairs[..., 1] == ":").all():
        i, j = np.argwhere(pairs[..., 1] != ":")[0]
        raise ValueError(
            f"{path!r} line {i + 1}: feature {tokens[i, j + 1]!r} is not 'id:value'."
        )
    ids = _parse_numbers(pairs[..., 0], path, "feature id", int)
    values = _parse_numbers(pairs[..., 2], path, "feature value", float)
    if (ids < 0).any():
        i = int(np.argwhere(ids < 0)[0][0])
        raise ValueError(f"{path!r} line {i + 1}: negative feature id.")
    if not (values == 1.0).all():
        i = int(np.argwhere(values != 1.0)[0][0])
        raise ValueError(
            f"{path!r} line {i + 1}: feature value is not 1; load_libfm reads one-hot "
            "categorical fields only (bin numeric features first)."
        )
    return ids.astype(dtype), (labels > 0).astype(np.int64)


def _parse_numbers(arr, path, what, kind):
    try:
        if kind is int:
            return np.asarray(arr, dtype=str).astype(np.int64)
        return np.asarray(arr, dtype=str).astype(np.float64)
    except ValueError as exc:
        raise ValueError(f"{path!r}: a {what} is not a number ({exc}).") from exc
