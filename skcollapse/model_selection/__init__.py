"""Splitters for interaction data that follow scikit-learn's CV-splitter protocol."""

from skcollapse.model_selection._split import (
    LeaveLastOut,
    PerUserKFold,
    PerUserShuffleSplit,
    TemporalSplit,
    train_test_split_interactions,
)

__all__ = [
    "LeaveLastOut",
    "PerUserKFold",
    "PerUserShuffleSplit",
    "TemporalSplit",
    "train_test_split_interactions",
]
