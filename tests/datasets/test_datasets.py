"""The synthetic cohorts: deterministic, with real site and label effects."""

import hashlib

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep.datasets import make_multisite_cohort, make_xray_cohort


def _digest(files):
    return [hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files]


def test_cohort_is_deterministic_byte_for_byte(tmp_path):
    a = make_multisite_cohort(
        6, 2, shape=(12, 14, 10), path=tmp_path / "a", random_state=3
    )
    b = make_multisite_cohort(
        6, 2, shape=(12, 14, 10), path=tmp_path / "b", random_state=3
    )
    c = make_multisite_cohort(
        6, 2, shape=(12, 14, 10), path=tmp_path / "c", random_state=4
    )
    assert _digest(a["image"]) == _digest(b["image"])
    assert _digest(a["mask"]) == _digest(b["mask"])
    assert _digest(a["image"]) != _digest(c["image"])
    cols = ["site", "age", "sex", "y"]
    assert a[cols].equals(b[cols])


def test_xray_cohort_is_deterministic(tmp_path):
    a = make_xray_cohort(4, 2, shape=(30, 26), path=tmp_path / "a", random_state=1)
    b = make_xray_cohort(4, 2, shape=(30, 26), path=tmp_path / "b", random_state=1)
    assert _digest(a["image"]) == _digest(b["image"])
    image = sitk.ReadImage(a["image"].iloc[0])
    assert image.GetSize() == (26, 30) and image.GetPixelID() == sitk.sitkUInt8


def test_table_layout_and_ground_truth():
    table, truth = make_multisite_cohort(
        9,
        3,
        shape=(12, 14, 10),
        random_state=0,
        site_sizes=[2, 3, 4],
        return_effects=True,
    )
    assert table.index.tolist() == [f"sub-{i:03d}" for i in range(9)]
    assert table["site"].value_counts().sort_index().tolist() == [2, 3, 4]
    assert set(table["sex"]) <= {"F", "M"} and set(table["y"]) <= {0, 1}
    assert list(truth.site.index) == ["site_A", "site_B", "site_C"]
    # the voxel spacing of each site is the one written in the image
    for subject, row in table.iterrows():
        spacing = truth.site.loc[row["site"], "spacing"]
        np.testing.assert_allclose(row["image"].GetSpacing(), spacing)
        labels = np.unique(sitk.GetArrayViewFromImage(row["mask"]))
        assert 1 in labels, subject
    assert (truth.lesion.index == table.index).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="site_sizes"):
        make_multisite_cohort(5, 2, site_sizes=[1, 1], shape=(8, 8, 8))
    with pytest.raises(ValueError, match="confounding"):
        make_multisite_cohort(5, 2, confounding=1.5, shape=(8, 8, 8))


def test_confounding_links_diagnosis_to_site():
    table = make_xray_cohort(200, 2, shape=(16, 16), random_state=0, confounding=0.6)
    rate = table.groupby("site")["y"].mean()
    assert rate["site_A"] - rate["site_B"] > 0.35


def _intensity_stats(image):
    a = sitk.GetArrayViewFromImage(image).astype(float).ravel()
    return np.percentile(a, [5, 25, 50, 75, 95]).tolist() + [a.mean(), a.std()]


def _lesion_stats(image, mask):
    a = sitk.GetArrayViewFromImage(image).astype(float)
    m = sitk.GetArrayViewFromImage(mask)
    lesion, ref = a[m == 1], a[m == 2]
    volume = (m == 1).sum() * np.prod(image.GetSpacing())
    return [np.log(volume), lesion.std() / ref.mean(), lesion.mean() / ref.mean()]


def test_site_and_label_are_predictable_from_raw_images():
    table = make_multisite_cohort(60, 3, shape=(24, 26, 22), random_state=0)
    stats = np.array([_intensity_stats(im) for im in table["image"]])
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    site_acc = cross_val_score(model, stats, table["site"], cv=cv).mean()
    assert site_acc > 0.8  # chance is 1/3
    lesion = np.array(
        [_lesion_stats(im, m) for im, m in zip(table["image"], table["mask"])]
    )
    label_acc = cross_val_score(model, lesion, table["y"], cv=cv).mean()
    assert label_acc > 0.8  # chance is about 1/2
    # without a label effect the lesion statistics carry no label information
    flat = make_multisite_cohort(
        60, 3, shape=(24, 26, 22), random_state=0, label_effect=0.0
    )
    lesion = np.array(
        [_lesion_stats(im, m) for im, m in zip(flat["image"], flat["mask"])]
    )
    assert cross_val_score(model, lesion, flat["y"], cv=cv).mean() < 0.75


def test_xray_site_and_label_predictable():
    table = make_xray_cohort(60, 2, shape=(48, 40), random_state=0)
    stats = np.array([_intensity_stats(im) for im in table["image"]])
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    assert cross_val_score(model, stats, table["site"], cv=cv).mean() > 0.85
    heart = np.array(
        [[sitk.GetArrayViewFromImage(m).sum(axis=1).max()] for m in table["mask"]]
    )
    assert cross_val_score(model, heart, table["y"], cv=cv).mean() > 0.85
