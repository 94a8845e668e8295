"""
======================================
Multi-embedding vs. single embedding
======================================

Guo et al. (ICML 2024) observed that widening the embeddings of a CTR model
does not widen what they hold: the extra dimensions collapse, because every
field's table is shaped by its interactions with the other, often
low-cardinality, fields. Their fix, *multi-embedding*, learns ``M`` small
embedding sets, each with its own interaction module, instead of one wide set.

Here a DCNv2 model with one 40-d embedding per field is compared with the
same model using four sets of 10 dimensions (the same number of embedding
parameters), on click data with planted field interactions. The per-field
information abundance (IA) and the singular spectra show how much of the
embedding space each model uses.
"""

# %%
# Click data with a known structure
# ---------------------------------
# :func:`~skcollapse.datasets.make_ctr` mixes low-cardinality fields (2 to 10
# categories) with high-cardinality ones (100 to 1000) and plants pairwise
# interactions; ``proba`` is the true click probability, so the Bayes-optimal
# AUC is known.
import os

from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skcollapse.datasets import make_ctr

FAST = os.environ.get("SKCOLLAPSE_EXAMPLES_FAST") == "1"  # quick run in the tests
X, y, proba = make_ctr(4_000 if FAST else 12_000, n_fields=6, random_state=0)
X_train, X_test, y_train, y_test, _, p_test = train_test_split(
    X, y, proba, test_size=0.25, random_state=0
)
print(f"Bayes-optimal test AUC: {roc_auc_score(y_test, p_test):.4f}")

# %%
# One wide embedding vs. four narrow ones
# ---------------------------------------
# ``n_embedding_sets`` switches a CTR classifier to multi-embedding; nothing
# else changes in the estimator's API.
from skcollapse.recommenders import DCNv2Classifier

common = {
    "n_cross_layers": 2,
    "hidden_units": (64, 64),
    "max_epochs": 1 if FAST else 5,
    "batch_size": 512,
    "random_state": 0,
}
models = {
    "single embedding (1 x 40)": DCNv2Classifier(embedding_dim=40, **common),
    "multi-embedding (4 x 10)": DCNv2Classifier(
        embedding_dim=10, n_embedding_sets=4, **common
    ),
}
for name, model in models.items():
    model.fit(X_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    print(f"{name}: test AUC {auc:.4f}")

# %%
# Information abundance per field
# -------------------------------
# ``get_embeddings()`` returns one table per field (``"<field>/set<m>"`` for
# the sets of a multi-embedding model). To compare like with like, the four
# 10-d tables of a field are joined into one 40-d table before measuring.
import numpy as np

from skcollapse.metrics import information_abundance


def field_tables(model):
    tables = {}
    for name, table in model.get_embeddings().items():
        field = name.split("/set")[0]
        tables.setdefault(field, []).append(table)
    return {field: np.hstack(parts) for field, parts in tables.items()}


for name, model in models.items():
    ia = {f: information_abundance(t) for f, t in field_tables(model).items()}
    print(f"{name}: " + ", ".join(f"{f} {v:.1f}" for f, v in ia.items()))

# %%
# Side-by-side spectra
# --------------------
# :class:`~skcollapse.plotting.FieldSpectrumDisplay` draws one row per field
# (sorted by cardinality) with the normalised singular values as colours, and
# joins a field's embedding sets the same way (``sets="concat"``). Fields with
# only a few categories have few singular values: their rows end early.
import matplotlib.pyplot as plt

from skcollapse.plotting import FieldSpectrumDisplay

disp = FieldSpectrumDisplay.from_estimators(models)
plt.show()
