"""``skcollapse demo``: trains the demo models on built-in data, prints one table."""

import json

import pytest

from skcollapse.cli import _demo, main

SMALL = ["demo", "--users", "120", "--items", "50", "--epochs", "2", "--quiet"]


def test_demo_prints_one_row_per_model_and_the_baseline(capsys):
    assert main(SMALL) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == _demo._COLUMNS
    models = [line.strip("|").split("|")[0].strip() for line in lines[2:]]
    per_reg = ["MF", "LightGCN"] * len(_demo.DEMO_REGULARIZERS)
    assert models == ["Popularity", *per_reg]


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
        *[(m, label) for label in labels for m in ("MF", "LightGCN")],
    ]
    for r in rows:
        assert 0.0 <= r["Recall@20"] <= 1.0
        assert 0.0 <= r["NDCG@20"] <= 1.0
        assert 0.0 < r["coverage@20"] <= 1.0
    for r in rows[1:]:
        assert 1.0 <= r["erank item"] <= 32.0 and 1.0 <= r["IA user"] <= 32.0
        assert r["fit s"] > 0


def test_demo_progress_on_stderr(capsys):
    args = [a for a in SMALL if a != "--quiet"]
    assert main(args) == 0
    err = capsys.readouterr().err
    n = 2 * len(_demo.DEMO_REGULARIZERS)
    assert f"[1/{n}] MF" in err and f"[{n}/{n}] LightGCN" in err and "done in" in err


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
    assert len(rows) == 1 + 2 * len(_demo.DEMO_REGULARIZERS)
