"""Docstring parts written once and filled into the docstrings that share them.

Several public objects document the same parameters or paragraphs in the same
words (the retry parameters of every ``fetch_*`` loader, how a regularizer's
default weight was chosen, the ``ax``/``**kwargs`` of every Display's
``from_*``). The words are written once, as a
module constant beside the code they describe, and each docstring names them
with a marker on a line of its own::

    @fill_doc(ax=AX_DOC)
    def plot(self, ax=None):
        \"\"\"Draw.

        Parameters
        ----------
        {ax}
        \"\"\"

:func:`fill_doc` replaces the marker with the part, indented as the marker, when
the module is imported, so ``help()``, the API pages and the doctests read the
whole text. (The estimators' docstrings are composed the same way by
``recommenders._docstrings``.)
"""

import textwrap

__all__ = [
    "GUO_2024",
    "IMPLICIT_569",
    "ROY_VETTERLI_2007",
    "fill_doc",
    "fill_docstring",
]

# Works cited in the ``References`` of docstrings in several packages, each
# written once (a fix to a citation is then made in one place).
GUO_2024 = """
    X. Guo et al., "On the Embedding Collapse When Scaling up Recommendation
    Models", ICML 2024.
"""
ROY_VETTERLI_2007 = """
    O. Roy and M. Vetterli, "The effective rank: a measure of effective
    dimensionality", EUSIPCO 2007.
"""
IMPLICIT_569 = """
    ``benfred/implicit`` issue #569, "Implicit feedback recommender system
    strange behavior in the frequency of recommendations, for ALS" (2022).
"""


def fill_docstring(doc, **parts):
    """``doc`` with each marker line ``{name}`` replaced by ``parts[name]``.

    A marker stands alone on its line (white space around it is allowed); the
    part, a block of text in any indentation, is re-indented to the marker's.
    Every part must be used and every marker filled, so that a misspelt name
    fails at import instead of showing ``{name}`` in the documentation.
    """
    out, used = [], set()
    for line in doc.split("\n"):
        key = line.strip()
        name = key[1:-1] if key.startswith("{") and key.endswith("}") else None
        if name is None or not name.isidentifier():
            out.append(line)
            continue
        if name not in parts:
            raise KeyError(f"no docstring part named {name!r}")
        used.add(name)
        indent = line[: len(line) - len(line.lstrip())]
        text = textwrap.dedent(parts[name]).strip("\n")
        out.extend(indent + part if part else part for part in text.split("\n"))
    unused = set(parts) - used
    if unused:
        raise KeyError(f"docstring parts not used: {sorted(unused)}")
    return "\n".join(out)


def fill_doc(**parts):
    """Decorator: fill the ``{name}`` marker lines of the object's docstring.

    Apply it below decorators that copy the docstring (``validate_params``),
    so that the wrapper copies the filled text.
    """

    def decorate(obj):
        if obj.__doc__ is not None:  # None under ``python -OO``
            obj.__doc__ = fill_docstring(obj.__doc__, **parts)
        return obj

    return decorate
