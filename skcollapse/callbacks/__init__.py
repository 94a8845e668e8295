"""skorch callbacks: collapse monitoring and validation ranking during training."""

from skcollapse.callbacks._collapse_monitor import CollapseMonitor
from skcollapse.callbacks._ranking_validation import RankingValidation

__all__ = ["CollapseMonitor", "RankingValidation"]
