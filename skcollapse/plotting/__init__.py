"""scikit-learn style Display objects that make embedding collapse visible.

matplotlib is an optional dependency (``pip install skcollapse[plot]``); it is
imported only when something is drawn, so ``import skcollapse.plotting`` works
without it.
"""

from skcollapse.plotting._codebook import CodeUsageDisplay
from skcollapse.plotting._field_spectrum import FieldSpectrumDisplay
from skcollapse.plotting._frequency import RecommendationFrequencyDisplay
from skcollapse.plotting._history import CollapseHistoryDisplay
from skcollapse.plotting._popularity import PopularityCollapseDisplay
from skcollapse.plotting._projection import EmbeddingProjectionDisplay
from skcollapse.plotting._scaling import ScalingDisplay
from skcollapse.plotting._spectrum import SpectrumDisplay
from skcollapse.plotting._sub_embedding import (
    EmbeddingSetDiversityDisplay,
    SubEmbeddingIADisplay,
)

__all__ = [
    "CodeUsageDisplay",
    "CollapseHistoryDisplay",
    "EmbeddingProjectionDisplay",
    "EmbeddingSetDiversityDisplay",
    "FieldSpectrumDisplay",
    "PopularityCollapseDisplay",
    "RecommendationFrequencyDisplay",
    "ScalingDisplay",
    "SpectrumDisplay",
    "SubEmbeddingIADisplay",
]
