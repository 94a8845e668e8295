"""Semantic IDs by residual quantization, and how their codebooks collapse.

Generative retrieval turns each item embedding into a short tuple of discrete
codes (a semantic ID). :class:`ResidualKMeans` and :class:`RQVAE` are
scikit-learn transformers producing them (``transform`` gives the codes,
``inverse_transform`` the reconstruction); the functions measure codebook
collapse (unused codes, skewed code distributions, items sharing an ID) and
:class:`CodebookScorer` makes any of them a ``scoring=`` for ``GridSearchCV``.
"""

from skcollapse.quantization._metrics import (
    CodebookScorer,
    code_perplexity,
    code_usage,
    codebook_erank,
    codebook_metrics,
    collision_rate,
    largest_collision_group,
    reconstruction_error,
)
from skcollapse.quantization._residual_kmeans import ResidualKMeans
from skcollapse.quantization._rqvae import RQVAE

__all__ = [
    "RQVAE",
    "CodebookScorer",
    "ResidualKMeans",
    "code_perplexity",
    "code_usage",
    "codebook_erank",
    "codebook_metrics",
    "collision_rate",
    "largest_collision_group",
    "reconstruction_error",
]
