"""Every published table is what benchmarks/make_tables.py makes of the
committed result files under benchmarks/results/."""

import json
import sys

import numpy as np
import pytest
from _bench import load_benchmark


def _load(name):
    return load_benchmark(name)



@pytest.fixture(scope="module")
def make_tables():
    return _load("make_tables")


def test_committed_tables_are_the_generated_ones(make_tables, capsys):
    assert make_tables.main(["--check"]) == 0, capsys.readouterr().out


def test_render_replaces_only_the_marked_bodies(make_tables):
    text = ("intro\n<!-- BEGIN TABLE a -->\nold\n<!-- END TABLE a -->\nmiddle\n"
            "<!-- BEGIN TABLE b -->\n<!-- END TABLE b -->\nend\n")
    got = make_tables.render(text, {"a": lambda: "| x |\n", "b": lambda: "| y |\n"})
    assert got == ("intro\n<!-- BEGIN TABLE a -->\n| x |\n<!-- END TABLE a -->\n"
                   "middle\n<!-- BEGIN TABLE b -->\n| y |\n<!-- END TABLE b -->\nend\n")
    with pytest.raises(SystemExit, match="no generator"):
        make_tables.render("<!-- BEGIN TABLE zz -->\n<!-- END TABLE zz -->", {})


def test_per_user_values_survive_the_file(make_tables):
    results = _load("_results")
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.random(500), [0.0, 1.0, 1.0 + 1e-12]])
    back = results.decode_unit(results.encode_unit(v))
    np.testing.assert_allclose(back, np.clip(v, 0, 1), atol=1 / 65535)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        results.encode_unit([1.5])


def _write(folder, model, setting, per_user_by_seed, params=None, tables=True):
    results = _load("_results")
    seeds = []
    for seed, values in enumerate(per_user_by_seed):
        values = np.asarray(values)
        seeds.append(results.compact_seed_result({
            "seed": seed, "epochs": 4 + seed, "params": params or {},
            "test": {"recall": values.mean() / 2, "ndcg": values.mean(),
                     "coverage": 0.5},
            "test_legacy_filter": {"recall": values.mean() / 4,
                                   "ndcg": values.mean() / 2, "coverage": 0.5},
            "per_user": {"user": np.arange(values.size), "recall": values / 2,
                         "ndcg": values},
            "tables": {"item": {"erank": 40.0 + seed, "ia": 5.0},
                       "user": {"erank": 30.0, "ia": 4.0}} if tables else {},
        }))
    rec = {"dataset": "toy", "model": model, "setting": setting,
           "selection": {"params": params or {}, "valid_score": 0.25, "epochs": 4},
           "seeds": seeds}
    path = folder / "regularizers" / "toy" / f"{model}-{setting}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def test_select_table_from_files_with_known_verdicts(make_tables, tmp_path,
                                                     monkeypatch):
    results = sys.modules["_results"]
    monkeypatch.setattr(results, "RESULTS", str(tmp_path))
    rng = np.random.default_rng(1)
    base = 0.1 + rng.random(400) * 0.5
    _write(tmp_path, "MF", "none", [base + d for d in (0.0, 0.002, -0.002)])
    _write(tmp_path, "MF", "logdet", [base + 0.1 + d for d in (0.0, 0.002, -0.002)],
           params={"regularizer__weight": 0.001})
    _write(tmp_path, "MF", "dbn", [base + d for d in (0.001, -0.001, 0.0)])
    _write(tmp_path, "EASE", "baseline", [base + 0.2], params={"alpha": 500.0},
           tables=False)
    table = make_tables.table_select("toy").splitlines()
    assert [row.split(" | ")[1] for row in table[2:]] == [
        "none", "logdet", "dbn", "(baseline)"]
    logdet = table[3].split(" | ")
    assert logdet[2] == "weight=0.001"
    assert logdet[5] == f"{base.mean() + 0.1:.3f} ± 0.002"
    assert logdet[6].startswith("+ (+0.100, p<0.001)")
    assert table[4].split(" | ")[6].startswith("~")
    assert logdet[7] == "41.0" and logdet[10] == "5.0" and logdet[11] == "3 |"
    fix = make_tables.table_filter_fix("toy").splitlines()
    assert fix[2].endswith("| +100.0% |")  # legacy NDCG is half the fixed one


def test_codebook_tables_from_files(make_tables, tmp_path, monkeypatch):
    results = sys.modules["_results"]
    monkeypatch.setattr(results, "RESULTS", str(tmp_path))
    tables = _load("tables_codebooks")

    def seed(coll, **extra):
        return {"usage": [1.0, 0.5], "perplexity": [4.0, 2.0], "code_erank": [3.0, 1.0],
                "collision_rate": coll, "largest_collision_group": 2,
                "relative_reconstruction_error": 0.1, "fit_s": 1.0, **extra}

    folder = tmp_path / "codebooks"
    (folder / "peers").mkdir(parents=True)
    for name, erank, coll in (("toy-mf-none", 5.0, 0.5), ("toy-mf-logdet", 9.0, 0.25)):
        rec = {"table": name, "item_erank": erank, "rows": {
            "rkm": {"chosen": {}, "seeds": [seed(coll), seed(coll)]},
            "rqvae-restart": {"chosen": {"init": "random", "dead_code_threshold": 4},
                              "seeds": [seed(coll)]}}}
        (folder / f"{name}.json").write_text(json.dumps(rec))
    rows = tables.table_codebooks().splitlines()
    assert rows[2].startswith("| toy-mf-none (5.0) | residual k-means | — | 1.00 / 0.50 |")
    assert "| 0.500 ± 0.000 | 2.0 |" in rows[2]
    assert rows[3].split(" | ")[2] == "dead_code_threshold=4"
    assert rows[4].startswith("| toy-mf-logdet (9.0) |")
    erank = tables.table_codebooks_erank().splitlines()
    assert erank[2] == "| toy-mf-none | 5.0 | 0.500 ± 0.000 | 0.100 ± 0.000 |"
    assert erank[3].startswith("| toy-mf-logdet | 9.0 | 0.250 ± 0.000 |")
    assert tables.table_codebooks_planted() == "_No result files yet._\n"
    assert tables.table_codebooks_peer() == "_No result files yet._\n"
    (folder / "peers" / "p.json").write_text(json.dumps({
        "table": "toy-mf-none", "peer": {"repo": "o/r", "commit": "abcdef123", "mode": "ste"},
        "rows": {"peer": [seed(0.75)], "skcollapse": [seed(0.5)]}}))
    peer = tables.table_codebooks_peer().splitlines()
    assert "o/r @ abcdef1" in peer[2] and "| 0.750 |" in peer[2]
    assert "| 0.500 |" in peer[3]
    assert len(tables.table_codebooks().splitlines()) == 6  # peers are not tables


def test_threads_table_from_a_file(make_tables, tmp_path, monkeypatch):
    results = sys.modules["_results"]
    monkeypatch.setattr(results, "RESULTS", str(tmp_path))
    assert make_tables.table_threads().startswith("_No result file yet")
    walls = {("idle", "default"): [10.0, 12.0], ("busy", "default"): [44.0, 66.0],
             ("idle", "passive"): [20.0, 20.0], ("busy", "passive"): [25.0, 25.0]}
    runs = [{"condition": c, "setting": s, "repeat": r, "wall_s": w,
             "load_before": 0.1}
            for (c, s), ws in walls.items() for r, w in enumerate(ws)]
    results.write_result("threads/demo.json", {
        "command": "benchmarks/bench_threads.py --repeats 2", "runs": runs,
        "config": {"busy": 1, "cpus": 2, "repeats": 2,
                   "settings": {"default": {}, "passive": {}}},
        "meta": {"commit": "abcdef0123", "date": "2026-12-07T12:00:00+00:00"}})
    rows = [r.split(" | ") for r in make_tables.table_threads().splitlines()
            if r.startswith(("| torch", "| `OMP"))]
    # medians: default 11 idle, 55 busy (5.0x); passive 20 and 25 (1.2x)
    assert [r[1:] for r in rows] == [["10.0, 12.0", "44.0, 66.0", "5.0x |"],
                                     ["20.0, 20.0", "25.0, 25.0", "1.2x |"]]
