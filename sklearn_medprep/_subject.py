"""Rows of a subject table as :class:`torchio.Subject` objects, and back.

Each image column becomes a :class:`torchio.ScalarImage` keyed by the column
name, the mask column a :class:`torchio.LabelMap`, so that TorchIO transforms see
the row as one subject: spatial transforms move image and mask together and
``masking_method="mask"`` names the mask column.
"""

import copy

import pandas as pd

from ._io import to_torchio
from ._table import check_subject_table

__all__ = [
    "apply_to_row",
    "as_transform",
    "clone_with_transforms",
    "find_random_transforms",
    "image_columns",
    "row_to_subject",
    "subject_to_cells",
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
    columns = [*images, mask] if mask is not None else list(images)
    return [subject[column] for column in columns]


def apply_to_row(transform, cells, images, mask, row, seed):
    """Apply ``transform`` to one row under a local seed; return the new cells.

    The caller's global torch and numpy random states are left as they were.
    """
    from ._random import local_seed

    subject = row_to_subject(cells, images, mask, row=row)
    with local_seed(seed):
        out = transform(subject)
    return subject_to_cells(out, images, mask)


def replace_cells(X, images, mask, new_cells, index=None):
    """Return a copy of ``X`` with the image (and mask) cells replaced."""
    columns = [*images, mask] if mask is not None else list(images)
    out = X.copy() if index is None else X.set_axis(index, axis=0)
    for j, column in enumerate(columns):
        out[column] = pd.Series(
            [cells[j] for cells in new_cells], index=out.index, dtype=object
        )
    return out


def as_transform(transform, name="transform"):
    """Return a deep copy of ``transform`` as one TorchIO transform.

    Parameters
    ----------
    transform : torchio.Transform or list of torchio.Transform
        A transform, a :class:`torchio.Compose`, or a list (composed).
    name : str
        Parameter name, for error messages.

    Returns
    -------
    torchio.Transform
        A copy; the caller's object is never modified.
    """
    import torchio as tio

    if isinstance(transform, (list, tuple)):
        transform = tio.Compose(list(transform))
    if not isinstance(transform, tio.Transform):
        raise TypeError(
            f"{name} must be a torchio Transform, Compose or list of transforms, "
            f"got {type(transform).__name__}"
        )
    return copy.deepcopy(transform)


def clone_with_transforms(estimator):
    """Clone an estimator whose ``transforms`` parameter holds TorchIO transforms.

    TorchIO's random transforms define their own ``get_params`` (the random
    parameter sampler), so scikit-learn's :func:`~sklearn.base.clone` would take
    them for estimators and fail; ``transforms`` is deep-copied instead, every
    other parameter cloned as scikit-learn does.
    """
    from sklearn.base import clone

    params = estimator.get_params(deep=False)
    for name, value in params.items():
        if name == "transforms":
            params[name] = copy.deepcopy(value)
        else:
            params[name] = clone(value, safe=False)
    new = type(estimator)(**params)
    for attribute in ("_metadata_request", "_sklearn_output_config"):
        if attribute in estimator.__dict__:
            setattr(new, attribute, copy.deepcopy(estimator.__dict__[attribute]))
    return new


def _walk(transform):
    import torchio as tio

    yield transform
    if isinstance(transform, tio.Compose):
        for child in transform.transforms:
            yield from _walk(child)
    elif isinstance(transform, tio.OneOf):
        for child in transform.transforms_dict:
            yield from _walk(child)


def find_random_transforms(transform):
    """Return descriptions of the random parts of ``transform`` (empty if none).

    A part is random if it is a :class:`torchio.RandomTransform` (including
    ``OneOf``) or is applied with probability ``p < 1``.

    Parameters
    ----------
    transform : torchio.Transform
        The transform.

    Returns
    -------
    list of str
    """
    from torchio.transforms.augmentation import RandomTransform

    found = []
    for part in _walk(transform):
        if isinstance(part, RandomTransform):
            found.append(f"{part.name} (random transform)")
        elif getattr(part, "probability", 1) < 1:
            found.append(f"{part.name} (applied with p={part.probability})")
    return found
