"""Lossless conversion of image cells (DICOM series and any readable format) to NIfTI.

Each cell is read with the library's one reader (:func:`sklearn_medprep.load_image`:
for a DICOM series folder, GDCM with the check that no slice was left out),
written with the one safe writer (:func:`sklearn_medprep.io.stage_file`:
temporary name, read back and compared, renamed only when every row was
written) and listed with its SHA-256 in a checksum manifest.
"""

import os
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io._read import to_sitk
from ..io._targets import output_names
from ..io._write import commit_all, discard_tagged, stage_file
from ._checksums import write_checksum_manifest

__all__ = ["convert_to_nifti", "same_image"]


def same_image(a, b):
    """How image ``b`` differs from ``a`` beyond NIfTI's float32 header, or None.

    Voxels and pixel type must be equal; size equal; spacing, origin and
    direction equal to 1e-6 relative or absolute (NIfTI stores them as
    float32, whose rounding is 6e-8 of the value).

    Parameters
    ----------
    a, b : SimpleITK.Image

    Returns
    -------
    str or None

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> from sklearn_medprep.dicom._convert import same_image
    >>> a = sitk.Image(3, 4, 5, sitk.sitkInt16)
    >>> same_image(a, a) is None
    True
    >>> same_image(a, sitk.Cast(a, sitk.sitkFloat32))
    'pixel type 16-bit signed integer vs 32-bit float'
    """
    if a.GetSize() != b.GetSize():
        return f"size {a.GetSize()} vs {b.GetSize()}"
    if a.GetPixelID() != b.GetPixelID():
        return (f"pixel type {a.GetPixelIDTypeAsString()} vs "
                f"{b.GetPixelIDTypeAsString()}")
    for name, x, y in (("spacing", a.GetSpacing(), b.GetSpacing()),
                       ("origin", a.GetOrigin(), b.GetOrigin()),
                       ("direction", a.GetDirection(), b.GetDirection())):
        if not np.allclose(x, y, rtol=1e-6, atol=1e-6):
            return f"{name} {list(x)} vs {list(y)}"
    if not np.array_equal(sitk.GetArrayViewFromImage(a),
                          sitk.GetArrayViewFromImage(b)):
        return "voxels differ"
    return None


def convert_to_nifti(table, folder, *, image="image", manifest=True,
                     overwrite=False):
    """Convert the image cells of a subject table to NIfTI files, losslessly.

    Every cell (a DICOM series folder, NRRD, MHA, PNG, an in-memory image) is
    read as :func:`sklearn_medprep.load_image` reads it and written to
    ``folder/<row label>.nii.gz`` (``<row label>_<column>.nii.gz`` for
    several columns); each file is read back before it is kept: same voxels
    and pixel type, same size, spacing, origin and direction (to NIfTI's
    float32 precision). Files are renamed into place only when every row was
    written (a failure leaves no output of this call). Then the SHA-256 of
    every file of ``folder`` is written to ``folder/manifest-sha256.csv``
    (:func:`~sklearn_medprep.dicom.write_checksum_manifest`), which
    :func:`~sklearn_medprep.dicom.verify_manifest` checks later.

    Parameters
    ----------
    table : pandas.DataFrame
        The subject table; its index labels name the files.
    folder : str or pathlib.Path
        Output folder (created if needed).
    image : str or list of str, default="image"
        Image column(s) to convert.
    manifest : bool, default=True
        Write the checksum manifest of ``folder`` after the conversion.
    overwrite : bool, default=False
        Whether existing files may be replaced.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table``, index and other columns unchanged, the image
        column(s) holding the paths of the NIfTI files.

    Raises
    ------
    ImageReadError
        A cell cannot be read (row, column and file named).
    OutputWriteError
        A file cannot be written, does not read back equal, exists already
        (``overwrite=False``), or two row labels give one file name.

    Examples
    --------
    >>> import tempfile, pandas as pd, SimpleITK as sitk
    >>> from sklearn_medprep.dicom import convert_to_nifti, verify_manifest
    >>> table = pd.DataFrame({"image": [sitk.Image(7, 8, 9, sitk.sitkInt16)]},
    ...                      index=["sub-01"])
    >>> out = tempfile.mkdtemp()
    >>> converted = convert_to_nifti(table, out)
    >>> converted["image"].str.endswith("sub-01.nii.gz").tolist()
    [True]
    >>> verify_manifest(out, f"{out}/manifest-sha256.csv").ok
    True
    """
    columns = [image] if isinstance(image, str) else list(image)
    folder = Path(folder)
    for column in columns:
        if column not in table.columns:
            raise KeyError(f"image column {column!r} is not in the table")
    if len(columns) == 1:
        names = output_names(table.index, ".nii.gz")
        targets = {(row, columns[0]): name for row, name in zip(table.index, names)}
    else:
        labels = [f"{row}_{column}" for row in table.index for column in columns]
        names = output_names(labels, ".nii.gz")
        keys = [(row, column) for row in table.index for column in columns]
        targets = dict(zip(keys, names))
    inputs = [cell for column in columns for cell in table[column]
              if isinstance(cell, (str, os.PathLike))]
    tag = uuid.uuid4().hex[:8]
    out = table.copy()
    staged, paths = [], {}
    try:
        for (row, column), name in targets.items():
            source = to_sitk(table.at[row, column], row=row, column=column)
            path = str(folder / name)

            def write(tmp, source=source):
                sitk.WriteImage(source, tmp, True)

            def check(tmp, source=source):
                return same_image(source, sitk.ReadImage(tmp))

            staged.append(stage_file(path, write, check=check, row=row,
                                     overwrite=overwrite, inputs=inputs,
                                     suffix=".nii.gz", tag=tag))
            paths[(row, column)] = path
        commit_all(staged)
    except BaseException:
        for item in staged:
            item.discard()
        discard_tagged(list(paths.values()), tag, ".nii.gz")
        raise
    for column in columns:
        out[column] = [paths[(row, column)] for row in table.index]
    if manifest:
        write_checksum_manifest(folder)
    return out
