"""skorch estimators: collaborative-filtering recommenders and CTR classifiers."""

from skcollapse.exceptions import ModelFitError
from skcollapse.nn import CFLoss
from skcollapse.recommenders._baselines import (
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
)
from skcollapse.recommenders._ctr import (
    DCNv2Classifier,
    DeepFMClassifier,
    DNNClassifier,
    FinalMLPClassifier,
    FMClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
)
from skcollapse.recommenders._lightgcn import LightGCNRecommender
from skcollapse.recommenders._mf import MFRecommender
from skcollapse.recommenders._regularized import RegularizedNetMixin
from skcollapse.recommenders._two_tower import TwoTowerRecommender

__all__ = [
    "CFLoss",
    "DCNv2Classifier",
    "DNNClassifier",
    "DeepFMClassifier",
    "EASERecommender",
    "FMClassifier",
    "FinalMLPClassifier",
    "IPNNClassifier",
    "ItemKNNRecommender",
    "LightGCNRecommender",
    "MFRecommender",
    "ModelFitError",
    "NFwFMClassifier",
    "PopularityRecommender",
    "RegularizedNetMixin",
    "TwoTowerRecommender",
    "xDeepFMClassifier",
]
