"""Every registered regularizer keeps the ``Regularizer`` contract.

The tests come from :class:`skcollapse.testing.RegularizerTests`, parametrised
by ``get_regularizer_names()``: registering a regularizer runs them.
"""

from skcollapse.regularizers import (
    Regularizer,
    get_regularizer_names,
    register_regularizer,
)
from skcollapse.regularizers._base import _REGISTRY
from skcollapse.testing import RegularizerTests


class TestRegisteredRegularizers(RegularizerTests):
    pass


def test_the_registry_is_what_the_contract_runs_over():
    # the built-in names of DESIGN.md, so an empty registry cannot pass
    names = RegularizerTests().regularizer_names()
    assert names == get_regularizer_names()
    assert {"logdet", "dbn", "directspec", "directspec+", "directau",
            "uniformity", "sv_variance", "coding_rate", "resn"} <= set(names)


class _TwiceNorm(Regularizer):
    """A new penalty, registered only inside the test below."""

    def penalty(self, embeddings, context=None):
        return sum(x.norm(dim=1).mean() for x in embeddings.values())


def test_a_newly_registered_name_is_picked_up():
    """Registering a class adds it to the names the mixin parametrises over."""
    try:
        register_regularizer("_contract_probe")(_TwiceNorm)
        assert "_contract_probe" in RegularizerTests().regularizer_names()
    finally:
        _REGISTRY.pop("_contract_probe", None)
    assert "_contract_probe" not in get_regularizer_names()
