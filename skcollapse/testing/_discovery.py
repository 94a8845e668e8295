"""Find every public estimator of the package (sklearn's ``all_estimators``)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator

__all__ = ["all_estimators"]


def all_estimators():
    """``[(name, class)]`` of every public scikit-learn estimator, sorted by name.

    The public sub-packages of ``skcollapse`` (those whose name has no leading
    underscore) are imported, and every class listed in their ``__all__`` that
    subclasses :class:`sklearn.base.BaseEstimator`, is not abstract and has no
    leading underscore is returned. A new estimator exported from a public
    sub-package is found without editing any list (the pattern of
    ``sklearn.utils.discovery.all_estimators``).

    Returns
    -------
    estimators : list of (str, type)

    Examples
    --------
    >>> from skcollapse.testing import all_estimators
    >>> dict(all_estimators())["MFRecommender"].__name__
    'MFRecommender'
    """
    import skcollapse

    found = {}
    for info in pkgutil.iter_modules(skcollapse.__path__):
        if info.name.startswith("_") or info.name == "conftest":
            continue
        module = importlib.import_module(f"skcollapse.{info.name}")
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and not name.startswith("_")
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())
