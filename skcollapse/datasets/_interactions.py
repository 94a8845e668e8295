"""Synthetic implicit feedback with planted low-rank preferences and a long tail."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from skcollapse.utils._sklearn_compat import (
    int_interval,
    real_interval,
    validate_params,
)

__all__ = ["make_interactions"]


@validate_params(
    {
        "n_users": [int_interval(1, None, closed="left")],
        "n_items": [int_interval(2, None, closed="left")],
        "n_components": [int_interval(1, None, closed="left")],
        "density": [real_interval(0, 0.5, closed="right")],
        "signal_strength": [real_interval(0, None, closed="left")],
        "popularity_exponent": [real_interval(0, None, closed="left")],
        "min_interactions": [int_interval(1, None, closed="left")],
        "return_factors": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_interactions(
    n_users=1000,
    n_items=500,
    *,
    n_components=8,
    density=0.05,
    signal_strength=3.0,
    popularity_exponent=1.0,
    min_interactions=5,
    return_factors=False,
    random_state=None,
):
    """Generate implicit-feedback ``(user, item)`` pairs with a known structure.

    Each user ``u`` and item ``i`` get latent factors ``p_u, q_i ~ N(0, I_r)``;
    item ``i`` gets a Zipf popularity prior ``pi_i ∝ rank_i^(-popularity_exponent)``
    (ranks in random order of the item ids). A user picks items without
    replacement with probabilities proportional to
    ``exp(signal_strength * <p_u, q_i> / sqrt(r)) * pi_i`` (Gumbel top-k
    sampling), so the data hold a planted rank-``r`` preference structure that a
    learned model can recover on top of a long-tailed popularity that a
    popularity baseline exploits. User activity is long-tailed too (log-normal
    counts with mean ``density * n_items``, at least ``min_interactions``).

    Parameters
    ----------
    n_users : int, default=1000
        Number of users (all appear in the output).
    n_items : int, default=500
        Number of items.
    n_components : int, default=8
        Rank ``r`` of the planted preferences.
    density : float, default=0.05
        Mean fraction of the catalogue a user interacts with, in ``(0, 0.5]``.
    signal_strength : float, default=3.0
        Scale of the preference logits; ``0`` leaves only popularity.
    popularity_exponent : float, default=1.0
        Zipf exponent of the item popularity prior; ``0`` gives no skew.
    min_interactions : int, default=5
        Fewest interactions per user (capped at ``n_items // 2``).
    return_factors : bool, default=False
        Also return the planted user factors, item factors and popularity prior.
    random_state : int, RandomState instance or None, default=None
        Seed of all draws.

    Returns
    -------
    X : ndarray of shape (n_interactions, 2)
        ``int64`` (user, item) pairs, unique, ordered by user.
    user_factors : ndarray of shape (n_users, n_components)
        Only when ``return_factors=True``.
    item_factors : ndarray of shape (n_items, n_components)
        Only when ``return_factors=True``.
    item_prior : ndarray of shape (n_items,)
        Popularity prior (sums to one); only when ``return_factors=True``.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> X = make_interactions(100, 50, random_state=0)
    >>> X.shape[1], X.dtype
    (2, dtype('int64'))
    >>> bool(X[:, 0].max() == 99)
    True
    """
    rng = check_random_state(random_state)

    user_factors = rng.standard_normal((n_users, n_components))
    item_factors = rng.standard_normal((n_items, n_components))
    ranks = rng.permutation(n_items) + 1.0
    log_prior = -popularity_exponent * np.log(ranks)
    log_prior -= np.logaddexp.reduce(log_prior)
    item_prior = np.exp(log_prior)

    cap = max(1, n_items // 2)
    low = min(min_interactions, cap)
    mean = density * n_items
    sigma = 0.8
    counts = rng.lognormal(np.log(max(mean, 1.0)) - sigma**2 / 2, sigma, size=n_users)
    counts = np.clip(np.rint(counts), low, cap).astype(np.int64)

    scale = signal_strength / np.sqrt(n_components)
    block = max(1, 2**22 // n_items)
    users_out, items_out = [], []
    for start in range(0, n_users, block):
        stop = min(n_users, start + block)
        logits = scale * (user_factors[start:stop] @ item_factors.T) + log_prior
        keys = logits + rng.gumbel(size=logits.shape)
        top = int(counts[start:stop].max())
        part = np.argpartition(-keys, top - 1, axis=1)[:, :top]
        order = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1)
        chosen = np.take_along_axis(part, order, axis=1)
        keep = np.arange(top)[None, :] < counts[start:stop, None]
        rows = np.broadcast_to(np.arange(start, stop)[:, None], chosen.shape)
        users_out.append(rows[keep])
        items_out.append(chosen[keep])
    X = np.column_stack([np.concatenate(users_out), np.concatenate(items_out)])
    X = X.astype(np.int64, copy=False)
    if return_factors:
        return X, user_factors, item_factors, item_prior
    return X
