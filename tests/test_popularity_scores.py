"""``popularity_alignment(source="scores")`` against the SVD of ``U @ V.T``."""

import numpy as np
import pytest
import torch

from skcollapse.datasets import make_interactions
from skcollapse.metrics import popularity_alignment, popularity_collapse
from skcollapse.metrics._popularity_views import _score_direction
from skcollapse.recommenders import MFRecommender


def _reference(U, V, pop, center=False):
    """|cos| of the score matrix's top right singular vector with popularity."""
    S = U @ V.T
    p = pop.astype(float).copy()
    if center:
        S = S - S.mean(axis=1, keepdims=True)
        p -= p.mean()
    v = np.linalg.svd(S)[2][0]
    return abs(v @ p) / (np.linalg.norm(v) * np.linalg.norm(p)), v


def _anisotropic(rng, n_users=40, n_items=30, d=6):
    """Users nearly all along axis 0; the items' largest spread is along axis 1,
    their popularity along axis 0: the two sources must disagree."""
    pop = rng.poisson(5, size=n_items).astype(float) + 1
    V = rng.normal(size=(n_items, d)) * 0.1
    V[:, 0] = pop / pop.max()
    V[:, 1] += 3.0 * rng.normal(size=n_items)
    U = rng.normal(size=(n_users, d)) * 0.01
    U[:, 0] += 5.0 + rng.normal(size=n_users)
    return U, V, pop


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("center", [False, True])
def test_scores_source_is_the_svd_of_the_score_matrix(seed, center):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(25, 5)) @ rng.normal(size=(5, 5))
    V = rng.normal(size=(18, 5)) @ rng.normal(size=(5, 5))
    pop = rng.poisson(8, size=18).astype(float)
    ref, v = _reference(U, V, pop, center)
    got = popularity_alignment(V, pop, source="scores", queries=U, center=center)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    # the direction itself, sign-invariant, and the top singular value
    c, mean, sigma = _score_direction(U, V, center=center)
    u = (V - mean) @ c / sigma
    np.testing.assert_allclose(abs(u @ v), 1.0, rtol=1e-9)
    S = U @ V.T
    if center:
        S = S - S.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(sigma, np.linalg.norm(S, 2), rtol=1e-9)


def test_planted_popularity_is_found_by_both_sources(rng):
    pop = rng.poisson(20, size=60).astype(float)
    V = np.outer(pop, rng.normal(size=8)) + 0.01 * rng.normal(size=(60, 8))
    U = rng.normal(size=(30, 8))
    ref, _ = _reference(U, V, pop)
    got = popularity_alignment(V, pop, source="scores", queries=U)
    assert got > 0.999
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    assert popularity_alignment(V, pop) > 0.999


def test_sources_differ_when_users_are_not_isotropic(rng):
    U, V, pop = _anisotropic(rng)
    ref, _ = _reference(U, V, pop)
    scores = popularity_alignment(V, pop, source="scores", queries=U)
    items = popularity_alignment(V, pop)
    np.testing.assert_allclose(scores, ref, rtol=1e-9)
    assert scores > 0.9, scores  # the score matrix carries popularity
    assert items < 0.6, items  # the table's own top axis does not
    # with isotropic users (UᵀU = I) the two sources are the same number
    Q = np.linalg.qr(rng.normal(size=(40, 6)))[0]
    np.testing.assert_allclose(
        popularity_alignment(V, pop, source="scores", queries=Q),
        popularity_alignment(V, pop), rtol=1e-9,
    )


def test_torch_tables_and_zero_scores(rng):
    U, V, pop = _anisotropic(rng)
    ref = popularity_alignment(V, pop, source="scores", queries=U)
    got = popularity_alignment(torch.as_tensor(V), pop, source="scores",
                               queries=torch.as_tensor(U))
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    assert np.isnan(popularity_alignment(V, pop, source="scores",
                                         queries=np.zeros((4, 6))))


def test_bad_arguments_are_clear_errors(rng):
    V, pop = rng.normal(size=(5, 3)), np.arange(5.0)
    with pytest.raises(ValueError, match="queries="):
        popularity_alignment(V, pop, source="scores")
    with pytest.raises(ValueError, match="only with source='scores'"):
        popularity_alignment(V, pop, queries=V)
    with pytest.raises(ValueError, match="same dimension"):
        popularity_alignment(V, pop, source="scores", queries=np.ones((4, 2)))
    with pytest.raises(ValueError, match="source"):
        popularity_alignment(V, pop, source="users")
    with pytest.raises(ValueError, match="NaN"):
        popularity_alignment(V, pop, source="scores", queries=np.full((4, 3), np.nan))


def test_popularity_collapse_reports_the_score_source():
    X = make_interactions(80, 40, random_state=0)
    model = MFRecommender(embedding_dim=4, max_epochs=1, random_state=0).fit(X)
    out = popularity_collapse(model, X)
    tables = model.get_embeddings()
    expected = popularity_alignment(tables["item"], model.item_popularity_,
                                    source="scores", queries=tables["user"])
    np.testing.assert_allclose(out["popularity_alignment_scores"], expected)
    # a bare table has no score matrix
    assert np.isnan(popularity_collapse(tables["item"], popularity=model.item_popularity_)
                    ["popularity_alignment_scores"])


def test_scores_source_on_device_tensors(torch_device, rng):
    U, V, pop = _anisotropic(rng)
    ref = popularity_alignment(V, pop, source="scores", queries=U)
    got = popularity_alignment(torch.as_tensor(V, device=torch_device), pop,
                               source="scores",
                               queries=torch.as_tensor(U, device=torch_device))
    np.testing.assert_allclose(got, ref, rtol=1e-9)
