"""Scaling curves of test metric and information abundance (Guo et al., 2024)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from skcollapse.plotting._base import panel_axes


def _summarize(table, column):
    """``(scale, mean, std)`` arrays of ``column`` over seeds, by scale."""
    if column not in table.columns:
        raise ValueError(
            f"column {column!r} not in the table; it has {list(table.columns)}."
        )
    g = table.groupby("scale", sort=True)[column]
    stats = g.agg(["mean", "std"]).reset_index()
    return (stats["scale"].to_numpy(float), stats["mean"].to_numpy(float),
            stats["std"].fillna(0.0).to_numpy(float))


class ScalingDisplay:
    """Test metric and information abundance against scale, several models side by side.

    The figure of Guo et al. (ICML 2024): a single-embedding model (SE, growing
    ``embedding_dim``) and its multi-embedding counterpart (ME, growing
    ``n_embedding_sets``) on one x axis, the scale (1x, 2x, ...), with the mean
    over seeds and a ±1 std error bar. Left: the test metric. Right: the mean
    per-field information abundance of the embedding tables.

    Create it with :meth:`from_results`.

    Parameters
    ----------
    summaries : dict of str -> dict of str -> tuple of ndarray
        Per curve label, ``{"metric": (scale, mean, std), "ia": (...)}``
        (``"ia"`` may be missing).
    metric : str
        Name of the metric column.
    ia : str or None
        Name of the IA column.

    Attributes
    ----------
    lines_ : dict of str -> list of matplotlib containers
        Per label, the error-bar containers drawn (metric, then IA).
    axes_ : ndarray of matplotlib Axes
        One (metric) or two (metric, IA) panels.
    ax_ : matplotlib Axes
        The metric panel.
    figure_ : matplotlib Figure

    See Also
    --------
    skcollapse.model_selection.scaling_curve : Produces the tables.

    Examples
    --------
    >>> import pandas as pd
    >>> from skcollapse.plotting import ScalingDisplay
    >>> se = pd.DataFrame({"scale": [1, 1, 2, 2], "test_roc_auc": [.70, .71, .69, .70],
    ...                    "ia_mean": [3.0, 3.1, 3.2, 3.1]})
    >>> me = pd.DataFrame({"scale": [1, 1, 2, 2], "test_roc_auc": [.70, .71, .72, .73],
    ...                    "ia_mean": [3.0, 3.1, 5.0, 5.2]})
    >>> disp = ScalingDisplay.from_results({"SE": se, "ME": me})
    >>> len(disp.axes_)
    2
    """

    def __init__(self, *, summaries, metric, ia=None):
        self.summaries = summaries
        self.metric = metric
        self.ia = ia

    @classmethod
    def from_results(cls, results, *, metric="test_roc_auc", ia="ia_mean",
                     ax=None, **kwargs):
        """Plot tables of :func:`~skcollapse.model_selection.scaling_curve`.

        Parameters
        ----------
        results : DataFrame or dict of str -> DataFrame
            One table, or one per curve (e.g. ``{"SE": se, "ME": me}``). Each
            needs a ``scale`` column and the ``metric`` (and ``ia``) columns.
        metric : str, default="test_roc_auc"
            The column on the left panel.
        ia : str or None, default="ia_mean"
            The column on the right panel; ``None`` draws only the metric.
        ax : array of matplotlib Axes or None, default=None
            One axes per panel; ``None`` makes a new figure.
        **kwargs
            Passed to ``Axes.errorbar``.

        Returns
        -------
        ScalingDisplay
        """
        if isinstance(results, pd.DataFrame):
            results = {"": results}
        if not isinstance(results, Mapping) or not results:
            raise TypeError(
                "results must be a DataFrame or a non-empty dict of label -> "
                f"DataFrame, got {type(results).__name__}."
            )
        summaries = {}
        for label, table in results.items():
            if "scale" not in table.columns:
                raise ValueError(
                    f"table {label!r} has no 'scale' column; pass the output of "
                    "scaling_curve."
                )
            summaries[str(label)] = {"metric": _summarize(table, metric)}
            if ia is not None:
                summaries[str(label)]["ia"] = _summarize(table, ia)
        return cls(summaries=summaries, metric=metric, ia=ia).plot(ax=ax, **kwargs)

    def plot(self, ax=None, **kwargs):
        """Draw the panels.

        Parameters
        ----------
        ax : array of matplotlib Axes or None, default=None
            One axes per panel.
        **kwargs
            Passed to ``Axes.errorbar``.

        Returns
        -------
        ScalingDisplay
        """
        n_panels = 1 if self.ia is None else 2
        fig, axes = panel_axes(
            ax, n_panels, "ScalingDisplay.plot", figsize=(4.5 * n_panels, 3.5),
            message=f"ax must hold {n_panels} axes, got {{got}}.",
        )
        self.lines_ = {}
        for label, summary in self.summaries.items():
            drawn = []
            for panel, key in enumerate(["metric", "ia"][:n_panels]):
                scale, mean, std = summary[key]
                drawn.append(axes[panel].errorbar(scale, mean, yerr=std, marker="o",
                                                  capsize=3, label=label or None,
                                                  **kwargs))
            self.lines_[label] = drawn
        axes[0].set_ylabel(self.metric)
        if n_panels == 2:
            axes[1].set_ylabel(self.ia)
        for a in axes:
            a.set_xlabel("scale (x base)")
            if any(self.summaries):
                a.legend()
        self.axes_ = axes
        self.ax_ = axes[0]
        self.figure_ = fig
        return self
