"""skorch estimators: collaborative-filtering recommenders and CTR classifiers."""

from skcollapse.recommenders._base import ModelFitError, RegularizedNetMixin

__all__ = ["ModelFitError", "RegularizedNetMixin"]
