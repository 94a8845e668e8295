"""DeepFM (Guo et al., IJCAI 2017) against numpy transcriptions of its formulas."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from skcollapse.datasets import make_ctr
from skcollapse.nn import DNN, FM, DeepFM
from skcollapse.recommenders import DeepFMClassifier

FIELD_DIMS = [3, 5, 2, 4]
K = 3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _codes(rng, n=12):
    # known codes and out-of-vocabulary codes (negative, too large)
    return np.stack([rng.integers(-1, d + 2, size=n) for d in FIELD_DIMS], axis=1)


def _rows(x):
    """Global table rows by hand: field blocks of ``dim + 1`` rows, OOV last."""
    offsets = np.concatenate([[0], np.cumsum(np.add(FIELD_DIMS, 1))[:-1]])
    dims = np.asarray(FIELD_DIMS)
    known = (x >= 0) & (x < dims)
    return np.where(known, x, dims) + offsets


def _fixed(model, rng):
    """Overwrite every parameter with fixed float64 values; return them as numpy."""
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.as_tensor(rng.normal(size=tuple(p.shape))))
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters()}


def _fm_numpy(w, b, table, rows):
    """``b + sum_f w[x_f] + 0.5 * sum_k[(sum_i v_ik)^2 - sum_i v_ik^2]``."""
    v = table[rows]  # (n, N, K)
    first = b + w[rows].sum(axis=1)
    second = 0.5 * ((v.sum(axis=1) ** 2) - (v**2).sum(axis=1)).sum(axis=1)
    return first, second, v


def _relu(a):
    return np.maximum(a, 0)


@pytest.mark.parametrize("m", [1, 2])
def test_fm_part_is_the_fm_formula(m, rng):
    model = DeepFM(FIELD_DIMS, K, m, hidden_units=(4,), dropout=0.0).eval()
    p = _fixed(model, rng)
    x = _codes(rng)
    rows = _rows(x)
    n_rows = sum(FIELD_DIMS) + len(FIELD_DIMS)
    first, _, _ = _fm_numpy(p["linear.weight"], p["linear.bias"],
                            p["embedding.weight"][:n_rows], rows)
    second = []
    for s in range(m):
        table = p["embedding.weight"][s * n_rows:(s + 1) * n_rows]
        _, sec, v = _fm_numpy(p["linear.weight"], 0.0, table, rows)
        # the O(NK) form equals the sum over field pairs
        pairs = sum(
            (v[:, i] * v[:, j]).sum(axis=1)
            for i, j in itertools.combinations(range(len(FIELD_DIMS)), 2)
        )
        np.testing.assert_allclose(sec, pairs, rtol=1e-12)
        second.append(sec)
    expected = first + np.mean(second, axis=0)
    xt = torch.as_tensor(x)
    got = model.fm_logit(xt, model.embed(xt)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [1, 2])
def test_logit_is_fm_plus_dnn_by_hand(m, rng):
    """logit = FM part + MLP(flatten e): per-set first layer, averaged, shared head."""
    model = DeepFM(FIELD_DIMS, 2, m, hidden_units=(3, 2), dropout=0.0,
                   batch_norm=False).eval()
    p = _fixed(model, rng)
    x = _codes(rng, 6)
    rows = _rows(x)
    n_rows = sum(FIELD_DIMS) + len(FIELD_DIMS)
    fm, proj = [], []
    for s in range(m):
        table = p["embedding.weight"][s * n_rows:(s + 1) * n_rows]
        first, sec, v = _fm_numpy(p["linear.weight"], p["linear.bias"], table,
                                  rows)
        fm.append(sec)
        flat = v.reshape(len(x), -1)
        w1, b1 = p[f"set_blocks.{s}.1.0.weight"], p[f"set_blocks.{s}.1.0.bias"]
        proj.append(_relu(flat @ w1.T + b1))
    h = np.mean(proj, axis=0)
    h = _relu(h @ p["head.0.weight"].T + p["head.0.bias"])
    dnn = (h @ p["head.2.weight"].T + p["head.2.bias"]).ravel()
    expected = first + np.mean(fm, axis=0) + dnn
    got = model(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_components_are_fm_and_dnn_on_shared_embeddings(rng):
    """DeepFM = FM module + DNN module when all three read the same tables."""
    deepfm = DeepFM(FIELD_DIMS, K, 2, hidden_units=(5, 4), dropout=0.0).eval()
    fm = FM(FIELD_DIMS, K, 2).eval()
    dnn = DNN(FIELD_DIMS, K, 2, hidden_units=(5, 4), dropout=0.0).eval()
    fm.load_state_dict({k: v for k, v in deepfm.state_dict().items()
                        if k.startswith(("embedding.", "linear."))})
    dnn.load_state_dict({k: v for k, v in deepfm.state_dict().items()
                         if not k.startswith(("linear.", "fm."))})
    x = torch.as_tensor(_codes(rng))
    torch.testing.assert_close(deepfm(x), fm(x) + dnn(x))


def test_parameter_count():
    m, k, h = 3, K, (6, 5)
    n, r = len(FIELD_DIMS), sum(FIELD_DIMS) + len(FIELD_DIMS)
    model = DeepFM(FIELD_DIMS, k, m, hidden_units=h, dropout=0.0)
    bn = 2  # weight and bias of each BatchNorm1d unit
    first = n * k * h[0] + h[0] + bn * h[0]
    head = h[0] * h[1] + h[1] + bn * h[1] + h[1] + 1
    expected = m * (r * k + first) + head + (r + 1)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_sub_embedding_maps_refused():
    with pytest.raises(TypeError, match="no per-field-pair"):
        DeepFM(FIELD_DIMS, K).sub_embedding_maps()


@pytest.mark.parametrize("m", [1, 2])
def test_learns_a_planted_task(m):
    """The planted pair terms are learned (the task and floors of test_ctr.py)."""
    X, y, proba = make_ctr(
        8000, cardinalities=[3, 4, 6, 10, 20], n_interactions=3,
        interaction_strength=2.0, first_order_strength=0.3, random_state=0,
    )
    Xtr, ytr, Xte, yte = X[:6000], y[:6000], X[6000:], y[6000:]
    bayes = roc_auc_score(yte, proba[6000:])
    enc = OneHotEncoder(handle_unknown="ignore").fit(Xtr)
    additive = roc_auc_score(yte, LogisticRegression(max_iter=2000).fit(
        enc.transform(Xtr), ytr).predict_proba(enc.transform(Xte))[:, 1])
    clf = DeepFMClassifier(embedding_dim=8, n_embedding_sets=m, hidden_units=(32,),
                           dropout=0.0, max_epochs=4, batch_size=256, lr=5e-3,
                           random_state=0).fit(Xtr, ytr)
    auc = roc_auc_score(yte, clf.predict_proba(Xte)[:, 1])
    assert auc > bayes - 0.05, (auc, bayes)
    assert auc > additive + 0.05, (auc, additive)
    names = sorted(clf.get_embeddings())
    assert len(names) == 5 * m
    if m == 2:
        assert names[:2] == ["x0/set0", "x0/set1"]


def test_regularizer_and_device_are_taken():
    X, y, _ = make_ctr(600, n_fields=3, random_state=1)
    clf = DeepFMClassifier(embedding_dim=4, hidden_units=(8,), max_epochs=1,
                           batch_size=128, regularizer="logdet",
                           regularizer__weight=1e-3, device="cpu",
                           random_state=0).fit(X, y)
    assert clf.regularizer_ is not None
    assert clf.predict_proba(X).shape == (600, 2)


def test_trains_and_predicts_on_the_device(torch_device):
    X, y, _ = make_ctr(600, n_fields=3, random_state=1)
    clf = DeepFMClassifier(embedding_dim=4, n_embedding_sets=2, hidden_units=(8,),
                           max_epochs=1, batch_size=128, device=torch_device,
                           random_state=0).fit(X, y)
    assert next(clf.module_.parameters()).device.type == torch_device
    assert np.isfinite(clf.predict_proba(X)).all()
