"""Check a subject table's images before a long run: readable, same geometry."""

from ..exceptions import GeometryMismatchError, SubjectTableError
from ..io._geometry import geometry_problem
from ..io._read import _is_missing, describe_cell, read_geometry
from ._checks import check_subject_table

__all__ = ["validate_table"]


def _same_geometry(a, b, tolerance=None):
    """How ``b`` differs from ``a`` (None: same), by the one rule of io._geometry."""
    return geometry_problem(a, b, tolerance=tolerance)


def validate_table(
    X,
    *,
    image="image",
    mask=None,
    required=(),
    check_files=True,
    check_geometry=True,
    geometry_tolerance=None,
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
        direction, by the rule SimpleITK and PyRadiomics apply
        (:mod:`sklearn_medprep.io._geometry`): spacing and origin within
        ``geometry_tolerance`` times the image's first spacing, direction
        within ``geometry_tolerance``.
    geometry_tolerance : float or None, default=None
        PyRadiomics' ``geometryTolerance`` setting; None takes SimpleITK's
        defaults (1e-6). A table that passes is accepted by PyRadiomics'
        geometry check with the same setting.

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
                problem = _same_geometry(
                    geometries[column], geometries[mask], geometry_tolerance
                )
                if problem:
                    raise GeometryMismatchError(
                        f"image {column!r} and mask {mask!r} differ in geometry: "
                        f"{problem} (image file {describe_cell(values[0])!r})",
                        row=row,
                        column=mask,
                        file=describe_cell(values[image_columns.index(mask)]),
                    )
    return X
