"""ErankScorer / IAScorer as estimators (Pipeline, GridSearchCV) and as scorers."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetRegressor
from skorch.callbacks import EpochScoring

from skcollapse.metrics import (
    ErankScorer,
    IAScorer,
    effective_rank,
    get_collapse_scorer,
    get_collapse_scorer_names,
    information_abundance,
)
from skcollapse.testing import CollapseMetricTests
from skcollapse.testing import reference_effective_rank as ref_erank
from skcollapse.testing import reference_information_abundance as ref_ia


@pytest.fixture
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


class SVDEmbedder(BaseEstimator):
    """A real (if tiny) embedding model: item factors from a truncated SVD."""

    def __init__(self, n_components=4):
        self.n_components = n_components

    def fit(self, X, y=None):
        self.svd_ = TruncatedSVD(self.n_components, random_state=0).fit(X)
        self.user_ = self.svd_.transform(X)
        return self

    def get_embeddings(self):
        return {"user": self.user_, "item": self.svd_.components_.T.copy()}

    def score(self, X, y=None):  # reconstruction quality, for refit
        return -float(np.mean((X - self.svd_.inverse_transform(self.svd_.transform(X)))
                              ** 2))


# ----------------------------------------------------------------- estimator API
@pytest.mark.parametrize("cls, attr, ref", [
    (ErankScorer, "effective_rank_", ref_erank),
    (IAScorer, "information_abundance_", ref_ia),
])
def test_fit_attributes_match_reference(cls, attr, ref):
    rng = np.random.default_rng(0)
    for shape in ((3000, 12), (40, 25), (10, 30)):
        E = rng.standard_normal(shape) * np.geomspace(1, 0.05, shape[1])
        est = cls().fit(E)
        np.testing.assert_allclose(getattr(est, attr), ref(E), rtol=1e-6)
        np.testing.assert_allclose(
            est.singular_values_, np.linalg.svd(E, compute_uv=False), rtol=1e-6
        )
        assert est.n_features_in_ == shape[1]
        assert est.n_samples_seen_ == shape[0]
        np.testing.assert_allclose(est.score(E), ref(E), rtol=1e-6)


def test_partial_fit_over_chunks_equals_fit():
    rng = np.random.default_rng(1)
    E = 3.0 + rng.standard_normal((5000, 10)) * np.geomspace(1, 0.01, 10)
    for params in ({}, {"center": True}, {"row_normalize": True, "normalize": True}):
        whole = ErankScorer(**params).fit(E)
        inc = ErankScorer(**params)
        for chunk in np.array_split(E, 7):
            inc.partial_fit(chunk)
        np.testing.assert_allclose(inc.effective_rank_, whole.effective_rank_, rtol=1e-9)
        np.testing.assert_allclose(inc.singular_values_, whole.singular_values_,
                                   rtol=1e-9)
        assert inc.n_samples_seen_ == 5000
    # fit() then partial_fit() continues; fit() again resets
    est = IAScorer().fit(E[:2500]).partial_fit(E[2500:])
    np.testing.assert_allclose(est.information_abundance_, ref_ia(E), rtol=1e-9)
    est.fit(E[:100])
    assert est.n_samples_seen_ == 100
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(E[:5, :3])


def test_fit_streams_a_memmap(tmp_path):
    rng = np.random.default_rng(5)
    E = rng.standard_normal((4000, 12)).astype(np.float32)
    np.save(tmp_path / "E.npy", E)
    M = np.load(tmp_path / "E.npy", mmap_mode="r")
    est = ErankScorer().fit(M)
    np.testing.assert_allclose(est.effective_rank_, ref_erank(E), rtol=1e-6)
    assert est.n_features_in_ == 12
    np.testing.assert_allclose(est.score(M), ref_erank(E), rtol=1e-6)
    E[5, 5] = np.inf
    np.save(tmp_path / "bad.npy", E)
    with pytest.raises(ValueError, match="NaN or infinite"):
        IAScorer().fit(np.load(tmp_path / "bad.npy", mmap_mode="r"))


def test_partial_fit_torch_chunks():
    rng = np.random.default_rng(2)
    E = rng.standard_normal((3000, 8)).astype(np.float32)
    est = ErankScorer()
    for chunk in np.array_split(E, 3):
        est.partial_fit(torch.as_tensor(chunk))
    np.testing.assert_allclose(est.effective_rank_, ref_erank(E), rtol=1e-6)
    np.testing.assert_allclose(ErankScorer().fit(torch.as_tensor(E)).effective_rank_,
                               ref_erank(E), rtol=1e-6)


def test_transform_is_identity_and_feature_names(digits):
    X, _ = digits
    est = ErankScorer().fit(X)
    Xt = est.transform(X)
    np.testing.assert_array_equal(Xt, X)
    X32 = X.astype(np.float32)
    assert ErankScorer().fit(X32).transform(X32).dtype == np.float32
    np.testing.assert_array_equal(est.get_feature_names_out()[:2], ["x0", "x1"])
    df = pd.DataFrame(X[:, :5], columns=list("abcde"))
    est = IAScorer().set_output(transform="pandas").fit(df)
    out = est.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list("abcde")
    np.testing.assert_array_equal(est.get_feature_names_out(), list("abcde"))
    np.testing.assert_allclose(out.to_numpy(), X[:, :5])


def test_unfitted_and_bad_input_errors():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ErankScorer().transform(np.eye(3))
    with pytest.raises(NotFittedError):
        IAScorer().score(np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        ErankScorer().fit(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="2D"):
        ErankScorer().fit(np.ones(4))
    with pytest.raises(ValueError, match="reduce"):
        ErankScorer(reduce="sum").fit(np.eye(3))
    with pytest.raises(ValueError, match="spectrum"):
        ErankScorer(spectrum="sigma").fit(np.eye(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        ErankScorer().fit(torch.tensor([[float("nan"), 1.0]]))


class TestScorerKnownAnswers(CollapseMetricTests):
    def metric(self, E):
        return ErankScorer().fit(E).effective_rank_


class TestIAScorerKnownAnswers(CollapseMetricTests):
    def metric(self, E):
        return IAScorer().fit(E).information_abundance_


def test_normalize_divides_by_dimension():
    rng = np.random.default_rng(3)
    E = rng.standard_normal((500, 16))
    np.testing.assert_allclose(
        ErankScorer(normalize=True).fit(E).effective_rank_, ref_erank(E) / 16, rtol=1e-6
    )
    np.testing.assert_allclose(
        IAScorer(normalize=True).fit(E).information_abundance_, ref_ia(E) / 16,
        rtol=1e-6,
    )
    np.testing.assert_allclose(ErankScorer(normalize=True).fit(np.eye(8)).score(
        np.eye(8)), 1.0)


# ----------------------------------------------------------------- Pipeline / search
def test_pipeline_score_is_erank_of_pca_output(digits):
    X, _ = digits
    pipe = make_pipeline(StandardScaler(), PCA(16), ErankScorer()).fit(X)
    Z = pipe[:-1].transform(X)
    np.testing.assert_allclose(pipe.score(X), ref_erank(Z), rtol=1e-6)
    # an exact PCA, so that the fit-time and transform-time outputs agree
    pipe = make_pipeline(StandardScaler(), PCA(16, svd_solver="full"), ErankScorer())
    pipe.fit(X)
    Z = pipe[:-1].transform(X)
    np.testing.assert_allclose(pipe.score(X), ref_erank(Z), rtol=1e-6)
    assert pipe[-1].n_features_in_ == 16
    np.testing.assert_allclose(pipe[-1].effective_rank_, ref_erank(Z), rtol=1e-6)
    np.testing.assert_array_equal(pipe.transform(X), Z)
    pipe.set_output(transform="pandas")
    assert isinstance(pipe.fit(X).transform(X), pd.DataFrame)


def test_grid_search_without_scoring_ranks_pca_sizes_by_erank(digits):
    X, _ = digits
    sizes = [2, 6, 16]
    search = GridSearchCV(
        make_pipeline(StandardScaler(), PCA(svd_solver="full"), ErankScorer()),
        {"pca__n_components": sizes}, cv=2,
    ).fit(X[:300])
    means = search.cv_results_["mean_test_score"]
    assert np.all(np.diff(means) > 0)
    assert search.best_params_ == {"pca__n_components": 16}
    # each split's score is the erank of that fold's PCA output
    assert 1 <= means[0] <= 2 and means[-1] <= 16


def test_scorer_call_reads_get_embeddings(digits):
    X, _ = digits
    model = SVDEmbedder(n_components=6).fit(X)
    tables = model.get_embeddings()
    np.testing.assert_allclose(
        ErankScorer(table="item")(model, X), ref_erank(tables["item"]), rtol=1e-6
    )
    np.testing.assert_allclose(
        IAScorer(table="user")(model, X, None), ref_ia(tables["user"]), rtol=1e-6
    )
    both = [ref_erank(tables["user"]), ref_erank(tables["item"])]
    np.testing.assert_allclose(ErankScorer()(model, X), np.mean(both), rtol=1e-6)
    np.testing.assert_allclose(ErankScorer(reduce="min")(model, X), min(both),
                               rtol=1e-6)
    np.testing.assert_allclose(
        ErankScorer(table=["item", "user"], reduce="max")(model, X), max(both),
        rtol=1e-6,
    )
    # also from the last step of a Pipeline, and from a fitted search
    pipe = make_pipeline(StandardScaler(), SVDEmbedder(n_components=6)).fit(X)
    np.testing.assert_allclose(
        IAScorer(table="item")(pipe, X),
        ref_ia(pipe[-1].get_embeddings()["item"]), rtol=1e-6,
    )
    with pytest.raises(ValueError, match="'items' is not among"):
        ErankScorer(table="items")(model, X)


def test_scorer_call_clear_error_without_embeddings(digits):
    X, y = digits
    clf = LogisticRegression(max_iter=50).fit(X[:100], y[:100])
    with pytest.raises(TypeError, match="LogisticRegression has no get_embeddings"):
        ErankScorer()(clf, X, y)

    class Empty(BaseEstimator):
        def get_embeddings(self):
            return {}

    with pytest.raises(ValueError, match="no tables"):
        IAScorer()(Empty(), X)


def test_scorer_as_scoring_on_a_probe_pipeline_scores_the_transformed_fold(digits):
    # The documented probe use: a Pipeline ending in ErankScorer, searched with
    # scoring=ErankScorer()/IAScorer(). Each split's score is the metric of the
    # held-out fold as the probe receives it (it used to be NaN with a warning).
    X, _ = digits
    X = X[:300]
    pipe = make_pipeline(StandardScaler(), PCA(svd_solver="full"), ErankScorer())
    cv = KFold(2)
    search = GridSearchCV(
        pipe, {"pca__n_components": [2, 12]}, cv=cv,
        scoring={"erank": ErankScorer(), "ia": IAScorer()}, refit="erank",
        error_score="raise",
    ).fit(X)
    for i, n in enumerate([2, 12]):
        for split, (train, test) in enumerate(cv.split(X)):
            fold = clone(pipe).set_params(pca__n_components=n).fit(X[train])
            Z = fold[:-1].transform(X[test])
            assert Z.shape[1] == n
            res = search.cv_results_
            np.testing.assert_allclose(res[f"split{split}_test_erank"][i],
                                       ref_erank(Z), rtol=1e-6)
            np.testing.assert_allclose(res[f"split{split}_test_ia"][i], ref_ia(Z),
                                       rtol=1e-6)
    assert search.best_params_ == {"pca__n_components": 12}
    # called directly, on the fitted search, a nested Pipeline and the probe itself
    Z = search.best_estimator_[:-1].transform(X)
    np.testing.assert_allclose(ErankScorer()(search, X), ref_erank(Z), rtol=1e-6)
    nested = make_pipeline(StandardScaler(), make_pipeline(PCA(5), IAScorer())).fit(X)
    Zn = nested[-1][0].transform(nested[0].transform(X))
    np.testing.assert_allclose(IAScorer()(nested, X), ref_ia(Zn), rtol=1e-6)
    np.testing.assert_allclose(ErankScorer()(nested[-1][-1], Zn), ref_erank(Zn),
                               rtol=1e-6)


def test_scorer_on_a_probe_pipeline_errors_say_what_to_do(digits):
    X, _ = digits
    pipe = make_pipeline(StandardScaler(), PCA(4), ErankScorer()).fit(X)
    with pytest.raises(ValueError, match=r"without X: pass the data to score"):
        ErankScorer()(pipe)
    with pytest.raises(ValueError, match="is expecting 4 features"):
        IAScorer()(pipe[-1], X)  # the probe alone needs what it was fitted on
    # a Pipeline ending in a plain transformer: say how to get a probe
    plain = make_pipeline(StandardScaler(), PCA(4)).fit(X)
    with pytest.raises(TypeError, match=r"Pipeline has no get_embeddings.*end a "
                       r"Pipeline with ErankScorer\(\)/IAScorer\(\)"):
        ErankScorer()(plain, X)
    with pytest.raises(TypeError, match="Pipeline has no get_embeddings"):
        GridSearchCV(plain, {"pca__n_components": [2, 3]}, scoring=ErankScorer(),
                     error_score="raise", cv=2).fit(X)


def test_grid_search_scoring_dict_of_collapse_scorers(digits):
    X, _ = digits
    search = GridSearchCV(
        SVDEmbedder(),
        {"n_components": [2, 5, 10]},
        scoring={"erank": ErankScorer(table="item"), "ia": IAScorer(table="item")},
        refit="erank", cv=3,
    ).fit(X)
    # the item table has n_components columns: a larger model has a higher erank
    assert search.best_params_ == {"n_components": 10}
    assert np.all(np.diff(search.cv_results_["mean_test_erank"]) > 0)
    final = search.best_estimator_.get_embeddings()["item"]
    np.testing.assert_allclose(ErankScorer(table="item")(search, X), ref_erank(final),
                               rtol=1e-6)
    scorer = get_collapse_scorer("ia", table="item")
    assert isinstance(scorer, IAScorer) and scorer.table == "item"
    assert {"effective_rank", "erank", "information_abundance", "ia"} <= set(
        get_collapse_scorer_names()
    )
    with pytest.raises(
        ValueError, match=r"'name' parameter of get_collapse_scorer must be a str among"
    ):
        get_collapse_scorer("recall")


def test_old_scorer_names_are_deprecated_aliases():
    """Issue 29: skcollapse.metrics.get_scorer shadowed sklearn's with another
    meaning; the old names work one more release, with a FutureWarning."""
    import sklearn.metrics

    import skcollapse.metrics as m

    assert "get_scorer" not in m.__all__ and "get_scorer_names" not in m.__all__
    with pytest.warns(FutureWarning, match="renamed get_collapse_scorer "):
        old = m.get_scorer("erank", table="item")
    assert old.get_params() == get_collapse_scorer("erank", table="item").get_params()
    with pytest.warns(FutureWarning, match="renamed get_collapse_scorer_names"):
        assert m.get_scorer_names() == get_collapse_scorer_names()
    # scikit-learn's strings stay scikit-learn's: the documented way is the object
    with pytest.raises(ValueError, match="not a valid scoring value"):
        sklearn.metrics.get_scorer("effective_rank")


class EmbNet(NeuralNetRegressor):
    """Tiny skorch regressor exposing its embedding table (the protocol)."""

    def get_embeddings(self):
        return {"item": self.module_.emb.weight.detach().cpu().numpy()}


class EmbModule(torch.nn.Module):
    def __init__(self, n_items=40, dim=8):
        super().__init__()
        self.emb = torch.nn.Embedding(n_items, dim)
        self.out = torch.nn.Linear(dim, 1)

    def forward(self, X):
        return self.out(self.emb(X.long()))[:, 0]


def test_skorch_epoch_scoring_records_erank_per_epoch():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 40, size=(256,)).astype(np.int64)
    y = rng.standard_normal(256).astype(np.float32)
    net = EmbNet(
        EmbModule, max_epochs=3, lr=0.05, batch_size=64, train_split=None,
        callbacks=[
            EpochScoring(ErankScorer(table="item"), lower_is_better=False,
                         on_train=True),
            EpochScoring(IAScorer(table="item", normalize=True),
                         lower_is_better=False, on_train=True, name="ia_norm"),
        ],
        verbose=0,
    )
    net.fit(X, y)
    history = net.history[:, "effective_rank_item"]
    assert len(history) == 3
    weight = net.module_.emb.weight.detach().numpy()
    np.testing.assert_allclose(history[-1], ref_erank(weight), rtol=1e-6)
    np.testing.assert_allclose(net.history[-1, "ia_norm"], ref_ia(weight) / 8,
                               rtol=1e-6)


def test_clone_pickle_and_params():
    est = ErankScorer(table="item", reduce="min", normalize=True)
    assert clone(est).get_params() == est.get_params()
    fitted = IAScorer(center=True).fit(np.random.default_rng(0).standard_normal((50, 4)))
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.singular_values_, fitted.singular_values_)
    again.partial_fit(np.ones((3, 4)))
    assert again.n_samples_seen_ == 53
    assert ErankScorer(table="user").__name__ == "effective_rank_user"
    assert IAScorer().__name__ == "information_abundance"
    assert ErankScorer.__name__ == "ErankScorer"


def test_scorer_values_equal_metric_functions():
    rng = np.random.default_rng(4)
    E = rng.standard_normal((800, 12))
    for kw in ({}, {"center": True}, {"row_normalize": True}):
        assert ErankScorer(**kw).fit(E).score(E) == effective_rank(E, **kw)
        assert IAScorer(**kw).fit(E).score(E) == information_abundance(E, **kw)
