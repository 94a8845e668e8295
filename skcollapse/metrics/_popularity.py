"""Collapse seen through item popularity: buckets, norms, the top direction, DirectAU.

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

The metric functions take arrays first, ``(embeddings, popularity)``, as
scikit-learn's metrics take ``(y_true, y_pred)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from skcollapse.metrics._collapse import collapse_metrics
from skcollapse.metrics._gram import GramAccumulator
from skcollapse.metrics._registry import resolve_collapse_metrics
from skcollapse.metrics._tables import find_embeddings_owner, get_embedding_tables
from skcollapse.utils._interactions import IdVocabulary, check_interactions
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    real_interval,
    validate_params,
)
from skcollapse.utils._validation import check_embedding_matrix

__all__ = [
    "norm_popularity_correlation",
    "popularity_alignment",
    "popularity_bucket_metrics",
    "popularity_buckets",
    "popularity_collapse",
    "popularity_counts",
    "table_popularity",
    "weighted_uniformity",
]

#: Default bucket edges: the most popular 20% of the rows are the head, the
#: least popular 20% the tail, the rest the torso.
DEFAULT_BUCKET_EDGES = (0.2, 0.8)


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
            f"X holds non-integer {table} ids ({ids.dtype}); without estimator= "
            "the ids must be row numbers 0..n_rows-1. Pass the fitted estimator "
            "whose vocabulary maps them to rows."
        )
    size = int(ids.max()) + 1 if ids.size else 0
    if n_rows is None:
        n_rows = max(size, 1)
    elif size > n_rows:
        raise ValueError(
            f"X holds {table} id {size - 1} but n_rows={n_rows}; ids must be "
            "< n_rows."
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
    popularity : array-like of shape (n_rows,)
        Training interactions of each row (:func:`popularity_counts`).
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
    popularity : array-like of shape (n_rows,)
        Training interactions of each row (:func:`popularity_counts`).
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
def norm_popularity_correlation(embeddings, popularity, *, method="pearson"):
    """Correlation of each row's L2 norm with its log-popularity.

    Under popularity-driven training the rows of popular items grow longer and
    dot-product scores favour them; a correlation near 1 says the table's norms
    encode popularity.

    Parameters
    ----------
    embeddings : array-like or torch.Tensor of shape (n_rows, n_features)
        The table.
    popularity : array-like of shape (n_rows,)
        Training interactions of each row (:func:`popularity_counts`).
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


# ------------------------------------------------------------------ direction
def _gram(E, kind, center):
    """The float64 :class:`GramAccumulator` of the whole table."""
    from skcollapse.metrics._spectrum import accumulate

    return accumulate(E, kind, GramAccumulator(int(E.shape[1]), center=center))


def _projection(E, kind, v, mean):
    """``(E - mean) @ v`` in float64, chunk by chunk."""
    if kind == "torch":
        import torch

        with torch.no_grad():
            X = E.detach().to(torch.float64)
            vt = torch.as_tensor(v, dtype=torch.float64, device=X.device)
            mt = torch.as_tensor(mean, dtype=torch.float64, device=X.device)
            return ((X - mt) @ vt).cpu().numpy()
    out = np.empty(E.shape[0])
    step = max(1, (1 << 19) // max(E.shape[1], 1))
    for start in range(0, E.shape[0], step):
        block = np.asarray(E[start : start + step], dtype=np.float64)
        out[start : start + step] = (block - mean) @ v
    return out


def _sqrt_psd(A):
    """Symmetric square root of a symmetric PSD matrix (negative rounding -> 0)."""
    w, Q = np.linalg.eigh(A)
    return (Q * np.sqrt(np.clip(w, 0.0, None))) @ Q.T


def _score_direction(queries, embeddings, *, center=False):
    """Coefficients ``c`` with ``embeddings @ c`` the score matrix's top right
    singular direction, from ``d x d`` matrices only.

    The score matrix is ``S = Q Eᵀ`` (``queries`` ``Q``, ``m x d``; ``embeddings``
    ``E``, ``n x d``; ``center=True`` centers the columns of ``E``, i.e. each row
    of ``S`` over the items). Returns ``(c, mean, sigma_1)``: the top right
    singular vector of ``S`` is ``(E - mean) @ c / sigma_1`` (unit norm) and
    ``sigma_1`` its singular value; ``c`` is ``None`` when ``S = 0``. See
    :func:`popularity_alignment` for the derivation. ``Q Eᵀ`` is never formed.
    """
    Q, qkind = _table(queries, name="queries")
    E, kind = _table(embeddings)
    if Q.shape[1] != E.shape[1]:
        raise ValueError(
            f"queries has {Q.shape[1]} columns but embeddings has {E.shape[1]}; "
            "the score matrix queries @ embeddings.T needs the same dimension."
        )
    A = _gram(Q, qkind, False).gram  # QᵀQ
    acc = _gram(E, kind, bool(center))  # (E - mean)ᵀ(E - mean)
    R = _sqrt_psd(A)  # A^{1/2}
    M = R @ acc.gram @ R
    M = 0.5 * (M + M.T)
    eigval, eigvec = np.linalg.eigh(M)
    if not eigval[-1] > 0:
        return None, acc.mean if center else 0.0, 0.0
    sigma = float(np.sqrt(eigval[-1]))
    return R @ eigvec[:, -1], (acc.mean if center else 0.0), sigma


@validate_params(
    {
        "embeddings": "no_validation",
        "popularity": "no_validation",
        "source": [StrOptions({"items", "scores"})],
        "queries": "no_validation",
        "center": ["boolean"],
        "log": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def popularity_alignment(embeddings, popularity, *, source="items", queries=None,
                         center=False, log=False):
    """Alignment of the top singular direction with item popularity.

    ``|cos(v_1, p)|``: the cosine between a leading singular vector ``v_1``
    (one entry per row of ``embeddings``) and the popularity vector ``p``. Lin
    et al. (2025) show that training on long-tailed data writes popularity
    into the principal singular direction of the *score matrix*; a value near
    1 says it did.

    * ``source="scores"`` (the choice for collaborative-filtering models, whose
      scores are ``U Vᵀ``): ``v_1`` is the top right singular vector of the
      score matrix ``S = Q Eᵀ``, ``Q = queries`` (the user table when
      ``embeddings`` is the item table). This is Lin et al.'s quantity.
    * ``source="items"``: ``v_1`` is the top left singular vector of the table
      alone (``E v / sigma`` with ``v`` the top eigenvector of ``EᵀE``). It
      equals the score matrix's only when ``QᵀQ`` is proportional to ``I``;
      it needs no second table.

    Parameters
    ----------
    embeddings : array-like or torch.Tensor of shape (n_rows, n_features)
        The table ``E``. Its ``d x d`` Gram matrix is accumulated in float64 (as
        for every spectral metric); the table is read twice, never copied whole.
    popularity : array-like of shape (n_rows,)
        Training interactions of each row (:func:`popularity_counts`).
    source : {"items", "scores"}, default="items"
        Which matrix's top direction, see above. ``"scores"`` needs
        ``queries``.
    queries : array-like or torch.Tensor of shape (n_queries, n_features), \
default=None
        The other table of the score matrix (users, for an item table), only
        with ``source="scores"``; read once into its ``d x d`` Gram matrix.
    center : bool, default=False
        Center the table's columns and the popularity vector first; the value is
        then ``|Pearson correlation|`` between the rows' coordinates on the top
        direction and popularity. With ``source="scores"`` this centers each
        row of ``S`` over the items (``S (I - 11ᵀ/n) = Q (E - 1 meanᵀ)ᵀ``).
        Uncentered (Lin et al.'s definition), a common offset of the rows and
        the positivity of counts both count as alignment.
    log : bool, default=False
        Use ``log(1 + popularity)`` instead of the raw counts.

    Returns
    -------
    float
        In ``[0, 1]`` (the sign of a singular vector is arbitrary); NaN for an
        all-zero table (or score matrix) or a constant centered popularity.

    Notes
    -----
    **The score matrix's direction without the score matrix.** With ``A = QᵀQ``
    and ``B = EᵀE`` (``d x d``), ``||S x||² = ||Q Eᵀ x||² = xᵀ E A Eᵀ x =
    ||A^{1/2} Eᵀ x||²`` for every ``x``, so ``S`` and ``S' = A^{1/2} Eᵀ``
    (``d x n``) have the same right singular vectors and singular values. The
    left singular vectors of ``S'`` are the eigenvectors of ``S' S'ᵀ =
    A^{1/2} B A^{1/2}`` (symmetric PSD, ``d x d``), with eigenvalues
    ``sigma_k²``. For the top pair ``(w_1, sigma_1²)``, ``v_1 = S'ᵀ w_1 /
    sigma_1 = E (A^{1/2} w_1) / sigma_1``: one ``d x d`` square root, one ``d x
    d`` eigenproblem, and one pass over ``E``. The symmetric form is used
    rather than the eigenvectors of the non-symmetric ``A B`` (same
    eigenvalues) so that ``eigh`` applies. When ``A = a I`` the matrix is
    ``a B``, whose top eigenvector is the table's own ``v``: the two sources
    agree exactly then.

    References
    ----------
    S. Lin et al., "How Do Recommendation Models Amplify Popularity Bias? An
    Analysis from the Spectral Perspective", WSDM 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import popularity_alignment
    >>> rng = np.random.default_rng(0)
    >>> pop = rng.poisson(20, size=200).astype(float)
    >>> E = np.outer(pop, rng.normal(size=16))  # popularity is the only direction
    >>> round(popularity_alignment(E, pop), 6)
    1.0
    >>> U = rng.normal(size=(50, 16))
    >>> round(popularity_alignment(E, pop, source="scores", queries=U), 6)
    1.0
    """
    E, kind = _table(embeddings)
    pop = _popularity(popularity, int(E.shape[0]))
    p = np.log1p(pop) if log else pop.copy()
    if center:
        p -= p.mean()
    if source == "scores":
        if queries is None:
            raise ValueError(
                "source='scores' needs queries=, the other table of the score "
                "matrix (the user table for an item table)."
            )
        c, mean, _ = _score_direction(queries, E, center=center)
        if c is None:
            return float("nan")
    else:
        if queries is not None:
            raise ValueError(
                "queries= is used only with source='scores'; source='items' reads "
                "the table alone."
            )
        acc = _gram(E, kind, bool(center))
        eigval, eigvec = np.linalg.eigh(acc.gram)
        if not eigval[-1] > 0:
            return float("nan")
        c, mean = eigvec[:, -1], (acc.mean if center else 0.0)
    u = _projection(E, kind, c, mean)
    denom = np.linalg.norm(u) * np.linalg.norm(p)
    if not denom > 0:
        return float("nan")
    return float(min(1.0, abs(u @ p) / denom))


# ------------------------------------------------------------------ DirectAU
@validate_params(
    {
        "embeddings": "no_validation",
        "popularity": "no_validation",
        "t": [real_interval(0, None, closed="neither")],
        "normalize": ["boolean"],
        "max_samples": [int_interval(2, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def weighted_uniformity(
    embeddings, popularity, *, t=2.0, normalize=True, max_samples=10_000,
    random_state=None,
):
    """Frequency-weighted uniformity of DirectAU's evaluation (Wang et al., 2022).

    ``log( sum_{i<j} c_i c_j exp(-t ||e_i - e_j||^2) / sum_{i<j} c_i c_j )``: the
    uniformity of Wang & Isola over pairs of *interactions* rather than pairs of
    rows, each row weighted by its count ``c_i`` (pairs of interactions with the
    same item are left out, as in the authors' ``overall_uniform``). Rows
    without interactions do not count. Lower (more negative) is more uniform; a
    completely collapsed table gives ``0.0``. Unlike
    :func:`~skcollapse.metrics.uniformity`, a collapsed *head* weighs heavily.

    Parameters
    ----------
    embeddings : array-like or torch.Tensor of shape (n_rows, n_features)
        The table.
    popularity : array-like of shape (n_rows,)
        Training interactions of each row (:func:`popularity_counts`).
    t : float, default=2.0
        Temperature of the Gaussian potential (DirectAU uses 2).
    normalize : bool, default=True
        L2-normalise the rows first (the hypersphere of the definition; the
        authors' snippet expects normalised embeddings).
    max_samples : int or None, default=10_000
        When more rows have interactions, use a uniform random subset of this
        many of them (weights kept), a consistent estimate at ``O(max_samples^2)``
        cost; ``None`` uses every row.
    random_state : int, RandomState instance or None, default=None
        Seed of the row subset.

    Returns
    -------
    float

    References
    ----------
    C. Wang et al., "Towards Representation Alignment and Uniformity in
    Collaborative Filtering", KDD 2022 (Appendix A.2; ``overall_uniform`` in
    the authors' README).

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import weighted_uniformity
    >>> E = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    >>> weighted_uniformity(E, [1, 1, 0])  # one pair at distance 2: log exp(-8)
    -8.0
    """
    from sklearn.utils import check_random_state

    E, kind = _table(embeddings)
    pop = _popularity(popularity, int(E.shape[0]))
    index = np.flatnonzero(pop > 0)
    if index.size < 2:
        raise ValueError(
            "weighted_uniformity needs at least 2 rows with interactions (it "
            f"averages over pairs); popularity has {index.size}."
        )
    if max_samples is not None and index.size > max_samples:
        rng = check_random_state(random_state)
        index = np.sort(rng.choice(index, size=max_samples, replace=False))
    c = pop[index]
    X = _rows(E, kind, index)
    if kind == "torch":
        import torch

        with torch.no_grad():
            X = X.detach().to(torch.float64)
            if normalize:
                X = torch.nn.functional.normalize(X, dim=1)
            X = X.cpu().numpy()
    else:
        X = np.asarray(X, dtype=np.float64)
        if normalize:
            from skcollapse.metrics._gram import _row_normalize_np

            X = _row_normalize_np(X)
    # c_i c_j exp(-t d_ij^2) = exp(-t d_ij^2 + log c_i + log c_j): a log-sum-exp
    return _weighted_log_mean(X, np.log(c), t)


def _weighted_log_mean(X, logc, t):
    """``log(sum_{i<j} w_ij exp(-t d_ij^2) / sum_{i<j} w_ij)``, ``w_ij = c_i c_j``."""
    n = X.shape[0]
    sq = (X * X).sum(1)
    block = 2048
    terms = []
    for i in range(0, n, block):
        Xi, sqi, li = X[i : i + block], sq[i : i + block], logc[i : i + block]
        for j in range(i, n, block):
            d2 = sqi[:, None] + sq[j : j + block][None, :] - 2.0 * (Xi @ X[j : j + block].T)
            vals = -t * np.clip(d2, 0.0, None) + li[:, None] + logc[j : j + block][None, :]
            if j == i:
                vals = vals[np.triu_indices(vals.shape[0], k=1, m=vals.shape[1])]
            else:
                vals = vals.ravel()
            if vals.size:
                m = vals.max()
                terms.append(m + np.log(np.exp(vals - m).sum()))
    terms = np.asarray(terms)
    m = terms.max()
    log_num = m + np.log(np.exp(terms - m).sum())
    c = np.exp(logc)
    # sum_{i<j} c_i c_j = ((sum c)^2 - sum c^2) / 2, in a stable form
    log_den = np.log(0.5 * (c.sum() ** 2 - (c * c).sum()))
    return float(log_num - log_den)


# ------------------------------------------------------------------ all at once
@validate_params(
    {
        "estimator": "no_validation",
        "X": "no_validation",
        "popularity": "no_validation",
        "table": [str],
    },
    prefer_skip_nested_validation=True,
)
def table_popularity(estimator, X=None, *, popularity=None, table="item"):
    """One embedding table and the popularity of each of its rows.

    The table is read through :func:`get_embedding_tables`; the popularity is,
    in this order, ``popularity``, counted from the training pairs ``X``
    (:func:`popularity_counts`, through the estimator's id vocabulary when it
    has one) or, for the item table of a CF estimator, its ``item_popularity_``.

    Parameters
    ----------
    estimator : fitted estimator or array-like of shape (n_rows, n_features)
        An estimator with ``get_embeddings()`` (a skcollapse model, or
        :class:`skcollapse.adapters.EmbeddingTables` around a model trained
        elsewhere), or one table.
    X : array-like of shape (n_interactions, 2), default=None
        Training ``(user, item)`` pairs.
    popularity : array-like of shape (n_rows,), default=None
        Counts per row; takes precedence over ``X``.
    table : str, default="item"
        Which table of ``get_embeddings()``.

    Returns
    -------
    embeddings : ndarray or torch.Tensor of shape (n_rows, n_features)
        The validated table (a dask table is computed).
    popularity : ndarray of shape (n_rows,)
        Float64 counts, one per row.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.adapters import EmbeddingTables
    >>> from skcollapse.metrics import table_popularity
    >>> model = EmbeddingTables({"item_factors": np.eye(3)})
    >>> E, pop = table_popularity(model, [[0, 1], [1, 1], [0, 2]])
    >>> pop
    array([0., 2., 1.])
    """
    owner = find_embeddings_owner(estimator)
    if owner is not None:
        E = get_embedding_tables(owner, table)
        if popularity is None:
            popularity = _estimator_popularity(owner, X, table, int(E.shape[0]))
    elif isinstance(estimator, Mapping):
        raise TypeError(
            "pass one table (or an estimator with get_embeddings()), not a dict; "
            "e.g. popularity_collapse(tables['item'], popularity=counts)."
        )
    else:
        E = estimator
        if popularity is None:
            if X is None:
                raise ValueError(
                    "the popularity of a table needs popularity= (one count per "
                    "row) or the training interactions X."
                )
            popularity = popularity_counts(
                X, table=table if table in ("user", "item") else "item",
                n_rows=int(np.shape(E)[0]),
            )
    E, _ = _table(E)
    return E, _popularity(popularity, int(E.shape[0]))


def _estimator_popularity(owner, X, table, n_rows):
    """Counts of an estimator's table rows, from ``X`` or its training counts."""
    if X is not None:
        if table not in ("user", "item"):
            raise ValueError(
                f"popularity can be counted from X only for the 'user' and "
                f"'item' tables, not {table!r}; pass popularity= instead."
            )
        has_vocab = hasattr(owner, f"{table}_ids_") or hasattr(owner, f"n_{table}s_")
        return popularity_counts(
            X, table=table, estimator=owner if has_vocab else None,
            n_rows=None if has_vocab else n_rows,
        )
    if table == "item" and getattr(owner, "item_popularity_", None) is not None:
        return owner.item_popularity_
    raise ValueError(
        "give the training interactions X (or popularity=) to count "
        f"the popularity of the {table!r} rows."
    )


def _other_table(obj, table):
    """The other table of a CF score matrix (users for items), or ``None``."""
    other = {"item": "user", "user": "item"}.get(table)
    if other is None or find_embeddings_owner(obj) is None:
        return None
    tables = get_embedding_tables(obj)
    return tables.get(other)


@validate_params(
    {
        "estimator": "no_validation",
        "X": "no_validation",
        "popularity": "no_validation",
        "table": [str],
        "bucket_edges": ["array-like"],
        "by": [StrOptions({"items", "interactions"})],
        "metrics": [list, tuple, str],
        "max_samples": [int_interval(2, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def popularity_collapse(
    estimator,
    X=None,
    *,
    popularity=None,
    table="item",
    bucket_edges=DEFAULT_BUCKET_EDGES,
    by="items",
    metrics=("erank", "ia"),
    max_samples=10_000,
    random_state=0,
):
    """Every popularity view of one table: buckets, norms, direction, uniformity.

    Parameters
    ----------
    estimator : fitted estimator or array-like of shape (n_rows, n_features)
        An estimator with ``get_embeddings()`` (a skcollapse model, or
        :class:`skcollapse.adapters.EmbeddingTables` around a model trained
        elsewhere), or one table.
    X : array-like of shape (n_interactions, 2), default=None
        Training ``(user, item)`` pairs; popularity is counted from them
        (:func:`popularity_counts`, through the estimator's id vocabulary).
    popularity : array-like of shape (n_rows,), default=None
        Counts per row; takes precedence over ``X``. Without both, a CF
        estimator's ``item_popularity_`` (its training counts) is used for the
        item table.
    table : str, default="item"
        Which table of ``get_embeddings()``.
    bucket_edges, by, metrics
        As in :func:`popularity_bucket_metrics`.
    max_samples : int or None, default=10_000
        Row subset of :func:`weighted_uniformity`.
    random_state : int, RandomState instance or None, default=0
        Seed of that subset.

    Returns
    -------
    result : dict
        ``"buckets"`` (:func:`popularity_bucket_metrics`),
        ``"norm_popularity_correlation"`` (Pearson, log-popularity),
        ``"norm_popularity_spearman"``, ``"popularity_alignment"`` (uncentered,
        raw counts, the table alone: ``source="items"``),
        ``"popularity_alignment_centered"``, ``"popularity_alignment_scores"``
        (``source="scores"``: the top direction of the score matrix ``U Vᵀ``,
        Lin et al.'s quantity and the one to read for a CF estimator; NaN when
        the estimator has no ``"user"``/``"item"`` table pair or a table was
        given) and ``"weighted_uniformity"``, plus ``"n_rows"`` and
        ``"n_features"``.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.metrics import popularity_collapse
    >>> from skcollapse.recommenders import MFRecommender
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = MFRecommender(embedding_dim=8, max_epochs=2, random_state=0).fit(X)
    >>> out = popularity_collapse(model, X)
    >>> list(out["buckets"])
    ['head', 'torso', 'tail']
    >>> -1.0 <= out["norm_popularity_correlation"] <= 1.0
    True
    """
    E, pop = table_popularity(estimator, X, popularity=popularity, table=table)
    queries = _other_table(estimator, table)
    return {
        "n_rows": int(E.shape[0]),
        "n_features": int(E.shape[1]),
        "buckets": popularity_bucket_metrics(
            E, pop, bucket_edges=bucket_edges, by=by, metrics=metrics
        ),
        "norm_popularity_correlation": norm_popularity_correlation(E, pop),
        "norm_popularity_spearman": norm_popularity_correlation(
            E, pop, method="spearman"
        ),
        "popularity_alignment": popularity_alignment(E, pop),
        "popularity_alignment_centered": popularity_alignment(E, pop, center=True),
        "popularity_alignment_scores": (
            float("nan") if queries is None else popularity_alignment(
                E, pop, source="scores", queries=queries)
        ),
        "weighted_uniformity": weighted_uniformity(
            E, pop, max_samples=max_samples, random_state=random_state
        ),
    }
