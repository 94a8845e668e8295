"""The pre-registered scaling table is made from the result files alone, and marks
cells and the claim by the plan's decision rule."""

import json
import sys

import numpy as np
import pytest
from _bench import load_benchmark
from scipy import stats

RULE = {"alpha": 0.05, "min_se_multiple": 2.0, "decisive_scales": [2, 4],
        "min_models_per_scale": 4, "text": "..."}
EXP = {"models": ["dnn", "dcnv2", "ipnn"], "se_scales": [1, 2, 4],
       "me_scales": [2, 4], "seeds": [0, 1, 2],
       "seeds_by_scale": {"2": [0, 1, 2, 3, 4], "4": [0, 1, 2, 3, 4]}}
SE_2X = [0.800, 0.810, 0.790, 0.820, 0.805]  # large spread between seeds



def _load(name):
    return load_benchmark(name)



@pytest.fixture
def tables(tmp_path, monkeypatch):
    module = _load("tables_scaling")
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path))
    return module


def _write(folder, model, kind, scale, aucs, sha="a" * 64, experiment=EXP):
    rec = {
        "model": model, "kind": kind, "scale": scale,
        "seeds": [{"seed": i, "test": {"roc_auc": float(v), "log_loss": 0.4}}
                  for i, v in enumerate(aucs)],
        "config": {"plan": "benchmarks/preregistered/me_synthetic.json",
                   "plan_sha256": sha,
                   "plan_git": {"committed": True, "clean": True,
                                "added_in": "0123456789abcdef"},
                   "experiment": experiment, "decision_rule": RULE},
    }
    path = folder / "scaling-prereg" / f"{model}-{kind.lower()}-{scale}x.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def _row(table, name):
    return next(ln for ln in table.splitlines() if ln.startswith(f"| {name} |"))


def test_no_files_yet(tables):
    assert tables.table_scaling_prereg() == "_No result files yet._\n"


def test_cells_marks_and_incomplete_verdict(tables, tmp_path):
    se = np.array(SE_2X)
    # DNN: ME above SE by 0.010 +- 0.001 on every seed; the seeds' spread
    # (0.012) hides it from an unpaired comparison, the paired test finds it
    _write(tmp_path, "dnn", "SE", 1, [0.79, 0.80, 0.81])
    _write(tmp_path, "dnn", "SE", 2, se)
    _write(tmp_path, "dnn", "ME", 2,
           se + np.array([0.010, 0.011, 0.009, 0.010, 0.011]))
    # DCNv2: ME below by about 0.02 -> '<'; IPNN: differences of both signs: '~'
    _write(tmp_path, "dcnv2", "SE", 2, se)
    _write(tmp_path, "dcnv2", "ME", 2,
           se - np.array([0.020, 0.018, 0.022, 0.019, 0.021]))
    _write(tmp_path, "ipnn", "SE", 2, se)
    _write(tmp_path, "ipnn", "ME", 2,
           se + np.array([0.010, -0.012, 0.004, -0.003, 0.001]))
    # an ME cell without its SE cell is shown but not marked
    _write(tmp_path, "ipnn", "ME", 4, [0.81, 0.82, 0.80, 0.81, 0.82])
    table = tables.table_scaling_prereg()
    assert table.splitlines()[0] == (
        "| model | SE base | SE 2x | SE 4x | ME 2x | ME 4x |")
    assert _row(table, "DNN") == ("| DNN | 0.8000 ± 0.0100 | 0.8050 ± 0.0112 | – "
                                  "| 0.8152 ± 0.0116 > | – |")
    assert _row(table, "DCNv2").split(" | ")[4] == "0.7850 ± 0.0124 <"
    assert _row(table, "IPNN").split(" | ")[4] == "0.8050 ± 0.0092 ~"
    assert _row(table, "IPNN").split(" | ")[5] == "0.8120 ± 0.0084 |"
    assert "(3 at base, 5 at 2x, 5 at 4x)" in table
    assert "committed in 0123456" in table
    assert "incomplete** (3 of 6 decisive cells)" in table


def _full(tmp_path, diffs_2x, diffs_4x):
    se = np.array(SE_2X)
    for model, d2, d4 in zip(EXP["models"], diffs_2x, diffs_4x):
        for scale, d in ((2, d2), (4, d4)):
            _write(tmp_path, model, "SE", scale, se)
            _write(tmp_path, model, "ME", scale,
                   se + d + np.array([1, -1, 0, 1, -1]) * 1e-3)


@pytest.mark.parametrize("d2, d4, verdict", [
    ([0.01, 0.01, 0.01], [0.01, 0.01, 0.0], "holds"),
    ([-0.01, -0.01, -0.01], [-0.01, -0.01, -0.01], "other way"),
    ([0.01, 0.01, -0.01], [0.01, 0.01, 0.01], "not supported"),  # one '<'
    ([0.01, 0.0, 0.0], [0.01, 0.01, 0.01], "not supported"),  # 1 '>' at 2x
])
def test_claim_verdict(tables, tmp_path, d2, d4, verdict, monkeypatch):
    # three models here, so at least 2 must be '>' at each decisive scale
    monkeypatch.setitem(RULE, "min_models_per_scale", 2)
    _full(tmp_path, d2, d4)
    table = tables.table_scaling_prereg()
    assert f"at least 2 models '>' at each and none '<'): {verdict}**" in table


def test_paired_mark_is_the_paired_t_test(tables):
    rng = np.random.default_rng(0)
    se = dict(enumerate(rng.normal(0.8, 0.01, 5)))
    me = {s: v + 0.004 + rng.normal(0, 0.003) for s, v in se.items()}
    got = tables.paired_mark(se, me)
    ref = stats.ttest_rel(list(me.values()), list(se.values()))
    assert got["p"] == pytest.approx(ref.pvalue)
    assert got["diff"] == pytest.approx(np.mean([me[s] - se[s] for s in se]))
    assert got["n"] == 5
    assert got["mark"] == (">" if ref.pvalue < 0.05 else "~")
    # only the seeds both cells have are paired
    assert tables.paired_mark(se, {0: me[0], 1: me[1], 9: 0.5})["n"] == 2
    # the same difference on every seed: p = 0, marked by its sign
    same = {s: v - 0.01 for s, v in se.items()}
    assert tables.paired_mark(se, same) == pytest.approx(
        {"mark": "<", "diff": -0.01, "p": 0.0, "n": 5})
    assert tables.paired_mark(se, se)["mark"] == "~"


def test_files_of_two_plans_are_refused(tables, tmp_path):
    _write(tmp_path, "dnn", "SE", 2, SE_2X, sha="a" * 64)
    _write(tmp_path, "dnn", "ME", 2, SE_2X, sha="b" * 64)
    with pytest.raises(SystemExit, match="2 different plans"):
        tables.table_scaling_prereg()
