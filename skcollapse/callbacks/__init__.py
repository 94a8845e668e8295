"""skorch callbacks, e.g. collapse monitoring during training."""

from skcollapse.callbacks._collapse_monitor import CollapseMonitor

__all__ = ["CollapseMonitor"]
