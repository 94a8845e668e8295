"""Sphinx configuration of the skcollapse documentation site.

Build it (offline) from the repository root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Environment switches:

- ``SKCOLLAPSE_EXAMPLES_FAST=1`` runs the gallery with the examples' reduced
  settings (what CI builds); unset, the examples run in full.
- ``SKCOLLAPSE_DOCS_INTERSPHINX=1`` links names of numpy, scikit-learn, torch
  and skorch to their sites. It needs the network, so it is off by default and
  the build never depends on it.

The API reference (``api/index.rst`` and one page per name) is generated at
every build from the ``__all__`` of each public sub-package, so a new public
name or sub-package appears without editing this folder; after the build,
``site_checks`` fails it if a public name has no page or a link inside the
site is broken.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from site_checks import api_aliases, write_api_index

import skcollapse

os.environ.setdefault("MPLBACKEND", "Agg")

project = "skcollapse"
author = "skcollapse developers"
copyright = "skcollapse developers"
release = skcollapse.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax served from the site itself (copied into _static/mathjax at the
    # end of the build, before site_checks looks at the links): the formulas
    # render offline, with nothing to install beyond the docs extra
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "docstring_rst",
    "site_checks",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_templates", "auto_examples/*.ipynb", "**.py"]
templates_path = ["_templates"]
html_static_path = []  # no custom static files
# the README's own links point at docs/... from the repository root
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# -- API reference --------------------------------------------------------------
write_api_index(DOCS / "api")
autosummary_generate = True
# re-exported names point to their home page instead of a second description
autosummary_context = {"aliases": api_aliases()}
autodoc_typehints = "none"
autodoc_default_options = {
    "members": True,
    # members defined by skcollapse's own classes, not skorch's/torch's/sklearn's
    "inherited-members": False,
    # scikit-learn's metadata-routing setters, documented by scikit-learn
    "exclude-members": ",".join(
        f"set_{method}_request"
        for method in (
            "fit", "partial_fit", "predict", "predict_proba", "predict_log_proba",
            "decision_function", "score", "split", "transform", "inverse_transform",
        )
    ),
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Gallery ---------------------------------------------------------------------
FAST = os.environ.get("SKCOLLAPSE_EXAMPLES_FAST") == "1"
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "doc_module": ("skcollapse",),
    "backreferences_dir": "api/generated/backreferences",
    "image_scrapers": ("matplotlib",),
    # matplotlib's reset, and the CPU time of each example (site_checks)
    "reset_modules": ("matplotlib", "site_checks.record_cpu_time"),
    "reset_modules_order": "both",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    # the timing pages load scripts from CDNs; each example page states its own
    # running time ("Total running time of the script"), which the tests read
    "write_computation_times": False,
    # a failing example fails the build (reported at the end)
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}

# -- Cross-links to other projects (online only) ----------------------------------
if os.environ.get("SKCOLLAPSE_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable", None),
    }

# -- HTML ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skcollapse {release}"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_prev_next": False,
    "header_links_before_dropdown": 5,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
html_last_updated_fmt = None
