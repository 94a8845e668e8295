"""The validation protocol of the CF recommenders (a mixin of CFRecommenderBase).

With a ``train_split`` (e.g. :class:`~skcollapse.model_selection.PerUserValidSplit`
or skorch's ``ValidSplit``) the pairs of ``X`` are split once per fit, in
``on_train_begin``, so that validation pairs stay out of ``user_items_`` (the
ranking filter) and out of the negatives' exclusion set while training. When
fit ends they join ``user_items_`` (``CFRecommenderBase._after_fit``): after
fit every pair of ``X`` is a known interaction. Every epoch then
records ``valid_loss`` (:meth:`ValidationMixin.validation_step`: the training
objective with sampled negatives) and, through the default
:class:`~skcollapse.callbacks.RankingValidation` callback,
``valid_ndcg``/``valid_recall`` (:meth:`ValidationMixin.rank_validation`).
"""

from __future__ import annotations

import numpy as np
import torch
from skorch.dataset import unpack_data

from skcollapse.callbacks import RankingValidation
from skcollapse.recommenders._sampling import PairsDataset

__all__ = ["ValidationMixin"]


def _indices_of(subset, n):
    """Row indices of a split part: a ``Subset``'s indices, or all rows."""
    indices = getattr(subset, "indices", None)
    if indices is None:
        if len(subset) != n:
            raise TypeError(
                "train_split must return torch Subsets of the dataset it is given "
                f"(as skorch's ValidSplit does), got {type(subset).__name__}."
            )
        return np.arange(n)
    return np.asarray(indices, dtype=np.int64)


class ValidationMixin:
    """``train_split`` support for the CF recommenders (see the module doc)."""

    @property
    def _default_callbacks(self):
        callbacks = list(super()._default_callbacks)
        if self.train_split is not None:
            # validation ranking metrics in the history (valid_ndcg, valid_recall),
            # before the log prints the epoch's row
            at = next(
                (i for i, (name, _) in enumerate(callbacks) if name == "print_log"),
                len(callbacks),
            )
            callbacks.insert(at, ("valid_ranking", RankingValidation()))
        return callbacks

    def _split_mask(self, users, items):
        """Training-pair mask from ``train_split`` (``None`` without one).

        The split is made here, once per fit, on the pairs of ``X``: while
        training, validation pairs must stay out of ``user_items_`` (else
        validation ranking would filter them out as already seen) and out of
        the negatives' exclusion set. The
        splitter sees the pairs as integer codes (any ids work).
        """
        if self.train_split is None:
            return None
        import pandas as pd

        n_pairs = users.shape[0]
        codes = np.column_stack([pd.factorize(users)[0], pd.factorize(items)[0]])
        pairs = PairsDataset(torch.from_numpy(codes.astype(np.int64)))
        train, valid = self.train_split(pairs)
        mask = np.zeros(n_pairs, dtype=bool)
        mask[_indices_of(train, n_pairs)] = True
        if mask[_indices_of(valid, n_pairs)].any():
            raise ValueError(
                f"train_split={self.train_split!r} returned overlapping training "
                "and validation pairs."
            )
        return mask

    def get_split_datasets(self, X, y=None, **fit_params):
        """The training and validation pairs split by :meth:`on_train_begin`."""
        state = self._fit_state_
        if state is None or state.pairs is None:
            return super().get_split_datasets(X, y, **fit_params)
        pairs, valid = state.pairs, state.valid_pairs
        return PairsDataset(pairs), (None if valid is None else PairsDataset(valid))

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(
            net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs
        )
        self._fit_state_.valid_tables = None

    def rank_validation(self, dataset_valid, *, k=None, metrics=("ndcg", "recall")):
        """Ranking metrics of the current weights on validation pairs.

        All items are ranked for each validation user, the training items
        excluded (:func:`~skcollapse.metrics.evaluate_ranking`). Used by
        :class:`~skcollapse.callbacks.RankingValidation` each epoch.

        Parameters
        ----------
        dataset_valid : PairsDataset
            The validation pairs (rows of the vocabulary), as skorch passes them.
        k : int, default=None
            Cut-off; ``None`` uses the estimator's ``k``.
        metrics : sequence of str, default=("ndcg", "recall")

        Returns
        -------
        dict of str to float
        """
        from skcollapse.metrics import evaluate_ranking

        pairs = dataset_valid.pairs.detach().cpu().numpy()
        raw = np.column_stack([
            self._vocabulary("user").decode(pairs[:, 0]),
            self._vocabulary("item").decode(pairs[:, 1]),
        ])
        # one recommend call for every validation user: the tables of the
        # current weights are computed once (blocks bound the memory)
        return evaluate_ranking(
            self, raw, k=self.k if k is None else k, metrics=tuple(metrics),
            batch_size=max(1, int(self.n_users_)),
        )

    def _validation_tables(self):
        """``(U, I)`` ranking tables of the current weights, once per epoch."""
        state = self._fit_state_
        if state.valid_tables is None:
            state.valid_tables = self._compute_tables()
        return state.valid_tables["user"], state.valid_tables["item"]

    def validation_step(self, batch, **fit_params):
        """The training objective (without penalties) on validation pairs.

        Negatives are drawn by the fit's strategy as in training, from a
        stream of their own, and read from the ranking tables of the current
        weights (computed once per epoch). Recorded by skorch as
        ``valid_loss``.
        """
        self._set_training(False)
        Xi, _ = unpack_data(batch)
        state = self._fit_state_
        with torch.no_grad():
            U, I = self._validation_tables()
            users, pos = Xi[:, 0], Xi[:, 1]
            draw = state.negatives.draw(state.valid_sampler, users, pos)
            neg = None if draw.candidates is None else I[draw.candidates]
            user, item = U[users], I[pos]
            loss = self.criterion_(user, item, neg, neg_mask=draw.mask,
                                   **draw.terms)
        return {"loss": loss, "y_pred": (user * item).sum(-1)}
