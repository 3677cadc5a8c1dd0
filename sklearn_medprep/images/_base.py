"""Hidden bases of the TorchIO estimators (mixins, one role each).

Each mixin gives an estimator one piece of the scikit-learn contract that the
image estimators share; a public class lists those it needs before
scikit-learn's own mixins and :class:`~sklearn.base.BaseEstimator`:

- :class:`_ImageTableMixin`: ``X`` is a subject table with ``image``/``mask``
  columns (input tags, one table check for ``fit`` and ``transform``);
- :class:`_TorchIOParamsMixin`: the ``transforms`` parameter holds TorchIO
  transforms (clone and ``get_params`` never take them for estimators);
- :class:`_SameColumnsMixin`: the output table has the input's columns
  (``get_feature_names_out``).

Used by :class:`~sklearn_medprep.TorchIOPreprocessor`,
:class:`~sklearn_medprep.TorchIOAugmenter`,
:class:`~sklearn_medprep.TorchIOAugmentSampler` and
:class:`~sklearn_medprep.ImageTensorizer`.
"""

from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ..table._checks import check_fit_rows
from ..utils._tags import subject_table_input_tags
from ._subject import check_table, image_columns
from ._walk import clone_with_transforms

__all__ = []


class _ImageTableMixin:
    """Estimators whose input is a subject table with ``image``/``mask`` columns.

    Gives the image-table input tags (``SubjectTableInputTags`` with
    ``image=True``, no preserved dtype) and :meth:`_check_subject_table`, which
    checks the table the same way in ``fit`` (``reset=True``: records
    ``n_features_in_``/``feature_names_in_``) and in ``transform``
    (``reset=False``: requires a fitted estimator and the columns seen in fit).
    The estimator must have ``image`` and ``mask`` parameters.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = subject_table_input_tags(tags.input_tags, image=True)
        if tags.transformer_tags is not None:
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
        if reset:
            check_fit_rows(X, estimator=self)
        validate_data(self, X, skip_check_array=True, reset=reset)
        return image_columns(self.image, self.mask)


class _TorchIOParamsMixin:
    """Estimators whose ``transforms`` parameter holds TorchIO transforms.

    Gives ``__sklearn_clone__`` (:func:`clone_with_transforms`: the transforms
    are deep-copied, the other parameters cloned) and a ``get_params`` that
    never descends into the transforms: TorchIO's random transforms have a
    ``get_params`` of their own (the random parameter draw), which scikit-learn
    would otherwise take for a nested estimator's.
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
    """Estimators whose output table has the columns of their input.

    Gives ``get_feature_names_out``: the columns seen in fit (checked against
    ``input_features`` when given).
    """

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
