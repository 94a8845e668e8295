"""Every CTR classifier passes :class:`skcollapse.testing.CTRClassifierTestMixin`.

One test class per classifier, generated from the estimators that
``skcollapse.testing.all_estimators()`` finds, so a new classifier runs the
mixin without being listed here.
"""

import pytest
from sklearn.base import is_classifier
from skorch import NeuralNet

from skcollapse.testing import CTRClassifierTestMixin, all_estimators

CTR_CLASSIFIERS = [
    cls for _, cls in all_estimators()
    if issubclass(cls, NeuralNet) and is_classifier(cls())
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_all_seven_classifiers_are_found():
    assert {cls.__name__ for cls in CTR_CLASSIFIERS} >= {
        "FMClassifier", "DNNClassifier", "IPNNClassifier", "NFwFMClassifier",
        "xDeepFMClassifier", "DCNv2Classifier", "FinalMLPClassifier", "DeepFMClassifier",
    }


def _small(cls):
    params = {"embedding_dim": 4, "max_epochs": 8, "batch_size": 64, "lr": 3e-2,
              "random_state": 0}
    names = cls().get_params(deep=False)
    if "hidden_units" in names:
        params.update(hidden_units=(16,), dropout=0.0)
    if cls.__name__ in ("DNNClassifier", "DCNv2Classifier", "DeepFMClassifier"):
        params["n_embedding_sets"] = 2  # the multi-embedding tables too
    return cls(**params)


for _cls in CTR_CLASSIFIERS:
    globals()[f"Test{_cls.__name__}Contract"] = type(
        f"Test{_cls.__name__}Contract",
        (CTRClassifierTestMixin,),
        {"_get_model": lambda self, _cls=_cls: _small(_cls), "__module__": __name__},
    )
del _cls
