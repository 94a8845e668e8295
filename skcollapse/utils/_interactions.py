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

__all__ = ["ITEM_COLUMN", "USER_COLUMN", "check_id_vector", "check_interactions"]

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


def _as_int_ids(arr, name):
    """Integer-valued, finite, non-negative ids as int64 (any numeric dtype)."""
    kind = arr.dtype.kind
    if kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must hold integer user/item ids, got dtype object with "
                "non-numeric values; encode them first, e.g. with "
                "sklearn.preprocessing.OrdinalEncoder."
            ) from None
        kind = "f"
    if kind == "b" or kind not in "iuf":
        raise TypeError(f"{name} must hold integer user/item ids, got dtype {arr.dtype}.")
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite ids.")
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError(
                f"{name} must hold integer user/item ids, got non-integer values; "
                "encode raw ids with sklearn.preprocessing.OrdinalEncoder first."
            )
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} contains negative user or item ids; ids must be >= 0.")
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
    users, items : ndarray of shape (n,), int64
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
    users = _as_int_ids(np.asarray(users), name)
    items = _as_int_ids(np.asarray(items), name)
    # own, writable, contiguous arrays (a DataFrame column may be a read-only view)
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64)


def check_id_vector(ids, upper, *, name, kind):
    """1-D int64 ids in ``[0, upper)``; returns ``(array, was_scalar)``.

    Parameters
    ----------
    ids : int or array-like of int
    upper : int
        Number of known ids.
    name : str
        Argument name for error messages.
    kind : {"user", "item"}
    """
    scalar = np.ndim(ids) == 0
    arr = np.atleast_1d(np.asarray(ids))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D array, got shape {arr.shape}.")
    if arr.dtype.kind not in "iu":
        integral_floats = (
            arr.dtype.kind == "f"
            and np.all(np.isfinite(arr))
            and np.all(arr == np.floor(arr))
        )
        if not (integral_floats or arr.size == 0):
            raise TypeError(f"{name} must hold integer {kind} ids, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        bad = arr[(arr < 0) | (arr >= upper)][0]
        raise ValueError(
            f"{name} contains {kind} id {bad}, outside the fitted range [0, {upper}); "
            f"the model knows {upper} {kind}s (set n_{kind}s at construction to "
            "reserve ids missing from the training data)."
        )
    return arr, scalar
