"""Closed-form penalty gradients equal autograd's (``Regularizer.value_and_grad``).

The compiled MF step takes a penalty regularizer's value and gradient from
``value_and_grad``, which uses the regularizer's closed form
(``penalty_grad``) where it has one. Here every closed form is compared with
autograd through ``penalty`` (the plain path, itself checked against the
papers' formulas in ``test_regularizers.py``) on random batches: float32 and
float64, several shapes (fewer rows than dimensions included), rows repeated
as in a CF batch (popular ids), with and without the ids in the context.
"""

import pytest
import torch

from skcollapse.regularizers import Regularizer, resolve_regularizer

# (name, params, whether a closed form must be taken)
CASES = [
    ("logdet", {}, True),
    ("logdet", {"scale_free": False}, True),
    ("logdet", {"center": True, "normalize": False, "scale_free": False}, True),
    ("logdet", {"center": True, "table_weights": {"user": 0.0, "item": 3.0}}, True),
    ("logdet", {"tables": "item"}, True),
    ("logdet", {"source": "unique"}, False),
    ("sv_variance", {}, True),
    ("sv_variance", {"table_weights": {"user": 0.5}}, True),
    ("coding_rate", {}, True),
    ("coding_rate", {"normalize": False, "eps": 0.3}, True),
    ("coding_rate", {"table_weights": {"user": 0.0}}, True),
    ("uniformity", {}, True),
    ("uniformity", {"t": 40.0, "table_weights": {"item": 2.0}}, True),
    ("directau", {}, True),
    ("directau", {"gamma": 5.0, "alpha": 3.0}, True),
    ("directau", {"alignment": False, "tables": "item"}, True),
    ("directau", {"pairs": [("item", "user"), ("user", "user")], "alpha": 1.0}, True),
]
SHAPES = [(60, 5), (300, 16), (40, 64)]


def _batch(B, d, dtype, seed=0, scale=1.0):
    """A CF-like batch: rows of two tables fetched by popularity-skewed ids."""
    gen = torch.Generator().manual_seed(seed)
    n_rows = max(2 * d, B // 3) if B > d else 4 * B  # full rank when B > d
    tables = {k: scale * torch.randn(n_rows, d, generator=gen, dtype=dtype)
              for k in ("user", "item")}
    # a low-rank tilt, so that the spectrum is not flat
    for table in tables.values():
        table[:, 0] *= 4.0
    weights = torch.arange(1.0, n_rows + 1) ** 1.5
    if B > d:
        ids = {k: torch.multinomial(weights, B, True, generator=gen) for k in tables}
    else:  # no repeats: B distinct rows, so the batch has rank B
        ids = {k: torch.randperm(n_rows, generator=gen)[:B] for k in tables}
    batch = {k: tables[k][ids[k]] for k in tables}
    context = {"user_ids": ids["user"], "item_ids": ids["item"]}
    return batch, context


def _autograd(reg, batch, context):
    leaves = {k: v.clone().requires_grad_(True) for k, v in batch.items()}
    _, penalty = reg(leaves, context)
    grads = torch.autograd.grad(penalty, list(leaves.values()), allow_unused=True)
    return penalty.detach(), {
        k: torch.zeros_like(v) if g is None else g
        for (k, v), g in zip(leaves.items(), grads)
    }


def _assert_close(got, expected, dtype):
    """Equal up to rounding: relative to each entry and to the largest one
    (a ridge of 1e-6 makes the covariance of fewer rows than dimensions
    ill-conditioned, and rounding then moves the small entries most)."""
    rtol = 1e-7 if dtype == torch.float64 else 1e-5
    scale = float(expected.abs().max()) or 1.0
    atol = scale * (1e-9 if dtype == torch.float64 else 1e-6)
    torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)


def _assert_as_accurate(got, autograd, exact):
    """float32: ``got`` is as close to the float64 ``exact`` value as autograd's
    float32 result is (the pairwise penalties compute in the rows' dtype, and
    a large temperature amplifies its rounding for both)."""
    exact = exact.double()
    scale = float(exact.abs().max()) or 1.0
    err_autograd = float((autograd.double() - exact).abs().max())
    err = float((got.double() - exact).abs().max())
    assert err <= 3.0 * err_autograd + 1e-6 * scale, (err, err_autograd, scale)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{b}x{d}" for b, d in SHAPES])
@pytest.mark.parametrize(("name", "params", "closed"), CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)])
@pytest.mark.parametrize("with_ids", [True, False], ids=["ids", "no-ids"])
def test_closed_form_equals_autograd(name, params, closed, shape, dtype, with_ids):
    batch, context = _batch(*shape, dtype)
    if not with_ids:
        context = None
    reg = resolve_regularizer(name)(weight=0.7, **params)
    if closed:
        assert reg.penalty_grad(batch, context) is not None
    expected_pen, expected = _autograd(reg, batch, context)
    expected_last = reg.last_penalty_
    reg.last_penalty_ = None
    penalty, grads = reg.value_and_grad(batch, context)
    assert reg.last_penalty_ == pytest.approx(expected_last, rel=1e-5)
    assert set(grads) == set(batch)
    assert penalty.dtype == expected_pen.dtype and not penalty.requires_grad
    for k in batch:
        assert grads[k].shape == batch[k].shape and grads[k].dtype == dtype
    if dtype == torch.float64:
        _assert_close(penalty, expected_pen, dtype)
        for k in batch:
            _assert_close(grads[k], expected[k], dtype)
    else:  # against float64 autograd, as accurate as float32 autograd
        exact_pen, exact = _autograd(reg, {k: v.double() for k, v in batch.items()},
                                     context)
        _assert_as_accurate(penalty, expected_pen, exact_pen)
        for k in batch:
            _assert_as_accurate(grads[k], expected[k], exact[k])
    assert any(float(g.abs().max()) > 0 for g in grads.values())


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_closed_forms_at_other_scales(scale):
    batch, context = _batch(300, 16, torch.float64, seed=1, scale=scale)
    for name, params, _ in CASES[:3] + CASES[6:7] + CASES[8:9]:
        reg = resolve_regularizer(name)(**params)
        expected_pen, expected = _autograd(reg, batch, context)
        penalty, grads = reg.value_and_grad(batch, context)
        _assert_close(penalty, expected_pen, torch.float64)
        for k in batch:
            _assert_close(grads[k], expected[k], torch.float64)


@pytest.mark.parametrize("name", ["uniformity", "directau"])
def test_pairwise_closed_form_in_blocks(name, monkeypatch):
    """The pairwise kernel's upper triangle in many blocks (a batch larger
    than a block) gives autograd's value and gradient."""
    from skcollapse.regularizers import _directau

    monkeypatch.setattr(_directau, "_PAIR_BLOCK", 16)
    batch, context = _batch(300, 8, torch.float64, seed=2)
    for t in (2.0, 200.0):  # a fixed and a streamed shift
        reg = resolve_regularizer(name)(t=t)
        expected_pen, expected = _autograd(reg, batch, context)
        penalty, grads = reg.value_and_grad(batch, context)
        _assert_close(penalty, expected_pen, torch.float64)
        for k in batch:
            _assert_close(grads[k], expected[k], torch.float64)


def test_sv_variance_falls_back_to_autograd_when_singular_values_vanish():
    # repeated rows: rank 3 < min(B, d) = 8, the spectrum has exact zeros
    rows = torch.randn(3, 8, dtype=torch.float64)
    batch = {"item": rows[torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])]}
    reg = resolve_regularizer("sv_variance")()
    assert reg.penalty_grad(batch) is None
    expected_pen, expected = _autograd(reg, batch, None)
    penalty, grads = reg.value_and_grad(batch)
    _assert_close(penalty, expected_pen, torch.float64)
    _assert_close(grads["item"], expected["item"], torch.float64)


def test_value_and_grad_without_closed_form_uses_autograd():
    """A regularizer without ``penalty_grad`` (a user's callable) still works:
    autograd on the rows, the penalty weighted, zeros for an unused table."""
    reg = resolve_regularizer(lambda emb, ctx: emb["user"].pow(3).sum())
    reg.weight = 2.0
    batch, _ = _batch(30, 4, torch.float64)
    assert reg.penalty_grad(batch) is None
    penalty, grads = reg.value_and_grad(batch)
    assert float(penalty) == pytest.approx(2.0 * float(batch["user"].pow(3).sum()))
    torch.testing.assert_close(grads["user"], 6.0 * batch["user"] ** 2)
    torch.testing.assert_close(grads["item"], torch.zeros_like(batch["item"]))
    assert not batch["user"].requires_grad


def test_base_regularizer_has_no_closed_form():
    batch, _ = _batch(10, 3, torch.float32)
    reg = Regularizer()
    assert reg.penalty_grad(batch) is None
    penalty, grads = reg.value_and_grad(batch)
    assert float(penalty) == 0.0 and all(float(g.abs().max()) == 0 for g in grads.values())


# ----------------------------------------------------------------- DBN's statistics
def _whitening_reference(dbn, x, counts=None):
    """DBN's batch mean and whitening matrix as plain torch expressions, one
    group at a time, differentiated by autograd (``inv_sqrt_psd`` for the
    inverse square root, itself gradchecked in ``test_regularizers.py``)."""
    from skcollapse.regularizers._dbn import inv_sqrt_psd

    X = x.to(torch.float64)
    n, d = X.shape
    if counts is None:
        mu = X.mean(dim=0)
        Xs, total = X - mu, float(n)
    else:
        w = counts.to(X)
        total = w.sum()
        mu = w @ X / total
        Xs = (X - mu) * w.sqrt().unsqueeze(1)
    m = dbn._groups(d)[0]
    blocks = []
    for a in range(0, d, m):
        Xg = Xs[:, a:a + m]
        S = Xg.T @ Xg / total
        W = inv_sqrt_psd(S, dbn._eps(S))
        if dbn.keep_scale:
            W = W * torch.diagonal(S).mean().clamp_min(0.0).sqrt()
        blocks.append(W)
    return mu, torch.block_diag(*blocks)


DBN_CASES = [
    {}, {"group_size": 3}, {"group_size": 4, "keep_scale": True},
    {"relative_eps": False, "eps": 0.05}, {"keep_scale": True, "eps": 1e-3},
    {"group_size": 2, "relative_eps": False, "eps": 1e-4, "keep_scale": True},
]


@pytest.mark.parametrize("params", DBN_CASES, ids=[str(i) for i in range(len(DBN_CASES))])
@pytest.mark.parametrize("counted", [False, True], ids=["rows", "counted"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dbn_whitening_backward_equals_autograd(params, counted, dtype):
    """The one-node closed-form backward of DBN's batch statistics equals
    autograd through the plain expressions (7 columns: groups of 3 leave one
    column over), with and without row counts."""
    from skcollapse.regularizers import DecorrelatedBatchNorm

    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(40, 7, generator=gen, dtype=torch.float64)
         @ torch.randn(7, 7, generator=gen, dtype=torch.float64)).to(dtype)
    counts = torch.randint(1, 4, (40,), generator=gen) if counted else None
    A = torch.randn(7, 7, generator=gen, dtype=torch.float64)
    b = torch.randn(7, generator=gen, dtype=torch.float64)
    dbn = DecorrelatedBatchNorm(**params)
    results = []
    for whiten in (dbn.whitening, lambda t, c: _whitening_reference(dbn, t, c)):
        leaf = x.clone().requires_grad_(True)
        mu, W = whiten(leaf, counts)
        loss = (A * W).sum() + (b * mu).sum()
        results.append((mu.detach(), W.detach(), torch.autograd.grad(loss, leaf)[0]))
    for got, expected in zip(*results):
        assert got.dtype == expected.dtype
        rtol = 1e-9 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(got, expected, rtol=rtol,
                                   atol=rtol * float(expected.abs().max()))


@pytest.mark.parametrize("params", [{}, {"group_size": 2}, {"keep_scale": True}],
                         ids=["full", "groups", "keep_scale"])
def test_dbn_whitening_gradcheck(params):
    """Against finite differences (an absolute eps: a relative one is held
    constant by the backward pass, by design)."""
    from skcollapse.regularizers import DecorrelatedBatchNorm

    dbn = DecorrelatedBatchNorm(relative_eps=False, eps=0.1, **params)
    x = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    counts = torch.tensor([1, 2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 4])
    assert torch.autograd.gradcheck(lambda t: dbn.whitening(t), (x,))
    assert torch.autograd.gradcheck(lambda t: dbn.whitening(t, counts), (x,))
