"""``ErankScorer`` and ``IAScorer``: collapse metrics as estimators *and* scorers.

As estimators they sit at the end of a ``Pipeline`` as a probe: ``fit`` stores the
spectrum of the matrix it sees, ``transform`` passes it through unchanged and
``score`` returns the metric, so ``GridSearchCV`` without ``scoring=`` ranks the
upstream steps by collapse. As callables ``scorer(estimator, X, y=None)`` they read
``estimator.get_embeddings()`` (the embeddings protocol of DESIGN.md) and work in
``GridSearchCV(scoring=...)`` and skorch's ``EpochScoring``. Called on a Pipeline
whose last step is such a probe, they score ``X`` as transformed by the steps
before the probe, i.e. the matrix the probe receives (so ``scoring=IAScorer()`` on
a Pipeline ending in ``ErankScorer()`` ranks by information abundance). Larger is
better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin

from skcollapse.metrics._collapse import effective_rank, information_abundance
from skcollapse.metrics._gram import GramAccumulator
from skcollapse.metrics._registry import COLLAPSE_METRICS
from skcollapse.metrics._spectrum import _spectrum_single, _use_gram, accumulate
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    _fit_context,
    check_is_fitted,
    validate_data,
    validate_params,
)
from skcollapse.utils._validation import array_namespace_kind, check_embedding_matrix

__all__ = [
    "ErankScorer",
    "IAScorer",
    "get_collapse_scorer",
    "get_collapse_scorer_names",
    "get_scorer",
    "get_scorer_names",
]

_REDUCERS = {"mean": np.mean, "min": np.min, "max": np.max, "median": np.median}


def _find_embeddings(estimator):
    """``estimator.get_embeddings()``, looking into Pipelines and fitted searches."""
    seen = estimator
    for _ in range(8):
        if hasattr(seen, "get_embeddings"):
            return seen
        if hasattr(seen, "best_estimator_"):
            seen = seen.best_estimator_
        elif hasattr(seen, "steps") and seen.steps:
            seen = seen.steps[-1][1]
        else:
            break
    return None


def _find_probe(estimator):
    """The chain of Pipelines ending in a collapse probe, and the probe.

    Returns ``(pipelines, probe)`` where ``pipelines`` are the (nested) Pipelines
    whose steps before the last lead to ``probe``, or ``None`` when ``estimator``
    (a fitted search is looked into) does not end in an ``ErankScorer``/``IAScorer``.
    """
    pipelines = []
    seen = estimator
    for _ in range(8):
        if isinstance(seen, _CollapseScorerMixin):
            return pipelines, seen
        if hasattr(seen, "best_estimator_"):
            seen = seen.best_estimator_
        elif hasattr(seen, "steps") and seen.steps:
            pipelines.append(seen)
            seen = seen.steps[-1][1]
        else:
            break
    return None


class _CollapseScorerMixin(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Shared implementation; subclasses set ``_metric`` and ``_score_attr``."""

    _metric = None
    _score_attr = None

    _parameter_constraints: ClassVar[dict] = {
        "table": [str, list, tuple, None],
        "reduce": [StrOptions(set(_REDUCERS))],
        "center": ["boolean"],
        "row_normalize": ["boolean"],
        "normalize": ["boolean"],
    }

    # ------------------------------------------------------------ metric options
    def _metric_kwargs(self):
        return {
            "center": self.center,
            "row_normalize": self.row_normalize,
            "normalize": self.normalize,
        }

    def _metric_of(self, E):
        raise NotImplementedError

    def _metric_from_spectrum(self, sigma, n_samples):
        kwargs = self._metric_kwargs()
        kwargs.pop("row_normalize")
        from_spectrum = COLLAPSE_METRICS[self._metric].from_spectrum
        return from_spectrum(sigma, n_samples=n_samples, **kwargs)

    @property
    def __name__(self):
        """Name used by skorch's ``EpochScoring`` for the history column."""
        table = self.table
        if table is None:
            return self._metric
        if isinstance(table, str):
            return f"{self._metric}_{table}"
        return f"{self._metric}_{'_'.join(map(str, table))}"

    # ------------------------------------------------------------ validation
    def _check_input(self, X, *, reset):
        """Validate X; numpy-likes through ``validate_data``, torch/dask as they are.

        ``np.memmap`` tables skip ``validate_data`` (whose full NaN pass would pull
        the whole file into memory); they are checked while streamed.
        """
        kind = array_namespace_kind(X)
        if kind == "numpy" and not isinstance(X, np.memmap):
            X = validate_data(
                self, X, dtype=[np.float64, np.float32], reset=reset,
                ensure_min_samples=1,
            )
            return X, kind
        X, kind = check_embedding_matrix(X, name="X")
        d = int(X.shape[1])
        if reset:
            self.n_features_in_ = d
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif d != self.n_features_in_:
            raise ValueError(
                f"X has {d} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X, kind

    def _update_fitted(self):
        acc = self._accumulator
        self.singular_values_ = acc.singular_values()[
            : min(acc.n_samples_seen, acc.n_features)
        ]
        self.n_samples_seen_ = acc.n_samples_seen
        setattr(
            self, self._score_attr,
            self._metric_from_spectrum(self.singular_values_, acc.n_samples_seen),
        )

    # ------------------------------------------------------------ estimator API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the singular spectrum of ``X`` and the metric.

        Parameters
        ----------
        X : array-like, torch.Tensor or dask array of shape (n_samples, n_features)
            The embedding matrix.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted scorer.
        """
        X, kind = self._check_input(X, reset=True)
        n, d = (int(s) for s in X.shape)
        acc = GramAccumulator(d, center=self.center, row_normalize=self.row_normalize)
        self._accumulator = accumulate(X, kind, acc)
        self._update_fitted()
        if not _use_gram(n, d, "auto"):
            # Wide or small: the SVD resolves tiny singular values exactly.
            self.singular_values_ = _spectrum_single(
                X, kind, center=self.center, row_normalize=self.row_normalize,
                method="svd", chunk_size=None,
            )
            setattr(
                self, self._score_attr,
                self._metric_from_spectrum(self.singular_values_, n),
            )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add the rows of ``X`` to the spectrum (float64 Gram accumulation).

        Calling ``partial_fit`` on successive row chunks gives the spectrum of
        their concatenation; memory stays ``O(n_features^2)``.

        Parameters
        ----------
        X : array-like, torch.Tensor or dask array of shape (n_samples, n_features)
            A chunk of rows of the embedding matrix.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The updated scorer.
        """
        first = not hasattr(self, "_accumulator")
        X, kind = self._check_input(X, reset=first)
        if first:
            self._accumulator = GramAccumulator(
                X.shape[1], center=self.center, row_normalize=self.row_normalize
            )
        accumulate(X, kind, self._accumulator)
        self._update_fitted()
        return self

    def transform(self, X):
        """Return ``X`` unchanged (the scorer is a probe inside a Pipeline).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        X : array-like of shape (n_samples, n_features)
            The validated input, same values and dtype.
        """
        check_is_fitted(self)
        X, _ = self._check_input(X, reset=False)
        return X

    def score(self, X, y=None):
        """The metric of ``X`` (larger is better).

        Parameters
        ----------
        X : array-like, torch.Tensor or dask array of shape (n_samples, n_features)
            The embedding matrix, e.g. the output of the previous Pipeline step.
        y : None
            Ignored.

        Returns
        -------
        float
            The metric of ``X``.
        """
        check_is_fitted(self)
        X, _ = self._check_input(X, reset=False)
        return float(self._metric_of(X))

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_accumulator")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = False
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------ scorer API
    def __call__(self, estimator, X=None, y=None):
        """Score a fitted estimator's embedding table(s).

        Parameters
        ----------
        estimator : object
            A fitted estimator with ``get_embeddings() -> dict[str, array]`` (or a
            Pipeline/search whose last step/best estimator has it), or a fitted
            Pipeline whose last step is an ``ErankScorer``/``IAScorer`` probe.
        X : array-like of shape (n_samples, n_features) or None, default=None
            Ignored for estimators with ``get_embeddings()``. For a Pipeline
            ending in a probe, the data to score: it goes through the steps
            before the probe and the metric of the result is returned (``table``
            and ``reduce`` do not apply there).
        y : None
            Ignored; present for the scorer signature ``(estimator, X, y)``.

        Returns
        -------
        float
            The metric of the chosen table, or of all chosen tables reduced by
            ``reduce``; for a probe Pipeline, the metric of the transformed ``X``.
        """
        self._validate_params()
        owner = _find_embeddings(estimator)
        if owner is None:
            found = _find_probe(estimator)
            if found is not None:
                return self._score_probe(*found, X)
            raise TypeError(
                f"{self!r} scores embeddings, but {type(estimator).__name__} has no "
                "get_embeddings() method (expected get_embeddings() -> dict of "
                "name -> (n_rows, dim) array). To score the matrix a model "
                "produces, end a Pipeline with ErankScorer()/IAScorer(): the "
                "scorer then reads X as transformed by the steps before it."
            )
        tables = owner.get_embeddings()
        if not isinstance(tables, Mapping):
            tables = {"embeddings": tables}
        if not tables:
            raise ValueError(
                f"{type(owner).__name__}.get_embeddings() returned no tables."
            )
        names = self._selected(tables)
        values = [float(self._metric_of(tables[name])) for name in names]
        if len(values) == 1:
            return values[0]
        return float(_REDUCERS[self.reduce](values))

    def _score_probe(self, pipelines, probe, X):
        """The metric of ``X`` transformed by the steps before ``probe``."""
        if X is None:
            raise ValueError(
                f"{self!r} was called on a Pipeline that ends in "
                f"{type(probe).__name__}, without X: pass the data to score, "
                "scorer(pipeline, X); it is transformed by the steps before the "
                "probe."
            )
        for pipe in pipelines:
            if len(pipe.steps) > 1:
                X = pipe[:-1].transform(X)
        X = probe.transform(X)  # fitted check and the feature count of its fit
        return float(self._metric_of(X))

    def _selected(self, tables):
        if self.table is None:
            return list(tables)
        wanted = [self.table] if isinstance(self.table, str) else list(self.table)
        if not wanted:
            raise ValueError("table is an empty list; give None or table names.")
        missing = [t for t in wanted if t not in tables]
        if missing:
            raise ValueError(
                f"table={missing[0]!r} is not among the estimator's embedding tables "
                f"{sorted(map(str, tables))}."
            )
        return wanted


_COMMON = """table : str, list of str or None, default=None
        When called as ``scorer(estimator, X, y)``: which table of
        ``estimator.get_embeddings()`` to score (e.g. ``"item"`` or a field name);
        ``None`` scores every table and combines them with ``reduce``. Ignored by
        ``fit``/``score``, and by a call on a Pipeline that ends in a probe,
        which read the matrix they are given.
    reduce : {"mean", "min", "max", "median"}, default="mean"
        How several tables are combined into one number.
    center : bool, default=False
        Subtract the column mean before the spectrum.
    row_normalize : bool, default=False
        L2-normalise rows before the spectrum (RecScope's IA).
    normalize : bool, default=False
        Divide by the largest attainable value ``min(n_samples, n_features)``, so
        runs with different embedding sizes compare (1.0 = no collapse)."""

_ATTRS = """singular_values_ : ndarray of shape (min(n_samples_seen_, n_features_in_),)
        Float64 singular values of the fitted matrix, largest first.
    n_samples_seen_ : int
        Rows seen by ``fit`` or all ``partial_fit`` calls.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (only for inputs with string
        column names)."""


class ErankScorer(_CollapseScorerMixin):
    """Effective rank as a scikit-learn estimator and scorer (larger is better).

    Parameters
    ----------
    spectrum : {"sv", "eig"}, default="sv"
        Singular values (Roy & Vetterli, RankMe) or their squares.
    {common}

    Attributes
    ----------
    effective_rank_ : float
        Effective rank of the fitted matrix (0.0 for an all-zero matrix).
    {attrs}

    See Also
    --------
    skcollapse.metrics.effective_rank : The metric as a function.
    IAScorer : Information abundance.

    Notes
    -----
    ``transform`` is the identity, so ``get_feature_names_out`` returns the input
    feature names and ``set_output(transform="pandas")`` keeps the columns.

    References
    ----------
    O. Roy and M. Vetterli, "The effective rank: a measure of effective
    dimensionality", EUSIPCO 2007.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skcollapse.metrics import ErankScorer
    >>> X, _ = load_digits(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), PCA(16), ErankScorer()).fit(X)
    >>> round(pipe.score(X), 1)
    15.3
    """

    _metric = "effective_rank"
    _score_attr = "effective_rank_"
    _parameter_constraints: ClassVar[dict] = {
        **_CollapseScorerMixin._parameter_constraints,
        "spectrum": [StrOptions({"sv", "eig"})],
    }

    def __init__(
        self,
        *,
        table=None,
        reduce="mean",
        spectrum="sv",
        center=False,
        row_normalize=False,
        normalize=False,
    ):
        self.table = table
        self.reduce = reduce
        self.spectrum = spectrum
        self.center = center
        self.row_normalize = row_normalize
        self.normalize = normalize

    def _metric_kwargs(self):
        return {**super()._metric_kwargs(), "spectrum": self.spectrum}

    def _metric_of(self, E):
        return effective_rank(E, **self._metric_kwargs())


class IAScorer(_CollapseScorerMixin):
    """Information abundance as a scikit-learn estimator and scorer.

    ``IA = ||sigma||_1 / sigma_max`` (Guo et al., ICML 2024); larger is better.

    Parameters
    ----------
    {common}

    Attributes
    ----------
    information_abundance_ : float
        Information abundance of the fitted matrix (0.0 for an all-zero matrix).
    {attrs}

    See Also
    --------
    skcollapse.metrics.information_abundance : The metric as a function.
    ErankScorer : Effective rank.

    References
    ----------
    X. Guo et al., "On the Embedding Collapse when Scaling up Recommendation
    Models", ICML 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import IAScorer
    >>> IAScorer().fit(np.diag([2.0, 1.0, 1.0])).information_abundance_
    2.0
    """

    _metric = "information_abundance"
    _score_attr = "information_abundance_"

    def __init__(
        self,
        *,
        table=None,
        reduce="mean",
        center=False,
        row_normalize=False,
        normalize=False,
    ):
        self.table = table
        self.reduce = reduce
        self.center = center
        self.row_normalize = row_normalize
        self.normalize = normalize

    def _metric_of(self, E):
        return information_abundance(E, **self._metric_kwargs())


for _cls in (ErankScorer, IAScorer):
    _cls.__doc__ = _cls.__doc__.replace("{common}", _COMMON).replace("{attrs}", _ATTRS)


#: Scorer names: each scorer's metric name and its registry alias.
_SCORERS = {
    key: cls
    for cls in (ErankScorer, IAScorer)
    for key in (cls._metric, COLLAPSE_METRICS[cls._metric].alias)
}


def get_collapse_scorer_names():
    """Names accepted by :func:`get_collapse_scorer`.

    Returns
    -------
    list of str
        Sorted scorer names (aliases included).

    Examples
    --------
    >>> from skcollapse.metrics import get_collapse_scorer_names
    >>> get_collapse_scorer_names()
    ['effective_rank', 'erank', 'ia', 'information_abundance']
    """
    return sorted(_SCORERS)


@validate_params({"name": [StrOptions(set(_SCORERS))]}, prefer_skip_nested_validation=True)
def get_collapse_scorer(name, **params):
    """A fresh collapse scorer by name, e.g. ``get_collapse_scorer("ia", table="item")``.

    scikit-learn resolves a ``scoring="..."`` string only among its own
    scorers (``sklearn.metrics.get_scorer``) and has no public way to add
    names, so ``GridSearchCV(scoring="effective_rank")`` is an error there.
    Pass the scorer object instead, alone or in a dict with other scorers::

        GridSearchCV(est, grid, scoring={
            "ndcg": ranking_scorer("ndcg"),
            "erank": get_collapse_scorer("effective_rank", table="item"),
        }, refit="ndcg")

    Parameters
    ----------
    name : str
        One of :func:`get_collapse_scorer_names`: ``"effective_rank"`` (alias
        ``"erank"``) or ``"information_abundance"`` (alias ``"ia"``).
    **params
        Parameters of the scorer (``table``, ``reduce``, ``normalize``, ...).

    Returns
    -------
    ErankScorer or IAScorer
        An unfitted scorer, usable as ``scoring=`` or in ``EpochScoring``.

    Examples
    --------
    >>> from skcollapse.metrics import get_collapse_scorer
    >>> get_collapse_scorer("erank", table="item")
    ErankScorer(table='item')
    """
    return _SCORERS[name](**params)


_RENAMED = (
    "skcollapse.metrics.{old} was renamed {new} (it shadowed scikit-learn's "
    "sklearn.metrics.{old}, which does something else); the old name will be "
    "removed in skcollapse 0.2. Use skcollapse.metrics.{new}."
)


def get_scorer_names():
    """Deprecated alias of :func:`get_collapse_scorer_names` (removed in 0.2).

    Returns
    -------
    list of str
    """
    import warnings

    warnings.warn(
        _RENAMED.format(old="get_scorer_names", new="get_collapse_scorer_names"),
        FutureWarning,
        stacklevel=2,
    )
    return get_collapse_scorer_names()


def get_scorer(name, **params):
    """Deprecated alias of :func:`get_collapse_scorer` (removed in 0.2).

    Parameters
    ----------
    name : str
    **params

    Returns
    -------
    ErankScorer or IAScorer
    """
    import warnings

    warnings.warn(
        _RENAMED.format(old="get_scorer", new="get_collapse_scorer"),
        FutureWarning,
        stacklevel=2,
    )
    return get_collapse_scorer(name, **params)
