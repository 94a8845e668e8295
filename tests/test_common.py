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
from skcollapse.testing import all_estimators

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
# floats); a CF recommender takes (n, 2) integer (user, item) ids and rejects
# anything else with a ValueError naming that contract.
_FLOAT_X = (
    "fits on random continuous features; CF recommenders take (n, 2) integer "
    "(user, item) ids and reject other X with a ValueError"
)
_MESSAGE = (
    "the bad input is rejected with a ValueError, but worded for (user, item) "
    "pairs, not with the sentence sklearn's check greps for"
)
_CF_XFAIL = {
    **_SKORCH,
    "check_complex_data": _MESSAGE,
    "check_estimators_empty_data_messages": _MESSAGE,
    "check_estimators_nan_inf": _MESSAGE,
    "check_fit2d_1sample": _MESSAGE,
    "check_fit2d_1feature": _MESSAGE,
    **dict.fromkeys(
        [
            "check_fit2d_predict1d",
            "check_dict_unchanged",
            "check_dont_overwrite_parameters",
            "check_dtype_object",
            "check_estimators_dtypes",
            "check_estimators_fit_returns_self",
            "check_estimators_overwrite_params",
            "check_estimators_pickle",
            "check_estimators_pickle(readonly_memmap=True)",
            "check_f_contiguous_array_estimator",
            "check_fit_check_is_fitted",
            "check_fit_idempotent",
            "check_fit_score_takes_y",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_n_features_in",
            "check_n_features_in_after_fitting",
            "check_pipeline_consistency",
            "check_positive_only_tag_during_fit",
            "check_readonly_memmap_input",
        ],
        _FLOAT_X,
    ),
}
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
_BASELINE_XFAIL = {k: v for k, v in _CF_XFAIL.items() if k not in _SKORCH}
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


@parametrize_with_checks(_instances(), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


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


# ----------------------------------------------------------------- CF on real pairs
CF_NETS = [name for name in NETS if not is_classifier(ESTIMATORS[name]())]


@pytest.mark.parametrize("name", CF_NETS)
def test_cf_clone_fit_pickle_on_interaction_pairs(name):
    """What the float-data checks above cannot show, on real (user, item) pairs."""
    X = make_interactions(60, 30, random_state=0)
    est = _net(name)
    params = est.get_params(deep=False)
    fitted = est.fit(X)
    assert fitted is est
    check_is_fitted(est)
    assert est.n_features_in_ == 2
    # fit does not change the constructor parameters
    assert est.get_params(deep=False) == params
    # fitting twice with the same seed gives the same model
    again = clone(est).fit(X)
    np.testing.assert_allclose(est.predict(X), again.predict(X), rtol=1e-5)
    # predictions do not depend on the order or the subset of rows
    perm = np.random.default_rng(0).permutation(X.shape[0])
    np.testing.assert_allclose(est.predict(X[perm]), est.predict(X)[perm])
    np.testing.assert_allclose(est.predict(X[:7]), est.predict(X)[:7])
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.predict(X), est.predict(X))
    # y is accepted and ignored by fit and score (held-out pairs: a real score)
    part = clone(est).fit(X[20:], np.ones(len(X) - 20))
    assert part.score(X[:20], np.ones(20)) == part.score(X[:20])


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
