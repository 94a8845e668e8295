"""The run report: table files, plots and one HTML page with the run's numbers."""

import csv
import json
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from skcollapse.cli import CLIError
from skcollapse.cli._report import (
    HTML_PAGE,
    TABLE_CSV,
    TABLE_MARKDOWN,
    format_value,
    markdown_table,
    report_callbacks,
    write_demo_report,
    write_report,
)


class FakeModel:
    def __init__(self, tables, history=None):
        self._tables = tables
        self.history = history

    def get_embeddings(self):
        return dict(self._tables)


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def run(rng):
    models = {
        "MF": FakeModel(
            {"user": rng.normal(size=(30, 8)), "item": rng.normal(size=(40, 8))},
            history=[
                {"epoch": e, "item_erank": 8.0 - e, "item_ia": 6.0 - e}
                for e in (1, 2, 3)
            ],
        ),
        "LightGCN": FakeModel(
            {"user": rng.normal(size=(30, 8)), "item": rng.normal(size=(40, 8))},
        ),
    }
    table = [
        {"model": "MF", "ndcg@20": 0.123456, "item_erank": 7.25, "fit_s": 1.5},
        {"model": "LightGCN", "ndcg@20": 0.2, "item_erank": 6.0, "fit_s": 12.0},
    ]
    X = np.c_[rng.integers(0, 30, 200), rng.integers(0, 40, 200)]
    return models, table, X


def test_report_writes_every_file_with_the_numbers(tmp_path, run):
    models, table, X = run
    out = tmp_path / "new" / "report"
    files = write_report(
        out, table, models=models, interactions=X, meta={"command": "demo"}
    )
    expected = {
        "csv",
        "markdown",
        "html",
        "spectrum_user",
        "spectrum_item",
        "projection_item",
        "history",
        "popularity_item",
    }
    assert set(files) == expected
    assert files["csv"] == out / TABLE_CSV and files["html"] == out / HTML_PAGE
    for key in expected - {"csv", "markdown", "html"}:
        width, height = _png_size(files[key])
        assert width > 300 and height > 200
    with open(files["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["MF", "LightGCN"]
    assert float(rows[0]["ndcg@20"]) == table[0]["ndcg@20"]  # full precision
    assert float(rows[1]["fit_s"]) == 12.0
    md = (out / TABLE_MARKDOWN).read_text()
    assert "| MF | 0.1235 | 7.25 | 1.5 |" in md
    page = files["html"].read_text()
    for key in expected - {"csv", "markdown", "html"}:
        assert f'src="{files[key].name}"' in page
    assert "<td>MF</td>" in page and ">0.1235</td>" in page
    assert "<dt>command</dt><dd>demo</dd>" in page


def test_report_without_models_writes_only_the_table(tmp_path, run):
    _, table, _ = run
    files = write_report(tmp_path, table)
    assert set(files) == {"csv", "markdown", "html"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [TABLE_CSV, TABLE_MARKDOWN, HTML_PAGE]
    )
    assert "<img" not in files["html"].read_text()


def test_report_accepts_a_dataframe_with_a_named_index(tmp_path, run):
    pd = pytest.importorskip("pandas")
    _, table, _ = run
    frame = pd.DataFrame(table).set_index("model")
    files = write_report(tmp_path, frame)
    header = files["csv"].read_text().splitlines()[0]
    assert header == "model,ndcg@20,item_erank,fit_s"


def test_report_escapes_html(tmp_path):
    files = write_report(tmp_path, [{"model": "<b>x</b>", "v": 1.0}], title="a & b")
    page = files["html"].read_text()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "<title>a &amp; b</title>" in page


def test_report_bad_input(tmp_path, run):
    _, table, _ = run
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CLIError, match="not a directory"):
        write_report(blocker, table)
    with pytest.raises(ValueError, match="empty"):
        write_report(tmp_path / "a", [])
    with pytest.raises(TypeError, match="list of dicts"):
        write_report(tmp_path / "b", {"model": "MF"})
    with pytest.raises(TypeError, match="models must be a dict"):
        write_report(tmp_path / "c", table, models=[FakeModel({})])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.123456, "0.1235"),
        (12.0, "12"),
        (3, "3"),
        (1.5e-5, "1.500e-05"),
        (float("nan"), "nan"),
        (None, ""),
        (True, "True"),
        ("MF", "MF"),
        (np.float32(0.5), "0.5"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_markdown_table_alignment_and_pipes():
    md = markdown_table(["name", "x"], [{"name": "a|b", "x": 1.0}])
    lines = md.splitlines()
    assert lines[1] == "|:---|---:|"
    assert lines[2] == r"| a\|b | 1 |"
    assert re.fullmatch(r"\| name \| x \|", lines[0])


def test_write_demo_report_records_the_command(tmp_path, run, capsys):
    import argparse

    models, table, X = run
    args = argparse.Namespace(
        report=tmp_path / "rep",
        users=30,
        items=40,
        epochs=3,
        seed=1,
        device="cpu",
        quiet=False,
    )
    columns = ["model", "ndcg@20", "item_erank"]
    files = write_demo_report(args, table, columns, models, X)
    assert f"report written to {files['html']}" in capsys.readouterr().err
    header = files["csv"].read_text().splitlines()[0]
    assert header == "model,ndcg@20,item_erank"  # the table's own columns only
    page = files["html"].read_text()
    assert "skcollapse demo --users 30 --items 40 --epochs 3 --seed 1" in page
    assert f"{len(X)} training interactions" in page
    assert report_callbacks()[0].record_initial


# ------------------------------------------------------- through the real command
DEMO_TINY = ["demo", "--users", "120", "--items", "60", "--epochs", "1", "--seed", "1"]


def test_demo_report_holds_the_numbers_of_the_run(tmp_path, capsys):
    from skcollapse.cli import main

    out = tmp_path / "report"
    code = main([*DEMO_TINY, "--json", "--quiet", "--report", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)  # the table the run printed
    names = {p.name for p in out.iterdir()}
    assert {
        TABLE_CSV,
        TABLE_MARKDOWN,
        HTML_PAGE,
        "spectrum_user.png",
        "spectrum_item.png",
        "projection_item.png",
        "history.png",
    } <= names
    for png in (n for n in names if n.endswith(".png")):
        width, height = _png_size(out / png)
        assert width > 300 and height > 200
    with open(out / TABLE_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(printed)
    for row, ref in zip(rows, printed, strict=True):
        assert row["model"] == ref["model"]
        assert row["regularizer"] == ref["regularizer"]
        for key in ("Recall@20", "NDCG@20", "erank item", "IA user"):
            if ref[key] is None:
                assert row[key] == ""
            else:
                assert float(row[key]) == pytest.approx(ref[key], rel=1e-12)
    md = (out / TABLE_MARKDOWN).read_text()
    page = (out / HTML_PAGE).read_text()
    for ref in printed:
        assert format_value(ref["NDCG@20"]) in md
        assert f">{format_value(ref['NDCG@20'])}</td>" in page
    assert "skcollapse demo --users 120 --items 60 --epochs 1 --seed 1" in page


def test_demo_report_bad_directory_fails_before_training(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "skcollapse", *DEMO_TINY, "--report", str(blocker)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == (
        f"skcollapse: error: report directory {blocker} exists and is not a directory"
    )
    assert not any(line.startswith("[1/") for line in lines)  # nothing trained
    assert proc.stdout == ""
    assert blocker.read_text() == "a file, not a folder"
