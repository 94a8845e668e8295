"""
==============
Running on GPU
==============

Every estimator takes ``device=``, as in skorch: ``device="cuda"`` trains,
ranks and measures on the GPU, and nothing else in the code changes. Collapse
metrics computed on a CUDA tensor stay on the GPU (no copy to the host). This
example uses the GPU when torch sees one and falls back to the CPU otherwise,
saying so.
"""

# %%
# Pick the device
# ---------------
import os
import time

import torch

FAST = os.environ.get("SKCOLLAPSE_EXAMPLES_FAST") == "1"  # quick run in the tests
if torch.cuda.is_available():
    device = "cuda"
    print(f"Using the GPU: {torch.cuda.get_device_name(0)}")
else:
    device = "cpu"
    print(
        "CUDA is not available (torch.cuda.is_available() is False): running on "
        "the CPU instead. The code below is the same on both."
    )

# %%
# Train on the device
# -------------------
from skcollapse.datasets import make_interactions
from skcollapse.recommenders import LightGCNRecommender

X = make_interactions(
    n_users=300 if FAST else 1000, n_items=200 if FAST else 600, random_state=0
)
settings = {
    "embedding_dim": 64,
    "n_layers": 3,
    "lr": 0.05,
    "init_std": 0.01,
    "batch_size": 2048,
    "max_epochs": 2 if FAST else 10,
    "random_state": 0,
}
start = time.perf_counter()
model = LightGCNRecommender(device=device, **settings).fit(X)
seconds = time.perf_counter() - start
print(f"fit on {device}: {seconds:.1f} s for {len(X)} interactions")

# %%
# Rank and measure without leaving the device
# -------------------------------------------
# ``recommend`` ranks all items on the model's device. ``get_embedding_tensors``
# returns the tables as torch tensors on that device, and the metrics of
# :mod:`skcollapse.metrics` accept them as they are.
from skcollapse.metrics import ErankScorer, effective_rank, information_abundance

item_ids, scores = model.recommend([0, 1, 2], n=5)
print("top-5 items of users 0-2:\n", item_ids)

tables = model.get_embedding_tensors()
print("item table lives on:", tables["item"].device)
print(
    f"item erank {effective_rank(tables['item']):.2f}, IA "
    f"{information_abundance(tables['item']):.2f}"
)
# scorers read the same tables through get_embeddings()
print(f"ErankScorer(table='item'): {ErankScorer(table='item')(model, X):.2f}")

# %%
# CPU and GPU give the same model
# -------------------------------
# With a GPU, train the same model on the CPU as well and compare the timing
# (the numbers agree up to floating-point rounding; the speed-up grows with the
# data and the embedding size).
if device == "cuda":
    start = time.perf_counter()
    cpu_model = LightGCNRecommender(device="cpu", **settings).fit(X)
    cpu_seconds = time.perf_counter() - start
    print(
        f"fit on cpu: {cpu_seconds:.1f} s ({cpu_seconds / seconds:.1f}x the GPU time)"
    )
    cpu_erank = effective_rank(cpu_model.get_embeddings()["item"])
    print(f"item erank on cpu {cpu_erank:.2f}")

# %%
# The command line too
# --------------------
# ``skcollapse demo --device cuda`` and ``skcollapse train --device cuda`` do the
# same. There, asking for CUDA on a machine without it is a one-line error
# rather than a silent fallback, because a long job should not quietly run on
# the CPU. (``main`` is the function behind the ``skcollapse`` command.)
if device == "cpu":
    from skcollapse.cli import main

    exit_code = main(["train", "--device", "cuda", "--quiet"])
    print(f"skcollapse train --device cuda exited with code {exit_code}")

# %%
# Plot the spectrum of the trained tables
# ---------------------------------------
import matplotlib.pyplot as plt

from skcollapse.plotting import SpectrumDisplay

SpectrumDisplay.from_estimator(model, name=f"LightGCN ({device})")
plt.show()
