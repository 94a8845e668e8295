"""A per-user validation hold-out for the ``train_split`` of skorch estimators."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.utils import check_random_state

from skcollapse.model_selection._split import _group_rank
from skcollapse.utils._sklearn_compat import (
    real_interval,
    validate_parameter_constraints,
)

__all__ = ["PerUserValidSplit"]


def _pairs_of(dataset):
    """The ``(n, 2)`` integer pairs behind a dataset (``.pairs``, or an array)."""
    pairs = getattr(dataset, "pairs", dataset)
    if hasattr(pairs, "detach"):
        pairs = pairs.detach().cpu().numpy()
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] < 2:
        raise TypeError(
            "PerUserValidSplit splits (user, item) pairs: give a CF estimator's "
            f"dataset or an (n, 2) array, got {type(dataset).__name__}."
        )
    return pairs


class PerUserValidSplit:
    """Hold out a share of every user's training pairs for validation.

    A ``train_split`` for the CF recommenders (skorch's protocol: called with the
    training dataset, returns ``(dataset_train, dataset_valid)``): for each user
    with ``n_u`` pairs, ``round(valid_size * n_u)`` of them, at most ``n_u - 1``
    (every user keeps a training pair), are drawn at random for validation. This
    is the per-user protocol of the papers' test splits, applied inside the
    training data, so epochs and hyper-parameters can be chosen without looking at
    the test set. skorch's own ``ValidSplit`` (a random share of all pairs) works
    too.

    Parameters
    ----------
    valid_size : float, default=0.1
        Share of each user's pairs held out, in ``(0, 1)``.
    random_state : int, RandomState or None, default=None
        Seeds the draw; an int gives the same split on every fit.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.model_selection import PerUserValidSplit
    >>> pairs = np.array([[0, i] for i in range(10)] + [[1, 0], [1, 1]])
    >>> train, valid = PerUserValidSplit(0.2, random_state=0)(pairs)
    >>> len(train), len(valid)
    (10, 2)
    """

    _parameter_constraints: ClassVar[dict] = {
        "valid_size": [real_interval(0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, valid_size=0.1, *, random_state=None):
        self.valid_size = valid_size
        self.random_state = random_state

    def __call__(self, dataset, y=None, groups=None):
        """Return ``(train, valid)`` as ``torch.utils.data.Subset`` of ``dataset``."""
        from torch.utils.data import Subset

        validate_parameter_constraints(
            self._parameter_constraints,
            {"valid_size": self.valid_size, "random_state": self.random_state},
            caller_name=type(self).__name__,
        )
        users = _pairs_of(dataset)[:, 0]
        rng = check_random_state(self.random_state)
        rank, size = _group_rank(users, rng.random_sample(users.shape[0]))
        n_valid = np.minimum(np.rint(self.valid_size * size), size - 1)
        valid = rank < n_valid
        return (
            Subset(dataset, np.flatnonzero(~valid).tolist()),
            Subset(dataset, np.flatnonzero(valid).tolist()),
        )

    def __repr__(self):
        return (
            f"{type(self).__name__}(valid_size={self.valid_size!r}, "
            f"random_state={self.random_state!r})"
        )
