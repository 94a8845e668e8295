"""Every public estimator declares its parameters once, where every tool reads them.

As scikit-learn does (``sklearn/tests/test_docstring_parameters.py``), for each
estimator found by ``all_estimators()``:

* ``__init__`` spells out every parameter with its default (``inspect.signature``,
  IDEs, ``help()`` and the API page show them all), keyword-only (scikit-learn's
  own rule allows one leading positional parameter, as ``PCA(n_components)``;
  the quantizers' ``n_levels``); a skorch net keeps ``**kwargs`` only for routed
  ``prefix__name`` arguments;
* ``_parameter_constraints`` has a key for exactly those parameters;
* the numpydoc Parameters section documents each of them, with the signature's
  default where it states one;
* ``get_params(deep=False)`` lists exactly those names (no skorch bookkeeping)
  and passes every argument on to where it is stored.
"""

from __future__ import annotations

import ast
import inspect
import re

import pytest
from sklearn.base import clone
from skorch import NeuralNet

from skcollapse.nn._ctr_models import CTRModel
from skcollapse.recommenders import DNNClassifier, MFRecommender
from skcollapse.testing import all_estimators

ESTIMATORS = all_estimators()
IDS = [name for name, _ in ESTIMATORS]

#: classes whose first parameter may be positional (scikit-learn's convention)
_LEADING_POSITIONAL = {"ResidualKMeans": "n_levels", "RQVAE": "n_levels",
                       "CollapseScorer": "metric"}


def _parameters(cls):
    """The named parameters of the constructor (``self`` and ``**kwargs`` left out)."""
    return {
        name: p
        for name, p in inspect.signature(cls).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


# ---------------------------------------------------------------- numpydoc reader
_HEADER = re.compile(r"^(?P<title>[A-Z][A-Za-z ]+)\n-{3,}\s*$", re.MULTILINE)
_ENTRY = re.compile(
    r"^(?P<names>\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)(?:\s+:\s+(?P<type>.*))?$"
)
_DEFAULT = re.compile(r"(?:^|,\s*)default\s*=\s*(?P<value>.+?)\s*$")


def documented_parameters(doc):
    """``{name: documented default text or None}`` of a Parameters section."""
    doc = inspect.cleandoc(doc or "")
    headers = list(_HEADER.finditer(doc))
    for k, match in enumerate(headers):
        if match.group("title").strip() == "Parameters":
            end = headers[k + 1].start() if k + 1 < len(headers) else len(doc)
            section = doc[match.end() : end]
            break
    else:
        return {}
    out = {}
    for line in section.strip("\n").splitlines():
        if not line or line[0].isspace():
            continue  # a description line
        entry = _ENTRY.match(line)
        if entry is None:
            continue
        default = _DEFAULT.search(entry.group("type") or "")
        for name in re.split(r"\s*,\s*", entry.group("names")):
            out[name.lstrip("*")] = default and default.group("value")
    return out


def _same_default(text, value):
    """Whether the documented default ``text`` names the signature's ``value``."""
    try:
        literal = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        # a class or function, by its dotted or bare name
        return getattr(value, "__name__", None) == text.rsplit(".", 1)[-1]
    if isinstance(literal, float) and not isinstance(value, bool):
        return isinstance(value, (int, float)) and literal == value
    return type(literal) is type(value) and literal == value


def test_reader():
    doc = """Summary.

    Parameters
    ----------
    a : int, default=3
        Text, default=5 inside.
    b, c : str, default="x"
    module : type, default=skcollapse.nn.DNN
    d
        No type.
    **kwargs
        Routed.

    Attributes
    ----------
    e_ : int
    """
    assert documented_parameters(doc) == {
        "a": "3", "b": '"x"', "c": '"x"', "module": "skcollapse.nn.DNN",
        "d": None, "kwargs": None,
    }
    assert _same_default("3", 3) and not _same_default("3", 3.0)
    assert _same_default("(400, 400)", (400, 400))
    assert not _same_default("[400, 400]", (400, 400))
    assert _same_default("skcollapse.nn.DNN", type("DNN", (), {}))


# ---------------------------------------------------------------- the checks
def test_every_estimator_is_found():
    names = set(IDS)
    assert {"MFRecommender", "LightGCNRecommender", "TwoTowerRecommender",
            "DNNClassifier", "FMClassifier", "EASERecommender", "RQVAE",
            "ErankScorer"} <= names


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_signature_is_explicit_and_keyword_only(name, cls):
    params = inspect.signature(cls).parameters.values()
    positional = [p.name for p in params if p.kind is not p.KEYWORD_ONLY
                  and p.kind is not p.VAR_KEYWORD]
    assert positional == ([_LEADING_POSITIONAL[name]] if name in _LEADING_POSITIONAL
                          else []), positional
    assert all(p.default is not p.empty for p in _parameters(cls).values())
    if issubclass(cls, NeuralNet):
        # skorch's own parameters are spelled out too, not hidden in **kwargs
        skorch = set(inspect.signature(NeuralNet).parameters) - {"kwargs"}
        assert skorch <= set(_parameters(cls)), skorch - set(_parameters(cls))


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_constraints_cover_the_signature(name, cls):
    signature = set(_parameters(cls))
    constrained = set(cls._parameter_constraints)
    assert not signature - constrained, f"no constraint: {signature - constrained}"
    assert not constrained - signature, f"not a parameter: {constrained - signature}"


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_docstring_documents_the_signature(name, cls):
    documented = documented_parameters(cls.__doc__)
    params = _parameters(cls)
    missing = set(params) - set(documented)
    assert not missing, f"undocumented: {sorted(missing)}"
    extra = set(documented) - set(params) - {"kwargs"}
    assert not extra, f"documented, not in the signature: {sorted(extra)}"
    wrong = {
        name: (text, params[name].default)
        for name, text in documented.items()
        if text is not None and name in params
        and not _same_default(text, params[name].default)
    }
    assert not wrong, wrong


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_get_params_is_the_signature(name, cls):
    params = _parameters(cls)
    est = cls()
    got = est.get_params(deep=False)
    assert set(got) == set(params)
    for key, p in params.items():
        assert got[key] is p.default, key
    # every argument reaches its attribute (none is dropped on the way to a base)
    markers = {key: object() for key in params}
    got = cls(**markers).get_params(deep=False)
    assert all(got[key] is markers[key] for key in params)


@pytest.mark.parametrize(
    ("name", "cls"),
    [(n, c) for n, c in ESTIMATORS if getattr(c, "_module_params", None)
     and isinstance(_parameters(c)["module"].default, type)
     and issubclass(_parameters(c)["module"].default, CTRModel)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_ctr_module_parameters_have_the_module_defaults(name, cls):
    """A CTR classifier's architecture defaults are its module's, declared once."""
    params = _parameters(cls)
    module = inspect.signature(params["module"].default).parameters
    for key in ("embedding_dim", "n_embedding_sets", *cls._module_params):
        assert params[key].default == module[key].default, key


@pytest.mark.parametrize("cls", [MFRecommender, DNNClassifier])
def test_clone_rebuilds_skorchs_set_of_routed_names(cls):
    """skorch's ``_params_to_validate`` is not a parameter: a clone builds its
    own from the routed arguments instead of sharing the original's."""
    est = cls(regularizer="logdet", regularizer__weight=0.1)
    twin = clone(est)
    assert twin.get_params()["regularizer__weight"] == 0.1
    assert twin._params_to_validate == {"regularizer__weight"}
    assert twin._params_to_validate is not est._params_to_validate
