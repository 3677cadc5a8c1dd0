"""Read one image cell of a subject table into SimpleITK or TorchIO form.

An image cell is a path (NIfTI, NRRD, MHA/MHD, FreeSurfer MGH/MGZ, a DICOM
series folder, PNG/JPEG) or an in-memory image (``torchio.Image``,
``SimpleITK.Image``, nibabel image of any byte order).
The internal form is :class:`SimpleITK.Image` (what PyRadiomics reads); TorchIO
images are made from it with TorchIO's own converters so that both libraries see
the same voxels in the same physical space.
"""

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..exceptions import ImageReadError
from ..utils._optional import import_optional
from ._deferred_source import deferred_reader
from ._integrity import check_dicom_series, check_file
from ._nibabel import is_mgh_path, nibabel_to_sitk, read_mgh
from ._onepass import read_file

__all__ = [
    "check_exists",
    "describe_cell",
    "image_fingerprint",
    "is_image_object",
    "read_geometry",
    "to_sitk",
    "to_torchio",
]

_2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _torchio():
    return import_optional("torchio", "a TorchIO image")


def _is_torchio_image(cell, cls="Image"):
    # A torchio image exists only if torchio was imported: never import it (and
    # torch) just to answer "no".
    tio = sys.modules.get("torchio")
    return tio is not None and isinstance(cell, getattr(tio, cls))


def _nibabel_classes():
    nibabel = sys.modules.get("nibabel")
    if nibabel is None:
        return ()
    return (nibabel.spatialimages.SpatialImage,)


def is_image_object(cell):
    """Return True if ``cell`` is an in-memory image the library accepts.

    Parameters
    ----------
    cell : object
        A table cell.

    Returns
    -------
    bool
    """
    if isinstance(cell, sitk.Image):
        return True
    return _is_torchio_image(cell) or isinstance(cell, _nibabel_classes())


def check_exists(cell, *, row=None, column=None):
    """Raise :class:`ImageReadError` if a path cell names no file or folder.

    Parameters
    ----------
    cell : object
        A table cell; in-memory images and deferred images pass.
    row, column : hashable, default=None
        For error messages.
    """
    if _is_missing(cell):
        raise ImageReadError("missing image (empty cell)", row=row, column=column)
    if isinstance(cell, (str, os.PathLike)) and not os.path.exists(cell):
        raise ImageReadError(
            f"cannot read image: no such file or folder: {str(cell)!r}",
            row=row, column=column, file=str(cell),
        )


def describe_cell(cell):
    """Return a short description of a cell for error messages (its path if any).

    Parameters
    ----------
    cell : object
        A table cell.

    Returns
    -------
    str or None
        The path, or None for in-memory images and missing values.
    """
    if isinstance(cell, (str, os.PathLike)):
        return str(cell)
    reader = deferred_reader(cell)
    if reader is not None:
        return reader.describe()
    if _is_torchio_image(cell) and cell.path is not None:
        path = cell.path
        return str(path[0] if isinstance(path, (list, tuple)) else path)
    if isinstance(cell, _nibabel_classes()) and cell.get_filename():
        return str(cell.get_filename())  # nibabel.load(...): still file-backed
    return None


def _is_missing(cell):
    if cell is None:
        return True
    if isinstance(cell, float) and np.isnan(cell):
        return True
    return isinstance(cell, str) and not cell.strip()


def _dicom_files(folder):
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ImageReadError("folder holds no DICOM series", file=str(folder))
    if len(series) > 1:
        raise ImageReadError(
            f"folder holds {len(series)} DICOM series ({', '.join(series)}); "
            "give one series per folder",
            file=str(folder),
        )
    files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
    check_dicom_series(folder, files)
    return files


def _to_scalar(image):
    """Turn an RGB(A) 2D image (PNG/JPEG) into one grey-level channel."""
    n = image.GetNumberOfComponentsPerPixel()
    if n == 1:
        return image
    if n not in (3, 4):
        return image
    rgb = sitk.GetArrayFromImage(image).astype(np.float64)[..., :3]
    grey = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma
    out = sitk.GetImageFromArray(grey.astype(np.float32))
    out.CopyInformation(sitk.VectorIndexSelectionCast(image, 0))
    return out


def _read_path(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {str(path)!r}")
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(_dicom_files(path))
        return reader.Execute()
    if is_mgh_path(path):
        return read_mgh(path)  # FreeSurfer: no ITK reader
    image = read_file(path)
    if path.suffix.lower() in _2D_SUFFIXES:
        image = _to_scalar(image)
    return image


def to_sitk(cell, *, row=None, column=None):
    """Return the image of a table cell as a :class:`SimpleITK.Image`.

    Parameters
    ----------
    cell : str, pathlib.Path, torchio.Image, SimpleITK.Image or nibabel image
        The cell: a path to a file or DICOM series folder, or an in-memory image.
    row : hashable, default=None
        Index label of the row, for error messages.
    column : str, default=None
        Column name, for error messages.

    Returns
    -------
    SimpleITK.Image

    Raises
    ------
    ImageReadError
        If the cell is missing, the file does not exist, or it cannot be read;
        the message names row, column and file.
    """
    if _is_missing(cell):
        raise ImageReadError("missing image (empty cell)", row=row, column=column)
    file = describe_cell(cell)
    try:
        if isinstance(cell, sitk.Image):
            return cell
        if isinstance(cell, (str, os.PathLike)):
            return _read_path(cell)
        if _is_torchio_image(cell):
            image = cell.as_sitk()
            if _is_torchio_image(cell, "LabelMap") and image.GetPixelID() in (
                sitk.sitkFloat32,
                sitk.sitkFloat64,
            ):
                image = sitk.Cast(sitk.Round(image), sitk.sitkInt32)
            return image
        if isinstance(cell, _nibabel_classes()):
            return nibabel_to_sitk(cell)
    except ImageReadError as exc:
        raise ImageReadError(
            exc.bare_message, row=row, column=column, file=exc.file or file
        ) from exc
    except (RuntimeError, OSError, ValueError) as exc:
        message = str(exc).strip().splitlines()
        message = message[-1] if message else type(exc).__name__
        raise ImageReadError(
            f"cannot read image: {message}", row=row, column=column, file=file
        ) from exc
    raise ImageReadError(
        f"unsupported image cell of type {type(cell).__name__}; expected a path, "
        "torchio.Image, SimpleITK.Image or nibabel image",
        row=row,
        column=column,
    )


def to_torchio(cell, *, label=False, row=None, column=None):
    """Return the image of a table cell as a TorchIO image.

    Parameters
    ----------
    cell : str, pathlib.Path, torchio.Image, SimpleITK.Image or nibabel image
        The cell.
    label : bool, default=False
        Return a :class:`torchio.LabelMap` (nearest-neighbour interpolation in
        spatial transforms) instead of a :class:`torchio.ScalarImage`.
    row, column : hashable, default=None
        Row index label and column name, for error messages.

    Returns
    -------
    torchio.ScalarImage or torchio.LabelMap
        A TorchIO image with its data loaded; a TorchIO image of the requested
        class is returned as is.
    """
    tio = _torchio()
    cls = tio.LabelMap if label else tio.ScalarImage
    if deferred_reader(cell) is not None:
        try:
            cell.load()  # the row's transform, once
        except ImageReadError as exc:
            raise ImageReadError(
                exc.bare_message, row=row, column=column, file=exc.file
            ) from exc
        # a plain in-memory copy: the deferred image's path is a description,
        # not a file, and TorchIO re-parses an image's path whenever a transform
        # (a patch crop, say) builds a new image from it
        return cls(tensor=cell.data, affine=cell.affine)
    elif isinstance(cell, tio.Image) and not cell._loaded:
        file = describe_cell(cell)
        if file is not None and Path(file).is_file():
            try:
                check_file(file)
            except ImageReadError as exc:
                raise ImageReadError(
                    exc.bare_message, row=row, column=column, file=exc.file
                ) from exc
    if type(cell) is cls:
        return cell
    if isinstance(cell, tio.Image):
        return cls(tensor=cell.data, affine=cell.affine)
    image = to_sitk(cell, row=row, column=column)
    return cls.from_sitk(image)


def read_geometry(cell, *, row=None, column=None):
    """Return ``(size, spacing, origin, direction)`` of a cell, reading only headers.

    Parameters
    ----------
    cell : object
        The cell.
    row, column : hashable, default=None
        For error messages.

    Returns
    -------
    tuple
        Size (voxels), spacing, origin, direction of the image.
    """
    if isinstance(cell, (str, os.PathLike)) and not _is_missing(cell):
        path = Path(cell)
        if not path.exists():
            raise ImageReadError(
                "file does not exist", row=row, column=column, file=str(path)
            )
        if (path.is_file() and path.suffix.lower() not in _2D_SUFFIXES
                and not is_mgh_path(path)):
            try:
                check_file(path)
            except ImageReadError as exc:
                raise ImageReadError(
                    exc.bare_message, row=row, column=column, file=exc.file
                ) from exc
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            try:
                reader.ReadImageInformation()
            except RuntimeError as exc:
                message = str(exc).strip().splitlines()
                raise ImageReadError(
                    "cannot read image header: "
                    + (message[-1] if message else "unknown error"),
                    row=row,
                    column=column,
                    file=str(path),
                ) from exc
            return (
                reader.GetSize(),
                reader.GetSpacing(),
                reader.GetOrigin(),
                reader.GetDirection(),
            )
    image = to_sitk(cell, row=row, column=column)
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def image_fingerprint(image):
    """Return a content hash of a SimpleITK image (voxels and geometry).

    Used as cache key, so that the same image read from a path or given in
    memory hits the same cache entry.

    Parameters
    ----------
    image : SimpleITK.Image
        The image.

    Returns
    -------
    str
        Hex SHA-256 digest.
    """
    digest = hashlib.sha256()
    array = sitk.GetArrayViewFromImage(image)
    digest.update(str((array.dtype.str, array.shape)).encode())
    digest.update(
        repr(
            (
                image.GetSpacing(),
                image.GetOrigin(),
                image.GetDirection(),
                image.GetNumberOfComponentsPerPixel(),
            )
        ).encode()
    )
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def load_image(cell, *, backend="sitk", label=False, row=None, column=None):
    """Load one image cell of a subject table.

    Parameters
    ----------
    cell : str, pathlib.Path, torchio.Image, SimpleITK.Image or nibabel image
        A path to an image file (NIfTI, NRRD, MHA/MHD, MGZ/MGH, PNG/JPEG) or to a DICOM
        series folder, or an in-memory image.
    backend : {"sitk", "torchio"}, default="sitk"
        Return a :class:`SimpleITK.Image` or a TorchIO image.
    label : bool, default=False
        With ``backend="torchio"``, return a :class:`torchio.LabelMap`.
    row, column : hashable, default=None
        Row index label and column name, used in error messages.

    Returns
    -------
    SimpleITK.Image or torchio.Image

    Raises
    ------
    ImageReadError
        Missing cell, missing or unreadable file; the message names row, column
        and file.

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> from sklearn_medprep import load_image
    >>> image = sitk.Image(7, 8, 9, sitk.sitkFloat32)
    >>> load_image(image, backend="torchio").shape
    (1, 7, 8, 9)
    >>> load_image("missing.nii.gz", row=3, column="image")
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.ImageReadError: [row 3, column 'image', file \
'missing.nii.gz'] cannot read image: no such file or folder: 'missing.nii.gz'
    """
    if backend == "sitk":
        return to_sitk(cell, row=row, column=column)
    if backend == "torchio":
        return to_torchio(cell, label=label, row=row, column=column)
    raise ValueError(f"backend must be 'sitk' or 'torchio', got {backend!r}")
