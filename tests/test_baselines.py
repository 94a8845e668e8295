"""Popularity, EASE and ItemKNN against independent numpy computations."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from skcollapse.datasets import make_interactions
from skcollapse.metrics import ErankScorer, evaluate_ranking, ranking_scorer
from skcollapse.recommenders import (
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
)


def _random_pairs(seed, n_users=40, n_items=25, density=0.2):
    """Binary interactions with every user and item present, and the dense matrix."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < density).astype(np.float64)
    X[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0
    X[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1.0
    return np.column_stack(np.nonzero(X)).astype(np.int64), X


# ------------------------------------------------------------------ references
def _ease_reference(X, alpha):
    """Steck's closed form, transcribed: B = I - P diag(1/diag(P))."""
    P = np.linalg.inv(X.T @ X + alpha * np.eye(X.shape[1]))
    return np.eye(X.shape[1]) - P @ np.diag(1.0 / np.diag(P))


def _knn_reference(X, n_neighbors, shrink):
    """Dense cosine with shrinkage, self-similarity 0, top-k per column by a
    per-column loop (ties to the lower row index)."""
    C = X.T @ X
    norms = np.sqrt(np.diag(C))
    S = C / (np.outer(norms, norms) + shrink)
    np.fill_diagonal(S, 0.0)
    W = np.zeros_like(S)
    for j in range(S.shape[1]):
        cand = [i for i in range(S.shape[0]) if S[i, j] > 0]
        cand.sort(key=lambda i: (-S[i, j], i))
        for i in cand[:n_neighbors]:
            W[i, j] = S[i, j]
    return S, W


def _reference_top(scores, liked, n):
    """Best ``n`` unseen items per row (scores only: ties may order either way)."""
    s = np.where(liked > 0, -np.inf, scores)
    return -np.sort(-s, axis=1)[:, :n]


# ------------------------------------------------------------------ EASE
@pytest.mark.parametrize("alpha", [0.5, 7.5, 200.0])
def test_ease_weights_match_the_closed_form(alpha):
    pairs, X = _random_pairs(0)
    model = EASERecommender(alpha=alpha).fit(pairs)
    B = _ease_reference(X, alpha)
    np.testing.assert_allclose(model.coef_, B, rtol=1e-5, atol=1e-6 * np.abs(B).max())
    assert np.all(np.diag(model.coef_) == 0.0)
    # the constrained least-squares optimum: the gradient vanishes off the diagonal
    grad = -X.T @ (X - X @ B) + alpha * B
    off = ~np.eye(X.shape[1], dtype=bool)
    assert np.abs(grad[off]).max() < 1e-8 * max(1.0, np.abs(X.T @ X).max())


def test_ease_scores_are_history_times_weights():
    pairs, X = _random_pairs(1)
    model = EASERecommender(alpha=3.0).fit(pairs)
    S = X @ _ease_reference(X, 3.0)
    users = np.arange(X.shape[0])
    ids, scores = model.recommend(users, n=6)
    np.testing.assert_allclose(scores, _reference_top(S, X, 6), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        scores, S[users[:, None], ids], rtol=1e-4, atol=1e-5
    )  # each id carries its own score
    q = np.array([[3, 0], [0, 5], [3, 7], [10, 2]])
    np.testing.assert_allclose(model.predict(q), S[q[:, 0], q[:, 1]], rtol=1e-4,
                               atol=1e-5)
    # user_items given: the history the scores come from (and the filter)
    H = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [2, 9, 1])), shape=(2, 25))
    ids, scores = model.recommend([4, 4], H, n=3)
    ref = H.toarray() @ _ease_reference(X, 3.0)
    np.testing.assert_allclose(scores, _reference_top(ref, H.toarray(), 3),
                               rtol=1e-4, atol=1e-5)


def test_ease_similar_items_rank_the_weight_rows_without_the_query():
    pairs, X = _random_pairs(2)
    model = EASERecommender(alpha=5.0).fit(pairs)
    B = _ease_reference(X, 5.0)
    ids, scores = model.similar_items([0, 4], n=4)
    for row, i in enumerate([0, 4]):
        assert i not in ids[row]
        np.testing.assert_allclose(scores[row], B[i, ids[row]], rtol=1e-4, atol=1e-6)
        expected = np.sort(np.delete(B[i], i))[::-1][:4]
        np.testing.assert_allclose(scores[row], expected, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ ItemKNN
@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize(("n_neighbors", "shrink"), [(1, 0.0), (3, 0.0), (5, 2.5),
                                                     (100, 0.5)])
def test_itemknn_similarity_matches_bruteforce_cosine(seed, n_neighbors, shrink):
    pairs, X = _random_pairs(seed)
    model = ItemKNNRecommender(n_neighbors=n_neighbors, shrink=shrink).fit(pairs)
    S, W = _knn_reference(X, n_neighbors, shrink)
    got = model.similarity_.toarray()
    np.testing.assert_allclose(got, W, rtol=1e-6, atol=0)
    assert np.all((got > 0).sum(axis=0) <= n_neighbors)
    if n_neighbors >= X.shape[1]:  # nothing pruned: the whole cosine matrix
        np.testing.assert_allclose(got, S, rtol=1e-6, atol=0)
    # scores: the sum of the kept similarities of the user's items
    _ids, scores = model.recommend(np.arange(X.shape[0]), n=5)
    ref = X @ W
    np.testing.assert_allclose(scores, _reference_top(ref, X, 5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.predict(pairs[:30]), ref[pairs[:30, 0], pairs[:30, 1]], rtol=1e-5
    )


def test_itemknn_known_answer_and_similar_items():
    # item 0: users {0,1,2}; item 1: {0,1}; item 2: {2}
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 2]])
    model = ItemKNNRecommender(n_neighbors=2, shrink=1.0).fit(X)
    s01 = 2 / (np.sqrt(3) * np.sqrt(2) + 1.0)
    s02 = 1 / (np.sqrt(3) * 1.0 + 1.0)
    expected = np.array([[0, s01, s02], [s01, 0, 0], [s02, 0, 0]])
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-6)
    ids, scores = model.similar_items(0, n=2)
    np.testing.assert_array_equal(ids, [1, 2])
    np.testing.assert_allclose(scores, [s01, s02], rtol=1e-6)


# ------------------------------------------------------------------ Popularity
def test_popularity_scores_are_the_training_counts():
    pairs, X = _random_pairs(4)
    pairs = np.vstack([pairs, pairs[:7]])  # repeats count in the popularity
    counts = np.bincount(pairs[:, 1], minlength=X.shape[1])
    model = PopularityRecommender().fit(pairs)
    np.testing.assert_array_equal(model.item_popularity_, counts)
    ids, scores = model.recommend(np.arange(X.shape[0]), n=4)
    np.testing.assert_array_equal(scores, _reference_top(
        np.tile(counts, (X.shape[0], 1)).astype(float), X, 4))
    np.testing.assert_array_equal(scores, counts[ids])
    emb = model.get_embeddings()
    np.testing.assert_array_equal(emb["user"] @ emb["item"].T,
                                  np.tile(counts, (X.shape[0], 1)))
    assert ErankScorer(table="item")(model) == pytest.approx(1.0)


def test_popularity_partial_fit_adds_counts_and_ids():
    a = np.array([[0, 1], [1, 1], [1, 2]])
    b = np.array([[1, 2], [5, 9], [0, 1]])
    model = PopularityRecommender().fit(a).partial_fit(b)
    whole = PopularityRecommender().fit(np.vstack([a, b]))
    np.testing.assert_array_equal(model.item_ids_, whole.item_ids_)
    np.testing.assert_array_equal(model.user_ids_, whole.user_ids_)
    np.testing.assert_array_equal(model.item_popularity_, whole.item_popularity_)
    assert (model.user_items_ != whole.user_items_).nnz == 0
    with pytest.raises(ValueError, match="n_items=3"):
        PopularityRecommender(n_items=3).fit(a).partial_fit([[0, 7]])


# ------------------------------------------------------------------ shared API
# RecommenderTestMixin runs on every recommender from tests/test_common.py
@pytest.mark.parametrize(
    "model, weights",
    [(EASERecommender(alpha=1.0), "coef_"), (ItemKNNRecommender(n_neighbors=20),
                                             "similarity_")],
)
def test_item_item_models_have_no_embeddings(model, weights):
    _check_no_embeddings(model.fit(make_interactions(30, 20, random_state=0)),
                         weights)


def _check_no_embeddings(model, weights):
    assert not hasattr(model, "get_embeddings")
    with pytest.raises(AttributeError, match=f"no embedding tables.*{weights}"):
        model.get_embeddings()
    with pytest.raises(TypeError, match="has no get_embeddings"):
        ErankScorer(table="item")(model)


BASELINES = [
    PopularityRecommender(),
    EASERecommender(alpha=2.0),
    ItemKNNRecommender(n_neighbors=5, shrink=1.0),
]


@pytest.mark.parametrize("est", BASELINES, ids=lambda e: type(e).__name__)
def test_clone_pickle_refit_and_unfitted(est):
    pairs, _ = _random_pairs(5)
    with pytest.raises(NotFittedError):
        clone(est).recommend([0])
    model = clone(est).fit(pairs)
    ids, scores = model.recommend(np.arange(10), n=5)
    again = clone(est).fit(pairs)
    np.testing.assert_allclose(again.recommend(np.arange(10), n=5)[1], scores)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.recommend(np.arange(10), n=5)[0], ids)
    np.testing.assert_allclose(restored.predict(pairs), model.predict(pairs))
    assert model.get_params() == est.get_params()


@pytest.mark.parametrize("est", BASELINES, ids=lambda e: type(e).__name__)
def test_raw_ids_through_the_vocabulary(est):
    pairs, _ = _random_pairs(6)
    # labels sorted as the ints, so ties rank in the same order
    frame = pd.DataFrame({"item": [f"m{i:03d}" for i in pairs[:, 1]],
                          "user": pairs[:, 0] * 10 + 3})
    labelled = clone(est).fit(frame)
    plain = clone(est).fit(pairs)
    assert labelled.user_ids_[0] == 3 and labelled.item_ids_.dtype.kind in "OU"
    ids, scores = labelled.recommend([13, 23], n=4)
    _ref_ids, ref_scores = plain.recommend([1, 2], n=4)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)
    assert all(isinstance(i, str) and i.startswith("m") for i in ids.ravel())
    with pytest.raises(ValueError, match="unseen in fit"):
        labelled.recommend([4])
    # held-out raw ids are scored through the vocabulary, as for the CF nets
    out = np.random.default_rng(0).random(len(pairs)) < 0.2
    held = clone(est).fit(frame[~out])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ids unseen in fit: misses
        expected = clone(est).fit(pairs[~out]).score(pairs[out])
        assert held.score(frame[out]) == pytest.approx(expected)
    assert expected > 0


@pytest.mark.parametrize("est", BASELINES, ids=lambda e: type(e).__name__)
def test_pipeline_and_grid_search(est):
    pairs, _ = _random_pairs(7, n_users=60, n_items=20)
    n_items = int(pairs[:, 1].max()) + 1
    cv = KFold(2, shuffle=True, random_state=0)
    # a Pipeline scores with the recommender's own score (NDCG@k)
    pipe = Pipeline([("rec", clone(est).set_params(n_items=n_items))])
    grid = GridSearchCV(pipe, {"rec__k": [5, 10]}, cv=cv, error_score="raise")
    grid.fit(pairs)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.steps[-1][1].k == grid.best_params_["rec__k"]
    # multi-metric ranking scorers on the estimator itself
    grid = GridSearchCV(
        clone(est).set_params(n_items=n_items), {"k": [5, 10]}, cv=cv,
        scoring=ranking_scorer(["ndcg", "mrr"], k=5), refit="ndcg",
        error_score="raise",
    ).fit(pairs)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_ndcg"]))
    assert np.all(grid.cv_results_["mean_test_mrr"] > 0)


def test_grid_search_over_alpha():
    pairs, _ = _random_pairs(8, n_users=80, n_items=30, density=0.3)
    grid = GridSearchCV(
        EASERecommender(n_items=30), {"alpha": [1e-3, 30.0]},
        cv=KFold(3, shuffle=True, random_state=0), error_score="raise",
    ).fit(pairs)
    assert [p["alpha"] for p in grid.cv_results_["params"]] == [1e-3, 30.0]
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))


def test_bad_parameters_are_named():
    pairs, _ = _random_pairs(9)
    with pytest.raises(ValueError, match="alpha"):
        EASERecommender(alpha=0.0).fit(pairs)
    with pytest.raises(ValueError, match="n_neighbors"):
        ItemKNNRecommender(n_neighbors=0).fit(pairs)
    with pytest.raises(ValueError, match="shrink"):
        ItemKNNRecommender(shrink=-1.0).fit(pairs)
    with pytest.raises(ValueError, match="device"):
        PopularityRecommender(device="tpu").fit(pairs)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        EASERecommender().fit(np.ones((5, 3)))


def test_evaluate_ranking_per_user_on_a_baseline():
    pairs, _ = _random_pairs(10, n_users=50)
    rng = np.random.default_rng(0)
    test_mask = rng.random(len(pairs)) < 0.2
    train, test = pairs[~test_mask], pairs[test_mask]
    model = EASERecommender(alpha=2.0, n_users=50, n_items=25).fit(train)
    res = evaluate_ranking(model, test, k=[5, 10], per_user=True)
    agg = evaluate_ranking(model, test, k=[5, 10], metrics=["ndcg", "mrr", "recall"])
    for key, value in agg.items():
        assert res[key].mean() == pytest.approx(value, abs=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("est", BASELINES, ids=lambda e: type(e).__name__)
def test_cuda_ranks_as_cpu(est, torch_device):
    pairs, _ = _random_pairs(11)
    cpu = clone(est).fit(pairs)
    dev = clone(est).set_params(device=torch_device).fit(pairs)
    a, b = cpu.recommend(np.arange(20), n=5), dev.recommend(np.arange(20), n=5)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cpu.predict(pairs), dev.predict(pairs), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(cpu.similar_items([0, 1], n=3)[1],
                               dev.similar_items([0, 1], n=3)[1], rtol=1e-4,
                               atol=1e-5)
