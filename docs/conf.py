"""Sphinx configuration of the pennylane-shadowgrad documentation.

Build (warnings are errors, as in CI)::

    pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html

The demo gallery is generated from ``demos/`` by sphinx-gallery. ``SHADOWGRAD_GALLERY``
chooses how much of it runs (see :mod:`gallery_settings`): ``full`` (default: every demo
whose optional dependencies are installed), ``quick`` (every demo with ``--quick``) or
``none`` (code only, nothing executed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # gallery_settings
sys.path.insert(0, str(DOCS.parent))  # the package, also without an install

import gallery_settings  # noqa: E402

import pennylane_shadowgrad  # noqa: E402

project = "pennylane-shadowgrad"
author = "pennylane-shadowgrad contributors"
copyright = "the pennylane-shadowgrad contributors, Apache-2.0"
release = pennylane_shadowgrad.__version__  # the one place the version lives
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "gallery/*.ipynb", "gallery/*.py", "gallery/*.zip"]
templates_path = ["_templates"]

# -- MyST ---------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc / napoleon ---------------------------------------------------------------------
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_typehints_description_target = "documented"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # dataclass fields are documented once, as instance variables
napoleon_use_rtype = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "pennylane": ("https://docs.pennylane.ai/en/stable/", None),
}
# The build must not depend on the network (CI machines may have none): intersphinx
# inventories are fetched only when SHADOWGRAD_DOCS_INTERSPHINX=1.
if os.environ.get("SHADOWGRAD_DOCS_INTERSPHINX") != "1":
    intersphinx_mapping = {}

# -- plots in the user guide (matplotlib plot directive) -------------------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

# -- sphinx-gallery -------------------------------------------------------------------------
sphinx_gallery_conf = gallery_settings.gallery_conf()

# -- HTML -----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pennylane-shadowgrad {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
