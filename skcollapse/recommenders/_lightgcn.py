"""LightGCN as a CF estimator."""

from __future__ import annotations

from typing import ClassVar

import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

from skcollapse.nn import CFLoss, LightGCN, normalized_adjacency
from skcollapse.recommenders._cf import CFRecommenderBase
from skcollapse.recommenders._docstrings import cf_docstring
from skcollapse.utils._distributed import unwrap_module
from skcollapse.utils._params import init_arguments
from skcollapse.utils._sklearn_compat import int_interval

__all__ = ["LightGCNRecommender"]


class LightGCNRecommender(CFRecommenderBase):
    __doc__ = cf_docstring(
        """LightGCN recommender (He et al., SIGIR 2020) on implicit feedback.

    Ego embeddings are propagated over the symmetric-normalised user-item graph
    (built once per fit as a torch sparse CSR matrix) for ``n_layers`` layers and
    averaged. Ranking, ``predict`` and ``get_embeddings`` use the propagated
    embeddings, computed once after training.

    The graph is the pairs the model trained on, kept as ``graph_items_``.
    After a fit with a ``train_split`` the validation pairs are known
    interactions (in ``user_items_``: filtered at ranking, never negatives) but
    not edges of the graph: the tables you get are the ones validation scored,
    so an epoch chosen on validation is the model you rank with. To propagate
    over every pair, refit without ``train_split`` for the chosen number of
    epochs; ``partial_fit`` propagates over every pair known so far.""",
        """    n_layers : int, default=3
        Propagation layers (``0`` is matrix factorisation).
    module : type, default=LightGCN
        Encoder class (:class:`~skcollapse.nn.LightGCN` or a subclass).
    optimizer : torch optimizer class, default=torch.optim.Adam
        Adam runs fused on CPU and CUDA.""",
        """
    See Also
    --------
    MFRecommender : the same objective without propagation.

    References
    ----------
    He, Deng, Wang, Li, Zhang, Wang. "LightGCN: Simplifying and Powering Graph
    Convolution Network for Recommendation." SIGIR 2020.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import LightGCNRecommender
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = LightGCNRecommender(embedding_dim=16, max_epochs=2,
    ...                             random_state=0).fit(X)
    >>> model.recommend(3, n=4)[0].shape
    (4,)
    """,
    )
    _parameter_constraints: ClassVar[dict] = {
        **CFRecommenderBase._parameter_constraints,
        "n_layers": [int_interval(0, None, closed="left")],
    }
    _fitted_attributes = (*CFRecommenderBase._fitted_attributes, "graph_items_")

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
        n_layers=3,
        module=LightGCN,
        optimizer=torch.optim.Adam,
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
        super().__init__(**init_arguments(locals(), exclude=("n_layers",)))
        self.n_layers = n_layers

    def _component_kwargs(self, prefix):
        kwargs = super()._component_kwargs(prefix)
        if prefix == "module":
            kwargs["n_layers"] = int(self.n_layers)
        return kwargs

    def _prepare_module(self, interactions=None):
        """Set the propagation graph: the pairs training starts on (``fit``: the
        training part of ``X``; ``partial_fit``: those and every pair known
        before), kept as ``graph_items_``. After fit the graph stays the one
        the weights were trained and validated with."""
        mod = unwrap_module(self.module_)
        if not hasattr(mod, "set_adjacency"):
            return
        if interactions is not None:
            self.graph_items_ = interactions
        graph = getattr(self, "graph_items_", None)
        if graph is None:  # fitted before graph_items_ existed
            graph = self.graph_items_ = self.user_items_
        if getattr(mod, "adjacency", None) is None:
            self._clear_cache("adjacency")
        self._cached("adjacency", graph, lambda: mod.set_adjacency(
            normalized_adjacency(graph, device=self._device())) or True)
