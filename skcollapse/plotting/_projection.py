"""2-D PCA projection of an embedding table, coloured by popularity."""

from __future__ import annotations

import numpy as np

from skcollapse.metrics import get_embedding_tables, table_popularity
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
from skcollapse.utils._sklearn_compat import validate_params
from skcollapse.utils._validation import check_embedding_matrix

_CHUNK_ROWS = 65536


def _pca_2d(E, *, center, row_normalize):
    """Project every row of ``E`` on its two leading principal axes.

    The ``d x d`` scatter matrix is accumulated in float64 over row chunks, so a
    large table is never copied whole. Returns the ``(n, 2)`` projection and the
    fraction of the total variance (or of the total energy when ``center=False``)
    carried by each of the two axes.
    """
    n, d = E.shape

    def rows(start):
        block = np.asarray(E[start : start + _CHUNK_ROWS], dtype=np.float64)
        if row_normalize:
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            block = np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)
        return block

    mean = np.zeros(d)
    if center:
        for start in range(0, n, _CHUNK_ROWS):
            mean += rows(start).sum(axis=0)
        mean /= n
    scatter = np.zeros((d, d))
    for start in range(0, n, _CHUNK_ROWS):
        block = rows(start) - mean
        scatter += block.T @ block
    eigval, eigvec = np.linalg.eigh(scatter)
    order = np.argsort(eigval)[::-1]
    eigval = np.clip(eigval[order], 0.0, None)
    eigvec = eigvec[:, order]
    n_comp = min(2, d)
    components = eigvec[:, :n_comp]
    # Deterministic signs (as sklearn's svd_flip): largest loading positive.
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(n_comp)])
    signs[signs == 0] = 1.0
    components = components * signs
    projection = np.empty((n, 2))
    for start in range(0, n, _CHUNK_ROWS):
        projection[start : start + _CHUNK_ROWS, :n_comp] = (
            rows(start) - mean
        ) @ components
    if n_comp == 1:
        projection[:, 1] = 0.0
    total = eigval.sum()
    ratio = np.zeros(2)
    if total > 0:
        ratio[:n_comp] = eigval[:n_comp] / total
    return projection, ratio


@display_doc
class EmbeddingProjectionDisplay:
    """Scatter of an embedding table projected on its two principal axes.

    Rows are projected on the two leading principal axes of the table and
    coloured by popularity (number of interactions). Under *complete* collapse
    the points fall on a line or a point: the first axis carries nearly all the
    variance, which the axis labels report.

    It is recommended to create a display with :meth:`from_estimator` or
    :meth:`from_embeddings`.

    Parameters
    ----------
    projection : ndarray of shape (n_samples, 2)
        Coordinates of each plotted row.
    popularity : ndarray of shape (n_samples,) or None
        Colour of each row (e.g. its number of interactions); one colour if None.
    explained_variance_ratio : ndarray of shape (2,)
        Share of the variance carried by each axis.
    name : str, default=None
        Title of the plot.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The points.
    colorbar_ : matplotlib Colorbar or None
        Popularity colour bar.
    {drawn_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import EmbeddingProjectionDisplay
    >>> rng = np.random.default_rng(0)
    >>> collapsed = np.outer(rng.normal(size=300), rng.normal(size=8))
    >>> disp = EmbeddingProjectionDisplay.from_embeddings(collapsed)
    >>> round(float(disp.explained_variance_ratio[0]), 3)
    1.0
    """

    def __init__(self, *, projection, popularity, explained_variance_ratio, name=None):
        self.projection = projection
        self.popularity = popularity
        self.explained_variance_ratio = explained_variance_ratio
        self.name = name

    def plot(
        self, ax=None, *, cmap="viridis", colorbar=True, equal_aspect=True, **kwargs
    ):
        """Draw the scatter plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        cmap : str or Colormap, default="viridis"
            Colour map for popularity.
        colorbar : bool, default=True
            Add a colour bar when popularity is known.
        equal_aspect : bool, default=True
            Use the same scale on both axes, so that the shape of the cloud (a
            line under complete collapse) is not hidden by autoscaling.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.scatter`.

        {returns}
        """
        projection = np.asarray(self.projection, dtype=np.float64)
        if projection.ndim != 2 or projection.shape[1] != 2 or projection.shape[0] == 0:
            raise ValueError(
                f"projection must have shape (n_samples, 2), got {projection.shape}."
            )
        fig, ax = get_axes(ax, "EmbeddingProjectionDisplay.plot")
        from matplotlib.colors import SymLogNorm

        kwargs.setdefault("s", 8)
        kwargs.setdefault("alpha", 0.8)
        kwargs.setdefault("linewidths", 0)
        self.colorbar_ = None
        if self.popularity is None:
            self.scatter_ = ax.scatter(projection[:, 0], projection[:, 1], **kwargs)
        else:
            pop = as_1d_float(self.popularity, name="popularity")
            if pop.shape[0] != projection.shape[0]:
                raise ValueError(
                    f"popularity has {pop.shape[0]} entries but projection has "
                    f"{projection.shape[0]} rows."
                )
            order = np.argsort(pop, kind="stable")  # popular points drawn on top
            norm = SymLogNorm(
                linthresh=1.0, vmin=min(0.0, pop.min()), vmax=max(pop.max(), 1.0)
            )
            self.scatter_ = ax.scatter(
                projection[order, 0],
                projection[order, 1],
                c=pop[order],
                cmap=cmap,
                norm=norm,
                **kwargs,
            )
            if colorbar:
                self.colorbar_ = fig.colorbar(self.scatter_, ax=ax)
                self.colorbar_.set_label("popularity (interactions)")
        ratio = np.asarray(self.explained_variance_ratio, dtype=np.float64)
        ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.3g}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.3g}% of variance)")
        if equal_aspect:
            # Same scale on both axes, so that a collapsed table looks like the
            # line it is instead of being stretched back into a cloud.
            ax.set_aspect("equal", adjustable="datalim")
        if self.name:
            ax.set_title(self.name)
        ax.grid(True, alpha=0.3)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    @validate_params(
        {
            "embeddings": "no_validation",
            "popularity": "no_validation",
            "center": ["boolean"],
            "row_normalize": ["boolean"],
            **DRAWN_ROWS_CONSTRAINTS,
            **DRAW_CONSTRAINTS,
        },
        prefer_skip_nested_validation=False,  # plot(**kwargs) checks its own
    )
    def from_embeddings(
        cls,
        embeddings,
        *,
        popularity=None,
        center=True,
        row_normalize=False,
        max_points=5000,
        random_state=0,
        name=None,
        ax=None,
        **kwargs,
    ):
        """Project an embedding table and plot it.

        Parameters
        ----------
        embeddings : array-like of shape (n_samples, n_features)
            The table; torch tensors are moved to the CPU.
        popularity : array-like of shape (n_samples,), default=None
            Colour of each row, e.g. its number of interactions.
        center : bool, default=True
            Center the table before finding the axes (ordinary PCA). With
            ``center=False`` the axes are the leading right singular vectors.
        row_normalize : bool, default=False
            L2-normalise rows first (shows directions only).
        {drawn_rows_params}
        name : str, default=None
            Title.
        {draw_params}

        {returns}
        """
        E, kind = check_embedding_matrix(to_numpy(embeddings))
        if kind == "dask":
            E = E.compute()
        n = E.shape[0]
        if popularity is not None:
            popularity = as_1d_float(popularity, name="popularity")
            if popularity.shape[0] != n:
                raise ValueError(
                    f"popularity has {popularity.shape[0]} entries but embeddings has "
                    f"{n} rows."
                )
        projection, ratio = _pca_2d(E, center=center, row_normalize=row_normalize)
        keep = drawn_rows(n, max_points, random_state)
        if keep.size < n:
            projection = projection[keep]
            if popularity is not None:
                popularity = popularity[keep]
        disp = cls(
            projection=projection,
            popularity=popularity,
            explained_variance_ratio=ratio,
            name=name,
        )
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    @validate_params(TABLE_POPULARITY_CONSTRAINTS, prefer_skip_nested_validation=False)
    def from_estimator(
        cls,
        estimator,
        X=None,
        *,
        table="item",
        popularity=None,
        name=None,
        ax=None,
        **kwargs,
    ):
        """Project one embedding table of a fitted estimator.

        Parameters
        ----------
        estimator : estimator
            Fitted model with ``get_embeddings() -> dict[str, ndarray]``.
        X : array-like or DataFrame of shape (n_interactions, 2), default=None
            Interaction pairs (user id, item id), with the ids the estimator was
            fitted on (strings, integers with gaps...); when given and ``table``
            is ``"user"`` or ``"item"``, popularity is the number of
            interactions of each row, counted through the estimator's id
            vocabulary as :func:`~skcollapse.metrics.table_popularity` counts
            it. Without a vocabulary (no ``item_ids_`` / ``user_ids_``, e.g.
            :class:`skcollapse.adapters.EmbeddingTables`) the ids are the row
            numbers.
        table : str, default="item"
            Which table of ``get_embeddings()`` to project.
        popularity : array-like of shape (n_rows,), default=None
            Explicit colours; takes precedence over ``X``.
        name : str, default=None
            Title; ``"<EstimatorClass> <table>"`` by default.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs : dict
            Passed to :meth:`from_embeddings` (``center``, ``max_points``, ...).

        {returns}
        """
        if popularity is None and X is not None:
            # counted as the metrics count them: through the estimator's id
            # vocabulary (item_ids_ / user_ids_), so row r gets the count of the
            # id the estimator keeps in row r, whatever the ids are
            E, popularity = table_popularity(estimator, X, table=table)
        else:
            E = get_embedding_tables(estimator, table)
        if name is None:
            name = f"{estimator_name(estimator)} {table}"
        return cls.from_embeddings(E, popularity=popularity, name=name, ax=ax, **kwargs)
