"""Collapse statistics of dask arrays, computed blockwise and never materialised.

Each row block becomes a :class:`~skcollapse.metrics._gram.GramAccumulator`
(float64 ``d x d`` Gram or centered scatter, exactly what ``partial_fit`` keeps);
the block accumulators are merged pairwise in a tree, so the graph runs unchanged on
a ``dask.distributed`` cluster and no worker ever holds more than one block plus a
few ``d x d`` matrices.
"""

from __future__ import annotations

import numpy as np

from skcollapse.metrics._gram import (
    GramAccumulator,
    _chunk_rows,
    _row_normalize_np,
)

__all__ = [
    "dask_gram_accumulator",
    "dask_row_moments",
    "dask_singular_values",
    "tree_reduce",
]


def _rows_only(E):
    """Rechunk so that every block holds whole rows (all columns)."""
    if len(E.chunks[1]) > 1:
        E = E.rechunk({1: -1})
    return E


def _block_accumulator(block, n_features, center, row_normalize):
    block = np.asarray(block)
    if block.dtype.kind not in "fiub":
        raise TypeError(f"embeddings must have a numeric dtype, got {block.dtype}.")
    acc = GramAccumulator(n_features, center=center, row_normalize=row_normalize)
    # Sub-chunks keep the float64 copy small whatever the dask block size is.
    rows = _chunk_rows(n_features, None)
    for start in range(0, block.shape[0], rows):
        acc.update(block[start : start + rows])
    acc._buffer = None
    if not np.isfinite(np.diagonal(acc.gram)).all():
        raise ValueError("embeddings contains NaN or infinite values.")
    return acc


def _merge_accumulators(a, b):
    # A fresh object: never mutate a task's input (dask may reuse or retry it).
    out = GramAccumulator(a.n_features, center=a.center, row_normalize=a.row_normalize)
    return out.merge(a).merge(b)


def tree_reduce(parts, combine):
    """Combine a list of delayed objects pairwise (depth ``log2(len(parts))``)."""
    import dask

    combine = dask.delayed(combine, pure=True)
    parts = list(parts)
    while len(parts) > 1:
        merged = [combine(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    return parts[0]


def dask_gram_accumulator(E, *, center=False, row_normalize=False):
    """Delayed :class:`GramAccumulator` of a 2-D dask array (not yet computed)."""
    import dask

    E = _rows_only(E)
    d = int(E.shape[1])
    block = dask.delayed(_block_accumulator, pure=True)
    parts = [block(b, d, center, row_normalize) for b in E.to_delayed().ravel()]
    return tree_reduce(parts, _merge_accumulators)


def dask_singular_values(E, *, center=False, row_normalize=False):
    """Singular values of a 2-D dask array through a blockwise float64 Gram matrix.

    Parameters
    ----------
    E : dask.array.Array of shape (n_samples, n_features)
        The embedding table; blocks are read one at a time.
    center : bool, default=False
        Spectrum of the centered matrix (blocks merged with the parallel update).
    row_normalize : bool, default=False
        L2-normalise rows first.

    Returns
    -------
    sigma : ndarray of shape (n_features,)
        Float64 singular values, largest first.
    """
    acc = dask_gram_accumulator(
        E, center=center, row_normalize=row_normalize
    ).compute()
    return acc.singular_values()


def _block_moments(block):
    """Count, mean and sum of squared deviations of L2-normalised rows of a block."""
    X = np.asarray(block, dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError("embeddings contains NaN or infinite values.")
    X = _row_normalize_np(X)
    n = X.shape[0]
    mean = X.mean(axis=0) if n else np.zeros(X.shape[1])
    m2 = ((X - mean) ** 2).sum(axis=0)
    return n, mean, m2


def _merge_moments(a, b):
    na, ma, qa = a
    nb, mb, qb = b
    n = na + nb
    if n == 0:
        return a
    delta = mb - ma
    return n, ma + delta * (nb / n), qa + qb + delta**2 * (na * nb / n)


def dask_row_moments(E):
    """Column count, mean and M2 of the L2-normalised rows of a dask array."""
    import dask

    E = _rows_only(E)
    block = dask.delayed(_block_moments, pure=True)
    parts = [block(b) for b in E.to_delayed().ravel()]
    return tree_reduce(parts, _merge_moments).compute()
