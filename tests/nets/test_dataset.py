"""SubjectTableDataset: a subject table for a plain PyTorch loop, read lazily."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import torchio as tio

from sklearn_medprep import SubjectTableDataset
from sklearn_medprep.exceptions import ImageReadError, SubjectTableError


def _image(seed, shape=(7, 8, 9), spacing=(1.0, 1.5, 2.0)):
    data = np.random.default_rng(seed).normal(size=shape[::-1]).astype(np.float32)
    image = sitk.GetImageFromArray(data)
    image.SetSpacing(spacing)
    return image


def _mask(image):
    array = (sitk.GetArrayFromImage(image) > 0).astype(np.uint8)
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    return mask


@pytest.fixture
def files(tmp_path):
    """Paths of 4 rows; the files are written by the test (after the dataset)."""
    index = pd.Index(["p3", "p1", "p7", "p2"], name="subject")
    table = pd.DataFrame(
        {
            "image": [str(tmp_path / f"{r}.nii.gz") for r in index],
            "mask": [str(tmp_path / f"{r}_mask.nii.gz") for r in index],
            "y": [1, 0, 1, 0],
        },
        index=index,
    )
    return table


def _write(table, seeds):
    for (_, cells), seed in zip(table.iterrows(), seeds):
        image = _image(seed)
        sitk.WriteImage(image, cells["image"])
        sitk.WriteImage(_mask(image), cells["mask"])


def test_nothing_is_read_before_an_item_is_asked_for(files):
    dataset = SubjectTableDataset(files, "image", label="mask")  # no file yet
    assert len(dataset) == 4 and dataset.rows == ["p3", "p1", "p7", "p2"]
    _write(files, range(4))
    first = dataset[1]
    # the file as it is when the item is read, not when the dataset was made
    _write(files.iloc[[1]], [10])
    second = dataset[1]
    np.testing.assert_array_equal(
        first["image"].data[0].numpy().T, sitk.GetArrayFromImage(_image(1)))
    np.testing.assert_array_equal(
        second["image"].data[0].numpy().T, sitk.GetArrayFromImage(_image(10)))
    assert isinstance(second["mask"], tio.LabelMap)
    assert second["row"] == "p1"


def test_transform_row_identity_and_a_plain_loop(files):
    _write(files, range(4))
    transform = tio.Compose([tio.RescaleIntensity(out_min_max=(0, 1)),
                             tio.Resample(2.0)])
    dataset = SubjectTableDataset(files, ["image"], label="mask",
                                  targets=files["y"], transform=transform)
    for i, row in enumerate(files.index):
        subject = dataset[i]
        # TorchIO's own output on the same file
        reference = transform(tio.Subject(
            image=tio.ScalarImage(files.loc[row, "image"]),
            mask=tio.LabelMap(files.loc[row, "mask"])))
        np.testing.assert_allclose(subject["image"].data, reference["image"].data,
                                   atol=1e-6)
        np.testing.assert_array_equal(subject["mask"].data, reference["mask"].data)
        assert subject["row"] == row and subject["target"] == files.loc[row, "y"]
    loader = tio.SubjectsLoader(dataset, batch_size=3, shuffle=False)
    assert isinstance(loader, torch.utils.data.DataLoader)
    rows, targets = [], []
    for batch in loader:
        shape = (1, *reference["image"].spatial_shape)
        assert batch["image"][tio.DATA].shape[1:] == shape
        rows += list(batch["row"])
        targets += batch["target"].tolist()
    assert rows == list(files.index) and targets == files["y"].tolist()
    half = dataset.subset([3, 0])
    assert [half[k]["row"] for k in range(2)] == ["p2", "p3"]
    assert list(half.X.index) == ["p2", "p3"]


def test_errors_name_the_row_column_and_file(files):
    _write(files.iloc[[0, 2, 3]], [0, 2, 3])  # row p1 has no files
    dataset = SubjectTableDataset(files, "image", label="mask")
    dataset[0]
    with pytest.raises(ImageReadError, match="no such file") as info:
        dataset[1]
    assert (info.value.row, info.value.column) == ("p1", "image")
    assert info.value.file == files.loc["p1", "image"]
    # a mask on another grid
    sitk.WriteImage(_mask(_image(5, spacing=(1.0, 1.0, 1.0))), files.loc["p7", "mask"])
    with pytest.raises(SubjectTableError, match="not on the grid") as info:
        dataset[2]
    assert (info.value.row, info.value.column) == ("p7", "mask")
    with pytest.raises(SubjectTableError, match="smaller than") as info:
        SubjectTableDataset(files, min_shape=(16, 16, 16))[3]
    assert info.value.row == "p2"
    with pytest.raises(SubjectTableError, match=r"\['t1'\] are not in the table"):
        SubjectTableDataset(files, "t1")
    with pytest.raises(TypeError, match="must be a torchio Transform"):
        SubjectTableDataset(files, transform=lambda s: s)


def test_a_torchio_queue_of_patches_over_the_dataset(files):
    _write(files, range(4))
    dataset = SubjectTableDataset(files, "image", label="mask", targets=files["y"])
    queue = tio.Queue(dataset, max_length=8, samples_per_volume=2,
                      sampler=tio.UniformSampler((4, 4, 4)), num_workers=0,
                      shuffle_subjects=False, shuffle_patches=False)
    assert len(queue) == 8
    patches = [queue[k] for k in range(len(queue))]
    assert [p["row"] for p in patches] == [r for r in files.index for _ in range(2)]
    for patch in patches:
        assert patch["image"].shape == (1, 4, 4, 4)
        # the patch is the image's voxels at its location
        i, j, k = (int(v) for v in patch[tio.LOCATION][:3])
        full = dataset[dataset.rows.index(patch["row"])]["image"].data
        np.testing.assert_array_equal(patch["image"].data,
                                      full[:, i:i + 4, j:j + 4, k:k + 4])
