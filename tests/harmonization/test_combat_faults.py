"""Issue 21, ComBat area: values never silently lost, every refusal named.

One table of refusals (the error type, the row/column/file it names, what the
message says) and one of the cases where values are kept, each compared with
a reference ComBat fitted without the missing values.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import (
    ComBatHarmonizer,
    CovBatHarmonizer,
    VoxelComBatHarmonizer,
)
from sklearn_medprep.datasets import make_voxel_cohort
from sklearn_medprep.exceptions import MedprepWarning, SubjectTableError

FEATURES = ["a", "b", "c", "d"]


def _table(seed=0, n_per_site=12):
    rng = np.random.default_rng(seed)
    n = 3 * n_per_site
    site = np.repeat(["A", "B", "C"], n_per_site)
    shift = pd.Series(site).map({"A": 0.0, "B": 2.0, "C": -1.0}).to_numpy()
    table = pd.DataFrame(
        rng.normal(size=(n, 4)) * (1 + shift[:, None] ** 2 / 4) + shift[:, None],
        columns=FEATURES,
        index=[f"s{i:02d}" for i in range(n)],
    )
    table["site"] = site
    table["age"] = rng.uniform(20, 80, n)
    return table


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MedprepWarning)
        return func(*args, **kwargs)


# ---------------------------------------------------------------- refusals
def _covbat_nan_cell():
    table = _table()
    table.loc["s03", "b"] = np.nan
    CovBatHarmonizer(covariates=["age"]).fit(table)


def _covbat_nan_column():
    table = _table()
    table["c"] = np.nan
    CovBatHarmonizer(covariates=["age"]).fit(table)


def _covbat_nan_at_transform():
    table = _table()
    covbat = CovBatHarmonizer(covariates=["age"]).fit(table)
    test = table.iloc[20:26].copy()
    test.loc["s22", "d"] = np.nan
    covbat.transform(test)


def _classes_with_continuous_y():
    table = _table()
    y = np.random.default_rng(1).normal(size=len(table))
    ComBatHarmonizer(covariates=["age"], protect_target="classes").fit(table, y)


@pytest.fixture(scope="module")
def voxels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voxels")
    table, _ = make_voxel_cohort(
        n_subjects=12, n_sites=2, path=folder, random_state=1
    )
    image = sitk.Cast(sitk.ReadImage(table["image"].iloc[3]), sitk.sitkFloat64)
    image[5, 5, 5] = float("inf")
    image[6, 6, 5] = -1e200  # overflows ComBat's sums of squares
    bad_file = str(folder / "bad.nii.gz")
    sitk.WriteImage(image, bad_file)
    bad = table.copy()
    bad.loc[bad.index[3], "image"] = bad_file
    fitted = _quiet(VoxelComBatHarmonizer(covariates=["age"]).fit, table)
    return table, bad, bad_file, fitted


REFUSALS = [
    # name, action, error, row, column, message fragments
    (
        "covbat NaN cell",
        _covbat_nan_cell,
        SubjectTableError,
        "s03",
        "b",
        ["1 NaN cell(s) in 1 row(s)", "SimpleImputer", "ComBatHarmonizer"],
    ),
    (
        "covbat all-NaN column",
        _covbat_nan_column,
        SubjectTableError,
        "s00",
        "c",
        ["column(s) ['c'] are NaN in every row", "36 NaN cell(s) in 36 row(s)"],
    ),
    (
        "covbat NaN cell at transform",
        _covbat_nan_at_transform,
        SubjectTableError,
        "s22",
        "d",
        ["1 NaN cell(s)"],
    ),
    (
        "classes with a continuous y",
        _classes_with_continuous_y,
        ValueError,
        None,
        None,
        ["looks continuous", "36 distinct non-integer values in 36 rows",
         "protect_target='linear'"],
    ),
]


@pytest.mark.parametrize(
    "action, error, row, column, fragments",
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_refused_by_name(action, error, row, column, fragments):
    with pytest.raises(error) as info:
        _quiet(action)
    message = str(info.value)
    if row is not None:
        assert info.value.row == row and info.value.column == column
        assert message.startswith(f"[row {row!r}, column {column!r}]")
    for fragment in fragments:
        assert fragment in message
    assert "SVD did not converge" not in message
    assert "The ComBat design" not in message  # not the bare singular design


@pytest.mark.parametrize("step", ["fit", "transform"])
def test_voxel_inf_and_overflow_refused_naming_image_and_count(voxels, step):
    table, bad, bad_file, fitted = voxels
    with pytest.raises(SubjectTableError) as info:
        if step == "fit":
            combat = VoxelComBatHarmonizer(covariates=["age"], mask=fitted.mask_)
            _quiet(combat.fit, bad)
        else:
            fitted.transform(bad.iloc[2:5])
    err = info.value
    assert (err.row, err.column, err.file) == (bad.index[3], "image", bad_file)
    # both bad voxels lie in the mask: both are counted
    mask = sitk.GetArrayViewFromImage(fitted.mask_)
    assert mask[5, 5, 5] and mask[5, 6, 6]
    assert "image has 2 voxel(s) in the mask that are infinite or too large" in str(
        err
    )
    assert "(5, 5, 5): inf" in str(err)


# ------------------------------------------------------- values kept, not lost
def _fit_transform(est, table):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = est.fit_transform(table)
    return out, [str(w.message) for w in caught if w.category is MedprepWarning]


def test_feature_empty_at_one_site_keeps_the_other_sites():
    table = _table()
    table.loc[table["site"] == "B", "a"] = np.nan
    out, messages = _fit_transform(
        ComBatHarmonizer(covariates=["age"], eb=False), table
    )
    assert messages == [
        "1 feature(s) have no finite value at site 'B' (rows 's12', 's13', "
        "'s14', 's15', 's16' ... (12 rows)): ['a']. Each is harmonized at the "
        "other sites from their rows alone (as if that site were absent for "
        "it), its cells at that site are returned as they were (NaN), and at "
        "transform its values at that site are returned unharmonized"
    ]
    b_rows = table["site"] == "B"
    assert out.loc[b_rows, "a"].isna().all()
    assert out.loc[~b_rows, "a"].notna().all()
    # reference: feature 'a' harmonized from sites A and C alone
    ref_a = ComBatHarmonizer(covariates=["age"], eb=False).fit_transform(
        table.loc[~b_rows, ["a", "site", "age"]]
    )
    np.testing.assert_allclose(out.loc[~b_rows, "a"], ref_a["a"], rtol=0, atol=1e-12)
    # the other features are harmonized at every site as without 'a'
    ref = ComBatHarmonizer(covariates=["age"], eb=False).fit_transform(
        table.drop(columns="a")
    )
    np.testing.assert_allclose(out[["b", "c", "d"]], ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eb", [True, False])
def test_site_without_values_equals_combat_without_its_rows(eb):
    table = _table(seed=3)
    b_rows = table["site"] == "B"
    table.loc[b_rows, FEATURES] = np.nan
    out, messages = _fit_transform(ComBatHarmonizer(covariates=["age"], eb=eb), table)
    assert len(messages) == 1 and messages[0].startswith(
        "4 feature(s) have no finite value at site 'B'"
    )
    ref = ComBatHarmonizer(covariates=["age"], eb=eb).fit_transform(table[~b_rows])
    np.testing.assert_allclose(out.loc[~b_rows], ref, rtol=0, atol=1e-12)
    assert out.loc[b_rows].isna().all().all()


def test_values_at_an_empty_site_are_returned_unharmonized_and_named():
    table = _table()
    b_rows = table["site"] == "B"
    train = table.copy()
    train.loc[b_rows, "a"] = np.nan
    combat = _quiet(ComBatHarmonizer(covariates=["age"]).fit, train)
    test = table.iloc[10:15]  # s10, s11 at site A; s12..s14 at site B
    with pytest.warns(MedprepWarning) as caught:
        out = combat.transform(test)
    assert [str(w.message) for w in caught] == [
        "Feature 'a' had no finite value at site 'B' at fit: its values in 3 "
        "row(s) of that site (['s12', 's13', 's14']) are returned unharmonized"
    ]
    np.testing.assert_array_equal(out.loc[["s12", "s13", "s14"], "a"], test["a"][2:])
    ref = _quiet(ComBatHarmonizer(covariates=["age"]).fit, train).transform(
        test.iloc[:2]
    )
    np.testing.assert_allclose(out.iloc[:2], ref, rtol=0, atol=1e-12)


def test_feature_empty_at_the_reference_site_is_kept_not_nan():
    table = _table()
    table.loc[table["site"] == "B", "a"] = np.nan
    combat = ComBatHarmonizer(covariates=["age"], reference_site="B")
    out, messages = _fit_transform(combat, table)
    assert messages == [
        "1 feature(s) have no finite value at the reference site 'B' and are "
        "returned unharmonized: ['a']"
    ]
    np.testing.assert_array_equal(out["a"], table["a"])  # NaN at B, input elsewhere
    assert not combat.harmonized_[0] and combat.harmonized_[1:].all()


def test_voxel_empty_at_one_site_keeps_the_other_sites(voxels):
    table, _, _, fitted = voxels
    images = [sitk.ReadImage(c) for c in table["image"]]
    at_site = (table["site"] == table["site"].iloc[0]).to_numpy()
    for image, empty in zip(images, at_site):
        if empty:
            image[5, 5, 5] = float("nan")
    nan_table = table.assign(image=pd.Series(images, index=table.index, dtype=object))
    combat = VoxelComBatHarmonizer(covariates=["age"], mask=fitted.mask_)
    with pytest.warns(MedprepWarning) as caught:
        combat.fit(nan_table)
    site = table["site"].iloc[0]
    assert [str(w.message) for w in caught] == [
        f"1 of {combat.n_voxels_} voxel(s) have no finite value in the images of "
        f"a site (voxels per site: {{{site!r}: 1}}): each is harmonized at the "
        "other sites from their images alone, stays NaN at that site as it came "
        "in, and a new image of that site gets its value back unharmonized"
    ]
    out = [sitk.GetArrayFromImage(i) for i in combat.transform(nan_table)["image"]]
    # reference: the masked voxels as a feature table, harmonized by
    # ComBatHarmonizer (its empty pair compared above with ComBat without it)
    mask = sitk.GetArrayViewFromImage(fitted.mask_).reshape(-1)
    index = np.flatnonzero(mask)
    flat = np.stack([sitk.GetArrayViewFromImage(i).reshape(-1)[index] for i in images])
    frame = pd.DataFrame(flat, index=table.index, columns=[f"v{j}" for j in index])
    frame["site"], frame["age"] = table["site"], table["age"]
    ref = _quiet(ComBatHarmonizer(covariates=["age"]).fit_transform, frame)
    got = np.stack([o.reshape(-1)[index] for o in out])
    np.testing.assert_allclose(got, ref.to_numpy(), rtol=0, atol=1e-4)  # float32
    flat_voxel = np.ravel_multi_index((5, 5, 5), out[0].shape)
    voxel = int(np.flatnonzero(index == flat_voxel)[0])
    assert np.isnan(got[at_site, voxel]).all() and np.isfinite(got[~at_site]).all()
