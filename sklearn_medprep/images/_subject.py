"""Rows of a subject table as :class:`torchio.Subject` objects, and back.

Each image column becomes a :class:`torchio.ScalarImage` keyed by the column
name, the mask column a :class:`torchio.LabelMap`, so that TorchIO transforms see
the row as one subject: spatial transforms move image and mask together and
``masking_method="mask"`` names the mask column.

The estimators' shared bases are in :mod:`sklearn_medprep.images._base`, the
transform-tree helpers in :mod:`sklearn_medprep.images._walk`.
"""

import pandas as pd

from ..io._read import to_torchio
from ..table._checks import check_subject_table
from ..utils._random import local_seed

__all__ = [
    "apply_to_row",
    "check_table",
    "image_columns",
    "replace_cells",
    "row_cells",
    "row_to_subject",
    "subject_to_cells",
    "table_columns",
]


def image_columns(image, mask):
    """Return ``(scalar_columns, mask_column)`` from the ``image``/``mask`` params.

    Parameters
    ----------
    image : str or list of str
        Image column(s).
    mask : str or None
        Mask column.

    Returns
    -------
    tuple
        The list of image columns and the mask column (or None).
    """
    images = [image] if isinstance(image, str) else list(image)
    if not images:
        raise ValueError("image must name at least one column")
    if mask is not None and mask in images:
        raise ValueError(f"column {mask!r} is given both as image and as mask")
    return images, mask


def check_table(X, image, mask, estimator):
    """Check ``X`` is a subject table holding the image and mask columns."""
    images, mask = image_columns(image, mask)
    return check_subject_table(X, columns=[*images, mask], estimator=estimator)


def table_columns(images, mask):
    """Return the image columns then the mask column (if any), as a list."""
    return [*images, mask] if mask is not None else list(images)


def row_cells(X, images, mask):
    """Return the index of ``X`` and, per row, the tuple of its image/mask cells."""
    columns = table_columns(images, mask)
    return X.index, list(X[columns].itertuples(index=False, name=None))


def row_to_subject(cells, images, mask, row=None):
    """Build a :class:`torchio.Subject` from the image cells of one row.

    Parameters
    ----------
    cells : sequence
        The cells of ``images`` then ``mask`` (if any), in that order.
    images : list of str
        Image column names (keys of the scalar images).
    mask : str or None
        Mask column name (key of the label map).
    row : hashable, default=None
        Row index label, for error messages.

    Returns
    -------
    torchio.Subject
    """
    import torchio as tio

    content = {}
    for column, cell in zip(images, cells):
        content[column] = to_torchio(cell, row=row, column=column)
    if mask is not None:
        content[mask] = to_torchio(cells[len(images)], label=True, row=row, column=mask)
    return tio.Subject(content)


def subject_to_cells(subject, images, mask):
    """Return the images of ``subject`` as new in-memory cells (list)."""
    return [subject[column] for column in table_columns(images, mask)]


def apply_to_row(transform, cells, images, mask, row, seed):
    """Apply ``transform`` to one row under a local seed; return the new cells.

    The caller's global torch and numpy random states are left as they were.
    """
    subject = row_to_subject(cells, images, mask, row=row)
    with local_seed(seed):
        out = transform(subject)
    return subject_to_cells(out, images, mask)


def replace_cells(X, images, mask, new_cells, index=None):
    """Return a copy of ``X`` with the image (and mask) cells replaced."""
    out = X.copy() if index is None else X.set_axis(index, axis=0)
    for j, column in enumerate(table_columns(images, mask)):
        out[column] = pd.Series(
            [cells[j] for cells in new_cells], index=out.index, dtype=object
        )
    return out
