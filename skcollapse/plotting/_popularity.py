"""Row norm against popularity, by popularity bucket, with the bucket spectra."""

from __future__ import annotations

import numpy as np

from skcollapse.metrics import (
    norm_popularity_correlation,
    popularity_alignment,
    popularity_bucket_metrics,
    popularity_buckets,
    table_popularity,
)
from skcollapse.plotting._base import (
    DRAW_CONSTRAINTS,
    DRAWN_ROWS_CONSTRAINTS,
    TABLE_POPULARITY_CONSTRAINTS,
    as_1d_float,
    display_doc,
    drawn_rows,
    estimator_name,
    get_axes,
    to_numpy,
)
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    validate_params,
)

__all__ = ["PopularityCollapseDisplay"]

def _row_norms(embeddings, rows):
    """L2 norms of the drawn ``rows`` of a table (numpy, torch or dask)."""
    if type(embeddings).__module__.startswith("torch"):
        import torch

        index = torch.as_tensor(rows, device=embeddings.device)
        block = to_numpy(embeddings[index])
    else:
        block = np.asarray(embeddings[rows] if hasattr(embeddings, "shape")
                           else np.asarray(embeddings)[rows])
    return np.linalg.norm(block.astype(np.float64, copy=False), axis=1)


#: One colour per bucket, head first (matplotlib's tab10 blue, orange, green...).
_BUCKET_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9")


@display_doc
class PopularityCollapseDisplay:
    """Each row's norm against its popularity, coloured by popularity bucket.

    Popularity-driven collapse shows as norms that grow with popularity (the
    correlation in the title) and a tail whose effective rank is far below the
    head's (the legend gives each bucket's erank and IA). The title also gives
    the alignment of the table's top singular direction with popularity.

    It is recommended to create a display with :meth:`from_estimator` or
    :meth:`from_embeddings`; the constructor only stores precomputed data.

    Parameters
    ----------
    popularity : ndarray of shape (n_rows,)
        Training interactions of each row.
    norms : ndarray of shape (n_rows,)
        L2 norm of each row.
    buckets : ndarray of shape (n_rows,)
        Bucket index of each row (0 for the head).
    bucket_metrics : dict of str to dict
        Output of :func:`~skcollapse.metrics.popularity_bucket_metrics`, one
        entry per bucket in bucket order.
    norm_correlation : float
        :func:`~skcollapse.metrics.norm_popularity_correlation` of the table.
    alignment : float
        :func:`~skcollapse.metrics.popularity_alignment` of the table.
    name : str, default=None
        Title of the plot.

    Attributes
    ----------
    scatters_ : list of matplotlib PathCollection
        One scatter per bucket.
    {drawn_attributes}

    See Also
    --------
    skcollapse.metrics.popularity_collapse : The numbers behind the plot.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import PopularityCollapseDisplay
    >>> rng = np.random.default_rng(0)
    >>> pop = rng.zipf(2.0, size=300).astype(float)
    >>> E = rng.normal(size=(300, 8)) * np.log1p(pop)[:, None]  # norm ~ log pop
    >>> disp = PopularityCollapseDisplay.from_embeddings(E, pop)
    >>> list(disp.bucket_metrics)
    ['head', 'torso', 'tail']
    >>> disp.norm_correlation > 0.8
    True
    """

    def __init__(
        self, *, popularity, norms, buckets, bucket_metrics, norm_correlation,
        alignment, name=None,
    ):
        self.popularity = popularity
        self.norms = norms
        self.buckets = buckets
        self.bucket_metrics = bucket_metrics
        self.norm_correlation = norm_correlation
        self.alignment = alignment
        self.name = name

    def _check_data(self):
        pop = as_1d_float(self.popularity, name="popularity")
        norms = as_1d_float(self.norms, name="norms")
        buckets = np.asarray(self.buckets)
        if not (pop.shape == norms.shape == buckets.shape):
            raise ValueError(
                f"popularity, norms and buckets must have the same length, got "
                f"{pop.shape[0]}, {norms.shape[0]} and {buckets.shape[0]}."
            )
        if len(self.bucket_metrics) < int(buckets.max()) + 1:
            raise ValueError(
                f"bucket_metrics has {len(self.bucket_metrics)} entries but buckets "
                f"go up to {int(buckets.max())}."
            )
        return pop, norms, buckets

    @validate_params(
        {
            "ax": "no_validation",
            "xscale": [StrOptions({"symlog", "linear"})],
            "legend": ["boolean"],
        },
        prefer_skip_nested_validation=True,
    )
    def plot(self, ax=None, *, xscale="symlog", legend=True, **kwargs):
        """Draw the scatter.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        xscale : {"symlog", "linear"}, default="symlog"
            Scale of the popularity axis (``"symlog"`` is logarithmic above 1
            and keeps rows without interactions at 0).
        legend : bool, default=True
            Draw the legend with each bucket's size, erank and IA.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.scatter` for every bucket.

        {returns}
        """
        pop, norms, buckets = self._check_data()
        fig, ax = get_axes(ax, "PopularityCollapseDisplay.plot")
        kwargs.setdefault("s", 8)
        kwargs.setdefault("alpha", 0.6)
        kwargs.setdefault("linewidths", 0)
        self.scatters_ = []
        for k, (bucket, values) in enumerate(self.bucket_metrics.items()):
            mask = buckets == k
            label = f"{bucket} ({int(mask.sum())} rows)"
            parts = [f"{a} {values[a]:.2f}" for a in ("erank", "ia") if a in values]
            if parts:
                label += ": " + ", ".join(parts)
            self.scatters_.append(
                ax.scatter(
                    pop[mask], norms[mask], label=label,
                    color=_BUCKET_COLORS[k % len(_BUCKET_COLORS)], **kwargs,
                )
            )
        if xscale == "symlog":
            ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("popularity (training interactions)")
        ax.set_ylabel("row L2 norm")
        title = (
            f"corr(norm, log pop) {self.norm_correlation:.2f}, "
            f"top direction vs pop {self.alignment:.2f}"
        )
        ax.set_title(f"{self.name}\n{title}" if self.name else title)
        if legend:
            ax.legend(loc="best", fontsize="small")
        ax.grid(True, alpha=0.3)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    @validate_params(
        {
            "embeddings": "no_validation",
            "popularity": "no_validation",
            "bucket_edges": ["array-like"],
            "by": [StrOptions({"items", "interactions"})],
            **DRAWN_ROWS_CONSTRAINTS,
            **DRAW_CONSTRAINTS,
        },
        prefer_skip_nested_validation=False,  # plot(**kwargs) checks its own
    )
    def from_embeddings(
        cls,
        embeddings,
        popularity,
        *,
        bucket_edges=(0.2, 0.8),
        by="items",
        max_points=5000,
        random_state=0,
        name=None,
        ax=None,
        **kwargs,
    ):
        """Plot one table against the popularity of its rows.

        Parameters
        ----------
        embeddings : array-like or torch.Tensor of shape (n_rows, n_features)
            The table (one row per item, or user).
        popularity : array-like of shape (n_rows,)
            Training interactions of each row
            (:func:`~skcollapse.metrics.popularity_counts`).
        bucket_edges : array-like of float, default=(0.2, 0.8)
            Bucket edges; see :func:`~skcollapse.metrics.popularity_bucket_metrics`.
        by : {"items", "interactions"}, default="items"
            Whether the edges are fractions of rows or of interactions.
        {drawn_rows_params}
        name : str, default=None
            Title.
        {draw_params}

        {returns}
        """
        # the metrics validate the table, the counts and the edges
        metrics = popularity_bucket_metrics(
            embeddings, popularity, bucket_edges=bucket_edges, by=by
        )
        corr = norm_popularity_correlation(embeddings, popularity)
        align = popularity_alignment(embeddings, popularity)
        buckets = popularity_buckets(popularity, bucket_edges=bucket_edges, by=by)
        pop = as_1d_float(to_numpy(popularity), name="popularity")
        keep = drawn_rows(pop.shape[0], max_points, random_state)
        norms = _row_norms(embeddings, keep)
        pop, buckets = pop[keep], buckets[keep]
        disp = cls(
            popularity=pop, norms=norms, buckets=buckets, bucket_metrics=metrics,
            norm_correlation=corr, alignment=align, name=name,
        )
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    @validate_params(TABLE_POPULARITY_CONSTRAINTS, prefer_skip_nested_validation=False)
    def from_estimator(
        cls, estimator, X=None, *, table="item", popularity=None, name=None, ax=None,
        **kwargs,
    ):
        """Plot one table of a fitted estimator against its training popularity.

        Parameters
        ----------
        estimator : estimator
            Fitted model with ``get_embeddings() -> dict[str, ndarray]`` (also
            :class:`skcollapse.adapters.EmbeddingTables` around a model trained
            elsewhere).
        X : array-like of shape (n_interactions, 2), default=None
            Training ``(user, item)`` pairs; popularity is counted from them
            through the estimator's id vocabulary. Without ``X`` and
            ``popularity``, a CF estimator's ``item_popularity_`` is used.
        table : str, default="item"
            Which table of ``get_embeddings()``.
        popularity : array-like of shape (n_rows,), default=None
            Explicit counts; take precedence over ``X``.
        name : str, default=None
            Title; ``"<EstimatorClass> <table>"`` by default.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs : dict
            Passed to :meth:`from_embeddings` (``bucket_edges``, ``by``,
            ``max_points``, ...).

        {returns}
        """
        if not callable(getattr(estimator, "get_embeddings", None)):
            raise TypeError(
                "estimator must expose get_embeddings() -> dict[str, ndarray]; for "
                "a bare table use PopularityCollapseDisplay.from_embeddings, for a "
                "model trained elsewhere wrap it in "
                "skcollapse.adapters.EmbeddingTables."
            )
        E, pop = table_popularity(estimator, X, popularity=popularity, table=table)
        if name is None:
            name = f"{estimator_name(estimator)} {table}"
        return cls.from_embeddings(E, pop, name=name, ax=ax, **kwargs)
