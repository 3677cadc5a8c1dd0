"""Sphinx configuration: user guide + API reference generated from the docstrings."""

import sklearn_medprep

project = "sklearn-medprep"
author = "sklearn-medprep developers"
release = version = sklearn_medprep.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
]
autosummary_generate = True
autodoc_default_options = {}  # members: listed by the class template (_templates)
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_class_members_toctree = False
# no network: intersphinx targets are not fetched
intersphinx_mapping = {}
templates_path = ["_templates"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
nitpicky = False
suppress_warnings = ["config.cache"]
