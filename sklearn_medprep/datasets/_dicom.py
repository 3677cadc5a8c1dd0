"""Synthetic DICOM cohorts: small classic (one slice per file) CT and MR series.

Written with pydicom, with the tags a hospital export carries (patient name,
id, birth date, institution, physicians, accession number, dates and times,
UIDs, a private block), so that the DICOM tools of
:mod:`sklearn_medprep.dicom` can be tested and shown offline.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils._optional import import_optional

__all__ = ["make_dicom_cohort"]

_SCANNERS = (
    # Manufacturer, ManufacturerModelName, MagneticFieldStrength, Institution, Station
    ("SIEMENS", "Prisma", 3.0, "SAINT ELSEWHERE HOSPITAL", "MRC40123"),
    ("GE MEDICAL SYSTEMS", "SIGNA HDxt", 1.5, "GENERAL CITY CLINIC", "GEMR15"),
    ("Philips", "Ingenia", 3.0, "UNIVERSITY HOSPITAL NORTH", "PHIL-IN-3"),
)
_FIRST = ("JOHN", "JANE", "ALEX", "MARIA", "OMAR", "LI", "SARA", "PAUL")
_LAST = ("DOE", "ROE", "SMITH", "GARCIA", "KHAN", "WANG", "MULLER", "ROSSI")
_MR = "1.2.840.10008.5.1.4.1.1.4"
_CT = "1.2.840.10008.5.1.4.1.1.2"


def _uid(pydicom, *parts):
    return pydicom.uid.generate_uid(entropy_srcs=[str(p) for p in parts])


def _write_slice(pydicom, path, meta, pixels, k, position, orientation, spacing):
    Dataset, FileMetaDataset = pydicom.Dataset, pydicom.dataset.FileMetaDataset
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = meta["SOPClassUID"]
    file_meta.MediaStorageSOPInstanceUID = meta["SOPInstanceUID"]
    file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = file_meta
    for keyword, value in meta.items():
        setattr(ds, keyword, value)
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row, column
    ds.SliceThickness = float(spacing[2])
    ds.SliceLocation = float(position[2])
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    block = ds.private_block(0x0019, "MEDPREP SYNTHETIC 1.0", create=True)
    block.add_new(0x01, "LO", f"note on {meta['PatientName']}")
    ds.save_as(path, enforce_file_format=True)


def make_dicom_cohort(
    folder,
    n_subjects=3,
    *,
    shape=(7, 8, 6),
    modalities=("MR", "CT"),
    random_state=0,
):
    """Write a small synthetic DICOM cohort to ``folder``; return its ground truth.

    Every subject has one study holding one series per modality, one slice
    per file, in ``folder/<PatientID>/<StudyDate>/<SeriesNumber>_<modality>/``
    (identifiers in folder names, as in many exports). Subjects are spread
    over three scanners (manufacturer, model, field strength, institution).
    Every file carries patient name, id and birth date, institution name and
    address, referring and performing physicians, operator, accession
    number, study id, dates and times, UIDs and a private block.

    Parameters
    ----------
    folder : str or pathlib.Path
        Where to write (created if needed).
    n_subjects : int, default=3
        Number of subjects (patients).
    shape : tuple of int, default=(7, 8, 6)
        Columns (x), rows (y) and slices (z) of every series.
    modalities : tuple of {"MR", "CT"}, default=("MR", "CT")
        One series per modality and subject.
    random_state : int, default=0
        Seed of the voxels and of the UIDs.

    Returns
    -------
    pandas.DataFrame
        One row per series: ``folder`` and the tags written (``PatientID``,
        ``PatientName``, ``StudyInstanceUID``, ``SeriesInstanceUID``,
        ``Modality``, ``Manufacturer``, ``ManufacturerModelName``,
        ``MagneticFieldStrength``, ``InstitutionName``, ``n_files``).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_medprep.datasets import make_dicom_cohort
    >>> truth = make_dicom_cohort(tempfile.mkdtemp(), n_subjects=2)
    >>> truth[["PatientID", "Modality", "n_files"]].values.tolist()
    [['PAT0001', 'MR', 6], ['PAT0001', 'CT', 6], ['PAT0002', 'MR', 6], \
['PAT0002', 'CT', 6]]
    """
    pydicom = import_optional("pydicom", "make_dicom_cohort")
    rng = np.random.default_rng(random_state)
    nx, ny, nz = shape
    rows = []
    for s in range(n_subjects):
        pid = f"PAT{s + 1:04d}"
        name = f"{_LAST[s % len(_LAST)]}^{_FIRST[(3 * s) % len(_FIRST)]}"
        maker, model, field, institution, station = _SCANNERS[s % len(_SCANNERS)]
        study_date = f"2021{(s % 12) + 1:02d}{(s % 27) + 1:02d}"
        study_uid = _uid(pydicom, random_state, pid, "study")
        for number, modality in enumerate(modalities, start=1):
            series_uid = _uid(pydicom, random_state, pid, "series", number)
            frame_uid = _uid(pydicom, random_state, pid, "frame", number)
            spacing = (0.8, 0.9, 2.5) if modality == "MR" else (0.7, 0.7, 3.0)
            origin = np.array([-10.5 + s, 20.25, 30.0 - 5 * number])
            orientation = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
            z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (nz, ny, nx)),
                                  indexing="ij")
            head = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 1.2) ** 2 <= 1
            base = (900, 0) if modality == "MR" else (40, -1000)
            volume = np.where(head, base[0], base[1]) + rng.normal(0, 60, head.shape)
            volume = np.round(volume).astype(np.int16)
            series = Path(folder) / pid / study_date / f"{number}_{modality}"
            series.mkdir(parents=True, exist_ok=True)
            meta = {
                "SOPClassUID": _MR if modality == "MR" else _CT,
                "PatientName": name,
                "PatientID": pid,
                "PatientBirthDate": f"19{50 + 3 * s:02d}0{1 + s % 9}1{s % 10}",
                "PatientSex": "MF"[s % 2],
                "PatientAge": f"{60 - s:03d}Y",
                "PatientAddress": f"{10 + s} ELM STREET, SPRINGFIELD",
                "OtherPatientIDs": f"MRN-{s + 1:05d}",
                "StudyInstanceUID": study_uid,
                "SeriesInstanceUID": series_uid,
                "FrameOfReferenceUID": frame_uid,
                "StudyDate": study_date,
                "SeriesDate": study_date,
                "AcquisitionDate": study_date,
                "ContentDate": study_date,
                "StudyTime": "101530",
                "SeriesTime": f"1020{number:02d}",
                "AccessionNumber": f"ACC{s + 1:06d}",
                "StudyID": f"ST{s + 1:03d}",
                "StudyDescription": f"BRAIN {name}",
                "SeriesDescription": f"{modality} axial",
                "SeriesNumber": number,
                "Modality": modality,
                "Manufacturer": maker,
                "ManufacturerModelName": model,
                "DeviceSerialNumber": f"SN{station}",
                "InstitutionName": institution,
                "InstitutionAddress": f"1 MAIN ROAD, {institution}",
                "StationName": station,
                "ReferringPhysicianName": f"HOUSE^GREGORY{s}",
                "PerformingPhysicianName": "WHO^DOCTOR",
                "OperatorsName": "TECH^ANNA",
                "BodyPartExamined": "HEAD",
                "BurnedInAnnotation": "NO",
            }
            if modality == "MR":
                meta.update(MagneticFieldStrength=field, RepetitionTime=2300.0,
                            EchoTime=2.98, ScanningSequence="GR")
            else:
                meta.update(KVP=120.0, ConvolutionKernel="B30f",
                            RescaleIntercept=0.0, RescaleSlope=1.0)
            for k in range(nz):
                meta["SOPInstanceUID"] = _uid(pydicom, series_uid, k)
                position = origin + np.array([0.0, 0.0, k * spacing[2]])
                _write_slice(pydicom, os.fspath(series / f"IM{k + 1:04d}.dcm"),
                             meta, volume[k], k, position, orientation, spacing)
            rows.append({
                "folder": str(series), "PatientID": pid, "PatientName": name,
                "StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
                "Modality": modality, "Manufacturer": maker,
                "ManufacturerModelName": model,
                "MagneticFieldStrength": field if modality == "MR" else np.nan,
                "InstitutionName": institution, "n_files": nz,
            })
    return pd.DataFrame(rows)
