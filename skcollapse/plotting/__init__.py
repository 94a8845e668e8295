"""scikit-learn style Display objects that make embedding collapse visible.

matplotlib is an optional dependency (``pip install skcollapse[plot]``); it is
imported only when something is drawn, so ``import skcollapse.plotting`` works
without it.
"""

from skcollapse.plotting._field_spectrum import FieldSpectrumDisplay
from skcollapse.plotting._history import CollapseHistoryDisplay
from skcollapse.plotting._popularity import PopularityCollapseDisplay
from skcollapse.plotting._projection import EmbeddingProjectionDisplay
from skcollapse.plotting._spectrum import SpectrumDisplay

__all__ = [
    "CollapseHistoryDisplay",
    "EmbeddingProjectionDisplay",
    "FieldSpectrumDisplay",
    "PopularityCollapseDisplay",
    "SpectrumDisplay",
]
