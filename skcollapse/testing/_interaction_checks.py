"""Estimator checks for recommenders that learn from ``(user, item)`` pairs.

scikit-learn's generic checks fit on random continuous features; a recommender
takes ``(n, 2)`` interaction pairs and refuses floats, so those checks cannot
run on it. The checks here test the same properties on interaction pairs (fit
returns ``self`` and is idempotent, ``fit`` leaves the parameters alone,
``n_features_in_``, read-only memory maps, other integer dtypes and layouts,
order and subset invariance, pickling, bad input refused with a
``ValueError``) and the package's own contract (``recommend``,
``similar_items``). :data:`REPLACES` says which scikit-learn check each one
stands for, so ``tests/test_common.py`` runs these instead of listing the
generic checks as expected failures.

Each check is a function ``check(estimator)`` of an unfitted estimator (it fits
clones); :func:`interaction_checks` yields them, as scikit-learn's
``estimator_checks_generator`` does. Recommenders are found by discovery
(:func:`is_recommender`).
"""

from __future__ import annotations

import inspect
import pickle

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted

__all__ = ["REPLACES", "interaction_checks", "is_recommender"]

_METHODS = ("predict", "recommend", "similar_items", "score")


def is_recommender(cls_or_estimator):
    """Whether the class ranks items for users (it has ``recommend``)."""
    return callable(getattr(cls_or_estimator, "recommend", None))


def _pairs(n_users=30, n_items=20, random_state=0):
    from skcollapse.datasets import make_interactions

    X = make_interactions(n_users, n_items, random_state=random_state)
    return np.ascontiguousarray(X, dtype=np.int64)


def _fit(estimator, X):
    return clone(estimator).fit(X)


def _outputs(model, X):
    """What a fitted model answers: pair scores, top-5 lists, similar items."""
    users = np.unique(X[:, 0])
    items = np.unique(X[:, 1])
    ids, scores = model.recommend(users, n=5)
    sim_ids, sim_scores = model.similar_items(items[:5], n=3)
    return {
        "predict": np.asarray(model.predict(X), dtype=np.float64),
        "recommend_scores": np.asarray(scores, dtype=np.float64),
        "similar_scores": np.asarray(sim_scores, dtype=np.float64),
        "recommend_ids": ids,
        "similar_ids": sim_ids,
    }


def _assert_same_outputs(a, b, *, rtol=1e-5, atol=1e-6, what=""):
    for key in ("predict", "recommend_scores", "similar_scores"):
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol,
                                   err_msg=f"{what}: {key}")


def _assert_same_interactions(a, b):
    np.testing.assert_array_equal(a.user_ids_, b.user_ids_)
    np.testing.assert_array_equal(a.item_ids_, b.item_ids_)
    assert (a.user_items_ != b.user_items_).nnz == 0
    np.testing.assert_array_equal(a.item_popularity_, b.item_popularity_)


def _trains_a_net(model):
    """Torch estimators see the pairs in a seeded shuffled order."""
    return hasattr(model, "module_")


# ----------------------------------------------------------------- the checks
def check_fit_returns_self_and_takes_y(estimator):
    X = _pairs()
    est = clone(estimator)
    assert est.fit(X) is est
    assert est.fit(X, None) is est
    for method in ("fit", "score"):
        params = inspect.signature(getattr(est, method)).parameters
        assert "y" in params and params["y"].default is None, method
    # y is accepted and ignored (held-out pairs: a real score)
    part = clone(estimator).fit(X[20:], np.ones(len(X) - 20))
    assert part.score(X[:20], np.ones(20)) == part.score(X[:20])


def check_fit_idempotent(estimator):
    """Two fits of the same seeded estimator on the same pairs agree."""
    X = _pairs()
    est = clone(estimator)
    first = _outputs(est.fit(X), X)
    second = _outputs(est.fit(X), X)
    _assert_same_outputs(first, second, what="refit")
    _assert_same_outputs(first, _outputs(_fit(estimator, X), X), what="clone")


def check_fit_leaves_parameters_alone(estimator):
    """``fit`` changes no parameter and adds public attributes with a ``_`` only."""
    from joblib import hash as joblib_hash

    X = _pairs()
    est = clone(estimator)
    before = {k: joblib_hash(v) for k, v in est.get_params(deep=False).items()}
    public_before = {k for k in vars(est) if not k.startswith("_")}
    est.fit(X)
    after = {k: joblib_hash(v) for k, v in est.get_params(deep=False).items()}
    assert before == after, {k for k in before if before[k] != after.get(k)}
    added = {k for k in vars(est) if not k.startswith("_")} - public_before
    assert all(k.endswith("_") for k in added), sorted(
        k for k in added if not k.endswith("_")
    )


def check_dict_unchanged_by_methods(estimator):
    """``predict``/``recommend``/``similar_items``/``score`` leave ``__dict__``.

    A first call may fill a private cache (an attribute with a leading
    underscore, derived from the fitted state, new or ``None`` before); no public attribute changes, and
    once the caches are filled a call changes nothing at all.
    """
    X = _pairs()
    model = _fit(estimator, X)

    def call(method):
        if method == "recommend":
            return model.recommend(np.unique(X[:, 0])[:3], n=3)
        if method == "similar_items":
            return model.similar_items(np.unique(X[:, 1])[:3], n=3)
        return getattr(model, method)(X)

    for method in _METHODS:
        before = dict(vars(model))
        call(method)
        after = dict(vars(model))
        added = set(after) - set(before)
        assert set(before) <= set(after), (method, set(before) - set(after))
        assert all(k.startswith("_") for k in added), (method, added)
        changed = [
            k for k in before
            if after[k] is not before[k]
            and not (k.startswith("_") and before[k] is None)  # a cache filled
        ]
        assert not changed, (method, changed)
    for method in _METHODS:  # caches filled: nothing changes now
        before = dict(vars(model))
        call(method)
        assert set(vars(model)) == set(before), method
        assert not [k for k in before if vars(model)[k] is not before[k]], method


def check_n_features_in(estimator):
    X = _pairs()
    est = clone(estimator)
    assert not hasattr(est, "n_features_in_")
    est.fit(X)
    assert est.n_features_in_ == 2
    for bad in (np.c_[X, X[:, :1]], X[:, :1]):
        try:
            est.predict(bad)
        except ValueError:
            continue
        raise AssertionError(f"predict accepted X of shape {bad.shape}")


def check_is_fitted_before_and_after(estimator):
    X = _pairs()
    est = clone(estimator)
    for call in (
        lambda: check_is_fitted(est),
        lambda: est.predict(X),
        lambda: est.recommend([X[0, 0]]),
        lambda: est.similar_items([X[0, 1]]),
    ):
        try:
            call()
        except NotFittedError:
            continue
        raise AssertionError("an unfitted recommender answered")
    check_is_fitted(est.fit(X))


def check_readonly_memmap_pairs(estimator):
    """Read-only (memory-mapped) pairs train the same model; pickling it works."""
    from sklearn.utils._testing import create_memmap_backed_data

    X = _pairs()
    ro = create_memmap_backed_data(X)
    assert not ro.flags.writeable
    a, b = _fit(estimator, X), _fit(estimator, ro)
    _assert_same_outputs(_outputs(a, X), _outputs(b, ro), what="memmap")
    restored = pickle.loads(pickle.dumps(b))
    _assert_same_outputs(_outputs(b, X), _outputs(restored, X), what="pickle")


def check_pair_dtypes_and_layouts(estimator):
    """int32, uint32, object, Fortran-ordered and list pairs: the same model."""
    X = _pairs()
    reference = _outputs(_fit(estimator, X), X)
    for variant in (
        X.astype(np.int32),
        X.astype(np.uint32),
        X.astype(object),
        np.asfortranarray(X),
        X.tolist(),
    ):
        got = _outputs(_fit(estimator, variant), X)
        _assert_same_outputs(reference, got, what=type(variant).__name__)


def check_bad_pairs_raise_value_error(estimator):
    """Input that is not ``(n, 2)`` non-negative integer ids is refused."""
    X = _pairs()
    nan = X.astype(np.float64)
    nan[0, 0] = np.nan
    inf = X.astype(np.float64)
    inf[0, 1] = np.inf
    negative = X.copy()
    negative[0, 1] = -1
    bad = {
        "empty": np.empty((0, 2), dtype=np.int64),
        "nan": nan,
        "inf": inf,
        "complex": X.astype(np.complex128) + 1j,
        "one column": X[:, :1],
        "three columns": np.c_[X, X[:, :1]],
        "1-d": X[:, 0],
        "negative id": negative,
        "continuous": X + 0.5,
    }
    for what, value in bad.items():
        try:
            clone(estimator).fit(value)
        except ValueError:
            continue
        except TypeError:  # the data contract's answer to a non-id dtype
            if what == "complex":
                continue
            raise
        raise AssertionError(f"fit accepted {what} pairs")
    try:  # one pair is enough to fit, or is refused the same way
        clone(estimator).fit(X[:1])
    except ValueError:
        pass
    model = _fit(estimator, X)
    for what in ("1-d", "one column", "nan"):
        try:
            model.predict(bad[what])
        except ValueError:
            continue
        raise AssertionError(f"predict accepted {what} pairs")


def check_pair_order_invariance(estimator):
    """The order of the pairs changes no vocabulary or interaction state.

    A torch estimator shuffles the pairs with its seed, so another order gives
    other batches and another (equally good) model: only what is learned from
    the set of pairs is compared. An estimator without a net (counts, closed
    forms) must give the same scores too.
    """
    X = _pairs()
    order = np.random.default_rng(0).permutation(len(X))
    a, b = _fit(estimator, X), _fit(estimator, X[order])
    _assert_same_interactions(a, b)
    if not _trains_a_net(a):
        _assert_same_outputs(_outputs(a, X), _outputs(b, X), what="order")
    # predicting pairs in another order permutes the scores
    np.testing.assert_allclose(a.predict(X[order]), a.predict(X)[order],
                               rtol=1e-6, atol=1e-7)


def check_subset_invariance(estimator):
    """Answers for a subset of pairs, users or items are rows of the whole."""
    X = _pairs()
    model = _fit(estimator, X)
    whole = _outputs(model, X)
    half = len(X) // 2
    np.testing.assert_allclose(model.predict(X[:half]), whole["predict"][:half],
                               rtol=1e-6, atol=1e-7)
    users = np.unique(X[:, 0])
    ids, scores = model.recommend(users[:4], n=5)
    np.testing.assert_array_equal(ids, whole["recommend_ids"][:4])
    np.testing.assert_allclose(scores, whole["recommend_scores"][:4], rtol=1e-6)
    for u, row in zip(users[:3], whole["recommend_ids"]):
        np.testing.assert_array_equal(model.recommend(u, n=5)[0], row)
    items = np.unique(X[:, 1])
    ids, _ = model.similar_items(items[:2], n=3)
    np.testing.assert_array_equal(ids, whole["similar_ids"][:2])


def check_pickle_unfitted_and_fitted(estimator):
    X = _pairs()
    unfitted = pickle.loads(pickle.dumps(clone(estimator)))
    a = _outputs(unfitted.fit(X), X)
    _assert_same_outputs(a, _outputs(_fit(estimator, X), X), what="unfitted")
    model = _fit(estimator, X)
    restored = pickle.loads(pickle.dumps(model))
    b = _outputs(restored, X)
    _assert_same_outputs(_outputs(model, X), b, what="fitted")
    np.testing.assert_array_equal(a["recommend_ids"], b["recommend_ids"])
    # a pickled fitted model pickles again to the same answers
    again = pickle.loads(pickle.dumps(restored))
    _assert_same_outputs(b, _outputs(again, X), what="twice")


def check_pipeline_consistency(estimator):
    """A one-step Pipeline answers what the estimator answers."""
    X = _pairs()
    pipe = make_pipeline(clone(estimator)).fit(X)
    np.testing.assert_allclose(pipe.predict(X), _fit(estimator, X).predict(X),
                               rtol=1e-5, atol=1e-6)
    assert np.isfinite(pipe.score(X[:20]))


def check_recommend_contract(estimator):
    """``recommend``: shapes, best first, known ids, liked items filtered."""
    X = _pairs()
    model = _fit(estimator, X)
    users = np.unique(X[:, 0])[:5]
    n_items = len(model.item_ids_)
    ids, scores = model.recommend(users, n=4)
    assert ids.shape == scores.shape == (len(users), 4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    assert set(ids.ravel()) <= set(model.item_ids_) | {-1}
    liked = model.user_items_
    rows = model._vocabulary("user").encode(users, name="users")
    codes = model._vocabulary("item").encode(ids[ids >= 0], name="ids")
    flat = np.repeat(rows, 4)[(ids >= 0).ravel()]
    assert not np.asarray(liked[flat, codes]).any()
    one, one_scores = model.recommend(users[0], n=4)
    assert one.shape == one_scores.shape == (4,)
    all_ids, _ = model.recommend(users[:1], n=n_items,
                                 filter_already_liked_items=False)
    assert set(all_ids[0]) == set(model.item_ids_)
    try:
        model.recommend(users[:1], filter_items=[X[0, 1]], items=[X[1, 1]])
    except ValueError:
        pass
    else:
        raise AssertionError("contradictory filters were accepted")


def check_similar_items(estimator):
    """``similar_items``: shapes, best first, known ids, unknown id refused."""
    X = _pairs()
    model = _fit(estimator, X)
    items = model.item_ids_[:4]
    ids, scores = model.similar_items(items, n=3)
    assert ids.shape == scores.shape == (len(items), 3)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    assert set(ids.ravel()) <= set(model.item_ids_)
    one, one_scores = model.similar_items(items[1], n=3)
    np.testing.assert_array_equal(one, ids[1])
    assert one_scores.shape == (3,)
    only, _ = model.similar_items(items[:1], n=1, items=model.item_ids_[2:4])
    assert set(only[0]) <= set(model.item_ids_[2:4])
    try:
        model.similar_items([int(model.item_ids_.max()) + 100])
    except ValueError:
        pass
    else:
        raise AssertionError("an unknown item id was accepted")


#: each check here and the scikit-learn checks it stands for
REPLACES = {
    check_fit_returns_self_and_takes_y: (
        "check_estimators_fit_returns_self", "check_fit_score_takes_y",
    ),
    check_fit_idempotent: ("check_fit_idempotent",),
    check_fit_leaves_parameters_alone: (
        "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    ),
    check_dict_unchanged_by_methods: ("check_dict_unchanged",),
    check_n_features_in: ("check_n_features_in", "check_n_features_in_after_fitting"),
    check_is_fitted_before_and_after: ("check_fit_check_is_fitted",),
    check_readonly_memmap_pairs: (
        "check_readonly_memmap_input", "check_estimators_pickle(readonly_memmap=True)",
    ),
    check_pair_dtypes_and_layouts: (
        "check_dtype_object", "check_estimators_dtypes",
        "check_f_contiguous_array_estimator",
    ),
    check_bad_pairs_raise_value_error: (
        "check_complex_data", "check_estimators_empty_data_messages",
        "check_estimators_nan_inf", "check_fit2d_1sample", "check_fit2d_1feature",
        "check_fit2d_predict1d", "check_positive_only_tag_during_fit",
    ),
    check_pair_order_invariance: ("check_methods_sample_order_invariance",),
    check_subset_invariance: ("check_methods_subset_invariance",),
    check_pickle_unfitted_and_fitted: ("check_estimators_pickle",),
    check_pipeline_consistency: ("check_pipeline_consistency",),
    check_recommend_contract: (),
    check_similar_items: (),
}


def interaction_checks(estimator):
    """Yield ``(estimator, check)`` for every interaction-pair check.

    Parameters
    ----------
    estimator : recommender
        An unfitted estimator with a ``random_state`` set when it has one
        (the checks compare seeded fits).

    Yields
    ------
    estimator, check : the estimator and a callable ``check(estimator)``
    """
    for check in REPLACES:
        yield estimator, check
