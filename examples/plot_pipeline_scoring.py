"""
=================================
Scoring embeddings in a Pipeline
=================================

:class:`~skcollapse.metrics.ErankScorer` and :class:`~skcollapse.metrics.IAScorer`
are scikit-learn estimators: ``fit`` computes the singular spectrum of the matrix
they see, ``transform`` passes it through unchanged and ``score`` returns the
metric. Put one at the end of a :class:`~sklearn.pipeline.Pipeline` and the
pipeline's ``score`` tells how collapsed the embeddings built by the earlier
steps are -- so :class:`~sklearn.model_selection.GridSearchCV` can rank those
steps by collapse without any extra code.
"""

# %%
# Two tables with a known amount of collapse
# ------------------------------------------
# :func:`~skcollapse.datasets.make_collapsed_embeddings` plants the number of
# directions the rows span. A healthy 64-d table uses all 64; the collapsed one
# only 4 (plus a little noise in the others).
import numpy as np

from skcollapse.datasets import make_collapsed_embeddings
from skcollapse.metrics import ErankScorer, IAScorer

healthy = make_collapsed_embeddings(2000, 64, effective_rank=64, random_state=0)
collapsed = make_collapsed_embeddings(
    2000, 64, effective_rank=4, noise=1e-2, random_state=1
)
for name, table in [("healthy", healthy), ("collapsed", collapsed)]:
    erank = ErankScorer().fit(table).effective_rank_
    ia = IAScorer().fit(table).information_abundance_
    print(f"{name:>9}: erank {erank:5.1f}   IA {ia:5.1f}   (64 dimensions)")

# %%
# A Pipeline that builds embeddings, probed at its end
# ----------------------------------------------------
# A classic baseline recommender ("PureSVD") embeds items by a truncated SVD of
# the item-user interaction matrix. Ending the pipeline with
# ``ErankScorer(normalize=True)`` makes ``pipe.score`` the fraction of the
# embedding dimensions the items really use (1.0 = no collapse).
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.pipeline import make_pipeline

from skcollapse.datasets import make_interactions

X = make_interactions(n_users=600, n_items=400, n_components=8, random_state=0)
item_user = sp.csr_matrix((np.ones(len(X)), (X[:, 1], X[:, 0])), shape=(400, 600))
pipe = make_pipeline(
    TruncatedSVD(n_components=32, random_state=0), ErankScorer(normalize=True)
)
pipe.fit(item_user)
print(f"PureSVD item embeddings use {pipe.score(item_user):.0%} of 32 dimensions")

# %%
# The probe passes its input through, so it also works in the middle of a
# pipeline, keeps feature names and supports ``set_output``:
svd_items = pipe[:-1].transform(item_user)
print(
    "probe output == SVD output:", np.array_equal(pipe.transform(item_user), svd_items)
)

# %%
# Grid search by collapse
# -----------------------
# Without ``scoring=``, :class:`~sklearn.model_selection.GridSearchCV` uses the
# pipeline's ``score``: here the normalised effective rank of held-out items
# projected on the learned subspace. Larger SVDs add directions that carry
# little signal, so the share of used dimensions drops.
from sklearn.model_selection import GridSearchCV

search = GridSearchCV(pipe, {"truncatedsvd__n_components": [4, 8, 16, 32]}, cv=3).fit(
    item_user
)
for n, s in zip(
    search.cv_results_["param_truncatedsvd__n_components"],
    search.cv_results_["mean_test_score"],
    strict=True,
):
    print(f"n_components={n:>2}: {s:.0%} of the dimensions used")
print("best:", search.best_params_)

# %%
# See the spectra
# ---------------
# :class:`~skcollapse.plotting.SpectrumDisplay` draws the normalised singular
# values the scores summarise: a collapsed table drops sharply after a few.
import matplotlib.pyplot as plt

from skcollapse.plotting import SpectrumDisplay

disp = SpectrumDisplay.from_embeddings(
    {"healthy": healthy, "collapsed": collapsed, "PureSVD items": svd_items}
)
disp.ax_.set_title("Normalised singular values")
plt.show()
