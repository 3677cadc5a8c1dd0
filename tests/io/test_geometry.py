"""The one rule of "same geometry" (io._geometry): validate_table and the
radiomics worker accept exactly what SimpleITK and PyRadiomics accept."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics import imageoperations

from sklearn_medprep import validate_table
from sklearn_medprep.exceptions import GeometryMismatchError
from sklearn_medprep.io._geometry import (
    geometry_of,
    geometry_problem,
    geometry_tolerances,
)
from sklearn_medprep.radiomics._backend import geometry_problem as _geometry_problem


def _pair(spacing, *, origin_shift=0.0, spacing_shift=0.0, direction_shift=0.0):
    array = np.zeros((6, 7, 8), dtype=np.float32)
    array[2:4, 2:5, 3:6] = 1.0
    image = sitk.GetImageFromArray(array + 10.0)
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((spacing,) * 3)
    mask.SetSpacing((spacing + spacing_shift, spacing, spacing))
    mask.SetOrigin((0.0, 0.0, origin_shift))
    direction = np.eye(3)
    direction[0, 1] = direction_shift
    mask.SetDirection(direction.ravel().tolist())
    return image, mask


def _sitk_accepts(image, mask):
    """SimpleITK's own check (PyRadiomics' LabelStatisticsImageFilter)."""
    try:
        sitk.LabelStatisticsImageFilter().Execute(image, mask)
    except RuntimeError as exc:
        assert "same physical space" in str(exc)
        return False
    return True


def _pyradiomics_accepts(image, mask):
    try:
        imageoperations.checkMask(image, mask, label=1)
    except ValueError as exc:
        assert "geometry" in str(exc).lower() or "physical" in str(exc).lower()
        return False
    return True


def _validate_accepts(image, mask):
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["s1"])
    try:
        validate_table(table, image="image", mask="mask")
    except GeometryMismatchError as exc:
        assert exc.row == "s1" and exc.column == "mask"
        return False
    return True


def _worker_accepts(image, mask):
    # the tolerance as RadiomicsExtractor's worker resolves it (no setting)
    tolerance = sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance()
    return _geometry_problem(image, mask, tolerance) is None


@pytest.mark.parametrize("spacing", [1.0, 0.1])
@pytest.mark.parametrize("factor, accepted", [(0.9, True), (1.1, False)])
@pytest.mark.parametrize("what", ["origin_shift", "spacing_shift"])
def test_every_judge_agrees_at_the_coordinate_boundary(spacing, factor, accepted, what):
    coordinate, _ = geometry_tolerances()
    assert coordinate == 1e-6  # SimpleITK's default
    image, mask = _pair(spacing, **{what: factor * coordinate * spacing})
    assert _sitk_accepts(image, mask) is accepted
    assert _pyradiomics_accepts(image, mask) is accepted
    assert _validate_accepts(image, mask) is accepted
    assert _worker_accepts(image, mask) is accepted
    problem = geometry_problem(geometry_of(image), geometry_of(mask))
    assert (problem is None) is accepted
    if not accepted:
        assert problem.startswith(what.split("_")[0])
        # the message shows the difference, even below 6 decimals
        left, right = problem.split(" ", 1)[1].split(" vs ")
        assert left != right


@pytest.mark.parametrize("factor, accepted", [(0.9, True), (1.1, False)])
def test_every_judge_agrees_at_the_direction_boundary(factor, accepted):
    _, direction = geometry_tolerances()
    # absolute: the same for any spacing
    image, mask = _pair(0.1, direction_shift=factor * direction)
    assert _sitk_accepts(image, mask) is accepted
    assert _pyradiomics_accepts(image, mask) is accepted
    assert _validate_accepts(image, mask) is accepted
    assert _worker_accepts(image, mask) is accepted


def test_the_old_absolute_1e4_tolerance_is_gone():
    # 5e-5 passed validate_table (1e-4 absolute) and then failed in PyRadiomics
    image, mask = _pair(1.0, origin_shift=5e-5)
    assert not _sitk_accepts(image, mask)
    assert not _validate_accepts(image, mask)


def test_geometry_tolerance_as_pyradiomics_setting():
    image, mask = _pair(1.0, origin_shift=5e-5)
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["s1"])
    assert validate_table(table, mask="mask", geometry_tolerance=1e-4) is table
    assert _geometry_problem(image, mask, 1e-4) is None
    with pytest.raises(GeometryMismatchError, match="origin"):
        validate_table(table, mask="mask", geometry_tolerance=1e-5)
    assert _geometry_problem(image, mask, 1e-5).startswith("origin")
    # relative to the spacing of the image: 5e-5 is within 1e-4 of a 1 mm voxel,
    # not of a 0.1 mm one
    image, mask = _pair(0.1, origin_shift=5e-5)
    assert geometry_problem(geometry_of(image), geometry_of(mask), tolerance=1e-4)


def test_size_and_dimension_differences():
    a = ((4, 4, 4), (1.0,) * 3, (0.0,) * 3, tuple(np.eye(3).ravel()))
    b = ((4, 4, 5), (1.0,) * 3, (0.0,) * 3, tuple(np.eye(3).ravel()))
    c = ((4, 4), (1.0,) * 2, (0.0,) * 2, tuple(np.eye(2).ravel()))
    assert geometry_problem(a, b) == "size (4, 4, 4) vs (4, 4, 5)"
    assert geometry_problem(a, c) == "dimension 3 vs 2"
    assert geometry_problem(a, a) is None
