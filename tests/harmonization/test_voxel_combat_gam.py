"""VoxelComBatHarmonizer with ComBat-GAM smooth terms and interactions: the
model and output of ComBatHarmonizer with the same options on the flattened
in-mask voxels, whatever the chunks."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import ComBatHarmonizer, VoxelComBatHarmonizer
from sklearn_medprep.datasets import make_voxel_cohort
from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.harmonization._gam import spline_basis

TOL = 1e-10  # as tests/harmonization/test_voxel_combat.py
MODEL = ("coef_", "grand_mean_", "var_pooled_", "gamma_star_", "delta_star_")


def _array(cell):
    image = cell if isinstance(cell, sitk.Image) else sitk.ReadImage(str(cell))
    return sitk.GetArrayFromImage(image).astype(np.float64)


@pytest.fixture(scope="module")
def cohort():
    """30 in-memory images of 3 sites, a 3x3x2 mask (18 voxels: GAMs are slow),
    a numeric covariate ``score``, and NaN in two voxels of two images."""
    table, _ = make_voxel_cohort(n_subjects=30, n_sites=3, random_state=2)
    rng = np.random.default_rng(5)
    table["score"] = rng.normal(size=len(table))
    template = table["image"].iloc[0]
    inside = np.zeros(_array(template).shape, dtype=np.uint8)
    c = [s // 2 for s in inside.shape]
    inside[c[0] - 1 : c[0] + 2, c[1] - 1 : c[1] + 2, c[2] : c[2] + 2] = 1
    mask = sitk.GetImageFromArray(inside)
    mask.CopyInformation(template)
    index = np.flatnonzero(inside.reshape(-1))
    images = [sitk.Cast(image, sitk.sitkFloat64) for image in table["image"]]
    for row, voxel in ((3, 1), (17, 15)):  # 1: first chunk, 15: a later one
        array = _array(images[row])
        array.reshape(-1)[index[voxel]] = np.nan
        nan_image = sitk.GetImageFromArray(array)
        nan_image.CopyInformation(template)
        images[row] = nan_image
    table["image"] = pd.Series(images, index=table.index, dtype=object)
    test_rows = table.groupby("site").head(2).index
    return table.drop(index=test_rows), table.loc[test_rows], mask, index


def _flat(table, index, columns):
    """The masked voxels of each image as a feature table, with ``columns``."""
    values = np.stack([_array(c).reshape(-1)[index] for c in table["image"]])
    flat = pd.DataFrame(
        values, index=table.index, columns=[f"v{j:02d}" for j in range(index.size)]
    )
    return pd.concat([flat, table[columns]], axis=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        # chunks of 10 voxels, in this process
        {
            "covariates": ["age", "sex"],
            "smooth_terms": ["age"],
            "random_state": 0,
            "chunk_size": 10,
        },
        # bounds, an interaction beside the smooth term, a RandomState, chunks
        # of 7 voxels fitted in 2 worker processes
        {
            "covariates": ["age", "sex", "score"],
            "smooth_terms": ["age"],
            "smooth_term_bounds": (0.0, 100.0),
            "interactions": [("sex", "score")],
            "random_state": "RandomState(3)",
            "chunk_size": 7,
            "n_jobs": 2,
        },
    ],
)
def test_smooth_terms_equal_feature_table_combat(cohort, kwargs):
    train, test, mask, index = cohort
    generator = kwargs["random_state"] == "RandomState(3)"
    if generator:  # one instance each (ComBatHarmonizer draws from its own)
        kwargs = {**kwargs, "random_state": np.random.RandomState(3)}
    options = {k: v for k, v in kwargs.items() if k not in ("chunk_size", "n_jobs")}
    if generator:
        options["random_state"] = np.random.RandomState(3)
    columns = ["site", *kwargs["covariates"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NaN voxels' warnings, alike
        voxel = VoxelComBatHarmonizer(mask=mask, dtype="float64", **kwargs).fit(train)
        if generator:  # the caller's generator is copied, not drawn from
            assert kwargs["random_state"].randint(1000) == np.random.RandomState(
                3
            ).randint(1000)
        tab = ComBatHarmonizer(**options).fit(_flat(train, index, columns))
    # the fitted spline: knots (so basis) equal; the penalties chosen by
    # cross-validation equal, voxel by voxel (the coefficients)
    assert len(voxel.spline_knots_) == 1
    np.testing.assert_array_equal(voxel.spline_knots_[0], tab.spline_knots_[0])
    ages = test[["age"]].to_numpy()
    np.testing.assert_array_equal(
        spline_basis(ages, voxel.spline_knots_), spline_basis(ages, tab.spline_knots_)
    )
    np.testing.assert_array_equal(voxel.target_columns_, tab.target_columns_)
    assert voxel._design_names(voxel.coef_.shape[0] - 3) == tab._design_names(
        tab.coef_.shape[0] - 3
    )
    for name in MODEL:
        np.testing.assert_allclose(
            getattr(voxel, name),
            getattr(tab, name),
            rtol=1e-9,
            atol=TOL,
            err_msg=name,
        )
    # new rows (one of an age beyond the training range, inside the bounds)
    new = test.copy()
    if "smooth_term_bounds" in kwargs:
        new.loc[new.index[0], "age"] = 95.0
    out = voxel.transform(new)
    expected = tab.transform(_flat(new, index, columns)).to_numpy()
    got = np.stack([_array(c).reshape(-1)[index] for c in out["image"]])
    assert np.isfinite(got).all()
    assert np.abs(got - expected).max() <= TOL
    # the smooth term did something: a linear age gives another model
    linear = VoxelComBatHarmonizer(
        mask=mask,
        covariates=kwargs["covariates"],
        interactions=kwargs.get("interactions"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linear.fit(train)
    assert np.abs(linear.gamma_star_ - voxel.gamma_star_).max() > 1e-3


def test_seed_decides_the_penalty(cohort):
    # the folds matter (another seed changes some voxels' penalty), so the
    # equalities above check each chunk's replayed draws
    train, _, mask, _ = cohort
    kwargs = {"mask": mask, "covariates": ["age"], "smooth_terms": ["age"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = VoxelComBatHarmonizer(random_state=0, chunk_size=5, **kwargs).fit(train)
        c = VoxelComBatHarmonizer(random_state=1, chunk_size=5, **kwargs).fit(train)
    assert (np.abs(a.coef_ - c.coef_).max(axis=0) > 1e-6).sum() > 1


def test_interactions_equal_feature_table_combat(tmp_path):
    # linear interactions (no GAM): the whole brain, chunks of 97 voxels
    table, _ = make_voxel_cohort(
        n_subjects=24, n_sites=2, path=tmp_path, random_state=4
    )
    kwargs = {"covariates": ["age", "sex"], "interactions": ["age:sex"]}
    voxel = VoxelComBatHarmonizer(chunk_size=97, dtype="float64", **kwargs)
    voxel.fit(table)
    index = np.flatnonzero(sitk.GetArrayViewFromImage(voxel.mask_).reshape(-1))
    flat = _flat(table, index, ["site", "age", "sex"])
    tab = ComBatHarmonizer(**kwargs).fit(flat)
    assert tab.coef_.shape[0] == 2 + 3  # sites, age, sex, age x sex
    for name in MODEL:
        np.testing.assert_allclose(
            getattr(voxel, name),
            getattr(tab, name),
            rtol=1e-9,
            atol=TOL,
            err_msg=name,
        )
    out = voxel.transform(table.iloc[:5])
    got = np.stack([_array(c).reshape(-1)[index] for c in out["image"]])
    assert np.abs(got - tab.transform(flat.iloc[:5]).to_numpy()).max() <= TOL
    # refused as ComBatHarmonizer refuses it: a smooth term in an interaction
    with pytest.raises(SubjectTableError, match="smooth"):
        VoxelComBatHarmonizer(
            covariates=["age", "sex"], smooth_terms=["age"], interactions=["age:sex"]
        ).fit(table)
    # a model pickled before these parameters existed still transforms
    state = voxel.__getstate__()
    for name in ("smooth_terms", "smooth_term_bounds", "interactions", "random_state"):
        del state[name]
    old = VoxelComBatHarmonizer.__new__(VoxelComBatHarmonizer)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old.get_params()["smooth_terms"] is None


def test_protected_target_with_smooth_term_equals_feature_table_combat(cohort):
    # the target (a numeric score, here) protected beside the smooth age
    train, test, mask, index = cohort
    y = train["score"].to_numpy()
    train, test = train.drop(columns="score"), test.drop(columns="score")
    kwargs = {"covariates": ["age"], "smooth_terms": ["age"], "random_state": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        voxel = VoxelComBatHarmonizer(
            mask=mask, chunk_size=6, dtype="float64", **kwargs
        ).fit(train, y)
        tab = ComBatHarmonizer(**kwargs).fit(_flat(train, index, ["site", "age"]), y)
    assert voxel.target_term_.kind == "linear"
    np.testing.assert_array_equal(voxel.target_columns_, tab.target_columns_)
    for name in MODEL:
        np.testing.assert_allclose(
            getattr(voxel, name), getattr(tab, name), rtol=1e-9, atol=TOL
        )
    out = voxel.transform(test)
    expected = tab.transform(_flat(test, index, ["site", "age"])).to_numpy()
    got = np.stack([_array(c).reshape(-1)[index] for c in out["image"]])
    assert np.abs(got - expected).max() <= TOL
