"""Criteo and Avazu raw text to an integer field matrix, as the Multi-Embedding paper.

Preprocessing follows Guo et al. (ICML 2024, ``thuml/Multi-Embedding``, itself
following ``pytorch-fm``): each numeric Criteo value ``v`` becomes the category
``floor(ln(v)^2)`` when ``v > 2`` and ``v - 2`` otherwise (an empty value is its
own category); then, per field, values seen fewer than ``min_count`` times
(10 for Criteo, 4 for Avazu) are out of vocabulary. The result is the CTR data
contract of skcollapse: an int64 matrix ``(n_samples, n_fields)`` whose codes
are ``0..field_dims[f]-1`` and ``-1`` for out-of-vocabulary values (the CTR
models send negative codes to their OOV row).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._sklearn_compat import int_interval, validate_params

__all__ = ["bucketize_numeric", "load_avazu", "load_criteo"]

CRITEO_NUMERIC = [f"I{i}" for i in range(1, 14)]
CRITEO_CATEGORICAL = [f"C{i}" for i in range(1, 27)]
CRITEO_COLUMNS = ["label", *CRITEO_NUMERIC, *CRITEO_CATEGORICAL]
AVAZU_FIELDS = [
    "hour",
    "C1",
    "banner_pos",
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
    "device_id",
    "device_ip",
    "device_model",
    "device_type",
    "device_conn_type",
    *[f"C{i}" for i in range(14, 22)],
]

_CRITEO_DESCR = """.. _criteo_dataset:

Criteo Display Advertising Challenge (Kaggle, 2014)
---------------------------------------------------

One row per ad impression: a click label, 13 integer features (I1-I13) and 26
hashed categorical features (C1-C26); the full ``train.txt`` has 45,840,617 rows.
Encoded as in Guo et al. (ICML 2024): numeric ``v > 2 -> floor(ln(v)^2)``,
``v <= 2 -> v - 2``, empty values a category of their own; per field, values
seen fewer than ``min_count`` times are out of vocabulary (code -1).

Licence: the Criteo data is released by Criteo for research use under its own
terms (https://ailab.criteo.com/ressources/); it is not redistributed here.
Cite: Guo et al., On the Embedding Collapse When Scaling Up Recommendation
Models, ICML 2024 (preprocessing), and the Criteo Display Advertising Challenge.
"""

_AVAZU_DESCR = """.. _avazu_dataset:

Avazu Click-Through Rate Prediction (Kaggle, 2014)
--------------------------------------------------

One row per mobile ad impression: ``id``, ``click`` and 22 categorical fields
(hour, C1, banner_pos, site/app/device attributes, C14-C21); the full training
file has 40,428,967 rows. Values seen fewer than ``min_count`` times in a field
are out of vocabulary (code -1), as in Guo et al. (ICML 2024).

Licence: Avazu Kaggle competition data, research use under the competition's
terms; it is not redistributed here.
"""


@validate_params({"values": ["array-like"]}, prefer_skip_nested_validation=True)
def bucketize_numeric(values):
    """Bucket integer counts as Multi-Embedding/pytorch-fm: ``floor(ln(v)^2)`` if v>2.

    Parameters
    ----------
    values : array-like of shape (n,)
        Integer values (may be negative); NaN marks a missing value.

    Returns
    -------
    buckets : ndarray of object
        ``str(floor(ln(v)^2))`` for ``v > 2``, ``str(v - 2)`` otherwise, and
        ``""`` for a missing value (so missing is a category of its own).

    Examples
    --------
    >>> bucketize_numeric([0, 2, 3, 10, float("nan")]).tolist()
    ['-2', '0', '1', '5', '']
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}.")
    missing = np.isnan(v)
    if np.any(np.isinf(v)):
        raise ValueError("values contain infinite entries.")
    filled = np.where(missing, 0.0, v)
    if not np.all(filled == np.floor(filled)):
        raise ValueError("numeric Criteo values must be integers.")
    large = filled > 2
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.floor(np.log(np.where(large, filled, 3.0)) ** 2)
    buckets = np.where(large, logs, filled - 2).astype(np.int64).astype(str)
    out = buckets.astype(object)
    out[missing] = ""
    return out


def _encode_stream(read_chunks, tokenize, names, min_count, vocabularies, dtype):
    """Two streaming passes: count tokens per field, then encode every chunk.

    ``read_chunks()`` returns a fresh iterator of raw DataFrames; ``tokenize``
    maps one to ``(tokens DataFrame, labels)``. Codes are vocabulary indices
    (vocabulary sorted as strings) and -1 for rare/unseen values.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "i":
        raise TypeError(f"dtype must be a signed integer dtype, got {dtype}.")
    if vocabularies is not None:
        if len(vocabularies) != len(names):
            raise ValueError(
                f"vocabularies has {len(vocabularies)} entries but the data has "
                f"{len(names)} fields."
            )
        vocabularies = [np.asarray(v, dtype=object) for v in vocabularies]
    else:
        counts = [None] * len(names)
        for raw in read_chunks():
            tokens, _ = tokenize(raw)
            for j, name in enumerate(names):
                chunk_counts = tokens[name].value_counts(sort=False)
                counts[j] = (
                    chunk_counts
                    if counts[j] is None
                    else counts[j].add(chunk_counts, fill_value=0)
                )
        if counts[0] is None:
            raise ValueError("the file holds no data rows.")
        vocabularies = []
        for field_counts in counts:
            kept = field_counts.index[field_counts.to_numpy() >= min_count]
            vocabularies.append(np.sort(kept.to_numpy().astype(str)).astype(object))
    indexes = [pd.Index(v) for v in vocabularies]
    blocks, labels = [], []
    for raw in read_chunks():
        tokens, y = tokenize(raw)
        block = np.empty((tokens.shape[0], len(names)), dtype=dtype)
        for j, name in enumerate(names):
            block[:, j] = indexes[j].get_indexer(tokens[name].to_numpy())
        blocks.append(block)
        labels.append(y)
    if sum(block.shape[0] for block in blocks) == 0:
        raise ValueError("the file holds no data rows.")
    X = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    y = np.concatenate(labels) if len(labels) > 1 else labels[0]
    field_dims = np.array([v.shape[0] for v in vocabularies], dtype=np.int64)
    return X, y, vocabularies, field_dims


def _labels(column, path, name):
    labels = pd.to_numeric(column, errors="coerce").to_numpy()
    if np.isnan(labels).any() or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: the {name} column must hold 0/1 labels.")
    return labels.astype(np.int64)


def _check_path(path):
    """The path of an existing file (a data check: the file must be there)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OSError(f"{path!r} is not an existing file.")
    return path


_POSITIVE_INT = int_interval(1, None, closed="left")
#: The constraints shared by the loaders.
_LOAD_CONSTRAINTS = {
    "path": [str, os.PathLike],
    "min_count": [_POSITIVE_INT],
    "vocabularies": [None, "array-like"],
    "n_rows": [None, _POSITIVE_INT],
    "chunksize": [_POSITIVE_INT],
    "dtype": "no_validation",  # a dtype-like, resolved and checked when encoding
    "return_X_y": ["boolean"],
}


#: The loaders' parameters of how the file is read and what is returned (a
#: docstring part, :func:`fill_doc`).
_STREAM_PARAMS_DOC = """
    n_rows : int or None, default=None
        Read only the first ``n_rows`` rows.
    chunksize : int, default=1_000_000
        Rows parsed at a time. The file is streamed twice (count, then encode),
        so memory holds one chunk of strings plus the integer result, which lets
        a full file (45M rows for Criteo) load on one machine.
    dtype : numpy signed integer dtype, default=np.int64
        Dtype of the codes (``np.int32`` halves the memory of the result).
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
"""


def _chunk_reader(path, n_rows, chunksize, **options):
    """A ``read_chunks()`` for :func:`_encode_stream`: fresh string chunks per call."""

    def read_chunks():
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            nrows=n_rows,
            chunksize=chunksize,
            **options,
        )

    return read_chunks


def _load_encoded(
    read_chunks, tokenize, names, min_count, vocabularies, dtype, *, descr, return_X_y
):
    """Encode the stream and package it as the loaders return it."""
    X, y, vocabularies, field_dims = _encode_stream(
        read_chunks, tokenize, names, min_count, vocabularies, dtype
    )
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        feature_names=list(names),
        field_dims=field_dims,
        vocabularies=vocabularies,
        DESCR=descr,
    )


@validate_params(_LOAD_CONSTRAINTS, prefer_skip_nested_validation=True)
@fill_doc(stream_params=_STREAM_PARAMS_DOC)
def load_criteo(
    path,
    *,
    min_count=10,
    vocabularies=None,
    n_rows=None,
    chunksize=1_000_000,
    dtype=np.int64,
    return_X_y=False,
):
    """Load Criteo (Kaggle DAC) raw text into an integer field matrix.

    Reads the raw tab-separated ``train.txt`` (``label, I1..I13, C1..C26``, no
    header; rows whose trailing empty fields were stripped are padded) or a
    comma-separated file with that header (e.g. DeepCTR's ``criteo_sample.txt``).

    Parameters
    ----------
    path : str or path-like
        The file.
    min_count : int, default=10
        Values seen fewer times in a field are out of vocabulary (code -1).
        Ignored when ``vocabularies`` is given.
    vocabularies : list of array-like or None, default=None
        Per-field vocabularies from a previous call (``bunch.vocabularies``) to
        encode another file (e.g. the test split) consistently; values not in
        them get -1.
    {stream_params}

    Returns
    -------
    data : Bunch
        data : ndarray of shape (n_samples, 39), dtype int64
            Codes ``0..field_dims[f]-1``, ``-1`` out of vocabulary.
        target : ndarray of shape (n_samples,), dtype int64
        feature_names : list of str
        field_dims : ndarray of shape (39,)
            Vocabulary size of every field (without the OOV row).
        vocabularies : list of ndarray
            The value tokens of every field, in code order.
        DESCR : str
    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from skcollapse.datasets import load_criteo
    >>> # skipped by the doctests: needs a local Criteo file
    >>> bunch = load_criteo("criteo_sample.txt", min_count=2)  # doctest: +SKIP
    >>> bunch.data.shape  # doctest: +SKIP
    (200, 39)
    """
    path = _check_path(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if not first.strip():
        raise ValueError(f"{path!r} is empty.")
    has_header = first.split(",")[0].strip().lower() == "label"
    if has_header:
        header = [c.strip() for c in first.rstrip("\r\n").split(",")]
        missing = [c for c in CRITEO_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: header lacks the Criteo columns {missing}.")
        options = {"usecols": CRITEO_COLUMNS}
    else:
        n_fields = len(first.rstrip("\r\n").split("\t"))
        if n_fields > len(CRITEO_COLUMNS) or n_fields < 2:
            raise ValueError(
                f"{path}: expected up to 40 tab-separated fields (label, I1-I13, "
                f"C1-C26), found {n_fields} on the first line."
            )
        options = {"sep": "\t", "header": None, "names": CRITEO_COLUMNS, "quoting": 3}

    def tokenize(frame):
        frame = frame.fillna("")
        tokens = pd.DataFrame(index=frame.index)
        for name in CRITEO_NUMERIC:
            column = frame[name].str.strip()
            numeric = pd.to_numeric(column.replace("", np.nan), errors="coerce")
            bad = numeric.isna() & (column != "")
            if bad.any():
                raise ValueError(
                    f"{path}: numeric column {name} holds a non-numeric value "
                    f"{column[bad].iloc[0]!r}."
                )
            tokens[name] = bucketize_numeric(numeric.to_numpy(np.float64))
        for name in CRITEO_CATEGORICAL:
            tokens[name] = frame[name].to_numpy(dtype=object)
        return tokens, _labels(frame["label"], path, "label")

    return _load_encoded(
        _chunk_reader(path, n_rows, chunksize, **options),
        tokenize,
        [*CRITEO_NUMERIC, *CRITEO_CATEGORICAL],
        min_count,
        vocabularies,
        dtype,
        descr=_CRITEO_DESCR,
        return_X_y=return_X_y,
    )


@validate_params(_LOAD_CONSTRAINTS, prefer_skip_nested_validation=True)
@fill_doc(stream_params=_STREAM_PARAMS_DOC)
def load_avazu(
    path,
    *,
    min_count=4,
    vocabularies=None,
    n_rows=None,
    chunksize=1_000_000,
    dtype=np.int64,
    return_X_y=False,
):
    """Load Avazu raw CSV (``id,click,hour,C1,...``) into an integer field matrix.

    Parameters
    ----------
    path : str or path-like
        CSV with the Kaggle header; ``id`` is dropped, ``click`` is the label and
        the 22 other columns are categorical fields.
    min_count : int, default=4
        Values seen fewer times in a field are out of vocabulary (code -1).
        Ignored when ``vocabularies`` is given.
    vocabularies : list of array-like or None, default=None
        Per-field vocabularies from a previous call to encode another file.
    {stream_params}

    Returns
    -------
    data : Bunch
        Same fields as :func:`load_criteo`, with 22 fields.
    (data, target) : tuple if ``return_X_y`` is True
    """
    path = _check_path(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = [c.strip() for c in fh.readline().rstrip("\r\n").split(",")]
    missing = [c for c in ["click", *AVAZU_FIELDS] if c not in header]
    if missing:
        raise ValueError(f"{path}: header lacks the Avazu columns {missing}.")

    def tokenize(frame):
        tokens = frame[AVAZU_FIELDS].astype(object)
        return tokens, _labels(frame["click"], path, "click")

    return _load_encoded(
        _chunk_reader(path, n_rows, chunksize, usecols=["click", *AVAZU_FIELDS]),
        tokenize,
        AVAZU_FIELDS,
        min_count,
        vocabularies,
        dtype,
        descr=_AVAZU_DESCR,
        return_X_y=return_X_y,
    )
