"""EASE's float32 solvers (primal in place, dual by Woodbury) equal the dense
float64 closed form; the estimator takes them on large catalogues."""

import numpy as np
import pytest
import scipy.sparse as sp

from skcollapse.recommenders import EASERecommender, _baselines


def _pairs(n_users, n_items, density, seed):
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < density).astype(np.float64)
    X[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0
    X[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1.0
    return np.column_stack(np.nonzero(X)).astype(np.int64), X


def _reference(X, alpha):
    """Steck's closed form in float64: B = I - P diag(1/diag(P))."""
    P = np.linalg.inv(X.T @ X + alpha * np.eye(X.shape[1]))
    return np.eye(X.shape[1]) - P / np.diag(P)[None, :]


@pytest.fixture
def small_blocks(monkeypatch):
    # blocks of 7 rows: every blockwise loop runs several uneven blocks
    monkeypatch.setattr(_baselines, "_EASE_BLOCK", 7)


# users < items (dual) and users > items (primal), alphas from weak to strong
@pytest.mark.parametrize("shape", [(30, 53), (61, 40)])
@pytest.mark.parametrize("alpha", [0.5, 20.0])
@pytest.mark.parametrize("form", ["primal", "dual"])
def test_float32_forms_equal_the_float64_closed_form(small_blocks, shape, alpha,
                                                     form):
    _, X = _pairs(*shape, density=0.15, seed=sum(shape))
    got = _baselines._ease_float32(sp.csr_matrix(X), alpha, form=form)
    want = _reference(X, alpha)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * np.abs(want).max())


def test_blocked_helpers():
    rng = np.random.default_rng(0)
    A = sp.random(23, 17, density=0.3, random_state=0, dtype=np.float32).tocsr()
    np.testing.assert_allclose(_baselines._dense_gram(A, block=5),
                               (A @ A.T).toarray(), rtol=1e-6)
    M = rng.standard_normal((19, 19)).astype(np.float32)
    low = np.tril(M)
    _baselines._symmetrize_from_lower(M, block=4)
    np.testing.assert_array_equal(M, low + np.tril(low, -1).T)


def test_estimator_takes_the_float32_path_beyond_the_float64_budget(monkeypatch,
                                                                    small_blocks):
    calls = []
    for name in ("_ease_torch", "_ease_float32"):
        real = getattr(_baselines, name)

        def spy(R, alpha, *args, real=real, name=name, **kwargs):
            calls.append((name, kwargs.get("form", args[-1] if args else None)))
            return real(R, alpha, *args, **kwargs)

        monkeypatch.setattr(_baselines, name, spy)
    wide, X = _pairs(40, 60, density=0.2, seed=3)  # 40 users < 60 items
    tall = np.column_stack(np.nonzero(X.T))  # 60 users x 40 items
    exact = {name: EASERecommender(alpha=5.0).fit(p)
             for name, p in (("dual", wide), ("primal", tall))}
    assert [c[0] for c in calls] == ["_ease_torch", "_ease_torch"]  # float64
    monkeypatch.setattr(_baselines, "_EASE_FLOAT64_MAX_BYTES", 0)
    for form, pairs in (("dual", wide), ("primal", tall)):
        calls.clear()
        model = EASERecommender(alpha=5.0).fit(pairs)
        assert calls == [("_ease_float32", form)]
        ref = exact[form]
        np.testing.assert_allclose(model.coef_, ref.coef_, rtol=2e-4,
                                   atol=2e-5 * np.abs(ref.coef_).max())
        users = np.unique(pairs[:, 0])
        ids, _ = model.recommend(users, n=5)
        want, _ = ref.recommend(users, n=5)
        assert (ids == want).mean() > 0.98  # float32 may swap near-ties


@pytest.mark.parametrize("form", ["primal", "dual"])
def test_float32_path_refuses_a_matrix_that_is_not_positive_definite(form):
    from skcollapse.recommenders import ModelFitError

    X = sp.csr_matrix(np.ones((10, 12)))
    with pytest.raises(ModelFitError, match="not numerically positive definite"):
        _baselines._ease_float32(X, -100.0, form=form)
