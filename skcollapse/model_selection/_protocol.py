"""Validation-selected, test-once evaluation of recommenders.

:class:`HoldoutProtocol` is the evaluation harness the benchmarks share. Every
choice -- a parameter of a grid, the number of epochs -- is made on a
validation hold-out carved from the *training* pairs; the test pairs are
ranked only after that choice is final, once per seed. The order is enforced:
:meth:`HoldoutProtocol.test` refuses to run before :meth:`HoldoutProtocol.select`,
``select`` refuses to run twice or after a test, and a seed is tested once.

:func:`paired_comparison` compares two tested settings the two ways a claim
needs: a paired test over users (Wilcoxon signed-rank on the per-user metric,
averaged over seeds) and the spread over seeds. A setting "beats" another only
when both agree.
"""

from __future__ import annotations

import math
import time
from numbers import Integral, Real

import numpy as np

__all__ = ["HoldoutProtocol", "paired_comparison"]

_MONITORS = ("ndcg", "recall")


def _factorized_pairs(X):
    import pandas as pd

    from skcollapse.utils._interactions import check_interactions

    users, items = check_interactions(X)
    codes = np.column_stack([pd.factorize(users)[0], pd.factorize(items)[0]])
    return users, items, codes.astype(np.int64)


def _ranked(est, X, **kwargs):
    """``evaluate_ranking`` without its report warning about held-out ids unseen
    in fit: the protocol counts them as misses (as the metric does) and records
    how many there were (:func:`_unseen_pairs`)."""
    import warnings

    from skcollapse.metrics import evaluate_ranking

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*held-out interaction\(s\)")
        return evaluate_ranking(est, X, **kwargs)


def _unseen_pairs(est, X):
    """Held-out pairs whose user or item the model never saw in fit."""
    from skcollapse.utils._interactions import check_interactions

    users, items = check_interactions(X)
    known_u = np.isin(users, np.asarray(est.user_ids_))
    known_i = np.isin(items, np.asarray(est.item_ids_))
    return int((~(known_u & known_i)).sum())


def _epoch_seconds(est):
    """Median seconds of an epoch's training batches (``train_s`` when a
    callback records it, else skorch's ``dur``, validation included)."""
    hist = est.history
    key = "train_s" if "train_s" in hist[-1] else "dur"
    return float(np.median([float(v) for v in hist[:, key]]))


def _table_collapse(est):
    """erank and information abundance of each embedding table of ``est``."""
    from skcollapse.metrics import collapse_metrics, get_embedding_tables

    if not hasattr(est, "get_embeddings"):
        return {}
    got = collapse_metrics(get_embedding_tables(est),
                           metrics=["effective_rank", "information_abundance"])
    return {
        name: {"erank": float(m["effective_rank"]),
               "ia": float(m["information_abundance"])}
        for name, m in got.items()
    }


def _collapse_history(est):
    """The per-epoch collapse columns a :class:`~skcollapse.callbacks.CollapseMonitor`
    wrote into ``est.history`` (``{}`` without one): ``epoch``, one list per
    column (``None`` where an epoch was not recorded) and, with
    ``record_initial=True``, the values before training under ``initial``."""
    from skcollapse.metrics import metric_of_column

    hist = getattr(est, "history", None)
    if not hist:
        return {}
    columns = sorted({k for row in hist for k in row if metric_of_column(k)})
    if not columns:
        return {}
    out = {"epoch": [int(row.get("epoch", i + 1)) for i, row in enumerate(hist)]}
    for column in columns:
        out[column] = [None if row.get(column) is None else float(row[column])
                       for row in hist]
    for callback in getattr(est, "callbacks_", None) or []:
        cb = callback[1] if isinstance(callback, tuple) else callback
        initial = getattr(cb, "initial_", None)
        if isinstance(initial, dict) and initial:
            out["initial"] = {k: float(v) for k, v in initial.items()}
            break
    return out


def _stopped_by_time(est):
    """Whether the protocol's time budget ended this model's training."""
    hist = est.history
    return bool(len(hist) and hist[-1].get("protocol_time_budget_stop", False))


def _time_budget(seconds):
    """A skorch callback ending training once ``seconds`` have passed.

    It acts at the end of an epoch, after early stopping has seen the epoch
    (it comes after it in the callbacks), and stops as skorch's
    ``EarlyStopping`` does (``KeyboardInterrupt``, caught by ``fit``); the best
    epoch's weights are then restored as usual.
    """
    from skorch.callbacks import Callback

    class _TimeBudget(Callback):
        def __init__(self, seconds):
            self.seconds = seconds

        def on_train_begin(self, net, **kwargs):
            self.start_ = time.perf_counter()

        def on_epoch_end(self, net, **kwargs):
            if time.perf_counter() - self.start_ > self.seconds:
                net.history.record("protocol_time_budget_stop", True)
                raise KeyboardInterrupt

    return _TimeBudget(seconds)


def _has_epochs(estimator):
    params = estimator.get_params(deep=False)
    return "train_split" in params and "max_epochs" in params


class HoldoutProtocol:
    """Choose on validation carved from training data, then score test once.

    Parameters
    ----------
    X_train : array-like of shape (n_pairs, 2)
        Training ``(user, item)`` pairs. The validation hold-out is carved
        from these (a ``valid_size`` share of every user's pairs,
        :class:`~skcollapse.model_selection.PerUserValidSplit`, the same pairs
        for every candidate and seed).
    X_test : array-like of shape (n_test_pairs, 2)
        Held-out pairs, ranked by :meth:`test` only, after :meth:`select`.
    valid_size : float, default=0.1
        Share of each user's training pairs held out for validation.
    k : int, default=20
        Cut-off of the ranking metrics.
    monitor : {"ndcg", "recall"}, default="ndcg"
        Validation metric (at ``k``) that chooses epochs and parameters.
    patience : int, default=5
        Epochs without a better validation metric before training stops
        (models trained by epochs; the best epoch's weights are kept).
    refit : bool, default=False
        After selection, train each seed's model on *all* training pairs (for
        the selected number of epochs) instead of on the training part with
        early stopping. Models without epochs (the baselines) are always
        refitted on all training pairs with the selected parameters.
    metrics : sequence of str, default=("recall", "ndcg", "coverage")
        Test metrics at ``k`` (:func:`~skcollapse.metrics.evaluate_ranking`);
        recall and NDCG are also kept per user for paired tests.
    random_state : int, default=0
        Seed of the validation carve.
    max_fit_s : float or None, default=None
        Wall-clock budget of one fit of a model trained by epochs: training
        stops at the end of the first epoch past it (early stopping has seen
        that epoch; the best epoch's weights are kept) and the candidate's
        record and the test result say ``stopped_by_time``: the model may not
        have converged. ``None``: no budget.

    Attributes
    ----------
    candidates_ : list of dict
        Every candidate tried by :meth:`select`: its parameters, validation
        curve, best epoch, best validation score and fit time.
    selection_ : dict
        The chosen candidate (``params``, ``epochs``, ``valid_score``).
    tested_ : dict of int to dict
        The test result of each seed tested.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.model_selection import (HoldoutProtocol,
    ...                                         train_test_split_interactions)
    >>> from skcollapse.recommenders import MFRecommender
    >>> X = make_interactions(120, 60, random_state=0)
    >>> X_train, X_test = train_test_split_interactions(X, random_state=0)
    >>> protocol = HoldoutProtocol(X_train, X_test, patience=2)
    >>> sel = protocol.select(MFRecommender(embedding_dim=8, max_epochs=4),
    ...                       [{"lr": 0.01}, {"lr": 0.05}])
    >>> sorted(sel)
    ['epochs', 'params', 'valid_score']
    >>> result = protocol.test(seed=0)
    >>> sorted(result["test"])
    ['coverage', 'ndcg', 'recall']
    """

    def __init__(
        self,
        X_train,
        X_test,
        *,
        valid_size=0.1,
        k=20,
        monitor="ndcg",
        patience=5,
        refit=False,
        metrics=("recall", "ndcg", "coverage"),
        random_state=0,
        max_fit_s=None,
    ):
        if not isinstance(valid_size, Real) or not 0 < valid_size < 1:
            raise ValueError(
                f"valid_size must be a float in (0, 1), got {valid_size!r}."
            )
        if monitor not in _MONITORS:
            raise ValueError(f"monitor must be one of {_MONITORS}, got {monitor!r}.")
        if max_fit_s is not None and (not isinstance(max_fit_s, Real)
                                      or not max_fit_s > 0):
            raise ValueError(
                f"max_fit_s must be a positive number or None, got {max_fit_s!r}."
            )
        for name, value in (("k", k), ("patience", patience)):
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        self._X_train = X_train
        self._X_test = X_test
        self.valid_size = valid_size
        self.k = int(k)
        self.monitor = monitor
        self.patience = int(patience)
        self.refit = bool(refit)
        self.metrics = tuple(metrics)
        self.random_state = random_state
        self.max_fit_s = max_fit_s
        self.candidates_ = []
        self.selection_ = None
        self.tested_ = {}
        self._estimator = None

    # ------------------------------------------------------------ validation
    def _splitter(self):
        from skcollapse.model_selection._valid_split import PerUserValidSplit

        return PerUserValidSplit(self.valid_size, random_state=self.random_state)

    def validation_mask(self):
        """Boolean mask of the training pairs that :meth:`select` trains on.

        The complement is the validation hold-out; it is the one a model's
        ``train_split`` carves (same splitter, same codes).
        """
        _, _, codes = _factorized_pairs(self._X_train)
        train, _valid = self._splitter()(codes)
        mask = np.zeros(codes.shape[0], dtype=bool)
        mask[np.asarray(train.indices)] = True
        return mask

    def _early_stopping(self):
        from skorch.callbacks import EarlyStopping

        return EarlyStopping(
            monitor=f"valid_{self.monitor}", lower_is_better=False,
            patience=self.patience, load_best=True,
        )

    def _with_validation(self, estimator, params, seed):
        from sklearn.base import clone

        est = clone(estimator).set_params(**params)
        callbacks = list(est.get_params(deep=False).get("callbacks") or [])
        callbacks.append(("protocol_early_stopping", self._early_stopping()))
        if self.max_fit_s is not None:  # after early stopping: it sees the epoch
            callbacks.append(("protocol_time_budget", _time_budget(self.max_fit_s)))
        return est.set_params(
            train_split=self._splitter(), callbacks=callbacks, random_state=seed,
        )

    def _fit_candidate(self, estimator, params, seed):
        from sklearn.base import clone

        start = time.perf_counter()
        if _has_epochs(estimator):
            est = self._with_validation(estimator, params, seed)
            est.fit(self._X_train)
            curve = [float(v) for v in est.history[:, f"valid_{self.monitor}"]]
            best = int(np.argmax(curve))
            return est, {
                "params": dict(params), "valid_curve": curve, "epochs": best + 1,
                "valid_score": curve[best], "fit_s": time.perf_counter() - start,
                "epoch_s": _epoch_seconds(est), "tables": _table_collapse(est),
                "epochs_run": len(est.history),
                "stopped_by_time": _stopped_by_time(est),
            }
        est = clone(estimator).set_params(**params)
        X = np.asarray(self._X_train)
        mask = self.validation_mask()
        est.fit(X[mask])
        score = _ranked(est, X[~mask], k=self.k, metrics=(self.monitor,))
        return est, {
            "params": dict(params), "valid_curve": None, "epochs": None,
            "valid_score": float(score[self.monitor]),
            "fit_s": time.perf_counter() - start,
        }

    def select(self, estimator, grid=None, *, seed=0):
        """Train every candidate of ``grid`` with validation; keep the best.

        Parameters
        ----------
        estimator : recommender
            Unfitted; cloned for each candidate. Models trained by epochs
            (skorch estimators with ``train_split`` and ``max_epochs``) get the
            protocol's ``train_split`` and early stopping on validation; the
            best epoch's weights are kept and its number recorded.
        grid : list of dict or None, default=None
            Parameter settings tried (``None``: the estimator as it is).
        seed : int, default=0
            ``random_state`` of the candidates' models.

        Returns
        -------
        selection : dict
            ``params``, ``epochs`` (``None`` for models without epochs) and
            ``valid_score`` of the chosen candidate (ties: the first).
        """
        if self.selection_ is not None:
            raise RuntimeError(
                "select() was already called on this protocol: the selection is "
                "final. Make a new HoldoutProtocol for another family of settings."
            )
        grid = [{}] if grid is None else list(grid)
        if not grid or not all(isinstance(p, dict) for p in grid):
            raise ValueError("grid must be a non-empty list of dicts of parameters.")
        # the chosen candidate's model is the seed's final model when it would be
        # trained again the same way (same seed, with validation, no refit);
        # only the best one so far is kept (an EASE model on a 41k-item
        # catalogue holds 6.7 GB)
        reuse = _has_epochs(estimator) and not self.refit
        at, kept = None, None
        for j, params in enumerate(grid):
            est, record = self._fit_candidate(estimator, params, seed)
            if not math.isfinite(record["valid_score"]):
                record["valid_score"] = -math.inf
            self.candidates_.append(record)
            if at is None or record["valid_score"] > self.candidates_[at]["valid_score"]:
                at, kept = j, (est if reuse else None)  # ties: the first
            est = None
        best = self.candidates_[at]
        self._reusable = (seed, kept) if reuse else None
        self._estimator = estimator
        self.selection_ = {
            "params": best["params"], "epochs": best["epochs"],
            "valid_score": best["valid_score"],
        }
        self._selected_fit_s = best["fit_s"]
        return dict(self.selection_)

    # ------------------------------------------------------------ test
    def _final_model(self, seed):
        """The seed's model of the selected setting: ``(est, curve, fit_s)``."""
        from sklearn.base import clone

        params = self.selection_["params"]
        reusable = getattr(self, "_reusable", None)
        if reusable is not None and reusable[0] == seed:
            # select() trained exactly this model (same seed, with validation)
            self._reusable = None
            est, fit_s = reusable[1], self._selected_fit_s
            return est, [float(v) for v in est.history[:, f"valid_{self.monitor}"]], fit_s
        start = time.perf_counter()
        curve = None
        if not _has_epochs(self._estimator):
            est = clone(self._estimator).set_params(**params).fit(self._X_train)
        elif self.refit:
            est = clone(self._estimator).set_params(
                **params, random_state=seed, train_split=None,
                max_epochs=int(self.selection_["epochs"]),
            ).fit(self._X_train)
        else:
            est = self._with_validation(self._estimator, params, seed).fit(self._X_train)
            curve = [float(v) for v in est.history[:, f"valid_{self.monitor}"]]
        return est, curve, time.perf_counter() - start

    def test(self, seed=0, *, legacy_filter=False, extra=None):
        """Train the selected setting with ``seed`` and rank the test pairs once.

        Parameters
        ----------
        seed : int, default=0
            ``random_state`` of the model. Each seed is tested once.
        legacy_filter : bool, default=False
            Also report the test metrics as skcollapse computed them before the
            fix of December 2026 (0.1.0.dev0) after
            a fit with validation: only the training part of ``X_train``
            filtered (``"test_legacy_filter"``). For measuring that bug only.
        extra : callable or None, default=None
            ``extra(estimator, X_test) -> dict``, called once on the seed's
            final model after the test metrics, for figures the protocol does
            not compute itself (e.g. recall per popularity bucket); its dict is
            stored under ``"extra"``.

        Returns
        -------
        result : dict
            ``seed``, ``params``, ``epochs``, ``valid_curve`` (this seed's, when
            it trained with validation), ``test`` (metric means),
            ``per_user`` (``"user"``, ``"recall"``, ``"ndcg"`` arrays),
            ``tables`` (erank and information abundance of each embedding
            table, if the model has them), ``collapse_history`` (only when the
            model has a :class:`~skcollapse.callbacks.CollapseMonitor`: its
            columns per epoch, ``epoch`` and, with ``record_initial=True``,
            ``initial``), ``fit_s``, ``epochs_run`` and ``stopped_by_time``
            (models trained by epochs) and
            ``unseen_test_pairs`` (test pairs whose user or item was not in
            ``X_train``: counted as misses, as in the metrics).
        """

        if self.selection_ is None:
            raise RuntimeError(
                "test() before select(): choose the setting on validation first."
            )
        if seed in self.tested_:
            raise RuntimeError(
                f"the test pairs were already scored for seed={seed}; a setting is "
                "tested once per seed."
            )
        est, curve, fit_s = self._final_model(seed)
        test = _ranked(est, self._X_test, k=self.k, metrics=self.metrics)
        per_user = _ranked(
            est, self._X_test, k=self.k, metrics=("recall", "ndcg"), per_user=True,
        )
        epochs = len(est.history) if _has_epochs(est) else None
        if curve is not None:
            epochs = int(np.argmax(curve)) + 1
        result = {
            "seed": seed,
            "params": self.selection_["params"],
            "epochs": epochs,
            "selected_epochs": self.selection_["epochs"],
            "valid_curve": curve,
            "test": {m: float(v) for m, v in test.items()},
            "per_user": per_user,
            "tables": _table_collapse(est) if _has_epochs(est) else {},
            "fit_s": fit_s,
            "epoch_s": _epoch_seconds(est) if _has_epochs(est) else None,
            "epochs_run": len(est.history) if _has_epochs(est) else None,
            "stopped_by_time": _stopped_by_time(est) if _has_epochs(est) else None,
            "unseen_test_pairs": _unseen_pairs(est, self._X_test),
        }
        history = _collapse_history(est) if _has_epochs(est) else {}
        if history:
            result["collapse_history"] = history
        if legacy_filter:
            result["test_legacy_filter"] = self._legacy_test(est)
        if extra is not None:
            result["extra"] = dict(extra(est, self._X_test))
        self.tested_[seed] = result
        return result

    def _legacy_test(self, est):
        import scipy.sparse as sp

        users, items, _ = _factorized_pairs(self._X_train)
        mask = self.validation_mask()
        u = est._vocabulary("user").encode(users[mask], name="X_train")
        i = est._vocabulary("item").encode(items[mask], name="X_train")
        R = sp.csr_matrix((np.ones(u.size, dtype=np.float32), (u, i)),
                          shape=est.user_items_.shape)
        R.sum_duplicates()
        R.data[:] = 1.0
        # (the ranking filter is cached per user_items_ object)
        full, est.user_items_ = est.user_items_, R.tocsr()
        try:
            got = _ranked(est, self._X_test, k=self.k, metrics=self.metrics)
        finally:
            est.user_items_ = full
        return {m: float(v) for m, v in got.items()}


def paired_comparison(a, b, *, metric="ndcg", alpha=0.05, n_boot=2000,
                      random_state=0):
    """Does setting ``a`` beat setting ``b``? A paired test and the seed spread.

    Parameters
    ----------
    a, b : list of dict
        Results of :meth:`HoldoutProtocol.test` (one per seed) of two settings
        on the same test pairs.
    metric : {"ndcg", "recall"}, default="ndcg"
    alpha : float, default=0.05
        Level of the Wilcoxon signed-rank test over users.
    n_boot : int, default=2000
        Bootstrap resamples of users for the interval of the mean difference.
    random_state : int, default=0

    Returns
    -------
    comparison : dict
        ``diff`` (mean of a minus mean of b, over seeds), ``seed_se`` (its
        standard error from the seeds' spread), ``p_value`` (Wilcoxon over
        users, each user's metric averaged over seeds), ``ci`` (95% bootstrap
        interval over users of the mean difference), ``users`` (paired users)
        and ``verdict``: ``"+"`` (a beats b) or ``"-"`` only when the paired
        test is significant *and* the difference exceeds twice the seeds'
        standard error, in the same direction; ``"~"`` otherwise.
    """
    from scipy.stats import wilcoxon

    def per_user(results):
        users = None
        values = []
        for r in results:
            pu = r["per_user"]
            order = np.argsort(np.asarray(pu["user"]), kind="stable")
            u = np.asarray(pu["user"])[order]
            if users is not None and not np.array_equal(u, users):
                raise ValueError("the results were not scored on the same test users.")
            users = u
            values.append(np.asarray(pu[metric], dtype=np.float64)[order])
        return users, np.mean(values, axis=0)

    if not a or not b:
        raise ValueError("a and b must each hold at least one test result.")
    ua, va = per_user(a)
    ub, vb = per_user(b)
    if not np.array_equal(ua, ub):
        raise ValueError("a and b were not scored on the same test users.")
    means_a = np.array([r["test"][metric] for r in a])
    means_b = np.array([r["test"][metric] for r in b])
    diff = float(means_a.mean() - means_b.mean())
    var = 0.0
    for m in (means_a, means_b):
        if m.size > 1:
            var += m.var(ddof=1) / m.size
    seed_se = math.sqrt(var) if a[1:] and b[1:] else math.nan
    d = va - vb
    p = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    rng = np.random.default_rng(random_state)
    boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    verdict = "~"
    if p < alpha and math.isfinite(seed_se) and abs(diff) > 2 * seed_se:
        if diff > 0 and d.mean() > 0:
            verdict = "+"
        elif diff < 0 and d.mean() < 0:
            verdict = "-"
    return {
        "diff": diff, "seed_se": seed_se, "p_value": p, "ci": (float(lo), float(hi)),
        "users": int(d.size), "verdict": verdict,
    }
