"""``skcollapse score`` through the real entry points (``python -m`` and ``main``)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skcollapse.cli import CLIError, main
from skcollapse.metrics import effective_rank, information_abundance, normalized_std
from skcollapse.testing import reference_effective_rank, reference_information_abundance

ROOT = Path(__file__).resolve().parents[1]


def run_module(*args):
    """Run ``python -m skcollapse ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "skcollapse", *args],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def ref(E):
    return reference_effective_rank(E), reference_information_abundance(E)


def score_json(capsys, *args):
    code = main(["score", *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)["tables"]


def test_example_through_python_m():
    proc = run_module("score", "--example")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "erank" in lines[1] and "IA" in lines[1] and "norm_std" in lines[1]
    assert lines[2].startswith("collapsed") and lines[3].startswith("healthy")
    erank_collapsed = float(lines[2].split()[4])
    erank_healthy = float(lines[3].split()[4])
    assert erank_collapsed < 6
    assert erank_healthy > 60
    # no FILE is the same as --example; --json is machine readable
    proc = run_module("score", "--json")
    assert proc.returncode == 0, proc.stderr
    tables = {t["name"]: t for t in json.loads(proc.stdout)["tables"]}
    assert set(tables) == {"collapsed", "healthy"}
    assert tables["collapsed"]["shape"] == [5000, 64]
    assert tables["collapsed"]["effective_rank"] == pytest.approx(erank_collapsed,
                                                                 abs=1e-4)


def test_bad_file_through_python_m_is_one_line_exit_2(tmp_path):
    proc = run_module("score", str(tmp_path / "missing.npy"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"skcollapse: error: no such file: {tmp_path / 'missing.npy'}"
    ]
    assert "Traceback" not in proc.stderr
    proc = run_module("nonsense")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_npy_matches_reference(tmp_path, capsys):
    rng = np.random.default_rng(0)
    E = (rng.standard_normal((3000, 16)) * np.geomspace(1, 1e-2, 16)).astype(np.float32)
    np.save(tmp_path / "items.npy", E)
    (row,) = score_json(capsys, str(tmp_path / "items.npy"))
    erank, ia = ref(E)
    assert row["name"] == "items" and row["shape"] == [3000, 16]
    np.testing.assert_allclose(row["effective_rank"], erank, rtol=1e-6)
    np.testing.assert_allclose(row["information_abundance"], ia, rtol=1e-6)
    Z = E / np.linalg.norm(E, axis=1, keepdims=True)
    np.testing.assert_allclose(row["normalized_std"], Z.std(0, ddof=1).mean(),
                               rtol=1e-6)
    # human-readable output holds the same numbers
    assert main(["score", str(tmp_path / "items.npy")]) == 0
    out = capsys.readouterr().out
    assert f"{erank:.4f}" in out and "3000 x 16" in out


def test_npz_scores_every_2d_array(tmp_path, capsys):
    rng = np.random.default_rng(1)
    user, item = rng.standard_normal((200, 8)), np.eye(5)
    np.savez(tmp_path / "emb.npz", user=user, item=item, bias=np.ones(5))
    rows = {r["name"]: r for r in score_json(capsys, str(tmp_path / "emb.npz"))}
    assert set(rows) == {"user", "item"}
    np.testing.assert_allclose(rows["item"]["effective_rank"], 5.0)
    np.testing.assert_allclose(rows["user"]["information_abundance"], ref(user)[1],
                               rtol=1e-6)


def test_pt_tensor_and_state_dict(tmp_path, capsys):
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({
        "user": torch.nn.Embedding(50, 6),
        "item": torch.nn.Embedding(80, 6),
        "head": torch.nn.Linear(6, 1),
    })
    torch.save(model.state_dict(), tmp_path / "model.pt")
    rows = {r["name"]: r for r in score_json(capsys, str(tmp_path / "model.pt"))}
    # every 2-D numeric weight; the bias vector is skipped
    assert set(rows) == {"user.weight", "item.weight", "head.weight"}
    w = model["item"].weight.detach().numpy()
    np.testing.assert_allclose(rows["item.weight"]["effective_rank"], ref(w)[0],
                               rtol=1e-6)
    torch.save(model["user"].weight.detach(), tmp_path / "tensor.pt")
    (row,) = score_json(capsys, str(tmp_path / "tensor.pt"))
    np.testing.assert_allclose(
        row["information_abundance"], ref(model["user"].weight.detach().numpy())[1],
        rtol=1e-6,
    )


def test_csv_with_and_without_header(tmp_path, capsys):
    rng = np.random.default_rng(2)
    E = rng.standard_normal((60, 4))
    np.savetxt(tmp_path / "plain.csv", E, delimiter=",")
    np.savetxt(tmp_path / "head.csv", E, delimiter=",", header="a,b,c,d", comments="")
    for name in ("plain.csv", "head.csv"):
        (row,) = score_json(capsys, str(tmp_path / name))
        assert row["shape"] == [60, 4]
        np.testing.assert_allclose(row["effective_rank"], ref(E)[0], rtol=1e-6)


def test_options_are_passed_through(tmp_path, capsys):
    rng = np.random.default_rng(3)
    E = 4.0 + rng.standard_normal((400, 6))
    np.save(tmp_path / "e.npy", E)
    (row,) = score_json(capsys, str(tmp_path / "e.npy"), "--center",
                        "--row-normalize", "--relative")
    np.testing.assert_allclose(
        row["effective_rank"], effective_rank(E, center=True, row_normalize=True)
    )
    np.testing.assert_allclose(
        row["relative"]["information_abundance"],
        information_abundance(E, center=True, row_normalize=True, relative=True),
    )
    np.testing.assert_allclose(row["relative"]["normalized_std"],
                               normalized_std(E, relative=True))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: np.save(p / "x.npy", np.array([[1.0, np.nan], [1.0, 2.0]])),
         "NaN or infinite"),
        (lambda p: np.save(p / "x.npy", np.ones(5)), "2-D"),
        (lambda p: np.save(p / "x.npy", np.ones((2, 2, 2))), "2-D"),
        (lambda p: np.save(p / "x.npy", np.array([["a", "b"]])), "numeric dtype"),
        (lambda p: np.save(p / "x.npy", np.array([[{}, 1]], dtype=object),
                           allow_pickle=True), "cannot read"),
        (lambda p: np.save(p / "x.npy", np.zeros((0, 3))), "empty"),
        (lambda p: np.savez(p / "x.npz", v=np.ones(3)), "holds no 2-D"),
        (lambda p: (p / "x.csv").write_text("a,b\nx,y\n"), "numbers only"),
        (lambda p: (p / "x.csv").write_text(""), "empty"),
        (lambda p: (p / "x.txt").write_text("1 2\n"), "unsupported file type"),
        (lambda p: (p / "x.pt").write_bytes(b"not a torch file"), "cannot read"),
        (lambda p: torch.save({"b": torch.ones(3)}, p / "x.pt"), "holds no 2-D"),
        (lambda p: (p / "x.npy").write_bytes(b"garbage"), "cannot read"),
        # what a user meets on a disk: empty, truncated and mislabelled files
        (lambda p: (p / "x.npy").write_bytes(b""), "x.npy: the file is empty (0 bytes)"),
        (lambda p: (p / "x.npz").write_bytes(b""), "x.npz: the file is empty (0 bytes)"),
        (lambda p: (p / "x.pt").write_bytes(b""), "x.pt: the file is empty (0 bytes)"),
        (lambda p: (p / "x.npz").write_text("user,item\n1,2\n"),
         "x.npz: not a .npz file (not a zip archive"),
        (lambda p: _truncated(p / "x.npz", lambda f: np.savez(f, a=np.eye(3)), 0.7),
         "x.npz: the .npz archive is damaged or truncated"),
        (lambda p: _truncated(p / "x.npy", lambda f: np.save(f, np.eye(30)), 0.05),
         "x.npy: the file is damaged or truncated"),
        (lambda p: _truncated(p / "x.npy", lambda f: np.save(f, np.eye(30)), 0.5),
         "x.npy: the file is damaged or truncated"),
        (lambda p: _truncated(p / "x.pt", lambda f: torch.save(torch.eye(30), f), 0.5),
         "x.pt: the file is damaged or truncated"),
        (lambda p: _truncated(
            p / "x.pt",
            lambda f: torch.save(torch.eye(30), f, _use_new_zipfile_serialization=False),
            0.5), "x.pt: the file is damaged or truncated"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, make, match):
    make(tmp_path)
    (path,) = [p for p in tmp_path.iterdir()]
    code = main(["score", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("skcollapse: error: ")
    assert match in lines[0]
    # a damaged file is not a trust question: no advice to load it unsafely
    assert "unsafe" not in err and "weights_only" not in err and "\x1b" not in err


def _truncated(path, save, fraction):
    """Write a file with ``save``, then keep only ``fraction`` of its bytes."""
    save(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("zip_format", [True, False])
def test_whole_pickled_module_says_to_save_a_state_dict(tmp_path, capsys, zip_format):
    model = torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.Linear(4, 1))
    path = tmp_path / "model.pt"
    torch.save(model, path, _use_new_zipfile_serialization=zip_format)
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "\x1b" not in err  # no terminal escape codes
    assert "torch.nn.modules.container.Sequential" in err
    # the whole advice, not cut off
    assert err.rstrip().endswith("torch.save(model.state_dict(), path)"), err
    # and the advice works: the state dict scores
    torch.save(model.state_dict(), path)
    rows = {r["name"]: r for r in score_json(capsys, str(path))}
    assert set(rows) == {"0.weight", "1.weight"}


def test_integer_pt_is_read_like_integer_npy(tmp_path, capsys):
    rng = np.random.default_rng(4)
    E = rng.integers(-5, 6, size=(300, 7))
    np.save(tmp_path / "codes.npy", E)
    torch.save(torch.from_numpy(E), tmp_path / "codes.pt")
    torch.save({"w": torch.from_numpy(E).to(torch.int32)}, tmp_path / "sd.pt")
    (npy,) = score_json(capsys, str(tmp_path / "codes.npy"))
    (pt,) = score_json(capsys, str(tmp_path / "codes.pt"))
    (sd,) = score_json(capsys, str(tmp_path / "sd.pt"))
    erank, ia = ref(E)
    for row in (npy, pt, sd):
        assert row["shape"] == [300, 7]
        np.testing.assert_allclose(row["effective_rank"], erank, rtol=1e-6)
        np.testing.assert_allclose(row["information_abundance"], ia, rtol=1e-6)
    # a 2-D bool tensor is not a table, as a bool .npy is not
    torch.save(torch.ones(4, 3, dtype=torch.bool), tmp_path / "mask.pt")
    assert main(["score", str(tmp_path / "mask.pt")]) == 2
    assert "holds no 2-D numeric array" in capsys.readouterr().err


def test_reader_that_stops_early_gets_no_broken_pipe_error(tmp_path):
    # the reader is gone before anything is written
    proc = subprocess.Popen(
        [sys.executable, "-m", "skcollapse", "score", "--example"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 1
    assert err == ""
    # `skcollapse score X | head -n 2`, with more output than a pipe holds
    np.savez(tmp_path / "many.npz",
             **{f"t{i}": np.eye(3) + i for i in range(1500)})
    proc = subprocess.run(
        f"{sys.executable} -m skcollapse score {tmp_path / 'many.npz'} | head -n 2",
        shell=True, check=False, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )
    assert proc.stdout.splitlines()[0] == f"source: {tmp_path / 'many.npz'}"
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr == ""


def test_directory_and_missing_file(tmp_path, capsys):
    assert main(["score", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_main_usage_help_and_version(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "score" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "skcollapse" in capsys.readouterr().out


def test_cli_error_from_a_handler_is_one_line(capsys, monkeypatch):
    import skcollapse.cli._score as score_mod

    def boom(args):
        raise CLIError("something\nwent wrong")

    monkeypatch.setattr(score_mod, "run_score", boom)
    assert main(["score", "--example"]) == 2
    assert capsys.readouterr().err == "skcollapse: error: something went wrong\n"
