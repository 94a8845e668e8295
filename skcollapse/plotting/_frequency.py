"""How often each item is recommended, against its popularity rank."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from skcollapse.metrics import recommendation_frequency
from skcollapse.plotting._base import (
    DRAW_CONSTRAINTS,
    as_1d_float,
    display_doc,
    estimator_name,
    get_axes,
)
from skcollapse.utils._docstrings import IMPLICIT_569
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_params,
)

__all__ = ["RecommendationFrequencyDisplay", "binned_frequency"]


def binned_frequency(popularity_rank, counts, n_bins=20):
    """Mean count per log-spaced popularity-rank bin.

    The ranks ``1..n_items`` are cut at ``geomspace(1, n_items + 1, n_bins + 1)``
    (rounded down, duplicates dropped), so the head gets narrow bins and the
    tail wide ones. Empty bins are dropped.

    Returns
    -------
    ranks : ndarray
        Mean popularity rank of the items of each bin.
    means : ndarray
        Mean count of those items.
    """
    rank = np.asarray(popularity_rank, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    top = rank.max()
    edges = np.unique(np.floor(np.geomspace(1.0, top + 1.0, n_bins + 1)))
    edges[-1] = top + 1.0
    which = np.searchsorted(edges, rank, side="right") - 1
    ranks, means = [], []
    for k in range(edges.shape[0] - 1):
        mask = which == k
        if mask.any():
            ranks.append(rank[mask].mean())
            means.append(counts[mask].mean())
    return np.asarray(ranks), np.asarray(means)


#: the parameters of the top lists counted (``from_scores`` and ``from_estimator``)
_TOP_LIST_CONSTRAINTS = {
    "X": "no_validation",
    "n": [int_interval(1, None, closed="left")],
    "popularity": "no_validation",
    "users": "no_validation",
    "filter_already_liked_items": ["boolean"],
}

@display_doc(implicit_569=IMPLICIT_569)
class RecommendationFrequencyDisplay:
    """How many users' top-``n`` lists hold each item, by its popularity rank.

    One point per item: its training-popularity rank (1 = most popular, log
    axis) and the number of users whose top-``n`` list holds it, with the mean
    over log-spaced rank bins as a line. The dashed line marks rank ``d``, the
    embedding dimension: ``implicit``'s issue #569 reports that with matrix
    factorisation the counts do not fall from rank 1 but peak near rank
    ``d``, and that the peak moves with ``d``. A curve that falls from rank 1
    recommends the head; a peak near ``d`` with a dip before it says the
    factors spend themselves on the ~``d`` most popular items (mostly already
    seen, so filtered); a curve that stays high far into the tail spreads the
    recommendations.

    It is recommended to create a display with :meth:`from_estimator` or
    :meth:`from_scores`; the constructor only stores precomputed data.

    Parameters
    ----------
    counts : ndarray of shape (n_items,)
        Users whose top-``n`` list holds each item
        (:func:`~skcollapse.metrics.recommendation_frequency`).
    popularity_rank : ndarray of shape (n_items,)
        1-based training-popularity rank of each item.
    n : int
        Length of the top lists (for the axis label).
    n_factors : int, default=None
        Embedding dimension, marked as a vertical line; None draws none.
    name : str, default=None
        Title of the plot.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The items.
    line_ : matplotlib Line2D
        Mean count per log-spaced rank bin.
    factors_line_ : matplotlib Line2D or None
        The mark at rank ``n_factors``.
    peak_rank_ : int
        Popularity rank of the most recommended item (ties: the most popular).
    binned_peak_rank_ : float
        Mean rank of the bin with the largest mean count.
    {drawn_attributes}

    See Also
    --------
    skcollapse.metrics.recommendation_frequency : The counts behind the plot.
    PopularityCollapseDisplay : Row norms against popularity.

    References
    ----------
    {implicit_569}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import RecommendationFrequencyDisplay
    >>> pop = np.arange(20, 0, -1).astype(float)     # item 0 most popular
    >>> scores = np.tile(pop, (5, 1))                 # everyone ranks by popularity
    >>> X = np.array([[u, i] for u in range(5) for i in range(4)])  # seen: top 4
    >>> disp = RecommendationFrequencyDisplay.from_scores(
    ...     scores, X, n=3, popularity=pop, n_factors=4)
    >>> disp.peak_rank_
    5
    """

    def __init__(self, *, counts, popularity_rank, n, n_factors=None, name=None):
        self.counts = counts
        self.popularity_rank = popularity_rank
        self.n = n
        self.n_factors = n_factors
        self.name = name

    def _check_data(self):
        counts = as_1d_float(self.counts, name="counts")
        rank = as_1d_float(self.popularity_rank, name="popularity_rank")
        if counts.shape != rank.shape:
            raise ValueError(
                f"counts and popularity_rank must have the same length, got "
                f"{counts.shape[0]} and {rank.shape[0]}."
            )
        if (counts < 0).any():
            raise ValueError("counts must be non-negative.")
        if (rank < 1).any():
            raise ValueError("popularity_rank must be 1-based (1 = most popular).")
        if self.n_factors is not None and (
            not isinstance(self.n_factors, Integral) or self.n_factors < 1
        ):
            raise ValueError(
                f"n_factors must be a positive int or None, got {self.n_factors!r}."
            )
        return counts, rank

    @validate_params(
        {
            "ax": "no_validation",
            "xscale": [StrOptions({"log", "linear"})],
            "yscale": [StrOptions({"linear", "symlog"})],
            "n_bins": [int_interval(1, None, closed="left")],
            "legend": ["boolean"],
        },
        prefer_skip_nested_validation=True,
    )
    def plot(self, ax=None, *, xscale="log", yscale="linear", n_bins=20, legend=True,
             **kwargs):
        """Draw the items, the binned mean and the mark at rank ``n_factors``.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        xscale : {"log", "linear"}, default="log"
            Scale of the popularity-rank axis.
        yscale : {"linear", "symlog"}, default="linear"
            Scale of the count axis (``"symlog"`` keeps zero counts visible
            among counts of several decades).
        n_bins : int, default=20
            Log-spaced rank bins of the mean line (:func:`binned_frequency`).
        legend : bool, default=True
            Draw the legend.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.scatter`.

        {returns}
        """
        counts, rank = self._check_data()
        fig, ax = get_axes(ax, "RecommendationFrequencyDisplay.plot")
        kwargs.setdefault("s", 6)
        kwargs.setdefault("alpha", 0.45)
        kwargs.setdefault("linewidths", 0)
        kwargs.setdefault("color", "C0")
        self.scatter_ = ax.scatter(rank, counts, label="one item", **kwargs)
        b_rank, b_mean = binned_frequency(rank, counts, n_bins)
        (self.line_,) = ax.plot(b_rank, b_mean, color="C1", lw=2,
                                label="mean over log-spaced rank bins")
        self.factors_line_ = None
        if self.n_factors is not None:
            self.factors_line_ = ax.axvline(
                self.n_factors, color="C3", ls="--", lw=1.2,
                label=f"rank = embedding dim ({self.n_factors})",
            )
        self.peak_rank_ = int(rank[counts == counts.max()].min())
        self.binned_peak_rank_ = float(b_rank[int(np.argmax(b_mean))])
        ax.set_xscale(xscale)
        if yscale == "symlog":
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlim(0.8 if xscale == "log" else 0, rank.max() * 1.1)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("training popularity rank (1 = most popular)")
        ax.set_ylabel(f"users with the item in their top {self.n}")
        summary = (f"most recommended item at rank {self.peak_rank_}; binned "
                   f"peak at rank {self.binned_peak_rank_:.0f}")
        ax.set_title(f"{self.name}\n{summary}" if self.name else summary,
                     fontsize="medium")
        if legend:
            ax.legend(loc="best", fontsize="small")
        ax.grid(True, which="major", alpha=0.3)
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    @validate_params(
        {
            "scores": "no_validation",
            **_TOP_LIST_CONSTRAINTS,
            "n_factors": [int_interval(1, None, closed="left"), None],
            **DRAW_CONSTRAINTS,
        },
        prefer_skip_nested_validation=False,  # plot(**kwargs) checks its own
    )
    def from_scores(cls, scores, X=None, *, n=10, popularity=None, users=None,
                    filter_already_liked_items=True, n_factors=None, name=None,
                    ax=None, **kwargs):
        """Plot the top-``n`` counts of a dense score matrix.

        Parameters
        ----------
        scores : array-like or torch.Tensor of shape (n_users, n_items)
            Scores of every (user, item); ``-inf`` is never recommended.
        X : array-like of shape (n_interactions, 2), default=None
            Training pairs as row and column numbers of ``scores``: the
            popularity and (``filter_already_liked_items``) the seen items.
        n : int, default=10
            Length of each top list.
        popularity : array-like of shape (n_items,), default=None
            Training counts; take precedence over ``X`` for the ranks.
        users : array-like of int, default=None
            Rows to count (all by default).
        filter_already_liked_items : bool, default=True
            Leave the pairs of ``X`` out of the lists.
        n_factors : int, default=None
            Embedding dimension to mark (e.g. the rank of the factorisation).
        name : str, default=None
            Title.
        {draw_params}

        {returns}
        """
        res = recommendation_frequency(
            scores, X, n=n, popularity=popularity, users=users,
            filter_already_liked_items=filter_already_liked_items,
        )
        disp = cls(counts=res.counts, popularity_rank=res.popularity_rank, n=n,
                   n_factors=n_factors, name=name)
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    @validate_params(
        {
            "estimator": "no_validation",
            **_TOP_LIST_CONSTRAINTS,
            "n_factors": [StrOptions({"auto"}), int_interval(1, None, closed="left"),
                          None],
            **DRAW_CONSTRAINTS,
        },
        prefer_skip_nested_validation=False,
    )
    def from_estimator(cls, estimator, X=None, *, n=10, popularity=None, users=None,
                       filter_already_liked_items=True, n_factors="auto", name=None,
                       ax=None, **kwargs):
        """Plot the top-``n`` counts of a fitted recommender.

        Parameters
        ----------
        estimator : fitted recommender
            Anything with ``recommend(user_ids, n=..., filter_already_liked_items=...)``
            and ``n_items_`` (every skcollapse CF estimator).
        X : array-like of shape (n_interactions, 2), default=None
            Training ``(user, item)`` pairs for the popularity, counted through
            the estimator's vocabulary; without it the estimator's
            ``item_popularity_``.
        n : int, default=10
            Length of each top list.
        popularity : array-like of shape (n_items,), default=None
            Explicit counts; take precedence over ``X``.
        users : array-like of ids, default=None
            Users whose lists are counted (e.g. the test users); all by default.
        filter_already_liked_items : bool, default=True
            Leave each user's training items out, as ``recommend`` does.
        n_factors : "auto", int or None, default="auto"
            Embedding dimension to mark; ``"auto"`` reads the width of the
            ``"item"`` table of ``get_embeddings()`` (no mark when the
            estimator has none).
        name : str, default=None
            Title; ``"<EstimatorClass>, top <n>"`` by default.
        {draw_params}

        {returns}
        """
        if not callable(getattr(estimator, "recommend", None)) or not hasattr(
            estimator, "n_items_"
        ):
            raise TypeError(
                "estimator must be a fitted recommender with recommend() and "
                "n_items_; for a score matrix use "
                "RecommendationFrequencyDisplay.from_scores."
            )
        if n_factors == "auto":
            n_factors = None
            getter = getattr(estimator, "get_embeddings", None)
            if callable(getter):
                item = getter().get("item")
                if item is not None and np.ndim(item) == 2:
                    n_factors = int(np.shape(item)[1])
        res = recommendation_frequency(
            estimator, X, n=n, popularity=popularity, users=users,
            filter_already_liked_items=filter_already_liked_items,
        )
        if name is None:
            name = f"{estimator_name(estimator)}, top {n}"
        disp = cls(counts=res.counts, popularity_rank=res.popularity_rank, n=n,
                   n_factors=n_factors, name=name)
        return disp.plot(ax=ax, **kwargs)
