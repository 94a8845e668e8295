"""``skcollapse train`` and ``skcollapse score MODEL`` through the real entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skcollapse.cli import (
    FORMAT_VERSION,
    load_model,
    main,
    read_model_header,
    save_model,
)
from skcollapse.cli._model_file import MODEL_MAGIC, is_model_file
from skcollapse.datasets import make_interactions
from skcollapse.testing import reference_effective_rank as _erank_reference
from skcollapse.testing import reference_information_abundance as _ia_reference
from skcollapse.utils import _device

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-epochs", "2", "--embedding-dim", "8", "--batch-size", "512"]


def _run(*args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, "-m", "skcollapse", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def csv_file(tmp_path):
    """Interactions with raw string user ids and sparse integer item ids."""
    X = make_interactions(80, 40, random_state=0)
    users = np.array([f"u{u:03d}" for u in X[:, 0]])
    items = 1000 + 7 * X[:, 1]
    path = tmp_path / "ratings.csv"
    lines = ["item_id,rating,user_id"]
    lines += [f"{i},5,{u}" for u, i in zip(users, items, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path, users, items


def test_train_subprocess_saves_a_model_with_its_metadata(tmp_path, csv_file):
    path, users, items = csv_file
    out = tmp_path / "mf.skc"
    proc = _run("train", "--data", str(path), *FAST, "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "saved" in proc.stdout and "interactions" in proc.stdout
    assert is_model_file(out)
    header = read_model_header(out)
    assert header["format_version"] == FORMAT_VERSION
    assert header["model"] == "mf"
    assert header["params"] == {"max_epochs": 2, "embedding_dim": 8, "batch_size": 512}
    assert header["data"]["n_users"] == len(set(users))
    assert header["data"]["n_items"] == len(set(items))
    assert header["data"]["n_interactions"] == len(users)
    model, payload = load_model(out, return_metadata=True)
    assert payload["format_version"] == FORMAT_VERSION
    # code c of the model is the c-th sorted raw id
    np.testing.assert_array_equal(payload["user_ids"], np.unique(users))
    np.testing.assert_array_equal(payload["item_ids"], np.unique(items))
    tables = model.get_embeddings()
    assert tables["user"].shape == (len(set(users)), 8)
    for name in ("user", "item"):
        assert header["metrics"][f"{name}_erank"] == pytest.approx(
            _erank_reference(tables[name]), rel=1e-5
        )
        assert header["metrics"][f"{name}_ia"] == pytest.approx(
            _ia_reference(tables[name]), rel=1e-5
        )
    # the per-epoch collapse monitor is in the saved history
    assert "erank_item" in model.history[-1]
    assert len(model.history) == 2


def test_train_then_score_the_saved_model(tmp_path, csv_file, capsys):
    path, _, _ = csv_file
    out = tmp_path / "lightgcn.skc"
    code = main(
        [
            "train",
            "--model",
            "lightgcn",
            "--n-layers",
            "2",
            "--data",
            str(path),
            *FAST,
            "-o",
            str(out),
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == ""  # --quiet
    assert read_model_header(out)["params"]["n_layers"] == 2
    model = load_model(out)
    assert model.n_layers == 2
    code = main(["score", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    rows = {row["name"]: row for row in report["tables"]}
    assert set(rows) == {"user", "item"}
    for name, table in model.get_embeddings().items():
        assert rows[name]["shape"] == list(table.shape)
        assert rows[name]["effective_rank"] == pytest.approx(
            _erank_reference(table), rel=1e-5
        )


def test_train_names_the_thread_settings_on_a_busy_machine(tmp_path, capsys,
                                                           monkeypatch):
    from skcollapse.cli import _threads

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 4)
    argv = ["train", *FAST, "--max-epochs", "1", "--no-monitor"]
    assert main([*argv, "-o", str(tmp_path / "a.skc")]) == 0
    out, err = capsys.readouterr()
    assert "this machine is busy (load 3.0 on 4 CPUs)" in err
    assert "busy" not in out  # stdout keeps the training log
    assert main([*argv, "--quiet", "-o", str(tmp_path / "b.skc")]) == 0
    assert "busy" not in capsys.readouterr().err


def test_train_synthetic_with_held_out_evaluation(tmp_path, capsys):
    from skcollapse.model_selection import train_test_split_interactions

    out = tmp_path / "m.skc"
    code = main(
        [
            "train",
            *FAST,
            "--max-epochs",
            "1",
            "--test-size",
            "0.2",
            "--seed",
            "3",
            "--param",
            "k=10",
            "--no-monitor",
            "-o",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "held out" in captured.out and "ndcg@10" in captured.out
    header = read_model_header(out)
    X = make_interactions(1000, 500, random_state=3)
    _, X_test = train_test_split_interactions(X, test_size=0.2, random_state=3)
    model = load_model(out)
    assert header["data"]["n_train"] == len(X) - len(X_test)
    assert header["metrics"]["ndcg@10"] == pytest.approx(model.score(X_test))
    assert "erank_item" not in model.history[-1]  # --no-monitor
    assert model.random_state == 3


def test_regularizer_and_routed_params(tmp_path, csv_file):
    path, _, _ = csv_file
    out = tmp_path / "reg.skc"
    code = main(
        [
            "train",
            "--data",
            str(path),
            *FAST,
            "--regularizer",
            "logdet",
            "--param",
            "regularizer__weight=0.05",
            "-o",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    model, header = load_model(out, return_metadata=True)
    assert header["params"]["regularizer__weight"] == 0.05
    assert model.regularizer_.weight == 0.05
    assert "regularizer_penalty" in model.history[-1]


def test_overwrite_is_explicit(tmp_path, csv_file, capsys):
    path, _, _ = csv_file
    out = tmp_path / "m.skc"
    out.write_text("keep me")
    args = ["train", "--data", str(path), *FAST, "-o", str(out), "--quiet"]
    assert main(args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main([*args, "--overwrite"]) == 0
    assert is_model_file(out)


def test_bad_input_subprocess_is_one_line(tmp_path):
    proc = _run("train", "--data", "missing.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("skcollapse: error: --data 'missing.csv'")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n-layers", "2"], "--n-layers is not a parameter of --model mf"),
        (["--param", "oops"], "--param expects NAME=VALUE"),
        (["--param", "bogus=1"], "bogus is not a parameter of MFRecommender"),
        (["--param", "device=cuda"], "use --device"),
        (["--lr", "0.1", "--param", "lr=0.2"], "lr is given twice"),
        (["--test-size", "1.5"], "--test-size must be in [0, 1)"),
        (["--loss", "hinge"], "'loss' parameter of MFRecommender must be a str among"),
        (["--embedding-dim", "0"], "embedding_dim"),
        (["--user-col", "nope"], "--user-col 'nope' is not a column"),
        (["--item-col", "9"], "--item-col 9: the file has only 3 columns"),
        (["--user-col", "rating", "--item-col", "rating"], "both 'rating'"),
        (["--model", "svd"], "invalid choice: 'svd'"),
        (["--max-epochs", "two"], "invalid int value: 'two'"),
    ],
)
def test_bad_flags(tmp_path, csv_file, capsys, extra, message):
    path, _, _ = csv_file
    code = main(
        ["train", "--data", str(path), *FAST, "-o", str(tmp_path / "m.skc"), *extra]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert not (tmp_path / "m.skc").exists()


@pytest.mark.skipif(_device.HAS_CUDA, reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--device", "cuda", "-o", str(tmp_path / "m")]) == 2
    assert "--device='cuda' asks for CUDA" in capsys.readouterr().err


def test_bad_data_files(tmp_path, capsys):
    cases = {
        "empty.csv": ("", "the file is empty"),
        "header_only.csv": ("user,item\n", "holds no interactions"),
        "missing.csv": ("user,item\n1,2\n,3\n", "column 'user' of"),
        "one_col.csv": ("user\n1\n2\n", "need a item column"),
        "ratings.json": ("{}", "unsupported data file type '.json'"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        code = main(["train", "--data", str(path), "-o", str(tmp_path / "m.skc")])
        err = capsys.readouterr().err
        assert code == 2, name
        assert message in err, (name, err)
    assert main(["train", "--data", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_parquet_without_engine_says_what_to_install(tmp_path, capsys, monkeypatch):
    import pandas as pd

    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    path = tmp_path / "ratings.parquet"
    path.write_bytes(b"PAR1")
    assert main(["train", "--data", str(path)]) == 2
    assert "pip install pyarrow" in capsys.readouterr().err


def test_parquet_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X = make_interactions(60, 30, random_state=1)
    path = tmp_path / "x.parquet"
    pd.DataFrame({"user": X[:, 0], "item": X[:, 1]}).to_parquet(path)
    out = tmp_path / "m.skc"
    assert main(["train", "--data", str(path), *FAST, "-o", str(out), "--quiet"]) == 0
    assert read_model_header(out)["data"]["n_interactions"] == len(X)


def test_model_file_checks(tmp_path, capsys):
    from skcollapse.recommenders import MFRecommender

    not_model = tmp_path / "x.skc"
    not_model.write_bytes(b"hello")
    assert not is_model_file(not_model)
    assert not is_model_file(tmp_path / "absent")
    damaged = tmp_path / "d.skc"
    damaged.write_bytes(MODEL_MAGIC + b"{not json\n")
    assert main(["score", str(damaged)]) == 2
    assert "header is damaged" in capsys.readouterr().err
    future = tmp_path / "f.skc"
    future.write_bytes(MODEL_MAGIC + b'{"format_version": 99}\n')
    assert main(["score", str(future)]) == 2
    assert "format version 99 is not supported" in capsys.readouterr().err
    truncated = tmp_path / "t.skc"
    save_model(MFRecommender(max_epochs=1, embedding_dim=4).fit(
        make_interactions(30, 20, random_state=0)), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    assert main(["score", str(truncated)]) == 2
    err = capsys.readouterr().err
    assert "t.skc: cannot load the model" in err and "damaged or truncated" in err
    # a format-1 file (a pickle) is never read by score, damaged or not
    old = tmp_path / "old.skc"
    old.write_bytes(MODEL_MAGIC + b'{"format_version": 1}\n\x80')
    assert main(["score", str(old)]) == 2
    assert "old.skc is a format-1 model file" in capsys.readouterr().err


def test_train_help_lists_the_estimator_flags(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in (
        "--embedding-dim",
        "--n-layers",
        "--regularizer",
        "--param",
        "--device",
        "--seed",
        "--quiet",
        "--test-size",
    ):
        assert flag in text


def test_every_flag_is_a_real_estimator_parameter():
    from skcollapse import recommenders
    from skcollapse.cli._train import MODELS, PARAM_FLAGS

    for model, cls_name in MODELS.items():
        params = getattr(recommenders, cls_name)().get_params(deep=False)
        for flag, param, _, _, models in PARAM_FLAGS:
            if models is None or model in models:
                assert param in params, (model, flag)


@pytest.mark.parametrize(
    ("name", "sep"), [("u.data", "\t"), ("pipes.txt", "|"), ("spaces.txt", "  ")]
)
def test_headerless_text_files(tmp_path, name, sep):
    X = make_interactions(50, 30, random_state=2)
    lines = [f"{u + 1}{sep}{i + 1}{sep}4{sep}881250949" for u, i in X]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.skc"
    code = main(
        [
            "train",
            "--data",
            str(path),
            *FAST,
            "--max-epochs",
            "1",
            "-o",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    header = read_model_header(out)
    # the first line is data, not a header: every interaction is kept
    assert header["data"]["n_interactions"] == len(X)
    assert header["data"]["n_users"] == len(np.unique(X[:, 0]))
    _, payload = load_model(out, return_metadata=True)
    np.testing.assert_array_equal(payload["item_ids"], np.unique(X[:, 1]) + 1)


def test_diverged_training_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from skcollapse import recommenders

    def diverge(self, X, y=None, **fit_params):
        raise recommenders.ModelFitError("training loss became nan at epoch 1")

    monkeypatch.setattr(recommenders.MFRecommender, "fit", diverge)
    out = tmp_path / "m.skc"
    assert main(["train", *FAST, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skcollapse: error: training failed: training loss")
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_regularizer_none_means_no_regularizer(csv_file, tmp_path):
    path, _, _ = csv_file
    out = tmp_path / "m.skc"
    args = ["train", "--data", str(path), *FAST, "--regularizer", "None"]
    assert main([*args, "-o", str(out), "--quiet", "--max-epochs", "1"]) == 0
    model, header = load_model(out, return_metadata=True)
    assert model.regularizer is None and header["params"]["regularizer"] is None


# ------------------------------------------------------------------ public API
def test_save_and_load_model_round_trip(tmp_path):
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(60, 30, random_state=0)
    est = MFRecommender(embedding_dim=8, max_epochs=2, random_state=0).fit(X)
    path = save_model(
        est, tmp_path / "mf.skc", item_ids=np.arange(30) + 100, note="baseline",
        metrics={"ndcg": np.float32(0.5)},
    )
    assert path == tmp_path / "mf.skc" and is_model_file(path)
    assert not list(tmp_path.glob("*.part"))
    loaded = load_model(path)
    assert type(loaded) is MFRecommender and loaded is not est
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    for name, table in est.get_embeddings().items():
        np.testing.assert_array_equal(loaded.get_embeddings()[name], table)
    ids, scores = loaded.recommend([0, 5], n=4)
    ref_ids, ref_scores = est.recommend([0, 5], n=4)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)
    _, meta = load_model(str(path), return_metadata=True)
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["note"] == "baseline" and meta["metrics"] == {"ndcg": 0.5}
    assert meta["user_ids"] is None
    np.testing.assert_array_equal(meta["item_ids"], np.arange(30) + 100)
    assert read_model_header(path) == {k: meta[k] for k in ("format_version",
                                                            "metrics", "note")}
    # an existing file is only replaced on request
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_model(est, path)
    save_model(est, path, overwrite=True, note="second")
    assert read_model_header(path)["note"] == "second"
    with pytest.raises(ValueError, match="format_version is set by save_model"):
        save_model(est, tmp_path / "x.skc", format_version=2)


@pytest.mark.parametrize("version", [0, 3, 99, "1", "2", True, None])
def test_load_model_refuses_an_unknown_format_version(tmp_path, version):
    import json
    import pickle

    path = tmp_path / "future.skc"
    header = {} if version is None else {"format_version": version}
    path.write_bytes(
        MODEL_MAGIC + json.dumps(header).encode() + b"\n"
        + pickle.dumps({"estimator": "never unpickled"})
    )
    message = (
        rf"{path.name}: model file format version {version!r} is not supported; "
        rf"this skcollapse reads format version {FORMAT_VERSION}"
    )
    for reader in (load_model, read_model_header):
        with pytest.raises(ValueError, match=message.replace("'", ".")):
            reader(path)


def test_load_model_refuses_other_files(tmp_path):
    path = tmp_path / "x.skc"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="is not a skcollapse model file"):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.skc")
    with pytest.raises(ValueError, match=r"'return_metadata' parameter of load_model"):
        load_model(path, return_metadata="yes")


def test_cli_and_python_train_the_same_model_on_raw_ids(tmp_path, csv_file):
    """The CLI fits the file's own ids (strings, gapped integers) like Python
    does: same vocabulary, same tables, same recommendations in raw ids."""
    import pandas as pd

    from skcollapse.model_selection import train_test_split_interactions
    from skcollapse.recommenders import MFRecommender

    path, _, _ = csv_file
    out = tmp_path / "m.skc"
    code = main(["train", "--data", str(path), *FAST, "--seed", "3",
                 "--test-size", "0.2", "-o", str(out), "--quiet"])
    assert code == 0
    cli_model = load_model(out)

    frame = pd.read_csv(path)
    X = pd.DataFrame({"user": frame["user_id"], "item": frame["item_id"]})
    train, _ = train_test_split_interactions(X, test_size=0.2, random_state=3)
    py_model = MFRecommender(max_epochs=2, embedding_dim=8, batch_size=512,
                             random_state=3).fit(train)
    np.testing.assert_array_equal(cli_model.user_ids_, py_model.user_ids_)
    np.testing.assert_array_equal(cli_model.item_ids_, py_model.item_ids_)
    for name in ("user", "item"):
        np.testing.assert_allclose(cli_model.get_embeddings()[name],
                                   py_model.get_embeddings()[name])
    user = py_model.user_ids_[0]
    assert str(user).startswith("u")
    np.testing.assert_array_equal(cli_model.recommend(user, n=5)[0],
                                  py_model.recommend(user, n=5)[0])
