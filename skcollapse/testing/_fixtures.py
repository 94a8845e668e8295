"""Class-scoped fixtures of the test mixins, without importing pytest at import.

``skcollapse.testing`` must import without pytest (the ``docs`` extra imports
every public name to document it), as scikit-learn's test utilities do. A
mixin therefore declares its fixtures as plain functions, and
:func:`attach_class_fixtures` (called from the mixin's ``__init_subclass__``)
turns them into pytest fixtures on the test class that uses the mixin: that
class is defined in a test module, which pytest is importing.
"""

from __future__ import annotations

__all__ = ["attach_class_fixtures"]


def attach_class_fixtures(cls, fixtures):
    """Set each of ``fixtures`` (name -> function of ``cls``) on ``cls`` as a
    class-scoped pytest fixture, unless ``cls`` (or a base) already has one of
    that name (a test class may define its own)."""
    import pytest

    for name, func in fixtures.items():
        if getattr(cls, name, None) is None:
            setattr(cls, name, pytest.fixture(scope="class", name=name)(classmethod(func)))
