"""
===================================
Watching erank during training
===================================

Collapse happens *while* a model trains. The
:class:`~skcollapse.callbacks.CollapseMonitor` callback records the effective
rank and information abundance of every embedding table after each epoch in
``net.history``, like any other skorch metric, and
:class:`~skcollapse.plotting.CollapseHistoryDisplay` draws them, one line per
run. Here matrix factorisation is compared with LightGCN at two depths: graph
propagation smooths the embeddings, and the deeper model loses directions
faster.
"""

# %%
# Train three models with the monitor on
# --------------------------------------
# ``record_initial=True`` also measures the tables before the first epoch, so
# the curves start from the random initialisation.
import os

from skcollapse.callbacks import CollapseMonitor
from skcollapse.datasets import make_interactions
from skcollapse.recommenders import LightGCNRecommender, MFRecommender

FAST = os.environ.get("SKCOLLAPSE_EXAMPLES_FAST") == "1"  # quick run in the tests
X = make_interactions(
    n_users=300 if FAST else 600, n_items=200 if FAST else 400, random_state=0
)
common = {
    "embedding_dim": 32,
    "lr": 0.05,
    "init_std": 0.01,
    "batch_size": 1024,
    "max_epochs": 3 if FAST else 15,
    "random_state": 0,
}
models = {
    "MF": MFRecommender(**common),
    "LightGCN, 1 layer": LightGCNRecommender(n_layers=1, **common),
    "LightGCN, 4 layers": LightGCNRecommender(n_layers=4, **common),
}
for name, model in models.items():
    model.set_params(callbacks=[CollapseMonitor(record_initial=True)])
    model.fit(X)
    last = model.history[-1]
    print(
        f"{name:<19} item erank {last['erank_item']:5.2f}  "
        f"item IA {last['ia_item']:5.2f}  after {len(model.history)} epochs"
    )

# %%
# The history is ordinary skorch history
# --------------------------------------
# Columns are ``erank_<table>`` and ``ia_<table>``; slice them as usual.
print("LightGCN, 4 layers, item erank per epoch:")
print([round(v, 2) for v in models["LightGCN, 4 layers"].history[:, "erank_item"]])

# %%
# Plot the curves
# ---------------
# Each run gets a colour, each table a line style; effective rank on the left,
# information abundance on the right.
import matplotlib.pyplot as plt

from skcollapse.plotting import CollapseHistoryDisplay

disp = CollapseHistoryDisplay.from_estimators(models)
disp.figure_.suptitle("Collapse during training")
plt.show()

# %%
# Stopping on collapse
# --------------------
# Because the metrics are history columns, skorch's own callbacks can act on
# them. Here training stops once the item effective rank has not improved
# (grown) for two epochs.
from skorch.callbacks import EarlyStopping

model = LightGCNRecommender(
    n_layers=4,
    **{**common, "max_epochs": 6 if FAST else 20},
    callbacks=[
        CollapseMonitor(),
        EarlyStopping(monitor="erank_item", lower_is_better=False, patience=2),
    ],
).fit(X)
print(f"stopped after {len(model.history)} epochs")
