"""The documentation builds with zero warnings: API pages, gallery, offline math."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = DOCS.parent / "examples"

MAIN_API_PAGES = [
    "sklearn_medprep.RadiomicsExtractor",
    "sklearn_medprep.ComBatHarmonizer",
    "sklearn_medprep.VoxelComBatHarmonizer",
    "sklearn_medprep.TorchIOPreprocessor",
    "sklearn_medprep.TorchIOAugmenter",
    "sklearn_medprep.ImageTensorizer",
    "sklearn_medprep.TorchIOCollate",
    "sklearn_medprep.expand_labels",
    "sklearn_medprep.expand_lesions",
    "sklearn_medprep.model_selection.SiteStratifiedKFold",
    "sklearn_medprep.model_selection.LeaveOneSiteOut",
    "sklearn_medprep.datasets.make_multisite_cohort",
    "sklearn_medprep.utils.estimator_checks.subject_table_checks",
    "sklearn_medprep.exceptions.SubjectTableError",
    "sklearn_medprep.cohort_report",
    "sklearn_medprep.CohortReport",
    "sklearn_medprep.plot_harmonization",
    "sklearn_medprep.plot_site_features",
    "sklearn_medprep.plot_site_effects",
    "sklearn_medprep.plot_pca_by_site",
    "sklearn_medprep.plot_subjects",
]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    # autosummary writes generated/ next to the sources: build a copy
    source = tmp_path / "docs"
    shutil.copytree(
        DOCS,
        source,
        ignore=shutil.ignore_patterns("_build", "generated", "auto_examples"),
    )
    # index.rst links the contributor guide beside the docs folder
    shutil.copy(DOCS.parent / "CONTRIBUTING.md", tmp_path / "CONTRIBUTING.md")
    out = tmp_path / "html"
    env = {
        **os.environ,
        # the gallery runs the examples at their small sizes, offline
        "SKLEARN_MEDPREP_EXAMPLE_SMALL": "1",
        "SKLEARN_MEDPREP_EXAMPLE_OUT": str(tmp_path / "example_out"),
        "SKLEARN_MEDPREP_EXAMPLES_DIR": str(EXAMPLES),
        "SKLEARN_MEDPREP_DOCS_INTERSPHINX": "0",
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            str(source),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    for page in [
        "index",
        "api",
        "install",
        "getting_started",
        "user_guide/index",
        "user_guide/cohort",
        "auto_examples/index",
    ]:
        assert (out / f"{page}.html").is_file(), page
    for name in MAIN_API_PAGES:
        page = out / "generated" / f"{name}.html"
        assert page.is_file(), name
        assert name.rsplit(".", 1)[-1] in page.read_text(encoding="utf-8")
    # methods are documented on the estimator pages, not only listed
    combat = (out / "generated" / "sklearn_medprep.ComBatHarmonizer.html").read_text(
        encoding="utf-8"
    )
    for method in ("fit", "transform", "get_feature_names_out"):
        assert f'id="sklearn_medprep.ComBatHarmonizer.{method}"' in combat
    # the gallery: one page per example, each with at least one figure
    examples = sorted(p.stem for p in EXAMPLES.glob("plot_*.py"))
    assert examples
    gallery = (out / "auto_examples" / "index.html").read_text(encoding="utf-8")
    for stem in examples:
        page = out / "auto_examples" / f"{stem}.html"
        assert page.is_file(), stem
        assert f"{stem}.html" in gallery, stem
        images = re.findall(
            rf'<img[^>]+src="\.\./_images/(sphx_glr_{stem}_\d+\.png)"',
            page.read_text(encoding="utf-8"),
        )
        assert images, f"no figure on the gallery page of {stem}"
        for image in images:
            assert (out / "_images" / image).stat().st_size > 1000, image
    # math renders offline: MathJax is shipped with the site, not a CDN
    harmonization = (out / "user_guide" / "harmonization.html").read_text(
        encoding="utf-8"
    )
    assert "_static/mathjax/tex-chtml.js" in harmonization
    assert "cdn.jsdelivr.net" not in harmonization
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    # the theme people know, and links to the libraries we build on
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "pydata-sphinx-theme" in index or "bd-header" in index
    assert (
        "https://scikit-learn.org/stable/modules/generated/"
        "sklearn.pipeline.Pipeline.html" in index
    )
    started = (out / "getting_started.html").read_text(encoding="utf-8")
    assert "https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.html" in (
        started
    )
    install = (out / "install.html").read_text(encoding="utf-8")
    for url in ("https://docs.torchio.org/", "https://pyradiomics.readthedocs.io/"):
        assert url in install, url
