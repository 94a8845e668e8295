"""Synthetic embedding tables with a planted, known amount of collapse."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from skcollapse.utils._sklearn_compat import (
    int_interval,
    real_interval,
    validate_params,
)


@validate_params(
    {
        "n_samples": [int_interval(1, None, closed="left")],
        "n_features": [int_interval(1, None, closed="left")],
        "effective_rank": [int_interval(1, None, closed="left")],
        "noise": [real_interval(0, None, closed="left")],
        "dtype": "no_validation",  # a dtype-like, resolved and checked below
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_collapsed_embeddings(
    n_samples=1000,
    n_features=64,
    *,
    effective_rank=8,
    noise=1e-3,
    dtype=np.float64,
    random_state=None,
):
    """Generate an embedding table whose rows span only a few directions.

    The table is ``Z @ W.T + noise * N`` where ``Z`` is an
    ``(n_samples, effective_rank)`` standard Gaussian matrix, ``W`` an
    ``(n_features, effective_rank)`` matrix with orthonormal columns drawn at
    random, and ``N`` an ``(n_samples, n_features)`` standard Gaussian matrix. So the
    signal has ``effective_rank`` directions of (nearly) equal strength and the
    remaining ``n_features - effective_rank`` directions only carry ``noise``: the
    effective rank and information abundance of the table are close to
    ``effective_rank`` when ``noise`` is small. ``effective_rank=n_features`` gives a
    healthy, isotropic Gaussian table.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of rows (users, items, categories).
    n_features : int, default=64
        Embedding dimension.
    effective_rank : int, default=8
        Number of signal directions, between 1 and ``n_features``.
    noise : float, default=1e-3
        Standard deviation of the isotropic Gaussian noise added to every entry.
    dtype : {np.float64, np.float32}, default=np.float64
        Floating dtype of the result; float32 is generated directly, without a
        float64 intermediate, so large tables stay cheap.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible output.

    Returns
    -------
    E : ndarray of shape (n_samples, n_features)
        The embedding table.

    See Also
    --------
    skcollapse.metrics.effective_rank : Measure the collapse of the table.

    Examples
    --------
    >>> from skcollapse.datasets import make_collapsed_embeddings
    >>> from skcollapse.metrics import effective_rank
    >>> E = make_collapsed_embeddings(2000, 32, effective_rank=4, random_state=0)
    >>> E.shape
    (2000, 32)
    >>> round(effective_rank(E))
    4
    """
    if effective_rank > n_features:
        raise ValueError(
            f"effective_rank must be at most n_features={n_features}, "
            f"got {effective_rank}."
        )
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}.")
    rs = check_random_state(random_state)
    # One seeded Generator drives everything, so float32 output is drawn directly.
    gen = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
    if effective_rank == n_features:
        W = np.linalg.qr(gen.standard_normal((n_features, n_features)))[0]
    else:
        W = np.linalg.qr(gen.standard_normal((n_features, effective_rank)))[0]
    W = W.astype(dtype, copy=False)
    Z = gen.standard_normal((n_samples, effective_rank), dtype=dtype)
    E = Z @ W.T
    if noise > 0:
        E += dtype.type(noise) * gen.standard_normal(
            (n_samples, n_features), dtype=dtype
        )
    return E
