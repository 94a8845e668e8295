"""The analysis of Guo et al. (ICML 2024) on fitted CTR models.

* :func:`field_ia`: information abundance of each field's embedding table
  (the sets of a multi-embedding model side by side, or averaged).
* :func:`sub_embedding_ia`: the ``(n_fields, n_fields)`` matrix of
  ``IA(E_i->j)``, field ``i``'s table as seen by field ``j``'s interaction.
* :func:`embedding_set_diversity`: do the embedding sets of a multi-embedding
  model hold different information?

They read a fitted estimator through ``get_embedding_tensors()`` (a ``"layer"``
regularizer is applied as at inference), ``embedding_names_`` and its module's
``sub_embedding_maps(embedding_set)`` (see :class:`skcollapse.nn.CTRModel`), so
any model following that protocol works. All computations are in float64 and go
through the ``K x K`` Gram matrix of a table, so a table of millions of rows
costs one pass over it.
"""

from __future__ import annotations

import numpy as np

from skcollapse.metrics._tables import get_embedding_tables
from skcollapse.utils._docstrings import GUO_2024, fill_doc
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    check_is_fitted,
    int_interval,
    validate_params,
)


def _tables_by_set(estimator):
    """``tables[m][f]``: float64 numpy ``(cardinality, K)`` of set ``m``, field ``f``."""
    check_is_fitted(estimator)
    names = getattr(estimator, "embedding_names_", None)
    dims = getattr(estimator, "field_dims_", None)
    if names is None or dims is None or not callable(
        getattr(estimator, "get_embeddings", None)
    ):
        raise TypeError(
            "estimator must be a fitted skcollapse CTR classifier (it needs "
            "get_embeddings(), embedding_names_ and field_dims_); got "
            f"{type(estimator).__name__}."
        )
    tables = get_embedding_tables(estimator, prefer_tensors=True, to_numpy=True)
    n_fields = len(dims)
    n_sets = len(names) // n_fields
    return [
        [np.asarray(tables[names[m * n_fields + f]], dtype=np.float64)
         for f in range(n_fields)]
        for m in range(n_sets)
    ]


def _ia_from_sigma(sigma):
    top = float(sigma.max()) if sigma.size else 0.0
    return float(sigma.sum() / top) if top > 0 else 0.0


def _gram_factor(table):
    """``B`` with ``B.T @ B == table.T @ table`` (``K x K``), from the Gram matrix.

    The singular values of ``table @ T.T`` are those of ``B @ T.T``.
    """
    gram = table.T @ table
    lam, vec = np.linalg.eigh(gram)
    lam = np.clip(lam, 0.0, None)
    return np.sqrt(lam)[:, None] * vec.T


def _check_set_arg(embedding_set, n_sets):
    if embedding_set is not None and not 0 <= embedding_set < n_sets:
        raise ValueError(
            f"embedding_set must be None or in [0, {n_sets}), got {embedding_set!r}."
        )


@validate_params(
    {
        "estimator": "no_validation",
        "sets": [StrOptions({"concat", "mean"})],
    },
    prefer_skip_nested_validation=True,
)
def field_ia(estimator, *, sets="concat"):
    """Information abundance of each field's embedding table.

    ``IA(E) = ||sigma||_1 / ||sigma||_inf`` of the raw table (all known codes,
    no centring, no row normalisation), the per-field quantity of Guo et al.

    Parameters
    ----------
    estimator : fitted CTR classifier
        E.g. :class:`~skcollapse.recommenders.DCNv2Classifier`.
    sets : {"concat", "mean"}, default="concat"
        With several embedding sets: ``"concat"`` puts a field's ``M`` tables
        side by side (``(cardinality, M * K)``), so a multi-embedding model
        ``M x K`` compares with a single-embedding model of size ``M * K`` at
        equal width; ``"mean"`` averages the IA of the ``M`` single tables.

    Returns
    -------
    ndarray of shape (n_fields,)

    See Also
    --------
    sub_embedding_ia : IA of the sub-embeddings ``E_i->j``.
    information_abundance : The metric on any matrix.

    Examples
    --------
    >>> from skcollapse.datasets import make_ctr
    >>> from skcollapse.metrics import field_ia
    >>> from skcollapse.recommenders import DNNClassifier
    >>> X, y, _ = make_ctr(500, n_fields=3, random_state=0)
    >>> clf = DNNClassifier(n_embedding_sets=2, embedding_dim=4,
    ...                     hidden_units=(8,), max_epochs=1, random_state=0).fit(X, y)
    >>> field_ia(clf).shape
    (3,)
    """
    tables = _tables_by_set(estimator)
    n_fields = len(tables[0])
    out = np.empty(n_fields)
    for f in range(n_fields):
        mats = [tables[m][f] for m in range(len(tables))]
        if sets == "concat":
            sigma = np.linalg.svd(_gram_factor(np.concatenate(mats, axis=1)),
                                  compute_uv=False)
            out[f] = _ia_from_sigma(sigma)
        else:
            out[f] = np.mean([
                _ia_from_sigma(np.linalg.svd(_gram_factor(t), compute_uv=False))
                for t in mats
            ])
    return out


@validate_params(
    {
        "estimator": "no_validation",
        "embedding_set": [None, int_interval(0, None, closed="left")],
        "sets": [StrOptions({"concat", "mean"})],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(guo_2024=GUO_2024)
def sub_embedding_ia(estimator, *, embedding_set=None, sets="mean"):
    """IA of the sub-embeddings ``E_i->j``: an ``(n_fields, n_fields)`` matrix.

    Entry ``[i, j]`` is the information abundance of field ``i``'s table as
    seen by field ``j``'s interaction, ``E_i->j = E_i @ T[i, j].T``, where
    ``T[i, j]`` is the model's linear map for the pair (Guo et al., §4, the
    "interaction-collapse" figure). Which models have a meaningful ``E_i->j``:

    * **DCNv2**: ``T[i, j] = W_{j,i}``, a full ``K x K`` block of the first
      cross layer. It can compress field ``i`` differently for every ``j``, so
      the row of field ``i`` varies with ``j``: the paper's quantity.
    * **NFwFM**: ``T[i, j] = (r_ij + r_ji) I`` (``r_ii I`` on the diagonal), a
      scalar. IA is scale-invariant, so ``IA(E_i->j) = IA(E_i)`` wherever the
      weight is non-zero: the row is the field's own IA, nothing more.
    * **xDeepFM**: the first CIN layer weights the pair by one scalar per
      feature map, ``T[i, j] = c ⊗ I``; the singular values of ``E_i`` are
      scaled by ``||c||``, so again ``IA(E_i->j) = IA(E_i)``.
    * **IPNN**: ``<e_i, e_j>`` has no weights, ``T[i, j] = I`` (0 on the
      diagonal: no self product), so ``IA(E_i->j) = IA(E_i)``.
    * DNN, FinalMLP, FM and DeepFM have no per-pair structure: ``TypeError``.

    So among the six paper models only DCNv2 has sub-embeddings that differ
    from the field tables; for the others the matrix is returned for
    completeness (and shows where a pair weight is zero).

    Parameters
    ----------
    estimator : fitted CTR classifier
        A model whose module implements ``sub_embedding_maps``.
    embedding_set : int or None, default=None
        The set to analyse; ``None`` combines all sets as ``sets`` says.
    sets : {"mean", "concat"}, default="mean"
        With ``embedding_set=None`` and several sets: ``"mean"`` averages the
        per-set matrices (each bounded by ``K``); ``"concat"`` takes the IA of
        the sets' sub-embeddings side by side, ``[E^(1)_i->j, ...,
        E^(M)_i->j]`` (bounded by ``M*K``), which compares an ME model of
        ``M x K`` with an SE model of size ``M*K`` at equal width, as
        :func:`field_ia`'s ``sets="concat"`` does for the tables.

    Returns
    -------
    ndarray of shape (n_fields, n_fields)
        ``[i, j] = IA(E_i->j)``; 0 where the map is zero.

    See Also
    --------
    field_ia : IA of the field tables themselves.
    skcollapse.plotting.SubEmbeddingIADisplay : The heatmap.

    References
    ----------
    {guo_2024}

    Examples
    --------
    >>> from skcollapse.datasets import make_ctr
    >>> from skcollapse.metrics import sub_embedding_ia
    >>> from skcollapse.recommenders import DCNv2Classifier
    >>> X, y, _ = make_ctr(500, n_fields=3, random_state=0)
    >>> clf = DCNv2Classifier(embedding_dim=4, n_cross_layers=1, hidden_units=(8,),
    ...                       max_epochs=1, random_state=0).fit(X, y)
    >>> sub_embedding_ia(clf).shape
    (3, 3)
    """
    tables = _tables_by_set(estimator)
    # torch is imported here, with the fitted model, not with skcollapse.metrics
    from skcollapse.utils._distributed import unwrap_module

    module = unwrap_module(estimator.module_)
    n_sets, n_fields = len(tables), len(tables[0])
    _check_set_arg(embedding_set, n_sets)
    if embedding_set is not None:
        return _sub_embedding_ia_of(tables, module, [embedding_set], n_fields)
    if sets == "concat":
        return _sub_embedding_ia_of(tables, module, range(n_sets), n_fields)
    return np.mean([_sub_embedding_ia_of(tables, module, [m], n_fields)
                    for m in range(n_sets)], axis=0)


def _sub_embedding_ia_of(tables, module, set_ids, n_fields):
    """IA of ``[E^(m)_i @ Tm[i,j].T for m in set_ids]`` (side by side), all i, j.

    With ``C_i = [E^(m)_i ...]`` and ``B = blockdiag(Tm[i, j] ...)`` the
    concatenation is ``C_i @ B.T``; its singular values are those of
    ``F_i @ B.T`` for any ``F_i`` with ``F_i.T F_i = C_i.T C_i``. One set is
    that set's own matrix.
    """
    from scipy.linalg import block_diag

    maps = [module.sub_embedding_maps(m).detach().cpu().double().numpy()
            for m in set_ids]
    out = np.zeros((n_fields, n_fields))
    for i in range(n_fields):
        factor = _gram_factor(np.hstack([tables[m][i] for m in set_ids]))
        for j in range(n_fields):
            blocks = block_diag(*[t[i, j] for t in maps])
            sigma = np.linalg.svd(factor @ blocks.T, compute_uv=False)
            out[i, j] = _ia_from_sigma(sigma)
    return out


def _orthonormal_basis(table, rtol=1e-10):
    """Orthonormal basis ``(cardinality, r)`` of the column space of ``table``."""
    if table.size == 0:
        return table[:, :0]
    u, s, _ = np.linalg.svd(table, full_matrices=False)
    keep = s > rtol * (s[0] if s.size else 0.0)
    return u[:, keep]


@validate_params(
    {
        "estimator": "no_validation",
        "return_similarity": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def embedding_set_diversity(estimator, *, return_similarity=False):
    """How different the embedding sets of a multi-embedding model are, per field.

    For field ``f`` and sets ``a, b`` the similarity is the mean cosine of the
    principal angles between the column spaces of ``E_f^(a)`` and ``E_f^(b)``
    (``(cardinality, K)`` tables): the singular values of ``Q_a.T @ Q_b`` for
    orthonormal bases ``Q``. It is 1 when one set is a linear transform of the
    other (same information about the categories, the sets are redundant) and
    near ``K / cardinality`` for independent random tables. The diversity of a
    field is ``1 -`` the mean similarity over set pairs. Guo et al.'s code
    uses the unnormalised singular values of ``E^(a).T @ E^(b)`` on batch
    embeddings as a regulariser (``SpaceSimilarityRegularizedMultiDCNnew2``);
    this is the scale-free version on the full tables.

    Parameters
    ----------
    estimator : fitted CTR classifier with ``n_embedding_sets >= 2``
    return_similarity : bool, default=False
        Also return the ``(n_fields, M, M)`` similarity matrices.

    Returns
    -------
    diversity : ndarray of shape (n_fields,)
        In ``[0, 1]``; 0 when all sets span the same subspace.
    similarity : ndarray of shape (n_fields, M, M)
        Only with ``return_similarity=True``; ones on the diagonal.

    Examples
    --------
    >>> from skcollapse.datasets import make_ctr
    >>> from skcollapse.metrics import embedding_set_diversity
    >>> from skcollapse.recommenders import DNNClassifier
    >>> X, y, _ = make_ctr(500, n_fields=3, cardinalities=50, random_state=0)
    >>> clf = DNNClassifier(n_embedding_sets=2, embedding_dim=4,
    ...                     hidden_units=(8,), max_epochs=1, random_state=0).fit(X, y)
    >>> embedding_set_diversity(clf).shape
    (3,)
    """
    tables = _tables_by_set(estimator)
    n_sets, n_fields = len(tables), len(tables[0])
    if n_sets < 2:
        raise ValueError(
            "embedding_set_diversity needs a multi-embedding model "
            f"(n_embedding_sets >= 2); {type(estimator).__name__} has 1 set."
        )
    sim = np.ones((n_fields, n_sets, n_sets))
    for f in range(n_fields):
        bases = [_orthonormal_basis(tables[m][f]) for m in range(n_sets)]
        for a in range(n_sets):
            for b in range(a + 1, n_sets):
                qa, qb = bases[a], bases[b]
                if qa.shape[1] == 0 or qb.shape[1] == 0:
                    value = 0.0
                else:
                    value = float(np.linalg.svd(qa.T @ qb, compute_uv=False).mean())
                sim[f, a, b] = sim[f, b, a] = value
    iu = np.triu_indices(n_sets, k=1)
    diversity = 1.0 - sim[:, iu[0], iu[1]].mean(axis=1)
    if return_similarity:
        return diversity, sim
    return diversity
