"""
=========================================
Depth and collapse in LightGCN (evidence)
=========================================

The survey behind skcollapse reads Peng et al. as saying that every LightGCN
layer is a low-pass filter, so more layers collapse the embedding tables
faster. ``benchmarks/bench_depth.py`` tests it: LightGCN with 1 to 4 layers,
everything else fixed (d = 64), three seeds, each seed's epoch chosen on a
validation hold-out carved from the training pairs, with
:class:`~skcollapse.callbacks.CollapseMonitor` recording the effective rank of
the propagated user and item tables after every epoch.

This example trains nothing: it draws the study from the result files committed
under ``benchmarks/results/depth/`` (so it runs from a clone of the repository,
not from an installed package). To measure it again::

    python benchmarks/bench_depth.py ../shared/eval-data \\
        --datasets ml-100k citeulike --layers 1 2 3 4 --seeds 0 1 2 --resume

The tables of accuracy and erank per depth, with a paired test over users
against one layer, are on the evidence page.
"""

# %%
# Read the result files
# ---------------------
# ``plot_depth`` is the benchmark's own drawing code; the figure is the one
# ``python benchmarks/plot_depth.py`` writes.
import sys
from pathlib import Path

import matplotlib.pyplot as plt

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
benchmarks = here.parent / "benchmarks"
sys.path.insert(0, str(benchmarks))

from plot_depth import depth_figure, read_depth

records = read_depth()
for r in records:
    print(f"{r['dataset']:>9}, {r['n_layers']} layer(s): {len(r['seeds'])} seeds")

# %%
# Erank per epoch, per depth
# --------------------------
# Thin lines are seeds, thick lines their mean, dots the epochs chosen on
# validation. Epoch 0 is the random initialisation, at nearly full rank.
fig = depth_figure(records, fig=plt.figure())
plt.show()

# %%
# What it shows
# -------------
# On both data sets the first epoch ends at a lower effective rank with every
# added layer: that is the low-pass filter at work. Training then spreads the
# tables again, so at the epoch chosen on validation the gap between depths is
# smaller than after the first epoch. Accuracy does not fall with the rank:
# deeper models are at least as good as one layer on the validation and test
# pairs (see the evidence page's tables for the paired tests). On CiteULike
# the 3- and 4-layer runs stopped at the 100-epoch cap while validation NDCG
# still rose: they are not converged.
