"""Residual k-means: semantic IDs without a training loop."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from skcollapse.quantization._base import QuantizerMixin, quantizer_doc
from skcollapse.utils._sklearn_compat import (
    int_interval,
)

__all__ = ["ResidualKMeans"]


@quantizer_doc
class ResidualKMeans(QuantizerMixin, BaseEstimator):
    """Residual quantization by k-means, one codebook per level.

    Level 0 clusters the item embeddings with k-means; each next level clusters
    what the previous levels left (the residuals ``x - sum of chosen centres``).
    An item's semantic ID is the tuple of its nearest centre at every level, as
    in generative retrieval (TIGER and its residual-k-means variants). No
    training loop: scikit-learn's :class:`~sklearn.cluster.KMeans` per level.

    Parameters
    ----------
    n_levels : int, default=3
        Number of codebooks (length of the semantic ID before deduplication).
    codebook_size : int, default=256
        Codes per level, ``K``. Must not exceed the number of items.
    n_init : int, default=1
        k-means restarts per level (scikit-learn's ``n_init``).
    max_iter : int, default=300
        k-means iterations per run.
    {deduplicate}
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means of every level.

    Attributes
    ----------
    codebooks_ : list of ndarray of shape (codebook_size, n_features_in_)
        The centres of each level.
    n_iter_ : int
        The most k-means iterations any level took (the run kept).
    {features_in}

    See Also
    --------
    RQVAE : The learned (encoder, residual codebooks, decoder) quantizer.
    codebook_metrics : Usage, perplexity, collisions and erank of the codes.

    Notes
    -----
    With ``K`` codes and ``L`` levels there are ``K**L`` IDs; collapse shows as
    codes that no item uses, a skewed code distribution (low perplexity) and
    many items sharing one ID. A level whose residuals are all (nearly)
    identical cannot use ``K`` codes; scikit-learn's warning about fewer
    distinct clusters is silenced here because :func:`code_usage` reports it.

    References
    ----------
    S. Rajput et al., "Recommender Systems with Generative Retrieval" (TIGER),
    NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.quantization import ResidualKMeans
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 8))
    >>> rq = ResidualKMeans(n_levels=2, codebook_size=4, random_state=0).fit(X)
    >>> codes = rq.transform(X)
    >>> codes.shape, codes.dtype
    ((100, 2), dtype('int64'))
    >>> rq.inverse_transform(codes).shape
    (100, 8)
    """

    _parameter_constraints = {  # noqa: RUF012
        "n_levels": [int_interval(1, None, closed="left")],
        "codebook_size": [int_interval(1, None, closed="left")],
        "n_init": [int_interval(1, None, closed="left")],
        "max_iter": [int_interval(1, None, closed="left")],
        "deduplicate": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_levels=3,
        *,
        codebook_size=256,
        n_init=1,
        max_iter=300,
        deduplicate=False,
        random_state=None,
    ):
        self.n_levels = n_levels
        self.codebook_size = codebook_size
        self.n_init = n_init
        self.max_iter = max_iter
        self.deduplicate = deduplicate
        self.random_state = random_state

    def _fit(self, X):
        """One k-means codebook per level, on the residuals of the levels above."""
        if self.codebook_size > X.shape[0]:
            raise ValueError(
                f"codebook_size={self.codebook_size} exceeds the number of items: "
                f"n_samples={X.shape[0]}; k-means needs at least codebook_size "
                "items (lower codebook_size)."
            )
        rng = check_random_state(self.random_state)
        residual = X.astype(np.float64)
        books, n_iter = [], []
        for _ in range(self.n_levels):
            km = KMeans(
                n_clusters=self.codebook_size,
                n_init=self.n_init,
                max_iter=self.max_iter,
                random_state=rng.randint(np.iinfo(np.int32).max),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                labels = km.fit_predict(residual)
            books.append(km.cluster_centers_)
            n_iter.append(km.n_iter_)
            residual = residual - km.cluster_centers_[labels]
        self.codebooks_ = books
        self.n_iter_ = int(max(n_iter))

    def _quantize(self, X):
        residual = X.astype(np.float64)
        codes, residuals = [], []
        for book in self.codebooks_:
            residuals.append(residual)
            d2 = (
                np.sum(residual**2, axis=1)[:, None]
                - 2 * residual @ book.T
                + np.sum(book**2, axis=1)[None, :]
            )
            idx = np.argmin(d2, axis=1)
            codes.append(idx)
            residual = residual - book[idx]
        return np.column_stack(codes).astype(np.int64), residuals

    def _codes(self, X):
        return self._quantize(X)[0]

    def _residuals(self, X):
        return self._quantize(X)[1]

    def _decode(self, codes):
        return sum(book[codes[:, lvl]] for lvl, book in enumerate(self.codebooks_))
