"""What the package's skorch callbacks share: parameter checks and the epoch schedule."""

from __future__ import annotations

from typing import ClassVar

from skorch.callbacks import Callback

from skcollapse.utils._params import check_stored_params

__all__ = ["ParametrizedCallback"]


class ParametrizedCallback(Callback):
    """A skorch callback whose parameters are checked when the net initialises it.

    Subclasses declare ``_parameter_constraints`` (scikit-learn's format) and
    store their ``__init__`` arguments unchanged, as scikit-learn estimators
    do. :meth:`initialize` (skorch calls it before every fit) checks them all,
    with scikit-learn's messages, then calls :meth:`_reset`, where a subclass
    sets up the state of a new fit.
    """

    _parameter_constraints: ClassVar[dict] = {}

    def initialize(self):
        check_stored_params(self)
        self._reset()
        return self

    def _reset(self):
        """Set up the state of a new fit (parameters checked)."""

    def _due(self, net):
        """Whether this epoch is an ``every``-th one, or the net's last."""
        epoch = len(net.history)
        last = epoch >= getattr(net, "max_epochs", epoch)
        return not epoch % self.every or last
