"""The collapse-metric registry is the one extension point (issue 30, item 4).

A metric registered once -- here a planted ``mean_norm`` that no part of
skcollapse knows -- must at once be a function (``collapse_metrics``), a scorer
(``CollapseScorer``, ``get_collapse_scorer``), a ``CollapseMonitor`` history
column and a ``skcollapse score`` column; unregistering removes it everywhere.
"""

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skcollapse.adapters import EmbeddingTables
from skcollapse.callbacks import CollapseMonitor
from skcollapse.cli import main
from skcollapse.datasets import make_interactions
from skcollapse.metrics import (
    CollapseScorer,
    ErankScorer,
    collapse_metrics,
    effective_rank,
    get_collapse_metric,
    get_collapse_metric_names,
    get_collapse_scorer,
    get_collapse_scorer_names,
    get_embedding_tables,
    metric_of_column,
    random_reference,
    register_collapse_metric,
    resolve_collapse_metrics,
    unregister_collapse_metric,
)
from skcollapse.recommenders import MFRecommender


def mean_norm(table):
    """Mean L2 norm of the rows."""
    if hasattr(table, "cpu"):  # the monitor hands over the net's tensors
        table = table.cpu().numpy()
    rows = np.asarray(table, dtype=np.float64)
    return float(np.linalg.norm(rows, axis=1).mean())


@pytest.fixture
def planted():
    entry = register_collapse_metric("mean_norm", mean_norm)
    yield entry
    unregister_collapse_metric("mean_norm")


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 8)) * np.geomspace(3, 0.1, 8)


def test_planted_metric_is_a_function(planted, table):
    assert planted.description == "Mean L2 norm of the rows."
    assert "mean_norm" in get_collapse_metric_names()
    got = collapse_metrics(table, metrics=["effective_rank", "mean_norm"])
    assert got == pytest.approx(
        {"effective_rank": effective_rank(table), "mean_norm": mean_norm(table)}
    )
    per_table = collapse_metrics({"a": table, "b": 2 * table}, metrics="mean_norm")
    assert per_table["b"]["mean_norm"] == pytest.approx(2 * mean_norm(table))
    with pytest.raises(ValueError, match="no value for a random table"):
        collapse_metrics(table, metrics=["mean_norm"], relative=True)
    with pytest.raises(ValueError, match="no random-table reference"):
        random_reference(table.shape, "mean_norm")


def test_planted_metric_is_a_scorer(planted, table):
    assert {"mean_norm"} <= set(get_collapse_scorer_names())
    model = EmbeddingTables({"user_factors": table[:50], "item_factors": table})
    scorer = get_collapse_scorer("mean_norm", table="item")
    assert isinstance(scorer, CollapseScorer) and scorer.metric == "mean_norm"
    assert scorer(model) == pytest.approx(mean_norm(table))
    # inside a Pipeline and a search too, and reduced over tables
    assert scorer(make_pipeline(model)) == pytest.approx(mean_norm(table))
    both = CollapseScorer(metric="mean_norm", reduce="max")(model)
    assert both == pytest.approx(max(mean_norm(table), mean_norm(table[:50])))
    # as an estimator: fit/score on a raw matrix; no streaming (it reads rows)
    probe = CollapseScorer(metric="mean_norm").fit(table)
    assert probe.metric_value_ == pytest.approx(mean_norm(table))
    assert probe.score(2 * table) == pytest.approx(2 * mean_norm(table))
    assert not hasattr(probe, "partial_fit")
    assert scorer.__name__ == "mean_norm_item"  # EpochScoring's column


def test_planted_metric_is_a_monitor_column(planted):
    X = make_interactions(60, 40, random_state=0)
    net = MFRecommender(
        embedding_dim=4, max_epochs=2, batch_size=64, random_state=0,
        callbacks=[CollapseMonitor(metrics=["erank", "mean_norm"])],
    ).fit(X)
    last = net.history[-1]
    assert {"mean_norm_user", "mean_norm_item", "erank_item"} <= set(last)
    item = net.get_embeddings()["item"]
    assert last["mean_norm_item"] == pytest.approx(mean_norm(item), rel=1e-5)
    assert metric_of_column("mean_norm_item") == "mean_norm"


def test_planted_metric_is_a_cli_column(planted, table, tmp_path, capsys):
    path = tmp_path / "items.npy"
    np.save(path, table)
    assert main(["score", str(path), "--metrics", "erank,mean_norm", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["tables"]
    assert row["mean_norm"] == pytest.approx(mean_norm(table))
    assert row["effective_rank"] == pytest.approx(effective_rank(table))
    assert main(["score", str(path), "--metrics", "mean_norm", "--relative"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[1].split()
    assert header == ["table", "shape", "mean_norm", "mean_norm/random"]
    assert "mean_norm: Mean L2 norm of the rows." in out  # the description


def test_unregistered_metric_is_gone_everywhere(table, capsys):
    register_collapse_metric("mean_norm", mean_norm)
    unregister_collapse_metric("mean_norm")
    assert "mean_norm" not in get_collapse_metric_names()
    assert "mean_norm" not in get_collapse_scorer_names()
    assert metric_of_column("mean_norm_item") is None
    with pytest.raises(ValueError, match="not a collapse metric"):
        CollapseScorer(metric="mean_norm").fit(table)
    with pytest.raises(ValueError, match="'mean_norm' is not one"):
        collapse_metrics(table, metrics=["mean_norm"])
    assert main(["score", "--metrics", "mean_norm"]) == 2
    assert "'mean_norm' is not one" in capsys.readouterr().err


def test_lower_is_better_metric_scores_negated(table):
    def spread(E):
        """Largest over smallest column std."""
        std = np.asarray(E).std(axis=0)
        return float(std.max() / std.min())

    register_collapse_metric("spread", spread, greater_is_better=False)
    try:
        assert {"neg_spread"} <= set(get_collapse_scorer_names())
        assert "spread" not in get_collapse_scorer_names()
        with pytest.raises(ValueError, match="use 'neg_spread'"):
            get_collapse_scorer("spread")
        scorer = get_collapse_scorer("neg_spread")
        model = EmbeddingTables({"item_factors": table})
        assert scorer(model) == pytest.approx(-spread(table))
        assert scorer.__name__ == "neg_spread"
        fitted = CollapseScorer(metric="spread").fit(table)
        assert fitted.metric_value_ == pytest.approx(spread(table))
        assert fitted.score(table) == pytest.approx(-spread(table))
    finally:
        unregister_collapse_metric("spread")


def test_spectral_metric_streams_and_has_a_reference(table):
    def top_share(sigma, *, normalize=False, center=False, n_samples=None):
        return float(sigma.max() / sigma.sum())

    def top_share_of(E, **options):
        """Share of the largest singular value."""
        return top_share(np.linalg.svd(np.asarray(E), compute_uv=False))

    register_collapse_metric(
        "top_share", top_share_of, greater_is_better=False, from_spectrum=top_share,
    )
    try:
        whole = CollapseScorer(metric="top_share").fit(table)
        chunks = CollapseScorer(metric="top_share")
        for part in np.array_split(table, 4):
            chunks.partial_fit(part)
        assert chunks.metric_value_ == pytest.approx(whole.metric_value_, rel=1e-9)
        assert whole.metric_value_ == pytest.approx(top_share_of(table))
        assert 0 < random_reference((1000, 8), "top_share") < 0.5
        got = collapse_metrics(table, metrics=["ia", "top_share"])  # one spectrum
        assert got["top_share"] == pytest.approx(top_share_of(table))
        assert [m.name for m in resolve_collapse_metrics(
            ["top_share", "erank"], spectral=True)] == ["top_share", "effective_rank"]
    finally:
        unregister_collapse_metric("top_share")


def test_registration_is_checked():
    with pytest.raises(ValueError, match="already a name of the collapse metric "
                       "'effective_rank'"):
        register_collapse_metric("erank", mean_norm)
    with pytest.raises(ValueError, match="already a name"):
        register_collapse_metric("mine", mean_norm, alias="rankme")
    with pytest.raises(ValueError, match="letters, digits"):
        register_collapse_metric("mean norm", mean_norm)
    with pytest.raises(TypeError, match="callable"):
        register_collapse_metric("mine", 3.0)
    with pytest.raises(ValueError, match="built in"):
        unregister_collapse_metric("ia")
    with pytest.raises(ValueError, match="not a collapse metric"):
        unregister_collapse_metric("mine")
    assert "mine" not in get_collapse_metric_names()


def test_one_resolver_for_metric_lists():
    names = [m.name for m in resolve_collapse_metrics()]
    assert names == ["effective_rank", "information_abundance", "normalized_std"]
    assert [m.name for m in resolve_collapse_metrics("all")] == (
        get_collapse_metric_names()
    )
    got = resolve_collapse_metrics(["erank", "effective_rank", "rankme", "cond"])
    assert [m.name for m in got] == ["effective_rank", "condition_number"]
    with pytest.raises(ValueError, match="non-empty"):
        resolve_collapse_metrics([])
    with pytest.raises(ValueError, match=r"spectral.*'norm_std' is not one"):
        resolve_collapse_metrics(["erank", "norm_std"], spectral=True)
    assert get_collapse_metric("rankme").alias == "erank"


class _Tensorful:
    """A model with numpy tables and, like skcollapse's nets, tensor ones."""

    def __init__(self, tables):
        self.tables = tables

    def get_embeddings(self):
        return {k: np.asarray(v) for k, v in self.tables.items()}

    def get_embedding_tensors(self):
        import torch

        return {k: torch.as_tensor(v) for k, v in self.tables.items()}


class _Eye(BaseEstimator):
    """Fits an identity item table of size ``dim``."""

    def __init__(self, dim=2):
        self.dim = dim

    def fit(self, X, y=None):
        self.item_ = np.eye(self.dim)
        return self

    def get_embeddings(self):
        return {"item": self.item_}


def test_get_embedding_tables_one_accessor(table):
    import torch

    model = _Tensorful({"user": table[:10], "item": table})
    assert list(get_embedding_tables(model)) == ["user", "item"]
    assert get_embedding_tables(model, "item") is not None
    assert isinstance(get_embedding_tables(model, "item"), np.ndarray)
    tensors = get_embedding_tables(model, ["item"], prefer_tensors=True)
    assert list(tensors) == ["item"] and isinstance(tensors["item"], torch.Tensor)
    back = get_embedding_tables(model, prefer_tensors=True, to_numpy=True)
    np.testing.assert_array_equal(back["item"], table)
    # looked up inside a Pipeline and a fitted search, as the scorers do
    search = GridSearchCV(
        make_pipeline(_Eye()), {"_eye__dim": [2, 3]}, cv=2,
        scoring=ErankScorer(table="item"),
    ).fit(np.zeros((10, 1)))
    np.testing.assert_array_equal(get_embedding_tables(search, "item"), np.eye(3))
    with pytest.raises(TypeError, match="get_embeddings"):
        get_embedding_tables(object())
    with pytest.raises(ValueError, match=r"table=\['items'\] not found"):
        get_embedding_tables(model, "items")
    with pytest.raises(ValueError, match="empty list"):
        get_embedding_tables(model, [])
