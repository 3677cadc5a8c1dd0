"""write_images: a table of in-memory images saved with its geometry, checked."""

import hashlib
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torchio as tio

from sklearn_medprep import TorchIOPreprocessor, write_images, write_manifest
from sklearn_medprep.exceptions import OutputWriteError, SubjectTableError
from sklearn_medprep.io import load_image


def _sitk_image(seed, shape=(7, 8, 9), pixel=np.float32):
    rng = np.random.default_rng(seed)
    image = sitk.GetImageFromArray(rng.normal(size=shape[::-1]).astype(pixel))
    image.SetSpacing((0.8, 1.25, 2.5))
    image.SetOrigin((-10.5, 3.25, 40.0))
    # an oblique direction (rotation about z by 30 degrees)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    return image


def _assert_same(written, reference):
    assert written.GetSize() == reference.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written),
                                  sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(written.GetSpacing(), reference.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(),
                               atol=1e-6)


@pytest.mark.parametrize("format", [".nii.gz", ".nrrd", ".mha"])
def test_every_kind_of_cell_reads_back_equal(tmp_path, format):
    base = _sitk_image(0)
    labels = sitk.Cast(sitk.GetImageFromArray(
        (sitk.GetArrayFromImage(base) > 0).astype(np.uint8)), sitk.sitkUInt8)
    labels.CopyInformation(base)
    tio_image = tio.ScalarImage.from_sitk(_sitk_image(1))
    tio_label = tio.LabelMap.from_sitk(labels)
    nib_source = _sitk_image(2)
    nib_image = nib.Nifti1Image(
        sitk.GetArrayFromImage(nib_source).T,
        tio.ScalarImage.from_sitk(nib_source).affine,
    )
    table = pd.DataFrame(
        {
            "image": [base, tio_image, nib_image],
            "mask": [labels, tio_label, np.nan],
            "age": [61.0, 47.5, 70.0],
        },
        index=pd.Index(["sub-01", "sub 02", "sub-03"], name="subject"),
    )
    paths, checksums = write_images(table, tmp_path / "out", format=format)

    assert list(paths.index) == list(table.index) and paths.index.name == "subject"
    assert list(paths.columns) == ["image", "mask", "age"]
    assert paths["age"].tolist() == table["age"].tolist()
    assert pd.isna(paths.loc["sub-03", "mask"])  # missing stays missing
    assert paths.loc["sub 02", "image"] == str(
        (tmp_path / "out" / "image" / f"sub_02{format}").resolve())
    # every cell reads back equal to what the library reads from the in-memory cell
    for row in table.index:
        for column in ("image", "mask"):
            cell = table.loc[row, column]
            if column == "mask" and row == "sub-03":
                continue
            reference = load_image(cell)
            written = sitk.ReadImage(paths.loc[row, column])
            _assert_same(written, reference)
    assert sitk.ReadImage(paths.loc["sub 02", "mask"]).GetPixelID() != sitk.sitkFloat32
    # the checksums are those of the files on disk
    assert len(checksums) == 5
    for line in checksums.itertuples():
        data = open(line.file, "rb").read()
        assert line.sha256 == hashlib.sha256(data).hexdigest()
        assert line.bytes == len(data)
        assert paths.loc[line.row, line.column] == line.file
    # a paths table is what write_manifest writes
    manifest = write_manifest(paths, tmp_path / "out" / "manifest.csv", mask="mask")
    assert pd.read_csv(manifest, index_col=0).loc["sub-01", "image"] == (
        f"image/sub-01{format}")


def test_deferred_images_of_a_preprocessor_are_computed_and_saved(tmp_path):
    images = [tio.ScalarImage.from_sitk(_sitk_image(k)) for k in range(2)]
    table = pd.DataFrame({"image": images, "site": ["a", "b"]}, index=[3, 7])
    pre = TorchIOPreprocessor([tio.RescaleIntensity(out_min_max=(0, 1))], mask=None)
    out = pre.fit_transform(table)
    paths, checksums = write_images(out, tmp_path)
    for row in table.index:
        reference = load_image(out.loc[row, "image"])
        written = sitk.ReadImage(paths.loc[row, "image"])
        _assert_same(written, reference)
        array = sitk.GetArrayFromImage(written)
        assert array.min() == 0 and array.max() == 1
    assert checksums["row"].tolist() == [3, 7]


def test_path_cells_of_a_named_column_are_converted(tmp_path):
    source = tmp_path / "in.nrrd"
    sitk.WriteImage(_sitk_image(4), str(source))
    table = pd.DataFrame({"image": [str(source)]}, index=["s1"])
    with pytest.raises(SubjectTableError, match="no in-memory image"):
        write_images(table, tmp_path / "out")
    paths, _ = write_images(table, tmp_path / "out", columns="image")
    _assert_same(sitk.ReadImage(paths.loc["s1", "image"]), sitk.ReadImage(str(source)))


def test_existing_files_are_kept_unless_overwrite(tmp_path):
    table = pd.DataFrame({"image": [_sitk_image(0), _sitk_image(1)]}, index=["a", "b"])
    target = tmp_path / "image" / "b.nii.gz"
    target.parent.mkdir()
    target.write_bytes(b"old")
    with pytest.raises(OutputWriteError, match="exists already") as info:
        write_images(table, tmp_path)
    assert info.value.row == "b"
    # all or nothing: row a's file was not left behind, b's old file untouched
    assert sorted(os.listdir(target.parent)) == ["b.nii.gz"]
    assert target.read_bytes() == b"old"
    paths, _ = write_images(table, tmp_path, overwrite=True)
    _assert_same(sitk.ReadImage(paths.loc["b", "image"]), _sitk_image(1))


def test_unreadable_cell_and_clashing_names_are_named(tmp_path):
    table = pd.DataFrame({"image": [_sitk_image(0), "missing.nii.gz"]},
                         index=["a", "b"])
    with pytest.raises(SubjectTableError, match="no such file") as info:
        write_images(table, tmp_path, columns=["image"])
    assert (info.value.row, info.value.column) == ("b", "image")
    assert not (tmp_path / "image" / "a.nii.gz").exists()
    clash = pd.DataFrame({"image": [_sitk_image(0), _sitk_image(1)]},
                         index=["a b", "a/b"])
    with pytest.raises(OutputWriteError, match="would both be written"):
        write_images(clash, tmp_path)
    with pytest.raises(SubjectTableError, match="not in the table"):
        write_images(table, tmp_path, columns=["t1"])


def test_write_manifest_refuses_in_memory_cells_by_row_and_column(tmp_path):
    table = pd.DataFrame({"image": [str(tmp_path / "a.nii.gz"),
                                    tio.ScalarImage.from_sitk(_sitk_image(0))]},
                         index=["a", "b"])
    with pytest.raises(SubjectTableError, match="in-memory image") as info:
        write_manifest(table, tmp_path / "manifest.csv")
    assert (info.value.row, info.value.column) == ("b", "image")
    assert not (tmp_path / "manifest.csv").exists()
