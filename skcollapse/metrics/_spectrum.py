"""Singular spectrum of an embedding matrix, the quantity every collapse metric reads.

Tall matrices (``n_samples >> n_features``, the usual embedding table) never go
through a full SVD: the ``d x d`` Gram matrix is accumulated in float64 over row
chunks, so memory stays ``O(d^2)`` plus one chunk and float32 inputs lose no
precision to a float32 accumulation over millions of rows. Its eigenvalues are the
squared singular values. Wide or small matrices use an SVD, which is then cheaper
and more accurate.
"""

from __future__ import annotations

import numpy as np

from skcollapse.utils._validation import check_embedding_matrix

#: Row-chunk size in number of *elements* processed at once by the Gram route.
_CHUNK_ELEMENTS = 1 << 22


def _chunk_rows(n_features: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        return int(chunk_size)
    return max(256, _CHUNK_ELEMENTS // max(n_features, 1))


def _use_gram(n_samples: int, n_features: int, method: str) -> bool:
    if method not in {"auto", "gram", "svd"}:
        raise ValueError(f"method must be 'auto', 'gram' or 'svd', got {method!r}.")
    if method != "auto":
        return method == "gram"
    return n_samples >= 2 * n_features and n_samples > 512


def _numpy_gram_spectrum(E, *, center, row_normalize, chunk_rows):
    n, d = E.shape
    gram = np.zeros((d, d), dtype=np.float64)
    shift = None
    col_sum = np.zeros(d, dtype=np.float64)
    for start in range(0, n, chunk_rows):
        block = np.asarray(E[start : start + chunk_rows], dtype=np.float64)
        if not np.isfinite(block).all():
            raise ValueError("embeddings contains NaN or infinite values.")
        if row_normalize:
            block = _row_normalize_np(block)
        if center:
            # Shift by the first chunk's mean: the Gram of shifted data, corrected
            # by the (small) shifted mean, avoids catastrophic cancellation.
            if shift is None:
                shift = block.mean(axis=0)
            block = block - shift
            col_sum += block.sum(axis=0)
        gram += block.T @ block
    if center:
        mean = col_sum / n
        gram -= n * np.outer(mean, mean)
    eig = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.clip(eig, 0.0, None))


def _row_normalize_np(block):
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    return np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)


def _numpy_svd_spectrum(E, *, center, row_normalize):
    A = np.asarray(E, dtype=np.float64)
    if row_normalize:
        A = _row_normalize_np(A)
    if center:
        A = A - A.mean(axis=0)
    return np.linalg.svd(A, compute_uv=False)


def _torch_spectrum(E, *, center, row_normalize, chunk_rows, use_gram):
    import torch

    n, d = E.shape
    if not use_gram:
        A = E.to(torch.float64)
        if row_normalize:
            A = torch.nn.functional.normalize(A, dim=1)
        if center:
            A = A - A.mean(dim=0)
        return torch.linalg.svdvals(A)
    gram = torch.zeros((d, d), dtype=torch.float64, device=E.device)
    col_sum = torch.zeros(d, dtype=torch.float64, device=E.device)
    shift = None
    for start in range(0, n, chunk_rows):
        block = E[start : start + chunk_rows].to(torch.float64)
        if row_normalize:
            block = torch.nn.functional.normalize(block, dim=1)
        if center:
            if shift is None:
                shift = block.mean(dim=0)
            block = block - shift
            col_sum += block.sum(dim=0)
        gram += block.T @ block
    if center:
        mean = col_sum / n
        gram -= n * torch.outer(mean, mean)
    eig = torch.linalg.eigvalsh(gram).flip(0)
    return eig.clamp_min(0.0).sqrt()


def singular_values(
    embeddings,
    *,
    center: bool = False,
    row_normalize: bool = False,
    method: str = "auto",
    chunk_size: int | None = None,
):
    """Singular values of an embedding matrix, in decreasing order.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor or dask array of shape (n_samples, n_features)
        The embedding table (one row per user, item or category).
    center : bool, default=False
        Subtract the column mean first (spectrum of the covariance). The reference
        implementations of RankMe, DirectSpec and RecScope do not center.
    row_normalize : bool, default=False
        L2-normalise each row first (RecScope's information abundance does this).
        All-zero rows stay zero.
    method : {"auto", "gram", "svd"}, default="auto"
        ``"gram"`` accumulates the float64 ``d x d`` Gram matrix over row chunks;
        ``"svd"`` runs a float64 SVD. ``"auto"`` uses the Gram route for tall
        matrices (``n_samples >= 2 * n_features``) and the SVD otherwise.
    chunk_size : int, default=None
        Rows per chunk on the Gram route; by default about 4M elements per chunk.

    Returns
    -------
    sigma : ndarray of shape (min(n_samples, n_features),)
        Float64 singular values, largest first. On the Gram route the length is
        ``n_features`` (trailing values are zero when ``n_samples < n_features``).
    """
    E, kind = check_embedding_matrix(embeddings)
    n, d = E.shape
    use_gram = _use_gram(n, d, method)
    rows = _chunk_rows(d, chunk_size)
    if kind == "torch":
        sigma = _torch_spectrum(
            E, center=center, row_normalize=row_normalize, chunk_rows=rows,
            use_gram=use_gram,
        )
        return sigma.detach().cpu().numpy()[: min(n, d)]
    if kind == "dask":
        from skcollapse.metrics._dask import dask_singular_values

        return dask_singular_values(E, center=center, row_normalize=row_normalize)
    if use_gram:
        sigma = _numpy_gram_spectrum(
            E, center=center, row_normalize=row_normalize, chunk_rows=rows
        )
    else:
        sigma = _numpy_svd_spectrum(E, center=center, row_normalize=row_normalize)
    return sigma[: min(n, d)]
