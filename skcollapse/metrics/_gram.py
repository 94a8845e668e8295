"""The float64 Gram accumulator: the one leaf every spectrum computation rests on.

Tall matrices (``n_samples >> n_features``, the usual embedding table) never go
through a full SVD: the ``d x d`` Gram matrix is accumulated in float64 over row
chunks, so memory stays ``O(d^2)`` plus one chunk and float32 inputs lose no
precision to a float32 accumulation over millions of rows (products of float32
numbers are exact in float64). Its eigenvalues are the squared singular values.

Centering uses the parallel (Chan et al.) update: each chunk is centered on its
own mean and the chunk scatter matrices are merged with a rank-one correction, so
a large common offset never cancels catastrophically.

``np.memmap`` inputs are streamed: the pages of a chunk are released with
``madvise(MADV_DONTNEED)`` once read (read-only and shared maps only), so the
resident memory stays one chunk plus ``O(d^2)`` however large the file is.

This module imports nothing else from :mod:`skcollapse.metrics`; the numpy,
torch and dask routes (``_spectrum``, ``_dask``) and the random reference all
build on it.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from skcollapse.utils._docstrings import fill_doc

#: Row-chunk size of the Gram route, in *elements*: 2**19 float64 numbers is a
#: 4 MiB buffer, which stays in cache while BLAS multiplies it (see
#: ``benchmarks/bench_metrics.py``; larger chunks were not faster, smaller ones
#: paid per-call overhead).
_CHUNK_ELEMENTS = 1 << 19

#: Threads of the numpy Gram route (each runs single-threaded BLAS on its chunks).
_MAX_THREADS = 8
#: Below this many chunks per thread, one thread does all the work.
_MIN_CHUNKS_PER_THREAD = 4


def _chunk_rows(n_features: int, chunk_size=None) -> int:
    """Rows per chunk: ``chunk_size`` (validated by the caller) or a 4 MiB buffer."""
    if chunk_size is not None:
        return int(chunk_size)
    return max(256, _CHUNK_ELEMENTS // max(n_features, 1))


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


#: The Parameters entries both accumulators take.
_ACCUMULATOR_PARAMS_DOC = """
center : bool, default=False
    Track the centered scatter instead of the raw Gram matrix.
row_normalize : bool, default=False
    L2-normalise each row before accumulating it.
"""


@fill_doc(accumulator_params=_ACCUMULATOR_PARAMS_DOC)
class GramAccumulator:
    """Float64 second moments of a stream of row chunks (``partial_fit`` state).

    Holds ``n_samples_seen``, and either the uncentered Gram ``sum x x^T`` or, with
    ``center=True``, the column mean and the centered scatter
    ``sum (x - mean)(x - mean)^T``. Two accumulators merge exactly, which is how dask
    blocks are combined. Memory is ``O(n_features^2)`` however many rows pass.

    Parameters
    ----------
    n_features : int
        Number of columns.
    {accumulator_params}

    Attributes
    ----------
    gram : ndarray of shape (n_features, n_features)
        The float64 Gram matrix (centered scatter with ``center=True``).
    mean : ndarray of shape (n_features,)
        Column mean of the rows seen (kept up to date with ``center=True``).
    n_samples_seen : int
        Rows accumulated.

    See Also
    --------
    TorchGramAccumulator : The same on the device of torch tensors.
    CollapseScorer : ``partial_fit`` streams a table through one of these.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import GramAccumulator
    >>> acc = GramAccumulator(3)
    >>> for chunk in np.array_split(np.diag([3.0, 2.0, 1.0]), 2):
    ...     acc = acc.update(chunk)
    >>> acc.singular_values()
    array([3., 2., 1.])
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


#: Rows per chunk of :class:`TorchGramAccumulator` when one update is very large
#: (a full LightGCN table).
_TORCH_CHUNK_ROWS = 1 << 16


@fill_doc(accumulator_params=_ACCUMULATOR_PARAMS_DOC)
class TorchGramAccumulator:
    """:class:`GramAccumulator` of a stream of torch tensors, kept on their device.

    Each update adds the float64 Gram (or centered scatter), mean and row count
    of a ``(rows, n_features)`` tensor on the tensor's own device, with the same
    exact merge as :class:`GramAccumulator`; nothing is copied to the host until
    :meth:`to_accumulator`. This is what
    :class:`~skcollapse.callbacks.CollapseProbe` feeds from forward hooks.

    Parameters
    ----------
    {accumulator_params}

    Attributes
    ----------
    gram : torch.Tensor of shape (n_features, n_features) or None
        Float64, on the device of the first update; ``None`` before it.
    mean : torch.Tensor of shape (n_features,) or None
        Column mean of the rows seen.
    n_samples_seen : int
        Rows accumulated.

    Examples
    --------
    >>> import torch
    >>> from skcollapse.metrics import TorchGramAccumulator
    >>> acc = TorchGramAccumulator()
    >>> acc = acc.update(torch.diag(torch.tensor([3.0, 2.0, 1.0])))
    >>> acc.to_accumulator().singular_values()
    array([3., 2., 1.])
    """

    def __init__(self, *, center=False, row_normalize=False):
        self.center = center
        self.row_normalize = row_normalize
        self.reset()

    def reset(self):
        """Forget every row seen."""
        self.gram = None
        self.mean = None
        self.n_samples_seen = 0

    def update(self, rows):
        """Add the rows of a 2-D floating tensor (on any device); returns self."""
        import torch

        with torch.no_grad():
            gram, mean, seen = _torch_gram(
                rows.detach(), center=self.center, row_normalize=self.row_normalize,
                chunk_rows=_TORCH_CHUNK_ROWS,
            )
            if seen == 0:
                return self
            if self.gram is None or self.gram.shape != gram.shape:
                if self.gram is not None:
                    raise ValueError(
                        f"the rows changed width from {self.gram.shape[0]} to "
                        f"{gram.shape[0]} between two updates."
                    )
                self.gram, self.mean, self.n_samples_seen = gram, mean, seen
                return self
            if gram.device != self.gram.device:
                gram, mean = gram.to(self.gram.device), mean.to(self.gram.device)
            if not self.center:
                self.gram.add_(gram)
                self.n_samples_seen += seen
                return self
            n_old = self.n_samples_seen
            total = n_old + seen
            delta = mean - self.mean
            self.gram.add_(gram).add_(torch.outer(delta, delta), alpha=n_old * seen / total)
            self.mean.add_(delta, alpha=seen / total)
            self.n_samples_seen = total
        return self

    def to_accumulator(self):
        """The CPU :class:`GramAccumulator` of the rows seen (``None`` if none)."""
        if self.gram is None:
            return None
        acc = GramAccumulator(
            self.gram.shape[0], center=self.center, row_normalize=self.row_normalize
        )
        acc.gram[...] = self.gram.cpu().numpy()
        acc.mean[...] = self.mean.cpu().numpy()
        acc.n_samples_seen = int(self.n_samples_seen)
        return acc

    def nbytes(self):
        """Bytes held: the Gram and the mean, whatever the number of rows."""
        if self.gram is None:
            return 0
        return int(self.gram.numel() + self.mean.numel()) * 8
