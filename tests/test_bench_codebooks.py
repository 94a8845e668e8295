"""bench_codebooks.py: the two-tower item tables, the epoch budget and the grid."""

import json

import numpy as np
import pytest
from _bench import load_benchmark

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_codebooks", shared=True)


def test_two_tower_epochs_reach_the_step_budget(bench):
    # ML-100k's 79,619 training pairs: 39 batches of 2048, so the budget of
    # 30 x 39 steps is the default's 30 epochs; Gowalla's 810,128: 396 batches
    assert bench.TWO_TOWER_STEPS == 30 * 39
    assert bench.two_tower_epochs(79_619) == 30
    assert bench.two_tower_epochs(810_128) == 3  # 1170 / 396, rounded up
    assert bench.two_tower_epochs(810_128, steps=397) == 2
    assert bench.two_tower_epochs(810_128, steps=1) == 1
    assert bench.two_tower_epochs(100, steps=10**6) == 30  # never above the default
    assert bench.two_tower_epochs(100, steps=10**6, max_epochs=5) == 5


def test_every_rqvae_candidate_spells_out_each_fix(bench):
    tables = load_benchmark("tables_codebooks", shared=True)
    assert tuple(bench.ROW_ORDER) == tables.ROWS
    assert set(tables.LABELS) == set(tables.ROWS)
    for row, cands in bench.GRID.items():
        for kind, params in cands:
            if kind == "RQVAE":
                assert set(tables.UNFIXED) <= set(params), row
    assert bench.GRID["rqvae-none"] == [("RQVAE", tables.UNFIXED)]
    assert tables.fix_settings(bench.GRID["rqvae-kmeans-restart"][0][1]) == {
        "init": "kmeans", "dead_code_threshold": 1}


def _fake_ml100k(folder, n_users=30, n_items=24, seed=0):
    rng = np.random.default_rng(seed)
    rows = {(u, int(i)) for u in range(1, n_users + 1)
            for i in rng.choice(np.arange(1, n_items + 1), size=8, replace=False)}
    (folder / "ml-100k").mkdir(parents=True)
    (folder / "ml-100k" / "u.data").write_text(
        "".join(f"{u}\t{i}\t4\t0\n" for u, i in sorted(rows)))


def test_two_tower_and_mf_item_tables_share_the_code_path(bench, tmp_path, monkeypatch):
    from bench_regularizers import load_ml100k

    from skcollapse.recommenders import TwoTowerRecommender

    results = load_benchmark("_results", shared=True)
    monkeypatch.setattr(results, "RESULTS", str(tmp_path / "results"))
    _fake_ml100k(tmp_path / "data")
    cache = tmp_path / "cache"
    assert bench.main([
        str(tmp_path / "data"), "--tables", "ml-100k", "--models", "mf", "two-tower",
        "--regularizers", "none", "--two-tower-steps", "1", "--rows", "rkm",
        "rqvae-none", "--seeds", "0", "--levels", "2", "--codebook-size", "4",
        "--latent-dim", "2", "--hidden", "4", "--epochs", "1", "--batch-size", "16",
        "--cache-dir", str(cache)]) == 0
    folder = tmp_path / "results" / "codebooks"
    assert sorted(p.name for p in folder.iterdir()) == [
        "ml-100k-mf-none.json", "ml-100k-two-tower-none.json"]
    rec = json.loads((folder / "ml-100k-two-tower-none.json").read_text())
    assert "TwoTowerRecommender" in rec["note"] and "max_epochs=1" in rec["note"]
    assert set(rec["rows"]) == {"rkm", "rqvae-none"}
    assert rec["config"]["models"] == ["mf", "two-tower"]
    # the table is the item tower's output of the model at its defaults
    X_train, _, _ = load_ml100k(str(tmp_path / "data"))
    ref = TwoTowerRecommender(random_state=0, max_epochs=1).fit(X_train)
    got = np.load(cache / "ml-100k-two-tower-none.npy")
    np.testing.assert_allclose(got, ref.get_embeddings()["item"], rtol=1e-6)
    assert rec["shape"] == [len(np.unique(X_train[:, 1])), 64]
    # the evidence tables list MF before the two-tower model
    tables = load_benchmark("tables_codebooks", shared=True)
    rows = tables.table_codebooks().splitlines()[2:]
    assert [r.split(" | ")[0].split(" (")[0] for r in rows] == [
        "| ml-100k-mf-none"] * 2 + ["| ml-100k-two-tower-none"] * 2
