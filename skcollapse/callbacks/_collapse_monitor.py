"""A skorch callback recording collapse metrics of the embedding tables per epoch."""

from __future__ import annotations

import numbers

from skorch.callbacks import Callback

from skcollapse.metrics import effective_rank, information_abundance

__all__ = ["CollapseMonitor"]

_METRICS = {"erank": effective_rank, "ia": information_abundance}


class CollapseMonitor(Callback):
    """Record the effective rank and information abundance of embedding tables.

    At the end of every ``every``-th epoch the callback reads the net's tables
    through ``net.get_embedding_tensors()`` when it exists (no copy, computed on
    the net's device) or ``net.get_embeddings()`` otherwise, and writes one
    history column per table and metric, e.g. ``"erank_user"``, ``"ia_item"``.
    The metrics are :func:`skcollapse.metrics.effective_rank` and
    :func:`skcollapse.metrics.information_abundance` of the raw tables (one SVD
    of a ``(n_rows, dim)`` matrix each), cheap enough to leave on.

    Parameters
    ----------
    tables : sequence of str or None, default=None
        Table names to monitor; ``None`` monitors every table the net exposes.
    metrics : sequence of {"erank", "ia"}, default=("erank", "ia")
        Which metrics to record.
    every : int, default=1
        Record every ``every`` epochs (and always after the last epoch).
    record_initial : bool, default=False
        Also compute the metrics of the tables before training, in ``initial_``.

    Attributes
    ----------
    initial_ : dict of str to float
        Metrics of the tables before training (filled when ``record_initial``
        is True).

    Examples
    --------
    >>> from skcollapse.callbacks import CollapseMonitor
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import MFRecommender
    >>> X = make_interactions(100, 50, random_state=0)
    >>> net = MFRecommender(embedding_dim=8, max_epochs=2, random_state=0,
    ...                     callbacks=[CollapseMonitor()]).fit(X)
    >>> sorted(k for k in net.history[-1] if k.startswith(("erank", "ia")))
    ['erank_item', 'erank_user', 'ia_item', 'ia_user']
    """

    def __init__(self, tables=None, metrics=("erank", "ia"), every=1,
                 record_initial=False):
        self.tables = tables
        self.metrics = metrics
        self.every = every
        self.record_initial = record_initial

    def initialize(self):
        if isinstance(self.metrics, str):
            raise TypeError(
                f"metrics must be a sequence of names, e.g. ('erank',), got "
                f"{self.metrics!r}."
            )
        unknown = [m for m in self.metrics if m not in _METRICS]
        if unknown or not len(self.metrics):
            raise ValueError(
                f"metrics must be a non-empty subset of {sorted(_METRICS)}, got "
                f"{list(self.metrics)!r}."
            )
        if (
            isinstance(self.every, bool)
            or not isinstance(self.every, numbers.Integral)
            or self.every < 1
        ):
            raise ValueError(f"every must be a positive integer, got {self.every!r}.")
        if self.tables is not None and isinstance(self.tables, str):
            raise TypeError(
                f"tables must be a sequence of table names, got {self.tables!r}."
            )
        self.initial_ = {}
        return self

    def _tables(self, net):
        getter = getattr(net, "get_embedding_tensors", None)
        if getter is None:
            getter = getattr(net, "get_embeddings", None)
        if getter is None:
            raise TypeError(
                f"{type(net).__name__} has no get_embeddings(); CollapseMonitor "
                "needs the embeddings protocol."
            )
        tables = getter()
        if self.tables is None:
            return tables
        missing = [t for t in self.tables if t not in tables]
        if missing:
            raise ValueError(
                f"tables {missing} not found; the net exposes {sorted(tables)}."
            )
        return {t: tables[t] for t in self.tables}

    def _compute(self, net):
        out = {}
        for name, table in self._tables(net).items():
            for metric in self.metrics:
                out[f"{metric}_{name}"] = float(_METRICS[metric](table))
        return out

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.record_initial:
            self.initial_ = self._compute(net)

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        last = epoch >= getattr(net, "max_epochs", epoch)
        if epoch % self.every and not last:
            return
        for key, value in self._compute(net).items():
            net.history.record(key, value)
