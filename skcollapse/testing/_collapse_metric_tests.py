"""``CollapseMetricTests``: known answers every rank-like collapse metric must give.

A test class mixes it in and implements ``metric(self, E) -> float``; optionally
``convert(self, E)`` to feed another array type (torch, dask, memmap) and
``rtol``. The answers are planted, not computed by the code under test:

- the identity ``I_d`` scores ``d`` (full rank, flat spectrum);
- a rank-``r`` matrix with ``r`` equal singular values scores ``r``;
- a rank-one matrix scores 1;
- scaling the matrix or permuting its rows changes nothing;
- the all-zero matrix (complete collapse) scores 0.0.

Effective rank, information abundance and stable rank all satisfy these.
"""

from __future__ import annotations

import numpy as np


def planted_equal_spectrum(n, d, rank, *, value=1.0, seed=0):
    """``n x d`` matrix ``U diag(value) V^T`` with ``rank`` equal singular values."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    return value * U @ V.T


class CollapseMetricTests:
    """Mixin of known-answer tests; implement ``metric(self, E)``."""

    rtol = 1e-6
    #: Shapes exercised: tall (Gram route), square-ish and wide (SVD route).
    shapes = ((2000, 16), (40, 24), (12, 30))

    def metric(self, E):  # pragma: no cover - implemented by the test class
        raise NotImplementedError

    def convert(self, E):
        return E

    def _score(self, E):
        value = self.metric(self.convert(np.ascontiguousarray(E)))
        assert isinstance(value, float), type(value)
        return value

    def test_identity_scores_dimension(self):
        for d in (1, 5, 32):
            np.testing.assert_allclose(self._score(np.eye(d)), d, rtol=self.rtol)

    def test_equal_singular_values_score_rank(self):
        for n, d in self.shapes:
            for r in (1, 3, min(n, d)):
                E = planted_equal_spectrum(n, d, r, value=2.5, seed=r)
                np.testing.assert_allclose(self._score(E), r, rtol=self.rtol)

    def test_rank_one_scores_one(self):
        rng = np.random.default_rng(1)
        for n, d in self.shapes:
            E = np.outer(rng.standard_normal(n), rng.standard_normal(d))
            np.testing.assert_allclose(self._score(E), 1.0, rtol=self.rtol)

    def test_scale_invariance(self):
        rng = np.random.default_rng(2)
        for n, d in self.shapes:
            E = rng.standard_normal((n, d)) * np.linspace(0.1, 3.0, d)
            base = self._score(E)
            for scale in (1e-3, 7.0, 1e4):
                np.testing.assert_allclose(self._score(scale * E), base, rtol=self.rtol)

    def test_row_permutation_invariance(self):
        rng = np.random.default_rng(3)
        for n, d in self.shapes:
            E = rng.standard_normal((n, d)) * np.geomspace(1.0, 0.01, d)
            perm = rng.permutation(n)
            np.testing.assert_allclose(
                self._score(E[perm]), self._score(E), rtol=self.rtol
            )

    def test_all_zero_scores_zero(self):
        for n, d in self.shapes:
            assert self._score(np.zeros((n, d))) == 0.0

    def test_collapsed_below_healthy(self):
        rng = np.random.default_rng(4)
        healthy = rng.standard_normal((2000, 16))
        collapsed = healthy[:, :2] @ rng.standard_normal((2, 16))
        collapsed = collapsed + 1e-3 * rng.standard_normal((2000, 16))
        assert self._score(collapsed) < 0.5 * self._score(healthy)
