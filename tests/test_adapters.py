"""extract_embeddings: a real fitted implicit model, a RecBole checkpoint file in
the format RecBole's trainer writes, TorchRec state dicts, plain modules; the
tables come back equal to the source's and score like the source's."""

from __future__ import annotations

import enum
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skcollapse.adapters import EmbeddingTables, extract_embeddings, load_checkpoint
from skcollapse.cli import main
from skcollapse.metrics import ErankScorer, effective_rank


def ref_erank(A):
    s = np.linalg.svd(np.asarray(A, dtype=np.float64), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


# ------------------------------------------------------------------ implicit
def _user_items(rng, n_users=60, n_items=40):
    M = sp.random(n_users, n_items, density=0.15, format="csr", random_state=rng)
    M.data[:] = 1.0
    return M


@pytest.mark.parametrize("kind", ["als", "bpr", "lmf"])
def test_real_implicit_model(kind, tmp_path):
    implicit = pytest.importorskip("implicit")
    rng = np.random.RandomState(0)
    cls = {
        "als": implicit.als.AlternatingLeastSquares,
        "bpr": implicit.bpr.BayesianPersonalizedRanking,
        "lmf": implicit.lmf.LogisticMatrixFactorization,
    }[kind]
    model = cls(factors=6, iterations=2, random_state=0)
    model.fit(_user_items(rng), show_progress=False)
    tables = extract_embeddings(model)
    assert set(tables) == {"user", "item"}
    # the latent factors: the first `factors` columns (BPR appends an item bias
    # and a column of ones, LMF two such columns)
    np.testing.assert_array_equal(tables["user"], model.user_factors[:, :6])
    np.testing.assert_array_equal(tables["item"], model.item_factors[:, :6])
    full = extract_embeddings(model, include_bias=True)
    np.testing.assert_array_equal(full["item"], model.item_factors)
    if kind == "bpr":
        assert full["user"].shape[1] == 7
        np.testing.assert_array_equal(full["user"][:, -1], 1.0)
    # implicit's own save() file gives the same tables
    model.save(tmp_path / "model.npz")
    saved = extract_embeddings(tmp_path / "model.npz")
    for name in ("user", "item"):
        np.testing.assert_array_equal(saved[name], tables[name])
    # usable by the scorers
    np.testing.assert_allclose(
        ErankScorer(table="item")(EmbeddingTables(model)), ref_erank(tables["item"]),
        rtol=1e-6,
    )


def test_implicit_model_not_fitted_says_so():
    implicit = pytest.importorskip("implicit")
    with pytest.raises(ValueError, match="fit it first"):
        extract_embeddings(implicit.als.AlternatingLeastSquares(factors=4))


# ------------------------------------------------------------------ RecBole
@pytest.fixture
def recbole_checkpoint(tmp_path, monkeypatch):
    """A checkpoint as RecBole's Trainer._save_checkpoint writes it, with a
    pickled config object of a module that is gone when the file is read."""
    fake = types.ModuleType("fake_recbole_config")

    class ModelType(enum.Enum):
        GENERAL = 1

    class Config:
        def __init__(self):
            self.final_config_dict = {"model": "LightGCN", "embedding_size": 8,
                                      "MODEL_TYPE": ModelType.GENERAL}

    for cls in (ModelType, Config):
        cls.__module__, cls.__qualname__ = fake.__name__, cls.__name__
        setattr(fake, cls.__name__, cls)
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    model = torch.nn.Module()
    model.user_embedding = torch.nn.Embedding(30, 8)
    model.item_embedding = torch.nn.Embedding(50, 8)
    with torch.no_grad():  # a planted rank-3 item table
        model.item_embedding.weight.copy_(torch.randn(50, 3) @ torch.randn(3, 8))
    opt = torch.optim.Adam(model.parameters())
    (model.user_embedding.weight.sum() + model.item_embedding.weight.sum()).backward()
    opt.step()
    state = {
        "config": Config(),
        "epoch": 5,
        "cur_step": 0,
        "best_valid_score": 0.1,
        "state_dict": model.state_dict(),
        "other_parameter": None,
        "optimizer": opt.state_dict(),  # holds 2-D Adam moments: not tables
    }
    path = tmp_path / "LightGCN-Oct-01-2024_10-00-00.pth"
    torch.save(state, path)
    monkeypatch.delitem(sys.modules, fake.__name__)  # RecBole is not installed
    return path, model


def test_recbole_checkpoint_file(recbole_checkpoint):
    path, model = recbole_checkpoint
    tables = extract_embeddings(path)
    assert list(tables) == ["user", "item"]
    np.testing.assert_array_equal(tables["item"], model.item_embedding.weight.detach())
    np.testing.assert_array_equal(tables["user"], model.user_embedding.weight.detach())
    assert effective_rank(tables["item"]) <= 3 + 1e-9
    obj = load_checkpoint(path)
    assert obj["epoch"] == 5 and "object not loaded" in repr(obj["config"])
    assert list(extract_embeddings(obj)) == ["user", "item"]


def test_cli_scores_a_recbole_checkpoint(recbole_checkpoint, capsys):
    import json

    path, model = recbole_checkpoint
    assert main(["score", str(path), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["tables"]}
    assert set(rows) == {"user", "item"}  # not the optimizer's moments
    np.testing.assert_allclose(
        rows["item"]["effective_rank"],
        ref_erank(model.item_embedding.weight.detach().numpy()), rtol=1e-5,
    )


# ------------------------------------------------------------------ TorchRec
def test_torchrec_state_dicts():
    rng = np.random.default_rng(1)
    sd = {
        "sparse_arch.embedding_bag_collection.embedding_bags.t_user.weight":
            torch.from_numpy(rng.normal(size=(20, 4))),
        "sparse_arch.embedding_bag_collection.embedding_bags.t_item.weight":
            torch.from_numpy(rng.normal(size=(30, 4))),
        "dense_arch.model._mlp.0._linear.weight": torch.zeros(8, 13),
    }
    tables = extract_embeddings(sd)
    assert list(tables) == ["t_user", "t_item"]
    np.testing.assert_array_equal(tables["t_item"], sd[next(iter(
        k for k in sd if "t_item" in k))].numpy())
    ec = {"embeddings.cat_0.weight": torch.ones(5, 3)}  # EmbeddingCollection
    assert list(extract_embeddings(ec)) == ["cat_0"]


def test_torchrec_style_module():
    # the module layout of torchrec.EmbeddingBagCollection: a ModuleDict
    # "embedding_bags" of nn.EmbeddingBag, one per table
    ebc = torch.nn.Module()
    ebc.embedding_bags = torch.nn.ModuleDict(
        {"t1": torch.nn.EmbeddingBag(10, 4), "t2": torch.nn.EmbeddingBag(12, 4)}
    )
    tables = extract_embeddings(ebc)
    assert list(tables) == ["t1", "t2"]
    np.testing.assert_array_equal(tables["t2"], ebc.embedding_bags["t2"].weight.detach())


# ------------------------------------------------------------------ plain torch
def test_module_and_state_dict_naming_rules():
    model = torch.nn.Module()
    model.user_mf = torch.nn.Embedding(6, 4)
    model.user_mlp = torch.nn.Embedding(6, 4)  # two user tables: names kept
    model.item_embedding = torch.nn.Embedding(9, 4)
    model.item_bias = torch.nn.Embedding(9, 1)  # a bias: one column
    model.head = torch.nn.Linear(4, 1)
    tables = extract_embeddings(model)
    assert list(tables) == ["user_mf", "user_mlp", "item"]
    sd = model.state_dict()
    assert list(extract_embeddings(sd)) == ["item"]  # only names with "embed"
    picked = extract_embeddings(sd, tables={"bias": "item_bias.weight"})
    np.testing.assert_array_equal(picked["bias"], model.item_bias.weight.detach())
    with pytest.raises(ValueError, match="not found"):
        extract_embeddings(model, tables=["nope"])
    plain = {"0.weight": torch.randn(5, 3), "1.weight": torch.randn(5, 1)}
    assert list(extract_embeddings(plain)) == ["0"]  # every 2-D table, no bias


def test_skcollapse_objects_and_errors():
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(40, 30, random_state=0)
    est = MFRecommender(embedding_dim=4, max_epochs=1, random_state=0).fit(X)
    ref = est.get_embeddings()
    for obj in (est, est.module_, EmbeddingTables(est)):
        got = extract_embeddings(obj)
        for name in ("user", "item"):
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-6)
    with pytest.raises(TypeError, match="cannot read"):
        extract_embeddings(3.0)
    with pytest.raises(ValueError, match="no embedding table"):
        extract_embeddings({"bias": torch.zeros(5)})
    with pytest.raises(FileNotFoundError):
        extract_embeddings("/nonexistent/model.pth")
