"""Seeded fits whose curves and tables must not change under refactoring.

``python tests/_invariance_cases.py`` records them (before a refactor) into
``tests/data/refactor_invariance.npz``; ``tests/test_refactor_invariance.py``
fits again and compares.  The tables are stored as fixed random projections
(``table @ v`` per row, float64) plus a SHA-256 of their bytes, to keep the file
small.
"""

import hashlib

import numpy as np

from skcollapse.datasets import make_interactions
from skcollapse.model_selection import PerUserValidSplit
from skcollapse.recommenders import (
    LightGCNRecommender,
    MFRecommender,
    TwoTowerRecommender,
)

_COMMON = {"max_epochs": 3, "random_state": 0}

CASES = {
    "mf": (MFRecommender, {}),
    "lightgcn": (LightGCNRecommender, {}),
    "two_tower": (TwoTowerRecommender, {}),
    "mf_logdet": (MFRecommender, {"regularizer": "logdet"}),
    "mf_shared_softmax": (
        MFRecommender, {"negative_sampling": "shared", "loss": "softmax"}
    ),
}


def data():
    return make_interactions(300, 200, random_state=0)


def fit_case(name):
    cls, params = CASES[name]
    model = cls(**_COMMON, **params, train_split=PerUserValidSplit(0.1, random_state=0))
    return model.fit(data())


def summary(model):
    """``{key: array}`` of a fitted model: history columns and table digests."""
    out = {}
    history = model.history
    for column in ("train_loss", "valid_loss", "valid_ndcg", "valid_recall"):
        out[f"history/{column}"] = np.asarray(
            history[:, column], dtype=np.float64
        )
    rng = np.random.default_rng(0)
    for table, values in sorted(model.get_embeddings().items()):
        values = np.asarray(values)
        v = rng.standard_normal(values.shape[1])
        out[f"table/{table}"] = values.astype(np.float64) @ v
        out[f"sha/{table}"] = np.array(
            hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()
        )
    return out


def record(path="tests/data/refactor_invariance.npz"):
    arrays = {}
    for name in CASES:
        for key, value in summary(fit_case(name)).items():
            arrays[f"{name}:{key}"] = value
    np.savez_compressed(path, **arrays)
    return arrays


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # as the tests run (one_torch_thread)
    arrays = record()
    print(len(arrays), "arrays")
