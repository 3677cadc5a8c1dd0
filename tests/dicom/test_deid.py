"""deidentify_dicom: no profile identifier survives, pixels equal, pseudonyms stable."""

import datetime as dt
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicognito.anonymizer import Anonymizer

from sklearn_medprep import load_image
from sklearn_medprep.dicom import deidentify_dicom, scan_dicom
from sklearn_medprep.dicom._profile import EMPTY, REMOVE
from sklearn_medprep.exceptions import ImageReadError

# the common identifying attributes, listed by hand (not from the code under test)
HAND_LIST = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientAddress",
    "OtherPatientIDs", "InstitutionName", "InstitutionAddress", "StationName",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "AccessionNumber", "StudyID", "StudyDescription", "DeviceSerialNumber",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
    "FrameOfReferenceUID", "StudyDate",
]


def _dicognito_keywords():
    """The attributes dicognito's own action list names."""
    actions = Anonymizer(seed="x").describe_actions()
    return set(re.findall(r"\* (?:Remove|Replace) ([A-Za-z]+)\b", actions))


def _files(folder):
    return sorted(Path(folder).rglob("*.dcm"))


def _values(ds):
    out = {}
    for element in ds.iterall():
        if element.keyword and element.VR != "SQ":
            out.setdefault(element.keyword, str(element.value))
    return out


@pytest.fixture
def deidentified(raw_cohort, tmp_path):
    root, truth = raw_cohort
    written = deidentify_dicom(root, tmp_path / "out", key="secret-1")
    return root, truth, tmp_path / "out", written


def test_no_identifier_of_the_profile_survives(deidentified):
    root, _, out, written = deidentified
    sources, outputs = _files(root), _files(out)
    assert len(outputs) == len(sources) == len(written)
    original = {}
    for file in sources:
        for keyword, value in _values(pydicom.dcmread(file)).items():
            if value.strip():
                original.setdefault(keyword, set()).add(value)
    listed = _dicognito_keywords() | set(REMOVE) | set(EMPTY) | set(HAND_LIST)
    assert {"PatientID", "AccessionNumber", "InstitutionName"} <= _dicognito_keywords()
    present = [k for k in listed if k in original]
    assert len(present) >= 20  # the synthetic files carry most of them
    identifying = {v for k in present for v in original[k] if len(v) >= 3}
    for file in outputs:
        ds = pydicom.dcmread(file)
        values = _values(ds)
        for keyword in present:
            assert values.get(keyword, "") not in original[keyword], (keyword, file)
        for element in ds.iterall():
            assert not element.tag.is_private, (element, file)
            if element.VR in ("PN", "UI", "DA") and element.value:
                if not element.keyword.endswith("ClassUID") and \
                        element.keyword != "TransferSyntaxUID":
                    assert str(element.value) not in original.get(
                        element.keyword, ()), (element, file)
        # and no original identifying text anywhere in the bytes
        raw = file.read_bytes()
        for value in identifying:
            assert value.encode() not in raw, (value, file)
        assert ds.PatientIdentityRemoved == "YES"
        for keyword in EMPTY & set(values):
            assert values[keyword] in ("", "None")


def test_pixel_data_bit_identical_and_series_kept(deidentified):
    root, truth, out, _ = deidentified
    before = Counter(pydicom.dcmread(f).PixelData for f in _files(root))
    after = Counter(pydicom.dcmread(f).PixelData for f in _files(out))
    assert before == after
    table = scan_dicom(out)
    assert len(table) == len(truth) and table["problem"].isna().all()
    assert sorted(table["n_files"]) == sorted(truth["n_files"])
    volumes = [sitk.GetArrayFromImage(load_image(f)) for f in truth["folder"]]
    for cell in table["image"]:
        got = sitk.GetArrayFromImage(load_image(cell))
        assert sum(np.array_equal(got, v) for v in volumes) == 1


def test_pseudonyms_stable_across_series_and_runs_and_keyed(deidentified, tmp_path):
    root, truth, out, written = deidentified
    # one pseudonym and one study per subject, over its MR and CT series
    assert written["PatientID"].nunique() == truth["PatientID"].nunique()
    assert written.groupby("PatientID")["SeriesInstanceUID"].nunique().eq(2).all()
    assert written.groupby("PatientID")["StudyInstanceUID"].nunique().eq(1).all()
    again = deidentify_dicom(root, tmp_path / "again", key="secret-1")
    assert sorted(again["PatientID"]) == sorted(written["PatientID"])
    assert sorted(again["SeriesInstanceUID"]) == sorted(written["SeriesInstanceUID"])
    assert [Path(f).relative_to(tmp_path / "again") for f in sorted(again["file"])] \
        == [Path(f).relative_to(out) for f in sorted(written["file"])]
    other = deidentify_dicom(root, tmp_path / "other", key="secret-2")
    assert not set(other["PatientID"]) & set(written["PatientID"])
    assert not set(other["SeriesInstanceUID"]) & set(written["SeriesInstanceUID"])


def test_dates_shifted_by_one_offset(deidentified):
    root, _, out, _ = deidentified

    def study_dates(folder):
        return sorted({pydicom.dcmread(f).StudyDate for f in _files(folder)})

    ref, new = study_dates(root), study_dates(out)
    assert len(ref) == len(new) == 2  # one study date per subject
    deltas = {
        (dt.datetime.strptime(a, "%Y%m%d") - dt.datetime.strptime(b, "%Y%m%d")).days
        for a, b in zip(ref, new)
    }
    assert len(deltas) == 1  # one offset: intervals between subjects kept
    assert 62 <= deltas.pop() <= 731
    assert all(pydicom.dcmread(f).PatientBirthDate == "" for f in _files(out))


def test_keep_retains_patient_characteristics(raw_cohort, tmp_path):
    root, _ = raw_cohort
    deidentify_dicom(root, tmp_path / "out", key="k",
                     keep=["PatientAge", "PatientSex"])
    def by_pixels(folder):
        return sorted(_files(folder), key=lambda f: pydicom.dcmread(f).PixelData)

    for src, dst in zip(by_pixels(root), by_pixels(tmp_path / "out")):
        a, b = pydicom.dcmread(src), pydicom.dcmread(dst)
        assert (b.PatientAge, b.PatientSex) == (a.PatientAge, a.PatientSex)
        assert "StudyDescription" not in b


def test_refusals_leave_nothing(raw_cohort, tmp_path):
    root, truth = raw_cohort
    with pytest.raises(ValueError, match="non-empty"):
        deidentify_dicom(root, tmp_path / "out", key="")
    with pytest.raises(ValueError, match="inside the source"):
        deidentify_dicom(root, root / "anon", key="k")
    burned = sorted(Path(truth["folder"][2]).glob("*.dcm"))[1]
    ds = pydicom.dcmread(burned)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(burned)
    with pytest.raises(ImageReadError, match="BurnedInAnnotation") as info:
        deidentify_dicom(root, tmp_path / "out", key="k")
    assert info.value.file == str(burned)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_a_subject_keeps_its_pseudonym_across_studies(raw_cohort, tmp_path):
    from sklearn_medprep.datasets import make_dicom_cohort

    root, truth = raw_cohort
    later = tmp_path / "later"  # the same patients, another visit (new UIDs)
    truth_later = make_dicom_cohort(later, n_subjects=2, shape=(5, 6, 4),
                                    random_state=1)
    assert not set(truth_later["StudyInstanceUID"]) & set(truth["StudyInstanceUID"])
    first = deidentify_dicom(root, tmp_path / "a", key="k")
    second = deidentify_dicom(later, tmp_path / "b", key="k")
    assert sorted(set(first["PatientID"])) == sorted(set(second["PatientID"]))
    assert not set(first["StudyInstanceUID"]) & set(second["StudyInstanceUID"])
