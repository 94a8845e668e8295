"""The fast paths compute what the plain ones do (same loss, same gradients).

Regularizers compute batch terms from the distinct rows of a batch, counted
(``RowGroups``); here every built-in regularizer is run on one fixed float64
batch (rows fetched from a table by ids, popular ids repeated, as in a CF
batch) through the grouped path and through the plain path on the rows as
they are, and the outputs, penalties and gradients with respect to the table
must agree. The plain paths themselves are checked against float64
transcriptions of the papers' formulas in ``test_regularizers.py``.
"""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from skorch.callbacks import (
    BatchScoring,
    Callback,
    EarlyStopping,
    EpochScoring,
    LRScheduler,
)

from skcollapse.nn import (
    CFLoss,
    LightGCN,
    MatrixFactorization,
    _cf_loss,
    normalized_adjacency,
    row_scores,
)
from skcollapse.recommenders import MFRecommender
from skcollapse.regularizers import (
    _directau,
    get_regularizer_names,
    resolve_regularizer,
)
from skcollapse.regularizers._directau import uniformity_loss
from skcollapse.regularizers._utils import RowGroups

N_USERS, N_ITEMS, DIM, B = 30, 45, 6, 120

# every registered built-in at its defaults, and variants that take other branches
CONFIGS = [(name, {}) for name in get_regularizer_names()] + [
    ("dbn", {"group_size": 4, "relative_eps": False, "eps": 0.1}),
    ("logdet", {"center": True, "normalize": False}),
    ("coding_rate", {"normalize": False}),
    ("directspec", {"alpha": 0.7, "tau": 4.0, "shrink_norm": 0.02, "keep_norm": False}),
    ("directspec+", {"alpha": 0.7, "tau0": 3.5, "tau1": 4.0, "shrink_norm": 0.02, "keep_norm": False}),
    ("directspec", {"keep_norm": True}),
    ("dbn", {"keep_scale": True, "group_size": 4}),
    ("logdet", {"scale_free": True}),
    ("uniformity", {"t": 40.0}),
    ("directau", {"gamma": 5.0, "alpha": 3.0}),
]


def _fixed_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    tables = {
        "user": torch.randn(N_USERS, DIM, generator=gen, dtype=torch.float64),
        "item": torch.randn(N_ITEMS, DIM, generator=gen, dtype=torch.float64),
    }
    # popularity-skewed ids: many repeats, as in a real batch
    users = torch.multinomial(torch.arange(1.0, N_USERS + 1) ** 2, B, True, generator=gen)
    items = torch.multinomial(torch.arange(1.0, N_ITEMS + 1) ** 2, B, True, generator=gen)
    negatives = torch.randint(0, N_ITEMS, (B,), generator=gen)
    R = sp.random(N_USERS, N_ITEMS, density=0.1, format="csr", random_state=seed)
    R = (R + sp.csr_matrix((np.ones(B), (users.numpy(), items.numpy())),
                           shape=R.shape)).tocsr()
    return tables, users, items, negatives, R


def _run(name, params, grouped, monkeypatch):
    tables, users, items, negatives, R = _fixed_batch()
    if not grouped:
        monkeypatch.setattr(RowGroups, "of", classmethod(lambda cls, x, ids, *a: None))
    else:
        monkeypatch.undo()
    reg = resolve_regularizer(name)(**params)
    reg.setup({"n_users": N_USERS, "n_items": N_ITEMS, "interactions": R,
               "tables": {"user": DIM, "item": DIM}})
    leaves = {k: v.clone().requires_grad_(True) for k, v in tables.items()}
    batch = {"user": leaves["user"][users], "item": leaves["item"][items]}
    context = {"user_ids": users, "item_ids": items, "extra_item_ids": negatives}
    out, penalty = reg(batch, context)
    extra = reg.transform_extra("item", leaves["item"][negatives])
    # a loss touching every output row differently, so every gradient path counts
    w = torch.linspace(-1.0, 1.0, B, dtype=torch.float64).unsqueeze(1)
    loss = (
        penalty
        + torch.sin(out["user"] * out["item"] * w).sum()
        + torch.cos(out["user"] * extra).sum()
    )
    grads = torch.autograd.grad(loss, [leaves["user"], leaves["item"]])
    return [out["user"], out["item"], extra, penalty], grads


@pytest.mark.parametrize(("name", "params"), CONFIGS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_grouped_path_equals_plain_path(name, params, monkeypatch):
    plain, plain_grads = _run(name, params, grouped=False, monkeypatch=monkeypatch)
    fast, fast_grads = _run(name, params, grouped=True, monkeypatch=monkeypatch)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    for a, b in zip(fast_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
        assert float(a.abs().max()) > 0


def _uniformity_reference(x, t):
    """Wang & Isola's formula over all pairs i < j, duplicates kept (float64)."""
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    sq = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(len(z), k=1)
    return math.log(np.mean(np.exp(-t * sq[iu])))


@pytest.mark.parametrize("block", [None, 2, 4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("t", [2.0, 0.3, 19.0, 60.0, 250.0])
def test_uniformity_with_counts_equals_pairwise_formula(t, dtype, block, monkeypatch):
    """Against the pairwise formula in float64, for temperatures on either
    side of the exponent range at which the kernel sum is shifted (float32:
    4t > 80; float64: 4t > 700), in one block of the kernel or several
    (the upper triangle block by block, the shift growing as they come)."""
    if block is not None:
        monkeypatch.setattr(_directau, "_PAIR_BLOCK", block)
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((9, 5))
    counts = np.array([1, 4, 1, 2, 7, 1, 1, 3, 1])
    batch = np.repeat(rows, counts, axis=0)
    expected = _uniformity_reference(batch, t)
    # float32: the exponents -t‖z_i - z_j‖² carry t times the rows' rounding
    rel = 1e-12 if dtype == torch.float64 else 1e-6 * max(10.0, t)
    got = uniformity_loss(torch.as_tensor(rows, dtype=dtype), t, torch.as_tensor(counts))
    assert float(got) == pytest.approx(expected, rel=rel)
    # no counts: the rows as they are, duplicates included
    got = uniformity_loss(torch.as_tensor(batch, dtype=dtype), t)
    assert float(got) == pytest.approx(expected, rel=rel)


@pytest.mark.parametrize("block", [None, 3])
def test_uniformity_kernel_gradcheck(block, monkeypatch):
    if block is not None:
        monkeypatch.setattr(_directau, "_PAIR_BLOCK", block)
    rows = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    counts = torch.tensor([1, 3, 1, 2, 1, 1, 5])
    assert torch.autograd.gradcheck(lambda x: uniformity_loss(x, 2.0, counts), (rows,))
    assert torch.autograd.gradcheck(lambda x: uniformity_loss(x, 0.5), (rows,))
    # beyond float64's exponent range: the streamed, shifted sums
    assert torch.autograd.gradcheck(lambda x: uniformity_loss(x, 300.0, counts),
                                    (rows,))
    # a single distinct row repeated: only pairs inside the group remain
    one = torch.randn(1, 4, dtype=torch.float64)
    assert float(uniformity_loss(one, 2.0, torch.tensor([5]))) == pytest.approx(0.0)


def test_row_groups_refuse_rows_that_differ():
    x = torch.randn(5, 3)
    ids = torch.tensor([0, 1, 0, 2, 1])
    assert RowGroups.of(x, ids) is None  # same id, different rows: plain path
    x = torch.randn(3, 3)[ids]
    groups = RowGroups.of(x, ids)
    assert groups is not None
    torch.testing.assert_close(groups.expand(groups.rows(x)), x)
    assert groups.counts.tolist() == [2, 2, 1]
    assert RowGroups.of(x, None) is None and RowGroups.of(x, ids[:3]) is None


def test_directspec_plus_dense_pattern_equals_sparse_product():
    *_, R = _fixed_batch()
    reg = resolve_regularizer("directspec+")()
    reg.setup({"interactions": R})
    ids = np.array([3, 0, 3, 29, 7, 12])
    dense = reg.shared_mask("user", ids)
    reg._dense_shared = {"user": None}  # force the per-batch sparse product
    np.testing.assert_array_equal(dense, reg.shared_mask("user", ids))
    Rd = (R.toarray() > 0).astype(float)
    np.testing.assert_array_equal(dense, (Rd @ Rd.T > 0)[np.ix_(ids, ids)])


# ----------------------------------------------------------------- the MF step
def _mf_with_batch(**params):
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(60, 40, density=0.1, random_state=0)
    model = MFRecommender(embedding_dim=5, max_epochs=1, random_state=0, **params)
    model.fit(X)
    model.module_.double()
    # the state a fit's training steps work with, over the fitted pairs
    model._fit_state_ = model._training_state(torch.Generator().manual_seed(3))
    batch = torch.as_tensor(model._vocabulary("user").encode(X[:50, 0], name="users"))
    items = torch.as_tensor(model._vocabulary("item").encode(X[:50, 1], name="items"))
    return model, torch.stack([batch, items], dim=1)


@pytest.mark.parametrize(("n_negatives", "weight_decay"), [(None, 1e-4), (3, 0.0),
                                                           (2, 0.05)])
def test_fused_mf_bpr_step_equals_autograd_step(n_negatives, weight_decay):
    model, Xi = _mf_with_batch(n_negatives=n_negatives, weight_decay=weight_decay)
    assert model._fused_step_applies()
    weight = model.module_.embedding.weight
    state = model._fit_state_.sampler.generator.get_state()
    model._set_training(True)
    out = model.infer(Xi)  # the plain step: infer + get_loss + autograd
    loss = model.get_loss(out, None, X=Xi, training=True)
    weight.grad = None
    loss.backward()
    plain_grad = weight.grad.to_dense()
    plain_pred = (out["user"] * out["item"]).sum(-1)
    model._fit_state_.sampler.generator.set_state(state)  # the same negatives
    weight.grad = None
    step = model._fused_bpr_step(Xi)
    assert weight.grad.is_sparse
    torch.testing.assert_close(step["loss"], loss.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(weight.grad.to_dense(), plain_grad, rtol=1e-10,
                               atol=1e-15)
    torch.testing.assert_close(step["y_pred"], plain_pred.detach())


@pytest.mark.parametrize("params", [
    {"regularizer": "logdet"}, {"similarity": "cosine"}, {"loss": "bce"},
    {"negative_sampling": "shared"}, {"optimizer": torch.optim.Adam},
])
def test_fused_mf_step_only_for_the_default_setup(params):
    model, _ = _mf_with_batch(**params)
    model._set_training(True)
    assert not model._fused_step_applies()


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["uniformity", "directspec+", "dbn", "sv_variance"])
def test_grouped_path_on_device_equals_cpu(name, torch_device):
    if torch_device == "cpu":
        pytest.skip("the CPU path is what the other tests exercise")
    tables, users, items, negatives, R = _fixed_batch()
    results = []
    for device in ("cpu", torch_device):
        reg = resolve_regularizer(name)()
        reg.setup({"n_users": N_USERS, "n_items": N_ITEMS, "interactions": R,
                   "tables": {"user": DIM, "item": DIM}})
        reg.to(device)
        leaves = {k: v.to(device).requires_grad_(True) for k, v in tables.items()}
        ids = {"user_ids": users.to(device), "item_ids": items.to(device),
               "extra_item_ids": negatives.to(device)}
        batch = {"user": leaves["user"][ids["user_ids"]],
                 "item": leaves["item"][ids["item_ids"]]}
        out, penalty = reg(batch, ids)
        extra = reg.transform_extra("item", leaves["item"][ids["extra_item_ids"]])
        loss = penalty + (out["user"] * out["item"]).sin().sum() + extra.cos().sum()
        grads = torch.autograd.grad(loss, [leaves["user"], leaves["item"]])
        results.append([t.detach().cpu() for t in (out["user"], extra, penalty, *grads)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.gpu
def test_fused_mf_step_on_device(torch_device):
    if torch_device == "cpu":
        pytest.skip("the CPU path is what the other tests exercise")
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(200, 100, random_state=0)
    runs = []
    for fused in (True, False):
        model = MFRecommender(embedding_dim=8, max_epochs=2, random_state=0,
                              device=torch_device)
        if not fused:
            model._fused_step_applies = lambda: False
        runs.append(np.asarray(model.fit(X).history[:, "train_loss"]))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


# ---------------------------------------------------------------- compiled MF step
numba = pytest.importorskip("numba")


def _fit_mf(X, monkeypatch, compiled, *, partial=None, **params):
    """A seeded fit, and how its training batches ran: ``"epoch"`` (epochs
    of the compiled step's loop), ``"step"`` (compiled steps called by
    skorch's batch loop), ``"torch"`` (torch steps). ``partial`` (pairs)
    continues the fit with ``partial_fit``."""
    from skcollapse.recommenders import MFRecommender
    from skcollapse.recommenders._cf import CFRecommenderBase
    from skcollapse.recommenders._fast import CompiledBPRStep

    monkeypatch.setenv("SKCOLLAPSE_DISABLE_NUMBA", "0" if compiled else "1")
    params = {"embedding_dim": 8, "max_epochs": 4, "batch_size": 64,
              "random_state": 0, **params}
    model = MFRecommender(**params)
    used = {"epoch": 0, "step": 0, "torch": 0}

    def count(cls, name, key):
        original = getattr(cls, name)

        def spy(self, *args, **kwargs):
            used[key] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spy)

    count(CompiledBPRStep, "run_epoch", "epoch")
    count(CompiledBPRStep, "__call__", "step")
    count(CFRecommenderBase, "train_step_single", "torch")
    model.fit(X)
    if partial is not None:
        model.partial_fit(partial)
    monkeypatch.undo()
    return model, used


@pytest.mark.parametrize("params", [
    {}, {"n_negatives": 3, "weight_decay": 0.0}, {"sampling": "user", "lr": 0.02},
    # penalty-only regularizers: the penalty's gradient on the batch rows joins
    # the kernel's; one each of the batch-statistics and pairwise kinds
    {"regularizer": "logdet", "regularizer__weight": 0.05},
    {"regularizer": "uniformity", "regularizer__weight": 0.1, "n_negatives": 2},
    {"regularizer": "directau", "regularizer__weight": 0.1},
    # the closed forms of the covariance penalties, and the pairwise one on
    # random subsets of the batch (the same draws on either path)
    {"regularizer": "sv_variance", "regularizer__weight": 0.1},
    {"regularizer": "coding_rate", "regularizer__weight": 0.05},
    {"regularizer": "uniformity", "regularizer__weight": 0.1,
     "regularizer__max_rows": 24},
    # transforms: the BPR gradient of the transformed rows taken back through
    # the transform by autograd, the kernel's update with it
    {"regularizer": "dbn", "n_negatives": 2, "weight_decay": 0.01},
    {"regularizer": "dbn", "regularizer__group_size": 3,
     "regularizer__keep_scale": True},
    {"regularizer": "directspec"},
    {"regularizer": "directspec+", "n_negatives": 2},
])
def test_compiled_mf_fit_follows_the_torch_fit(params, monkeypatch):
    """The compiled step draws the same negatives and applies the same update:
    a seeded fit gives the same loss curve, tables and top-n as the torch
    path (``bpr_step`` + ``SparseRowAdam``), up to float rounding."""
    from skcollapse.datasets import make_interactions

    # popular items repeat within a batch: the per-row sums are exercised
    X = make_interactions(150, 90, density=0.08, random_state=1)
    fast, used_fast = _fit_mf(X, monkeypatch, True, **params)
    slow, used_slow = _fit_mf(X, monkeypatch, False, **params)
    # the compiled step runs every epoch in its own loop (nothing listens to
    # the batches); the torch fit never calls it
    assert used_fast == {"epoch": 4, "step": 0, "torch": 0}
    assert used_slow["torch"] > 0 and used_slow["epoch"] == used_slow["step"] == 0
    np.testing.assert_allclose(fast.history[:, "train_loss"],
                               slow.history[:, "train_loss"], rtol=1e-5)
    for kind in ("user", "item"):
        np.testing.assert_allclose(fast.get_embeddings()[kind],
                                   slow.get_embeddings()[kind], atol=1e-4)
    users = np.unique(X[:, 0])
    np.testing.assert_array_equal(fast.recommend(users, n=10)[0],
                                  slow.recommend(users, n=10)[0])


def test_compiled_step_equals_torch_step_on_one_batch():
    """One kernel call against ``bpr_step`` + ``SparseRowAdam.step`` in float64,
    from a state with non-zero moments, with rows repeated in the batch."""
    from skcollapse.nn import SparseRowAdam
    from skcollapse.nn._mf import bpr_step
    from skcollapse.recommenders._bpr_kernel import adam_hyper, get_bpr_adam_kernel

    kernel = get_bpr_adam_kernel()
    gen = torch.Generator().manual_seed(0)
    n_users, n_items, d, B, n = 7, 11, 5, 40, 3
    w0 = torch.randn(n_users + n_items, d, generator=gen, dtype=torch.float64)
    users = torch.randint(0, n_users, (B,), generator=gen)
    pos = torch.randint(0, n_items, (B,), generator=gen)
    neg = torch.randint(0, n_items, (B, n), generator=gen)
    # the reference: two torch steps (the second one starts from moments != 0)
    p = torch.nn.Parameter(w0.clone())
    opt = SparseRowAdam([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    losses = []
    for _ in range(2):
        loss, pos_s, grad = bpr_step(p.data, n_users, users, pos, neg, 0.3)
        p.grad = grad
        opt.step()
        losses.append(float(loss))
    w = w0.clone().numpy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    slot = np.full(w.shape[0], -1, dtype=np.int64)
    rows = np.empty(B * (2 + n), dtype=np.int64)
    g = np.empty((B * (2 + n), d))
    hyper = np.empty(9)
    out = np.empty(B)
    for step in (1, 2):
        adam_hyper(hyper, batch_size=B, n_negatives=n, weight_decay=0.3, lr=0.05,
                   beta1=0.8, beta2=0.99, eps=1e-6, step=step)
        none = np.empty((0, d))
        loss = kernel(w, m, v, n_users, users.numpy(), pos.numpy(), neg.numpy(),
                      hyper, slot, rows, g, out, none, none)
        assert loss == pytest.approx(losses[step - 1], rel=1e-12)
    assert (slot == -1).all()  # the scratch map is left clean
    state = opt.state[p]
    np.testing.assert_allclose(w, p.data.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out, pos_s.numpy(), rtol=1e-12)


class _GradListener(Callback):
    def on_grad_computed(self, net, named_parameters, **kwargs):
        self.calls = getattr(self, "calls", 0) + 1


class _TrainedScale(__import__("skcollapse").regularizers.Regularizer):
    """A transform with a trainable parameter."""

    kind = "transform"

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def transform(self, embeddings, context=None):
        return {k: v * self.scale for k, v in embeddings.items()}


@pytest.mark.parametrize("params", [
    {"regularizer": _TrainedScale}, {"optimizer": torch.optim.SparseAdam},
    {"loss": "softmax"}, {"callbacks": [_GradListener()]},
])
def test_compiled_step_only_where_it_computes_the_same(params, monkeypatch):
    """A regularizer with trainable parameters, another optimiser or loss, or
    a callback that reads the gradients keeps the torch step (and that
    callback is still called)."""
    from skcollapse.datasets import make_interactions

    X = make_interactions(60, 40, density=0.1, random_state=0)
    model, used = _fit_mf(X, monkeypatch, True, **params)
    assert used["torch"] > 0 and used["epoch"] == used["step"] == 0
    for _, cb in model.callbacks_:
        if isinstance(cb, _GradListener):
            assert cb.calls == used["torch"]


def test_membership_kernel_equals_the_key_search(monkeypatch):
    """The compiled CSR lookup of observed negatives marks exactly the pairs
    the sorted-key search marks (a catalogue too large for the bitmap)."""
    from skcollapse.recommenders import _sampling

    monkeypatch.setattr(_sampling, "_BITMAP_MAX", 0)
    R = sp.random(50, 300, density=0.2, format="csr", random_state=0)
    R.data[:] = 1.0
    sampler = _sampling.NegativeSampler(R, torch.device("cpu"),
                                        torch.Generator().manual_seed(0))
    assert sampler._csr is not None
    gen = torch.Generator().manual_seed(1)
    users = torch.randint(0, 50, (400,), generator=gen)
    neg = torch.randint(0, 300, (400, 3), generator=gen)
    compiled = sampler._observed(users, neg)
    sampler._csr = None
    searched = sampler._observed(users, neg)
    expected = torch.from_numpy(R.toarray()[users.numpy()[:, None], neg.numpy()] > 0)
    assert compiled.any() and not compiled.all()
    torch.testing.assert_close(compiled, expected)
    torch.testing.assert_close(searched, expected)


def _pool_with_a_stalled_worker(monkeypatch):
    """Make the Adam phase's pool one whose worker is busy until the returned
    event is set (a worker that starts late, as on a loaded machine)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from skcollapse.recommenders import _bpr_kernel

    release = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    pool.submit(release.wait)
    monkeypatch.setattr(_bpr_kernel, "_pool", lambda threads: pool)
    return release, pool


@pytest.mark.parametrize("split", [2, 3, "stalled"])
def test_compiled_step_on_two_threads_equals_one_thread(split, monkeypatch):
    """The Adam phase cut over two or three threads updates exactly what one
    thread does (disjoint rows; bit-for-bit the same arithmetic), also when
    the worker starts only after the calling thread has run every range (the
    late worker then finds nothing left and changes nothing)."""
    from skcollapse.recommenders._bpr_kernel import adam_hyper, get_bpr_adam_kernel

    kernel = get_bpr_adam_kernel()
    rng = np.random.default_rng(0)
    n_users, n_items, d, B, n = 3000, 4000, 16, 2048, 2
    w0 = rng.standard_normal((n_users + n_items, d)).astype(np.float32)
    batches = [(rng.integers(0, n_users, B), rng.integers(0, n_items, B),
                rng.integers(0, n_items, (B, n))) for _ in range(3)]
    out = []
    stalled = split == "stalled"
    for threads in (1, 2 if stalled else split):
        if stalled and threads == 2:
            release, pool = _pool_with_a_stalled_worker(monkeypatch)
            # a step that waited for the worker would hang: release it after
            # a minute and fail below instead
            import threading

            timer = threading.Timer(60.0, release.set)
            timer.start()
        w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        slot = np.full(w.shape[0], -1, dtype=np.int64)
        rows = np.empty(B * (2 + n), dtype=np.int64)
        g = np.empty((B * (2 + n), d), dtype=np.float32)
        hyper = np.empty(9, dtype=np.float32)
        none = np.empty((0, d), dtype=np.float32)
        losses = []
        for step, (u, p, q) in enumerate(batches, start=1):
            adam_hyper(hyper, batch_size=B, n_negatives=n, weight_decay=0.01,
                       lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, step=step)
            losses.append(kernel(w, m, v, n_users, u, p, q, hyper, slot, rows, g,
                                 np.empty(B, dtype=np.float32), none, none,
                                 threads=threads))
        assert (slot == -1).all()
        out.append((w, m, v, losses))
    if stalled:
        assert not release.is_set(), "the step waited for the stalled worker"
        timer.cancel()
        copies = [x.copy() for x in out[1][:3]]
        release.set()  # the late worker runs its (three) tasks now
        pool.shutdown(wait=True)
        for a, b in zip(copies, out[1][:3]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(out[0][0], w0)  # the steps did move the table
    for a, b in zip(out[0], out[1]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_split_ranges_cover_the_rows_once_and_pass_errors_on():
    """Every row of ``[0, n)`` is given to exactly one range, whichever
    thread takes it; a range that fails fails the call."""
    import threading

    from skcollapse.recommenders import _bpr_kernel

    seen = np.zeros(10_000, dtype=np.int64)
    threads = set()

    def mark(out, lo, hi):
        threads.add(threading.get_ident())
        out[lo:hi] += 1

    _bpr_kernel._run_split(mark, (seen,), 9_999, 3)
    assert (seen[:9_999] == 1).all() and seen[9_999] == 0
    assert len(threads) >= 1

    def fail(lo, hi):
        if lo > 0:
            raise RuntimeError("range failed")

    with pytest.raises(RuntimeError, match="range failed"):
        _bpr_kernel._run_split(fail, (), 4096, 2)



# ------------------------------------------------------- the compiled epoch loop
class _BatchListener(Callback):
    """Records what a callback sees of each training batch."""

    def initialize(self):
        self.seen = []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self.seen.append(("begin", len(batch[0])))

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            self.seen.append(("end", len(batch[0]), float(kwargs["loss"]),
                              tuple(kwargs["y_pred"].shape)))


def _history(model):
    """The history without the wall-clock columns."""
    return [{k: v for k, v in row.items() if k != "dur"} for row in model.history]


@pytest.mark.parametrize("params", [
    {}, {"n_negatives": 3, "weight_decay": 0.0}, {"sampling": "user", "lr": 0.02},
    {"regularizer": "logdet", "regularizer__weight": 0.05},
    {"regularizer": "uniformity", "regularizer__weight": 0.1},
    {"regularizer": "dbn", "n_negatives": 2, "weight_decay": 0.01},
    {"regularizer": "directspec"},
])
def test_compiled_epoch_loop_equals_skorch_batch_loop(params, monkeypatch):
    """With nothing listening to the batches, the compiled step runs each
    epoch in its own loop; a callback that listens keeps skorch's loop. The
    two fits take the same steps bit for bit (the same negatives, the same
    kernel calls), write the same history (per-batch losses and sizes, batch
    counts, epoch losses, the regularizer's column) and the listener sees
    every batch with its loss and scores."""
    from skcollapse.datasets import make_interactions

    X = make_interactions(150, 90, density=0.08, random_state=1)
    fast, used_fast = _fit_mf(X, monkeypatch, True, **params)
    listener = _BatchListener()
    slow, used_slow = _fit_mf(X, monkeypatch, True,
                              callbacks=[("listen", listener)], **params)
    assert used_fast == {"epoch": 4, "step": 0, "torch": 0}
    assert used_slow["step"] > 0 and used_slow["epoch"] == used_slow["torch"] == 0
    assert _history(fast) == _history(slow)
    for kind in ("user", "item"):
        np.testing.assert_array_equal(fast.get_embeddings()[kind],
                                      slow.get_embeddings()[kind])
    batches = [b for row in slow.history for b in row["batches"]]
    assert len(listener.seen) == 2 * len(batches) == 2 * used_slow["step"]
    for k, batch in enumerate(batches):
        size = batch["train_batch_size"]
        assert listener.seen[2 * k] == ("begin", size)
        assert listener.seen[2 * k + 1] == ("end", size, batch["train_loss"], (size,))


def test_compiled_epoch_loop_with_validation_and_partial_fit(monkeypatch):
    """``train_split`` validation (valid_loss, valid_ndcg, valid_recall every
    epoch) and a ``partial_fit`` after it: the epoch loop runs in both calls
    (also after validation left the module in eval mode) and the history and
    tables equal those of skorch's loop; the final Recall@20 on held-out pairs
    equals the torch fit's."""
    from skcollapse.datasets import make_interactions
    from skcollapse.metrics import evaluate_ranking
    from skcollapse.model_selection import PerUserValidSplit

    X = make_interactions(150, 90, density=0.1, random_state=2)
    rng = np.random.default_rng(0)
    held = rng.random(len(X)) < 0.15
    train, test = X[~held], X[held]
    first, more = train[::2], train[1::2]
    params = {"train_split": PerUserValidSplit(0.2, random_state=0)}
    fast, used_fast = _fit_mf(first, monkeypatch, True, partial=more, **params)
    slow, used_slow = _fit_mf(first, monkeypatch, True, partial=more,
                              callbacks=[("listen", _BatchListener())], **params)
    torch_fit, used_torch = _fit_mf(first, monkeypatch, False, partial=more,
                                    **params)
    assert used_fast == {"epoch": 8, "step": 0, "torch": 0}
    assert used_slow["step"] > 0 and used_slow["epoch"] == 0
    assert used_torch["epoch"] == used_torch["step"] == 0
    assert {"valid_loss", "valid_ndcg", "valid_recall"} <= set(fast.history[-1])
    assert _history(fast) == _history(slow)
    np.testing.assert_array_equal(fast.get_embeddings()["item"],
                                  slow.get_embeddings()["item"])
    np.testing.assert_allclose(fast.history[:, "train_loss"],
                               torch_fit.history[:, "train_loss"], rtol=1e-5)
    np.testing.assert_allclose(fast.history[:, "valid_loss"],
                               torch_fit.history[:, "valid_loss"], rtol=1e-5)
    recall = [evaluate_ranking(m, test, k=20, metrics="recall")["recall"]
              for m in (fast, torch_fit)]
    assert recall[0] > 0 and recall[0] == recall[1]


def test_compiled_epoch_loop_keeps_the_divergence_guard(monkeypatch):
    """A diverging fit stops at the same batch with the same message in the
    epoch loop as in skorch's loop, and leaves the estimator unfitted."""
    from sklearn.exceptions import NotFittedError

    from skcollapse.datasets import make_interactions
    from skcollapse.exceptions import ModelFitError
    from skcollapse.recommenders._fast import CompiledBPRStep

    X = make_interactions(150, 90, density=0.08, random_state=1)
    messages, batches = [], []
    for callbacks in (None, [("listen", _BatchListener())]):
        model = MFRecommender(lr=1e6, max_epochs=30, random_state=0,
                              embedding_dim=8, batch_size=64, callbacks=callbacks)
        epochs = []
        monkeypatch.setattr(
            CompiledBPRStep, "run_epoch",
            lambda self, *a, _seen=epochs, _run=CompiledBPRStep.run_epoch: (
                _seen.append(1) or _run(self, *a)),
        )
        with pytest.raises(ModelFitError, match="diverged in epoch") as err:
            model.fit(X)
        monkeypatch.undo()
        assert bool(epochs) is (callbacks is None)  # the loop that ran
        messages.append(str(err.value))
        batches.append([b for row in model.history for b in row["batches"]])
        with pytest.raises(NotFittedError):
            model.get_embeddings()
    assert messages[0] == messages[1]
    assert batches[0] == batches[1]


class _SubclassListener(MFRecommender):
    def on_batch_end(self, net, **kwargs):
        super().on_batch_end(net, **kwargs)


def _score(net, X, y=None):
    return 0.0


@pytest.mark.parametrize(("make", "unobserved"), [
    (dict, True),
    (lambda: {"callbacks": [("cb", _BatchListener())]}, False),
    # skorch's scorers of validation batches return at once on training ones
    (lambda: {"callbacks": [("cb", EpochScoring(
        _score, on_train=False))]}, True),
    (lambda: {"callbacks": [("cb", BatchScoring(
        _score, on_train=False))]}, True),
    (lambda: {"callbacks": [("cb", EpochScoring(
        _score, on_train=True))]}, False),
    (lambda: {"callbacks": [("cb", EarlyStopping(
        monitor="train_loss"))]}, True),
    (lambda: {"callbacks": [("cb", LRScheduler(
        "StepLR", step_size=1, step_every="batch"))]}, False),
    (lambda: {"cls": _SubclassListener}, False),
    (lambda: {"instance": "on_batch_begin"}, False),
])
def test_which_set_ups_listen_to_training_batches(make, unobserved):
    """The epoch loop runs only where nothing but the net's own bookkeeping
    listens to training batches: a callback or a subclass that overrides
    ``on_batch_begin``/``on_batch_end``, or a method set on the instance,
    keeps skorch's loop."""
    from skcollapse.recommenders import MFRecommender
    from skcollapse.recommenders._fast import batches_unobserved

    spec = make()
    cls = spec.pop("cls", MFRecommender)
    instance = spec.pop("instance", None)
    model = cls(max_epochs=1, **spec).initialize()
    if instance is not None:
        setattr(model, instance, lambda net, **kwargs: None)
    assert batches_unobserved(model) is unobserved


def _independent_reference(R, gen, users, n_items, n_neg, rounds=3):
    """The resampling loop with every round testing the whole batch, against a
    dense membership matrix."""
    dense = torch.from_numpy(R.toarray() > 0)
    neg = torch.randint(0, n_items, (users.shape[0], n_neg), generator=gen)
    n_rounds = 0
    for _ in range(rounds):
        hit = dense[users[:, None], neg]
        n_hit = int(hit.sum())
        if n_hit == 0:
            break
        n_rounds += 1
        neg[hit] = torch.randint(0, n_items, (n_hit,), generator=gen)
    return neg, n_rounds


@pytest.mark.parametrize("lookup", ["bitmap", "keys", "csr"])
@pytest.mark.parametrize("n_neg", [1, 3])
def test_resampling_tests_only_redrawn_negatives(lookup, n_neg, monkeypatch):
    """Testing only the redrawn positions in later rounds draws exactly the
    negatives (and consumes exactly the generator's stream) of testing the
    whole batch every round, with each membership lookup."""
    from skcollapse.recommenders import _sampling

    if lookup != "bitmap":
        monkeypatch.setattr(_sampling, "_BITMAP_MAX", 0)
    R = sp.random(40, 30, density=0.6, format="csr", random_state=0)
    R.data[:] = 1.0
    sampler = _sampling.NegativeSampler(R, torch.device("cpu"),
                                        torch.Generator().manual_seed(5))
    if lookup == "keys":
        sampler._csr = None  # the search over the sorted keys
    assert (sampler._csr is not None) == (lookup == "csr")
    assert (sampler.keys.dtype == torch.bool) == (lookup == "bitmap")
    users = torch.randint(0, 40, (500,), generator=torch.Generator().manual_seed(1))
    got = sampler.independent(users, n_neg)
    gen = torch.Generator().manual_seed(5)
    expected, n_rounds = _independent_reference(R, gen, users, 30, n_neg)
    assert n_rounds == 3  # dense enough that every round redraws
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # the same number of draws was taken from the stream
    torch.testing.assert_close(torch.randint(0, 30, (5,), generator=sampler.generator),
                               torch.randint(0, 30, (5,), generator=gen))


def _one_lookup_sliced(encoder, users, items):
    """``encode`` as it was before issue 31: one lookup of the joint table
    (LightGCN: also of the propagated one), each sliced in two."""
    index = torch.cat([users, items + encoder.n_users])
    nu = users.shape[0]
    ego = torch.nn.functional.embedding(index, encoder.embedding.weight,
                                        sparse=encoder.sparse)
    rows = ego
    if isinstance(encoder, LightGCN):
        rows = encoder.propagate().index_select(0, index)
    return {"user": rows[:nu], "item": rows[nu:], "user_ego": ego[:nu],
            "item_ego": ego[nu:]}


@pytest.mark.parametrize("make", [
    lambda: MatrixFactorization(N_USERS, N_ITEMS, DIM),
    lambda: MatrixFactorization(N_USERS, N_ITEMS, DIM, sparse=True),
    lambda: LightGCN(N_USERS, N_ITEMS, DIM, n_layers=2),
])
def test_encoders_give_the_one_lookup_rows_and_gradient(make):
    """Per-table lookups (dense MF) and split rows (sparse MF, LightGCN): the
    rows and the table's gradient of the one sliced lookup. MF's bit for bit
    (users and items own disjoint rows; repeated ids sum in the same order);
    LightGCN's gradient to float64 rounding (autograd may add its ego and
    propagated paths in another order)."""
    torch.manual_seed(0)
    encoder = make().double()
    exact = {"rtol": 0, "atol": 0}
    if isinstance(encoder, LightGCN):
        R = sp.random(N_USERS, N_ITEMS, density=0.2, random_state=0, format="csr")
        encoder.set_adjacency(normalized_adjacency((R > 0).astype(np.float64),
                                                   dtype=torch.float64))
        exact = {"rtol": 1e-13, "atol": 1e-15}
    gen = torch.Generator().manual_seed(1)
    users = torch.multinomial(torch.arange(1.0, N_USERS + 1) ** 2, B, True, generator=gen)
    items = torch.multinomial(torch.arange(1.0, N_ITEMS + 1) ** 2, 5 * B, True,
                              generator=gen)
    keys = ("user", "item", "user_ego", "item_ego")
    weights = {k: torch.randn(B if k.startswith("user") else 5 * B, DIM,
                              generator=gen, dtype=torch.float64) for k in keys}

    def grad_of(enc):
        weight = encoder.embedding.weight
        weight.grad = None
        sum((enc[k] * weights[k]).pow(2).sum() for k in keys).backward()
        return weight.grad.to_dense()

    got, want = encoder.encode(users, items), _one_lookup_sliced(encoder, users, items)
    for k in keys:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    torch.testing.assert_close(grad_of(got), grad_of(want), **exact)


@pytest.mark.parametrize("loss", ["bpr", "bce", "softmax", "ccl"])
def test_per_row_negative_scores_equal_the_einsum_form(loss):
    """CFLoss's per-positive negatives scored as a batched matrix-vector
    product: the loss and gradients of the ``einsum("bd,bnd->bn")`` form."""
    gen = torch.Generator().manual_seed(2)
    user, pos = (torch.randn(B, DIM, generator=gen, dtype=torch.float64)
                 for _ in range(2))
    neg = torch.randn(B, 4, DIM, generator=gen, dtype=torch.float64)
    mask = torch.rand(B, 4, generator=gen) < 0.1
    einsum_calls = []

    def einsum(eq, *ops):  # the loss as it was: the scores by torch.einsum
        einsum_calls.append(eq)
        return real_einsum(eq, *ops)

    real_einsum = torch.einsum
    results = []
    for patched in (False, True):
        leaves = [x.clone().requires_grad_(True) for x in (user, pos, neg)]
        criterion = CFLoss(loss)
        if patched:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(_cf_loss, "row_scores",
                           lambda u, n: einsum("bd,bnd->bn", u, n))
                value = criterion(*leaves, neg_mask=mask)
        else:
            value = criterion(*leaves, neg_mask=mask)
        value.backward()
        results.append([value.detach()] + [x.grad for x in leaves])
    assert einsum_calls == ["bd,bnd->bn"]
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_row_scores_value_and_gradient():
    """``row_scores``: the einsum's value, and a gradient that passes
    gradcheck (finite differences) for each input and for both."""
    gen = torch.Generator().manual_seed(3)
    user = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    neg = torch.randn(7, 3, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(row_scores(user, neg),
                               torch.einsum("bd,bnd->bn", user, neg),
                               rtol=1e-14, atol=1e-14)
    for grads in ((True, True), (True, False), (False, True)):
        leaves = [x.clone().requires_grad_(g) for x, g in zip((user, neg), grads)]
        assert torch.autograd.gradcheck(row_scores, leaves)


def test_row_scores_under_autocast_matches_einsum():
    """Under autocast (CPU bfloat16 here; float16 on CUDA) ``row_scores`` runs
    forward and backward as einsum does: same output dtype, gradients in the
    inputs' dtype and equal to einsum's (both compute in bfloat16)."""
    gen = torch.Generator().manual_seed(4)
    user = torch.randn(16, 8, generator=gen)
    neg = torch.randn(16, 4, 8, generator=gen)
    weights = torch.randn(16, 4, generator=gen)
    results = []
    for fn in (row_scores, lambda u, n: torch.einsum("bd,bnd->bn", u, n)):
        u, n = user.clone().requires_grad_(), neg.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(u, n)
        (out.float() * weights).sum().backward()
        results.append((out, u.grad, n.grad))
    (out, gu, gn), (want, want_gu, want_gn) = results
    assert out.dtype == want.dtype == torch.bfloat16
    assert gu.dtype == gn.dtype == torch.float32
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(gu, want_gu, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(gn, want_gn, rtol=2e-2, atol=2e-2)


def test_compiled_kernels_load_from_numba_cache_in_a_new_process(tmp_path):
    """The compiled MF step is compiled once: a second process loads every
    kernel from numba's on-disk cache instead of compiling it again (a kernel
    calling a closure-defined helper misses the cache in every new process)."""
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys

    script = (
        "from skcollapse.datasets import make_interactions\n"
        "from skcollapse.recommenders import MFRecommender\n"
        "X = make_interactions(n_users=60, n_items=40, random_state=0)\n"
        "MFRecommender(max_epochs=1, batch_size=64, random_state=0).fit(X)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               NUMBA_DEBUG_CACHE="1", SKCOLLAPSE_DISABLE_NUMBA="0")
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True, timeout=600) for _ in range(2)]
    first, second = (r.stdout + r.stderr for r in runs)
    kernels = ("bpr_grad", "adam_rows")
    for name in kernels:
        assert f"{name}" in first and "data saved" in first, first[-2000:]
    lines = [line for line in second.splitlines() if "_bpr_kernel" in line]
    for name in kernels:
        mine = [line for line in lines if f".{name}-" in line]
        assert any("data loaded" in line for line in mine), "\n".join(lines)
        assert not any("data saved" in line for line in mine), "\n".join(lines)
