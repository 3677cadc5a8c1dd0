"""convert_to_nifti and the SHA-256 manifest: lossless, atomic, verifiable."""

import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import load_image
from sklearn_medprep.dicom import (
    convert_to_nifti,
    verify_manifest,
    write_checksum_manifest,
)
from sklearn_medprep.exceptions import (
    ImageReadError,
    OutputWriteError,
    SubjectTableError,
)
from sklearn_medprep.io import file_sha256


def _image():
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(size=(6, 5, 4)).astype(np.float32))
    image.SetSpacing((0.7, 1.3, 2.9))
    image.SetOrigin((-123.456, 78.9, 10.125))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    return image


@pytest.fixture
def table(raw_cohort, tmp_path):
    _, truth = raw_cohort
    nrrd = tmp_path / "in" / "b.nrrd"
    nrrd.parent.mkdir()
    sitk.WriteImage(_image(), str(nrrd))
    return pd.DataFrame(
        {"image": [truth["folder"][0], str(nrrd), _image()], "age": [50, 60, 70]},
        index=pd.Index(["sub-01", "sub 02", "sub-03"], name="subject"),
    )


def test_conversion_keeps_voxels_and_geometry(table, tmp_path):
    out = convert_to_nifti(table, tmp_path / "nii")
    assert out.index.equals(table.index)
    assert out["age"].tolist() == [50, 60, 70]
    assert [p.rsplit("/", 1)[-1] for p in out["image"]] == [
        "sub-01.nii.gz", "sub_02.nii.gz", "sub-03.nii.gz"]
    for before, after in zip(table["image"], out["image"]):
        ref, got = load_image(before), sitk.ReadImage(after)
        assert got.GetPixelID() == ref.GetPixelID()
        assert got.GetSize() == ref.GetSize()
        np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), rtol=1e-6,
                                   atol=1e-6)
        np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(got),
                                      sitk.GetArrayFromImage(ref))
    # nibabel reads the same voxels (x, y, z order)
    voxels = np.asanyarray(nib.load(out["image"].iloc[2]).dataobj)
    np.testing.assert_array_equal(
        voxels, sitk.GetArrayFromImage(table["image"].iloc[2]).transpose(2, 1, 0))


def test_manifest_lists_every_file_and_verify_finds_changes(table, tmp_path):
    folder = tmp_path / "nii"
    out = convert_to_nifti(table, folder)
    manifest = pd.read_csv(folder / "manifest-sha256.csv")
    assert manifest["file"].tolist() == sorted(
        p.rsplit("/", 1)[-1] for p in out["image"])
    for name, size, digest in manifest.itertuples(index=False):
        data = (folder / name).read_bytes()
        assert size == len(data)
        assert digest == hashlib.sha256(data).hexdigest() == file_sha256(folder / name)
    check = verify_manifest(folder, folder / "manifest-sha256.csv")
    assert check.ok and check.n_checked == 3 and check.to_frame().empty

    (folder / "sub-01.nii.gz").write_bytes(b"changed")
    (folder / "sub_02.nii.gz").unlink()
    (folder / "extra" ).mkdir()
    (folder / "extra" / "notes.txt").write_text("x")
    check = verify_manifest(folder, folder / "manifest-sha256.csv")
    assert not check.ok
    assert (check.changed, check.missing, check.extra) == (
        ["sub-01.nii.gz"], ["sub_02.nii.gz"], ["extra/notes.txt"])
    assert check.to_frame()["status"].tolist() == ["changed", "missing", "extra"]
    with pytest.raises(SubjectTableError, match="1 changed .*1 missing.*1 extra"):
        verify_manifest(folder, folder / "manifest-sha256.csv", errors="raise")


def test_manifest_elsewhere_and_a_restored_copy(tmp_path):
    folder = tmp_path / "data"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.bin").write_bytes(b"\x00\x01" * 100)
    manifest = write_checksum_manifest(folder, tmp_path / "backup.csv")
    assert verify_manifest(folder, manifest).ok
    (folder / "a" / "x.bin").write_bytes(b"\x00\x01" * 99 + b"\x00\x02")  # same size
    assert verify_manifest(folder, manifest).changed == ["a/x.bin"]


def test_unreadable_cell_names_row_and_writes_nothing(table, tmp_path):
    table.loc["sub-03", "image"] = str(tmp_path / "missing.nii.gz")
    with pytest.raises(ImageReadError, match=r"row 'sub-03', column 'image'"):
        convert_to_nifti(table, tmp_path / "nii")
    assert not [p for p in (tmp_path / "nii").rglob("*") if p.is_file()]


def test_existing_output_is_refused_without_overwrite(table, tmp_path):
    convert_to_nifti(table, tmp_path / "nii")
    with pytest.raises(OutputWriteError, match="exists already"):
        convert_to_nifti(table, tmp_path / "nii")
    again = convert_to_nifti(table, tmp_path / "nii", overwrite=True)
    folder = tmp_path / "nii"
    assert verify_manifest(folder, folder / "manifest-sha256.csv").ok
    assert again["image"].tolist() == convert_to_nifti(
        table, tmp_path / "nii", overwrite=True)["image"].tolist()
