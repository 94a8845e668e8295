"""Alignment and uniformity on the hypersphere (Wang & Isola, ICML 2020).

Row-level diagnostics of an embedding table, beside the spectral metrics of
:mod:`._collapse`: how close the two sides of positive pairs are
(:func:`alignment`) and how evenly the rows spread over the sphere
(:func:`uniformity`). Numpy arrays, torch tensors (on their device) and dask
arrays are accepted, as by the other metrics.
"""

from __future__ import annotations

import numpy as np

from skcollapse.metrics._collapse import PER_TABLE_RETURNS_DOC, _per_table
from skcollapse.metrics._gram import _row_normalize_np
from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._sklearn_compat import (
    int_interval,
    real_interval,
    validate_params,
)
from skcollapse.utils._validation import check_embedding_matrix

__all__ = ["alignment", "uniformity"]


def _l2n(X, kind):
    if kind == "torch":
        import torch

        return torch.nn.functional.normalize(X, dim=1)
    return _row_normalize_np(X)


@validate_params(
    {
        "x": "no_validation",
        "y": "no_validation",
        "alpha": [real_interval(0, None, closed="neither")],
        "normalize": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def alignment(x, y, *, alpha=2.0, normalize=True):
    """Alignment of positive pairs, ``E ||x_i - y_i||^alpha`` (Wang & Isola, 2020).

    Lower is better (positives close together). Rows of ``x`` and ``y`` are paired.

    Parameters
    ----------
    x, y : array-like, torch.Tensor or dask array of shape (n_pairs, n_features)
        Embeddings of the two sides of each positive pair (e.g. user and item).
    alpha : float, default=2.0
        Exponent of the distance.
    normalize : bool, default=True
        L2-normalise the rows first, as the definition assumes.

    Returns
    -------
    float

    References
    ----------
    T. Wang and P. Isola, "Understanding Contrastive Representation Learning
    through Alignment and Uniformity on the Hypersphere", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import alignment
    >>> alignment(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    2.0...
    """
    X, kx = check_embedding_matrix(x, name="x")
    Y, ky = check_embedding_matrix(y, name="y")
    if tuple(X.shape) != tuple(Y.shape):
        raise ValueError(
            f"x and y must have the same shape, got {tuple(X.shape)} and "
            f"{tuple(Y.shape)}."
        )
    if kx != ky:
        raise TypeError(
            "x and y must be of the same kind (numpy-like, torch or dask), got "
            f"{kx} and {ky}."
        )
    if kx == "dask":
        return _dask_alignment(X, Y, alpha, normalize)
    if kx == "torch":
        import torch

        with torch.no_grad():
            X, Y = X.detach().to(torch.float64), Y.detach().to(torch.float64)
            if normalize:
                X, Y = _l2n(X, kx), _l2n(Y, kx)
            return float((X - Y).norm(dim=1).pow(alpha).mean())
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if normalize:
        X, Y = _l2n(X, kx), _l2n(Y, kx)
    return float(np.mean(np.linalg.norm(X - Y, axis=1) ** alpha))


def _dask_alignment(X, Y, alpha, normalize):
    """Blockwise alignment of two dask arrays (never materialised whole)."""
    import dask
    import dask.array as da

    X = X.rechunk({1: -1}).astype(np.float64)
    Y = Y.rechunk(X.chunks).astype(np.float64)
    finite = da.isfinite(X).all() & da.isfinite(Y).all()
    if normalize:
        nx = da.sqrt((X * X).sum(axis=1, keepdims=True))
        ny = da.sqrt((Y * Y).sum(axis=1, keepdims=True))
        X = da.where(nx > 0, X / da.where(nx > 0, nx, 1.0), 0.0)
        Y = da.where(ny > 0, Y / da.where(ny > 0, ny, 1.0), 0.0)
    dist = da.sqrt(((X - Y) ** 2).sum(axis=1))
    value, ok = dask.compute((dist**alpha).mean(), finite)
    if not ok:
        raise ValueError("x or y contains NaN or infinite values.")
    return float(value)


#: The constraints of the uniformity parameters (also of ``weighted_uniformity``).
_UNIFORMITY_CONSTRAINTS = {
    "t": [real_interval(0, None, closed="neither")],
    "normalize": ["boolean"],
    "max_samples": [int_interval(2, None, closed="left"), None],
    "random_state": ["random_state"],
}


@validate_params(
    {"embeddings": "no_validation", **_UNIFORMITY_CONSTRAINTS},
    prefer_skip_nested_validation=True,
)
@fill_doc(per_table_returns=PER_TABLE_RETURNS_DOC)
def uniformity(embeddings, *, t=2.0, normalize=True, max_samples=10_000,
               random_state=None):
    """Uniformity ``log E_{i<j} exp(-t ||e_i - e_j||^2)`` (Wang & Isola, 2020).

    Lower (more negative) is more uniform on the sphere; a completely collapsed
    table gives ``0.0``, the largest possible value. Pairs are processed in
    blocks with a log-sum-exp, so memory stays ``O(block^2)``.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor or dask array of shape (n_samples, n_features)
        One table, or a list/dict of tables.
    t : float, default=2.0
        Temperature of the Gaussian potential.
    normalize : bool, default=True
        L2-normalise the rows first, as the definition assumes.
    max_samples : int or None, default=10_000
        Use a random subset of this many rows when the table is larger (all
        ``n (n - 1) / 2`` pairs are otherwise used); ``None`` uses every row.
    random_state : int, RandomState instance or None, default=None
        Seed of the row subset.

    {per_table_returns}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import uniformity
    >>> uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]]))  # distance 2: log exp(-8)
    -8.0
    """
    return _per_table(
        _uniformity_single, embeddings, t=float(t), normalize=bool(normalize),
        max_samples=max_samples, random_state=random_state,
    )


def _uniformity_single(embeddings, *, t, normalize, max_samples, random_state):
    from sklearn.utils import check_random_state

    E, kind = check_embedding_matrix(embeddings)
    n = E.shape[0]
    if n < 2:
        raise ValueError("uniformity needs at least 2 rows (it averages over pairs).")
    if max_samples is not None and n > max_samples:
        idx = np.sort(check_random_state(random_state).choice(n, max_samples,
                                                              replace=False))
        if kind == "torch":
            import torch

            E = E[torch.as_tensor(idx, device=E.device)]
        else:
            E = E[idx]
    if kind == "dask":
        E, kind = np.asarray(E.compute()), "numpy"
        if not np.isfinite(E).all():
            raise ValueError("embeddings contains NaN or infinite values.")
    if kind == "torch":
        import torch

        with torch.no_grad():
            X = E.detach().to(torch.float64)
            if normalize:
                X = _l2n(X, kind)
            return _uniformity_blocks(X, t, torch)
    X = np.asarray(E, dtype=np.float64)
    if normalize:
        X = _l2n(X, kind)
    return _uniformity_blocks(X, t, np)


def _pair_log_kernels(X, t, xp, log_weights=None):
    """``-t d_ij^2`` of the row pairs ``i < j`` of ``X``, one block of pairs at a time.

    Each item is a flat array (or tensor) of one block of 2048 x 2048 rows
    (the strict upper triangle of a diagonal block). With ``log_weights``,
    ``log w_i + log w_j`` is added to every pair's value.
    """
    n = X.shape[0]
    sq = (X * X).sum(1)
    block = 2048
    for i in range(0, n, block):
        Xi, sqi = X[i : i + block], sq[i : i + block]
        for j in range(i, n, block):
            d2 = sqi[:, None] + sq[j : j + block][None, :] - 2.0 * (Xi @ X[j : j + block].T)
            d2 = d2.clip(0.0, None) if xp is np else d2.clamp_min(0.0)
            vals = -t * d2
            if log_weights is not None:
                vals = (vals + log_weights[i : i + block][:, None]
                        + log_weights[j : j + block][None, :])
            if j == i:  # strict upper triangle only
                rows, cols = vals.shape
                mask = np.triu(np.ones((rows, cols), dtype=bool), k=1)
                if xp is not np:
                    mask = xp.as_tensor(mask, device=vals.device)
                vals = vals[mask]
            else:
                vals = vals.reshape(-1)
            if vals.shape[0]:
                yield vals


def _uniformity_blocks(X, t, xp):
    """``log mean_{i<j} exp(-t d_ij^2)`` over row blocks with a running log-sum-exp."""
    n = X.shape[0]
    log_terms = [float(_logsumexp(vals, xp)) for vals in _pair_log_kernels(X, t, xp)]
    total = _logsumexp(np.asarray(log_terms), np)
    return float(total - np.log(n * (n - 1) / 2.0))


def _logsumexp(v, xp):
    if xp is np:
        m = v.max()
        return m + np.log(np.exp(v - m).sum())
    return xp.logsumexp(v, dim=0)
