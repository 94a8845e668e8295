"""Ranking and popularity-bias metrics against brute-force Python references."""

import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold

from skcollapse.metrics import (
    average_popularity,
    catalog_coverage,
    evaluate_ranking,
    gini_index,
    hit_rate_at_k,
    long_tail_share,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_scorer,
    recall_at_k,
)

ACCURACY = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
    "map": map_at_k,
}


# ------------------------------------------------------------------------------------
# Independent references: plain Python sets and loops
# ------------------------------------------------------------------------------------
def _reference_accuracy(rel_sets, rec_lists, k):
    out = {name: [] for name in ACCURACY}
    for rel, rec in zip(rel_sets, rec_lists):
        if not rel:
            continue
        top = [i for i in list(rec)[:k]]
        hits = [1 if (i != -1 and i in rel) else 0 for i in top]
        n_hit = sum(hits)
        out["recall"].append(n_hit / len(rel))
        out["precision"].append(n_hit / k)
        out["hit_rate"].append(1.0 if n_hit else 0.0)
        dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
        idcg = sum(1 / math.log2(j + 2) for j in range(min(len(rel), k)))
        out["ndcg"].append(dcg / idcg)
        ap, seen = 0.0, 0
        for j, h in enumerate(hits):
            if h:
                seen += 1
                ap += seen / (j + 1)
        out["map"].append(ap / min(len(rel), k))
    return {name: sum(v) / len(v) for name, v in out.items()}


def _reference_gini(counts):
    # mean-absolute-difference definition, independent of the sorted formula
    n = len(counts)
    mean = sum(counts) / n
    diff = sum(abs(a - b) for a in counts for b in counts)
    return diff / (2 * n * n * mean)


def _random_case(rng, n_users=12, n_items=30, k=5, width=None):
    rel_sets = []
    for _ in range(n_users):
        size = int(rng.integers(0, 9))
        rel_sets.append(set(rng.choice(n_items, size=size, replace=False).tolist()))
    width = width or k + 2
    rec = np.full((n_users, width), -1, dtype=np.int64)
    for u in range(n_users):
        length = int(rng.integers(0, width + 1))
        rec[u, :length] = rng.choice(n_items, size=length, replace=False)
    rows = [u for u, s in enumerate(rel_sets) for _ in s]
    cols = [i for s in rel_sets for i in s]
    relevant = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items)
    )
    if not any(rel_sets):
        rel_sets[0] = {0}
        relevant[0, 0] = 1
    return relevant, rec, rel_sets


# ------------------------------------------------------------------------------------
# Accuracy metrics
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 3, 5])
def test_accuracy_metrics_match_bruteforce(seed, k):
    rng = np.random.default_rng(seed)
    relevant, rec, rel_sets = _random_case(rng, k=k)
    expected = _reference_accuracy(rel_sets, rec.tolist(), k)
    for name, func in ACCURACY.items():
        assert func(relevant, rec, k=k) == pytest.approx(expected[name], abs=1e-12)


def test_perfect_ranking_gives_one():
    rel = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 1, 0]]))
    rec = np.array([[1, 0, 4], [3, 2, 1]])
    assert ndcg_at_k(rel, rec, k=3) == pytest.approx(1.0)
    assert recall_at_k(rel, rec, k=3) == pytest.approx(1.0)
    assert hit_rate_at_k(rel, rec, k=3) == pytest.approx(1.0)
    assert map_at_k(rel, rec, k=3) == pytest.approx(1.0)
    # precision cannot reach 1 when fewer than k items are relevant
    assert precision_at_k(rel, rec, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_no_hits_give_zero_and_padding_is_a_miss():
    rel = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]]))
    rec = np.array([[-1, 2], [-1, -1]])
    for func in ACCURACY.values():
        assert func(rel, rec, k=2) == 0.0


def test_recall_uses_number_of_relevant_items_as_denominator():
    # 4 relevant items, k=2, both hits: LightGCN convention gives 2/4, not 2/2
    rel = sp.csr_matrix(np.array([[1, 1, 1, 1, 0]]))
    rec = np.array([[0, 1]])
    assert recall_at_k(rel, rec, k=2) == pytest.approx(0.5)
    # ... while NDCG uses the ideal DCG of min(|rel|, k) hits: a perfect top-2
    assert ndcg_at_k(rel, rec, k=2) == pytest.approx(1.0)


def test_ndcg_known_value_and_rank_sensitivity():
    rel = sp.csr_matrix(np.array([[0, 1, 0, 0]]))
    assert ndcg_at_k(rel, np.array([[1, 0, 2]]), k=3) == pytest.approx(1.0)
    assert ndcg_at_k(rel, np.array([[0, 2, 1]]), k=3) == pytest.approx(0.5)


def test_users_without_relevant_items_are_skipped():
    rel = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]]))
    rec = np.array([[0], [1]])
    assert recall_at_k(rel, rec, k=1) == 1.0
    assert precision_at_k(rel, rec, k=1) == 1.0


def test_relevant_values_are_binarised_and_dense_accepted():
    dense = np.array([[5.0, 3.0, 0.0], [0.0, 0.0, 2.0]])
    rec = np.array([[0, 2], [2, 1]])
    assert recall_at_k(dense, rec, k=2) == recall_at_k(
        sp.csr_matrix(dense > 0), rec, k=2
    )
    # duplicate COO entries sum but stay a single relevant item
    coo = sp.coo_matrix(([1, 1], ([0, 0], [1, 1])), shape=(1, 3))
    assert recall_at_k(coo, np.array([[1]]), k=1) == 1.0


def test_only_first_k_columns_are_used():
    rel = sp.csr_matrix(np.array([[0, 0, 1]]))
    assert recall_at_k(rel, np.array([[0, 1, 2]]), k=2) == 0.0
    assert recall_at_k(rel, np.array([[0, 1, 2]]), k=3) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, r"'k' parameter of \w+ must be an int in the range \[1"),
        ({"k": 2.5}, TypeError, r"'k' parameter of \w+ must be an int in the range \[1"),
        ({"k": True}, TypeError, r"'k' parameter of \w+ must be an int"),
        ({"k": 4}, ValueError, "columns but k=4"),
        (
            {"recommended": np.array([[0, 1, 2]])},
            ValueError,
            "same number of users",
        ),
        ({"recommended": np.array([[0, 9, 1], [1, 2, 0]])}, ValueError, "item id 9"),
        ({"recommended": np.array([[0, -3, 1], [1, 2, 0]])}, ValueError, "negative"),
        ({"recommended": np.array([[0, 0, 1], [1, 2, 0]])}, ValueError, "repeats"),
        ({"recommended": np.array([[0.5, 1, 2], [1, 2, 0]])}, TypeError, "integer"),
        ({"recommended": np.array([0, 1, 2])}, ValueError, "2-D"),
        (
            {"relevant": sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, -1]]))},
            ValueError,
            "non-negative",
        ),
        (
            {"relevant": sp.csr_matrix(np.array([[np.nan, 0, 0, 0], [0, 1, 0, 1]]))},
            ValueError,
            "NaN",
        ),
        (
            {"relevant": sp.csr_matrix((2, 4))},
            ValueError,
            "no user with a held-out item",
        ),
    ],
)
def test_accuracy_input_validation(kwargs, error, match):
    params = {
        "relevant": sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 1]])),
        "recommended": np.array([[0, 1, 2], [1, 2, 0]]),
        "k": 3,
    }
    params.update(kwargs)
    for func in ACCURACY.values():
        with pytest.raises(error, match=match):
            func(params["relevant"], params["recommended"], k=params["k"])


# ------------------------------------------------------------------------------------
# Beyond accuracy
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_beyond_accuracy_match_bruteforce(seed):
    rng = np.random.default_rng(seed)
    n_items, k = 25, 4
    _, rec, _ = _random_case(rng, n_items=n_items, k=k)
    rec[0, :k] = [0, 1, 2, 3]  # at least one non-padding list
    pop = rng.integers(0, 50, size=n_items)
    lists = [[i for i in row[:k] if i != -1] for row in rec.tolist()]
    lists_nonempty = [lst for lst in lists if lst]

    assert catalog_coverage(rec, n_items, k=k) == pytest.approx(
        len({i for lst in lists for i in lst}) / n_items
    )
    counts = [sum(lst.count(i) for lst in lists) for i in range(n_items)]
    assert gini_index(rec, n_items, k=k) == pytest.approx(_reference_gini(counts))
    arp = sum(sum(pop[i] for i in lst) / len(lst) for lst in lists_nonempty)
    assert average_popularity(rec, pop, k=k) == pytest.approx(arp / len(lists_nonempty))
    n_head = math.ceil(0.2 * n_items)
    ranked = sorted(range(n_items), key=lambda i: (-pop[i], i))
    head = set(ranked[:n_head])
    aplt = sum(
        sum(1 for i in lst if i not in head) / len(lst) for lst in lists_nonempty
    )
    assert long_tail_share(rec, pop, k=k) == pytest.approx(aplt / len(lists_nonempty))


def test_gini_known_answers():
    n_items = 4
    uniform = np.array([[0, 1], [2, 3]])
    assert gini_index(uniform, n_items, k=2) == pytest.approx(0.0)
    concentrated = np.array([[0], [0], [0]])
    # one item takes every slot: maximal Gini 1 - 1/n
    assert gini_index(concentrated, n_items, k=1) == pytest.approx(1 - 1 / n_items)


def test_long_tail_head_fraction_zero_counts_everything_as_tail():
    pop = np.array([9, 1, 1])
    assert long_tail_share(np.array([[0, 1]]), pop, k=2, head_fraction=0.0) == 1.0
    with pytest.raises(ValueError, match="head_fraction"):
        long_tail_share(np.array([[0, 1]]), pop, k=2, head_fraction=1.5)


def test_beyond_accuracy_validation():
    with pytest.raises(ValueError, match="only padding"):
        gini_index(np.array([[-1, -1]]), 3, k=2)
    with pytest.raises(ValueError, match="only padding"):
        average_popularity(np.array([[-1]]), np.array([1.0, 2.0]), k=1)
    with pytest.raises(ValueError, match="item id 5"):
        catalog_coverage(np.array([[5]]), 3, k=1)
    with pytest.raises(
        ValueError,
        match=r"'n_items' parameter of catalog_coverage must be an int in the range \[1",
    ):
        catalog_coverage(np.array([[0]]), 0, k=1)
    with pytest.raises(ValueError, match="item_popularity"):
        average_popularity(np.array([[0]]), np.array([[1.0]]), k=1)
    with pytest.raises(ValueError, match="NaN"):
        average_popularity(np.array([[0]]), np.array([np.nan]), k=1)
    with pytest.raises(ValueError, match="non-negative"):
        long_tail_share(np.array([[0]]), np.array([-1.0]), k=1)
    assert catalog_coverage(np.array([[-1]]), 3, k=1) == 0.0


# ------------------------------------------------------------------------------------
# Scorers with a tiny fake recommender
# ------------------------------------------------------------------------------------
class FakeRecommender(BaseEstimator):
    """Scores item i for user u with a fixed preference matrix; filters seen items."""

    def __init__(self, preferences=None, n_users=None, n_items=None):
        self.preferences = preferences
        self.n_users = n_users
        self.n_items = n_items

    def fit(self, X, y=None):
        X = np.asarray(X)[:, :2].astype(int)
        shape = np.shape(self.preferences)
        self.n_users_ = self.n_users or shape[0]
        self.n_items_ = self.n_items or shape[1]
        self.seen_ = sp.csr_matrix(
            (np.ones(len(X)), (X[:, 0], X[:, 1])), shape=(self.n_users_, self.n_items_)
        )
        self.item_popularity_ = np.bincount(X[:, 1], minlength=self.n_items_)
        self.calls_ = []
        return self

    def recommend(self, users, n=10, filter_already_liked_items=True):
        users = np.asarray(users)
        self.calls_.append(users.shape[0])
        scores = np.asarray(self.preferences, dtype=float)[users].copy()
        if filter_already_liked_items:
            scores[self.seen_[users].toarray() > 0] = -np.inf
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        return ids, np.take_along_axis(scores, ids, axis=1)


def _scorer_case(rng, n_users=15, n_items=20):
    prefs = rng.normal(size=(n_users, n_items))
    train = np.array(
        [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.3]
    )
    train_set = {tuple(p) for p in train.tolist()}
    test = np.array(
        [
            (u, i)
            for u in range(n_users)
            for i in range(n_items)
            if (u, i) not in train_set and rng.random() < 0.2
        ]
    )
    return prefs, train, test


@pytest.mark.parametrize("seed", range(3))
def test_scorer_matches_bruteforce_with_fake_recommender(seed):
    rng = np.random.default_rng(seed)
    prefs, train, test = _scorer_case(rng)
    est = FakeRecommender(prefs).fit(train)
    k = 5
    train_sets = {}
    for u, i in train.tolist():
        train_sets.setdefault(u, set()).add(i)
    rel_sets, rec_lists = [], []
    for u in sorted(set(test[:, 0].tolist())):
        rel_sets.append({i for uu, i in test.tolist() if uu == u})
        order = sorted(range(prefs.shape[1]), key=lambda i: (-prefs[u, i], i))
        rec_lists.append([i for i in order if i not in train_sets.get(u, set())][:k])
    expected = _reference_accuracy(rel_sets, rec_lists, k)
    for name in ACCURACY:
        scorer = ranking_scorer(name, k=k, batch_size=4)
        assert scorer(est, test) == pytest.approx(expected[name])
    # batching: 4 users per call
    assert max(est.calls_) <= 4
    counts = np.bincount([i for lst in rec_lists for i in lst], minlength=20)
    assert ranking_scorer("neg_gini", k=k)(est, test) == pytest.approx(
        -_reference_gini(counts.tolist())
    )
    assert ranking_scorer("coverage", k=k)(est, test) == pytest.approx(
        np.count_nonzero(counts) / 20
    )
    pop = est.item_popularity_
    arp = np.mean([np.mean([pop[i] for i in lst]) for lst in rec_lists])
    assert ranking_scorer("neg_average_popularity", k=k)(est, test) == pytest.approx(
        -arp
    )


def test_scorer_perfect_recommender_scores_one_and_accepts_dataframe():
    n_users, n_items = 6, 10
    test = np.array([(u, (u + 3) % n_items) for u in range(n_users)])
    prefs = np.zeros((n_users, n_items))
    prefs[test[:, 0], test[:, 1]] = 1.0
    train = np.array([(u, (u + 5) % n_items) for u in range(n_users)])
    est = FakeRecommender(prefs).fit(train)
    df = pd.DataFrame({"user": test[:, 0], "item": test[:, 1], "timestamp": 1})
    assert ranking_scorer("ndcg", k=3)(est, df) == pytest.approx(1.0)
    assert ranking_scorer("recall", k=1)(est, test) == pytest.approx(1.0)


def test_scorers_read_a_dataframe_by_column_name():
    # held-out pairs whose users and items differ, so a swap changes every value
    rng = np.random.default_rng(0)
    prefs, train, test = _scorer_case(rng)
    est = FakeRecommender(prefs).fit(train)
    ordered = pd.DataFrame({"user": test[:, 0], "item": test[:, 1]})
    swapped = ordered[["item", "user"]]
    assert list(swapped.columns) == ["item", "user"]
    for name in ("ndcg", "recall", "coverage", "neg_gini"):
        scorer = ranking_scorer(name, k=5)
        expected = scorer(est, test)
        assert scorer(est, ordered) == expected
        assert scorer(est, swapped) == expected
    # read by position, the swapped frame would give another number
    by_position = ranking_scorer("ndcg", k=5)(est, swapped.to_numpy())
    assert by_position != ranking_scorer("ndcg", k=5)(est, test)
    report = evaluate_ranking(est, swapped.assign(timestamp=1), k=5)
    assert report == evaluate_ranking(est, test, k=5)


def test_recognisable_column_names_are_read_by_name_contradictions_refused():
    prefs, train, test = _scorer_case(np.random.default_rng(1))
    est = FakeRecommender(prefs).fit(train)
    frame = pd.DataFrame({"item_id": test[:, 1], "user_id": test[:, 0]})
    expected = ranking_scorer("ndcg", k=5)(est, test)
    assert ranking_scorer("ndcg", k=5)(est, frame) == expected
    assert evaluate_ranking(est, frame, k=5) == evaluate_ranking(est, test, k=5)
    bad = pd.DataFrame({"item": test[:, 1], "rating": 1.0})
    with pytest.raises(ValueError, match=r"columns \['item', 'rating'\].*contradict"):
        ranking_scorer("ndcg", k=5)(est, bad)
    with pytest.raises(ValueError, match=r"columns \['item', 'rating'\].*contradict"):
        evaluate_ranking(est, bad, k=5)


def test_scorer_filters_training_items():
    # the best-scored item is a training item: it must not be recommended
    prefs = np.array([[5.0, 1.0, 0.0]])
    est = FakeRecommender(prefs).fit(np.array([[0, 0]]))
    assert ranking_scorer("recall", k=1)(est, np.array([[0, 1]])) == 1.0


def test_scorer_counts_unknown_users_and_items_as_misses_without_warning_noise():
    """Issue 29: "0 held-out user(s) and 242 held-out interaction(s)..." came
    once per fold and scorer of a search. Scorers count them silently; the
    report (evaluate_ranking) says it, once; nothing rankable at all warns."""
    prefs = np.eye(3)
    est = FakeRecommender(prefs).fit(np.array([[0, 1], [1, 2], [2, 0]]))
    # user 0 -> item 0 (a hit), user 7 unknown, item 9 unknown for user 1
    held_out = np.array([[0, 0], [7, 1], [1, 9]])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _fold in range(3):
            value = ranking_scorer("recall", k=1)(est, held_out)
            ranking_scorer(["ndcg", "recall"], k=1)(est, held_out)
    assert [str(w.message) for w in record] == []
    assert value == pytest.approx(1 / 3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        report = evaluate_ranking(est, held_out, k=1, metrics=["recall"])
        evaluate_ranking(est, held_out, k=1, metrics=["ndcg"])
    texts = [str(w.message) for w in record]
    assert len(texts) == 1, texts
    assert texts[0].startswith("1 held-out user(s) and 1 held-out interaction(s)")
    assert "drop them from X first" in texts[0]
    assert report["recall"] == pytest.approx(1 / 3)
    # ids of another encoding: nothing rankable, in a scorer too
    with pytest.warns(UserWarning, match="no held-out user of X was seen in fit"):
        assert ranking_scorer("recall", k=1)(est, held_out + 100) == 0.0


def test_evaluate_ranking_reports_all_metrics_consistently():
    rng = np.random.default_rng(3)
    prefs, train, test = _scorer_case(rng)
    est = FakeRecommender(prefs).fit(train)
    report = evaluate_ranking(est, test, k=5)
    assert set(report) == {
        "recall",
        "ndcg",
        "precision",
        "hit_rate",
        "map",
        "coverage",
        "gini",
        "average_popularity",
        "long_tail_share",
    }
    assert report["ndcg"] == pytest.approx(ranking_scorer("ndcg", k=5)(est, test))
    assert report["gini"] == pytest.approx(-ranking_scorer("neg_gini", k=5)(est, test))
    assert evaluate_ranking(est, test, k=5, metrics=["neg_gini"])["neg_gini"] < 0


def test_scorer_and_evaluate_validation():
    with pytest.raises(ValueError, match="use 'neg_gini'"):
        ranking_scorer("gini")
    with pytest.raises(ValueError, match="Unknown ranking metric"):
        ranking_scorer("auc")
    with pytest.raises(
        ValueError, match=r"'k' parameter of ranking_scorer must be an int in the range"
    ):
        ranking_scorer("ndcg", k=0)
    with pytest.raises(ValueError, match=r"'batch_size' parameter of ranking_scorer"):
        ranking_scorer("ndcg", batch_size=0)
    with pytest.raises(ValueError, match=r"'head_fraction' parameter of ranking_scorer"):
        ranking_scorer("long_tail_share", head_fraction=1.0)
    with pytest.raises(ValueError, match=r"'k' parameter of evaluate_ranking must be"):
        evaluate_ranking(object(), np.array([[0, 0]]), k=0)
    with pytest.raises(ValueError, match="metrics is empty"):
        evaluate_ranking(object(), np.array([[0, 0]]), metrics=())
    est = FakeRecommender(np.eye(3)).fit(np.array([[0, 1], [1, 2], [2, 0]]))
    scorer = ranking_scorer("ndcg", k=2)
    scorer.k = 0  # a scorer changed after construction is checked when called
    with pytest.raises(ValueError, match=r"'k' parameter of RankingScorer must be"):
        scorer(est, np.array([[0, 0]]))
    scorer.k = 2
    with pytest.raises(TypeError, match="lacks recommend"):
        scorer(object(), np.array([[0, 0]]))
    with pytest.raises(ValueError, match="empty"):
        scorer(est, np.zeros((0, 2), dtype=int))
    with pytest.raises(ValueError, match="negative"):
        scorer(est, np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="shape"):
        scorer(est, np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        scorer(est, np.array([[0.0, np.nan]]))


def test_scorer_is_picklable_and_works_in_grid_search():
    rng = np.random.default_rng(0)
    n_users, n_items = 12, 15
    prefs = rng.normal(size=(n_users, n_items))
    X = np.array(
        [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.4]
    )
    scorer = pickle.loads(pickle.dumps(ranking_scorer("ndcg", k=5)))
    search = GridSearchCV(
        FakeRecommender(prefs, n_users=n_users, n_items=n_items),
        {"preferences": [prefs, -prefs]},
        scoring={"ndcg": scorer, "cov": ranking_scorer("coverage", k=5)},
        refit="ndcg",
        cv=KFold(3, shuffle=True, random_state=0),
    )
    search.fit(X)
    scores = search.cv_results_["mean_test_ndcg"]
    assert np.all((scores >= 0) & (scores <= 1))
    assert hasattr(search, "best_estimator_")


def test_multi_metric_scorer_matches_single_scorers_and_grid_search():
    rng = np.random.default_rng(4)
    prefs, train, test = _scorer_case(rng)
    est = FakeRecommender(prefs).fit(train)
    names = ["ndcg", "recall", "neg_gini", "long_tail_share"]
    multi = ranking_scorer(names, k=5)
    values = multi(est, test)
    assert list(values) == names
    for name in names:
        assert values[name] == pytest.approx(ranking_scorer(name, k=5)(est, test))
    n_calls = len(est.calls_)
    multi(est, test)
    assert len(est.calls_) - n_calls == 1  # one ranking pass for all metrics
    with pytest.raises(ValueError, match="twice"):
        ranking_scorer(["ndcg", "ndcg"])
    with pytest.raises(ValueError, match="empty"):
        ranking_scorer([])
    with pytest.raises(ValueError, match="Unknown ranking metric"):
        ranking_scorer(["ndcg", "gini"])

    n_users, n_items = prefs.shape
    X = np.vstack([train, test])
    search = GridSearchCV(
        FakeRecommender(prefs, n_users=n_users, n_items=n_items),
        {"preferences": [prefs, -prefs]},
        scoring=ranking_scorer(["ndcg", "recall"], k=5),
        refit="ndcg",
        cv=KFold(3, shuffle=True, random_state=0),
    )
    search.fit(X)
    assert {"mean_test_ndcg", "mean_test_recall"} <= set(search.cv_results_)


# ------------------------------------------------------------------------------------
# MRR, several cut-offs in one pass, per-user arrays (issue 17)
# ------------------------------------------------------------------------------------
def _reference_mrr(rel_sets, rec_lists, k):
    """Hand loop: 1 / (position of the first hit) within the top k, else 0."""
    values = []
    for rel, rec in zip(rel_sets, rec_lists):
        if not rel:
            continue
        rr = 0.0
        for j, i in enumerate(list(rec)[:k]):
            if i != -1 and i in rel:
                rr = 1.0 / (j + 1)
                break
        values.append(rr)
    return sum(values) / len(values)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 5])
def test_mrr_matches_hand_loop(seed, k):
    from skcollapse.metrics import mrr_at_k

    rng = np.random.default_rng(seed)
    relevant, rec, rel_sets = _random_case(rng, k=k)
    expected = _reference_mrr(rel_sets, rec.tolist(), k)
    assert mrr_at_k(relevant, rec, k=k) == pytest.approx(expected, abs=1e-12)


def test_mrr_known_answers():
    from skcollapse.metrics import mrr_at_k

    rel = sp.csr_matrix(np.array([[0, 0, 1, 1], [1, 0, 0, 0], [0, 1, 0, 0]]))
    rec = np.array([[3, 2, 0], [2, 3, 0], [0, 2, 3]])
    # first hits at ranks 1, 3 and none: (1 + 1/3 + 0) / 3
    assert mrr_at_k(rel, rec, k=3) == pytest.approx((1 + 1 / 3) / 3)
    assert mrr_at_k(rel, rec, k=2) == pytest.approx(1 / 3)


def _heldout_reference(prefs, train, test, k):
    """Per evaluated user (sorted ids): relevant set and top-k list, by hand."""
    seen = {}
    for u, i in train.tolist():
        seen.setdefault(u, set()).add(i)
    users = sorted(set(test[:, 0].tolist()))
    rel_sets, rec_lists = [], []
    for u in users:
        rel_sets.append({i for uu, i in test.tolist() if uu == u})
        order = sorted(range(prefs.shape[1]), key=lambda i: (-prefs[u, i], i))
        rec_lists.append([i for i in order if i not in seen.get(u, set())][:k])
    return users, rel_sets, rec_lists


@pytest.mark.parametrize("seed", range(3))
def test_several_cutoffs_in_one_pass_match_single_calls(seed):
    rng = np.random.default_rng(seed)
    prefs, train, test = _scorer_case(rng)
    est = FakeRecommender(prefs).fit(train)
    names = ["recall", "ndcg", "mrr", "map", "coverage", "gini"]
    multi = evaluate_ranking(est, test, k=[2, 10, 5], metrics=names)
    assert est.calls_ == [len(np.unique(test[:, 0]))]  # one ranking pass
    assert set(multi) == {f"{n}@{k}" for n in names for k in (2, 5, 10)}
    for k in (2, 5, 10):
        single = evaluate_ranking(est, test, k=k, metrics=names)
        _users, rel_sets, rec_lists = _heldout_reference(prefs, train, test, k)
        assert multi[f"mrr@{k}"] == pytest.approx(
            _reference_mrr(rel_sets, rec_lists, k))
        for n in names:
            assert multi[f"{n}@{k}"] == pytest.approx(single[n], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_per_user_arrays_match_hand_loop_and_average_to_the_aggregate(seed):
    rng = np.random.default_rng(seed)
    prefs, train, test = _scorer_case(rng)
    est = FakeRecommender(prefs).fit(train)
    names = ["recall", "precision", "ndcg", "hit_rate", "map", "mrr"]
    per_user = evaluate_ranking(est, test, k=5, metrics=names, per_user=True)
    mean = evaluate_ranking(est, test, k=5, metrics=names)
    users, rel_sets, rec_lists = _heldout_reference(prefs, train, test, 5)
    np.testing.assert_array_equal(per_user["user"], users)
    for n in names:
        assert per_user[n].shape == (len(users),)
        assert per_user[n].mean() == pytest.approx(mean[n], abs=1e-12)
    for row, (rel, rec) in enumerate(zip(rel_sets, rec_lists)):
        ref = _reference_accuracy([rel], [rec], 5)
        for n in ("recall", "precision", "ndcg", "hit_rate", "map"):
            assert per_user[n][row] == pytest.approx(ref[n], abs=1e-12)
        assert per_user["mrr"][row] == pytest.approx(
            _reference_mrr([rel], [rec], 5), abs=1e-12)
    # default metrics with per_user: the accuracy ones; several cut-offs too
    both = evaluate_ranking(est, test, k=[3, 5], per_user=True)
    assert set(both) == {"user"} | {f"{n}@{k}" for n in names for k in (3, 5)}
    np.testing.assert_array_equal(both["ndcg@5"], per_user["ndcg"])


def test_per_user_ids_are_raw_ids_and_unknown_users_count_as_misses():
    prefs = np.arange(12, dtype=float).reshape(3, 4)
    est = FakeRecommender(prefs).fit(np.array([[0, 0], [1, 1], [2, 2]]))
    test = np.array([[2, 3], [0, 3], [7, 1]])  # user 7 unseen in fit
    with pytest.warns(UserWarning, match="1 held-out user"):
        res = evaluate_ranking(est, test, k=1, metrics=["hit_rate"], per_user=True)
    np.testing.assert_array_equal(res["user"], [0, 2, 7])
    np.testing.assert_array_equal(res["hit_rate"], [1.0, 1.0, 0.0])


def test_per_user_refuses_list_level_metrics_and_bad_cutoffs():
    rng = np.random.default_rng(0)
    prefs, train, test = _scorer_case(rng)
    est = FakeRecommender(prefs).fit(train)
    with pytest.raises(ValueError, match="no per-user value"):
        evaluate_ranking(est, test, metrics=["ndcg", "gini"], per_user=True)
    with pytest.raises(ValueError, match="k"):
        evaluate_ranking(est, test, k=[5, 0])
    with pytest.raises(ValueError, match="k"):
        evaluate_ranking(est, test, k=[])
    with pytest.raises(ValueError, match="twice"):
        evaluate_ranking(est, test, metrics=["ndcg", "ndcg"])
    assert ranking_scorer("mrr", k=5)(est, test) == pytest.approx(
        evaluate_ranking(est, test, k=5, metrics=["mrr"])["mrr"])
