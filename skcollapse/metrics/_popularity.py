"""Collapse seen through item popularity: counts, buckets, norms.

The survey literature ties dimensional collapse to popularity bias: popular items
dominate the gradient, their rows grow, and the leading singular direction of the
score matrix ``U Vᵀ`` (and so of the item table, when the users' Gram matrix is
close to isotropic) comes to encode popularity (Lin et al., 2025). These functions relate
one embedding table (one row per item, or per user) to the number of training
interactions of each row:

* :func:`popularity_counts` -- the counts, from training pairs (and, for a fitted
  estimator, its id vocabulary);
* :func:`popularity_bucket_metrics` -- erank and IA of the head, torso and tail;
* :func:`norm_popularity_correlation` -- does a row's norm follow its popularity?
* :func:`popularity_alignment` -- does the top singular direction encode it?
* :func:`weighted_uniformity` -- DirectAU's frequency-weighted uniformity;
* :func:`popularity_collapse` -- all of the above for an estimator and ``X_train``
  (or a table and its counts), as one dict.

The last three, and :func:`table_popularity`, are in :mod:`._popularity_views`.

The metric functions take arrays first, ``(embeddings, popularity)``, as
scikit-learn's metrics take ``(y_true, y_pred)``.
"""

from __future__ import annotations

import numpy as np

from skcollapse.metrics._collapse import collapse_metrics
from skcollapse.metrics._registry import resolve_collapse_metrics
from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._interactions import IdVocabulary, check_interactions
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_params,
)
from skcollapse.utils._validation import check_embedding_matrix

__all__ = [
    "norm_popularity_correlation",
    "popularity_bucket_metrics",
    "popularity_buckets",
    "popularity_counts",
]

#: Default bucket edges: the most popular 20% of the rows are the head, the
#: least popular 20% the tail, the rest the torso.
DEFAULT_BUCKET_EDGES = (0.2, 0.8)

#: The ``popularity`` parameter of the metrics that read a table against the
#: popularity of its rows (a docstring part, :func:`fill_doc`).
POPULARITY_PARAM_DOC = """
    popularity : array-like of shape (n_rows,)
        Training interactions of each row (:func:`popularity_counts`).
"""


# ------------------------------------------------------------------ inputs
def _table(embeddings, name="embeddings"):
    """A validated 2-D float table: a numpy array or a torch tensor."""
    E, kind = check_embedding_matrix(embeddings, name=name)
    if kind == "dask":
        E, kind = np.asarray(E.compute()), "numpy"
        if not np.isfinite(E).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
    return E, kind


def _popularity(popularity, n_rows):
    """A finite, non-negative float64 vector with one entry per table row."""
    if type(popularity).__module__.startswith("torch"):
        popularity = popularity.detach().cpu().numpy()
    pop = np.asarray(popularity)
    if pop.ndim != 1:
        raise ValueError(
            "popularity must be a 1-D array with one count per table row, got "
            f"shape {pop.shape}; compute it with popularity_counts(X_train, ...)."
        )
    if pop.dtype.kind not in "iuf" or pop.dtype.kind == "b":
        raise TypeError(f"popularity must be numeric, got dtype {pop.dtype}.")
    pop = pop.astype(np.float64)
    if pop.shape[0] != n_rows:
        raise ValueError(
            f"popularity has {pop.shape[0]} entries but the table has {n_rows} "
            "rows; give one count per row, in row order."
        )
    if not np.isfinite(pop).all():
        raise ValueError("popularity contains NaN or infinite values.")
    if (pop < 0).any():
        raise ValueError("popularity must be non-negative (interaction counts).")
    return pop


def _rows(E, kind, index):
    """Rows ``index`` (a numpy int array) of a numpy array or torch tensor."""
    if kind == "torch":
        import torch

        return E[torch.as_tensor(index, device=E.device)]
    return E[index]


def _row_norms(E, kind):
    if kind == "torch":
        import torch

        with torch.no_grad():
            return torch.linalg.vector_norm(
                E.detach().to(torch.float64), dim=1
            ).cpu().numpy()
    out = np.empty(E.shape[0])
    step = max(1, (1 << 19) // max(E.shape[1], 1))
    for start in range(0, E.shape[0], step):
        block = np.asarray(E[start : start + step], dtype=np.float64)
        out[start : start + step] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


# ------------------------------------------------------------------ counts
@validate_params(
    {
        "X": "no_validation",
        "table": [StrOptions({"user", "item"})],
        "estimator": "no_validation",
        "n_rows": [int_interval(1, None, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
def popularity_counts(X, *, table="item", estimator=None, n_rows=None):
    """Number of training interactions of each row of a user or item table.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_interactions, 2)
        Training ``(user, item)`` pairs, read as the estimators read them
        (a DataFrame by its ``user``/``item`` columns). Duplicated pairs count
        as often as they occur.
    table : {"user", "item"}, default="item"
        Count the items (popularity) or the users (activity).
    estimator : fitted estimator, default=None
        A CF estimator whose table rows follow ``item_ids_`` / ``user_ids_``;
        the ids of ``X`` are mapped through that vocabulary (an id the estimator
        does not know is an error). Without it the ids of ``X`` are the row
        numbers themselves (integers ``0..n_rows-1``), as in the tables of
        ``implicit``, RecBole and :func:`skcollapse.adapters.extract_embeddings`.
    n_rows : int, default=None
        Number of table rows when no estimator is given; by default the
        largest id plus one.

    Returns
    -------
    counts : ndarray of shape (n_rows,)
        Float64 counts in row order (rows without interactions count 0).

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import popularity_counts
    >>> X = np.array([[0, 1], [1, 1], [2, 0], [2, 3]])
    >>> popularity_counts(X, n_rows=5)
    array([1., 2., 0., 1., 0.])
    """
    users, items = check_interactions(X, name="X", allow_extra_columns=True)
    ids = items if table == "item" else users
    if estimator is not None:
        if n_rows is not None:
            raise ValueError(
                "give estimator= or n_rows=, not both: with an estimator the rows "
                f"are its {table}_ids_."
            )
        try:
            vocab = IdVocabulary.of_estimator(estimator, table)
        except TypeError as exc:
            raise TypeError(
                f"{exc} Pass n_rows= and row-number ids instead."
            ) from None
        codes = vocab.encode(ids, name="X")
        return np.bincount(codes, minlength=len(vocab)).astype(np.float64)
    if ids.dtype.kind not in "iu":
        raise ValueError(
            f"X holds non-integer {table} ids ({ids.dtype}); without an id "
            f"vocabulary (a fitted estimator's {table}_ids_) the ids must be the "
            "row numbers 0..n_rows-1 of the table. Pass the fitted estimator whose "
            f"{table}_ids_ maps them to rows, or encode them as row numbers."
        )
    size = int(ids.max()) + 1 if ids.size else 0
    if n_rows is None:
        n_rows = max(size, 1)
    elif size > n_rows:
        raise ValueError(
            f"X holds {table} id {size - 1} but the table has n_rows={n_rows} "
            f"rows; without an id vocabulary (a fitted estimator's {table}_ids_) "
            "the ids must be row numbers < n_rows."
        )
    return np.bincount(ids.astype(np.int64), minlength=n_rows).astype(np.float64)


# ------------------------------------------------------------------ buckets
def _bucket_names(n_buckets, names):
    if names is None:
        if n_buckets == 3:
            return ["head", "torso", "tail"]
        if n_buckets == 2:
            return ["head", "tail"]
        return [f"bucket {k}" for k in range(n_buckets)]
    names = [str(n) for n in names]
    if len(names) != n_buckets or len(set(names)) != n_buckets:
        raise ValueError(
            f"bucket_names must be {n_buckets} distinct names (one more than "
            f"bucket_edges), got {names!r}."
        )
    return names


def _check_edges(bucket_edges):
    edges = np.asarray(bucket_edges, dtype=np.float64).ravel()
    if (
        edges.size == 0
        or not np.isfinite(edges).all()
        or (edges <= 0).any()
        or (edges >= 1).any()
        or (np.diff(edges) <= 0).any()
    ):
        raise ValueError(
            "bucket_edges must be increasing fractions strictly between 0 and 1, "
            f"e.g. (0.2, 0.8) for head/torso/tail; got {list(bucket_edges)!r}."
        )
    return edges


@validate_params(
    {
        "popularity": "no_validation",
        "bucket_edges": ["array-like"],
        "by": [StrOptions({"items", "interactions"})],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(popularity=POPULARITY_PARAM_DOC)
def popularity_buckets(popularity, *, bucket_edges=DEFAULT_BUCKET_EDGES, by="items"):
    """Bucket of each row: 0 for the most popular bucket (the head), and so on.

    Rows are ranked by decreasing popularity (ties by row number). With
    ``by="items"`` an edge ``e`` cuts after the ``round(e * n_rows)`` most popular
    rows; with ``by="interactions"`` a row belongs to the first bucket whose edge
    exceeds the share of all interactions held by the rows ranked before it (the
    head is the fewest top rows holding at least ``bucket_edges[0]`` of the
    interactions).

    Parameters
    ----------
    {popularity}
    bucket_edges : array-like of float, default=(0.2, 0.8)
        Increasing fractions in ``(0, 1)``; ``k`` edges make ``k + 1`` buckets.
    by : {"items", "interactions"}, default="items"
        Fractions of the rows or of the interactions.

    Returns
    -------
    buckets : ndarray of shape (n_rows,)
        Int bucket index of each row.

    Examples
    --------
    >>> from skcollapse.metrics import popularity_buckets
    >>> popularity_buckets([5, 0, 9, 1, 2], bucket_edges=[0.2, 0.8])
    array([1, 2, 0, 1, 1])
    """
    pop = _popularity(popularity, int(np.shape(popularity)[0]) if np.ndim(popularity)
                      else -1)
    return _buckets(pop, _check_edges(bucket_edges), by)


def _buckets(pop, edges, by):
    n = pop.shape[0]
    order = np.lexsort((np.arange(n), -pop))  # by -popularity, then row number
    ranked = np.empty(n, dtype=np.int64)
    if by == "items":
        cuts = np.floor(edges * n + 0.5).astype(np.int64)
        ranked[:] = np.searchsorted(cuts, np.arange(n), side="right")
    else:
        total = pop.sum()
        if not total > 0:
            raise ValueError(
                "by='interactions' needs some interactions; popularity is all zero."
            )
        before = np.concatenate([[0.0], np.cumsum(pop[order])[:-1]]) / total
        ranked[:] = np.searchsorted(edges, before, side="right")
    buckets = np.empty(n, dtype=np.int64)
    buckets[order] = ranked
    return buckets


_BUCKET_CONSTRAINTS = {
    "embeddings": "no_validation",
    "popularity": "no_validation",
    "bucket_edges": ["array-like"],
    "by": [StrOptions({"items", "interactions"})],
    "bucket_names": [list, tuple, None],
    "metrics": [list, tuple, str],
}


@validate_params(_BUCKET_CONSTRAINTS, prefer_skip_nested_validation=True)
@fill_doc(popularity=POPULARITY_PARAM_DOC)
def popularity_bucket_metrics(
    embeddings,
    popularity,
    *,
    bucket_edges=DEFAULT_BUCKET_EDGES,
    by="items",
    bucket_names=None,
    metrics=("erank", "ia"),
):
    """Collapse metrics of the head, torso and tail of a table, by popularity.

    Rows are ranked by decreasing popularity and cut at ``bucket_edges``; each
    bucket's rows form a table whose effective rank and information abundance
    (or any other collapse metric) are computed as
    :func:`~skcollapse.metrics.collapse_metrics` computes them (uncentered, one
    spectrum per bucket). A collapsed tail (low erank for many rows) is the
    signature of popularity-driven collapse.

    Parameters
    ----------
    embeddings : array-like or torch.Tensor of shape (n_rows, n_features)
        The table, one row per item (or user).
    {popularity}
    bucket_edges : array-like of float, default=(0.2, 0.8)
        Increasing fractions in ``(0, 1)``; ``k`` edges make ``k + 1`` buckets,
        the most popular first.
    by : {"items", "interactions"}, default="items"
        Whether the edges are fractions of the rows (the top 20% of items) or of
        the interactions (the top items holding 20% of all interactions).
    bucket_names : list of str, default=None
        One name per bucket; ``("head", "torso", "tail")`` for three buckets,
        ``("head", "tail")`` for two, ``"bucket k"`` otherwise.
    metrics : list of str, default=("erank", "ia")
        Collapse metrics by alias or name (see
        :func:`~skcollapse.metrics.collapse_metrics`).

    Returns
    -------
    buckets : dict of str to dict
        For each bucket, in order: ``n_rows``, ``popularity_share`` (its share
        of all interactions), ``mean_popularity``, ``mean_norm`` (mean row L2
        norm) and one entry per metric, keyed by its alias (``"erank"``,
        ``"ia"``). A bucket's erank and IA are at most ``min(n_rows,
        n_features)``; compare buckets of similar sizes.

    Raises
    ------
    ValueError
        When a bucket is empty (too few rows for the edges).

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import popularity_bucket_metrics
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(100, 8))
    >>> E[50:] = np.outer(rng.normal(size=50), rng.normal(size=8))  # rank-1 tail
    >>> pop = np.arange(100, 0, -1)  # row 0 is the most popular
    >>> out = popularity_bucket_metrics(E, pop, bucket_edges=[0.5])
    >>> out["head"]["n_rows"], round(out["tail"]["erank"], 6)  # the tail: rank 1
    (50, 1.0)
    >>> out["head"]["erank"] > 7  # the head: nearly full rank (8)
    True
    """
    E, kind = _table(embeddings)
    n = int(E.shape[0])
    pop = _popularity(popularity, n)
    entries = resolve_collapse_metrics(metrics)
    edges = _check_edges(bucket_edges)
    names = _bucket_names(edges.size + 1, bucket_names)
    buckets = _buckets(pop, edges, by)
    norms = _row_norms(E, kind)
    total = pop.sum()
    out = {}
    for k, name in enumerate(names):
        index = np.flatnonzero(buckets == k)
        if index.size == 0:
            raise ValueError(
                f"bucket {name!r} is empty: {n} rows are too few for bucket_edges="
                f"{list(edges)!r} (by={by!r}); use fewer or wider buckets."
            )
        values = collapse_metrics(
            _rows(E, kind, index), metrics=[m.name for m in entries]
        )
        out[name] = {
            "n_rows": int(index.size),
            "popularity_share": float(pop[index].sum() / total) if total > 0 else 0.0,
            "mean_popularity": float(pop[index].mean()),
            "mean_norm": float(norms[index].mean()),
            **{m.alias: float(values[m.name]) for m in entries},
        }
    return out


# ------------------------------------------------------------------ norms
def _constant(x):
    """Equal up to rounding (``ptp <= 1e-12 * max |x|``): no correlation exists."""
    return np.ptp(x) <= 1e-12 * np.abs(x).max()


def _pearson(a, b):
    if _constant(a) or _constant(b):
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def _ranks(x):
    """Average ranks (ties share the mean rank), as Spearman's rho needs."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    ranks = np.empty(x.shape[0])
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.shape[0]]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = 0.5 * (s + e - 1)
    return ranks


@validate_params(
    {
        "embeddings": "no_validation",
        "popularity": "no_validation",
        "method": [StrOptions({"pearson", "spearman"})],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(popularity=POPULARITY_PARAM_DOC)
def norm_popularity_correlation(embeddings, popularity, *, method="pearson"):
    """Correlation of each row's L2 norm with its log-popularity.

    Under popularity-driven training the rows of popular items grow longer and
    dot-product scores favour them; a correlation near 1 says the table's norms
    encode popularity.

    Parameters
    ----------
    embeddings : array-like or torch.Tensor of shape (n_rows, n_features)
        The table.
    {popularity}
    method : {"pearson", "spearman"}, default="pearson"
        ``"pearson"``: Pearson correlation of ``||e_i||`` with
        ``log(1 + popularity_i)``. ``"spearman"``: Spearman's rank correlation
        (ties share their mean rank), which no monotone transform changes.

    Returns
    -------
    float
        In ``[-1, 1]``; NaN when the norms or the popularities are all equal
        (up to rounding: a relative spread below ``1e-12``).

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import norm_popularity_correlation
    >>> pop = np.array([0, 1, 3, 7, 15])
    >>> E = np.outer(np.log1p(pop) + 1.0, [0.6, 0.8])  # norm = log1p(pop) + 1
    >>> norm_popularity_correlation(E, pop)
    1.0
    """
    E, kind = _table(embeddings)
    pop = _popularity(popularity, int(E.shape[0]))
    norms = _row_norms(E, kind)
    if method == "spearman":
        return _pearson(_ranks(norms), _ranks(pop))
    return _pearson(norms, np.log1p(pop))
