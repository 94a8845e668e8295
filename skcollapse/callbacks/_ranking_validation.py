"""A skorch callback recording validation ranking metrics of a recommender."""

from __future__ import annotations

from typing import ClassVar

from skcollapse.callbacks._base import ParametrizedCallback
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_parameter_constraints,
)

__all__ = ["RankingValidation"]

_METRICS = {"ndcg", "recall", "precision", "hit_rate", "map", "coverage"}


class RankingValidation(ParametrizedCallback):
    """Record top-k ranking metrics of the validation pairs every epoch.

    The CF recommenders add it themselves when they have a ``train_split``
    (``PerUserValidSplit(0.1)``, or skorch's ``ValidSplit``): each ranking
    metric lands in ``net.history`` as ``"valid_<metric>"`` (``valid_ndcg``,
    ``valid_recall``), next to skorch's sampled ``valid_loss``. Configure it
    through skorch's routing, e.g. ``callbacks__valid_ranking__every=5``, and
    select epochs on it with skorch's own callbacks::

        from skorch.callbacks import EarlyStopping
        MFRecommender(train_split=PerUserValidSplit(0.1, random_state=0),
                      callbacks=[EarlyStopping(monitor="valid_ndcg",
                                               lower_is_better=False,
                                               patience=5, load_best=True)])

    Each evaluation ranks all items for every validation user, the training
    items excluded, as ``score`` does; it is not free on large catalogues,
    hence ``every``.

    Parameters
    ----------
    metrics : list or tuple of str, default=("ndcg", "recall")
        Among ``"ndcg"``, ``"recall"``, ``"precision"``, ``"hit_rate"``,
        ``"map"``, ``"coverage"``.
    k : int, default=None
        Cut-off; ``None`` uses the estimator's ``k``.
    every : int, default=1
        Rank every ``every`` epochs (and after the last one). In the epochs in
        between the last values are carried forward, so that
        ``EarlyStopping`` always finds its column (its patience then counts
        epochs, not evaluations).
    """

    _parameter_constraints: ClassVar[dict] = {
        "metrics": [list, tuple],
        "k": [int_interval(1, None, closed="left"), None],
        "every": [int_interval(1, None, closed="left")],
    }

    def __init__(self, metrics=("ndcg", "recall"), k=None, every=1):
        self.metrics = metrics
        self.k = k
        self.every = every

    def _reset(self):
        for i, name in enumerate(self.metrics):
            validate_parameter_constraints(
                {f"metrics[{i}]": [StrOptions(_METRICS)]},
                {f"metrics[{i}]": name},
                caller_name=type(self).__name__,
            )
        self.last_ = {}

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if dataset_valid is None or len(dataset_valid) == 0:
            return
        epoch = len(net.history)
        last = epoch == net.max_epochs
        if (epoch - 1) % self.every == 0 or last or not self.last_:
            values = net.rank_validation(dataset_valid, k=self.k, metrics=self.metrics)
            self.last_ = {f"valid_{m}": float(values[m]) for m in self.metrics}
        for key, value in self.last_.items():
            net.history.record(key, value)
