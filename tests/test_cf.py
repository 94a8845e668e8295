"""MFRecommender and LightGCNRecommender: behaviour against independent references."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone

from skcollapse.datasets import make_interactions
from skcollapse.metrics import ndcg_at_k
from skcollapse.nn import LightGCN, SparseRowAdam, normalized_adjacency
from skcollapse.recommenders import (
    LightGCNRecommender,
    MFRecommender,
    ModelFitError,
)
from skcollapse.regularizers import Regularizer

ESTIMATORS = [MFRecommender, LightGCNRecommender]
FAST = {"embedding_dim": 16, "batch_size": 512, "random_state": 0}


def _split(X, frac=0.2, seed=0):
    """Per-user random hold-out of ``frac`` of each user's interactions."""
    rng = np.random.default_rng(seed)
    X = X[rng.permutation(X.shape[0])]
    X = X[np.argsort(X[:, 0], kind="stable")]
    _, start, count = np.unique(X[:, 0], return_index=True, return_counts=True)
    rank = np.arange(X.shape[0]) - np.repeat(start, count)
    test = rank < np.repeat(np.ceil(frac * count).astype(int), count)
    return X[~test], X[test]


@pytest.fixture(scope="module")
def data():
    X = make_interactions(300, 150, density=0.08, random_state=1)
    return _split(X)


@pytest.fixture(scope="module")
def fitted(data):
    train, _ = data
    return {
        cls: cls(max_epochs=3, **FAST).fit(train) for cls in ESTIMATORS
    }


def _brute_ndcg(train, test, U, I, k):
    """NDCG@k by an explicit per-user loop (independent of the package)."""
    seen = {}
    for u, i in train:
        seen.setdefault(u, set()).add(i)
    rel = {}
    for u, i in test:
        rel.setdefault(u, set()).add(i)
    vals = []
    for u, items in rel.items():
        s = U[u] @ I.T
        for i in seen.get(u, ()):
            s[i] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(top) if i in items)
        idcg = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(items))))
        vals.append(dcg / idcg)
    return float(np.mean(vals))


def _popularity_ndcg(train, test, n_items, k=20):
    pop = np.bincount(train[:, 1], minlength=n_items).astype(float)
    n_users = int(max(train[:, 0].max(), test[:, 0].max())) + 1
    R = sp.csr_matrix((np.ones(len(train)), (train[:, 0], train[:, 1])),
                      shape=(n_users, n_items))
    users = np.unique(test[:, 0])
    S = np.tile(pop, (users.shape[0], 1))
    S[R[users].nonzero()] = -np.inf
    rec = np.argsort(-S, axis=1, kind="stable")[:, :k]
    rows = np.searchsorted(users, test[:, 0])
    rel = sp.csr_matrix((np.ones(len(test)), (rows, test[:, 1])),
                        shape=(users.shape[0], n_items))
    return ndcg_at_k(rel, rec, k=k)


# ------------------------------------------------------------------ quality
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_beats_popularity_baseline(cls):
    X = make_interactions(400, 200, density=0.06, random_state=3)
    train, test = _split(X)
    model = cls(embedding_dim=32, batch_size=512, max_epochs=12, lr=2e-2,
                random_state=0).fit(train)
    ours = model.score(test)
    pop = _popularity_ndcg(train, test, 200)
    # MF ~0.28-0.29 and LightGCN ~0.37-0.41 against ~0.20-0.22 over data seeds
    assert ours > pop + 0.04, (ours, pop)
    assert ours > 1.15 * pop, (ours, pop)


# ------------------------------------------------------------------ fitted state
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_fitted_attributes(fitted, data, cls):
    train, _ = data
    model = fitted[cls]
    assert model.n_users_ == train[:, 0].max() + 1
    assert model.n_items_ == train[:, 1].max() + 1
    R = model.user_items_
    assert sp.issparse(R) and R.shape == (model.n_users_, model.n_items_)
    dense = np.zeros(R.shape)
    dense[train[:, 0], train[:, 1]] = 1
    np.testing.assert_array_equal(R.toarray(), dense)
    np.testing.assert_array_equal(
        model.item_popularity_, np.bincount(train[:, 1], minlength=model.n_items_)
    )
    emb = model.get_embeddings()
    assert emb["user"].shape == (model.n_users_, 16)
    assert emb["item"].shape == (model.n_items_, 16)
    assert len(model.history) == 3
    assert np.all(np.isfinite(model.history[:, "train_loss"]))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_predict_is_dot_product_of_embeddings(fitted, data, cls):
    model = fitted[cls]
    _, test = data
    emb = model.get_embeddings()
    expected = np.einsum("nd,nd->n", emb["user"][test[:, 0]], emb["item"][test[:, 1]])
    np.testing.assert_allclose(model.predict(test), expected, rtol=1e-5, atol=1e-6)
    df = pd.DataFrame(test, columns=["user", "item"])
    np.testing.assert_allclose(model.predict(df), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_recommend_matches_brute_force(fitted, data, cls):
    model = fitted[cls]
    train, _ = data
    emb = model.get_embeddings()
    users = np.array([0, 5, 17, 42])
    ids, scores = model.recommend(users, n=7)
    assert ids.shape == scores.shape == (4, 7)
    for row, u in enumerate(users):
        s = emb["user"][u] @ emb["item"].T
        s[train[train[:, 0] == u, 1]] = -np.inf
        order = np.argsort(-s, kind="stable")[:7]
        np.testing.assert_array_equal(ids[row], order)
        np.testing.assert_allclose(scores[row], s[order], rtol=1e-5)
    # no filtering: seen items may come back
    ids_all, _ = model.recommend(users, n=7, filter_already_liked_items=False)
    s = emb["user"][users] @ emb["item"].T
    np.testing.assert_array_equal(ids_all, np.argsort(-s, axis=1, kind="stable")[:, :7])
    # scalar in, 1-D out
    one, one_s = model.recommend(5, n=7)
    np.testing.assert_array_equal(one, ids[1])
    assert one_s.shape == (7,)


def test_recommend_filters_and_candidates(fitted):
    model = fitted[MFRecommender]
    emb = model.get_embeddings()
    u = 3
    s = emb["user"][u] @ emb["item"].T
    liked = model.user_items_[u].indices
    s_f = s.copy()
    s_f[liked] = -np.inf
    banned = np.argsort(-s_f)[:3]
    ids, _ = model.recommend([u], n=5, filter_items=banned)
    s2 = s_f.copy()
    s2[banned] = -np.inf
    np.testing.assert_array_equal(ids[0], np.argsort(-s2, kind="stable")[:5])
    cand = np.array([1, 4, 9, 16, 25, 36, 49, 64])
    ids, sc = model.recommend([u], n=4, items=cand)
    masked = np.where(np.isin(cand, liked), -np.inf, s[cand])
    np.testing.assert_array_equal(ids[0], cand[np.argsort(-masked, kind="stable")[:4]])
    # n larger than the candidates: clipped; filtered candidates padded with -1
    ids, sc = model.recommend([u], n=50, items=cand)
    assert ids.shape == (1, cand.size)
    n_valid = int(np.sum(~np.isin(cand, liked)))
    assert np.all(ids[0, n_valid:] == -1) and np.all(np.isneginf(sc[0, n_valid:]))
    assert set(ids[0, :n_valid]) == set(cand[~np.isin(cand, liked)])
    # user_items given explicitly replaces the training interactions
    extra = sp.csr_matrix(([1.0], ([0], [int(np.argmax(s))])), shape=(1, model.n_items_))
    ids, _ = model.recommend([u], extra, n=3)
    s3 = s.copy()
    s3[int(np.argmax(s))] = -np.inf
    np.testing.assert_array_equal(ids[0], np.argsort(-s3, kind="stable")[:3])


def test_recommend_bad_arguments(fitted):
    model = fitted[MFRecommender]
    with pytest.raises(ValueError, match="contradictory"):
        model.recommend([0], filter_items=[1], items=[2, 3])
    with pytest.raises(ValueError, match=r"user_ids contains 1 user id.* unseen in fit"):
        model.recommend([model.n_users_])
    with pytest.raises(ValueError, match="negative"):
        model.recommend([-1])
    with pytest.raises(ValueError, match="'n' parameter of recommend must be an int"):
        model.recommend([0], n=0)
    # a string id is a label like any other: unknown to this model
    with pytest.raises(ValueError, match=r"user_ids .* unseen in fit, e.g. 'a'"):
        model.recommend(["a"])
    with pytest.raises(TypeError, match="user_ids must hold integer or string"):
        model.recommend([0.5 + 0j])
    with pytest.raises(ValueError, match="duplicate"):
        model.recommend([0], items=[1, 1])
    with pytest.raises(ValueError, match=r"items contains 1 item id.* unseen in fit"):
        model.recommend([0], items=[model.n_items_])
    with pytest.raises(ValueError, match="user_items must have shape"):
        model.recommend([0, 1], sp.csr_matrix((1, model.n_items_)))


def test_similar_items_is_cosine_brute_force(fitted):
    model = fitted[LightGCNRecommender]
    I = model.get_embeddings()["item"]
    In = I / np.linalg.norm(I, axis=1, keepdims=True)
    ids, sc = model.similar_items([2, 7], n=5)
    S = In[[2, 7]] @ In.T
    np.testing.assert_array_equal(ids, np.argsort(-S, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(sc[:, 0], 1.0, rtol=1e-5)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_score_equals_brute_force_ndcg(fitted, data, cls):
    model = fitted[cls]
    train, test = data
    emb = model.get_embeddings()
    expected = _brute_ndcg(train, test, emb["user"], emb["item"], 20)
    assert model.score(test) == pytest.approx(expected, rel=1e-6)
    # k is read at scoring time: no refit needed
    model5 = pickle.loads(pickle.dumps(model)).set_params(k=5)
    assert model5.score(test) == pytest.approx(
        _brute_ndcg(train, test, emb["user"], emb["item"], 5), rel=1e-6
    )


def test_score_counts_unknown_ids_as_misses_and_only_reports_warn(fitted, data):
    from skcollapse.metrics import evaluate_ranking

    model = fitted[MFRecommender]
    _train, test = data
    base = model.score(test)
    extra = np.array([[model.n_users_ + 3, 0], [0, model.n_items_ + 2]])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = model.score(np.vstack([test, extra]))  # a scorer, called per fold
    assert [str(w.message) for w in rec] == []
    assert got < base
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(3):  # the same report three times: said once
            evaluate_ranking(model, np.vstack([test, extra]), metrics=["ndcg"])
    texts = [str(w.message) for w in rec]
    assert len(texts) == 1 and "unseen in fit are counted as misses" in texts[0]


def test_predict_rejects_unknown_ids(fitted):
    model = fitted[MFRecommender]
    with pytest.raises(ValueError, match=r"item column contains 1 item id.* unseen"):
        model.predict([[0, model.n_items_]])
    with pytest.raises(ValueError, match=r"user column contains 1 user id.* unseen"):
        model.predict(np.array([[model.n_users_, 0]]))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "X, err, match",
    [
        (np.array([[0, 1], [-1, 2]]), ValueError, "negative"),
        (np.array([[0.0, 1.5], [1.0, 2.0]]), ValueError, "integer"),
        (np.array([[0, 1, 2]]), ValueError, r"shape \(n, 2\)"),
        (np.array([0, 1, 2]), ValueError, r"shape \(n, 2\)"),
        (np.empty((0, 2), dtype=int), ValueError, "empty"),
        (np.array([[0.0, np.nan]]), ValueError, "NaN"),
        (np.array([["a", None]], dtype=object), TypeError, "integer or string"),
        (np.array([[True, False]]), TypeError, "integer"),
        (sp.csr_matrix(np.eye(3)), TypeError, "sparse"),
        (pd.DataFrame({"u": [0], "i": [1], "t": [5]}), ValueError, "two columns"),
    ],
)
def test_fit_rejects_bad_X(X, err, match):
    with pytest.raises(err, match=match):
        MFRecommender(max_epochs=1).fit(X)


@pytest.mark.parametrize(
    "params, err, match",
    [
        ({"loss": "hinge"}, ValueError, "'loss' parameter of MFRecommender must be"),
        ({"embedding_dim": 0}, ValueError, "embedding_dim"),
        ({"embedding_dim": 2.5}, TypeError, "embedding_dim"),
        ({"n_negatives": 0}, ValueError, "n_negatives"),
        ({"loss": "align", "n_negatives": 3}, ValueError, "positive-only"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"negative_sampling": "popular"}, ValueError, "'negative_sampling' param"),
        ({"similarity": "euclid"}, ValueError, "'similarity' parameter"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"k": 0}, ValueError, r"'k' parameter .* range \[1, inf\)"),
        ({"n_negatives": 0, "loss": "softmax"}, ValueError, "without negatives"),
        ({"init": "orthogonal"}, ValueError, "'init' parameter"),
        ({"optimizer": None}, TypeError, "'optimizer' parameter"),
        ({"embedding_dim": True}, TypeError, "embedding_dim"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"train_split": 0.2}, ValueError, "train_split"),
        ({"random_state": "seed"}, TypeError, "random_state"),
        ({"n_users": 2}, ValueError, "n_users=2"),
        ({"n_items": 1}, ValueError, "n_items=1"),
        ({"regularizer": "no-such-regularizer"}, ValueError, "regularizer="),
    ],
)
def test_bad_params(params, err, match):
    X = np.array([[0, 0], [1, 1], [2, 2], [3, 1]])
    with pytest.raises(err, match=match):
        MFRecommender(max_epochs=1, **params).fit(X)


def test_lightgcn_bad_n_layers():
    with pytest.raises(ValueError, match="n_layers"):
        LightGCNRecommender(n_layers=-1, max_epochs=1).fit(np.array([[0, 0], [1, 1]]))


def test_not_fitted_errors():
    from sklearn.exceptions import NotFittedError

    model = MFRecommender()
    for call in (
        lambda: model.recommend([0]),
        lambda: model.predict([[0, 0]]),
        lambda: model.get_embeddings(),
        lambda: model.score([[0, 0]]),
    ):
        with pytest.raises(NotFittedError):
            call()


# ------------------------------------------------------------------ losses, sizes
@pytest.mark.parametrize("loss", ["bpr", "bce", "softmax", "align"])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_loss_trains(data, cls, loss):
    train, _ = data
    n_neg = {"bce": 4, "softmax": 16}.get(loss)
    model = cls(loss=loss, n_negatives=n_neg, max_epochs=1,
                **{**FAST, "batch_size": 2048}).fit(train)
    losses = model.history[:, "train_loss"]
    assert np.all(np.isfinite(losses))
    assert np.isfinite(model.get_embeddings()["item"]).all()


def _reference_loss(loss, u, p, negs, tau=1.0):
    """Per-row loss written out with numpy in float64 (negs: one list per row)."""
    out = []
    for b in range(u.shape[0]):
        s_pos = u[b] @ p[b]
        s_neg = np.array([u[b] @ n for n in negs[b]])
        if loss == "bpr":
            out.append(np.mean(np.log1p(np.exp(-(s_pos - s_neg)))))
        elif loss == "bce":
            out.append(np.log1p(np.exp(-s_pos)) + np.sum(np.log1p(np.exp(s_neg))))
        else:
            z = np.concatenate([[s_pos], s_neg]) / tau
            out.append(np.log(np.exp(z).sum()) - z[0])
    return float(np.mean(out))


@pytest.mark.parametrize("loss", ["bpr", "bce", "softmax"])
def test_shared_negatives_loss_matches_per_row_reference(loss):
    from skcollapse.recommenders import CFLoss

    g = torch.Generator().manual_seed(0)
    B, n, d = 5, 4, 3
    u = torch.randn(B, d, generator=g, dtype=torch.float64)
    p = torch.randn(B, d, generator=g, dtype=torch.float64)
    shared = torch.randn(n, d, generator=g, dtype=torch.float64)
    mask = torch.zeros(B, n, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = mask[3, 3] = True
    crit = CFLoss(loss, temperature=0.5)
    got = float(crit(u, p, shared, neg_mask=mask))
    negs = [[shared[j].numpy() for j in range(n) if not mask[b, j]] for b in range(B)]
    want = _reference_loss(loss, u.numpy(), p.numpy(), negs, tau=0.5)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # shared negatives equal the same set given to every row independently
    per_row = shared.expand(B, n, d)
    np.testing.assert_allclose(
        float(crit(u, p, shared)), float(crit(u, p, per_row)), rtol=1e-12
    )


def test_shared_negatives_mask_accidental_hits(data):
    train, _ = data
    model = MFRecommender(
        loss="softmax", negative_sampling="shared", n_negatives=64, max_epochs=1,
        **FAST,
    ).fit(train)
    model._fit_state_ = model._training_state()  # to run a training step by hand
    model.module_.train()
    x = torch.from_numpy(train[:256].astype(np.int64))
    out = model.infer(x)
    assert out["negatives"].shape == (64, 16)
    mask = out["negative_mask"]
    assert mask.shape == (256, 64) and mask.any()  # 150 items: hits are certain
    # rebuild the draw from the mask: a masked entry is exactly the row's positive
    rows, cols = torch.nonzero(mask, as_tuple=True)
    item_rows = model.module_.embedding.weight[model.n_users_ + x[rows, 1]]
    torch.testing.assert_close(out["negatives"][cols], item_rows.detach())


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_cosine_similarity_ranks_by_cosine(data, cls):
    train, test = data
    model = cls(
        loss="softmax", negative_sampling="shared", similarity="cosine",
        temperature=0.1, lr=0.05, max_epochs=20, **FAST,
    ).fit(train)
    emb = model.get_embeddings()
    np.testing.assert_allclose(np.linalg.norm(emb["item"], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb["user"], axis=1), 1.0, rtol=1e-5)
    # the raw tables are not normalised: ranking uses the cosine of them
    U, I = (t.detach().numpy() for t in model.module_.tables())
    assert not np.allclose(np.linalg.norm(I, axis=1), 1.0)
    pairs = test[:50]
    cos = np.sum(U[pairs[:, 0]] * I[pairs[:, 1]], axis=1) / (
        np.linalg.norm(U[pairs[:, 0]], axis=1) * np.linalg.norm(I[pairs[:, 1]], axis=1)
    )
    if cls is MFRecommender:
        np.testing.assert_allclose(model.predict(pairs), cos, rtol=1e-4, atol=1e-5)
    # MF ~0.34 against popularity's ~0.24 on this data
    assert model.score(test) > 1.15 * _popularity_ndcg(train, test, model.n_items_)


def test_n_users_n_items_reserve_ids(data):
    train, _ = data
    model = MFRecommender(n_users=400, n_items=170, max_epochs=1, **FAST).fit(train)
    assert model.n_users_ == 400 and model.n_items_ == 170
    assert model.get_embeddings()["item"].shape == (170, 16)
    ids, _ = model.recommend([399], n=3)  # a user without training data
    assert ids.shape == (1, 3)


@pytest.mark.parametrize("bitmap_max", [2**26, 0])  # dense bitmap / sorted keys
def test_negative_sampling_avoids_observed_items(monkeypatch, bitmap_max):
    import scipy.sparse as sp

    from skcollapse.recommenders import _sampling

    monkeypatch.setattr(_sampling, "_BITMAP_MAX", bitmap_max)
    X = make_interactions(50, 40, density=0.3, random_state=0)
    R = sp.csr_matrix((np.ones(len(X)), (X[:, 0], X[:, 1])), shape=(50, 40))
    sampler = _sampling.NegativeSampler(
        R, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    assert (sampler.keys.dtype == torch.bool) == (bitmap_max > 0)
    users = torch.from_numpy(np.repeat(X[:, 0], 10))
    neg = sampler.independent(users, 4).numpy()
    assert neg.min() >= 0 and neg.max() < 40
    observed = set(map(tuple, X))
    hits = np.array(
        [(u, j) in observed for u, row in zip(users.tolist(), neg) for j in row]
    )
    # each draw is observed with prob. d_u (user density) before rejection and
    # d_u**4 after three resampling rounds
    d = np.bincount(X[:, 0]) / 40
    d_draws = np.repeat(d[users.numpy()], 4)
    assert hits.mean() < 2 * np.mean(d_draws**4) + 0.002
    assert hits.mean() < 0.2 * d_draws.mean()


# ------------------------------------------------------------------ skorch behaviour
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_random_state_reproducible_and_pickle(data, cls):
    train, test = data
    a = cls(max_epochs=2, **FAST).fit(train)
    b = cls(max_epochs=2, **FAST).fit(train)
    np.testing.assert_allclose(a.get_embeddings()["item"], b.get_embeddings()["item"])
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_allclose(c.predict(test), a.predict(test))
    np.testing.assert_array_equal(c.recommend([1, 2], n=5)[0], a.recommend([1, 2], n=5)[0])
    assert c.score(test) == pytest.approx(a.score(test))
    d = clone(a)
    assert d.get_params()["embedding_dim"] == 16
    assert not hasattr(d, "n_users_")


def test_set_params_reinitialises_and_warm_start(data):
    train, _ = data
    model = MFRecommender(max_epochs=2, **FAST).fit(train)
    model.set_params(embedding_dim=8).fit(train)
    assert model.get_embeddings()["user"].shape[1] == 8
    model.set_params(module__init_std=0.01)
    assert float(model.module_.embedding.weight.detach().std()) < 0.02
    warm = MFRecommender(max_epochs=2, warm_start=True, **FAST).fit(train)
    before = warm.get_embeddings()["item"].copy()
    warm.fit(train)
    assert len(warm.history) == 4
    assert not np.allclose(before, warm.get_embeddings()["item"])
    # continuing with a new user id grows the tables (the id is learned)
    warm.fit(np.vstack([train, [[warm.n_users_ + 5, 0]]]))
    assert warm.user_ids_[-1] == warm.n_users_ + 4 and len(warm.history) == 6
    # partial_fit continues training on a subset without shrinking the model
    part = MFRecommender(max_epochs=1, **FAST).fit(train)
    n_users = part.n_users_
    before = part.get_embeddings()["item"].copy()
    part.partial_fit(train[train[:, 0] < 10])
    assert part.n_users_ == n_users and len(part.history) == 2
    assert not np.allclose(before, part.get_embeddings()["item"])
    assert part.user_items_.shape == (n_users, part.n_items_)


def test_partial_fit_learns_new_ids_and_keeps_trained_rows(data):
    train, _ = data
    model = MFRecommender(max_epochs=1, **FAST).fit(train)
    before = model.get_embeddings()
    new_user, new_item = int(model.user_ids_.max()) + 7, int(model.item_ids_.max()) + 3
    model.partial_fit(np.array([[new_user, new_item], [new_user, train[0, 1]]]))
    assert model.user_ids_[-1] == new_user and model.item_ids_[-1] == new_item
    assert model.n_users_ == before["user"].shape[0] + 1
    after = model.get_embeddings()
    # SparseRowAdam updates only the rows of the batch: the other users' trained
    # rows were copied into the grown table unchanged
    np.testing.assert_array_equal(after["user"][:-1], before["user"])
    assert model.recommend(new_user, n=3)[0].shape == (3,)
    assert model.predict([[new_user, new_item]]).shape == (1,)
    # n_users fixes the ids: a new id is refused
    fixed = MFRecommender(max_epochs=1, n_users=300, **FAST).fit(train)
    with pytest.raises(ValueError, match="beyond n_users=300"):
        fixed.partial_fit(np.array([[300, 0]]))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_partial_fit_merges_interactions_and_fit_replaces_them(data, cls):
    train, _ = data
    first, second = train[train[:, 0] % 2 == 0], train[train[:, 0] % 2 == 1]
    n_users, n_items = int(train[:, 0].max()) + 1, int(train[:, 1].max()) + 1
    model = cls(max_epochs=1, n_users=n_users, n_items=n_items, **FAST).fit(first)
    model.partial_fit(second)
    union = sp.csr_matrix(
        (np.ones(len(train)), (train[:, 0], train[:, 1])), shape=(n_users, n_items)
    )
    assert (model.user_items_ != (union > 0)).nnz == 0
    np.testing.assert_array_equal(
        model.item_popularity_, np.bincount(train[:, 1], minlength=n_items)
    )
    # items of the first batch stay filtered for its users
    user = int(first[0, 0])
    ids, _ = model.recommend([user], n=n_items - union[user].nnz)
    assert not set(ids[0].tolist()) & set(first[first[:, 0] == user, 1].tolist())
    # fit (also warm) starts the data over
    model.set_params(warm_start=True).fit(second)
    assert model.user_items_.nnz == len({tuple(p) for p in second.tolist()})


def test_user_callbacks_and_verbose(data, capsys):
    from skorch.callbacks import EpochScoring

    train, _ = data
    from skcollapse.metrics import ErankScorer

    model = MFRecommender(
        max_epochs=2,
        callbacks=[EpochScoring(ErankScorer(table="item"), on_train=True,
                                name="erank_item_cb", lower_is_better=False,
                                use_caching=False)],
        verbose=1,
        **FAST,
    ).fit(train)
    assert len(model.history[:, "erank_item_cb"]) == 2
    assert "train_loss" in capsys.readouterr().out


def test_divergence_raises_model_fit_error(data):
    train, _ = data

    def blow_up(emb, ctx):
        return emb["user"].sum() * float("nan")

    with pytest.raises(ModelFitError, match="diverged"):
        MFRecommender(max_epochs=2, regularizer=blow_up, **FAST).fit(train)


@pytest.mark.gpu
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_cuda(data, torch_device, cls):
    if torch_device == "cpu":
        pytest.skip("the CPU path is what every other test exercises")
    train, test = data
    model = cls(max_epochs=2, device=torch_device, **FAST).fit(train)
    assert model.embeddings_cache_["item"].device.type == torch.device(
        torch_device
    ).type
    assert np.isfinite(model.score(test))
    ids, _ = model.recommend([0, 1], n=5)
    assert ids.shape == (2, 5)


# ------------------------------------------------------------------ regularizer hook
class _Spy(Regularizer):
    kind = "penalty"

    def setup(self, info):
        self.info_ = info
        self.seen_ = []

    def penalty(self, embeddings, context=None):
        self.seen_.append(
            (
                {k: tuple(v.shape) for k, v in embeddings.items()},
                {k: v.clone() for k, v in context.items()},
            )
        )
        return embeddings["user"].pow(2).mean()


class _ShiftLayer(Regularizer):
    kind = "layer"

    def __init__(self, *, weight=1.0, shift=0.5):
        super().__init__(weight=weight)
        self.shift = shift

    def transform(self, embeddings, context=None):
        return {k: v + self.shift for k, v in embeddings.items()}

    def transform_extra(self, name, x):
        return x + self.shift


def test_regularizer_receives_batch_embeddings(data):
    train, _ = data
    model = MFRecommender(max_epochs=1, regularizer=_Spy, regularizer__weight=0.1,
                          **FAST).fit(train)
    reg = model.regularizer_
    assert reg.info_["n_users"] == model.n_users_
    assert reg.info_["n_items"] == model.n_items_
    assert (reg.info_["interactions"] != model.user_items_).nnz == 0
    assert reg.info_["tables"] == {"user": 16, "item": 16}
    shapes, ctx = reg.seen_[0]
    assert shapes == {"user": (512, 16), "item": (512, 16)}
    # context ids are observed pairs
    pairs = set(map(tuple, train))
    assert all(
        (u, i) in pairs
        for u, i in zip(ctx["user_ids"].tolist(), ctx["item_ids"].tolist())
    )
    assert len(reg.seen_) == int(np.ceil(len(train) / 512))
    assert model.history[-1, "regularizer_penalty"] > 0


def test_layer_regularizer_applies_to_inference_tables(data):
    train, _test = data
    model = LightGCNRecommender(max_epochs=1, regularizer=_ShiftLayer,
                                regularizer__shift=0.25, **FAST).fit(train)
    with torch.no_grad():
        U, I = model.module_.tables()
    emb = model.get_embeddings()
    np.testing.assert_allclose(emb["item"], I.numpy() + 0.25, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emb["user"], U.numpy() + 0.25, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ nn building blocks
def test_normalized_adjacency_matches_dense_formula():
    rng = np.random.default_rng(0)
    R = (rng.random((6, 5)) < 0.4).astype(float)
    R[0] = 0  # an isolated user
    A = normalized_adjacency(sp.csr_matrix(R)).to_dense().numpy()
    full = np.block([[np.zeros((6, 6)), R], [R.T, np.zeros((5, 5))]])
    d = full.sum(1)
    dinv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    np.testing.assert_allclose(A, dinv[:, None] * full * dinv[None, :], rtol=1e-6)


def test_lightgcn_propagation_and_gradient_match_dense_reference():
    rng = np.random.default_rng(1)
    R = sp.csr_matrix((rng.random((7, 4)) < 0.5).astype(float))
    m = LightGCN(7, 4, embedding_dim=3, n_layers=2).double()
    A = normalized_adjacency(R, dtype=torch.float64)
    m.set_adjacency(A)
    E = m.embedding.weight
    Ad = torch.from_numpy(A.to_dense().numpy())
    ref = (E + Ad @ E + Ad @ (Ad @ E)) / 3
    out = m.propagate()
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * w).sum(), E)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), E)
    torch.testing.assert_close(g, g_ref)


def test_sparse_row_adam_matches_adam_on_touched_rows():
    torch.manual_seed(0)
    w0 = torch.randn(10, 3)
    sparse_p = torch.nn.Parameter(w0.clone())
    dense_p = torch.nn.Parameter(w0.clone())
    opt_s = SparseRowAdam([sparse_p], lr=0.1)
    opt_d = torch.optim.Adam([dense_p], lr=0.1)
    rows = torch.tensor([0, 2, 2, 5])
    for _ in range(3):
        for p, opt, sparse in ((sparse_p, opt_s, True), (dense_p, opt_d, False)):
            opt.zero_grad()
            e = torch.nn.functional.embedding(rows, p, sparse=sparse)
            (e * torch.arange(1.0, 4.0)).sum().backward()
            opt.step()
    touched = [0, 2, 5]
    untouched = [1, 3, 4, 6, 7, 8, 9]
    torch.testing.assert_close(sparse_p[touched], dense_p[touched])
    torch.testing.assert_close(sparse_p[untouched].detach(), w0[untouched])


# the shared behaviour mixin (RecommenderTestMixin) runs on every recommender
# from tests/test_common.py (discovery)


# ------------------------------------------------ DataFrame columns (one reader)
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_dataframe_read_by_column_name(data, cls):
    """A frame with columns [item, user] is trained, scored and predicted per
    real user (the same model as from the ordered frame), never swapped."""
    train, test = data
    ordered = pd.DataFrame({"user": train[:, 0], "item": train[:, 1]})
    swapped = ordered[["item", "user"]]
    assert list(swapped.columns) == ["item", "user"]
    a = cls(max_epochs=1, **FAST).fit(ordered)
    b = cls(max_epochs=1, **FAST).fit(swapped)
    assert (b.n_users_, b.n_items_) == (train[:, 0].max() + 1, train[:, 1].max() + 1)
    for name in ("user", "item"):
        np.testing.assert_array_equal(a.get_embeddings()[name], b.get_embeddings()[name])
    held = pd.DataFrame({"item": test[:, 1], "user": test[:, 0]})
    np.testing.assert_array_equal(b.predict(held), a.predict(test))
    assert b.score(held) == pytest.approx(a.score(test))


@pytest.mark.parametrize(
    "columns", [["movie", "customer"], ["item_id", "user_id"], ["ProductId", "UserId"]]
)
def test_dataframe_with_recognisable_names_is_read_by_name(data, columns):
    """Issue 29: fit(pd.DataFrame({"movie": items, "customer": users})) used to
    fit the items as users."""
    train, _ = data
    df = pd.DataFrame({columns[0]: train[:, 1], columns[1]: train[:, 0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read by name: nothing to warn about
        model = MFRecommender(max_epochs=1, **FAST).fit(df)
    np.testing.assert_array_equal(model.user_ids_, np.unique(train[:, 0]))
    np.testing.assert_array_equal(model.item_ids_, np.unique(train[:, 1]))
    ref = MFRecommender(max_epochs=1, **FAST).fit(train)
    np.testing.assert_array_equal(model.get_embeddings()["user"],
                                  ref.get_embeddings()["user"])


def test_dataframe_with_unknown_names_is_read_by_position_with_one_warning(data):
    train, _ = data
    df = pd.DataFrame({"a": train[:, 0], "b": train[:, 1]})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = MFRecommender(max_epochs=2, **FAST).fit(df)
        model.predict(df)
        MFRecommender(max_epochs=1, **FAST).fit(df)
    texts = [str(w.message) for w in record if "do not say" in str(w.message)]
    assert len(texts) == 1, texts
    assert "'a' as the user column, 'b' as the item column" in texts[0]
    assert "rename" in texts[0].lower()
    np.testing.assert_array_equal(model.user_ids_, np.unique(train[:, 0]))
    # a frame made from an array keeps its positions as names: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MFRecommender(max_epochs=1, **FAST).fit(pd.DataFrame(train))


@pytest.mark.parametrize(
    "columns", [["item", "rating"], ["ts", "user"], ["user_id", "user_name"]]
)
def test_dataframe_with_contradictory_names_is_refused(data, columns):
    train, _ = data
    df = pd.DataFrame({columns[0]: train[:, 1], columns[1]: train[:, 0]})
    match = "contradict|several columns that look like"
    with pytest.raises(ValueError, match=match):
        MFRecommender(max_epochs=1, **FAST).fit(df)
    model = MFRecommender(max_epochs=1, **FAST).fit(train)
    with pytest.raises(ValueError, match=match):
        model.predict(df)
    with pytest.raises(ValueError, match=match):
        model.score(df)
