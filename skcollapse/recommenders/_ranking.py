"""Top-k ranking over embedding tables, written once for every CF model.

:class:`RankingMixin` gives an estimator ``predict``, ``recommend``,
``similar_items`` and ``score`` (as implicit's ``MatrixFactorizationBase``)
from two things the estimator provides:

* ``get_embedding_tensors()`` -> ``{"user": Tensor, "item": Tensor}``, the
  ranking tables on the estimator's device (scores are dot products);
* ``_check_fitted()``, raising ``NotFittedError`` before the model can rank
  (:class:`~skcollapse.recommenders._base.NetBase` has it);
* the fitted state ``n_users_``, ``n_items_``, ``user_items_`` (the training
  interactions, filtered out of recommendations) and ``k`` (NDCG cut-off of
  :meth:`~RankingMixin.score`).

Users are ranked against the whole catalogue in blocks of about ``2**24``
scores, on the device of the tables.

Estimators without ranking tables (the item-item and popularity baselines of
``recommenders/_baselines.py``) set ``_ranks_by_tables = False`` and give the
scores instead, through three hooks:

* ``_history_scores(H)``: scores of every item for the users whose histories
  are the rows of the CSR matrix ``H`` (``(n, n_items_)``, binary), a tensor
  of shape ``(n, n_items_)`` on the ranking device;
* ``_item_scores(rows)``: scores of every item for the query items ``rows``
  (an int64 array), used by :meth:`~RankingMixin.similar_items`;
* ``_ranking_device()``: the device those tensors are on.

The filters, candidates, padding, blocks and id mapping are then the same code
for both kinds.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from skcollapse.metrics import ranking_scorer
from skcollapse.recommenders._interaction_state import InteractionState
from skcollapse.utils._interactions import (
    check_id_vector,
    check_interactions,
)
from skcollapse.utils._sklearn_compat import (
    int_interval,
    validate_parameter_constraints,
)

__all__ = ["RankingMixin"]

# scores kept in memory per ranking block (float32 entries)
_RANK_BLOCK = 2**24


def _validate_n(n):
    validate_parameter_constraints(
        {"n": [int_interval(1, None, closed="left")]}, {"n": n}, caller_name="recommend"
    )


class RankingMixin(InteractionState):
    """``predict``/``recommend``/``similar_items``/``score`` over ranking tables.

    Every public method speaks raw ids (the labels of ``user_ids_`` and
    ``item_ids_``); rows of the tables are looked up through the vocabularies
    of the interaction state it builds on (:class:`InteractionState`).
    """

    def _codes(self, kind, ids, *, name, unknown="error"):
        """Rows of raw ``ids`` (scalar or 1-D); returns ``(codes, was_scalar)``."""
        arr, scalar = check_id_vector(ids, name=name)
        return self._vocabulary(kind).encode(arr, name=name, unknown=unknown), scalar

    #: ``False`` for estimators that give scores through the hooks below
    #: instead of ranking tables (see the module docstring)
    _ranks_by_tables = True

    def _ranking_device(self):
        """Device the ranking runs on (of the item table by default)."""
        return self.get_embedding_tensors()["item"].device

    def _history_scores(self, H):
        """Scores of every item for the histories ``H`` (table-less estimators)."""
        raise NotImplementedError

    def _item_scores(self, rows):
        """Scores of every item for the query items ``rows`` (table-less estimators)."""
        raise NotImplementedError

    def _scores_by_history(self, users, H=None):
        """Score blocks ``(start, stop, S)`` from ``_history_scores`` for the query
        rows ``users`` (codes), with histories ``H`` (one row per query) or, when
        ``None``, the training interactions."""
        R = self.user_items_.tocsr() if H is None else H
        block = max(1, _RANK_BLOCK // max(int(self.n_items_), 1))
        for start in range(0, users.shape[0], block):
            stop = min(users.shape[0], start + block)
            rows = users[start:stop] if H is None else np.arange(start, stop)
            yield start, stop, self._history_scores(R[rows])

    def predict(self, X):
        """Score of each ``(user, item)`` pair.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)

        Returns
        -------
        ndarray of shape (n_pairs,)
            Dot products of the ranking embeddings (cosines with
            ``similarity="cosine"``), float32.
        """
        self._check_fitted()
        users, items = check_interactions(X)
        users = self._vocabulary("user").encode(users, name="X's user column")
        items = self._vocabulary("item").encode(items, name="X's item column")
        if not self._ranks_by_tables:
            uniq, rows = np.unique(users, return_inverse=True)
            out = np.empty(users.shape[0], dtype=np.float32)
            for start, stop, S in self._scores_by_history(uniq):
                sel = np.flatnonzero((rows >= start) & (rows < stop))
                r = torch.from_numpy(rows[sel] - start).to(S.device)
                c = torch.from_numpy(items[sel]).to(S.device)
                out[sel] = S[r, c].float().cpu().numpy()
            return out
        tabs = self.get_embedding_tensors()
        U, I = tabs["user"], tabs["item"]
        dev = U.device
        out = np.empty(users.shape[0], dtype=np.float32)
        step = 1 << 16
        for start in range(0, users.shape[0], step):
            u = torch.from_numpy(users[start : start + step]).to(dev)
            i = torch.from_numpy(items[start : start + step]).to(dev)
            s = (U.index_select(0, u) * I.index_select(0, i)).sum(-1)
            out[start : start + step] = s.float().cpu().numpy()
        return out

    def _liked_tensors(self):
        """``user_items_`` as CSR tensors on the ranking device (cached)."""

        def build():
            R = self.user_items_.tocsr()
            dev = self._ranking_device()
            return (
                torch.from_numpy(R.indptr.astype(np.int64)).to(dev),
                torch.from_numpy(R.indices.astype(np.int64)).to(dev),
            )

        return self._cached("liked", self.user_items_, build)

    @staticmethod
    def _rows_of(indptr, indices, rows):
        """(row position, column) pairs of the CSR rows ``rows`` (vectorised)."""
        starts = indptr.index_select(0, rows)
        counts = indptr.index_select(0, rows + 1) - starts
        total = int(counts.sum())
        pos = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device),
                                      counts)
        if total == 0:
            return pos, pos
        offsets = torch.cumsum(counts, 0) - counts
        within = torch.arange(total, device=rows.device) - offsets.repeat_interleave(
            counts
        )
        cols = indices.index_select(0, starts.repeat_interleave(counts) + within)
        return pos, cols

    def _topk(self, queries, table, n, *, exclude=None, filter_items=None, items=None):
        """Top-``n`` rows of ``table`` for each query row, in blocks.

        ``exclude(block_slice) -> (rows, cols)`` gives per-query exclusions in
        catalogue ids; ``filter_items`` excludes ids for everybody; ``items``
        restricts the candidates.
        """
        cand_table = table
        if items is not None:
            cand_table = table.index_select(0, torch.from_numpy(items).to(table.device))
        block = max(1, _RANK_BLOCK // max(cand_table.shape[0], 1))
        blocks = (
            (start, min(queries.shape[0], start + block),
             queries[start : start + block] @ cand_table.T)
            for start in range(0, queries.shape[0], block)
        )
        return self._topk_of_blocks(
            blocks, queries.shape[0], table.shape[0], table.device, n,
            exclude=exclude, filter_items=filter_items, items=items,
            restricted=True,
        )

    def _topk_of_blocks(self, blocks, n_q, n_items, dev, n, *, exclude=None,
                        filter_items=None, items=None, restricted=False):
        """Top-``n`` of the score blocks ``(start, stop, S)`` of ``n_q`` queries.

        ``S`` scores only the candidates ``items`` when ``restricted`` (the
        table path), else the whole catalogue of ``n_items``.
        """
        lookup = None
        cand = None
        if items is not None:
            cand = torch.from_numpy(items).to(dev)
            lookup = torch.full((n_items,), -1, dtype=torch.long, device=dev)
            lookup[cand] = torch.arange(cand.shape[0], device=dev)
        n_cand = n_items if cand is None else cand.shape[0]
        n_out = min(int(n), n_cand)
        filt = None
        if filter_items is not None and filter_items.size:
            filt = torch.from_numpy(filter_items).to(dev)
            if lookup is not None:
                filt = lookup[filt]
                filt = filt[filt >= 0]
        ids_out = np.empty((n_q, n_out), dtype=np.int64)
        sc_out = np.empty((n_q, n_out), dtype=np.float32)
        neg_inf = float("-inf")
        for start, stop, S in blocks:
            if cand is not None and not restricted:
                S = S.index_select(1, cand)
            if exclude is not None:
                rows, cols = exclude(start, stop)
                if lookup is not None:
                    cols = lookup[cols]
                    keep = cols >= 0
                    rows, cols = rows[keep], cols[keep]
                S[rows, cols] = neg_inf
            if filt is not None:
                S[:, filt] = neg_inf
            vals, idx = torch.topk(S, n_out, dim=1)
            if cand is not None:
                idx = cand[idx]
            idx = torch.where(torch.isinf(vals) & (vals < 0), -1, idx)
            ids_out[start:stop] = idx.cpu().numpy()
            sc_out[start:stop] = vals.float().cpu().numpy()
        return ids_out, sc_out

    def _item_filters(self, filter_items, items):
        """Rows of ``filter_items`` (unknown ids ignored: they are never ranked)
        and of the candidate ``items`` (unknown ids refused)."""
        if filter_items is not None and items is not None:
            raise ValueError(
                "filter_items and items are contradictory: pass the allowed items "
                "through items only."
            )
        filt = cand = None
        if filter_items is not None:
            filt, _ = self._codes("item", filter_items, name="filter_items",
                                  unknown="ignore")
            filt = filt[filt >= 0]
        if items is not None:
            cand, _ = self._codes("item", items, name="items")
            if cand.size == 0:
                raise ValueError("items is empty; give at least one candidate item.")
            if np.unique(cand).size != cand.size:
                raise ValueError("items contains duplicate ids.")
        return filt, cand

    def recommend(
        self,
        user_ids,
        user_items=None,
        *,
        n=10,
        filter_already_liked_items=True,
        filter_items=None,
        items=None,
    ):
        """Top-``n`` items for each user, ranking all items on the device.

        Parameters
        ----------
        user_ids : id or array-like of shape (n_users_query,)
            Users to recommend for: ids seen in fit (``user_ids_``); an unseen id
            is an error.
        user_items : sparse matrix of shape (n_users_query, n_items_), default=None
            Items to treat as already liked, one row per entry of ``user_ids``,
            columns in the order of ``item_ids_``. ``None`` uses the training
            interactions (``user_items_``). Item-item models (EASE, ItemKNN)
            also score from these histories.
        n : int, default=10
            Number of items per user. Fewer columns are returned when fewer
            candidates exist; rows with fewer valid candidates are padded with id
            ``-1`` (``None`` for string ids) and score ``-inf``.
        filter_already_liked_items : bool, default=True
            Exclude the liked items from the ranking.
        filter_items : array-like of ids, default=None
            Items excluded for every user (ids unseen in fit are ignored).
        items : array-like of ids, default=None
            Restrict the ranking to these candidate items (ids seen in fit).

        Returns
        -------
        ids : ndarray of shape (n_users_query, n) or (n,)
            Item ids (labels of ``item_ids_``), best first (1-D when
            ``user_ids`` is a scalar).
        scores : ndarray of the same shape
            Their scores (float32).
        """
        self._check_fitted()
        _validate_n(n)
        users, scalar = self._codes("user", user_ids, name="user_ids")
        filt, cand = self._item_filters(filter_items, items)
        dev = self._ranking_device()
        users_t = torch.from_numpy(users).to(dev)
        R = None
        if user_items is not None and (
            filter_already_liked_items or not self._ranks_by_tables
        ):
            if not sp.issparse(user_items):
                raise TypeError(
                    "user_items must be a scipy sparse matrix of shape "
                    f"(len(user_ids), n_items_), got {type(user_items).__name__}."
                )
            R = sp.csr_matrix(user_items)
            if R.shape != (users.shape[0], self.n_items_):
                raise ValueError(
                    f"user_items must have shape ({users.shape[0]}, "
                    f"{self.n_items_}), got {R.shape}."
                )
        exclude = None
        if filter_already_liked_items:
            if R is not None:
                indptr = torch.from_numpy(R.indptr.astype(np.int64)).to(dev)
                indices = torch.from_numpy(R.indices.astype(np.int64)).to(dev)
                row_ids = torch.arange(users.shape[0], device=dev)
            else:
                indptr, indices = self._liked_tensors()
                row_ids = users_t

            def exclude(start, stop):
                return self._rows_of(indptr, indices, row_ids[start:stop])

        if self._ranks_by_tables:
            tabs = self.get_embedding_tensors()
            queries = tabs["user"].index_select(0, users_t)
            ids, scores = self._topk(
                queries, tabs["item"], n, exclude=exclude, filter_items=filt,
                items=cand,
            )
        else:  # scores from the histories (user_items, if given, is the history)
            ids, scores = self._topk_of_blocks(
                self._scores_by_history(users, R), users.shape[0], self.n_items_,
                dev, n, exclude=exclude, filter_items=filt, items=cand,
            )
        ids = self._vocabulary("item").decode(ids)
        if scalar:
            return ids[0], scores[0]
        return ids, scores

    def similar_items(self, item_ids, *, n=10, filter_items=None, items=None):
        """Most similar items by cosine similarity of the ranking embeddings.

        Estimators without embeddings rank by their own item-item scores (see
        their docstrings).

        Parameters
        ----------
        item_ids : id or array-like of shape (n_queries,)
            Items seen in fit (``item_ids_``).
        n : int, default=10
            The query item itself is included (similarity 1).
        filter_items, items : array-like of int, default=None
            As in :meth:`recommend`.

        Returns
        -------
        ids, scores : ndarray of shape (n_queries, n) or (n,)
        """
        self._check_fitted()
        _validate_n(n)
        q, scalar = self._codes("item", item_ids, name="item_ids")
        filt, cand = self._item_filters(filter_items, items)
        if self._ranks_by_tables:
            I = F.normalize(self.get_embedding_tensors()["item"], dim=1)
            queries = I.index_select(0, torch.from_numpy(q).to(I.device))
            ids, scores = self._topk(queries, I, n, filter_items=filt, items=cand)
        else:
            block = max(1, _RANK_BLOCK // max(int(self.n_items_), 1))
            blocks = (
                (start, min(q.shape[0], start + block),
                 self._item_scores(q[start : start + block]))
                for start in range(0, q.shape[0], block)
            )
            ids, scores = self._topk_of_blocks(
                blocks, q.shape[0], self.n_items_, self._ranking_device(), n,
                filter_items=filt, items=cand,
            )
        ids = self._vocabulary("item").decode(ids)
        if scalar:
            return ids[0], scores[0]
        return ids, scores

    def score(self, X, y=None):
        """NDCG@``k`` of held-out pairs, training items excluded from the ranking.

        Held-out users or items unseen in fit count as misses, and so do
        held-out pairs that were seen in fit (they are filtered out of the
        ranking). As for every scorer this is silent (``GridSearchCV`` calls
        it per fold), except when nothing could be ranked: no held-out user or
        item seen in fit (ids of another encoding?), or every pair seen in fit
        (e.g. ``score(X_train)``); the score is then 0 and a warning says why.
        :func:`~skcollapse.metrics.evaluate_ranking` reports the counts.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)
            Held-out ``(user, item)`` interactions.
        y : ignored

        Returns
        -------
        float
        """
        self._check_fitted()
        return ranking_scorer("ndcg", k=self.k)(self, X)
