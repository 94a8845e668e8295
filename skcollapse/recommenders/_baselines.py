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
    _fitted_attributes: ClassVar[tuple[str, ...]] = (
        "user_ids_",
        "item_ids_",
        "n_users_",
        "n_items_",
        "user_items_",
        "item_popularity_",
    )

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
    Fitting forms the dense ``n_items x n_items`` Gram matrix and inverts it
    (Cholesky, in float64 on ``device``): two ``8 * n_items**2``-byte buffers at
    the peak and about ``n_items**3`` operations, so tens of thousands of
    items (13 GB per copy at 40k items) need a large machine or a GPU. There is no ``partial_fit``: the
    closed form needs the whole Gram matrix again, i.e. a new fit.

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
        X = R.astype(np.float64)
        G = torch.from_numpy((X.T @ X).toarray()).to(dev)
        G.diagonal().add_(float(self.alpha))
        L, info = torch.linalg.cholesky_ex(G)
        del G
        if int(info) != 0:
            raise ModelFitError(
                f"EASE's Gram matrix X^T X + alpha I is not numerically positive "
                f"definite with alpha={self.alpha!r}; raise alpha."
            )
        P = torch.cholesky_inverse(L)
        del L
        P.div_(-P.diagonal().clone().unsqueeze(0))  # B_ij = -P_ij / P_jj
        P.fill_diagonal_(0.0)
        if not torch.isfinite(P).all():
            raise ModelFitError(
                f"EASE's weights are not finite with alpha={self.alpha!r}; raise alpha."
            )
        self.coef_ = P.to(torch.float32).cpu().numpy()

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
