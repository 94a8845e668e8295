"""Every private scikit-learn helper skcollapse uses, imported in one place.

scikit-learn >= 1.6 is required; keeping these imports together means a future
rename in scikit-learn is fixed here and nowhere else.

Parameter validation is scikit-learn's everywhere in the package:
``@validate_params`` on public functions, ``_parameter_constraints`` on
scikit-learn estimators, and for skorch nets one constraints dict checked by
:func:`validate_parameter_constraints` (see ``recommenders/_base.py``). The two
interval factories below only add what scikit-learn's ``Interval`` lacks for
our parameters: booleans are refused where a number is expected (``True`` is
not a valid ``embedding_dim``) and real intervals refuse NaN/inf by construction.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "HasMethods",
    "Hidden",
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "_fit_context",
    "check_is_fitted",
    "int_interval",
    "int_sequence",
    "real_interval",
    "validate_data",
    "validate_parameter_constraints",
    "validate_params",
]


class _NumberInterval(Interval):
    """scikit-learn's ``Interval`` that refuses booleans (``True`` is not ``1``)."""

    def is_satisfied_by(self, val):
        if isinstance(val, (bool, np.bool_)):
            return False
        return super().is_satisfied_by(val)


def int_interval(left=None, right=None, *, closed="both"):
    """An integer-interval constraint (numpy integers accepted, booleans refused).

    ``int_interval(1, None, closed="left")`` is "an int in the range [1, inf)".
    """
    return _NumberInterval(Integral, left, right, closed=closed)


def real_interval(left=None, right=None, *, closed="both"):
    """A real-interval constraint (ints accepted; booleans, NaN and inf refused)."""
    return _NumberInterval(Real, left, right, closed=closed)


class _PositiveIntSequence(Options):
    """A sequence of positive ints (e.g. layer sizes), as a scikit-learn constraint."""

    def __init__(self, *, min_length=1):
        super().__init__(object, set())
        self.min_length = min_length

    def is_satisfied_by(self, val):
        if isinstance(val, (str, bytes, dict)) or not (
            hasattr(val, "__len__") and hasattr(val, "__iter__")
        ):
            return False
        values = list(val)
        return len(values) >= self.min_length and all(
            isinstance(v, Integral) and not isinstance(v, (bool, np.bool_)) and v >= 1
            for v in values
        )

    def __str__(self):
        if self.min_length <= 0:
            return "a sequence of positive ints"
        return f"a sequence of at least {self.min_length} positive int(s)"


def int_sequence(*, min_length=1):
    """A constraint for a sequence (tuple, list, array) of positive ints."""
    return _PositiveIntSequence(min_length=min_length)
