"""Popularity views of one table beyond its buckets, and all of them at once.

* :func:`popularity_alignment` -- does the top singular direction of the table
  (or of the score matrix ``U Vᵀ``) encode popularity (Lin et al., 2025)?
* :func:`weighted_uniformity` -- DirectAU's frequency-weighted uniformity;
* :func:`table_popularity` -- a fitted model's table and the popularity of its
  rows;
* :func:`popularity_collapse` -- every popularity view, buckets and norms of
  :mod:`._popularity` included, for an estimator and ``X_train`` (or a table
  and its counts), as one dict.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from skcollapse.metrics._gram import GramAccumulator
from skcollapse.metrics._popularity import (
    DEFAULT_BUCKET_EDGES,
    POPULARITY_PARAM_DOC,
    _popularity,
    _rows,
    _table,
    norm_popularity_correlation,
    popularity_bucket_metrics,
    popularity_counts,
)
from skcollapse.metrics._tables import find_embeddings_owner, get_embedding_tables
from skcollapse.metrics._uniformity import (
    _UNIFORMITY_CONSTRAINTS,
    _logsumexp,
    _pair_log_kernels,
)
from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_params,
)

__all__ = [
    "popularity_alignment",
    "popularity_collapse",
    "table_popularity",
    "weighted_uniformity",
]


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
@fill_doc(popularity=POPULARITY_PARAM_DOC)
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
    {popularity}
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
        **_UNIFORMITY_CONSTRAINTS,
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(popularity=POPULARITY_PARAM_DOC)
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
    {popularity}
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
    terms = np.asarray(
        [_logsumexp(vals, np) for vals in _pair_log_kernels(X, t, np, logc)]
    )
    log_num = _logsumexp(terms, np)
    c = np.exp(logc)
    # sum_{i<j} c_i c_j = ((sum c)^2 - sum c^2) / 2, in a stable form
    log_den = np.log(0.5 * (c.sum() ** 2 - (c * c).sum()))
    return float(log_num - log_den)


# ------------------------------------------------------------------ all at once
#: The ``estimator`` entry of the functions that read one table of a model.
_ESTIMATOR_PARAM_DOC = """
estimator : fitted estimator or array-like of shape (n_rows, n_features)
    An estimator with ``get_embeddings()`` (a skcollapse model, or
    :class:`skcollapse.adapters.EmbeddingTables` around a model trained
    elsewhere), or one table.
"""


@validate_params(
    {
        "estimator": "no_validation",
        "X": "no_validation",
        "popularity": "no_validation",
        "table": [str],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(estimator_param=_ESTIMATOR_PARAM_DOC)
def table_popularity(estimator, X=None, *, popularity=None, table="item"):
    """One embedding table and the popularity of each of its rows.

    The table is read through :func:`get_embedding_tables`; the popularity is,
    in this order, ``popularity``, counted from the training pairs ``X``
    (:func:`popularity_counts`, through the estimator's id vocabulary when it
    has one) or, for the item table of a CF estimator, its ``item_popularity_``.

    Parameters
    ----------
    {estimator_param}
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
@fill_doc(estimator_param=_ESTIMATOR_PARAM_DOC)
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
    {estimator_param}
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
