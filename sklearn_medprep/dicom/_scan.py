"""A folder tree of DICOM files to a subject table: one row per series.

Only headers are read (pydicom's ``stop_before_pixels``); voxels are read
later, through the library's one reader (:func:`sklearn_medprep.load_image`,
which reads a series folder with GDCM and refuses a slice it leaves out), or
at once with ``convert_to``.
"""

import hashlib
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import ImageReadError, SubjectTableError
from ..utils._optional import import_optional
from ._convert import convert_to_nifti
from ._tags import DEFAULT_SITE_TAGS, DEFAULT_TAGS, check_keywords, typed_value

__all__ = ["ENHANCED_SOP_CLASSES", "scan_dicom", "series_id"]

#: Enhanced (multi-frame) image storage SOP classes, refused by name: their
#: geometry is in per-frame functional groups that ITK's reader does not apply.
ENHANCED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image Storage",
    "1.2.840.10008.5.1.4.1.1.130": "Enhanced PET Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.128.1": "Legacy Converted Enhanced PET Image Storage",
}

_GEOMETRY = ("Rows", "Columns", "ImageOrientationPatient", "PixelSpacing",
             "ImagePositionPatient", "NumberOfFrames", "SOPClassUID",
             "SeriesInstanceUID", "InstanceNumber")


def series_id(uid):
    """The table index of a series: 16 hex digits of the SHA-256 of its UID.

    Stable (the same series gets the same id in every scan) and short; the
    UID itself is in the ``SeriesInstanceUID`` column.

    Parameters
    ----------
    uid : str
        SeriesInstanceUID.

    Returns
    -------
    str

    Examples
    --------
    >>> from sklearn_medprep.dicom._scan import series_id
    >>> series_id("1.2.3.4")
    '6694f83c9f476da3'
    """
    return hashlib.sha256(str(uid).encode()).hexdigest()[:16]


def _looks_dicom(path):
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _read_header(pydicom, path):
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on a broken file
        if not _looks_dicom(path):
            return None  # not DICOM (a README, a DICOMDIR-less export's notes)
        raise ImageReadError(
            f"cannot read DICOM header: {type(exc).__name__}: {exc}", file=str(path)
        ) from exc


def _floats(value):
    if value is None:
        return None
    return tuple(float(v) for v in value)


def _consistency(headers):
    """What makes the headers of one folder's series not one volume, or None."""
    first = headers[0]
    sop = str(first.get("SOPClassUID", ""))
    if sop in ENHANCED_SOP_CLASSES:
        return (f"enhanced multi-frame DICOM ({ENHANCED_SOP_CLASSES[sop]}) is not "
                "read: convert it to classic single-frame slices first")
    frames = [int(h.get("NumberOfFrames", 1) or 1) for h in headers]
    if max(frames) > 1:
        return (f"multi-frame DICOM ({max(frames)} frames in one file) is not "
                "read: convert it to single-frame slices first")
    sizes = {(h.get("Rows"), h.get("Columns")) for h in headers}
    if len(sizes) > 1:
        return f"mixed slice size (rows, columns) {sorted(sizes, key=str)}"
    orientations = [_floats(h.get("ImageOrientationPatient")) for h in headers]
    if any(o is None for o in orientations):
        return "a slice has no ImageOrientationPatient"
    if not np.allclose(orientations, orientations[0], atol=1e-4):
        return "mixed orientation (ImageOrientationPatient differs between slices)"
    spacings = [_floats(h.get("PixelSpacing")) for h in headers]
    if any(s is None for s in spacings):
        return "a slice has no PixelSpacing"
    if not np.allclose(spacings, spacings[0], rtol=1e-4, atol=0):
        return "mixed pixel spacing (PixelSpacing differs between slices)"
    positions = [_floats(h.get("ImagePositionPatient")) for h in headers]
    if any(p is None for p in positions):
        return "a slice has no ImagePositionPatient"
    if len(headers) > 1:
        row, column = np.array(orientations[0][:3]), np.array(orientations[0][3:])
        along = np.sort(np.asarray(positions) @ np.cross(row, column))
        steps = np.diff(along)
        if steps.min() < 1e-3:
            return "two slices at one position (a duplicated slice or several volumes)"
        if len(steps) > 1 and steps.max() - steps.min() > 1e-2 * steps.max():
            return (f"uneven slice spacing ({steps.min():.4g} to {steps.max():.4g}"
                    " mm: a missing slice?)")
    return None


def _site(values):
    parts = []
    for value in values:
        if value is None:
            parts.append("unknown")
        elif isinstance(value, float):
            parts.append(f"{value:g}")
        else:
            parts.append(str(value))
    return " | ".join(parts)


def _column(values):
    """A typed column: float64, Int64, datetime64 or object."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, float) for v in present):
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if present and all(isinstance(v, int) and not isinstance(v, bool)
                       for v in present):
        return pd.Series(values, dtype="Int64")
    if present and all(isinstance(v, pd.Timestamp) for v in present):
        return pd.to_datetime(pd.Series([pd.NaT if v is None else v for v in values]))
    if present and all(isinstance(v, str) for v in present):
        return pd.Series(values)  # pandas' own text dtype
    return pd.Series(values, dtype=object)


def scan_dicom(
    folder,
    *,
    tags=None,
    extra_tags=(),
    site_from=None,
    convert_to=None,
    errors="report",
):
    """Scan a folder tree of DICOM files into a subject table, one row per series.

    Files are grouped into series by ``SeriesInstanceUID`` (headers only, with
    pydicom). Each row holds the image cell (the series folder, or the NIfTI
    file written with ``convert_to``), the chosen tags as typed columns, and,
    on request, a ``site`` built from tags. A series that is not one volume is
    reported in the ``problem`` column (or raised, ``errors="raise"``), never
    merged or dropped:

    * several series in one folder (the reader takes one series per folder),
      or one series spread over several folders;
    * mixed slice size, orientation or pixel spacing; two slices at one
      position; uneven slice spacing (a missing slice);
    * multi-frame files and enhanced (multi-frame) SOP classes, refused by
      name: their per-frame geometry is not read.

    Files that are not DICOM (no ``DICM`` preamble and no ``.dcm`` suffix) and
    DICOM objects without pixels (``Rows`` absent: structured reports,
    presentation states, DICOMDIR) are ignored; a file that looks like DICOM
    but cannot be parsed is an error naming it.

    Parameters
    ----------
    folder : str or pathlib.Path
        Root of the tree (searched recursively; hidden files and folders are
        skipped).
    tags : list of str or None, default=None
        DICOM keywords to put in the table; None takes
        the default list (patient id, sex and age,
        study UID and date, series number and description, modality, body
        part, manufacturer and model, field strength, institution, station,
        slice thickness, pixel spacing, kVp, convolution kernel, repetition
        and echo times). Values are typed by their VR (decimal and float VRs
        a float, integer VRs an int, dates a timestamp, text a string,
        multi-valued numbers a tuple); the value is that of the series'
        first slice.
    extra_tags : list of str, default=()
        Keywords added to ``tags`` (e.g. ``["EchoTrainLength"]``).
    site_from : list of str, True or None, default=None
        Build a ``site`` column joining these tags' values with ``" | "``
        (``True``: manufacturer, model and field strength); an absent tag
        gives ``"unknown"``.
    convert_to : str, pathlib.Path or None, default=None
        Convert every series without a problem to NIfTI in this folder
        (:func:`~sklearn_medprep.dicom.convert_to_nifti`, with its SHA-256
        manifest); the image cell is then the file, and that of a series with
        a problem is missing.
    errors : {"report", "raise"}, default="report"
        With "raise", the first problem is a
        :class:`~sklearn_medprep.exceptions.SubjectTableError` naming the
        series and its folder.

    Returns
    -------
    pandas.DataFrame
        Index ``series`` (16 hex digits of the SHA-256 of the
        SeriesInstanceUID: stable across scans), rows sorted by patient,
        study date, study and series number; columns ``image``,
        ``SeriesInstanceUID``, ``n_files``, the tags, ``site`` (on request)
        and ``problem`` (None for a good series).

    Raises
    ------
    ImageReadError
        A file that looks like DICOM cannot be parsed (the file is named), or
        the folder holds no DICOM image.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_medprep.datasets import make_dicom_cohort
    >>> from sklearn_medprep.dicom import scan_dicom
    >>> root = tempfile.mkdtemp()
    >>> _ = make_dicom_cohort(root, n_subjects=2, modalities=("MR",))
    >>> table = scan_dicom(root, tags=["PatientID", "EchoTime"], site_from=True)
    >>> table[["PatientID", "EchoTime", "n_files", "site"]].values.tolist()
    [['PAT0001', 2.98, 6, 'SIEMENS | Prisma | 3'], \
['PAT0002', 2.98, 6, 'GE MEDICAL SYSTEMS | SIGNA HDxt | 1.5']]
    """
    pydicom = import_optional("pydicom", "scan_dicom")
    if errors not in ("report", "raise"):
        raise ValueError(f"errors must be 'report' or 'raise', got {errors!r}")
    tags = DEFAULT_TAGS if tags is None else tags
    tags = check_keywords(list(tags) + [t for t in extra_tags if t not in tags],
                          argument="tags")
    if site_from is True:
        site_from = DEFAULT_SITE_TAGS
    if site_from is not None:
        site_from = check_keywords(site_from, argument="site_from")
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {str(root)!r}")

    wanted = set(tags) | set(site_from or ()) | set(_GEOMETRY)
    by_series = defaultdict(list)  # uid -> [(folder, path, header)]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            header = _read_header(pydicom, path)
            if header is None or "Rows" not in header:
                continue
            uid = header.get("SeriesInstanceUID")
            if not uid:
                raise ImageReadError("DICOM image without SeriesInstanceUID",
                                     file=str(path))
            kept = {k: header.data_element(k) for k in wanted if k in header}
            by_series[str(uid)].append((str(Path(dirpath)), str(path), kept))
    if not by_series:
        raise ImageReadError("folder holds no DICOM image", file=str(root))

    series_in_folder = defaultdict(set)
    for uid, files in by_series.items():
        for where, _, _ in files:
            series_in_folder[where].add(uid)

    records = []
    for uid, files in by_series.items():
        headers = [{k: (e.value if e is not None else None) for k, e in kept.items()}
                   for _, _, kept in files]
        folders = sorted({where for where, _, _ in files})
        problem = None
        if len(folders) > 1:
            problem = f"series spread over {len(folders)} folders: {folders}"
        elif len(series_in_folder[folders[0]]) > 1:
            problem = (f"folder holds {len(series_in_folder[folders[0]])} series; "
                       "the reader takes one series per folder (sort the files "
                       "into one folder per series)")
        else:
            problem = _consistency(headers)
        order = sorted(range(len(files)),
                       key=lambda i: (headers[i].get("InstanceNumber") or 0,
                                      files[i][1]))
        first = files[order[0]][2]
        record = {
            "image": folders[0],
            "SeriesInstanceUID": uid,
            "n_files": len(files),
        }
        for keyword in tags:
            record[keyword] = typed_value(first.get(keyword))
        if site_from is not None:
            record["site"] = _site([typed_value(first.get(k)) for k in site_from])
        record["problem"] = problem
        record["_sort"] = (
            str(typed_value(first.get("PatientID")) or ""),
            str(typed_value(first.get("StudyDate")) or ""),
            str(typed_value(first.get("StudyInstanceUID")) or ""),
            typed_value(first.get("SeriesNumber")) or 0,
            uid,
        )
        records.append(record)
    records.sort(key=lambda r: r.pop("_sort"))

    index = pd.Index([series_id(r["SeriesInstanceUID"]) for r in records],
                     name="series")
    table = pd.DataFrame(records, index=index)
    for c in tags:  # typed by VR: float64, Int64, datetime64 or object
        table[c] = _column([r[c] for r in records]).set_axis(index)
    table["n_files"] = table["n_files"].astype("int64")
    if errors == "raise":
        bad = table["problem"].notna()
        if bad.any():
            row = table.index[bad][0]
            raise SubjectTableError(
                f"series {table.at[row, 'SeriesInstanceUID']} is not one volume: "
                f"{table.at[row, 'problem']}",
                row=row, column="image", file=table.at[row, "image"],
            )
    if convert_to is not None:
        good = table["problem"].isna()
        converted = convert_to_nifti(table.loc[good], convert_to, image="image")
        table["image"] = table["image"].astype(object)
        table.loc[~good, "image"] = None
        table.loc[good, "image"] = converted["image"]
    return table
