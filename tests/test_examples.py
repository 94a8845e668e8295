"""Every gallery example runs to completion (fast settings, Agg backend)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_sphinx_gallery_shaped(path):
    source = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source), clean=False)
    assert doc, f"{path.name} needs a module docstring with an RST title"
    lines = [line for line in doc.strip().splitlines()]
    # RST title: a line of '=' above and below the title text
    assert set(lines[0]) == {"="} and set(lines[2]) == {"="}, lines[:3]
    assert len(lines[0]) >= len(lines[1].strip())
    assert source.count("# %%") >= 2, "sphinx-gallery cells start with '# %%'"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, tmp_path):
    pytest.importorskip("matplotlib")
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["SKCOLLAPSE_EXAMPLES_FAST"] = "1"
    # one torch thread per example: faster than oversubscribing a busy CI box
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, str(path)],
        check=False,
        cwd=tmp_path,  # examples must not need (or litter) the working folder
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"{path.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    assert proc.stdout.strip(), f"{path.name} printed nothing"
