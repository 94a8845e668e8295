"""scikit-learn's estimator checks on the CTR classifiers."""

import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcollapse.recommenders import (
    DCNv2Classifier,
    DNNClassifier,
    FinalMLPClassifier,
    FMClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(cls, **kwargs):
    params = {"embedding_dim": 4, "max_epochs": 8, "batch_size": 64, "lr": 2e-2,
              "random_state": 0}
    if cls is not FMClassifier:
        params.update(hidden_units=(8,), dropout=0.0)
    params.update(kwargs)
    return cls(**params)


# All classifiers share one base class; the default run checks three of them
# (a bilinear model, a pair model and a multi-embedding DCNv2), the slow run the
# other four.
ESTIMATORS = [
    _tiny(FMClassifier),
    _tiny(NFwFMClassifier),
    _tiny(DCNv2Classifier, n_embedding_sets=2, n_cross_layers=1),
]
SLOW_ESTIMATORS = [
    _tiny(DNNClassifier, n_embedding_sets=2),
    _tiny(IPNNClassifier),
    _tiny(xDeepFMClassifier, cin_layer_sizes=(4,)),
    _tiny(FinalMLPClassifier),
]


def _xfails(estimator):
    """Checks the CTR classifiers fail by design, with the reason."""
    return {
        "check_no_attributes_set_in_init": (
            "skorch's NeuralNet.__init__ sets history_, initialized_ and "
            "virtual_params_ (all skorch nets fail this check)."
        ),
        "check_set_params": (
            "skorch's set_params re-initialises components, so the check's "
            "arbitrary values (e.g. a float for callbacks) raise inside skorch."
        ),
        "check_dtype_object": (
            "X must hold integer category codes; the check feeds continuous "
            "floats as an object array, which is rejected with a TypeError "
            "pointing to OrdinalEncoder."
        ),
        "check_classifiers_one_label_sample_weights": (
            "the check feeds continuous X, rejected as non-integral codes "
            "before sample_weight (unsupported, as in skorch) is looked at."
        ),
    }


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_xfails)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(SLOW_ESTIMATORS, expected_failed_checks=_xfails)
def test_sklearn_compatible_other_models(estimator, check):
    check(estimator)
