"""How many items each code of each codebook level holds, sorted."""

from __future__ import annotations

import numpy as np

from skcollapse.plotting._base import display_doc, estimator_name, get_axes
from skcollapse.utils._sklearn_compat import StrOptions, validate_params

__all__ = ["CodeUsageDisplay"]


@display_doc
class CodeUsageDisplay:
    """Code counts per codebook level, sorted from the most used code down.

    A healthy codebook gives flat curves (every code holds about
    ``n_items / K`` items); codebook collapse shows as a few codes holding most
    items and a drop to zero (unused codes) long before rank ``K``. The legend
    gives each level's usage and perplexity (see
    :func:`skcollapse.quantization.code_usage`).

    It is recommended to create a display with :meth:`from_estimator` or
    :meth:`from_codes`; the constructor only stores precomputed data.

    Parameters
    ----------
    counts : list of ndarray of shape (codebook_size,)
        Items per code, one array per level.
    name : str, default=None
        Title of the plot.

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
        One line per level.
    {drawn_attributes}

    See Also
    --------
    skcollapse.quantization.codebook_metrics : The numbers behind the plot.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import CodeUsageDisplay
    >>> codes = np.array([[0, 1], [1, 1], [2, 1], [3, 1]])
    >>> disp = CodeUsageDisplay.from_codes(codes, codebook_size=4)
    >>> [c.tolist() for c in disp.counts]
    [[1, 1, 1, 1], [0, 4, 0, 0]]
    """

    def __init__(self, *, counts, name=None):
        self.counts = counts
        self.name = name

    @validate_params(
        {"ax": "no_validation", "yscale": [StrOptions({"symlog", "linear"})]},
        prefer_skip_nested_validation=True,
    )
    def plot(self, ax=None, *, yscale="symlog", **kwargs):
        """Draw one sorted curve per level.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        yscale : {"symlog", "linear"}, default="symlog"
            ``"symlog"`` is logarithmic above 1 item and keeps unused codes
            visible at 0.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for every level.

        {returns}
        """
        counts = [np.asarray(c) for c in self.counts]
        if not counts or any(c.ndim != 1 or c.size == 0 for c in counts):
            raise ValueError("counts must be a non-empty list of non-empty 1-D arrays.")
        fig, ax = get_axes(ax, "CodeUsageDisplay.plot")
        self.lines_ = []
        for lvl, c in enumerate(counts):
            c = np.sort(c)[::-1]
            p = c[c > 0] / c.sum() if c.sum() > 0 else np.ones(1)
            perplexity = float(np.exp(-np.sum(p * np.log(p))))
            usage = np.count_nonzero(c) / c.size
            (line,) = ax.plot(
                np.arange(1, c.size + 1),
                c,
                drawstyle="steps-mid",
                label=f"level {lvl}: usage {usage:.2f}, perplexity {perplexity:.1f}",
                **kwargs,
            )
            self.lines_.append(line)
        if yscale == "symlog":
            ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel("code rank (most used first)")
        ax.set_ylabel("items per code")
        if self.name:
            ax.set_title(self.name)
        ax.legend(fontsize="small")
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    def from_codes(cls, codes, codebook_size, *, name=None, ax=None, **kwargs):
        """Plot the code counts of semantic IDs.

        Parameters
        ----------
        codes : array-like of shape (n_items, n_levels)
            Integer codes, e.g. a quantizer's ``transform`` output.
        codebook_size : int
            ``K``, the codes per level.
        name : str, default=None
            Title of the plot.
        {draw_params}

        {returns}
        """
        from skcollapse.utils._validation import check_codes

        if not isinstance(codebook_size, (int, np.integer)) or codebook_size < 1:
            raise ValueError(
                f"codebook_size must be a positive int, got {codebook_size!r}."
            )
        arr = check_codes(codes, codebook_size)
        counts = [np.bincount(col, minlength=codebook_size) for col in arr.T]
        return cls(counts=counts, name=name).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, quantizer, X, *, name=None, ax=None, **kwargs):
        """Plot the code counts of a fitted quantizer on the items ``X``.

        Parameters
        ----------
        quantizer : ResidualKMeans or RQVAE
            Fitted; read through ``transform``, ``n_levels`` and
            ``codebook_size`` (a deduplication level is left out).
        X : array-like of shape (n_items, n_features)
            Item embeddings.
        name : str, default=None
            Title of the plot; the class name by default.
        {draw_params}

        {returns}
        """
        for attr in ("transform", "n_levels", "codebook_size"):
            if not hasattr(quantizer, attr):
                raise TypeError(
                    f"quantizer must be a fitted quantizer with transform, n_levels "
                    f"and codebook_size; {type(quantizer).__name__} has no {attr}."
                )
        codes = quantizer.transform(X)[:, : quantizer.n_levels]
        return cls.from_codes(
            codes,
            quantizer.codebook_size,
            name=estimator_name(quantizer) if name is None else name,
            ax=ax,
            **kwargs,
        )
