"""A small synthetic DICOM cohort (pydicom-written), one per test that changes it."""

import pytest

pytest.importorskip("pydicom")


@pytest.fixture
def raw_cohort(tmp_path):
    """Two subjects, MR and CT each: ``(root, truth)``."""
    from sklearn_medprep.datasets import make_dicom_cohort

    root = tmp_path / "raw"
    truth = make_dicom_cohort(root, n_subjects=2, shape=(5, 6, 4))
    return root, truth
