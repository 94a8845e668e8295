"""The evaluation harness: choices on validation carved from training pairs,
the test pairs ranked once per seed after the choice, paired comparisons."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import wilcoxon

from skcollapse.datasets import make_interactions
from skcollapse.metrics import evaluate_ranking
from skcollapse.model_selection import (
    HoldoutProtocol,
    PerUserValidSplit,
    paired_comparison,
    train_test_split_interactions,
)
from skcollapse.recommenders import ItemKNNRecommender, MFRecommender

FAST = {"embedding_dim": 8, "batch_size": 256, "max_epochs": 6}


@pytest.fixture(scope="module")
def data():
    X = make_interactions(150, 80, density=0.08, random_state=3)
    return tuple(np.asarray(a) for a in train_test_split_interactions(
        X, test_size=0.2, random_state=0))


def test_validation_pairs_are_those_the_model_carves(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, valid_size=0.2, random_state=4)
    mask = protocol.validation_mask()
    model = MFRecommender(train_split=PerUserValidSplit(0.2, random_state=4))
    users, items = X_train[:, 0], X_train[:, 1]
    np.testing.assert_array_equal(model._split_mask(users, items), mask)
    assert 0.1 < (~mask).mean() < 0.3


def test_select_keeps_the_best_validation_candidate_and_its_epoch(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=3)
    # lr=1e-9 barely learns: its validation NDCG is near the random initialisation
    sel = protocol.select(MFRecommender(**FAST, lr=0.05),
                          [{"lr": 1e-9}, {"lr": 0.05}], seed=0)
    assert sel["params"] == {"lr": 0.05}
    best = max(protocol.candidates_, key=lambda c: c["valid_score"])
    assert best["valid_score"] == max(best["valid_curve"])
    assert sel["epochs"] == int(np.argmax(best["valid_curve"])) + 1
    assert protocol.candidates_[0]["valid_score"] < sel["valid_score"]


def test_the_order_is_enforced(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=2)
    with pytest.raises(RuntimeError, match="before select"):
        protocol.test(0)
    protocol.select(MFRecommender(**FAST))
    with pytest.raises(RuntimeError, match="already called"):
        protocol.select(MFRecommender(**FAST))
    result = protocol.test(0)
    with pytest.raises(RuntimeError, match="already scored for seed=0"):
        protocol.test(0)
    assert set(result["tables"]) == {"user", "item"}
    assert result["per_user"]["ndcg"].mean() == pytest.approx(result["test"]["ndcg"])


def test_refit_trains_on_every_training_pair_for_the_selected_epochs(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=2, refit=True)
    sel = protocol.select(MFRecommender(**FAST))
    result = protocol.test(1)
    assert result["epochs"] == sel["epochs"] and result["valid_curve"] is None
    # the same model trained by hand ranks the test pairs alike
    model = MFRecommender(**{**FAST, "max_epochs": sel["epochs"]},
                          random_state=1).fit(X_train)
    assert model.user_items_.nnz == np.unique(X_train, axis=0).shape[0]
    got = evaluate_ranking(model, X_test, k=20, metrics=("ndcg",))["ndcg"]
    assert result["test"]["ndcg"] == pytest.approx(got, rel=1e-6)


def test_models_without_epochs_choose_on_the_carve_and_refit_on_all(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test)
    grid = [{"n_neighbors": 2}, {"n_neighbors": 40}]
    sel = protocol.select(ItemKNNRecommender(), grid)
    mask = protocol.validation_mask()
    scores = [evaluate_ranking(ItemKNNRecommender(**p).fit(X_train[mask]),
                               X_train[~mask], k=20, metrics=("ndcg",))["ndcg"]
              for p in grid]
    assert sel["params"] == grid[int(np.argmax(scores))]
    assert [c["valid_score"] for c in protocol.candidates_] == pytest.approx(scores)
    result = protocol.test(0)
    full = ItemKNNRecommender(**sel["params"]).fit(X_train)
    assert result["test"]["ndcg"] == pytest.approx(
        evaluate_ranking(full, X_test, k=20, metrics=("ndcg",))["ndcg"])


def test_legacy_filter_reproduces_the_old_bug(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=2, valid_size=0.3)
    protocol.select(MFRecommender(**FAST))
    result = protocol.test(0, legacy_filter=True)
    # by hand: rank with only the training part filtered
    model = protocol._with_validation(MFRecommender(**FAST), {}, 0).fit(X_train)
    mask = protocol.validation_mask()
    part = X_train[mask]
    u = np.searchsorted(model.user_ids_, part[:, 0])
    i = np.searchsorted(model.item_ids_, part[:, 1])
    model.user_items_ = sp.csr_matrix((np.ones(u.size), (u, i)),
                                      shape=model.user_items_.shape)
    model._liked_ = None
    old = evaluate_ranking(model, X_test, k=20, metrics=("ndcg",))["ndcg"]
    assert result["test_legacy_filter"]["ndcg"] == pytest.approx(old, rel=1e-6)
    assert result["test_legacy_filter"]["ndcg"] < result["test"]["ndcg"]


def _results(per_user_by_seed, user=None):
    out = []
    for values in per_user_by_seed:
        values = np.asarray(values, dtype=float)
        u = np.arange(values.size) if user is None else user
        out.append({"test": {"ndcg": values.mean()},
                    "per_user": {"user": u, "ndcg": values}})
    return out


def test_paired_comparison_against_scipy_and_known_verdicts():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    b = _results([base + rng.normal(0, 0.01, 300) for _ in range(3)])
    better = _results([base + 0.05 + rng.normal(0, 0.01, 300) for _ in range(3)])
    got = paired_comparison(better, b)
    d = np.mean([r["per_user"]["ndcg"] for r in better], axis=0) - np.mean(
        [r["per_user"]["ndcg"] for r in b], axis=0)
    assert got["p_value"] == pytest.approx(wilcoxon(d).pvalue)
    assert got["verdict"] == "+" and got["ci"][0] > 0
    assert paired_comparison(b, better)["verdict"] == "-"
    # the same setting against itself: no difference, no verdict
    same = paired_comparison(b, b)
    assert same["verdict"] == "~" and same["p_value"] == 1.0
    # one seed: no seed spread, so never a verdict
    assert paired_comparison(better[:1], b[:1])["verdict"] == "~"
    # a large paired effect that the seeds contradict is not a verdict either
    noisy = _results([base + 0.05, base - 0.3, base + 0.4])
    assert paired_comparison(noisy, b)["verdict"] == "~"


def test_paired_comparison_refuses_different_users():
    a = _results([np.ones(5)], user=np.arange(5))
    b = _results([np.ones(5)], user=np.arange(1, 6))
    with pytest.raises(ValueError, match="same test users"):
        paired_comparison(a, b)


@pytest.mark.parametrize("kwargs, match", [
    ({"valid_size": 1.0}, "valid_size"), ({"monitor": "map"}, "monitor"),
    ({"k": 0}, "k must"), ({"patience": 1.5}, "patience"),
])
def test_bad_parameters_are_named(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        HoldoutProtocol(*data, **kwargs)


def test_the_selected_seed_model_is_reused_and_equals_a_fresh_fit(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=2)
    protocol.select(MFRecommender(**FAST), seed=0)
    reused = protocol.test(0)
    again = HoldoutProtocol(X_train, X_test, patience=2)
    again.select(MFRecommender(**FAST), seed=5)  # another seed: trained anew
    fresh = again.test(0)
    assert reused["test"] == pytest.approx(fresh["test"], rel=1e-6)
    assert reused["valid_curve"] == pytest.approx(fresh["valid_curve"], rel=1e-6)


def test_unseen_test_pairs_are_counted_as_misses_without_a_warning(data):
    import warnings

    X_train, X_test = data
    ghost = np.array([[X_train[0, 0], 10_000], [20_000, X_train[0, 1]]])
    protocol = HoldoutProtocol(X_train, np.vstack([X_test, ghost]), patience=2)
    protocol.select(MFRecommender(**FAST))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = protocol.test(0)
    assert result["unseen_test_pairs"] == 2


def test_a_collapse_monitor_history_is_kept_per_seed(data):
    from skcollapse.callbacks import CollapseMonitor

    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=2)
    model = MFRecommender(**FAST, callbacks=[CollapseMonitor(record_initial=True)])
    protocol.select(model, seed=0)
    result = protocol.test(0)
    hist = result["collapse_history"]
    n_epochs = len(hist["epoch"])
    assert hist["epoch"] == list(range(1, n_epochs + 1))
    assert result["epochs"] <= n_epochs <= FAST["max_epochs"]
    assert {"erank_item", "erank_user", "ia_item", "ia_user"} <= set(hist)
    assert all(len(hist[c]) == n_epochs for c in ("erank_item", "ia_user"))
    assert set(hist["initial"]) == {"erank_item", "erank_user", "ia_item", "ia_user"}
    # after training the best epoch's weights are restored: the tables then are
    # those of the selected epoch
    at = result["epochs"] - 1
    assert hist["erank_item"][at] == pytest.approx(result["tables"]["item"]["erank"],
                                                   rel=1e-5)
    # no monitor, no history
    protocol = HoldoutProtocol(X_train, X_test, patience=2)
    protocol.select(MFRecommender(**FAST), seed=0)
    assert "collapse_history" not in protocol.test(0)


def test_select_keeps_only_the_chosen_candidates_model_alive(data, monkeypatch):
    import gc
    import weakref

    X_train, X_test = data
    for estimator, grid, alive in (
        (MFRecommender(**FAST), [{"lr": 1e-9}, {"lr": 0.05}, {"lr": 1e-8}], 1),
        (ItemKNNRecommender(), [{"n_neighbors": k} for k in (2, 40, 5)], 0),
    ):
        protocol = HoldoutProtocol(X_train, X_test, patience=2)
        refs = []
        fit = protocol._fit_candidate

        def tracked(*args, fit=fit, refs=refs):
            est, record = fit(*args)
            refs.append(weakref.ref(est))
            return est, record

        monkeypatch.setattr(protocol, "_fit_candidate", tracked)
        protocol.select(estimator, grid, seed=0)
        gc.collect()
        # a 41k-item EASE model holds 6.7 GB: the others are dropped as the grid
        # runs, and the baselines' are all dropped (they are refitted on test)
        assert sum(r() is not None for r in refs) == alive


def test_extra_figures_are_computed_on_the_final_model(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=2)
    protocol.select(MFRecommender(**FAST), seed=0)
    seen = {}

    def extra(est, X):
        seen["est"], seen["X"] = est, X
        return {"n_items": est.n_items_}

    result = protocol.test(0, extra=extra)
    assert result["extra"] == {"n_items": seen["est"].n_items_}
    assert seen["X"] is X_test
    assert evaluate_ranking(seen["est"], X_test, k=20, metrics=("ndcg",))[
        "ndcg"] == pytest.approx(result["test"]["ndcg"])


def test_time_budget_stops_after_early_stopping_saw_the_epoch(data):
    X_train, X_test = data
    protocol = HoldoutProtocol(X_train, X_test, patience=50, max_fit_s=1e-9)
    protocol.select(MFRecommender(**FAST))
    cand = protocol.candidates_[0]
    # the budget is spent in the first epoch: training stops after it, and that
    # epoch (seen by early stopping) is the selected one
    assert cand["stopped_by_time"] and cand["epochs_run"] == 1
    assert cand["epochs"] == 1 and len(cand["valid_curve"]) == 1
    result = protocol.test(0)
    assert result["stopped_by_time"] and result["epochs_run"] == 1
    free = HoldoutProtocol(X_train, X_test, patience=50)
    free.select(MFRecommender(**FAST))
    assert not free.candidates_[0]["stopped_by_time"]
    assert free.candidates_[0]["epochs_run"] == FAST["max_epochs"]
    with pytest.raises(ValueError, match="max_fit_s"):
        HoldoutProtocol(X_train, X_test, max_fit_s=0)
