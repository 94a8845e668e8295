"""benchmarks/bench_speed.py runs end to end on a tiny LightGCN-format split:
every part prints its rows and ratios and writes its result file, implicit's
epochs are timed inside one fit, and a missing RecBole venv skips that row."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("implicit")
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(
        "bench_speed", os.path.join(BENCH, "bench_speed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_split(folder, rng, n_users=40, n_items=30):
    folder.mkdir(parents=True)
    for name in ("train.txt", "test.txt"):
        with open(folder / name, "w") as fh:
            for u in range(n_users):
                items = rng.choice(n_items, size=8 if name == "train.txt" else 2,
                                   replace=False)
                fh.write(" ".join(map(str, [u, *items])) + "\n")


def test_every_part_prints_ratios_and_writes_its_file(bench, tmp_path, monkeypatch,
                                                      capsys):
    _write_split(tmp_path / "data" / "gowalla", np.random.default_rng(0))
    results = tmp_path / "results"
    monkeypatch.setattr(bench._results, "RESULTS", str(results))
    epochs, threads = 2, torch.get_num_threads()
    try:
        assert bench.main([
            str(tmp_path / "data"), "--datasets", "gowalla", "--epochs", str(epochs),
            "--threads", "1", "--regularizers", "logdet",
            "--recbole-python", str(tmp_path / "no-venv" / "python"),
        ]) == 0
    finally:  # main sets torch's threads for the process
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "skcollapse / implicit" in out and "skcollapse / lean" in out
    assert "skipped: no RecBole venv" in out

    mf = json.loads((results / "speed" / "mf" / "gowalla.json").read_text())
    assert set(mf["rows"]) == {"implicit", "lean", "skcollapse"}
    for row in mf["rows"].values():
        assert len(row["epoch_s"]) == epochs  # the warm-up epoch is not counted
        assert all(t > 0 for t in row["epoch_s"])
    assert len(mf["rows"]["implicit"]["trend"]) == epochs + 1
    assert mf["ratios"]["implicit"] == pytest.approx(
        mf["rows"]["skcollapse"]["median_s"] / mf["rows"]["implicit"]["median_s"])
    assert set(mf["recall@20"]) == {"implicit", "lean", "skcollapse"}

    reg = json.loads((results / "speed" / "regularizers" / "gowalla.json").read_text())
    assert set(reg["ratios"]) == {"None", "logdet"}
    assert reg["ratios"]["None"] == 1.0
    assert reg["targets"] == {"logdet": 1.5}

    gcn = json.loads((results / "speed" / "lightgcn" / "gowalla.json").read_text())
    assert set(gcn["rows"]) == {"lean", "skcollapse"}
    assert set(gcn["ratios"]) == {"lean"}
    assert gcn["meta"]["data"]  # the data files' checksums
