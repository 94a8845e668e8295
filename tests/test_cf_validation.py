"""The validation protocol of the CF recommenders: train_split, validation ranking
metrics in the history, early stopping that restores the best epoch."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import ValidSplit

from skcollapse.datasets import make_interactions
from skcollapse.model_selection import PerUserValidSplit
from skcollapse.recommenders import LightGCNRecommender, MFRecommender

FAST = {"embedding_dim": 16, "batch_size": 512, "random_state": 0}


@pytest.fixture(scope="module")
def X():
    X = make_interactions(300, 150, density=0.08, random_state=1)
    assert np.unique(X, axis=0).shape[0] == X.shape[0]  # no duplicate pairs
    return X


def _brute_ndcg(train, valid, U, I, k):
    """NDCG@k by an explicit per-user loop (independent of the package)."""
    seen, rel = {}, {}
    for u, i in train:
        seen.setdefault(u, set()).add(i)
    for u, i in valid:
        rel.setdefault(u, set()).add(i)
    vals = []
    for u, items in rel.items():
        s = U[u] @ I.T
        s[list(seen.get(u, ()))] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(top) if i in items)
        idcg = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(items))))
        vals.append(dcg / idcg)
    return float(np.mean(vals))


def test_per_user_valid_split_holds_out_a_share_of_every_user(X):
    train, valid = PerUserValidSplit(0.2, random_state=0)(X)
    t, v = np.asarray(train.indices), np.asarray(valid.indices)
    assert np.intersect1d(t, v).size == 0 and t.size + v.size == X.shape[0]
    counts = np.bincount(X[:, 0])
    held = np.bincount(X[v, 0], minlength=counts.size)
    expected = np.minimum(np.rint(0.2 * counts), counts - 1)
    np.testing.assert_array_equal(held[counts > 0], expected[counts > 0])
    again, _ = PerUserValidSplit(0.2, random_state=0)(X)
    np.testing.assert_array_equal(again.indices, train.indices)
    with pytest.raises(ValueError, match="'valid_size' parameter"):
        PerUserValidSplit(1.5)(X)


@pytest.mark.parametrize("cls", [MFRecommender, LightGCNRecommender])
def test_validation_metrics_are_recorded_and_exact(X, cls):
    split = PerUserValidSplit(0.1, random_state=0)
    model = cls(max_epochs=3, train_split=split, **FAST).fit(X)
    hist = model.history
    for key in ("valid_loss", "valid_ndcg", "valid_recall"):
        assert len(hist[:, key]) == 3 and np.isfinite(hist[:, key]).all()
    train_idx, valid_idx = (np.asarray(s.indices) for s in split(X))
    train, valid = X[train_idx], X[valid_idx]
    # after fit the validation pairs are known interactions too (the filter)
    assert model.user_items_.nnz == X.shape[0]
    assert np.asarray(model.user_items_[valid[:, 0], valid[:, 1]]).all()
    # ... and the validation metric of the last epoch is that of the model
    # you get (for LightGCN: the graph stays the training pairs)
    emb = model.get_embeddings()
    brute = _brute_ndcg(train, valid, emb["user"], emb["item"], model.k)
    assert hist[-1, "valid_ndcg"] == pytest.approx(brute, rel=1e-5)


def test_skorch_valid_split_works_too(X):
    model = MFRecommender(max_epochs=2, train_split=ValidSplit(0.1, random_state=0),
                          **FAST).fit(X)
    assert model.user_items_.nnz == X.shape[0]
    np.testing.assert_array_equal(model.item_popularity_,
                                  np.bincount(X[:, 1], minlength=model.n_items_))
    assert np.isfinite(model.history[:, "valid_ndcg"]).all()


def test_every_carries_values_forward(X):
    model = MFRecommender(max_epochs=4, train_split=PerUserValidSplit(0.1),
                          callbacks__valid_ranking__every=3, **FAST).fit(X)
    ndcg = model.history[:, "valid_ndcg"]
    assert ndcg[1] == ndcg[0] and ndcg[2] == ndcg[0]  # epochs 2 and 3 carried
    assert len(ndcg) == 4  # epoch 4 is the last: evaluated


class _Spoil(Callback):
    """From epoch 3 on the model ranks the least popular items first and stops
    learning (learning rate 0): validation NDCG falls and stays down."""

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) < 3:
            return
        pop = torch.as_tensor(net.item_popularity_, dtype=torch.float32)
        with torch.no_grad():
            w = net.module_.embedding.weight
            w.zero_()
            w[: net.n_users_, 0] = 1.0
            w[net.n_users_ :, 0] = -pop
        for group in net.optimizer_.param_groups:
            group["lr"] = 0.0


class _Snapshots(Callback):
    def initialize(self):
        self.tables = {}
        return self

    def on_epoch_end(self, net, **kwargs):
        self.tables[len(net.history)] = net.module_.embedding.weight.detach().clone()


def test_early_stopping_restores_the_best_epoch(X):
    split = PerUserValidSplit(0.1, random_state=0)
    snaps = _Snapshots()
    model = MFRecommender(
        max_epochs=20, lr=0.02, train_split=split,
        callbacks=[_Spoil(), snaps, EarlyStopping(
            monitor="valid_ndcg", lower_is_better=False, patience=3, load_best=True)],
        **FAST,
    ).fit(X)
    ndcg = model.history[:, "valid_ndcg"]
    best = int(np.argmax(ndcg)) + 1
    assert best <= 2 < len(ndcg) < 20  # peaked early, stopped early
    assert torch.equal(model.module_.embedding.weight, snaps.tables[best])
    # the cached ranking tables are those of the restored epoch
    train_idx, valid_idx = (np.asarray(s.indices) for s in split(X))
    emb = model.get_embeddings()
    assert _brute_ndcg(X[train_idx], X[valid_idx], emb["user"], emb["item"],
                       model.k) == pytest.approx(ndcg[best - 1], rel=1e-5)


# ------------------------------------------------------------ user-first sampling
def _skewed_pairs(seed=0):
    """Users with very different activity (1 to 40 items)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(60):
        n = 1 + (u * 7) % 40
        rows += [(u, i) for i in rng.choice(80, size=n, replace=False)]
    return np.array(rows)


def test_user_sampling_draws_users_uniformly_and_positives_within_them():
    from scipy.stats import chisquare

    from skcollapse.recommenders._sampling import PairBatches, UserBatches

    X = _skewed_pairs()
    pairs = torch.from_numpy(X)
    gen = torch.Generator().manual_seed(0)
    batches = UserBatches(pairs, 256, generator=gen)
    assert len(batches) == -(-len(X) // 256)
    drawn = torch.cat([batches.sample() for _ in range(200)]).numpy()
    observed = {tuple(p) for p in X.tolist()}
    assert all(tuple(p) in observed for p in drawn.tolist())  # real positives
    counts = np.bincount(drawn[:, 0], minlength=60)
    assert chisquare(counts).pvalue > 1e-3  # uniform over users
    # within a user, positives are uniform over the user's items
    busiest = int(np.argmax(np.bincount(X[:, 0])))
    items = drawn[drawn[:, 0] == busiest, 1]
    per_item = np.unique(items, return_counts=True)[1]
    assert per_item.size == np.sum(X[:, 0] == busiest)
    assert chisquare(per_item).pvalue > 1e-3
    # the pair sampler weighs users by activity: far from uniform
    shuffled = np.concatenate([b[0].numpy() for _ in range(20)
                               for b in PairBatches(pairs, 256, shuffle=True,
                                                    generator=gen)])
    assert chisquare(np.bincount(shuffled[:, 0], minlength=60)).pvalue < 1e-10


def test_user_sampling_trains_the_estimators():
    X = _skewed_pairs()
    for cls in (MFRecommender, LightGCNRecommender):
        model = cls(sampling="user", max_epochs=2, **FAST).fit(X)
        assert len(model.history) == 2 and np.isfinite(model.history[:, "train_loss"]).all()
        ref = cls(sampling="user", max_epochs=2, **FAST).fit(X)
        np.testing.assert_array_equal(model.get_embeddings()["item"],
                                      ref.get_embeddings()["item"])  # seeded
    with pytest.raises(ValueError, match="'sampling' parameter"):
        MFRecommender(sampling="items", max_epochs=1).fit(X)


# ------------------------------------------------------------ the DirectSpec recipe
def _directspec_reference_loss(U, I, u, p, alpha, tau, shrink):
    """float64 transcription of directspec_mf.py's forward (tanatosuu/directspec)."""
    def balance(E):
        E = E / np.linalg.norm(E, axis=1, keepdims=True)
        logits = tau * (E @ E.T)
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        out = E - alpha * (w @ E)
        if shrink != 0:
            out = out * (np.linalg.norm(out, axis=1, keepdims=True) * shrink)
        return out

    s = (balance(U[u]) * balance(I[p])).sum(1)
    return float(-np.log(1.0 / (1.0 + np.exp(-s))).sum() / len(u))


def test_directspec_recipe_loss_equals_the_reference_formulas():
    """MF + the DirectSpec recipe (positive-only bce, no negatives, transform
    regularizer, no weight decay) computes the reference's loss on a batch."""
    rng = np.random.default_rng(0)
    X = np.array([(u, i) for u in range(12) for i in rng.choice(20, 4, replace=False)])
    model = MFRecommender(
        embedding_dim=8, loss="bce", n_negatives=0, weight_decay=0,
        regularizer="directspec", regularizer__alpha=1.0, regularizer__tau=3.0,
        regularizer__shrink_norm=0.03, regularizer__keep_norm=False,
        init="xavier_uniform",
        optimizer=torch.optim.SGD, lr=180.0, sampling="user", batch_size=16,
        max_epochs=1, random_state=0,
    ).fit(X)
    model.module_.double()
    model.regularizer_.double()
    U, I = (t.detach().numpy() for t in model.module_.tables())
    u = np.array([0, 3, 3, 7, 11, 5])
    p = np.array([X[X[:, 0] == k, 1][0] for k in u])
    batch = torch.as_tensor(np.column_stack([u, p]))
    model.module_.train()
    model.regularizer_.train()
    model._fit_state_ = model._training_state()  # to run a training step by hand
    loss = model.get_loss(model.infer(batch), training=True)
    ref = _directspec_reference_loss(U, I, u, p, alpha=1.0, tau=3.0, shrink=0.03)
    assert float(loss) == pytest.approx(ref, rel=1e-10)


def test_xavier_uniform_init_bounds_per_table():
    from skcollapse.nn import MatrixFactorization

    mod = MatrixFactorization(1000, 50, 16, init="xavier_uniform")
    U, I = (t.detach().numpy() for t in mod.tables())
    for table, n in ((U, 1000), (I, 50)):
        bound = np.sqrt(6.0 / (n + 16))
        assert np.abs(table).max() <= bound
        assert np.abs(table).max() > 0.95 * bound  # uniform over the whole range
        assert table.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)


# ------------------------------------------------------------ DirectAU reference
def _directau_reference_loss(U, I, u, i, gamma, t=2.0):
    """float64 transcription of THUwangcy/DirectAU ``calculate_loss``."""
    x = U[u] / np.linalg.norm(U[u], axis=1, keepdims=True)
    y = I[i] / np.linalg.norm(I[i], axis=1, keepdims=True)
    align = (np.linalg.norm(x - y, axis=1) ** 2).mean()

    def uniformity(z):
        iu = np.triu_indices(len(z), k=1)  # torch.pdist: pairs i < j
        d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)[iu]
        return np.log(np.exp(-t * d2).mean())

    return float(align + gamma * (uniformity(x) + uniformity(y)) / 2)


@pytest.mark.parametrize("cls", [MFRecommender, LightGCNRecommender])
@pytest.mark.parametrize("gamma", [0.5, 5.0])
def test_directau_setup_loss_equals_the_reference(cls, gamma):
    """loss='align' + the DirectAU regularizer (weight 1, alignment left to the
    loss) is the reference's loss on the same embeddings, duplicates kept."""
    X = make_interactions(40, 30, density=0.2, random_state=0)
    model = cls(
        embedding_dim=8, loss="align", weight_decay=0, regularizer="directau",
        regularizer__weight=1.0, regularizer__alignment=False,
        regularizer__gamma=gamma, max_epochs=1, random_state=0,
    ).fit(X)
    model.module_.double()
    if cls is LightGCNRecommender:
        model.module_.adjacency = model.module_.adjacency.double()
    model.module_.train()
    model.regularizer_.train()
    pairs = np.vstack([X[:20], X[:3]])  # repeated rows
    u = model._vocabulary("user").encode(pairs[:, 0], name="u")
    i = model._vocabulary("item").encode(pairs[:, 1], name="i")
    batch = torch.as_tensor(np.column_stack([u, i]))
    with torch.no_grad():
        U, I = (t.numpy() for t in model.module_.tables())
    model._fit_state_ = model._training_state()  # to run a training step by hand
    loss = model.get_loss(model.infer(batch), training=True)
    assert float(loss) == pytest.approx(
        _directau_reference_loss(U, I, u, i, gamma), rel=1e-10)


# ------------------------------------------------------------ the ranking filter
def _leaked_pairs(model, X):
    """(user, item) pairs of X among ``recommend(all users, n=n_items_)``."""
    users = np.unique(X[:, 0])
    ids, _ = model.recommend(users, n=model.n_items_)
    known = {tuple(p) for p in X.tolist()}
    return [(u, i) for u, row in zip(users.tolist(), ids.tolist())
            for i in row if i != -1 and (u, i) in known]


@pytest.mark.parametrize("cls", [MFRecommender, LightGCNRecommender, "two_tower"])
def test_no_pair_of_X_is_recommended_after_a_fit_with_validation(X, cls):
    """The planted case of the filter bug: a fit with train_split used to filter
    only the training part, leaving ~10% of each user's own items among the
    candidates (where a test set counts them as misses)."""
    if cls == "two_tower":
        from skcollapse.recommenders import TwoTowerRecommender as cls
    split = PerUserValidSplit(0.2, random_state=0)
    model = cls(max_epochs=1, train_split=split, **FAST).fit(X)
    _, valid_idx = (np.asarray(s.indices) for s in split(X))
    assert valid_idx.size > 0.15 * X.shape[0]  # the case is really planted
    assert _leaked_pairs(model, X) == []
    # every user gets exactly the items it has not interacted with
    ids, _ = model.recommend([0], n=model.n_items_)
    seen = set(X[X[:, 0] == 0, 1].tolist())
    assert set(ids[0][ids[0] != -1].tolist()) == set(range(model.n_items_)) - seen


def test_scores_on_new_pairs_match_a_model_that_filters_all_of_X(X):
    """score/evaluate_ranking on held-out pairs filter every pair of the data
    given to fit: the same figure as ranking with X's full matrix given
    explicitly."""
    import scipy.sparse as sp

    from skcollapse.metrics import evaluate_ranking

    rng = np.random.default_rng(0)
    test_mask = rng.random(X.shape[0]) < 0.2
    X_train, X_test = X[~test_mask], X[test_mask]
    model = MFRecommender(max_epochs=2, train_split=PerUserValidSplit(
        0.2, random_state=0), **FAST).fit(X_train)
    users = np.unique(X_test[:, 0])
    u = np.searchsorted(model.user_ids_, X_train[:, 0])
    i = np.searchsorted(model.item_ids_, X_train[:, 1])
    R = sp.csr_matrix((np.ones(u.size), (u, i)), shape=(model.n_users_, model.n_items_))
    rows = np.searchsorted(model.user_ids_, users)
    ids_all, _ = model.recommend(users, n=20, user_items=R[rows])
    ids_default, _ = model.recommend(users, n=20)
    np.testing.assert_array_equal(ids_default, ids_all)
    got = evaluate_ranking(model, X_test, k=20)
    assert np.isfinite(list(got.values())).all()


def test_partial_fit_with_validation_keeps_every_pair_known(X):
    first, second = X[X[:, 0] < 150], X[X[:, 0] >= 100]
    split = PerUserValidSplit(0.2, random_state=0)
    model = MFRecommender(max_epochs=1, train_split=split, **FAST).fit(first)
    model.partial_fit(second)
    both = np.unique(np.vstack([first, second]), axis=0)
    assert model.user_items_.nnz == both.shape[0]
    assert _leaked_pairs(model, both) == []
    # the negatives of the continued fit avoided first's validation pairs: they
    # were in the sampler's exclusion set (user_items_ when training began)


def test_lightgcn_graph_is_the_training_part_and_partial_fit_extends_it(X):
    split = PerUserValidSplit(0.2, random_state=0)
    model = LightGCNRecommender(max_epochs=1, train_split=split, **FAST).fit(X)
    train_idx, valid_idx = (np.asarray(s.indices) for s in split(X))
    assert model.graph_items_.nnz == train_idx.size
    assert not np.asarray(model.graph_items_[X[valid_idx, 0], X[valid_idx, 1]]).any()
    # recomputing the tables (e.g. after a device move) keeps the training graph
    again = model._compute_tables()["item"].numpy()
    np.testing.assert_allclose(again, model.get_embeddings()["item"], rtol=1e-6)
    model.set_params(train_split=None).partial_fit(X[:10])
    assert model.graph_items_.nnz == X.shape[0]  # every known pair
