"""bench_scaling --preregistered: the plan alone decides what runs, and each fit
follows scaling_curve's protocol."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from skcollapse.model_selection import scaling_curve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
PLAN = os.path.join(BENCH, "preregistered", "me_synthetic.json")


@pytest.fixture(scope="module")
def bench():
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(
        "bench_scaling", os.path.join(BENCH, "bench_scaling.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_plan(tmp_path):
    with open(PLAN) as fh:
        plan = json.load(fh)
    plan["make_ctr"]["n_samples"] = 800
    plan["experiment"].update(models=["dnn"], hidden_units=[8], max_epochs=3,
                              se_scales=[1, 2], me_scales=[2], seeds=[0],
                              seeds_by_scale={"2": [0, 1]}, batch_size=128)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return plan, str(path)


@pytest.mark.parametrize("extra", [["--seeds", "5"], ["--n-rows", "100"],
                                   ["--mod", "dnn"], ["../shared/eval-data"]])
def test_options_that_would_change_the_plan_are_refused(bench, extra, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--preregistered", PLAN, *extra])
    assert "would change it" in capsys.readouterr().err


def test_the_committed_plan_is_complete(bench):
    plan = bench.load_plan(PLAN)
    cells = bench.plan_cells(plan)
    assert len(cells) == 6 * (5 + 4)
    assert sum(len(seeds) for *_, seeds in cells) == 6 * (3 * 5 + 5 * 4)
    assert ("dcnv2", "ME", 4, [0, 1, 2, 3, 4]) in cells
    assert ("xdeepfm", "SE", 10, [0, 1, 2]) in cells


def test_uncommitted_plan_needs_the_smoke_flag(bench, tiny_plan, tmp_path,
                                               monkeypatch):
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path / "res"))
    with pytest.raises(SystemExit, match="not committed"):
        bench.main(["--preregistered", tiny_plan[1]])


def test_a_cell_fit_is_scaling_curves_fit(bench, tiny_plan):
    plan, _ = tiny_plan
    exp = plan["experiment"]
    data = bench.plan_data(plan)
    got = bench._fit_seed("dnn", "ME", 2, 1, exp, data, "cpu", 1)
    X, y, _ = bench.make_ctr(**plan["make_ctr"])
    est = bench.plan_estimator("dnn", "ME", 2, exp, "cpu")
    ref = scaling_curve(est, X, y, param_name="n_embedding_sets", param_range=[2],
                        seeds=[1], patience=exp["patience"])
    assert got["test"]["roc_auc"] == pytest.approx(ref["test_roc_auc"][0])
    assert got["selected_epoch"] == ref["best_epoch"][0]
    assert got["n_epochs"] == ref["n_epochs"][0] == len(got["valid_curve"])
    assert got["valid_roc_auc"] == pytest.approx(max(got["valid_curve"]))
    assert got["ia"]["mean"] == pytest.approx(ref["ia_mean"][0])
    assert np.isfinite(got["test"]["log_loss"])


def test_only_runs_a_subset_and_refuses_models_outside_the_plan(
        bench, tiny_plan, tmp_path, monkeypatch):
    plan, path = tiny_plan
    plan["experiment"]["models"] = ["dnn", "ipnn"]
    with open(path, "w") as fh:
        json.dump(plan, fh)
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path / "res"))
    with pytest.raises(SystemExit, match="not in the plan"):
        bench.main(["--preregistered", path, "--allow-uncommitted-plan",
                    "--only", "dcnv2"])
    bench.main(["--preregistered", path, "--allow-uncommitted-plan",
                "--only", "ipnn"])
    written = sorted(os.listdir(tmp_path / "res" / bench.PREREG_FOLDER))
    assert written == ["ipnn-me-2x.json", "ipnn-se-1x.json", "ipnn-se-2x.json"]


def test_only_is_refused_without_a_plan(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "dnn"])
    assert "only go with" in capsys.readouterr().err


def test_decisive_cells_run_first(bench, tiny_plan, tmp_path, monkeypatch):
    plan, path = tiny_plan
    plan["experiment"].update(se_scales=[1, 2, 3], me_scales=[2, 3])
    plan["decision_rule"]["decisive_scales"] = [3]
    with open(path, "w") as fh:
        json.dump(plan, fh)
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path / "res"))
    order = []
    real = bench.write_cell

    def spy(args, argv, plan_, path_, sha, git, info, cell, fits, elapsed):
        order.append((cell[1], cell[2]))
        return real(args, argv, plan_, path_, sha, git, info, cell, fits, elapsed)

    monkeypatch.setattr(bench, "write_cell", spy)
    bench.main(["--preregistered", path, "--allow-uncommitted-plan"])
    assert order == [("SE", 3), ("ME", 3), ("SE", 1), ("SE", 2), ("ME", 2)]
