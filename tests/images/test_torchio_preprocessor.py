"""TorchIOPreprocessor: deterministic transforms, trainable parts fit on train rows."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import torchio as tio
from sklearn.base import clone

from sklearn_medprep import TorchIOPreprocessor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.exceptions import ImageReadError
from sklearn_medprep.io._read import to_sitk
from sklearn_medprep.model_selection import SiteStratifiedKFold


@pytest.fixture(scope="module")
def disk_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pre_cohort")
    return make_multisite_cohort(9, 3, shape=(7, 8, 9), path=folder, random_state=1)


@pytest.fixture(scope="module")
def split(disk_cohort):
    cv = SiteStratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    train, test = next(cv.split(disk_cohort, disk_cohort["y"]))
    return disk_cohort.iloc[train], disk_cohort.iloc[test]


@pytest.mark.parametrize("masked", [False, True])
def test_histogram_landmarks_equal_torchio_train_on_training_fold(split, masked):
    train, test = split
    hs = tio.HistogramStandardization({}, masking_method="mask" if masked else None)
    pre = TorchIOPreprocessor(hs).fit(train)
    expected = tio.HistogramStandardization.train(
        list(train["image"]),
        mask_path=list(train["mask"]) if masked else None,
        progress=False,
    )
    np.testing.assert_array_equal(pre.transform_.landmarks_dict["image"], expected)
    # learned from the training rows alone: all rows give other landmarks
    everything = pd.concat([train, test])
    other = TorchIOPreprocessor(hs).fit(everything).transform_.landmarks_dict["image"]
    assert not np.array_equal(other, expected)
    # transforming the test fold learns nothing
    pre.transform(test)
    np.testing.assert_array_equal(pre.transform_.landmarks_dict["image"], expected)


def test_landmarks_trained_after_preceding_steps(split, tmp_path):
    train, _ = split
    crop = tio.CropOrPad((6, 7, 5))
    pre = TorchIOPreprocessor(
        tio.Compose([tio.ToCanonical(), crop, tio.HistogramStandardization({})])
    ).fit(train)
    paths = []
    for k, path in enumerate(train["image"]):
        image = tio.Compose([tio.ToCanonical(), crop])(tio.ScalarImage(path))
        paths.append(tmp_path / f"crop{k}.nrrd")
        image.save(paths[-1])
    expected = tio.HistogramStandardization.train(paths, progress=False)
    np.testing.assert_array_equal(pre.transform_[2].landmarks_dict["image"], expected)


def test_output_equals_torchio_applied_to_each_subject(split):
    train, test = split
    pre = TorchIOPreprocessor(
        [tio.CropOrPad((6, 7, 5)), tio.HistogramStandardization({"image": None})]
    ).fit(train)
    landmarks = pre.transform_[1].landmarks_dict["image"]
    out = pre.transform(test)
    reference = tio.Compose(
        [tio.CropOrPad((6, 7, 5)), tio.HistogramStandardization({"image": landmarks})]
    )
    for row in test.index:
        subject = tio.Subject(
            image=tio.ScalarImage(test.loc[row, "image"]),
            mask=tio.LabelMap(test.loc[row, "mask"]),
        )
        expected = reference(subject)
        assert isinstance(out.loc[row, "image"], tio.ScalarImage)
        assert isinstance(out.loc[row, "mask"], tio.LabelMap)
        assert torch.equal(out.loc[row, "image"].data, expected["image"].data)
        assert torch.equal(out.loc[row, "mask"].data, expected["mask"].data)
        np.testing.assert_array_equal(
            out.loc[row, "image"].affine, expected.image.affine
        )


def test_given_landmarks_are_used_and_parameter_never_modified(split):
    train, test = split
    landmarks = np.linspace(0, 100, 13)
    given = tio.HistogramStandardization({"image": landmarks})
    pre = TorchIOPreprocessor(given).fit(train)
    np.testing.assert_array_equal(pre.transform_.landmarks_dict["image"], landmarks)

    placeholder = tio.HistogramStandardization({})
    pre = TorchIOPreprocessor(placeholder)
    params = pre.get_params()
    pre.fit(train)
    assert placeholder.landmarks_dict == {} and placeholder.landmarks == {}
    assert pre.transforms is placeholder and params["transforms"] is placeholder
    assert pre.transform_ is not placeholder
    cloned = clone(pre)
    assert not hasattr(cloned, "transform_")
    assert cloned.transforms.landmarks_dict == {}
    restored = pickle.loads(pickle.dumps(pre))
    a, b = restored.transform(test), pre.transform(test)
    for row in test.index:
        assert torch.equal(a.loc[row, "image"].data, b.loc[row, "image"].data)


@pytest.mark.parametrize(
    "transform, culprit",
    [
        (tio.RandomAffine(), "RandomAffine"),
        (tio.Compose([tio.ToCanonical(), tio.RandomNoise()]), "RandomNoise"),
        (tio.ZNormalization(p=0.5), "p=0.5"),
        (tio.OneOf([tio.ToCanonical(), tio.ZNormalization()]), "OneOf"),
        ([tio.Compose([tio.RandomBiasField()])], "RandomBiasField"),
    ],
)
def test_random_transforms_are_refused(split, transform, culprit):
    train, _ = split
    with pytest.raises(ValueError, match=culprit) as info:
        TorchIOPreprocessor(transform).fit(train)
    assert "TorchIOAugmenter" in str(info.value)


def test_not_a_transform_is_refused(split):
    with pytest.raises(TypeError, match="torchio Transform"):
        TorchIOPreprocessor(lambda s: s).fit(split[0])


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_output_cells_round_trip_through_to_sitk_like_saved_files(
    split, tmp_path, suffix
):
    train, _ = split
    pre = TorchIOPreprocessor(
        [tio.Resample((1.1, 0.9, 1.3)), tio.ZNormalization(masking_method="mask")]
    ).fit(train)
    out = pre.transform(train)
    # NIfTI stores geometry as float32: compare to that precision
    atol = 1e-6 if suffix == ".nii.gz" else 0
    for k, row in enumerate(out.index):
        for column in ("image", "mask"):
            cell = out.loc[row, column]
            path = tmp_path / f"{column}{k}{suffix}"
            cell.save(path)
            disk, memory = sitk.ReadImage(str(path)), to_sitk(cell)
            np.testing.assert_array_equal(
                sitk.GetArrayFromImage(memory), sitk.GetArrayFromImage(disk)
            )
            assert memory.GetPixelID() == disk.GetPixelID()
            for name in ("GetSpacing", "GetOrigin", "GetDirection"):
                np.testing.assert_allclose(
                    getattr(memory, name)(), getattr(disk, name)(), rtol=0, atol=atol
                )
            assert memory.GetSize() == disk.GetSize()


def test_table_passthrough_in_memory_input_and_rng_untouched():
    table = make_multisite_cohort(5, 2, shape=(7, 8, 9), random_state=3)
    table = table.iloc[::-1]
    pre = TorchIOPreprocessor(tio.Compose([tio.CropOrPad((4, 5, 6))]), mask=None)
    torch.manual_seed(123)
    np.random.seed(7)  # noqa: NPY002
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1]  # noqa: NPY002
    out = pre.fit_transform(table)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    assert list(out.index) == list(table.index)
    assert list(out.columns) == list(table.columns)
    pd.testing.assert_frame_equal(
        out.drop(columns=["image"]), table.drop(columns=["image"])
    )
    for row in table.index:
        assert out.loc[row, "image"].shape == (1, 4, 5, 6)
        assert out.loc[row, "mask"] is table.loc[row, "mask"]  # mask=None: untouched
    assert list(pre.get_feature_names_out()) == list(table.columns)
    assert pre.n_features_in_ == table.shape[1]
    pandas_out = clone(pre).set_output(transform="pandas").fit_transform(table)
    assert list(pandas_out.index) == list(table.index)


def test_errors_name_row_column_and_file(split, tmp_path):
    train, _ = split
    bad = train.copy()
    missing = str(tmp_path / "nothing.nii.gz")
    bad.loc[bad.index[1], "image"] = missing
    pre = TorchIOPreprocessor(tio.ToCanonical()).fit(train)
    with pytest.raises(ImageReadError) as info:
        pre.transform(bad)
    message = str(info.value)
    assert repr(bad.index[1]) in message and "'image'" in message
    assert missing in message
    with pytest.raises(ValueError, match="needs column"):
        TorchIOPreprocessor(tio.ToCanonical(), mask="seg").fit(train)
    with pytest.raises(TypeError, match="subject table"):
        TorchIOPreprocessor(tio.ToCanonical()).fit(np.zeros((3, 2)))


@pytest.mark.parametrize("n_jobs", [1, 2, None])
def test_n_jobs_is_deprecated_and_changes_nothing(split, n_jobs):
    train, test = split
    transform = tio.Compose([tio.Resample(1.2), tio.HistogramStandardization({})])
    default = TorchIOPreprocessor(transform)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default warns nothing
        plain = default.fit(train).transform(test)
    assert default.get_params()["n_jobs"] == "deprecated"
    pre = TorchIOPreprocessor(transform, n_jobs=n_jobs)
    with pytest.warns(FutureWarning, match=r"deprecated in version 0\.1 and will be "
                      r"removed in 0\.3.*RadiomicsExtractor\(n_jobs=\.\.\.\)"):
        pre.fit(train)
    out = pre.transform(test)
    for row in test.index:
        for column in ("image", "mask"):
            assert torch.equal(out.loc[row, column].data,
                               plain.loc[row, column].data)


@pytest.mark.slow
def test_preprocessed_table_feeds_radiomics_like_saved_files(cohort_dir, tmp_path):
    radiomics = pytest.importorskip("sklearn_medprep.radiomics._extractor")
    train, test = cohort_dir.iloc[:8], cohort_dir.iloc[8:]
    pre = TorchIOPreprocessor(
        [tio.Resample(1.0), tio.HistogramStandardization({}, masking_method="mask")]
    ).fit(train)
    memory = pre.transform(test)
    disk = memory.copy()
    for row in memory.index:
        for column in ("image", "mask"):
            path = tmp_path / f"{row}_{column}.nrrd"
            memory.loc[row, column].save(path)
            disk.loc[row, column] = str(path)
    extractor = radiomics.RadiomicsExtractor(settings={"setting": {"binWidth": 5}})
    from_memory = extractor.fit_transform(memory)
    from_disk = clone(extractor).fit_transform(disk)
    assert from_memory.shape[0] == len(test) and from_memory.shape[1] > 50
    pd.testing.assert_frame_equal(from_memory, from_disk, check_exact=True)


def test_clone_and_nested_params_with_bare_random_transform():
    pre = TorchIOPreprocessor(tio.RandomFlip())
    cloned = clone(pre)
    assert isinstance(cloned.transforms, tio.RandomFlip)
    assert cloned.transforms is not pre.transforms
    assert pre.get_params(deep=True)["transforms"] is pre.transforms
