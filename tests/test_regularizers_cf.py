"""The regularizers inside the CF recommenders: collapse, grid search, history."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.model_selection import GridSearchCV

from skcollapse.datasets import make_interactions
from skcollapse.metrics import ErankScorer, effective_rank
from skcollapse.recommenders import LightGCNRecommender, MFRecommender
from skcollapse.regularizers import (
    DecorrelatedBatchNorm,
    DirectSpecPlus,
    LogDetRegularizer,
    Regularizer,
)

N_USERS, N_ITEMS = 300, 200


@pytest.fixture(scope="module")
def split():
    X = np.asarray(make_interactions(N_USERS, N_ITEMS, density=0.06, random_state=0))
    rng = np.random.default_rng(0)
    test = np.zeros(len(X), dtype=bool)
    test[rng.permutation(len(X))[: len(X) // 5]] = True
    return X[~test], X[test]


def _collapse_prone(**params):
    # several propagation layers and a dimension well above the planted rank
    # (8): LightGCN's smoothing concentrates the item table on few directions
    base = {
        "n_layers": 3,
        "embedding_dim": 64,
        "max_epochs": 10,
        "batch_size": 512,
        "lr": 5e-3,
        "random_state": 0,
        "n_users": N_USERS,
        "n_items": N_ITEMS,
    }
    base.update(params)
    return LightGCNRecommender(**base)


@pytest.fixture(scope="module")
def baseline(split):
    Xtr, Xte = split
    est = _collapse_prone().fit(Xtr)
    return est.score(Xte), effective_rank(est.get_embeddings()["item"])


# Settings and NDCG@20 tolerance per regularizer. The tolerance is relative to
# regularizer=None: NDCG@20 must stay >= (1 - tol) * NDCG@20(None).
# The penalties run at a weight that acts on this small synthetic set: their
# defaults are chosen on MovieLens-100k validation data (99% of validation
# NDCG@20 kept), where they are weaker. The test checks the mechanism.
SETTINGS = [
    pytest.param("logdet", {"weight": 1e-4}, 0.10, id="logdet"),
    # DirectSpec with the reference's unit rows: its default keep_norm=True keeps
    # BPR's score scale and spreads less (the MovieLens-100k defaults table of the
    # evidence page's earlier results, read on test; keep_norm is not re-tuned yet)
    pytest.param("directspec", {"alpha": 0.5, "keep_norm": False}, 0.10, id="directspec"),
    pytest.param("dbn", {}, 0.10, id="dbn"),
    pytest.param(
        "directspec+",
        {"alpha": 0.5, "keep_norm": False},
        0.10,
        id="directspec+",
        marks=pytest.mark.slow,
    ),
    pytest.param("directau", {"weight": 0.01}, 0.10, id="directau", marks=pytest.mark.slow),
    pytest.param("uniformity", {"weight": 0.01}, 0.10, id="uniformity", marks=pytest.mark.slow),
    pytest.param("sv_variance", {"weight": 1e-2}, 0.10, id="sv_variance", marks=pytest.mark.slow),
    pytest.param("coding_rate", {"weight": 1e-3}, 0.10, id="coding_rate", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "params", "tol"), SETTINGS)
def test_regularizer_lifts_item_erank_and_keeps_ndcg(
    split, baseline, name, params, tol
):
    Xtr, Xte = split
    ndcg0, erank0 = baseline
    kw = {f"regularizer__{k}": v for k, v in params.items()}
    est = _collapse_prone(regularizer=name, **kw).fit(Xtr)
    ndcg = est.score(Xte)
    erank = effective_rank(est.get_embeddings()["item"])
    assert erank > 1.2 * erank0, (name, erank, erank0)
    assert ndcg >= (1 - tol) * ndcg0, (name, ndcg, ndcg0)


def test_grid_search_over_regularizer_and_its_params(split):
    Xtr, _ = split
    est = MFRecommender(
        embedding_dim=16,
        max_epochs=2,
        batch_size=1024,
        random_state=0,
        n_users=N_USERS,
        n_items=N_ITEMS,
    )
    # a penalty is searched over its weight, a transform over its own strength
    grid = [
        {"regularizer": [None, "logdet"], "regularizer__weight": [1e-3, 1e-2]},
        {"regularizer": ["directspec+"], "regularizer__alpha": [0.5, 1.0]},
    ]
    search = GridSearchCV(
        est,
        grid,
        cv=2,
        n_jobs=2,
        refit=True,
    )
    search.fit(Xtr)
    assert len(search.cv_results_["params"]) == 6
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    reg = best.regularizer_
    if search.best_params_["regularizer"] is None:
        assert reg is None
    elif search.best_params_["regularizer"] == "logdet":
        assert float(reg.weight) == search.best_params_["regularizer__weight"]
    else:
        assert float(reg.alpha) == search.best_params_["regularizer__alpha"]
    clone = pickle.loads(pickle.dumps(best))
    users = np.arange(10)
    ids, scores = best.recommend(users, n=5)
    ids2, scores2 = clone.recommend(users, n=5)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2)


def test_grid_search_with_erank_scoring(split):
    Xtr, _ = split
    est = MFRecommender(
        embedding_dim=16, max_epochs=2, random_state=0, n_users=N_USERS, n_items=N_ITEMS
    )
    search = GridSearchCV(
        est,
        {"regularizer": [None, "logdet"], "regularizer__weight": [1e-2]},
        scoring={"erank": ErankScorer(table="item")},
        refit="erank",
        cv=2,
    ).fit(Xtr)
    assert search.best_params_["regularizer"] == "logdet"


@pytest.mark.parametrize("name", ["logdet", "dbn", "directspec+"])
def test_each_kind_trains_on_device(split, torch_device, name):
    Xtr, _ = split
    est = MFRecommender(
        embedding_dim=8,
        max_epochs=2,
        regularizer=name,
        random_state=0,
        device=torch_device,
        n_users=N_USERS,
        n_items=N_ITEMS,
    ).fit(Xtr)
    emb = est.get_embeddings()
    assert np.isfinite(emb["item"]).all() and emb["item"].shape == (N_ITEMS, 8)
    for buf in est.regularizer_.buffers():
        assert buf.device.type == torch.device(torch_device).type
    pickle.loads(pickle.dumps(est))


def test_penalty_recorded_in_history_scales_with_weight(split):
    # lr~0: identical batches and embeddings, so the recorded epoch penalty is
    # exactly proportional to the weight
    Xtr, _ = split
    hist = {}
    for w in (1e-3, 4e-3):
        est = MFRecommender(
            embedding_dim=8,
            max_epochs=2,
            lr=1e-12,
            regularizer="logdet",
            regularizer__weight=w,
            random_state=0,
            n_users=N_USERS,
            n_items=N_ITEMS,
        ).fit(Xtr)
        hist[w] = np.asarray(est.history[:, "regularizer_penalty"], dtype=float)
        assert hist[w].shape == (2,) and (hist[w] > 0).all()
    np.testing.assert_allclose(hist[4e-3], 4.0 * hist[1e-3], rtol=1e-5)
    # a transform adds no penalty, recorded as zero
    est = MFRecommender(
        embedding_dim=8, max_epochs=1, regularizer="directspec", random_state=0
    ).fit(Xtr)
    assert est.history[-1, "regularizer_penalty"] == 0.0


def test_dbn_inference_uses_running_statistics(split):
    Xtr, _ = split
    est = MFRecommender(
        embedding_dim=8,
        max_epochs=2,
        regularizer=DecorrelatedBatchNorm,
        regularizer__group_size=4,
        regularizer__eps=1e-3,
        random_state=0,
        n_users=N_USERS,
        n_items=N_ITEMS,
    ).fit(Xtr)
    reg = est.regularizer_
    assert reg.kind == "layer"
    with torch.no_grad():
        raw_u, raw_i = est.module_.tables()
    for name, raw in (("user", raw_u), ("item", raw_i)):
        state = reg.states_["t_" + name]
        assert int(state.num_batches_tracked) == 2 * int(np.ceil(len(Xtr) / 2048))
        mu = state.running_mean.numpy().astype(np.float64)
        W = state.running_whitening.numpy().astype(np.float64)
        expected = (raw.detach().numpy().astype(np.float64) - mu) @ W
        np.testing.assert_allclose(est.get_embeddings()[name], expected, atol=1e-5)
    # the running whitening matrix is block diagonal with blocks of 4
    W = reg.states_["t_item"].running_whitening.numpy()
    assert np.abs(W[:4, 4:]).max() == 0.0


def test_directspec_plus_gets_training_interactions(split):
    Xtr, _ = split
    est = MFRecommender(
        embedding_dim=8,
        max_epochs=1,
        regularizer="directspec+",
        random_state=0,
        n_users=N_USERS,
        n_items=N_ITEMS,
    ).fit(Xtr)
    R = sp.csr_matrix(
        (np.ones(len(Xtr)), (Xtr[:, 0], Xtr[:, 1])), shape=(N_USERS, N_ITEMS)
    )
    got = est.regularizer_.cooccurrence_["user"]
    assert isinstance(est.regularizer_, DirectSpecPlus)
    np.testing.assert_array_equal(got.toarray() > 0, R.toarray() > 0)
    np.testing.assert_array_equal(
        est.regularizer_.cooccurrence_["item"].toarray() > 0, R.T.toarray() > 0
    )


def test_logdet_table_source_needs_full_tables(split):
    Xtr, _ = split
    est = MFRecommender(
        embedding_dim=8,
        max_epochs=1,
        regularizer=LogDetRegularizer,
        regularizer__source="table",
        random_state=0,
    )
    with pytest.raises(ValueError, match="context\\['tables'\\]"):
        est.fit(Xtr)


def test_user_written_regularizers(split):
    Xtr, _ = split

    class ItemNorm(Regularizer):
        """Penalise the squared norm of the batch item embeddings."""

        def __init__(self, *, weight=1.0, power=2.0):
            super().__init__(weight=weight)
            self.power = power

        def penalty(self, embeddings, context=None):
            return embeddings["item"].norm(dim=1).pow(self.power).mean()

    def item_norm(embeddings, context):
        return embeddings["item"].pow(2).sum(dim=1).mean()

    common = {
        "embedding_dim": 8,
        "max_epochs": 3,
        "weight_decay": 0.0,
        "random_state": 0,
        "n_users": N_USERS,
        "n_items": N_ITEMS,
    }
    plain = MFRecommender(**common).fit(Xtr)
    norm0 = np.linalg.norm(plain.get_embeddings()["item"], axis=1).mean()
    for reg, extra in [
        (ItemNorm, {"regularizer__weight": 5.0, "regularizer__power": 2.0}),
        (item_norm, {"regularizer__weight": 5.0}),
    ]:
        est = MFRecommender(regularizer=reg, **common, **extra).fit(Xtr)
        norm = np.linalg.norm(est.get_embeddings()["item"], axis=1).mean()
        assert norm < 0.8 * norm0
        pen = np.asarray(est.history[:, "regularizer_penalty"], dtype=float)
        assert pen.shape == (3,) and (pen > 0).all()


@pytest.mark.parametrize("cls", [MFRecommender, LightGCNRecommender])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_penalties_see_the_rows_the_scores_are_made_of(split, cls, similarity):
    """With cosine scores a penalty gets unit rows (it cannot be met by
    rescaling rows that no score notices); with dot scores the raw rows."""
    Xtr, _ = split
    seen = []

    def record(embeddings, context):
        seen.append({k: v.detach().norm(dim=1) for k, v in embeddings.items()})
        return embeddings["item"].pow(2).sum(dim=1).mean()

    loss = {"loss": "ccl"} if similarity == "cosine" else {}
    cls(embedding_dim=8, max_epochs=1, batch_size=256, init_std=0.5,
        similarity=similarity, regularizer=record, regularizer__weight=0.1,
        random_state=0, n_users=N_USERS, n_items=N_ITEMS, **loss).fit(Xtr)
    assert seen
    norms = torch.cat([n for batch in seen for n in batch.values()])
    if similarity == "cosine":
        torch.testing.assert_close(norms, torch.ones_like(norms))
    else:  # N(0, 0.5²) rows of 8 dims: norms near 1.4, not all one
        assert (norms - 1).abs().max() > 0.1


def test_cosine_penalty_cannot_be_met_by_shrinking_the_table(split):
    """ReSN on raw rows with cosine scores mostly shrinks the tables (scores
    unchanged; before the fix a weight of 1e-2 left 30% of the norm in 10
    epochs); on the unit rows it turns the directions instead."""
    Xtr, _ = split
    common = {"embedding_dim": 8, "max_epochs": 10, "batch_size": 256, "loss": "ccl",
              "similarity": "cosine", "random_state": 0, "n_users": N_USERS,
              "n_items": N_ITEMS, "weight_decay": 0.0}
    plain = MFRecommender(**common).fit(Xtr)
    resn = MFRecommender(regularizer="resn", regularizer__weight=1e-2,
                         **common).fit(Xtr)
    raw = [np.linalg.norm(m.module_.tables()[1].detach().numpy(), axis=1)
           for m in (plain, resn)]
    # the weight is large enough to move the model, yet the table keeps its scale
    assert not np.allclose(plain.get_embeddings()["item"], resn.get_embeddings()["item"],
                           atol=0.1)
    assert raw[1].mean() > 0.8 * raw[0].mean()
