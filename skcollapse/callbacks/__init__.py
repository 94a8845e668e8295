"""skorch callbacks: collapse monitoring and validation ranking during training."""

from skcollapse.callbacks._collapse_monitor import CollapseMonitor
from skcollapse.callbacks._probe import CollapseProbe, probe_collapse
from skcollapse.callbacks._ranking_validation import RankingValidation

__all__ = ["CollapseMonitor", "CollapseProbe", "RankingValidation", "probe_collapse"]
