"""FreeSurfer ``.mgz``/``.mgh`` cells and nibabel images of any byte order.

ITK has no MGH reader ("Unable to determine ImageIO reader") and SimpleITK
refuses big-endian arrays ("dtype: >f4 is not supported"). Every reader of the
library goes through ``sklearn_medprep.io``; the geometry must be nibabel's
affine converted from RAS to LPS, and a broken file an error naming row,
column and file.
"""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torchio as tio

from sklearn_medprep import (
    RadiomicsExtractor,
    TorchIOPreprocessor,
    VoxelComBatHarmonizer,
    validate_table,
)
from sklearn_medprep.datasets import make_voxel_cohort
from sklearn_medprep.exceptions import ImageReadError
from sklearn_medprep.io._read import read_geometry, to_sitk, to_torchio

SETTINGS = {"featureClass": {"firstorder": [], "shape": [], "glcm": ["Contrast"]}}
_C, _S = np.cos(0.35), np.sin(0.35)
AFFINE = np.array([[-_C * 0.9, _S * 1.1, 0.0, 91.5], [_S * 0.9, _C * 1.1, 0.0, -120.25],
                   [0.0, 0.0, 1.4, -60.0], [0.0, 0.0, 0.0, 1.0]])


def _volumes():
    rng = np.random.default_rng(0)
    image = rng.normal(300, 50, (11, 10, 9)).astype(np.float32)  # x, y, z
    mask = np.zeros(image.shape, np.uint8)
    mask[3:8, 2:8, 2:7] = 1
    return image, mask


def _affine_of(image):
    """The RAS affine of a SimpleITK image (LPS geometry)."""
    direction = np.reshape(image.GetDirection(), (3, 3))
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    affine[:2] *= -1.0  # LPS -> RAS
    return affine


@pytest.mark.parametrize("suffix", [".mgz", ".mgh"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.int32, np.uint8])
def test_mgh_files_give_nibabels_voxels_and_affine(tmp_path, suffix, dtype):
    data = (_volumes()[0] / 4).astype(dtype)
    path = tmp_path / f"brain{suffix}"
    nib.save(nib.MGHImage(data, AFFINE), str(path))
    theirs = nib.load(str(path))
    assert theirs.dataobj.dtype.byteorder in ">|"  # MGH is big-endian on disk
    image = to_sitk(str(path))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), data.T)
    assert sitk.GetArrayViewFromImage(image).dtype == np.dtype(dtype)
    np.testing.assert_allclose(_affine_of(image), theirs.affine, rtol=0, atol=1e-12)
    np.testing.assert_allclose(image.GetSpacing(), theirs.header.get_zooms(),
                               rtol=1e-6)  # the header's zooms are float32
    assert read_geometry(str(path)) == (
        image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()
    )


def test_mgh_geometry_equals_itk_on_the_same_affine(tmp_path):
    """Same affine saved as NIfTI and read by ITK: the same physical space."""
    data = _volumes()[0]
    nib.save(nib.MGHImage(data, AFFINE), str(tmp_path / "a.mgz"))
    nifti = nib.Nifti1Image(data, nib.load(str(tmp_path / "a.mgz")).affine)
    nib.save(nifti, str(tmp_path / "a.nii.gz"))
    ours = to_sitk(str(tmp_path / "a.mgz"))
    itk = sitk.ReadImage(str(tmp_path / "a.nii.gz"))
    assert ours.GetSize() == itk.GetSize()
    for got, want in ((ours.GetSpacing(), itk.GetSpacing()),
                      (ours.GetOrigin(), itk.GetOrigin()),
                      (ours.GetDirection(), itk.GetDirection())):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # NIfTI: float32


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("kind", ["nifti", "mgh"])
def test_in_memory_nibabel_image_of_either_byte_order(kind, endian):
    data = _volumes()[0].astype(f"{endian}f4")
    cls = nib.Nifti1Image if kind == "nifti" else nib.MGHImage
    image = to_sitk(cls(data, AFFINE), row="s1", column="image")
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), data.T)
    np.testing.assert_allclose(_affine_of(image), AFFINE, rtol=0, atol=1e-12)
    torchio_image = to_torchio(cls(data, AFFINE))
    np.testing.assert_array_equal(torchio_image.data[0].numpy(), data)
    np.testing.assert_allclose(torchio_image.affine, AFFINE, rtol=0, atol=1e-12)


def _truncated_mgz(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _bad_crc_mgz(path):
    raw = bytearray(path.read_bytes())
    raw[-6] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [("img.mgz", _truncated_mgz, "compressed data is truncated or corrupt"),
     ("img.mgz", _bad_crc_mgz, "compressed data is truncated or corrupt"),
     ("img.mgh", lambda p: p.write_bytes(p.read_bytes()[:2000]),
      r"announces 4244 bytes of header and voxels but it holds 2000"),
     ("img.mgz", lambda p: p.write_bytes(b"not an image"),
      "truncated or corrupt")],
)
def test_broken_mgh_names_row_column_file(tmp_path, name, damage, message):
    image, mask = _volumes()
    good, bad = tmp_path / "good.mgz", tmp_path / name
    for path in (good, bad):
        nib.save(nib.MGHImage(image, AFFINE), str(path))
    nib.save(nib.MGHImage(mask, AFFINE), str(tmp_path / "mask.mgz"))
    damage(bad)
    table = pd.DataFrame({"image": [str(good), str(bad)],
                          "mask": [str(tmp_path / "mask.mgz")] * 2},
                         index=pd.Index(["ok", "bad"], name="subject"))
    where = rf"\[row 'bad', column 'image', file '{bad}'\] .*{message}"
    with pytest.raises(ImageReadError, match=where):
        validate_table(table, mask="mask")
    with pytest.raises(ImageReadError, match=where):
        RadiomicsExtractor(settings=SETTINGS).fit_transform(table)


def test_radiomics_on_mgz_equals_the_nifti_read_by_itk(tmp_path):
    image, mask = _volumes()
    rows = {}
    for suffix in (".mgz", ".nii.gz"):
        cls = nib.MGHImage if suffix == ".mgz" else nib.Nifti1Image
        for name, data in (("image", image), ("mask", mask)):
            nib.save(cls(data, AFFINE), str(tmp_path / f"{name}{suffix}"))
        rows[suffix] = [str(tmp_path / f"{name}{suffix}") for name in ("image", "mask")]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["image", "mask"])
    out = RadiomicsExtractor(settings=SETTINGS).fit_transform(table)
    ours, ref = out.loc[".mgz"], out.loc[".nii.gz"]
    assert ours.notna().all()
    np.testing.assert_allclose(ours.to_numpy(float), ref.to_numpy(float), rtol=1e-6)
    # in memory, MGH loaded lazily (big-endian proxy): the same features
    memory = table.map(lambda p: nib.load(p) if p.endswith(".mgz") else p)
    again = RadiomicsExtractor(settings=SETTINGS).fit_transform(memory.loc[[".mgz"]])
    pd.testing.assert_frame_equal(again, out.loc[[".mgz"]])


def test_torchio_preprocessor_reads_mgz_as_torchio_does(tmp_path):
    image = _volumes()[0]
    path = tmp_path / "img.mgz"
    nib.save(nib.MGHImage(image, AFFINE), str(path))
    table = pd.DataFrame({"image": [str(path)]}, index=["s1"])
    preprocessor = TorchIOPreprocessor(tio.RescaleIntensity((0, 1)), mask=None)
    out = preprocessor.fit_transform(table)
    got = out.loc["s1", "image"]
    got.load()
    with warnings.catch_warnings():  # TorchIO: "Trying NiBabel..." after ITK fails
        warnings.simplefilter("ignore", UserWarning)
        theirs = tio.RescaleIntensity((0, 1))(tio.ScalarImage(path))  # its reader
    np.testing.assert_allclose(got.data.numpy(), theirs.data.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.affine, theirs.affine, rtol=0, atol=1e-6)


def test_voxel_combat_on_mgz_equals_nifti(tmp_path):
    table, _ = make_voxel_cohort(n_subjects=12, n_sites=2, shape=(6, 7, 5),
                                 path=tmp_path, random_state=0)
    mgz = table.copy()
    for row, cell in table["image"].items():
        nifti = nib.load(cell)
        target = str(tmp_path / f"{row}.mgz")
        nib.save(nib.MGHImage(nifti.get_fdata(dtype=np.float32), nifti.affine), target)
        mgz.loc[row, "image"] = target
    outs = []
    for cells in (table, mgz):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few subjects: EB warnings
            out = VoxelComBatHarmonizer(eb=False).fit_transform(cells)
        arrays = [sitk.GetArrayFromImage(to_sitk(c)) for c in out["image"]]
        outs.append(np.stack(arrays))
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize(("name", "message"), [
    ("img.nii.gz", "compressed data is truncated or corrupt"),
    ("img.nii", "file is truncated or corrupt: Expected 3960 bytes, got"),
])
def test_loaded_nibabel_image_of_a_truncated_file(tmp_path, name, message):
    """nibabel.load reads voxels only when asked: the error names the file.

    (A truncated ``.mgz`` already fails in ``nibabel.load``: its footer is read.)
    """
    path = tmp_path / name
    data = _volumes()[0]
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    cell = nib.load(str(path))
    where = rf"\[row 's1', column 'image', file '{path}'\] {message}"
    with pytest.raises(ImageReadError, match=where):
        to_sitk(cell, row="s1", column="image")
