"""Heatmaps of sub-embedding IA and bars of embedding-set diversity (CTR models)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from skcollapse.metrics import embedding_set_diversity, sub_embedding_ia
from skcollapse.plotting._base import (
    check_matplotlib_support,
    display_doc,
    estimator_name,
    panel_axes,
)


def _as_mapping(estimators):
    if isinstance(estimators, Mapping):
        if not estimators:
            raise ValueError("estimators is empty.")
        return dict(estimators)
    return {estimator_name(estimators): estimators}


class SubEmbeddingIADisplay:
    """Heatmap of ``IA(E_i->j)`` per model, side by side with one colour scale.

    Row ``i``, column ``j``: the information abundance of field ``i``'s table as
    seen by field ``j``'s interaction (:func:`skcollapse.metrics.
    sub_embedding_ia`). Guo et al. (ICML 2024) draw it for DCNv2 to show that
    the cross weights compress sub-embeddings; drawing an SE model next to its
    ME counterpart shows whether ME keeps them richer.

    Create it with :meth:`from_estimator` or :meth:`from_estimators`.

    Parameters
    ----------
    matrices : dict of str -> ndarray of shape (n_fields, n_fields)
        Per panel, the IA matrix.
    field_names : list of str or None
        Tick labels.

    Attributes
    ----------
    images_ : list of matplotlib AxesImage
    axes_ : ndarray of matplotlib Axes
    ax_ : matplotlib Axes
        The first panel.
    colorbar_ : matplotlib Colorbar
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import SubEmbeddingIADisplay
    >>> disp = SubEmbeddingIADisplay(matrices={"SE": np.ones((3, 3)),
    ...                                        "ME": 2 * np.ones((3, 3))},
    ...                              field_names=["a", "b", "c"]).plot()
    >>> len(disp.images_)
    2
    """

    def __init__(self, *, matrices, field_names=None):
        self.matrices = matrices
        self.field_names = field_names

    @classmethod
    def from_estimator(cls, estimator, *, embedding_set=None, sets="mean",
                       name=None, ax=None, **kwargs):
        """One fitted model's heatmap (see :meth:`from_estimators`)."""
        label = name or estimator_name(estimator)
        return cls.from_estimators({label: estimator}, embedding_set=embedding_set,
                                   sets=sets, ax=ax, **kwargs)

    @classmethod
    def from_estimators(cls, estimators, *, embedding_set=None, sets="mean",
                        ax=None, **kwargs):
        """Heatmaps of several fitted models, e.g. ``{"SE": se, "ME": me}``.

        Parameters
        ----------
        estimators : dict of str -> fitted CTR classifier, or one classifier
        embedding_set : int or None, default=None
            Passed to :func:`~skcollapse.metrics.sub_embedding_ia`.
        sets : {"mean", "concat"}, default="mean"
            Passed to :func:`~skcollapse.metrics.sub_embedding_ia`: with
            ``embedding_set=None``, average the sets' matrices, or put the sets
            side by side (``"concat"``: an ME model of ``M x K`` then has the
            width of the SE model of size ``M*K`` it is drawn beside).
        ax : array of matplotlib Axes or None, default=None
        **kwargs
            Passed to ``Axes.imshow``.
        """
        estimators = _as_mapping(estimators)
        matrices = {k: sub_embedding_ia(e, embedding_set=embedding_set, sets=sets)
                    for k, e in estimators.items()}
        first = next(iter(estimators.values()))
        names = list(getattr(first, "field_names_", [])) or None
        return cls(matrices=matrices, field_names=names).plot(ax=ax, **kwargs)

    def plot(self, ax=None, **kwargs):
        """Draw the heatmaps with a shared colour scale."""
        n = len(self.matrices)
        fig, axes = panel_axes(
            ax, n, "SubEmbeddingIADisplay.plot", figsize=(3.8 * n + 1, 3.5),
            message=f"ax must hold {n} axes, got {{got}}.",
        )
        values = np.concatenate([np.ravel(m) for m in self.matrices.values()])
        kwargs.setdefault("vmin", float(values.min()))
        kwargs.setdefault("vmax", float(values.max()))
        kwargs.setdefault("cmap", "viridis")
        self.images_ = []
        for a, (label, mat) in zip(axes, self.matrices.items()):
            im = a.imshow(np.asarray(mat), **kwargs)
            self.images_.append(im)
            a.set_title(label)
            a.set_xlabel("field j (interaction)")
            a.set_ylabel("field i (table)")
            if self.field_names is not None and len(self.field_names) <= 40:
                ticks = np.arange(len(self.field_names))
                a.set_xticks(ticks, self.field_names, rotation=90, fontsize=7)
                a.set_yticks(ticks, self.field_names, fontsize=7)
        self.colorbar_ = fig.colorbar(self.images_[0], ax=list(axes),
                                      label="IA(E_i->j)")
        self.axes_ = axes
        self.ax_ = axes[0]
        self.figure_ = fig
        return self


@display_doc
class EmbeddingSetDiversityDisplay:
    """Per-field diversity of the embedding sets of multi-embedding models (bars).

    The bar of field ``f`` is ``1 -`` the mean principal-angle cosine between
    its sets' tables (:func:`skcollapse.metrics.embedding_set_diversity`): 0
    when the sets span the same subspace (redundant), near 1 when they differ.

    Parameters
    ----------
    diversities : dict of str -> ndarray of shape (n_fields,)
    field_names : list of str or None

    Attributes
    ----------
    bars_ : dict of str -> matplotlib BarContainer
    {drawn_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import EmbeddingSetDiversityDisplay
    >>> disp = EmbeddingSetDiversityDisplay(
    ...     diversities={"ME-4x10": np.array([0.9, 0.4])}, field_names=["a", "b"]
    ... ).plot()
    >>> list(disp.bars_)
    ['ME-4x10']
    """

    def __init__(self, *, diversities, field_names=None):
        self.diversities = diversities
        self.field_names = field_names

    @classmethod
    def from_estimators(cls, estimators, *, ax=None, **kwargs):
        """Bars for one or several fitted multi-embedding models."""
        estimators = _as_mapping(estimators)
        div = {k: embedding_set_diversity(e) for k, e in estimators.items()}
        first = next(iter(estimators.values()))
        names = list(getattr(first, "field_names_", [])) or None
        return cls(diversities=div, field_names=names).plot(ax=ax, **kwargs)

    def plot(self, ax=None, **kwargs):
        """Draw grouped bars, one group per field."""
        plt = check_matplotlib_support("EmbeddingSetDiversityDisplay.plot")
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        else:
            fig = ax.figure
        n_models = len(self.diversities)
        width = 0.8 / n_models
        self.bars_ = {}
        for k, (label, div) in enumerate(self.diversities.items()):
            x = np.arange(len(div)) + k * width
            self.bars_[label] = ax.bar(x, div, width=width, label=label, **kwargs)
        n_fields = len(next(iter(self.diversities.values())))
        ax.set_xticks(np.arange(n_fields) + 0.4 - width / 2,
                      self.field_names or [str(i) for i in range(n_fields)],
                      rotation=90, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("set diversity (1 - mean cos)")
        ax.legend()
        self.ax_ = ax
        self.figure_ = fig
        return self
