"""scan_dicom: a row per series, tags typed as pydicom reads them, problems reported."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from sklearn_medprep import load_image
from sklearn_medprep.dicom import scan_dicom
from sklearn_medprep.exceptions import ImageReadError, SubjectTableError


def _first(folder):
    return pydicom.dcmread(sorted(Path(folder).glob("*.dcm"))[0])


def test_one_row_per_series_with_tags_as_pydicom_reads_them(raw_cohort):
    root, truth = raw_cohort
    (root / "README.txt").write_text("not DICOM")  # ignored
    table = scan_dicom(root, extra_tags=["ScanningSequence", "DeviceSerialNumber"])
    assert len(table) == len(truth) == 4
    assert table["problem"].isna().all()
    by_uid = table.set_index("SeriesInstanceUID")
    for _, row in truth.iterrows():
        got = by_uid.loc[row["SeriesInstanceUID"]]
        ref = _first(row["folder"])
        assert got["image"] == row["folder"]
        assert got["n_files"] == len(list(Path(row["folder"]).glob("*.dcm")))
        assert got["PatientID"] == ref.PatientID
        assert got["Manufacturer"] == ref.Manufacturer
        assert got["ManufacturerModelName"] == ref.ManufacturerModelName
        assert got["InstitutionName"] == ref.InstitutionName
        assert got["SliceThickness"] == float(ref.SliceThickness)
        assert got["PixelSpacing"] == tuple(float(v) for v in ref.PixelSpacing)
        assert got["SeriesNumber"] == int(ref.SeriesNumber)
        assert got["StudyDate"] == pd.Timestamp(ref.StudyDate)
        assert got["DeviceSerialNumber"] == ref.DeviceSerialNumber
        if ref.Modality == "MR":
            assert got["MagneticFieldStrength"] == float(ref.MagneticFieldStrength)
            assert got["EchoTime"] == float(ref.EchoTime)
            assert np.isnan(got["KVP"])
        else:
            assert got["KVP"] == float(ref.KVP)
            assert got["ConvolutionKernel"] == ref.ConvolutionKernel
    assert table["MagneticFieldStrength"].dtype == np.float64
    assert str(table["SeriesNumber"].dtype) == "Int64"
    assert pd.api.types.is_datetime64_any_dtype(table["StudyDate"])
    # a stable id per series: the same in every scan, from the UID
    assert table.index.name == "series" and table.index.is_unique
    assert table.index.tolist() == [
        hashlib.sha256(uid.encode()).hexdigest()[:16]
        for uid in table["SeriesInstanceUID"]
    ]
    assert scan_dicom(root).index.equals(table.index)


def test_site_from_tags_and_image_cell_reads(raw_cohort):
    root, truth = raw_cohort
    table = scan_dicom(root, tags=["Modality"], site_from=True)
    mr = table[table["Modality"] == "MR"]
    expected = [
        f"{m} | {model} | {field:g}" for m, model, field in
        truth[truth["Modality"] == "MR"][
            ["Manufacturer", "ManufacturerModelName", "MagneticFieldStrength"]
        ].itertuples(index=False)
    ]
    assert sorted(mr["site"]) == sorted(expected)
    ct = table.loc[table["Modality"] == "CT", "site"]
    assert ct.str.endswith("| unknown").all()
    custom = scan_dicom(root, tags=["Modality"], site_from=["InstitutionName"])
    assert set(custom["site"]) == set(truth["InstitutionName"])
    # the image cell is what the library's reader reads
    image = load_image(table["image"].iloc[0])
    assert image.GetSize()[2] == table["n_files"].iloc[0]


def test_bad_keyword_is_refused(raw_cohort):
    root, _ = raw_cohort
    with pytest.raises(ValueError, match="'Manufacturor' is not a DICOM keyword"):
        scan_dicom(root, extra_tags=["Manufacturor"])


def _edit(files, **values):
    for file in files:
        ds = pydicom.dcmread(file)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(file)


def test_two_series_in_one_folder_are_reported_not_merged(raw_cohort):
    root, truth = raw_cohort
    mr, ct = truth["folder"][0], truth["folder"][1]
    for file in Path(ct).glob("*.dcm"):
        shutil.move(file, Path(mr) / f"ct_{file.name}")
    table = scan_dicom(root)
    assert len(table) == 4  # not merged
    bad = table[table["image"] == mr]
    assert len(bad) == 2
    assert bad["problem"].str.contains("folder holds 2 series").all()
    with pytest.raises(SubjectTableError, match="folder holds 2 series") as info:
        scan_dicom(root, errors="raise")
    assert info.value.file == mr and info.value.column == "image"


def test_mixed_orientation_and_missing_slice_are_reported(raw_cohort):
    root, truth = raw_cohort
    files = sorted(Path(truth["folder"][0]).glob("*.dcm"))
    _edit(files[:1], ImageOrientationPatient=[0.0, 1.0, 0.0, 0.0, 0.0, -1.0])
    files_ct = sorted(Path(truth["folder"][1]).glob("*.dcm"))
    files_ct[1].unlink()  # a missing slice
    _edit(sorted(Path(truth["folder"][2]).glob("*.dcm"))[:1], Rows=3)
    table = scan_dicom(root).set_index("image")
    assert "mixed orientation" in table.at[truth["folder"][0], "problem"]
    assert "uneven slice spacing" in table.at[truth["folder"][1], "problem"]
    assert "mixed slice size" in table.at[truth["folder"][2], "problem"]
    assert pd.isna(table.at[truth["folder"][3], "problem"])


def test_enhanced_and_multiframe_are_refused_by_name(raw_cohort):
    root, truth = raw_cohort
    enhanced = "1.2.840.10008.5.1.4.1.1.4.1"
    _edit(Path(truth["folder"][0]).glob("*.dcm"), SOPClassUID=enhanced)
    _edit(Path(truth["folder"][1]).glob("*.dcm"), NumberOfFrames=3)
    table = scan_dicom(root).set_index("image")
    assert "Enhanced MR Image Storage" in table.at[truth["folder"][0], "problem"]
    assert "multi-frame" in table.at[truth["folder"][1], "problem"]


def test_unparsable_dicom_file_is_named(raw_cohort):
    root, truth = raw_cohort
    bad = Path(truth["folder"][0]) / "broken.dcm"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(ImageReadError, match="cannot read DICOM header") as info:
        scan_dicom(root)
    assert info.value.file == str(bad)
    with pytest.raises(ImageReadError, match="no DICOM image"):
        scan_dicom(_empty(root))


def _empty(root):
    folder = root.parent / "empty"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    return folder


def test_convert_to_gives_nifti_cells_with_the_series_geometry(raw_cohort, tmp_path):
    root, truth = raw_cohort
    _edit(Path(truth["folder"][3]).glob("*.dcm"), NumberOfFrames=2)  # a problem
    table = scan_dicom(root, convert_to=tmp_path / "nii")
    good = table["problem"].isna()
    assert good.sum() == 3
    assert table.loc[~good, "image"].isna().all()  # refused, not converted
    for row, cell in table.loc[good, "image"].items():
        assert cell == str(tmp_path / "nii" / f"{row}.nii.gz")
        folder = truth.set_index("SeriesInstanceUID").at[
            table.at[row, "SeriesInstanceUID"], "folder"]
        ref, got = load_image(folder), sitk.ReadImage(cell)
        assert got.GetSize() == ref.GetSize()
        assert got.GetPixelID() == ref.GetPixelID()
        np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(got),
                                      sitk.GetArrayFromImage(ref))


def test_without_pydicom_the_error_names_the_extra(raw_cohort, monkeypatch):
    import sys

    root, _ = raw_cohort
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError, match=r'sklearn-medprep\[dicom\]"'):
        scan_dicom(root)
