"""Splitters for interaction data: scikit-learn CV splitters, and a per-user
validation hold-out for the ``train_split`` of skorch estimators."""

from skcollapse.model_selection._split import (
    LeaveLastOut,
    PerUserKFold,
    PerUserShuffleSplit,
    TemporalSplit,
    train_test_split_interactions,
)
from skcollapse.model_selection._valid_split import PerUserValidSplit

__all__ = [
    "LeaveLastOut",
    "PerUserKFold",
    "PerUserShuffleSplit",
    "PerUserValidSplit",
    "TemporalSplit",
    "train_test_split_interactions",
]
