"""Synthetic click-through data with a known click model."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import expit
from sklearn.utils import check_random_state

from skcollapse.utils._sklearn_compat import (
    int_interval,
    real_interval,
    validate_parameter_constraints,
    validate_params,
)

_POSITIVE_INT = int_interval(1, None, closed="left")
_NON_NEGATIVE_REAL = real_interval(0, None, closed="left")


@validate_params(
    {
        "n_samples": [_POSITIVE_INT],
        "n_fields": [_POSITIVE_INT],
        "cardinalities": [None, _POSITIVE_INT, "array-like"],
        "n_interactions": [None, int_interval(0, None, closed="left")],
        "interaction_rank": [_POSITIVE_INT],
        "interaction_strength": [_NON_NEGATIVE_REAL],
        "first_order_strength": [_NON_NEGATIVE_REAL],
        "zipf_exponent": [_NON_NEGATIVE_REAL],
        "click_rate": [real_interval(0, 1, closed="neither")],
        "n_spurious_fields": [int_interval(0, None, closed="left")],
        "spurious_cardinality": [_POSITIVE_INT],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_ctr(
    n_samples=10000,
    *,
    n_fields=8,
    cardinalities=None,
    n_interactions=None,
    interaction_rank=2,
    interaction_strength=1.5,
    first_order_strength=0.5,
    zipf_exponent=1.0,
    click_rate=0.25,
    n_spurious_fields=0,
    spurious_cardinality=1000,
    random_state=None,
):
    """Generate click data from a known model with planted pairwise interactions.

    Each field ``f`` draws its category from a Zipf-like law over
    ``cardinalities[f]`` codes (frequent codes are shuffled among the ids). The
    click logit is::

        bias + sum_f w_f[x_f] + sum_{(i, j) in P} <A_ij[x_i], B_ij[x_j]>

    with first-order weights ``w_f ~ N(0, first_order_strength^2)`` and, for each
    planted field pair ``(i, j)``, rank-``interaction_rank`` factor tables ``A_ij``,
    ``B_ij`` scaled so that the pair term has standard deviation about
    ``interaction_strength``. The bias is solved so that the mean click
    probability equals ``click_rate``. Clicks are ``Bernoulli(sigmoid(logit))``,
    so ``roc_auc_score(y, proba)`` is the Bayes-optimal AUC of the sample and
    ``log_loss(y, proba)`` the Bayes log loss.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of impressions.
    n_fields : int, default=8
        Number of categorical fields (ignored when ``cardinalities`` is a
        sequence, whose length wins).
    cardinalities : int, sequence of int or None, default=None
        Categories per field. ``None`` mixes low-cardinality fields (2 to 10
        codes) and high-cardinality fields (100 to 1000 codes), alternating; an
        int gives every field that many codes.
    n_interactions : int or None, default=None
        Number of planted field pairs; ``None`` means ``max(1, n_fields // 2)``.
        Pairs are drawn without replacement among all ``n_fields*(n_fields-1)/2``.
    interaction_rank : int, default=2
        Rank of each planted pair interaction.
    interaction_strength : float, default=1.5
        Standard deviation of each pair's logit term.
    first_order_strength : float, default=0.5
        Standard deviation of the per-category first-order weights.
    zipf_exponent : float, default=1.0
        Category frequency ``∝ (rank + 1) ** -zipf_exponent``; 0 is uniform.
    click_rate : float, default=0.25
        Target mean click probability, in ``(0, 1)``.
    n_spurious_fields : int, default=0
        Extra fields appended after the others (the last columns of ``X``),
        each with ``spurious_cardinality`` Zipf-distributed codes and **no**
        effect on the click: high-cardinality noise a model can only overfit.
        With few planted pairs among many fields this is the setting in which
        Guo et al. (ICML 2024) see single-embedding models collapse as they
        grow (see ``benchmarks/bench_scaling.py``).
    spurious_cardinality : int, default=1000
        Codes per spurious field.
    random_state : int, RandomState instance or None, default=None
        Seed of everything.

    Returns
    -------
    X : ndarray of shape (n_samples, n_fields + n_spurious_fields), dtype int64
        Category codes, ``X[:, f]`` in ``[0, cardinalities[f])``; the
        spurious fields come last.
    y : ndarray of shape (n_samples,), dtype int64
        Clicks (0/1).
    proba : ndarray of shape (n_samples,), dtype float64
        True click probabilities.

    Examples
    --------
    >>> from sklearn.metrics import roc_auc_score
    >>> from skcollapse.datasets import make_ctr
    >>> X, y, proba = make_ctr(2000, n_fields=4, random_state=0)
    >>> X.shape, y.shape, proba.shape
    ((2000, 4), (2000,), (2000,))
    >>> bayes_auc = roc_auc_score(y, proba)
    """
    rng = check_random_state(random_state)
    if cardinalities is None:
        cards = [
            int(rng.randint(2, 11)) if f % 2 == 0 else int(rng.randint(100, 1001))
            for f in range(n_fields)
        ]
    elif isinstance(cardinalities, numbers.Integral):
        cards = [int(cardinalities)] * n_fields
    else:
        raw = list(cardinalities)
        if not raw:
            raise ValueError("cardinalities is empty; give one value per field.")
        # Every entry is an int >= 1, reported by its index.
        entries = {f"cardinalities[{i}]": c for i, c in enumerate(raw)}
        validate_parameter_constraints(
            {key: [_POSITIVE_INT] for key in entries}, entries, caller_name="make_ctr"
        )
        cards = [int(c) for c in raw]
        n_fields = len(cards)
    n_pairs_total = n_fields * (n_fields - 1) // 2
    if n_interactions is None:
        n_interactions = min(max(1, n_fields // 2), n_pairs_total)
    if n_interactions > n_pairs_total:
        raise ValueError(
            f"n_interactions={n_interactions} exceeds the {n_pairs_total} field pairs "
            f"of {n_fields} fields."
        )
    rank = interaction_rank
    strength = float(interaction_strength)
    first = float(first_order_strength)
    zipf = float(zipf_exponent)
    rate = float(click_rate)

    X = np.empty((n_samples, n_fields), dtype=np.int64)
    for f, card in enumerate(cards):
        weights = (np.arange(card) + 1.0) ** -zipf
        weights /= weights.sum()
        perm = rng.permutation(card)
        X[:, f] = perm[rng.choice(card, size=n_samples, p=weights)]

    logit = np.zeros(n_samples)
    for f, card in enumerate(cards):
        logit += rng.normal(0.0, first, size=card)[X[:, f]]

    rows, cols = np.triu_indices(n_fields, k=1)
    chosen = rng.choice(n_pairs_total, size=n_interactions, replace=False)
    for p in chosen:
        i, j = int(rows[p]), int(cols[p])
        # <a, b> of independent N(0, s^2) rank-r factors has variance r * s^4.
        scale = np.sqrt(strength / np.sqrt(rank))
        a = rng.normal(0.0, scale, size=(cards[i], rank))
        b = rng.normal(0.0, scale, size=(cards[j], rank))
        logit += np.einsum("nr,nr->n", a[X[:, i]], b[X[:, j]])

    bias = _solve_bias(logit, rate)
    proba = expit(logit + bias)
    y = (rng.uniform(size=n_samples) < proba).astype(np.int64)
    if n_spurious_fields:
        card = int(spurious_cardinality)
        weights = (np.arange(card) + 1.0) ** -zipf
        weights /= weights.sum()
        noise = np.empty((n_samples, n_spurious_fields), dtype=np.int64)
        for f in range(n_spurious_fields):
            noise[:, f] = rng.permutation(card)[rng.choice(card, size=n_samples,
                                                           p=weights)]
        X = np.hstack([X, noise])
    return X, y, proba


def _solve_bias(logit, rate, n_iter=100):
    """Bisection for ``b`` with ``mean(sigmoid(logit + b)) == rate``."""
    lo, hi = -50.0 - logit.max(), 50.0 - logit.min()
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        mean = np.mean(expit(logit + mid))
        if mean < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
