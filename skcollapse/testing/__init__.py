"""Reusable behavioural test mixins (import only from tests; needs pytest)."""

from skcollapse.testing._collapse_metric_tests import CollapseMetricTests
from skcollapse.testing._recommender import RecommenderTestMixin

__all__ = ["CollapseMetricTests", "RecommenderTestMixin"]
