"""ReSN's penalty against ``np.linalg.norm(U @ V.T, 2) ** 2`` and torch autograd."""

from itertools import combinations

import numpy as np
import pytest
import torch

from skcollapse.datasets import make_interactions
from skcollapse.regularizers import ReSN, resolve_regularizer
from skcollapse.regularizers._resn import score_spectral_norm_sq


def _pair(seed, n_u=12, n_i=9, d=4):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_u, d)) @ rng.normal(size=(d, d))
    V = rng.normal(size=(n_i, d)) @ rng.normal(size=(d, d))
    return U, V


def test_registered_under_resn():
    assert resolve_regularizer("resn") is ReSN
    assert resolve_regularizer("ReSN") is ReSN


@pytest.mark.parametrize("seed", range(5))
def test_value_is_the_squared_spectral_norm(seed):
    U, V = _pair(seed)
    reg = ReSN(weight=1.0, n_iter=300)
    batch = {"user": torch.as_tensor(U), "item": torch.as_tensor(V)}
    _, pen = reg(batch)
    expected = np.linalg.norm(U @ V.T, 2) ** 2
    np.testing.assert_allclose(float(pen), expected, rtol=1e-9)
    assert reg.last_penalty_ == pytest.approx(expected, rel=1e-9)
    # the weight multiplies the returned penalty, not last_penalty_
    _, pen3 = ReSN(weight=3.0, n_iter=300)(batch)
    np.testing.assert_allclose(float(pen3), 3 * expected, rtol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_gradient_is_autograd_of_the_matrix_norm(seed):
    U, V = _pair(seed)
    Ut = torch.tensor(U, requires_grad=True)
    Vt = torch.tensor(V, requires_grad=True)
    score_spectral_norm_sq(Ut, Vt, n_iter=300).backward()
    Ur = torch.tensor(U, requires_grad=True)
    Vr = torch.tensor(V, requires_grad=True)
    (torch.linalg.matrix_norm(Ur @ Vr.T, ord=2) ** 2).backward()
    torch.testing.assert_close(Ut.grad, Ur.grad, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(Vt.grad, Vr.grad, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_few_iterations_bound_from_below(seed):
    U, V = _pair(seed)
    exact = np.linalg.norm(U @ V.T, 2) ** 2
    values = [float(score_spectral_norm_sq(torch.as_tensor(U), torch.as_tensor(V),
                                           n_iter=k)) for k in (0, 1, 2, 5, 50)]
    assert all(v <= exact * (1 + 1e-12) for v in values)  # a Rayleigh quotient
    assert values[-1] == pytest.approx(exact, rel=1e-6)


def _quotient_through_grams(U, V, n_iter):
    """Reference: ``cᵀBABc / cᵀBc`` differentiated through ``A = UᵀU`` and
    ``B = VᵀV`` (float64), ``c`` from ``n_iter`` power steps held constant."""
    A, B = U.T @ U, V.T @ V
    with torch.no_grad():
        c = U.sum(0)
        c = c / torch.linalg.vector_norm(c)
        for _ in range(n_iter):
            c = A @ (B @ c)
            c = c / torch.linalg.vector_norm(c)
    Bc = B @ c
    return (Bc @ (A @ Bc)) / (c @ Bc)


@pytest.mark.parametrize("n_iter", [0, 1, 3])
def test_unconverged_value_and_gradient_are_the_gram_quotients(n_iter):
    """Before convergence too: the value and its gradient (``c`` held) are
    those of the quotient written with the ``d x d`` Gram matrices."""
    U, V = _pair(5, n_u=40, n_i=30, d=6)
    Ut, Vt = (torch.tensor(x, requires_grad=True) for x in (U, V))
    got = score_spectral_norm_sq(Ut, Vt, n_iter=n_iter)
    got.backward()
    Ur, Vr = (torch.tensor(x, requires_grad=True) for x in (U, V))
    want = _quotient_through_grams(Ur, Vr, n_iter)
    want.backward()
    np.testing.assert_allclose(got.item(), want.item(), rtol=1e-12)
    torch.testing.assert_close(Ut.grad, Ur.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(Vt.grad, Vr.grad, rtol=1e-10, atol=1e-12)


def test_float32_rows_give_the_float64_value_and_gradient():
    """float32 rows (the Grams and matrix-vector products in float32, the
    iteration and the norms in float64): the float64 result to float32
    rounding, on a batch of a few thousand rows with a popular direction."""
    rng = np.random.default_rng(1)
    pop = np.log1p(rng.zipf(1.5, size=3000).clip(max=500))
    V = (np.outer(pop, rng.normal(size=32)) + rng.normal(size=(3000, 32))) / 8
    U = (rng.normal(size=(3000, 32)) + rng.normal(size=32)) / 8
    values, grads = [], []
    for dtype in (torch.float64, torch.float32):
        Ut, Vt = (torch.tensor(x, dtype=dtype, requires_grad=True) for x in (U, V))
        value = score_spectral_norm_sq(Ut, Vt, n_iter=5)
        value.backward()
        values.append(value.item())
        grads.append([Ut.grad.double(), Vt.grad.double()])
    np.testing.assert_allclose(values[1], values[0], rtol=1e-5)
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want, rtol=1e-4,
                                   atol=1e-5 * float(want.abs().max()))


def test_under_autocast_runs_in_the_rows_precision():
    """Inside ``torch.autocast`` (CPU bfloat16 here, float16 on CUDA) the
    penalty is computed in the float32 rows' own precision: the value and
    gradients of the same call outside autocast, gradients in float32."""
    gen = torch.Generator().manual_seed(5)
    U = torch.randn(200, 16, generator=gen)
    V = torch.randn(200, 16, generator=gen) + torch.randn(16, generator=gen)
    results = []
    for autocast in (False, True):
        Ut, Vt = U.clone().requires_grad_(), V.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            value = score_spectral_norm_sq(Ut, Vt, n_iter=3)
        value.backward()
        results.append((value.detach(), Ut.grad, Vt.grad))
    (want, want_u, want_v), (got, got_u, got_v) = results
    assert got_u.dtype == got_v.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(got_u, want_u, rtol=0, atol=0)
    torch.testing.assert_close(got_v, want_v, rtol=0, atol=0)


def test_zero_iterations_is_the_reference_codes_one_step():
    """n_iter=0: ||S q||² with q = Sᵀ1 / ||Sᵀ1|| (ReSN's code, raw scores)."""
    U, V = _pair(7)
    S = U @ V.T
    q = S.T @ np.ones(S.shape[0])
    q /= np.linalg.norm(q)
    got = float(score_spectral_norm_sq(torch.as_tensor(U), torch.as_tensor(V), 0))
    np.testing.assert_allclose(got, np.sum((S @ q) ** 2), rtol=1e-12)


def test_popular_direction_converges_in_a_few_steps():
    """Scores dominated by popularity: the default 5 steps are within 0.1%."""
    rng = np.random.default_rng(0)
    pop = rng.zipf(1.5, size=40).clip(max=200).astype(float)
    V = np.outer(np.log1p(pop), rng.normal(size=8)) + 0.3 * rng.normal(size=(40, 8))
    U = rng.normal(size=(30, 8)) + rng.normal(size=8)
    exact = np.linalg.norm(U @ V.T, 2) ** 2
    got = float(ReSN()({"user": torch.as_tensor(U), "item": torch.as_tensor(V)})[1])
    assert got == pytest.approx(exact, rel=1e-3)


def test_ctr_tables_are_every_field_pair():
    rng = np.random.default_rng(3)
    tables = {f"C{k}": rng.normal(size=(10, 3)) for k in range(3)}
    reg = ReSN(n_iter=300, table_weights={"C0": 2.0})
    _, pen = reg({k: torch.as_tensor(v) for k, v in tables.items()})
    terms, weights = [], []
    for a, b in combinations(tables, 2):
        terms.append(np.linalg.norm(tables[a] @ tables[b].T, 2) ** 2)
        weights.append((2.0 if a == "C0" else 1.0) * (2.0 if b == "C0" else 1.0))
    np.testing.assert_allclose(float(pen), np.average(terms, weights=weights),
                               rtol=1e-9)
    # one table: its score matrix with itself, sigma_1(E)^4
    _, one = ReSN(n_iter=300, tables="C1")({k: torch.as_tensor(v)
                                            for k, v in tables.items()})
    np.testing.assert_allclose(float(one),
                               np.linalg.norm(tables["C1"], 2) ** 4, rtol=1e-9)


def test_zero_scores_and_mismatched_tables():
    z = torch.zeros(5, 3, requires_grad=True)
    x = torch.randn(6, 3, requires_grad=True)
    _, pen = ReSN()({"user": z, "item": x})
    assert float(pen.detach()) == 0.0
    pen.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(z.grad).all()
    with pytest.raises(ValueError, match="same dimension"):
        ReSN(tables=["a", "b"])({"a": torch.randn(4, 3), "b": torch.randn(4, 2)})
    with pytest.raises(ValueError, match="n_iter"):
        ReSN(n_iter=-1)


def test_mf_with_resn_lowers_the_score_spectral_norm():
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(60, 40, random_state=0)
    kw = {"embedding_dim": 8, "max_epochs": 5, "random_state": 0}
    plain = MFRecommender(**kw).fit(X)
    resn = MFRecommender(regularizer="resn", regularizer__weight=1e-3, **kw).fit(X)
    assert isinstance(resn.regularizer_, ReSN)

    def norm(model):
        t = model.get_embeddings()
        return np.linalg.norm(t["user"] @ t["item"].T, 2)

    assert norm(resn) < norm(plain), (norm(resn), norm(plain))


def test_ctr_classifier_trains_with_resn():
    """On CTR batches the penalty acts on the field-pair score matrices."""
    from skcollapse.datasets import make_ctr
    from skcollapse.recommenders import DeepFMClassifier

    X, y, _ = make_ctr(600, n_fields=3, random_state=0)
    clf = DeepFMClassifier(embedding_dim=4, hidden_units=(8,), max_epochs=1,
                           batch_size=128, regularizer="resn",
                           regularizer__weight=1e-4, random_state=0).fit(X, y)
    assert isinstance(clf.regularizer_, ReSN)
    assert np.isfinite(clf.predict_proba(X)).all()
    assert clf.regularizer_.last_penalty_ > 0


def test_penalty_on_the_device_equals_cpu(torch_device):
    U, V = _pair(11)
    cpu = ReSN(n_iter=50)({"user": torch.as_tensor(U), "item": torch.as_tensor(V)})[1]
    Ut = torch.tensor(U, device=torch_device, requires_grad=True)
    Vt = torch.tensor(V, device=torch_device, requires_grad=True)
    pen = ReSN(n_iter=50)({"user": Ut, "item": Vt})[1]
    assert pen.device.type == torch_device
    torch.testing.assert_close(pen.detach().cpu(), cpu, rtol=1e-9, atol=0)
    pen.backward()
    assert torch.isfinite(Ut.grad).all() and torch.isfinite(Vt.grad).all()
