"""Splitters for interaction data: scikit-learn CV splitters, and a per-user
validation hold-out for the ``train_split`` of skorch estimators."""

from skcollapse.model_selection._protocol import HoldoutProtocol, paired_comparison
from skcollapse.model_selection._scaling import PAPER_PROTOCOL, scaling_curve
from skcollapse.model_selection._split import (
    LeaveLastOut,
    PerUserKFold,
    PerUserShuffleSplit,
    TemporalSplit,
    train_test_split_interactions,
)
from skcollapse.model_selection._valid_split import PerUserValidSplit

__all__ = [
    "PAPER_PROTOCOL",
    "HoldoutProtocol",
    "LeaveLastOut",
    "PerUserKFold",
    "PerUserShuffleSplit",
    "PerUserValidSplit",
    "TemporalSplit",
    "paired_comparison",
    "scaling_curve",
    "train_test_split_interactions",
]
