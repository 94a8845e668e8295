"""``skcollapse demo``: trains the demo models on built-in data, prints one table."""

import json
import re

import numpy as np
import pytest

from skcollapse.cli import _demo, _threads, main

SMALL = ["demo", "--users", "120", "--items", "50", "--epochs", "2", "--quiet"]


def test_demo_prints_one_row_per_model_and_the_baseline(capsys):
    assert main(SMALL) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == _demo._COLUMNS
    models = [line.strip("|").split("|")[0].strip() for line in lines[2:]]
    per_reg = ["MF", "LightGCN"] * len(_demo.DEMO_REGULARIZERS)
    assert models == ["Popularity", "EASE", *per_reg]
    # the table is explained in words, one line per regularized row
    n_reg = len(per_reg) - 2
    assert out.count(": item erank ") == n_reg and "How to read this table" in out
    # the last line says how long the whole demo took
    last = out.splitlines()[-1]
    assert last.startswith("demo done in ") and " s of wall time " in last


def test_demo_json_values_are_sane(capsys, monkeypatch):
    # the list of regularizers is extensible: a callable penalty adds rows
    def small_norm(emb, ctx):
        return emb["item"].pow(2).mean()

    monkeypatch.setattr(
        _demo,
        "DEMO_REGULARIZERS",
        [
            *_demo.DEMO_REGULARIZERS,
            {"label": "l2-callable", "regularizer": small_norm,
             "params": {"regularizer__weight": 0.1}},
        ],
    )
    assert main([*SMALL, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    labels = [reg["label"] for reg in _demo.DEMO_REGULARIZERS]
    assert labels[0] == "none" and labels[-1] == "l2-callable"
    assert [(r["model"], r["regularizer"]) for r in rows] == [
        ("Popularity", "-"),
        ("EASE", "-"),
        *[(m, label) for label in labels for m in ("MF", "LightGCN")],
    ]
    for r in rows:
        assert 0.0 <= r["Recall@20"] <= 1.0
        assert 0.0 <= r["NDCG@20"] <= 1.0
        assert 0.0 < r["coverage@20"] <= 1.0
    for r in rows[2:]:
        # IA = 1 / max(p) and erank = exp(H(p)) for p = sigma / sum(sigma): the
        # min-entropy bound gives 1 <= IA <= erank <= embedding_dim (32)
        for table in ("user", "item"):
            assert 1.0 <= r[f"IA {table}"] <= r[f"erank {table}"] + 1e-9
            assert r[f"erank {table}"] <= 32.0 + 1e-9
        assert r["fit s"] > 0


def test_demo_progress_on_stderr(capsys):
    args = [a for a in SMALL if a != "--quiet"]
    assert main(args) == 0
    err = capsys.readouterr().err
    n = 2 * len(_demo.DEMO_REGULARIZERS)
    assert f"[1/{n}] MF" in err and f"[{n}/{n}] LightGCN" in err and "done in" in err


@pytest.mark.parametrize(
    "load, n_cpus, environ, hinted",
    [
        (2.0, 2, {}, True),  # both cores taken by other work
        (1.0, 2, {}, True),  # half of them
        (0.9, 2, {}, False),
        (7.9, 16, {}, False),
        (3.0, 1, {}, False),  # one CPU: no threads to wait for each other
        (2.0, 2, {"OMP_WAIT_POLICY": "ACTIVE"}, False),  # the user chose
        (2.0, 2, {"OMP_NUM_THREADS": "2"}, False),
    ],
)
def test_busy_machine_hint(load, n_cpus, environ, hinted):
    hint = _threads.busy_machine_hint(load, n_cpus, environ)
    assert (hint is not None) == hinted
    if hinted:
        assert f"load {load:.1f} on {n_cpus} CPUs" in hint
        assert "OMP_WAIT_POLICY=PASSIVE" in hint


def test_demo_prints_the_hint_on_a_busy_machine(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 2)
    args = [a for a in SMALL if a != "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "note: this machine is busy (load 64.0 on 2 CPUs)" in err
    assert "busy" not in out  # stdout keeps the table and the time line
    assert main(SMALL) == 0  # --quiet: no hint either
    assert "busy" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--users", "0"], "--users"),
        (["--items", "5"], "--items"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_demo_bad_arguments_exit_2(capsys, extra, match):
    assert main([*SMALL, *extra]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.gpu
def test_demo_on_cuda(capsys, torch_device):
    assert main([*SMALL, "--device", torch_device, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 + 2 * len(_demo.DEMO_REGULARIZERS)


# ------------------------------------------------------------------ --dataset ml-100k
def _serve_ml100k(monkeypatch, tmp_path, *, n_users=60, n_items=40, seed=0):
    """A small ml-100k archive (real ``u.data`` format) served from a file:// URL."""
    import hashlib
    import io
    import zipfile

    from skcollapse.datasets import _movielens, make_interactions
    from skcollapse.datasets._base import RemoteFileMetadata

    X = make_interactions(n_users, n_items, density=0.15, random_state=seed)
    lines = "".join(
        f"{u + 1}\t{i + 1}\t{1 + (u + i) % 5}\t{880000000 + k}\n"
        for k, (u, i) in enumerate(X.tolist())
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-100k/u.data", lines)
    data = buffer.getvalue()
    path = tmp_path / "source" / "ml-100k.zip"
    path.parent.mkdir()
    path.write_bytes(data)
    meta = _movielens.ARCHIVES["100k"]
    monkeypatch.setitem(
        _movielens.ARCHIVES,
        "100k",
        RemoteFileMetadata(meta.filename, path.as_uri(), hashlib.sha256(data).hexdigest()),
    )
    return path


def test_demo_on_fetched_movielens_uses_the_cache(tmp_path, monkeypatch, capsys):
    from skcollapse.datasets import fetch_movielens
    from skcollapse.model_selection import train_test_split_interactions

    source = _serve_ml100k(monkeypatch, tmp_path)
    monkeypatch.setattr(_demo, "DEMO_REGULARIZERS", _demo.DEMO_REGULARIZERS[:1])
    home = tmp_path / "home"
    args = ["demo", "--dataset", "ml-100k", "--data-home", str(home), "--epochs", "2",
            "--quiet", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["Popularity", "EASE", "MF", "LightGCN"]
    # the popularity row is the one of the documented recipe: fetch + per-user split
    bunch = fetch_movielens("100k", data_home=home, download_if_missing=False,
                            codes=True)
    train, test = train_test_split_interactions(
        bunch.data, test_size=0.2, strategy="per_user", random_state=0
    )
    pop = _demo._baseline_rows(train, test, bunch.n_users, bunch.n_items)[0]
    assert rows[0]["Recall@20"] == pytest.approx(pop["Recall@20"])
    assert rows[0]["NDCG@20"] == pytest.approx(pop["NDCG@20"])
    for r in rows[2:]:
        assert 0.0 <= r["NDCG@20"] <= 1.0 and 1.0 <= r["erank item"] <= 32.0
    # second run: the source is gone, the cached copy is read
    source.unlink()
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again[0]["Recall@20"] == pytest.approx(pop["Recall@20"])
    assert again[2]["NDCG@20"] == pytest.approx(rows[2]["NDCG@20"])


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--users", "100"], "--users sets the size of the synthetic data"),
        (["--dataset", "ml-10m"], "invalid choice"),
    ],
)
def test_demo_dataset_bad_arguments_exit_2(tmp_path, capsys, extra, match):
    args = ["demo", "--dataset", "ml-100k", "--data-home", str(tmp_path), *extra]
    assert main(args) == 2
    assert match in capsys.readouterr().err


def test_demo_dataset_download_failure_is_one_clear_line(tmp_path, monkeypatch, capsys):
    source = _serve_ml100k(monkeypatch, tmp_path)
    source.unlink()  # the archive cannot be fetched
    args = ["demo", "--dataset", "ml-100k", "--data-home", str(tmp_path / "home"),
            "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--dataset ml-100k" in err and "Traceback" not in err
    # issue 29: the failure names the folders it looked in and the layout
    home = tmp_path / "home"
    assert str(home / "ml-100k") in err and str(home / "movielens" / "ml-100k") in err
    assert "u.data" in err and "--data-home" in err


def test_demo_reads_movielens_from_data_home_slash_ml_100k(tmp_path, monkeypatch,
                                                            capsys):
    """Issue 29: the files in DIR/ml-100k/ were ignored (a download was tried)."""
    source = _serve_ml100k(monkeypatch, tmp_path)
    data = source.read_bytes()
    source.unlink()  # no download possible
    import io
    import zipfile

    home = tmp_path / "DIR"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(home)  # DIR/ml-100k/u.data, ...
    assert (home / "ml-100k" / "u.data").is_file()
    monkeypatch.setattr(_demo, "DEMO_REGULARIZERS", _demo.DEMO_REGULARIZERS[:1])
    monkeypatch.setattr(_demo, "DEMO_MODELS", _demo.DEMO_MODELS[:1])
    args = ["demo", "--dataset", "ml-100k", "--data-home", str(home), "--epochs", "1",
            "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    fit_s = [line.strip("|").split("|")[-1].strip() for line in rows]
    # seconds read the same way in every row: 0.00, never 7.236e-04
    assert all(re.fullmatch(r"\d+\.\d\d", v) for v in fit_s), fit_s


def test_explain_table_names_changes_only_beyond_the_noise():
    rng = np.random.default_rng(0)
    n_users, n_items = 400, 300
    base_ndcg = rng.random(n_users) * 0.5
    narrow = rng.normal(size=(n_items, 4)) @ rng.normal(size=(4, 32))  # erank <= 4
    wide = rng.normal(size=(n_items, 32))
    rows, details = [
        {"model": "EASE", "regularizer": "-", "NDCG@20": 0.5, "erank item": None},
    ], {}

    def add(reg, ndcg, table):
        from skcollapse.metrics import effective_rank

        rows.append({"model": "MF", "regularizer": reg, "NDCG@20": float(ndcg.mean()),
                     "erank item": effective_rank(table)})
        details[("MF", reg)] = {"ndcg": ndcg, "item": table}

    add("none", base_ndcg, narrow)
    add("better", base_ndcg + 0.05, wide)            # higher for every user
    add("worse", np.clip(base_ndcg - 0.05, 0, 1), narrow)
    noise = rng.normal(0, 0.05, n_users)
    add("same", base_ndcg + noise - noise.mean(), narrow * 1.01)
    add("spread", base_ndcg, wide)
    add("tiny", base_ndcg * 1.001, narrow)  # consistent, p<0.001, but 0.1%
    text = _demo.explain_table(rows, 32, details)
    assert "at most the embedding size (32)" in text
    lines = {ln.split(":")[0].strip(): ln for ln in text.splitlines() if " + " in ln}
    assert set(lines) == {"MF + better", "MF + worse", "MF + same", "MF + spread",
                          "MF + tiny"}
    assert "helps: higher accuracy, more spread" in lines["MF + better"]
    assert "p<0.001" in lines["MF + better"]
    assert "hurts: lower accuracy" in lines["MF + worse"]
    assert lines["MF + same"].endswith(": within noise.")
    assert "spreads the table; accuracy within noise" in lines["MF + spread"]
    assert "p<0.001" in lines["MF + tiny"] and lines["MF + tiny"].endswith(
        ": within noise.")
    # without per-user values there is no noise estimate: nothing is a change
    bare = _demo.explain_table(rows, 32)
    assert "helps" not in bare and "hurts" not in bare
