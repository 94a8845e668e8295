"""A skorch callback recording collapse metrics of the embedding tables per epoch."""

from __future__ import annotations

from typing import ClassVar

from skcollapse.callbacks._base import ParametrizedCallback
from skcollapse.metrics import (
    collapse_metrics,
    get_embedding_tables,
    resolve_collapse_metrics,
)
from skcollapse.utils._sklearn_compat import int_interval

__all__ = ["CollapseMonitor"]


class CollapseMonitor(ParametrizedCallback):
    """Record the effective rank and information abundance of embedding tables.

    At the end of every ``every``-th epoch the callback reads the net's tables
    through ``net.get_embedding_tensors()`` when it exists (no copy, computed on
    the net's device) or ``net.get_embeddings()`` otherwise, and writes one
    history column per table and metric, named ``"<alias>_<table>"`` after the
    metric's short alias, e.g. ``"erank_user"``, ``"ia_item"``. The values are
    those of :func:`skcollapse.metrics.collapse_metrics` on the raw tables: one
    spectrum per table feeds every spectral metric, cheap enough to leave on.

    Parameters
    ----------
    tables : list or tuple of str, or None, default=None
        Table names to monitor; ``None`` monitors every table the net exposes.
    metrics : list or tuple of str, default=("erank", "ia")
        Which metrics to record, by alias or name: ``"erank"``
        (``"effective_rank"``), ``"ia"`` (``"information_abundance"``),
        ``"srank"`` (``"stable_rank"``), ``"cond"`` (``"condition_number"``),
        ``"norm_std"`` (``"normalized_std"``), or any metric added with
        :func:`~skcollapse.metrics.register_collapse_metric`.
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

    _parameter_constraints: ClassVar[dict] = {
        "tables": [list, tuple, None],
        "metrics": [list, tuple],
        "every": [int_interval(1, None, closed="left")],
        "record_initial": ["boolean"],
    }

    def __init__(self, tables=None, metrics=("erank", "ia"), every=1,
                 record_initial=False):
        self.tables = tables
        self.metrics = metrics
        self.every = every
        self.record_initial = record_initial

    def _reset(self):
        entries = resolve_collapse_metrics(list(self.metrics))
        #: (history column prefix, collapse_metrics name) of each metric
        self._columns = [(m.alias, m.name) for m in entries]
        self.initial_ = {}

    def _tables(self, net):
        wanted = None if self.tables is None else list(self.tables)
        return get_embedding_tables(net, wanted, prefer_tensors=True, name="net")

    def _compute(self, net):
        names = [name for _, name in self._columns]
        out = {}
        for table_name, table in self._tables(net).items():
            values = collapse_metrics(table, metrics=names)  # one spectrum
            for alias, name in self._columns:
                out[f"{alias}_{table_name}"] = float(values[name])
        return out

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.record_initial:
            self.initial_ = self._compute(net)

    def on_epoch_end(self, net, **kwargs):
        if not self._due(net):
            return
        for key, value in self._compute(net).items():
            net.history.record(key, value)
