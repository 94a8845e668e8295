"""Top-k ranking metrics, beyond-accuracy (popularity bias) metrics and their scorers.

Accuracy metrics compare, per evaluated user, a ranked list of recommended item ids
with the set of held-out ("relevant") items:

* ``relevant`` is a sparse matrix (CSR preferred; any scipy sparse format or a dense
  array is converted) of shape ``(n_users_eval, n_items)``; every stored non-zero
  entry marks a relevant item (values are treated as binary).
* ``recommended`` is an integer array of shape ``(n_users_eval, >= k)`` holding item
  ids in rank order; ``-1`` is padding and always counts as a miss. Only the first
  ``k`` columns are used.

Accuracy metrics average over users with at least one relevant item; users without
any held-out item are left out (they are not counted as zeros).

Beyond-accuracy metrics describe the set of recommendation lists as a whole, in the
popularity-bias view that Zhang et al. (NeurIPS 2023) connect to dimensional
collapse: catalogue coverage, the Gini index of recommendation counts, the average
popularity of recommended items and the share of long-tail items.

The scorers (:func:`ranking_scorer`) and :func:`evaluate_ranking` only need an
estimator with ``recommend(users, n=k, filter_already_liked_items=True)`` returning
``(item_ids, scores)``, fitted ``n_users_`` / ``n_items_`` and, for popularity
metrics, ``item_popularity_``. This module imports no torch.
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from skcollapse.utils._interactions import IdVocabulary, check_interactions
from skcollapse.utils._sklearn_compat import (
    int_interval,
    int_sequence,
    real_interval,
    validate_parameter_constraints,
    validate_params,
)
from skcollapse.utils._warnings import warn_once

__all__ = [
    "average_popularity",
    "catalog_coverage",
    "evaluate_ranking",
    "gini_index",
    "hit_rate_at_k",
    "long_tail_share",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_scorer",
    "recall_at_k",
]


# --------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------
def _to_numpy(array):
    """Convert array-likes (including CPU/CUDA torch tensors, by duck typing)."""
    if hasattr(array, "detach") and hasattr(array, "cpu"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


_POSITIVE_INT = [int_interval(1, None, closed="left")]
_HEAD_FRACTION = [real_interval(0.0, 1.0, closed="left")]
#: Constraints of the accuracy metrics (``relevant``/``recommended`` are arrays
#: whose shape and content the metric checks itself).
_ACC_CONSTRAINTS = {
    "relevant": "no_validation",
    "recommended": "no_validation",
    "k": _POSITIVE_INT,
}


def _check_recommended(recommended, k, n_items=None, *, name="recommended"):
    """Validate the ranked id array and return its first ``k`` columns as int64."""
    rec = _to_numpy(recommended)
    if rec.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_users, >= k) holding item ids, "
            f"got an array with {rec.ndim} dimension(s)."
        )
    if rec.shape[1] < k:
        raise ValueError(
            f"{name} has {rec.shape[1]} columns but k={k}; give at least k item ids "
            "per user (pad with -1)."
        )
    rec = rec[:, :k]
    if rec.dtype.kind in "iu":
        rec = rec.astype(np.int64, copy=False)
    elif rec.dtype.kind == "f":
        if not np.all(np.isfinite(rec)):
            raise ValueError(f"{name} contains NaN or infinite values.")
        if not np.all(rec == np.round(rec)):
            raise TypeError(
                f"{name} must hold integer item ids, got non-integer floats."
            )
        rec = rec.astype(np.int64)
    elif rec.dtype.kind == "b":
        raise TypeError(f"{name} must hold integer item ids, got a boolean array.")
    else:
        raise TypeError(f"{name} must hold integer item ids, got dtype {rec.dtype}.")
    if rec.size and rec.min() < -1:
        raise ValueError(
            f"{name} contains negative item ids other than the padding value -1 "
            f"(minimum {rec.min()})."
        )
    if n_items is not None and rec.size and rec.max() >= n_items:
        raise ValueError(
            f"{name} contains item id {rec.max()} but there are only {n_items} items "
            f"(valid ids are 0..{n_items - 1}, -1 for padding)."
        )
    if rec.shape[1] > 1:
        srt = np.sort(rec, axis=1)
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise ValueError(
                f"{name} repeats an item id within a user's top-{k} list (first in row "
                f"{row}); each item may appear at most once per user."
            )
    return rec


def _check_relevant(relevant):
    """Return a canonical binary CSR matrix (sorted indices, no duplicates/zeros)."""
    if sp.issparse(relevant):
        rel = sp.csr_matrix(relevant, copy=True)
    else:
        dense = _to_numpy(relevant)
        if dense.ndim != 2:
            raise ValueError(
                "relevant must be a 2-D (n_users, n_items) sparse matrix, got an array "
                f"with {dense.ndim} dimension(s)."
            )
        if dense.dtype.kind not in "biuf":
            raise TypeError(f"relevant must be numeric, got dtype {dense.dtype}.")
        rel = sp.csr_matrix(dense)
    if rel.dtype.kind == "f" and not np.all(np.isfinite(rel.data)):
        raise ValueError("relevant contains NaN or infinite values.")
    if rel.dtype.kind not in "biuf":
        raise TypeError(f"relevant must be numeric, got dtype {rel.dtype}.")
    if rel.nnz and rel.data.min() < 0:
        raise ValueError(
            "relevant must be binary/non-negative, found negative entries."
        )
    rel.sum_duplicates()
    rel.eliminate_zeros()
    rel.sort_indices()
    rel.data = np.ones_like(rel.data, dtype=np.float64)
    return rel


def _check_pair(relevant, recommended, k):
    k = int(k)
    rel = _check_relevant(relevant)
    rec = _check_recommended(recommended, k, rel.shape[1])
    if rec.shape[0] != rel.shape[0]:
        raise ValueError(
            f"relevant and recommended must have the same number of users (rows); got "
            f"{rel.shape[0]} and {rec.shape[0]}."
        )
    return rel, rec, k


def _hits(rel, rec):
    """Boolean (n_users, k) matrix: is ``rec[u, j]`` a relevant item of user ``u``."""
    n_users, n_items = rel.shape
    if rel.nnz == 0 or rec.size == 0:
        return np.zeros(rec.shape, dtype=bool)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(rel.indptr))
    keys = rows * n_items + rel.indices.astype(np.int64)  # sorted: canonical CSR
    valid = rec >= 0
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + np.where(
        valid, rec, 0
    )
    pos = np.minimum(np.searchsorted(keys, query), keys.shape[0] - 1)
    return valid & (keys[pos] == query)


def _mean_accuracy(relevant, recommended, k, metric):
    """Validate the pair and average one per-user accuracy metric over users."""
    rel, rec, k = _check_pair(relevant, recommended, k)
    return float(_per_user_accuracy(rel, rec, k)[metric].mean())


def _per_user_accuracy(rel, rec, k):
    """Per-user accuracy metrics for users with >= 1 relevant item."""
    n_rel = np.diff(rel.indptr)
    mask = n_rel > 0
    if not mask.any():
        raise ValueError(
            "relevant has no user with a held-out item; the ranking metrics are "
            "undefined."
        )
    hits = _hits(rel, rec)[mask].astype(np.float64)
    n_rel = n_rel[mask].astype(np.float64)
    n_hits = hits.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = hits @ discounts
    ideal_len = np.minimum(n_rel, k).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_len]
    precision_at_j = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at_j * hits).sum(axis=1) / np.minimum(n_rel, k)
    first = hits.argmax(axis=1) if k else np.zeros(hits.shape[0], dtype=np.int64)
    rr = np.where(n_hits > 0, 1.0 / (first + 1.0), 0.0)
    return {
        "recall": n_hits / n_rel,
        "precision": n_hits / k,
        "hit_rate": (n_hits > 0).astype(np.float64),
        "ndcg": dcg / idcg,
        "map": ap,
        "mrr": rr,
    }


# --------------------------------------------------------------------------------------
# Accuracy metrics
# --------------------------------------------------------------------------------------
_ACC_PARAMS_DOC = """
    Parameters
    ----------
    relevant : sparse matrix of shape (n_users, n_items)
        Held-out items per evaluated user; every stored non-zero is relevant.
        A dense array is accepted too.
    recommended : array-like of int of shape (n_users, >= k)
        Recommended item ids in rank order; ``-1`` is padding (a miss). Only the
        first ``k`` columns are used; an item may appear at most once per row.
    k : int, default=20
        Cut-off.

    Returns
    -------
    score : float
        Mean over users with at least one relevant item.
"""


@validate_params(_ACC_CONSTRAINTS, prefer_skip_nested_validation=True)
def recall_at_k(relevant, recommended, *, k=20):
    """Recall@k: share of a user's held-out items found in the top ``k``.

    ``recall_u = |top_k(u) ∩ rel(u)| / |rel(u)|``. The denominator is the number of
    relevant items, not ``min(|rel(u)|, k)``: this is the convention of the
    LightGCN/NGCF code and of RecBole, so a user with more than ``k`` held-out items
    cannot reach 1.0.
    {params}
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rel = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]]))
    >>> recall_at_k(rel, np.array([[0, 2], [3, 1]]), k=2)
    0.75
    """
    return _mean_accuracy(relevant, recommended, k, "recall")


@validate_params(_ACC_CONSTRAINTS, prefer_skip_nested_validation=True)
def precision_at_k(relevant, recommended, *, k=20):
    """Precision@k: share of the ``k`` recommended slots that are relevant.

    ``precision_u = |top_k(u) ∩ rel(u)| / k`` (padding slots count as misses).
    {params}
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rel = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]]))
    >>> precision_at_k(rel, np.array([[0, 2], [3, 1]]), k=2)
    0.5
    """
    return _mean_accuracy(relevant, recommended, k, "precision")


@validate_params(_ACC_CONSTRAINTS, prefer_skip_nested_validation=True)
def hit_rate_at_k(relevant, recommended, *, k=20):
    """Hit rate@k: share of users with at least one relevant item in the top ``k``.
    {params}
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rel = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]]))
    >>> hit_rate_at_k(rel, np.array([[2, 0], [0, 1]]), k=2)
    0.5
    """
    return _mean_accuracy(relevant, recommended, k, "hit_rate")


@validate_params(_ACC_CONSTRAINTS, prefer_skip_nested_validation=True)
def ndcg_at_k(relevant, recommended, *, k=20):
    """NDCG@k with binary relevance.

    ``DCG_u = sum_j hit_j / log2(j + 2)`` over ranks ``j = 0..k-1``, divided by the
    ideal DCG of ``min(|rel(u)|, k)`` hits at the top ranks (the LightGCN/RecBole
    convention), so a perfect ranking scores 1.0.
    {params}
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rel = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    >>> round(ndcg_at_k(rel, np.array([[2, 0]]), k=2), 4)
    0.6309
    """
    return _mean_accuracy(relevant, recommended, k, "ndcg")


@validate_params(_ACC_CONSTRAINTS, prefer_skip_nested_validation=True)
def map_at_k(relevant, recommended, *, k=20):
    """Mean average precision at ``k``.

    ``AP_u = sum_j P@(j+1) * hit_j / min(|rel(u)|, k)``: the mean precision at the
    ranks of the hits, normalised by the number of hits a perfect list would have
    (RecBole's and ``ml_metrics.apk``'s convention).
    {params}
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rel = sp.csr_matrix(np.array([[1, 1, 0, 0]]))
    >>> map_at_k(rel, np.array([[0, 3, 1]]), k=3)
    0.8333333333333333
    """
    return _mean_accuracy(relevant, recommended, k, "map")


@validate_params(_ACC_CONSTRAINTS, prefer_skip_nested_validation=True)
def mrr_at_k(relevant, recommended, *, k=20):
    """Mean reciprocal rank at ``k``.

    ``RR_u = 1 / rank`` of the first relevant item in the top ``k`` (ranks
    start at 1), and 0 when none of the top ``k`` is relevant (RecBole's
    ``MRR@k``).
    {params}
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rel = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 1]]))
    >>> mrr_at_k(rel, np.array([[0, 1, 2], [0, 1, 2]]), k=3)  # (1/2 + 0) / 2
    0.25
    """
    return _mean_accuracy(relevant, recommended, k, "mrr")


for _func in (recall_at_k, precision_at_k, hit_rate_at_k, ndcg_at_k, map_at_k,
              mrr_at_k):
    _func.__doc__ = _func.__doc__.replace("{params}", _ACC_PARAMS_DOC)
del _func


# --------------------------------------------------------------------------------------
# Beyond-accuracy metrics
# --------------------------------------------------------------------------------------
def _check_catalog_args(recommended, n_items, k):
    """Validated ``(rec, n_items)`` for the metrics over the whole catalogue."""
    n_items = int(n_items)
    return _check_recommended(recommended, int(k), n_items), n_items


def _check_popularity_args(recommended, item_popularity, k):
    """Validated ``(rec, pop)`` for the metrics weighted by item popularity."""
    pop = _check_popularity(item_popularity)
    return _check_recommended(recommended, int(k), pop.shape[0]), pop


def _check_popularity(item_popularity):
    pop = _to_numpy(item_popularity)
    if pop.ndim != 1 or pop.shape[0] == 0:
        raise ValueError(
            "item_popularity must be a non-empty 1-D array with one value per item, "
            f"got shape {pop.shape}."
        )
    if pop.dtype.kind not in "biuf":
        raise TypeError(f"item_popularity must be numeric, got dtype {pop.dtype}.")
    pop = pop.astype(np.float64)
    if not np.all(np.isfinite(pop)):
        raise ValueError("item_popularity contains NaN or infinite values.")
    if pop.min() < 0:
        raise ValueError("item_popularity must be non-negative.")
    return pop


_ONLY_PADDING = (
    "recommended holds only padding (-1); the metric is undefined without any "
    "recommended item."
)


def _recommendation_counts(rec, n_items):
    ids = rec[rec >= 0]
    if ids.size == 0:
        raise ValueError(_ONLY_PADDING)
    return np.bincount(ids, minlength=n_items)


_CATALOG_CONSTRAINTS = {
    "recommended": "no_validation",
    "n_items": _POSITIVE_INT,
    "k": _POSITIVE_INT,
}
_POPULARITY_CONSTRAINTS = {
    "recommended": "no_validation",
    "item_popularity": "no_validation",
    "k": _POSITIVE_INT,
}


@validate_params(_CATALOG_CONSTRAINTS, prefer_skip_nested_validation=True)
def catalog_coverage(recommended, n_items, *, k=20):
    """Catalogue coverage@k: share of all items recommended to at least one user.

    Parameters
    ----------
    recommended : array-like of int of shape (n_users, >= k)
        Recommended item ids in rank order; ``-1`` is padding.
    n_items : int
        Size of the catalogue.
    k : int, default=20
        Cut-off.

    Returns
    -------
    coverage : float
        In ``[0, 1]``; 0.0 when every slot is padding.

    Examples
    --------
    >>> import numpy as np
    >>> catalog_coverage(np.array([[0, 1], [1, 2]]), 8, k=2)
    0.375
    """
    rec, n_items = _check_catalog_args(recommended, n_items, k)
    ids = rec[rec >= 0]
    return float(np.unique(ids).shape[0] / n_items)


@validate_params(_CATALOG_CONSTRAINTS, prefer_skip_nested_validation=True)
def gini_index(recommended, n_items, *, k=20):
    """Gini index of how often each item of the catalogue is recommended.

    The counts ``c_i`` of every item (zeros included) in the top-``k`` lists give
    ``G = sum_i (2 i - n - 1) c_(i) / (n sum_i c_i)`` with the counts sorted in
    ascending order (``i = 1..n``). 0 means every item is recommended equally often;
    values near 1 mean a few items take all slots (popularity concentration).
    Lower is better in the popularity-bias view; the scorer is ``"neg_gini"``.

    Parameters
    ----------
    recommended : array-like of int of shape (n_users, >= k)
        Recommended item ids in rank order; ``-1`` is padding.
    n_items : int
        Size of the catalogue.
    k : int, default=20
        Cut-off.

    Returns
    -------
    gini : float
        In ``[0, 1 - 1/n_items]``.

    Examples
    --------
    >>> import numpy as np
    >>> gini_index(np.array([[0], [1]]), 2, k=1)
    0.0
    >>> gini_index(np.array([[0], [0]]), 2, k=1)
    0.5
    """
    rec, n_items = _check_catalog_args(recommended, n_items, k)
    counts = np.sort(_recommendation_counts(rec, n_items)).astype(np.float64)
    n = counts.shape[0]
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    return float(weights @ counts / (n * counts.sum()))


def _per_user_mean(rec, values):
    """Mean of ``values[item]`` over each user's non-padding slots, then over users."""
    valid = rec >= 0
    n_valid = valid.sum(axis=1)
    keep = n_valid > 0
    if not keep.any():
        raise ValueError(_ONLY_PADDING)
    per_slot = np.where(valid, values[np.where(valid, rec, 0)], 0.0)
    return float((per_slot.sum(axis=1)[keep] / n_valid[keep]).mean())


@validate_params(_POPULARITY_CONSTRAINTS, prefer_skip_nested_validation=True)
def average_popularity(recommended, item_popularity, *, k=20):
    """Average recommendation popularity (ARP) of the top-``k`` lists.

    ``ARP = mean_u mean_{i in L_u} pop(i)`` over the non-padding items of each list
    (Abdollahpouri et al., 2019); users whose list is all padding are left out.
    Lower means less popularity bias; the scorer is ``"neg_average_popularity"``.

    Parameters
    ----------
    recommended : array-like of int of shape (n_users, >= k)
        Recommended item ids in rank order; ``-1`` is padding.
    item_popularity : array-like of shape (n_items,)
        Popularity of every item, e.g. its number of training interactions.
    k : int, default=20
        Cut-off.

    Returns
    -------
    arp : float

    Examples
    --------
    >>> import numpy as np
    >>> average_popularity(np.array([[0, 1], [2, -1]]), np.array([10, 2, 4]), k=2)
    5.0
    """
    rec, pop = _check_popularity_args(recommended, item_popularity, k)
    return _per_user_mean(rec, pop)


def _tail_mask(pop, head_fraction):
    n_items = pop.shape[0]
    n_head = int(np.ceil(head_fraction * n_items))
    order = np.lexsort((np.arange(n_items), -pop))  # most popular first, ties by id
    tail = np.ones(n_items, dtype=bool)
    tail[order[:n_head]] = False
    return tail


@validate_params(
    {**_POPULARITY_CONSTRAINTS, "head_fraction": _HEAD_FRACTION},
    prefer_skip_nested_validation=True,
)
def long_tail_share(recommended, item_popularity, *, k=20, head_fraction=0.2):
    """Average percentage of long-tail items (APLT) in the top-``k`` lists.

    The head is the ``ceil(head_fraction * n_items)`` most popular items (ties
    broken by the smaller item id); every other item is long tail. Per user, the
    share of non-padding slots holding a long-tail item, averaged over users
    (Abdollahpouri et al., 2019). Higher means less popularity bias.

    Parameters
    ----------
    recommended : array-like of int of shape (n_users, >= k)
        Recommended item ids in rank order; ``-1`` is padding.
    item_popularity : array-like of shape (n_items,)
        Popularity of every item, e.g. its number of training interactions.
    k : int, default=20
        Cut-off.
    head_fraction : float, default=0.2
        Fraction of the catalogue, by popularity rank, that forms the head.

    Returns
    -------
    share : float
        In ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> pop = np.array([50, 1, 2, 3, 4])
    >>> long_tail_share(np.array([[0, 1], [2, 3]]), pop, k=2)
    0.75
    """
    rec, pop = _check_popularity_args(recommended, item_popularity, k)
    tail = _tail_mask(pop, head_fraction).astype(np.float64)
    return _per_user_mean(rec, tail)


# --------------------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------------------
_ACCURACY = ("recall", "precision", "ndcg", "hit_rate", "map", "mrr")
_BEYOND = ("coverage", "gini", "average_popularity", "long_tail_share")
_SCORER_NAMES = (
    *_ACCURACY,
    "coverage",
    "long_tail_share",
    "neg_gini",
    "neg_average_popularity",
)
_METRIC_NAMES = (*_ACCURACY, *_BEYOND, "neg_gini", "neg_average_popularity")


def _check_ranking_estimator(estimator, need_popularity):
    missing = [
        name
        for name in ("recommend", "n_users_", "n_items_")
        if not hasattr(estimator, name)
    ]
    if need_popularity and not hasattr(estimator, "item_popularity_"):
        missing.append("item_popularity_")
    if missing:
        raise TypeError(
            f"{type(estimator).__name__} cannot be scored by ranking: it lacks "
            f"{', '.join(missing)} (is it a fitted recommender?)."
        )


def _heldout_codes(vocab, ids):
    """Rows of held-out ids in the estimator's vocabulary; unseen ids get rows
    ``len(vocab), len(vocab) + 1, ...`` (one per distinct unseen id), so they
    count as relevant but can never be recommended."""
    codes = vocab.encode(ids, name="X", unknown="ignore")
    unseen = codes < 0
    if unseen.any():
        _, extra = np.unique(ids[unseen], return_inverse=True)
        codes[unseen] = len(vocab) + extra
    return codes, int(np.count_nonzero(unseen))


def _vocabulary(estimator, kind):
    ids = getattr(estimator, f"{kind}_ids_", None)
    if ids is None:  # a recommender without a vocabulary: its rows are its ids
        ids = np.arange(int(getattr(estimator, f"n_{kind}s_")))
    return IdVocabulary(ids, kind=kind)


def _recommend_for_heldout(estimator, X, k, batch_size, report=True):
    """Build the relevant CSR and the (padded) top-k rows of the held-out users.

    Held-out ids are raw ids (labels): they are mapped to the estimator's rows
    through its ``user_ids_``/``item_ids_`` (rows are the ids themselves for a
    recommender without them), and ``recommend``'s raw item ids are mapped back.

    Held-out users and items unseen in fit, and pairs seen in fit, count as
    misses. ``report=True`` (:func:`evaluate_ranking`, a report read in absolute
    terms) says how many in one warning; scorers (``report=False``: every fold
    of a search, where unseen items are a normal part of the split and the rule
    is the same for every candidate) warn only when nothing at all could be
    ranked, which points at a mistake (ids of another encoding, training data).
    Each text is shown once per process (``warn_once``).
    """
    users, items = check_interactions(X, allow_extra_columns=True)
    n_users_fit = int(estimator.n_users_)
    n_items_fit = int(estimator.n_items_)
    uvocab, ivocab = _vocabulary(estimator, "user"), _vocabulary(estimator, "item")
    ucodes, _ = _heldout_codes(uvocab, users)
    icodes, n_unknown_items = _heldout_codes(ivocab, items)
    eval_users, rows = np.unique(ucodes, return_inverse=True)
    n_cols = max(n_items_fit, int(icodes.max()) + 1)
    rel = sp.csr_matrix(
        (np.ones(ucodes.shape[0]), (rows, icodes)), shape=(eval_users.shape[0], n_cols)
    )
    rel = _check_relevant(rel)
    unknown_users = eval_users >= n_users_fit
    if unknown_users.all() or n_unknown_items == ucodes.shape[0]:
        role = "user" if unknown_users.all() else "item"
        warn_once(
            f"no held-out {role} of X was seen in fit, so nothing could be ranked "
            "and the score is 0. Are X's ids those the model was fitted on (the "
            "same ids, not 0-based codes of them or the other way round)? Compare "
            f"X's {role} column with the estimator's {role}_ids_.",
            UserWarning,
            stacklevel=4,
        )
    elif report and (unknown_users.any() or n_unknown_items):
        warn_once(
            f"{int(unknown_users.sum())} held-out user(s) and {n_unknown_items} "
            "held-out interaction(s) with an item unseen in fit are counted as "
            "misses (the model cannot recommend them). To leave them out instead, "
            "drop them from X first, e.g. X[np.isin(X[:, 1], model.item_ids_)].",
            UserWarning,
            stacklevel=4,
        )
    seen = getattr(estimator, "user_items_", None)
    known = (ucodes < n_users_fit) & (icodes < n_items_fit)
    if seen is not None and known.any():
        n_seen = int(np.asarray(seen.tocsr()[ucodes[known], icodes[known]]).sum())
        if n_seen == ucodes.shape[0]:
            warn_once(
                "every held-out pair of X was seen in fit: training items are "
                "excluded from the ranking, so nothing was left to rank and the "
                "score is 0. Score held-out pairs (e.g. X_test), not the training "
                "data.",
                UserWarning,
                stacklevel=4,
            )
        elif n_seen and report:
            warn_once(
                f"{n_seen} of {ucodes.shape[0]} held-out pairs were seen in fit: "
                "training items are excluded from the ranking, so they count as "
                "misses. Drop the pairs of X that are in the training data to "
                "score only new ones.",
                UserWarning,
                stacklevel=4,
            )
    rec = np.full((eval_users.shape[0], k), -1, dtype=np.int64)
    known_rows = np.flatnonzero(~unknown_users)
    n_req = min(k, n_items_fit)
    for start in range(0, known_rows.shape[0], batch_size):
        batch_rows = known_rows[start : start + batch_size]
        ids, _ = estimator.recommend(
            uvocab.ids[eval_users[batch_rows]], n=n_req, filter_already_liked_items=True
        )
        ids = np.asarray(_to_numpy(ids))
        if ids.ndim == 1:
            ids = ids.reshape(batch_rows.shape[0], -1)
        if ids.shape[0] != batch_rows.shape[0] or ids.shape[1] > k:
            raise ValueError(
                f"{type(estimator).__name__}.recommend returned ids of shape "
                f"{ids.shape} for {batch_rows.shape[0]} users and n={n_req}."
            )
        codes = ivocab.encode(ids.ravel(), name="recommended ids", unknown="ignore")
        rec[batch_rows, : ids.shape[1]] = codes.reshape(ids.shape)
    rec = _check_recommended(rec, k, n_items_fit, name="recommended ids")
    raw_users = np.empty(eval_users.shape[0], dtype=users.dtype)
    raw_users[rows] = users  # the held-out id of each evaluated row
    return rel, rec, n_items_fit, raw_users


def _rank_and_score(estimator, X, names, k, batch_size, head_fraction,
                    per_user=False, report=True):
    """Check the estimator, rank once, compute ``names`` (parameters validated).

    ``k`` is an int (keys are the names) or a sequence of ints (one ranking at
    the largest cut-off; keys ``"name@k"``). ``per_user`` returns the per-user
    arrays of the accuracy metrics and the evaluated ``"user"`` ids.
    """
    batch_size = int(batch_size)
    several = not isinstance(k, Integral)
    ks = sorted({int(v) for v in np.ravel(k)}) if several else [int(k)]
    bases = {name.removeprefix("neg_") for name in names}
    _check_ranking_estimator(
        estimator, bool(bases & {"average_popularity", "long_tail_share"})
    )
    rel, rec, n_items, users = _recommend_for_heldout(
        estimator, X, max(ks), batch_size, report=report
    )
    results = {}
    if per_user:
        results["user"] = users[np.diff(rel.indptr) > 0]
    for cut in ks:
        top = rec[:, :cut]
        if per_user:
            arrays = _per_user_accuracy(rel, top, cut)
            values = {name: arrays[name] for name in names}
        else:
            values = _compute_metrics(
                names, rel, top, cut, n_items, estimator, head_fraction
            )
        for name, value in values.items():
            results[f"{name}@{cut}" if several else name] = value
    return results


def _compute_metrics(names, rel, rec, k, n_items, estimator, head_fraction):
    results = {}
    per_user = None
    pop = None
    for name in names:
        base = name.removeprefix("neg_")
        sign = -1.0 if name.startswith("neg_") else 1.0
        if base in _ACCURACY:
            if per_user is None:
                per_user = _per_user_accuracy(rel, rec, k)
            value = float(per_user[base].mean())
        elif base == "coverage":
            value = float(np.unique(rec[rec >= 0]).shape[0] / n_items)
        elif base == "gini":
            value = gini_index(rec, n_items, k=k)
        else:
            if pop is None:
                pop = _check_popularity(estimator.item_popularity_)
                if pop.shape[0] != n_items:
                    raise ValueError(
                        f"item_popularity_ has {pop.shape[0]} entries but the "
                        f"estimator has n_items_={n_items}."
                    )
            if base == "average_popularity":
                value = average_popularity(rec, pop, k=k)
            else:
                value = long_tail_share(rec, pop, k=k, head_fraction=head_fraction)
        results[name] = sign * value
    return results


def _check_metric_name(metric, allowed):
    if not isinstance(metric, str) or metric not in allowed:
        hint = ""
        if metric in ("gini", "average_popularity"):
            hint = f" Scorers are greater-is-better: use 'neg_{metric}'."
        raise ValueError(
            f"Unknown ranking metric {metric!r}; choose one of {sorted(allowed)}.{hint}"
        )


def _scorer_metrics(metric):
    """Validate a scorer's metric: a name, or a list/tuple of names."""
    if isinstance(metric, (list, tuple)):
        if not metric:
            raise ValueError("metric is an empty list; name at least one metric.")
        for name in metric:
            _check_metric_name(name, _SCORER_NAMES)
        if len(set(metric)) != len(metric):
            raise ValueError(f"metric lists a name twice: {list(metric)}.")
        return tuple(metric)
    _check_metric_name(metric, _SCORER_NAMES)
    return (metric,)


class RankingScorer:
    """Callable ``(estimator, X, y=None)`` computing top-k ranking metrics.

    Build it with :func:`ranking_scorer`. Greater is better: ``neg_*`` metrics are
    sign-flipped. With one metric name it returns a float; with a list of names
    it returns a dict (scikit-learn's multi-metric scorer protocol) computed from
    one ranking pass.
    """

    _parameter_constraints: ClassVar[dict] = {
        "metric": [str, list, tuple],
        "k": _POSITIVE_INT,
        "batch_size": _POSITIVE_INT,
        "head_fraction": _HEAD_FRACTION,
    }

    def __init__(self, metric, *, k=20, batch_size=1024, head_fraction=0.2):
        self.metric = metric
        self.k = k
        self.batch_size = batch_size
        self.head_fraction = head_fraction

    def __call__(self, estimator, X, y=None):
        params = {name: getattr(self, name) for name in self._parameter_constraints}
        validate_parameter_constraints(
            self._parameter_constraints, params, caller_name=type(self).__name__
        )
        names = _scorer_metrics(self.metric)
        values = _rank_and_score(
            estimator, X, names, self.k, self.batch_size, self.head_fraction,
            report=False,
        )
        if isinstance(self.metric, str):
            return values[self.metric]
        return values

    def __repr__(self):
        return (
            f"ranking_scorer({self.metric!r}, k={self.k}, batch_size={self.batch_size})"
        )


@validate_params(
    {**RankingScorer._parameter_constraints},
    prefer_skip_nested_validation=True,
)
def ranking_scorer(metric, *, k=20, batch_size=1024, head_fraction=0.2):
    """Scorer for ``GridSearchCV(scoring=...)`` from top-k ranking metrics.

    The scorer receives held-out ``(user, item)`` pairs ``X``, builds the relevant
    matrix, asks ``estimator.recommend(users, n=k, filter_already_liked_items=True)``
    for the top-``k`` items of every held-out user in batches (the estimator ranks
    all items on its own device), and computes the metric. Users or items unseen
    in fit count as misses, silently (in a cross-validation they are a normal
    part of each split, the same rule for every candidate); a warning comes only
    when no held-out user or item was seen at all, or every pair was (see
    :func:`evaluate_ranking` for a report that counts them).

    Parameters
    ----------
    metric : str or list of str
        One of ``"recall"``, ``"precision"``, ``"ndcg"``, ``"hit_rate"``, ``"map"``,
        ``"mrr"``, ``"coverage"``, ``"long_tail_share"``, ``"neg_gini"`` or
        ``"neg_average_popularity"`` (popularity-concentration metrics are negated so
        that greater is better). A list of names gives a multi-metric scorer that
        returns a dict from a single ranking pass: pass it as
        ``GridSearchCV(scoring=ranking_scorer(["ndcg", "recall"]), refit="ndcg")``.
    k : int, default=20
        Cut-off.
    batch_size : int, default=1024
        Users ranked per ``recommend`` call.
    head_fraction : float, default=0.2
        Head share of the catalogue for ``"long_tail_share"``.

    Returns
    -------
    scorer : RankingScorer
        Callable ``(estimator, X, y=None)`` returning a float (one metric) or a
        dict of floats (a list of metrics).

    Examples
    --------
    >>> scorer = ranking_scorer("ndcg", k=20)
    >>> scorer
    ranking_scorer('ndcg', k=20, batch_size=1024)
    """
    _scorer_metrics(metric)
    if isinstance(metric, list):
        metric = tuple(metric)
    return RankingScorer(
        metric, k=k, batch_size=batch_size, head_fraction=head_fraction
    )


@validate_params(
    {
        "estimator": "no_validation",  # checked for recommend/n_users_/n_items_
        "X": "no_validation",  # read by check_interactions
        "k": [*_POSITIVE_INT, int_sequence()],
        "metrics": [str, list, tuple, None],
        "batch_size": _POSITIVE_INT,
        "head_fraction": _HEAD_FRACTION,
        "per_user": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def evaluate_ranking(
    estimator,
    X,
    *,
    k=20,
    metrics=None,
    batch_size=1024,
    head_fraction=0.2,
    per_user=False,
):
    """Compute several top-k metrics from one ranking pass, for reports.

    Several cut-offs (``k=[10, 20, 50]``) share the one ranking (at the largest
    cut-off). ``per_user=True`` returns each evaluated user's value instead of
    the mean, for confidence intervals and paired tests between two models.

    Parameters
    ----------
    estimator : fitted recommender
        Has ``recommend``, ``n_users_``, ``n_items_`` (and ``item_popularity_`` for
        popularity metrics).
    X : array-like or DataFrame of shape (n_pairs, >= 2)
        Held-out ``(user, item)`` pairs; extra columns (e.g. a timestamp) are
        ignored. A DataFrame with ``"user"`` and ``"item"`` columns is read by
        name, any other one by position; names that contradict the position
        order (e.g. ``["item_id", "user_id"]``) are refused.
    k : int or sequence of int, default=20
        Cut-off, or several: a sequence keys the results ``"name@k"``
        (e.g. ``"ndcg@10"``), all from one ranking.
    metrics : str, sequence of str or None, default=None
        Names among ``"recall"``, ``"precision"``, ``"ndcg"``, ``"hit_rate"``,
        ``"map"``, ``"mrr"``, ``"coverage"``, ``"gini"``,
        ``"average_popularity"``, ``"long_tail_share"`` and the negated
        ``"neg_gini"``, ``"neg_average_popularity"``. Values are returned
        unsigned unless the ``neg_`` name is used. ``None``: recall, ndcg,
        precision, hit_rate, map, coverage, gini, average_popularity and
        long_tail_share (with ``per_user=True``: recall, ndcg, precision,
        hit_rate, map and mrr).
    batch_size : int, default=1024
        Users ranked per ``recommend`` call.
    head_fraction : float, default=0.2
        Head share of the catalogue for ``"long_tail_share"``.
    per_user : bool, default=False
        Return one value per evaluated user (the accuracy metrics only: the
        others describe the set of lists as a whole). Their means are the
        values ``per_user=False`` returns.

    Returns
    -------
    results : dict
        One float per requested metric (and cut-off), keyed by its name (or
        ``"name@k"``). With ``per_user=True``, float64 arrays of shape
        ``(n_evaluated_users,)`` instead, and ``"user"``: the held-out user
        ids they belong to (each user of ``X`` once, in sorted order of the
        model's rows; users unseen in fit last). Users unseen in fit and
        held-out items unseen in fit count as misses, as in the mean.

    Examples
    --------
    >>> from skcollapse.recommenders import PopularityRecommender
    >>> train = [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 2]]
    >>> test = [[0, 2], [1, 3], [2, 1]]
    >>> model = PopularityRecommender().fit(train + [[3, 2], [3, 3], [4, 2]])
    >>> model.item_popularity_  # items 2, 1, 3 are ranked in this order
    array([3, 2, 3, 1])
    >>> evaluate_ranking(model, test, k=[1, 2], metrics=["recall", "mrr"])
    {'recall@1': 0.666..., 'mrr@1': 0.666..., 'recall@2': 1.0, 'mrr@2': 0.833...}
    >>> res = evaluate_ranking(model, test, k=1, metrics=["recall"], per_user=True)
    >>> res["user"], res["recall"]
    (array([0, 1, 2]), array([1., 0., 1.]))

    A paired test between two models scored on the same ``X`` compares
    ``res_a["ndcg"]`` with ``res_b["ndcg"]`` user by user (e.g.
    ``scipy.stats.wilcoxon``), the users being ``res_a["user"]`` for both.
    """
    if metrics is None:
        metrics = _ACCURACY if per_user else (
            "recall", "ndcg", "precision", "hit_rate", "map", "coverage", "gini",
            "average_popularity", "long_tail_share",
        )
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics is empty; name at least one ranking metric.")
    for name in metrics:
        _check_metric_name(name, _METRIC_NAMES)
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics lists a name twice: {list(metrics)}.")
    if per_user:
        other = [name for name in metrics if name not in _ACCURACY]
        if other:
            raise ValueError(
                f"per_user=True gives per-user values of the accuracy metrics "
                f"{list(_ACCURACY)}; {other} describe the recommendation lists as "
                "a whole and have no per-user value: drop them or use "
                "per_user=False."
            )
    return _rank_and_score(
        estimator, X, metrics, k, batch_size, head_fraction, per_user=per_user
    )
