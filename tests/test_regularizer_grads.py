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
    rtol = 1e-9
    if dtype == torch.float32:  # float32 products: the bound of the penalties'
        rtol = max(1e-5, 8.0 * 40 ** 0.5 * U32 * _dbn_cond(dbn, x.double(), counts))
    for got, expected in zip(*results):
        assert got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, rtol=rtol,
                                   atol=rtol * float(expected.abs().max()))


def _dbn_cond(dbn, x, counts=None):
    """The largest condition number of DBN's ``Σ + ε I`` over its groups of
    columns of the float64 rows ``x`` (row ``a`` counted ``counts[a]`` times)."""
    w = torch.ones(x.shape[0], dtype=x.dtype) if counts is None else counts.to(x)
    Xc = x - w @ x / w.sum()
    m = dbn._groups(x.shape[1])[0]
    conds = []
    for a in range(0, x.shape[1], m):
        Xg = Xc[:, a:a + m]
        S = (Xg * w.unsqueeze(1)).T @ Xg / w.sum()
        eps = dbn._eps(S)
        conds.append(float(torch.linalg.cond(S + eps * torch.eye(S.shape[0],
                                                                  dtype=S.dtype))))
    return max(conds)


@pytest.mark.parametrize("params", [{}, {"eps": 1e-3}, {"group_size": 16}],
                         ids=["default", "full", "groups"])
def test_dbn_float32_rows_take_float32_products(params, monkeypatch):
    """Float32 rows of the Gowalla size, soft (the default), full and group
    whitening: the mean, centring and Gram products run in float32 (the
    statistics from there in float64), and the batch mean, whitening matrix
    and gradient are the float64 reference's up to the bound of the
    penalties' float32 products (``8 sqrt(n) u cond(Σ + ε I)``)."""
    from skcollapse.regularizers import DecorrelatedBatchNorm, _dbn

    rows = _spectrum_batch(2048, 64, 40.0, seed=7, offset=3.0)["user"]
    x = rows.float()
    dbn = DecorrelatedBatchNorm(**params)
    seen, statistics = [], _dbn._batch_statistics

    def spy(X, counts, dbn):
        seen.append(X.dtype)
        return statistics(X, counts, dbn)

    monkeypatch.setattr(_dbn, "_batch_statistics", spy)
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(64, 64, generator=gen, dtype=torch.float64)
    b = torch.randn(64, generator=gen, dtype=torch.float64)
    results = []
    for whiten, t in ((dbn.whitening, x), (lambda t, c: _whitening_reference(dbn, t, c),
                                           x.double())):
        leaf = t.clone().requires_grad_(True)
        mu, W = whiten(leaf, None)
        loss = (A * W).sum() + (b * mu).sum()
        results.append((mu.detach(), W.detach(),
                        torch.autograd.grad(loss, leaf)[0].double()))
    assert seen == [torch.float32]  # no float64 recomputation
    rtol = 8.0 * 2048 ** 0.5 * U32 * _dbn_cond(dbn, x.double())
    assert rtol < 1e-3  # float32 by the closed form's own criterion
    for got, expected in zip(*results):
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


# ------------------------------------------------- float32 rows, float32 products
#: the unit roundoff of float32
U32 = 2.0 ** -24
#: the covariance penalties whose closed forms take float32 products from
#: float32 rows, and the condition number of the d x d matrix each factorises
#: (computed here in float64 from the rows as the penalty sees them)
FLOAT32_COND = {
    "logdet": lambda reg, x: torch.linalg.cond(reg.covariance(x)),
    "sv_variance": lambda reg, x: torch.linalg.cond(x.T @ x),
    "coding_rate": lambda reg, x: torch.linalg.cond(
        torch.eye(x.shape[1], dtype=x.dtype) + x.shape[1]
        / (x.shape[0] * float(reg.eps) ** 2)
        * torch.nn.functional.normalize(x, dim=1).T
        @ torch.nn.functional.normalize(x, dim=1)),
}
#: (name, params, offset of the rows' mean in units of their spread)
FLOAT32_CASES = [
    ("logdet", {}, 0.0), ("logdet", {"scale_free": False}, 0.0),
    # rows far from their mean: centring in float32 keeps the spread
    ("logdet", {"center": True}, 100.0), ("sv_variance", {}, 0.0),
    ("coding_rate", {}, 0.0),
]


def _spectrum_batch(n, d, cond, seed, offset=0.0):
    """float64 rows of two tables whose Gram matrices have condition number
    about ``cond`` (``cond`` and ``cond / 2``): singular values falling
    geometrically along random directions, as in a trained table; their mean
    ``offset`` times the largest spread away from 0 (``offset > 0``)."""
    gen = torch.Generator().manual_seed(seed)
    batch = {}
    for name, c in (("user", cond), ("item", cond / 2.0)):
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
        sv = torch.logspace(0.0, -0.5 * torch.log10(torch.tensor(c)).item(), d,
                            dtype=torch.float64)
        rows = (torch.randn(n, d, generator=gen, dtype=torch.float64) * sv) @ q.T
        batch[name] = rows + offset * torch.nn.functional.normalize(
            torch.randn(d, generator=gen, dtype=torch.float64), dim=0)
    return batch


def _spy_gram(monkeypatch):
    """Record the dtype of the rows of every Gram matrix the closed forms
    form; check that every ``d x d`` factorisation is float64."""
    from skcollapse.regularizers import _logdet, _spectral, _utils

    seen, gram64 = [], _utils.gram64

    def spy(X, counts=None):
        seen.append(X.dtype)
        return gram64(X, counts)

    def checked(factorise):
        def factorise_float64(M):
            assert M.dtype == torch.float64, M.dtype
            return factorise(M)
        return factorise_float64

    # Cholesky runs in _utils.accurate_spd_inverse, eigh in the modules
    monkeypatch.setattr(_utils, "spd_inverse", checked(_utils.spd_inverse))
    for module in (_logdet, _spectral):
        monkeypatch.setattr(module, "gram64", spy)
        if hasattr(module, "sym_eigh"):
            monkeypatch.setattr(module, "sym_eigh", checked(_utils.sym_eigh))
    return seen


@pytest.mark.parametrize(("name", "params", "offset"), FLOAT32_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(FLOAT32_CASES)])
@pytest.mark.parametrize("shape", [(2048, 64), (300, 16)],
                         ids=["2048x64", "300x16"])
def test_float32_rows_take_float32_products(name, params, offset, shape,
                                            monkeypatch):
    """Float32 rows of a well-conditioned batch (the Gowalla size among them):
    the Gram matrices and the gradient products run in float32, and the
    result is the float64 autograd reference's up to what float32
    accumulation can move it.

    The bound: a float32 sum of ``n`` terms is off by about ``sqrt(n) u``
    of the sum of their magnitudes (``u = 2**-24``; Higham & Mary 2019, the
    probabilistic bound), and the factorisation (inverse, eigenvectors)
    amplifies a relative perturbation of the ``d x d`` matrix by at most its
    condition number; a factor 8 for the constants. The realised errors are
    far smaller (MKL's blocked sums), so a closed form that drops a term or
    computes at the wrong scale fails it by orders of magnitude."""
    n, d = shape
    exact_batch = _spectrum_batch(n, d, 40.0, seed=3, offset=offset)
    batch = {k: v.float() for k, v in exact_batch.items()}
    rows64 = {k: v.double() for k, v in batch.items()}  # the rows as stored
    reg = resolve_regularizer(name)(weight=0.7, **params)
    seen = _spy_gram(monkeypatch)
    penalty, grads = reg.value_and_grad(batch, None)
    assert seen == [torch.float32, torch.float32]  # no float64 recomputation
    exact_pen, exact = _autograd(reg, rows64, None)
    conds = {k: float(FLOAT32_COND[name](reg, x)) for k, x in rows64.items()}
    for k in batch:
        assert grads[k].dtype == torch.float32
        rel = 8.0 * n ** 0.5 * U32 * conds[k]
        assert rel < 1e-3  # the closed form's own criterion for float32
        scale = float(exact[k].abs().max())
        err = float((grads[k].double() - exact[k]).abs().max())
        assert err <= rel * scale, (k, err / scale, rel)
    rel = 8.0 * n ** 0.5 * U32 * max(conds.values())
    assert abs(float(penalty) - float(exact_pen)) <= rel * max(1.0, abs(float(exact_pen)))


@pytest.mark.parametrize(("name", "params"), [
    ("logdet", {}), ("logdet", {"scale_free": False}), ("sv_variance", {}),
    ("coding_rate", {"eps": 0.05}),
])
def test_float32_rows_of_ill_conditioned_batch_take_float64(name, params,
                                                            monkeypatch):
    """A spectrum spanning 1e5 (a collapsing table): the float32 estimate
    ``sqrt(n) u cond`` exceeds 1e-3, so each table is computed again from
    float64 rows, and the result is as accurate as float32 autograd through
    the float64 penalty."""
    batch = {k: v.float() for k, v in _spectrum_batch(2048, 64, 1e5, seed=4).items()}
    reg = resolve_regularizer(name)(weight=0.7, **params)
    seen = _spy_gram(monkeypatch)
    penalty, grads = reg.value_and_grad(batch, None)
    assert seen == [torch.float32, torch.float64] * 2
    expected_pen, expected = _autograd(reg, batch, None)
    exact_pen, exact = _autograd(reg, {k: v.double() for k, v in batch.items()}, None)
    _assert_as_accurate(penalty, expected_pen, exact_pen)
    for k in batch:
        assert grads[k].dtype == torch.float32
        _assert_as_accurate(grads[k], expected[k], exact[k])


@pytest.mark.parametrize("name", sorted(FLOAT32_COND))
def test_float64_rows_stay_float64(name, monkeypatch):
    batch = _spectrum_batch(300, 16, 40.0, seed=5)
    reg = resolve_regularizer(name)(weight=0.7)
    seen = _spy_gram(monkeypatch)
    penalty, grads = reg.value_and_grad(batch, None)
    assert seen == [torch.float64, torch.float64]
    expected_pen, expected = _autograd(reg, batch, None)
    _assert_close(penalty, expected_pen, torch.float64)
    for k in batch:
        _assert_close(grads[k], expected[k], torch.float64)


def test_value_and_grad_uses_a_subclass_penalty_grad():
    """A subclass that overrides ``penalty_grad`` of a built-in gets its own
    closed form used (times the weight), not the built-in's scaled form."""
    from skcollapse.regularizers import LogDetRegularizer

    class Doubled(LogDetRegularizer):
        def penalty_grad(self, embeddings, context=None):
            pen, grads = super().penalty_grad(embeddings, context)
            return pen, {k: 2.0 * g for k, g in grads.items()}

    batch, context = _batch(300, 16, torch.float64)
    _, plain = LogDetRegularizer(weight=0.7).value_and_grad(batch, context)
    _, doubled = Doubled(weight=0.7).value_and_grad(batch, context)
    for k in batch:
        torch.testing.assert_close(doubled[k], 2.0 * plain[k])


def test_lapack_helpers_equal_torch():
    """``spd_inverse`` and ``sym_eigh`` (scipy's LAPACK on the CPU) give
    torch's log-determinant, inverse and eigendecomposition of the matrix
    whose lower triangle they are given; ``None`` when not positive definite.
    ``small_matmul`` (numpy's product on the CPU) is torch's, and keeps the
    graph of an operand that requires a gradient."""
    from skcollapse.regularizers._utils import small_matmul, spd_inverse, sym_eigh

    gen = torch.Generator().manual_seed(0)
    A = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    S = A @ A.T + 0.1 * torch.eye(12, dtype=torch.float64)
    lower = torch.tril(S) + 999.0 * torch.triu(torch.ones_like(S), 1)
    logdet, inv = spd_inverse(lower)
    torch.testing.assert_close(logdet, torch.logdet(S))
    torch.testing.assert_close(inv, torch.linalg.inv(S))
    assert spd_inverse(-S) is None
    evals, vecs = sym_eigh(torch.stack([lower, 2.0 * lower]))
    expected = torch.linalg.eigvalsh(S)
    torch.testing.assert_close(evals, torch.stack([expected, 2.0 * expected]))
    for b, scale in enumerate((1.0, 2.0)):
        torch.testing.assert_close(vecs[b] @ torch.diag(evals[b]) @ vecs[b].T, scale * S)
    B = torch.randn(2, 12, 12, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(small_matmul(B, A.T), B @ A.T)
    leaf = A.clone().requires_grad_(True)
    assert small_matmul(B, leaf).grad_fn is not None


def test_accurate_spd_inverse_refuses_what_float32_cannot_resolve():
    """``accurate_spd_inverse`` is ``spd_inverse`` for float64 rows and for
    float32 rows of a well-conditioned statistic; ``None`` for float32 rows
    when ``sqrt(n) 2**-24 cond1(S) > 1e-3`` (here cond1 about 1e8), and when
    Cholesky fails."""
    from skcollapse.regularizers._utils import accurate_spd_inverse, spd_inverse

    S_good = torch.diag(torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64))
    S_bad = torch.diag(torch.tensor([1.0, 1.0, 1e-8], dtype=torch.float64))
    rows32 = torch.ones(100, 3, dtype=torch.float32)
    for S, X in ((S_good, rows32), (S_bad, rows32.double())):
        logdet, inv = accurate_spd_inverse(S, X)
        expected_logdet, expected_inv = spd_inverse(S)
        torch.testing.assert_close(logdet, expected_logdet)
        torch.testing.assert_close(inv, expected_inv)
    assert accurate_spd_inverse(S_bad, rows32) is None
    assert accurate_spd_inverse(-S_good, rows32.double()) is None


def test_dbn_float32_rows_of_ill_conditioned_batch_take_float64(monkeypatch):
    """Full whitening (a small absolute eps) of a spectrum spanning 1e6: the
    float32 estimate exceeds 1e-3, so the statistics are computed again from
    float64 rows and equal the float64 reference's as before."""
    from skcollapse.regularizers import DecorrelatedBatchNorm, _dbn

    x = _spectrum_batch(2048, 64, 1e6, seed=8)["user"].float()
    dbn = DecorrelatedBatchNorm(relative_eps=False, eps=1e-9)
    seen, statistics = [], _dbn._batch_statistics

    def spy(X, counts, dbn):
        seen.append(X.dtype)
        return statistics(X, counts, dbn)

    monkeypatch.setattr(_dbn, "_batch_statistics", spy)
    mu, W = dbn.whitening(x)
    assert seen == [torch.float32, torch.float64]
    expected_mu, expected_W = _whitening_reference(dbn, x)
    torch.testing.assert_close(mu, expected_mu, rtol=1e-9, atol=0.0)
    torch.testing.assert_close(W, expected_W, rtol=1e-7,
                               atol=1e-9 * float(expected_W.abs().max()))
