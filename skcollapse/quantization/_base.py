"""What every quantizer shares: fitted-state checks, code validation, the
deduplication level and the feature names of its output."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin

from skcollapse.utils._sklearn_compat import check_is_fitted
from skcollapse.utils._validation import check_codes


def dedup_level(codes):
    """Number the items that share a full code tuple ``0, 1, 2, ...`` in row order.

    TIGER's fix for semantic-ID collisions (Rajput et al., 2023): an extra
    level makes every item's tuple unique. Items with a unique ID get ``0``.
    """
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    order = np.argsort(inverse, kind="stable")
    sorted_groups = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - first
    return rank


class QuantizerMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """Shared behaviour of the residual quantizers (``transform`` gives codes)."""

    @property
    def _n_features_out(self):
        return self.n_levels + int(bool(self.deduplicate))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # codes are int64
        tags.input_tags.sparse = False
        tags.requires_fit = True
        return tags

    def _finish_codes(self, codes):
        codes = np.asarray(codes, dtype=np.int64)
        if self.deduplicate:
            codes = np.column_stack([codes, dedup_level(codes)])
        return codes

    def _check_codes_in(self, codes):
        """Validate ``codes`` for ``inverse_transform``; drop a dedup column."""
        check_is_fitted(self)
        arr = check_codes(codes, None, name="codes")
        n = self.n_levels
        allowed = {n, n + 1} if self.deduplicate else {n}
        if arr.shape[1] not in allowed:
            raise ValueError(
                f"codes must have {' or '.join(map(str, sorted(allowed)))} columns "
                f"(n_levels={n}{', plus the deduplication level' if self.deduplicate else ''}), "
                f"got {arr.shape[1]}."
            )
        arr = arr[:, :n]
        if arr.max() >= self.codebook_size:
            raise ValueError(
                f"codes holds code {int(arr.max())}, outside [0, codebook_size="
                f"{self.codebook_size})."
            )
        return arr
