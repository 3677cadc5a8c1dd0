"""nibabel images and FreeSurfer files (``.mgz``/``.mgh``) as SimpleITK images.

ITK has no reader for FreeSurfer's MGH format, and SimpleITK refuses arrays of
non-native byte order (``dtype: >f4 is not supported``); nibabel reads both.
The geometry is nibabel's own: its affine maps voxel indices to RAS+ world
coordinates, ITK's geometry maps them to LPS+, so the first two rows of the
affine change sign; the spacing is the length of each column of the affine's
3 x 3 part (:attr:`nibabel.spatialimages.SpatialImage.header`'s zooms for an
affine without shear), the direction the columns divided by it, the origin its
last column.

A ``.mgz`` file is one gzip stream: it is decompressed once, in full (so that a
truncated stream or a bad CRC is an error, as for ``.nii.gz``), and the image
parsed from those bytes. A ``.mgh`` file must hold every voxel its header
announces.
"""

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..exceptions import ImageReadError
from ._integrity import _truncated

__all__ = ["MGH_SUFFIXES", "is_mgh_path", "nibabel_to_sitk", "read_mgh"]

MGH_SUFFIXES = (".mgz", ".mgh")

# what SimpleITK cannot hold, and what it is given instead
_WIDEN = {"b": np.uint8, "e": np.float32}


def _spatial_frame(affine, ndim):
    """``(origin, spacing, direction)`` in LPS of a RAS ``affine``."""
    affine = np.asarray(affine, dtype=np.float64)
    lps = affine.copy()
    lps[:2] *= -1.0  # RAS -> LPS: x and y change sign
    linear = lps[:ndim, :ndim] if ndim < 3 else lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0) or not np.all(np.isfinite(linear)):
        raise ValueError(f"the affine is singular or not finite: {affine.tolist()}")
    direction = linear / spacing
    origin = lps[:ndim, 3] if ndim < 3 else lps[:3, 3]
    return tuple(origin), tuple(spacing), tuple(direction.ravel())


def nibabel_to_sitk(image):
    """Return a nibabel image as a :class:`SimpleITK.Image` in the same space.

    Parameters
    ----------
    image : nibabel.spatialimages.SpatialImage
        Any nibabel image (NIfTI, MGH, ...), of any byte order. 2D and 3D data
        give a scalar image; 4D data a 3D image with one component per volume
        (the last axis), or a scalar one when that axis has length 1.

    Returns
    -------
    SimpleITK.Image
        Voxels in native byte order; origin, spacing and direction from the
        image's affine, converted from RAS to LPS.

    Raises
    ------
    ImageReadError
        The image is backed by a truncated or corrupt file (nibabel reads a
        loaded image's voxels only now).
    ValueError
        The data has more than 4 dimensions, a type SimpleITK cannot hold
        (complex), or the affine is singular.

    Examples
    --------
    >>> import numpy as np, nibabel
    >>> from sklearn_medprep.io._nibabel import nibabel_to_sitk
    >>> data = np.arange(24, dtype=">f4").reshape(2, 3, 4)  # big-endian
    >>> affine = np.diag([1.0, 2.0, 3.0, 1.0])
    >>> affine[:3, 3] = [10.0, 20.0, 30.0]
    >>> image = nibabel_to_sitk(nibabel.MGHImage(data, affine))
    >>> image.GetSize(), image.GetSpacing(), image.GetOrigin()
    ((2, 3, 4), (1.0, 2.0, 3.0), (-10.0, -20.0, 30.0))
    >>> float(image[1, 2, 3]) == float(data[1, 2, 3])
    True
    """
    try:
        data = np.asanyarray(image.dataobj)  # a file-backed image reads it now
    except (EOFError, zlib.error) as exc:
        raise ImageReadError(
            f"compressed data is truncated or corrupt ({exc})",
            file=image.get_filename(),
        ) from exc
    except (OSError, ValueError) as exc:  # "Expected N bytes, got M bytes ..."
        if not image.get_filename():
            raise
        raise ImageReadError(
            f"file is truncated or corrupt: {' '.join(str(exc).split())}",
            file=image.get_filename(),
        ) from exc
    if data.dtype.kind in _WIDEN:
        data = data.astype(_WIDEN[data.dtype.kind])
    if data.dtype.kind not in "uif":
        raise ValueError(f"voxel type {data.dtype} is not supported by SimpleITK")
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3, 4):
        raise ValueError(f"{data.ndim}D data of shape {data.shape} is not supported")
    vector = data.ndim == 4
    spatial = 3 if vector else data.ndim
    # nibabel's (x, y, z[, c]) is ITK's array order (z, y, x[, c]) reversed
    axes = tuple(reversed(range(spatial))) + ((3,) if vector else ())
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(axes)),
                                 isVector=vector)
    origin, spacing, direction = _spatial_frame(image.affine, spatial)
    out.SetOrigin(origin)
    out.SetSpacing(spacing)
    out.SetDirection(direction)
    return out


def read_mgh(path):
    """Read a FreeSurfer ``.mgz`` or ``.mgh`` file, checked for integrity.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    SimpleITK.Image
        See :func:`nibabel_to_sitk`.

    Raises
    ------
    ImageReadError
        The gzip stream is truncated or fails its CRC, the file holds fewer
        voxels than its header announces, or it is not an MGH file; the message
        names the file.

    Examples
    --------
    >>> import os, tempfile, numpy as np, nibabel
    >>> from sklearn_medprep.io._nibabel import read_mgh
    >>> path = os.path.join(tempfile.mkdtemp(), "brain.mgz")
    >>> nibabel.save(nibabel.MGHImage(np.ones((4, 5, 6), np.float32),
    ...                               np.eye(4)), path)
    >>> read_mgh(path).GetSize()
    (4, 5, 6)
    >>> data = open(path, "rb").read()
    >>> _ = open(path, "wb").write(data[:-20])
    >>> read_mgh(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.ImageReadError: [file '...brain.mgz'] \
compressed data is truncated or corrupt (...)
    """
    import nibabel

    raw = Path(path).read_bytes()
    if Path(path).name.lower().endswith(".mgz") or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)  # checks the CRC-32 and the length
        except (EOFError, OSError, zlib.error) as exc:
            raise ImageReadError(
                f"compressed data is truncated or corrupt ({exc})", file=str(path)
            ) from exc
    try:
        image = nibabel.MGHImage.from_bytes(raw)
        header = image.header
        offset = int(header.get_data_offset())
        want = offset + int(np.prod(header.get_data_shape(), dtype=np.int64)) * (
            header.get_data_dtype().itemsize
        )
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types
        raise ImageReadError(
            f"cannot read image header: not an MGH file ({exc})", file=str(path)
        ) from exc
    if len(raw) < want:
        _truncated(path, len(raw), want, "header and voxels")
    return nibabel_to_sitk(image)


def is_mgh_path(cell):
    """Whether ``cell`` is a path to a FreeSurfer ``.mgz``/``.mgh`` file."""
    return isinstance(cell, (str, os.PathLike)) and str(cell).lower().endswith(
        MGH_SUFFIXES
    )
