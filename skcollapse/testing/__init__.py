"""Reusable test harness: behavioural mixins, references and discovery.

Imports without pytest (the docs import every public name); the test classes
that use a mixin need pytest, which imports it when they are defined.
"""

from skcollapse.testing._collapse_metric_tests import CollapseMetricTests
from skcollapse.testing._ctr import CTRClassifierTestMixin
from skcollapse.testing._discovery import all_estimators
from skcollapse.testing._interaction_checks import interaction_checks, is_recommender
from skcollapse.testing._recommender import RecommenderTestMixin
from skcollapse.testing._reference import (
    reference_effective_rank,
    reference_erank_of_spectrum,
    reference_information_abundance,
    reference_singular_values,
)
from skcollapse.testing._regularizer import RegularizerTests

__all__ = [
    "CTRClassifierTestMixin",
    "CollapseMetricTests",
    "RecommenderTestMixin",
    "RegularizerTests",
    "all_estimators",
    "interaction_checks",
    "is_recommender",
    "reference_effective_rank",
    "reference_erank_of_spectrum",
    "reference_information_abundance",
    "reference_singular_values",
]
