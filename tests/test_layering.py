"""Sub-packages meet through public names only (issue 30, item 5).

Every module of ``skcollapse`` is parsed (``ast``, nothing is imported) and each
``import`` / ``from ... import`` of another sub-package is checked: a private
module (a path part with a leading underscore, ``skcollapse.metrics._popularity``)
or a private name (``_table``) of *another* sub-package is a leak -- the other
package can no longer rename or change it without breaking this one. Modules
of one package may use each other's private names.

``skcollapse.utils`` is the package meant for helpers shared by the others, so
its modules may be imported from anywhere; its private *names* may not, except
those of ``utils._sklearn_compat``, the one place scikit-learn's private helpers
are imported from (STYLE.md, item 3).
"""

import ast
from pathlib import Path

import pytest

import skcollapse

ROOT = Path(skcollapse.__file__).resolve().parent

#: The package whose modules every package may import.
SHARED = "utils"
#: Modules whose private names may be imported from any package.
PRIVATE_NAMES_ALLOWED = {"skcollapse.utils._sklearn_compat"}

#: Leaks removed on another branch, ``(importing module, imported module)`` ->
#: why they are still here. The list may only shrink: an entry that no longer
#: matches an import fails the second test, so it is deleted with the fix.
PENDING: dict = {}


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path):
    """``skcollapse.metrics._popularity`` for ``.../metrics/_popularity.py``."""
    parts = path.resolve().relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(module, *, is_package=False):
    """The sub-package a module belongs to (``"metrics"``), ``""`` at top level."""
    parts = module.split(".")
    if len(parts) > 2 or (is_package and len(parts) == 2):
        return parts[1]
    return ""


def private_imports(source, module, *, is_package=False):
    """``[(line, imported module, names)]`` of the leaks in one module's source."""
    here = package_of(module, is_package=is_package)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [(node.module, [a.name for a in node.names])]
        elif isinstance(node, ast.Import):
            targets = [(a.name, []) for a in node.names]
        else:
            continue
        for target, names in targets:
            parts = target.split(".")
            if parts[0] != "skcollapse":
                continue
            # ``from skcollapse import metrics`` names a package: look one deeper
            there = parts[1] if len(parts) > 1 else ""
            if there == here:
                continue
            private_path = any(_is_private(p) for p in parts[1:])
            private_names = [n for n in names if _is_private(n)]
            if there == SHARED:
                if private_names and target not in PRIVATE_NAMES_ALLOWED:
                    found.append((node.lineno, target, private_names))
            elif private_path or private_names:
                found.append((node.lineno, target, names))
    return found


def _all_leaks():
    leaks = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        for line, target, names in private_imports(
            path.read_text(encoding="utf-8"), module,
            is_package=path.name == "__init__.py",
        ):
            leaks.setdefault((module, target), []).append((line, names))
    return leaks


def test_the_walker_finds_a_leak_and_allows_what_is_allowed():
    src = (
        "from skcollapse.metrics._popularity import _table, popularity_counts\n"
        "from skcollapse.metrics import _gram\n"
        "import skcollapse.adapters._extract\n"
        "from skcollapse.plotting._base import get_axes\n"  # same package
        "from skcollapse.metrics import collapse_metrics\n"  # public
        "from skcollapse.utils._validation import check_embedding_matrix\n"
        "from skcollapse.utils._sklearn_compat import _fit_context\n"
        "from skcollapse.utils._interactions import _as_ids\n"
        "from skcollapse import __version__\n"
    )
    got = private_imports(src, "skcollapse.plotting._popularity")
    assert [(line, target) for line, target, _ in got] == [
        (1, "skcollapse.metrics._popularity"),
        (2, "skcollapse.metrics"),
        (3, "skcollapse.adapters._extract"),
        (8, "skcollapse.utils._interactions"),
    ]
    # a package's __init__ belongs to the package
    assert private_imports(
        "from skcollapse.metrics._gram import GramAccumulator\n",
        "skcollapse.metrics", is_package=True,
    ) == []


def test_no_package_imports_another_packages_private_names():
    leaks = {key: where for key, where in _all_leaks().items() if key not in PENDING}
    report = [
        f"{module} (line {line}) imports {target} {names}: expose it publicly "
        f"or move it to skcollapse.{SHARED}"
        for (module, target), where in leaks.items()
        for line, names in where
    ]
    assert not report, "\n".join(report)


@pytest.mark.parametrize("key", sorted(PENDING))
def test_pending_leaks_still_exist(key):
    """Delete the entry from PENDING once its import is fixed."""
    assert key in _all_leaks(), f"{key} is fixed: remove it from PENDING"
