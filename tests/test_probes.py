"""Probes inside models: a planted output rank, the result equal to the metric of
all activations concatenated (computed independently here), and memory that
stays O(d^2) however many batches run (no activation survives the probe)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skcollapse.callbacks import CollapseProbe, probe_collapse
from skcollapse.callbacks._probe import _ProbeSet, _resolve_targets
from skcollapse.metrics import get_collapse_metric


def ref_erank_ia(A):
    """Float64 erank and IA of the rows of A, from numpy's SVD."""
    s = np.linalg.svd(np.asarray(A, dtype=np.float64), compute_uv=False)
    s = s[s > s[0] * max(A.shape) * np.finfo(float).eps]
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum())), float(s.sum() / s[0])


class TwoTower(torch.nn.Module):
    def __init__(self, d_in=10, d=6, rank=None):
        super().__init__()
        self.tower = torch.nn.Sequential(
            torch.nn.Linear(d_in, 16), torch.nn.ReLU(), torch.nn.Linear(16, d)
        )
        if rank is not None:  # a planted output rank
            with torch.no_grad():
                W = torch.randn(d, rank) @ torch.randn(rank, 16)
                self.tower[2].weight.copy_(W)
                self.tower[2].bias.zero_()

    def forward(self, x):
        return self.tower(x)


def test_planted_rank_known_answer():
    # outputs are the first 3 coordinates of unit-vector inputs, each seen
    # equally often: singular values all equal, erank = IA = 3 exactly
    model = torch.nn.Linear(8, 5, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0] = model.weight[1, 1] = model.weight[2, 2] = 2.0
    x = torch.eye(8).repeat(25, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=7)
    wrapper = torch.nn.Sequential(model)
    out = probe_collapse(wrapper, loader, modules={"layer": "0"})
    assert out["layer"]["n_samples"] == 200
    np.testing.assert_allclose(out["layer"]["erank"], 3.0, rtol=1e-12)
    np.testing.assert_allclose(out["layer"]["ia"], 3.0, rtol=1e-12)


@pytest.mark.parametrize("center", [False, True])
def test_equals_the_metric_of_all_activations_concatenated(center):
    torch.manual_seed(0)
    model = TwoTower()  # full rank: no float32 rounding-level singular values
    x = torch.randn(500, 10)
    kept = []  # the test keeps the activations; the probe must not need them
    model.tower[2].register_forward_hook(lambda m, a, o: kept.append(o.detach()))
    loader = torch.utils.data.DataLoader(x, batch_size=32)
    out = probe_collapse(model, loader, modules=["tower.2"], center=center,
                         metrics=["erank", "ia", "srank"])
    A = torch.cat(kept).double().numpy()
    if center:
        A = A - A.mean(0)
    er, ia = ref_erank_ia(A)
    np.testing.assert_allclose(out["tower.2"]["erank"], er, rtol=1e-9)
    np.testing.assert_allclose(out["tower.2"]["ia"], ia, rtol=1e-9)
    s = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_allclose(out["tower.2"]["srank"], (s**2).sum() / s[0] ** 2,
                               rtol=1e-9)


def test_planted_rank_of_a_trained_style_layer():
    torch.manual_seed(3)
    model = TwoTower(rank=3)  # the last layer's weight has rank 3
    out = probe_collapse(model, [torch.randn(100, 10) for _ in range(5)],
                         modules=["tower.2", "tower.0"])
    assert 1.0 < out["tower.2"]["erank"] <= 3.0 + 1e-6
    assert 1.0 < out["tower.2"]["ia"] <= 3.0 + 1e-6
    assert out["tower.0"]["erank"] > 3.5  # the first layer is not collapsed


def test_memory_is_bounded_and_no_activation_is_kept():
    torch.manual_seed(1)
    d = 6
    model = TwoTower(d=d)
    targets = _resolve_targets(model, ["tower.2"], root_name="model")
    probes = _ProbeSet(targets, center=False, row_normalize=False, select=None,
                       is_active=lambda: True)
    gram = probes.grams["tower.2"]
    refs, kept = [], []
    model.tower[2].register_forward_hook(lambda m, a, o: refs.append(weakref.ref(o)))
    sizes = set()  # accumulator bytes after each batch
    with torch.no_grad():
        for _ in range(120):
            x = torch.randn(64, 10)
            kept.append(model(x).double())
            sizes.add(gram.nbytes())
            # the accumulator's state: one d x d Gram, one mean, one counter
            state = [v for v in vars(gram).values() if isinstance(v, torch.Tensor)]
            assert sorted(t.numel() for t in state) == [d, d * d]
    probes.close()
    assert sizes == {(d * d + d) * 8}  # constant from the first to the last batch
    del x
    gc.collect()
    assert all(r() is None for r in refs)  # every output was freed
    assert gram.n_samples_seen == 120 * 64
    (got,) = probes.results([get_collapse_metric("erank")]).values()
    np.testing.assert_allclose(
        got["erank"], ref_erank_ia(torch.cat(kept).numpy())[0], rtol=1e-9
    )
    assert not model.tower[2]._forward_hooks or len(model.tower[2]._forward_hooks) == 1


def test_probe_function_frees_activations_and_restores_the_model():
    model = TwoTower()
    model.train()
    refs = []
    model.tower[0].register_forward_hook(lambda m, a, o: refs.append(weakref.ref(o)))
    loader = torch.utils.data.DataLoader(torch.randn(200, 10), batch_size=16)
    out = probe_collapse(model, loader, modules=lambda n, m: isinstance(
        m, torch.nn.Linear), max_batches=5)
    assert set(out) == {"tower.0", "tower.2"}
    assert out["tower.0"]["n_samples"] == 5 * 16
    gc.collect()
    assert refs and all(r() is None for r in refs)
    assert model.training  # mode restored
    assert len(model.tower[0]._forward_hooks) == 1  # only the test's own hook
    assert not model.tower[2]._forward_hooks


def test_tuple_outputs_methods_and_errors():
    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def both(self, x):
            return self.lin(x), x

        def forward(self, x):
            return self.both(x)

    model = Pair()
    loader = [torch.randn(10, 4) for _ in range(3)]
    with pytest.raises(TypeError, match="output=<callable>"):
        probe_collapse(model, loader, modules=["both"])
    assert "both" not in vars(model)  # the wrapped method is restored
    out = probe_collapse(model, loader, modules=["both"], output=lambda o: o[1])
    er, _ = ref_erank_ia(torch.cat(loader).numpy())
    np.testing.assert_allclose(out["both"]["erank"], er, rtol=1e-9)
    with pytest.raises(ValueError, match=r"sub-modules: \['lin'\]"):
        probe_collapse(model, loader, modules=["nope"])
    with pytest.raises(ValueError, match="spectral"):
        probe_collapse(model, loader, modules=["lin"], metrics=["norm_std"])
    with pytest.raises(TypeError, match="CollapseProbe"):
        probe_collapse(object(), loader, modules=["lin"])


class _TrainBatches(Callback):
    """Test reference: keep LightGCN's propagated table of every training batch."""

    def __init__(self):
        self.active = False
        self.epochs = []

    def on_train_begin(self, net, **kwargs):
        owner = net.module_
        original = owner.propagate

        def spy():
            out = original()
            if self.active:
                self.epochs[-1].append(out.detach().double().numpy().copy())
            return out

        owner.propagate = spy

    def on_epoch_begin(self, net, **kwargs):
        self.epochs.append([])

    def on_batch_begin(self, net, training=None, **kwargs):
        self.active = bool(training)

    def on_batch_end(self, net, **kwargs):
        self.active = False

    def on_train_end(self, net, **kwargs):
        del net.module_.propagate


def test_callback_records_lightgcn_propagation_each_epoch():
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import LightGCNRecommender

    X = make_interactions(60, 40, random_state=0)
    spy = _TrainBatches()
    probe = CollapseProbe(modules={"gcn": "module_.propagate"})
    net = LightGCNRecommender(
        embedding_dim=6, n_layers=2, max_epochs=2, batch_size=256, random_state=0,
        callbacks=[spy, probe],
    ).fit(X)
    for epoch, tables in enumerate(spy.epochs):
        assert tables  # batches ran
        er, ia = ref_erank_ia(np.concatenate(tables))
        np.testing.assert_allclose(net.history[epoch, "erank_gcn"], er, rtol=1e-8)
        np.testing.assert_allclose(net.history[epoch, "ia_gcn"], ia, rtol=1e-8)
    assert probe.results_["gcn"]["n_samples"] == sum(t.shape[0] for t in spy.epochs[-1])
    assert "propagate" not in vars(net.module_)  # unwrapped after the fit
    import pickle

    pickle.loads(pickle.dumps(net))  # the callback pickles without its hooks


def test_callback_every_and_bad_names():
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(40, 30, random_state=0)
    net = MFRecommender(
        embedding_dim=4, max_epochs=3, random_state=0,
        callbacks=[CollapseProbe(modules={"batch_items": "module_.encode"}, every=2,
                                 output=lambda out: out["item"])],
    ).fit(X)
    recorded = ["erank_batch_items" in row for row in net.history]
    assert recorded == [False, True, True]  # epoch 2, and always the last
    assert 1.0 <= net.history[-1, "erank_batch_items"] <= 4.0
    # MF reads its table as a weight (F.embedding): the module is never called
    with pytest.warns(UserWarning, match="produced no output"):
        MFRecommender(embedding_dim=4, max_epochs=1, random_state=0,
                      callbacks=[CollapseProbe(modules=["module_.embedding"])]).fit(X)
    with pytest.raises(ValueError, match="not found"):
        MFRecommender(max_epochs=1, callbacks=[CollapseProbe(modules=["module_.x"])]
                      ).fit(X)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_probe_on_cuda_matches_cpu():
    torch.manual_seed(2)
    model = TwoTower(rank=4)
    data = [torch.randn(128, 10) for _ in range(20)]
    cpu = probe_collapse(model, data, modules=["tower.2"])
    gpu = probe_collapse(model.to("cuda"), data, modules=["tower.2"])
    np.testing.assert_allclose(gpu["tower.2"]["erank"], cpu["tower.2"]["erank"],
                               rtol=1e-5)
