"""Codebook-collapse metrics: pure functions of codes, codebooks and residuals.

They live beside the quantizers rather than in :mod:`skcollapse.metrics`
because their inputs are quantization objects (integer code tuples, one
codebook per level, the residual fed to each level) and the scorer reads a
fitted quantizer's ``transform``/``inverse_transform``; the embedding-table
metrics of :mod:`skcollapse.metrics` are reused (``effective_rank``), never
copied.
"""

from __future__ import annotations

import numpy as np

from skcollapse.metrics import effective_rank
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_parameter_constraints,
    validate_params,
)
from skcollapse.utils._validation import check_codes


def _counts(column, codebook_size):
    return np.bincount(column, minlength=codebook_size)


@validate_params(
    {"codes": ["array-like"], "codebook_size": [int_interval(1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def code_usage(codes, codebook_size):
    """Share of each level's codebook that at least one item uses.

    ``usage_l = |{c : some item has code c at level l}| / K``. It is ``1`` when
    every code is used and ``1/K`` when every item gets the same code.

    Parameters
    ----------
    codes : array-like of shape (n_items, n_levels)
        Integer codes, e.g. the output of a quantizer's ``transform``.
    codebook_size : int
        ``K``, the number of codes per level.

    Returns
    -------
    usage : ndarray of shape (n_levels,)

    Examples
    --------
    >>> from skcollapse.quantization import code_usage
    >>> code_usage([[0, 1], [1, 1], [2, 1], [3, 1]], codebook_size=4)
    array([1.  , 0.25])
    """
    arr = check_codes(codes, codebook_size)
    return np.array(
        [np.count_nonzero(_counts(col, codebook_size)) for col in arr.T], dtype=float
    ) / codebook_size


@validate_params(
    {"codes": ["array-like"], "codebook_size": [None, int_interval(1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def code_perplexity(codes, codebook_size=None):
    """Perplexity of each level's code distribution: ``exp`` of its entropy.

    ``perplexity_l = exp(-sum_c p_c log p_c)`` with ``p_c`` the share of items
    whose code at level ``l`` is ``c`` (natural log, ``0 log 0 = 0``). It is the
    number of equally used codes that would give the same entropy: ``K`` for
    uniform use of ``K`` codes, ``1`` when every item gets one code.

    Parameters
    ----------
    codes : array-like of shape (n_items, n_levels)
        Integer codes.
    codebook_size : int, default=None
        ``K``; only used to check that the codes are below it.

    Returns
    -------
    perplexity : ndarray of shape (n_levels,)

    Examples
    --------
    >>> from skcollapse.quantization import code_perplexity
    >>> code_perplexity([[0, 1], [1, 1], [2, 1], [3, 1]])
    array([4., 1.])
    """
    arr = check_codes(codes, codebook_size)
    out = []
    for col in arr.T:
        p = np.bincount(col) / col.shape[0]
        p = p[p > 0]
        out.append(float(np.exp(-np.sum(p * np.log(p)))))
    return np.array(out)


def _group_sizes(arr):
    _, inverse, counts = np.unique(
        arr, axis=0, return_inverse=True, return_counts=True
    )
    return counts[np.ravel(inverse)]


@validate_params({"codes": ["array-like"]}, prefer_skip_nested_validation=True)
def collision_rate(codes):
    """Share of items whose full code tuple (semantic ID) another item also has.

    ``|{i : exists j != i with codes_j = codes_i}| / n_items``: ``0`` when every
    ID is unique, ``1`` when no item has an ID of its own.

    Parameters
    ----------
    codes : array-like of shape (n_items, n_levels)
        Integer codes; each row is one item's semantic ID.

    Returns
    -------
    rate : float

    Examples
    --------
    >>> from skcollapse.quantization import collision_rate
    >>> collision_rate([[0, 0], [0, 0], [0, 1], [1, 1]])
    0.5
    """
    arr = check_codes(codes)
    return float(np.mean(_group_sizes(arr) > 1))


@validate_params({"codes": ["array-like"]}, prefer_skip_nested_validation=True)
def largest_collision_group(codes):
    """Number of items that share the most common semantic ID.

    ``1`` when every ID is unique.

    Parameters
    ----------
    codes : array-like of shape (n_items, n_levels)
        Integer codes; each row is one item's semantic ID.

    Returns
    -------
    size : int

    Examples
    --------
    >>> from skcollapse.quantization import largest_collision_group
    >>> largest_collision_group([[0, 0], [0, 0], [0, 0], [1, 1]])
    3
    """
    arr = check_codes(codes)
    return int(_group_sizes(arr).max())


@validate_params(
    {
        "codebooks": [list, tuple],
        "codes": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def codebook_erank(codebooks, codes=None):
    """Effective rank of each level's code vectors (only the used ones if ``codes``).

    The effective rank (:func:`skcollapse.metrics.effective_rank`, Roy &
    Vetterli 2007) of the ``(n_used, d)`` matrix of the level's code vectors.
    A level whose used codes lie on a line has erank ``1``.

    Parameters
    ----------
    codebooks : list of array-like of shape (codebook_size, n_dims)
        One codebook per level, e.g. a quantizer's ``codebooks_``.
    codes : array-like of shape (n_items, n_levels), default=None
        When given, each level keeps the codes some item uses.

    Returns
    -------
    erank : ndarray of shape (n_levels,)

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.quantization import codebook_erank
    >>> codebook_erank([np.eye(3), np.ones((3, 3))]).round(6)
    array([3., 1.])
    """
    books = [np.asarray(c, dtype=float) for c in codebooks]
    for i, c in enumerate(books):
        if c.ndim != 2 or c.shape[0] == 0:
            raise ValueError(
                f"codebooks[{i}] must be a non-empty 2-D array, got shape {c.shape}."
            )
    if codes is not None:
        arr = check_codes(codes, min(c.shape[0] for c in books))
        if arr.shape[1] < len(books):
            raise ValueError(
                f"codes has {arr.shape[1]} levels but codebooks has {len(books)}."
            )
        books = [c[np.unique(arr[:, lvl])] for lvl, c in enumerate(books)]
    return np.array([effective_rank(c) for c in books])


@validate_params(
    {"X": ["array-like"], "X_reconstructed": ["array-like"], "relative": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def reconstruction_error(X, X_reconstructed, *, relative=False):
    """Mean squared Euclidean distance between rows and their reconstructions.

    ``mean_i ||x_i - x̂_i||²``; with ``relative=True`` divided by
    ``mean_i ||x_i||²`` (``0`` is perfect, ``1`` is as bad as predicting 0).

    Parameters
    ----------
    X : array-like of shape (n_items, n_features)
        The embeddings.
    X_reconstructed : array-like of shape (n_items, n_features)
        E.g. ``quantizer.inverse_transform(quantizer.transform(X))``.
    relative : bool, default=False
        Divide by the mean squared norm of ``X``.

    Returns
    -------
    error : float

    Examples
    --------
    >>> from skcollapse.quantization import reconstruction_error
    >>> reconstruction_error([[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [0.0, 0.0]])
    2.5
    """
    a = np.asarray(X, dtype=float)
    b = np.asarray(X_reconstructed, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"X and X_reconstructed must be 2-D arrays of the same shape, got "
            f"{a.shape} and {b.shape}."
        )
    if a.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("X and X_reconstructed must be non-empty and finite.")
    err = float(np.mean(np.sum((a - b) ** 2, axis=1)))
    if relative:
        denom = float(np.mean(np.sum(a**2, axis=1)))
        return err / denom if denom > 0 else (0.0 if err == 0 else float("inf"))
    return err


def codebook_metrics(quantizer, X):
    """Every codebook-collapse metric of a fitted quantizer on ``X``.

    Parameters
    ----------
    quantizer : ResidualKMeans or RQVAE
        Fitted; any object with ``transform``, ``inverse_transform``,
        ``codebooks_``, ``codebook_size``, ``n_levels`` and
        ``residuals(X)`` works.
    X : array-like of shape (n_items, n_features)
        Item embeddings.

    Returns
    -------
    metrics : dict
        ``"usage"``, ``"perplexity"``, ``"code_erank"`` (of the used code
        vectors) and ``"residual_erank"`` (of the input to each level): lists
        with one float per level; ``"collision_rate"`` and
        ``"largest_collision_group"`` of the semantic IDs *without* the
        deduplication level; ``"reconstruction_error"`` and
        ``"relative_reconstruction_error"``.

    Examples
    --------
    >>> from skcollapse.datasets import make_collapsed_embeddings
    >>> from skcollapse.quantization import ResidualKMeans, codebook_metrics
    >>> X = make_collapsed_embeddings(200, 8, effective_rank=4, random_state=0)
    >>> rq = ResidualKMeans(n_levels=2, codebook_size=8, random_state=0).fit(X)
    >>> m = codebook_metrics(rq, X)
    >>> m["usage"]
    [1.0, 1.0]
    """
    codes = quantizer.transform(X)[:, : quantizer.n_levels]
    X_hat = quantizer.inverse_transform(codes)
    K = quantizer.codebook_size
    Xa = np.asarray(X, dtype=float)
    return {
        "usage": code_usage(codes, K).tolist(),
        "perplexity": code_perplexity(codes, K).tolist(),
        "code_erank": codebook_erank(list(quantizer.codebooks_), codes).tolist(),
        "residual_erank": [effective_rank(r) for r in quantizer.residuals(X)],
        "collision_rate": collision_rate(codes),
        "largest_collision_group": largest_collision_group(codes),
        "reconstruction_error": reconstruction_error(Xa, X_hat),
        "relative_reconstruction_error": reconstruction_error(
            Xa, X_hat, relative=True
        ),
    }


#: metric name -> (key of codebook_metrics, sign): larger is better after the sign
_SCORER_METRICS = {
    "usage": ("usage", 1.0),
    "perplexity": ("perplexity", 1.0),
    "code_erank": ("code_erank", 1.0),
    "residual_erank": ("residual_erank", 1.0),
    "neg_collision_rate": ("collision_rate", -1.0),
    "neg_largest_collision_group": ("largest_collision_group", -1.0),
    "neg_reconstruction_error": ("reconstruction_error", -1.0),
    "neg_relative_reconstruction_error": ("relative_reconstruction_error", -1.0),
}
_PER_LEVEL = {"usage", "perplexity", "code_erank", "residual_erank"}


class CodebookScorer:
    """Callable ``(quantizer, X, y=None) -> float`` scoring a codebook (larger is better).

    Use it as ``GridSearchCV(ResidualKMeans(), grid, scoring=CodebookScorer())``
    to pick quantizer settings on held-out items: the quantizer fitted on the
    training folds quantizes the held-out items, whose metric is returned.
    Losses are sign-flipped and named with ``neg_``.

    Parameters
    ----------
    metric : str, default="perplexity"
        One of ``"usage"``, ``"perplexity"``, ``"code_erank"``,
        ``"residual_erank"`` (per level), ``"neg_collision_rate"``,
        ``"neg_largest_collision_group"``, ``"neg_reconstruction_error"``,
        ``"neg_relative_reconstruction_error"``.
    level : int, default=None
        For the per-level metrics: the level to score (0 is the first); ``None``
        averages over the levels. Must be ``None`` for the other metrics.

    See Also
    --------
    codebook_metrics : Every metric at once.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skcollapse.datasets import make_collapsed_embeddings
    >>> from skcollapse.quantization import CodebookScorer, ResidualKMeans
    >>> X = make_collapsed_embeddings(300, 8, effective_rank=4, random_state=0)
    >>> search = GridSearchCV(
    ...     ResidualKMeans(n_levels=2, random_state=0),
    ...     {"codebook_size": [4, 16]},
    ...     scoring=CodebookScorer("neg_reconstruction_error"),
    ...     cv=3,
    ... ).fit(X)
    >>> search.best_params_
    {'codebook_size': 16}
    """

    _parameter_constraints = {  # noqa: RUF012
        "metric": [StrOptions(set(_SCORER_METRICS))],
        "level": [None, int_interval(0, None, closed="left")],
    }

    def __init__(self, metric="perplexity", *, level=None):
        self.metric = metric
        self.level = level

    def __repr__(self):
        return f"CodebookScorer(metric={self.metric!r}, level={self.level!r})"

    def __call__(self, estimator, X, y=None):
        validate_parameter_constraints(
            self._parameter_constraints,
            {"metric": self.metric, "level": self.level},
            caller_name=type(self).__name__,
        )
        key, sign = _SCORER_METRICS[self.metric]
        per_level = key in _PER_LEVEL
        if self.level is not None and not per_level:
            raise ValueError(
                f"level={self.level} applies to the per-level metrics "
                f"{sorted(_PER_LEVEL)}, not to metric={self.metric!r}; use level=None."
            )
        value = codebook_metrics(estimator, X)[key]
        if per_level:
            if self.level is None:
                value = float(np.mean(value))
            elif self.level >= len(value):
                raise ValueError(
                    f"level={self.level} but the quantizer has {len(value)} levels."
                )
            else:
                value = value[self.level]
        return sign * float(value)
