"""benchmarks/leaderboard.py's figures and the "leaderboard" table that
benchmarks/make_tables.py builds from its result files."""

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


@pytest.fixture(scope="module")
def leaderboard():
    return _load("leaderboard")


def _seed_record(seed, values, recall_tail=0.01):
    results = sys.modules["_results"]
    values = np.asarray(values)
    return results.compact_seed_result({
        "seed": seed, "epochs": 10 + seed, "params": {},
        "test": {"recall": values.mean() / 2, "ndcg": values.mean(), "coverage": 0.4},
        "per_user": {"user": np.arange(values.size), "recall": values / 2,
                     "ndcg": values},
        "tables": {"item": {"erank": 50.0 + seed, "ia": 5.0},
                   "user": {"erank": 40.0, "ia": 4.0}},
        "fit_s": 120.0, "stopped_by_time": seed == 1,
        "extra": {"bucket_recall": {
            "head": {"recall": 0.3, "users": 5, "items": 2},
            "torso": {"recall": 0.1, "users": 5, "items": 6},
            "tail": {"recall": recall_tail, "users": 5, "items": 2}}},
    })


def _write(root, folder, name, record):
    path = root / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_leaderboard_table_from_files(make_tables, tmp_path, monkeypatch):
    results = sys.modules["_results"]
    monkeypatch.setattr(results, "RESULTS", str(tmp_path))
    rng = np.random.default_rng(0)
    base = 0.05 + rng.random(300) * 0.3
    for seed, d in enumerate((0.0, 0.002, -0.002)):
        for label, shift in (("mf-ccl", 0.0), ("mf-ccl+logdet", 0.05)):
            rec = {"dataset": "gowalla", "label": label, "seed": seed,
                   "selection": {"params": {"margin": 0.8}, "valid_score": 0.1},
                   "seeds": [_seed_record(seed, base + shift + d)]}
            _write(tmp_path, f"leaderboard/gowalla/{label}", f"seed{seed}.json", rec)
    # a grid file (no test) and a smoke run are not table rows
    _write(tmp_path, "leaderboard/gowalla/grid", "ease.json",
           {"dataset": "gowalla", "label": "ease", "seed": 0,
            "selection": {"params": {"alpha": 100.0}, "valid_score": 0.2}})
    smoke = {"dataset": "gowalla", "label": "ease", "seed": 0, "smoke": True,
             "selection": {"params": {}, "valid_score": 0.2},
             "seeds": [_seed_record(0, base)]}
    _write(tmp_path, "leaderboard/gowalla/ease", "seed0.json", smoke)
    _write(tmp_path, "leaderboard-smoke/gowalla-u10/ease", "seed0.json", smoke)

    text = make_tables.table_leaderboard()
    assert "No leaderboard result files yet" not in text
    rows = [r.split(" | ") for r in text.splitlines() if r.startswith("| gowalla")]
    ours = [r for r in rows if r[2] == "this page's protocol"]
    assert [r[1] for r in ours] == ["`mf-ccl`", "`mf-ccl+logdet`"]
    ccl, reg = ours
    assert ccl[3] == f"{base.mean() / 2:.4f} ± 0.0010"
    assert ccl[5] == "" and reg[5].startswith("+ (+0.050, p<0.001)")
    assert ccl[6] == "51.0" and ccl[7] == "40.0"
    assert ccl[8] == "0.300 / 0.100 / 0.010" and ccl[9] == "0.400"
    assert ccl[10] == "margin=0.8"
    assert ccl[11] == "11.0 (time budget)" and ccl[12] == "2.0"
    assert ccl[13] == "0, 1, 2 |"
    reference = [r for r in rows if r[2] == "reference (BARS)"]
    assert ("LightGCN", "0.1820") in {(r[1], r[3]) for r in reference}
    assert "most read at the best *test* epoch" in text


def test_leaderboard_table_empty_state(make_tables, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path))
    text = make_tables.table_leaderboard()
    assert text.startswith("_No leaderboard result files yet")
    assert "| yelp2018 | SimpleX | reference (BARS) | 0.0701 | 0.0575 |" in text


def test_bucket_recall_by_hand(leaderboard):
    from skcollapse.recommenders import PopularityRecommender

    # 10 items with training counts 10..1 (item 0 most popular): head = items
    # 0-1, torso = 2-7, tail = 8-9 (20% / 60% / 20% of the items)
    train = [(100 + u, i) for i in range(10) for u in range(10 - i)]
    model = PopularityRecommender().fit(train)
    # user 109 has item 0 only: popularity ranks items 1..9 for it (top 20 of 9)
    test = np.array([[109, 1], [109, 9], [105, 8], [105, 42]])
    got = leaderboard.bucket_recall(model, test)["bucket_recall"]
    assert got["head"] == {"recall": 1.0, "users": 1, "items": 2}
    assert got["torso"]["recall"] is None and got["torso"]["items"] == 6
    # tail: user 109 found item 9 (1/1); user 105 (items 0-4 seen, so 5-9
    # recommended) found 8 but not the item 42 the model never saw: 1/2
    assert got["tail"] == {"recall": 0.75, "users": 2, "items": 2}


def _lightgcn_folder(root, n_users=40, n_items=30, seed=0):
    """A tiny data set in LightGCN's format (``user item item ...`` lines)."""
    rng = np.random.default_rng(seed)
    folder = root / "gowalla"
    folder.mkdir()
    train, test = [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=12, replace=False)
        train.append(f"{u} " + " ".join(map(str, sorted(items[:10]))))
        test.append(f"{u} " + " ".join(map(str, sorted(items[10:]))))
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return root


def test_refit_seed_run_trains_the_chosen_epochs_on_all_pairs(
        leaderboard, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path / "res"))
    data = _lightgcn_folder(tmp_path)
    argv = [str(data), "--dataset", "gowalla", "--seed", "0", "--recipe",
            "mf-bpr", "--max-epochs", "3", "--patience", "1", "--threads", "1"]
    leaderboard.main([*argv, "--refit"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["recipe"] == "mf-bpr-refit"
    path = tmp_path / "res" / "leaderboard" / "gowalla" / "mf-bpr-refit" / "seed0.json"
    rec = json.loads(path.read_text())
    assert rec["protocol"]["refit"] is True and rec["label"] == "mf-bpr-refit"
    seed = rec["seeds"][0]
    # the final model trained without validation for the chosen epochs
    assert seed["valid_curve"] is None
    assert seed["epochs"] == rec["selection"]["epochs"] == line["selected_epoch"]
    assert len(rec["candidates"]) == 3
    assert seed["select_fit_s"] == pytest.approx(
        sum(c["fit_s"] for c in rec["candidates"]))
    # without --refit: the validation run's own model, in the recipe's folder
    leaderboard.main(argv)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["recipe"] == "mf-bpr" and line["select_fit_s"] is None
    rec = json.loads((path.parent.parent / "mf-bpr" / "seed0.json").read_text())
    assert rec["protocol"]["refit"] is False and rec["seeds"][0]["valid_curve"]


def test_refit_rows_follow_their_recipe_and_count_both_fits(
        make_tables, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path))
    values = np.linspace(0.1, 0.3, 50)
    for label, select_s in (("mf-ccl-refit", 60.0), ("mf-bpr", None),
                            ("mf-ccl", None)):
        seed = _seed_record(0, values)
        seed["select_fit_s"] = select_s
        rec = {"dataset": "gowalla", "label": label, "seed": 0,
               "selection": {"params": {}, "valid_score": 0.1}, "seeds": [seed],
               # the refit's epochs were chosen in a run the budget cut short
               "candidates": [{"params": {}, "stopped_by_time": select_s is not None},
                              {"params": {"lr": 1.0}, "stopped_by_time": True}]}
        _write(tmp_path, f"leaderboard/gowalla/{label}", "seed0.json", rec)
    rows = [r.split(" | ") for r in make_tables.table_leaderboard().splitlines()
            if r.startswith("| gowalla") and "this page's protocol" in r]
    assert [r[1] for r in rows] == ["`mf-bpr`", "`mf-ccl`", "`mf-ccl-refit`"]
    # fit (min): 120 s of the final model, plus the 60 s validation run
    assert [r[12] for r in rows] == ["2.0", "2.0", "3.0"]
    # only the chosen candidate's cut counts
    assert [r[11] for r in rows] == ["10.0", "10.0", "10.0 (time budget)"]


def test_regularizer_run_keeps_the_recipe_setting_its_seed_run_chose(
        leaderboard, tmp_path, monkeypatch, capsys):
    """``--regularizer`` without a grid file: the recipe's own setting is the one
    the same seed's validation run chose; ReSN's weights are ``c / batch²``."""
    monkeypatch.setattr(sys.modules["_results"], "RESULTS", str(tmp_path / "res"))
    data = _lightgcn_folder(tmp_path)
    argv = [str(data), "--dataset", "gowalla", "--seed", "0", "--recipe",
            "mf-bpr", "--max-epochs", "2", "--patience", "1", "--threads", "1"]
    leaderboard.main(argv)
    root = tmp_path / "res" / "leaderboard" / "gowalla"
    chosen = json.loads((root / "mf-bpr" / "seed0.json").read_text())["selection"]["params"]
    # a different choice than the first grid point, so the test can tell them apart
    other = {"weight_decay": 1e-3 if chosen["weight_decay"] != 1e-3 else 1e-5}
    rec = json.loads((root / "mf-bpr" / "seed0.json").read_text())
    rec["selection"]["params"] = other
    (root / "mf-bpr" / "seed0.json").write_text(json.dumps(rec))
    capsys.readouterr()
    leaderboard.main([*argv, "--regularizer", "resn"])
    rec = json.loads((root / "mf-bpr+resn" / "seed0.json").read_text())
    assert rec["params"]["weight_decay"] == other["weight_decay"]
    assert rec["base_selected_by"] == "seed run leaderboard/gowalla/mf-bpr/seed0.json"
    batch = leaderboard.RECIPES["mf-bpr"]["params"]["batch_size"]
    weights = [c["params"]["regularizer__weight"] for c in rec["candidates"]]
    assert weights == pytest.approx([c / batch**2 for c in leaderboard.LEADERBOARD_RESN_C])
