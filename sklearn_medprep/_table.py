"""The subject table: validation, image loading and CSV manifests.

A subject table is a :class:`pandas.DataFrame` with one row per subject (or per
image/ROI). Image columns hold paths or in-memory images; every other column is
metadata (site, covariates, ids) that estimators pass through.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import _is_missing, describe_cell, read_geometry, to_sitk, to_torchio
from .exceptions import GeometryMismatchError, ImageReadError, SubjectTableError

__all__ = [
    "align_rows",
    "check_subject_table",
    "load_image",
    "read_manifest",
    "validate_table",
    "write_manifest",
]

_GEOMETRY_TOL = 1e-4


def load_image(cell, *, backend="sitk", label=False, row=None, column=None):
    """Load one image cell of a subject table.

    Parameters
    ----------
    cell : str, pathlib.Path, torchio.Image, SimpleITK.Image or nibabel image
        A path to an image file (NIfTI, NRRD, MHA/MHD, PNG/JPEG) or to a DICOM
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


def check_subject_table(X, *, columns=(), estimator=None):
    """Check that ``X`` is a DataFrame holding ``columns``; return it.

    Parameters
    ----------
    X : object
        The candidate subject table.
    columns : iterable of str
        Columns that must be present (None entries are ignored).
    estimator : str or None
        Name used in messages.

    Returns
    -------
    pandas.DataFrame
    """
    who = f"{estimator} " if estimator else ""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{who}expects a subject table (pandas.DataFrame with named columns), "
            f"got {type(X).__name__}"
        )
    if not X.columns.is_unique:
        dup = X.columns[X.columns.duplicated()].unique().tolist()
        raise SubjectTableError(f"duplicate column names {dup}")
    if not X.index.is_unique:
        dup = X.index[X.index.duplicated()].unique().tolist()[:5]
        raise SubjectTableError(
            f"the index must identify rows uniquely; repeated labels {dup}"
        )
    missing = [c for c in columns if c is not None and c not in X.columns]
    if missing:
        raise SubjectTableError(
            f"{who}needs column(s) {missing}, which the table lacks; it has "
            f"{list(X.columns)}",
            column=missing[0],
        )
    return X


def align_rows(values, index, *, what, reference):
    """Return a pandas ``values`` in the row order of ``index``, matched by label.

    pandas objects pair with the rows of a table by index label, never silently
    by position: the same unique labels in another order are reordered, other
    labels are an error. Anything else (arrays) is returned as is (positional).

    Parameters
    ----------
    values : object
        Routed metadata (``sites=``, ``covariates=``) or a second table.
    index : pandas.Index or None
        Rows to match; None (the reference is not a table) returns ``values``.
    what, reference : str
        Names of ``values`` and of the reference table, for the message.

    Returns
    -------
    object
        ``values``, reordered when it is a pandas object.
    """
    if index is None or not isinstance(values, (pd.Series, pd.DataFrame)):
        return values
    if values.index.equals(index):
        return values
    if (
        len(values.index) == len(index)
        and values.index.is_unique
        and index.is_unique
        and values.index.isin(index).all()
    ):
        return values.loc[index]
    missing = index[~index.isin(values.index)]
    first = missing[:1].tolist()[0] if len(missing) else None  # a Python value
    raise SubjectTableError(
        f"{what} does not match the rows of {reference}: it must hold the same "
        f"unique index labels, in any order ({len(index)} rows in {reference}, "
        f"{len(values)} in {what}"
        + (f"; first row missing {what}: {first!r}" if len(missing) else "")
        + "); or give a numpy array in the row order",
        row=first,
    )


def _same_geometry(a, b):
    size_a, spacing_a, origin_a, dir_a = a
    size_b, spacing_b, origin_b, dir_b = b
    if tuple(size_a) != tuple(size_b):
        return f"size {tuple(size_a)} vs {tuple(size_b)}"
    for name, x, y in (
        ("spacing", spacing_a, spacing_b),
        ("origin", origin_a, origin_b),
        ("direction", dir_a, dir_b),
    ):
        if not np.allclose(x, y, rtol=0, atol=_GEOMETRY_TOL):
            return f"{name} {np.round(x, 5).tolist()} vs {np.round(y, 5).tolist()}"
    return None


def validate_table(
    X,
    *,
    image="image",
    mask=None,
    required=(),
    check_files=True,
    check_geometry=True,
):
    """Validate a subject table, naming the row, column and file at fault.

    Parameters
    ----------
    X : pandas.DataFrame
        The subject table.
    image : str or list of str or None, default="image"
        Image column(s) to check.
    mask : str or None, default=None
        Mask column, checked like ``image`` and, with ``check_geometry``, against
        the first image column row by row.
    required : iterable of str, default=()
        Other columns that must be present and free of missing values.
    check_files : bool, default=True
        Check that every image cell exists and its header is readable.
    check_geometry : bool, default=True
        Check that image and mask of each row share size, spacing, origin and
        direction (to 1e-4).

    Returns
    -------
    pandas.DataFrame
        ``X`` itself, unchanged (nothing is dropped).

    Raises
    ------
    SubjectTableError
        Missing column or missing value; ``ImageReadError`` for missing or
        unreadable files; ``GeometryMismatchError`` for image/mask mismatch. The
        message names the row index, the column and the file.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_medprep import validate_table
    >>> table = pd.DataFrame({"image": ["a.nii.gz"], "site": ["A"]}, index=["s1"])
    >>> validate_table(table, required=["age"])
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.SubjectTableError: [column 'age'] needs column(s) \
['age'], which the table lacks; it has ['image', 'site']
    """
    images = [image] if isinstance(image, str) else list(image or [])
    image_columns = images + ([mask] if mask is not None else [])
    check_subject_table(X, columns=[*image_columns, *required])
    for column in [*image_columns, *required]:
        missing = X.index[X[column].map(_is_missing)]
        if len(missing):
            raise SubjectTableError(
                f"missing value ({len(missing)} row(s) in all: {missing[:5].tolist()})",
                row=missing[0],
                column=column,
            )
    if not (check_files or check_geometry):
        return X
    for row, values in zip(X.index, X[image_columns].itertuples(index=False)):
        geometries = {}
        for column, cell in zip(image_columns, values):
            if check_files or check_geometry:
                geometries[column] = read_geometry(cell, row=row, column=column)
        if check_geometry and mask is not None:
            for column in images:
                problem = _same_geometry(geometries[column], geometries[mask])
                if problem:
                    raise GeometryMismatchError(
                        f"image {column!r} and mask {mask!r} differ in geometry: "
                        f"{problem} (image file {describe_cell(values[0])!r})",
                        row=row,
                        column=mask,
                        file=describe_cell(values[image_columns.index(mask)]),
                    )
    return X


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
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, **to_csv_kwargs)
    return path
