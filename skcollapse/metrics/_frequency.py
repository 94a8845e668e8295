"""How often each item is recommended, against its popularity rank.

A practitioner's check for popularity-shaped collapse (``implicit`` issue #569,
2022): count, for every item, the users whose top-``n`` list holds it, and draw
the counts against the item's training-popularity rank. One would expect the
most popular items to be recommended most; with matrix factorisation the
counts instead rise to a peak near rank ``d`` (the number of factors) and fall
after it, and the peak moves when ``d`` does. The reporter's reading: the
factors reconstruct the columns of the ~``d`` most popular items almost
exactly, so the model scores those items (already seen and filtered, or
reconstructed as zeros where unseen) rather than recommending them.
:func:`recommendation_frequency` gives the counts and ranks;
:class:`~skcollapse.plotting.RecommendationFrequencyDisplay` draws them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch

from skcollapse.utils._docstrings import IMPLICIT_569, fill_doc
from skcollapse.utils._interactions import IdVocabulary, check_interactions
from skcollapse.utils._sklearn_compat import int_interval, validate_params

__all__ = ["recommendation_frequency"]

# score entries held in memory per block of users (float64)
_BLOCK = 2**22


def popularity_rank(popularity):
    """1-based rank of each row by decreasing popularity; ties by row number."""
    pop = np.asarray(popularity, dtype=np.float64)
    n = pop.shape[0]
    order = np.lexsort((np.arange(n), -pop))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    return rank


def _check_popularity(popularity, n_items):
    from skcollapse.metrics._popularity import _popularity

    return _popularity(popularity, n_items)


def _is_recommender(obj):
    return callable(getattr(obj, "recommend", None)) and hasattr(obj, "n_items_")


def _score_matrix(scores):
    """A validated 2-D score array (numpy, or a torch tensor read in blocks)."""
    if type(scores).__module__.startswith("torch") and hasattr(scores, "detach"):
        S = scores.detach()
        if S.ndim != 2:
            raise ValueError(
                f"scores must be a 2-D (n_users, n_items) matrix, got shape "
                f"{tuple(S.shape)}."
            )
        import torch

        if S.is_complex() or S.dtype == torch.bool:
            raise TypeError(f"scores must be real numbers, got {S.dtype}.")
        return S, "torch"
    if sp.issparse(scores):
        raise TypeError(
            "scores must be a dense (n_users, n_items) matrix, not a sparse one: "
            "an absent entry would rank as 0, above every negative score."
        )
    S = np.asarray(scores)
    if S.ndim != 2:
        raise ValueError(
            f"scores must be a 2-D (n_users, n_items) matrix, got shape {S.shape}; "
            "or pass a fitted recommender."
        )
    if S.dtype.kind not in "iuf" or S.dtype.kind == "b":
        raise TypeError(
            f"scores must be a numeric (n_users, n_items) matrix or a fitted "
            f"recommender with recommend(), got dtype {S.dtype}."
        )
    return S, "numpy"


def _block(S, kind, rows):
    if kind == "torch":
        import torch

        return S[torch.as_tensor(rows, device=S.device)].to(torch.float64).cpu().numpy()
    return np.asarray(S[rows], dtype=np.float64)


def _top_n_counts(S, kind, rows, n, seen):
    """Users (``rows``) whose top-``n`` holds each item; ties: lower item first."""
    n_items = int(S.shape[1])
    counts = np.zeros(n_items, dtype=np.int64)
    n_ranked = 0
    step = max(1, _BLOCK // max(n_items, 1))
    for start in range(0, rows.shape[0], step):
        r = rows[start : start + step]
        block = _block(S, kind, r)
        if np.isnan(block).any() or np.isposinf(block).any():
            raise ValueError(
                "scores contains NaN or +inf; only -inf is allowed (an item a "
                "user can never be recommended)."
            )
        if seen is not None:
            sub = seen[r].tocoo()
            block[sub.row, sub.col] = -np.inf
        m = min(n, n_items)
        # the m-th largest score of each row, then every score above it and the
        # first (lowest item index) of those equal to it, up to m in all
        kth = -np.partition(-block, m - 1, axis=1)[:, m - 1]
        above = block > kth[:, None]
        equal = block == kth[:, None]
        need = m - above.sum(axis=1)
        chosen = above | (equal & (np.cumsum(equal, axis=1) <= need[:, None]))
        chosen &= np.isfinite(block)
        counts += chosen.sum(axis=0)
        n_ranked += int(np.count_nonzero(chosen.any(axis=1)))
    return counts, n_ranked


def _from_scores(scores, X, popularity, n, users, filter_seen):
    S, kind = _score_matrix(scores)
    n_users, n_items = (int(v) for v in S.shape)
    if n_users == 0 or n_items == 0:
        raise ValueError(f"scores is empty (shape {(n_users, n_items)}).")
    seen = None
    if X is not None:
        u, i = check_interactions(X, name="X", allow_extra_columns=True)
        for ids, size, role in ((u, n_users, "user"), (i, n_items, "item")):
            if ids.dtype.kind not in "iu":
                raise ValueError(
                    f"X must hold integer row numbers for a score matrix (user = "
                    f"row, item = column), got {role} ids of dtype {ids.dtype}."
                )
            if ids.size and (ids.min() < 0 or ids.max() >= size):
                raise ValueError(
                    f"X holds {role} id {int(ids.max() if ids.max() >= size else ids.min())}"
                    f" but scores has {size} {role}s; with a score matrix the ids of "
                    f"X are its row ({role}) and column numbers 0..{size - 1}."
                )
        if filter_seen:
            seen = sp.csr_matrix(
                (np.ones(u.shape[0]), (u.astype(np.int64), i.astype(np.int64))),
                shape=(n_users, n_items),
            )
        if popularity is None:
            popularity = np.bincount(i.astype(np.int64), minlength=n_items)
    if popularity is None:
        raise ValueError(
            "give the training interactions X (row and column numbers of scores) "
            "or popularity= (one count per column) to rank the items."
        )
    pop = _check_popularity(popularity, n_items)
    if users is None:
        rows = np.arange(n_users)
    else:
        rows = np.asarray(users)
        if rows.ndim != 1 or rows.dtype.kind not in "iu" or (
            rows.size and (rows.min() < 0 or rows.max() >= n_users)
        ):
            raise ValueError(
                f"users must be a 1-D array of row numbers 0..{n_users - 1} of "
                "scores."
            )
        if rows.size == 0:
            raise ValueError("users is empty; give at least one user.")
        rows = rows.astype(np.int64)
    counts, n_ranked = _top_n_counts(S, kind, rows, n, seen)
    return counts, pop, np.arange(n_items), n_ranked


def _from_estimator(est, X, popularity, n, users, filter_seen, batch_size):
    n_items = int(est.n_items_)
    ids = getattr(est, "item_ids_", None)
    ivocab = IdVocabulary(np.arange(n_items) if ids is None else np.asarray(ids),
                          kind="item")
    if popularity is None:
        if X is not None:
            from skcollapse.metrics._popularity import popularity_counts

            popularity = popularity_counts(X, table="item", estimator=est)
        elif getattr(est, "item_popularity_", None) is not None:
            popularity = est.item_popularity_
        else:
            raise ValueError(
                "give the training interactions X (or popularity=) to rank the "
                f"items; {type(est).__name__} has no item_popularity_."
            )
    pop = _check_popularity(popularity, n_items)
    if users is None:
        uids = getattr(est, "user_ids_", None)
        users = np.arange(int(est.n_users_)) if uids is None else np.asarray(uids)
    else:
        users = np.asarray(users)
        if users.ndim != 1 or users.size == 0:
            raise ValueError("users must be a non-empty 1-D array of user ids.")
    counts = np.zeros(n_items, dtype=np.int64)
    n_ranked = 0
    m = min(n, n_items)
    for start in range(0, users.shape[0], batch_size):
        batch = users[start : start + batch_size]
        rec, scores = est.recommend(
            batch, n=m, filter_already_liked_items=filter_seen
        )
        rec = np.asarray(rec).reshape(batch.shape[0], -1)
        valid = np.isfinite(np.asarray(scores, dtype=np.float64)).reshape(rec.shape)
        codes = ivocab.encode(rec[valid], name="recommended ids", unknown="ignore")
        codes = codes[codes >= 0]
        counts += np.bincount(codes, minlength=n_items)
        n_ranked += int(np.count_nonzero(valid.any(axis=1)))
    return counts, pop, ivocab.ids, n_ranked


@validate_params(
    {
        "estimator": "no_validation",
        "X": "no_validation",
        "n": [int_interval(1, None, closed="left")],
        "popularity": "no_validation",
        "users": "no_validation",
        "filter_already_liked_items": ["boolean"],
        "batch_size": [int_interval(1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(implicit_569=IMPLICIT_569)
def recommendation_frequency(
    estimator,
    X=None,
    *,
    n=10,
    popularity=None,
    users=None,
    filter_already_liked_items=True,
    batch_size=1024,
):
    """How many users' top-``n`` lists hold each item, and its popularity rank.

    The check that ``implicit``'s issue #569 reports: with matrix
    factorisation, the counts plotted against the popularity rank rise to a
    peak near rank ``d`` (the number of factors) instead of falling from
    rank 1, and the peak follows ``d``. Draw it with
    :class:`~skcollapse.plotting.RecommendationFrequencyDisplay`.

    Parameters
    ----------
    estimator : fitted recommender or array-like of shape (n_users, n_items)
        A recommender with ``recommend(user_ids, n=..., filter_already_liked_items=...)
        -> (item_ids, scores)`` and ``n_items_`` (every skcollapse CF
        estimator), or a dense score matrix (a numpy array or torch tensor;
        ``-inf`` marks an item a user can never be recommended, NaN and
        ``+inf`` are refused).
    X : array-like of shape (n_interactions, 2), default=None
        Training ``(user, item)`` pairs. With an estimator they are raw ids,
        counted through its vocabulary for the popularity (the estimator's own
        ``item_popularity_`` is used without ``X``). With a score matrix they
        are row and column numbers: they give the popularity and, with
        ``filter_already_liked_items=True``, the items each user has seen.
    n : int, default=10
        Length of each top list.
    popularity : array-like of shape (n_items,), default=None
        Training interactions of each item, in row order; takes precedence
        over ``X`` (which still gives the seen items of a score matrix).
    users : array-like of shape (n_query_users,), default=None
        Users whose lists are counted: raw ids for an estimator, row numbers
        for a score matrix. ``None`` counts every user.
    filter_already_liked_items : bool, default=True
        Leave each user's training items out of their list, as
        ``recommend`` does by default (for a score matrix the seen items come
        from ``X``; without ``X`` nothing is filtered).
    batch_size : int, default=1024
        Users per ``recommend`` call (estimator input).

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``counts`` (int64, ``(n_items,)``: users whose list holds the item),
        ``popularity`` (float64 training counts), ``popularity_rank`` (int64,
        1 for the most popular item; ties go to the lower row), ``item_ids``
        (the estimator's ``item_ids_``, or the column numbers), ``n``,
        ``n_users`` (users with a non-empty list) and ``peak_rank`` (the
        popularity rank of the most recommended item; ties: the most popular).

    See Also
    --------
    skcollapse.plotting.RecommendationFrequencyDisplay : The plot.
    skcollapse.metrics.gini_index : One number for the same counts.

    Notes
    -----
    For a score matrix, ties within a user's row go to the lower item index
    (a stable sort's order). An estimator's ``recommend`` breaks ties its own
    way.

    References
    ----------
    {implicit_569}

    Examples
    --------
    Every user has seen the two most popular items and scores items by
    popularity: the top-3 lists all hold ranks 3, 4 and 5.

    >>> import numpy as np
    >>> from skcollapse.metrics import recommendation_frequency
    >>> pop = np.array([50.0, 40.0, 30.0, 20.0, 10.0, 5.0])
    >>> scores = np.tile(pop, (4, 1))              # 4 users, 6 items
    >>> X = np.array([[u, i] for u in range(4) for i in (0, 1)])
    >>> res = recommendation_frequency(scores, X, n=3, popularity=pop)
    >>> res.counts
    array([0, 0, 4, 4, 4, 0])
    >>> int(res.peak_rank)
    3
    """
    if _is_recommender(estimator):
        counts, pop, item_ids, n_ranked = _from_estimator(
            estimator, X, popularity, n, users, filter_already_liked_items,
            batch_size,
        )
    else:
        counts, pop, item_ids, n_ranked = _from_scores(
            estimator, X, popularity, n, users, filter_already_liked_items
        )
    if counts.sum() == 0:
        raise ValueError(
            "no item was recommended to any user (every candidate was filtered "
            "or scored -inf)."
        )
    rank = popularity_rank(pop)
    peak = int(rank[counts == counts.max()].min())
    return Bunch(
        counts=counts,
        popularity=pop,
        popularity_rank=rank,
        item_ids=item_ids,
        n=int(n),
        n_users=n_ranked,
        peak_rank=peak,
    )
