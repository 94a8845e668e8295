"""``CollapseScorer``: any registered collapse metric as an estimator *and* a scorer.

As estimators the scorers sit at the end of a ``Pipeline`` as a probe: ``fit``
stores the metric of the matrix it sees (and, for spectral metrics, its
spectrum), ``transform`` passes it through unchanged and ``score`` returns the
metric, so ``GridSearchCV`` without ``scoring=`` ranks the upstream steps by
collapse. As callables ``scorer(estimator, X, y=None)`` they read the
estimator's tables through :func:`~skcollapse.metrics.get_embedding_tables` (the
embeddings protocol of DESIGN.md, looking into Pipelines and fitted searches)
and work in ``GridSearchCV(scoring=...)`` and skorch's ``EpochScoring``. Called
on a Pipeline whose last step is such a probe, they score ``X`` as transformed
by the steps before the probe, i.e. the matrix the probe receives (so
``scoring=IAScorer()`` on a Pipeline ending in ``ErankScorer()`` ranks by
information abundance). Larger is better: a metric where lower is better
(the condition number) is sign-flipped, as scikit-learn's ``neg_*`` scorers are.

``ErankScorer`` and ``IAScorer`` are ``CollapseScorer`` with the metric fixed and
its options as named parameters. :mod:`._get_scorer` finds a scorer by name.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.metaestimators import available_if

from skcollapse.metrics._gram import GramAccumulator
from skcollapse.metrics._registry import (
    get_collapse_metric,
    takes_keyword,
)
from skcollapse.metrics._spectrum import _spectrum_single, _use_gram, accumulate
from skcollapse.metrics._tables import find_embeddings_owner, get_embedding_tables
from skcollapse.utils._docstrings import GUO_2024, ROY_VETTERLI_2007, fill_doc
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    _fit_context,
    check_is_fitted,
    validate_data,
)
from skcollapse.utils._validation import array_namespace_kind, check_embedding_matrix

__all__ = ["CollapseScorer", "ErankScorer", "IAScorer"]

_REDUCERS = {"mean": np.mean, "min": np.min, "max": np.max, "median": np.median}

#: Options of a spectral metric that its spectrum alone answers (``center`` and
#: ``row_normalize`` shape the accumulated Gram matrix, the others are read from
#: the singular values); other options need the rows.
_SPECTRUM_OPTIONS = frozenset({"center", "row_normalize", "normalize", "spectrum"})


def _find_probe(estimator):
    """The chain of Pipelines ending in a collapse probe, and the probe.

    Returns ``(pipelines, probe)`` where ``pipelines`` are the (nested) Pipelines
    whose steps before the last lead to ``probe``, or ``None`` when ``estimator``
    (a fitted search is looked into) does not end in a ``CollapseScorer``.
    """
    pipelines = []
    seen = estimator
    for _ in range(8):
        if isinstance(seen, CollapseScorer):
            return pipelines, seen
        if hasattr(seen, "best_estimator_"):
            seen = seen.best_estimator_
        elif hasattr(seen, "steps") and seen.steps:
            pipelines.append(seen)
            seen = seen.steps[-1][1]
        else:
            break
    return None


#: Docstring parts of the scorers (:func:`~skcollapse.utils._docstrings.fill_doc`).
_TABLE_REDUCE_DOC = """
    table : str, list of str or None, default=None
        When called as ``scorer(estimator, X, y)``: which table of
        ``estimator.get_embeddings()`` to score (e.g. ``"item"`` or a field
        name); ``None`` scores every table and combines them with ``reduce``.
        Ignored by ``fit``/``score``, and by a call on a Pipeline that ends in
        a probe, which read the matrix they are given.
    reduce : {"mean", "min", "max", "median"}, default="mean"
        How several tables are combined into one number.
"""
_SEEN_ATTRS_DOC = """
    n_samples_seen_ : int
        Rows seen by ``fit`` or all ``partial_fit`` calls.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (only for inputs with string
        column names).
"""
#: the spectral options the named forms take as parameters
_SPECTRAL_OPTIONS_DOC = """
    center : bool, default=False
        Subtract the column mean before the spectrum.
    row_normalize : bool, default=False
        L2-normalise rows before the spectrum (RecScope's IA).
    normalize : bool, default=False
        Divide by the largest attainable value ``min(n_samples, n_features)``, so
        runs with different embedding sizes compare (1.0 = no collapse).
"""
_NAMED_ATTRS_DOC = """
    metric_value_ : float
        The same value (the attribute every ``CollapseScorer`` has).
    singular_values_ : ndarray of shape (min(n_samples_seen_, n_features_in_),)
        Float64 singular values of the fitted matrix, largest first.
"""


@fill_doc(table_reduce=_TABLE_REDUCE_DOC, seen_attrs=_SEEN_ATTRS_DOC)
class CollapseScorer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """A registered collapse metric as a scikit-learn estimator and scorer.

    Called as ``scorer(estimator, X, y=None)`` it returns the metric of a
    fitted model's embedding table(s); as the last step of a ``Pipeline`` it
    scores the matrix the earlier steps produce. Larger is better: metrics
    where lower is better (``"condition_number"``) are returned negated.

    Parameters
    ----------
    metric : str, default="effective_rank"
        A registered collapse metric, by name or alias
        (:func:`get_collapse_metric_names`, or one added with
        :func:`register_collapse_metric`).
    {table_reduce}
    metric_params : dict or None, default=None
        Keyword arguments of the metric's function, e.g. ``{"center": True}``
        or ``{"spectrum": "eig"}`` for ``"effective_rank"``.

    Attributes
    ----------
    metric_value_ : float
        The metric of the fitted matrix, unsigned (as the function returns it).
    singular_values_ : ndarray of shape (min(n_samples_seen_, n_features_in_),)
        Float64 singular values of the fitted matrix, largest first (spectral
        metrics only).
    {seen_attrs}

    See Also
    --------
    ErankScorer : The effective rank, its options as parameters.
    IAScorer : Information abundance, its options as parameters.
    get_collapse_scorer : A scorer by name.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.adapters import EmbeddingTables
    >>> from skcollapse.metrics import CollapseScorer
    >>> model = EmbeddingTables({"item_factors": np.diag([4.0, 2.0, 1.0])})
    >>> CollapseScorer(metric="stable_rank", table="item")(model)
    1.3125
    >>> CollapseScorer(metric="condition_number", table="item")(model)
    -4.0
    """

    _parameter_constraints: ClassVar[dict] = {
        "metric": [str],
        "table": [str, list, tuple, None],
        "reduce": [StrOptions(set(_REDUCERS))],
        "metric_params": [dict, None],
    }

    #: Attribute holding the metric after ``fit`` in the named forms.
    _score_attr = None

    def __init__(self, metric="effective_rank", *, table=None, reduce="mean",
                 metric_params=None):
        self.metric = metric
        self.table = table
        self.reduce = reduce
        self.metric_params = metric_params

    # ------------------------------------------------------------ the metric
    def _entry(self):
        return get_collapse_metric(self.metric)

    def _metric_params(self):
        return dict(self.metric_params or {})

    def _sign(self):
        return 1.0 if self._entry().greater_is_better else -1.0

    def _streams(self):
        """Whether the metric is read from a Gram accumulator's spectrum (so
        ``partial_fit`` can stream rows)."""
        return self._entry().spectral and set(self._metric_params()) <= _SPECTRUM_OPTIONS

    def _can_stream(self):
        """``partial_fit`` exists for spectral metrics only (an unknown metric
        keeps it, so that calling it says what is wrong)."""
        try:
            return self._streams()
        except ValueError:
            return True

    def _metric_of(self, E):
        """The unsigned metric of one table."""
        return float(self._entry().func(E, **self._metric_params()))

    def _metric_from_spectrum(self, sigma, n_samples):
        params = self._metric_params()
        from_spectrum = self._entry().from_spectrum
        kwargs = {k: params[k] for k in ("normalize", "spectrum") if k in params}
        if "spectrum" in kwargs and not takes_keyword(from_spectrum, "spectrum"):
            del kwargs["spectrum"]
        return from_spectrum(
            sigma, center=bool(params.get("center", False)), n_samples=n_samples,
            **kwargs,
        )

    @property
    def __name__(self):
        """Name used by skorch's ``EpochScoring`` for the history column."""
        base = self._entry().scorer_names[0]
        table = self.table
        if table is None:
            return base
        if isinstance(table, str):
            return f"{base}_{table}"
        return f"{base}_{'_'.join(map(str, table))}"

    # ------------------------------------------------------------ validation
    def _check_params(self):
        self._validate_params()
        self._entry()  # an unknown metric says so

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

    def _set_value(self, value):
        self.metric_value_ = float(value)
        if self._score_attr is not None:
            setattr(self, self._score_attr, self.metric_value_)

    def _update_fitted(self):
        acc = self._accumulator
        self.singular_values_ = acc.singular_values()[
            : min(acc.n_samples_seen, acc.n_features)
        ]
        self.n_samples_seen_ = acc.n_samples_seen
        self._set_value(
            self._metric_from_spectrum(self.singular_values_, acc.n_samples_seen)
        )

    def _new_accumulator(self, n_features):
        params = self._metric_params()
        return GramAccumulator(
            n_features, center=bool(params.get("center", False)),
            row_normalize=bool(params.get("row_normalize", False)),
        )

    # ------------------------------------------------------------ estimator API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the metric of ``X`` (and, for spectral metrics, its spectrum).

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
        self._entry()
        X, kind = self._check_input(X, reset=True)
        n, d = (int(s) for s in X.shape)
        if not self._streams():  # the metric reads the rows
            self._accumulator = None
            self.n_samples_seen_ = n
            self._set_value(self._metric_of(X))
            return self
        self._accumulator = accumulate(X, kind, self._new_accumulator(d))
        self._update_fitted()
        if not _use_gram(n, d, "auto"):
            # Wide or small: the SVD resolves tiny singular values exactly.
            params = self._metric_params()
            self.singular_values_ = _spectrum_single(
                X, kind, center=bool(params.get("center", False)),
                row_normalize=bool(params.get("row_normalize", False)),
                method="svd", chunk_size=None,
            )
            self._set_value(self._metric_from_spectrum(self.singular_values_, n))
        return self

    @available_if(_can_stream)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add the rows of ``X`` to the spectrum (float64 Gram accumulation).

        Calling ``partial_fit`` on successive row chunks gives the spectrum of
        their concatenation; memory stays ``O(n_features^2)``. Only metrics
        read from the singular spectrum can be streamed: for the others the
        method does not exist.

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
        first = getattr(self, "_accumulator", None) is None
        X, kind = self._check_input(X, reset=first)
        if first:
            self._accumulator = self._new_accumulator(X.shape[1])
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
        """The metric of ``X`` (larger is better; negated when lower is).

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
        return self._sign() * self._metric_of(X)

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
            Pipeline whose last step is a ``CollapseScorer`` probe.
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
            ``reduce`` (negated when lower is better); for a probe Pipeline, the
            metric of the transformed ``X``.
        """
        self._check_params()
        if find_embeddings_owner(estimator) is None:
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
        wanted = None if self.table is None else (
            [self.table] if isinstance(self.table, str) else list(self.table)
        )
        tables = get_embedding_tables(estimator, wanted)
        values = [self._metric_of(t) for t in tables.values()]
        value = values[0] if len(values) == 1 else float(_REDUCERS[self.reduce](values))
        return self._sign() * value

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
        return self._sign() * self._metric_of(X)


#: The docstring parts of the named forms.
_NAMED_DOC_PARTS = {
    "table_reduce": _TABLE_REDUCE_DOC,
    "spectral_options": _SPECTRAL_OPTIONS_DOC,
    "named_attrs": _NAMED_ATTRS_DOC,
    "seen_attrs": _SEEN_ATTRS_DOC,
}

_NAMED_CONSTRAINTS = {
    "table": [str, list, tuple, None],
    "reduce": [StrOptions(set(_REDUCERS))],
    "center": ["boolean"],
    "row_normalize": ["boolean"],
    "normalize": ["boolean"],
}


@fill_doc(**_NAMED_DOC_PARTS, roy_vetterli_2007=ROY_VETTERLI_2007)
class ErankScorer(CollapseScorer):
    """Effective rank as a scikit-learn estimator and scorer (larger is better).

    ``CollapseScorer(metric="effective_rank")`` with the metric's options as
    parameters.

    Parameters
    ----------
    {table_reduce}
    spectrum : {"sv", "eig"}, default="sv"
        Singular values (Roy & Vetterli, RankMe) or their squares.
    {spectral_options}

    Attributes
    ----------
    effective_rank_ : float
        Effective rank of the fitted matrix (0.0 for an all-zero matrix).
    {named_attrs}
    {seen_attrs}

    See Also
    --------
    skcollapse.metrics.effective_rank : The metric as a function.
    IAScorer : Information abundance.
    CollapseScorer : Any registered collapse metric.

    Notes
    -----
    ``transform`` is the identity, so ``get_feature_names_out`` returns the input
    feature names and ``set_output(transform="pandas")`` keeps the columns.

    References
    ----------
    {roy_vetterli_2007}

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

    metric = "effective_rank"
    _score_attr = "effective_rank_"
    _parameter_constraints: ClassVar[dict] = {
        **_NAMED_CONSTRAINTS,
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

    def _metric_params(self):
        return {
            "spectrum": self.spectrum,
            "center": self.center,
            "row_normalize": self.row_normalize,
            "normalize": self.normalize,
        }


@fill_doc(**_NAMED_DOC_PARTS, guo_2024=GUO_2024)
class IAScorer(CollapseScorer):
    """Information abundance as a scikit-learn estimator and scorer.

    ``IA = ||sigma||_1 / sigma_max`` (Guo et al., ICML 2024); larger is better.
    ``CollapseScorer(metric="information_abundance")`` with the metric's options
    as parameters.

    Parameters
    ----------
    {table_reduce}
    {spectral_options}

    Attributes
    ----------
    information_abundance_ : float
        Information abundance of the fitted matrix (0.0 for an all-zero matrix).
    {named_attrs}
    {seen_attrs}

    See Also
    --------
    skcollapse.metrics.information_abundance : The metric as a function.
    ErankScorer : Effective rank.
    CollapseScorer : Any registered collapse metric.

    References
    ----------
    {guo_2024}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import IAScorer
    >>> IAScorer().fit(np.diag([2.0, 1.0, 1.0])).information_abundance_
    2.0
    """

    metric = "information_abundance"
    _score_attr = "information_abundance_"
    _parameter_constraints: ClassVar[dict] = dict(_NAMED_CONSTRAINTS)

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

    def _metric_params(self):
        return {
            "center": self.center,
            "row_normalize": self.row_normalize,
            "normalize": self.normalize,
        }

