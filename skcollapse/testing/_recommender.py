"""Behavioural tests every recommender with the package's API should pass.

A test class mixes :class:`RecommenderTestMixin` in and implements
``_get_model()`` (an unfitted estimator that can learn the toy data in a few
dozen steps). The data is a checkerboard with a known answer: user ``u`` likes
the items of its own parity (``u % 2 == i % 2``); two of those per user are held
out, so after training the two best unseen items of every user are exactly its
held-out ones (the idea of implicit's ``recommender_base_test``).
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod

import numpy as np

from skcollapse.testing._fixtures import attach_class_fixtures

__all__ = ["RecommenderTestMixin"]


def checkerboard(n_users=20, n_items=20, n_heldout=2):
    """``(train, heldout)`` interaction pairs of the parity checkerboard."""
    train, test = [], []
    for u in range(n_users):
        liked = [i for i in range(n_items) if i % 2 == u % 2]
        held = liked[(u // 2) % len(liked):][:n_heldout]
        if len(held) < n_heldout:
            held = held + liked[: n_heldout - len(held)]
        for i in liked:
            (test if i in held else train).append((u, i))
    return np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)


def _fitted_recommender(cls):
    train, test = checkerboard(cls.n_users, cls.n_items)
    model = cls()._get_model()
    model.fit(train)
    return model, train, test


class RecommenderTestMixin(ABC):
    """Mix into a test class and implement ``_get_model()``.

    ``tests/test_common.py`` applies it to every discovered recommender (one
    generated class each); a user's own recommender can mix it in the same way.
    """

    n_users = 20
    n_items = 20

    @abstractmethod
    def _get_model(self):
        """An unfitted estimator that learns the checkerboard in a few dozen steps."""

    #: class-scoped fixture ``fitted_model``: ``(model, train, test)``, set on
    #: each test class by ``__init_subclass__`` (pytest is imported only then)
    fitted_model = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        attach_class_fixtures(cls, {"fitted_model": _fitted_recommender})

    def test_recommends_the_heldout_items(self, fitted_model):
        model, _, test = fitted_model
        users = np.arange(self.n_users)
        ids, scores = model.recommend(users, n=2)
        assert ids.shape == scores.shape == (self.n_users, 2)
        for u in users:
            assert set(ids[u]) == set(test[test[:, 0] == u, 1]), u
        assert np.all(np.diff(scores, axis=1) <= 0)  # best first

    def test_filters_liked_items(self, fitted_model):
        model, train, _ = fitted_model
        ids, _ = model.recommend(np.arange(self.n_users), n=self.n_items // 2)
        seen = set(map(tuple, train))
        assert not any((u, i) in seen for u, row in enumerate(ids) for i in row)
        ids, _ = model.recommend([0], n=self.n_items, filter_already_liked_items=False)
        assert set(ids[0]) == set(range(self.n_items))

    def test_batch_equals_single(self, fitted_model):
        model, _, _ = fitted_model
        batch, bscores = model.recommend([3, 4, 5], n=4)
        for row, u in enumerate([3, 4, 5]):
            ids, scores = model.recommend(u, n=4)
            np.testing.assert_array_equal(ids, batch[row])
            np.testing.assert_allclose(scores, bscores[row], rtol=1e-6)

    def test_filter_items_and_candidates(self, fitted_model):
        model, _, test = fitted_model
        held = test[test[:, 0] == 0, 1]
        ids, _ = model.recommend([0], n=2, filter_items=held[:1])
        assert held[0] not in ids[0] and held[1] == ids[0, 0]
        cand = np.array([held[1], 1, 3])
        ids, _ = model.recommend([0], n=1, items=cand)
        assert ids[0, 0] == held[1]
        import pytest

        with pytest.raises(ValueError):
            model.recommend([0], filter_items=[1], items=[2])

    def test_empty_users_and_dtypes(self, fitted_model):
        model, _, _ = fitted_model
        ids, scores = model.recommend(np.array([], dtype=np.int64), n=3)
        assert ids.shape == (0, 3) and scores.shape == (0, 3)
        ids, scores = model.recommend(np.array([1, 2], dtype=np.int32), n=3)
        assert np.issubdtype(ids.dtype, np.integer)
        assert np.issubdtype(scores.dtype, np.floating)

    def test_unknown_user_raises(self, fitted_model):
        model, _, _ = fitted_model
        import pytest

        with pytest.raises(ValueError):
            model.recommend([self.n_users + 100])

    def test_similar_items_share_the_parity(self, fitted_model):
        model, _, _ = fitted_model
        items = np.arange(self.n_items)
        ids, scores = model.similar_items(items, n=3)
        assert ids.shape == scores.shape == (self.n_items, 3)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
        assert np.all(ids % 2 == (items % 2)[:, None])

    def test_embeddings_protocol(self, fitted_model):
        model, _, _ = fitted_model
        if not hasattr(model, "get_embeddings"):  # item-item weights, no tables
            import pytest

            with pytest.raises(AttributeError):
                model.get_embeddings()
            return
        emb = model.get_embeddings()
        assert set(emb) >= {"user", "item"}
        assert emb["user"].shape[0] == self.n_users
        assert emb["item"].shape[0] == self.n_items
        assert emb["user"].shape[1] == emb["item"].shape[1]
        assert np.isfinite(emb["user"]).all() and np.isfinite(emb["item"]).all()

    def test_pickle_round_trip(self, fitted_model):
        model, _, _ = fitted_model
        restored = pickle.loads(pickle.dumps(model))
        a = model.recommend(np.arange(self.n_users), n=3)
        b = restored.recommend(np.arange(self.n_users), n=3)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
