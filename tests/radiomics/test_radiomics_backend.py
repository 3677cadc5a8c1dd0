"""The backend interface: one row in, named features out, a typed result.

A second extractor plugs in by registering a backend and naming it on a
subclass of the estimator; the estimator's code, the checks and the cache are
shared, and its cache entries never mix with PyRadiomics'.
"""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.exceptions import ImageReadError, SubjectTableError
from sklearn_medprep.radiomics._backend import (
    PyRadiomicsBackend,
    RadiomicsBackend,
    RowResult,
    get_backend,
    register_backend,
)
from sklearn_medprep.radiomics._settings import settings_key
from sklearn_medprep.radiomics._worker import extract_row
from sklearn_medprep.utils import count_extractions

SETTINGS = {"featureClass": {"firstorder": ["Mean", "Maximum"]}}


class RoiStatistics(RadiomicsBackend):
    """A toy second extractor: mean and voxel count of the ROI, with numpy."""

    name = "test-roi-statistics"

    def extract(self, image, mask, label, key, margin, verbose):
        roi = sitk.GetArrayViewFromImage(mask) == label
        voxels = sitk.GetArrayViewFromImage(image)[roi]
        return [("original_roi_Mean", float(voxels.astype(np.float64).mean())),
                ("original_roi_Voxels", float(roi.sum()))]


register_backend(RoiStatistics())


class RoiExtractor(RadiomicsExtractor):
    _backend = "test-roi-statistics"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backend_cohort")
    return make_multisite_cohort(3, 1, shape=(12, 13, 11), path=folder,
                                 random_state=0)


def test_result_records_are_typed(cohort):
    key = settings_key(SETTINGS)
    image, mask = cohort["image"].iloc[0], cohort["mask"].iloc[0]
    ok = extract_row(image, mask, 2, key)
    assert isinstance(ok, RowResult) and ok.ok and ok.notes == ()
    assert [n for n, _ in ok.values] == ["original_firstorder_Mean",
                                        "original_firstorder_Maximum"]
    assert all(type(v) is float for _, v in ok.values)
    bad = extract_row(image, mask, 7, key, mask_column="seg")
    assert not bad.ok and bad.values == []
    assert (bad.column, bad.file, bad.kind) == ("seg", mask, "table")
    assert "label 7 is not present" in bad.message
    error = bad.exception("sub-9")
    assert type(error) is SubjectTableError
    assert (error.row, error.column, error.file) == ("sub-9", "seg", mask)
    missing = extract_row("no-such.nii.gz", mask, 2, key, image_column="t1")
    assert not missing.ok and missing.column == "t1" and missing.kind == "read"
    assert isinstance(missing.exception(0), ImageReadError)


def test_backend_registry():
    assert isinstance(get_backend(), PyRadiomicsBackend)
    assert get_backend("test-roi-statistics").name == "test-roi-statistics"
    with pytest.raises(ValueError, match="unknown radiomics backend 'gpu'"):
        get_backend("gpu")
    with pytest.raises(TypeError, match="named RadiomicsBackend"):
        register_backend(object())


def test_a_second_backend_plugs_in_without_touching_the_estimator(cohort, tmp_path):
    memory = tmp_path / "cache"
    out = RoiExtractor(label=2, settings=SETTINGS, memory=memory,
                       passthrough=[]).fit_transform(cohort)
    assert list(out.columns) == ["original_roi_Mean", "original_roi_Voxels"]
    for row in cohort.index:  # reference computed here, with SimpleITK + numpy
        image = sitk.GetArrayFromImage(sitk.ReadImage(cohort.loc[row, "image"]))
        roi = sitk.GetArrayFromImage(sitk.ReadImage(cohort.loc[row, "mask"])) == 2
        assert out.loc[row, "original_roi_Mean"] == pytest.approx(
            float(image[roi].astype(np.float64).mean()), rel=1e-12)
        assert out.loc[row, "original_roi_Voxels"] == roi.sum()
    # the same rows, cached under the other backend's key: PyRadiomics extracts
    assert count_extractions(memory) == len(cohort)
    plain = RadiomicsExtractor(label=2, settings=SETTINGS, memory=memory,
                               passthrough=[]).fit_transform(cohort)
    assert count_extractions(memory) == 2 * len(cohort)
    assert list(plain.columns) == ["original_firstorder_Mean",
                                   "original_firstorder_Maximum"]
    np.testing.assert_allclose(plain["original_firstorder_Mean"],
                               out["original_roi_Mean"], rtol=1e-9)
    again = RoiExtractor(label=2, settings=SETTINGS, memory=memory,
                         passthrough=[]).fit_transform(cohort)
    pd.testing.assert_frame_equal(again, out)
    assert count_extractions(memory) == 2 * len(cohort)  # served from the cache


def test_the_shared_checks_run_before_any_backend(cohort):
    table = cohort.copy()
    table.loc[table.index[1], "mask"] = "missing_mask.nii.gz"
    out = RoiExtractor(label=2, settings=SETTINGS, on_error="nan",
                       passthrough=[])
    with pytest.warns(Warning, match="1 of 3 rows failed"):
        features = out.fit_transform(table)
    assert features.iloc[1].isna().all() and features.iloc[[0, 2]].notna().all().all()
    errors = out.extraction_errors_
    assert errors[["row", "column"]].values.tolist() == [[table.index[1], "mask"]]
