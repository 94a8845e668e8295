"""Warnings shown once per process, whatever resets Python's own registry.

Python's default filter shows a warning once per code location, but
``warnings.catch_warnings`` (which scikit-learn's parallel helpers enter around
every fold of a search) clears that memory, so a warning raised in ``fit`` or in
a scorer comes back for every fold, grid point and scorer. The warnings that
describe the *data or parameters a user passed* (not one fit's outcome) go
through :func:`warn_once` instead: the same text is shown once per process.
"""

from __future__ import annotations

import threading
import warnings

__all__ = ["reset_warn_once", "warn_once"]

_SHOWN: set[tuple[type, str]] = set()
_LOCK = threading.Lock()


def warn_once(message, category=UserWarning, *, stacklevel=2):
    """``warnings.warn(message, category)`` unless the same text was shown before.

    Returns ``True`` when the warning was issued.
    """
    key = (category, str(message))
    with _LOCK:
        if key in _SHOWN:
            return False
        _SHOWN.add(key)
    warnings.warn(message, category, stacklevel=stacklevel + 1)
    return True


def reset_warn_once():
    """Forget the warnings shown (tests call it so each test sees its own)."""
    with _LOCK:
        _SHOWN.clear()
