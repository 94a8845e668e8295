"""Every ``default=`` written in a numpydoc Parameters section is the real default.

For every public class and function (the ``__all__`` of every public
sub-package), the Parameters section of its docstring is parsed with a small
regex reader of ``name : type, default=VALUE`` lines, and each documented
default is compared with the default of the signature: by value when the
documented text is a Python literal (``ast.literal_eval``), by identity when it
is a dotted name (``skcollapse.nn.FM``, ``np.int64``), by ``__name__`` when it
is a bare class or function name (``LightGCN``). A class's
parameters are looked up along its MRO, so parameters that a subclass passes on
through ``**kwargs`` (skorch's ``lr``, ``max_epochs``...) are compared with the
base class's signature.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import pkgutil
import re
import textwrap

import pytest

import skcollapse

_MISSING = object()


def _public_objects():
    """``(qualified name, object)`` of every public class and function."""
    out = {}
    for info in pkgutil.iter_modules(skcollapse.__path__):
        if info.name.startswith("_") or info.name == "conftest":
            continue
        module = importlib.import_module(f"skcollapse.{info.name}")
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                out.setdefault(f"skcollapse.{info.name}.{name}", obj)
    return sorted(out.items())


PUBLIC = _public_objects()

_HEADER = re.compile(r"^(?P<title>[A-Z][A-Za-z ]+)\n-{3,}\s*$", re.MULTILINE)
# "name : type, default=VALUE" (also "a, b : int, default=0"); VALUE runs to
# the end of the line
_PARAM = re.compile(
    r"^(?P<names>\*{0,2}[A-Za-z_][\w]*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s+:\s+"
    r"(?P<type>.*)$"
)
_DEFAULT = re.compile(r"(?:^|,\s*)default\s*=\s*(?P<value>.+?)\s*$")


def parse_parameters(doc):
    """``{name: documented default text}`` from a numpydoc Parameters section.

    Only parameters whose type line carries ``default=`` are returned.

    >>> doc = '''Summary.
    ...
    ... Parameters
    ... ----------
    ... alpha : float, default=1.0
    ...     Text.
    ... n_users, n_items : int, default=None
    ...     Text, with default=3 inside the description.
    ... mode : {"a", "b"}
    ...
    ... Returns
    ... -------
    ... out : int, default=5
    ... '''
    >>> parse_parameters(doc)
    {'alpha': '1.0', 'n_users': 'None', 'n_items': 'None'}
    """
    doc = inspect.cleandoc(doc or "")
    headers = list(_HEADER.finditer(doc))
    section = None
    for k, match in enumerate(headers):
        if match.group("title").strip() == "Parameters":
            end = headers[k + 1].start() if k + 1 < len(headers) else len(doc)
            section = doc[match.end() : end]
            break
    if section is None:
        return {}
    out = {}
    for line in textwrap.dedent(section.strip("\n")).splitlines():
        if not line or line[0].isspace():
            continue  # descriptions are indented under their parameter
        match = _PARAM.match(line)
        if match is None:
            continue
        default = _DEFAULT.search(match.group("type"))
        if default is None:
            continue
        for name in re.split(r"\s*,\s*", match.group("names")):
            out[name.lstrip("*")] = default.group("value")
    return out


def _signature_defaults(obj):
    """``{name: default}`` of the signature; a class's along its MRO."""
    if not inspect.isclass(obj):
        return {
            p.name: p.default
            for p in inspect.signature(obj).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
    out = {}
    for klass in obj.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or not inspect.isfunction(init):
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out.setdefault(p.name, p.default)
    return out


_ALIASES = {"np": "numpy", "pd": "pandas"}


def _resolve_name(text, actual):
    """The object a documented name stands for, else ``_MISSING``.

    A dotted name (``skcollapse.nn.FM``, ``np.int64``) is imported; a bare name
    (``LightGCN``) stands for the real default when that is the class or
    function of this ``__name__``.
    """
    if re.fullmatch(r"[A-Za-z_]\w*", text):
        return actual if getattr(actual, "__name__", None) == text else _MISSING
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", text):
        return _MISSING
    parts = text.split(".")
    parts[0] = _ALIASES.get(parts[0], parts[0])
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return _MISSING
        return obj
    return _MISSING


def _same(documented, actual):
    if documented is actual:
        return True
    if isinstance(documented, float) and isinstance(actual, (int, float)):
        return not isinstance(actual, bool) and math.isclose(
            documented, actual, rel_tol=1e-12, abs_tol=0.0
        )
    if isinstance(documented, (list, tuple)) and isinstance(actual, (list, tuple)):
        return type(documented) is type(actual) and documented == actual
    try:
        return type(documented) is type(actual) and bool(documented == actual)
    except (TypeError, ValueError):  # e.g. arrays
        return False


def documented_default_mismatches(obj):
    """``[(parameter, documented text, real default, why)]`` for ``obj``."""
    documented = parse_parameters(obj.__doc__)
    real = _signature_defaults(obj)
    problems = []
    for name, text in documented.items():
        if name not in real:
            continue  # e.g. ``**kwargs`` entries routed elsewhere
        actual = real[name]
        if actual is inspect.Parameter.empty:
            problems.append((name, text, "<required>", "documented default, none"))
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = _resolve_name(text, actual)
            if value is _MISSING:
                problems.append((name, text, repr(actual), "not a literal or name"))
                continue
        if not _same(value, actual):
            problems.append((name, text, repr(actual), "differs"))
    return problems


def test_public_objects_are_found():
    names = {qual.rsplit(".", 1)[1] for qual, _ in PUBLIC}
    # one of each kind from several sub-packages, so a broken walk cannot pass
    assert {"effective_rank", "ErankScorer", "MFRecommender", "FMClassifier",
            "LogDetRegularizer", "make_interactions", "PerUserKFold",
            "CollapseMonitor"} <= names


@pytest.mark.parametrize(("qualname", "obj"), PUBLIC, ids=[q for q, _ in PUBLIC])
def test_documented_defaults_match_signature(qualname, obj):
    problems = documented_default_mismatches(obj)
    assert not problems, "\n".join(
        f"{qualname}({name}): docstring says default={text}, signature has {real} "
        f"({why})"
        for name, text, real, why in problems
    )


def test_checker_catches_a_wrong_default():
    def f(a, *, b=1.0, c="x", d=None, e=(1, 2)):
        """Doc.

        Parameters
        ----------
        a : int
            Required.
        b : float, default=2.0
        c : str, default="x"
        d : object, default=None
        e : tuple of int, default=[1, 2]
        """

    found = {name: why for name, _, _, why in documented_default_mismatches(f)}
    assert found == {"b": "differs", "e": "differs"}


def test_checker_resolves_names():
    import numpy as np
    import torch

    def g(optimizer=torch.optim.Adam, criterion=torch.nn.MSELoss, dtype=np.int64,
          module=torch.nn.Linear, other=torch.nn.Linear):
        """Doc.

        Parameters
        ----------
        optimizer : type, default=torch.optim.Adam
        criterion : type, default=torch.nn.BCELoss
        dtype : dtype, default=np.int64
        module : type, default=Linear
        other : type, default=Bilinear
        """

    found = [name for name, *_ in documented_default_mismatches(g)]
    assert found == ["criterion", "other"]
