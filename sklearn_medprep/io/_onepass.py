"""Read a compressed image file and check it with one decode.

:func:`~sklearn_medprep.io._integrity.check_file` decompresses a whole
``.nii.gz``, gzip NRRD or compressed MetaImage stream in Python only to count
its bytes; ITK then decompresses it again (about half of the time of reading
such a file, and ITK's zlib is faster than Python's). :func:`read_file` lets
ITK decode the file once and checks what it decoded against what the stream
itself records:

- gzip streams (``.nii.gz``, NRRD ``encoding: gzip``) end with the CRC-32 and
  the length (mod 2**32) of the decompressed data. The length is compared with
  the header's announcement *before* ITK reads (a truncated or header-only file
  fails there, before any voxel is decoded), and the CRC-32 of the header
  bytes (NIfTI) plus the voxels ITK returned, in the file's byte order, with the
  recorded one after;
- zlib streams (compressed MetaImage) end with the Adler-32 of the data,
  compared in the same way;
- gzip NRRD is not hashed again in Python: ITK's NRRD reader (teem's NrrdIO,
  ``gzio.c``) checks the CRC-32 itself and fails the read on a mismatch, once
  its inflate reaches the stream's end. It reads the stream in 16 KiB chunks
  from its start and stops asking once the announced bytes are out, so the
  end is reached in the same call unless a chunk boundary falls among the
  stream's last bytes (the end-of-block code after the last voxel): for such
  a stream (about one in 64) the CRC-32 is computed here as for NIfTI.

When both agree, the voxels ITK returned are, bit for bit, the ones the file
holds (so no NaN was turned into 0 and nothing is missing), and the image is
ITK's own: geometry and pixel type exactly as :func:`SimpleITK.ReadImage` gives
them. Whenever they do not (a truncated or corrupt stream, but also what ITK
legitimately changes: NaN voxels, ``scl_slope`` scaling, vector NIfTI, a
multi-member gzip file), the file is checked the slow way
(:func:`~sklearn_medprep.io._integrity.check_file`, which raises with the byte
counts) and, for NIfTI, its non-finite voxels are restored: never a wrong
answer, only a slower one. Uncompressed files are checked from their size
(``stat``) as before.
"""

import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ._integrity import (
    _META_BYTES,
    _nrrd_bytes,
    _read_text_header,
    check_file,
    restore_nifti_nonfinite,
)

__all__ = ["read_file"]

_GZIP_MAGIC = b"\x1f\x8b"


class _Stream(NamedTuple):
    """A compressed stream as the file's header describes it."""

    file: Path  # the file holding the stream
    start: int  # where the stream begins in it (it runs to the file's end)
    prefix: int  # decompressed bytes before the voxels (the NIfTI header)
    voxels: int  # decompressed bytes of voxels the header announces
    byteorder: str  # of the voxels in the file: "<", ">" or "=" (one byte)
    nrrd: bool = False  # read by ITK's NRRD reader (teem), which checks the CRC-32


# ITK's NRRD reader (NrrdIO gzio.c) reads a gzip stream in chunks of this many
# bytes from the stream's start; when a chunk ends within _TEEM_TAIL bytes of
# the deflate data's end, the reader may stop before it sees the stream's end
# (and checks no CRC-32): the stream is then checked here
_TEEM_CHUNK = 16 * 1024
_TEEM_TAIL = 256


def _nifti_stream(path):
    import nibabel

    try:
        proxy = nibabel.load(str(path)).dataobj
        offset, shape, dtype = int(proxy.offset), proxy.shape, proxy.dtype
    except Exception:  # noqa: BLE001 - left to check_file, which names it
        return None
    voxels = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return _Stream(Path(path), 0, offset, voxels, dtype.byteorder)


def _fields(lines, separator):
    fields = {}
    for line in lines:
        if line.startswith("#") or separator not in line:
            continue
        key, value = line.split(separator, 1)
        fields[key.strip().lower()] = value.lstrip("=").strip()
    return fields


def _nrrd_stream(path):
    lines, offset = _read_text_header(path, lambda line: line == "")
    fields = _fields(lines[1:], ":")
    if fields.get("encoding", "raw").lower() not in ("gzip", "gz"):
        return None
    if "byte skip" in fields or "line skip" in fields or "lineskip" in fields:
        return None
    size = _nrrd_bytes(fields.get("type", ""))
    try:
        count = int(np.prod([int(v) for v in fields["sizes"].split()], dtype=np.int64))
    except (KeyError, ValueError):
        return None
    if size is None:
        return None
    target = fields.get("data file") or fields.get("datafile")
    if target is not None:
        if target.upper().startswith("LIST") or len(target.split()) > 1:
            return None
        data, start = Path(path).parent / target, 0
    elif offset is None:
        return None
    else:
        data, start = Path(path), offset
    endian = fields.get("endian", "").lower()
    order = {"big": ">", "little": "<"}.get(endian, "=")
    return _Stream(data, start, 0, count * size, order, nrrd=True)


def _meta_stream(path):
    lines, offset = _read_text_header(
        path, lambda line: line.split("=")[0].strip() == "ElementDataFile"
    )
    fields = _fields(lines, "=")
    if fields.get("compresseddata", "false").lower() != "true" or offset is None:
        return None
    size = None
    for key, value in _META_BYTES.items():
        if key.lower() == fields.get("elementtype", "").lower():
            size = value
    try:
        dims = [int(v) for v in fields["dimsize"].split()]
        channels = int(fields.get("elementnumberofchannels", "1"))
    except (KeyError, ValueError):
        return None
    target = fields.get("elementdatafile", "")
    if size is None or target.upper().startswith("LIST") or "%" in target:
        return None
    if target.upper() == "LOCAL":
        data, start = Path(path), offset
    else:
        data, start = Path(path).parent / target, 0
    msb = fields.get("elementbyteordermsb", fields.get("binarydatabyteordermsb", ""))
    order = ">" if msb.lower() == "true" else "<"
    count = int(np.prod(dims, dtype=np.int64)) * channels
    return _Stream(data, start, 0, count * size, order)


def _stream_of(path):
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return _nifti_stream(path)
    if name.endswith((".nrrd", ".nhdr")):
        return _nrrd_stream(path)
    if name.endswith((".mha", ".mhd")):
        return _meta_stream(path)
    return None


def _trailer(stream):
    """``(kind, checksum, length)`` the stream records; None if not readable.

    ``length`` is the decompressed length mod 2**32 (gzip only, else None).
    """
    try:
        size = os.stat(stream.file).st_size
        if size - stream.start < 10:
            return None
        with open(stream.file, "rb") as handle:
            handle.seek(stream.start)
            magic = handle.read(2)
            handle.seek(size - 8)
            tail = handle.read(8)
    except OSError:
        return None
    if magic == _GZIP_MAGIC:
        crc, length = struct.unpack("<II", tail)
        return "gzip", crc, length
    zlib_header = magic[0] & 0x0F == 8 and int.from_bytes(magic, "big") % 31 == 0
    if len(magic) == 2 and zlib_header:
        return "zlib", struct.unpack(">I", tail[4:])[0], None
    return None


def _itk_checks_crc(stream, kind):
    """Whether ITK's reader compares the stream's CRC-32 itself (or raises).

    True for a gzip NRRD stream when no chunk that ITK's NRRD reader reads ends
    within the last ``_TEEM_TAIL`` bytes of the deflate data (so its inflate
    surely reaches the stream's end, where it checks the CRC-32).
    """
    if kind != "gzip" or not stream.nrrd:
        return False
    try:
        end = os.stat(stream.file).st_size - 8 - stream.start  # deflate data's end
    except OSError:
        return False
    return end < _TEEM_CHUNK or end % _TEEM_CHUNK >= _TEEM_TAIL


def _prefix_bytes(stream):
    """The first ``stream.prefix`` decompressed bytes (the NIfTI header)."""
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
    out = b""
    with open(stream.file, "rb") as handle:
        handle.seek(stream.start)
        pending = b""
        while len(out) < stream.prefix:
            if not pending:
                pending = handle.read(1 << 16)
                if not pending:
                    break
            out += decoder.decompress(pending, stream.prefix - len(out))
            pending = decoder.unconsumed_tail
            if decoder.eof:
                break
    return out


def _sized(image, stream):
    """Whether ITK returned as many voxel bytes as the header announces."""
    bytes_per_pixel = image.GetSizeOfPixelComponent()
    bytes_per_pixel *= image.GetNumberOfComponentsPerPixel()
    return image.GetNumberOfPixels() * bytes_per_pixel == stream.voxels


def _matches(image, stream, kind, checksum):
    """Whether ITK's voxels (and the header bytes) give the recorded checksum."""
    view = sitk.GetArrayViewFromImage(image)
    if view.nbytes != stream.voxels or not view.flags.c_contiguous:
        return False
    order = stream.byteorder
    if order in ("<", ">") and view.dtype.itemsize > 1:
        wanted = view.dtype.newbyteorder(order)
        if wanted != view.dtype:
            view = view.astype(wanted)
    head = _prefix_bytes(stream) if stream.prefix else b""
    if len(head) != stream.prefix:
        return False
    if kind == "gzip":
        return zlib.crc32(view, zlib.crc32(head)) == checksum
    return zlib.adler32(view, zlib.adler32(head)) == checksum


def _slow(path, image=None):
    """Check ``path`` the slow way; read it (again) and restore NIfTI's NaNs."""
    check_file(path)  # raises for a truncated or corrupt file
    if image is None:
        image = sitk.ReadImage(str(path))
    if Path(path).name.lower().endswith((".nii", ".nii.gz")):
        image = restore_nifti_nonfinite(path, image)
    return image


def read_file(path):
    """Read an image file with ITK, checked for integrity, decoding it once.

    Parameters
    ----------
    path : str or pathlib.Path
        An image file ITK reads (NIfTI, NRRD, MHA/MHD, PNG, ...).

    Returns
    -------
    SimpleITK.Image
        What :func:`SimpleITK.ReadImage` gives, except that NaN and infinite
        voxels of a float NIfTI file, which ITK reads as 0, are kept.

    Raises
    ------
    ImageReadError
        The file is truncated or corrupt; the message names the file.
    RuntimeError
        ITK cannot read an intact file.

    Examples
    --------
    >>> import os, tempfile, numpy as np, SimpleITK as sitk
    >>> from sklearn_medprep.io._onepass import read_file
    >>> path = os.path.join(tempfile.mkdtemp(), "ok.nii.gz")
    >>> voxels = np.random.default_rng(0).normal(size=(9, 8, 7))
    >>> sitk.WriteImage(sitk.GetImageFromArray(voxels), path)
    >>> read_file(path).GetSize()
    (7, 8, 9)
    >>> data = open(path, "rb").read()
    >>> _ = open(path, "wb").write(data[: len(data) // 2])
    >>> read_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.ImageReadError: [file '...ok.nii.gz'] \
compressed data is truncated or corrupt (...)
    """
    stream = _stream_of(path)
    trailer = _trailer(stream) if stream is not None else None
    if trailer is None:
        return _slow(path)
    kind, checksum, length = trailer
    if length is not None and length != (stream.prefix + stream.voxels) % (1 << 32):
        return _slow(path)  # truncated (or multi-member gzip): before any decode
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        check_file(path)  # a truncated stream: say so with the byte counts
        raise
    if _itk_checks_crc(stream, kind):  # ITK compared the CRC-32 (or raised)
        return image if _sized(image, stream) else _slow(path, image)
    if not _matches(image, stream, kind, checksum):
        return _slow(path, image)
    return image
