"""make_interactions: planted low-rank preferences and a popularity long tail."""

import numpy as np
import pytest

from skcollapse.datasets import make_interactions


def test_shape_dtype_uniqueness_and_coverage():
    X = make_interactions(200, 100, density=0.05, min_interactions=3, random_state=0)
    assert X.dtype == np.int64 and X.ndim == 2 and X.shape[1] == 2
    assert np.unique(X, axis=0).shape[0] == X.shape[0]  # no duplicate pairs
    counts = np.bincount(X[:, 0], minlength=200)
    assert counts.min() >= 3 and counts.max() <= 50
    assert np.all(np.diff(X[:, 0]) >= 0)  # ordered by user
    assert X[:, 1].min() >= 0 and X[:, 1].max() < 100
    # mean activity close to density * n_items
    assert counts.mean() == pytest.approx(0.05 * 100, rel=0.25)


def test_reproducible():
    a = make_interactions(50, 40, random_state=7)
    b = make_interactions(50, 40, random_state=7)
    c = make_interactions(50, 40, random_state=8)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_popularity_long_tail_follows_the_prior():
    X, _, _, prior = make_interactions(
        2000, 200, signal_strength=0.0, popularity_exponent=1.0,
        return_factors=True, random_state=0,
    )
    pop = np.bincount(X[:, 1], minlength=200)
    top = np.argsort(-prior)[:40]  # head: top 20% of the prior
    head_share = pop[top].sum() / pop.sum()
    assert head_share > 0.5
    # counts rank items as the prior does
    assert np.corrcoef(np.log(pop + 1), np.log(prior))[0, 1] > 0.9
    # no skew: the head gets about its 20% share
    X0 = make_interactions(2000, 200, signal_strength=0.0, popularity_exponent=0.0,
                           random_state=0)
    pop0 = np.bincount(X0[:, 1], minlength=200)
    assert pop0[top].sum() / pop0.sum() == pytest.approx(0.2, abs=0.03)


def test_planted_preferences_are_recoverable():
    X, P, Q, _ = make_interactions(
        500, 300, n_components=4, popularity_exponent=0.0, return_factors=True,
        random_state=1,
    )
    affinity = P @ Q.T
    observed = affinity[X[:, 0], X[:, 1]]
    rng = np.random.default_rng(0)
    random_pairs = affinity[rng.integers(0, 500, 5000), rng.integers(0, 300, 5000)]
    assert observed.mean() > random_pairs.mean() + 1.0
    # the interaction matrix is dominated by a rank-4 structure
    R = np.zeros((500, 300))
    R[X[:, 0], X[:, 1]] = 1
    s = np.linalg.svd(R - R.mean(0), compute_uv=False)
    assert s[:4].sum() / s.sum() > 3 * 4 / 300


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"n_users": 0}, ValueError, "n_users"),
        ({"n_items": 1}, ValueError, "n_items"),
        ({"n_users": 2.5}, TypeError, "n_users"),
        ({"density": 0.0}, ValueError, "density"),
        ({"density": 0.9}, ValueError, "density"),
        ({"signal_strength": -1.0}, ValueError, "signal_strength"),
        ({"popularity_exponent": float("nan")}, ValueError, "popularity_exponent"),
        ({"n_components": 0}, ValueError, "n_components"),
        ({"min_interactions": 0}, ValueError, "min_interactions"),
    ],
)
def test_bad_parameters(kwargs, err, match):
    params = {"n_users": 10, "n_items": 10, **kwargs}
    with pytest.raises(err, match=match):
        make_interactions(**params)
