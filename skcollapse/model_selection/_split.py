"""Cross-validation splitters for implicit-feedback interactions.

Every splitter follows scikit-learn's protocol (``split(X, y=None, groups=None)``
yields ``(train_index, test_index)``; ``get_n_splits``), so it plugs into
``GridSearchCV(cv=...)``, ``cross_validate`` and ``learning_curve``. ``X`` is an
array ``(n, >= 2)`` whose first two columns are (user, item) ids, or a DataFrame
read like everywhere in skcollapse (``check_interactions``): by its ``user``/``item``
columns, else by position, and refused when its column names contradict the
(user, item) order. Temporal splitters
read the timestamp from a third column (``timestamp`` for a DataFrame) or from
the ``timestamps`` array given to the splitter, aligned with ``X`` (the pattern
of ``PredefinedSplit``), which keeps ``X`` two-column for the recommenders.

All selection is vectorised (sorting and group ranks; no per-user Python loop).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state, indexable

from skcollapse.utils._interactions import check_interactions
from skcollapse.utils._params import check_stored_params
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    real_interval,
    validate_params,
)

__all__ = [
    "LeaveLastOut",
    "PerUserKFold",
    "PerUserShuffleSplit",
    "TemporalSplit",
    "train_test_split_interactions",
]


# ------------------------------------------------------------------------------------
# Input helpers
# ------------------------------------------------------------------------------------
def _is_frame(X):
    return hasattr(X, "iloc") and hasattr(X, "columns")


def _users(X):
    """The user id of every row, read by the package's one interaction parser."""
    return check_interactions(X, allow_extra_columns=True)[0]


def _timestamps(X, timestamps):
    """Timestamps from the splitter, a DataFrame column, or X's third column."""
    n = X.shape[0]
    if timestamps is not None:
        ts = np.asarray(timestamps)
        source = "timestamps"
    elif _is_frame(X):
        if "timestamp" in X.columns:
            ts = X["timestamp"].to_numpy()
        elif X.shape[1] >= 3:
            ts = X.iloc[:, 2].to_numpy()
        else:
            raise ValueError(
                "A temporal split needs timestamps: add a 'timestamp' column to X or "
                "pass timestamps= to the splitter."
            )
        source = "X's timestamp column"
    else:
        arr = np.asarray(X)
        if arr.shape[1] < 3:
            raise ValueError(
                "A temporal split needs timestamps: give X a third (timestamp) column "
                "or pass timestamps= to the splitter."
            )
        ts = arr[:, 2]
        source = "X's third column"
    if ts.ndim != 1 or ts.shape[0] != n:
        raise ValueError(
            f"{source} must be 1-D with one value per interaction ({n}), got shape "
            f"{ts.shape}."
        )
    if np.issubdtype(ts.dtype, np.datetime64):
        if np.isnat(ts).any():
            raise ValueError(f"{source} contains NaT values.")
        return ts.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    try:
        ts = ts.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{source} must be numeric or datetime64.") from None
    if not np.all(np.isfinite(ts)):
        raise ValueError(f"{source} contains NaN or infinite values.")
    return ts


def _group_rank(users, key, tiebreak=None):
    """Rank of each row within its user by ascending ``key``, and the user's size.

    Ties in ``key`` are broken by ``tiebreak`` (default: row order).
    """
    if tiebreak is None:
        tiebreak = np.arange(users.shape[0])
    order = np.lexsort((tiebreak, key, users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, sorted_users.shape[0]])
    rank_sorted = np.arange(users.shape[0]) - np.repeat(starts, sizes)
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    size = np.empty_like(rank_sorted)
    size[order] = np.repeat(sizes, sizes)
    return rank, size


#: ``test_size`` of the per-user splitters: a fraction of each user's rows or a count.
_FRACTION_OR_COUNT = [
    real_interval(0, 1, closed="neither"),
    int_interval(1, None, closed="left"),
]


def _n_test_per_user(size, test_size):
    """Held-out count per row's user: ceil(fraction * n_u) or the fixed count,
    always leaving at least one training interaction."""
    if not isinstance(test_size, Integral):
        n_test = np.ceil(test_size * size - 1e-9).astype(np.int64)
    else:
        n_test = np.full_like(size, test_size)
    return np.minimum(n_test, size - 1)


# ------------------------------------------------------------------------------------
# Splitters
# ------------------------------------------------------------------------------------
class _InteractionSplitter(BaseCrossValidator):
    """Validates its parameters and ``X`` when ``split`` is called, before any draw.

    Subclasses declare ``_parameter_constraints`` (scikit-learn's format) and
    implement ``_iter_test_masks(X, users)``, where ``users`` is the user id of
    every row as read by :func:`~skcollapse.utils._interactions.check_interactions`.
    """

    _parameter_constraints: ClassVar[dict] = {}

    def _validate_params(self):
        check_stored_params(self)

    def split(self, X, y=None, groups=None):
        """Generate ``(train_index, test_index)`` pairs.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, >= 2)
            (user, item[, ...]) rows. A DataFrame with ``user`` and ``item``
            columns is read by name, any other input by position.
        y : None
            Ignored.
        groups : None
            Ignored.
        """
        self._validate_params()
        users = _users(X)
        indexable(X, y, groups)
        return self._split(X, users)

    def _split(self, X, users):
        indices = np.arange(users.shape[0])
        for test in self._iter_test_masks(X, users):
            yield indices[~test], indices[test]


class _SingleInteractionSplit(_InteractionSplitter):
    """An interaction splitter that yields one train/test pair."""

    def get_n_splits(self, X=None, y=None, groups=None):
        """Always 1."""
        return 1

    def split(self, X, y=None, groups=None):
        """Generate the single ``(train_index, test_index)`` pair.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, >= 2)
            (user, item[, timestamp]) rows.
        y : None
            Ignored.
        groups : None
            Ignored.
        """
        return super().split(X, y, groups)


class PerUserShuffleSplit(_InteractionSplitter):
    """Random per-user holdout, repeated ``n_splits`` times (ShuffleSplit per user).

    For each split and each user, ``ceil(test_size * n_u)`` of the user's
    ``n_u`` interactions (or ``test_size`` of them when it is an int) are drawn
    at random for the test set; at least one interaction per user always stays in
    training, so a user with a single interaction is never tested. This is the
    "per-user 80/20" protocol of NGCF/LightGCN with ``test_size=0.2``.

    Parameters
    ----------
    n_splits : int, default=5
        Number of independent re-shuffles.
    test_size : float or int, default=0.2
        Fraction in (0, 1) of each user's interactions, or their number.
    random_state : int, RandomState instance or None, default=None
        Controls the draws; pass an int for reproducible splits.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 2]])
    >>> cv = PerUserShuffleSplit(n_splits=2, test_size=0.5, random_state=0)
    >>> [len(test) for _, test in cv.split(X)]
    [3, 3]
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_splits": [int_interval(1, None, closed="left")],
        "test_size": _FRACTION_OR_COUNT,
        "random_state": ["random_state"],
    }

    def __init__(self, n_splits=5, *, test_size=0.2, random_state=None):
        self.n_splits = n_splits
        self.test_size = test_size
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits (``n_splits``)."""
        self._validate_params()
        return int(self.n_splits)

    def _iter_test_masks(self, X, users):
        rng = check_random_state(self.random_state)
        for _ in range(self.n_splits):
            rank, size = _group_rank(users, rng.random_sample(users.shape[0]))
            yield rank < _n_test_per_user(size, self.test_size)


class PerUserKFold(_InteractionSplitter):
    """K-fold over each user's interactions; every user stays in every train fold.

    Each user's interactions are dealt round-robin to the ``n_splits`` folds,
    as scikit-learn's ``KFold``: without shuffling the split is deterministic
    (rows in their order, each user starting at the fold where the previous
    user stopped, so fold sizes differ by at most one and small users do not
    all land in fold 0); with ``shuffle=True`` each user's interactions are
    shuffled first and each user starts at a random fold. A user with
    ``n_u >= 2`` interactions keeps at least ``n_u - ceil(n_u / n_splits) >= 1``
    of them in every training set; a user with a single interaction is always
    in training.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=False
        Shuffle each user's interactions (and the fold each user starts at)
        before dealing them; otherwise they are dealt in row order, e.g. time
        order when ``X`` is sorted by time.
    random_state : int, RandomState instance or None, default=None
        Controls the shuffle; only meaningful with ``shuffle=True`` (setting
        it otherwise is an error, as for ``KFold``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, i] for i in range(6)] + [[1, 0]])
    >>> [test.tolist() for _, test in PerUserKFold(n_splits=3).split(X)]
    [[0, 3], [1, 4], [2, 5]]
    >>> cv = PerUserKFold(n_splits=3, shuffle=True, random_state=0)
    >>> sorted(len(test) for _, test in cv.split(X))
    [2, 2, 2]
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_splits": [int_interval(2, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def _validate_params(self):
        super()._validate_params()
        if not self.shuffle and self.random_state is not None:
            raise ValueError(
                "Setting a random_state has no effect since shuffle is False: "
                "PerUserKFold is deterministic without shuffling. Leave "
                "random_state to its default (None), or set shuffle=True."
            )

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of folds (``n_splits``)."""
        self._validate_params()
        return int(self.n_splits)

    def _iter_test_masks(self, X, users):
        n_splits = int(self.n_splits)
        n = users.shape[0]
        _, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
        if self.shuffle:
            rng = check_random_state(self.random_state)
            rank, size = _group_rank(users, rng.random_sample(n))
            offset = rng.randint(0, n_splits, size=counts.shape[0])[inverse]
        else:
            rank, size = _group_rank(users, np.arange(n, dtype=np.float64))
            # each user starts where the previous (in id order) stopped: one
            # round-robin over all dealt rows, so fold sizes differ by <= 1
            dealt = np.where(counts >= 2, counts, 0)
            offset = ((np.cumsum(dealt) - dealt) % n_splits)[inverse]
        fold = (rank + offset) % n_splits
        single = size < 2
        for k in range(n_splits):
            yield (fold == k) & ~single


class LeaveLastOut(_SingleInteractionSplit):
    """Hold out each user's ``n_last`` most recent interactions (one split).

    Ties in time are broken by row order (later rows count as more recent).
    Users with at most ``n_last`` interactions stay entirely in training.

    Parameters
    ----------
    n_last : int, default=1
        Interactions per user to hold out.
    timestamps : array-like of shape (n_interactions,) or None, default=None
        Time of each row of ``X``; ``None`` reads a ``timestamp`` column of a
        DataFrame or the third column of an array.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 5, 30], [0, 6, 10], [1, 7, 20], [1, 8, 40]])
    >>> train, test = next(LeaveLastOut().split(X))
    >>> test.tolist()
    [0, 3]
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_last": [int_interval(1, None, closed="left")],
        "timestamps": [None, "array-like"],
    }

    def __init__(self, n_last=1, *, timestamps=None):
        self.n_last = n_last
        self.timestamps = timestamps

    def _iter_test_masks(self, X, users):
        n_last = self.n_last
        ts = _timestamps(X, self.timestamps)
        # rank 0 = most recent; ties in time: the later row is the more recent
        rank, size = _group_rank(users, -ts, tiebreak=-np.arange(users.shape[0]))
        yield (rank < n_last) & (size > n_last)


class TemporalSplit(_SingleInteractionSplit):
    """Global temporal split: the most recent interactions of everyone are test.

    Rows with a timestamp strictly after the cut-off go to test. The cut-off is
    ``cutoff`` when given, else the time such that about ``test_size`` of the
    rows are later; all rows sharing the cut-off time stay on the same side
    (training), so no timestamp is split across train and test.

    Parameters
    ----------
    test_size : float, default=0.2
        Target fraction of test rows, in (0, 1); ignored when ``cutoff`` is set.
    cutoff : float, datetime64 or None, default=None
        Absolute cut-off time (same unit as the timestamps).
    timestamps : array-like of shape (n_interactions,) or None, default=None
        Time of each row; ``None`` reads X's timestamp column.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0, 1], [1, 1, 2], [0, 2, 3], [1, 3, 4], [2, 4, 5]])
    >>> train, test = next(TemporalSplit(test_size=0.4).split(X))
    >>> test.tolist()
    [3, 4]
    """

    _parameter_constraints: ClassVar[dict] = {
        "test_size": [real_interval(0, 1, closed="neither")],
        "cutoff": [None, Real, np.datetime64],
        "timestamps": [None, "array-like"],
    }

    def __init__(self, test_size=0.2, *, cutoff=None, timestamps=None):
        self.test_size = test_size
        self.cutoff = cutoff
        self.timestamps = timestamps

    def _iter_test_masks(self, X, users):
        ts = _timestamps(X, self.timestamps)
        if self.cutoff is not None:
            cutoff = np.asarray(self.cutoff)
            if np.issubdtype(cutoff.dtype, np.datetime64):
                cutoff = cutoff.astype("datetime64[ns]").astype(np.int64)
            cutoff = float(cutoff)
        else:
            test_size = self.test_size
            n_train = ts.shape[0] - int(np.ceil(test_size * ts.shape[0] - 1e-9))
            n_train = max(n_train, 1)
            cutoff = np.sort(ts)[n_train - 1]
        test = ts > cutoff
        if not test.any():
            raise ValueError(
                "TemporalSplit produced an empty test set: no interaction is later "
                "than the cut-off."
            )
        if test.all():
            raise ValueError(
                "TemporalSplit produced an empty training set: every interaction is "
                "later than the cut-off."
            )
        yield test


_STRATEGIES = ("per_user", "leave_last_out", "temporal", "random")


@validate_params(
    {
        "X": ["array-like"],
        "test_size": _FRACTION_OR_COUNT,
        "strategy": [StrOptions(set(_STRATEGIES))],
        "timestamps": [None, "array-like"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def train_test_split_interactions(
    X,
    *,
    test_size=0.2,
    strategy="per_user",
    timestamps=None,
    random_state=None,
):
    """Split interactions into train and test sets, like ``train_test_split``.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_interactions, >= 2)
        (user, item[, timestamp]) rows.
    test_size : float or int, default=0.2
        ``"per_user"``: fraction (or count) per user; ``"leave_last_out"``: the
        number of last interactions per user (int; the default 0.2 is read as 1);
        ``"temporal"`` and ``"random"``: global fraction.
    strategy : {"per_user", "leave_last_out", "temporal", "random"}, \
default="per_user"
        :class:`PerUserShuffleSplit`, :class:`LeaveLastOut`,
        :class:`TemporalSplit`, or a uniform random split of all rows.
    timestamps : array-like of shape (n_interactions,) or None, default=None
        For the temporal strategies, when ``X`` has no timestamp column.
    random_state : int, RandomState instance or None, default=None
        For the random strategies (``"per_user"``, ``"random"``); setting it
        with a temporal strategy is an error.

    Returns
    -------
    X_train, X_test : same type as X
        Rows of ``X`` (DataFrames keep their index).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[u, i] for u in range(3) for i in range(5)])
    >>> X_train, X_test = train_test_split_interactions(X, random_state=0)
    >>> X_train.shape, X_test.shape
    ((12, 2), (3, 2))
    """
    if random_state is not None and strategy in ("leave_last_out", "temporal"):
        raise ValueError(
            f"Setting a random_state has no effect with strategy={strategy!r}, "
            "which splits by time and draws nothing. Leave random_state to its "
            "default (None), or use strategy='per_user' or 'random'."
        )
    if strategy == "per_user":
        cv = PerUserShuffleSplit(1, test_size=test_size, random_state=random_state)
    elif strategy == "leave_last_out":
        n_last = test_size if isinstance(test_size, Integral) else 1
        cv = LeaveLastOut(n_last, timestamps=timestamps)
    elif strategy == "temporal":
        cv = TemporalSplit(test_size, timestamps=timestamps)
    else:
        n = _users(X).shape[0]
        n_test = (
            int(test_size)
            if isinstance(test_size, Integral)
            else int(np.ceil(test_size * n))
        )
        if not 0 < n_test < n:
            raise ValueError(
                f"test_size={test_size} leaves an empty train or test set for {n} rows."
            )
        perm = check_random_state(random_state).permutation(n)
        train, test = np.sort(perm[n_test:]), np.sort(perm[:n_test])
        return _take(X, train), _take(X, test)
    train, test = next(cv.split(X))
    return _take(X, train), _take(X, test)


def _take(X, index):
    if _is_frame(X):
        return X.iloc[index]
    return np.asarray(X)[index]
