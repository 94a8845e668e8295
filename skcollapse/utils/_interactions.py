"""The one reader of ``(user, item)`` interaction input.

Every place that takes interaction pairs — the CF estimators, the ranking
metrics and scorers, the splitters — reads them through
:func:`check_interactions`, so that a DataFrame is read the same way
everywhere:

* a DataFrame is read **by name** when its columns say which holds users and
  which items: ``"user"``/``"item"``, ``user_id``/``itemId``, or a common name
  of either role (``customer``, ``movie``, ``product``, ... see
  :data:`ROLE_NAMES`), whatever their order and whatever other columns it has;
* otherwise it is read **by position** (column 0 users, column 1 items), with
  one warning naming the columns taken as user and item, unless the columns
  are the positions themselves (``0``, ``1``, as ``pd.DataFrame(array)`` names
  them); arrays are always read by position;
* a DataFrame whose names contradict the positional reading (``["item",
  "rating"]``, ``["ts", "user"]``) or name a role twice (``["user_id",
  "user_name", ...]``) is refused with an error that says how to fix it.

Ids are labels and are kept exactly: int64 for integers that fit, uint64 or
Python integers (an object array) beyond, strings as given. Two distinct ids
are never merged, and ids a float cannot hold exactly are refused.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp

from skcollapse.utils._warnings import warn_once

__all__ = [
    "ITEM_COLUMN",
    "ROLE_NAMES",
    "USER_COLUMN",
    "IdVocabulary",
    "check_id_vector",
    "check_interactions",
]

#: DataFrame column names read by name.
USER_COLUMN = "user"
ITEM_COLUMN = "item"

#: Column names recognised as the user or the item column (compared in lower
#: case without ``_``, ``-``, spaces and a trailing ``id``, ``key``, ``code``, ``name``...:
#: ``customer_id``, ``movieId`` and ``Product Code`` are recognised).
ROLE_NAMES = {
    USER_COLUMN: (
        "user", "users", "uid", "customer", "client", "member", "visitor",
        "viewer", "listener", "reader", "buyer", "account", "person", "player",
    ),
    ITEM_COLUMN: (
        "item", "items", "iid", "movie", "film", "product", "song", "track",
        "artist", "album", "book", "article", "video", "sku", "poi", "venue",
        "business", "restaurant", "app", "game", "anime", "recipe", "news",
        "post", "doc", "document", "course", "job", "hotel", "offer", "ad",
    ),
}
#: Column names that are never ids (read by position they would be nonsense).
_NOT_IDS = frozenset((
    "rating", "ratings", "score", "scores", "timestamp", "timestamps", "ts",
    "time", "date", "datetime", "label", "labels", "click", "clicks", "weight",
    "weights", "count", "counts", "value", "values", "target", "y",
))
_SUFFIX = re.compile(r"(id|ids|key|code|index|idx|name|title)$")
_INT64_MAX = int(np.iinfo(np.int64).max)
_UINT64_MAX = int(np.iinfo(np.uint64).max)
#: the largest integer up to which every integer is a float64
_FLOAT_EXACT = 2**53


def _is_frame(X) -> bool:
    return hasattr(X, "iloc") and hasattr(X, "columns")


def _role(column):
    """``"user"``, ``"item"``, ``"other"`` (a known non-id column) or ``None``."""
    if not isinstance(column, str):
        return None
    name = re.sub(r"[\s_\-.]", "", column.strip().lower())
    for role, words in ROLE_NAMES.items():
        if name in words:
            return role
    stem = _SUFFIX.sub("", name)
    if stem != name:
        for role, words in ROLE_NAMES.items():
            if stem in words:
                return role
    if name in _NOT_IDS:
        return "other"
    return None


def _frame_columns(X, name):
    """The user and item columns of a DataFrame, by name or by position."""
    cols = list(X.columns)
    if USER_COLUMN in cols and ITEM_COLUMN in cols:
        return X[USER_COLUMN].to_numpy(), X[ITEM_COLUMN].to_numpy()
    roles = {c: _role(c) for c in cols}
    found = {
        role: [c for c in cols if roles[c] == role] for role in (USER_COLUMN, ITEM_COLUMN)
    }
    for role, matches in found.items():
        if len(matches) > 1:
            raise ValueError(
                f"{name} is a DataFrame with several columns that look like {role} "
                f"ids: {matches}. Select one user and one item column, e.g. "
                f"df[[user_column, item_column]], or name them {USER_COLUMN!r} and "
                f"{ITEM_COLUMN!r}."
            )
    if found[USER_COLUMN] and found[ITEM_COLUMN]:
        return X[found[USER_COLUMN][0]].to_numpy(), X[found[ITEM_COLUMN][0]].to_numpy()
    if len(cols) < 2:
        raise ValueError(
            f"{name} must have at least two columns (user, item), got {len(cols)}."
        )
    first, second = cols[0], cols[1]
    if roles[first] not in (None, USER_COLUMN) or roles[second] not in (
        None, ITEM_COLUMN
    ):
        raise ValueError(
            f"{name} is a DataFrame with columns {cols[:4]}: no pair of user and "
            f"item columns is recognisable by name, and read by position "
            f"{first!r} would be the users and {second!r} the items, which their "
            f"names contradict. Name the columns {USER_COLUMN!r} and "
            f"{ITEM_COLUMN!r} (they are then read by name), or select them in "
            "(user, item) order, e.g. df[['user_id', 'item_id']]."
        )
    positional = [first, second] == [0, 1]
    if not positional and (roles[first] is None or roles[second] is None):
        warn_once(
            f"{name} is a DataFrame whose columns {cols[:4]} do not say which holds "
            f"users and which items; read by position: {first!r} as the user "
            f"column, {second!r} as the item column. Rename them "
            f"(df.rename(columns={{{first!r}: 'user', {second!r}: 'item'}})) to "
            "read by name and silence this warning.",
            UserWarning,
            stacklevel=4,
        )
    return X.iloc[:, 0].to_numpy(), X.iloc[:, 1].to_numpy()


def _negative_error(name):
    return ValueError(
        f"{name} contains negative user or item ids; numeric ids must be >= 0 "
        "(-1 pads recommendation lists)."
    )


def _exact_integers(values, name):
    """Python integers (from an object array of ints and integral floats) as
    the narrowest exact array: int64, else uint64, else object."""
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                raise ValueError(f"{name} contains NaN or infinite ids.")
            if v != np.floor(v):
                raise ValueError(
                    f"{name} must hold integer (or string) user/item ids, got "
                    "non-integer numbers; is this a rating or timestamp column?"
                )
            if abs(v) > _FLOAT_EXACT:
                raise _float_error(name)
        out.append(int(v))
    lo, hi = min(out), max(out)
    if lo < 0:
        raise _negative_error(name)
    if hi <= _INT64_MAX:
        return np.array(out, dtype=np.int64)
    if hi <= _UINT64_MAX:
        return np.array(out, dtype=np.uint64)
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def _float_error(name):
    return ValueError(
        f"{name} holds ids as floating-point numbers above 2**53, where distinct "
        "integers share one float (e.g. 2**53 + 1 == 2**53): two ids may already "
        "have merged. Keep the ids as integers (int64, uint64 or Python int) or "
        "strings, e.g. pd.read_csv(..., dtype={'user': 'uint64'})."
    )


def _as_ids(arr, name):
    """Ids as labels, kept exactly: int64 for integers that fit, uint64 or an
    object array of Python ints beyond, or strings.

    Integer-valued floats (up to 2**53) are integers; NaN, negative or
    fractional numbers, floats beyond 2**53, booleans and mixed or missing
    values are refused.
    """
    kind = arr.dtype.kind
    if kind in "OUS":
        import pandas as pd

        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred in ("string", "bytes"):
            return arr
        if inferred in ("integer", "mixed-integer-float"):
            if arr.size == 0:
                return np.empty(0, dtype=np.int64)
            return _exact_integers(arr.ravel(), name).reshape(arr.shape)
        if inferred == "floating":
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
    if kind == "u":
        if arr.size and int(arr.max()) > _INT64_MAX:
            return arr.astype(np.uint64, copy=False)
        return arr.astype(np.int64, copy=False)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite ids.")
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError(
                f"{name} must hold integer (or string) user/item ids, got "
                "non-integer numbers; is this a rating or timestamp column?"
            )
        if arr.size and np.abs(arr).max() > _FLOAT_EXACT:
            raise _float_error(name)
    if arr.size and arr.min() < 0:
        raise _negative_error(name)
    return arr.astype(np.int64, copy=False)


def _as_array(X, name):
    """``np.asarray(X)``, but integers numpy would round into floats (a list
    holding ids beyond int64) are kept as Python ints."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype.kind == "f" and not isinstance(X, np.ndarray):
        # np.asarray([[2**63 + 1, 1]]) is float64 (2**63 + 1 is lost): re-read the
        # values as Python objects and let _as_ids keep integers exact
        try:
            obj = np.asarray(X, dtype=object)
        except (TypeError, ValueError):
            return arr
        if obj.shape == arr.shape and any(isinstance(v, int) for v in obj.ravel()):
            return obj
    return arr


def check_interactions(X, *, name="X", allow_extra_columns=False):
    """Validate interaction input and return the ``(users, items)`` id arrays.

    Parameters
    ----------
    X : array-like, DataFrame or torch.Tensor of shape (n, 2) or (n, >= 2)
        ``(user, item)`` pairs. A DataFrame whose column names say which holds
        users and which items is read by name; otherwise column 0 holds users
        and column 1 items (see the module docstring for the warning and the
        refused, contradictory names).
    name : str, default="X"
        Name of the argument in error messages.
    allow_extra_columns : bool, default=False
        Accept columns after the first two (e.g. a timestamp), which are ignored.

    Returns
    -------
    users, items : ndarray of shape (n,)
        The ids as labels, exact: int64 for non-negative integers up to
        ``2**63 - 1``, uint64 up to ``2**64 - 1``, an object array of Python
        ints beyond; else the strings as given. Estimators map labels to rows
        with :class:`IdVocabulary`.
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
        arr = _as_array(X, name)
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
    arr = np.atleast_1d(_as_array(ids, name))
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

    @classmethod
    def of_estimator(cls, estimator, kind):
        """The vocabulary of a fitted estimator: its ``<kind>_ids_``, or rows
        ``0..n_<kind>s_ - 1`` as ids for an estimator without one (baselines,
        tables read from elsewhere)."""
        ids = getattr(estimator, f"{kind}_ids_", None)
        if ids is None:
            size = getattr(estimator, f"n_{kind}s_", None)
            if size is None:
                raise TypeError(
                    f"{type(estimator).__name__} has neither {kind}_ids_ nor "
                    f"n_{kind}s_; is it a fitted recommender?"
                )
            ids = np.arange(int(size))
        return cls(np.asarray(ids), kind=kind)

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
        ids = np.asarray(ids)
        new = np.unique(ids[self._lookup(ids) < 0])
        if new.size == 0:
            return self, 0
        if self.identity and new.dtype.kind in "iu" and new[0] == len(self) and (
            new[-1] == len(self) + new.size - 1
        ):
            return IdVocabulary(np.arange(len(self) + new.size), kind=self.kind), new.size
        merged = np.concatenate([self.ids.astype(object), new.astype(object)])
        if self.ids.dtype.kind in "iuO" and new.dtype.kind in "iuO":
            import pandas as pd

            if pd.api.types.infer_dtype(merged, skipna=False) == "integer":
                # int64 + uint64 (or beyond): the narrowest exact dtype of both
                merged = _exact_integers(merged, "X")
        return IdVocabulary(merged, kind=self.kind), new.size

    def decode(self, codes):
        """Ids of rows ``codes``.

        ``-1`` (padding) stays ``-1`` for int64 ids. Other ids (strings, and
        integers beyond int64) come back as an object array (Python ints or
        strings) in which padding is ``None``: no integer can stand for
        "nothing" among uint64 ids.
        """
        codes = np.asarray(codes)
        if self.identity:
            return codes
        pad = codes < 0
        if self.ids.dtype == np.int64:
            out = self.ids[np.where(pad, 0, codes)]
            out[pad] = -1
            return out
        out = self.ids.astype(object)[np.where(pad, 0, codes)]
        out[pad] = None
        return out
