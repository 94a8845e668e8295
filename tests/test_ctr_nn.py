"""CTR torch modules against brute-force references and the paper's structure."""

import itertools

import numpy as np
import pytest
import torch

from skcollapse.nn import (
    CIN,
    DNN,
    FM,
    IPNN,
    BilinearFusion,
    CrossNetV2,
    DCNv2,
    FieldEmbedding,
    FieldIndexer,
    FieldLinear,
    FinalMLP,
    FMInteraction,
    FwFMPooling,
    InnerProduct,
    MLPBlock,
    NFwFM,
    XDeepFM,
)

FIELD_DIMS = [3, 5, 2, 7]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _codes(rng, n=16, dims=FIELD_DIMS):
    # mix of known codes, negatives and too-large codes
    X = np.stack([rng.integers(-2, d + 3, size=n) for d in dims], axis=1)
    return torch.as_tensor(X)


# --------------------------------------------------------------------- indexer
def test_indexer_matches_loop(rng):
    x = _codes(rng, 40)
    rows = FieldIndexer(FIELD_DIMS)(x).numpy()
    offset = 0
    for f, d in enumerate(FIELD_DIMS):
        for b in range(x.shape[0]):
            code = int(x[b, f])
            expected = offset + (code if 0 <= code < d else d)
            assert rows[b, f] == expected
        offset += d + 1


def test_indexer_rejects_bad_input():
    idx = FieldIndexer(FIELD_DIMS)
    with pytest.raises(ValueError, match="shape"):
        idx(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        idx(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        idx(torch.zeros(4, dtype=torch.long))


# --------------------------------------------------------------------- embedding
def test_embedding_sets_lookup_and_tables(rng):
    emb = FieldEmbedding(FIELD_DIMS, 4, n_sets=3)
    n_rows = sum(d + 1 for d in FIELD_DIMS)
    assert emb.weight.shape == (3 * n_rows, 4)
    x = _codes(rng, 20)
    out = emb(x)
    assert out.shape == (3, 20, len(FIELD_DIMS), 4)
    W = emb.weight.detach().numpy()
    offset = 0
    for f, d in enumerate(FIELD_DIMS):
        for m in range(3):
            table = emb.table(f, m).detach().numpy()
            np.testing.assert_array_equal(
                table, W[m * n_rows + offset : m * n_rows + offset + d]
            )
            for b in range(20):
                code = int(x[b, f])
                row = code if 0 <= code < d else d
                np.testing.assert_array_equal(
                    out[m, b, f].detach().numpy(), W[m * n_rows + offset + row]
                )
            oov = emb.oov_vector(f, m).detach().numpy()
            np.testing.assert_array_equal(oov, W[m * n_rows + offset + d])
        offset += d + 1
    # sets are initialised independently, within the Xavier bound of one set
    bound = np.sqrt(6.0 / (n_rows + 4))
    assert np.abs(W).max() <= bound
    assert not np.allclose(W[:n_rows], W[n_rows : 2 * n_rows])


def test_embedding_gradient_reaches_only_looked_up_rows():
    emb = FieldEmbedding([3, 2], 2, n_sets=2)
    x = torch.tensor([[0, -1]])
    emb(x)[1].sum().backward()
    grad_rows = torch.nonzero(emb.weight.grad.abs().sum(1)).flatten().tolist()
    n_rows = 3 + 1 + 2 + 1
    # set 1: row 0 of field 0, OOV row (index 2) of field 1 at offset 4
    assert grad_rows == [n_rows + 0, n_rows + 4 + 2]


def test_field_linear_matches_loop(rng):
    lin = FieldLinear(FIELD_DIMS)
    with torch.no_grad():
        lin.weight.normal_()
        lin.bias.fill_(0.3)
    x = _codes(rng, 10)
    got = lin(x).detach().numpy()
    w = lin.weight.detach().numpy()
    for b in range(10):
        total, offset = 0.3, 0
        for f, d in enumerate(FIELD_DIMS):
            code = int(x[b, f])
            total += w[offset + (code if 0 <= code < d else d)]
            offset += d + 1
        assert got[b] == pytest.approx(total, rel=1e-5)


# --------------------------------------------------------------------- blocks
def test_fm_interaction_matches_pair_loop():
    e = torch.randn(6, 5, 3)
    got = FMInteraction()(e)
    ref = sum((e[:, i] * e[:, j]).sum(1) for i, j in itertools.combinations(range(5), 2))
    torch.testing.assert_close(got, ref)
    per_dim = FMInteraction(reduce_sum=False)(e)
    ref_dim = sum(e[:, i] * e[:, j] for i, j in itertools.combinations(range(5), 2))
    torch.testing.assert_close(per_dim, ref_dim)


def test_inner_product_matches_pair_loop():
    e = torch.randn(4, 6, 3)
    got = InnerProduct(6)(e)
    pairs = list(itertools.combinations(range(6), 2))
    assert got.shape == (4, len(pairs))
    for p, (i, j) in enumerate(pairs):
        torch.testing.assert_close(got[:, p], (e[:, i] * e[:, j]).sum(1))


def test_fwfm_pooling_pairs_matches_pair_loop():
    e = torch.randn(4, 5, 3)
    pool = FwFMPooling(5, pooling="pairs")
    got = pool(e)
    r = pool.weight.detach()
    ref = sum(r[i, j] * e[:, i] * e[:, j] for i, j in itertools.combinations(range(5), 2))
    torch.testing.assert_close(got, ref)


def _reference_nfwfm_pooling(e, weight):
    """``thuml/Multi-Embedding`` ``torchfm/model/fwfm.py::NFwFM.forward``, in numpy.

    ``weight`` is the reference's ``(1, F, F)`` parameter; inputs ``(B, F, E)``.
    """
    batch = e.shape[0]
    w = np.broadcast_to(weight, (batch, 1, *weight.shape[1:]))  # B x 1 x F x F
    inputs_a = e.transpose(0, 2, 1)[..., None]  # B x E x F x 1
    inputs_b = e.transpose(0, 2, 1)[..., None, :]  # B x E x 1 x F
    inter = np.matmul(inputs_a, inputs_b) * w  # B x E x F x F
    return inter.sum(axis=-1).sum(axis=-1)  # B x E


def test_fwfm_pooling_full_matches_reference_transcription():
    """Default pooling = the reference NFwFM: all F x F weights, self terms too."""
    rng = np.random.RandomState(3)
    e = rng.normal(size=(6, 5, 4))
    pool = FwFMPooling(5).double()
    with torch.no_grad():
        pool.weight.copy_(torch.as_tensor(rng.normal(size=(5, 5))))
    got = pool(torch.as_tensor(e)).detach().numpy()
    ref = _reference_nfwfm_pooling(e, pool.weight.detach().numpy()[None])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # the self terms are part of it: the pairs-only pooling differs
    pairs = FwFMPooling(5, pooling="pairs").double()
    with torch.no_grad():
        pairs.weight.copy_(pool.weight)
    assert not np.allclose(pairs(torch.as_tensor(e)).detach().numpy(), ref)


def test_nfwfm_model_pools_like_the_reference():
    """NFwFM (M=1, no dropout, eval) = MLP(BN(reference pooling(e)))."""
    torch.manual_seed(0)
    model = NFwFM(FIELD_DIMS, 4, 1, hidden_units=(6,), dropout=0.0).double().eval()
    x = _codes(np.random.default_rng(0), 7)
    e = model.embed(x)[0]
    block = model.set_blocks[0]
    w = block[0].weight.detach().numpy()[None]
    pooled = torch.as_tensor(_reference_nfwfm_pooling(e.detach().numpy(), w))
    expected = model.head(block[2:](block[1](pooled))).reshape(-1)
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("m", [1, 2, 4])
def test_ipnn_input_size_matches_reference(m):
    """Reference: SE IPNN feeds N(N-1)/2 + N*K values, its ME-IPNN N(N-1)/2."""
    n, k = len(FIELD_DIMS), 3
    model = IPNN(FIELD_DIMS, k, m, hidden_units=(6, 5))
    pairs = n * (n - 1) // 2
    expected = pairs + n * k if m == 1 else pairs
    for block in model.set_blocks:
        assert block.mlp[0].in_features == expected
    # either form can be forced for every M
    forced = IPNN(FIELD_DIMS, k, m, hidden_units=(6,), concat_embeddings=True)
    assert forced.set_blocks[0].mlp[0].in_features == pairs + n * k


@pytest.mark.parametrize("split_half", [False, True])
def test_cin_matches_definition(split_half):
    torch.manual_seed(0)
    n, k = 4, 3
    cin = CIN(n, (4, 6), split_half=split_half)
    e = torch.randn(5, n, k)
    # X^l_h = relu(sum_{i,j} W^l_{h,i,j} X^0_i * X^{l-1}_j + b^l_h), sum-pooled
    h_prev, pooled = e, []
    for li, conv in enumerate(cin.convs):
        w = conv.weight.detach()[:, :, 0].reshape(conv.out_channels, n, h_prev.shape[1])
        z = torch.relu(
            torch.einsum("hij,bik,bjk->bhk", w, e, h_prev)
            + conv.bias.detach()[None, :, None]
        )
        if split_half and li < len(cin.convs) - 1:
            half = z.shape[1] // 2
            h_prev, out = z[:, :half], z[:, half:]
        else:
            h_prev = out = z
        pooled.append(out.sum(2))
    ref = torch.cat(pooled, 1)
    got = cin(e)
    assert got.shape[1] == cin.output_dim
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_cin_split_half_needs_even_sizes():
    with pytest.raises(ValueError, match="even"):
        CIN(3, (5, 4), split_half=True)


def test_crossnet_matches_numpy_recursion():
    cross = CrossNetV2(6, 3)
    with torch.no_grad():
        for b in cross.biases:
            b.normal_()
    x0 = np.random.default_rng(1).normal(size=(4, 6))
    x = x0.copy()
    for w, b in zip(cross.weights, cross.biases):
        x = x0 * (x @ w.detach().numpy().T + b.detach().numpy()) + x
    got = cross(torch.as_tensor(x0, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, x, rtol=1e-4, atol=1e-5)


def test_mlp_block_layers():
    mlp = MLPBlock(7, (5, 3), dropout=0.1, output_layer=True)
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == [
        "Linear", "BatchNorm1d", "ReLU", "Dropout",
        "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear",
    ]
    assert MLPBlock(7, (5,), batch_norm=False).output_dim == 5
    assert MLPBlock(7, 4).output_dim == 4  # an int is one layer


def test_bilinear_fusion_matches_formula():
    fusion = BilinearFusion(4)
    with torch.no_grad():
        fusion.w12.normal_()
    s = torch.randn(3, 2, 4)
    a, b = s[:, 0], s[:, 1]
    ref = (
        a @ fusion.w1.weight.detach().T[:, 0]
        + fusion.w1.bias.detach()
        + b @ fusion.w2.weight.detach().T[:, 0]
        + torch.einsum("bi,ij,bj->b", a, fusion.w12.detach(), b)
    )
    torch.testing.assert_close(fusion(s), ref)


# --------------------------------------------------------------------- models
def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _mlp_params(d_in, units):
    total = 0
    for u in units:
        total += d_in * u + u + 2 * u  # Linear + BatchNorm affine
        d_in = u
    return total


R = sum(d + 1 for d in FIELD_DIMS)
N = len(FIELD_DIMS)


def _expected_params(name, m, k, h=(6, 5)):
    d = N * k
    head = _mlp_params(h[0], h[1:]) + h[-1] + 1
    pairs = N * (N - 1) // 2
    if name == "FM":
        return m * R * k + R + 1
    if name == "DNN":
        return m * (R * k + _mlp_params(d, h[:1])) + head
    if name == "IPNN":  # products only for M > 1 (the reference ME-IPNN)
        return m * (R * k + _mlp_params((d if m == 1 else 0) + pairs, h[:1])) + head
    if name == "NFwFM":
        return m * (R * k + N * N + 2 * k + _mlp_params(k, h[:1])) + head
    if name == "XDeepFM":
        c1, c2 = 4, 3
        cin = N * N * c1 + c1 + N * c1 * c2 + c2
        return m * (R * k + cin + _mlp_params(d, h[:1])) + (c1 + c2 + 1) + head
    if name == "DCNv2":
        cross = 2 * (d * d + d)
        return m * (R * k + cross + _mlp_params(d, h[:1])) + head
    if name == "FinalMLP":
        streams = 2 * _mlp_params(d, h)
        return m * (R * k + streams) + (h[-1] + 1) + h[-1] + h[-1] ** 2
    raise AssertionError(name)


def _make(name, m, k=3):
    kw = {"hidden_units": (6, 5), "dropout": 0.0}
    if name == "FM":
        return FM(FIELD_DIMS, k, m)
    if name == "XDeepFM":
        return XDeepFM(FIELD_DIMS, k, m, cin_layer_sizes=(4, 3), **kw)
    if name == "DCNv2":
        return DCNv2(FIELD_DIMS, k, m, n_cross_layers=2, **kw)
    cls = {"DNN": DNN, "IPNN": IPNN, "NFwFM": NFwFM, "FinalMLP": FinalMLP}[name]
    return cls(FIELD_DIMS, k, m, **kw)


MODELS = ["FM", "DNN", "IPNN", "NFwFM", "XDeepFM", "DCNv2", "FinalMLP"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("m", [1, 2, 4])
def test_parameter_count_is_the_papers(name, m):
    """M sets = M copies of tables + interaction + projection, one shared head."""
    assert _n_params(_make(name, m)) == _expected_params(name, m, 3)


@pytest.mark.parametrize("name", [n for n in MODELS if n not in ("FM", "XDeepFM")])
def test_forward_is_mean_of_independent_set_blocks(name, rng):
    model = _make(name, 3).eval()
    x = _codes(rng, 8)
    e = model.embed(x)
    per_set = [model.set_blocks[m](e[m]) for m in range(3)]
    expected = model.head(torch.stack(per_set).mean(0)).reshape(-1)
    torch.testing.assert_close(model(x), expected)
    # a set's block sees only its own embeddings: changing set 2 leaves 0, 1 alone
    e2 = e.clone()
    e2[2] += 1.0
    torch.testing.assert_close(model.set_blocks[0](e2[0]), per_set[0])


def test_xdeepfm_forward_sums_cin_and_deep_logits(rng):
    model = _make("XDeepFM", 2).eval()
    x = _codes(rng, 8)
    e = model.embed(x)
    cin = torch.stack([model.cins[m](e[m]) for m in range(2)]).mean(0)
    deep = torch.stack([model.set_blocks[m](e[m]) for m in range(2)]).mean(0)
    expected = (model.cin_out(cin) + model.head(deep)).reshape(-1)
    torch.testing.assert_close(model(x), expected)


def _se_dcnv2_reference(model, x):
    """Single-embedding DCNv2 of the reference code, written out from scratch."""
    emb = model.embedding.weight.detach().numpy()
    rows = []
    for b in range(x.shape[0]):
        offset, parts = 0, []
        for f, d in enumerate(model.field_dims):
            code = int(x[b, f])
            parts.append(emb[offset + (code if 0 <= code < d else d)])
            offset += d + 1
        rows.append(np.concatenate(parts))
    x0 = np.stack(rows).astype(np.float64)
    h = x0.copy()
    block = model.set_blocks[0]
    for w, bias in zip(block.cross.weights, block.cross.biases):
        h = x0 * (h @ w.detach().numpy().T + bias.detach().numpy()) + h
    layers = [block.mlp[0], block.mlp[1], model.head[0], model.head[1]]
    for lin, bn in zip(layers[::2], layers[1::2]):
        h = h @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
        rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
        h = (h - rm) / np.sqrt(rv + bn.eps) * bn.weight.detach().numpy() + (
            bn.bias.detach().numpy()
        )
        h = np.maximum(h, 0)
    out = model.head[-1]
    return (h @ out.weight.detach().numpy().T + out.bias.detach().numpy())[:, 0]


def test_single_set_dcnv2_is_the_se_model(rng):
    model = _make("DCNv2", 1)
    # give BatchNorm non-trivial running statistics
    model.train()
    with torch.no_grad():
        model(_codes(rng, 64))
    model.eval()
    x = _codes(rng, 12)
    np.testing.assert_allclose(
        model(x).detach().numpy(), _se_dcnv2_reference(model, x), rtol=1e-4,
        atol=1e-5,
    )
    # SE structure: cross network -> MLP(h0, h1) -> logit, nothing per set extra
    assert _n_params(model) == _expected_params("DCNv2", 1, 3)


def test_multi_set_fm_equals_wide_single_fm(rng):
    """FM's bilinear interaction: M sets of K == one set of M*K scaled by 1/sqrt(M)."""
    m, k = 3, 2
    me = FM(FIELD_DIMS, k, m)
    se = FM(FIELD_DIMS, m * k, 1)
    with torch.no_grad():
        w = me.embedding.weight.view(m, R, k)
        se.embedding.weight.copy_(w.permute(1, 0, 2).reshape(R, m * k) / np.sqrt(m))
        se.linear.load_state_dict(me.linear.state_dict())
    x = _codes(rng, 10)
    torch.testing.assert_close(me(x), se(x))


def test_dcnv2_sub_embeddings_match_blocks():
    model = _make("DCNv2", 2)
    k = 3
    for f in range(N):
        sub = model.sub_embeddings(f, 1).detach()
        table = model.embedding.table(f, 1).detach()
        W = model.set_blocks[1].cross.weights[0].detach()
        assert sub.shape == (N, FIELD_DIMS[f], k)
        for j in range(N):
            block = W[j * k : (j + 1) * k, f * k : (f + 1) * k]
            torch.testing.assert_close(sub[j], table @ block.T)


def test_forward_accepts_transformed_embeddings(rng):
    model = _make("DNN", 2).eval()
    x = _codes(rng, 5)
    e = model.embed(x)
    torch.testing.assert_close(model(x, embeddings=e), model(x))
    assert not torch.allclose(model(x, embeddings=e * 0), model(x))


def test_model_argument_errors():
    # Scalar arguments are validated by the estimators; the modules only refuse
    # what depends on the data they are built for.
    with pytest.raises(ValueError, match="2 fields"):
        NFwFM([4], 3, 1, pooling="pairs")
    with pytest.raises(ValueError, match="2 fields"):
        IPNN([4], 3, 1, concat_embeddings=False)


def test_modules_trust_numpy_integer_arguments(rng):
    """Sizes computed with numpy (np.int64, an int array) build the same model."""
    torch.manual_seed(0)
    ref = DCNv2(FIELD_DIMS, 3, 2, n_cross_layers=1, hidden_units=(8,)).eval()
    torch.manual_seed(0)
    model = DCNv2(
        np.array(FIELD_DIMS),
        np.int64(3),
        np.int64(2),
        n_cross_layers=np.int64(1),
        hidden_units=np.array([8]),
    ).eval()
    assert model.field_dims == tuple(FIELD_DIMS)
    assert type(model.embedding_dim) is int and type(model.n_embedding_sets) is int
    x = _codes(rng, 6)
    torch.testing.assert_close(model(x), ref(x))


def test_nn_exports_what_each_module_lists_and_lists_what_it_defines():
    # skcollapse.nn re-exports its modules' __all__: a public class or function
    # defined in an nn module and left out of that module's __all__ would be
    # missing from the package.
    import importlib
    import inspect
    import pkgutil

    import skcollapse.nn as nn_pkg

    exported = []
    for info in pkgutil.iter_modules(nn_pkg.__path__):
        module = importlib.import_module(f"skcollapse.nn.{info.name}")
        defined = {
            name for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and obj.__module__ == module.__name__
        }
        assert defined <= set(module.__all__), (info.name, defined - set(module.__all__))
        exported += module.__all__
    assert sorted(nn_pkg.__all__) == sorted(exported)
    assert len(set(exported)) == len(exported)
    assert {"FM", "MLP_HIDDEN_UNITS", "FieldEmbedding", "TwoTower"} <= set(exported)
    assert all(hasattr(nn_pkg, name) for name in exported)
