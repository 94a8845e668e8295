"""Collapse metrics (effective rank, information abundance, ...) over epochs.

Which metric a ``net.history`` column holds, its axis label and the order of the
axes all come from the metric registry of :mod:`skcollapse.metrics`, the list
that :class:`~skcollapse.callbacks.CollapseMonitor` writes its columns from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from skcollapse.metrics import (
    get_collapse_metric,
    get_collapse_metric_names,
    metric_of_column,
)
from skcollapse.plotting._base import (
    check_matplotlib_support,
    check_nonempty_mapping,
    display_doc,
    estimator_name,
    panel_axes,
)
from skcollapse.utils._sklearn_compat import StrOptions, validate_params

__all__ = ["CollapseHistoryDisplay", "metric_of_column"]


def _axes_order():
    """Metric aliases in registry order, then ``"other"``: the order of the axes."""
    return [*(get_collapse_metric(n).alias for n in get_collapse_metric_names()),
            "other"]


def _initial_metrics(net):
    """Metrics before training, from a ``CollapseMonitor(record_initial=True)``."""
    for callback in getattr(net, "callbacks_", None) or []:
        cb = callback[1] if isinstance(callback, tuple) else callback
        initial = getattr(cb, "initial_", None)
        if isinstance(initial, Mapping) and initial:
            return dict(initial)
    return None


def _history_rows(history, *, name):
    """Return the list of per-epoch dicts of a skorch net, History or list."""
    initial = None
    if not isinstance(history, (list, tuple)) and hasattr(history, "get_params"):
        net = history  # a skorch net
        history = getattr(net, "history", None)
        if history is None:
            raise ValueError(f"{name}: the net has no history; fit it first.")
        initial = _initial_metrics(net)
    if isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
        rows = list(history)
        if rows and not all(isinstance(r, Mapping) for r in rows):
            raise TypeError(
                f"{name} must be a skorch net, its History or a list of per-epoch "
                "dicts."
            )
        if not rows:
            raise ValueError(f"{name} is empty; no epoch was recorded.")
        if initial:
            rows = [{"epoch": 0, **initial}, *rows]
        return rows
    raise TypeError(
        f"{name} must be a skorch net, its History or a list of per-epoch dicts, "
        f"got {type(history).__name__}."
    )


def _extract(rows, columns, *, name):
    """Epoch numbers and values of each column (NaN where an epoch lacks it)."""
    available = []
    for row in rows:
        for key in row:
            if key not in available:
                available.append(key)
    if columns is None:
        columns = [c for c in available if metric_of_column(c) is not None]
        if not columns:
            raise ValueError(
                f"{name} has no erank/IA columns (nor another collapse metric's; "
                f"found {available}); add a "
                "CollapseMonitor callback to the net, or name the columns with "
                "columns=[...]."
            )
    else:
        columns = [columns] if isinstance(columns, str) else list(columns)
        missing = [c for c in columns if c not in available]
        if missing:
            raise ValueError(
                f"columns {missing} not found in {name}; it has {available}."
            )
    epochs = np.array(
        [row.get("epoch", i + 1) for i, row in enumerate(rows)], dtype=np.float64
    )
    values = {}
    for column in columns:
        vals = []
        for row in rows:
            v = row.get(column)
            try:
                vals.append(np.nan if v is None else float(v))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"column {column!r} of {name} holds {type(v).__name__}, not numbers."
                ) from exc
        values[column] = np.asarray(vals)
    return epochs, values


@display_doc
class CollapseHistoryDisplay:
    """Effective rank and information abundance over epochs, one line per run.

    Reads the columns that :class:`~skcollapse.callbacks.CollapseMonitor` writes
    into ``net.history`` (any column whose name contains ``erank`` or ``ia`` as a
    word, e.g. ``"erank_item"``). Effective-rank columns go to the left axes and
    IA columns to the right one; each run gets one colour and each table one
    line style. For a net whose monitor has ``record_initial=True``, the values
    before training are drawn at epoch 0.

    It is recommended to create a display with :meth:`from_estimator`,
    :meth:`from_estimators` or :meth:`from_history`.

    Parameters
    ----------
    epochs : dict of str -> ndarray of shape (n_epochs,)
        Per run, the epoch numbers.
    values : dict of str -> dict of str -> ndarray of shape (n_epochs,)
        Per run, each history column's values (NaN where an epoch did not record
        it).

    Attributes
    ----------
    lines_ : dict of (str, str) -> matplotlib Line2D
        The line of each ``(run, column)``.
    axes_ : ndarray of matplotlib Axes
        One axes per metric present (erank, IA).
    ax_ : matplotlib Axes
        The first axes.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from skcollapse.plotting import CollapseHistoryDisplay
    >>> history = [{"epoch": 1, "item_erank": 20.0}, {"epoch": 2, "item_erank": 12.5}]
    >>> disp = CollapseHistoryDisplay.from_history(history, name="MF")
    >>> disp.lines_["MF", "item_erank"].get_ydata().tolist()
    [20.0, 12.5]
    """

    def __init__(self, *, epochs, values):
        self.epochs = epochs
        self.values = values

    def _check_data(self):
        if not isinstance(self.values, Mapping) or not self.values:
            raise ValueError("values must be a non-empty dict of run -> columns.")
        for run, cols in self.values.items():
            if run not in self.epochs:
                raise ValueError(f"epochs has no entry for run {run!r}.")
            n = np.asarray(self.epochs[run]).shape[0]
            for column, vals in cols.items():
                if np.asarray(vals).shape != (n,):
                    raise ValueError(
                        f"values[{run!r}][{column!r}] has shape "
                        f"{np.asarray(vals).shape}, expected ({n},)."
                    )

    @validate_params(
        {
            "ax": "no_validation",
            "marker": "no_validation",
            "legend": [StrOptions({"auto", "each", "outside"}), None],
        },
        prefer_skip_nested_validation=True,
    )
    def plot(self, ax=None, *, marker="o", legend="auto", **kwargs):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            One axes per metric present (erank, IA); a new figure is created
            when None.
        marker : str, default="o"
            Marker of the recorded epochs.
        legend : {"auto", "each", "outside"} or None, default="auto"
            ``"each"``: a legend in every axes; ``"outside"``: one legend right of
            the last axes; ``"auto"``: ``"each"`` up to 6 lines per axes, else
            ``"outside"``; None: no legend.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot`.

        {returns}
        """
        plt = check_matplotlib_support("CollapseHistoryDisplay.plot")
        self._check_data()
        metrics = []
        for cols in self.values.values():
            for column in cols:
                metric = metric_of_column(column) or "other"
                if metric not in metrics:
                    metrics.append(metric)
        order = _axes_order()
        metrics.sort(key=order.index)
        fig, axes = panel_axes(
            ax, len(metrics), "CollapseHistoryDisplay.plot",
            figsize=(5.2 * len(metrics), 3.8), layout="constrained",
            message=f"ax holds {{got}} axes but {len(metrics)} metrics are plotted "
            f"({metrics}).",
        )
        by_metric = dict(zip(metrics, axes, strict=True))
        colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        styles = ["-", "--", ":", "-."]
        table_style: dict = {}
        self.lines_ = {}
        for i, (run, cols) in enumerate(self.values.items()):
            epochs = np.asarray(self.epochs[run], dtype=np.float64)
            for column, vals in cols.items():
                metric = metric_of_column(column) or "other"
                pattern = (get_collapse_metric(metric).column_pattern
                           if metric != "other" else None)
                table = pattern.sub("_", column).strip("_") if pattern else column
                style = table_style.setdefault(table, styles[len(table_style) % 4])
                vals = np.asarray(vals, dtype=np.float64)
                keep = np.isfinite(vals)
                parts = [run] if len(self.values) > 1 else []
                parts += [table] if table else []
                label = " ".join(parts) or column
                (line,) = by_metric[metric].plot(
                    epochs[keep],
                    vals[keep],
                    linestyle=style,
                    color=colors[i % len(colors)],
                    marker=marker,
                    markersize=3,
                    label=label,
                    **kwargs,
                )
                self.lines_[run, column] = line
        from matplotlib.ticker import MaxNLocator

        if legend == "auto":
            most = max(len(a.get_lines()) for a in by_metric.values())
            legend = "each" if most <= 6 else "outside"
        for metric, axis in by_metric.items():
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_xlabel("epoch")
            axis.set_ylabel(
                "value" if metric == "other" else get_collapse_metric(metric).label
            )
            axis.grid(True, alpha=0.3)
            if legend == "each":
                axis.legend(fontsize="small")
        if legend == "outside":
            last = list(by_metric.values())[-1]
            last.legend(
                fontsize="small",
                loc="upper left",
                bbox_to_anchor=(1.02, 1.0),
                borderaxespad=0.0,
            )
        self.axes_ = axes
        self.ax_ = axes[0]
        self.figure_ = fig
        return self

    @classmethod
    def from_history(cls, history, *, columns=None, name="run", ax=None, **kwargs):
        """Plot one run from a history.

        Parameters
        ----------
        history : skorch History, list of dict, or a net with ``.history``
            Per-epoch records.
        columns : str or list of str, default=None
            Columns to draw; by default every erank/IA column.
        name : str, default="run"
            Name of the run in the legend.
        ax : matplotlib Axes or array-like of Axes, default=None
            One axes per metric.
        **kwargs : dict
            Passed to :meth:`plot`.

        {returns}
        """
        return cls.from_histories({name: history}, columns=columns, ax=ax, **kwargs)

    @classmethod
    def from_histories(cls, histories, *, columns=None, ax=None, **kwargs):
        """Plot several runs: ``{run name: history}``.

        Parameters are as in :meth:`from_history`.

        {returns}
        """
        check_nonempty_mapping(
            histories, "histories must be a non-empty dict of run name -> history."
        )
        epochs, values = {}, {}
        for run, history in histories.items():
            label = f"history of run {run!r}"
            rows = _history_rows(history, name=label)
            epochs[str(run)], values[str(run)] = _extract(rows, columns, name=label)
        disp = cls(epochs=epochs, values=values)
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, *, name=None, columns=None, ax=None, **kwargs):
        """Plot a fitted skorch net's collapse history.

        Parameters
        ----------
        estimator : skorch net
            Fitted with a :class:`~skcollapse.callbacks.CollapseMonitor` callback.
        name : str, default=None
            Run name; the class name by default.
        columns, ax, **kwargs
            As in :meth:`from_history`.

        {returns}
        """
        return cls.from_histories(
            {name or estimator_name(estimator): estimator},
            columns=columns,
            ax=ax,
            **kwargs,
        )

    @classmethod
    def from_estimators(cls, estimators, *, columns=None, ax=None, **kwargs):
        """Plot several fitted nets, one colour per run: ``{run name: net}``.

        {returns}
        """
        return cls.from_histories(estimators, columns=columns, ax=ax, **kwargs)
