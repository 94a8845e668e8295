"""skorch estimators: collaborative-filtering recommenders and CTR classifiers."""

from skcollapse.recommenders._base import ModelFitError, RegularizedNetMixin
from skcollapse.recommenders._cf import (
    CFLoss,
    LightGCNRecommender,
    MFRecommender,
)
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
    "CFLoss",
    "DCNv2Classifier",
    "DNNClassifier",
    "FMClassifier",
    "FinalMLPClassifier",
    "IPNNClassifier",
    "LightGCNRecommender",
    "MFRecommender",
    "ModelFitError",
    "NFwFMClassifier",
    "RegularizedNetMixin",
    "xDeepFMClassifier",
]
