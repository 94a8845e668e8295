"""The regularizer plumbing shared by every skorch net (RegularizedNetMixin)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from skorch import NeuralNetRegressor
from torch import nn

from skcollapse.recommenders import ModelFitError, RegularizedNetMixin
from skcollapse.recommenders._base import NetBase
from skcollapse.regularizers import Regularizer
from skcollapse.regularizers import _base as reg_base


class _Linear(nn.Module):
    def __init__(self, n_in=4):
        super().__init__()
        self.lin = nn.Linear(n_in, 3)
        self.out = nn.Linear(3, 1)

    def forward(self, X):
        return self.lin(X)


class _Net(RegularizedNetMixin, NeuralNetRegressor):
    """Tiny regressor whose hidden layer is the 'embedding' table 'h'."""

    def __init__(self, *args, regularizer=None, **kwargs):
        kwargs.setdefault("module", _Linear)
        kwargs.setdefault("max_epochs", 3)
        kwargs.setdefault("batch_size", 16)
        kwargs.setdefault("train_split", None)
        kwargs.setdefault("verbose", 0)
        kwargs.setdefault("lr", 0.05)
        super().__init__(*args, **kwargs)
        self.regularizer = regularizer

    def get_regularizer_info(self, X, y=None):
        return {"n_samples": len(X), "tables": {"h": 3}}

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.n_seen_ = len(X)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        emb = {"h": y_pred}
        if training:
            emb, penalty = self.regularize(emb, {"X": X})
        else:
            penalty = 0.0
        out = self.module_.out(emb["h"])
        return nn.functional.mse_loss(out, y_true) + penalty

    def predict(self, X):
        h = self.forward(X)
        with torch.no_grad():
            return self.module_.out(self.inference_table("h", h)).numpy()


class ConstPenalty(Regularizer):
    """Penalty equal to a known constant, so the logged value is known."""

    kind = "penalty"

    def __init__(self, *, weight=1.0, value=2.5):
        super().__init__(weight=weight)
        self.value = value

    def penalty(self, embeddings, context=None):
        h = embeddings["h"]
        return h.new_tensor(float(self.value)) + 0.0 * h.sum()


class Doubler(Regularizer):
    """Transform kind: doubles batch embeddings in training only."""

    kind = "transform"
    calls = 0

    def transform(self, embeddings, context=None):
        type(self).calls += 1
        return {k: 2.0 * v for k, v in embeddings.items()}


class ShiftLayer(Regularizer):
    """Layer kind with a learnable shift created in setup (needs the table dim)."""

    kind = "layer"

    def setup(self, info):
        self.info_ = info
        dim = info["tables"]["h"]
        self.shift = nn.Parameter(torch.ones(dim))
        self.register_buffer("running", torch.zeros(dim))

    def transform(self, embeddings, context=None):
        h = embeddings["h"]
        with torch.no_grad():
            self.running.mul_(0.5).add_(0.5 * h.mean(0))
        return {"h": h + self.shift}

    def transform_extra(self, name, x):
        if self.training:
            return x + self.shift
        return x + self.shift - self.running


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1).astype(np.float32)[:, None]
    return X, y


def test_no_regularizer_is_identity_and_logs_nothing():
    X, y = _data()
    net = _Net().fit(X, y)
    assert net.regularizer_ is None
    assert "regularizer_penalty" not in net.history[-1]
    emb = {"h": torch.ones(2, 3)}
    out, pen = net.regularize(emb)
    assert out is emb and float(pen) == 0.0
    t = torch.randn(5, 3)
    assert net.inference_table("h", t) is t
    assert net.regularize_extra("h", t) is t


def test_penalty_is_weighted_and_epoch_mean_recorded():
    X, y = _data()
    net = _Net(regularizer=ConstPenalty, regularizer__weight=0.2,
               regularizer__value=3.0).fit(X, y)
    assert isinstance(net.regularizer_, ConstPenalty)
    assert net.regularizer_.weight == 0.2
    pens = net.history[:, "regularizer_penalty"]
    assert len(pens) == 3
    np.testing.assert_allclose(pens, 0.6, rtol=1e-6)
    assert net.regularizer_.last_penalty_ == pytest.approx(3.0)


def test_set_params_reinitialises_regularizer():
    X, y = _data()
    net = _Net(regularizer=ConstPenalty).fit(X, y)
    first = net.regularizer_
    net.set_params(regularizer__weight=0.5)
    assert net.regularizer_ is not first
    assert net.regularizer_.weight == 0.5
    net.fit(X, y)
    np.testing.assert_allclose(net.history[:, "regularizer_penalty"], 0.5 * 2.5)


def test_registered_name(monkeypatch):
    monkeypatch.setitem(reg_base._REGISTRY, "test-const", ConstPenalty)
    X, y = _data()
    net = _Net(regularizer="TEST-const", regularizer__value=1.0).fit(X, y)
    assert isinstance(net.regularizer_, ConstPenalty)
    np.testing.assert_allclose(net.history[:, "regularizer_penalty"], 1.0)


def test_instance_is_copied_not_trained_in_place():
    X, y = _data()
    user_reg = ShiftLayer()
    net = _Net(regularizer=user_reg).fit(X, y)
    assert net.regularizer_ is not user_reg
    assert not hasattr(user_reg, "shift")
    # instance + routed params: constructor args read back from the instance
    net = _Net(regularizer=ConstPenalty(value=4.0), regularizer__weight=0.5).fit(X, y)
    assert net.regularizer_.value == 4.0 and net.regularizer_.weight == 0.5
    np.testing.assert_allclose(net.history[:, "regularizer_penalty"], 2.0)


def test_callable_regularizer_with_weight():
    X, y = _data()

    def mean_sq(emb, ctx):
        assert set(ctx) == {"X"}
        return (emb["h"] ** 2).mean()

    net = _Net(regularizer=mean_sq, regularizer__weight=0.1).fit(X, y)
    assert net.regularizer_.func is mean_sq
    assert net.regularizer_.weight == 0.1
    assert np.all(np.asarray(net.history[:, "regularizer_penalty"]) > 0)


def test_transform_kind_applies_in_training_only():
    X, y = _data()
    Doubler.calls = 0
    net = _Net(regularizer=Doubler, max_epochs=1).fit(X, y)
    assert Doubler.calls == 64 // 16
    t = torch.randn(4, 3)
    assert net.inference_table("h", t) is t


def test_layer_kind_setup_params_are_trained_and_used_in_inference():
    X, y = _data()
    net = _Net(regularizer=ShiftLayer, max_epochs=5).fit(X, y)
    reg = net.regularizer_
    assert reg.info_ == {"n_samples": 64, "tables": {"h": 3}}
    # the parameter created in setup was optimised
    assert not torch.allclose(reg.shift.detach(), torch.ones(3))
    assert any(
        p is reg.shift for g in net.optimizer_.param_groups for p in g["params"]
    )
    # eval transform applied to a whole table, in eval mode, without grad
    t = torch.zeros(2, 3)
    out = net.inference_table("h", t)
    expected = reg.shift.detach() - reg.running
    torch.testing.assert_close(out, expected.expand(2, 3))
    assert not out.requires_grad
    assert reg.training  # mode restored


def test_sparse_adam_gets_separate_optimizer_for_regularizer_params():
    X, y = _data()
    net = _Net(regularizer=ShiftLayer).fit(X, y)
    assert not hasattr(net, "regularizer_optimizer_")
    # an estimator whose optimizer_ is SparseAdam (sparse embedding gradients)
    # cannot take the regularizer's dense parameters: the mixin adds its own Adam
    with net._current_init_context("optimizer"):
        net.optimizer_ = torch.optim.SparseAdam(
            [nn.Parameter(torch.zeros(2, 2))], lr=0.1
        )
    net._setup_regularizer(X, y)
    assert isinstance(net.regularizer_optimizer_, torch.optim.Adam)
    assert net.regularizer_optimizer_.param_groups[0]["params"][0] is (
        net.regularizer_.shift
    )
    assert "regularizer_optimizer" in net._optimizers
    # re-initialising the optimizer forgets it
    net.initialize_optimizer()
    assert not hasattr(net, "regularizer_optimizer_")
    assert "regularizer_optimizer" not in net._optimizers


def test_clone_and_pickle_keep_regularizer():
    X, y = _data()
    net = _Net(regularizer=ConstPenalty, regularizer__weight=0.3)
    cl = clone(net)
    assert cl.regularizer is ConstPenalty
    assert cl.get_params()["regularizer__weight"] == 0.3
    net.fit(X, y)
    net2 = pickle.loads(pickle.dumps(net))
    assert isinstance(net2.regularizer_, ConstPenalty)
    assert net2.regularizer_.weight == 0.3
    np.testing.assert_allclose(net2.predict(X), net.predict(X))


def test_grid_search_over_regularizer_params():
    X, y = _data()
    gs = GridSearchCV(
        _Net(max_epochs=1),
        {"regularizer": [None, ConstPenalty], "regularizer__weight": [0.1, 1.0]},
        cv=2,
        scoring="neg_mean_squared_error",
    )
    gs.fit(X, y)
    assert len(gs.cv_results_["params"]) == 4
    assert hasattr(gs.best_estimator_, "regularizer_")


def test_bad_regularizer_values():
    X, y = _data()
    with pytest.raises(ValueError, match="regularizer='nope'"):
        _Net(regularizer="nope").fit(X, y)
    with pytest.raises(TypeError, match="regularizer"):
        _Net(regularizer=3).fit(X, y)
    with pytest.raises(TypeError, match="subclass"):
        _Net(regularizer=dict).fit(X, y)
    with pytest.raises(TypeError, match="regularizer__"):
        _Net(regularizer=ConstPenalty, regularizer__bogus=1).fit(X, y)
    with pytest.raises(ValueError, match="regularizer__bogus"):
        _Net(regularizer=ConstPenalty(), regularizer__bogus=1).fit(X, y)


class _LifecycleNet(NetBase, _Net):
    """The same net on the package's estimator base (the fit lifecycle)."""

    _fitted_attributes = ("n_seen_",)

    def __init__(self, *args, random_state=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.random_state = random_state


def test_non_finite_loss_raises_model_fit_error():
    X, y = _data()
    y = y.copy()
    y[3] = np.inf
    net = _LifecycleNet()
    with pytest.raises(ModelFitError, match="diverged"):
        net.fit(X, y)
    with pytest.raises(NotFittedError):  # a failed fit leaves it unfitted
        net.predict(X)


def test_the_regularizer_mixin_brings_no_fit_policy():
    """A net of your own with the mixin keeps skorch's behaviour: the
    divergence guard is the estimator base's (NetBase), not the mixin's."""
    X, y = _data()
    y = y.copy()
    y[3] = np.inf
    net = _Net(regularizer=ConstPenalty).fit(X, y)  # no ModelFitError
    assert not np.isfinite(net.history[-1, "train_loss"])
    assert len(net.history[:, "regularizer_penalty"]) == 3
    pickle.loads(pickle.dumps(net))  # skorch's pickling (NetBase drops fit state)


def test_sklearn_is_fitted_needs_fit_attributes():
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    net = _LifecycleNet()
    assert not net.__sklearn_is_fitted__()
    net.initialize()
    assert not net.__sklearn_is_fitted__()
    with pytest.raises(NotFittedError):
        check_is_fitted(net)
    X, y = _data()
    net.fit(X, y)
    check_is_fitted(net)
