"""Unit tests of the built-in regularizers against independent float64 references."""

import inspect
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skcollapse.regularizers import (
    CodingRate,
    DecorrelatedBatchNorm,
    DirectAU,
    DirectSpec,
    DirectSpecPlus,
    LogDetRegularizer,
    Regularizer,
    ReSN,
    SingularValueVariance,
    UniformityRegularizer,
    get_regularizer_names,
    resolve_regularizer,
)
from skcollapse.regularizers._dbn import inv_sqrt_psd

BUILTIN = {
    "dbn": DecorrelatedBatchNorm,
    "logdet": LogDetRegularizer,
    "directspec": DirectSpec,
    "directspec+": DirectSpecPlus,
    "directau": DirectAU,
    "uniformity": UniformityRegularizer,
    "sv_variance": SingularValueVariance,
    "coding_rate": CodingRate,
    "resn": ReSN,
}


def _batch(rng, n=32, d=6, names=("user", "item"), dtype=torch.float64, grad=False):
    out = {}
    for name in names:
        x = torch.as_tensor(
            rng.standard_normal((n, d)) @ rng.standard_normal((d, d)), dtype=dtype
        )
        out[name] = x.requires_grad_(grad)
    return out


def _np(x):
    return x.detach().cpu().numpy().astype(np.float64)


def _softmax_rows(a):
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


def _rownorm(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ----------------------------------------------------------------- registry


def test_all_names_registered():
    names = get_regularizer_names()
    for name, cls in BUILTIN.items():
        assert name in names
        assert resolve_regularizer(name) is cls
        assert resolve_regularizer(name.upper()) is cls


def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError, match="logdet"):
        resolve_regularizer("no-such-regularizer")


# The behaviour every registered regularizer shares (tables and shapes kept,
# gradients, weight, bad input, pickling) is tested once, for every name in the
# registry, by skcollapse.testing.RegularizerTests (tests/test_regularizer_contract.py).


_POS = r"parameter of \w+ must be a float in the range \(0.0, inf\)"
_NON_NEG = r"parameter of \w+ must be a float in the range \[0.0, inf\)"
_INT_GE_1 = r"parameter of \w+ must be None or an int in the range \[1, inf\)"


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (LogDetRegularizer, {"source": "rows"}, r"'source' .* str among"),
        (LogDetRegularizer, {"eps": 0.0}, rf"'eps' {_POS}"),
        (LogDetRegularizer, {"center": "yes"}, r"'center' .* instance of 'bool'"),
        (
            LogDetRegularizer,
            {"table_weights": {"user": -1}},
            rf"\"table_weights\['user'\]\" {_NON_NEG}",
        ),
        (
            LogDetRegularizer,
            {"table_weights": {3: 1.0}},
            r"keys of the 'table_weights' .* table names",
        ),
        (
            LogDetRegularizer,
            {"table_weights": [1.0]},
            r"'table_weights' .* an instance of 'dict'",
        ),
        (DecorrelatedBatchNorm, {"group_size": 0}, rf"'group_size' {_INT_GE_1}"),
        (DecorrelatedBatchNorm, {"group_size": 2.5}, rf"'group_size' {_INT_GE_1}"),
        (DecorrelatedBatchNorm, {"momentum": 0.0}, r"'momentum' .* \(0.0, 1.0\]"),
        (DecorrelatedBatchNorm, {"momentum": 1.5}, r"'momentum' .* \(0.0, 1.0\]"),
        (DecorrelatedBatchNorm, {"eps": float("nan")}, rf"'eps' {_POS}"),
        (
            DirectSpec,
            {"tau": float("inf")},
            r"'tau' .* float in the range \(-inf, inf\)",
        ),
        (DirectSpec, {"shrink_norm": -0.1}, rf"'shrink_norm' {_NON_NEG}"),
        (
            DirectSpec,
            {"block_size": 1},
            r"'block_size' .* None or an int .* \[2, inf\)",
        ),
        (DirectSpecPlus, {"tau0": "a"}, r"'tau0' .* float in the range \(-inf, inf\)"),
        (DirectAU, {"gamma": -1.0}, rf"'gamma' {_NON_NEG}"),
        (DirectAU, {"alignment": 1}, r"'alignment' .* instance of 'bool'"),
        (DirectAU, {"pairs": [("user",)]}, r"pairs must be a list of \(table, table\)"),
        (UniformityRegularizer, {"t": 0.0}, rf"'t' {_POS}"),
        (CodingRate, {"eps": -1.0}, rf"'eps' {_POS}"),
        (SingularValueVariance, {"weight": True}, rf"'weight' {_NON_NEG}"),
        (SingularValueVariance, {"tables": []}, r"'tables' .* non-empty list"),
        (SingularValueVariance, {"tables": ["a", 3]}, r"'tables\[1\]' .* 'str'"),
    ],
)
def test_bad_parameters(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)


def test_weight_multiplies_penalty_and_last_penalty_is_unweighted(rng):
    batch = _batch(rng)
    _, p1 = LogDetRegularizer(weight=1.0)(batch)
    reg = LogDetRegularizer(weight=0.25)
    _, p2 = reg(batch)
    assert torch.allclose(p2, 0.25 * p1)
    assert reg.last_penalty_ == pytest.approx(float(p1))


# ----------------------------------------------------------------- LogDet


def _logdet_ref(x, center, normalize, eps):
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0)
    S = x.T @ x
    if normalize:
        S = S / x.shape[0]
    S = S + eps * np.eye(x.shape[1])
    sign, logdet = np.linalg.slogdet(S)
    assert sign > 0
    return np.trace(S) - logdet


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_logdet_equals_reference(rng, center, normalize):
    batch = _batch(rng, n=40, d=5)
    reg = LogDetRegularizer(
        scale_free=False,
        weight=1.0,
        center=center,
        normalize=normalize,
        eps=1e-3,
        table_weights={"item": 0.5},
    )
    _, pen = reg(batch)
    expected = _logdet_ref(
        _np(batch["user"]), center, normalize, 1e-3
    ) + 0.5 * _logdet_ref(_np(batch["item"]), center, normalize, 1e-3)
    assert float(pen) == pytest.approx(expected, rel=1e-10)


def test_logdet_minimum_at_identity_covariance(rng):
    # rows whose normalised Gram is exactly I: penalty = d (1 + eps - log(1 + eps))
    Q, _ = np.linalg.qr(rng.standard_normal((64, 4)))
    x = torch.as_tensor(Q * np.sqrt(64))
    reg = LogDetRegularizer(scale_free=False, weight=1.0, eps=1e-6, tables="user")
    _, pen = reg({"user": x})
    assert float(pen) == pytest.approx(4 * (1 + 1e-6 - np.log1p(1e-6)), rel=1e-9)
    _, pen2 = reg({"user": x * 1.3})
    assert float(pen2) > float(pen)


def test_logdet_unique_and_table_sources(rng):
    x = torch.as_tensor(rng.standard_normal((10, 3)))
    ids = torch.tensor([0, 1, 1, 2, 0, 3, 3, 3, 4, 1])
    batch = {"item": x}
    reg = LogDetRegularizer(scale_free=False, weight=1.0, source="unique", eps=1e-4)
    _, pen = reg(batch, {"item_ids": ids})
    first = [0, 1, 3, 5, 8]
    assert float(pen) == pytest.approx(_logdet_ref(_np(x)[first], False, True, 1e-4))
    # without ids the batch rows are used
    _, pen_batch = reg(batch, None)
    assert float(pen_batch) == pytest.approx(_logdet_ref(_np(x), False, True, 1e-4))

    table = torch.as_tensor(rng.standard_normal((50, 3)))
    reg_t = LogDetRegularizer(scale_free=False, weight=1.0, source="table", eps=1e-4)
    assert reg_t.needs_tables and not reg.needs_tables
    _, pen_t = reg_t(batch, {"tables": {"item": table}})
    assert float(pen_t) == pytest.approx(_logdet_ref(_np(table), False, True, 1e-4))
    with pytest.raises(ValueError, match="context\\['tables'\\]"):
        reg_t(batch, None)


def test_logdet_collapsed_input_is_finite_with_gradient():
    # rank-1 batch: Cholesky in float64 with eps keeps value and gradient finite
    x = torch.ones(16, 8, dtype=torch.float32, requires_grad=True)
    _, pen = LogDetRegularizer(scale_free=False, weight=1.0, eps=1e-6)({"user": x})
    pen.backward()
    assert (
        torch.isfinite(pen.detach()) and float(pen.detach()) > 8 * 10
    )  # -log(1e-6) per dead dim
    assert torch.isfinite(x.grad).all()


def test_logdet_gradcheck():
    x = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    reg = LogDetRegularizer(scale_free=False, weight=1.0, center=True, eps=1e-3)
    assert torch.autograd.gradcheck(lambda t: reg({"user": t})[1], (x,))


# ----------------------------------------------------------------- DBN


def _zca_ref(x, eps):
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=0)
    xc = x - mu
    S = xc.T @ xc / x.shape[0]
    lam, D = np.linalg.eigh(S)
    W = D @ np.diag(1.0 / np.sqrt(lam + eps)) @ D.T
    return mu, W


@pytest.mark.parametrize(
    ("group_size", "groups"),
    [
        (None, [(0, 7)]),
        (3, [(0, 3), (3, 6), (6, 7)]),
        (7, [(0, 7)]),
        (20, [(0, 7)]),
    ],
)
def test_dbn_training_whitens_each_group(rng, group_size, groups):
    n, d = 400, 7
    x = torch.as_tensor(rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3.0)
    dbn = DecorrelatedBatchNorm(group_size=group_size, eps=1e-8, relative_eps=False)
    out, pen = dbn({"item": x})
    assert float(pen) == 0.0
    y = _np(out["item"])
    cov = np.cov(y.T, bias=True)
    for a, b in groups:
        np.testing.assert_allclose(cov[a:b, a:b], np.eye(b - a), atol=1e-5)
        mu, W = _zca_ref(_np(x)[:, a:b], 1e-8)
        np.testing.assert_allclose(y[:, a:b], (_np(x)[:, a:b] - mu) @ W, atol=1e-6)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-8)


def test_dbn_eval_uses_running_statistics(rng):
    dbn = DecorrelatedBatchNorm(
        group_size=2, momentum=0.3, eps=1e-5, relative_eps=False
    )
    dbn.setup({"tables": {"user": 4, "item": 4}})
    d = 4
    run_mu = {k: np.zeros(d) for k in ("user", "item")}
    run_W = {k: np.eye(d) for k in ("user", "item")}
    for _ in range(3):
        batch = _batch(rng, n=50, d=d)
        dbn(batch)
        for k in batch:
            xb = _np(batch[k])
            W = np.zeros((d, d))
            for a in (0, 2):
                _, W_g = _zca_ref(xb[:, a : a + 2], 1e-5)
                W[a : a + 2, a : a + 2] = W_g
            mu = xb.mean(axis=0)
            run_mu[k] = 0.7 * run_mu[k] + 0.3 * mu
            run_W[k] = 0.7 * run_W[k] + 0.3 * W
    for k in ("user", "item"):
        state = dbn.states_["t_" + k]
        np.testing.assert_allclose(_np(state.running_mean), run_mu[k], atol=1e-6)
        np.testing.assert_allclose(_np(state.running_whitening), run_W[k], atol=1e-6)
        assert int(state.num_batches_tracked) == 3
    # per-side state is separate
    assert not np.allclose(run_mu["user"], run_mu["item"])
    dbn.eval()
    table = torch.as_tensor(rng.standard_normal((9, d)))
    expected = (_np(table) - run_mu["item"]) @ run_W["item"]
    np.testing.assert_allclose(
        _np(dbn.transform_extra("item", table)), expected, atol=1e-5
    )
    out, _ = dbn({"item": table})
    np.testing.assert_allclose(_np(out["item"]), expected, atol=1e-5)
    with pytest.raises(RuntimeError, match="running statistics"):
        dbn.transform_extra("never_seen", table)


def test_dbn_transform_extra_in_training_uses_batch_statistics(rng):
    dbn = DecorrelatedBatchNorm(eps=1e-6, relative_eps=False)
    batch = _batch(rng, n=64, d=4, grad=True)
    dbn(batch)
    extra = torch.as_tensor(rng.standard_normal((5, 4)))
    mu, W = _zca_ref(_np(batch["item"]), 1e-6)
    got = dbn.transform_extra("item", extra)
    np.testing.assert_allclose(_np(got), (_np(extra) - mu) @ W, atol=1e-8)
    got.sum().backward()  # gradient flows back into the batch statistics
    assert batch["item"].grad is not None and batch["item"].grad.abs().sum() > 0
    # tables the layer does not act on pass through
    only_user = DecorrelatedBatchNorm(tables="user")
    only_user(batch)
    assert only_user.transform_extra("item", extra) is extra


@pytest.mark.parametrize("group_size", [None, 4])
@pytest.mark.parametrize("eps", [1e-3, None])  # full whitening; the (soft) default
def test_dbn_relative_eps_whitens_alike_at_any_scale(rng, group_size, eps):
    """eps is relative to each group's mean variance: a table of std 1e-2 and
    the same table at std 1e+2 are whitened alike, equal to the ZCA reference
    with eps * trace(Σ)/m; with a small eps every group's covariance is ≈ I."""
    n, d = 2000, 8
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lams = np.geomspace(0.3, 3.0, d)  # a well-conditioned covariance
    base = rng.standard_normal((n, d)) * np.sqrt(lams) @ q.T
    kwargs = {} if eps is None else {"eps": eps}
    rel = DecorrelatedBatchNorm().eps if eps is None else eps
    outs = []
    for scale in (1e-2, 1e2):
        dbn = DecorrelatedBatchNorm(group_size=group_size, **kwargs)
        out, _ = dbn({"item": torch.as_tensor(scale * base)})
        y = _np(out["item"])
        m = d if group_size is None else group_size
        for a in range(0, d, m):
            xs = scale * base[:, a : a + m]
            S = np.cov(xs.T, bias=True)
            mu, W = _zca_ref(xs, rel * np.trace(S) / m)
            np.testing.assert_allclose(y[:, a : a + m], (xs - mu) @ W, atol=1e-8)
            if eps is not None:
                cov = np.cov(y[:, a : a + m].T, bias=True)
                np.testing.assert_allclose(cov, np.eye(m), atol=1e-2)
        outs.append(y)
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-8)


@pytest.mark.parametrize("group_size", [None, 4])
def test_dbn_keep_scale_whitens_the_shape_and_keeps_the_scale(rng, group_size):
    """keep_scale: the ZCA reference times sqrt(trace(Σ)/m) per group, so the
    output covariance is (mean variance) * I, the output is proportional to the
    input's scale, and the loss still has a gradient along that scale."""
    n, d = 2000, 8
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    base = rng.standard_normal((n, d)) * np.sqrt(np.geomspace(0.3, 3.0, d)) @ q.T
    m = d if group_size is None else group_size
    outs = []
    for scale in (1e-2, 1e2):
        x = torch.as_tensor(scale * base)
        dbn = DecorrelatedBatchNorm(group_size=group_size, eps=1e-3, keep_scale=True)
        y = _np(dbn({"item": x})[0]["item"])
        for a in range(0, d, m):
            xs = scale * base[:, a : a + m]
            S = np.cov(xs.T, bias=True)
            mean_var = np.trace(S) / m
            mu, W = _zca_ref(xs, 1e-3 * mean_var)
            ref = (xs - mu) @ W * np.sqrt(mean_var)
            np.testing.assert_allclose(y[:, a : a + m], ref, rtol=1e-8, atol=1e-12)
            cov = np.cov(y[:, a : a + m].T, bias=True)
            np.testing.assert_allclose(cov / mean_var, np.eye(m), atol=1e-2)
        outs.append(y / scale)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)
    # a loss that grows with the output's size pulls on the input's scale
    c = torch.ones((), dtype=torch.float64, requires_grad=True)
    dbn = DecorrelatedBatchNorm(eps=1e-3, keep_scale=True)
    out = dbn({"item": c * torch.as_tensor(base)})[0]["item"]
    out.pow(2).sum().backward()
    kept = float(c.grad)
    # d/dc of sum(c^2 * out^2) at c = 1 is 2 * sum(out^2)
    assert kept == pytest.approx(2 * float(out.pow(2).sum()), rel=1e-2)
    c.grad = None
    plain = DecorrelatedBatchNorm(eps=1e-3)({"item": c * torch.as_tensor(base)})
    plain[0]["item"].pow(2).sum().backward()
    # plain whitening is scale-invariant up to its (constant) eps
    assert abs(float(c.grad)) < 0.01 * kept


def test_logdet_scale_free_penalises_the_shape_only(rng):
    """scale_free: d + d log(mean eigenvalue) - sum log eigenvalues of Σ = XᵀX/n,
    the same value at any scale, d exactly for Σ ∝ I, no gradient along the scale."""
    n, d = 400, 6
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    ev = np.linalg.eigvalsh(x.T @ x / n)
    ref = d + d * np.log(ev.mean()) - np.log(ev).sum()
    reg = LogDetRegularizer(weight=1.0, scale_free=True, eps=1e-15)
    for scale in (1e-2, 1.0, 1e2):
        _, pen = reg({"item": torch.as_tensor(scale * x)})
        assert float(pen) == pytest.approx(ref, rel=1e-7)
    q, _ = np.linalg.qr(rng.standard_normal((n, d)))  # orthonormal columns
    _, pen = reg({"item": torch.as_tensor(3.0 * q)})
    assert float(pen) == pytest.approx(d, abs=1e-8)
    c = torch.ones((), dtype=torch.float64, requires_grad=True)
    reg({"item": c * torch.as_tensor(x)})[1].backward()
    assert abs(float(c.grad)) < 1e-8


def test_dbn_absolute_eps_depends_on_the_scale(rng):
    """The reference code's absolute eps (0.1) barely whitens a small table."""
    x = torch.as_tensor(1e-2 * rng.standard_normal((500, 6)))
    y = _np(DecorrelatedBatchNorm(eps=0.1, relative_eps=False)({"item": x})[0]["item"])
    assert np.trace(np.cov(y.T, bias=True)) < 0.01 * 6
    y_rel = _np(DecorrelatedBatchNorm(eps=1e-3)({"item": x})[0]["item"])
    assert np.trace(np.cov(y_rel.T, bias=True)) == pytest.approx(6, rel=1e-2)


def test_dbn_inverse_sqrt_gradcheck_and_repeated_eigenvalues():
    A = torch.randn(5, 5, dtype=torch.float64)
    S = (A @ A.T / 5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: inv_sqrt_psd(s, 1e-3), (S,))
    # batched groups
    B = torch.randn(3, 4, 4, dtype=torch.float64)
    Sb = (B @ B.transpose(1, 2)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: inv_sqrt_psd(s, 1e-2), (Sb,))
    # identity (all eigenvalues equal): autograd through eigh gives non-finite
    # gradients; the closed form gives d/dS tr((S+eps)^-1/2) = -1/2 (1+eps)^-3/2 I
    eye = torch.eye(4, dtype=torch.float64, requires_grad=True)
    inv_sqrt_psd(eye, 1e-5).trace().backward()
    np.testing.assert_allclose(
        _np(eye.grad), -0.5 * (1 + 1e-5) ** -1.5 * np.eye(4), rtol=1e-10
    )


def test_dbn_gradients_finite_on_collapsed_batch():
    x = torch.ones(32, 6, dtype=torch.float32)
    x = (x + 1e-4 * torch.randn(32, 6)).requires_grad_(True)
    out, _ = DecorrelatedBatchNorm(eps=1e-5)({"user": x})
    (out["user"] ** 3).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_dbn_small_batch_uses_running_stats_and_does_not_update():
    dbn = DecorrelatedBatchNorm()
    dbn.setup({"tables": {"user": 3}})
    x = torch.randn(1, 3)
    out, _ = dbn({"user": x})
    torch.testing.assert_close(out["user"], x)  # running stats start at 0 and I
    assert int(dbn.states_["t_user"].num_batches_tracked) == 0


# ----------------------------------------------------------------- DirectSpec


def _directspec_ref(x, alpha, tau, shrink=0.0):
    xh = _rownorm(np.asarray(x, dtype=np.float64))
    tau = np.broadcast_to(np.asarray(tau, dtype=np.float64), (len(xh), len(xh)))
    w = np.exp(tau * (xh @ xh.T))
    w = w / w.sum(axis=1, keepdims=True)
    out = xh - alpha * w @ xh
    if shrink > 0:
        out = out * (shrink * np.linalg.norm(out, axis=1, keepdims=True))
    return out


@pytest.mark.parametrize(
    ("alpha", "tau", "shrink"), [(1.0, 3.0, 0.0), (0.7, 4.0, 0.02)]
)
def test_directspec_equals_reference(rng, alpha, tau, shrink):
    batch = _batch(rng, n=15, d=4)
    reg = DirectSpec(keep_norm=False, alpha=alpha, tau=tau, shrink_norm=shrink)
    out, pen = reg(batch)
    assert float(pen) == 0.0 and reg.kind == "transform"
    for k in batch:
        np.testing.assert_allclose(
            _np(out[k]), _directspec_ref(_np(batch[k]), alpha, tau, shrink), atol=1e-12
        )
    # extra rows (negatives) are balanced against the batch, identity in eval
    extra = torch.as_tensor(rng.standard_normal((3, 4)))
    keys = _rownorm(_np(batch["item"]))
    eh = _rownorm(_np(extra))
    w = _softmax_rows(tau * eh @ keys.T)
    ref = eh - alpha * w @ keys
    if shrink > 0:
        ref = ref * (shrink * np.linalg.norm(ref, axis=1, keepdims=True))
    np.testing.assert_allclose(_np(reg.transform_extra("item", extra)), ref, atol=1e-12)
    reg.eval()
    assert reg.transform_extra("item", extra) is extra


@pytest.mark.parametrize("cls", [DirectSpec, DirectSpecPlus])
def test_directspec_keep_norm_rescales_to_input_norms(rng, cls):
    # keep_norm: the reference's balanced direction, the input row's norm
    batch = {k: v * 7.0 for k, v in _batch(rng, n=15, d=4).items()}
    reg = cls(alpha=0.8, keep_norm=True)
    out, _ = reg(batch)
    tau = 3.0  # DirectSpec's tau, DirectSpecPlus's tau1 without interactions
    for k, value in batch.items():
        x = _np(value)
        ref = _rownorm(_directspec_ref(x, 0.8, tau)) * np.linalg.norm(
            x, axis=1, keepdims=True
        )
        np.testing.assert_allclose(_np(out[k]), ref, atol=1e-10)
    extra = torch.as_tensor(rng.standard_normal((3, 4))) * 0.01
    keys = _rownorm(_np(batch["item"]))
    eh = _rownorm(_np(extra))
    ref = eh - 0.8 * _softmax_rows(tau * eh @ keys.T) @ keys
    ref = _rownorm(ref) * np.linalg.norm(_np(extra), axis=1, keepdims=True)
    np.testing.assert_allclose(_np(reg.transform_extra("item", extra)), ref, atol=1e-10)
    with pytest.raises(ValueError, match="keep_norm=True and shrink_norm"):
        cls(keep_norm=True, shrink_norm=0.03)


def test_directspec_gradcheck_and_spectrum_balancing(rng):
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    reg = DirectSpec(keep_norm=False, alpha=0.8, tau=2.0)
    assert torch.autograd.gradcheck(lambda t: reg({"user": t})[0]["user"], (x,))
    # the transform shrinks the dominant direction of a skewed batch most
    skew = torch.as_tensor(
        rng.standard_normal((200, 4)) * np.array([5.0, 1, 1, 1]) + 2.0
    )
    xh = torch.nn.functional.normalize(skew, dim=1)
    out, _ = DirectSpec(keep_norm=False, alpha=1.0, tau=3.0)({"user": skew})
    s_in = torch.linalg.svdvals(xh)
    s_out = torch.linalg.svdvals(out["user"])
    r_in = s_in / s_in.sum()
    r_out = s_out / s_out.sum()
    assert r_out[0] < r_in[0]


def _random_interactions(rng, n_users, n_items, density):
    R = sp.random(n_users, n_items, density=density, format="csr", random_state=0)
    R.data[:] = rng.integers(1, 4, size=R.nnz)  # counts: only the pattern matters
    return R


def test_directspec_plus_temperatures_equal_dense_reference(rng):
    n_users, n_items = 30, 40
    R = _random_interactions(rng, n_users, n_items, 0.06)
    Rd = (R.toarray() > 0).astype(float)
    reg = DirectSpecPlus(keep_norm=False, alpha=0.7, tau0=3.5, tau1=4.0)
    reg.setup({"interactions": R, "n_users": n_users, "n_items": n_items})
    B = 25
    uids = rng.integers(0, n_users, B)
    iids = rng.integers(0, n_items, B)
    batch = _batch(rng, n=B, d=5)
    ctx = {"user_ids": torch.as_tensor(uids), "item_ids": torch.as_tensor(iids)}
    out, _ = reg(batch, ctx)
    user_con = np.where(Rd @ Rd.T == 0, 4.0, 3.5)  # the reference's dense matrices
    item_con = np.where(Rd.T @ Rd == 0, 4.0, 3.5)
    tau_u = user_con[np.ix_(uids, uids)]
    tau_i = item_con[np.ix_(iids, iids)]
    assert (tau_u == 3.5).any() and (tau_u == 4.0).any()
    got = reg.temperatures("user", B, ctx, torch.device("cpu"), torch.float64)
    np.testing.assert_array_equal(_np(got), tau_u)
    np.testing.assert_allclose(
        _np(out["user"]), _directspec_ref(_np(batch["user"]), 0.7, tau_u), atol=1e-12
    )
    np.testing.assert_allclose(
        _np(out["item"]), _directspec_ref(_np(batch["item"]), 0.7, tau_i), atol=1e-12
    )
    # other tables (CTR fields) use tau1 everywhere
    out2, _ = reg({"C1": batch["user"]}, None)
    np.testing.assert_allclose(
        _np(out2["C1"]), _directspec_ref(_np(batch["user"]), 0.7, 4.0), atol=1e-12
    )
    with pytest.raises(ValueError, match="user_ids"):
        reg(batch, None)
    with pytest.raises(ValueError, match="outside"):
        reg(batch, {"user_ids": torch.full((B,), n_users), "item_ids": ctx["item_ids"]})


def test_directspec_plus_scales_without_dense_user_matrix():
    # a dense |U|x|U| matrix for 2 million users would need 32 TB
    n_users, n_items = 2_000_000, 500_000
    rows = np.arange(0, n_users, 1000)
    cols = rows % n_items
    R = sp.csr_matrix((np.ones_like(rows), (rows, cols)), shape=(n_users, n_items))
    R = R + sp.csr_matrix(
        (np.ones_like(rows[1:]), (rows[1:], cols[:-1])), shape=(n_users, n_items)
    )
    reg = DirectSpecPlus(keep_norm=False, tau0=1.0, tau1=2.0)
    reg.setup({"interactions": R})
    uids = np.array([0, 1000, 2000, 5, 1000])
    mask = reg.shared_mask("user", uids)
    expected = np.array(
        [
            [1, 1, 0, 0, 1],
            [1, 1, 1, 0, 1],
            [0, 1, 1, 0, 1],
            [0, 0, 0, 0, 0],
            [1, 1, 1, 0, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(mask, expected)


def test_directspec_plus_needs_sparse_interactions():
    with pytest.raises(TypeError, match="interactions"):
        DirectSpecPlus().setup({"interactions": np.ones((3, 3))})


# ----------------------------------------------------------------- DirectAU / uniformity


def _unif_ref(x, t=2.0):
    z = _rownorm(x)
    n = len(z)
    vals = [
        np.exp(-t * np.sum((z[i] - z[j]) ** 2))
        for i in range(n)
        for j in range(i + 1, n)
    ]
    return np.log(np.mean(vals))


def _align_ref(x, y, alpha=2.0):
    return np.mean(np.linalg.norm(_rownorm(x) - _rownorm(y), axis=1) ** alpha)


@pytest.mark.parametrize(("gamma", "alpha"), [(1.0, 2.0), (5.0, 2.0), (0.5, 1.0)])
def test_directau_equals_reference(rng, gamma, alpha):
    batch = _batch(rng, n=12, d=4)
    _, pen = DirectAU(weight=1.0, gamma=gamma, alpha=alpha)(batch)
    u, i = _np(batch["user"]), _np(batch["item"])
    expected = _align_ref(u, i, alpha) + gamma * 0.5 * (_unif_ref(u) + _unif_ref(i))
    assert float(pen) == pytest.approx(expected, rel=1e-10)
    _, pen_no_align = DirectAU(weight=1.0, gamma=gamma, alignment=False)(batch)
    assert float(pen_no_align) == pytest.approx(
        gamma * 0.5 * (_unif_ref(u) + _unif_ref(i))
    )


def test_uniformity_alone_and_on_ctr_fields(rng):
    batch = _batch(rng, n=10, d=3, names=("C1", "C2", "C3"))
    _, pen = UniformityRegularizer(weight=1.0, t=1.5, table_weights={"C3": 0.0})(batch)
    expected = (_unif_ref(_np(batch["C1"]), 1.5) + _unif_ref(_np(batch["C2"]), 1.5)) / 2
    assert float(pen) == pytest.approx(expected, rel=1e-10)
    # DirectAU on CTR fields: no user/item pair, uniformity only
    _, pen_au = DirectAU(weight=1.0, gamma=2.0)(batch)
    assert float(pen_au) == pytest.approx(
        2.0 * np.mean([_unif_ref(_np(batch[k])) for k in batch]), rel=1e-10
    )
    with pytest.raises(ValueError, match="pairs"):
        DirectAU(weight=1.0, pairs=[("C1", "user")])(batch)


def test_uniformity_gradients_finite_with_duplicate_rows():
    x = torch.randn(6, 4, dtype=torch.float64)
    x = torch.cat([x, x[:2]]).requires_grad_(True)  # a popular item repeated
    _, pen = UniformityRegularizer(weight=1.0)({"item": x})
    pen.backward()
    assert torch.isfinite(x.grad).all()
    y = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: DirectAU(weight=1.0)({"user": t, "item": t.flip(0)})[1], (y,)
    )


@pytest.mark.parametrize("cls", [UniformityRegularizer, DirectAU])
def test_uniformity_on_row_subsets_tracks_the_exact_value(cls):
    """``max_rows``: the mean kernel over the pairs of a random subset of the
    batch's rows is an unbiased estimate of the batch's (a U-statistic), so
    ``exp`` of the uniformity averages to the exact one's, and the estimate
    itself stays close to the exact value (just below it on average)."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(150, 6, dtype=torch.float64, generator=gen)
    table[:, 0] *= 3.0  # not uniform on the sphere
    ids = torch.multinomial(torch.arange(1.0, 151.0), 400, True, generator=gen)
    batch = {"item": table[ids]}  # popular rows repeated, as in a CF batch
    context = {"item_ids": ids}
    params = {"weight": 1.0, "alignment": False} if cls is DirectAU else {"weight": 1.0}
    exact = float(cls(**params)(batch, context)[1])
    assert float(cls(max_rows=400, **params)(batch, context)[1]) == exact
    reg = cls(max_rows=48, **params)
    torch.manual_seed(0)
    draws = np.array([float(reg(batch, context)[1]) for _ in range(300)])
    assert np.ptp(draws) > 0  # a new subset every call
    kernel = np.exp(draws)
    assert abs(kernel.mean() - np.exp(exact)) < 3.0 * kernel.std(ddof=1) / np.sqrt(300)
    assert draws.mean() == pytest.approx(exact, rel=0.05)
    # the closed form on the same subset, and no gradient outside it
    torch.manual_seed(1)
    leaf = batch["item"].clone().requires_grad_(True)
    expected_penalty = reg({"item": leaf}, context)[1]
    expected = torch.autograd.grad(expected_penalty, leaf)[0]
    torch.manual_seed(1)
    penalty, grads = reg.value_and_grad(batch, context)
    assert float(penalty) == pytest.approx(float(expected_penalty), rel=1e-12)
    torch.testing.assert_close(grads["item"], expected, rtol=1e-9, atol=1e-12)
    assert int((grads["item"].abs().sum(1) > 0).sum()) == 48


# ----------------------------------------------------------------- SV variance, coding rate


def test_sv_variance_equals_reference(rng):
    batch = _batch(rng, n=30, d=5, names=("C1", "C2"))
    _, pen = SingularValueVariance(weight=1.0)(batch)
    vals = []
    for k in batch:
        s = np.linalg.svd(_np(batch[k]), compute_uv=False)
        vals.append(np.var(s / s.mean(), ddof=1))
    assert float(pen) == pytest.approx(np.mean(vals), rel=1e-10)
    # zero for a perfectly balanced spectrum
    Q, _ = np.linalg.qr(rng.standard_normal((30, 5)))
    _, pen0 = SingularValueVariance(weight=1.0)({"C1": torch.as_tensor(Q)})
    assert float(pen0) == pytest.approx(0.0, abs=1e-12)
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: SingularValueVariance(weight=1.0)({"a": t})[1], (x,)
    )


@pytest.mark.parametrize("normalize", [True, False])
def test_coding_rate_equals_reference(rng, normalize):
    batch = _batch(rng, n=20, d=4)
    _, pen = CodingRate(weight=1.0, eps=0.5, normalize=normalize)(batch)
    vals = []
    for k in batch:
        Z = _np(batch[k])
        if normalize:
            Z = _rownorm(Z)
        n, d = Z.shape
        vals.append(-0.5 * np.linalg.slogdet(np.eye(d) + d / (n * 0.25) * Z.T @ Z)[1])
    assert float(pen) == pytest.approx(np.mean(vals), rel=1e-10)
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: CodingRate(weight=1.0)({"a": t})[1], (x,))


# ----------------------------------------------------------------- user-written


def test_user_subclass_and_callable():
    class MeanNorm(Regularizer):
        def penalty(self, embeddings, context=None):
            return sum(x.norm(dim=1).mean() for x in embeddings.values())

    x = torch.ones(4, 3)
    _, pen = MeanNorm(weight=2.0)({"user": x})
    assert float(pen) == pytest.approx(2 * np.sqrt(3))
    reg = resolve_regularizer(lambda emb, ctx: emb["user"].pow(2).mean())
    _, pen = reg({"user": x})
    assert float(pen) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [12, 14])  # full blocks only / a smaller last block
def test_directspec_blocks_equal_per_block_reference(rng, n):
    batch = _batch(rng, n=n, d=3)
    bs = 4
    starts = list(range(0, n, bs))
    reg = DirectSpec(keep_norm=False, alpha=0.9, tau=2.0, block_size=bs)
    out, _ = reg(batch)
    for k in batch:
        x = _np(batch[k])
        ref = np.concatenate([_directspec_ref(x[s : s + bs], 0.9, 2.0) for s in starts])
        np.testing.assert_allclose(_np(out[k]), ref, atol=1e-12)
    # two negatives per batch row, ordered by batch row: balanced in its block
    extra = torch.as_tensor(rng.standard_normal((2 * n, 3)))
    keys = _rownorm(_np(batch["item"]))
    eh = _rownorm(_np(extra))
    ref = []
    for s in starts:
        kb = keys[s : s + bs]
        qb = eh[2 * s : 2 * (s + bs)]
        ref.append(qb - 0.9 * _softmax_rows(2.0 * qb @ kb.T) @ kb)
    got = reg.transform_extra("item", extra)
    np.testing.assert_allclose(_np(got), np.concatenate(ref), atol=1e-12)
    # DirectSpec+ with blocks: per-block pair temperatures
    R = _random_interactions(rng, 10, 12, 0.2)
    Rd = (R.toarray() > 0).astype(float)
    plus = DirectSpecPlus(keep_norm=False, alpha=0.9, tau0=1.0, tau1=3.0, block_size=bs)
    plus.setup({"interactions": R})
    uids = rng.integers(0, 10, n)
    out, _ = plus({"user": batch["user"]}, {"user_ids": torch.as_tensor(uids)})
    tau = np.where(Rd @ Rd.T == 0, 3.0, 1.0)[np.ix_(uids, uids)]
    x = _np(batch["user"])
    ref = np.concatenate(
        [
            _directspec_ref(x[s : s + bs], 0.9, tau[s : s + bs, s : s + bs])
            for s in starts
        ]
    )
    np.testing.assert_allclose(_np(out["user"]), ref, atol=1e-12)


def test_dbn_setup_keeps_running_statistics_of_same_dim(rng):
    dbn = DecorrelatedBatchNorm()
    dbn.setup({"tables": {"user": 4}})
    dbn(_batch(rng, n=30, d=4, names=("user",)))
    before = dbn.states_["t_user"].running_mean.clone()
    dbn.setup({"tables": {"user": 4, "item": 4}})  # e.g. partial_fit
    torch.testing.assert_close(dbn.states_["t_user"].running_mean, before)
    assert int(dbn.states_["t_user"].num_batches_tracked) == 1
    dbn.setup({"tables": {"user": 6}})  # another dimension: fresh state
    assert dbn.states_["t_user"].running_mean.shape == (6,)
    assert int(dbn.states_["t_user"].num_batches_tracked) == 0


def test_documented_weight_defaults_are_the_real_ones():
    """Every built-in regularizer documents the ``weight`` default it really has;
    those without a penalty (transforms, layers) neither have nor document one."""
    for cls in BUILTIN.values():
        if cls.kind != "penalty":
            assert "weight" not in inspect.signature(cls).parameters, cls.__name__
            assert "weight :" not in cls.__doc__, cls.__name__
            continue
        real = inspect.signature(cls).parameters["weight"].default
        documented = re.search(r"weight : float, default=(\S+)", cls.__doc__)
        assert documented, cls.__name__
        assert float(documented.group(1)) == real == cls().weight, cls.__name__
