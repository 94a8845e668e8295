"""Singular spectrum of an embedding table, and the metrics read from a spectrum.

:func:`singular_values` picks the route: the float64 Gram accumulation of
:mod:`skcollapse.metrics._gram` for tall matrices (numpy, torch on its own
device, dask blockwise through :mod:`skcollapse.metrics._dask`), a float64 SVD for
wide or small ones, which is then cheaper and more accurate. The
``*_from_spectrum`` functions turn singular values into one number; the metric
registry (``_registry``) lists them.
"""

from __future__ import annotations

import numpy as np

from skcollapse.metrics._gram import (
    GramAccumulator,
    _chunk_rows,
    _gram_eig_to_sigma,
    _non_finite_error,
    _numpy_gram_accumulate,
    _row_normalize_np,
    _torch_accumulator,
    _torch_gram,
)
from skcollapse.utils._sklearn_compat import StrOptions, int_interval, validate_params
from skcollapse.utils._validation import check_embedding_matrix

_METHODS = ("auto", "gram", "svd")


def _use_gram(n_samples: int, n_features: int, method: str) -> bool:
    if method != "auto":
        return method == "gram"
    return n_samples >= 2 * n_features and n_samples > 512


def _svd_tolerance_zero(sigma, shape):
    """Singular values below ``sigma_max * max(shape) * eps`` set to 0 (numpy's
    ``matrix_rank`` tolerance), so that a rank-r matrix scores exactly r."""
    if sigma.shape[0] == 0:
        return sigma
    tol = sigma[0] * max(shape) * np.finfo(np.float64).eps
    return sigma * (sigma > tol)


def accumulate(E, kind, acc, *, chunk_size=None):
    """Add the rows of a validated table ``E`` (numpy, torch or dask) to ``acc``."""
    rows = _chunk_rows(E.shape[1], chunk_size)
    opts = {"center": acc.center, "row_normalize": acc.row_normalize}
    if kind == "torch":
        other = _torch_accumulator(E, chunk_rows=rows, **opts)
    elif kind == "dask":
        from skcollapse.metrics._dask import dask_gram_accumulator

        other = dask_gram_accumulator(E, **opts).compute()
    else:
        other = _numpy_gram_accumulate(E, GramAccumulator(E.shape[1], **opts), rows)
    return acc.merge(other)


def _numpy_gram_spectrum(E, *, center, row_normalize, chunk_rows):
    acc = GramAccumulator(E.shape[1], center=center, row_normalize=row_normalize)
    _numpy_gram_accumulate(E, acc, chunk_rows)
    try:
        return acc.singular_values()
    except ValueError:
        # NaN/inf anywhere poison the Gram diagonal; tell them apart from overflow.
        if isinstance(E, np.memmap) or not np.isfinite(E).all():
            raise
        raise ValueError(
            "embeddings has values too large to square in float64; rescale it "
            "(the collapse metrics are scale invariant)."
        ) from None


def _numpy_svd_spectrum(E, *, center, row_normalize):
    A = np.array(E, dtype=np.float64)
    if not np.isfinite(A).all():
        raise _non_finite_error()
    if row_normalize:
        A = _row_normalize_np(A)
    if center:
        A -= A.mean(axis=0)
    return _svd_tolerance_zero(np.linalg.svd(A, compute_uv=False), A.shape)


def _torch_spectrum(E, *, center, row_normalize, chunk_rows, use_gram):
    """Spectrum of a torch tensor, computed on its own device in float64."""
    import torch

    with torch.no_grad():
        E = E.detach()
        if not use_gram:
            A = E.to(torch.float64)
            if not bool(torch.isfinite(A).all()):
                raise _non_finite_error()
            if row_normalize:
                A = torch.nn.functional.normalize(A, dim=1)
            if center:
                A = A - A.mean(dim=0)
            return _svd_tolerance_zero(torch.linalg.svdvals(A), tuple(A.shape))
        gram, _, _ = _torch_gram(
            E, center=center, row_normalize=row_normalize, chunk_rows=chunk_rows
        )
        eig = torch.linalg.eigvalsh(gram).flip(0)
        return _gram_eig_to_sigma(eig, torch)


def _spectrum_single(E, kind, *, center, row_normalize, method, chunk_size):
    n, d = E.shape
    use_gram = _use_gram(n, d, method)
    rows = _chunk_rows(d, chunk_size)
    if kind == "torch":
        sigma = _torch_spectrum(
            E, center=center, row_normalize=row_normalize, chunk_rows=rows,
            use_gram=use_gram,
        )
        sigma = sigma.cpu().numpy()
    elif kind == "dask":
        from skcollapse.metrics._dask import dask_singular_values

        if use_gram:
            sigma = dask_singular_values(E, center=center, row_normalize=row_normalize)
        else:
            # Wide or small: the whole matrix is at most a few times d^2 numbers.
            sigma = _numpy_svd_spectrum(
                E.compute(), center=center, row_normalize=row_normalize
            )
    elif use_gram:
        sigma = _numpy_gram_spectrum(
            E, center=center, row_normalize=row_normalize, chunk_rows=rows
        )
    else:
        sigma = _numpy_svd_spectrum(E, center=center, row_normalize=row_normalize)
    return np.ascontiguousarray(sigma[: min(n, d)], dtype=np.float64)


@validate_params(
    {
        "embeddings": "no_validation",
        "center": ["boolean"],
        "row_normalize": ["boolean"],
        "method": [StrOptions(set(_METHODS))],
        "chunk_size": [int_interval(1, None, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
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
        The embedding table (one row per user, item or category). ``np.memmap``
        and dask arrays are streamed in row chunks; a torch tensor is processed on
        its own device (a CUDA tensor stays on the GPU; only the ``d`` singular
        values are copied back).
    center : bool, default=False
        Subtract the column mean first (spectrum of the covariance). The reference
        implementations of RankMe, DirectSpec and RecScope do not center.
    row_normalize : bool, default=False
        L2-normalise each row first (RecScope's information abundance does this).
        All-zero rows stay zero.
    method : {"auto", "gram", "svd"}, default="auto"
        ``"gram"`` accumulates the float64 ``d x d`` Gram matrix over row chunks;
        ``"svd"`` runs a float64 SVD of the whole matrix. ``"auto"`` uses the Gram
        route for tall matrices (``n_samples >= 2 * n_features`` and more than 512
        rows) and the SVD otherwise.
    chunk_size : int, default=None
        Rows per chunk on the Gram route; by default ``2**19 // n_features`` (a
        4 MiB float64 buffer).

    Returns
    -------
    sigma : ndarray of shape (min(n_samples, n_features),)
        Float64 singular values, largest first.

    Notes
    -----
    Values below the numerical tolerance are returned as exact zeros, so a
    rank-``r`` matrix has exactly ``r`` non-zero singular values: below
    ``sigma_max * max(n_samples, n_features) * eps`` on the SVD route (the
    tolerance of ``numpy.linalg.matrix_rank``), and below
    ``sigma_max * sqrt(n_features * eps)`` (about ``1.7e-7 * sigma_max`` for
    128 features) on the Gram route, whose eigenvalues are only known to
    ``n_features * eps * sigma_max**2``. Use ``method="svd"`` when singular values
    smaller than that matter, e.g. for the condition number of an
    ill-conditioned table.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import singular_values
    >>> singular_values(np.diag([3.0, 2.0, 1.0]))
    array([3., 2., 1.])
    """
    E, kind = check_embedding_matrix(embeddings, check_finite=False)
    return _spectrum_single(
        E, kind, center=bool(center), row_normalize=bool(row_normalize),
        method=method, chunk_size=chunk_size,
    )


# ------------------------------------------------------------ metrics of a spectrum
# Inputs are validated by the public functions that call these.
def _max_rank(sigma, center, n_samples):
    """Largest attainable rank: ``min(n, d)``, or ``min(n - 1, d)`` when centered."""
    k = sigma.shape[0]
    if center and n_samples is not None and n_samples <= k:
        k = n_samples - 1
    return max(k, 1)


def _per_max_rank(value, normalize, sigma, center, n_samples):
    """``value``, divided by the largest attainable rank when ``normalize``."""
    if normalize:
        value /= _max_rank(sigma, center, n_samples)
    return value


def erank_from_spectrum(
    sigma, *, spectrum="sv", normalize=False, center=False, n_samples=None
):
    """Effective rank from singular values (0.0 for an all-zero spectrum)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    values = sigma**2 if spectrum == "eig" else sigma
    total = values.sum()
    if not total > 0:
        return 0.0
    p = values[values > 0] / total
    value = float(np.exp(-np.sum(p * np.log(p))))
    return _per_max_rank(value, normalize, sigma, center, n_samples)


def _relative_to_top(sigma, measure, normalize, center, n_samples):
    """``measure(sigma, max(sigma))`` (0.0 for an all-zero spectrum)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    top = sigma.max() if sigma.size else 0.0
    if not top > 0:
        return 0.0
    value = float(measure(sigma, top))
    return _per_max_rank(value, normalize, sigma, center, n_samples)


def ia_from_spectrum(sigma, *, normalize=False, center=False, n_samples=None):
    """Information abundance ``sum(sigma) / max(sigma)`` (0.0 for all-zero)."""
    return _relative_to_top(
        sigma, lambda s, top: s.sum() / top, normalize, center, n_samples
    )


def stable_rank_from_spectrum(sigma, *, normalize=False, center=False, n_samples=None):
    """Stable rank ``sum(sigma**2) / max(sigma)**2`` (0.0 for all-zero)."""
    return _relative_to_top(
        sigma, lambda s, top: np.sum((s / top) ** 2), normalize, center, n_samples
    )


def condition_number_from_spectrum(sigma, *, normalize=False, center=False,
                                   n_samples=None):
    """``sigma_max / sigma_min`` over the attainable rank (inf when singular)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    k = _max_rank(sigma, center, n_samples)
    kept = np.sort(sigma)[::-1][:k]
    if kept.size == 0 or not kept[-1] > 0:
        return float("inf")
    return float(kept[0] / kept[-1])
