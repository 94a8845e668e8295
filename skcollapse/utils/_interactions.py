"""The one reader of ``(user, item)`` interaction input.

Every place that takes interaction pairs — the CF estimators, the ranking
metrics and scorers, the splitters — reads them through
:func:`check_interactions`, so that a DataFrame is read the same way
everywhere:

* a DataFrame with columns named ``"user"`` and ``"item"`` is read **by name**,
  whatever their order and whatever other columns it has;
* any other DataFrame (and every array) is read **by position**: column 0 holds
  users, column 1 items;
* a DataFrame whose column names contradict that order (``"item"`` first,
  ``"user"`` second, or ``item_id``/``user_id`` the wrong way round) is refused
  with an error that says how to fix it, never read silently the wrong way.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ITEM_COLUMN",
    "USER_COLUMN",
    "IdVocabulary",
    "check_id_vector",
    "check_interactions",
]

#: DataFrame column names read by name.
USER_COLUMN = "user"
ITEM_COLUMN = "item"


def _is_frame(X) -> bool:
    return hasattr(X, "iloc") and hasattr(X, "columns")


def _looks_like(column, role: str) -> bool:
    """``True`` for column names such as ``"item"``, ``"item_id"``, ``"itemId"``."""
    if not isinstance(column, str):
        return False
    name = column.strip().lower()
    return name == role or name.startswith((role + "_", role + "id", role + " "))


def _frame_columns(X, name):
    """The user and item columns of a DataFrame, by name or by position."""
    cols = list(X.columns)
    if USER_COLUMN in cols and ITEM_COLUMN in cols:
        return X[USER_COLUMN].to_numpy(), X[ITEM_COLUMN].to_numpy()
    if len(cols) < 2:
        raise ValueError(
            f"{name} must have at least two columns (user, item), got {len(cols)}."
        )
    first, second = cols[0], cols[1]
    swapped = (
        _looks_like(first, ITEM_COLUMN)
        or _looks_like(second, USER_COLUMN)
        or (USER_COLUMN in cols and cols.index(USER_COLUMN) != 0)
        or (ITEM_COLUMN in cols and cols.index(ITEM_COLUMN) != 1)
    )
    if swapped:
        raise ValueError(
            f"{name} is a DataFrame with columns {cols[:4]}, whose names contradict "
            "the (user, item) order in which it would be read by position. Name "
            f"the columns {USER_COLUMN!r} and {ITEM_COLUMN!r} (they are then read "
            "by name), or reorder them, e.g. df[['user_id', 'item_id']]."
        )
    return X.iloc[:, 0].to_numpy(), X.iloc[:, 1].to_numpy()


def _as_ids(arr, name):
    """Ids as labels: non-negative integers (int64), or strings.

    Integer-valued floats are integers; NaN, negative or fractional numbers,
    booleans and mixed or missing values are refused.
    """
    kind = arr.dtype.kind
    if kind in "OUS":
        import pandas as pd

        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred in ("string", "bytes"):
            return arr
        if inferred in ("integer", "floating", "mixed-integer-float"):
            arr = arr.astype(np.float64)
            kind = "f"
        else:
            raise TypeError(
                f"{name} must hold integer or string user/item ids, got values of "
                f"type {inferred!r} (missing values, or a mix of types); clean them "
                "or encode them first, e.g. with sklearn.preprocessing.OrdinalEncoder."
            )
    if kind == "b" or kind not in "iuf":
        raise TypeError(
            f"{name} must hold integer or string user/item ids, got dtype {arr.dtype}."
        )
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite ids.")
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError(
                f"{name} must hold integer (or string) user/item ids, got "
                "non-integer numbers; is this a rating or timestamp column?"
            )
    if arr.size and arr.min() < 0:
        raise ValueError(
            f"{name} contains negative user or item ids; numeric ids must be >= 0 "
            "(-1 pads recommendation lists)."
        )
    return arr.astype(np.int64, copy=False)


def check_interactions(X, *, name="X", allow_extra_columns=False):
    """Validate interaction input and return ``(users, items)`` int64 arrays.

    Parameters
    ----------
    X : array-like, DataFrame or torch.Tensor of shape (n, 2) or (n, >= 2)
        ``(user, item)`` pairs. A DataFrame with ``"user"`` and ``"item"``
        columns is read by name; otherwise column 0 holds users and column 1
        items (see the module docstring for the refused, contradictory names).
    name : str, default="X"
        Name of the argument in error messages.
    allow_extra_columns : bool, default=False
        Accept columns after the first two (e.g. a timestamp), which are ignored.

    Returns
    -------
    users, items : ndarray of shape (n,)
        The ids as labels: int64 for numeric ids (non-negative, integer-valued),
        else the strings as given. Estimators map labels to rows with
        :class:`IdVocabulary`.
    """
    if X is None:
        raise ValueError(f"{name} is required: an (n, 2) array of (user, item) ids.")
    if sp.issparse(X):
        raise TypeError(
            f"{name} must be an (n, 2) array of (user, item) pairs, got a sparse "
            "matrix; convert a user-item matrix with np.column_stack(M.nonzero())."
        )
    if _is_frame(X):
        if not allow_extra_columns and X.shape[1] != 2:
            raise ValueError(
                f"{name} must have exactly two columns (user, item), got "
                f"{X.shape[1]}; select them first, e.g. df[['user', 'item']]."
            )
        users, items = _frame_columns(X, name)
    else:
        if type(X).__module__.startswith("torch"):
            X = X.detach().cpu().numpy()
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
        ok_cols = arr.ndim == 2 and (
            arr.shape[1] >= 2 if allow_extra_columns else arr.shape[1] == 2
        )
        if not ok_cols:
            expected = "(n, >= 2)" if allow_extra_columns else "(n, 2)"
            raise ValueError(
                f"{name} must be a 2-D array of (user, item) pairs with shape "
                f"{expected}, got shape {arr.shape}."
            )
        users, items = arr[:, 0], arr[:, 1]
    if users.shape[0] == 0:
        raise ValueError(f"{name} is empty; give at least one (user, item) pair.")
    users = _as_ids(np.asarray(users), name)
    items = _as_ids(np.asarray(items), name)
    # own, writable, contiguous arrays (a DataFrame column may be a read-only view)
    return np.array(users), np.array(items)


def check_id_vector(ids, *, name):
    """A scalar or 1-D array of ids as a 1-D array; returns ``(array, was_scalar)``."""
    scalar = np.ndim(ids) == 0
    arr = np.atleast_1d(np.asarray(ids))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D array, got shape {arr.shape}.")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64), scalar
    return _as_ids(arr, name), scalar


class IdVocabulary:
    """The ids an estimator knows, and the row (code) of each.

    Ids are labels, as classes are for scikit-learn classifiers: integers with
    gaps, 1-based, or strings. Row ``c`` of an embedding table belongs to
    ``ids[c]``. When the ids are exactly ``0..n-1`` (the fast path) the codes
    are the ids themselves and no lookup is made.

    Parameters
    ----------
    ids : ndarray of shape (n,)
        The known ids, in row order, without duplicates.
    kind : {"user", "item"}
        Used in error messages.
    """

    def __init__(self, ids, *, kind):
        self.ids = np.asarray(ids)
        self.kind = kind
        n = self.ids.shape[0]
        self.identity = bool(
            self.ids.dtype.kind in "iu"
            and (n == 0 or (self.ids[0] == 0 and self.ids[-1] == n - 1))
            and np.array_equal(self.ids, np.arange(n))
        )
        self._index = None

    @classmethod
    def learn(cls, ids, *, kind, n=None):
        """The vocabulary of ``ids``: ``0..n-1`` when ``n`` is given, else the
        sorted distinct ids."""
        if n is not None:
            if ids.dtype.kind not in "iu":
                raise ValueError(
                    f"n_{kind}s={n} reserves integer ids 0..{n - 1}, but X holds "
                    f"{kind} ids of dtype {ids.dtype}; leave n_{kind}s=None."
                )
            if ids.size and int(ids.max()) >= n:
                raise ValueError(
                    f"X contains {kind} id {int(ids.max())} but n_{kind}s={n}; ids "
                    f"must be < n_{kind}s."
                )
            return cls(np.arange(n, dtype=np.int64), kind=kind)
        return cls(np.unique(ids), kind=kind)

    def __len__(self):
        return self.ids.shape[0]

    def _lookup(self, ids):
        if self.identity:
            if ids.dtype.kind not in "iu":
                return np.full(ids.shape[0], -1, dtype=np.int64)
            codes = ids.astype(np.int64, copy=True)
            codes[(codes < 0) | (codes >= len(self))] = -1
            return codes
        if self._index is None:
            import pandas as pd

            self._index = pd.Index(self.ids)
        return self._index.get_indexer(ids).astype(np.int64, copy=False)

    def encode(self, ids, *, name, unknown="error"):
        """Rows of ``ids``; ``unknown="error"`` refuses ids not in the vocabulary,
        ``"ignore"`` returns ``-1`` for them."""
        codes = self._lookup(np.asarray(ids))
        if unknown == "error" and codes.size and codes.min() < 0:
            bad = np.asarray(ids)[codes < 0]
            example = bad[0].item() if isinstance(bad[0], np.generic) else bad[0]
            raise ValueError(
                f"{name} contains {bad.shape[0]} {self.kind} id(s) unseen in fit, "
                f"e.g. {example!r}; the model knows {len(self)} {self.kind}s (their "
                f"ids are {self.kind}_ids_). Fit on data that includes them, or "
                "drop them first."
            )
        return codes

    def extend(self, ids):
        """A vocabulary with the unseen ``ids`` appended (sorted); and their count."""
        new = np.unique(np.asarray(ids)[self._lookup(np.asarray(ids)) < 0])
        if new.size == 0:
            return self, 0
        if self.identity and new.dtype.kind in "iu" and new[0] == len(self) and (
            new[-1] == len(self) + new.size - 1
        ):
            return IdVocabulary(np.arange(len(self) + new.size), kind=self.kind), new.size
        merged = np.concatenate([self.ids.astype(object), new.astype(object)])
        if self.ids.dtype.kind in "iu" and new.dtype.kind in "iu":
            merged = merged.astype(np.int64)
        return IdVocabulary(merged, kind=self.kind), new.size

    def decode(self, codes):
        """Ids of rows ``codes``; ``-1`` (padding) stays ``-1`` for integer ids and
        becomes ``None`` for string ids."""
        codes = np.asarray(codes)
        if self.identity:
            return codes
        pad = codes < 0
        if self.ids.dtype.kind in "iu":
            out = self.ids[np.where(pad, 0, codes)]
            out[pad] = -1
            return out
        out = self.ids.astype(object)[np.where(pad, 0, codes)]
        out[pad] = None
        return out
