"""The depth study end to end on a tiny MovieLens-shaped file: result files with
erank per epoch per seed, and the figure and table drawing exactly those values."""

from __future__ import annotations

import numpy as np
import pytest
from _bench import load_benchmark


def _load(name):
    return load_benchmark(name, shared=True)



@pytest.fixture(scope="module")
def depth_run(tmp_path_factory):
    from skcollapse.datasets import make_interactions

    tmp = tmp_path_factory.mktemp("depth")
    data = tmp / "data" / "ml-100k"
    data.mkdir(parents=True)
    X = make_interactions(90, 50, density=0.12, random_state=0) + 1
    rows = np.column_stack([X, np.full(len(X), 4), np.arange(len(X))])
    np.savetxt(data / "u.data", rows, fmt="%d", delimiter="\t")
    results = _load("_results")
    old = results.RESULTS
    results.RESULTS = str(tmp / "results")
    try:
        bench = _load("bench_depth")
        bench.main([str(tmp / "data"), "--datasets", "ml-100k", "--layers", "1", "2",
                    "--max-epochs", "3", "--patience", "1", "--seeds", "0", "1",
                    "--embedding-dim", "8"])
        plot = _load("plot_depth")
        records = plot.read_depth()
        yield plot, records
    finally:
        results.RESULTS = old


def test_one_file_per_depth_with_erank_per_epoch_per_seed(depth_run):
    _, records = depth_run
    assert [(r["dataset"], r["n_layers"]) for r in records] == [
        ("ml-100k", 1), ("ml-100k", 2)]
    for r in records:
        assert r["fixed_params"]["n_layers"] == r["n_layers"]
        assert [s["seed"] for s in r["seeds"]] == [0, 1]
        for s in r["seeds"]:
            hist = s["collapse_history"]
            n = len(hist["epoch"])
            assert 1 <= n <= 3 and s["epochs"] <= n
            assert len(hist["erank_item"]) == len(hist["erank_user"]) == n
            assert set(hist["initial"]) >= {"erank_item", "erank_user"}
            # the tested tables are the selected epoch's
            assert hist["erank_item"][s["epochs"] - 1] == pytest.approx(
                s["tables"]["item"]["erank"], rel=1e-5)


def test_table_cells_are_the_recorded_values(depth_run):
    plot, records = depth_run
    text = plot.table_depth("ml-100k")
    rows = [line for line in text.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert len(rows) == 2
    for r, row in zip(records, rows, strict=True):
        seeds = r["seeds"]
        init = np.mean([s["collapse_history"]["initial"]["erank_item"] for s in seeds])
        first = np.mean([s["collapse_history"]["erank_item"][0] for s in seeds])
        chosen = np.mean([s["collapse_history"]["erank_item"][s["epochs"] - 1]
                          for s in seeds])
        assert f"{init:.1f} → {first:.1f} → {chosen:.1f}" in row
        assert ", ".join(str(s["epochs"]) for s in seeds) in row
    assert plot.table_depth("citeulike") == "_No result files yet._\n"


def test_figure_mean_lines_are_the_seed_means(depth_run):
    pytest.importorskip("matplotlib")
    plot, records = depth_run
    fig = plot.depth_figure(records)
    ax = fig.axes[0]  # ml-100k item erank
    thick = [line for line in ax.get_lines() if line.get_linewidth() == 2.0]
    assert len(thick) == 2
    for r, line in zip(records, thick, strict=True):
        curves = [[s["collapse_history"]["initial"]["erank_item"],
                   *s["collapse_history"]["erank_item"]] for s in r["seeds"]]
        n = max(len(c) for c in curves)
        expected = [np.mean([c[e] for c in curves if e < len(c)]) for e in range(n)]
        np.testing.assert_allclose(line.get_xdata(), np.arange(n))
        np.testing.assert_allclose(line.get_ydata(), expected)
