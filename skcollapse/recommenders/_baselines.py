"""Strong simple baselines: popularity, EASE and item-based kNN.

Collapse fixes are judged against these, as the public leaderboards do (on the
LightGCN Amazon-Book split EASE and ItemKNN beat LightGCN). They are not torch
nets and have no training loop: a closed form (EASE), a similarity matrix
(ItemKNN) or counts (popularity). They share the CF estimators' API through
:class:`~skcollapse.recommenders._ranking.RankingMixin` (``recommend``,
``predict``, ``similar_items``, ``score``, raw ids through ``user_ids_`` /
``item_ids_``), read ``X`` with the one interaction reader
(:func:`~skcollapse.utils._interactions.check_interactions`), and are plain
scikit-learn estimators (``clone``, ``Pipeline``, ``GridSearchCV``).

They rank through the mixin's score hooks rather than embedding tables:
``_history_scores(H)`` gives every item's score for a block of user histories
(``H @ coef_`` for EASE, ``H @ similarity_`` for ItemKNN, the counts for
popularity).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator

from skcollapse.exceptions import ModelFitError
from skcollapse.recommenders._ranking import RankingMixin
from skcollapse.utils._device import resolve_device
from skcollapse.utils._interactions import check_interactions
from skcollapse.utils._sklearn_compat import (
    _fit_context,
    check_is_fitted,
    int_interval,
    real_interval,
)

__all__ = ["EASERecommender", "ItemKNNRecommender", "PopularityRecommender"]

#: EASE solves in float64 (two ``8 * n_items**2``-byte buffers) while one such
#: buffer stays under this size (11,585 items), in float32 in place beyond it
_EASE_FLOAT64_MAX_BYTES = 2**30
#: rows (or items) per block of the blockwise dense products of the float32 path
_EASE_BLOCK = 2048

_SHARED_PARAMS = """
    n_users : int, default=None
        ``None``: the users are the distinct user ids of ``X`` (ids are labels:
        integers with gaps or strings). An int fixes the user ids to
        ``0..n_users-1``, as for the CF estimators.
    n_items : int, default=None
        As ``n_users``, for items.
    k : int, default=20
        Cut-off of the NDCG used by :meth:`score`.
    device : str, default="cpu"
        Where scores are computed and ranked (``"cuda"`` for the GPU)."""

_SHARED_ATTRIBUTES = """
    user_ids_ : ndarray of shape (n_users_,)
        The user ids the model knows, sorted; every public method speaks them.
    item_ids_ : ndarray of shape (n_items_,)
        The item ids; row/column ``c`` of the model's matrices belongs to
        ``item_ids_[c]``.
    n_users_ : int
        Number of users of the fitted model.
    n_items_ : int
        Number of items of the fitted model.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users_, n_items_)
        Binary training interactions (the histories the model scores from, and
        the items :meth:`recommend` filters out).
    item_popularity_ : ndarray of shape (n_items_,)
        Training interaction count of each item.
    n_features_in_ : int
        Always 2 (the ``(user, item)`` columns)."""


def _doc(text):
    return text.replace("{shared_params}", _SHARED_PARAMS).replace(
        "{shared_attributes}", _SHARED_ATTRIBUTES
    )


class _BaselineRecommender(RankingMixin, BaseEstimator):
    """Fit setup and fitted-state bookkeeping of the baselines.

    A subclass implements ``_fit_model(R)`` (``R``: the binary CSR training
    matrix, rows and columns in vocabulary order) and the ranking hooks
    ``_history_scores(H)`` / ``_item_scores(rows)`` of
    :class:`~skcollapse.recommenders._ranking.RankingMixin`.
    """

    _ranks_by_tables = False
    _parameter_constraints: ClassVar[dict] = {
        "n_users": [int_interval(1, None, closed="left"), None],
        "n_items": [int_interval(1, None, closed="left"), None],
        "k": [int_interval(1, None, closed="left")],
        "device": [str, torch.device],
    }
    _fitted_attributes: ClassVar[tuple[str, ...]] = RankingMixin._interaction_attributes

    def __init__(self, *, n_users=None, n_items=None, k=20, device="cpu"):
        self.n_users = n_users
        self.n_items = n_items
        self.k = k
        self.device = device

    # ------------------------------------------------------------ fitted state
    def __sklearn_is_fitted__(self):
        return all(hasattr(self, name) for name in self._fitted_attributes)

    def _check_fitted(self):
        check_is_fitted(self)

    def _ranking_device(self):
        return resolve_device(self.device)

    def _on_device(self, name, make):
        """``make()`` moved to the ranking device, cached under ``name``."""
        return self._cached(f"device/{name}", self.user_items_,
                            lambda: make().to(self._ranking_device()))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit on the ``(user, item)`` pairs ``X`` (``y`` is ignored).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)
            Observed interactions; a DataFrame with ``"user"`` and ``"item"``
            columns is read by name. Repeated pairs count once in the model's
            matrices (and every time in ``item_popularity_``).
        y : ignored

        Returns
        -------
        self
        """
        users, items = check_interactions(X)
        resolve_device(self.device)
        self._set_interactions(users, items)
        self._fit_model(self.user_items_)
        return self

    def _fit_model(self, R):
        raise NotImplementedError

    # ------------------------------------------------------------ score helpers
    @staticmethod
    def _binary(H):
        """The history block ``H`` (training rows, or a caller's ``user_items``)
        as a canonical binary float32 COO matrix."""
        H = sp.coo_matrix(H, copy=True)
        H.sum_duplicates()  # sorted row-major, no repeats
        H.data = (H.data != 0).astype(np.float32)
        H.eliminate_zeros()
        return H

    def _history_tensor(self, H):
        """The history block ``H`` as a float32 sparse tensor on the ranking device."""
        H = self._binary(H)
        idx = torch.from_numpy(np.vstack([H.row, H.col]).astype(np.int64))
        val = torch.from_numpy(H.data.astype(np.float32))
        return torch.sparse_coo_tensor(
            idx, val, H.shape, check_invariants=False, is_coalesced=True
        ).to(self._ranking_device())


class _ItemItemMixin:
    """``get_embeddings`` refused, with the reason, for the item-item models.

    The attribute is a property that raises ``AttributeError``, so
    ``hasattr(model, "get_embeddings")`` is ``False`` (collapse scorers then
    say the model has no embedding tables) and a direct call gives the reason.
    """

    _weights_name = "coef_"

    @property
    def get_embeddings(self):
        raise AttributeError(
            f"{type(self).__name__} has no embedding tables: it scores with an "
            f"n_items x n_items item-item matrix ({self._weights_name}), whose rows "
            "are weights over the whole catalogue, not d-dimensional embeddings, "
            "so the collapse metrics of embedding tables do not apply to it. To "
            f"study its spectrum anyway, pass {self._weights_name} to the metric "
            "functions yourself (e.g. skcollapse.metrics.effective_rank)."
        )


class PopularityRecommender(_BaselineRecommender):
    __doc__ = _doc(
        """Rank items by their training interaction count, the same list for everyone.

    The baseline every recommender must beat, and the fully collapsed model:
    its scores are the rank-1 product of a constant user vector and the
    popularity column, which :meth:`get_embeddings` returns as one-dimensional
    tables (so collapse metrics read effective rank 1).

    Parameters
    ----------{shared_params}

    Attributes
    ----------{shared_attributes}

    See Also
    --------
    EASERecommender : closed-form linear item-item model.
    ItemKNNRecommender : cosine item-based nearest neighbours.

    Notes
    -----
    ``score(u, i) = item_popularity_[i]`` (interactions, repeats included).
    :meth:`similar_items` returns the most popular items for any query (the
    model knows nothing else about an item); :meth:`partial_fit` adds counts.

    Examples
    --------
    >>> from skcollapse.recommenders import PopularityRecommender
    >>> X = [[0, 10], [1, 10], [2, 10], [0, 11], [1, 11], [2, 12]]
    >>> model = PopularityRecommender().fit(X)
    >>> ids, scores = model.recommend(2, n=2)  # user 2 already has 10 and 12
    >>> ids, scores
    (array([11, -1]), array([  2., -inf], dtype=float32))
    >>> model.get_embeddings()["item"].ravel()
    array([3., 2., 1.], dtype=float32)
    """
    )

    def _fit_model(self, R):
        pass

    def partial_fit(self, X, y=None):
        """Add the ``(user, item)`` pairs ``X`` to the counts (fit if unfitted).

        Ids unseen so far are appended to ``user_ids_``/``item_ids_`` (an error
        when ``n_users``/``n_items`` fix the ids and the new id is beyond them).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)
        y : ignored

        Returns
        -------
        self
        """
        if not self.__sklearn_is_fitted__():
            return self.fit(X, y)
        self._validate_params()
        users, items = check_interactions(X)
        self._set_interactions(users, items, extend=True, keep=True)
        return self

    def _popularity(self):
        return torch.from_numpy(self.item_popularity_.astype(np.float32))

    def _history_scores(self, H):
        pop = self._on_device("popularity", self._popularity)
        return pop.unsqueeze(0).repeat(H.shape[0], 1)

    def _item_scores(self, rows):
        pop = self._on_device("popularity", self._popularity)
        return pop.unsqueeze(0).repeat(len(rows), 1)

    def get_embeddings(self, X=None):
        """The rank-1 tables of the popularity scores.

        Parameters
        ----------
        X : ignored

        Returns
        -------
        dict
            ``"user"``: ones of shape (n_users_, 1); ``"item"``:
            ``item_popularity_`` as a column of shape (n_items_, 1), float32;
            ``user @ item.T`` are the model's scores.
        """
        self._check_fitted()
        return {
            "user": np.ones((self.n_users_, 1), dtype=np.float32),
            "item": self.item_popularity_.astype(np.float32)[:, None],
        }


class EASERecommender(_ItemItemMixin, _BaselineRecommender):
    __doc__ = _doc(
        """EASE: the closed-form linear item-item autoencoder (Steck, WWW 2019).

    Learns the item-item weights ``B`` that minimise
    ``||X - X B||_F^2 + alpha ||B||_F^2`` subject to ``diag(B) = 0``, on the
    binary user-item matrix ``X``. The solution is closed form:
    ``P = (X^T X + alpha I)^-1``, ``B = I - P diag(1 / diag(P))`` (i.e.
    ``B_ij = -P_ij / P_jj`` off the diagonal). A user's scores are ``x_u B``.

    Parameters
    ----------
    alpha : float, default=250.0
        L2 penalty ``lambda`` of the paper (RecBole's default ``reg_weight``).
        Tune it on validation data: good values grow with the data (hundreds
        on MovieLens-100k, thousands on larger sets).{shared_params}

    Attributes
    ----------
    coef_ : ndarray of shape (n_items_, n_items_)
        The weights ``B`` (float32; computed in float64), zero diagonal;
        ``coef_[i, j]`` is the weight of a user's item ``i`` in the score of
        item ``j``.{shared_attributes}

    See Also
    --------
    ItemKNNRecommender : cosine item-based nearest neighbours.
    PopularityRecommender : the popularity ranking.

    Notes
    -----
    **Memory and time.** ``coef_`` alone is ``4 * n_items**2`` bytes (6.7 GB at
    Gowalla's 40,981 items). Up to 11,585 items (a float64 copy of at most
    1 GiB) the Gram matrix is formed and inverted by Cholesky in float64 on
    ``device``: two ``8 * n_items**2``-byte buffers at the peak. Beyond that
    the fit runs in float32 on the CPU, in place (LAPACK ``potrf``/``potri``),
    in one of two forms:

    * **dual** (Woodbury), when ``n_users < n_items``:
      ``P = (I - X^T (X X^T + alpha I)^-1 X) / alpha``. It inverts the
      ``n_users x n_users`` matrix instead (about ``n_users**3`` operations)
      and fills ``P`` by blocks of items with sparse products; peak memory
      ``4 * (n_users**2 + n_items**2)`` bytes, 10.3 GB on Gowalla (29,858
      users, 40,981 items) and 9.8 GB on Yelp2018 (31,668 users, 38,048
      items);
    * **primal**, otherwise: the Gram matrix ``X^T X + alpha I`` factorised
      and inverted in its own buffer, peak ``4 * n_items**2`` bytes, about
      ``n_items**3`` operations.

    In both, the dense products are formed by blocks of 2,048 rows, so the
    extra memory is a few hundred MB at these sizes. Both forms agree with the
    float64 solution to about ``1e-4`` relative (the tests compare them on
    small problems); rankings can differ only where scores nearly tie. On
    ``device="cuda"`` large catalogues are solved in float32 on the GPU (two
    ``4 * n_items**2``-byte buffers). There is no ``partial_fit``: the closed
    form needs the whole Gram matrix again, i.e. a new fit.

    ``coef_`` is not an embedding table: ``get_embeddings`` raises an
    ``AttributeError`` that says so (collapse scorers report the model as
    having no tables). :meth:`similar_items` ranks the items ``j`` by
    ``coef_[i, j]``, leaving out the query item ``i`` itself.

    References
    ----------
    .. [1] H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
       WWW 2019.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import EASERecommender
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = EASERecommender(alpha=10.0).fit(X)
    >>> model.coef_.shape
    (99, 99)
    >>> ids, scores = model.recommend([0, 1], n=5)
    >>> ids.shape
    (2, 5)
    """
    )

    _parameter_constraints: ClassVar[dict] = {
        **_BaselineRecommender._parameter_constraints,
        "alpha": [real_interval(0, None, closed="neither")],
    }

    def __init__(self, *, alpha=250.0, n_users=None, n_items=None, k=20,
                 device="cpu"):
        super().__init__(n_users=n_users, n_items=n_items, k=k, device=device)
        self.alpha = alpha

    def _fit_model(self, R):
        dev = self._ranking_device()
        alpha = float(self.alpha)
        # the solver follows from the sizes (documented in Notes); it is not
        # kept: the model is the same whichever form computed it
        if 8 * R.shape[1] ** 2 <= _EASE_FLOAT64_MAX_BYTES:
            coef = _ease_torch(R, alpha, dev, torch.float64)
        elif dev.type != "cpu":
            coef = _ease_torch(R, alpha, dev, torch.float32)
        else:
            form = "dual" if R.shape[0] < R.shape[1] else "primal"
            coef = _ease_float32(R, alpha, form=form)
        if not np.isfinite(coef).all():
            raise ModelFitError(
                f"EASE's weights are not finite with alpha={self.alpha!r}; raise alpha."
            )
        self.coef_ = coef

    def _coef_tensor(self):
        return self._on_device("coef", lambda: torch.from_numpy(self.coef_))

    def _history_scores(self, H):
        return torch.sparse.mm(self._history_tensor(H), self._coef_tensor())

    def _item_scores(self, rows):
        rows = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(
            self._ranking_device()
        )
        S = self._coef_tensor().index_select(0, rows)  # a copy
        S[torch.arange(rows.shape[0], device=rows.device), rows] = float("-inf")
        return S


def _not_positive_definite(alpha):
    return ModelFitError(
        "EASE's Gram matrix X^T X + alpha I is not numerically positive definite "
        f"with alpha={alpha!r}; raise alpha."
    )


def _ease_torch(R, alpha, device, dtype):
    """EASE's weights by Cholesky of the dense Gram matrix in ``dtype`` on
    ``device`` (two ``n_items**2`` buffers at the peak); float32 ndarray."""
    X = R.astype(np.float64 if dtype == torch.float64 else np.float32)
    G = torch.from_numpy((X.T @ X).toarray()).to(device=device, dtype=dtype)
    G.diagonal().add_(alpha)
    L, info = torch.linalg.cholesky_ex(G)
    del G
    if int(info) != 0:
        raise _not_positive_definite(alpha)
    P = torch.cholesky_inverse(L)
    del L
    P.div_(-P.diagonal().clone().unsqueeze(0))  # B_ij = -P_ij / P_jj
    P.fill_diagonal_(0.0)
    return P.to(torch.float32).cpu().numpy()


def _dense_gram(A, block=None):
    """``A @ A.T`` of the sparse float32 CSR ``A`` as a dense C-ordered float32
    array, formed by blocks of rows (one dense buffer, no dense copy of ``A``)."""
    block = _EASE_BLOCK if block is None else block
    n = A.shape[0]
    out = np.empty((n, n), dtype=np.float32)
    At = A.T.tocsr()
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        out[r0:r1] = (A[r0:r1] @ At).toarray()
    return out


def _symmetrize_from_lower(A, block=None):
    """Copy the lower triangle of the C-ordered square ``A`` onto its upper one,
    in place, by blocks of rows."""
    block = _EASE_BLOCK if block is None else block
    n = A.shape[0]
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        D = A[r0:r1, r0:r1]
        D[np.triu_indices(r1 - r0, 1)] = D.T[np.triu_indices(r1 - r0, 1)]
        A[r0:r1, r1:] = A[r1:, r0:r1].T


def _spd_inverse_inplace(A, alpha, *, factor="lapack"):
    """Invert the symmetric positive definite C-ordered float32 ``A`` in its own
    buffer (LAPACK ``spotrf`` and ``spotri`` on the Fortran view ``A.T``, whose
    upper triangle is ``A``'s lower one), and symmetrize.

    ``factor="torch"`` factorises with torch (MKL; several times faster than
    the LAPACK that scipy ships, at the cost of a second ``A``-sized buffer
    while it runs) and copies the factor back into ``A``.
    """
    from scipy.linalg import lapack

    F = A.T  # Fortran-contiguous view: LAPACK works in place on it
    if factor == "torch":
        L, info = torch.linalg.cholesky_ex(torch.from_numpy(A))
        if int(info) != 0:
            raise _not_positive_definite(alpha)
        # C-lower of A = upper triangle of F: U = L^T with U^T U = A
        A[...] = L.numpy()
        del L
    else:
        _, info = lapack.spotrf(F, lower=0, overwrite_a=1, clean=0)
        if info != 0:
            raise _not_positive_definite(alpha)
    _, info = lapack.spotri(F, lower=0, overwrite_c=1)
    if info != 0:
        raise _not_positive_definite(alpha)
    _symmetrize_from_lower(A)
    return A


def _ease_float32(R, alpha, *, form):
    """EASE's weights in float32 on the CPU with bounded memory.

    ``form="primal"``: ``P = (X^T X + alpha I)^-1`` in one ``n_items**2``
    buffer. ``form="dual"`` (Woodbury): ``P = (I - X^T K^-1 X) / alpha`` with
    ``K = X X^T + alpha I`` (``n_users**2``), ``P`` filled by blocks of items.
    Then ``B = -P diag(1/diag(P))`` with a zero diagonal, in ``P``'s buffer.
    """
    X = R.astype(np.float32).tocsr()
    X.sum_duplicates()
    n_items = X.shape[1]
    if form == "primal":
        P = _dense_gram(X.T.tocsr())
        P[np.diag_indices(n_items)] += alpha
        _spd_inverse_inplace(P, alpha)
    else:
        K = _dense_gram(X)
        K[np.diag_indices(K.shape[0])] += alpha
        _spd_inverse_inplace(K, alpha, factor="torch")
        Xt = X.T.tocsr()  # items x users
        P = np.empty((n_items, n_items), dtype=np.float32)
        for r0 in range(0, n_items, _EASE_BLOCK):
            r1 = min(r0 + _EASE_BLOCK, n_items)
            A = Xt[r0:r1] @ K  # (items r0:r1) x users: x_j^T K^-1
            P[r0:r1] = (Xt @ A.T).T
            P[r0:r1] *= -1.0 / alpha
            P[np.arange(r0, r1), np.arange(r0, r1)] += 1.0 / alpha
        del K
    scale = (-1.0 / np.diag(P)).astype(np.float32)  # B_ij = -P_ij / P_jj
    for r0 in range(0, n_items, _EASE_BLOCK):
        P[r0:r0 + _EASE_BLOCK] *= scale
    P[np.diag_indices(n_items)] = 0.0
    return P


class ItemKNNRecommender(_ItemItemMixin, _BaselineRecommender):
    __doc__ = _doc(
        """Item-based k nearest neighbours with cosine similarity and shrinkage.

    ``sim(i, j) = <x_i, x_j> / (||x_i|| ||x_j|| + shrink)`` between the binary
    columns ``x_i`` (the users of item ``i``), with ``sim(i, i) = 0``. For
    every item ``j`` only its ``n_neighbors`` most similar items are kept (ties
    go to the lower item index); a user's score of ``j`` is the sum of the
    similarities of ``j``'s kept neighbours among the user's items,
    ``score(u, j) = sum_i x_ui W_ij``. This is RecBole's ``ItemKNN``
    (``k``, ``shrink``) and the classic item-based CF of Sarwar et al. and
    Deshpande & Karypis.

    Parameters
    ----------
    n_neighbors : int, default=100
        Neighbours kept per item (RecBole's default ``k``).
    shrink : float, default=0.0
        Added to the cosine's denominator: pulls the similarity of items
        with few common users towards 0.{shared_params}

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_items_, n_items_)
        The kept similarities ``W`` (float32; computed in float64): column
        ``j`` holds the (at most ``n_neighbors``) neighbours of item ``j``.{shared_attributes}

    See Also
    --------
    EASERecommender : closed-form linear item-item model.
    PopularityRecommender : the popularity ranking.

    Notes
    -----
    Fitting forms the sparse co-occurrence matrix ``X^T X`` (its size is the
    number of item pairs with a common user). There is no ``partial_fit``:
    new interactions change the norms of every co-occurring item and the
    neighbour sets, i.e. a new fit. :meth:`similar_items` ranks the kept
    neighbours of the query by similarity (the query itself is left out).
    ``similarity_`` is not an embedding table: ``get_embeddings`` raises an
    ``AttributeError`` that says so.

    References
    ----------
    .. [1] B. Sarwar, G. Karypis, J. Konstan, J. Riedl, "Item-based
       collaborative filtering recommendation algorithms", WWW 2001.
    .. [2] M. Deshpande, G. Karypis, "Item-based top-N recommendation
       algorithms", ACM TOIS 2004.

    Examples
    --------
    >>> from skcollapse.recommenders import ItemKNNRecommender
    >>> X = [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 2]]
    >>> model = ItemKNNRecommender(n_neighbors=1).fit(X)
    >>> model.similar_items(0, n=1)  # item 0's nearest neighbour
    (array([1]), array([0.8164966], dtype=float32))
    >>> model.recommend(2, n=1)  # user 2 has items 0 and 2
    (array([1]), array([0.8164966], dtype=float32))
    """
    )

    _weights_name = "similarity_"
    _parameter_constraints: ClassVar[dict] = {
        **_BaselineRecommender._parameter_constraints,
        "n_neighbors": [int_interval(1, None, closed="left")],
        "shrink": [real_interval(0, None, closed="left")],
    }

    def __init__(self, *, n_neighbors=100, shrink=0.0, n_users=None, n_items=None,
                 k=20, device="cpu"):
        super().__init__(n_users=n_users, n_items=n_items, k=k, device=device)
        self.n_neighbors = n_neighbors
        self.shrink = shrink

    def _fit_model(self, R):
        X = R.astype(np.float64).tocsc()
        C = (X.T @ X).tocoo()
        norms = np.sqrt(C.diagonal()) if C.nnz else np.zeros(self.n_items_)
        off = C.row != C.col
        rows, cols = C.row[off].astype(np.int64), C.col[off].astype(np.int64)
        vals = C.data[off] / (norms[rows] * norms[cols] + float(self.shrink))
        # per target item (column): the n_neighbors largest, ties to lower index
        order = np.lexsort((rows, -vals, cols))
        rows, cols, vals = rows[order], cols[order], vals[order]
        first = np.searchsorted(cols, cols, side="left")
        keep = (np.arange(cols.shape[0]) - first) < int(self.n_neighbors)
        W = sp.csr_matrix(
            (vals[keep].astype(np.float32), (rows[keep], cols[keep])),
            shape=(self.n_items_, self.n_items_),
        )
        W.sort_indices()
        self.similarity_ = W

    def _history_scores(self, H):
        S = np.asarray(
            (self._binary(H).tocsr() @ self.similarity_).toarray(), dtype=np.float32
        )
        return torch.from_numpy(S).to(self._ranking_device())

    def _item_scores(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        S = self.similarity_.T.tocsr()[rows].toarray().astype(np.float32)
        S[np.arange(rows.shape[0]), rows] = -np.inf
        return torch.from_numpy(S).to(self._ranking_device())
