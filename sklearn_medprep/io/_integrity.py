"""Integrity of image files and voxels, checked when a table cell is read.

ITK reads a truncated NIfTI file (``.nii`` or ``.nii.gz``) without an error,
filling the missing voxels with zeros; NRRD and MetaImage readers refuse a
short file but say so on stderr only. :func:`check_file` compares, before any
voxel is decoded, the number of data bytes a file's header announces with the
bytes the file holds:

- raw data (``.nii``, raw NRRD, raw MHA/MHD): the file size, from ``stat``;
- compressed data (``.nii.gz``, gzip NRRD, compressed MHA/MHD): the whole
  compressed stream is decompressed in chunks (nothing is kept) so that a
  truncated stream, a bad CRC or a stream shorter than announced is caught.
  Reading a cell does not call this first: :mod:`sklearn_medprep.io._onepass`
  checks ITK's own decode against the stream's checksum and length, and calls
  :func:`check_file` only when they disagree, to name the fault;
- non-finite voxels of float NIfTI files, which ITK reads as 0, are put back
  (:func:`restore_nifti_nonfinite`) so that they are counted;
- a DICOM series folder: a file that looks like DICOM (``.dcm`` suffix or the
  ``DICM`` preamble) but that GDCM left out of the series (a truncated slice is
  otherwise dropped silently).

:func:`count_nonfinite` counts NaN and infinite voxels inside a region of
interest: PyRadiomics would extract them silently.
"""

import gzip
import os
import zlib
from math import prod
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..exceptions import ImageReadError

__all__ = [
    "check_dicom_series",
    "check_file",
    "count_nonfinite",
    "restore_nifti_nonfinite",
]

_CHUNK = 1 << 20

_META_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2,
    "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 4, "MET_ULONG": 4,
    "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}


def _nrrd_bytes(kind):
    kind = kind.strip().lower()
    if kind in ("float",):
        return 4
    if kind in ("double",):
        return 8
    if "char" in kind or kind.endswith("int8") or kind.endswith("int8_t"):
        return 1
    if "short" in kind or "int16" in kind:
        return 2
    if "longlong" in kind or "long long" in kind or "int64" in kind:
        return 8
    if kind in ("int", "uint", "signed int", "unsigned int") or "int32" in kind:
        return 4
    return None  # "block" or unknown: not checked


def _truncated(path, have, want, what="data"):
    raise ImageReadError(
        f"file is truncated or corrupt: its header announces {int(want)} bytes "
        f"of {what} but it holds {int(have)}",
        file=str(path),
    )


def _stream_length(path, offset=0, *, kind="gzip"):
    """Decompress ``path`` from ``offset`` in chunks; return the output length.

    ``kind`` is ``"gzip"`` (CRC and length checked by :mod:`gzip`) or
    ``"zlib"`` (a zlib/deflate stream, Adler-32 checked by :mod:`zlib`).
    """
    total = 0
    try:
        if kind == "gzip":
            with open(path, "rb") as raw:
                raw.seek(offset)
                with gzip.GzipFile(fileobj=raw) as stream:
                    while chunk := stream.read(_CHUNK):
                        total += len(chunk)
            return total
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
        with open(path, "rb") as raw:
            raw.seek(offset)
            while chunk := raw.read(_CHUNK):
                total += len(decoder.decompress(chunk))
                if decoder.eof:
                    break
        total += len(decoder.flush())
        if not decoder.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        return total
    except (EOFError, OSError, zlib.error) as exc:
        raise ImageReadError(
            f"compressed data is truncated or corrupt ({exc})", file=str(path)
        ) from exc


def _check_nifti(path, gz):
    import nibabel

    try:
        proxy = nibabel.load(str(path)).dataobj
        offset = int(proxy.offset)
        shape = proxy.shape
        itemsize = proxy.dtype.itemsize
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types
        raise ImageReadError(
            f"cannot read image header: not a NIfTI file ({exc})", file=str(path)
        ) from exc
    want = offset + int(prod(int(n) for n in shape)) * int(itemsize)
    have = _stream_length(path) if gz else os.stat(path).st_size
    if have < want:
        _truncated(path, have, want, "header and voxels")


def _read_text_header(path, stop):
    """Return ``(lines, offset)``: header lines up to ``stop(line)`` included."""
    lines = []
    with open(path, "rb") as handle:
        offset = 0
        for raw in handle:
            offset += len(raw)
            line = raw.decode("latin-1").rstrip("\r\n")
            if stop(line):
                lines.append(line)
                return lines, offset
            lines.append(line)
            if offset > 1 << 20:
                break
    return lines, None


def _check_meta(path):
    lines, offset = _read_text_header(
        path, lambda line: line.split("=")[0].strip() == "ElementDataFile"
    )
    fields = {}
    for line in lines:
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    if offset is None or "DimSize" not in fields:
        raise ImageReadError(
            "cannot read MetaImage header (no DimSize or ElementDataFile)",
            file=str(path),
        )
    size = _META_BYTES.get(fields.get("ElementType", ""))
    if size is None:
        return
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        return
    want = prod(dims) * channels * size
    target = fields["ElementDataFile"]
    if target.upper() == "LOCAL":
        data, start = Path(path), offset
    elif target.upper().startswith("LIST") or "%" in target:
        return  # one file per slice: left to ITK
    else:
        data, start = Path(path).parent / target, 0
        if not data.is_file():
            raise ImageReadError(
                f"the MetaImage data file {target!r} does not exist",
                file=str(data),
            )
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if compressed:
        have = _stream_length(data, start, kind="zlib")
    else:
        have = os.stat(data).st_size - start
    if have < want:
        _truncated(data, have, want, "voxels")


def _check_nrrd(path):
    lines, offset = _read_text_header(path, lambda line: line == "")
    fields = {}
    for line in lines[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.lstrip("=").strip()
    if "sizes" not in fields or "type" not in fields:
        raise ImageReadError(
            "cannot read NRRD header (no sizes or type field)", file=str(path)
        )
    size = _nrrd_bytes(fields["type"])
    if size is None:
        return
    try:
        want = prod(int(v) for v in fields["sizes"].split()) * size
    except ValueError:
        return
    target = fields.get("data file") or fields.get("datafile")
    if target is not None:
        if target.upper().startswith("LIST") or len(target.split()) > 1:
            return  # several data files: left to ITK
        data, start = Path(path).parent / target, 0
        if not data.is_file():
            raise ImageReadError(
                f"the NRRD data file {target!r} does not exist", file=str(data)
            )
    else:
        if offset is None:
            _truncated(path, 0, want, "voxels (the header never ends)")
        data, start = Path(path), offset
    encoding = fields.get("encoding", "raw").lower()
    if encoding in ("gzip", "gz"):
        have = _stream_length(data, start, kind="zlib")
    elif encoding == "raw" and "byte skip" not in fields:
        have = os.stat(data).st_size - start
    else:
        return  # text, bzip2, byte skip: left to ITK
    if have < want:
        _truncated(data, have, want, "voxels")


def check_file(path):
    """Check that an image file holds all the data its header announces.

    Parameters
    ----------
    path : str or pathlib.Path
        An image file (NIfTI, NRRD, MHA/MHD; other formats are left to ITK,
        whose readers refuse a truncated file).

    Raises
    ------
    ImageReadError
        The file is shorter than its header says, or its compressed stream is
        truncated or fails its checksum; the message names the file.

    Examples
    --------
    >>> import os, tempfile, SimpleITK as sitk
    >>> from sklearn_medprep.io._integrity import check_file
    >>> path = os.path.join(tempfile.mkdtemp(), "ok.nii")
    >>> sitk.WriteImage(sitk.Image(7, 8, 9, sitk.sitkFloat32), path)
    >>> check_file(path)
    >>> with open(path, "r+b") as handle:
    ...     _ = handle.truncate(1000)
    >>> check_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.ImageReadError: [file '...ok.nii'] file is \
truncated or corrupt: its header announces 2368 bytes of header and voxels but \
it holds 1000
    """
    name = Path(path).name.lower()
    if name.endswith(".nii"):
        _check_nifti(path, gz=False)
    elif name.endswith(".nii.gz"):
        _check_nifti(path, gz=True)
    elif name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        _check_meta(path)


def check_dicom_series(folder, files):
    """Refuse DICOM-looking files of ``folder`` that GDCM left out of the series.

    Parameters
    ----------
    folder : pathlib.Path
        The series folder.
    files : sequence of str
        The files GDCM put in the series.

    Raises
    ------
    ImageReadError
        Naming the first such file (e.g. a truncated slice).
    """
    kept = {os.path.realpath(f) for f in files}
    for entry in sorted(Path(folder).iterdir()):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        if os.path.realpath(entry) in kept:
            continue
        looks_dicom = entry.suffix.lower() == ".dcm"
        if not looks_dicom:
            with open(entry, "rb") as handle:
                handle.seek(128)
                looks_dicom = handle.read(4) == b"DICM"
        if looks_dicom:
            raise ImageReadError(
                f"DICOM file {entry.name!r} is not readable as part of the series "
                f"({len(files)} other file(s) are): truncated or corrupt",
                file=str(entry),
            )


def restore_nifti_nonfinite(path, image):
    """Put back the NaN and infinite voxels that ITK's NIfTI reader turns into 0.

    ITK replaces non-finite voxels of a float NIfTI file with zeros, which would
    make them invisible to :func:`count_nonfinite` and change feature values
    silently. The voxels are read again with nibabel (float files only) and the
    non-finite ones copied into ``image``.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.nii`` or ``.nii.gz`` file.
    image : SimpleITK.Image
        What ITK read from it.

    Returns
    -------
    SimpleITK.Image
        ``image`` itself when the file holds no non-finite voxel.
    """
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return image
    import nibabel

    proxy = nibabel.load(str(path)).dataobj
    if proxy.dtype.kind != "f":
        return image
    raw = np.asanyarray(proxy.get_unscaled()).T  # file (x, y, z) -> (z, y, x)
    bad = ~np.isfinite(raw)
    array = sitk.GetArrayFromImage(image)
    if not bad.any() or raw.shape != array.shape:
        return image
    array[bad] = raw[bad]
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def count_nonfinite(image, mask=None, label=None):
    """Return the number of NaN or infinite voxels (inside ``mask == label``).

    Parameters
    ----------
    image : SimpleITK.Image
        The image.
    mask : SimpleITK.Image or None, default=None
        A mask of the same size; None counts over the whole image.
    label : int or None, default=None
        Label of the region in ``mask``.

    Returns
    -------
    int
    """
    if image.GetPixelID() not in (
        sitk.sitkFloat32, sitk.sitkFloat64,
        sitk.sitkVectorFloat32, sitk.sitkVectorFloat64,
    ):
        return 0
    array = sitk.GetArrayViewFromImage(image)
    bad = ~np.isfinite(array)
    if bad.ndim > (mask.GetDimension() if mask is not None else bad.ndim):
        bad = bad.any(axis=-1)  # vector pixels
    if mask is None or mask.GetSize() != image.GetSize():
        return int(bad.sum())
    roi = sitk.GetArrayViewFromImage(mask) == label
    return int(np.count_nonzero(bad & roi))
