"""Sphinx configuration: user guide, API reference and the example gallery.

The build needs no network:

* the examples (``../examples/plot_*.py``) run at their small sizes
  (``SKLEARN_MEDPREP_EXAMPLE_SMALL=1``; set it to ``0`` for the full sizes) and
  their figures go into the gallery (sphinx-gallery);
* math is rendered by the MathJax copy shipped with ``sphinx-mathjax-offline``;
* references to scikit-learn, NumPy, pandas and Python objects resolve to their
  online documentation from URL patterns (``_ext/offline_xref.py``) instead of
  downloaded inventories. With ``SKLEARN_MEDPREP_DOCS_INTERSPHINX=1`` (a build
  with network access) intersphinx fetches the real inventories instead; any
  inventory file shipped as ``_inventories/<name>.inv`` is used as well.
"""

import os
import sys
from pathlib import Path

import sklearn_medprep

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("SKLEARN_MEDPREP_EXAMPLE_SMALL", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

project = "sklearn-medprep"
author = "sklearn-medprep developers"
copyright = "sklearn-medprep developers"
release = version = sklearn_medprep.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.extlinks",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 shipped in the package: math offline
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",  # the landing page's example and figure
    "numpydoc",
    "offline_xref",
]
autosummary_generate = True
autodoc_default_options = {}  # members: listed by the class template (_templates)
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_class_members_toctree = False
templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
suppress_warnings = ["config.cache"]
nitpicky = False

# --- the libraries we build on ---------------------------------------------
DOCS_URLS = {
    "python": "https://docs.python.org/3",
    "sklearn": "https://scikit-learn.org/stable",
    "numpy": "https://numpy.org/doc/stable",
    "pandas": "https://pandas.pydata.org/docs",
    "torchio": "https://docs.torchio.org",
    "radiomics": "https://pyradiomics.readthedocs.io/en/latest",
    "skorch": "https://skorch.readthedocs.io/en/stable",
    "joblib": "https://joblib.readthedocs.io/en/stable",
    "matplotlib": "https://matplotlib.org/stable",
}
extlinks = {
    "sklearn-doc": (DOCS_URLS["sklearn"] + "/%s", "%s"),
    "torchio-doc": (DOCS_URLS["torchio"] + "/%s", "%s"),
    "pyradiomics-doc": (DOCS_URLS["radiomics"] + "/%s", "%s"),
    "skorch-doc": (DOCS_URLS["skorch"] + "/%s", "%s"),
}
intersphinx_mapping = {}
for name, url in DOCS_URLS.items():
    shipped = HERE / "_inventories" / f"{name}.inv"
    if shipped.is_file():
        intersphinx_mapping[name] = (url, str(shipped))
    elif os.environ.get("SKLEARN_MEDPREP_DOCS_INTERSPHINX") == "1":
        intersphinx_mapping[name] = (url, None)
intersphinx_disabled_reftypes = ["*"]  # only explicit references use intersphinx

# --- the landing page's figure: its code runs at build time ----------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 80)]

# --- example gallery --------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": os.environ.get(
        "SKLEARN_MEDPREP_EXAMPLES_DIR", str(HERE.parent / "examples")
    ),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "show_memory": False,
    "remove_config_comments": True,
    "reference_url": {"sklearn_medprep": None},
    "backreferences_dir": None,
    "write_computation_times": False,
}

# --- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-medprep {version}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["theme-version"],
}
