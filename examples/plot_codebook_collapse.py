"""
=====================================
Codebook collapse in semantic IDs
=====================================

Generative retrieval (TIGER and its successors) gives every item a *semantic
ID*: a short tuple of codes from residual quantization of its embedding. Those
codebooks collapse the way embedding tables do: few codes used, many items
sharing one ID. This example quantizes a table with
:class:`~skcollapse.quantization.RQVAE` twice -- with randomly initialised
codebooks and every fix off (the VQ-VAE recipe) and with two of the fixes
switched on (k-means initialisation and dead-code restart) -- and compares
their codebooks with :func:`~skcollapse.quantization.codebook_metrics` and
:class:`~skcollapse.plotting.CodeUsageDisplay`.

The settings here show the effect on synthetic data. ``RQVAE()``'s own
defaults (dead-code restart on, random initialisation) were chosen on
held-out items (see :ref:`codebooks`).
"""

# %%
# Item embeddings
# ---------------
# :func:`~skcollapse.datasets.make_collapsed_embeddings` gives a 32-d table
# whose rows span 4 directions, the shape of real item tables that have
# themselves partly collapsed.
import os

import matplotlib.pyplot as plt
import numpy as np

from skcollapse.datasets import make_collapsed_embeddings
from skcollapse.plotting import CodeUsageDisplay
from skcollapse.quantization import (
    RQVAE,
    ResidualKMeans,
    codebook_metrics,
    collision_rate,
)

FAST = os.environ.get("SKCOLLAPSE_EXAMPLES_FAST") == "1"  # quick run in the tests
X = make_collapsed_embeddings(
    1000 if FAST else 2000, 32, effective_rank=4, noise=1e-2, random_state=0
)
X = X / X.std()

# %%
# Two RQ-VAEs: collapsed and fixed
# --------------------------------
# Same architecture, same seed, 3 levels of 64 codes. The first starts from
# small random codebooks and never restarts a code (``dead_code_threshold=0``;
# the default restarts them); the second starts from the k-means centres of
# each level's residuals (TIGER) and moves, after every epoch, the codes no
# item chose to random residuals of their level (dead-code restart).
common = {
    "n_levels": 3,
    "codebook_size": 64,
    "latent_dim": 16,
    "hidden_layer_sizes": (64,),
    "max_epochs": 10 if FAST else 20,
    "batch_size": 128,
    "random_state": 0,
}
models = {
    "random init": RQVAE(init="random", dead_code_threshold=0, **common),
    "k-means init + dead-code restart": RQVAE(
        init="kmeans", dead_code_threshold=1, **common
    ),
}
for name, model in models.items():
    model.fit(X)
    m = codebook_metrics(model, X)
    print(f"{name}:")
    print(f"  usage per level       {np.round(m['usage'], 2)}")
    print(f"  perplexity per level  {np.round(m['perplexity'], 1)}  (of 64)")
    print(f"  collision rate        {m['collision_rate']:.3f}"
          f"  (largest group {m['largest_collision_group']} items)")
    print(f"  relative recon. error {m['relative_reconstruction_error']:.3f}")

# %%
# Code usage per level
# --------------------
# Items per code, most used first, on a log scale. The collapsed codebooks put
# most items on a few codes and leave the rest unused (the drop to 0); the
# fixed ones are nearly flat.
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, (name, model) in zip(axes, models.items()):
    CodeUsageDisplay.from_estimator(model, X, name=name, ax=ax)
fig.tight_layout()

# %%
# Usage while training
# --------------------
# ``history_`` records the codebook metrics of every epoch, so collapse can be
# watched as it happens (here, the first level's usage).
fig, ax = plt.subplots(figsize=(5, 3.5))
for name, model in models.items():
    ax.plot([h["epoch"] for h in model.history_],
            [h["usage"][0] for h in model.history_], marker="o", label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("level-0 code usage")
ax.set_ylim(0, 1.05)
ax.legend()
fig.tight_layout()

# %%
# Unique IDs without training
# ---------------------------
# :class:`~skcollapse.quantization.ResidualKMeans` builds the same kind of codes
# with scikit-learn's k-means on each level's residuals. Items can still share
# a full ID; ``deduplicate=True`` appends TIGER's extra level that numbers them,
# so every item gets a tuple of its own.
rkm = ResidualKMeans(n_levels=2, codebook_size=16, random_state=0)
codes = rkm.fit_transform(X)
print(f"2 levels of 16 codes: collision rate {collision_rate(codes):.3f}")
codes = rkm.set_params(deduplicate=True).fit_transform(X)
print(f"with the deduplication level: {collision_rate(codes):.3f}, "
      f"IDs of length {codes.shape[1]}")
