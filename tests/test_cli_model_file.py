"""Where ``skcollapse train`` writes its model file, and what it leaves on failure."""

import os

import pytest

from skcollapse import recommenders
from skcollapse.cli import main, save_model
from skcollapse.cli._model_file import check_output_path, is_model_file

FAST = ["--max-epochs", "2", "--embedding-dim", "8", "--batch-size", "512"]


@pytest.fixture
def fit_calls(monkeypatch):
    """Record MFRecommender.fit calls: a bad --output must fail before any."""
    calls = []
    real_fit = recommenders.MFRecommender.fit

    def spy(self, X, y=None, **fit_params):
        calls.append(len(X))
        return real_fit(self, X, y, **fit_params)

    monkeypatch.setattr(recommenders.MFRecommender, "fit", spy)
    return calls


def _one_line_error(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("skcollapse: error: --output: "), err
    assert "Traceback" not in err
    return lines[0]


def test_output_in_a_missing_folder_fails_before_training(tmp_path, capsys, fit_calls):
    out = tmp_path / "missing" / "dir" / "x.skc"
    assert main(["train", *FAST, "-o", str(out), "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert f"cannot write {out}: folder {out.parent} does not exist" in line
    assert fit_calls == []  # nothing trained
    assert not out.parent.exists()


def test_output_that_is_a_folder_or_under_a_file_fails_before_training(
    tmp_path, capsys, fit_calls
):
    assert main(["train", *FAST, "-o", str(tmp_path), "--quiet"]) == 2
    assert f"{tmp_path} is a folder; give a file name" in _one_line_error(capsys)
    not_a_folder = tmp_path / "data.csv"
    not_a_folder.write_text("user,item\n")
    out = not_a_folder / "x.skc"
    assert main(["train", *FAST, "-o", str(out), "--quiet"]) == 2
    assert f"{not_a_folder} is not a folder" in _one_line_error(capsys)
    existing = tmp_path / "m.skc"
    existing.write_text("keep me")
    assert main(["train", *FAST, "-o", str(existing), "--quiet"]) == 2
    assert "exists; pass --overwrite" in _one_line_error(capsys)
    assert existing.read_text() == "keep me"
    assert fit_calls == []


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write in any folder",
)
def test_output_in_a_read_only_folder_fails_before_training(
    tmp_path, capsys, fit_calls
):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        out = folder / "x.skc"
        assert main(["train", *FAST, "-o", str(out), "--quiet"]) == 2
        assert "no write permission in folder" in _one_line_error(capsys)
        assert fit_calls == []
    finally:
        folder.chmod(0o700)


def test_good_output_still_trains_and_saves(tmp_path, fit_calls):
    out = tmp_path / "m.skc"
    assert main(["train", *FAST, "-o", str(out), "--quiet"]) == 0
    assert len(fit_calls) == 1
    assert is_model_file(out)


def test_diverging_training_exits_non_zero_and_writes_no_file(tmp_path, capsys):
    # --lr 1e6 makes MF's loss explode; fit raises ModelFitError (not mocked)
    out = tmp_path / "m.skc"
    code = main(["train", *FAST, "--max-epochs", "3", "--lr", "1e6",
                 "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("skcollapse: error: training failed: "), err
    assert "lower lr" in err.lower()
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no model file, no partial file


def test_check_output_path_and_save_model_raise_before_writing(tmp_path):
    est = {"not": "fitted"}  # the path is checked first, before the estimator
    missing = tmp_path / "nope" / "x.skc"
    with pytest.raises(FileNotFoundError, match=r"folder .*nope does not exist"):
        check_output_path(missing)
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        save_model(est, missing)
    assert info.value.filename == str(missing)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_model(est, tmp_path)
    target = tmp_path / "x.skc"
    target.write_text("old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        check_output_path(target)
    assert check_output_path(target, overwrite=True) == target
    assert target.read_text() == "old"  # checking writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.skc"]
