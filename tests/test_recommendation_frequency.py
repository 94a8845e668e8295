"""How often each item is recommended: counts against planted score matrices whose
top-n lists are known by construction, a plain-Python reference, an estimator's own
``recommend``, and the display drawing exactly those numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skcollapse.metrics import recommendation_frequency


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def ref_counts(scores, n, seen=()):
    """Top-n of each row by a plain Python sort (score desc, then column)."""
    scores = np.asarray(scores, dtype=float)
    seen = set(map(tuple, seen))
    counts = [0] * scores.shape[1]
    for u, row in enumerate(scores):
        cand = [(-s, i) for i, s in enumerate(row)
                if (u, i) not in seen and np.isfinite(s)]
        for _, i in sorted(cand)[:n]:
            counts[i] += 1
    return np.array(counts)


# ------------------------------------------------------------- known answers
def test_planted_lists_give_known_counts():
    # user u's scores are a permutation: its top-2 is written out below
    scores = np.array([
        [5.0, 4.0, 3.0, 2.0, 1.0],   # top-2: 0, 1
        [1.0, 5.0, 4.0, 3.0, 2.0],   # 1, 2
        [1.0, 2.0, 5.0, 4.0, 3.0],   # 2, 3
        [9.0, 1.0, 2.0, 3.0, 8.0],   # 0, 4
    ])
    pop = np.array([10, 30, 20, 0, 5])
    res = recommendation_frequency(scores, n=2, popularity=pop)
    np.testing.assert_array_equal(res.counts, [2, 2, 2, 1, 1])
    np.testing.assert_array_equal(res.popularity_rank, [3, 1, 2, 5, 4])
    assert res.peak_rank == 1  # items 0, 1, 2 tie at 2: the most popular is item 1
    assert res.n == 2 and res.n_users == 4
    np.testing.assert_array_equal(res.item_ids, np.arange(5))


def test_seen_items_shift_the_peak_to_the_first_unseen_rank():
    # everyone scores by popularity and has seen the k most popular items: the
    # top-n lists are ranks k+1..k+n for every user
    rng = np.random.default_rng(0)
    n_items, n_users, k, n = 40, 7, 12, 5
    pop = rng.permutation(np.arange(1, n_items + 1) * 3.0)
    order = np.argsort(-pop)
    X = np.array([[u, i] for u in range(n_users) for i in order[:k]])
    res = recommendation_frequency(np.tile(pop, (n_users, 1)), X, n=n,
                                   popularity=pop)
    expected = np.zeros(n_items, dtype=int)
    expected[order[k : k + n]] = n_users
    np.testing.assert_array_equal(res.counts, expected)
    assert res.peak_rank == k + 1
    # without the filter every list is the head
    res = recommendation_frequency(np.tile(pop, (n_users, 1)), X, n=n,
                                   popularity=pop, filter_already_liked_items=False)
    assert res.peak_rank == 1 and res.counts[order[:n]].tolist() == [n_users] * n


def test_popularity_from_x_and_ranks_with_ties():
    X = np.array([[0, 1], [1, 1], [2, 4], [0, 4], [1, 0], [2, 0], [2, 2]])
    scores = np.zeros((3, 5)) + np.arange(5)  # highest column wins
    res = recommendation_frequency(scores, X, n=1, filter_already_liked_items=False)
    np.testing.assert_array_equal(res.popularity, [2, 2, 1, 0, 2])
    # by -popularity, ties by item: 0, 1, 4, 2, 3
    np.testing.assert_array_equal(res.popularity_rank, [1, 2, 4, 5, 3])
    np.testing.assert_array_equal(res.counts, [0, 0, 0, 0, 3])
    assert res.peak_rank == 3


@pytest.mark.parametrize("n", [1, 3, 7, 50])
def test_random_scores_match_a_plain_sort(n):
    rng = np.random.default_rng(n)
    scores = rng.integers(0, 6, size=(30, 20)).astype(float)  # many ties
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    X = np.column_stack([rng.integers(0, 30, 60), rng.integers(0, 20, 60)])
    got = recommendation_frequency(scores, X, n=n).counts
    np.testing.assert_array_equal(got, ref_counts(scores, n, seen=X))
    got = recommendation_frequency(scores, X, n=n,
                                   filter_already_liked_items=False).counts
    np.testing.assert_array_equal(got, ref_counts(scores, n))


def test_blocks_users_subset_and_torch_give_the_same_counts(monkeypatch):
    import skcollapse.metrics._frequency as mod

    rng = np.random.default_rng(1)
    scores = rng.normal(size=(50, 30))
    X = np.column_stack([rng.integers(0, 50, 200), rng.integers(0, 30, 200)])
    full = recommendation_frequency(scores, X, n=4)
    monkeypatch.setattr(mod, "_BLOCK", 64)  # two users a block
    assert np.array_equal(recommendation_frequency(scores, X, n=4).counts,
                          full.counts)
    tensor = recommendation_frequency(torch.from_numpy(scores), X, n=4)
    np.testing.assert_array_equal(tensor.counts, full.counts)
    rows = np.array([3, 7, 11])
    sub = recommendation_frequency(scores, X, n=4, users=rows)
    seen = [tuple(p) for p in X if p[0] in rows]
    np.testing.assert_array_equal(
        sub.counts, ref_counts(scores[rows], 4,
                               seen=[(list(rows).index(u), i) for u, i in seen]))
    assert sub.n_users == 3


def test_estimator_counts_equal_its_score_matrix():
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(120, 60, random_state=0)
    model = MFRecommender(embedding_dim=8, max_epochs=2, random_state=0).fit(X)
    res = recommendation_frequency(model, X, n=5)
    emb = model.get_embeddings()
    scores = emb["user"].astype(np.float64) @ emb["item"].astype(np.float64).T
    codes = np.column_stack([
        model._vocabulary("user").encode(X[:, 0], name="X"),
        model._vocabulary("item").encode(X[:, 1], name="X"),
    ])
    np.testing.assert_array_equal(res.counts, ref_counts(scores, 5, seen=codes))
    np.testing.assert_array_equal(res.popularity, model.item_popularity_)
    np.testing.assert_array_equal(res.item_ids, model.item_ids_)
    assert res.n_users == model.n_users_
    # without X: the estimator's own training counts
    again = recommendation_frequency(model, n=5, batch_size=17)
    np.testing.assert_array_equal(again.counts, res.counts)
    # a subset of users, by raw id
    users = model.user_ids_[:10]
    sub = recommendation_frequency(model, n=5, users=users)
    assert sub.counts.sum() == 50 and sub.n_users == 10


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((np.ones(5),), {"popularity": np.ones(5)}, ValueError, "2-D"),
        ((np.ones((2, 3)),), {}, ValueError, "popularity="),
        ((np.ones((2, 3)),), {"popularity": np.ones(4)}, ValueError, "3 rows"),
        ((np.array([[1.0, np.nan]]),), {"popularity": [1, 1]}, ValueError, "NaN"),
        ((np.array([["a", "b"]]),), {"popularity": [1, 1]}, TypeError, "numeric"),
        ((np.ones((2, 3)), np.array([[0, 3]])), {}, ValueError, "item id 3"),
        ((np.ones((2, 3)),), {"popularity": [1, 1, 1], "users": [5]}, ValueError,
         "row numbers"),
        ((np.full((2, 3), -np.inf),), {"popularity": [1, 1, 1]}, ValueError,
         "no item was recommended"),
        ((np.ones((2, 3)),), {"popularity": [1, 1, 1], "n": 0}, ValueError, "n"),
    ],
)
def test_bad_input_names_the_problem(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        recommendation_frequency(*args, **kwargs)


def test_sparse_scores_are_refused():
    import scipy.sparse as sp

    with pytest.raises(TypeError, match="dense"):
        recommendation_frequency(sp.eye(3, format="csr"), popularity=[1, 1, 1])


# ------------------------------------------------------------------ display
def test_display_plots_the_counts_and_marks_the_dimension():
    pytest.importorskip("matplotlib")
    from skcollapse.plotting import RecommendationFrequencyDisplay
    from skcollapse.plotting._frequency import binned_frequency

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 25))
    X = np.column_stack([rng.integers(0, 40, 120), rng.integers(0, 25, 120)])
    res = recommendation_frequency(scores, X, n=3)
    disp = RecommendationFrequencyDisplay.from_scores(scores, X, n=3, n_factors=6)
    xy = disp.scatter_.get_offsets()
    np.testing.assert_array_equal(xy[:, 0], res.popularity_rank)
    np.testing.assert_array_equal(xy[:, 1], res.counts)
    assert disp.factors_line_.get_xdata()[0] == 6
    assert disp.peak_rank_ == res.peak_rank
    assert disp.ax_.get_xscale() == "log"
    b_rank, b_mean = binned_frequency(res.popularity_rank, res.counts)
    np.testing.assert_allclose(disp.line_.get_xdata(), b_rank)
    np.testing.assert_allclose(disp.line_.get_ydata(), b_mean)


def test_binned_frequency_known_answer():
    from skcollapse.plotting._frequency import binned_frequency

    rank = np.arange(1, 9)
    counts = np.array([0, 2, 4, 6, 8, 10, 12, 14])
    # geomspace(1, 9, 4) = 1, 2.08, 4.33, 9 -> edges 1, 2, 4, 9
    r, m = binned_frequency(rank, counts, n_bins=3)
    np.testing.assert_allclose(r, [1.0, 2.5, 6.0])
    np.testing.assert_allclose(m, [0.0, 3.0, 10.0])


def test_display_from_estimator_reads_the_dimension_and_refuses_a_matrix():
    pytest.importorskip("matplotlib")
    from skcollapse.datasets import make_interactions
    from skcollapse.plotting import RecommendationFrequencyDisplay
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(80, 40, random_state=0)
    model = MFRecommender(embedding_dim=6, max_epochs=1, random_state=0).fit(X)
    disp = RecommendationFrequencyDisplay.from_estimator(model, X, n=4,
                                                         yscale="symlog")
    assert disp.n_factors == 6 and disp.factors_line_ is not None
    np.testing.assert_array_equal(
        disp.counts, recommendation_frequency(model, X, n=4).counts)
    assert "MFRecommender" in disp.ax_.get_title()
    none = RecommendationFrequencyDisplay.from_estimator(model, n_factors=None)
    assert none.factors_line_ is None
    with pytest.raises(TypeError, match="from_scores"):
        RecommendationFrequencyDisplay.from_estimator(np.ones((3, 3)))


def test_display_constructor_checks_lengths():
    pytest.importorskip("matplotlib")
    from skcollapse.plotting import RecommendationFrequencyDisplay

    disp = RecommendationFrequencyDisplay(counts=[1, 2], popularity_rank=[1, 2, 3],
                                          n=2)
    with pytest.raises(ValueError, match="same length"):
        disp.plot()
    disp = RecommendationFrequencyDisplay(counts=[1, 2], popularity_rank=[0, 1], n=2)
    with pytest.raises(ValueError, match="1-based"):
        disp.plot()
