"""Top-k accuracy metrics of recommendation lists, and the checks of their inputs.

Accuracy metrics compare, per evaluated user, a ranked list of recommended item ids
with the set of held-out ("relevant") items:

* ``relevant`` is a sparse matrix (CSR preferred; any scipy sparse format or a dense
  array is converted) of shape ``(n_users_eval, n_items)``; every stored non-zero
  entry marks a relevant item (values are treated as binary).
* ``recommended`` is an integer array of shape ``(n_users_eval, >= k)`` holding item
  ids in rank order; ``-1`` is padding and always counts as a miss. Only the first
  ``k`` columns are used.

Accuracy metrics average over users with at least one relevant item; users without
any held-out item are left out (they are not counted as zeros). The
beyond-accuracy metrics are in :mod:`._beyond_accuracy`, the scorers and
:func:`evaluate_ranking` (which ask an estimator for its lists) in
:mod:`._evaluation`. This module imports no torch.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from skcollapse.utils._sklearn_compat import (
    int_interval,
    real_interval,
    validate_params,
)

__all__ = [
    "hit_rate_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
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
