"""Helpers shared by the Display objects: lazy matplotlib, names, arrays."""

from __future__ import annotations

import numpy as np

_INSTALL_HINT = (
    "{caller} requires matplotlib, an optional dependency of skcollapse. "
    "Install it with: pip install skcollapse[plot]"
)


def check_matplotlib_support(caller_name: str):
    """Import and return ``matplotlib.pyplot``, or raise a helpful ImportError.

    Parameters
    ----------
    caller_name : str
        Name of the function or method that needs matplotlib, used in the message.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(_INSTALL_HINT.format(caller=caller_name)) from exc
    return plt


def get_axes(ax, caller_name: str):
    """Return ``(figure, ax)``: a new figure when ``ax`` is None, else ``ax``'s."""
    plt = check_matplotlib_support(caller_name)
    if ax is None:
        fig, ax = plt.subplots()
        return fig, ax
    if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
        raise TypeError(
            f"ax must be a matplotlib Axes or None, got {type(ax).__name__}."
        )
    return ax.figure, ax


def estimator_name(estimator) -> str:
    """Default display name of an estimator: its class name."""
    return type(estimator).__name__


def to_numpy(matrix):
    """Bring a torch tensor to a CPU numpy array; leave other inputs alone."""
    if type(matrix).__module__.startswith("torch") and hasattr(matrix, "detach"):
        return matrix.detach().cpu().numpy()
    return matrix


def as_1d_float(values, *, name: str) -> np.ndarray:
    """Validate a finite 1-D float array."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr
