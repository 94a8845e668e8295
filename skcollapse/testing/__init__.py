"""Reusable behavioural test mixins (import only from tests; needs pytest)."""

from skcollapse.testing._collapse_metric_tests import CollapseMetricTests

__all__ = ["CollapseMetricTests"]
