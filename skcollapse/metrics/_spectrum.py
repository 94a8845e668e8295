"""Singular spectrum of an embedding matrix, the quantity every collapse metric reads.

Tall matrices (``n_samples >> n_features``, the usual embedding table) never go
through a full SVD: the ``d x d`` Gram matrix is accumulated in float64 over row
chunks, so memory stays ``O(d^2)`` plus one chunk and float32 inputs lose no
precision to a float32 accumulation over millions of rows (products of float32
numbers are exact in float64). Its eigenvalues are the squared singular values.
Wide or small matrices use an SVD, which is then cheaper and more accurate.

Centering uses the parallel (Chan et al.) update: each chunk is centered on its
own mean and the chunk scatter matrices are merged with a rank-one correction, so
a large common offset never cancels catastrophically.

``np.memmap`` inputs are streamed: the pages of a chunk are released with
``madvise(MADV_DONTNEED)`` once read (read-only and shared maps only), so the
resident memory stays one chunk plus ``O(d^2)`` however large the file is.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from skcollapse.utils._validation import check_embedding_matrix

#: Row-chunk size of the Gram route, in *elements*: 2**19 float64 numbers is a
#: 4 MiB buffer, which stays in cache while BLAS multiplies it (see
#: ``benchmarks/bench_metrics.py``; larger chunks were not faster, smaller ones
#: paid per-call overhead).
_CHUNK_ELEMENTS = 1 << 19

_METHODS = ("auto", "gram", "svd")

#: Threads of the numpy Gram route (each runs single-threaded BLAS on its chunks).
_MAX_THREADS = 8
#: Below this many chunks per thread, one thread does all the work.
_MIN_CHUNKS_PER_THREAD = 4


def _chunk_rows(n_features: int, chunk_size) -> int:
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
            raise TypeError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        return int(chunk_size)
    return max(256, _CHUNK_ELEMENTS // max(n_features, 1))


def _use_gram(n_samples: int, n_features: int, method: str) -> bool:
    if method not in _METHODS:
        raise ValueError(f"method must be 'auto', 'gram' or 'svd', got {method!r}.")
    if method != "auto":
        return method == "gram"
    return n_samples >= 2 * n_features and n_samples > 512


def _non_finite_error(name="embeddings"):
    return ValueError(f"{name} contains NaN or infinite values.")


def _row_normalize_np(block):
    """L2-normalise rows (zero rows stay zero); NaN/inf raise instead of vanishing."""
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
    bad = ~np.isfinite(norms)
    if bad.any():
        sub = block[bad]
        if not np.isfinite(sub).all():
            raise _non_finite_error()
        # finite rows whose squared norm overflowed: rescale first
        top = np.abs(sub).max(axis=1, keepdims=True)
        norms[bad] = top[:, 0] * np.sqrt(np.einsum("ij,ij->i", sub / top, sub / top))
    norms = norms[:, None]
    return np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)


class GramAccumulator:
    """Float64 second moments of a stream of row chunks (``partial_fit`` state).

    Holds ``n_samples_seen``, and either the uncentered Gram ``sum x x^T`` or, with
    ``center=True``, the column mean and the centered scatter
    ``sum (x - mean)(x - mean)^T``. Two accumulators merge exactly, which is how dask
    blocks are combined.

    Parameters
    ----------
    n_features : int
        Number of columns.
    center : bool, default=False
        Track the centered scatter instead of the raw Gram matrix.
    row_normalize : bool, default=False
        L2-normalise each row before accumulating it.
    """

    def __init__(self, n_features, *, center=False, row_normalize=False):
        self.n_features = int(n_features)
        self.center = bool(center)
        self.row_normalize = bool(row_normalize)
        self.n_samples_seen = 0
        self.gram = np.zeros((self.n_features, self.n_features), dtype=np.float64)
        self.mean = np.zeros(self.n_features, dtype=np.float64)
        self._buffer = None

    def _as_float64(self, block):
        """Copy ``block`` into a reusable float64 buffer (no new allocation)."""
        rows = block.shape[0]
        buf = self._buffer
        if buf is None or buf.shape[0] < rows:
            buf = self._buffer = np.empty((rows, self.n_features), dtype=np.float64)
        out = buf[:rows]
        np.copyto(out, block, casting="unsafe")
        return out

    def update(self, block):
        """Add the rows of a numpy ``block`` of shape ``(rows, n_features)``."""
        if block.ndim != 2 or block.shape[1] != self.n_features:
            raise ValueError(
                f"chunk has shape {block.shape}, expected (n_rows, {self.n_features})."
            )
        rows = block.shape[0]
        if rows == 0:
            return self
        X = self._as_float64(block)
        if self.row_normalize:
            X = _row_normalize_np(X)
        if not self.center:
            self.gram += X.T @ X
            self.n_samples_seen += rows
            return self
        block_mean = X.mean(axis=0)
        X -= block_mean
        self._merge_centered(X.T @ X, block_mean, rows)
        return self

    def _merge_centered(self, scatter, block_mean, rows):
        n_old = self.n_samples_seen
        n_new = n_old + rows
        delta = block_mean - self.mean
        self.gram += scatter + np.outer(delta, delta) * (n_old * rows / n_new)
        self.mean += delta * (rows / n_new)
        self.n_samples_seen = n_new

    def merge(self, other):
        """Add another accumulator's rows (same options) to this one."""
        if (other.n_features, other.center, other.row_normalize) != (
            self.n_features,
            self.center,
            self.row_normalize,
        ):
            raise ValueError("cannot merge accumulators with different settings.")
        if other.n_samples_seen == 0:
            return self
        if not self.center:
            self.gram += other.gram
            self.n_samples_seen += other.n_samples_seen
        else:
            self._merge_centered(other.gram, other.mean, other.n_samples_seen)
        return self

    def singular_values(self):
        """Singular values (largest first) of the rows accumulated so far."""
        diag = np.diagonal(self.gram)
        if not np.isfinite(diag).all():
            raise _non_finite_error()
        eig = np.linalg.eigvalsh(self.gram)[::-1]
        return _gram_eig_to_sigma(eig, np)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_buffer"] = None
        return state


def _gram_eig_to_sigma(eig, xp):
    """Square roots of Gram eigenvalues (descending), rounding noise set to 0.

    Eigenvalues below ``d * eps * lambda_max`` are below the rounding error of a
    float64 symmetric eigensolver and are exact zeros of the true spectrum as far
    as can be told (``numpy.linalg.matrix_rank`` uses the same kind of tolerance).
    """
    if eig.shape[0] == 0:
        return eig
    tol = eig[0] * eig.shape[0] * np.finfo(np.float64).eps
    if xp is np:
        return np.sqrt(np.where(eig > tol, eig, 0.0))
    return xp.sqrt(xp.where(eig > tol, eig, xp.zeros_like(eig)))


def _svd_tolerance_zero(sigma, shape):
    """Singular values below ``sigma_max * max(shape) * eps`` set to 0 (numpy's
    ``matrix_rank`` tolerance), so that a rank-r matrix scores exactly r."""
    if sigma.shape[0] == 0:
        return sigma
    tol = sigma[0] * max(shape) * np.finfo(np.float64).eps
    return sigma * (sigma > tol)


def _mmap_release(arr):
    """Return a function dropping the resident pages of ``arr``'s row range, or None.

    Only for C-contiguous ``np.memmap`` views of a read-only or shared map (a
    copy-on-write map would lose private changes).
    """
    mm = getattr(arr, "_mmap", None)
    if (
        mm is None
        or getattr(arr, "mode", "c") not in ("r", "r+", "readwrite", "readonly")
        or not arr.flags.c_contiguous
        or not hasattr(mm, "madvise")
        or not hasattr(mmap, "MADV_DONTNEED")
    ):
        return None
    try:
        base_addr = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError, BufferError):
        return None
    page = mmap.PAGESIZE
    row_bytes = arr.strides[0]
    start_addr = arr.ctypes.data

    def release(start_row, stop_row):
        lo = start_addr + start_row * row_bytes - base_addr
        hi = start_addr + stop_row * row_bytes - base_addr
        lo -= lo % page
        hi = min(hi - hi % page, len(mm))
        if hi > lo:
            try:
                mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            except (OSError, ValueError):
                pass

    return release


def _n_threads():
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_THREADS))


def _numpy_gram_accumulate(E, acc, chunk_rows):
    """Add the rows of numpy ``E`` to ``acc``, chunk by chunk.

    Large tables are split between a few threads, each converting its own chunks
    to float64 and multiplying them with a *single-threaded* BLAS call into its own
    accumulator; the accumulators are merged at the end. This parallelises the
    float64 conversion too, and avoids multi-threaded BLAS calls on small chunks,
    which slow down badly when the machine's cores are oversubscribed (see
    ``benchmarks/bench_metrics.py``). Thread ``k`` always takes chunks
    ``k, k + T, ...``, so the result is deterministic.
    """
    release = _mmap_release(E) if isinstance(E, np.memmap) else None
    n = E.shape[0]
    starts = list(range(0, n, chunk_rows))
    n_threads = _n_threads() if len(starts) >= _MIN_CHUNKS_PER_THREAD * 2 else 1

    def work(k, target):
        for start in starts[k::n_threads]:
            stop = min(start + chunk_rows, n)
            target.update(E[start:stop])
            if release is not None:
                release(start, stop)
        target._buffer = None
        return target

    if n_threads == 1:
        work(0, acc)
        return acc
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    opts = {"center": acc.center, "row_normalize": acc.row_normalize}
    parts = [GramAccumulator(acc.n_features, **opts) for _ in range(n_threads)]
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(
        n_threads
    ) as pool:
        done = list(pool.map(work, range(n_threads), parts))
    for part in done:
        acc.merge(part)
    return acc


def _torch_accumulator(E, *, center, row_normalize, chunk_rows):
    """:class:`GramAccumulator` of a torch tensor, summed on the tensor's device."""
    import torch

    with torch.no_grad():
        gram, mean, seen = _torch_gram(
            E.detach(), center=center, row_normalize=row_normalize,
            chunk_rows=chunk_rows,
        )
    acc = GramAccumulator(E.shape[1], center=center, row_normalize=row_normalize)
    acc.gram[...] = gram.cpu().numpy()
    acc.mean[...] = mean.cpu().numpy()
    acc.n_samples_seen = seen
    return acc


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


def _torch_gram(E, *, center, row_normalize, chunk_rows):
    """Float64 Gram (or centered scatter), mean and row count, on ``E``'s device."""
    import torch

    n, d = E.shape
    gram = torch.zeros((d, d), dtype=torch.float64, device=E.device)
    mean = torch.zeros(d, dtype=torch.float64, device=E.device)
    seen = 0
    for start in range(0, n, chunk_rows):
        X = E[start : start + chunk_rows].to(torch.float64)
        rows = X.shape[0]
        if row_normalize:
            X = torch.nn.functional.normalize(X, dim=1)
        if not center:
            gram.addmm_(X.T, X)
            seen += rows
            continue
        block_mean = X.mean(dim=0)
        X = X - block_mean
        total = seen + rows
        delta = block_mean - mean
        gram.addmm_(X.T, X)
        gram.add_(torch.outer(delta, delta), alpha=seen * rows / total)
        mean.add_(delta, alpha=rows / total)
        seen = total
    if not bool(torch.isfinite(torch.diagonal(gram)).all()):
        raise _non_finite_error()
    return gram, mean, seen


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
        E, kind, center=center, row_normalize=row_normalize, method=method,
        chunk_size=chunk_size,
    )
