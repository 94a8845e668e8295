"""Exceptions of skcollapse (as :mod:`sklearn.exceptions`)."""

__all__ = ["ModelFitError"]


class ModelFitError(RuntimeError):
    """Raised when training diverges (non-finite loss or embeddings).

    The estimator is left unusable rather than returning NaN embeddings; lower
    ``lr``, the regularizer weight, or use a different loss and fit again.
    """
