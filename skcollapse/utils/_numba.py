"""Optional compiled CPU kernels (numba), built lazily.

numba is a dependency made for this job (LensKit's kernels use it too), but
nothing may need it at import time: ``import skcollapse`` stays light, and a
platform without numba wheels keeps the pure-torch paths. :func:`lazy_kernel`
turns a builder (a function that imports numba and returns a jitted function)
into a getter that builds once and returns ``None`` when numba is missing or
``SKCOLLAPSE_DISABLE_NUMBA=1`` is set (the switch the tests use to compare the
compiled paths with the torch ones).
"""

from __future__ import annotations

import functools
import os

__all__ = ["kernels_disabled", "lazy_kernel"]


def kernels_disabled():
    """Whether the compiled kernels are switched off (``SKCOLLAPSE_DISABLE_NUMBA``)."""
    return os.environ.get("SKCOLLAPSE_DISABLE_NUMBA", "").strip() not in ("", "0")


def lazy_kernel(builder):
    """Wrap ``builder`` into a getter: the compiled kernel, or ``None``."""
    built = []

    @functools.wraps(builder)
    def get():
        if kernels_disabled():
            return None
        if not built:
            try:
                built.append(builder())
            except ImportError:
                return None
        return built[0]

    return get
