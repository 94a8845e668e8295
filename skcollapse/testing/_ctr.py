"""Behavioural tests every CTR classifier of the package should pass.

A test class mixes :class:`CTRClassifierTestMixin` in and implements
``_get_model()`` (an unfitted classifier that learns the toy data in a few
epochs). The data has a known answer that no additive model can give: two
fields of ``n_codes`` codes each and a click exactly when both codes are equal
(a pure pair interaction, no first-order signal), plus a third noise field. A
classifier that models field interactions predicts every pair right.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod

import numpy as np
from sklearn.base import clone

from skcollapse.testing._fixtures import attach_class_fixtures

__all__ = ["CTRClassifierTestMixin"]


def equal_codes_data(n_codes=3, n_repeats=60, seed=0):
    """``(X, y)``: fields 0 and 1 click when equal; field 2 is noise."""
    rng = np.random.default_rng(seed)
    a, b = np.meshgrid(np.arange(n_codes), np.arange(n_codes), indexing="ij")
    pairs = np.column_stack([a.ravel(), b.ravel()])
    # as many clicks as non-clicks: equal pairs repeated n_codes - 1 times more
    weight = np.where(pairs[:, 0] == pairs[:, 1], n_codes - 1, 1)
    rows = np.repeat(pairs, weight * n_repeats, axis=0)
    noise = rng.integers(0, 4, size=(len(rows), 1))
    X = np.hstack([rows, noise]).astype(np.int64)
    y = (X[:, 0] == X[:, 1]).astype(np.int64)
    perm = rng.permutation(len(X))
    return X[perm], y[perm]


def _data(cls):
    return equal_codes_data(cls.n_codes)


def _fitted(cls, data):
    X, y = data
    return cls()._get_model().fit(X, y)


class CTRClassifierTestMixin(ABC):
    """Mix into a test class and implement ``_get_model()``."""

    n_codes = 3

    @abstractmethod
    def _get_model(self):
        """An unfitted classifier that learns the equal-codes rule in a few epochs."""

    #: class-scoped fixtures ``data`` (``(X, y)``) and ``fitted_model``, set
    #: on each test class by ``__init_subclass__`` (pytest is imported only then)
    data = None
    fitted_model = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        attach_class_fixtures(cls, {"data": _data, "fitted_model": _fitted})

    def _grid(self):
        a, b = np.meshgrid(np.arange(self.n_codes), np.arange(self.n_codes))
        return np.column_stack([a.ravel(), b.ravel(), np.zeros(a.size, np.int64)])

    def test_learns_the_pair_interaction(self, fitted_model):
        grid = self._grid()
        np.testing.assert_array_equal(
            fitted_model.predict(grid), (grid[:, 0] == grid[:, 1]).astype(int)
        )

    def test_predict_proba_contract(self, fitted_model, data):
        X, _ = data
        proba = fitted_model.predict_proba(X[:40])
        assert proba.shape == (40, 2)
        assert np.all((proba >= 0) & (proba <= 1))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(fitted_model.classes_, [0, 1])
        np.testing.assert_array_equal(
            fitted_model.predict(X[:40]), fitted_model.classes_[(proba[:, 1] > 0.5).astype(int)]
        )
        assert fitted_model.n_features_in_ == X.shape[1]

    def test_embeddings_protocol(self, fitted_model):
        emb = fitted_model.get_embeddings()
        assert list(emb) == list(fitted_model.embedding_names_)
        n_sets = fitted_model.n_embedding_sets
        assert len(emb) == n_sets * len(fitted_model.field_dims_)
        for name, table in emb.items():
            field = int(name.split("/")[0].lstrip("x"))
            assert table.shape == (
                fitted_model.field_dims_[field], fitted_model.embedding_dim
            ), name
            assert np.isfinite(table).all()

    def test_unknown_codes_are_scored_not_refused(self, fitted_model):
        grid = self._grid()[:4].copy()
        grid[0, 0] = self.n_codes + 10  # never seen
        grid[1, 2] = -1  # negative: the out-of-vocabulary row too
        proba = fitted_model.predict_proba(grid)
        assert proba.shape == (4, 2) and np.isfinite(proba).all()

    def test_rejects_non_integral_codes(self, fitted_model):
        import pytest

        with pytest.raises((TypeError, ValueError)):
            fitted_model.predict_proba(np.full((3, 3), 0.5))

    def test_clone_is_unfitted_and_refits_the_same(self, fitted_model, data):
        X, y = data
        twin = clone(fitted_model)
        assert twin.get_params(deep=False).keys() == (
            fitted_model.get_params(deep=False).keys()
        )
        assert not hasattr(twin, "field_dims_")
        twin.fit(X, y)
        np.testing.assert_allclose(
            twin.predict_proba(X[:50]), fitted_model.predict_proba(X[:50]), rtol=1e-5
        )

    def test_pickle_round_trip(self, fitted_model, data):
        X, _ = data
        restored = pickle.loads(pickle.dumps(fitted_model))
        np.testing.assert_array_equal(
            restored.predict_proba(X[:50]), fitted_model.predict_proba(X[:50])
        )
        assert list(restored.get_embeddings()) == list(fitted_model.get_embeddings())

    def test_set_params_rebuilds_at_the_new_size(self, fitted_model, data):
        X, y = data
        model = clone(fitted_model)
        dim = fitted_model.embedding_dim + 2
        model.set_params(embedding_dim=dim, max_epochs=1).fit(X, y)
        assert {t.shape[1] for t in model.get_embeddings().values()} == {dim}

    def test_string_labels(self, fitted_model, data):
        X, y = data
        labels = np.where(y == 1, "click", "view")
        model = clone(fitted_model).set_params(max_epochs=1).fit(X, labels)
        np.testing.assert_array_equal(model.classes_, ["click", "view"])
        assert set(model.predict(X[:20])) <= {"click", "view"}
