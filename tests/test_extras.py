"""Each extra of pyproject.toml delivers the imports it promises (issue 29).

Light: every check imports modules in a fresh interpreter, so what one test
imported cannot hide what another needs. The docs build imports every public
sub-package (the API reference), so none of them may need a test-only package.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code):
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        check=False,
        timeout=300,
    )


def _public_subpackages():
    return sorted(
        f"skcollapse.{p.name}" for p in (ROOT / "skcollapse").iterdir()
        if (p / "__init__.py").is_file() and not p.name.startswith("_")
    )


def test_every_public_subpackage_imports_without_pytest():
    """The docs extra has no pytest: the API index imports every sub-package
    and every public name (skcollapse.testing imports pytest lazily)."""
    code = (
        "import importlib, sys\n"
        "sys.modules['pytest'] = None  # any 'import pytest' now fails\n"
        f"for name in {_public_subpackages()!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    for public in getattr(module, '__all__', ()):\n"
        "        getattr(module, public)\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_skcollapse_testing_does_not_import_pytest():
    result = _run(
        "import sys, skcollapse.testing\nprint('pytest' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


#: what each extra promises to make importable (pyproject.toml's comments)
PROMISES = {
    "plot": ["matplotlib", "skcollapse.plotting"],
    "dask": ["dask.array", "distributed"],
    "accelerate": ["accelerate"],
    "parquet": ["pyarrow"],
    "implicit": ["implicit"],
    "examples": ["matplotlib"],
    "docs": [
        "sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme",
        "myst_parser", "matplotlib", "selenium", "sphinx-mathjax-offline",
    ],
    "tests": ["pytest", "ruff", "matplotlib", "dask.array", "pyarrow"],
}


def test_every_extra_is_listed_here():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert set(extras) == set(PROMISES)


@pytest.mark.parametrize("extra", sorted(PROMISES))
def test_extra_imports(extra):
    """Where the extra is installed, its promised imports work; an extra not
    installed here is skipped (CI installs tests and docs)."""
    code = (
        "import importlib, importlib.util, sys\n"
        f"names = {PROMISES[extra]!r}\n"
        "missing = [n for n in names if importlib.util.find_spec(n.split('.')[0]) "
        "is None]\n"
        "if missing: print('MISSING', missing); sys.exit(0)\n"
        "for n in names: importlib.import_module(n)\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("MISSING"):
        pytest.skip(f"extra {extra!r} is not installed here: {result.stdout.strip()}")
    assert result.stdout.strip() == "ok"


def test_metrics_import_without_torch():
    """The metrics are numpy/scipy functions (the design's promise): importing
    them and using them on arrays -- the functions, the registry, the scorers
    and the table accessor -- must not load torch, which takes seconds; torch
    comes with a model or a tensor (issue 30: it was loaded through
    metrics/_sub_embedding.py)."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import skcollapse.metrics as m\n"
        "print(m.effective_rank(np.eye(4)), m.information_abundance(np.eye(4)))\n"
        "class Model:\n"
        "    def get_embeddings(self):\n"
        "        return {'item': np.eye(4)}\n"
        "print(m.get_collapse_scorer('srank', table='item')(Model()))\n"
        "print(m.collapse_metrics(np.eye(4), metrics='all')['condition_number'])\n"
        "print(len(m.get_embedding_tables(Model(), 'item')))\n"
        "print('torch' in sys.modules)\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4.0", "4.0", "4.0", "1.0", "4", "False"]
