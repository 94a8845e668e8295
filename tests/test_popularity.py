"""Popularity and collapse: each metric against an independent float64 computation
and a planted answer (a table whose norms or top direction are a planted function
of popularity, a rank-1 tail)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from skcollapse.metrics import (
    norm_popularity_correlation,
    popularity_alignment,
    popularity_bucket_metrics,
    popularity_buckets,
    popularity_collapse,
    popularity_counts,
    uniformity,
    weighted_uniformity,
)


# ------------------------------------------------------------------ references
def ref_erank_ia(A):
    s = np.linalg.svd(np.asarray(A, dtype=np.float64), compute_uv=False)
    s = s[s > s[0] * max(A.shape) * np.finfo(float).eps]
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum())), float(s.sum() / s[0])


def ref_buckets(pop, edges):
    """Bucket of each row by a plain Python sort (popularity desc, then row)."""
    n = len(pop)
    order = sorted(range(n), key=lambda i: (-pop[i], i))
    cuts = [int(np.floor(e * n + 0.5)) for e in edges]
    out = [0] * n
    for rank, row in enumerate(order):
        out[row] = sum(rank >= c for c in cuts)
    return np.array(out)


def ref_overall_uniform(index_list, embedding):
    """THUwangcy/DirectAU README ``overall_uniform``, transcribed in float64."""
    import pandas as pd

    index_list = torch.as_tensor(index_list)
    values, _ = torch.sort(index_list)
    count_series = pd.Series(values.tolist()).value_counts(sort=False).sort_index()
    count = torch.tensor(count_series.to_numpy(), dtype=torch.float64).unsqueeze(0)
    weight_matrix = torch.mm(count.transpose(-1, 0), count)
    weight = torch.triu(weight_matrix, 1).view(-1)[
        torch.nonzero(torch.triu(weight_matrix, 1).view(-1)).view(-1)
    ]
    total_freq = (len(index_list) * len(index_list) - weight_matrix.trace()) / 2
    emb = torch.as_tensor(embedding, dtype=torch.float64)[list(count_series.index)]
    return float(
        torch.pdist(emb, p=2).pow(2).mul(-2).exp().mul(weight).sum().div(total_freq).log()
    )


def long_tail(n, rng):
    return rng.zipf(1.8, size=n).clip(max=500).astype(float) - 1.0  # zeros too


# ------------------------------------------------------------------ counts
def test_counts_from_row_ids_match_a_counter():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 30, 400), rng.integers(0, 50, 400)])
    counts = popularity_counts(X, n_rows=60)
    ref = Counter(X[:, 1].tolist())
    assert counts.shape == (60,)
    assert counts.tolist() == [float(ref.get(i, 0)) for i in range(60)]
    users = popularity_counts(X, table="user")
    assert users.tolist() == [float(Counter(X[:, 0].tolist())[i]) for i in range(30)]


def test_counts_follow_the_estimator_vocabulary():
    est = SimpleNamespace(item_ids_=np.array(["a", "b", "c", "d"]))
    X = np.array([["u1", "c"], ["u2", "c"], ["u1", "a"], ["u3", "c"]], dtype=object)
    assert popularity_counts(X, estimator=est).tolist() == [1.0, 0.0, 3.0, 0.0]
    with pytest.raises(ValueError, match="unseen in fit"):
        popularity_counts(np.array([["u", "zz"]], dtype=object), estimator=est)
    with pytest.raises(ValueError, match="row numbers"):
        popularity_counts(X)
    with pytest.raises(ValueError, match="not both"):
        popularity_counts(X, estimator=est, n_rows=4)
    with pytest.raises(ValueError, match="n_rows=3"):
        popularity_counts(np.array([[0, 5]]), n_rows=3)


# ------------------------------------------------------------------ buckets
@pytest.mark.parametrize("edges", [(0.2, 0.8), (0.5,), (0.1, 0.3, 0.6)])
def test_buckets_match_a_plain_sort_with_ties(edges):
    rng = np.random.default_rng(1)
    pop = rng.integers(0, 6, size=37).astype(float)  # many ties
    np.testing.assert_array_equal(
        popularity_buckets(pop, bucket_edges=edges), ref_buckets(pop.tolist(), edges)
    )


def test_buckets_by_interactions_head_is_fewest_rows_holding_the_share():
    pop = np.array([1.0, 50.0, 30.0, 10.0, 5.0, 4.0])  # total 100
    b = popularity_buckets(pop, bucket_edges=(0.5, 0.9), by="interactions")
    # ranked 50, 30, 10, 5, 4, 1: shares before each 0, .5, .8, .9, .95, .99
    assert b.tolist() == [2, 0, 1, 1, 2, 2]


def test_bucket_metrics_against_svd_of_each_bucket():
    rng = np.random.default_rng(2)
    n, d = 300, 12
    pop = long_tail(n, rng)
    E = rng.normal(size=(n, d))
    out = popularity_bucket_metrics(E, pop, bucket_edges=(0.2, 0.8))
    buckets = ref_buckets(pop.tolist(), (0.2, 0.8))
    assert list(out) == ["head", "torso", "tail"]
    for k, name in enumerate(out):
        rows = np.flatnonzero(buckets == k)
        er, ia = ref_erank_ia(E[rows])
        got = out[name]
        assert got["n_rows"] == rows.size
        np.testing.assert_allclose(got["erank"], er, rtol=1e-9)
        np.testing.assert_allclose(got["ia"], ia, rtol=1e-9)
        np.testing.assert_allclose(got["popularity_share"], pop[rows].sum() / pop.sum())
        np.testing.assert_allclose(got["mean_popularity"], pop[rows].mean())
        np.testing.assert_allclose(
            got["mean_norm"], np.linalg.norm(E[rows], axis=1).mean()
        )
    assert sum(v["n_rows"] for v in out.values()) == n


def test_planted_collapsed_tail_and_full_rank_head():
    rng = np.random.default_rng(3)
    n, d = 400, 16
    pop = np.arange(n, 0, -1).astype(float)  # row 0 most popular
    E = rng.normal(size=(n, d))
    # the 80 least popular rows span only 2 directions with equal weight
    basis = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
    E[-80:] = np.repeat(np.eye(2), 40, axis=0) @ basis
    out = popularity_bucket_metrics(E, pop)
    np.testing.assert_allclose(out["tail"]["erank"], 2.0, rtol=1e-9)
    np.testing.assert_allclose(out["tail"]["ia"], 2.0, rtol=1e-9)
    assert out["head"]["erank"] > 12


def test_bucket_errors_name_the_fix():
    E, pop = np.eye(4), np.arange(4)
    with pytest.raises(ValueError, match="empty"):
        popularity_bucket_metrics(E, pop, bucket_edges=(0.01, 0.02))
    with pytest.raises(ValueError, match="increasing fractions"):
        popularity_bucket_metrics(E, pop, bucket_edges=(0.8, 0.2))
    with pytest.raises(ValueError, match="4 rows"):
        popularity_bucket_metrics(E, np.arange(5))
    with pytest.raises(ValueError, match="non-negative"):
        popularity_bucket_metrics(E, [1, -1, 0, 2])
    with pytest.raises(ValueError, match="3 distinct names"):
        popularity_bucket_metrics(E, pop, bucket_names=["a", "b"])


# ------------------------------------------------------------------ norms
def test_norm_correlation_against_numpy_and_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(4)
    pop = long_tail(500, rng)
    E = rng.normal(size=(500, 8)) * (1 + 0.3 * np.log1p(pop))[:, None]
    norms = np.linalg.norm(E, axis=1)
    np.testing.assert_allclose(
        norm_popularity_correlation(E, pop), np.corrcoef(norms, np.log1p(pop))[0, 1],
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        norm_popularity_correlation(E, pop, method="spearman"),
        spearmanr(norms, pop).statistic, rtol=1e-10,
    )


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_planted_norms_give_a_perfect_correlation(sign):
    rng = np.random.default_rng(5)
    pop = long_tail(300, rng)
    directions = rng.normal(size=(300, 10))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norms = 10.0 + sign * np.log1p(pop)  # a planted affine function of log pop (> 0)
    E = directions * norms[:, None]
    np.testing.assert_allclose(norm_popularity_correlation(E, pop), sign, atol=1e-12)
    # Spearman: any monotone function of popularity (distinct counts: rows
    # with tied counts would have norms equal only up to rounding)
    distinct = rng.permutation(300).astype(float) ** 2
    E = directions * np.exp(sign * distinct / 1e4)[:, None]
    np.testing.assert_allclose(
        norm_popularity_correlation(E, distinct, method="spearman"), sign, atol=1e-12
    )
    assert np.isnan(norm_popularity_correlation(directions * 2.0, pop))  # equal norms


# ------------------------------------------------------------------ direction
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("log", [False, True])
def test_alignment_against_full_svd(center, log):
    rng = np.random.default_rng(6)
    n = 700  # tall: the Gram route
    pop = long_tail(n, rng)
    E = rng.normal(size=(n, 6)) + np.outer(np.log1p(pop), rng.normal(size=6))
    A = E - E.mean(0) if center else E
    p = np.log1p(pop) if log else pop
    p = p - p.mean() if center else p
    u1 = np.linalg.svd(A, full_matrices=False)[0][:, 0]
    ref = abs(u1 @ p) / np.linalg.norm(p)
    np.testing.assert_allclose(
        popularity_alignment(E, pop, center=center, log=log), ref, rtol=1e-9
    )


def test_planted_popularity_direction_and_an_unrelated_one():
    rng = np.random.default_rng(7)
    n, d = 2000, 16
    pop = long_tail(n, rng)
    w = rng.normal(size=d)
    planted = np.outer(pop, w) + 1e-3 * rng.normal(size=(n, d))
    assert popularity_alignment(planted, pop) > 0.999
    assert popularity_alignment(planted, pop, center=True) > 0.999
    unrelated = rng.normal(size=(n, d))
    unrelated[:, 0] *= 5  # a dominant direction that knows nothing of popularity
    assert popularity_alignment(unrelated, pop, center=True) < 0.15
    assert np.isnan(popularity_alignment(np.zeros((5, 3)), np.arange(5)))


# ------------------------------------------------------------------ DirectAU
@pytest.mark.parametrize("normalize", [False, True])
def test_weighted_uniformity_is_directau_overall_uniform(normalize):
    rng = np.random.default_rng(8)
    n, d = 60, 5
    E = rng.normal(size=(n, d)) * 0.4
    pop = long_tail(n, rng)
    pop[:3] = 0  # rows without interactions do not count
    index_list = np.repeat(np.arange(n), pop.astype(int))
    X = E / np.linalg.norm(E, axis=1, keepdims=True) if normalize else E
    ref = ref_overall_uniform(index_list, X)
    got = weighted_uniformity(E, pop, normalize=normalize)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_weighted_uniformity_known_answers():
    rng = np.random.default_rng(9)
    E = rng.normal(size=(40, 4))
    # equal counts: every pair weighs the same, so it is Wang & Isola's uniformity
    np.testing.assert_allclose(
        weighted_uniformity(E, np.full(40, 3.0)), uniformity(E), rtol=1e-10
    )
    # one direction for every row: complete collapse is 0
    assert weighted_uniformity(np.ones((10, 3)), np.arange(1, 11)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        weighted_uniformity(E, np.r_[1.0, np.zeros(39)])


def test_weighted_uniformity_subset_is_seeded_and_close():
    rng = np.random.default_rng(10)
    E = rng.normal(size=(600, 4))
    pop = long_tail(600, rng) + 1
    full = weighted_uniformity(E, pop, max_samples=None)
    a = weighted_uniformity(E, pop, max_samples=300, random_state=0)
    assert a == weighted_uniformity(E, pop, max_samples=300, random_state=0)
    assert abs(a - full) < 0.1


# ------------------------------------------------------------------ torch input
def test_torch_tables_give_the_numpy_values():
    rng = np.random.default_rng(11)
    E = rng.normal(size=(600, 8))
    pop = long_tail(600, rng)
    T = torch.from_numpy(E)
    for func in (norm_popularity_correlation, popularity_alignment, weighted_uniformity):
        np.testing.assert_allclose(func(T, pop), func(E, pop), rtol=1e-9)
    got = popularity_bucket_metrics(T, torch.from_numpy(pop))
    ref = popularity_bucket_metrics(E, pop)
    for name in ref:
        for key in ref[name]:
            np.testing.assert_allclose(got[name][key], ref[name][key], rtol=1e-9)


# ------------------------------------------------------------------ all at once
def test_popularity_collapse_estimator_and_x_equals_table_and_counts():
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(120, 60, random_state=0)
    # string item ids: the estimator's vocabulary maps them to rows
    Xs = np.column_stack([X[:, 0], np.char.add("i", X[:, 1].astype(str))]).astype(object)
    model = MFRecommender(embedding_dim=6, max_epochs=1, random_state=0).fit(Xs)
    via_estimator = popularity_collapse(model, Xs)
    counts = Counter(Xs[:, 1].tolist())
    pop = np.array([counts[i] for i in model.item_ids_], dtype=float)
    via_table = popularity_collapse(model.get_embeddings()["item"], popularity=pop)
    # only the estimator has the user table of the score matrix
    scores = via_estimator.pop("popularity_alignment_scores")
    assert np.isnan(via_table.pop("popularity_alignment_scores"))
    assert 0.0 <= scores <= 1.0
    assert via_estimator == via_table
    # without X the estimator's own training counts are used
    no_x = popularity_collapse(model)
    assert no_x.pop("popularity_alignment_scores") == scores
    assert no_x == via_table


def test_popularity_collapse_refuses_what_it_cannot_count():
    E = np.eye(4)
    with pytest.raises(ValueError, match="popularity="):
        popularity_collapse(E)
    with pytest.raises(TypeError, match="not a dict"):
        popularity_collapse({"item": E}, popularity=np.arange(4))


# ------------------------------------------------------------------ the display
def test_display_plots_the_numbers_of_the_functions():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skcollapse.adapters import EmbeddingTables
    from skcollapse.plotting import PopularityCollapseDisplay

    rng = np.random.default_rng(12)
    E = rng.normal(size=(200, 6))
    X = np.column_stack([rng.integers(0, 50, 900), rng.zipf(1.5, 900) % 200])
    pop = popularity_counts(X, n_rows=200)
    disp = PopularityCollapseDisplay.from_embeddings(E, pop, max_points=None)
    assert disp.bucket_metrics == popularity_bucket_metrics(E, pop)
    assert disp.norm_correlation == norm_popularity_correlation(E, pop)
    assert disp.alignment == popularity_alignment(E, pop)
    drawn = np.concatenate([s.get_offsets() for s in disp.scatters_])
    ref = np.column_stack([pop, np.linalg.norm(E, axis=1)])
    ref = ref[np.argsort(ref_buckets(pop.tolist(), (0.2, 0.8)), kind="stable")]
    np.testing.assert_allclose(drawn, ref)
    # the same from an estimator-like object and the training pairs
    est = EmbeddingTables({"item": E, "user": rng.normal(size=(50, 6))})
    disp2 = PopularityCollapseDisplay.from_estimator(est, X, max_points=None)
    assert disp2.bucket_metrics == disp.bucket_metrics
    assert "EmbeddingTables item" in disp2.ax_.get_title()
    with pytest.raises(TypeError, match="from_embeddings"):
        PopularityCollapseDisplay.from_estimator(E)


def test_report_section_gives_rows_and_a_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from skcollapse.adapters import EmbeddingTables
    from skcollapse.cli._report import popularity_report_section

    rng = np.random.default_rng(13)
    X = np.column_stack([rng.integers(0, 40, 600), rng.integers(0, 80, 600)])
    models = {
        "a": EmbeddingTables({"item": rng.normal(size=(80, 5))}),
        "b": EmbeddingTables({"item": rng.normal(size=(80, 5))}),
    }
    sec = popularity_report_section(models, X, tmp_path)
    assert [r["model"] for r in sec["records"]] == ["a", "b"]
    ref = popularity_collapse(models["b"], X)
    assert sec["records"][1]["erank tail"] == ref["buckets"]["tail"]["erank"]
    assert sec["figures"]["popularity_item"].stat().st_size > 0
    assert sec["markdown"].count("\n") == 4
