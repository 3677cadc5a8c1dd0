"""The documentation builds with zero warnings, API pages included."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

MAIN_API_PAGES = [
    "sklearn_medprep.RadiomicsExtractor",
    "sklearn_medprep.ComBatHarmonizer",
    "sklearn_medprep.VoxelComBatHarmonizer",
    "sklearn_medprep.TorchIOPreprocessor",
    "sklearn_medprep.TorchIOAugmenter",
    "sklearn_medprep.ImageTensorizer",
    "sklearn_medprep.TorchIOCollate",
    "sklearn_medprep.expand_labels",
    "sklearn_medprep.model_selection.SiteStratifiedKFold",
    "sklearn_medprep.model_selection.LeaveOneSiteOut",
    "sklearn_medprep.datasets.make_multisite_cohort",
    "sklearn_medprep.utils.estimator_checks.subject_table_checks",
    "sklearn_medprep.exceptions.SubjectTableError",
]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    # autosummary writes generated/ next to the sources: build a copy
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "generated"))
    out = tmp_path / "html"
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
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    for page in ["index", "api", "user_guide/index"]:
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
