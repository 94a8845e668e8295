"""
=======================================================
Two-tower retrieval: user-side collapse and its fix
=======================================================

A two-tower model embeds users and items with two networks (here: an id
embedding plus categorical side features, then an MLP) and scores a pair by
the similarity of the two outputs. Trained with uniformly sampled negatives
and BPR, its embeddings collapse into a few directions; users of two-tower
libraries report that "the user embeddings have no discrimination". The usual
fix is a sampled softmax over the other items of the batch, with cosine scores
at a low temperature and the *logQ correction* (Yi et al., RecSys 2019), which
subtracts the log-frequency of each candidate so that popular items are not
over-penalised for appearing often as negatives.

:class:`~skcollapse.recommenders.TwoTowerRecommender` trains both; this example
compares their accuracy, their effective ranks, and their singular-value
spectra.
"""

# %%
# Interactions and side features keyed by id
# -------------------------------------------
# Side features are DataFrames indexed by the raw user / item ids of ``X``, one
# categorical column per field (a column of tuples is a multi-valued field).
# Here each user gets an activity bucket and a random "region", each item a
# popularity bucket and one or two random "tags".
import os

import numpy as np
import pandas as pd

from skcollapse.datasets import make_interactions
from skcollapse.metrics import effective_rank, evaluate_ranking
from skcollapse.model_selection import train_test_split_interactions
from skcollapse.recommenders import TwoTowerRecommender

FAST = os.environ.get("SKCOLLAPSE_EXAMPLES_FAST") == "1"  # quick run in the tests
X = make_interactions(n_users=500, n_items=300, density=0.05, random_state=0)
X_train, X_test = train_test_split_interactions(
    X, test_size=0.2, strategy="per_user", random_state=0
)
rng = np.random.default_rng(0)
users = np.unique(X[:, 0])
items = np.unique(X[:, 1])
activity = pd.Series(X_train[:, 0]).value_counts().reindex(users, fill_value=0)
popularity = pd.Series(X_train[:, 1]).value_counts().reindex(items, fill_value=0)
user_features = pd.DataFrame(
    {
        "activity": pd.qcut(activity.rank(method="first"), 4, labels=False),
        "region": rng.choice(["north", "south", "east", "west"], len(users)),
    },
    index=users,
)
tags = ["a", "b", "c", "d", "e"]
item_features = pd.DataFrame(
    {
        "popularity": pd.qcut(popularity.rank(method="first"), 5, labels=False),
        "tags": [tuple(rng.choice(tags, rng.integers(1, 3), replace=False))
                 for _ in items],
    },
    index=items,
)
print(user_features.head(3), item_features.head(3), sep="\n")

# %%
# Uniform negatives + BPR against in-batch softmax + logQ
# -------------------------------------------------------
# The tables go to the constructor (or to ``fit`` as
# ``fit(X, user_features=..., item_features=...)``).
common = {
    "user_features": user_features,
    "item_features": item_features,
    "embedding_dim": 32,
    "hidden_units": (32,),
    "batch_size": 256,
    "max_epochs": 6 if FAST else 25,
    "random_state": 0,
}
models = {
    "uniform + BPR": TwoTowerRecommender(
        loss="bpr", negative_sampling="independent", similarity="dot", **common
    ),
    "in-batch + logQ": TwoTowerRecommender(
        loss="softmax", negative_sampling="in-batch", logq_correction=True,
        similarity="cosine", temperature=0.1, **common
    ),
}
random_u = effective_rank(rng.standard_normal((len(users), 32)))
random_i = effective_rank(rng.standard_normal((len(items), 32)))
print(f"erank of a random Gaussian table: user {random_u:.1f}, item {random_i:.1f}")
for name, model in models.items():
    model.fit(X_train)
    res = evaluate_ranking(model, X_test, k=20, metrics=("recall", "ndcg"))
    emb = model.get_embeddings()
    print(
        f"{name:<16} Recall@20 {res['recall']:.3f}  NDCG@20 {res['ndcg']:.3f}  "
        f"erank user tower {effective_rank(emb['user']):5.1f}  "
        f"item tower {effective_rank(emb['item']):5.1f}"
    )

# %%
# The spectra of the towers
# -------------------------
# Singular values of each tower's output table, normalised by the largest: a
# collapsed table has a few large values and a fast-decaying tail.
import matplotlib.pyplot as plt

from skcollapse.plotting import SpectrumDisplay

fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, table in zip(axes, ["user", "item"]):
    SpectrumDisplay.from_embeddings(
        {name: m.get_embeddings()[table] for name, m in models.items()}, ax=ax
    )
    ax.set_title(f"{table} tower")
plt.show()

# %%
# Every table the towers read
# ---------------------------
# ``get_embeddings()`` also returns the id tables and one table per field
# (known categories, the out-of-vocabulary row left out), so the collapse
# scorers and :class:`~skcollapse.callbacks.CollapseMonitor` see them too.
emb = models["in-batch + logQ"].get_embeddings()
for name, table in emb.items():
    print(f"{name:<16} {table.shape}  erank {effective_rank(table):5.1f}")
