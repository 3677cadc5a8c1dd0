"""Random TorchIO augmentation of a subject table, on training data only.

:class:`_AugmentMixin` draws the augmented rows (one seed per augmented row,
derived from ``random_state`` up front) and builds the resampled table;
:class:`TorchIOAugmenter` (transformer role, here) and
:class:`~sklearn_medprep.TorchIOAugmentSampler` (sampler role,
``_augment_sampler.py``) are built on it, so that both give the same rows.
"""

import warnings
from numbers import Integral

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Hidden, Interval, StrOptions
from sklearn.utils.metaestimators import available_if

from ..utils._docstrings import fill_doc
from ..utils._paths import absolute_cells
from ..utils._random import seed_sequence, spawn_seeds
from ._base import _ImageTableMixin, _SameColumnsMixin, _TorchIOParamsMixin
from ._subject import apply_to_row, image_columns, row_cells
from ._subject import replace_cells as _replace_cells
from ._walk import as_transform

__all__ = ["TorchIOAugmenter"]


def _sampler_only(estimator):
    """Whether ``as_sampler`` (deprecated) was set to a true value."""
    value = estimator.as_sampler
    return not isinstance(value, str) and bool(value)


def _is_transformer(self):
    return not _sampler_only(self)


class _AugmentMixin(_TorchIOParamsMixin, _SameColumnsMixin, _ImageTableMixin):
    """Random TorchIO augmentation of the rows of a subject table.

    Gives an estimator with ``transforms``, ``image``, ``mask``,
    ``n_augmentations``, ``random_state`` and ``n_jobs`` parameters the
    augmentation itself: :meth:`_fit_augmentation` (table check, copy of the
    transform), :meth:`_seeds` (one seed per augmented row, drawn from
    ``random_state`` before any work), :meth:`_augment` (the augmented cells of
    every row), :meth:`_resample` (the original rows followed by
    ``n_augmentations`` augmented copies, labels and metadata copied) and
    :meth:`fit_resample` (both, the sampler's one call).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    def _fit_augmentation(self, X):
        """Check the table and copy the transform (the work of ``fit``)."""
        self._check_subject_table(X, reset=True)
        self.transform_ = as_transform(self.transforms, "transforms")
        return self

    def _augment(self, X, seeds):
        """Return the augmented image cells of every row, one seed per row."""
        images, mask = image_columns(self.image, self.mask)
        index, rows = row_cells(X, images, mask)
        return Parallel(n_jobs=self.n_jobs)(
            delayed(apply_to_row)(
                self.transform_, tuple(absolute_cells(cells)), images, mask, row, seed
            )
            for row, cells, seed in zip(index, rows, seeds)
        )

    def fit_resample(self, X, y):
        """Return the original rows plus ``n_augmentations`` augmented copies of each.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table (training rows).
        y : array-like of shape (n_rows,) or None
            Targets, copied with the rows.

        Returns
        -------
        X_resampled : pandas.DataFrame
            ``n_rows * (1 + n_augmentations)`` rows: the original rows, then
            copy 1 of every row, then copy 2, ...; copies are indexed
            ``"<row>|aug<k>"`` and carry the row's metadata.
        y_resampled : same type as y, or None
            ``y`` repeated in the same order (a Series or DataFrame gets the
            new index).
        """
        self.fit(X, y)
        return self._resample(X, y)

    def _seeds(self, n_rows):
        """Seeds of augmentation ``k`` (1-based) of every row, for each k."""
        children = seed_sequence(self.random_state).spawn(self.n_augmentations)
        return [spawn_seeds(child, n_rows) for child in children]

    def _resample(self, X, y):
        """The rows of ``X`` then ``n_augmentations`` augmented copies (fitted)."""
        n = X.shape[0]
        if y is not None and len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)} entries")
        images, mask = image_columns(self.image, self.mask)
        parts, labels = [X], [X.index]
        for k, seeds in enumerate(self._seeds(n), start=1):
            index = pd.Index([f"{row}|aug{k}" for row in X.index], name=X.index.name)
            copy = X.set_axis(index, axis=0)
            parts.append(_replace_cells(copy, images, mask, self._augment(X, seeds)))
            labels.append(index)
        X_res = pd.concat(parts, axis=0)
        if not X_res.index.is_unique:
            dup = X_res.index[X_res.index.duplicated()].unique().tolist()[:5]
            raise ValueError(f"augmented copies clash with existing rows {dup}")
        if y is None:
            return X_res, None
        if isinstance(y, pd.Series):
            y_res = pd.concat([y.set_axis(index) for index in labels])
        elif isinstance(y, pd.DataFrame):
            y_res = pd.concat([y.set_axis(index, axis=0) for index in labels])
        else:
            y_res = np.concatenate([np.asarray(y)] * (1 + self.n_augmentations))
        return X_res, y_res


@fill_doc
class TorchIOAugmenter(
    _AugmentMixin,
    TransformerMixin,
    BaseEstimator,
    auto_wrap_output_keys=None,
):
    """Augment the images of a subject table with random TorchIO transforms.

    Augmentation touches training data only:

    - in a scikit-learn :class:`~sklearn.pipeline.Pipeline`, :meth:`fit_transform`
      (called on the training fold) returns one augmented version of every row,
      while :meth:`transform` (called on test data) returns its input unchanged;
    - :meth:`fit_resample` (imbalanced-learn's sampler contract) returns the
      original rows followed by ``n_augmentations`` augmented copies of each,
      with ``y`` and the metadata columns copied and indices ``"<row>|aug<k>"``,
      so that an :class:`imblearn.pipeline.Pipeline` enlarges the training set
      only. imbalanced-learn refuses steps that have both ``transform`` and
      ``fit_resample``: there, use :class:`~sklearn_medprep.TorchIOAugmentSampler`
      (the same rows, ``fit_resample`` only).

    Each row becomes a :class:`torchio.Subject` (image columns as
    ``ScalarImage``, the mask as ``LabelMap``), so spatial transforms move image
    and mask together; 2D images (PNG X-rays, TorchIO shape ``(C, W, H, 1)``)
    work with transforms that support 2D. Output cells are in-memory TorchIO
    images.

    Every augmented row is drawn from its own seed, derived from
    ``random_state`` before any work starts and used inside a local generator
    context: the output does not depend on ``n_jobs``, ``fit_transform``'s row
    equals ``fit_resample``'s first copy, and the caller's global torch and
    numpy random states are left untouched.

    Parameters
    ----------
    transforms : torchio.Transform, torchio.Compose or list of torchio.Transform
        The augmentation, e.g. ``tio.RandomBiasField()``, ``tio.RandomMotion()``,
        ``tio.RandomGhosting()``, ``tio.RandomSpike()``,
        ``tio.RandomElasticDeformation()``, ``tio.RandomAffine()``. Named
        ``transforms`` because ``transform`` is the scikit-learn method.
    %(image)s
    %(mask)s
    n_augmentations : int, default=1
        Augmented copies per row added by :meth:`fit_resample`.
    as_sampler : bool, default="deprecated"
        Expose only :meth:`fit_resample` (no ``transform``/``fit_transform``), as
        an imbalanced-learn pipeline requires. Setting it raises a
        ``FutureWarning`` in ``fit``.

        .. deprecated:: 0.2
            ``as_sampler`` was deprecated in version 0.2 and will be removed in
            0.3. Use :class:`~sklearn_medprep.TorchIOAugmentSampler`, which gives
            the same rows from ``fit_resample``.
    %(random_state)s
    %(n_jobs)s

    Attributes
    ----------
    transform_ : torchio.Transform
        A copy of ``transforms``.
    n_features_in_ : int
        Number of columns of the table seen in fit.
    feature_names_in_ : ndarray of str
        Columns of the table seen in fit.

    See Also
    --------
    TorchIOAugmentSampler : the sampler role (imbalanced-learn pipelines).
    TorchIOPreprocessor : deterministic preprocessing, fitted on training rows.
    TorchIOCollate : fresh augmentation of every training batch of a skorch net.

    Examples
    --------
    >>> import torchio as tio
    >>> from sklearn_medprep import TorchIOAugmenter
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(7, 8, 9), random_state=0)
    >>> augmenter = TorchIOAugmenter(tio.RandomFlip(axes=(0,)), random_state=0)
    >>> train = augmenter.fit_transform(table)
    >>> augmenter.transform(table) is table
    True
    >>> X_res, y_res = augmenter.set_params(n_augmentations=2).fit_resample(
    ...     table, table["y"]
    ... )
    >>> X_res.shape[0], list(X_res.index[4:6])
    (12, ['sub-000|aug1', 'sub-001|aug1'])
    """

    _parameter_constraints = {
        "transforms": [HasMethods(["__call__"]), list, tuple],
        "image": [str, list],
        "mask": [str, None],
        "n_augmentations": [Interval(Integral, 1, None, closed="left")],
        "as_sampler": ["boolean", Hidden(StrOptions({"deprecated"}))],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        transforms,
        *,
        image="image",
        mask="mask",
        n_augmentations=1,
        as_sampler="deprecated",
        random_state=None,
        n_jobs=None,
    ):
        self.transforms = transforms
        self.image = image
        self.mask = mask
        self.n_augmentations = n_augmentations
        self.as_sampler = as_sampler
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if _sampler_only(self):
            tags.estimator_type = "sampler"
            tags.transformer_tags = None
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the table and copy the transform.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : array-like or None
            Ignored.

        Returns
        -------
        self : TorchIOAugmenter
        """
        if not isinstance(self.as_sampler, str):
            warnings.warn(
                "`as_sampler` was deprecated in version 0.2 and will be removed "
                "in 0.3. For the sampler role (fit_resample only, as an "
                "imbalanced-learn pipeline requires) use TorchIOAugmentSampler, "
                "which gives the same rows; otherwise remove as_sampler.",
                FutureWarning,
                stacklevel=3,
            )
        return self._fit_augmentation(X)

    @available_if(_is_transformer)
    def fit_transform(self, X, y=None):
        """Fit, then return every row replaced by one augmented version.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table (training rows).
        y : array-like or None
            Ignored.

        Returns
        -------
        pandas.DataFrame
            Same index, row order and metadata; image (and mask) cells are
            augmented in-memory TorchIO images.
        """
        self.fit(X, y)
        seeds = self._seeds(X.shape[0])[0]
        images, mask = image_columns(self.image, self.mask)
        return _replace_cells(X, images, mask, self._augment(X, seeds))

    @available_if(_is_transformer)
    def transform(self, X):
        """Return ``X`` unchanged: data that is not trained on is not augmented.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.

        Returns
        -------
        pandas.DataFrame
            ``X`` itself.
        """
        self._check_subject_table(X, reset=False)
        return X

    def set_output(self, *, transform=None):
        """Accept the set_output configuration; the output is always a DataFrame.

        Parameters
        ----------
        transform : {"default", "pandas"} or None
            Any value: the subject table comes back as a DataFrame regardless.

        Returns
        -------
        self : TorchIOAugmenter
        """
        if transform not in (None, "default", "pandas"):
            raise ValueError(
                f"{type(self).__name__} returns a subject table (pandas); "
                f"set_output(transform={transform!r}) is not supported"
            )
        return self
