"""TwoTowerRecommender: towers over ids and side features, in-batch softmax + logQ."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from skcollapse.datasets import make_interactions, movielens_features
from skcollapse.model_selection import PerUserValidSplit
from skcollapse.nn import CFLoss, TwoTower
from skcollapse.recommenders import TwoTowerRecommender

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"embedding_dim": 8, "hidden_units": (8,), "batch_size": 64, "max_epochs": 2,
        "random_state": 0}


def _tables(n_users, n_items):
    users = pd.DataFrame({"group": [f"g{u % 3}" for u in range(n_users)],
                          "zone": [u % 2 for u in range(n_users)]})
    items = pd.DataFrame({"genres": [("a", "b") if i % 3 == 0 else ("c",)
                                     for i in range(n_items)]})
    return users, items


def _codes(model, kind, ids):
    """Rows of ``ids`` in the model's vocabulary."""
    return model._vocabulary(kind).encode(np.asarray(ids), name="ids")


# ------------------------------------------------------------ the loss
def _softmax_reference(u, pos, cand, mask, temperature, pos_log_q, cand_log_q):
    """float64 transcription: row b's logits are s/T - log q over its positive
    and the candidates not masked; the loss is the mean cross-entropy."""
    out = []
    for b in range(u.shape[0]):
        logits = [u[b] @ pos[b] / temperature - pos_log_q[b]]
        for j in range(cand.shape[0]):
            if not mask[b, j]:
                logits.append(u[b] @ cand[j] / temperature - cand_log_q[j])
        out.append(logsumexp(logits) - logits[0])
    return float(np.mean(out))


@pytest.mark.parametrize("temperature", [1.0, 0.07])
def test_logq_softmax_equals_float64_transcription(temperature):
    rng = np.random.default_rng(0)
    B, n, d = 6, 9, 5
    u, pos, cand = (rng.standard_normal(s) for s in ((B, d), (B, d), (n, d)))
    q = rng.dirichlet(np.ones(12))
    pos_ids, cand_ids = rng.integers(0, 12, B), rng.integers(0, 12, n)
    mask = cand_ids[None, :] == pos_ids[:, None]
    expected = _softmax_reference(u, pos, cand, mask, temperature,
                                  np.log(q[pos_ids]), np.log(q[cand_ids]))
    t = lambda a: torch.tensor(a, dtype=torch.float64)
    got = CFLoss("softmax", temperature=temperature)(
        t(u), t(pos), t(cand), neg_mask=torch.tensor(mask),
        pos_log_q=t(np.log(q[pos_ids])), neg_log_q=t(np.log(q[cand_ids])))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="neither"):
        CFLoss("softmax")(t(u), t(pos), t(cand), pos_log_q=t(np.log(q[pos_ids])))
    with pytest.raises(ValueError, match="softmax"):
        CFLoss("bpr")(t(u), t(pos), t(cand), pos_log_q=t(q[pos_ids]),
                      neg_log_q=t(q[cand_ids]))


def _fitted(**params):
    X = make_interactions(40, 25, random_state=0)
    users, items = _tables(40, 25)
    model = TwoTowerRecommender(**{**TINY, "weight_decay": 0.0, **params})
    model.fit(X, user_features=users, item_features=items)
    model._fit_state_ = model._training_state()  # to run training steps by hand
    return model, X


@pytest.mark.parametrize("logq", [True, False])
def test_in_batch_step_equals_transcription_on_a_fixed_batch(logq):
    """The estimator's training loss on a batch: in-batch candidates (the
    positive itself left out of the negatives, duplicates of it too) and
    log q from the training frequencies, against a float64 transcription."""
    model, X = _fitted(logq_correction=logq, temperature=0.2)
    codes = np.column_stack([_codes(model, "user", X[:, 0]),
                             _codes(model, "item", X[:, 1])])
    batch = torch.from_numpy(codes[[0, 5, 9, 13, 20, 21, 30, 31]])
    batch[3, 1] = batch[0, 1]  # a duplicated positive: an accidental hit
    model.module_.train()
    loss = model.get_loss(model.infer(batch))
    with torch.no_grad():
        enc = model.module_.double().encode(batch[:, 0], batch[:, 1])
    model.module_.float()
    u = enc["user"].numpy()
    i = enc["item"].numpy()
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    i /= np.linalg.norm(i, axis=1, keepdims=True)
    pos_ids = batch[:, 1].numpy()
    freq = np.bincount(codes[:, 1], minlength=model.n_items_) / codes.shape[0]
    log_q = np.log(freq[pos_ids]) if logq else np.zeros(len(pos_ids))
    mask = pos_ids[None, :] == pos_ids[:, None]
    expected = _softmax_reference(u, i, i, mask, 0.2, log_q, log_q)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_in_batch_negatives_exclude_the_positive_itself():
    """A batch whose rows share one positive has no negatives: the loss is 0
    (log 8 if the positive were among its own negatives)."""
    model, X = _fitted()
    codes = _codes(model, "item", X[:8, 1])
    users = _codes(model, "user", X[:8, 0])
    batch = torch.from_numpy(np.column_stack([users, np.full(8, codes[0])]))
    model.module_.train()
    out = model.infer(batch)
    assert out["negative_mask"].all()
    assert float(model.get_loss(out).detach()) == pytest.approx(0.0, abs=1e-6)


def test_mixed_negatives_use_the_mixture_proposal():
    model, _ = _fitted(negative_sampling="mixed", n_negatives=16)
    p = model.item_sampling_probability_
    B, n = 64, 16
    expected = np.log((B * p + n / model.n_items_) / (B + n))
    log_q = model._negative_strategy().log_q  # the strategy's correction
    got = log_q(B, n, torch.device("cpu")).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# ------------------------------------------------------------ frequencies
def test_item_frequencies_come_from_the_training_pairs_only():
    X = make_interactions(60, 30, random_state=1)
    split = PerUserValidSplit(0.3, random_state=0)
    model = TwoTowerRecommender(**TINY, train_split=split).fit(X)
    train = X[np.asarray(split(X)[0].indices)]  # validation held out
    train_freq = np.bincount(_codes(model, "item", train[:, 1]),
                             minlength=model.n_items_) / train.shape[0]
    np.testing.assert_allclose(model.item_sampling_probability_, train_freq)
    all_freq = np.bincount(_codes(model, "item", X[:, 1]),
                           minlength=model.n_items_) / X.shape[0]
    assert not np.allclose(model.item_sampling_probability_, all_freq)


def test_user_sampling_frequencies_weigh_every_user_alike():
    X = make_interactions(50, 20, random_state=2)
    model = TwoTowerRecommender(**TINY, sampling="user").fit(X)
    R = model.user_items_.toarray().astype(np.float64)
    expected = (R / R.sum(axis=1, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose(model.item_sampling_probability_, expected,
                               rtol=1e-12)


# ------------------------------------------------------------ features
def test_missing_id_in_a_feature_table_is_an_error_naming_it():
    X = make_interactions(30, 20, random_state=0)
    users, items = _tables(30, 20)
    model = TwoTowerRecommender(**TINY)
    with pytest.raises(ValueError, match=r"user_features has no row for 2 user"):
        model.fit(X, user_features=users.drop(index=[3, 4]))
    with pytest.raises(ValueError, match=r"item_features has no row for 1 item"):
        clone(model).set_params(item_features=items.drop(index=7)).fit(X)
    with pytest.raises(ValueError, match="duplicate"):
        model.fit(X, user_features=pd.concat([users, users]))
    with pytest.raises(TypeError, match="DataFrame indexed by the raw user ids"):
        model.fit(X, user_features=users.to_numpy())


def test_unknown_and_missing_values_go_to_the_oov_row():
    X = make_interactions(30, 20, random_state=0)
    keep = X[:, 1] < 15  # items 15..19 arrive later
    items = pd.DataFrame({"kind": ["x", "y", "z"] * 6 + ["x", "y"]})
    items.loc[2, "kind"] = None  # missing: OOV
    model = TwoTowerRecommender(**TINY).fit(X[keep], item_features=items)
    cats = model.item_categories_["kind"]
    np.testing.assert_array_equal(cats, ["x", "y", "z"])
    assert model.get_embeddings()["item/kind"].shape == (3, 8)
    later = items.copy()
    later.loc[15:, "kind"] = ["new", "x", None, "other", "y"]
    model.partial_fit(X[~keep], item_features=later)
    bags = model.module_.item_fields
    oov = bags.oov_row(0)
    codes = bags.codes[:, 0].numpy()
    ids = list(model.item_ids_)
    for item, value in [(0, "x"), (1, "y"), (2, None), (15, "new"), (16, "x"),
                        (17, None), (18, "other"), (19, "y")]:
        want = oov if value is None or value not in cats else list(cats).index(value)
        assert codes[ids.index(item)] == want, (item, value)


def test_multi_valued_field_is_the_mean_of_its_values():
    enc = TwoTower(2, 3, embedding_dim=4, item_field_dims=[3])
    codes = torch.tensor([[0, 1], [2, 3], [3, 3]])  # row 3 is the OOV row
    weights = torch.tensor([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0]])
    enc.item_fields.set_features(codes, weights, torch.tensor([0, 0]))
    W = enc.item_fields.weight.detach().numpy()
    got = enc.item_fields(torch.arange(3)).detach().numpy()[:, 0]
    np.testing.assert_allclose(got, [(W[0] + W[1]) / 2, W[2], W[3]], rtol=1e-6)


def test_get_embeddings_has_towers_ids_and_every_field():
    model, _ = _fitted()
    emb = model.get_embeddings()
    assert set(emb) == {"user", "item", "user/id", "item/id", "user/group",
                        "user/zone", "item/genres"}
    assert emb["user/group"].shape == (3, 8) and emb["item/genres"].shape == (3, 8)
    assert emb["user/id"].shape == emb["user"].shape == (model.n_users_, 8)
    # cosine similarity: the ranking tables are the normalised tower outputs
    np.testing.assert_allclose(np.linalg.norm(emb["item"], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.item_categories_["genres"], ["a", "b", "c"])


def test_ordinal_encoder_upstream_gives_the_same_model():
    """Codes of an upstream OrdinalEncoder (pandas output keeps the id index)
    are categories like any other: same categories order, same model."""
    X = make_interactions(40, 25, random_state=0)
    users, _ = _tables(40, 25)
    enc = ColumnTransformer([("cat", OrdinalEncoder(), ["group", "zone"])],
                            verbose_feature_names_out=False)
    coded = enc.set_output(transform="pandas").fit_transform(users)
    assert coded.dtypes.iloc[0] == np.float64
    a = TwoTowerRecommender(**TINY).fit(X, user_features=users)
    b = TwoTowerRecommender(**TINY).fit(X, user_features=coded)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-5)
    assert a.user_categories_["group"].tolist() == ["g0", "g1", "g2"]
    assert b.user_categories_["group"].tolist() == [0.0, 1.0, 2.0]


def test_string_ids_constructor_tables_pipeline_and_grid_search():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"user": [f"u{k}" for k in rng.integers(0, 20, 300)],
                      "item": [f"m{k}" for k in rng.integers(0, 15, 300)]})
    users = pd.DataFrame({"zone": [k % 3 for k in range(20)]},
                         index=[f"u{k}" for k in range(20)])
    items = pd.DataFrame({"genre": [("a", "b")[k % 2] for k in range(15)]},
                         index=[f"m{k}" for k in range(15)])
    pipe = Pipeline([("tt", TwoTowerRecommender(**TINY))])
    pipe.fit(X, tt__user_features=users, tt__item_features=items)
    assert pipe["tt"].user_fields_ == ["zone"]
    grid = GridSearchCV(
        TwoTowerRecommender(**TINY, user_features=users, item_features=items),
        {"temperature": [0.1, 0.5]}, cv=KFold(2, shuffle=True, random_state=0),
        error_score="raise",
    ).fit(X)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.item_fields_ == ["genre"]


def test_partial_fit_new_ids_need_rows_and_keep_trained_rows():
    X = make_interactions(30, 20, random_state=0)
    users, _ = _tables(40, 20)
    model = TwoTowerRecommender(**TINY).fit(X, user_features=users)
    before = model.get_embeddings()["user/id"]
    new = np.array([[35, 1], [36, 2]])
    with pytest.raises(ValueError, match="pass user_features="):
        clone(model).fit(X, user_features=users).partial_fit(new)
    model.partial_fit(new, user_features=users)
    after = model.get_embeddings()["user/id"]
    assert after.shape[0] == before.shape[0] + 2
    np.testing.assert_array_equal(after[: before.shape[0]], before)
    assert list(model.user_ids_[-2:]) == [35, 36]


# ------------------------------------------------------------ parameters
def test_bad_parameter_combinations_are_refused():
    X = make_interactions(20, 10, random_state=0)
    with pytest.raises(ValueError, match="loss='softmax'"):
        TwoTowerRecommender(**TINY, loss="bpr").fit(X)
    with pytest.raises(ValueError, match="leave n_negatives=None"):
        TwoTowerRecommender(**TINY, n_negatives=5).fit(X)
    with pytest.raises(ValueError, match="'id'"):
        TwoTowerRecommender(**TINY).fit(X, user_features=pd.DataFrame(
            {"id": range(20)}))


@pytest.mark.parametrize("params", [
    {"loss": "bpr", "negative_sampling": "independent", "similarity": "dot"},
    {"loss": "bce", "negative_sampling": "shared"},
    {"negative_sampling": "mixed", "n_negatives": 8},
    {"regularizer": "logdet", "regularizer__weight": 0.1},
    {"hidden_units": ()},
])
def test_variants_train_validate_and_rank(params):
    model, _ = _fitted(**params, train_split=PerUserValidSplit(0.2, random_state=0))
    assert np.isfinite(model.history[-1, "valid_loss"])
    assert np.isfinite(model.history[-1, "train_loss"])
    if "regularizer" in params:
        assert "regularizer_penalty" in model.history[-1]
    ids, _ = model.recommend([0, 1], n=3)
    assert ids.shape == (2, 3)


def test_features_let_cold_structure_be_learned():
    """A planted structure only the features carry: users of group g like the
    items of genre g. With ids alone every held-out item of a user is a cold
    guess; with the features the held-out items rank first."""
    rng = np.random.default_rng(0)
    n_users, n_items, g = 60, 40, 4
    ug, ig = np.arange(n_users) % g, np.arange(n_items) % g
    pairs = [(u, i) for u in range(n_users) for i in range(n_items)
             if ug[u] == ig[i] and rng.random() < 0.5]
    X = np.array(pairs)
    test = rng.random(len(X)) < 0.2
    from skcollapse.metrics import evaluate_ranking
    params = {**TINY, "max_epochs": 30, "lr": 1e-2, "weight_decay": 0.0,
              "n_users": n_users, "n_items": n_items}
    with_f = TwoTowerRecommender(
        **params, user_features=pd.DataFrame({"g": ug}),
        item_features=pd.DataFrame({"g": ig})).fit(X[~test])
    recall = evaluate_ranking(with_f, X[test], k=10, metrics=("recall",))["recall"]
    assert recall > 0.9  # 10 same-group unseen items at most per user


@pytest.mark.slow
def test_movielens_features_on_ml100k():
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                          "eval-data", "ml-100k")
    if not os.path.isfile(os.path.join(folder, "u.user")):
        pytest.skip("ml-100k not available")
    from skcollapse.datasets import load_movielens
    data = load_movielens(folder, variant="100k")
    uf, itf = data.user_features, data.item_features
    assert list(uf.columns) == ["age", "gender", "occupation", "zip"]
    assert uf.shape[0] == 943 and itf.shape[0] == 1682
    assert set(uf["age"]) <= {"<18", "18-24", "25-34", "35-44", "45-49", "50-55",
                              "56+"}
    assert itf["genres"].iloc[0] == ("Animation", "Children's", "Comedy")
    model = TwoTowerRecommender(**{**TINY, "max_epochs": 1}).fit(
        data.data[:5000], user_features=uf, item_features=itf)
    assert model.user_fields_ == ["age", "gender", "occupation", "zip"]


def test_movielens_features_known_answers():
    users = pd.DataFrame({"age": [1, 18, 24, 25, 49, 50, 56, np.nan],
                          "zip_code": ["55105", "T8H1N", None, "1", "2", "3", "4",
                                       "5"]})
    items = pd.DataFrame({"release_date": ["01-Jan-1995", "", "12-Mar-1968"],
                          "genres": ["unknown", "Drama|War", None]})
    uf, itf = movielens_features(users, items, zip_digits=2)
    uf, itf = (t.astype(object).where(t.notna(), None) for t in (uf, itf))
    assert uf["age"].tolist() == ["<18", "18-24", "18-24", "25-34", "45-49",
                                  "50-55", "56+", None]
    assert uf["zip"].tolist() == ["55", "T8", None, "1", "2", "3", "4", "5"]
    assert itf["genres"].tolist() == [(), ("Drama", "War"), ()]
    assert itf["decade"].tolist() == ["1990s", None, "1960s"]


@pytest.mark.gpu
def test_fits_and_ranks_on_the_device(torch_device):
    model, _ = _fitted(device=torch_device,
                       train_split=PerUserValidSplit(0.2, random_state=0))
    assert model.get_embedding_tensors()["user"].device.type == torch_device
    assert model.recommend([0], n=3)[0].shape == (1, 3)
