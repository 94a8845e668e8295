"""The collapse-metric registry: the one list every part of skcollapse reads.

A collapse metric is a function of one embedding table returning a float.
:func:`register_collapse_metric` records it with what the rest of the library
needs to know: whether higher is better, a short description, the short alias of
history columns (``"erank"``: ``CollapseMonitor`` writes ``"erank_item"``), the
labels of plot axes and printed tables, and, for spectral metrics, the function
that reads it from singular values (one spectrum then feeds every spectral
metric). A registered metric is at once

* a key of :func:`~skcollapse.metrics.collapse_metrics` and a column of
  ``skcollapse score --metrics``;
* a scorer: ``CollapseScorer(metric=name)``, ``get_collapse_scorer(name)``;
* a :class:`~skcollapse.callbacks.CollapseMonitor` column, recognised by
  :class:`~skcollapse.plotting.CollapseHistoryDisplay` and the CLI report.

The built-in metrics are registered by :mod:`skcollapse.metrics._collapse`, next
to their functions. :func:`resolve_collapse_metrics` is the one check of a list
of metric names that every caller uses.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "COLLAPSE_METRICS",
    "DEFAULT_METRICS",
    "CollapseMetric",
    "get_collapse_metric",
    "get_collapse_metric_names",
    "metric_of_column",
    "register_collapse_metric",
    "resolve_collapse_metrics",
    "unregister_collapse_metric",
]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class CollapseMetric:
    """A registered collapse metric: how it is computed, named and labelled.

    Build entries with :func:`register_collapse_metric`; read them with
    :func:`get_collapse_metric`.

    Attributes
    ----------
    name : str
        Key in :func:`collapse_metrics`' result and the scorer's name.
    func : callable
        ``func(table, **options) -> float`` for one ``(n_rows, n_features)``
        table. Options (``center``, ``row_normalize``, ``relative``, ...) are
        passed only when ``func`` accepts them.
    greater_is_better : bool
        Whether a larger value means less collapse. Scorers of a metric where
        lower is better are sign-flipped and named ``"neg_<name>"``.
    description : str
        One line, e.g. for a ``--help`` text or a report legend.
    alias : str
        Short lowercase name: history columns ``"<alias>_<table>"``.
    label : str
        Long label, e.g. of a plot axis.
    short_label : str
        Column header of printed tables.
    from_spectrum : callable or None
        ``f(sigma, *, normalize, center, n_samples) -> float`` for metrics read
        from the singular values; ``None`` for metrics that read the rows.
    reference : callable or None
        ``f(n_samples, n_features) -> float``: the value of a healthy (random
        isotropic) table, for a metric that is not spectral. Spectral metrics
        get theirs from :func:`random_reference` without it.
    synonyms : tuple of str
        Other names recognised in history columns (e.g. ``"rankme"``).
    builtin : bool
        One of skcollapse's own metrics (they cannot be unregistered).
    """

    name: str
    func: Callable
    greater_is_better: bool = True
    description: str = ""
    alias: str = ""
    label: str = ""
    short_label: str = ""
    from_spectrum: Callable | None = None
    reference: Callable | None = None
    synonyms: tuple = ()
    builtin: bool = False
    column_pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        words = (self.alias, self.name, *self.synonyms)
        pattern = re.compile(
            r"(^|_)(" + "|".join(map(re.escape, words)) + r")(_|$)", re.IGNORECASE
        )
        object.__setattr__(self, "column_pattern", pattern)

    @property
    def spectral(self) -> bool:
        """Whether the metric is read from the singular spectrum."""
        return self.from_spectrum is not None

    @property
    def has_reference(self) -> bool:
        """Whether :func:`random_reference` knows its value for a random table."""
        return self.spectral or self.reference is not None

    @property
    def scorer_names(self) -> tuple:
        """Names of its scorer: ``(name, alias)``, ``neg_``-prefixed when lower
        is better (scikit-learn's convention for losses)."""
        prefix = "" if self.greater_is_better else "neg_"
        return tuple(dict.fromkeys(f"{prefix}{n}" for n in (self.name, self.alias)))

    def accepts(self, option) -> bool:
        """Whether ``func`` takes the keyword ``option``."""
        return takes_keyword(self.func, option)


def takes_keyword(func, option) -> bool:
    """Whether ``func`` can be called with the keyword argument ``option``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return option in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


#: Every collapse metric, in registration (display) order. Read it through
#: :func:`get_collapse_metric`; it changes with (un)registration.
COLLAPSE_METRICS: dict = {}

#: What :func:`~skcollapse.metrics.collapse_metrics` and ``skcollapse score``
#: report by default.
DEFAULT_METRICS = ("effective_rank", "information_abundance", "normalized_std")

_BY_ANY_NAME: dict = {}


def _words(entry):
    return (entry.name, entry.alias, *entry.synonyms)


def _reindex():
    _BY_ANY_NAME.clear()
    for entry in COLLAPSE_METRICS.values():
        for word in _words(entry):
            _BY_ANY_NAME[word] = entry


def register_collapse_metric(
    name,
    func,
    *,
    greater_is_better=True,
    description=None,
    alias=None,
    label=None,
    short_label=None,
    from_spectrum=None,
    reference=None,
    synonyms=(),
    _builtin=False,
):
    """Make a function of an embedding table a collapse metric everywhere.

    After ``register_collapse_metric("mean_norm", mean_norm)`` the metric is a
    key of :func:`collapse_metrics` (``metrics=["mean_norm"]``), a scorer
    (``CollapseScorer(metric="mean_norm")``, ``get_collapse_scorer("mean_norm")``),
    a :class:`~skcollapse.callbacks.CollapseMonitor` column
    (``CollapseMonitor(metrics=["mean_norm"])`` writes ``"mean_norm_item"``) and
    a column of ``skcollapse score --metrics mean_norm``.

    Parameters
    ----------
    name : str
        The metric's name: letters, digits and ``_``, starting with a letter,
        and not the name, alias or synonym of a registered metric.
    func : callable
        ``func(table) -> float`` for one ``(n_rows, n_features)`` table (a numpy
        array, or a torch tensor when the monitor reads a net's tensors). It
        may take the keywords ``center``, ``row_normalize``, ``normalize`` or
        ``relative``; they are passed to it only when it does.
    greater_is_better : bool, default=True
        Whether a larger value means less collapse (``False`` for e.g. a
        condition number; its scorer is then ``"neg_<name>"``).
    description : str, default=None
        One line for help texts; the first line of ``func``'s docstring by
        default.
    alias : str, default=None
        Short name of history columns (``"<alias>_<table>"``); ``name`` by
        default.
    label : str, default=None
        Plot-axis label; ``name`` with spaces by default.
    short_label : str, default=None
        Header of printed tables; ``alias`` by default.
    from_spectrum : callable, default=None
        For a metric read from the singular values:
        ``f(sigma, *, normalize=False, center=False, n_samples=None) -> float``.
        One spectrum then feeds every spectral metric, and scorers stream
        tables through ``partial_fit``.
    reference : callable, default=None
        ``f(n_samples, n_features) -> float``, the value of a healthy table, so
        that ``relative=True`` and ``random_reference`` work for a metric that
        is not spectral.
    synonyms : tuple of str, default=()
        Other names recognised in history columns.

    Returns
    -------
    entry : CollapseMetric
        The registry entry.

    See Also
    --------
    unregister_collapse_metric : Remove a metric registered here.
    resolve_collapse_metrics : The entries of a list of names.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import (
    ...     collapse_metrics, register_collapse_metric, unregister_collapse_metric)
    >>> def mean_norm(table):
    ...     "Mean L2 norm of the rows."
    ...     return float(np.linalg.norm(table, axis=1).mean())
    >>> register_collapse_metric("mean_norm", mean_norm)
    CollapseMetric(name='mean_norm', ...)
    >>> collapse_metrics(np.eye(3), metrics=["mean_norm"])
    {'mean_norm': 1.0}
    >>> unregister_collapse_metric("mean_norm")
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValueError(
            "name must be letters, digits and '_' starting with a letter (it "
            f"becomes part of history columns), got {name!r}."
        )
    if not callable(func):
        raise TypeError(f"func must be callable (table -> float), got {func!r}.")
    for what, value in (("from_spectrum", from_spectrum), ("reference", reference)):
        if value is not None and not callable(value):
            raise TypeError(f"{what} must be callable or None, got {value!r}.")
    alias = name if alias is None else alias
    synonyms = tuple(synonyms)
    for word in (alias, *synonyms):
        if not isinstance(word, str) or _NAME.fullmatch(word) is None:
            raise ValueError(
                f"alias and synonyms must be names like {name!r}, got {word!r}."
            )
    taken = [w for w in dict.fromkeys((name, alias, *synonyms)) if w in _BY_ANY_NAME]
    if taken:
        owner = _BY_ANY_NAME[taken[0]].name
        raise ValueError(
            f"{taken[0]!r} is already a name of the collapse metric {owner!r}; "
            "choose another name (or unregister_collapse_metric it first)."
        )
    if description is None:
        doc = inspect.getdoc(func) or ""
        description = doc.splitlines()[0] if doc else name.replace("_", " ")
    entry = CollapseMetric(
        name=name,
        func=func,
        greater_is_better=bool(greater_is_better),
        description=str(description),
        alias=alias,
        label=name.replace("_", " ") if label is None else str(label),
        short_label=alias if short_label is None else str(short_label),
        from_spectrum=from_spectrum,
        reference=reference,
        synonyms=synonyms,
        builtin=bool(_builtin),
    )
    COLLAPSE_METRICS[name] = entry
    _reindex()
    return entry


def unregister_collapse_metric(name):
    """Remove a metric added with :func:`register_collapse_metric`.

    Parameters
    ----------
    name : str
        Its name or alias.

    Raises
    ------
    ValueError
        For an unknown name, or one of skcollapse's built-in metrics.
    """
    entry = get_collapse_metric(name)
    if entry.builtin:
        raise ValueError(f"{entry.name!r} is built in; it cannot be unregistered.")
    del COLLAPSE_METRICS[entry.name]
    _reindex()


def get_collapse_metric(name) -> CollapseMetric:
    """The registry entry of a metric, by name, alias or synonym.

    Parameters
    ----------
    name : str
        ``"effective_rank"``, ``"erank"``, ``"rankme"``, ...

    Returns
    -------
    entry : CollapseMetric

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).

    Examples
    --------
    >>> from skcollapse.metrics import get_collapse_metric
    >>> get_collapse_metric("ia").name
    'information_abundance'
    """
    try:
        return _BY_ANY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{name!r} is not a collapse metric; use one of "
            f"{list(COLLAPSE_METRICS)} or their aliases "
            f"{[m.alias for m in COLLAPSE_METRICS.values()]}."
        ) from None


def get_collapse_metric_names():
    """Names of the registered collapse metrics, in display order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from skcollapse.metrics import get_collapse_metric_names
    >>> get_collapse_metric_names()[:2]
    ['effective_rank', 'information_abundance']
    """
    return list(COLLAPSE_METRICS)


def resolve_collapse_metrics(metrics=None, *, spectral=False, name="metrics"):
    """The registry entries of a list of metric names: the one check of such lists.

    Parameters
    ----------
    metrics : str, list or tuple of str, or None, default=None
        Names, aliases or synonyms; ``None`` gives the defaults of
        :func:`collapse_metrics` and ``"all"`` every registered metric.
    spectral : bool, default=False
        Accept only metrics read from the singular spectrum (for callers that
        hold a spectrum, not the rows).
    name : str, default="metrics"
        The argument's name in error messages.

    Returns
    -------
    entries : list of CollapseMetric
        In the order given, without repeats.

    Raises
    ------
    ValueError
        For an empty list, an unknown name or, with ``spectral=True``, a metric
        that reads the rows.

    Examples
    --------
    >>> from skcollapse.metrics import resolve_collapse_metrics
    >>> [m.name for m in resolve_collapse_metrics(["erank", "ia"])]
    ['effective_rank', 'information_abundance']
    """
    if metrics is None:
        metrics = DEFAULT_METRICS
    elif isinstance(metrics, str):
        metrics = list(COLLAPSE_METRICS) if metrics == "all" else [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of collapse metric names, got "
            f"{type(metrics).__name__}."
        )
    pool = {
        k: m for k, m in _BY_ANY_NAME.items() if m.spectral or not spectral
    }
    unknown = [m for m in metrics if not isinstance(m, str) or m not in pool]
    if unknown or not metrics:
        kind = "spectral collapse metrics (read from the singular spectrum)" if (
            spectral) else "collapse metrics"
        examples = [m.alias for m in dict.fromkeys(pool.values())]
        raise ValueError(
            f"{name} must be a non-empty list of {kind}, by alias or name, e.g. "
            f"{examples}; got {list(metrics)!r}"
            + (f" ({unknown[0]!r} is not one)." if unknown else ".")
        )
    return list(dict.fromkeys(pool[m] for m in metrics))


def metric_of_column(column):
    """Alias of the metric a history column holds (``"item_erank"`` -> ``"erank"``).

    The metric's alias, name or a synonym must appear as a ``_``-separated
    word; ``None`` when no registered metric's does.

    Parameters
    ----------
    column : str
        A history column, e.g. ``"erank_item"`` or ``"valid_ia_user"``.

    Returns
    -------
    alias : str or None

    Examples
    --------
    >>> from skcollapse.metrics import metric_of_column
    >>> metric_of_column("valid_rankme_item"), metric_of_column("train_loss")
    ('erank', None)
    """
    for entry in COLLAPSE_METRICS.values():
        if entry.column_pattern.search(str(column)):
            return entry.alias
    return None
