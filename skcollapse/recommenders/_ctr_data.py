"""The input of the CTR classifiers: field-matrix and target checks, batches.

``X`` is an integer field matrix of category codes (see
:mod:`skcollapse.recommenders._ctr`); :func:`check_field_matrix` and
:func:`check_target` validate it and ``y``, :class:`FieldDataset` keeps them as
tensors and :class:`BatchLoader` yields mini-batches by slicing those tensors
(one index-select per batch instead of a per-sample collate).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import column_or_1d
from torch.utils.data import Dataset, Subset

__all__ = [
    "BatchLoader",
    "FieldDataset",
    "check_field_matrix",
    "check_target",
    "infer_field_dims",
    "unwrap_dataset",
]

# A field whose inferred cardinality exceeds this many codes per training row (and
# this absolute floor) almost surely holds raw ids instead of category codes.
_MAX_CODES_PER_ROW = 10
_MAX_CODES_FLOOR = 100_000


def check_field_matrix(X, name="X"):
    """Return ``X`` (already 2-D, finite) as an int64 array of category codes."""
    X = np.asarray(X)
    if X.dtype.kind == "b":
        return X.astype(np.int64)
    if X.dtype.kind in "iu":
        if X.dtype.kind == "u" and X.size and X.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds codes too large for int64.")
        return X.astype(np.int64, copy=False)
    if X.dtype.kind == "f":
        if X.size and not np.array_equal(X, np.floor(X)):
            raise ValueError(
                f"{name} must hold integer category codes; it has non-integral "
                "values. Encode numeric columns first (e.g. KBinsDiscretizer("
                "encode='ordinal')) and categories with OrdinalEncoder."
            )
        if X.size and np.abs(X).max() > 2**53:
            raise ValueError(f"{name} holds codes too large to be exact in float64.")
        return X.astype(np.int64)
    raise TypeError(
        f"{name} must be an integer field matrix (category codes), got dtype "
        f"{X.dtype}. Encode categories with OrdinalEncoder(handle_unknown="
        "'use_encoded_value', unknown_value=-1) first."
    )


def check_target(y, owner="CTR classifier"):
    """Validate a binary target: 1-D (a column vector is raveled with a warning)."""
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None.")
    y = column_or_1d(y, warn=True)
    if y.shape[0] == 0:
        raise ValueError("y is empty.")
    kind = type_of_target(y, input_name="y")
    if kind == "continuous":
        raise ValueError(
            "Unknown label type: continuous. y must hold two classes (clicks), "
            "not continuous values."
        )
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"Unknown label type: {kind}. y must hold two classes.")
    return y


def infer_field_dims(X, spec):
    """Cardinality of each field of the code matrix ``X``.

    ``spec`` is ``cardinalities`` as a list (checked against the fields), an
    int (every field), or ``None``: ``max code + 1`` per field, refusing a field
    whose codes look like raw ids.
    """
    n_samples, n_fields = X.shape
    if isinstance(spec, list):
        if len(spec) != n_fields:
            raise ValueError(
                f"cardinalities has {len(spec)} entries but X has {n_fields} "
                "fields."
            )
        return spec
    if isinstance(spec, int):
        return [spec] * n_fields
    dims = np.maximum(np.where(X >= 0, X, -1).max(axis=0) + 1, 1)
    limit = max(_MAX_CODES_PER_ROW * n_samples, _MAX_CODES_FLOOR)
    if (dims > limit).any():
        f = int(np.argmax(dims))
        raise ValueError(
            f"field {f} of X has codes up to {int(dims[f]) - 1} for only "
            f"{n_samples} rows: X looks like raw ids, not category codes. Encode "
            "it with OrdinalEncoder or pass cardinalities=."
        )
    return [int(d) for d in dims]


class FieldDataset(Dataset):
    """Field matrix and targets as tensors; batches are read by slicing."""

    def __init__(self, X, y=None):
        if not X.flags.writeable:
            X = X.copy()
        self.X = torch.as_tensor(X, dtype=torch.long)
        self.y = None if y is None else torch.as_tensor(y, dtype=torch.float32)

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, i):
        return self.X[i], (self.y[i] if self.y is not None else torch.zeros(()))


class BatchLoader:
    """Vectorised mini-batches of a :class:`FieldDataset` (or a Subset of one).

    Each batch is one index-select of the stored tensors instead of the
    per-sample ``__getitem__`` + collate of a ``DataLoader``. With
    ``merge_single=True`` (training) a final batch of one row joins the batch
    before it, so that batch normalisation, which needs two rows, trains on any
    number of rows (2,049 rows at ``batch_size=2048`` give one batch of 2,049).
    """

    def __init__(self, dataset, indices, batch_size, shuffle, generator,
                 merge_single=False):
        self.dataset = dataset
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.merge_single = merge_single

    def _n(self):
        return len(self.dataset) if self.indices is None else len(self.indices)

    def _bounds(self, n):
        starts = list(range(0, n, self.batch_size))
        stops = [*starts[1:], n]
        if self.merge_single and len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
            stops.pop()
            stops[-1] = n
        return zip(starts, stops)

    def __len__(self):
        return sum(1 for _ in self._bounds(self._n()))

    def __iter__(self):
        X, y = self.dataset.X, self.dataset.y
        idx = self.indices
        n = X.shape[0] if idx is None else idx.shape[0]
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator)
            idx = perm if idx is None else idx[perm]
        for start, stop in self._bounds(n):
            if idx is None:
                sl = slice(start, stop)
                yield X[sl], (None if y is None else y[sl])
            else:
                b = idx[start:stop]
                yield X[b], (None if y is None else y[b])


def unwrap_dataset(dataset):
    """``(base FieldDataset, index tensor or None)`` or ``(None, None)``."""
    if isinstance(dataset, FieldDataset):
        return dataset, None
    if isinstance(dataset, Subset):
        base, idx = unwrap_dataset(dataset.dataset)
        if base is None:
            return None, None
        sub = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        return base, (sub if idx is None else idx[sub])
    return None, None
