"""What a *healthy* table scores: metrics of a random Gaussian matrix of the same shape.

Guo et al. (ICML 2024) judge a learned embedding table against a randomly
initialised one. :func:`random_reference` returns the expected value of a spectral
metric for an ``(n_samples, n_features)`` matrix with i.i.d. standard Gaussian
entries, so that ``relative=True`` can report e.g. "this table's IA is 35% of a
random table's".

Without row normalisation the singular values of an ``n x m`` Gaussian matrix
(``n >= m``) have exactly the law of those of an ``m x m`` bidiagonal matrix with
diagonal ``chi_n, chi_{n-1}, ..., chi_{n-m+1}`` and off-diagonal
``chi_{m-1}, ..., chi_1`` (Dumitriu & Edelman, 2002), so the expectation is
estimated from ``n_draws`` cheap ``O(m^2)`` draws whatever ``n`` is. Centering an
``n``-row Gaussian matrix gives the spectrum of an ``(n - 1)``-row one. With
``row_normalize=True`` (rows uniform on the sphere) the matrix itself is simulated,
in chunks, at a cost of ``O(n m^2)`` per draw.
"""

from __future__ import annotations

import numbers
from functools import lru_cache

import numpy as np
from scipy.linalg import eigh_tridiagonal

from skcollapse.metrics._gram import GramAccumulator
from skcollapse.metrics._registry import get_collapse_metric, takes_keyword
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_params,
)

__all__ = ["random_reference"]

#: Largest number of matrix entries simulated per draw before draws are reduced.
_SIM_ELEMENTS = 1 << 24


def _bidiagonal_singular_values(n, m, rng):
    """Singular values of an ``n x m`` (``n >= m``) Gaussian matrix, one draw."""
    diag = np.sqrt(rng.chisquare(np.arange(n, n - m, -1, dtype=np.float64)))
    off = np.sqrt(rng.chisquare(np.arange(m - 1, 0, -1, dtype=np.float64)))
    # B^T B of the upper bidiagonal B is tridiagonal.
    main = diag**2
    main[1:] += off**2
    sub = diag[:-1] * off
    eig = eigh_tridiagonal(main, sub, eigvals_only=True)[::-1]
    return np.sqrt(np.clip(eig, 0.0, None))


def _simulated_singular_values(n, d, center, row_normalize, rng):
    acc = GramAccumulator(d, center=center, row_normalize=row_normalize)
    rows = max(256, (1 << 18) // d)
    for start in range(0, n, rows):
        acc.update(rng.standard_normal((min(rows, n - start), d)))
    return acc.singular_values()[: min(n, d)]


@lru_cache(maxsize=512)
def _reference_spectra(n, d, center, row_normalize, n_draws, seed):
    rng = np.random.default_rng(seed)
    if row_normalize or (center and n < 2):
        draws = max(1, min(n_draws, _SIM_ELEMENTS // max(n * d, 1)))
        out = [_simulated_singular_values(n, d, center, row_normalize, rng)
               for _ in range(draws)]
    else:
        n_eff = n - 1 if center else n
        big, small = max(n_eff, d), min(n_eff, d)
        out = [_bidiagonal_singular_values(big, small, rng) for _ in range(n_draws)]
        if center and n_eff < min(n, d):  # the centered matrix lost one dimension
            out = [np.concatenate([s, [0.0]]) for s in out]
    return tuple(out)


def _check_shape(shape):
    if hasattr(shape, "shape") and not isinstance(shape, tuple):
        shape = tuple(shape.shape)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(
            f"shape must be a (n_samples, n_features) tuple or a 2-D array, got {shape!r}."
        ) from None
    if len(shape) != 2 or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
        for s in shape
    ):
        raise ValueError(
            f"shape must be two positive integers (n_samples, n_features), got {shape}."
        )
    return int(shape[0]), int(shape[1])


@validate_params(
    {
        "shape": "no_validation",  # a tuple or a table: checked by _check_shape
        "metric": [str],  # a registered metric with a reference: checked below
        "spectrum": [StrOptions({"sv", "eig"})],
        "center": ["boolean"],
        "row_normalize": ["boolean"],
        "normalize": ["boolean"],
        "n_draws": [int_interval(1, None, closed="left")],
        "random_state": [int_interval(0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def random_reference(
    shape,
    metric="effective_rank",
    *,
    spectrum="sv",
    center=False,
    row_normalize=False,
    normalize=False,
    n_draws=32,
    random_state=0,
):
    """Expected value of a collapse metric for a random Gaussian matrix.

    Parameters
    ----------
    shape : tuple of (int, int) or array-like
        ``(n_samples, n_features)``, or a table whose shape is used.
    metric : str, default="effective_rank"
        A registered collapse metric with a reference: every spectral one
        (``"effective_rank"``, ``"information_abundance"``, ``"stable_rank"``,
        ``"condition_number"``, and those registered with ``from_spectrum``)
        and those registered with ``reference=``. ``"normalized_std"`` returns
        the isotropic reference ``1 / sqrt(n_features)`` of Chen & He (2021).
    spectrum : {"sv", "eig"}, default="sv"
        Passed to :func:`effective_rank`.
    center : bool, default=False
        Reference for the centered metric.
    row_normalize : bool, default=False
        Reference for the row-normalised metric (simulated; see Notes).
    normalize : bool, default=False
        Reference for the metric divided by its maximum.
    n_draws : int, default=32
        Number of random matrices averaged.
    random_state : int, default=0
        Seed of the draws (a non-negative int: results are cached per argument
        set).

    Returns
    -------
    float
        The Monte-Carlo estimate of the expected metric.

    Notes
    -----
    With ``row_normalize=True`` each draw simulates the whole matrix, and for
    tables with more than ``2**24`` entries a single draw is used (its
    fluctuation is then far below any collapse worth reporting).

    References
    ----------
    I. Dumitriu and A. Edelman, "Matrix models for beta ensembles", J. Math.
    Phys. 43, 2002.

    Examples
    --------
    >>> from skcollapse.metrics import random_reference
    >>> round(random_reference((100000, 16), "information_abundance"), 1)
    15.8
    """
    n, d = _check_shape(shape)
    entry = get_collapse_metric(metric)
    if not entry.has_reference:
        raise ValueError(
            f"metric={metric!r} has no random-table reference: it is not "
            "spectral and was registered without reference=."
        )
    if not entry.spectral:  # normalized_std: 1 / sqrt(d)
        return float(entry.reference(n, d))
    func = entry.from_spectrum
    kwargs = {"spectrum": spectrum} if takes_keyword(func, "spectrum") else {}
    spectra = _reference_spectra(
        n, d, bool(center), bool(row_normalize), int(n_draws), int(random_state)
    )
    values = [func(s, normalize=normalize, center=center, n_samples=n, **kwargs)
              for s in spectra]
    return float(np.mean(values))
