"""scikit-learn's estimator checks on every public estimator, found by discovery.

``all_estimators()`` walks the public sub-packages (sklearn's ``all_estimators``
pattern), and each class found needs an entry in ``CONFIGS`` (tiny sizes, 1-8
epochs, a random_state) so the default run stays fast: a new estimator that has
none fails :func:`test_every_public_estimator_has_a_config` instead of escaping
the checks. Expected failures are listed per class with their reason, and are
strict (``xfail_strict = true`` in pyproject.toml): a check that starts passing
fails the run until its entry is removed.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet

from skcollapse.datasets import make_ctr, make_interactions
from skcollapse.metrics import ErankScorer, ranking_scorer
from skcollapse.recommenders import MFRecommender
from skcollapse.testing import (
    RecommenderTestMixin,
    all_estimators,
    interaction_checks,
    is_recommender,
)
from skcollapse.testing._interaction_checks import REPLACES

ESTIMATORS = dict(all_estimators())

_CF_TINY = {"embedding_dim": 4, "max_epochs": 1, "batch_size": 64, "random_state": 0}
# sklearn's classifier checks must learn blobs: a few epochs at a high rate
_CTR_TINY = {"embedding_dim": 4, "max_epochs": 8, "batch_size": 64, "lr": 2e-2,
             "random_state": 0}
_MLP_TINY = {**_CTR_TINY, "hidden_units": (8,), "dropout": 0.0}

#: constructor parameters of the checked instances, per public class
CONFIGS = {
    "CollapseScorer": [
        {},
        {"metric": "normalized_std", "table": "item"},
        {"metric": "condition_number", "metric_params": {"center": True}},
    ],
    "ErankScorer": [
        {},
        {"spectrum": "eig", "center": True, "row_normalize": True, "normalize": True},
    ],
    "IAScorer": [{}, {"table": "item", "reduce": "min", "normalize": True}],
    "MFRecommender": [_CF_TINY],
    "LightGCNRecommender": [_CF_TINY],
    "TwoTowerRecommender": [{**_CF_TINY, "hidden_units": (4,)}],
    "FMClassifier": [_CTR_TINY],
    "DNNClassifier": [{**_MLP_TINY, "n_embedding_sets": 2}],
    "DeepFMClassifier": [{**_MLP_TINY, "n_embedding_sets": 2}],
    "IPNNClassifier": [_MLP_TINY],
    "NFwFMClassifier": [_MLP_TINY],
    "xDeepFMClassifier": [{**_MLP_TINY, "cin_layer_sizes": (4,)}],
    "DCNv2Classifier": [{**_MLP_TINY, "n_embedding_sets": 2, "n_cross_layers": 1}],
    "FinalMLPClassifier": [_MLP_TINY],
    "PopularityRecommender": [{}],
    "EASERecommender": [{"alpha": 10.0}],
    "ItemKNNRecommender": [{"n_neighbors": 5, "shrink": 1.0}],
    "ResidualKMeans": [{"n_levels": 2, "codebook_size": 3, "random_state": 0}],
    "RQVAE": [
        {"n_levels": 2, "codebook_size": 3, "latent_dim": 2,
         "hidden_layer_sizes": (4,), "max_epochs": 2, "batch_size": 16,
         "random_state": 0},
    ],
}

# ----------------------------------------------------------------- expected failures
_SKORCH = {
    # skorch-wide behaviour (autoemulate PR #107 lists it, and check_set_params,
    # which passes since NetBase.get_params leaves out _params_to_validate)
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_ and "
        "virtual_params_ (all skorch nets fail this check)"
    ),
    # the check sets every parameter of the signature to junk (-1, "helloworld",
    # ...); it could see only module and optimizer before the signatures
    # listed every parameter, and of the others only callbacks raises
    "check_do_not_raise_errors_in_init_or_set_params": (
        "skorch's set_params(callbacks=...) builds the callbacks at once, so a "
        "value that is not a list of callbacks raises there (all skorch nets)"
    ),
}
# sklearn's generic checks fit on random continuous features (3-10 columns of
# floats); a recommender takes (n, 2) integer (user, item) ids and rejects
# anything else with a ValueError naming that contract. Those checks are not
# run on recommenders: skcollapse.testing.interaction_checks tests the same
# properties on interaction pairs (REPLACED_CHECKS says which stands for which),
# below, on every recommender found by discovery.
REPLACED_CHECKS = {
    name: check.__name__
    for check, names in REPLACES.items()
    for name in names
}
_CF_XFAIL = dict(_SKORCH)
_CTR_XFAIL = {
    **_SKORCH,
    "check_dtype_object": (
        "X must hold integer category codes; the check feeds continuous floats "
        "as an object array, which is rejected with a TypeError pointing to "
        "OrdinalEncoder"
    ),
    "check_classifiers_one_label_sample_weights": (
        "the check feeds continuous X, rejected as non-integral codes before "
        "sample_weight (unsupported, as in skorch) is looked at"
    ),
}
# the baselines are plain sklearn estimators (no skorch failures), same data contract
_BASELINE_XFAIL = {}
XFAILS = {
    "CollapseScorer": {},  # the scorers pass every check
    "ErankScorer": {},
    "IAScorer": {},
    "MFRecommender": _CF_XFAIL,
    "LightGCNRecommender": _CF_XFAIL,
    "TwoTowerRecommender": _CF_XFAIL,
    "FMClassifier": _CTR_XFAIL,
    "DNNClassifier": _CTR_XFAIL,
    "DeepFMClassifier": _CTR_XFAIL,
    "IPNNClassifier": _CTR_XFAIL,
    "NFwFMClassifier": _CTR_XFAIL,
    "xDeepFMClassifier": _CTR_XFAIL,
    "DCNv2Classifier": _CTR_XFAIL,
    "FinalMLPClassifier": _CTR_XFAIL,
    "PopularityRecommender": _BASELINE_XFAIL,
    "EASERecommender": _BASELINE_XFAIL,
    "ItemKNNRecommender": _BASELINE_XFAIL,
    "ResidualKMeans": {},
    "RQVAE": {},
}


def _instances():
    return [
        ESTIMATORS[name](**params)
        for name in sorted(CONFIGS)
        if name in ESTIMATORS
        for params in CONFIGS[name]
    ]


def _expected_failed_checks(estimator):
    return XFAILS[type(estimator).__name__]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _check_name(check):
    return _CHECK_ID(check)


def _replaced(param):
    """Whether the generated (estimator, check) is one the pair checks replace."""
    estimator, check = getattr(param, "values", param)
    return is_recommender(estimator) and _check_name(check) in REPLACED_CHECKS


def _sklearn_checks():
    """sklearn's checks, less those replaced by the interaction-pair checks."""
    decorator = parametrize_with_checks(
        _instances(), expected_failed_checks=_expected_failed_checks
    )
    argnames, params = decorator.args
    kept = [p for p in params if not _replaced(p)]
    return pytest.mark.parametrize(argnames, kept, ids=decorator.kwargs["ids"])


_CHECK_ID = parametrize_with_checks([]).kwargs["ids"]


@_sklearn_checks()
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------- checks on (user, item) pairs
RECOMMENDERS = [name for name, cls in ESTIMATORS.items() if is_recommender(cls)]


def _pair_checks():
    for name in RECOMMENDERS:
        for params in CONFIGS[name]:
            yield from interaction_checks(ESTIMATORS[name](**params))


@pytest.mark.parametrize(
    "estimator, check", list(_pair_checks()),
    ids=lambda obj: _check_name(obj) if callable(obj) and not hasattr(
        obj, "get_params") else type(obj).__name__,
)
def test_interaction_pairs(estimator, check):
    check(estimator)


def test_replaced_checks_exist_and_are_not_expected_to_fail():
    """Every replaced sklearn check is one sklearn generates for a recommender,
    and none of them is still listed as an expected failure."""
    for name in RECOMMENDERS:
        generated, _ = _generated(ESTIMATORS[name](**CONFIGS[name][0]))
        assert set(REPLACED_CHECKS) <= generated, set(REPLACED_CHECKS) - generated
        assert not set(REPLACED_CHECKS) & set(XFAILS[name])


# -------------------------------------- the behaviour mixin, on every recommender
def _two_tower_with_parity_features(test):
    users = pd.DataFrame({"parity": np.arange(test.n_users) % 2})
    items = pd.DataFrame({"parity": np.arange(test.n_items) % 2})
    return ESTIMATORS["TwoTowerRecommender"](
        user_features=users, item_features=items, embedding_dim=8,
        hidden_units=(16,), batch_size=64, max_epochs=20, lr=2e-2,
        weight_decay=0.0, random_state=0,
    )


_LEARNS_CHECKERBOARD = {"embedding_dim": 8, "batch_size": 160, "max_epochs": 25,
                        "lr": 0.1, "weight_decay": 0.0, "random_state": 0}
#: how each recommender learns the checkerboard of RecommenderTestMixin: a
#: function of the test class, or a string saying why the mixin cannot apply
BEHAVIOUR = {
    "MFRecommender": lambda test: ESTIMATORS["MFRecommender"](
        **_LEARNS_CHECKERBOARD),
    "LightGCNRecommender": lambda test: ESTIMATORS["LightGCNRecommender"](
        **_LEARNS_CHECKERBOARD),
    "TwoTowerRecommender": _two_tower_with_parity_features,
    "EASERecommender": lambda test: ESTIMATORS["EASERecommender"](alpha=1.0),
    "ItemKNNRecommender": lambda test: ESTIMATORS["ItemKNNRecommender"](
        n_neighbors=20),
    "PopularityRecommender": (
        "every item of the checkerboard is equally popular, so the held-out "
        "items cannot be told apart (test_baselines tests its counts)"
    ),
}

for _name in RECOMMENDERS:
    if callable(BEHAVIOUR.get(_name)):
        globals()[f"Test{_name}Behaviour"] = type(
            f"Test{_name}Behaviour", (RecommenderTestMixin,),
            {"_get_model": BEHAVIOUR[_name]},
        )


def test_every_recommender_has_a_behaviour_config():
    assert set(BEHAVIOUR) == set(RECOMMENDERS)
    for name, how in BEHAVIOUR.items():
        assert callable(how) or (isinstance(how, str) and len(how) > 20), name


# ----------------------------------------------------------------- the lists themselves
def test_every_public_estimator_has_a_config():
    """A new public estimator cannot escape the checks above."""
    missing = sorted(set(ESTIMATORS) - set(CONFIGS))
    assert not missing, f"add a tiny config (and its xfails) for {missing}"
    assert not set(CONFIGS) - set(ESTIMATORS), "config for a class not found"
    assert set(XFAILS) == set(CONFIGS)
    for name, configs in CONFIGS.items():
        assert configs, name
        for params in configs:  # every config is valid for its class
            assert ESTIMATORS[name](**params).get_params(deep=False).items() >= (
                params.items()
            )


def test_discovery_finds_the_known_estimators():
    assert set(ESTIMATORS) >= {
        "CollapseScorer", "ErankScorer", "IAScorer", "MFRecommender",
        "LightGCNRecommender",
        "FMClassifier", "DNNClassifier", "IPNNClassifier", "NFwFMClassifier",
        "xDeepFMClassifier", "DCNv2Classifier", "FinalMLPClassifier", "DeepFMClassifier",
    }


def _generated(estimator):
    """``(names of the checks sklearn generates, their xfail marks)``."""
    decorator = parametrize_with_checks(
        [estimator], expected_failed_checks=_expected_failed_checks
    )
    ids = decorator.kwargs["ids"]
    names, marks = set(), []
    for param in decorator.args[1]:
        values = getattr(param, "values", param)
        names.add(ids(values[1]))
        marks.extend(getattr(param, "marks", ()))
    return names, marks


def test_every_expected_failure_is_strict_has_a_reason_and_exists(request):
    assert request.config.getini("xfail_strict") is True
    for estimator in _instances():
        name = type(estimator).__name__
        names, marks = _generated(estimator)
        # no stale entry: each expected failure names a check that runs
        assert set(XFAILS[name]) <= names, set(XFAILS[name]) - names
        for check, reason in XFAILS[name].items():
            assert isinstance(reason, str) and len(reason) > 20, (name, check)
        # sklearn's marks leave strictness to the ini (or say strict=True)
        assert len(marks) == len(XFAILS[name])
        assert all(m.name == "xfail" for m in marks)
        assert all(m.kwargs.get("strict", True) is True for m in marks)


# ----------------------------------------------------------------- every skorch net
NETS = sorted(
    (name for name, cls in ESTIMATORS.items() if issubclass(cls, NeuralNet)),
    key=str.lower,
)


def _net(name, **params):
    return ESTIMATORS[name](**{**CONFIGS[name][0], **params})


def _data(est):
    """Training data of the net's kind: interaction pairs, or CTR codes and y."""
    if is_classifier(est):
        X, y, _ = make_ctr(400, cardinalities=[3, 4, 5], random_state=0)
        return X, y
    return make_interactions(40, 25, random_state=0), None


def _outputs(est, X):
    return est.predict_proba(X) if is_classifier(est) else est.predict(X)


@pytest.mark.parametrize("name", NETS)
def test_net_clone_pickle_and_refit(name):
    est = _net(name)
    X, y = _data(est)
    params = est.get_params(deep=False)
    assert est.fit(X, y) is est
    check_is_fitted(est)
    assert est.get_params(deep=False).keys() == params.keys()
    twin = clone(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(twin)
    np.testing.assert_allclose(
        _outputs(twin.fit(X, y), X), _outputs(est, X), rtol=1e-5
    )
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(_outputs(restored, X), _outputs(est, X))
    assert restored.get_embeddings().keys() == est.get_embeddings().keys()


@pytest.mark.parametrize("name", NETS)
def test_net_set_params_reinitialises(name):
    est = _net(name)
    X, y = _data(est)
    est.fit(X, y)
    est.set_params(embedding_dim=3).fit(X, y)
    assert {t.shape[1] for t in est.get_embeddings().values()} == {3}


@pytest.mark.parametrize("name", NETS)
def test_net_grid_search_smoke(name):
    est = _net(name, max_epochs=1)
    X, y = _data(est)
    # shuffled folds: every user and item of a test fold is seen in training
    cv = KFold(2, shuffle=True, random_state=0)
    grid = GridSearchCV(
        est, {"embedding_dim": [2, 4]}, cv=cv, error_score="raise"
    ).fit(X, y)
    res = grid.cv_results_
    assert [p["embedding_dim"] for p in res["params"]] == [2, 4]
    assert np.all(np.isfinite(res["mean_test_score"]))
    assert grid.best_estimator_.embedding_dim == grid.best_params_["embedding_dim"]


def test_grid_search_with_ranking_and_collapse_scorers():
    X = make_interactions(150, 60, random_state=0)
    grid = GridSearchCV(
        MFRecommender(n_users=150, n_items=60, max_epochs=2, batch_size=256,
                      random_state=0),
        {"embedding_dim": [4, 8], "loss": ["bpr", "bce"]},
        scoring={
            "ndcg": ranking_scorer("ndcg", k=10),
            "erank": ErankScorer(table="item"),
        },
        refit="ndcg",
        cv=3,
        n_jobs=2,
    )
    grid.fit(X)
    res = grid.cv_results_
    assert len(res["params"]) == 4
    assert np.all(np.isfinite(res["mean_test_ndcg"]))
    assert np.all(res["mean_test_erank"] >= 1.0)
    assert np.all(res["mean_test_erank"] <= 8.0 + 1e-6)
    best = grid.best_estimator_
    assert best.get_params()["embedding_dim"] == grid.best_params_["embedding_dim"]
    assert best.get_embeddings()["item"].shape == (60, grid.best_params_["embedding_dim"])
    assert grid.best_index_ == int(np.argmax(res["mean_test_ndcg"]))
