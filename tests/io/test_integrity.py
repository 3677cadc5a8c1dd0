"""Broken images fail loudly: truncated files and non-finite ROI voxels.

ITK reads a truncated NIfTI file without an error (missing voxels become 0) and
PyRadiomics extracts NaN/inf voxels silently; every case below must be an
``ImageReadError`` naming row, column and file, in ``validate_table``, in
``RadiomicsExtractor`` (``on_error="raise"``) and as a NaN row listed in
``extraction_errors_`` (``on_error="nan"``).
"""

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torchio as tio

from sklearn_medprep import RadiomicsExtractor, TorchIOPreprocessor, validate_table
from sklearn_medprep.exceptions import ImageReadError, MedprepWarning
from sklearn_medprep.io._integrity import check_file, count_nonfinite
from sklearn_medprep.io._read import to_sitk

SETTINGS = {"featureClass": {"firstorder": ["Mean", "Variance"]}}
SHAPE = (9, 10, 11)  # z, y, x


def _arrays():
    rng = np.random.default_rng(0)
    image = rng.normal(700, 40, SHAPE).astype(np.float32)
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:7, 3:8, 3:9] = 1
    return image, mask


def _sitk(array):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.2, 1.5))
    return image


def _write(folder, name, array, compress=False):
    path = folder / name
    sitk.WriteImage(_sitk(array), str(path), useCompression=compress)
    return path


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])
    return path


def _header_only(folder, suffix, image):
    """A file holding the header of a valid image and no voxel."""
    full = _write(folder, f"full{suffix}", image)
    out = folder / f"header_only{suffix}"
    if suffix == ".nii":
        out.write_bytes(full.read_bytes()[:352])
    elif suffix == ".nii.gz":
        with gzip.open(out, "wb") as handle:
            handle.write(gzip.decompress(full.read_bytes())[:352])
    else:  # NRRD and MHA: text header up to the data
        data = full.read_bytes()
        end = data.index(b"\n\n") + 2 if suffix == ".nrrd" else (
            data.index(b"ElementDataFile = LOCAL\n") + 24
        )
        out.write_bytes(data[:end])
    return out


def _broken(folder, case, suffix):
    image, _ = _arrays()
    if case == "truncated":
        path = _write(folder, f"img{suffix}", image)
        return _truncate(path, lambda n: n - 100)
    if case == "truncated_gz":
        path = _write(folder, f"img{suffix}", image, compress=True)
        return _truncate(path, lambda n: n // 2)
    if case == "header_only":
        return _header_only(folder, suffix, image)
    raise AssertionError(case)


# (case, file suffix, expected message)
BROKEN = [
    ("truncated", ".nii", "header announces 4312 bytes"),
    ("truncated_gz", ".nii.gz", "compressed data is truncated"),
    ("header_only", ".nii", "announces 4312 bytes of header and voxels but it holds 3"),
    ("header_only", ".nii.gz", "announces 4312 bytes of header and voxels but it hol"),
    ("truncated", ".nrrd", "announces 3960 bytes of voxels"),
    ("truncated_gz", ".nrrd", "compressed data is truncated"),
    ("header_only", ".nrrd", "announces 3960 bytes of voxels but it holds 0"),
    ("truncated", ".mha", "announces 3960 bytes of voxels"),
    ("truncated_gz", ".mha", "compressed data is truncated"),
    ("header_only", ".mha", "announces 3960 bytes of voxels but it holds 0"),
]


def _table(tmp_path, broken):
    image, mask = _arrays()
    good = _write(tmp_path, "good.nrrd", image)
    mask_file = _write(tmp_path, "mask.nrrd", mask)
    return pd.DataFrame(
        {"image": [str(good), str(broken)], "mask": [str(mask_file)] * 2},
        index=pd.Index(["ok", "bad"], name="subject"),
    )


@pytest.mark.parametrize(("case", "suffix", "message"), BROKEN)
def test_broken_file_is_an_error_everywhere(tmp_path, case, suffix, message):
    broken = _broken(tmp_path, case, suffix)
    # ITK alone reads the NIfTI cases without complaint
    with pytest.raises(ImageReadError, match=message):
        check_file(broken)
    table = _table(tmp_path, broken)
    where = rf"\[row 'bad', column 'image', file '{broken}'\]"
    with pytest.raises(ImageReadError, match=where + ".*" + message):
        validate_table(table, mask="mask")
    with pytest.raises(ImageReadError, match=where + ".*" + message):
        RadiomicsExtractor(settings=SETTINGS).fit_transform(table)
    extractor = RadiomicsExtractor(settings=SETTINGS, on_error="nan")
    with pytest.warns(MedprepWarning, match="1 of 2 rows failed"):
        out = extractor.fit_transform(table)
    assert out.loc["bad"].isna().all() and out.loc["ok"].notna().all()
    errors = extractor.extraction_errors_
    assert errors[["row", "column", "file"]].values.tolist() == [
        ["bad", "image", str(broken)]
    ]
    assert message in errors["message"].iloc[0]
    # preprocessed (deferred) images read through the same checks when read
    out = TorchIOPreprocessor(tio.ZNormalization()).fit_transform(table)
    with pytest.raises(ImageReadError, match=message):
        out.loc["bad", "image"].load()
    with pytest.raises(ImageReadError, match=where + ".*" + message):
        RadiomicsExtractor(settings=SETTINGS).fit_transform(out)


def test_nifti_truncated_is_read_silently_by_itk(tmp_path):
    """The reason for the checks: ITK gives zeros, not an error."""
    image, _ = _arrays()
    path = _truncate(_write(tmp_path, "img.nii", image), lambda n: n // 2)
    voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert (voxels == 0).sum() > image.size // 3


def test_corrupt_gzip_crc_is_detected(tmp_path):
    image, _ = _arrays()
    path = _write(tmp_path, "img.nii.gz", image)
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # inside the CRC32/ISIZE trailer
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        to_sitk(str(path))


def test_mhd_with_short_raw_file(tmp_path):
    image, _ = _arrays()
    path = _write(tmp_path, "img.mhd", image)
    raw = tmp_path / "img.raw"
    _truncate(raw, lambda n: n - 8)
    with pytest.raises(ImageReadError, match=r"img\.raw.*3960 bytes.*3952"):
        to_sitk(str(path))


def test_dicom_slice_truncated_is_not_dropped(tmp_path):
    image, _ = _arrays()
    folder = tmp_path / "series"
    folder.mkdir()
    volume = sitk.Cast(_sitk(image), sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.GetDepth()):
        slice_ = volume[:, :, k]
        for tag, value in {
            "0008|0060": "CT",
            "0020|000d": "1.2.3", "0020|000e": "1.2.3.4",
            "0020|0032": f"0\\0\\{1.5 * k}", "0020|0013": str(k),
            "0020|0037": "1\\0\\0\\0\\1\\0",
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(slice_)
    assert to_sitk(str(folder)).GetDepth() == volume.GetDepth()
    _truncate(folder / "004.dcm", lambda n: n - 150)
    with pytest.raises(ImageReadError, match=r"004\.dcm.*not readable"):
        to_sitk(str(folder), row=0, column="image")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["file", "memory", "torchio"])
def test_nonfinite_roi_voxels_blame_the_image(tmp_path, value, where):
    image, mask = _arrays()
    image[4, 5, 5] = value  # inside the ROI
    image[5, 6, 6] = value
    image[0, 0, 0] = value  # outside: not counted
    if where == "file":
        cell = str(_write(tmp_path, "img.nii.gz", image))
    elif where == "memory":
        cell = _sitk(image)
    else:
        cell = tio.ScalarImage.from_sitk(_sitk(image))
    good = _sitk(_arrays()[0])
    table = pd.DataFrame(
        {"image": [good, cell], "mask": [_sitk(mask)] * 2}, index=["ok", "bad"]
    )
    file = f", file '{cell}'" if where == "file" else ""
    match = (rf"\[row 'bad', column 'image'{file}\] "
             r"2 non-finite \(NaN or infinite\) voxel\(s\) inside the ROI")
    with pytest.raises(ImageReadError, match=match):
        RadiomicsExtractor(settings=SETTINGS).fit_transform(table)
    extractor = RadiomicsExtractor(settings=SETTINGS, on_error="nan")
    with pytest.warns(MedprepWarning, match="1 of 2"):
        out = extractor.fit_transform(table)
    assert out.loc["bad"].isna().all()
    assert extractor.extraction_errors_["column"].tolist() == ["image"]


def test_nonfinite_outside_roi_is_extracted_unchanged():
    image, mask = _arrays()
    table = pd.DataFrame({"image": [_sitk(image)], "mask": [_sitk(mask)]})
    reference = RadiomicsExtractor(settings=SETTINGS).fit_transform(table)
    image[0, 0, 0] = np.nan
    table["image"] = pd.Series([_sitk(image)], dtype=object)
    out = RadiomicsExtractor(settings=SETTINGS).fit_transform(table)
    pd.testing.assert_frame_equal(out, reference)
    roi = image[mask == 1]
    mean = out["original_firstorder_Mean"].iloc[0]
    assert mean == pytest.approx(roi.mean(), rel=1e-5)


def test_count_nonfinite():
    image, mask = _arrays()
    image[4, 5, 5] = np.nan
    image[0, 0, 0] = np.inf
    assert count_nonfinite(_sitk(image)) == 2
    assert count_nonfinite(_sitk(image), _sitk(mask), 1) == 1
    assert count_nonfinite(_sitk(mask), _sitk(mask), 1) == 0  # integer image


def test_intact_files_pass(tmp_path):
    image, _ = _arrays()
    for suffix in (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"):
        for compress in (False, True):
            path = _write(tmp_path, f"ok{int(compress)}{suffix}", image, compress)
            check_file(path)
            np.testing.assert_array_equal(
                sitk.GetArrayFromImage(to_sitk(str(path))), image
            )
    shutil.rmtree(tmp_path)
