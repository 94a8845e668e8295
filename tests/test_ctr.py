"""CTR classifiers: learning the planted signal, sklearn tooling, regularizers."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, OrdinalEncoder

from skcollapse.datasets import make_ctr
from skcollapse.metrics import information_abundance
from skcollapse.recommenders import (
    DCNv2Classifier,
    DNNClassifier,
    FinalMLPClassifier,
    FMClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
)
from skcollapse.regularizers import Regularizer

CLASSIFIERS = [
    FMClassifier,
    DNNClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
    DCNv2Classifier,
    FinalMLPClassifier,
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models: one thread avoids oversubscribing shared CI cores
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _small(cls, **kwargs):
    """A small, fast configuration of each model."""
    params = {"embedding_dim": 8, "batch_size": 256, "lr": 5e-3, "max_epochs": 2,
              "random_state": 0}
    if cls is not FMClassifier:
        params.update(hidden_units=(32,), dropout=0.0)
    if cls is xDeepFMClassifier:
        params["cin_layer_sizes"] = (8,)
    if cls is DCNv2Classifier:
        params["n_cross_layers"] = 2
    params.update(kwargs)
    return cls(**params)


@pytest.fixture(scope="module")
def ctr_data():
    X, y, p = make_ctr(
        8000, cardinalities=[3, 4, 6, 10, 20], n_interactions=3,
        interaction_strength=2.0, first_order_strength=0.3, random_state=0,
    )
    return X[:6000], y[:6000], X[6000:], y[6000:], p[6000:]


@pytest.fixture(scope="module")
def first_order_auc(ctr_data):
    Xtr, ytr, Xte, yte, _ = ctr_data
    enc = OneHotEncoder(handle_unknown="ignore").fit(Xtr)
    lr = LogisticRegression(max_iter=2000).fit(enc.transform(Xtr), ytr)
    return roc_auc_score(yte, lr.predict_proba(enc.transform(Xte))[:, 1])


# the largest shortfall from the Bayes AUC accepted after a few epochs
BAYES_GAP = 0.05


@pytest.mark.parametrize("cls", CLASSIFIERS)
@pytest.mark.parametrize("n_sets", [1, 2])
def test_learns_planted_interactions(cls, n_sets, ctr_data, first_order_auc):
    Xtr, ytr, Xte, yte, pte = ctr_data
    extra = {"lr": 2e-2, "max_epochs": 6} if cls is FMClassifier else {"max_epochs": 4}
    clf = _small(cls, n_embedding_sets=n_sets, **extra).fit(Xtr, ytr)
    auc = roc_auc_score(yte, clf.predict_proba(Xte)[:, 1])
    bayes = roc_auc_score(yte, pte)
    assert auc > bayes - BAYES_GAP, (auc, bayes)
    # the pair terms are learned: clearly better than an additive model
    assert auc > first_order_auc + 0.05, (auc, first_order_auc)


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_predict_api_and_embedding_tables(cls, ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    clf = _small(cls, n_embedding_sets=2, max_epochs=1).fit(Xtr[:1000], ytr[:1000])
    proba = clf.predict_proba(Xte[:50])
    assert proba.shape == (50, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(Xte[:50]), (proba[:, 1] > 0.5))
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    assert clf.field_dims_ == [3, 4, 6, 10, 20]
    emb = clf.get_embeddings()
    names = [f"x{f}/set{m}" for m in range(2) for f in range(5)]
    assert list(emb) == names == clf.embedding_names_
    for m in range(2):
        for f, card in enumerate(clf.field_dims_):
            table = emb[f"x{f}/set{m}"]
            assert table.shape == (card, 8)
            np.testing.assert_array_equal(
                table, clf.module_.embedding.table(f, m).detach().numpy()
            )
    # per-field IA as the paper reports it
    ia = information_abundance(emb)
    assert all(1.0 <= v <= 8 for v in ia.values())


def test_single_set_names_tables_after_dataframe_columns(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    df = pd.DataFrame(Xtr[:500], columns=["user", "item", "hour", "site", "ad"])
    clf = _small(DNNClassifier, max_epochs=1).fit(df, ytr[:500])
    assert list(clf.get_embeddings()) == ["user", "item", "hour", "site", "ad"]
    np.testing.assert_array_equal(clf.feature_names_in_, df.columns)
    assert clf.n_features_in_ == 5


# --------------------------------------------------------------------- OOV handling
def test_unknown_codes_use_the_oov_row(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    Xtr = Xtr[:2000].copy()
    Xtr[::7, 2] = -1  # negative codes at fit train the OOV row
    clf = _small(DCNv2Classifier, max_epochs=1).fit(Xtr, ytr[:2000])
    assert clf.field_dims_[2] == 6
    base = np.tile(Xtr[:1], (4, 1))
    base[:, 2] = [-1, -7, 6, 10**6]  # all unknown to field 2 (6 known codes)
    proba = clf.predict_proba(base)[:, 1]
    np.testing.assert_allclose(proba, proba[0], rtol=1e-6)
    known = base[:1].copy()
    known[:, 2] = 0
    assert clf.predict_proba(known)[0, 1] != pytest.approx(proba[0], rel=1e-6)


def test_given_cardinalities_send_larger_codes_to_oov(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    clf = _small(DNNClassifier, cardinalities=[3, 4, 4, 10, 20], max_epochs=1)
    clf.fit(Xtr[:1000], ytr[:1000])
    assert clf.field_dims_ == [3, 4, 4, 10, 20]
    assert clf.get_embeddings()["x2"].shape == (4, 8)
    rows = np.tile(Xtr[:1], (3, 1))
    rows[:, 2] = [4, 5, -1]
    proba = clf.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(proba, proba[0], rtol=1e-6)
    clf = _small(DNNClassifier, cardinalities=50, max_epochs=1).fit(Xtr[:500], ytr[:500])
    assert clf.field_dims_ == [50] * 5


def test_pipeline_with_ordinal_encoder_and_unseen_categories():
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({
        "city": rng.choice(["paris", "rome", "oslo", "lima"], n),
        "device": rng.choice(["ios", "android", "web"], n),
        "slot": rng.choice([f"s{i}" for i in range(12)], n),
    })
    logit = (df.city.isin(["paris", "rome"]) & (df.device == "ios")) * 2.5 - 1.0
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    pipe = make_pipeline(
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        _small(IPNNClassifier, max_epochs=4),
    ).fit(df, y)
    assert roc_auc_score(y, pipe.predict_proba(df)[:, 1]) > 0.7
    new = pd.DataFrame({
        "city": ["tokyo", "cairo", "paris"],  # two cities never seen
        "device": ["ios", "ios", "ios"],
        "slot": ["s1", "s1", "s1"],
    })
    proba = pipe.predict_proba(new)[:, 1]
    assert proba[0] == pytest.approx(proba[1], rel=1e-6)  # both use the OOV row
    assert proba[2] > proba[0]  # the learned paris x ios interaction


def test_column_transformer_with_binned_numeric_columns():
    rng = np.random.default_rng(1)
    n = 2000
    df = pd.DataFrame({
        "price": rng.lognormal(size=n),
        "age": rng.uniform(18, 80, n),
        "brand": rng.choice(list("abcdef"), n),
    })
    y = ((df.price > 1.0) ^ (df.brand.isin(list("abc")))).astype(int).to_numpy()
    pre = ColumnTransformer([
        ("num", KBinsDiscretizer(n_bins=8, encode="ordinal",
                                 quantile_method="averaged_inverted_cdf"),
         ["price", "age"]),
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
         ["brand"]),
    ])
    pipe = make_pipeline(pre, _small(DCNv2Classifier, max_epochs=5)).fit(df, y)
    clf = pipe[-1]
    assert clf.field_dims_ == [8, 8, 6]
    assert roc_auc_score(y, pipe.predict_proba(df)[:, 1]) > 0.8


# --------------------------------------------------------------------- regularizers
class RecordingPenalty(Regularizer):
    """Penalty ``mean ||e||^2`` that records the tables it is given."""

    kind = "penalty"

    def __init__(self, *, weight=1.0):
        super().__init__(weight=weight)
        self.seen = {}
        self.info = None

    def setup(self, info):
        self.info = info

    def penalty(self, embeddings, context=None):
        self.seen = {k: tuple(v.shape) for k, v in embeddings.items()}
        self.context_rows = int(context["X"].shape[0])
        return torch.stack([v.pow(2).sum(1).mean() for v in embeddings.values()]).mean()


class ZeroField(Regularizer):
    """Training-only transform that zeroes one table."""

    kind = "transform"

    def __init__(self, *, weight=1.0, table="x0"):
        super().__init__(weight=weight)
        self.table = table

    def transform(self, embeddings, context=None):
        out = dict(embeddings)
        out[self.table] = out[self.table] * 0.0
        return out


def test_regularizer_sees_one_table_per_field_and_set(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    clf = _small(DCNv2Classifier, n_embedding_sets=2, regularizer=RecordingPenalty,
                 max_epochs=1, batch_size=500)
    clf.fit(Xtr[:1000], ytr[:1000])
    reg = clf.regularizer_
    assert list(reg.seen) == clf.embedding_names_
    assert set(reg.seen.values()) == {(500, 8)}
    assert reg.context_rows == 500
    assert reg.info["field_dims"] == clf.field_dims_
    assert reg.info["tables"] == dict.fromkeys(clf.embedding_names_, 8)
    assert "regularizer_penalty" in clf.history[-1]


def test_penalty_weight_shrinks_embeddings(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    norms = {}
    for weight in (0.0, 10.0):
        clf = _small(DNNClassifier, regularizer=RecordingPenalty,
                     regularizer__weight=weight, max_epochs=2)
        clf.fit(Xtr[:2000], ytr[:2000])
        norms[weight] = np.mean([np.linalg.norm(t, axis=1).mean()
                                 for t in clf.get_embeddings().values()])
    assert norms[10.0] < 0.8 * norms[0.0]


def test_transform_regularizer_acts_in_training_only(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    ref = _small(DNNClassifier, max_epochs=1).fit(Xtr[:1000], ytr[:1000])
    clf = _small(DNNClassifier, regularizer=ZeroField, max_epochs=1)
    clf.fit(Xtr[:1000], ytr[:1000])
    # same seed -> same init; x0 got no gradient, x1 did
    clf_untrained = clone(clf).set_params(max_epochs=0).fit(Xtr[:1000], ytr[:1000])
    np.testing.assert_array_equal(
        clf.get_embeddings()["x0"], clf_untrained.get_embeddings()["x0"]
    )
    assert not np.allclose(ref.get_embeddings()["x0"],
                           clf_untrained.get_embeddings()["x0"])
    # inference does not apply the transform: x0 still matters
    rows = np.tile(Xtr[:1], (2, 1))
    rows[1, 0] = (rows[0, 0] + 1) % 3
    proba = clf.predict_proba(rows)[:, 1]
    assert proba[0] != pytest.approx(proba[1], rel=1e-7)


@pytest.mark.parametrize("name", ["sv_variance", "directspec", "dbn"])
def test_registered_regularizers_run(name, ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    clf = _small(FinalMLPClassifier, n_embedding_sets=2, regularizer=name,
                 max_epochs=1, batch_size=500).fit(Xtr[:1000], ytr[:1000])
    proba = clf.predict_proba(Xte[:20])
    assert np.isfinite(proba).all()
    emb = clf.get_embeddings()
    assert emb["x3/set1"].shape == (10, 8)
    raw = clf.module_.embedding.table(3, 1).detach().numpy()
    if clf.regularizer_.kind == "layer":
        # inference (and get_embeddings) see the whitened tables
        expected = clf.inference_table("x3/set1", torch.as_tensor(raw)).numpy()
        np.testing.assert_allclose(emb["x3/set1"], expected, rtol=1e-6)
        assert not np.allclose(emb["x3/set1"], raw)
    else:
        np.testing.assert_array_equal(emb["x3/set1"], raw)


def test_gridsearch_over_sets_and_regularizer(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    grid = GridSearchCV(
        _small(DNNClassifier, max_epochs=1),
        {"n_embedding_sets": [1, 2], "regularizer": [None, "sv_variance"]},
        cv=2, scoring=["roc_auc", "neg_log_loss"], refit="roc_auc",
    ).fit(Xtr[:1200], ytr[:1200])
    res = grid.cv_results_
    assert len(res["params"]) == 4
    assert np.isfinite(res["mean_test_roc_auc"]).all()
    assert (res["mean_test_neg_log_loss"] < 0).all()
    best = grid.best_estimator_
    assert best.n_embedding_sets in (1, 2)
    assert [p["regularizer"] for p in res["params"]] == [None, "sv_variance"] * 2


# --------------------------------------------------------------------- sklearn plumbing
def test_string_labels_and_threshold(ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    labels = np.where(ytr[:1000] == 1, "click", "view")
    clf = _small(DNNClassifier, max_epochs=2).fit(Xtr[:1000], labels)
    np.testing.assert_array_equal(clf.classes_, ["click", "view"])
    proba = clf.predict_proba(Xte[:30])
    # classes_[1] ("view") is the positive class of predict_proba[:, 1]
    np.testing.assert_array_equal(
        clf.predict(Xte[:30]), np.where(proba[:, 1] > 0.5, "view", "click")
    )
    ref = _small(DNNClassifier, max_epochs=2).fit(Xtr[:1000], 1 - ytr[:1000])
    np.testing.assert_allclose(ref.predict_proba(Xte[:30]), proba, rtol=1e-5)


def test_clone_pickle_and_reproducibility(ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    clf = _small(xDeepFMClassifier, n_embedding_sets=2, max_epochs=1)
    clf.fit(Xtr[:800], ytr[:800])
    twin = clone(clf)
    assert twin.get_params()["n_embedding_sets"] == 2
    assert not hasattr(twin, "field_dims_")
    np.testing.assert_allclose(twin.fit(Xtr[:800], ytr[:800]).predict_proba(Xte),
                               clf.predict_proba(Xte), rtol=1e-5)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(Xte), clf.predict_proba(Xte))
    assert restored.get_embeddings().keys() == clf.get_embeddings().keys()


def test_set_params_rebuilds_the_model(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    clf = _small(DCNv2Classifier, max_epochs=1).fit(Xtr[:500], ytr[:500])
    clf.set_params(n_embedding_sets=3, embedding_dim=4).fit(Xtr[:500], ytr[:500])
    assert clf.module_.embedding.weight.shape == (3 * (43 + 5), 4)
    assert len(clf.get_embeddings()) == 15


def test_module_param_reinit_keeps_fitted_sizes(ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    clf = _small(DNNClassifier, max_epochs=1).fit(Xtr[:500], ytr[:500])
    clf.set_params(module__batch_norm=False)  # skorch re-initialises the module
    assert clf.module_.embedding.field_dims == (3, 4, 6, 10, 20)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in clf.module_.modules())
    assert clf.predict_proba(Xte[:5]).shape == (5, 2)


def test_warm_start_keeps_tables(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    clf = _small(DNNClassifier, max_epochs=1, warm_start=True)
    clf.fit(Xtr[:500], ytr[:500])
    bigger = Xtr[:500].copy()
    bigger[0, 4] = 99  # a new code on continuation goes to the OOV row
    clf.fit(bigger, ytr[:500])
    assert clf.field_dims_ == [3, 4, 6, 10, 20]
    assert len(clf.history) == 2


def test_dcnv2_sub_embeddings(ctr_data):
    Xtr, ytr, _, _, _ = ctr_data
    clf = _small(DCNv2Classifier, n_embedding_sets=2, max_epochs=1)
    clf.fit(Xtr[:500], ytr[:500])
    sub = clf.get_sub_embeddings("x3", embedding_set=1)
    assert list(sub) == clf.field_names_
    W = clf.module_.set_blocks[1].cross.weights[0].detach().numpy()
    table = clf.get_embeddings()["x3/set1"]
    for j in range(5):
        np.testing.assert_allclose(
            sub[f"x{j}"], table @ W[j * 8 : (j + 1) * 8, 3 * 8 : 4 * 8].T,
            rtol=1e-5, atol=1e-6,
        )
    with pytest.raises(ValueError, match="unknown field"):
        clf.get_sub_embeddings("nope")
    with pytest.raises(ValueError, match="embedding_set"):
        clf.get_sub_embeddings(0, embedding_set=2)


# --------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "X, err, match",
    [
        (np.array([[0.5, 1.0], [1.0, 2.0]]), ValueError, "integer category codes"),
        (np.array([[np.nan, 1.0], [1.0, 2.0]]), ValueError, "NaN"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "OrdinalEncoder"),
        (np.array([[0, 10**9], [1, 2]]), ValueError, "raw ids"),
        (np.zeros((0, 2), dtype=int), ValueError, "empty"),
    ],
)
def test_fit_rejects_bad_X(X, err, match):
    y = np.array([0, 1])[: len(X)]
    with pytest.raises(err, match=match):
        _small(DNNClassifier, max_epochs=1).fit(X, y)


def test_rejects_bad_y_and_params(ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    with pytest.raises(ValueError, match="Only binary"):
        _small(DNNClassifier).fit(Xtr[:10], np.arange(10))
    with pytest.raises(ValueError, match="continuous"):
        _small(DNNClassifier).fit(Xtr[:10], np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="one class"):
        _small(DNNClassifier).fit(Xtr[:10], np.ones(10))
    with pytest.raises(ValueError, match="y is None"):
        _small(DNNClassifier).fit(Xtr[:10], None)
    with pytest.raises(ValueError, match="rows"):
        _small(DNNClassifier).fit(Xtr[:10], ytr[:9])
    with pytest.raises(ValueError, match="n_embedding_sets"):
        _small(DNNClassifier, n_embedding_sets=0).fit(Xtr[:10], ytr[:10])
    with pytest.raises(ValueError, match="cardinalities has 2"):
        _small(DNNClassifier, cardinalities=[3, 4]).fit(Xtr[:10], ytr[:10])
    with pytest.raises(ValueError, match="not a registered name"):
        _small(DNNClassifier, regularizer="nope").fit(Xtr[:10], ytr[:10])
    clf = _small(DNNClassifier, max_epochs=1).fit(Xtr[:100], ytr[:100])
    with pytest.raises(ValueError, match="features"):
        clf.predict_proba(Xte[:5, :3])


def test_cuda(torch_device, ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    clf = _small(DCNv2Classifier, n_embedding_sets=2, device=torch_device,
                 regularizer="sv_variance", max_epochs=1).fit(Xtr[:1000], ytr[:1000])
    assert clf.module_.embedding.weight.device.type == torch_device
    assert clf.predict_proba(Xte[:10]).shape == (10, 2)
    assert clf.get_embeddings()["x0/set0"].shape == (3, 8)


@pytest.mark.parametrize("name", ["dbn", "sv_variance"])
def test_trim_for_prediction_keeps_predictions(name, ctr_data):
    Xtr, ytr, Xte, _, _ = ctr_data
    clf = _small(DNNClassifier, regularizer=name, max_epochs=1,
                 batch_size=500).fit(Xtr[:1000], ytr[:1000])
    before = clf.predict_proba(Xte[:50])
    clf.trim_for_prediction()
    assert clf.optimizer_ is None and len(clf.history) == 0
    # a layer regularizer (DBN whitening) is part of inference and stays;
    # a penalty is training-only and goes
    assert (clf.regularizer_ is not None) == (name == "dbn")
    np.testing.assert_allclose(clf.predict_proba(Xte[:50]), before, rtol=1e-6)
