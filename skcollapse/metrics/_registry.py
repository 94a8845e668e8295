"""The one list of collapse metrics that every other part of skcollapse reads.

Each entry says what a metric is called where: its function name
(``"effective_rank"``), the short alias used in history columns and scorer names
(``"erank"``: ``CollapseMonitor`` writes ``"erank_item"``, ``get_collapse_scorer("erank")``),
the label of a plot axis, the header of a printed table, whether
:func:`~skcollapse.metrics.random_reference` knows its value for a random table,
and, for spectral metrics, the function that reads it from singular values.
The callback, the history plot, the CLI tables and the scorer aliases all derive
their vocabularies from :data:`COLLAPSE_METRICS`; adding a metric here adds it
everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from skcollapse.metrics._spectrum import (
    condition_number_from_spectrum,
    erank_from_spectrum,
    ia_from_spectrum,
    stable_rank_from_spectrum,
)

__all__ = [
    "COLLAPSE_METRICS",
    "DEFAULT_METRICS",
    "SPECTRAL_METRICS",
    "CollapseMetric",
    "column_pattern",
    "get_collapse_metric",
    "metric_of_column",
]


@dataclass(frozen=True)
class CollapseMetric:
    """How one collapse metric is named, labelled and computed.

    Attributes
    ----------
    name : str
        Function name in :mod:`skcollapse.metrics` and key of
        :func:`~skcollapse.metrics.collapse_metrics`' result.
    alias : str
        Short lowercase name: history columns (``"<alias>_<table>"``) and scorer
        aliases.
    label : str
        Long label, e.g. of a plot axis.
    short_label : str
        Column header of printed tables.
    has_reference : bool
        :func:`~skcollapse.metrics.random_reference` gives its random-table value.
    from_spectrum : callable or None
        ``f(sigma, *, normalize, center, n_samples) -> float`` for spectral
        metrics; ``None`` for metrics that read the rows themselves.
    synonyms : tuple of str
        Other names recognised in history columns (e.g. ``"rankme"``).
    """

    name: str
    alias: str
    label: str
    short_label: str
    has_reference: bool
    from_spectrum: Callable | None = None
    synonyms: tuple = ()

    @property
    def spectral(self) -> bool:
        """Whether the metric is read from the singular spectrum."""
        return self.from_spectrum is not None


#: Every collapse metric, in display order.
COLLAPSE_METRICS = {
    m.name: m
    for m in (
        CollapseMetric(
            "effective_rank", "erank", "effective rank", "erank", True,
            erank_from_spectrum, synonyms=("rankme",),
        ),
        CollapseMetric(
            "information_abundance", "ia", "information abundance", "IA", True,
            ia_from_spectrum,
        ),
        CollapseMetric(
            "stable_rank", "srank", "stable rank", "srank", True,
            stable_rank_from_spectrum,
        ),
        CollapseMetric(
            "condition_number", "cond", "condition number", "cond", True,
            condition_number_from_spectrum,
        ),
        CollapseMetric(
            "normalized_std", "norm_std", "normalized std", "norm_std", True, None,
        ),
    )
}

#: Names of the metrics read from the singular spectrum (one spectrum feeds all).
SPECTRAL_METRICS = tuple(m.name for m in COLLAPSE_METRICS.values() if m.spectral)

#: What :func:`~skcollapse.metrics.collapse_metrics` and ``skcollapse score``
#: report by default.
DEFAULT_METRICS = ("effective_rank", "information_abundance", "normalized_std")

_BY_ANY_NAME = {
    key: m
    for m in COLLAPSE_METRICS.values()
    for key in (m.name, m.alias, *m.synonyms)
}

_COLUMN_PATTERNS = {
    m.alias: re.compile(
        r"(^|_)(" + "|".join(map(re.escape, (m.alias, m.name, *m.synonyms)))
        + r")(_|$)",
        re.IGNORECASE,
    )
    for m in COLLAPSE_METRICS.values()
}


def get_collapse_metric(name) -> CollapseMetric:
    """The registry entry of a metric, by name, alias or synonym.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    try:
        return _BY_ANY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{name!r} is not a collapse metric; use one of "
            f"{sorted(COLLAPSE_METRICS)} or their aliases "
            f"{[m.alias for m in COLLAPSE_METRICS.values()]}."
        ) from None


def metric_of_column(column):
    """Alias of the metric a history column holds (``"item_erank"`` -> ``"erank"``).

    The metric's alias, name or a synonym must appear as a ``_``-separated word;
    ``None`` when no metric does.
    """
    for alias, pattern in _COLUMN_PATTERNS.items():
        if pattern.search(str(column)):
            return alias
    return None


def column_pattern(alias):
    """The compiled pattern that finds metric ``alias`` in a column name."""
    return _COLUMN_PATTERNS[alias]
