"""skorch estimators: collaborative-filtering recommenders and CTR classifiers."""

__all__ = []
