"""Collapse scorers by name: every registered collapse metric has one.

scikit-learn keeps its scorers in a registry read by ``sklearn.metrics.get_scorer``
(and offers no public way to add to it); skcollapse's equivalent reads the
collapse-metric registry, so :func:`~skcollapse.metrics.register_collapse_metric`
adds a scorer name too.
"""

from __future__ import annotations

from skcollapse.metrics._registry import COLLAPSE_METRICS
from skcollapse.metrics._scorers import CollapseScorer, ErankScorer, IAScorer
from skcollapse.utils._sklearn_compat import validate_params

__all__ = [
    "get_collapse_scorer",
    "get_collapse_scorer_names",
    "get_scorer",
    "get_scorer_names",
]

#: The named forms, by metric name: ``get_collapse_scorer`` returns them.
_NAMED = {cls.metric: cls for cls in (ErankScorer, IAScorer)}


def _scorer_names():
    """``{scorer name: registry entry}`` of every registered collapse metric."""
    return {n: m for m in COLLAPSE_METRICS.values() for n in m.scorer_names}


def get_collapse_scorer_names():
    """Names accepted by :func:`get_collapse_scorer`: every registered metric.

    A metric's name and alias; ``neg_``-prefixed for a metric where lower is
    better (``"neg_condition_number"``), as scikit-learn names its losses.

    Returns
    -------
    list of str
        Sorted scorer names (aliases included).

    Examples
    --------
    >>> from skcollapse.metrics import get_collapse_scorer_names
    >>> get_collapse_scorer_names()
    ['effective_rank', 'erank', 'ia', 'information_abundance', 'neg_cond', \
'neg_condition_number', 'norm_std', 'normalized_std', 'srank', 'stable_rank']
    """
    return sorted(_scorer_names())


@validate_params({"name": [str]}, prefer_skip_nested_validation=True)
def get_collapse_scorer(name, **params):
    """A fresh collapse scorer by name, e.g. ``get_collapse_scorer("ia", table="item")``.

    Every registered collapse metric has one (:func:`register_collapse_metric`
    adds it). scikit-learn resolves a ``scoring="..."`` string only among its
    own scorers (``sklearn.metrics.get_scorer``) and has no public way to add
    names, so ``GridSearchCV(scoring="effective_rank")`` is an error there.
    Pass the scorer object instead, alone or in a dict with other scorers::

        GridSearchCV(est, grid, scoring={
            "ndcg": ranking_scorer("ndcg"),
            "erank": get_collapse_scorer("effective_rank", table="item"),
        }, refit="ndcg")

    Parameters
    ----------
    name : str
        One of :func:`get_collapse_scorer_names`, e.g. ``"effective_rank"``
        (alias ``"erank"``), ``"information_abundance"`` (``"ia"``) or
        ``"neg_condition_number"``.
    **params
        Parameters of the scorer (``table``, ``reduce``, ...). For metrics
        other than erank and IA, the others are the metric's options and go to
        ``metric_params`` (``get_collapse_scorer("srank", center=True)``).

    Returns
    -------
    CollapseScorer
        An unfitted scorer (an ``ErankScorer`` or ``IAScorer`` for those two
        metrics), usable as ``scoring=`` or in ``EpochScoring``.

    Examples
    --------
    >>> from skcollapse.metrics import get_collapse_scorer
    >>> get_collapse_scorer("erank", table="item")
    ErankScorer(table='item')
    >>> get_collapse_scorer("neg_cond", center=True)
    CollapseScorer(metric='condition_number', metric_params={'center': True})
    """
    names = _scorer_names()
    if name not in names:
        hint = ""
        if f"neg_{name}" in names:
            hint = f" Scorers are greater-is-better: use 'neg_{name}'."
        raise ValueError(
            f"The 'name' parameter of get_collapse_scorer must be a str among "
            f"{sorted(names)}. Got {name!r} instead.{hint}"
        )
    entry = names[name]
    if entry.name in _NAMED:
        return _NAMED[entry.name](**params)
    own = {k: params.pop(k) for k in ("table", "reduce", "metric_params") if k in params}
    if params:
        own["metric_params"] = {**(own.get("metric_params") or {}), **params}
    return CollapseScorer(metric=entry.name, **own)


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
    CollapseScorer
    """
    import warnings

    warnings.warn(
        _RENAMED.format(old="get_scorer", new="get_collapse_scorer"),
        FutureWarning,
        stacklevel=2,
    )
    return get_collapse_scorer(name, **params)
