"""Reading image cells: every accepted form gives the same voxels and geometry."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torchio as tio

from sklearn_medprep import load_image
from sklearn_medprep.exceptions import ImageReadError
from sklearn_medprep.io._read import image_fingerprint, read_geometry


def _reference_image():
    rng = np.random.default_rng(0)
    array = rng.normal(100, 20, size=(9, 8, 7)).astype(np.float32)  # z, y, x
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((-3.0, 4.0, 12.5))
    return image


def _assert_same(a, b, atol=1e-4):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=atol)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=atol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=atol)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_file_formats_give_the_reference_voxels(tmp_path, suffix):
    ref = _reference_image()
    file = tmp_path / f"img{suffix}"
    sitk.WriteImage(ref, str(file))
    _assert_same(load_image(str(file)), ref)
    _assert_same(load_image(file), ref)


def test_dicom_series_folder(tmp_path):
    ref = sitk.Cast(sitk.RescaleIntensity(_reference_image(), 0, 1000), sitk.sitkInt16)
    folder = tmp_path / "series"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = ref.GetDirection()
    for k in range(ref.GetDepth()):
        slice_ = ref[:, :, k]
        position = ref.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.2",
            "0020|0032": "\\".join(map(str, position)),
            "0020|0013": str(k),
            "0020|0037": "\\".join(map(str, direction[0:3] + direction[3:6])),
            "0028|0030": f"{ref.GetSpacing()[1]}\\{ref.GetSpacing()[0]}",
            "0018|0050": str(ref.GetSpacing()[2]),
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)
    loaded = load_image(str(folder))
    _assert_same(loaded, ref, atol=1e-3)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ImageReadError, match="no DICOM series") as err:
        load_image(tmp_path, row="s7", column="ct")
    assert "row 's7'" in str(err.value) and "column 'ct'" in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_png_grey_and_rgb(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    sitk.WriteImage(sitk.GetImageFromArray(grey), str(tmp_path / "g.png"))
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(load_image(tmp_path / "g.png")), grey
    )
    rgb = np.stack([grey, grey, grey], axis=-1)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "c.png"))
    loaded = load_image(tmp_path / "c.png")
    assert loaded.GetNumberOfComponentsPerPixel() == 1
    np.testing.assert_allclose(sitk.GetArrayFromImage(loaded), grey, atol=1e-3)


def test_in_memory_forms_match_the_file(tmp_path):
    ref = _reference_image()
    file = tmp_path / "img.nii.gz"
    sitk.WriteImage(ref, str(file))
    from_file = load_image(file)
    _assert_same(load_image(ref), ref)
    _assert_same(load_image(tio.ScalarImage(file)), from_file)
    _assert_same(load_image(nib.load(str(file))), from_file)
    tio_image = load_image(file, backend="torchio")
    assert isinstance(tio_image, tio.ScalarImage)
    assert tio_image.shape == (1, 7, 8, 9)
    _assert_same(load_image(tio_image), from_file)
    label = load_image(file, backend="torchio", label=True)
    assert isinstance(label, tio.LabelMap)


def test_missing_and_corrupt_files_name_row_column_file(tmp_path):
    with pytest.raises(ImageReadError) as err:
        load_image(tmp_path / "nope.nii.gz", row=4, column="image")
    message = str(err.value)
    assert "row 4" in message and "column 'image'" in message
    assert "nope.nii.gz" in message
    bad = tmp_path / "bad.nii.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"this is not a nifti file")
    with pytest.raises(ImageReadError, match="cannot read image") as err:
        load_image(bad, row="sub-1", column="mask")
    assert err.value.file == str(bad) and err.value.row == "sub-1"
    with pytest.raises(ImageReadError, match="cannot read image header"):
        read_geometry(bad, row="sub-1", column="mask")


@pytest.mark.parametrize("cell", [None, np.nan, "", "  "])
def test_missing_cells(cell):
    with pytest.raises(ImageReadError, match="missing image"):
        load_image(cell, row=0, column="image")


def test_unsupported_cell_type():
    with pytest.raises(ImageReadError, match="unsupported image cell of type ndarray"):
        load_image(np.zeros((3, 3)), row=0, column="image")


def test_fingerprint_depends_on_content_and_geometry():
    ref = _reference_image()
    same = sitk.Image(ref)
    assert image_fingerprint(ref) == image_fingerprint(same)
    moved = sitk.Image(ref)
    moved.SetOrigin((0.0, 0.0, 0.0))
    assert image_fingerprint(moved) != image_fingerprint(ref)
    changed = sitk.Image(ref)
    changed[0, 0, 0] = 1.0
    assert image_fingerprint(changed) != image_fingerprint(ref)
