"""Constructor helpers shared by the parametrised objects of every package.

Estimators (``recommenders``), regularizers and the other objects built the
scikit-learn way spell out every parameter with its default in ``__init__``
(``inspect.signature``, IDEs and ``help()`` show them all) and hand them on in
one statement; :func:`init_arguments` reads them back from ``locals()`` so that
none can be dropped on the way. Objects that store their arguments unchanged
and check them when first used (callbacks, splitters, ``RankingScorer``) do so
with :func:`check_stored_params`.
"""

from skcollapse.utils._sklearn_compat import validate_parameter_constraints

__all__ = ["check_stored_params", "init_arguments"]


def init_arguments(frame_locals, *, exclude=()):
    """The arguments of an ``__init__``, read from its ``locals()``.

    An ``__init__`` spells out every parameter with its default and hands them
    to its base in one statement, its first, so that none can be dropped on
    the way::

        def __init__(self, *, n_layers=3, lr=1e-3, **kwargs):
            super().__init__(**init_arguments(locals(), exclude=("n_layers",)))
            self.n_layers = n_layers

    ``**kwargs`` (skorch's routed ``prefix__name`` arguments) are merged in;
    ``exclude`` names the parameters the class stores itself. The order is
    the signature's.
    """
    skip = {"self", "kwargs", "__class__", *exclude}
    args = {name: value for name, value in frame_locals.items() if name not in skip}
    return {**args, **frame_locals.get("kwargs", {})}


def check_stored_params(obj):
    """Check the parameters stored on ``obj`` against its ``_parameter_constraints``.

    For objects that keep their ``__init__`` arguments unchanged, as
    scikit-learn estimators do, and check them when they are first used
    (scikit-learn's ``validate_parameter_constraints``, its messages naming
    the parameter and ``type(obj).__name__``).
    """
    constraints = obj._parameter_constraints
    validate_parameter_constraints(
        constraints,
        {name: getattr(obj, name) for name in constraints},
        caller_name=type(obj).__name__,
    )
