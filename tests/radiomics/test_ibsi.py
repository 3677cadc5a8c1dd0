"""IBSI preset: settings, IBSI definitions, and the IBSI-1 digital phantom table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.radiomics._discretisation import split_option
from sklearn_medprep.radiomics._ibsi import (
    IBSI_FEATURE_MAP,
    PYRADIOMICS_FEATURE_MAP,
    apply_ibsi_definitions,
    ibsi_settings,
)
from sklearn_medprep.radiomics._ibsi_families import FAMILY_FEATURES
from sklearn_medprep.radiomics._ibsi_phantom import phantom_table, phantom_table_rst
from sklearn_medprep.radiomics._settings import validate_settings

DOCS_TABLE = (
    Path(__file__).resolve().parents[2] / "docs" / "user_guide"
    / "ibsi_phantom_table.rst.inc"
)


def _case(seed=0, shape=(9, 12, 11)):
    rng = np.random.default_rng(seed)
    array = rng.integers(1, 7, shape).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.2, 0.8, 2.0))
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    roi = ((zz - 4) / 3.5) ** 2 + ((yy - 6) / 4.5) ** 2 + ((xx - 5) / 3.0) ** 2 < 1
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask, roi


def test_preset_is_valid_pyradiomics_settings():
    settings = validate_settings("ibsi")
    assert settings == ibsi_settings()
    assert settings["setting"]["binWidth"] == 1
    assert settings["imageType"] == {"Original": {}}
    assert ibsi_settings() is not ibsi_settings()  # a fresh copy each time


def test_ibsi_mode_applies_ibsi_definitions_hand_computed():
    image, mask, roi = _case()
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["s0"])
    out = RadiomicsExtractor(settings="ibsi").fit_transform(table).iloc[0]
    # PyRadiomics' binWidth 1: the same bins as noDiscretization on levels 1..6
    params, _ = split_option(ibsi_settings())
    ref = RadiomicsFeatureExtractor(params).execute(image, mask)
    ref = pd.Series({k: float(v) for k, v in ref.items()})
    # the renamed features, and nothing else renamed
    assert "original_firstorder_Kurtosis" not in out.index
    assert "original_shape_MinorAxisLength" not in out.index
    renamed = {
        "original_firstorder_Kurtosis": "original_firstorder_ExcessKurtosis",
        **{f"original_shape_{a}AxisLength": f"original_shape_{a}AxisLengthIBSI"
           for a in ("Major", "Minor", "Least")},
    }
    # PyRadiomics' features first, then the library's IBSI families
    assert list(out.index) == (
        [renamed.get(name, name) for name in ref.index] + list(FAMILY_FEATURES)
    )
    same = [name for name in ref.index if name not in renamed]
    np.testing.assert_allclose(out[same].to_numpy(float), ref[same].to_numpy(),
                               rtol=1e-12, atol=0)
    # excess kurtosis by hand: fourth standardised moment minus 3
    values = sitk.GetArrayFromImage(image)[roi].astype(float)
    centred = values - values.mean()
    excess = np.mean(centred**4) / np.mean(centred**2) ** 2 - 3
    np.testing.assert_allclose(out["original_firstorder_ExcessKurtosis"], excess,
                               rtol=1e-10)
    # axis lengths by hand: 4 sqrt(eigenvalues of the N - 1 covariance of the
    # physical voxel positions)
    positions = np.argwhere(roi) * np.array(image.GetSpacing())[::-1]
    eigen = np.sort(np.linalg.eigvalsh(np.cov(positions.T, ddof=1)))
    np.testing.assert_allclose(
        [out["original_shape_LeastAxisLengthIBSI"],
         out["original_shape_MinorAxisLengthIBSI"],
         out["original_shape_MajorAxisLengthIBSI"]],
        4 * np.sqrt(eigen), rtol=1e-10,
    )
    # elongation and flatness (ratios) are PyRadiomics' values
    np.testing.assert_allclose(
        out["original_shape_Elongation"],
        np.sqrt(eigen[1] / eigen[2]), rtol=1e-10,
    )


def test_ibsi_mode_and_pyradiomics_definitions_do_not_share_cache(tmp_path):
    image, mask, _ = _case(1)
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["s0"])
    ibsi = RadiomicsExtractor(settings="ibsi", memory=tmp_path).fit_transform(table)
    plain = RadiomicsExtractor(settings=ibsi_settings(),
                               memory=tmp_path).fit_transform(table)
    assert "original_firstorder_Kurtosis" in plain.columns
    assert "original_firstorder_ExcessKurtosis" in ibsi.columns
    np.testing.assert_allclose(
        ibsi["original_firstorder_ExcessKurtosis"],
        plain["original_firstorder_Kurtosis"] - 3, rtol=1e-12,
    )


def test_apply_ibsi_definitions_other_image_types_and_degenerate_roi():
    out = apply_ibsi_definitions(
        [("log-sigma-1-0-mm-3D_firstorder_Kurtosis", 4.0),
         ("wavelet-LLH_firstorder_Mean", 1.0),
         ("original_shape_LeastAxisLength", 0.0)], 1)
    assert out[0] == ("log-sigma-1-0-mm-3D_firstorder_ExcessKurtosis", 1.0)
    assert out[1] == ("wavelet-LLH_firstorder_Mean", 1.0)
    assert out[2][0] == "original_shape_LeastAxisLengthIBSI"
    assert np.isnan(out[2][1])  # one voxel: the N - 1 covariance is undefined


def test_feature_map_covers_distinct_ibsi_features():
    assert len(PYRADIOMICS_FEATURE_MAP) == 102
    # the library's families add the features PyRadiomics lacks, none twice
    assert len(IBSI_FEATURE_MAP) == 102 + len(FAMILY_FEATURES)
    assert len(set(IBSI_FEATURE_MAP.values())) == len(IBSI_FEATURE_MAP)
    assert all(name == "original_ibsi_" + ibsi
               for name, ibsi in FAMILY_FEATURES.items())


@pytest.mark.shared_data
def test_ibsi_phantom_within_tolerance_and_docs_table_is_current(shared_data):
    folder = shared_data / "ibsi"
    if not folder.is_dir():
        pytest.skip("../shared/data/ibsi is absent")
    table = phantom_table(folder)
    assert len(table) == len(IBSI_FEATURE_MAP)
    assert table["passed"].all(), table[~table["passed"]]
    # PyRadiomics computes its 102, not the library's families
    assert set(table.index[table["pyradiomics"].notna()]) == set(
        PYRADIOMICS_FEATURE_MAP)
    # PyRadiomics' own definitions miss exactly the three IBSI redefines
    missed = set(table.index[~table["pyradiomics_passed"]]) - set(FAMILY_FEATURES)
    assert missed <= {"original_firstorder_ExcessKurtosis",
                      "original_shape_MinorAxisLengthIBSI",
                      "original_shape_LeastAxisLengthIBSI",
                      "original_shape_MajorAxisLengthIBSI"}
    assert DOCS_TABLE.read_text() == phantom_table_rst(table), (
        "docs table out of date: run benchmarks/ibsi_phantom.py --write"
    )
