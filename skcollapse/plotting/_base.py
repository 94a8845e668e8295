"""Helpers shared by the Display objects: lazy matplotlib, axes, names, arrays,
the parameter checks and the docstring parts they have in common."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from skcollapse.utils._docstrings import fill_docstring
from skcollapse.utils._sklearn_compat import int_interval

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


def panel_axes(ax, n_panels, caller_name: str, *, figsize, message, layout=None):
    """Return ``(figure, axes)`` for a display of ``n_panels`` panels side by side.

    A new figure of ``figsize`` when ``ax`` is None, else the axes given
    (one Axes or an array-like of them), which must be ``n_panels``:
    ``message.format(got=<number given>)`` says otherwise (``ValueError``).
    """
    plt = check_matplotlib_support(caller_name)
    if ax is None:
        options = {} if layout is None else {"layout": layout}
        fig, axes = plt.subplots(1, n_panels, figsize=figsize, squeeze=False, **options)
        return fig, axes.ravel()
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if axes.size != n_panels:
        raise ValueError(message.format(got=axes.size))
    return axes[0].figure, axes


def check_nonempty_mapping(value, message, error=TypeError):
    """Raise ``error(message)`` unless ``value`` is a non-empty mapping."""
    if not isinstance(value, Mapping) or not value:
        raise error(message)
    return value


def drawn_rows(n_rows, max_points, random_state):
    """Sorted indices of the rows a scatter draws: all ``n_rows``, or
    ``max_points`` of them drawn at random (the numbers still use every row)."""
    if max_points is None or n_rows <= max_points:
        return np.arange(n_rows)
    from sklearn.utils import check_random_state

    return np.sort(
        check_random_state(random_state).choice(n_rows, size=max_points, replace=False)
    )


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


#: The constraints of the ``max_points`` and ``random_state`` of a scatter that
#: draws a random subset of its rows (:func:`drawn_rows`).
DRAWN_ROWS_CONSTRAINTS = {
    "max_points": [int_interval(1, None, closed="left"), None],
    "random_state": ["random_state"],
}
#: The constraints of the ``name`` and ``ax`` parameters of every ``from_*``.
DRAW_CONSTRAINTS = {"name": "no_validation", "ax": "no_validation"}
#: The constraints of a ``from_estimator`` drawing one table against popularity.
TABLE_POPULARITY_CONSTRAINTS = {
    "estimator": "no_validation",
    "X": "no_validation",
    "table": [str],
    "popularity": "no_validation",
    **DRAW_CONSTRAINTS,
}

#: Docstring parts shared by the Display classes, filled by :func:`display_doc`
#: (``{cls}`` is the class's name).
_DISPLAY_DOC_PARTS = {
    # a from_* method's last parameters
    "draw_params": """
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs : dict
            Passed to :meth:`plot`.
    """,
    # the parameters of drawn_rows in a from_* method
    "drawn_rows_params": """
        max_points : int or None, default=5000
            Draw at most this many rows, at random (what is computed uses every
            row); None draws all.
        random_state : int, RandomState instance or None, default=0
            Controls the drawn subset.
    """,
    # what every plot and from_* method returns
    "returns": """
        Returns
        -------
        display : {cls}
    """,
    # the attributes a drawn display sets
    "drawn_attributes": """
        ax_ : matplotlib Axes
        figure_ : matplotlib Figure
    """,
}


def display_doc(cls=None, /, **own_parts):
    """Class decorator: fill the shared parts in the docstrings of a Display.

    The class docstring and those of its methods may name the parts of
    ``_DISPLAY_DOC_PARTS`` with a marker line (``{returns}``); each is written
    once here instead of in every Display. ``@display_doc(name=text)`` adds
    parts of the Display's own (a work it cites, written once in
    :mod:`skcollapse.utils._docstrings`); each must be used.
    """
    if cls is None:
        return lambda cls: display_doc(cls, **own_parts)
    available = {
        **{name: text.replace("{cls}", cls.__name__)
           for name, text in _DISPLAY_DOC_PARTS.items()},
        **own_parts,
    }
    used = set()

    def fill(obj):
        doc = getattr(obj, "__doc__", None)
        if not doc:
            return
        parts = {
            name: text for name, text in available.items() if "{" + name + "}" in doc
        }
        if parts:
            obj.__doc__ = fill_docstring(doc, **parts)
            used.update(parts)

    fill(cls)
    for attr in vars(cls).values():
        func = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        while callable(func):  # a validate_params wrapper and the function it wraps
            fill(func)
            func = getattr(func, "__wrapped__", None)
    unused = set(own_parts) - used
    if unused:
        raise KeyError(f"docstring parts not used: {sorted(unused)}")
    return cls
