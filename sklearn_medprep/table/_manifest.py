"""CSV manifests of a subject table: read (paths made absolute, checked), write.

A subject table is a :class:`pandas.DataFrame` with one row per subject (or per
image/ROI). Image columns hold paths or in-memory images; every other column is
metadata (site, covariates, ids) that estimators pass through.
"""

import os
from pathlib import Path

import pandas as pd

from ..exceptions import ImageReadError
from ..io._read import _is_missing
from ..io._write import write_atomically
from ._checks import check_subject_table
from ._validate import validate_table

__all__ = ["read_manifest", "write_manifest"]


def read_manifest(
    path,
    *,
    image="image",
    mask=None,
    index_col=None,
    validate=True,
    **read_csv_kwargs,
):
    """Build a subject table from a CSV manifest.

    Relative paths in the image and mask columns are resolved against the folder
    of the manifest, so a manifest and its images can move together (the rule of
    :func:`write_manifest` and of the command line).

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV file.
    image : str or list of str, default="image"
        Image column(s).
    mask : str or None, default=None
        Mask column.
    index_col : str or int or None, default=None
        Column to use as the index (e.g. a subject id); passed to
        :func:`pandas.read_csv`.
    validate : bool, default=True
        Run :func:`validate_table` (files exist and are readable, geometry of
        image and mask agree).
    **read_csv_kwargs
        Further arguments to :func:`pandas.read_csv`.

    Returns
    -------
    pandas.DataFrame
        The subject table, rows in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {str(path)!r}")
    table = pd.read_csv(path, index_col=index_col, **read_csv_kwargs)
    base = path.resolve().parent
    images = [image] if isinstance(image, str) else list(image)
    columns = images + ([mask] if mask is not None else [])
    check_subject_table(table, columns=columns)

    def resolve(cell):
        if _is_missing(cell):
            return cell
        cell = os.path.expanduser(str(cell))
        return cell if os.path.isabs(cell) else str(base / cell)

    for column in columns:
        table[column] = table[column].map(resolve)
    if validate:
        try:
            validate_table(table, image=images, mask=mask)
        except ImageReadError as exc:
            raise ImageReadError(
                f"{exc.bare_message} (manifest {str(path)!r})",
                row=exc.row,
                column=exc.column,
                file=exc.file,
            ) from exc
    return table


def write_manifest(table, path, *, image="image", mask=None, **to_csv_kwargs):
    """Write a subject table as a CSV manifest that :func:`read_manifest` reads back.

    The one rule for paths in the tables the project writes and reads: a
    relative path in a manifest is relative to the manifest's folder. Paths of
    files inside that folder (or below) are written relative to it, so that the
    manifest and its images can move together; others are written absolute.

    Parameters
    ----------
    table : pandas.DataFrame
        The subject table (path cells in the image and mask columns).
    path : str or pathlib.Path
        The CSV file to write.
    image : str or list of str, default="image"
        Image column(s).
    mask : str or None, default=None
        Mask column.
    **to_csv_kwargs
        Further arguments to :meth:`pandas.DataFrame.to_csv`.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    OutputWriteError
        The file could not be written in full (e.g. a full disk; nothing is
        left under its name) or ``path`` is one of the table's images.

    Examples
    --------
    >>> import os, tempfile, pandas as pd
    >>> from sklearn_medprep import write_manifest
    >>> folder = tempfile.mkdtemp()
    >>> table = pd.DataFrame({"image": [os.path.join(folder, "a", "img.nii")]})
    >>> out = write_manifest(table, os.path.join(folder, "manifest.csv"))
    >>> pd.read_csv(out, index_col=0)["image"].tolist()
    ['a/img.nii']
    """
    path = Path(path)
    base = path.resolve().parent
    images = [image] if isinstance(image, str) else list(image)
    columns = images + ([mask] if mask is not None else [])
    check_subject_table(table, columns=columns)

    def relative(cell):
        if _is_missing(cell) or not isinstance(cell, (str, os.PathLike)):
            return cell
        absolute = Path(os.path.expanduser(str(cell))).resolve()
        try:
            return str(absolute.relative_to(base))
        except ValueError:
            return str(absolute)

    out = table.copy()
    for column in columns:
        out[column] = out[column].map(relative)
    # whole under its name or nothing (a full disk is an OutputWriteError);
    # a manifest over one of its own images is refused
    inputs = [
        cell for column in columns for cell in table[column]
        if isinstance(cell, (str, os.PathLike))
    ]
    write_atomically(path, lambda tmp: out.to_csv(tmp, **to_csv_kwargs),
                     inputs=inputs)
    return path
