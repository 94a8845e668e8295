"""Make numpydoc docstrings valid reStructuredText before numpydoc reads them.

Two habits of the package's docstrings are fine for ``help()`` and for the
doctests but not for reStructuredText, which would turn them into errors:

- A fitted attribute written bare, ``ndarray of shape (n_users_,)``: a word
  ending in ``_`` is a hyperlink reference in reStructuredText. Such words are
  escaped (``n_users\\_``) outside literals, doctests and literal blocks, so
  they show as written.
- A nested ``name : type`` entry without a description followed directly by
  the next entry (the fields of a returned ``Bunch``): an empty comment is
  added as its description, so the list stays one definition list.

Nothing else is changed.
"""

import re

_ITEM = re.compile(r"^(?P<indent>\s*)(?P<name>[^\s:][^:]*?) : (?P<type>\S.*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w`\\])([A-Za-z]\w*?)_(?![\w`])")


def _indent(line):
    return len(line) - len(line.lstrip())


def fix_lines(lines):
    """Return a copy of docstring ``lines`` with the two fixes applied."""
    out = []
    literal_indent = None  # inside an indented literal block (after "::")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if literal_indent is not None:
            if not stripped or _indent(line) > literal_indent:
                out.append(line)
                continue
            literal_indent = None
        if stripped.startswith((">>>", "...")):
            out.append(line)
            continue
        if stripped.endswith("::"):
            literal_indent = _indent(line)
        match = _ITEM.match(line)
        if match is None:
            out.append(_TRAILING_UNDERSCORE.sub(r"\1\\_", line))
            continue
        type_ = _TRAILING_UNDERSCORE.sub(r"\1\\_", match["type"])
        out.append(f"{match['indent']}{match['name']} : {type_}")
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _indent(line) < 4 or (following.strip() and _indent(following) > _indent(line)):
            continue
        # a nested entry without a description: give it an empty one, and
        # end the nested list with a blank line before a dedented line
        out.append(" " * (_indent(line) + 4) + "..")
        if not following.strip() or _indent(following) < _indent(line):
            out.append("")
    return out


def _process(app, what, name, obj, options, lines):
    lines[:] = fix_lines(lines)


def setup(app):
    # before numpydoc's own autodoc-process-docstring handler (priority 500)
    app.connect("autodoc-process-docstring", _process, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
