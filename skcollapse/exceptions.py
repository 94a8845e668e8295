"""Exceptions of skcollapse (as :mod:`sklearn.exceptions`)."""

__all__ = ["EmbeddingsProtocolError", "ModelFitError"]


class ModelFitError(RuntimeError):
    """Raised when training diverges (non-finite loss or embeddings).

    The estimator is left unusable rather than returning NaN embeddings; lower
    ``lr``, the regularizer weight, or use a different loss and fit again.
    """


class EmbeddingsProtocolError(ValueError, TypeError):
    """Raised when ``get_embeddings()`` returns no embedding table.

    The object claims the embeddings protocol (``get_embeddings() -> dict[str,
    array]``) but gives nothing to measure. It is both a ``ValueError`` (what
    the scorers raised) and a ``TypeError`` (what the Displays raised) before
    one accessor served both, as scikit-learn's ``InvalidParameterError`` is.
    """
