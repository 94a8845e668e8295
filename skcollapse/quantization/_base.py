"""What every quantizer shares: fitted-state checks, code validation, the
deduplication level and the feature names of its output."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin

from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._sklearn_compat import (
    _fit_context,
    check_is_fitted,
    validate_data,
)
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


#: Docstring parts of the quantizers, for what :class:`QuantizerMixin` does
#: for all of them (filled with :func:`quantizer_doc`): the deduplication
#: level and the attributes ``fit`` sets from its input.
_QUANTIZER_DOC_PARTS = {
    "deduplicate": """
        deduplicate : bool, default=False
            Append a level numbering the items that share a full ID (``0, 1, ...``
            in row order of the ``X`` given to ``transform``), TIGER's fix, so every
            item of that ``X`` gets a unique tuple. Quantize the whole catalogue in
            one call to keep the numbering stable.
    """,
    "features_in": """
        n_features_in_ : int
            Number of features seen during fit.
        feature_names_in_ : ndarray of shape (n_features_in_,)
            Names of features seen during fit, when ``X`` has string column names.
    """,
}

#: Class decorator filling ``{deduplicate}`` and ``{features_in}``.
quantizer_doc = fill_doc(**_QUANTIZER_DOC_PARTS)


class QuantizerMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """Shared behaviour of the residual quantizers (``transform`` gives codes).

    The public methods check their input here, once for every quantizer, and
    call what each quantizer does differently: ``_fit(X)`` (``X`` validated),
    ``_codes(X)`` and ``_residuals(X)`` (a fitted quantizer, ``X`` validated),
    ``_decode(codes)`` (codes checked, a deduplication column dropped).
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the quantizer on the item embeddings.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            Item embeddings.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted quantizer.
        """
        self._fit(validate_data(self, X, dtype=[np.float64, np.float32]))
        return self

    def _check_input(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def transform(self, X):
        """Semantic IDs of ``X``: the code chosen at every level.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            Item embeddings.

        Returns
        -------
        codes : ndarray of shape (n_items, n_levels) or (n_items, n_levels + 1)
            int64 codes; the extra column is the deduplication level.
        """
        return self._finish_codes(self._codes(self._check_input(X)))

    def residuals(self, X):
        """The input of each level: what the codes chosen above it left.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)

        Returns
        -------
        residuals : list of ndarray of shape (n_items, n_features) or (n_items, latent_dim)
            ``n_levels`` arrays; the first is ``X`` (:class:`ResidualKMeans`)
            or the encoder's output (:class:`RQVAE`, whose levels quantize the
            latent space).
        """
        return self._residuals(self._check_input(X))

    def inverse_transform(self, codes):
        """Reconstruct embeddings from their codes.

        :class:`ResidualKMeans` sums the chosen centres; :class:`RQVAE` decodes
        the sum of the chosen codes back to the input space.

        Parameters
        ----------
        codes : array-like of shape (n_items, n_levels)
            Integer codes (a deduplication column is accepted and ignored).

        Returns
        -------
        X_reconstructed : ndarray of shape (n_items, n_features_in_)
        """
        return self._decode(self._check_codes_in(codes))

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
