"""DICOM in: folder trees to subject tables, de-identification, lossless NIfTI.

Needs the ``dicom`` extra (pydicom, dicognito): ``pip install
"sklearn-medprep[dicom]"``.
"""

from ..utils._lazy import lazy_exports

_LAZY = {
    "ManifestCheck": "._checksums",
    "convert_to_nifti": "._convert",
    "deidentify_dicom": "._deid",
    "scan_dicom": "._scan",
    "verify_manifest": "._checksums",
    "write_checksum_manifest": "._checksums",
}

__all__ = [
    "ManifestCheck",
    "convert_to_nifti",
    "deidentify_dicom",
    "scan_dicom",
    "verify_manifest",
    "write_checksum_manifest",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
