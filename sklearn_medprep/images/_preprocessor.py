"""TorchIO preprocessing of a subject table, trainable parts fitted on training rows."""

import warnings
from numbers import Integral

from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Hidden, StrOptions

from ..io._read import check_exists
from ..utils._docstrings import fill_doc
from ..utils._random import preserve_rng
from ._base import _ImageTableMixin, _SameColumnsMixin, _TorchIOParamsMixin
from ._deferred import deferred_cells, transform_key
from ._subject import replace_cells, row_cells, row_to_subject, table_columns
from ._trainable import find_trainable, train_transform
from ._walk import as_transform, find_random_transforms, flatten

__all__ = ["TorchIOPreprocessor"]


@fill_doc
class TorchIOPreprocessor(
    _TorchIOParamsMixin,
    _SameColumnsMixin,
    _ImageTableMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Apply a deterministic TorchIO transform to the images of a subject table.

    Each row becomes a :class:`torchio.Subject` (image columns as
    ``ScalarImage`` keyed by column name, the mask column as ``LabelMap``), the
    transform is applied, and the row comes back with its image and mask cells
    replaced by the transformed TorchIO images; metadata columns, the index and
    the row order are kept. The output images are *deferred*: the transform runs
    once per row when an image of the row is first read, and a
    :class:`~sklearn_medprep.RadiomicsExtractor` cache hit never runs it (its
    key is derived from the source images' keys and ``transform_key_``; see
    :mod:`sklearn_medprep.images._deferred`). The output feeds
    :class:`~sklearn_medprep.RadiomicsExtractor` and
    :class:`~sklearn_medprep.ImageTensorizer` directly.

    Trainable parts are trained in :meth:`fit` on the rows given to ``fit``
    only (the training fold in cross-validation): a
    :class:`torchio.HistogramStandardization` given with empty landmarks
    (``tio.HistogramStandardization({})``) or with ``None`` values
    (``{"image": None}``) has its landmarks learned from the training images
    exactly as :meth:`torchio.HistogramStandardization.train` learns them, after
    the steps before it in the ``Compose``, masked by its ``masking_method``
    (e.g. ``masking_method="mask"`` uses the mask column's non-zero voxels).
    Landmarks given as arrays are used as they are. Which transforms are
    trained, and how, is a registry that other transform classes can join
    (:func:`sklearn_medprep.images.register_trainable`); HistogramStandardization
    is its built-in entry. The fitted transform is ``transform_``; the
    ``transforms`` parameter is never modified.

    Random transforms (``tio.Random*``, ``OneOf``, any ``p < 1``) are refused:
    use :class:`~sklearn_medprep.TorchIOAugmenter` for augmentation.

    Parameters
    ----------
    transforms : torchio.Transform, torchio.Compose or list of torchio.Transform
        Deterministic transform(s) (named ``transforms``, not ``transform``,
        which is the scikit-learn method), e.g. ``ToCanonical``, ``Resample``,
        ``CropOrPad``, ``ZNormalization``, ``RescaleIntensity``,
        ``HistogramStandardization``, ``EnsureShapeMultiple``, ``Clamp``,
        ``Mask``, label transforms. Per-image statistics (``ZNormalization``,
        ``RescaleIntensity`` percentiles) use each image only.
    %(image)s
        A list of columns gives several images per subject.
    %(mask)s
    n_jobs : int or None, default="deprecated"
        Deprecated: setting it raises a ``FutureWarning`` in ``fit``.

        .. deprecated:: 0.1
            ``n_jobs`` was deprecated in version 0.1 and will be removed in 0.3.
            ``transform`` reads no image (its output cells are deferred images,
            see :mod:`sklearn_medprep.images._deferred`): the images are transformed
            where they are read, in the workers of the estimator that reads
            them. Set the parallelism there, e.g.
            ``RadiomicsExtractor(n_jobs=...)``.

    Attributes
    ----------
    transform_ : torchio.Transform
        The fitted transform (trained landmarks included).
    transform_key_ : str
        SHA-256 of the pickled fitted transform: part of the content key of the
        output images.
    n_features_in_ : int
        Number of columns of the table seen in fit.
    feature_names_in_ : ndarray of str
        Columns of the table seen in fit.

    See Also
    --------
    TorchIOAugmenter : random TorchIO transforms on training data only.
    ImageTensorizer : the table as a float32 array for a skorch net.

    Examples
    --------
    >>> import torchio as tio
    >>> from sklearn_medprep import TorchIOPreprocessor
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(7, 8, 9), random_state=0)
    >>> pre = TorchIOPreprocessor(
    ...     tio.Compose([tio.CropOrPad((6, 6, 6)), tio.HistogramStandardization({})])
    ... )
    >>> out = pre.fit_transform(table)
    >>> out["image"].iloc[0].shape, out["mask"].iloc[0].shape
    ((1, 6, 6, 6), (1, 6, 6, 6))
    >>> list(out.index) == list(table.index), list(out.columns) == list(table.columns)
    (True, True)
    >>> pre.transform_[1].landmarks_dict["image"].shape
    (13,)
    """

    _parameter_constraints = {
        "transforms": [HasMethods(["__call__"]), list, tuple],
        "image": [str, list],
        "mask": [str, None],
        "n_jobs": [Integral, None, Hidden(StrOptions({"deprecated"}))],
    }

    def __init__(self, transforms, *, image="image", mask="mask",
                 n_jobs="deprecated"):
        self.transforms = transforms
        self.image = image
        self.mask = mask
        self.n_jobs = n_jobs

    def _check_transform(self):
        transform = as_transform(self.transforms, "transforms")
        random = find_random_transforms(transform)
        if random:
            raise ValueError(
                "TorchIOPreprocessor applies deterministic transforms only (the "
                "same output in fit and transform); random parts found: "
                f"{', '.join(random)}. Put augmentation in TorchIOAugmenter or in "
                "the skorch collate function (TorchIOCollate)."
            )
        return transform

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the trainable parts of the transform on the rows of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table (training rows).
        y : None
            Ignored.

        Returns
        -------
        self : TorchIOPreprocessor
        """
        if not (isinstance(self.n_jobs, str) and self.n_jobs == "deprecated"):
            warnings.warn(
                "`n_jobs` was deprecated in version 0.1 and will be removed in "
                "0.3; it has no effect: TorchIOPreprocessor.transform reads no "
                "image (the images are transformed where they are read). Set "
                "n_jobs on the estimator that reads them, e.g. "
                "RadiomicsExtractor(n_jobs=...), and remove it here.",
                FutureWarning,
                stacklevel=3,
            )
        images, mask = self._check_subject_table(X, reset=True)
        transform = self._check_transform()
        steps = flatten(transform)
        to_train = [i for i, step in enumerate(steps) if find_trainable(step)]
        if not to_train:
            self.transform_ = transform
            self.transform_key_ = transform_key(transform)
            return self
        index, rows = row_cells(X, images, mask)
        subjects = [
            row_to_subject(cells, images, mask, row=row)
            for row, cells in zip(index, rows)
        ]
        import torchio as tio

        done = 0
        with preserve_rng():
            for i in to_train:
                for step in steps[done:i]:
                    subjects = [step(subject) for subject in subjects]
                steps[i] = train_transform(steps[i], subjects)
                done = i
        self.transform_ = tio.Compose(steps) if len(steps) > 1 else steps[0]
        self.transform_key_ = transform_key(self.transform_)
        return self

    def transform(self, X):
        """Apply the fitted transform to every row of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.

        The output cells are *deferred* TorchIO images: the transform runs, once
        per row, when an image of the row is first read (see
        :mod:`sklearn_medprep.images._deferred`), so that a radiomics cache hit never
        runs it. Missing files are reported here; unreadable ones when read.

        Returns
        -------
        pandas.DataFrame
            ``X`` with image (and mask) cells replaced by transformed TorchIO
            images; same index, row order and other columns.
        """
        images, mask = self._check_subject_table(X, reset=False)
        index = X.index
        columns = table_columns(images, mask)
        # the rows' cells, as row_cells gives them, without a sub-table copy
        rows = list(zip(*(X[column].tolist() for column in columns)))
        key = getattr(self, "transform_key_", None) or transform_key(
            self.transform_)
        new_cells = []
        for row, cells in zip(index, rows):
            for column, cell in zip(columns, cells):
                check_exists(cell, row=row, column=column)
            new_cells.append(
                deferred_cells(self.transform_, key, cells, images, mask, row)
            )
        return replace_cells(X, images, mask, new_cells)
