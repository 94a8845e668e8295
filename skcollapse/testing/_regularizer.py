"""``RegularizerTests``: the contract every registered regularizer keeps.

A test class mixes it in; its tests are parametrised by
:func:`skcollapse.regularizers.get_regularizer_names` when pytest collects
them, so a regularizer added to the registry (one module plus one import) runs
these tests without editing any list. To check other regularizers, override
``regularizer_names()``. The contract is the one of
:class:`skcollapse.regularizers.Regularizer`: a dict of ``(batch, dim)`` tables
in, the same keys and shapes out plus a finite scalar penalty; gradients reach
the inputs; a penalty's weight scales it (transforms and layers take none);
``"penalty"`` and ``"transform"`` kinds leave inference alone; clear errors on
bad input; pickle and deepcopy.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import torch

__all__ = ["RegularizerTests"]


def _batch(seed, names, *, n=20, d=5, dtype=torch.float32, grad=False):
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
        out[name] = torch.as_tensor(x, dtype=dtype).requires_grad_(grad)
    return out


class RegularizerTests:
    """Mix into a test class; every test runs once per registered name."""

    #: table names of a CF batch and of a CTR batch (one per field)
    table_sets = (("user", "item"), ("C1", "C2", "field.3"))

    def regularizer_names(self):
        """The names the tests run for (the whole registry by default)."""
        from skcollapse.regularizers import get_regularizer_names

        return get_regularizer_names()

    def pytest_generate_tests(self, metafunc):
        if "regularizer_name" in metafunc.fixturenames:
            names = self.regularizer_names()
            metafunc.parametrize("regularizer_name", names, ids=names)

    def make(self, name, **params):
        """A fresh instance of the registered class, set up for ``tables``."""
        from skcollapse.regularizers import resolve_regularizer

        return resolve_regularizer(name)(**params)

    def _setup(self, reg, names, d=5):
        reg.setup({"tables": dict.fromkeys(names, d)})
        return reg

    def test_name_resolves_to_a_regularizer_class(self, regularizer_name):
        from skcollapse.regularizers import Regularizer, resolve_regularizer

        cls = resolve_regularizer(regularizer_name)
        assert isinstance(cls, type) and issubclass(cls, Regularizer)
        assert resolve_regularizer(regularizer_name.upper()) is cls
        assert cls.kind in ("penalty", "transform", "layer")
        reg = cls()  # every registered class builds with its defaults
        assert isinstance(reg, torch.nn.Module)

    def test_keeps_tables_and_returns_a_finite_scalar(self, regularizer_name):
        for k, names in enumerate(self.table_sets):
            reg = self._setup(self.make(regularizer_name), names)
            batch = _batch(k, names, grad=True)
            out, pen = reg(batch, None)
            assert list(out) == list(batch)
            for name in batch:
                assert out[name].shape == batch[name].shape
                assert out[name].dtype == batch[name].dtype
                assert torch.isfinite(out[name]).all()
            assert pen.dim() == 0 and torch.isfinite(pen)
            assert isinstance(reg.last_penalty_, float)

    def test_gradients_reach_the_embeddings(self, regularizer_name):
        for k, names in enumerate(self.table_sets):
            reg = self._setup(self.make(regularizer_name), names)
            batch = _batch(k, names, grad=True)
            out, pen = reg(batch, None)
            loss = pen + sum((o**2).mean() for o in out.values())
            loss.backward()
            grads = [batch[name].grad for name in batch]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            assert any(g.abs().sum() > 0 for g in grads)

    def test_weight_scales_the_penalty_only(self, regularizer_name):
        import pytest

        if self.make(regularizer_name).kind != "penalty":
            pytest.skip("transforms and layers add no penalty and take no weight")
        names = self.table_sets[0]
        batch = _batch(0, names, dtype=torch.float64)
        one = self._setup(self.make(regularizer_name, weight=1.0), names)
        half = self._setup(self.make(regularizer_name, weight=0.5), names)
        out1, pen1 = one(batch, None)
        out2, pen2 = half(batch, None)
        torch.testing.assert_close(pen2, 0.5 * pen1)
        assert half.last_penalty_ == pytest.approx(one.last_penalty_)
        for name in batch:
            torch.testing.assert_close(out1[name], out2[name])

    def test_inference_is_untouched_unless_a_layer(self, regularizer_name):
        names = self.table_sets[0]
        reg = self._setup(self.make(regularizer_name), names)
        reg(_batch(0, names), None)  # one training batch (running statistics)
        reg.eval()
        table = _batch(1, names, n=7)["item"]
        extra = reg.transform_extra("item", table)
        assert extra.shape == table.shape
        if reg.kind == "layer":
            assert torch.isfinite(extra).all()
        else:
            torch.testing.assert_close(extra, table)

    def test_bad_input_is_a_clear_error(self, regularizer_name):
        import pytest

        reg = self.make(regularizer_name)
        with pytest.raises(TypeError, match="dict"):
            reg(torch.zeros(4, 3))
        with pytest.raises(ValueError, match="2-D"):
            reg({"user": torch.zeros(4, 3, 2)})
        with pytest.raises(TypeError, match="floating"):
            reg({"user": torch.zeros(4, 3, dtype=torch.long)})
        with pytest.raises(TypeError, match="torch tensor"):
            reg({"user": np.zeros((4, 3))})
        with pytest.raises(ValueError, match="tables"):
            self.make(regularizer_name, tables=["nope"])({"user": torch.randn(4, 3)})
        # parameters are checked by sklearn's validation, naming class and rule
        cls = type(reg).__name__
        if reg.kind == "penalty":
            with pytest.raises(
                ValueError,
                match=rf"'weight' parameter of {cls} must be a float in the range "
                r"\[0.0, inf\)",
            ):
                self.make(regularizer_name, weight=-1.0)
        else:  # transforms and layers add no penalty: they have no weight to set
            with pytest.raises(TypeError, match="unexpected keyword argument 'weight'"):
                self.make(regularizer_name, weight=1.0)
        with pytest.raises(
            TypeError,
            match=rf"'tables' parameter of {cls} must be None, an instance of 'str' "
            "or an array-like",
        ):
            self.make(regularizer_name, tables=3)

    def test_pickle_and_deepcopy_keep_the_output(self, regularizer_name):
        names = self.table_sets[1]
        reg = self._setup(self.make(regularizer_name), names)
        batch = _batch(2, names, dtype=torch.float64)
        reg(batch, None)
        reg.eval()
        expected, pen = reg(batch, None)
        for twin in (pickle.loads(pickle.dumps(reg)), copy.deepcopy(reg)):
            assert twin.training is False
            got, pen_twin = twin(batch, None)
            torch.testing.assert_close(pen_twin, pen)
            for name in batch:
                torch.testing.assert_close(got[name], expected[name])
