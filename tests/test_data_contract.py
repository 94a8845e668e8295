"""The data contract and failure behaviour, shaped as users hit them (issue 13).

Ids are labels (1-based, gapped, strings, huge), a diverging fit fails loudly
and leaves the estimator unfitted, CTR training works for any number of rows,
and settings that would silently do nothing say so.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skcollapse.datasets import make_ctr, make_interactions
from skcollapse.metrics import effective_rank
from skcollapse.recommenders import (
    DCNv2Classifier,
    DNNClassifier,
    FMClassifier,
    LightGCNRecommender,
    MFRecommender,
    ModelFitError,
)

CF = [MFRecommender, LightGCNRecommender]
FAST = {"embedding_dim": 8, "max_epochs": 2, "random_state": 0}


@pytest.fixture(scope="module")
def pairs():
    return make_interactions(120, 80, density=0.06, random_state=3)


# ------------------------------------------------------------------ ids are labels
@pytest.mark.parametrize("cls", CF)
def test_one_based_ids_have_no_phantom_row(pairs, cls):
    """MovieLens-style ids start at 1: no untrained row 0 is recommended or
    enters the spectrum, and the model equals the one fitted on 0-based ids."""
    X1 = pairs + 1
    model = cls(**FAST).fit(X1)
    n_users, n_items = np.unique(X1[:, 0]).size, np.unique(X1[:, 1]).size
    emb = model.get_embeddings()
    assert emb["user"].shape[0] == n_users and emb["item"].shape[0] == n_items
    np.testing.assert_array_equal(model.item_ids_, np.unique(X1[:, 1]))
    ids, _ = model.recommend(np.unique(X1[:, 0]), n=10)
    assert np.isin(ids, X1[:, 1]).all() and 0 not in ids
    zero_based = cls(**FAST).fit(pairs)
    np.testing.assert_array_equal(ids - 1, zero_based.recommend(
        np.unique(pairs[:, 0]), n=10)[0])
    assert effective_rank(emb["item"]) == pytest.approx(
        effective_rank(zero_based.get_embeddings()["item"]))


@pytest.mark.parametrize("cls", CF)
def test_gapped_ids_recommend_only_seen_items(pairs, cls):
    Xg = pairs * 10
    model = cls(**FAST).fit(Xg)
    assert model.get_embeddings()["item"].shape[0] == np.unique(Xg[:, 1]).size
    ids, _ = model.recommend(np.unique(Xg[:, 0]), n=10)
    assert np.isin(ids, Xg[:, 1]).all()
    sim, _ = model.similar_items(Xg[:3, 1], n=4)
    assert np.isin(sim, Xg[:, 1]).all()


@pytest.mark.parametrize("cls", CF)
def test_string_ids_at_every_boundary(pairs, cls):
    df = pd.DataFrame({"user": [f"u{u}" for u in pairs[:, 0]],
                       "item": [f"m{i}" for i in pairs[:, 1]]})
    train, test = df.iloc[:-60], df.iloc[-60:]
    model = cls(**FAST).fit(train)
    assert set(model.user_ids_) == set(train["user"])
    ids, _ = model.recommend(["u1", "u2"], n=5)
    assert ids.shape == (2, 5) and set(ids.ravel()) <= set(train["item"])
    known = test[test["user"].isin(model.user_ids_) & test["item"].isin(model.item_ids_)]
    assert model.predict(known).shape == (len(known),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert 0.0 <= model.score(test) <= 1.0
    assert model.similar_items("m3" if "m3" in model.item_ids_ else model.item_ids_[0],
                               n=2)[0].shape == (2,)
    with pytest.raises(ValueError, match=r"unseen in fit, e.g. 'nobody'"):
        model.recommend("nobody")
    # partial_fit learns a new string id
    model.partial_fit(pd.DataFrame({"user": ["newcomer"], "item": [train["item"].iloc[0]]}))
    assert model.user_ids_[-1] == "newcomer"
    assert model.recommend("newcomer", n=3)[0].shape == (3,)


def test_huge_ids_do_not_reach_the_allocator(pairs):
    X = pairs.copy()
    X[:, 0] += 10**12
    X[:, 1] = X[:, 1] * 10**9
    model = MFRecommender(**FAST).fit(X)
    assert model.module_.embedding.weight.shape[0] == (
        np.unique(X[:, 0]).size + np.unique(X[:, 1]).size)
    assert np.isin(model.recommend(X[0, 0], n=3)[0], X[:, 1]).all()


# 64-bit ids (issue 29): every integer id is kept exactly, never wrapped or merged
BIG_UINT = np.array([[2**63 + 1, 1], [2**64 - 1, 2], [3, 2]], dtype=np.uint64)


def test_uint64_ids_beyond_int64_are_kept_exactly(tmp_path):
    from skcollapse.cli import load_model, save_model

    model = MFRecommender(**FAST).fit(BIG_UINT)
    assert model.user_ids_.dtype == np.uint64
    assert model.user_ids_.tolist() == [3, 2**63 + 1, 2**64 - 1]
    # the ids fit produced are the ids recommend takes
    for user in model.user_ids_.tolist():
        ids, _ = model.recommend(user, n=2)
        assert set(ids.tolist()) <= {1, 2, -1}
    assert model.predict(BIG_UINT).shape == (3,)
    with pytest.raises(ValueError, match=r"unseen in fit, e\.g\. 9223372036854775808"):
        model.recommend(2**63)  # a neighbour of a known id is another id
    # partial_fit appends new 64-bit ids, keeping the others and their rows
    before = model.get_embeddings()["user"].copy()
    model.partial_fit(np.array([[2**64 - 2, 1]], dtype=np.uint64))
    assert model.user_ids_.tolist() == [3, 2**63 + 1, 2**64 - 1, 2**64 - 2]
    np.testing.assert_array_equal(model.get_embeddings()["user"][:3], before)
    # save_model/load_model round trip
    path = save_model(model, tmp_path / "big.skc")
    loaded = load_model(path)
    assert loaded.user_ids_.dtype == np.uint64
    assert loaded.user_ids_.tolist() == model.user_ids_.tolist()
    np.testing.assert_array_equal(
        loaded.recommend(2**64 - 2, n=2)[0], model.recommend(2**64 - 2, n=2)[0])


def test_python_ints_beyond_uint64_are_kept_as_objects(tmp_path):
    from skcollapse.cli import load_model, save_model

    X = [[2**64 + 1, 1], [2**64 + 2, 2], [3, 2]]  # numpy would make these floats
    model = MFRecommender(**FAST).fit(X)
    assert model.user_ids_.dtype == object
    assert model.user_ids_.tolist() == [3, 2**64 + 1, 2**64 + 2]
    assert model.n_users_ == 3  # 2**64 + 1 and 2**64 + 2 are two users
    assert model.recommend(2**64 + 2, n=1)[0].tolist() == [1]
    # item ids beyond uint64: padding is None, as for string ids
    items = MFRecommender(**FAST).fit([[0, 2**70], [0, 5], [1, 5]])
    ids, scores = items.recommend(1, n=2)
    assert ids.tolist() == [2**70, None] and scores[1] == -np.inf
    model.partial_fit([[2**65, 1]])
    assert model.user_ids_.tolist()[-1] == 2**65
    loaded = load_model(save_model(model, tmp_path / "obj.skc"))
    assert loaded.user_ids_.tolist() == model.user_ids_.tolist()
    assert loaded.recommend(2**65, n=1)[0].tolist() == model.recommend(2**65, n=1)[0].tolist()


def test_lists_with_ids_between_int64_and_uint64_are_not_rounded():
    # np.asarray([[2**63 + 1, 1], [2**63, 2]]) is float64: both users become 2**63
    model = MFRecommender(**FAST).fit([[2**63 + 1, 1], [2**63, 2], [3, 2]])
    assert model.user_ids_.tolist() == [3, 2**63, 2**63 + 1]
    assert model.recommend([2**63 + 1, 2**63], n=1)[0].tolist() == [[2], [1]]


def test_int64_and_uint64_ids_merge_into_one_exact_vocabulary():
    model = MFRecommender(**FAST).fit(np.array([[1, 1], [2, 2]]))
    model.partial_fit(np.array([[2**64 - 1, 1]], dtype=np.uint64))
    assert model.user_ids_.dtype == np.uint64
    assert model.user_ids_.tolist() == [1, 2, 2**64 - 1]


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[2.0**60, 1.0], [3.0, 2.0]]), r"above 2\*\*53"),
        (np.array([[-1, 1], [3, 2]]), "negative"),
        ([[2**64 + 1, 1], [-1, 2]], "negative"),
    ],
)
def test_ids_that_cannot_be_kept_exactly_are_refused(X, match):
    with pytest.raises(ValueError, match=match):
        MFRecommender(**FAST).fit(X)


def test_n_users_keeps_the_dense_fast_path(pairs):
    model = MFRecommender(n_users=200, n_items=100, **FAST).fit(pairs)
    np.testing.assert_array_equal(model.user_ids_, np.arange(200))
    assert model._vocabulary("user").identity
    with pytest.raises(ValueError, match="n_items=100"):
        MFRecommender(n_items=100, **FAST).fit(np.array([[0, 100]]))


def test_scorer_maps_held_out_ids_through_the_vocabulary(pairs):
    """NDCG of the same split is the same whatever the ids are called."""
    train, test = pairs[:-80], pairs[-80:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = MFRecommender(**FAST).fit(train).score(test)
        shifted = MFRecommender(**FAST).fit(train * 3 + 5).score(test * 3 + 5)
    assert shifted == pytest.approx(base)


def test_score_on_training_data_warns_that_nothing_was_ranked(pairs):
    model = MFRecommender(**FAST).fit(pairs)
    with pytest.warns(UserWarning, match="nothing was left to rank"):
        assert model.score(pairs) == 0.0


# ------------------------------------------------------------ training that fails
@pytest.mark.parametrize("cls", [*CF, FMClassifier, DNNClassifier, DCNv2Classifier])
def test_divergence_fails_loudly_and_leaves_the_estimator_unfitted(pairs, cls):
    if cls in CF:
        X, y = pairs, None
        est = cls(lr=1e6, max_epochs=5, random_state=0)
    else:
        X, y, _ = make_ctr(1500, n_fields=4, random_state=0)
        est = cls(lr=1e6, max_epochs=5, batch_size=256, random_state=0)
    with pytest.raises(ModelFitError, match=r"diverged in epoch .* Lower lr"):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        est.get_embeddings()
    if cls in CF:
        with pytest.raises(NotFittedError):
            est.recommend([0])
        with pytest.raises(NotFittedError):
            est.predict(X[:3])
    else:
        with pytest.raises(NotFittedError):
            est.predict_proba(X[:3])
        with pytest.raises(NotFittedError):
            est.predict(X[:3])
    # a sane refit of the same object works again
    est.set_params(lr=1e-3, max_epochs=1)
    est.fit(X, y)
    assert all(np.isfinite(t).all() for t in est.get_embeddings().values())


def test_non_finite_parameters_fail_the_fit(pairs):
    class NaNAfterStep(torch.optim.Adam):
        def step(self, closure=None):
            out = super().step(closure)
            for group in self.param_groups:
                for p in group["params"]:
                    p.data[0, 0] = float("nan")
            return out

    model = LightGCNRecommender(optimizer=NaNAfterStep, weight_decay=0, **FAST)
    with pytest.raises(ModelFitError, match="diverged"):
        model.fit(pairs)
    with pytest.raises(NotFittedError):
        model.get_embeddings()


# ------------------------------------------------------------------ CTR edges
@pytest.mark.parametrize("cls", [DNNClassifier, DCNv2Classifier])
def test_ctr_trains_on_a_final_batch_of_one(cls):
    X, y, _ = make_ctr(2049, n_fields=4, random_state=0)
    clf = cls(max_epochs=1, random_state=0).fit(X, y)  # batch_norm=True default
    assert clf.predict_proba(X).shape == (2049, 2)
    small = cls(max_epochs=1, batch_size=4, random_state=0).fit(X[:9], y[:9])
    assert np.isfinite(small.predict_proba(X[:9])).all()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"batch_size": 0}, "'batch_size' parameter of FMClassifier"),
        ({"device": "cuda:7" if torch.cuda.is_available() else "cuda"}, "device="),
        ({"device": "mps"} if not torch.backends.mps.is_available() else
         {"device": "xla"}, "device="),
    ],
)
def test_ctr_bad_settings_are_clear(params, match):
    X, y, _ = make_ctr(50, n_fields=3, random_state=0)
    with pytest.raises(ValueError, match=match):
        FMClassifier(max_epochs=1, **params).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_units": ()}, "'hidden_units' parameter"),
        ({"hidden_units": (0,)}, "'hidden_units' parameter"),
        ({"dropout": 1.5}, "'dropout' parameter"),
        ({"embedding_dim": 2.5}, "'embedding_dim' parameter"),
        ({"n_embedding_sets": 0}, "'n_embedding_sets' parameter"),
        ({"cardinalities": [3, 0, 2]}, "'cardinalities' parameter"),
        ({"cardinalities": "abc"}, "'cardinalities' parameter"),
        ({"batch_norm": "yes"}, "'batch_norm' parameter"),
    ],
)
def test_ctr_architecture_parameters_are_validated(params, match):
    X, y, _ = make_ctr(50, n_fields=3, random_state=0)
    with pytest.raises(ValueError, match=match):
        DNNClassifier(max_epochs=1, **params).fit(X, y)


def test_dcnv2_and_xdeepfm_layer_parameters_are_validated():
    from skcollapse.recommenders import xDeepFMClassifier

    X, y, _ = make_ctr(50, n_fields=3, random_state=0)
    with pytest.raises(ValueError, match="'n_cross_layers' parameter"):
        DCNv2Classifier(n_cross_layers=-1, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="'cin_layer_sizes' parameter"):
        xDeepFMClassifier(cin_layer_sizes=(), max_epochs=1).fit(X, y)


# --------------------------------------------------- settings that do nothing
def test_max_epochs_zero_warns(pairs):
    with pytest.warns(UserWarning, match="max_epochs=0.* does not train"):
        MFRecommender(max_epochs=0, embedding_dim=8).fit(pairs)


def test_a_grid_over_none_and_weights_warns_once_and_none_reads_as_none(pairs):
    """Issue 29: the regularizer__weight warning came for every grid point with
    regularizer=None and every fold; and None shows as NaN in a DataFrame of
    cv_results_ (pandas 3 reads None among strings as missing): "none" works."""
    from sklearn.model_selection import GridSearchCV

    from skcollapse.metrics import ranking_scorer
    from skcollapse.model_selection import PerUserKFold

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        search = GridSearchCV(
            MFRecommender(embedding_dim=4, max_epochs=1),
            {"regularizer": ["none", "logdet"], "regularizer__weight": [0.01, 0.1]},
            scoring={"ndcg": ranking_scorer("ndcg"), "recall": ranking_scorer("recall")},
            refit="ndcg", cv=PerUserKFold(n_splits=3),
        ).fit(pairs)
    texts = [str(w.message) for w in record]
    assert len(texts) == 1 and "regularizer__weight has no effect" in texts[0], texts
    frame = pd.DataFrame(search.cv_results_)
    assert frame["param_regularizer"].tolist() == ["none", "none", "logdet", "logdet"]
    assert MFRecommender(regularizer="none", **FAST).fit(pairs).regularizer_ is None


def test_repr_shows_the_parameters_that_differ_from_the_defaults():
    assert repr(MFRecommender()) == "MFRecommender()"
    text = repr(LightGCNRecommender(embedding_dim=32, regularizer="logdet",
                                    regularizer__weight=0.1))
    assert text.startswith("LightGCNRecommender(")
    for part in ("embedding_dim=32", "regularizer='logdet'", "regularizer__weight=0.1"):
        assert part in text
    assert "uninitialized" not in text and "lr=" not in text
    assert repr(clone(DNNClassifier(hidden_units=(8,)))) == (
        "DNNClassifier(hidden_units=(8,))")


def test_regularizer_weight_that_would_do_nothing(pairs):
    with pytest.warns(UserWarning, match=r"regularizer__weight has no effect with "
                      r"regularizer=None.*give None its own dict"):
        MFRecommender(regularizer__weight=0.1, **FAST).fit(pairs)
    for name in ("dbn", "directspec", "directspec+"):
        with pytest.raises(ValueError, match=r"would do nothing: .* has no weight"):
            MFRecommender(regularizer=name, regularizer__weight=0.1, **FAST).fit(pairs)
    # a penalty regularizer takes it, and a weight-less one trains with its own
    MFRecommender(regularizer="logdet", regularizer__weight=0.1, **FAST).fit(pairs)
    MFRecommender(regularizer="dbn", regularizer__eps=0.5, **FAST).fit(pairs)
