"""The backend interface: one row in, named features out, a typed result.

A second extractor plugs in by registering a backend and naming it in
``RadiomicsExtractor(backend=...)``; the estimator's code, the checks and the
cache are shared, and its cache entries never mix with PyRadiomics'. A backend
with ``extract_batch`` gets all cache misses of a call at once.
"""

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.exceptions import (
    GeometryMismatchError,
    ImageReadError,
    SubjectTableError,
)
from sklearn_medprep.radiomics import (
    BatchRow,
    RadiomicsBackend,
    RowResult,
    get_backend,
    register_backend,
)
from sklearn_medprep.radiomics._pyradiomics import PyRadiomicsBackend
from sklearn_medprep.radiomics._settings import settings_key
from sklearn_medprep.radiomics._worker import extract_row, extract_rows
from sklearn_medprep.utils import count_extractions

LEGACY_PICKLE = (
    Path(__file__).resolve().parents[1] / "data"
    / f"fitted_0.1.0_pandas{pd.__version__.split('.')[0]}.pkl"
)

SETTINGS = {"featureClass": {"firstorder": ["Mean", "Maximum"]}}


def _roi_values(image, mask, label):
    roi = sitk.GetArrayViewFromImage(mask) == label
    voxels = sitk.GetArrayViewFromImage(image)[roi]
    return [("original_roi_Mean", float(voxels.astype(np.float64).mean())),
            ("original_roi_Voxels", float(roi.sum()))]


class RoiStatistics(RadiomicsBackend):
    """A toy second extractor: mean and voxel count of the ROI, with numpy."""

    name = "test-roi-statistics"

    def extract(self, image, mask, label, key, margin, verbose):
        return _roi_values(image, mask, label)


class BatchRoiStatistics(RadiomicsBackend):
    """The same values, many ROIs per call (as a GPU backend would); counts calls."""

    name = "test-roi-batch"
    calls = []  # rows per call, class-wide: the registered instance is shared

    def extract_batch(self, rows, key, verbose):
        type(self).calls.append(len(rows))
        return [RowResult.success(_roi_values(r.image, r.mask, r.label))
                for r in rows]


class Failing(RadiomicsBackend):
    """Typed errors: a geometry problem, a row's fault, or a crash."""

    name = "test-failing"
    title = "Failing"

    def extract(self, image, mask, label, key, margin, verbose):
        kind = json.loads(key)["params"]["kind"]
        if kind == "geometry":
            raise GeometryMismatchError("Image/Mask size mismatch, says the backend")
        if kind == "image":
            exc = SubjectTableError("the image is too dark")
            exc.column = "image"
            raise exc
        raise RuntimeError("out of memory")


register_backend(RoiStatistics())
register_backend(BatchRoiStatistics())
register_backend(Failing())


def RoiExtractor(**kwargs):  # noqa: N802 - the former subclass's name
    return RadiomicsExtractor(backend="test-roi-statistics", **kwargs)


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
    assert get_backend("pyradiomics") is get_backend()
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


def _reference(cohort, label=2):
    """Mean and voxel count of each row's ROI, with SimpleITK + numpy."""
    rows = []
    for row in cohort.index:
        image = sitk.GetArrayFromImage(sitk.ReadImage(cohort.loc[row, "image"]))
        roi = sitk.GetArrayFromImage(sitk.ReadImage(cohort.loc[row, "mask"])) == label
        rows.append([float(image[roi].astype(np.float64).mean()), float(roi.sum())])
    return pd.DataFrame(rows, index=cohort.index,
                        columns=["original_roi_Mean", "original_roi_Voxels"])


def test_batch_backend_gets_the_misses_in_one_call(cohort, tmp_path):
    calls = BatchRoiStatistics.calls
    calls.clear()
    memory = tmp_path / "cache"
    extractor = RadiomicsExtractor(label=2, backend="test-roi-batch", memory=memory,
                                   passthrough=[], n_jobs=2)
    out = extractor.fit_transform(cohort)
    assert calls == [len(cohort)]  # one call, every row, no joblib task
    pd.testing.assert_frame_equal(out, _reference(cohort), rtol=1e-12)
    assert count_extractions(memory) == len(cohort)
    # a hit per row: nothing goes to the backend
    pd.testing.assert_frame_equal(extractor.transform(cohort), out)
    assert calls == [len(cohort)] and count_extractions(memory) == len(cohort)
    # one new row: a batch of one, the others from the cache, row order kept
    other = cohort.copy()
    other.loc[other.index[1], "mask"] = cohort["mask"].iloc[0]
    again = extractor.transform(other)
    assert calls == [len(cohort), 1]
    expected = _reference(other)
    pd.testing.assert_frame_equal(again, expected, rtol=1e-12)
    # fit alone extracts its first row only, in a batch of one
    calls.clear()
    RadiomicsExtractor(label=2, backend="test-roi-batch", passthrough=[]).fit(cohort)
    assert calls == [1]


def test_batch_rows_that_fail_their_checks_never_reach_the_backend(cohort):
    calls = BatchRoiStatistics.calls
    calls.clear()
    key = get_backend("test-roi-batch").settings_key(None)
    rows = [(cohort["image"].iloc[0], cohort["mask"].iloc[0], 2),
            ("no-such.nii.gz", cohort["mask"].iloc[1], 2),
            (cohort["image"].iloc[2], cohort["mask"].iloc[2], 7)]
    first, missing, absent = extract_rows(rows, key, backend="test-roi-batch",
                                          image_column="t1", mask_column="seg")
    assert calls == [1]
    assert first.ok and dict(first.values) == _reference(cohort).iloc[0].to_dict()
    assert (missing.ok, missing.column, missing.kind) == (False, "t1", "read")
    assert (absent.ok, absent.column, absent.kind) == (False, "seg", "table")
    assert "label 7 is not present" in absent.message


class _PartlyFailing(RadiomicsBackend):
    name = "test-partly-failing"

    def extract_batch(self, rows, key, verbose):
        if len(rows) > 2:
            raise MemoryError("batch too large for the device")
        return [RowResult.failure("image", None, "saturated", "read"),
                RowResult.success([("original_roi_One", 1.0)])][:len(rows)]


def test_batch_failures_name_column_and_file(cohort):
    backend = _PartlyFailing()  # an unregistered instance works too
    key = backend.settings_key(None)
    rows = [(cohort["image"].iloc[i], cohort["mask"].iloc[i], 2) for i in range(2)]
    bad, good = extract_rows(rows, key, backend=backend, image_column="t1")
    assert (bad.ok, bad.column, bad.file, bad.message, bad.kind) == (
        False, "t1", cohort["image"].iloc[0], "saturated", "read")
    assert good.ok and good.values == [("original_roi_One", 1.0)]
    crashed = extract_rows(rows + rows[:1], key, backend=backend)
    assert [r.ok for r in crashed] == [False] * 3
    assert all(r.column == "mask" and r.kind == "table" and r.message.startswith(
        "test-partly-failing failed (MemoryError): batch too large") for r in crashed)


@pytest.mark.parametrize("kind", ["geometry", "image", "crash"])
def test_backend_errors_are_typed_not_matched_by_text(cohort, kind):
    key = json.dumps({"diagnostics": False, "params": {"kind": kind}})
    image, mask = cohort["image"].iloc[0], cohort["mask"].iloc[0]
    result = extract_row(image, mask, 2, key, backend="test-failing",
                         image_column="t1", mask_column="seg")
    assert not result.ok
    if kind == "geometry":
        assert (result.column, result.file, result.kind) == ("seg", mask, "geometry")
        assert result.message == "Image/Mask size mismatch, says the backend"
        assert type(result.exception(0)) is GeometryMismatchError
    elif kind == "image":
        assert (result.column, result.file, result.kind) == ("t1", image, "table")
        assert result.message == "the image is too dark"
    else:
        assert (result.column, result.kind) == ("seg", "table")
        assert result.message == (f"Failing failed (RuntimeError): out of memory; "
                                  f"image file {image!r}")


def test_features_of_backends_never_mix_in_one_cache(cohort, tmp_path):
    memory = tmp_path / "cache"
    outs = {}
    for backend in ("test-roi-statistics", "test-roi-batch", "pyradiomics"):
        outs[backend] = RadiomicsExtractor(
            label=2, settings=SETTINGS if backend == "pyradiomics" else None,
            backend=backend, memory=memory, passthrough=[]).fit_transform(cohort)
    # each backend extracted every row: no entry of another was served
    assert count_extractions(memory) == 3 * len(cohort)
    entries = list(Path(memory).glob("sklearn_medprep_cache/radiomics/*/*.json"))
    assert len(entries) == 3 * len(cohort)
    pd.testing.assert_frame_equal(outs["test-roi-batch"],
                                  outs["test-roi-statistics"])
    assert list(outs["pyradiomics"].columns) == ["original_firstorder_Mean",
                                                 "original_firstorder_Maximum"]
    # the same settings text and versions: only the backend's name differs
    a = get_backend("test-roi-statistics").cache_material("{}")
    b = get_backend("test-roi-batch").cache_material("{}")
    assert a[0] == b[0] and a[1] != b[1]


def test_backend_parameter_is_validated_and_clonable(cohort):
    with pytest.raises(ValueError, match="'backend' parameter .* registered backend"):
        RadiomicsExtractor(backend="gpu").fit(cohort)
    with pytest.raises(ValueError, match="has no name"):
        RadiomicsExtractor(backend=RadiomicsBackend()).fit(cohort)
    instance = RadiomicsExtractor(label=2, backend=BatchRoiStatistics(),
                                  passthrough=[])
    copy = clone(instance)
    assert isinstance(copy.backend, BatchRoiStatistics)
    pd.testing.assert_frame_equal(copy.fit_transform(cohort), _reference(cohort),
                                  rtol=1e-12)
    named = clone(RadiomicsExtractor(backend="test-roi-batch"))
    assert named.get_params()["backend"] == "test-roi-batch"


def test_grid_search_compares_backends(tmp_path):
    cohort = make_multisite_cohort(4, 2, shape=(12, 13, 11), path=tmp_path,
                                   random_state=1)
    y = cohort["y"].to_numpy()
    pipe = make_pipeline(
        RadiomicsExtractor(label=2, settings=SETTINGS, passthrough=[]),
        LogisticRegression(),
    )
    cv = KFold(2)
    backends = ["pyradiomics", "test-roi-statistics"]
    search = GridSearchCV(pipe, {"radiomicsextractor__backend": backends}, cv=cv)
    search.fit(cohort, y)
    assert list(search.cv_results_["param_radiomicsextractor__backend"]) == backends
    for backend, score in zip(backends, search.cv_results_["mean_test_score"]):
        single = clone(pipe).set_params(radiomicsextractor__backend=backend)
        assert score == pytest.approx(cross_val_score(single, cohort, y, cv=cv).mean())
    best = search.best_estimator_[0]
    assert best.backend == search.best_params_["radiomicsextractor__backend"]
    prefix = ("original_firstorder_" if best.backend == "pyradiomics"
              else "original_roi_")
    assert all(n.startswith(prefix) for n in best.get_feature_names_out())


def test_old_pickles_mean_pyradiomics_and_clone():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with open(LEGACY_PICKLE, "rb") as f:
            old = pickle.load(f)["estimators"]["radiomics"]
    assert old.backend == "pyradiomics"
    assert clone(old).get_params() == old.get_params()
    # a pickle whose subclass named its backend by the class attribute _backend
    state = RadiomicsExtractor(label=2).__getstate__()
    del state["backend"]
    state["_backend"] = "test-roi-statistics"
    restored = RadiomicsExtractor.__new__(RadiomicsExtractor)
    restored.__setstate__(state)
    assert restored.backend == "test-roi-statistics"
    assert "_backend" not in vars(restored)
    assert clone(restored).backend == "test-roi-statistics"


def test_default_backend_interface_checks_inputs(cohort):
    key = get_backend("test-roi-statistics").settings_key({"a": 1})
    assert json.loads(key) == {"diagnostics": False, "params": {"a": 1}}
    image = sitk.ReadImage(cohort["image"].iloc[0])
    mask = sitk.ReadImage(cohort["mask"].iloc[0])
    backend = get_backend("test-roi-statistics")
    checked, croppable = backend.check_inputs(image, mask, 2, key)
    assert croppable and checked.GetPixelID() == mask.GetPixelID()
    shifted = sitk.Image(mask)
    shifted.SetOrigin([o + 1.0 for o in mask.GetOrigin()])
    with pytest.raises(GeometryMismatchError, match="differ in geometry: origin"):
        backend.check_inputs(image, shifted, 2, key)
    with pytest.raises(SubjectTableError, match="label 9 is not present"):
        backend.check_inputs(image, mask, 9, key)
    assert BatchRow(image, mask, 2).plan is None
    with pytest.raises(TypeError, match="dict or None"):
        backend.validate_settings("params.yaml")
