"""Run every gallery example as a program, small and offline, and check its output."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Lines each example must print and files it must write under its OUT folder.
EXPECTED = {
    "plot_cohort_audit.py": {
        "lines": [
            "The label is confounded with the site",
            "Nothing found at the documented thresholds",
            "figure saved",
        ],
        "files": ["cohort_audit.png"],
    },
    "plot_dicom_to_table.py": {
        "lines": [
            "series found: 6",
            "original ids left: 0",
            "manifest verified: True",
            "after a change: changed [",
            "figure saved",
        ],
        "files": ["dicom_to_table.png", "nifti/manifest-sha256.csv"],
    },
    "plot_harmonize_feature_table.py": {
        "lines": ["site predictability", "mean R^2 of age", "figure saved"],
        "files": ["harmonize_feature_table.png"],
    },
    "plot_leakage_audit.py": {
        "lines": [
            "Nothing found at the documented thresholds",
            "[warning] target_proxy: Column 'age_months' reaches the final estimator",
            "[warning] target_proxy: A step refused column 'age_months'",
            "[warning] subject_overlap: Subjects (from column 'subject')",
            "split by subject: no finding",
            "[warning] transductive: Step 'functiontransformer' is transductive",
            "[warning] whole_cohort_preparation: Per-site means of the 8 features",
            "[warning] site_shortcut: The site alone reaches balanced accuracy",
        ],
        "files": [],
    },
    "plot_leave_one_site_out.py": {
        "lines": [
            "was not seen in fit",
            "warnings, e.g.",
            "mean over held-out sites, estimate",
        ],
        "files": [],
    },
    "plot_patch_classification.py": {
        "lines": [
            "patches 8^3 (27 per volume on the grid)",
            "held-out accuracy",
            "reloaded predict_proba identical: True",
        ],
        "files": ["patch_classifier.joblib"],
    },
    "plot_radiomics_pipeline.py": {
        "lines": ["extractions: 24 for 24 images", "(no new extraction)"],
        "files": ["radiomics_cache/sklearn_medprep_radiomics_extractions.log"],
    },
    "plot_radiomics_dask.py": {
        "lines": [
            "features equal the serial run: True",
            "(all on the workers: True)",
            "cluster closed: closed",
        ],
        "files": ["dask_cache/sklearn_medprep_radiomics_extractions.log"],
    },
    "plot_skorch_cnn_augmentation.py": {
        "lines": [
            "best lr:",
            "predict_proba twice identical: True; batches augmented meanwhile: 0",
            "reloaded predict_proba identical: True",
        ],
        "files": ["cnn_pipeline.joblib"],
    },
    "plot_visual_qc.py": {
        "lines": [
            "grey window shared by all 8 subjects: percentiles 1 to 99",
            "one window per stage, shared by the 4 subjects: True",
            "same random_state, same draws: True",
        ],
        "files": [
            "visual_qc_subjects.png",
            "visual_qc_preprocessing.png",
            "visual_qc_augmentations.png",
        ],
    },
    "plot_voxel_harmonization.py": {
        "lines": [
            "median site F before:",
            "correlation of the age-slope map with the simulated one:",
            "site accuracy from voxels, harmonized:",
        ],
        "files": [
            "voxel_site_fmaps.png",
            "site_fmap_after.nii.gz",
            "harmonized/sub-00000.nii.gz",
        ],
    },
    "plot_xray_augmentation_preview.py": {
        "lines": ["fit_resample: 6 rows -> 24 rows", "same random_state, same"],
        "files": ["xray_augmentation_preview.png"],
    },
}

#: Examples that take more than a few seconds in small mode.
SLOW = {
    "plot_patch_classification.py",
    "plot_radiomics_dask.py",
    "plot_skorch_cnn_augmentation.py",
}


def _params():
    params = []
    for path in sorted(EXAMPLES.glob("*.py")):
        marks = [pytest.mark.slow] if path.name in SLOW else []
        params.append(pytest.param(path, marks=marks, id=path.stem))
    return params


def test_every_example_has_expectations():
    names = {path.name for path in EXAMPLES.glob("plot_*.py")}
    assert names == set(EXPECTED), names ^ set(EXPECTED)
    assert (EXAMPLES / "README.txt").is_file()


@pytest.mark.parametrize("path", _params())
def test_example_runs(path, tmp_path):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "SKLEARN_MEDPREP_EXAMPLE_SMALL": "1",
        "SKLEARN_MEDPREP_EXAMPLE_OUT": str(out),
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    # the library's own warnings are errors in tests: examples catch what they show
    assert "MedprepWarning" not in result.stderr, result.stderr[-5000:]
    expected = EXPECTED.get(path.name, {"lines": [], "files": []})
    for line in expected["lines"]:
        assert line in result.stdout, (line, result.stdout)
    for name in expected["files"]:
        assert (out / name).is_file(), (name, sorted(p.name for p in out.rglob("*")))
    # nothing is written into the repository
    assert not list(EXAMPLES.glob("*.png")) and not list(EXAMPLES.glob("*.joblib"))
