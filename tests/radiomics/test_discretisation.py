"""IBSI "no discretisation" (``noDiscretization``): grey levels are the intensities."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.radiomics._discretisation import split_option
from sklearn_medprep.radiomics._ibsi import IBSI_FEATURE_MAP, ibsi_settings

TEXTURE = {"glcm": [], "glrlm": [], "glszm": [], "gldm": [], "ngtdm": []}


def _settings(keep=True):
    settings = {
        "imageType": {"Original": {}},
        "featureClass": {"firstorder": [], **TEXTURE},
        "setting": {"binWidth": 1, "distances": [1], "symmetricalGLCM": True,
                    "weightingNorm": None, "gldm_a": 0},
    }
    if keep:
        settings["setting"]["noDiscretization"] = True
    return settings


def _case(seed=0, shape=(7, 9, 8), levels=6):
    rng = np.random.default_rng(seed)
    array = rng.integers(1, levels + 1, shape).astype(np.int16)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    roi = ((zz - 3) / 3.0) ** 2 + ((yy - 4) / 4.0) ** 2 + ((xx - 4) / 3.5) ** 2 < 1
    return array, roi


def _extract(arrays, roi, settings):
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    images = []
    for array in arrays:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.2, 0.8, 2.0))
        images.append(image)
        mask.CopyInformation(image)
    table = pd.DataFrame({"image": images, "mask": [mask] * len(images)})
    return RadiomicsExtractor(settings=settings).fit_transform(table)


def _features(table, row, family, names):
    return np.array([table.iloc[row][f"original_{family}_{n}"] for n in names])


# features whose IBSI definition uses only differences of grey levels, counts,
# or probabilities: the same on an image shifted by a constant
SHIFT_INVARIANT = {
    "glcm": ["Contrast", "Correlation", "DifferenceAverage", "DifferenceEntropy",
             "DifferenceVariance", "JointEnergy", "JointEntropy", "Imc1", "Imc2",
             "Idm", "Id", "InverseVariance", "MaximumProbability", "SumEntropy",
             "SumSquares", "ClusterTendency", "ClusterShade", "ClusterProminence"],
    "glrlm": ["ShortRunEmphasis", "LongRunEmphasis", "GrayLevelNonUniformity",
              "GrayLevelNonUniformityNormalized", "RunLengthNonUniformity",
              "RunLengthNonUniformityNormalized", "RunPercentage",
              "GrayLevelVariance", "RunVariance", "RunEntropy"],
    "glszm": ["SmallAreaEmphasis", "LargeAreaEmphasis", "GrayLevelNonUniformity",
              "GrayLevelNonUniformityNormalized", "SizeZoneNonUniformity",
              "SizeZoneNonUniformityNormalized", "ZonePercentage",
              "GrayLevelVariance", "ZoneVariance", "ZoneEntropy"],
    "gldm": ["SmallDependenceEmphasis", "LargeDependenceEmphasis",
             "GrayLevelNonUniformity", "DependenceNonUniformity",
             "DependenceNonUniformityNormalized", "GrayLevelVariance",
             "DependenceVariance", "DependenceEntropy"],
    "ngtdm": ["Coarseness", "Contrast", "Complexity", "Strength"],
}
# high grey level emphases: sum of p * (i + s)^2 * w, a quadratic in the shift s
# whose s^2 coefficient is the emphasis with i^2 left out (w only)
QUADRATIC = {
    "glrlm": {"HighGrayLevelRunEmphasis": None,
              "ShortRunHighGrayLevelEmphasis": "ShortRunEmphasis",
              "LongRunHighGrayLevelEmphasis": "LongRunEmphasis"},
    "glszm": {"HighGrayLevelZoneEmphasis": None,
              "SmallAreaHighGrayLevelEmphasis": "SmallAreaEmphasis",
              "LargeAreaHighGrayLevelEmphasis": "LargeAreaEmphasis"},
    "gldm": {"HighGrayLevelEmphasis": None,
             "SmallDependenceHighGrayLevelEmphasis": "SmallDependenceEmphasis",
             "LargeDependenceHighGrayLevelEmphasis": "LargeDependenceEmphasis"},
}


@pytest.mark.parametrize("keep", [True, False])
def test_shift_laws_exact(keep):
    """Shift by s: invariants keep their value, grey-level means move by s.

    On the old behaviour (PyRadiomics' binWidth 1, ``keep=False``) the bins are
    renumbered from the ROI minimum, so the shifted image gives the same values
    everywhere and the laws that move fail.
    """
    array, roi = _case()
    s = 3
    out = _extract([array, array + s, array + 2 * s], roi, _settings(keep))
    for family, names in SHIFT_INVARIANT.items():
        np.testing.assert_allclose(_features(out, 1, family, names),
                                   _features(out, 0, family, names), rtol=1e-9,
                                   atol=1e-12, err_msg=family)
    row = {key: out.iloc[i] for i, key in enumerate((0, s, 2 * s))}
    glcm = "original_glcm_"
    moved = {
        # IBSI 3.6.1 joint average, 3.6.8 sum average, 3.6.21 autocorrelation
        "JointAverage": (row[s][glcm + "JointAverage"],
                         row[0][glcm + "JointAverage"] + s),
        "SumAverage": (row[s][glcm + "SumAverage"],
                       row[0][glcm + "SumAverage"] + 2 * s),
        "Autocorrelation": (row[s][glcm + "Autocorrelation"],
                            row[0][glcm + "Autocorrelation"]
                            + 2 * s * row[0][glcm + "JointAverage"] + s**2),
    }
    for family, emphases in QUADRATIC.items():
        for name, weight in emphases.items():
            column = f"original_{family}_{name}"
            second = row[2 * s][column] - 2 * row[s][column] + row[0][column]
            factor = 1.0 if weight is None else row[0][f"original_{family}_{weight}"]
            moved[column] = (second, 2 * factor * s**2)
    got, want = zip(*moved.values())
    if keep:
        np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=str(list(moved)))
    else:  # the old behaviour breaks every one of these laws
        assert not np.isclose(got, want, rtol=1e-3).any()


def test_scale_laws_exact():
    """Intensities doubled: each feature scales with the power IBSI's formula has."""
    array, roi = _case(1, levels=5)
    out = _extract([array, 2 * array], roi, _settings())
    powers = {
        "glcm": {"JointAverage": 1, "SumAverage": 1, "Autocorrelation": 2,
                 "Contrast": 2, "DifferenceAverage": 1, "DifferenceVariance": 2,
                 "SumSquares": 2, "ClusterTendency": 2, "ClusterShade": 3,
                 "ClusterProminence": 4, "Correlation": 0, "JointEnergy": 0,
                 "JointEntropy": 0, "MaximumProbability": 0, "SumEntropy": 0,
                 "DifferenceEntropy": 0, "Imc1": 0, "Imc2": 0},
        "glrlm": {"HighGrayLevelRunEmphasis": 2, "LowGrayLevelRunEmphasis": -2,
                  "ShortRunHighGrayLevelEmphasis": 2,
                  "ShortRunLowGrayLevelEmphasis": -2,
                  "LongRunHighGrayLevelEmphasis": 2,
                  "LongRunLowGrayLevelEmphasis": -2, "GrayLevelVariance": 2,
                  "ShortRunEmphasis": 0, "RunEntropy": 0},
        "glszm": {"HighGrayLevelZoneEmphasis": 2, "LowGrayLevelZoneEmphasis": -2,
                  "SmallAreaHighGrayLevelEmphasis": 2,
                  "SmallAreaLowGrayLevelEmphasis": -2,
                  "LargeAreaHighGrayLevelEmphasis": 2,
                  "LargeAreaLowGrayLevelEmphasis": -2, "GrayLevelVariance": 2,
                  "ZoneEntropy": 0},
        "gldm": {"HighGrayLevelEmphasis": 2, "LowGrayLevelEmphasis": -2,
                 "SmallDependenceHighGrayLevelEmphasis": 2,
                 "SmallDependenceLowGrayLevelEmphasis": -2,
                 "LargeDependenceHighGrayLevelEmphasis": 2,
                 "LargeDependenceLowGrayLevelEmphasis": -2,
                 "GrayLevelVariance": 2, "DependenceEntropy": 0},
        # coarseness 1/sum p s; contrast (i-j)^2 times mean s; busyness
        # sum p s / sum |i p_i - j p_j|; complexity |i-j| p s; strength (i-j)^2 / s
        "ngtdm": {"Coarseness": -1, "Contrast": 3, "Busyness": 0,
                  "Complexity": 2, "Strength": 1},
    }
    for family, features in powers.items():
        names = list(features)
        factor = 2.0 ** np.array([features[n] for n in names])
        np.testing.assert_allclose(_features(out, 1, family, names),
                                   factor * _features(out, 0, family, names),
                                   rtol=1e-9, err_msg=f"{family} {names}")


def test_levels_from_one_are_pyradiomics_bin_width_one_bit_for_bit():
    array, roi = _case(2)
    array[roi.nonzero()[0][0], roi.nonzero()[1][0], roi.nonzero()[2][0]] = 1
    ours = _extract([array], roi, _settings()).iloc[0]
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.2, 0.8, 2.0))
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    ref = RadiomicsFeatureExtractor(_settings(keep=False)).execute(image, mask)
    ref = {k: float(v) for k, v in ref.items() if not k.startswith("diagnostics")}
    assert list(ours.index) == list(ref)
    assert ours.to_numpy(float).tolist() == list(ref.values())


def test_settings_rules():
    assert split_option(ibsi_settings())[1] is True
    bad = [
        ({"setting": {"noDiscretization": "yes"}}, "must be true or false"),
        ({"setting": {"noDiscretization": True, "binCount": 16}}, "binCount"),
        ({"setting": {"noDiscretization": True, "binWidth": 25}}, "binWidth 25"),
        ({"imageType": {"Original": {"binWidth": 5}},
          "setting": {"noDiscretization": True}}, "imageType/Original"),
        ({"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}},
          "setting": {"noDiscretization": True}}, r"\['LoG'\]"),
    ]
    table = pd.DataFrame({"image": ["a.nii.gz"], "mask": ["m.nii.gz"]})
    for settings, match in bad:
        with pytest.raises(ValueError, match=match):
            RadiomicsExtractor(settings=settings).fit(table)
    # false is the default: the same settings (and cache keys) as leaving it out
    settings = {"setting": {"binWidth": 1, "noDiscretization": False}}
    assert split_option(settings) == ({"setting": {"binWidth": 1}}, False)


@pytest.mark.parametrize("change, match", [
    (lambda a: a + 0.5, r"not integers \(e\.g\. \d\.5\)"),
    (lambda a: a - 1, "the smallest is 0"),
])
def test_unusable_intensities_refused_naming_the_file(tmp_path, change, match):
    array, roi = _case(3)
    image = sitk.GetImageFromArray(change(array.astype(np.float32)))
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "roi.nii.gz"))
    table = pd.DataFrame({"image": [str(tmp_path / "ct.nii.gz")],
                          "mask": [str(tmp_path / "roi.nii.gz")]}, index=["s7"])
    with pytest.raises(SubjectTableError, match=match) as info:
        RadiomicsExtractor(settings=_settings()).fit_transform(table)
    assert "ct.nii.gz" in str(info.value) and info.value.column == "image"


@pytest.mark.shared_data
@pytest.mark.parametrize("change", ["shift", "scale"])
def test_phantom_shifted_and_scaled_agree_with_mirp(shared_data, tmp_path, change):
    """Each of the 169 features of the "ibsi" preset within 1% of mirp's IBSI value."""
    pytest.importorskip("mirp")
    from mirp import extract_features

    folder = shared_data / "ibsi"
    if not folder.is_dir():
        pytest.skip("../shared/data/ibsi is absent")
    phantom = sitk.ReadImage(str(folder / "phantom.nii.gz"))
    array = sitk.GetArrayFromImage(phantom).astype(np.float64)
    array = array + 1 if change == "shift" else 2 * array
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(phantom)
    path = str(tmp_path / f"phantom_{change}.nii.gz")
    sitk.WriteImage(image, path)
    mask = str(folder / "mask.nii.gz")
    ref = extract_features(
        image=path, mask=mask, base_discretisation_method="none",
        # intensity-volume histogram of integer intensities (mirp's "generic"
        # modality spans its own range instead)
        ivh_discretisation_method="none", image_modality="CT",
        glcm_distance=1.0, glcm_spatial_method="3d_average",
        glrlm_spatial_method="3d_average", glszm_spatial_method="3d",
        ngldm_spatial_method="3d", ngtdm_spatial_method="3d",
        ngldm_difference_level=0.0, ngldm_distance=1.0,
    )[0].iloc[0]
    table = pd.DataFrame({"image": [path], "mask": [mask]})
    ours = RadiomicsExtractor(settings="ibsi").fit_transform(table).iloc[0]
    names = list(IBSI_FEATURE_MAP)
    want = np.array([ref[IBSI_FEATURE_MAP[n]] for n in names], dtype=float)
    close = np.isclose(ours[names].to_numpy(float), want, rtol=0.01, atol=1e-12)
    assert close.all(), [n for n, ok in zip(names, close) if not ok]
    # PyRadiomics' binWidth 1 (bins renumbered from the ROI minimum) misses
    # 24 (shifted) and 23 (scaled) of them, as docs/user_guide/ibsi.rst says
    plain, _ = split_option(ibsi_settings())
    old = RadiomicsExtractor(settings=plain).fit_transform(table).iloc[0]
    old_names = [n for n in names if n in old.index]
    close = np.isclose(old[old_names].to_numpy(float),
                       [ref[IBSI_FEATURE_MAP[n]] for n in old_names], rtol=0.01)
    assert (~close).sum() == {"shift": 24, "scale": 23}[change]
