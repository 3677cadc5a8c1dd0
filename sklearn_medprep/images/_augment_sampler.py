"""The sampler role of TorchIO augmentation: ``fit_resample`` only (imbalanced-learn).

imbalanced-learn makes samplers classes of their own: a step of an
:class:`imblearn.pipeline.Pipeline` has ``fit_resample`` or ``transform``, never
both. :class:`TorchIOAugmentSampler` is that class for TorchIO augmentation; it
draws exactly the rows :meth:`TorchIOAugmenter.fit_resample
<sklearn_medprep.TorchIOAugmenter.fit_resample>` draws (the same
:class:`~sklearn_medprep.images._augment._AugmentMixin`).
"""

from numbers import Integral

from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval

from ..utils._docstrings import fill_doc
from ._augment import _AugmentMixin

__all__ = ["TorchIOAugmentSampler"]


@fill_doc
class TorchIOAugmentSampler(_AugmentMixin, BaseEstimator):
    """Enlarge a training subject table with random TorchIO augmentations.

    A sampler in imbalanced-learn's sense: :meth:`fit_resample` returns the
    original rows followed by ``n_augmentations`` augmented copies of each
    (copy 1 of every row, then copy 2, ...), indexed ``"<row>|aug<k>"``, with
    ``y`` and the metadata columns (site, covariates) copied. In an
    :class:`imblearn.pipeline.Pipeline` it runs on the training fold only; the
    test fold passes through untouched. It has no ``transform``.

    Each row becomes a :class:`torchio.Subject` (image columns as
    ``ScalarImage``, the mask as ``LabelMap``), so spatial transforms move image
    and mask together; 2D images (PNG X-rays, TorchIO shape ``(C, W, H, 1)``)
    work with transforms that support 2D. Augmented cells are in-memory TorchIO
    images.

    Every augmented row is drawn from its own seed, derived from
    ``random_state`` before any work starts and used inside a local generator
    context: the output does not depend on ``n_jobs``, and the caller's global
    torch and numpy random states are left untouched. The rows are those of
    ``TorchIOAugmenter(..., as_sampler=True).fit_resample`` (deprecated) with
    the same parameters.

    Parameters
    ----------
    transforms : torchio.Transform, torchio.Compose or list of torchio.Transform
        The augmentation, e.g. ``tio.RandomBiasField()``, ``tio.RandomMotion()``,
        ``tio.RandomGhosting()``, ``tio.RandomSpike()``,
        ``tio.RandomElasticDeformation()``, ``tio.RandomAffine()``.
    %(image)s
    %(mask)s
    n_augmentations : int, default=1
        Augmented copies added per row.
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
    TorchIOAugmenter : the transformer role (scikit-learn pipelines).
    TorchIOCollate : fresh augmentation of every training batch of a skorch net.

    Examples
    --------
    >>> import torchio as tio
    >>> from sklearn_medprep import TorchIOAugmentSampler
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(7, 8, 9), random_state=0)
    >>> sampler = TorchIOAugmentSampler(
    ...     tio.RandomFlip(axes=(0,)), n_augmentations=2, random_state=0
    ... )
    >>> X_res, y_res = sampler.fit_resample(table, table["y"])
    >>> X_res.shape[0], list(X_res.index[4:6])
    (12, ['sub-000|aug1', 'sub-001|aug1'])
    >>> bool((y_res.to_numpy() == list(table["y"]) * 3).all())
    True
    """

    # imbalanced-learn's is_sampler (its common checks) reads this attribute
    _estimator_type = "sampler"

    _parameter_constraints = {
        "transforms": [HasMethods(["__call__"]), list, tuple],
        "image": [str, list],
        "mask": [str, None],
        "n_augmentations": [Interval(Integral, 1, None, closed="left")],
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
        random_state=None,
        n_jobs=None,
    ):
        self.transforms = transforms
        self.image = image
        self.mask = mask
        self.n_augmentations = n_augmentations
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "sampler"
        tags.transformer_tags = None
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the table and copy the transform.

        Use :meth:`fit_resample`: a sampler is fitted and applied at once.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : array-like or None
            Ignored.

        Returns
        -------
        self : TorchIOAugmentSampler
        """
        return self._fit_augmentation(X)
