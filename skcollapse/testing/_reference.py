"""Independent float64 references for the spectral metrics, for tests.

The code under test computes singular values through a Gram matrix, an
eigen-decomposition, torch or dask; these references take the plain
``np.linalg.svd`` of the float64 matrix and the textbook formulas, so a test
compares two different computations, never the package against itself:

- effective rank (Roy & Vetterli, 2007): ``exp(H(p))`` with
  ``p = s**power / sum(s**power)``, zero singular values left out;
- information abundance (Guo et al., 2024): ``sum(s) / max(s)``.

Examples
--------
>>> import numpy as np
>>> from skcollapse.testing import (
...     reference_effective_rank,
...     reference_information_abundance,
...     reference_singular_values,
... )
>>> E = np.diag([3.0, 3.0, 0.0])
>>> reference_singular_values(E)
array([3., 3., 0.])
>>> round(reference_effective_rank(E), 6)
2.0
>>> reference_information_abundance(E)
2.0
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "reference_effective_rank",
    "reference_erank_of_spectrum",
    "reference_information_abundance",
    "reference_singular_values",
]


def reference_singular_values(E, *, center=False, row_normalize=False):
    """Singular values of ``E`` in float64 by ``np.linalg.svd``, largest first.

    Parameters
    ----------
    E : array-like of shape (n_samples, n_features)
        The embedding matrix (anything ``np.asarray`` reads).
    center : bool, default=False
        Subtract the column means first (after row normalisation).
    row_normalize : bool, default=False
        Scale every row to unit Euclidean norm first (zero rows stay zero).

    Returns
    -------
    s : ndarray of shape (min(n_samples, n_features),)
    """
    A = np.array(E, dtype=np.float64)
    if row_normalize:
        A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
    if center:
        A = A - A.mean(axis=0)
    return np.linalg.svd(A, compute_uv=False)


def reference_erank_of_spectrum(s, power=1):
    """Effective rank ``exp(H(p))`` of a given spectrum ``s``.

    Parameters
    ----------
    s : array-like of shape (k,)
        Non-negative singular values.
    power : float, default=1
        ``p`` is built from ``s**power`` (2 gives the eigenvalue spectrum).

    Returns
    -------
    erank : float
    """
    s = np.asarray(s, dtype=np.float64) ** power
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def reference_effective_rank(E, power=1, **kwargs):
    """Effective rank of ``E`` from :func:`reference_singular_values`.

    Parameters
    ----------
    E : array-like of shape (n_samples, n_features)
    power : float, default=1
        See :func:`reference_erank_of_spectrum`.
    **kwargs
        ``center`` and ``row_normalize``, passed to
        :func:`reference_singular_values`.

    Returns
    -------
    erank : float
    """
    return reference_erank_of_spectrum(reference_singular_values(E, **kwargs), power)


def reference_information_abundance(E, **kwargs):
    """Information abundance ``sum(s) / max(s)`` of ``E``.

    Parameters
    ----------
    E : array-like of shape (n_samples, n_features)
    **kwargs
        ``center`` and ``row_normalize``, passed to
        :func:`reference_singular_values`.

    Returns
    -------
    ia : float
    """
    s = reference_singular_values(E, **kwargs)
    return float(s.sum() / s.max())
