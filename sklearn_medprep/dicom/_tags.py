r"""DICOM tags as typed table values: the default list and the VR rules.

A tag's value becomes a Python value by its value representation (VR):
decimal and float VRs (``DS``, ``FD``, ``FL``) a float, integer VRs (``IS``,
``US``, ``SS``, ``UL``, ``SL``, ``UV``, ``SV``) an int, dates (``DA``) a
:class:`pandas.Timestamp`, everything else a string (a person name as
written, ``"DOE^JOHN"``). A multi-valued numeric tag (``PixelSpacing``)
becomes a tuple; a multi-valued text tag (``ImageType``) the DICOM text
with its ``\`` separators.
"""

import pandas as pd

from ..utils._optional import import_optional

__all__ = ["DEFAULT_SITE_TAGS", "DEFAULT_TAGS", "check_keywords", "typed_value"]

#: Tags :func:`~sklearn_medprep.dicom.scan_dicom` puts in the table by default:
#: the acquisition covariates and the tags that tell sites and scanners apart.
DEFAULT_TAGS = (
    "PatientID",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "MagneticFieldStrength",
    "InstitutionName",
    "StationName",
    "SliceThickness",
    "PixelSpacing",
    "KVP",
    "ConvolutionKernel",
    "RepetitionTime",
    "EchoTime",
)

#: The tags ``site_from=True`` joins into the ``site`` column.
DEFAULT_SITE_TAGS = ("Manufacturer", "ManufacturerModelName", "MagneticFieldStrength")

_FLOAT_VRS = {"DS", "FD", "FL"}
_INT_VRS = {"IS", "US", "SS", "UL", "SL", "UV", "SV"}


def check_keywords(keywords, *, argument):
    """Refuse names that are not DICOM keywords (pydicom's dictionary).

    Parameters
    ----------
    keywords : iterable of str
        Keywords such as ``"Manufacturer"``.
    argument : str
        The parameter they came from, for the message.

    Returns
    -------
    tuple of str
    """
    datadict = import_optional("pydicom.datadict", "the DICOM tools")
    tag_for_keyword = datadict.tag_for_keyword
    keywords = tuple(keywords)
    for keyword in keywords:
        if not isinstance(keyword, str) or tag_for_keyword(keyword) is None:
            raise ValueError(
                f"{argument}: {keyword!r} is not a DICOM keyword (write them as "
                "pydicom does, e.g. 'ManufacturerModelName', 'EchoTime')"
            )
    return keywords


def _one(value, vr):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if vr in _FLOAT_VRS:
        return float(value)
    if vr in _INT_VRS:
        return int(value)
    if vr == "DA":
        text = str(value).strip().replace(".", "")
        stamp = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
        return None if pd.isna(stamp) else stamp
    return str(value).strip()


def typed_value(element):
    r"""The value of a pydicom data element as a table value.

    Parameters
    ----------
    element : pydicom.DataElement or None
        The element (None for an absent tag).

    Returns
    -------
    float, int, pandas.Timestamp, str, tuple or None
        None when the tag is absent or empty.

    Examples
    --------
    >>> from pydicom.dataelem import DataElement
    >>> from sklearn_medprep.dicom._tags import typed_value
    >>> typed_value(DataElement(0x00280030, "DS", ["0.5", "0.75"]))
    (0.5, 0.75)
    >>> typed_value(DataElement(0x00080020, "DA", "20210131"))
    Timestamp('2021-01-31 00:00:00')
    >>> typed_value(DataElement(0x00080008, "CS", ["ORIGINAL", "PRIMARY"]))
    'ORIGINAL\\PRIMARY'
    """
    if element is None or element.value is None or element.VR == "SQ":
        return None
    value, vr = element.value, element.VR
    if isinstance(value, (bytes, bytearray)):
        return None
    multi = not isinstance(value, str) and hasattr(value, "__len__")
    if not multi:
        return _one(value, vr)
    values = [_one(v, vr) for v in value]
    if not values:
        return None
    if vr in _FLOAT_VRS or vr in _INT_VRS:
        return tuple(values)
    return "\\".join("" if v is None else str(v) for v in values)
