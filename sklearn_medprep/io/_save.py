"""Save the images of a subject table to files: checked, all or nothing.

:func:`write_images` writes every image cell of the chosen columns (TorchIO,
SimpleITK, nibabel or deferred images, or paths to convert) with its geometry,
and returns the table with paths in those cells and a manifest of SHA-256
checksums. :func:`stage_image` is the checked write of one image that every
image writer of the library uses.
"""

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..exceptions import SubjectTableError
from ._deferred_source import deferred_reader
from ._integrity import check_file
from ._read import _is_missing, is_image_object, to_sitk
from ._targets import output_names, refuse_inputs
from ._write import commit_all, full_suffix, stage_file

__all__ = ["file_sha256", "stage_image", "write_images"]

_FORMATS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def stage_image(image, path, *, row=None, tag="", overwrite=True, inputs=()):
    """Stage ``image`` as ``path``: written, read back and checked, not yet renamed.

    ITK reports a full disk on stderr only and returns normally; the written
    file is therefore read back: its header must give the image's size, pixel
    type, spacing, origin and direction, and the file must hold every byte the
    header announces (a ``.nii.gz`` decompressed in full, its CRC and length
    checked; other formats by :func:`~sklearn_medprep.io._integrity.check_file`).

    Parameters
    ----------
    image : SimpleITK.Image
        The image.
    path : str
        Final name; its suffix chooses the format.
    row : hashable, default=None
        Row named in errors.
    tag : str, default=""
        Batch tag of the temporary name (see :func:`~sklearn_medprep.io.stage_file`).
    overwrite : bool, default=True
        Whether an existing file may be replaced.
    inputs : iterable of path, default=()
        Files that must not be written over.

    Returns
    -------
    StagedFile
    """

    def check(tmp):
        if tmp.lower().endswith((".nii", ".nii.gz")):
            voxel_bytes = sitk.GetArrayViewFromImage(image).nbytes
            held, announced = _nifti_bytes(tmp, voxel_bytes)
            if held < announced:
                return (f"it holds {held} bytes of header and voxels, its header "
                        f"announces {announced}")
        else:
            check_file(tmp)
        reader = sitk.ImageFileReader()
        reader.SetFileName(tmp)
        reader.ReadImageInformation()
        got = (reader.GetSize(), reader.GetPixelID(), reader.GetSpacing())
        want = (image.GetSize(), image.GetPixelID(), image.GetSpacing())
        if got[:2] != want[:2] or not np.allclose(got[2], want[2]):
            return (f"its header gives size, pixel type, spacing {got}, not the "
                    f"image's {want}")
        # NIfTI stores origin and direction in float32
        for what, a, b in (("origin", reader.GetOrigin(), image.GetOrigin()),
                           ("direction", reader.GetDirection(),
                            image.GetDirection())):
            if not np.allclose(a, b, rtol=1e-5, atol=1e-4):
                return f"its header gives {what} {a}, not the image's {b}"
        return None

    return stage_file(
        path,
        lambda tmp: sitk.WriteImage(image, tmp),
        check=check,
        row=row,
        suffix=full_suffix(path),
        tag=tag,
        overwrite=overwrite,
        inputs=inputs,
    )


def _nifti_bytes(path, voxel_bytes):
    """Bytes a NIfTI file holds and bytes it should hold (header + voxels).

    Read in small pieces without nibabel (a writer's memory stays that of a
    few images); ``gzip`` checks the CRC and length of a ``.nii.gz``.
    """
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        head = handle.read(540)
        held = len(head)
        while piece := handle.read(1 << 16):
            held += len(piece)
    if len(head) < 348:
        return held, 348 + voxel_bytes
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348:
            return held, int(struct.unpack(order + "f", head[108:112])[0]) + voxel_bytes
        if size == 540 and len(head) >= 176:
            return held, struct.unpack(order + "q", head[168:176])[0] + voxel_bytes
    raise ValueError("not a NIfTI header")


def file_sha256(path, *, chunk=1 << 20):
    """Return the hex SHA-256 of a file's bytes, read in pieces.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    chunk : int, default=1 MiB
        Bytes read at a time.

    Returns
    -------
    str

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_medprep.io import file_sha256
    >>> name = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(name, "wb").write(b"abc")
    >>> file_sha256(name)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while piece := handle.read(chunk):
            digest.update(piece)
    return digest.hexdigest()


def _is_image_cell(cell):
    return is_image_object(cell) or deferred_reader(cell) is not None


def _image_columns(table, columns):
    if columns is None:
        found = [c for c in table.columns
                 if any(_is_image_cell(cell) for cell in table[c])]
        if not found:
            raise SubjectTableError(
                "the table holds no in-memory image (TorchIO, SimpleITK or "
                "nibabel image); name the columns to write with columns=[...] "
                "(path cells are then read and converted)"
            )
        return found
    columns = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SubjectTableError(
            f"columns {missing} are not in the table (its columns: "
            f"{list(table.columns)})"
        )
    return columns


def write_images(table, folder, *, columns=None, format=".nii.gz", overwrite=False):
    """Write the images of a subject table to files; return paths and checksums.

    Saves a preprocessed or augmented table (in-memory TorchIO, SimpleITK or
    nibabel images, or the deferred images of
    :class:`~sklearn_medprep.TorchIOPreprocessor`, computed as they are
    written) with each image's voxels, pixel type, spacing, origin and
    direction. Every file goes through the library's checked writer: written
    under a temporary name, read back (header against the image, every byte
    present) and renamed only when all the table's files were written, so an
    error leaves none of them behind. Label maps (:class:`torchio.LabelMap`)
    are written as integers.

    Files are named ``<folder>/<column>/<row><format>`` (characters other than
    letters, digits, ``.``, ``_`` and ``-`` become ``_``; two rows or columns
    giving one name are refused). Missing cells stay missing.

    Parameters
    ----------
    table : pandas.DataFrame
        The subject table.
    folder : str or pathlib.Path
        Output folder (created if needed).
    columns : str or list of str or None, default=None
        Image columns to write. None: every column holding an in-memory image.
        Path cells of a named column are read and written in ``format`` (a
        conversion).
    format : {".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"}, default=".nii.gz"
        File format, by suffix.
    overwrite : bool, default=False
        Whether existing files may be replaced.

    Returns
    -------
    paths : pandas.DataFrame
        The table (same index, same columns and order) with the absolute path
        of the written file in each written cell; other columns unchanged.
        :func:`~sklearn_medprep.write_manifest` writes it as a CSV manifest.
    checksums : pandas.DataFrame
        One line per file written: ``row``, ``column``, ``file``, ``bytes``
        and ``sha256`` (of the file's bytes), in table order.

    Raises
    ------
    ImageReadError
        A cell cannot be read (names row, column and file).
    OutputWriteError
        A file cannot be written in full or exists already (names row and
        file); nothing was left under any of the table's names.

    Examples
    --------
    >>> import tempfile, pandas as pd, SimpleITK as sitk
    >>> from sklearn_medprep.io import write_images
    >>> image = sitk.Image(7, 8, 9, sitk.sitkFloat32)
    >>> image.SetSpacing((1.0, 1.5, 2.0))
    >>> table = pd.DataFrame({"image": [image], "age": [61]}, index=["sub-01"])
    >>> paths, checksums = write_images(table, tempfile.mkdtemp())
    >>> paths.loc["sub-01", "image"].endswith("image/sub-01.nii.gz")
    True
    >>> int(paths.loc["sub-01", "age"])
    61
    >>> sitk.ReadImage(paths["image"].iloc[0]).GetSpacing()
    (1.0, 1.5, 2.0)
    >>> list(checksums.columns)
    ['row', 'column', 'file', 'bytes', 'sha256']
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    columns = _image_columns(table, columns)
    folder = Path(folder).resolve()
    rows = list(table.index)
    names = output_names(rows, format)
    subfolders = output_names(columns)
    inputs = [cell for c in columns for cell in table[c]
              if isinstance(cell, (str, os.PathLike))]
    tag = f"w{os.getpid()}"
    staged, records = [], []
    out = table.copy()
    try:
        for column, sub in zip(columns, subfolders):
            cells = []
            for row, name, cell in zip(rows, names, table[column]):
                if _is_missing(cell):
                    cells.append(cell)
                    continue
                image = to_sitk(cell, row=row, column=column)
                path = str(folder / sub / name)
                refuse_inputs(path, inputs, row=row)
                item = stage_image(image, path, row=row, tag=tag,
                                   overwrite=overwrite)
                del image
                staged.append(item)
                records.append((row, column, path, os.path.getsize(item.tmp),
                                file_sha256(item.tmp)))
                cells.append(path)
            out[column] = pd.Series(cells, index=out.index, dtype=object)
    except BaseException:
        for item in staged:
            item.discard()
        raise
    commit_all(staged)
    checksums = pd.DataFrame(
        records, columns=["row", "column", "file", "bytes", "sha256"]
    )
    return out, checksums
