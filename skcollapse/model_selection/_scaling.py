"""Scaling curves: one estimator over a list of sizes and seeds (Guo et al., 2024).

The grid is scikit-learn's :class:`~sklearn.model_selection.GridSearchCV`
(``refit=False``) over ``{param_name: param_range, "random_state": seeds}`` with
one predefined train/test split; early stopping is skorch's ``EpochScoring`` +
``EarlyStopping(load_best=True)`` on a predefined validation split
(``ValidSplit(PredefinedSplit(...))``). The scorer returns a dict (test and
validation metric, best epoch, per-field information abundance), so
``cv_results_`` already is the tidy table; this module only lays it out.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.utils import check_random_state
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.dataset import ValidSplit

from skcollapse.utils._docstrings import GUO_2024, fill_doc
from skcollapse.utils._sklearn_compat import (
    int_interval,
    real_interval,
    validate_params,
)

#: The paper's protocol (Guo et al., 2024, and their ``main.py``).
PAPER_PROTOCOL = {
    "split": (0.8, 0.1, 0.1),
    "optimizer": "Adam",
    "lr": 1e-3,
    "batch_size": 2048,
    "optimizer__weight_decay": 1e-6,
    "scoring": "roc_auc",
    "patience": 3,
    "base_embedding_dim": 10,
}


def _concat(parts):
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, axis=0, ignore_index=True)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


def _take(X, idx):
    if isinstance(X, pd.DataFrame):
        return X.iloc[idx].reset_index(drop=True)
    return np.asarray(X)[idx]


def _random_split(n, fractions, random_state):
    """Index arrays of a seeded random split of ``range(n)`` by ``fractions``."""
    fractions = np.asarray(fractions, dtype=np.float64)
    fractions = fractions / fractions.sum()
    perm = check_random_state(random_state).permutation(n)
    counts = np.floor(fractions * n).astype(int)
    counts[0] = n - counts[1:].sum()  # the train part takes the rounding
    if (counts == 0).any():
        raise ValueError(
            f"split={tuple(fractions)} leaves an empty part of {n} rows; pass more "
            "rows or validation_data/test_data."
        )
    bounds = np.cumsum(counts)[:-1]
    return np.split(perm, bounds)


class _ScalingScorer:
    """Scorer returning a dict: test and validation metric, epochs, field IA.

    The validation metric is recomputed on the validation rows with the model
    as it ends the fit, i.e. after ``EarlyStopping(load_best=True)`` restored
    the best epoch; ``best_epoch`` and ``n_epochs`` come from the history.
    """

    def __init__(self, scoring, X_valid, y_valid, ia, history_key):
        self.scoring = scoring
        self.X_valid = X_valid
        self.y_valid = y_valid
        self.ia = ia
        self.history_key = history_key

    def __call__(self, estimator, X, y):
        scorer = get_scorer(self.scoring)
        out = {
            "test": float(scorer(estimator, X, y)),
            "valid": float(scorer(estimator, self.X_valid, self.y_valid)),
        }
        history = getattr(estimator, "history", None)
        if history is not None and len(history):
            scores = np.asarray(history[:, self.history_key], dtype=np.float64)
            epochs = np.asarray(history[:, "epoch"])
            best = int(np.argmax(scores))
            out["best_valid_history"] = float(scores[best])
            out["best_epoch"] = int(epochs[best])
            out["n_epochs"] = len(history)
        module = getattr(estimator, "module_", None)
        if module is not None:
            out["n_parameters"] = int(sum(p.numel() for p in module.parameters()))
        if self.ia:
            from skcollapse.metrics import field_ia

            values = field_ia(estimator)
            names = getattr(estimator, "field_names_", None) or [
                f"x{f}" for f in range(values.size)
            ]
            out["ia_mean"] = float(values.mean())
            for name, v in zip(names, values):
                out[f"ia_{name}"] = float(v)
        return out


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "y": ["array-like"],
        "param_name": [str],
        "param_range": ["array-like"],
        "seeds": ["array-like", int_interval(1, None, closed="left")],
        "validation_data": [None, tuple],
        "test_data": [None, tuple],
        "split": [tuple, list],
        "split_random_state": ["random_state"],
        "scoring": [str],
        "patience": [int_interval(1, None, closed="left")],
        "max_epochs": [None, int_interval(1, None, closed="left")],
        "base": [None, real_interval(0, None, closed="neither")],
        "ia": ["boolean"],
        "n_jobs": [None, numbers.Integral],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(guo_2024=GUO_2024)
def scaling_curve(
    estimator,
    X,
    y,
    *,
    param_name,
    param_range,
    seeds=3,
    validation_data=None,
    test_data=None,
    split=(0.8, 0.1, 0.1),
    split_random_state=0,
    scoring="roc_auc",
    patience=3,
    max_epochs=None,
    base=None,
    ia=True,
    n_jobs=None,
    verbose=0,
):
    """Fit one estimator at several sizes and seeds, with early stopping; tidy table.

    The experiment of Guo et al. (ICML 2024): a CTR model at growing
    embedding size (single embedding, ``param_name="embedding_dim"``) or
    number of embedding sets (multi-embedding, ``"n_embedding_sets"``), each
    trained with early stopping on the validation metric, the best epoch
    restored, then scored once on the test set. Any estimator parameter can be
    scaled.

    The paper's protocol, the default here: a seeded random 8:1:1
    train/validation/test split (``split``, ``split_random_state``), Adam with
    lr 1e-3 and batch 2048 (the CTR classifiers' defaults; the paper adds
    ``optimizer__weight_decay=1e-6``), early stopping on validation AUC with
    patience 3, base embedding size 10 (see :data:`PAPER_PROTOCOL`). The split
    is the same for every seed, so the spread over seeds is the spread of the
    training runs (initialisation, batch order, dropout).

    Built on scikit-learn and skorch: a ``GridSearchCV(refit=False)`` over
    ``{param_name: param_range, "random_state": seeds}`` with one predefined
    train/test split, ``train_split=ValidSplit(PredefinedSplit(...))`` for the
    validation rows, and skorch's ``EpochScoring`` + ``EarlyStopping(
    load_best=True)`` appended to the estimator's callbacks.

    Parameters
    ----------
    estimator : skorch-based skcollapse estimator
        Typically a CTR classifier; it must accept ``random_state``,
        ``train_split``, ``callbacks`` and ``max_epochs``.
    X, y : array-like
        The data. Without ``validation_data``/``test_data`` they are split by
        ``split``; with both, they are the training set.
    param_name : str
        The parameter to scale, e.g. ``"embedding_dim"``.
    param_range : array-like
        Its values, smallest (the base) first.
    seeds : int or array-like of int, default=3
        ``random_state`` values of the fits; an int ``n`` means ``0..n-1``.
    validation_data, test_data : tuple (X, y) or None, default=None
        Fixed validation / test sets. With only ``test_data``, ``X`` is split
        into train and validation in the ratio ``split[0]:split[1]``.
    split : tuple of float, default=(0.8, 0.1, 0.1)
        Train/validation/test fractions of the random split.
    split_random_state : int, RandomState or None, default=0
        Seed of the split.
    scoring : str, default="roc_auc"
        A scikit-learn scorer name; early stopping monitors it on the
        validation rows (greater is better).
    patience : int, default=3
        Epochs without a strictly better validation score before stopping (as
        the reference code's ``EarlyStopper``); the best epoch is restored.
    max_epochs : int or None, default=None
        Upper bound on epochs; ``None`` keeps the estimator's ``max_epochs``.
    base : float or None, default=None
        The ``scale`` column is ``value / base``; ``None`` uses
        ``param_range[0]`` (so SE 10, 20, 40 and ME 1, 2, 4 both read 1x, 2x,
        4x). Non-numeric values get NaN.
    ia : bool, default=True
        Add the per-field information abundance of the fitted embedding tables
        (:func:`skcollapse.metrics.field_ia`, sets concatenated) as columns
        ``ia_<field>`` and their mean ``ia_mean``.
    n_jobs : int or None, default=None
        Fits run in parallel (``GridSearchCV``'s ``n_jobs``).
    verbose : int, default=0
        ``GridSearchCV``'s verbosity.

    Returns
    -------
    pandas.DataFrame
        One row per setting x seed, in the order of ``param_range`` then
        ``seeds``. Columns: ``param_name``, ``scale``, ``seed``,
        ``test_<scoring>``, ``valid_<scoring>`` (recomputed with the restored
        model), ``best_valid_<scoring>`` (the best epoch's score in the
        history; equal to ``valid_<scoring>`` when the best epoch was
        restored), ``best_epoch``, ``n_epochs``, ``n_parameters``,
        ``fit_time`` (seconds), and with ``ia=True`` ``ia_mean`` and
        ``ia_<field>`` per field.

    See Also
    --------
    skcollapse.plotting.ScalingDisplay : Plot the table, SE and ME side by side.
    sklearn.model_selection.validation_curve : The same idea for one score.

    References
    ----------
    {guo_2024}

    Examples
    --------
    >>> from skcollapse.datasets import make_ctr
    >>> from skcollapse.model_selection import scaling_curve
    >>> from skcollapse.recommenders import DNNClassifier
    >>> X, y, _ = make_ctr(1500, n_fields=4, random_state=0)
    >>> clf = DNNClassifier(hidden_units=(16,), batch_size=256)
    >>> table = scaling_curve(clf, X, y, param_name="embedding_dim",
    ...                       param_range=[2, 4], seeds=2, max_epochs=3)
    >>> table[["embedding_dim", "seed"]].values.tolist()
    [[2, 0], [2, 1], [4, 0], [4, 1]]
    >>> table["scale"].tolist()
    [1.0, 1.0, 2.0, 2.0]
    >>> sorted(c for c in table.columns if c.startswith("test_"))
    ['test_roc_auc']
    """
    values = list(param_range)
    if not values:
        raise ValueError("param_range is empty; give at least one value.")
    seeds = list(range(seeds)) if isinstance(seeds, numbers.Integral) else list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; give an int >= 1 or a list of seeds.")
    if (validation_data is None) != (test_data is None) and validation_data is not None:
        raise ValueError(
            "validation_data without test_data is ambiguous; pass test_data too, "
            "or neither (X is then split by split=)."
        )
    if len(split) != 3 or any(float(s) < 0 for s in split) or float(split[0]) <= 0:
        raise ValueError(
            f"split must be three non-negative fractions (train, validation, test) "
            f"with a positive train part, got {split!r}."
        )

    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)} entries.")
    if test_data is None:
        tr, va, te = _random_split(n, split, split_random_state)
        X_tr, y_tr = _take(X, tr), np.asarray(y)[tr]
        X_va, y_va = _take(X, va), np.asarray(y)[va]
        X_te, y_te = _take(X, te), np.asarray(y)[te]
    elif validation_data is None:
        tr, va = _random_split(n, split[:2], split_random_state)
        X_tr, y_tr = _take(X, tr), np.asarray(y)[tr]
        X_va, y_va = _take(X, va), np.asarray(y)[va]
        X_te, y_te = test_data[0], np.asarray(test_data[1])
    else:
        X_tr, y_tr = X, np.asarray(y)
        X_va, y_va = validation_data[0], np.asarray(validation_data[1])
        X_te, y_te = test_data[0], np.asarray(test_data[1])

    n_tr, n_va, n_te = len(X_tr), len(X_va), len(X_te)
    X_all = _concat([X_tr, X_va, X_te])
    y_all = np.concatenate([y_tr, y_va, y_te])
    trainval = np.arange(n_tr + n_va)
    test = np.arange(n_tr + n_va, n_tr + n_va + n_te)
    fold = np.r_[np.full(n_tr, -1), np.zeros(n_va, dtype=int)]

    key = f"valid_{scoring}"
    est = clone(estimator)
    callbacks = list(getattr(est, "callbacks", None) or [])
    callbacks += [
        (key, EpochScoring(scoring, lower_is_better=False, name=key)),
        ("scaling_early_stopping", EarlyStopping(
            monitor=key, lower_is_better=False, patience=patience, threshold=0.0,
            load_best=True)),
    ]
    params = {"train_split": ValidSplit(PredefinedSplit(fold)), "callbacks": callbacks}
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    est.set_params(**params)

    scorer = _ScalingScorer(scoring, X_va, y_va, ia, key)
    search = GridSearchCV(
        est,
        {param_name: values, "random_state": seeds},
        scoring=scorer,
        cv=[(trainval, test)],
        refit=False,
        n_jobs=n_jobs,
        verbose=verbose,
        error_score="raise",
    )
    search.fit(X_all, y_all)
    res = search.cv_results_

    base_value = values[0] if base is None else base
    rows = []
    score_keys = [k[len("split0_test_"):] for k in res if k.startswith("split0_test_")]
    for r, p in enumerate(res["params"]):
        value = p[param_name]
        try:
            scale = float(value) / float(base_value)
        except (TypeError, ValueError):
            scale = np.nan
        row = {param_name: value, "scale": scale, "seed": p["random_state"]}
        scores = {k: res[f"split0_test_{k}"][r] for k in score_keys}
        row[f"test_{scoring}"] = scores.pop("test")
        row[key] = scores.pop("valid")
        if "best_valid_history" in scores:
            row[f"best_valid_{scoring}"] = scores.pop("best_valid_history")
        for name in ("best_epoch", "n_epochs", "n_parameters"):
            if name in scores:
                row[name] = int(scores.pop(name))
        row["fit_time"] = float(res["mean_fit_time"][r])
        row.update(scores)
        rows.append(row)
    order = {v: i for i, v in enumerate(values)} if _hashable(values) else None
    table = pd.DataFrame(rows)
    if order is not None:
        table["_o"] = table[param_name].map(order)
        table = table.sort_values(["_o", "seed"], kind="stable").drop(columns="_o")
    return table.reset_index(drop=True)


def _hashable(values):
    try:
        return len({v: None for v in values}) == len(values)
    except TypeError:
        return False
