"""Ranking evaluation of a fitted recommender: the scorers and :func:`evaluate_ranking`.

The scorers (:func:`ranking_scorer`) and :func:`evaluate_ranking` only need an
estimator with ``recommend(users, n=k, filter_already_liked_items=True)`` returning
``(item_ids, scores)``, fitted ``n_users_`` / ``n_items_`` (and ``user_ids_`` /
``item_ids_`` when its ids are labels) and, for popularity metrics,
``item_popularity_``. They map held-out ids to the estimator's rows, rank every
held-out user once, and compute the metrics of :mod:`._ranking` and
:mod:`._beyond_accuracy` from that one ranking. This module imports no torch.
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from skcollapse.metrics._beyond_accuracy import (
    _check_popularity,
    average_popularity,
    gini_index,
    long_tail_share,
)
from skcollapse.metrics._ranking import (
    _HEAD_FRACTION,
    _POSITIVE_INT,
    _check_recommended,
    _check_relevant,
    _per_user_accuracy,
    _to_numpy,
)
from skcollapse.utils._interactions import IdVocabulary, check_interactions
from skcollapse.utils._params import check_stored_params
from skcollapse.utils._sklearn_compat import (
    int_sequence,
    validate_params,
)
from skcollapse.utils._warnings import warn_once

__all__ = ["RankingScorer", "evaluate_ranking", "ranking_scorer"]


# --------------------------------------------------------------------------------------
# Metric names
# --------------------------------------------------------------------------------------
_ACCURACY = ("recall", "precision", "ndcg", "hit_rate", "map", "mrr")
_BEYOND = ("coverage", "gini", "average_popularity", "long_tail_share")
_SCORER_NAMES = (
    *_ACCURACY,
    "coverage",
    "long_tail_share",
    "neg_gini",
    "neg_average_popularity",
)
_METRIC_NAMES = (*_ACCURACY, *_BEYOND, "neg_gini", "neg_average_popularity")


def _check_ranking_estimator(estimator, need_popularity):
    missing = [
        name
        for name in ("recommend", "n_users_", "n_items_")
        if not hasattr(estimator, name)
    ]
    if need_popularity and not hasattr(estimator, "item_popularity_"):
        missing.append("item_popularity_")
    if missing:
        raise TypeError(
            f"{type(estimator).__name__} cannot be scored by ranking: it lacks "
            f"{', '.join(missing)} (is it a fitted recommender?)."
        )


def _heldout_codes(vocab, ids):
    """Rows of held-out ids in the estimator's vocabulary; unseen ids get rows
    ``len(vocab), len(vocab) + 1, ...`` (one per distinct unseen id), so they
    count as relevant but can never be recommended."""
    codes = vocab.encode(ids, name="X", unknown="ignore")
    unseen = codes < 0
    if unseen.any():
        _, extra = np.unique(ids[unseen], return_inverse=True)
        codes[unseen] = len(vocab) + extra
    return codes, int(np.count_nonzero(unseen))


def _recommend_for_heldout(estimator, X, k, batch_size, report=True):
    """Build the relevant CSR and the (padded) top-k rows of the held-out users.

    Held-out ids are raw ids (labels): they are mapped to the estimator's rows
    through its ``user_ids_``/``item_ids_`` (rows are the ids themselves for a
    recommender without them), and ``recommend``'s raw item ids are mapped back.

    Held-out users and items unseen in fit, and pairs seen in fit, count as
    misses. ``report=True`` (:func:`evaluate_ranking`, a report read in absolute
    terms) says how many in one warning; scorers (``report=False``: every fold
    of a search, where unseen items are a normal part of the split and the rule
    is the same for every candidate) warn only when nothing at all could be
    ranked, which points at a mistake (ids of another encoding, training data).
    Each text is shown once per process (``warn_once``).
    """
    users, items = check_interactions(X, allow_extra_columns=True)
    n_users_fit = int(estimator.n_users_)
    n_items_fit = int(estimator.n_items_)
    uvocab = IdVocabulary.of_estimator(estimator, "user")
    ivocab = IdVocabulary.of_estimator(estimator, "item")
    ucodes, _ = _heldout_codes(uvocab, users)
    icodes, n_unknown_items = _heldout_codes(ivocab, items)
    eval_users, rows = np.unique(ucodes, return_inverse=True)
    n_cols = max(n_items_fit, int(icodes.max()) + 1)
    rel = sp.csr_matrix(
        (np.ones(ucodes.shape[0]), (rows, icodes)), shape=(eval_users.shape[0], n_cols)
    )
    rel = _check_relevant(rel)
    unknown_users = eval_users >= n_users_fit
    if unknown_users.all() or n_unknown_items == ucodes.shape[0]:
        role = "user" if unknown_users.all() else "item"
        warn_once(
            f"no held-out {role} of X was seen in fit, so nothing could be ranked "
            "and the score is 0. Are X's ids those the model was fitted on (the "
            "same ids, not 0-based codes of them or the other way round)? Compare "
            f"X's {role} column with the estimator's {role}_ids_.",
            UserWarning,
            stacklevel=4,
        )
    elif report and (unknown_users.any() or n_unknown_items):
        warn_once(
            f"{int(unknown_users.sum())} held-out user(s) and {n_unknown_items} "
            "held-out interaction(s) with an item unseen in fit are counted as "
            "misses (the model cannot recommend them). To leave them out instead, "
            "drop them from X first, e.g. X[np.isin(X[:, 1], model.item_ids_)].",
            UserWarning,
            stacklevel=4,
        )
    seen = getattr(estimator, "user_items_", None)
    known = (ucodes < n_users_fit) & (icodes < n_items_fit)
    if seen is not None and known.any():
        n_seen = int(np.asarray(seen.tocsr()[ucodes[known], icodes[known]]).sum())
        if n_seen == ucodes.shape[0]:
            warn_once(
                "every held-out pair of X was seen in fit: training items are "
                "excluded from the ranking, so nothing was left to rank and the "
                "score is 0. Score held-out pairs (e.g. X_test), not the training "
                "data.",
                UserWarning,
                stacklevel=4,
            )
        elif n_seen and report:
            warn_once(
                f"{n_seen} of {ucodes.shape[0]} held-out pairs were seen in fit: "
                "training items are excluded from the ranking, so they count as "
                "misses. Drop the pairs of X that are in the training data to "
                "score only new ones.",
                UserWarning,
                stacklevel=4,
            )
    rec = np.full((eval_users.shape[0], k), -1, dtype=np.int64)
    known_rows = np.flatnonzero(~unknown_users)
    n_req = min(k, n_items_fit)
    for start in range(0, known_rows.shape[0], batch_size):
        batch_rows = known_rows[start : start + batch_size]
        ids, _ = estimator.recommend(
            uvocab.ids[eval_users[batch_rows]], n=n_req, filter_already_liked_items=True
        )
        ids = np.asarray(_to_numpy(ids))
        if ids.ndim == 1:
            ids = ids.reshape(batch_rows.shape[0], -1)
        if ids.shape[0] != batch_rows.shape[0] or ids.shape[1] > k:
            raise ValueError(
                f"{type(estimator).__name__}.recommend returned ids of shape "
                f"{ids.shape} for {batch_rows.shape[0]} users and n={n_req}."
            )
        codes = ivocab.encode(ids.ravel(), name="recommended ids", unknown="ignore")
        rec[batch_rows, : ids.shape[1]] = codes.reshape(ids.shape)
    rec = _check_recommended(rec, k, n_items_fit, name="recommended ids")
    raw_users = np.empty(eval_users.shape[0], dtype=users.dtype)
    raw_users[rows] = users  # the held-out id of each evaluated row
    return rel, rec, n_items_fit, raw_users


def _rank_and_score(estimator, X, names, k, batch_size, head_fraction,
                    per_user=False, report=True):
    """Check the estimator, rank once, compute ``names`` (parameters validated).

    ``k`` is an int (keys are the names) or a sequence of ints (one ranking at
    the largest cut-off; keys ``"name@k"``). ``per_user`` returns the per-user
    arrays of the accuracy metrics and the evaluated ``"user"`` ids.
    """
    batch_size = int(batch_size)
    several = not isinstance(k, Integral)
    ks = sorted({int(v) for v in np.ravel(k)}) if several else [int(k)]
    bases = {name.removeprefix("neg_") for name in names}
    _check_ranking_estimator(
        estimator, bool(bases & {"average_popularity", "long_tail_share"})
    )
    rel, rec, n_items, users = _recommend_for_heldout(
        estimator, X, max(ks), batch_size, report=report
    )
    results = {}
    if per_user:
        results["user"] = users[np.diff(rel.indptr) > 0]
    for cut in ks:
        top = rec[:, :cut]
        if per_user:
            arrays = _per_user_accuracy(rel, top, cut)
            values = {name: arrays[name] for name in names}
        else:
            values = _compute_metrics(
                names, rel, top, cut, n_items, estimator, head_fraction
            )
        for name, value in values.items():
            results[f"{name}@{cut}" if several else name] = value
    return results


def _compute_metrics(names, rel, rec, k, n_items, estimator, head_fraction):
    results = {}
    per_user = None
    pop = None
    for name in names:
        base = name.removeprefix("neg_")
        sign = -1.0 if name.startswith("neg_") else 1.0
        if base in _ACCURACY:
            if per_user is None:
                per_user = _per_user_accuracy(rel, rec, k)
            value = float(per_user[base].mean())
        elif base == "coverage":
            value = float(np.unique(rec[rec >= 0]).shape[0] / n_items)
        elif base == "gini":
            value = gini_index(rec, n_items, k=k)
        else:
            if pop is None:
                pop = _check_popularity(estimator.item_popularity_)
                if pop.shape[0] != n_items:
                    raise ValueError(
                        f"item_popularity_ has {pop.shape[0]} entries but the "
                        f"estimator has n_items_={n_items}."
                    )
            if base == "average_popularity":
                value = average_popularity(rec, pop, k=k)
            else:
                value = long_tail_share(rec, pop, k=k, head_fraction=head_fraction)
        results[name] = sign * value
    return results


def _check_metric_name(metric, allowed):
    if not isinstance(metric, str) or metric not in allowed:
        hint = ""
        if metric in ("gini", "average_popularity"):
            hint = f" Scorers are greater-is-better: use 'neg_{metric}'."
        raise ValueError(
            f"Unknown ranking metric {metric!r}; choose one of {sorted(allowed)}.{hint}"
        )


def _check_metric_list(names, allowed, *, param, empty):
    """Check a non-empty list of distinct metric names; ``empty`` ends the message."""
    if not names:
        raise ValueError(f"{param} {empty}")
    for name in names:
        _check_metric_name(name, allowed)
    if len(set(names)) != len(names):
        raise ValueError(f"{param} lists a name twice: {list(names)}.")


def _scorer_metrics(metric):
    """Validate a scorer's metric: a name, or a list/tuple of names."""
    if isinstance(metric, (list, tuple)):
        _check_metric_list(
            metric, _SCORER_NAMES, param="metric",
            empty="is an empty list; name at least one metric.",
        )
        return tuple(metric)
    _check_metric_name(metric, _SCORER_NAMES)
    return (metric,)


class RankingScorer:
    """Callable ``(estimator, X, y=None)`` computing top-k ranking metrics.

    Build it with :func:`ranking_scorer`. Greater is better: ``neg_*`` metrics are
    sign-flipped. With one metric name it returns a float; with a list of names
    it returns a dict (scikit-learn's multi-metric scorer protocol) computed from
    one ranking pass.
    """

    _parameter_constraints: ClassVar[dict] = {
        "metric": [str, list, tuple],
        "k": _POSITIVE_INT,
        "batch_size": _POSITIVE_INT,
        "head_fraction": _HEAD_FRACTION,
    }

    def __init__(self, metric, *, k=20, batch_size=1024, head_fraction=0.2):
        self.metric = metric
        self.k = k
        self.batch_size = batch_size
        self.head_fraction = head_fraction

    def __call__(self, estimator, X, y=None):
        check_stored_params(self)
        names = _scorer_metrics(self.metric)
        values = _rank_and_score(
            estimator, X, names, self.k, self.batch_size, self.head_fraction,
            report=False,
        )
        if isinstance(self.metric, str):
            return values[self.metric]
        return values

    def __repr__(self):
        return (
            f"ranking_scorer({self.metric!r}, k={self.k}, batch_size={self.batch_size})"
        )


@validate_params(
    {**RankingScorer._parameter_constraints},
    prefer_skip_nested_validation=True,
)
def ranking_scorer(metric, *, k=20, batch_size=1024, head_fraction=0.2):
    """Scorer for ``GridSearchCV(scoring=...)`` from top-k ranking metrics.

    The scorer receives held-out ``(user, item)`` pairs ``X``, builds the relevant
    matrix, asks ``estimator.recommend(users, n=k, filter_already_liked_items=True)``
    for the top-``k`` items of every held-out user in batches (the estimator ranks
    all items on its own device), and computes the metric. Users or items unseen
    in fit count as misses, silently (in a cross-validation they are a normal
    part of each split, the same rule for every candidate); a warning comes only
    when no held-out user or item was seen at all, or every pair was (see
    :func:`evaluate_ranking` for a report that counts them).

    Parameters
    ----------
    metric : str or list of str
        One of ``"recall"``, ``"precision"``, ``"ndcg"``, ``"hit_rate"``, ``"map"``,
        ``"mrr"``, ``"coverage"``, ``"long_tail_share"``, ``"neg_gini"`` or
        ``"neg_average_popularity"`` (popularity-concentration metrics are negated so
        that greater is better). A list of names gives a multi-metric scorer that
        returns a dict from a single ranking pass: pass it as
        ``GridSearchCV(scoring=ranking_scorer(["ndcg", "recall"]), refit="ndcg")``.
    k : int, default=20
        Cut-off.
    batch_size : int, default=1024
        Users ranked per ``recommend`` call.
    head_fraction : float, default=0.2
        Head share of the catalogue for ``"long_tail_share"``.

    Returns
    -------
    scorer : RankingScorer
        Callable ``(estimator, X, y=None)`` returning a float (one metric) or a
        dict of floats (a list of metrics).

    Examples
    --------
    >>> scorer = ranking_scorer("ndcg", k=20)
    >>> scorer
    ranking_scorer('ndcg', k=20, batch_size=1024)
    """
    _scorer_metrics(metric)
    if isinstance(metric, list):
        metric = tuple(metric)
    return RankingScorer(
        metric, k=k, batch_size=batch_size, head_fraction=head_fraction
    )


@validate_params(
    {
        "estimator": "no_validation",  # checked for recommend/n_users_/n_items_
        "X": "no_validation",  # read by check_interactions
        "k": [*_POSITIVE_INT, int_sequence()],
        "metrics": [str, list, tuple, None],
        "batch_size": _POSITIVE_INT,
        "head_fraction": _HEAD_FRACTION,
        "per_user": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def evaluate_ranking(
    estimator,
    X,
    *,
    k=20,
    metrics=None,
    batch_size=1024,
    head_fraction=0.2,
    per_user=False,
):
    """Compute several top-k metrics from one ranking pass, for reports.

    Several cut-offs (``k=[10, 20, 50]``) share the one ranking (at the largest
    cut-off). ``per_user=True`` returns each evaluated user's value instead of
    the mean, for confidence intervals and paired tests between two models.

    Parameters
    ----------
    estimator : fitted recommender
        Has ``recommend``, ``n_users_``, ``n_items_`` (and ``item_popularity_`` for
        popularity metrics).
    X : array-like or DataFrame of shape (n_pairs, >= 2)
        Held-out ``(user, item)`` pairs; extra columns (e.g. a timestamp) are
        ignored. A DataFrame with ``"user"`` and ``"item"`` columns is read by
        name, any other one by position; names that contradict the position
        order (e.g. ``["item_id", "user_id"]``) are refused.
    k : int or sequence of int, default=20
        Cut-off, or several: a sequence keys the results ``"name@k"``
        (e.g. ``"ndcg@10"``), all from one ranking.
    metrics : str, sequence of str or None, default=None
        Names among ``"recall"``, ``"precision"``, ``"ndcg"``, ``"hit_rate"``,
        ``"map"``, ``"mrr"``, ``"coverage"``, ``"gini"``,
        ``"average_popularity"``, ``"long_tail_share"`` and the negated
        ``"neg_gini"``, ``"neg_average_popularity"``. Values are returned
        unsigned unless the ``neg_`` name is used. ``None``: recall, ndcg,
        precision, hit_rate, map, coverage, gini, average_popularity and
        long_tail_share (with ``per_user=True``: recall, ndcg, precision,
        hit_rate, map and mrr).
    batch_size : int, default=1024
        Users ranked per ``recommend`` call.
    head_fraction : float, default=0.2
        Head share of the catalogue for ``"long_tail_share"``.
    per_user : bool, default=False
        Return one value per evaluated user (the accuracy metrics only: the
        others describe the set of lists as a whole). Their means are the
        values ``per_user=False`` returns.

    Returns
    -------
    results : dict
        One float per requested metric (and cut-off), keyed by its name (or
        ``"name@k"``). With ``per_user=True``, float64 arrays of shape
        ``(n_evaluated_users,)`` instead, and ``"user"``: the held-out user
        ids they belong to (each user of ``X`` once, in sorted order of the
        model's rows; users unseen in fit last). Users unseen in fit and
        held-out items unseen in fit count as misses, as in the mean.

    Examples
    --------
    >>> from skcollapse.recommenders import PopularityRecommender
    >>> train = [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 2]]
    >>> test = [[0, 2], [1, 3], [2, 1]]
    >>> model = PopularityRecommender().fit(train + [[3, 2], [3, 3], [4, 2]])
    >>> model.item_popularity_  # items 2, 1, 3 are ranked in this order
    array([3, 2, 3, 1])
    >>> evaluate_ranking(model, test, k=[1, 2], metrics=["recall", "mrr"])
    {'recall@1': 0.666..., 'mrr@1': 0.666..., 'recall@2': 1.0, 'mrr@2': 0.833...}
    >>> res = evaluate_ranking(model, test, k=1, metrics=["recall"], per_user=True)
    >>> res["user"], res["recall"]
    (array([0, 1, 2]), array([1., 0., 1.]))

    A paired test between two models scored on the same ``X`` compares
    ``res_a["ndcg"]`` with ``res_b["ndcg"]`` user by user (e.g.
    ``scipy.stats.wilcoxon``), the users being ``res_a["user"]`` for both.
    """
    if metrics is None:
        metrics = _ACCURACY if per_user else (
            "recall", "ndcg", "precision", "hit_rate", "map", "coverage", "gini",
            "average_popularity", "long_tail_share",
        )
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    _check_metric_list(
        metrics, _METRIC_NAMES, param="metrics",
        empty="is empty; name at least one ranking metric.",
    )
    if per_user:
        other = [name for name in metrics if name not in _ACCURACY]
        if other:
            raise ValueError(
                f"per_user=True gives per-user values of the accuracy metrics "
                f"{list(_ACCURACY)}; {other} describe the recommendation lists as "
                "a whole and have no per-user value: drop them or use "
                "per_user=False."
            )
    return _rank_and_score(
        estimator, X, metrics, k, batch_size, head_fraction, per_user=per_user
    )
