"""IBSI-2 phase 2 through RadiomicsExtractor's "IBSI2" image type: the filtered
CT phantom's intensity statistics against IBSI-2's consensus values (2D
configurations here; benchmarks/ibsi2_phantom_phase2.py runs all 18 and writes
the docs table, whose 2D rows are checked against this run).
"""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sklearn_medprep.filters._dispatch import FILTER_FAMILIES
from sklearn_medprep.radiomics._ibsi2_phantom import (
    STATISTICS,
    _own_statistics,
    ibsi2_phase2_rst,
    ibsi2_phase2_table,
    resample_mirp,
)

DOCS_TABLE = (Path(__file__).resolve().parents[2] / "docs" / "user_guide"
              / "ibsi2_phase2_table.rst.inc")
# 2D configurations: the image as acquired (no resampling), fast
SUBSET = ["1.A", "2.A", "3.A", "4.A", "5.A", "6.A", "7.A", "8.A", "9.A"]


@pytest.mark.shared_data
def test_phase2_2d_within_tolerance_and_docs_rows_current(shared_data):
    folder = shared_data / "ibsi2"
    if not folder.is_dir():
        pytest.skip("../shared/data/ibsi2 is absent")
    table = ibsi2_phase2_table(folder, SUBSET)
    covered = table[table["covered"]]
    # every configuration whose family filter_image has is covered
    assert {"1.A", "2.A", "3.A", "4.A"} <= set(covered["configuration"])
    for config_id, family in table.groupby("configuration")["family"].first().items():
        assert (config_id in set(covered["configuration"])) == (
            family == "none" or family in FILTER_FAMILIES), config_id
    assert len(covered) == 18 * covered["configuration"].nunique()
    assert covered["value"].notna().all()
    tested = covered[covered["passed"].notna()]
    misses = tested[~tested["passed"].astype(bool)]
    assert misses.empty, misses
    # the committed docs table holds this run's rows (written by the benchmark)
    text = DOCS_TABLE.read_text()
    fresh = ibsi2_phase2_rst(table).split(".. list-table::")[1]
    for block in fresh.split("   * - ")[6:]:  # one block per configuration
        assert "   * - " + block in text, (
            "docs table out of date: run benchmarks/ibsi2_phantom_phase2.py --write",
            block)


def test_statistics_map_is_the_18_ibsi_features():
    assert len(STATISTICS) == 18
    assert all(tag.startswith("stat_") for tag in STATISTICS)


def test_own_statistics_against_their_definitions():
    values = np.array([1.0, 2.0, 2.0, 4.0, 7.0, 10.0])
    own = _own_statistics(values)
    median = 3.0  # (2 + 4) / 2
    assert own["stat_medad"] == pytest.approx(np.mean(np.abs(values - median)))
    q1, q3 = 2.0, 6.25  # numpy's linear percentiles of these six values
    assert own["stat_qcod"] == pytest.approx((q3 - q1) / (q3 + q1))


def test_resample_keeps_grid_centres_and_rounds():
    # a linear ramp: cubic-spline samples of it are the ramp at the new
    # positions (away from the border), rounded to integers
    shape = (12, 30, 32)  # (z, y, x)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(float)
    image = sitk.GetImageFromArray(10.0 * xx + 3.0 * yy + 7.0 * zz)
    image.SetSpacing((0.75, 0.75, 3.0))
    mask = sitk.GetImageFromArray((xx >= 5).astype(np.uint8))
    mask.CopyInformation(image)
    new_image, new_mask = resample_mirp(image, mask, 1.0)
    # ceil(size * spacing / 1): x 24, y 23, z 36
    assert new_image.GetSize() == (24, 23, 36)
    assert new_image.GetSpacing() == (1.0, 1.0, 1.0)
    out = sitk.GetArrayFromImage(new_image)
    np.testing.assert_array_equal(out, np.round(out))
    # centres aligned: new index i sits at old (i - (n_new - 1) / 2) * step
    # + (n_old - 1) / 2
    x = (np.arange(24) - 11.5) / 0.75 + 15.5
    y = (np.arange(23) - 11.0) / 0.75 + 14.5
    z = (np.arange(36) - 17.5) / 3.0 + 5.5
    ramp = 10.0 * x[None, None, :] + 3.0 * y[None, :, None] + 7.0 * z[:, None, None]
    inner = (slice(15, -15), slice(5, -5), slice(5, -5))  # >= 4 old voxels in
    # within rounding (a grid off by a tenth of an old voxel is off by >= 0.7)
    assert np.abs(out[inner] - ramp[inner]).max() <= 0.55
    # the mask by linear interpolation, kept at >= 0.5: x >= 4.5 in old voxels
    kept = sitk.GetArrayFromImage(new_mask)[5, 5]
    np.testing.assert_array_equal(kept, (x >= 4.5 - 1e-9).astype(np.uint8))
