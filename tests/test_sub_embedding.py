"""Sub-embedding IA, field IA and embedding-set diversity against direct computations."""

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from skcollapse.datasets import make_ctr
from skcollapse.metrics import (
    embedding_set_diversity,
    field_ia,
    sub_embedding_ia,
)
from skcollapse.nn import NFwFM, XDeepFM
from skcollapse.recommenders import (
    DCNv2Classifier,
    DNNClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
)

TINY = {"hidden_units": (8,), "max_epochs": 1, "batch_size": 256, "random_state": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return make_ctr(600, n_fields=4, cardinalities=[5, 40, 7, 30], random_state=0)[:2]


def _ia(matrix):
    s = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
    return s.sum() / s.max() if s.max() > 0 else 0.0


def _tables(clf, m=0):
    n = len(clf.field_dims_)
    emb = clf.get_embeddings()
    return [emb[clf.embedding_names_[m * n + f]] for f in range(n)]


@pytest.mark.parametrize("n_sets", [1, 2])
def test_dcnv2_sub_embedding_ia_equals_cross_weight_computation(data, n_sets):
    X, y = data
    k = 3
    clf = DCNv2Classifier(embedding_dim=k, n_embedding_sets=n_sets, n_cross_layers=2,
                          **TINY).fit(X, y)
    n = X.shape[1]
    per_set = []
    for m in range(n_sets):
        w = clf.module_.set_blocks[m].cross.weights[0].detach().double().numpy()
        tables = _tables(clf, m)
        ref = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                # field j of the first cross layer's output gets W[j-block, i-block] e_i
                block = w[j * k:(j + 1) * k, i * k:(i + 1) * k]
                ref[i, j] = _ia(tables[i].astype(np.float64) @ block.T)
        per_set.append(ref)
        np.testing.assert_allclose(sub_embedding_ia(clf, embedding_set=m), ref,
                                   rtol=1e-8)
    np.testing.assert_allclose(sub_embedding_ia(clf), np.mean(per_set, axis=0),
                               rtol=1e-8)
    # the rows vary with j: W_{j,i} are full K x K blocks
    assert np.ptp(per_set[0], axis=1).max() > 1e-3


def test_concatenated_sets_equal_the_side_by_side_sub_embeddings(data):
    """``sets="concat"``: the IA of ``[E^(1)_i W1_ji^T, E^(2)_i W2_ji^T]``, built
    explicitly from the tables and the cross weights (equal width to an SE
    model of size 2K); with one set it is the single set's matrix."""
    X, y = data
    k, n = 3, X.shape[1]
    clf = DCNv2Classifier(embedding_dim=k, n_embedding_sets=2, n_cross_layers=1,
                          **TINY).fit(X, y)
    ws = [b.cross.weights[0].detach().double().numpy()
          for b in clf.module_.set_blocks]
    ref = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            parts = [_tables(clf, m)[i].astype(np.float64)
                     @ ws[m][j * k:(j + 1) * k, i * k:(i + 1) * k].T for m in (0, 1)]
            ref[i, j] = _ia(np.hstack(parts))
    got = sub_embedding_ia(clf, sets="concat")
    np.testing.assert_allclose(got, ref, rtol=1e-8)
    # side by side it exceeds the per-set mean (two sets' directions add up)
    assert (got > sub_embedding_ia(clf, sets="mean")).all()
    one = DCNv2Classifier(embedding_dim=k, n_cross_layers=1, **TINY).fit(X, y)
    np.testing.assert_allclose(sub_embedding_ia(one, sets="concat"),
                               sub_embedding_ia(one), rtol=1e-12)
    with pytest.raises(ValueError, match="sets"):
        sub_embedding_ia(clf, sets="sum")


@pytest.mark.parametrize(
    "cls, kw",
    [(NFwFMClassifier, {"embedding_dim": 3}),
     (IPNNClassifier, {"embedding_dim": 3}),
     (xDeepFMClassifier, {"embedding_dim": 3, "cin_layer_sizes": (4,)})],
)
def test_scalar_pair_maps_give_the_field_ia(data, cls, kw):
    """IA is scale-invariant: a scalar (or c ⊗ I) pair map leaves IA(E_i)."""
    X, y = data
    clf = cls(**kw, **TINY).fit(X, y)
    mat = sub_embedding_ia(clf)
    own = np.array([_ia(t) for t in _tables(clf)])
    off = ~np.eye(X.shape[1], dtype=bool)
    np.testing.assert_allclose(mat[off], np.broadcast_to(own[:, None], mat.shape)[off],
                               rtol=1e-8)
    if cls is IPNNClassifier:  # no self product
        np.testing.assert_array_equal(np.diag(mat), 0.0)


def test_nfwfm_zero_pair_weight_gives_zero_ia(data):
    X, y = data
    clf = NFwFMClassifier(embedding_dim=3, **TINY).fit(X, y)
    with torch.no_grad():
        w = clf.module_.set_blocks[0][0].weight
        w[0, 2] = 0.0
        w[2, 0] = 0.0
    mat = sub_embedding_ia(clf)
    assert mat[0, 2] == 0.0 and mat[2, 0] == 0.0 and mat[0, 1] > 0


def test_sub_embedding_maps_reproduce_the_interactions():
    """The maps T[i, j] are the interaction: NFwFM pooling and CIN's first layer."""
    torch.manual_seed(0)
    dims, k = [3, 4, 5], 2
    e = torch.randn(6, 3, k, dtype=torch.float64)
    model = NFwFM(dims, k, 1, hidden_units=(4,)).double()
    t = model.sub_embedding_maps(0)
    pooled = sum((e[:, i] @ t[i, j].T) * e[:, j] for i in range(3) for j in range(i, 3))
    torch.testing.assert_close(model.set_blocks[0][0](e), pooled)
    xdfm = XDeepFM(dims, k, 1, cin_layer_sizes=(4,), hidden_units=(4,)).double()
    t = xdfm.sub_embedding_maps(0)  # (i, j, H*K, K)
    conv = xdfm.cins[0].convs[0]
    pre = sum((e[:, i] @ t[i, j].T).view(6, 4, k) * e[:, j, None]
              for i in range(3) for j in range(i, 3))
    z = (e.unsqueeze(2) * e.unsqueeze(1)).reshape(6, 9, k)
    torch.testing.assert_close(conv(z), pre + conv.bias[None, :, None])


def test_models_without_pair_structure_are_refused(data):
    X, y = data
    clf = DNNClassifier(embedding_dim=3, **TINY).fit(X, y)
    with pytest.raises(TypeError, match="no per-field-pair"):
        sub_embedding_ia(clf)
    with pytest.raises(ValueError, match="embedding_set"):
        sub_embedding_ia(DCNv2Classifier(embedding_dim=3, n_cross_layers=1, **TINY)
                         .fit(X, y), embedding_set=1)


def test_field_ia_concatenates_or_averages_sets(data):
    X, y = data
    clf = DNNClassifier(embedding_dim=3, n_embedding_sets=2, **TINY).fit(X, y)
    t0, t1 = _tables(clf, 0), _tables(clf, 1)
    concat = [_ia(np.hstack([a, b])) for a, b in zip(t0, t1)]
    mean = [(_ia(a) + _ia(b)) / 2 for a, b in zip(t0, t1)]
    np.testing.assert_allclose(field_ia(clf), concat, rtol=1e-8)
    np.testing.assert_allclose(field_ia(clf, sets="mean"), mean, rtol=1e-8)


def test_embedding_set_diversity_planted_and_against_principal_angles(data):
    X, y = data
    clf = DNNClassifier(embedding_dim=3, n_embedding_sets=3, **TINY).fit(X, y)
    emb = clf.module_.embedding
    rng = np.random.default_rng(0)
    with torch.no_grad():  # set 1 = set 0 @ R (same column space) for field 1
        r = torch.as_tensor(rng.normal(size=(3, 3)), dtype=emb.weight.dtype)
        emb.table(1, 1).copy_(emb.table(1, 0) @ r)
    div, sim = embedding_set_diversity(clf, return_similarity=True)
    assert sim[1, 0, 1] == pytest.approx(1.0, abs=1e-8)
    t = [_tables(clf, m) for m in range(3)]
    for f in range(4):
        ref = []
        for a in range(3):
            for b in range(a + 1, 3):
                cosines = np.cos(subspace_angles(t[a][f].astype(np.float64),
                                                 t[b][f].astype(np.float64)))
                assert sim[f, a, b] == pytest.approx(cosines.mean(), abs=1e-8)
                ref.append(cosines.mean())
        assert div[f] == pytest.approx(1 - np.mean(ref), abs=1e-8)
    single = DNNClassifier(embedding_dim=3, **TINY).fit(X, y)
    with pytest.raises(ValueError, match="n_embedding_sets >= 2"):
        embedding_set_diversity(single)


def test_displays_draw_the_metrics(data):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from skcollapse.plotting import EmbeddingSetDiversityDisplay, SubEmbeddingIADisplay

    X, y = data
    se = DCNv2Classifier(embedding_dim=3, n_cross_layers=1, **TINY).fit(X, y)
    me = DCNv2Classifier(embedding_dim=3, n_cross_layers=1, n_embedding_sets=2,
                         **TINY).fit(X, y)
    disp = SubEmbeddingIADisplay.from_estimators({"SE": se, "ME": me})
    np.testing.assert_allclose(disp.images_[1].get_array(), sub_embedding_ia(me))
    assert disp.images_[0].get_clim() == disp.images_[1].get_clim()
    wide = SubEmbeddingIADisplay.from_estimators({"SE": se, "ME": me}, sets="concat")
    np.testing.assert_allclose(wide.images_[1].get_array(),
                               sub_embedding_ia(me, sets="concat"))
    bars = EmbeddingSetDiversityDisplay.from_estimators({"ME": me})
    heights = [b.get_height() for b in bars.bars_["ME"]]
    np.testing.assert_allclose(heights, embedding_set_diversity(me))
