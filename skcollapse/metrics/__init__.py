"""Collapse metrics (pure functions) and the scorers built on them."""

from skcollapse.metrics._collapse import effective_rank, information_abundance
from skcollapse.metrics._spectrum import singular_values

__all__ = ["effective_rank", "information_abundance", "singular_values"]
