"""The subject table as a float32 array ``(n, channels, *spatial)`` for a torch net."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions

from ..exceptions import SubjectTableError
from ..images._base import _ImageTableMixin
from ..images._subject import image_columns, table_columns
from ..io._read import to_torchio
from ..utils._docstrings import fill_doc

__all__ = ["ImageTensorizer"]


def _channels_first(image):
    """Return ``(array, is_2d)`` of a TorchIO image, 2D as ``(C, H, W)``."""
    data = image.data.numpy()
    if image.is_2d():
        # TorchIO holds 2D images as (C, W, H, 1); numpy/PNG order is (H, W)
        return data[..., 0].transpose(0, 2, 1), True
    return data, False


@fill_doc
class ImageTensorizer(
    _ImageTableMixin, TransformerMixin, BaseEstimator, auto_wrap_output_keys=None
):
    """Turn the images of a subject table into one float32 array for a skorch net.

    The output has shape ``(n_rows, channels, *spatial)``, rows in table
    order: one channel per image column (several columns stack as channels,
    multi-channel images contribute all their channels), then the mask as a
    last channel if ``mask`` is given. Metadata columns are not part of the
    output (pass ``y`` separately, as for any scikit-learn model).

    Axis order: 3D images keep TorchIO's voxel order, ``(C, W, H, D)`` (the
    ``i, j, k`` voxel indices), so :class:`~sklearn_medprep.TorchIOCollate`
    can apply TorchIO transforms to the batches; 2D images (TorchIO
    ``(C, W, H, 1)``, e.g. PNG X-rays) become ``(C, H, W)``, the row/column
    order of the PNG and of ``SimpleITK.GetArrayFromImage``.

    All images must share one shape, the one seen in :meth:`fit`; a row whose
    shape differs raises an error naming it (add ``tio.CropOrPad`` or
    ``tio.Resample`` to a :class:`~sklearn_medprep.TorchIOPreprocessor`
    before this step).

    Parameters
    ----------
    %(image)s
        A list of columns stacks several images as channels.
    mask : str or None, default=None
        Mask column to add as a last channel (its label values as floats), or
        None.
    dtype : {"float32", "float64"}, default="float32"
        Output dtype (float32 is what torch modules expect).

    Attributes
    ----------
    shape_ : tuple of int
        ``(channels, *spatial)`` of one row, as learned in fit.
    n_features_in_ : int
        Number of columns of the table seen in fit.
    feature_names_in_ : ndarray of str
        Columns of the table seen in fit.

    Examples
    --------
    >>> import torchio as tio
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_medprep import ImageTensorizer, TorchIOPreprocessor
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(7, 8, 9), random_state=0)
    >>> pipe = make_pipeline(
    ...     TorchIOPreprocessor(tio.CropOrPad((6, 7, 8))), ImageTensorizer()
    ... )
    >>> X = pipe.fit_transform(table)
    >>> X.shape, X.dtype
    ((4, 1, 6, 7, 8), dtype('float32'))
    >>> ImageTensorizer().fit_transform(table)
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.SubjectTableError: [row 'sub-002', column 'image'] \
image shape (1, 8, 8, 8) differs from (1, 8, 8, 9), the shape of the first \
training row; give every image one shape, e.g. with tio.CropOrPad or \
tio.Resample in a TorchIOPreprocessor before this step
    """

    _parameter_constraints = {
        "image": [str, list],
        "mask": [str, None],
        "dtype": [StrOptions({"float32", "float64"})],
    }

    def __init__(self, image="image", *, mask=None, dtype="float32"):
        self.image = image
        self.mask = mask
        self.dtype = dtype

    def _rows(self, X, expected):
        images, mask = image_columns(self.image, self.mask)
        columns = table_columns(images, mask)
        first_shape = expected
        out = None
        n = X.shape[0]
        for i, (row, cells) in enumerate(
            zip(X.index, X[columns].itertuples(index=False, name=None))
        ):
            parts = []
            for column, cell in zip(columns, cells):
                image = to_torchio(cell, label=column == mask, row=row, column=column)
                array, _ = _channels_first(image)
                parts.append(array)
                spatial = parts[0].shape[1:]
                if array.shape[1:] != spatial:
                    raise SubjectTableError(
                        f"image shape {array.shape} differs from that of "
                        f"column {columns[0]!r} {parts[0].shape} in the same row",
                        row=row,
                        column=column,
                    )
            sample = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
            if first_shape is None:
                first_shape = sample.shape
            if sample.shape != first_shape:
                raise SubjectTableError(
                    f"image shape {sample.shape} differs from {first_shape}, the "
                    "shape of the first training row; give every image one shape, "
                    "e.g. with tio.CropOrPad or tio.Resample in a "
                    "TorchIOPreprocessor before this step",
                    row=row,
                    column=columns[0],
                )
            if out is None:
                out = np.empty((n, *first_shape), dtype=self.dtype)
            out[i] = sample
        if out is None:
            out = np.empty((0, *(first_shape or ())), dtype=self.dtype)
        return out

    def fit(self, X, y=None):
        """Learn the shape ``(channels, *spatial)`` from the rows of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : None
            Ignored.

        Returns
        -------
        self : ImageTensorizer
        """
        self.fit_transform(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and return the array of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : None
            Ignored.

        Returns
        -------
        ndarray of shape ``(n_rows, channels, *spatial)``
        """
        self._check_subject_table(X, reset=True)
        out = self._rows(X, None)
        self.shape_ = tuple(out.shape[1:])
        return out

    def transform(self, X):
        """Return the images of ``X`` as one array.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.

        Returns
        -------
        ndarray of shape ``(n_rows, channels, *spatial)``
            float32 (or ``dtype``), rows in table order.
        """
        self._check_subject_table(X, reset=False)
        return self._rows(X, self.shape_)

    def set_output(self, *, transform=None):
        """Refuse pandas output: the output is an n-dimensional array.

        Parameters
        ----------
        transform : {"default"} or None
            Only the default (numpy) output exists.

        Returns
        -------
        self : ImageTensorizer
        """
        if transform not in (None, "default"):
            raise ValueError(
                "ImageTensorizer returns an array of shape (n, channels, *spatial) "
                f"for a torch net; set_output(transform={transform!r}) cannot hold it"
            )
        return self
