"""Rows of a subject table as :class:`torchio.Subject` objects, and back.

Each image column becomes a :class:`torchio.ScalarImage` keyed by the column
name, the mask column a :class:`torchio.LabelMap`, so that TorchIO transforms see
the row as one subject: spatial transforms move image and mask together and
``masking_method="mask"`` names the mask column.
"""

import copy

import pandas as pd
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ..io._read import to_torchio
from ..table._checks import check_subject_table
from ..utils._random import local_seed
from ..utils._tags import subject_table_input_tags

__all__ = [
    "apply_to_row",
    "as_transform",
    "clone_with_transforms",
    "find_random_transforms",
    "image_columns",
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


class _ImageTableMixin:
    """Estimators whose input is a subject table with ``image``/``mask`` columns.

    Declares the image-table input tags and checks the table the same way in
    ``fit`` and ``transform``.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = subject_table_input_tags(tags.input_tags, image=True)
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _check_subject_table(self, X, *, reset):
        """Check ``X`` and its columns; return ``(image_columns, mask_column)``.

        ``reset=True`` (fit) records the columns; ``reset=False`` (transform)
        requires a fitted estimator and the columns seen in fit.
        """
        if not reset:
            check_is_fitted(self)
        check_table(X, self.image, self.mask, type(self).__name__)
        validate_data(self, X, skip_check_array=True, reset=reset)
        return image_columns(self.image, self.mask)


class _TorchIOParamsMixin:
    """Estimators whose ``transforms`` parameter holds TorchIO transforms.

    Cloned with :func:`clone_with_transforms`; ``get_params`` never descends
    into the transforms.
    """

    def __sklearn_clone__(self):
        return clone_with_transforms(self)

    def get_params(self, deep=True):
        """Get the parameters of this estimator.

        TorchIO transforms are parameters, not nested estimators: their own
        ``get_params`` (random parameter sampling) is never called.

        Parameters
        ----------
        deep : bool, default=True
            Ignored (no parameter is an estimator).

        Returns
        -------
        dict
        """
        return super().get_params(deep=False)


class _SameColumnsMixin:
    """Transformers whose output table has the columns of their input."""

    def get_feature_names_out(self, input_features=None):
        """Return the column names of the output table (those of the input).

        Parameters
        ----------
        input_features : array-like of str or None
            Must match ``feature_names_in_`` if given.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "n_features_in_")
        return _check_feature_names_in(self, input_features)
