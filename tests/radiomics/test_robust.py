"""RobustFeatureSelector: ICC(3,1), perturbation-based selection, no leakage."""

import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import make_pipeline

import sklearn_medprep.radiomics._robust as robust
from sklearn_medprep import RadiomicsExtractor, RobustFeatureSelector, icc_3_1
from sklearn_medprep.exceptions import MedprepWarning, SubjectTableError
from sklearn_medprep.utils import count_extractions


# ------------------------------------------------------------------- ICC(3,1)
def _icc_by_hand(y):
    """Two-way ANOVA without replication, term by term (Shrout & Fleiss 1979)."""
    n, k = len(y), len(y[0])
    grand = sum(sum(row) for row in y) / (n * k)
    row_means = [sum(row) / k for row in y]
    col_means = [sum(y[i][j] for i in range(n)) / n for j in range(k)]
    ss_total = sum((y[i][j] - grand) ** 2 for i in range(n) for j in range(k))
    ss_rows = k * sum((m - grand) ** 2 for m in row_means)
    ss_cols = n * sum((m - grand) ** 2 for m in col_means)
    ss_error = ss_total - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    return (bms - ems) / (bms + (k - 1) * ems)


SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8],
                 [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def test_icc_3_1_matches_hand_computation_and_published_value():
    # Shrout & Fleiss (1979), Table 4: ICC(3,1) = 0.71 (BMS 11.24, EMS 1.02)
    assert icc_3_1(SHROUT_FLEISS) == pytest.approx(_icc_by_hand(SHROUT_FLEISS),
                                                   rel=1e-12)
    assert icc_3_1(SHROUT_FLEISS) == pytest.approx(10.2167 / 14.2917, abs=1e-4)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(7, 3, 5))
    expected = [_icc_by_hand(data[:, :, f].tolist()) for f in range(5)]
    np.testing.assert_allclose(icc_3_1(data), expected, rtol=1e-12)


def test_icc_3_1_consistency_properties():
    y = np.array(SHROUT_FLEISS, dtype=float)
    shifted = y + np.array([0.0, 10.0, -3.0, 100.0])  # systematic per condition
    assert icc_3_1(shifted) == pytest.approx(icc_3_1(y), rel=1e-12)
    perfect = np.repeat(np.arange(5.0)[:, None], 3, axis=1)
    assert icc_3_1(perfect) == pytest.approx(1.0)
    assert np.isnan(icc_3_1(np.ones((4, 3))))  # constant feature
    assert np.isnan(icc_3_1(np.where(perfect == 2, np.nan, perfect)))
    with pytest.raises(ValueError, match="at least 2 subjects"):
        icc_3_1(np.ones((1, 3)))


# -------------------------------------------------------- a designed cohort
def _cohort(n=12, seed=0, size=30):
    """Spheres of known, clearly different radius and mean intensity: volume and
    mean intensity vary between subjects far more than any perturbation moves
    them; texture at bin width 1 on noise SD 10 is a map of the noise.
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:size, : size + 2, : size + 1]
    images, masks = [], []
    for i in range(n):
        radius = 5.0 + 5.0 * i / (n - 1)
        mean = 100.0 + 200.0 * rng.permutation(n)[i] / (n - 1)
        roi = ((zz - size / 2) ** 2 + (yy - size / 2) ** 2
               + (xx - size / 2) ** 2) < radius**2
        array = np.where(roi, mean, 20.0) + rng.normal(0, 10, roi.shape)
        image = sitk.GetImageFromArray(array.astype(np.float32))
        image.SetSpacing((1.0, 1.0, 1.0))
        mask = sitk.GetImageFromArray(roi.astype(np.uint8))
        mask.CopyInformation(image)
        images.append(image)
        masks.append(mask)
    return pd.DataFrame({"image": images, "mask": masks},
                        index=[f"sub-{i:02d}" for i in range(n)])


STABLE = ["original_shape_VoxelVolume", "original_shape_MeshVolume",
          "original_firstorder_Mean", "original_firstorder_Median"]
FINE_TEXTURE = ["original_glszm_ZonePercentage", "original_glszm_SmallAreaEmphasis",
                "original_glszm_SizeZoneNonUniformityNormalized",
                "original_glrlm_RunPercentage", "original_glrlm_ShortRunEmphasis"]


def _extractor(**kwargs):
    return RadiomicsExtractor(
        settings={
            "featureClass": {
                "shape": ["VoxelVolume", "MeshVolume"],
                "firstorder": ["Mean", "Median"],
                "glszm": ["ZonePercentage", "SmallAreaEmphasis",
                          "SizeZoneNonUniformityNormalized"],
                "glrlm": ["RunPercentage", "ShortRunEmphasis"],
            },
            "setting": {"binWidth": 1},  # far too fine for noise SD 10
        },
        passthrough=[],
        **kwargs,
    )


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


@pytest.fixture(scope="module")
def fitted(cohort):
    return RobustFeatureSelector(_extractor(), n_perturbations=3,
                                 random_state=0).fit(cohort)


def test_drops_fine_bin_texture_keeps_stable_features(fitted, cohort):
    icc = fitted.icc_
    assert list(icc.index) == STABLE + FINE_TEXTURE
    assert (icc[STABLE] >= 0.8).all(), icc
    assert (icc[FINE_TEXTURE] < 0.5).all(), icc
    assert fitted.selected_features_ == STABLE
    np.testing.assert_array_equal(fitted.support_, icc.index.isin(STABLE))
    out = fitted.transform(cohort)
    assert list(out.columns) == STABLE
    assert list(fitted.get_feature_names_out()) == STABLE
    assert out.index.equals(cohort.index)
    # the kept values are the unperturbed extraction
    reference = _extractor().fit_transform(cohort)
    pd.testing.assert_frame_equal(out, reference[STABLE])


def test_reproducible_and_caller_rng_untouched(fitted, cohort):
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002
    again = RobustFeatureSelector(_extractor(), n_perturbations=3,
                                  random_state=0).fit(cohort)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    pd.testing.assert_series_equal(again.icc_, fitted.icc_)
    other = RobustFeatureSelector(_extractor(), n_perturbations=3,
                                  random_state=1).fit(cohort)
    assert not np.allclose(other.icc_, fitted.icc_)


def test_perturbation_depends_on_row_not_position():
    seeds = {robust._row_seed(0, "sub-03", j) for j in range(3)}
    assert len(seeds) == 3
    assert robust._row_seed(0, "sub-03", 1) == robust._row_seed(0, "sub-03", 1)
    assert robust._row_seed(0, "sub-03", 1) != robust._row_seed(1, "sub-03", 1)


def _few_subjects(func, *args):
    """Call ``func``, allowing (only) the warning on fitting fewer than 10 subjects."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*from fewer than 10 subjects", category=MedprepWarning
        )
        return func(*args)


def test_cached_refit_extracts_nothing_new(cohort, tmp_path):
    small = cohort.iloc[:4]
    selector = RobustFeatureSelector(_extractor(memory=tmp_path), n_perturbations=2,
                                     random_state=0)
    _few_subjects(selector.fit, small)
    first = count_extractions(tmp_path)
    assert first == 4 * 3
    refit = _few_subjects(
        RobustFeatureSelector(_extractor(memory=tmp_path), n_perturbations=2,
                              random_state=0).fit, small.iloc[::-1])
    assert count_extractions(tmp_path) == first
    pd.testing.assert_series_equal(refit.icc_, selector.icc_)


def test_cross_validate_fits_on_training_rows_only(cohort, monkeypatch):
    seen = []
    perturb = robust._perturb_row

    def spy(*args):
        seen.append(args[5])  # the row's index label
        return perturb(*args)

    monkeypatch.setattr(robust, "_perturb_row", spy)
    y = np.arange(len(cohort)) % 2
    pipe = make_pipeline(
        RobustFeatureSelector(_extractor(), n_perturbations=1, random_state=0),
        LogisticRegression(),
    )
    cv = KFold(3, shuffle=True, random_state=0)
    result = _few_subjects(  # 8 training rows per fold
        lambda: cross_validate(pipe, cohort, y, cv=cv, return_indices=True,
                               return_estimator=True))
    per_fold = len(seen) // 3
    for fold, train in enumerate(result["indices"]["train"]):
        rows = seen[fold * per_fold:(fold + 1) * per_fold]
        assert sorted(rows) == sorted(cohort.index[train])
        selector = result["estimator"][fold][0]
        assert selector.n_features_in_ == 2


def test_error_under_perturbation_names_it(cohort, monkeypatch):
    def empty_mask(image_cell, mask_cell, *args):
        mask = sitk.Image(mask_cell.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(mask_cell)
        return image_cell, mask

    monkeypatch.setattr(robust, "_perturb_row", empty_mask)
    with pytest.raises(SubjectTableError, match="row .sub-00.*under perturbation 0 "):
        RobustFeatureSelector(_extractor(), n_perturbations=1).fit(cohort.iloc[:3])


def test_needs_two_rows(cohort):
    with pytest.raises(SubjectTableError, match="at least 2 training rows"):
        RobustFeatureSelector(_extractor(), n_perturbations=1).fit(cohort.iloc[:1])


def test_perturbed_mask_changes_contour_and_keeps_geometry(cohort):
    image, mask = cohort["image"].iloc[5], cohort["mask"].iloc[5]
    spec = {"rotation": 0.0, "translation": 0.0, "noise": 0.0, "contour": 1,
            "resampling": 0.0}
    sizes = set()
    for seed in range(6):
        new_image, new_mask = robust._perturb_row(image, mask, 1, spec, seed, "r",
                                                  "image", "mask")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(new_image),
                                      sitk.GetArrayFromImage(image))
        sizes.add(int(sitk.GetArrayFromImage(new_mask).sum()))
    original = int(sitk.GetArrayFromImage(mask).sum())
    assert min(sizes) < original < max(sizes)  # both erosion and dilation drawn


def test_row_failing_under_perturbation_with_on_error_nan(cohort, monkeypatch):
    from sklearn_medprep.exceptions import MedprepWarning

    perturb = robust._perturb_row

    def fail_one(image_cell, mask_cell, label, spec, seed, row, *args):
        image, mask = perturb(image_cell, mask_cell, label, spec, seed, row, *args)
        if row == "sub-02":
            mask = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
            mask.CopyInformation(image)
        return image, mask

    monkeypatch.setattr(robust, "_perturb_row", fail_one)
    small = cohort.iloc[:5]
    with pytest.warns(MedprepWarning) as record:
        selector = RobustFeatureSelector(
            _extractor(on_error="nan"), n_perturbations=1, random_state=0,
        ).fit(small)
    messages = [str(w.message) for w in record]
    assert any("under perturbation 0: 1 of 5 rows failed" in m for m in messages)
    assert any("other rows: ['sub-02']" in m for m in messages), messages
    keep = [0, 1, 3, 4]
    reference = _few_subjects(RobustFeatureSelector(
        _extractor(), n_perturbations=1, random_state=0).fit, small.iloc[keep])
    pd.testing.assert_series_equal(selector.icc_, reference.icc_)


@pytest.mark.parametrize("n_rows", [2, 9])
def test_features_kept_on_too_few_subjects_are_warned(cohort, n_rows):
    selector = RobustFeatureSelector(_extractor(), n_perturbations=1, random_state=0)
    with pytest.warns(MedprepWarning, match="from fewer than 10") as record:
        selector.fit(cohort.iloc[:n_rows])
    messages = [str(w.message) for w in record if "fewer than 10" in str(w.message)]
    kept = selector.selected_features_
    assert kept  # the volume and mean features are reproducible even so
    shown = ", ".join(f"{name!r} ({n_rows})" for name in kept[:5])
    assert messages == [
        f"{len(kept)} feature(s) are kept on an ICC(3,1) from fewer than 10 "
        "subjects (the minimum here; reliability studies aim for 30 or more): "
        f"{shown}{' ...' if len(kept) > 5 else ''} subjects. So few cannot tell a "
        "reproducible feature from chance: fit RobustFeatureSelector on at least "
        "10 subjects"
    ]
    assert robust.MIN_ICC_SUBJECTS == 10
