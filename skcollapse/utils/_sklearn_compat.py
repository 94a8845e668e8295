"""Every private scikit-learn helper skcollapse uses, imported in one place.

scikit-learn >= 1.6 is required; keeping these imports together means a future
rename in scikit-learn is fixed here and nowhere else.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "Interval",
    "StrOptions",
    "_fit_context",
    "check_is_fitted",
    "validate_data",
    "validate_params",
]
