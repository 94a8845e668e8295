"""Beyond-accuracy metrics: how a set of recommendation lists covers the catalogue.

They describe the lists as a whole, in the popularity-bias view that Zhang et al.
(NeurIPS 2023) connect to dimensional collapse: catalogue coverage, the Gini
index of recommendation counts, the average popularity of recommended items and
the share of long-tail items. ``recommended`` is read as the accuracy metrics of
:mod:`._ranking` read it (item ids in rank order, ``-1`` padding).
"""

from __future__ import annotations

import numpy as np

from skcollapse.metrics._ranking import (
    _HEAD_FRACTION,
    _POSITIVE_INT,
    _check_recommended,
    _to_numpy,
)
from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._sklearn_compat import validate_params

__all__ = [
    "average_popularity",
    "catalog_coverage",
    "gini_index",
    "long_tail_share",
]


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


#: The Parameters sections of the metrics of the lists against the catalogue
#: and against the items' popularity.
_CATALOG_PARAMS_DOC = """
Parameters
----------
recommended : array-like of int of shape (n_users, >= k)
    Recommended item ids in rank order; ``-1`` is padding.
n_items : int
    Size of the catalogue.
k : int, default=20
    Cut-off.
"""
_POPULARITY_PARAMS_DOC = """
Parameters
----------
recommended : array-like of int of shape (n_users, >= k)
    Recommended item ids in rank order; ``-1`` is padding.
item_popularity : array-like of shape (n_items,)
    Popularity of every item, e.g. its number of training interactions.
k : int, default=20
    Cut-off.
"""

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
@fill_doc(catalog_params=_CATALOG_PARAMS_DOC)
def catalog_coverage(recommended, n_items, *, k=20):
    """Catalogue coverage@k: share of all items recommended to at least one user.

    {catalog_params}

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
@fill_doc(catalog_params=_CATALOG_PARAMS_DOC)
def gini_index(recommended, n_items, *, k=20):
    """Gini index of how often each item of the catalogue is recommended.

    The counts ``c_i`` of every item (zeros included) in the top-``k`` lists give
    ``G = sum_i (2 i - n - 1) c_(i) / (n sum_i c_i)`` with the counts sorted in
    ascending order (``i = 1..n``). 0 means every item is recommended equally often;
    values near 1 mean a few items take all slots (popularity concentration).
    Lower is better in the popularity-bias view; the scorer is ``"neg_gini"``.

    {catalog_params}

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
@fill_doc(popularity_params=_POPULARITY_PARAMS_DOC)
def average_popularity(recommended, item_popularity, *, k=20):
    """Average recommendation popularity (ARP) of the top-``k`` lists.

    ``ARP = mean_u mean_{i in L_u} pop(i)`` over the non-padding items of each list
    (Abdollahpouri et al., 2019); users whose list is all padding are left out.
    Lower means less popularity bias; the scorer is ``"neg_average_popularity"``.

    {popularity_params}

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
@fill_doc(popularity_params=_POPULARITY_PARAMS_DOC)
def long_tail_share(recommended, item_popularity, *, k=20, head_fraction=0.2):
    """Average percentage of long-tail items (APLT) in the top-``k`` lists.

    The head is the ``ceil(head_fraction * n_items)`` most popular items (ties
    broken by the smaller item id); every other item is long tail. Per user, the
    share of non-padding slots holding a long-tail item, averaged over users
    (Abdollahpouri et al., 2019). Higher means less popularity bias.

    {popularity_params}
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
