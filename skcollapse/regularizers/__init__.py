"""Anti-collapse regularizers behind one ``regularizer=`` parameter."""

from skcollapse.regularizers._base import (
    CallableRegularizer,
    Regularizer,
    get_regularizer_names,
    register_regularizer,
    resolve_regularizer,
)

__all__ = [
    "CallableRegularizer",
    "Regularizer",
    "get_regularizer_names",
    "register_regularizer",
    "resolve_regularizer",
]
