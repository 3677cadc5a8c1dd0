"""De-identification of DICOM files: PS3.15's Basic Profile with dicognito.

The engine is dicognito (a maintained implementation of the identifier,
name, UID and date rules of the Basic Application Level Confidentiality
Profile, keyed by a seed), completed here with the profile's removals
(:mod:`._profile`: free text, patient characteristics, private tags,
overlays and curves). Every file is written with the library's safe writer,
read back and its pixel data compared byte for byte before anything is
renamed into place.
"""

import hashlib
import hmac
import os
import uuid
from pathlib import Path

import pandas as pd

from ..exceptions import ImageReadError
from ..io._write import commit_all, discard_tagged, stage_file
from ..utils._optional import import_optional
from ._profile import EMPTY, REMOVE, REMOVED_GROUPS
from ._scan import _looks_dicom
from ._tags import check_keywords

__all__ = ["deidentify_dicom", "pseudonym_seed"]

_METHOD = ["DICOGNITO", "PS3.15 Basic Profile, modified dates"]
# DICOM's codes (CID 7050) of the profile and the option applied
_CODES = (("113100", "Basic Application Confidentiality Profile"),
          ("113107", "Retain Longitudinal Temporal Information Modified Dates "
                     "Option"))


def _method_codes(pydicom):
    items = []
    for value, meaning in _CODES:
        item = pydicom.Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    return pydicom.Sequence(items)


def pseudonym_seed(key):
    """The seed dicognito gets: HMAC-SHA256 of a fixed label under the user's key.

    The key itself never reaches the files nor dicognito's hashes.

    Parameters
    ----------
    key : str or bytes
        The user's secret (keep it: the same key gives the same pseudonyms,
        UIDs and date shift in every run).

    Returns
    -------
    str
        64 hex digits.
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        raise ValueError("key must be a non-empty str or bytes (a secret you keep)")
    return hmac.new(bytes(key), b"sklearn-medprep/deidentify_dicom/v1",
                    hashlib.sha256).hexdigest()


def _sources(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and _looks_dicom(path):
                out.append(path)
    return out


def _strip(ds, keep):
    """The profile's removals beyond dicognito, in every nested dataset."""
    doomed = []

    def visit(dataset, element):
        tag = element.tag
        if tag.is_private or any(lo <= tag.group <= hi for lo, hi in REMOVED_GROUPS):
            doomed.append((dataset, tag))
        elif element.keyword in REMOVE and element.keyword not in keep:
            doomed.append((dataset, tag))
        elif element.keyword in EMPTY and element.keyword not in keep:
            element.value = None

    ds.walk(visit)
    for dataset, tag in doomed:
        if tag in dataset:
            del dataset[tag]


def deidentify_dicom(source, folder, *, key, keep=(), overwrite=False):
    """De-identify every DICOM file under ``source`` into ``folder``.

    Follows DICOM PS3.15 (2023-2024 editions) Annex E, the Basic Application Level
    Confidentiality Profile with the Retain Longitudinal Temporal Information
    with Modified Dates Option, using dicognito 0.19 for the rules it
    implements:

    * identifiers (PatientID, OtherPatientIDs, AccessionNumber, StudyID, ...),
      every person name and the institution are replaced by pseudonyms;
      UIDs (study, series, instance, frame of reference) are replaced, so
      series keep their grouping; all derived from ``key``: a subject keeps
      one pseudonym across series, studies and runs with the same key, and
      gets another with another key;
    * every date (and the time paired with it) is shifted back by one offset
      of 62 to 730 days drawn from ``key``: intervals within and between
      subjects are kept; the birth date is emptied;
    * the profile's free-text and patient-characteristics attributes (see
      ``sklearn_medprep/dicom/_profile.py``: descriptions, comments, age, sex,
      size, weight, ...) are removed or emptied, unless listed in ``keep``;
      private tags, overlays and curves are removed;
    * pixel data are bit-identical (checked on every file written).

    Not done (a limit): text burned into the pixels is not detected. Files
    whose ``BurnedInAnnotation`` is ``"YES"`` are refused; an image that
    shows a name without saying so (a scanned form, a screenshot) passes.

    Output files are named from the new UIDs,
    ``folder/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``
    (the source folder names often hold names and dates), and written with
    :func:`sklearn_medprep.io.stage_file`: nothing is renamed into place
    unless every file was written and read back.

    Parameters
    ----------
    source : str or pathlib.Path
        A DICOM file or a folder searched recursively (files with a ``.dcm``
        suffix or the ``DICM`` preamble; hidden files skipped).
    folder : str or pathlib.Path
        Output folder; not inside ``source``.
    key : str or bytes
        Your secret. The same key gives the same pseudonyms, UIDs and date
        shift; keep it private (with it, pseudonyms of known ids can be
        recomputed).
    keep : list of str, default=()
        Keywords of the profile's removal list kept as they are, e.g.
        ``["PatientAge", "PatientSex", "PatientWeight"]`` (Retain Patient
        Characteristics Option) or ``["SeriesDescription"]`` (Retain
        Description Option: check the text holds no identifier first).
    overwrite : bool, default=False
        Whether existing output files may be replaced.

    Returns
    -------
    pandas.DataFrame
        One row per file written: ``file``, and the new ``PatientID``,
        ``StudyInstanceUID``, ``SeriesInstanceUID``. No original value.

    Raises
    ------
    ImageReadError
        A file cannot be parsed, or declares burned-in annotation (file
        named); nothing is written.
    OutputWriteError
        A file cannot be written, does not read back with the same pixels,
        or exists (``overwrite=False``); nothing is left of this call.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_medprep.datasets import make_dicom_cohort
    >>> from sklearn_medprep.dicom import deidentify_dicom, scan_dicom
    >>> raw, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = make_dicom_cohort(raw, n_subjects=2, modalities=("MR",))
    >>> written = deidentify_dicom(raw, out, key="my secret")
    >>> len(written), written["PatientID"].nunique()
    (12, 2)
    >>> "PAT0001" in set(scan_dicom(out)["PatientID"])
    False
    """
    pydicom = import_optional("pydicom", "deidentify_dicom")
    anonymizer_module = import_optional("dicognito.anonymizer", "deidentify_dicom")
    keep = set(check_keywords(keep, argument="keep"))
    seed = pseudonym_seed(key)
    source, folder = Path(source), Path(folder)
    if not source.exists():
        raise FileNotFoundError(f"no such file or folder: {str(source)!r}")
    src, dst = source.resolve(), folder.resolve()
    if source.is_dir() and (dst == src or src in dst.parents):
        raise ValueError(f"the output folder {str(folder)!r} is inside the source "
                         f"{str(source)!r}; choose a folder outside it")
    files = [source] if source.is_file() else _sources(source)
    if not files:
        raise ImageReadError("no DICOM file found", file=str(source))
    anonymizer = anonymizer_module.Anonymizer(seed=seed)
    tag = uuid.uuid4().hex[:8]
    staged, rows = [], []
    try:
        for path in files:
            try:
                ds = pydicom.dcmread(path)
            except Exception as exc:  # pydicom raises many types
                raise ImageReadError(
                    f"cannot read DICOM file: {type(exc).__name__}: {exc}",
                    file=str(path),
                ) from exc
            if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
                raise ImageReadError(
                    "BurnedInAnnotation is YES: text in the pixels would have to "
                    "be removed, which is not done; nothing was written",
                    file=str(path),
                )
            pixels = ds.get("PixelData")
            anonymizer.anonymize(ds)
            _strip(ds, keep)
            ds.PatientIdentityRemoved = "YES"
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
            ds.DeidentificationMethod = _METHOD
            ds.DeidentificationMethodCodeSequence = _method_codes(pydicom)
            ids = [str(ds.get(k, "") or "unknown") for k in
                   ("PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                    "SOPInstanceUID")]
            target = folder.joinpath(*ids[:3], f"{ids[3]}.dcm")

            def write(tmp, ds=ds):
                ds.save_as(tmp, enforce_file_format=False)

            def check(tmp, pixels=pixels):
                back = pydicom.dcmread(tmp)
                if back.get("PixelData") != pixels:
                    return "pixel data differ from the source file"
                return None

            staged.append(stage_file(str(target), write, check=check,
                                     overwrite=overwrite, inputs=files,
                                     row=ids[0], suffix=".dcm", tag=tag))
            rows.append({"file": str(target), "PatientID": ids[0],
                         "StudyInstanceUID": ids[1], "SeriesInstanceUID": ids[2]})
        commit_all(staged)
    except BaseException:
        for item in staged:
            item.discard()
        discard_tagged([r["file"] for r in rows], tag, ".dcm")
        raise
    return pd.DataFrame(rows, columns=["file", "PatientID", "StudyInstanceUID",
                                       "SeriesInstanceUID"])
