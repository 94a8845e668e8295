"""Input validation for embedding matrices and code tables, shared by metrics,
scorers, quantizers and plots."""

from __future__ import annotations

import numbers

import numpy as np


def _is_torch_tensor(x) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and type(x).__name__ in {"Tensor", "Parameter"}


def _is_dask_array(x) -> bool:
    return type(x).__module__.startswith("dask") and hasattr(x, "chunks")


def array_namespace_kind(x) -> str:
    """Return ``"torch"``, ``"dask"`` or ``"numpy"`` for an embedding-like object."""
    if _is_torch_tensor(x):
        return "torch"
    if _is_dask_array(x):
        return "dask"
    return "numpy"


def check_embedding_matrix(
    E, *, name: str = "embeddings", allow_empty: bool = False, check_finite: bool = True
):
    """Validate a 2-D embedding matrix without copying it when avoidable.

    Accepts numpy arrays (including ``np.memmap``), array-likes, torch tensors and
    dask arrays. Returns ``(E, kind)`` where ``kind`` is ``"numpy"``, ``"torch"`` or
    ``"dask"``; numpy input comes back as a floating ndarray (float32 and float64
    kept, integers and bools cast to float64). Raises ``TypeError`` for non-numeric
    dtypes and ``ValueError`` for wrong dimensionality, emptiness or non-finite
    values (NaN/inf are checked for numpy and torch inputs; dask inputs are checked
    while they are streamed). ``check_finite=False`` skips the NaN/inf pass for
    callers that detect non-finite values themselves while streaming (the float64
    Gram diagonal of any non-finite input is non-finite).
    """
    kind = array_namespace_kind(E)
    if kind == "torch":
        import torch

        if E.is_complex() or E.dtype == torch.bool:
            raise TypeError(f"{name} must be a real floating tensor, got dtype {E.dtype}.")
        if not E.is_floating_point():
            E = E.to(torch.float64)
        _check_shape(tuple(E.shape), name, allow_empty)
        if check_finite and E.numel() and not bool(torch.isfinite(E).all()):
            raise ValueError(f"{name} contains NaN or infinite values.")
        return E, kind
    if kind == "dask":
        if E.dtype.kind not in "fiub":
            raise TypeError(f"{name} must have a numeric dtype, got {E.dtype}.")
        _check_shape(tuple(E.shape), name, allow_empty)
        return E, kind
    if isinstance(E, (str, bytes, numbers.Number)):
        raise TypeError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), "
            f"got {type(E).__name__}."
        )
    if not isinstance(E, np.ndarray):
        if hasattr(E, "to_numpy"):  # pandas DataFrame
            E = E.to_numpy()
        else:
            try:
                E = np.asarray(E)
            except (ValueError, TypeError) as exc:
                raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
    if E.dtype.kind not in "fiub":
        raise TypeError(
            f"{name} must have a numeric dtype, got {E.dtype}; convert it with "
            "np.asarray(..., dtype=float) after checking its content."
        )
    if E.dtype not in (np.float32, np.float64):
        E = E.astype(np.float64)
    _check_shape(E.shape, name, allow_empty)
    if (
        check_finite
        and E.size
        and not isinstance(E, np.memmap)
        and not np.isfinite(E).all()
    ):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return E, kind


def _check_shape(shape, name, allow_empty):
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {len(shape)}-D input "
            f"with shape {shape}."
            + (" Reshape a single vector with E.reshape(1, -1)." if len(shape) == 1 else "")
        )
    if not allow_empty and (shape[0] == 0 or shape[1] == 0):
        raise ValueError(f"{name} is empty (shape {shape}); need at least one row and column.")


def check_codes(codes, codebook_size=None, *, name="codes"):
    """Semantic-ID ``codes`` as a 2-D int64 array ``(n_items, n_levels)``, checked
    (integers, non-negative, below ``codebook_size`` when given)."""
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_items, n_levels), got "
            f"{arr.ndim} dimension(s)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(
            arr == np.round(arr)
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{name} must hold integer codes, got dtype {arr.dtype}."
            )
    arr = arr.astype(np.int64, copy=False)
    if arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got {int(arr.min())}.")
    if codebook_size is not None and arr.max() >= codebook_size:
        raise ValueError(
            f"{name} holds code {int(arr.max())}, outside [0, codebook_size="
            f"{codebook_size})."
        )
    return arr
