"""The docstring parts written once (``utils._docstrings``, ``plotting._base``)."""

import pytest

from skcollapse.metrics import ErankScorer, IAScorer, information_abundance
from skcollapse.plotting._base import display_doc
from skcollapse.utils._docstrings import GUO_2024, fill_docstring


def test_fill_docstring_reindents_the_part_to_the_marker():
    doc = "Title.\n\n    Parameters\n    ----------\n    {x}\n    y : int\n"
    part = """
        x : int
            The x.
    """
    assert fill_docstring(doc, x=part) == (
        "Title.\n\n    Parameters\n    ----------\n    x : int\n        The x.\n"
        "    y : int\n"
    )


def test_fill_docstring_refuses_an_unknown_marker_and_an_unused_part():
    with pytest.raises(KeyError, match="'x'"):
        fill_docstring("A.\n    {x}\n")
    with pytest.raises(KeyError, match="not used"):
        fill_docstring("A.\n", x="text")


def test_display_doc_fills_a_displays_own_part_and_refuses_an_unused_one():
    @display_doc(cite="A. Author, Title, 2020.")
    class Shown:
        """Plot.

        References
        ----------
        {cite}
        """

        def plot(self):
            """Draw.

            {returns}
            """

    assert "        A. Author, Title, 2020.\n" in Shown.__doc__
    assert "display : Shown" in Shown.plot.__doc__

    with pytest.raises(KeyError, match="not used"):

        @display_doc(cite="A. Author, Title, 2020.")
        class Unused:
            """Plot."""


def test_a_shared_citation_reads_the_same_everywhere():
    cited = " ".join(GUO_2024.split())
    for obj in (information_abundance, IAScorer):
        assert cited in " ".join(obj.__doc__.split())
    assert "EUSIPCO 2007" in ErankScorer.__doc__
