"""bench_deepfm.py end to end on tiny data (a shrunken plan, tiny Frappe-shaped
files, one epoch): the result files hold the plan's fits, the Frappe fit is
scaling_curve's, and the generated tables show exactly the files' values."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest
from _bench import ROOT, load_benchmark
from scipy import stats
from sklearn.preprocessing import OrdinalEncoder

from skcollapse.model_selection import scaling_curve

PLAN = f"{ROOT}/benchmarks/preregistered/me_synthetic.json"
# blocks of global feature ids per field, as in the Frappe files
BLOCKS = [(0, 40), (40, 90), (90, 97), (97, 104), (104, 106), (106, 109),
          (109, 111), (111, 120), (120, 130), (130, 150)]


def _load(name):
    return load_benchmark(name, shared=True)


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _write_libfm(path, n, rng):
    lines = []
    for _ in range(n):
        ids = [int(rng.integers(lo, hi)) for lo, hi in BLOCKS]
        label = 1 if (ids[0] + ids[2]) % 3 == 0 else -1
        lines.append(" ".join([str(label)] + [f"{i}:1" for i in ids]))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deepfm")
    rng = np.random.default_rng(0)
    frappe = tmp / "data" / "frappe"
    frappe.mkdir(parents=True)
    _write_libfm(frappe / "frappe.validation.libfm", 90, rng)
    _write_libfm(frappe / "frappe.test.libfm", 30, rng)
    with open(PLAN) as fh:
        plan = json.load(fh)
    plan["make_ctr"]["n_samples"] = 400
    plan["experiment"].update(hidden_units=[8], max_epochs=1, seeds=[0, 1],
                              batch_size=64)
    plan_path = tmp / "plan.json"
    plan_path.write_text(json.dumps(plan))
    results = _load("_results")
    old = results.RESULTS
    results.RESULTS = str(tmp / "results")
    try:
        bench = _load("bench_deepfm")
        argv = [str(tmp / "data"), "--plan", str(plan_path),
                "--allow-uncommitted-plan"]
        bench.main(argv)
        yield {"bench": bench, "tmp": tmp, "plan": plan, "plan_path": plan_path,
               "argv": argv, "records": {
                   (r["dataset"], r["model"]): r
                   for r in results.read_results(bench.FOLDER)}}
    finally:
        results.RESULTS = old


def test_one_file_per_data_set_and_model_with_the_plans_fits(run):
    records, plan = run["records"], run["plan"]
    assert sorted(records) == sorted(
        (d, m) for d in ("synthetic", "frappe") for m in ("fm", "dnn", "deepfm"))
    frappe = run["tmp"] / "data" / "frappe"
    for (dataset, model), rec in records.items():
        config = rec["config"]
        assert config["plan_sha256"] == _sha(run["plan_path"])
        assert config["plan_git"]["committed"] is False
        assert config["experiment"] == plan["experiment"]
        params = config["params"]
        assert params["embedding_dim"] == 10 and params["n_embedding_sets"] == 1
        if model == "fm":  # FM has no MLP: its sizes are not given to it
            assert "hidden_units" not in params and "dropout" not in params
        else:
            assert params["hidden_units"] == [8] and params["batch_norm"] is True
        assert [s["seed"] for s in rec["seeds"]] == [0, 1]
        for s in rec["seeds"]:
            assert s["n_epochs"] == len(s["valid_curve"]) == 1
            assert s["selected_epoch"] == 1
            assert s["valid_roc_auc"] == pytest.approx(s["valid_curve"][0])
            assert 0.0 <= s["test"]["roc_auc"] <= 1.0
            assert math.isfinite(s["test"]["log_loss"])
            assert len(s["ia"]["fields"]) == 10
            assert s["ia"]["mean"] == pytest.approx(np.mean(s["ia"]["fields"]))
        info = rec["data"]
        if dataset == "frappe":
            # 90 rows split 8:1 -> floor(90 / 9) = 10 validation rows
            assert (info["n_train"], info["n_valid"], info["n_test"]) == (80, 10, 30)
            assert info["field_names"][:2] == ["user", "item"]
            assert rec["meta"]["data"] == {
                f"frappe/frappe.{p}.libfm": _sha(frappe / f"frappe.{p}.libfm")
                for p in ("validation", "test")}
        else:
            assert (info["n_train"], info["n_valid"], info["n_test"]) == (320, 40, 40)
            assert info["field_names"] == plan["field_names"]
            assert 0.5 < info["bayes_test_roc_auc"] < 1.0
    # every model of a data set saw the same rows
    for dataset in ("synthetic", "frappe"):
        assert len({records[(dataset, m)]["data"]["arrays_sha256"]
                    for m in ("fm", "dnn", "deepfm")}) == 1


def test_a_frappe_fit_is_scaling_curves_fit(run):
    bs = _load("bench_scaling")
    folder = run["tmp"] / "data" / "frappe"
    Xv, yv = bs.load_libfm(folder / "frappe.validation.libfm")
    Xt, yt = bs.load_libfm(folder / "frappe.test.libfm")
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                         dtype=np.int64).fit(Xv)
    exp = run["plan"]["experiment"]
    est = bs.plan_estimator("deepfm", "SE", 1, exp, "cpu")
    ref = scaling_curve(est, enc.transform(Xv), yv, param_name="embedding_dim",
                        param_range=[10], seeds=[1], patience=exp["patience"],
                        test_data=(enc.transform(Xt), yt), split=exp["split"],
                        split_random_state=exp["split_random_state"])
    got = run["records"][("frappe", "deepfm")]["seeds"][1]
    assert got["test"]["roc_auc"] == pytest.approx(ref["test_roc_auc"][0])
    assert got["ia"]["mean"] == pytest.approx(ref["ia_mean"][0])


def _pm(values):
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def test_make_tables_renders_the_files(run):
    make_tables = _load("make_tables")
    text = ("<!-- BEGIN TABLE deepfm -->\n<!-- END TABLE deepfm -->\n"
            "<!-- BEGIN TABLE deepfm-field-ia -->\n"
            "<!-- END TABLE deepfm-field-ia -->\n")
    out = make_tables.render(text)
    records = run["records"]
    names = {"fm": "FM", "dnn": "DNN", "deepfm": "DeepFM"}
    for (dataset, model), rec in records.items():
        label = {"synthetic": "planted CTR task", "frappe": "Frappe"}[dataset]
        row = next(ln for ln in out.splitlines()
                   if ln.startswith(f"| {label} | {names[model]} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        auc = [s["test"]["roc_auc"] for s in rec["seeds"]]
        loss = [s["test"]["log_loss"] for s in rec["seeds"]]
        assert cells[2] == _pm(auc) and cells[3] == _pm(loss)
        assert cells[7] == "1, 1" and cells[8] == "0, 1"
        if model == "deepfm":
            assert cells[4] == cells[5] == ""
            continue
        deepfm = records[(dataset, "deepfm")]["seeds"]
        for cell, metric in ((cells[4], "roc_auc"), (cells[5], "log_loss")):
            a = [s["test"][metric] for s in deepfm]
            b = [s["test"][metric] for s in rec["seeds"]]
            ref = stats.ttest_rel(a, b)
            diff = f"{np.mean(np.subtract(a, b)):+.4f}"
            assert cell.startswith(diff + " ")
            if "p<0.001" in cell:
                assert ref.pvalue < 1e-3
            else:
                p = float(re.search(r"p=([0-9.]+)", cell).group(1))
                assert p == pytest.approx(ref.pvalue, abs=6e-4)
            # two seeds: p < 0.05 needs |t| > 12.7, beyond 2 standard errors
            mark = ("~" if ref.pvalue >= 0.05 else
                    ">" if np.mean(a) > np.mean(b) else "<")
            assert f" {mark} (p" in cell
    # the field table: each field's IA averaged over seeds
    rec = records[("frappe", "dnn")]
    mean = np.mean([s["ia"]["fields"] for s in rec["seeds"]], axis=0)
    block = out[out.index("**Frappe**"):]
    assert "| model | user | item | daytime |" in block
    row = next(ln for ln in block.splitlines() if ln.startswith("| DNN |"))
    assert row == ("| DNN | " + " | ".join(f"{v:.2f}" for v in mean)
                   + f" | {mean.mean():.2f} |")


def test_existing_files_are_kept_unless_resumed(run, capsys):
    bench = run["bench"]
    results = _load("_results")
    old, results.RESULTS = results.RESULTS, str(run["tmp"] / "results")
    try:
        path = run["tmp"] / "results" / bench.result_path("frappe", "fm")
        before = path.read_text()
        with pytest.raises(SystemExit, match="exists: --resume"):
            bench.main(run["argv"])
        bench.main([*run["argv"], "--resume"])  # nothing left to fit
        assert "frappe fm: done before" in capsys.readouterr().out
        assert path.read_text() == before
    finally:
        results.RESULTS = old


@pytest.mark.parametrize("argv, message", [
    (["--datasets", "criteo"], "--datasets criteo"),
    (["--plan", "no-such-plan.json"], "--plan: no file"),
])
def test_bad_options_are_refused_by_name(run, argv, message, capsys):
    with pytest.raises(SystemExit):
        run["bench"].main(argv)
    assert message in capsys.readouterr().err


def test_files_of_two_plans_are_refused(run, tmp_path):
    results = _load("_results")
    tables = _load("tables_deepfm")
    old, results.RESULTS = results.RESULTS, str(tmp_path)
    try:
        for model, sha in (("dnn", "a" * 64), ("deepfm", "b" * 64)):
            rec = dict(run["records"][("frappe", model)])
            rec["config"] = {**rec["config"], "plan_sha256": sha}
            path = tmp_path / "deepfm" / "frappe" / f"{model}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rec))
        with pytest.raises(SystemExit, match="2 different plans"):
            tables.table_deepfm()
    finally:
        results.RESULTS = old
