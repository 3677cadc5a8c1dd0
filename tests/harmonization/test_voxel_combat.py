"""VoxelComBatHarmonizer: parity with neuroHarmonize's voxel path and with the
feature-table ComBat, bounded-memory chunks, validation, QC maps, persistence."""

import contextlib
import io
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.base import clone

from sklearn_medprep import (
    ComBatHarmonizer,
    VoxelComBatHarmonizer,
    plot_voxel_site_effects,
    voxel_site_effect_maps,
)
from sklearn_medprep.datasets import make_voxel_cohort
from sklearn_medprep.exceptions import GeometryMismatchError, SubjectTableError

TOL = 1e-10  # as tests/harmonization/test_combat_parity.py


def _quiet(func, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def _array(cell):
    image = cell if isinstance(cell, sitk.Image) else sitk.ReadImage(str(cell))
    return sitk.GetArrayFromImage(image).astype(np.float64)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voxels")
    table, truth = make_voxel_cohort(
        n_subjects=54, n_sites=3, site_sizes=[22, 14, 18], path=folder,
        random_state=1,
    )
    table["male"] = (table["sex"] == "M").astype(np.float64)
    test_rows = table.groupby("site").head(4).index
    return table, truth, table.drop(index=test_rows), table.loc[test_rows]


def _flat_table(table, mask):
    """The masked voxels of each image as a feature table (for ComBatHarmonizer)."""
    index = np.flatnonzero(sitk.GetArrayViewFromImage(mask).reshape(-1))
    values = np.stack([_array(c).reshape(-1)[index] for c in table["image"]])
    cols = [f"v{j}" for j in range(index.size)]
    return pd.DataFrame(values, index=table.index, columns=cols), index


@pytest.mark.parametrize("eb", [True, False])
@pytest.mark.parametrize("ref", [None, "site_1"])
def test_parity_with_neuroharmonize_voxel_path(cohort, tmp_path, eb, ref):
    nh = pytest.importorskip("neuroHarmonize")
    from neuroHarmonize.harmonizationNIFTI import (
        applyModelNIFTIs,
        createMaskNIFTI,
        flattenNIFTIs,
    )

    _, _, train, test = cohort
    covs = ["age", "male"]
    paths = pd.DataFrame({"PATH": train["image"].to_numpy()})
    mask_file = str(tmp_path / "mask.nii.gz")
    _quiet(createMaskNIFTI, paths, threshold=0.0, output_path=mask_file)
    flat = _quiet(flattenNIFTIs, paths, mask_file, str(tmp_path / "flat.npy"))
    covars = train[["site", *covs]].rename(columns={"site": "SITE"})
    model, learned = _quiet(
        nh.harmonizationLearn, flat, covars.reset_index(drop=True), eb=eb,
        ref_batch=ref,
    )
    combat = VoxelComBatHarmonizer(
        covariates=covs, eb=eb, reference_site=ref, fill_outside=0.0,
        dtype="float64",
    )
    combat.fit(train)
    # the learned mask is createMaskNIFTI's
    theirs = sitk.GetArrayFromImage(sitk.ReadImage(mask_file)) != 0
    assert np.array_equal(sitk.GetArrayFromImage(combat.mask_) != 0, theirs)
    # harmonizationLearn's output (nibabel's x, y, z voxel order)
    ours = combat.transform(train)
    ours_flat = np.stack([_array(c).T[theirs.T] for c in ours["image"]])
    assert np.abs(ours_flat - learned).max() <= TOL
    # applyModelNIFTIs (one image at a time; with a reference site it fails on
    # one row in neuroHarmonize 2.5.2, an IndexError in neuroCombat's design)
    for rows in (train, test) if ref is None else ():
        new = [str(tmp_path / f"{i}_harmonized.nii.gz") for i in rows.index]
        _quiet(
            applyModelNIFTIs,
            rows[["site", *covs]].rename(columns={"site": "SITE"}),
            model,
            pd.DataFrame({"PATH": rows["image"].to_numpy(), "PATH_NEW": new}),
            mask_file,
            output_dtype=np.float64,
        )
        ours = combat.transform(rows)
        for cell, file in zip(ours["image"], new):
            assert np.abs(_array(cell) - _array(file)).max() <= TOL
    # harmonization did something
    before = _array(train["image"].iloc[-1])
    after = _array(combat.transform(train)["image"].iloc[-1])
    assert np.abs(after - before).max() > 0.05


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"parametric": False},
        {"mean_only": True},
        {"parametric": False, "mean_only": True},
        {"reference_site": "site_2"},
    ],
)
def test_chunked_fit_equals_feature_table_combat(cohort, kwargs):
    # the same fitted core: per-chunk estimates + EB over all voxels equal
    # ComBatHarmonizer on the flattened table, whatever the chunk size
    table, _, train, test = cohort
    voxel = VoxelComBatHarmonizer(covariates=["age", "sex"], chunk_size=97, **kwargs)
    voxel.fit(train)
    flat, index = _flat_table(train, voxel.mask_)
    tab = ComBatHarmonizer(covariates=["age", "sex"], **kwargs)
    tab.fit(pd.concat([flat, train[["site", "age", "sex"]]], axis=1))
    for name in ("gamma_star_", "delta_star_", "grand_mean_", "var_pooled_", "coef_"):
        np.testing.assert_allclose(
            getattr(voxel, name), getattr(tab, name), rtol=1e-9, atol=TOL
        )
    out = voxel.set_params(dtype="float64").transform(test)
    flat_test, _ = _flat_table(test, voxel.mask_)
    expected = tab.transform(
        pd.concat([flat_test, test[["site", "age", "sex"]]], axis=1)
    )
    got = np.stack([_array(c).reshape(-1)[index] for c in out["image"]])
    assert np.abs(got - expected.to_numpy()).max() <= TOL
    # outside the mask: the input voxels, unchanged
    outside = sitk.GetArrayViewFromImage(voxel.mask_) == 0
    assert np.array_equal(
        _array(out["image"].iloc[0])[outside], _array(test["image"].iloc[0])[outside]
    )


def test_protected_target_equals_feature_table_combat(cohort):
    """Target protection: the same model and output as ComBatHarmonizer's on
    the flattened voxels; the test rows' labels are never read."""
    _, _, train, test = cohort
    y = train["age"].to_numpy()
    full_train = train
    # the target's column is not handed on (it would be a target proxy)
    train, test = train.drop(columns="age"), test.drop(columns="age")
    voxel = VoxelComBatHarmonizer(covariates=["sex"], dtype="float64").fit(train, y)
    assert voxel.target_term_.kind == "linear"
    flat, index = _flat_table(train, voxel.mask_)
    tab = ComBatHarmonizer(covariates=["sex"]).fit(
        pd.concat([flat, train[["site", "sex"]]], axis=1), y
    )
    np.testing.assert_array_equal(voxel.target_columns_, tab.target_columns_)
    for name in ("gamma_star_", "delta_star_", "coef_"):
        np.testing.assert_allclose(
            getattr(voxel, name), getattr(tab, name), rtol=1e-9, atol=TOL
        )
    flat_test, _ = _flat_table(test, voxel.mask_)
    expected = tab.transform(pd.concat([flat_test, test[["site", "sex"]]], axis=1))
    cells = voxel.transform(test)["image"]
    got = np.stack([_array(c).reshape(-1)[index] for c in cells])
    assert np.abs(got - expected.to_numpy()).max() <= TOL
    # unprotected, the age effect is partly removed with the site's
    plain = VoxelComBatHarmonizer(covariates=["sex"], protect_target="none").fit(
        train, y
    )
    assert plain.target_term_ is None
    assert np.abs(plain.gamma_star_ - voxel.gamma_star_).max() > 1e-3
    for protect in ("auto", "none"):  # refused either way, as ComBatHarmonizer
        with pytest.raises(SubjectTableError, match="covariate equals the target"):
            VoxelComBatHarmonizer(covariates=["age"], protect_target=protect).fit(
                full_train, y
            )


def test_n_jobs_and_chunks_do_not_change_the_model(cohort):
    _, _, train, _ = cohort
    ref = VoxelComBatHarmonizer(covariates=["age"]).fit(train)
    other = VoxelComBatHarmonizer(covariates=["age"], chunk_size=50, n_jobs=2)
    other.fit(train)
    np.testing.assert_allclose(other.gamma_star_, ref.gamma_star_, atol=TOL)
    np.testing.assert_allclose(other.delta_star_, ref.delta_star_, atol=TOL)


@pytest.mark.slow
def test_dask_localcluster_backend(cohort):
    distributed = pytest.importorskip("distributed")
    _, _, train, test = cohort
    ref = VoxelComBatHarmonizer(covariates=["age"], chunk_size=64)
    expected = ref.fit_transform(train)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        with joblib.parallel_config(backend="dask"):
            dask_est = clone(ref).fit(train)
            out = dask_est.transform(train)
    np.testing.assert_allclose(dask_est.gamma_star_, ref.gamma_star_, atol=TOL)
    for a, b in zip(out["image"], expected["image"]):
        assert np.array_equal(_array(a), _array(b))


def test_site_effects_removed_age_effect_kept(cohort, tmp_path):
    table, truth, _, _ = cohort
    combat = VoxelComBatHarmonizer(covariates=["age"])
    out = combat.fit_transform(table)
    maps = voxel_site_effect_maps(
        table, out, mask=combat.mask_, covariates=["age"], output_dir=tmp_path
    )
    # known voxel-wise site effects: strong before, at chance level after
    assert np.median(maps.f_before) > 20
    assert np.median(maps.f_after) < 1.5
    assert [p.rsplit("/", 1)[-1] for p in maps.files] == [
        "site_fmap_before.nii.gz",
        "site_fmap_after.nii.gz",
    ]
    assert sitk.ReadImage(maps.files[1]).GetSize() == (12, 14, 10)
    fig = plot_voxel_site_effects(maps, file=tmp_path / "fmap.png")
    assert (tmp_path / "fmap.png").is_file() and len(fig.axes) == 7

    # the age effect (known map; age differs between sites) is kept
    brain = sitk.GetArrayViewFromImage(combat.mask_).astype(bool)
    age = table["age"].to_numpy()
    design = np.column_stack([np.ones_like(age), age])

    def slopes(frame):
        values = np.stack([_array(c)[brain] for c in frame["image"]])
        return np.linalg.lstsq(design, values, rcond=None)[0][1]

    # truth at the pooled scale: tissue * age_slope * mean site scale
    tissue_slope = np.mean(
        [truth.age_slope[brain] * s[brain] for s in truth.site_scale], axis=0
    )
    truth_slope = tissue_slope * (1 + 0.0 * tissue_slope)  # per year
    kept = slopes(out)
    assert np.corrcoef(kept, truth_slope)[0, 1] > 0.6
    # without age in the model, ComBat removes part of it (age is confounded
    # with site): the check above can fail
    blind = VoxelComBatHarmonizer().fit_transform(table)
    assert np.abs(slopes(blind)).mean() < 0.8 * np.abs(kept).mean()


def test_output_dir_writes_images_with_input_geometry(cohort, tmp_path):
    _, _, train, test = cohort
    combat = VoxelComBatHarmonizer(output_dir=tmp_path / "out", dtype="float32")
    out = combat.fit(train).transform(test)
    assert out.index.equals(test.index) and list(out.columns) == list(test.columns)
    first = out["image"].iloc[0]
    assert first == str(tmp_path / "out" / f"{test.index[0]}.nii.gz")
    written, source = sitk.ReadImage(first), sitk.ReadImage(test["image"].iloc[0])
    assert written.GetPixelID() == sitk.sitkFloat32
    for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(written, getter)() == getattr(source, getter)()
    # in memory by default, the same values
    mem = combat.set_params(output_dir=None).transform(test)
    assert np.array_equal(_array(mem["image"].iloc[0]), _array(first))
    pd.testing.assert_frame_equal(out.drop(columns="image"), test.drop(columns="image"))


def test_persistence_and_model_size(cohort, tmp_path):
    _, _, train, test = cohort
    combat = VoxelComBatHarmonizer(covariates=["age", "sex"]).fit(train)
    joblib.dump(combat, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    a, b = combat.transform(test), loaded.transform(test)
    for x, y in zip(a["image"], b["image"]):
        assert np.array_equal(_array(x), _array(y))
    p = combat.n_voxels_
    assert combat.gamma_star_.shape == (3, p) and combat.coef_.shape == (5, p)


def test_mask_given_as_path_and_grid_errors(cohort, tmp_path):
    _, _, train, _ = cohort
    mask = sitk.GetArrayFromImage(sitk.ReadImage(train["image"].iloc[0])) != 0
    mask_image = sitk.GetImageFromArray(mask.astype(np.uint8))
    mask_image.CopyInformation(sitk.ReadImage(train["image"].iloc[0]))
    mask_image[6, 7, 5] = 0
    sitk.WriteImage(mask_image, str(tmp_path / "mask.nii.gz"))
    combat = VoxelComBatHarmonizer(mask=str(tmp_path / "mask.nii.gz")).fit(train)
    assert combat.n_voxels_ == int(mask.sum()) - 1
    # an image off the grid: the error names row, column and file
    moved = sitk.ReadImage(train["image"].iloc[3])
    moved.SetOrigin((0.0, 0.0, 0.0))
    bad_file = str(tmp_path / "moved.nii.gz")
    sitk.WriteImage(moved, bad_file)
    bad = train.copy()
    bad.iloc[3, bad.columns.get_loc("image")] = bad_file
    with pytest.raises(GeometryMismatchError, match="not on the mask's grid") as err:
        combat.transform(bad)
    assert err.value.row == train.index[3] and err.value.column == "image"
    assert err.value.file == bad_file
    with pytest.raises(GeometryMismatchError, match="origin"):
        clone(combat).fit(bad)


def test_nan_voxels_stay_local(cohort):
    _, _, train, test = cohort
    images = [sitk.ReadImage(c) for c in train["image"]]
    images[0][6, 7, 5] = float("nan")
    nan_table = train.assign(image=pd.Series(images, index=train.index, dtype=object))
    ref = VoxelComBatHarmonizer(covariates=["age"]).fit(train)
    # the mask is given: a learned one leaves out voxels whose mean is NaN
    # (as neuroHarmonize's createMaskNIFTI does)
    combat = VoxelComBatHarmonizer(covariates=["age"], mask=ref.mask_).fit(nan_table)
    assert combat.harmonized_.all()
    changed = ~np.isclose(combat.gamma_star_, ref.gamma_star_, rtol=0, atol=1e-3)
    # the NaN voxel's own estimates move; EB priors move other voxels only a little
    assert changed.any(axis=0).sum() <= 1
    out = combat.transform(nan_table.iloc[:2])
    assert np.isnan(_array(out["image"].iloc[0])[5, 7, 6])
    assert np.isfinite(_array(out["image"].iloc[1])).all()


def test_unseen_site_policies(cohort):
    table, _, train, _ = cohort
    combat = VoxelComBatHarmonizer(covariates=["age"]).fit(
        train[train["site"] != "site_2"]
    )
    new = table[table["site"] == "site_2"]
    with pytest.raises(SubjectTableError, match="was not seen in fit") as err:
        combat.transform(new)
    assert err.value.row == new.index[0]
    with pytest.warns(Warning, match="returned unharmonized"):
        same = combat.set_params(unseen_site="passthrough").transform(new.iloc[:2])
    assert np.array_equal(_array(same["image"].iloc[0]), _array(new["image"].iloc[0]))
    est = combat.set_params(unseen_site="estimate").transform(new)
    # the new site's estimated location/scale is removed: its images come close
    # to those of a model that saw the site in fit
    seen = VoxelComBatHarmonizer(covariates=["age"]).fit(train).transform(new)
    _, index = _flat_table(new, combat.mask_)

    def gap(frame):
        return np.mean(
            [
                np.abs(_array(a).reshape(-1)[index] - _array(b).reshape(-1)[index])
                for a, b in zip(frame["image"], seen["image"])
            ]
        )

    assert gap(est) < 0.6 * gap(new)
    with pytest.raises(SubjectTableError, match="needs at least 5"):
        combat.transform(new.iloc[:3])


def test_fewer_than_two_sites_and_bad_reference(cohort):
    _, _, train, _ = cohort
    with pytest.raises(SubjectTableError, match="at least 2 sites"):
        VoxelComBatHarmonizer().fit(train[train["site"] == "site_0"])
    with pytest.raises(ValueError, match="reference_site 'nowhere'"):
        VoxelComBatHarmonizer(reference_site="nowhere").fit(train)


def test_composes_in_a_pipeline_fitted_on_training_folds(cohort):
    tio = pytest.importorskip("torchio")
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from sklearn_medprep import ImageTensorizer, TorchIOPreprocessor
    from sklearn_medprep.model_selection import SiteStratifiedKFold

    table, _, train, test = cohort
    head = make_pipeline(
        VoxelComBatHarmonizer(covariates=["age"]),
        TorchIOPreprocessor(tio.ToCanonical(), mask=None),
        ImageTensorizer(dtype="float64"),
    )
    tensors = head.fit(train).transform(test)
    harmonized = head[0].set_params(dtype="float64").transform(test)
    expected = tio.ToCanonical()(
        tio.ScalarImage.from_sitk(harmonized["image"].iloc[0])
    ).data.numpy()
    np.testing.assert_allclose(tensors[0], expected, rtol=1e-6)
    pipe = make_pipeline(
        VoxelComBatHarmonizer(covariates=["sex"]),  # age, the target: protected
        ImageTensorizer(),
        FunctionTransformer(lambda x: x.reshape(len(x), -1)),
        Ridge(),
    )
    cv = SiteStratifiedKFold(n_splits=3)
    # the target's column is left out of X: handed on, it would be refused
    result = cross_validate(
        pipe,
        table.drop(columns="age"),
        table["age"],
        cv=cv,
        return_estimator=True,
        return_indices=True,
    )
    for est, train_idx in zip(result["estimator"], result["indices"]["train"]):
        # each harmonizer saw its training fold only, and its ages
        assert est[0].site_counts_.sum() == len(train_idx)
        assert est[0].target_term_.kind == "linear"


def test_fit_never_holds_the_image_set(monkeypatch, tmp_path):
    # numpy buffers traced during fit and transform stay well under the
    # n x p float64 array neuroHarmonize holds (chunks and batches made small):
    # a chunk plus the O(n_sites x p) model, with n much larger than n_sites
    import tracemalloc

    from sklearn_medprep.harmonization import _voxel_store

    monkeypatch.setattr(_voxel_store, "CHUNK_BYTES", 256 * 1024)
    table, truth = make_voxel_cohort(
        n_subjects=240, n_sites=3, shape=(20, 18, 16), path=tmp_path,
        random_state=0,
    )
    image_set = len(table) * int(truth.brain.sum()) * 8
    combat = VoxelComBatHarmonizer(covariates=["age"], output_dir=tmp_path / "out")
    warm = table.groupby("site").head(3)  # first-call imports out of the trace
    combat.fit(warm).transform(warm)
    tracemalloc.start()
    try:
        combat.fit(table)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        combat.transform(table)
        _, transform_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fit_peak < 0.5 * image_set, (fit_peak, image_set)
    assert transform_peak < 0.5 * image_set, (transform_peak, image_set)


def test_missing_site_column_is_named(cohort):
    _, _, train, _ = cohort
    with pytest.raises(SubjectTableError, match="VoxelComBatHarmonizer needs the site"):
        VoxelComBatHarmonizer().fit(train.drop(columns="site"))
    # routed sites= instead of the column
    combat = VoxelComBatHarmonizer().fit(
        train.drop(columns="site"), sites=train["site"].to_numpy()
    )
    assert list(combat.sites_) == ["site_0", "site_1", "site_2"]


def test_categorical_declares_numeric_codes(cohort):
    # male (0.0/1.0) declared categorical: one-hot, the same model as the text sex
    table, _, train, test = cohort
    coded = VoxelComBatHarmonizer(
        covariates=["age", "male"], categorical=["male"], dtype="float64"
    ).fit(train)
    text = VoxelComBatHarmonizer(covariates=["age", "sex"], dtype="float64").fit(train)
    assert list(coded.covariate_levels_) == ["male"]
    # same design up to the baseline level (F=0.0 / F): same fitted sites
    np.testing.assert_allclose(coded.gamma_star_, text.gamma_star_, atol=1e-10)
    out_coded = coded.transform(test)["image"]
    out_text = text.transform(test)["image"]
    for a, b in zip(out_coded, out_text):
        np.testing.assert_allclose(_array(a), _array(b), atol=1e-9)
    with pytest.raises(SubjectTableError, match="not a covariate"):
        VoxelComBatHarmonizer(covariates=["age"], categorical=["sex"]).fit(train)
