"""skorch estimators: collaborative-filtering recommenders and CTR classifiers."""

from skcollapse.recommenders._base import ModelFitError, RegularizedNetMixin
from skcollapse.recommenders._ctr import (
    DCNv2Classifier,
    DNNClassifier,
    FinalMLPClassifier,
    FMClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
)

__all__ = [
    "DCNv2Classifier",
    "DNNClassifier",
    "FMClassifier",
    "FinalMLPClassifier",
    "IPNNClassifier",
    "ModelFitError",
    "NFwFMClassifier",
    "RegularizedNetMixin",
    "xDeepFMClassifier",
]
