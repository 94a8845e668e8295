"""Matrix factorisation as a CF estimator."""

from __future__ import annotations

import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

from skcollapse.nn import CFLoss, MatrixFactorization, SparseRowAdam
from skcollapse.recommenders._cf import CFRecommenderBase
from skcollapse.recommenders._docstrings import cf_docstring
from skcollapse.utils._params import init_arguments

__all__ = ["MFRecommender"]

#: optimisers that take the sparse gradients of an embedding table
_SPARSE_OPTIMIZERS = (SparseRowAdam, torch.optim.SparseAdam)


class MFRecommender(CFRecommenderBase):
    __doc__ = cf_docstring(
        """Matrix factorisation recommender trained on implicit feedback.

    ``score(u, i) = <p_u, q_i>`` with one joint embedding table. With the default
    optimiser (:class:`~skcollapse.nn.SparseRowAdam`) only the rows of the batch
    are touched per step (sparse gradients), which keeps epochs cheap on large
    catalogues.""",
        """    module : type, default=MatrixFactorization
        Encoder class (a :class:`~skcollapse.nn.CFEncoder` with
        ``encode(users, items)`` and ``tables()``).
    optimizer : torch optimizer class, default=SparseRowAdam
        :class:`~skcollapse.nn.SparseRowAdam` and ``torch.optim.SparseAdam``
        train with sparse gradients; other optimisers train a dense table.""",
        """
    See Also
    --------
    LightGCNRecommender : graph-propagated embeddings.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import MFRecommender
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = MFRecommender(embedding_dim=16, max_epochs=2, random_state=0).fit(X)
    >>> ids, scores = model.recommend([0, 1], n=5)
    >>> ids.shape
    (2, 5)
    >>> model.get_embeddings()["item"].shape  # one row per item id seen in X
    (99, 16)
    >>> model.item_ids_[:3]  # the id of each row
    array([0, 1, 2])
    """,
    )

    def __init__(
        self,
        *,
        n_users=None,
        n_items=None,
        embedding_dim=64,
        loss="bpr",
        n_negatives=None,
        negative_sampling="independent",
        sampling="pairs",
        similarity="dot",
        temperature=1.0,
        margin=0.8,
        negative_weight=1.0,
        weight_decay=1e-4,
        init_std=0.1,
        init="normal",
        k=20,
        regularizer=None,
        random_state=None,
        module=MatrixFactorization,
        optimizer=SparseRowAdam,
        criterion=CFLoss,
        lr=5e-3,
        max_epochs=30,
        batch_size=2048,
        train_split=None,
        callbacks=None,
        warm_start=False,
        verbose=0,
        device="cpu",
        iterator_train=DataLoader,
        iterator_valid=DataLoader,
        dataset=Dataset,
        predict_nonlinearity="auto",
        compile=False,
        use_caching="auto",
        torch_load_kwargs=None,
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))

    def _component_kwargs(self, prefix):
        kwargs = super()._component_kwargs(prefix)
        if prefix == "module" and isinstance(self.module, type) and issubclass(
            self.module, MatrixFactorization
        ):
            kwargs["sparse"] = isinstance(self.optimizer, type) and issubclass(
                self.optimizer, _SPARSE_OPTIMIZERS
            )
        return kwargs
