"""skorch nets that train on TorchIO patches and predict over whole volumes.

:class:`PatchNeuralNetClassifier` (here) and :class:`PatchNeuralNetSegmenter`
(``_patch_segmenter.py``) are skorch nets whose ``X`` is the subject table,
built on the mixin of ``_patch_mixin.py``. Training batches are patches popped
from a :class:`torchio.Queue` over the rows, read lazily; prediction runs the
module over the patches of a :class:`torchio.GridSampler` of each whole volume.

This module subclasses skorch's nets, so it imports torch, TorchIO and skorch
when it is imported; :mod:`sklearn_medprep` should import it only when one of
its names is used.
"""

try:
    import skorch  # noqa: F401
except ImportError as exc:  # pragma: no cover - skorch is installed in CI
    raise ImportError(
        "PatchNeuralNetClassifier and PatchNeuralNetSegmenter need skorch: "
        'pip install "sklearn-medprep[skorch]"'
    ) from exc

import numpy as np
import pandas as pd
import torch
from sklearn.base import _fit_context
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import assert_all_finite, column_or_1d
from skorch import NeuralNetClassifier

from ..exceptions import SubjectTableError
from ._patch_doc import _SHARED_DOC
from ._patch_mixin import _PatchNetMixin
from ._patches import grid_patch_outputs

__all__ = ["PatchNeuralNetClassifier"]


def _python(value):
    """A numpy scalar as the Python value (for messages without numpy reprs)."""
    return value.item() if isinstance(value, np.generic) else value


class PatchNeuralNetClassifier(_PatchNetMixin, NeuralNetClassifier):
    __doc__ = """Classify whole volumes with a skorch net trained on TorchIO patches.

    ``X`` is the subject table, ``y`` one class per row. Training batches are
    patches of ``patch_size`` voxels drawn by a ``sampler`` from the rows'
    volumes through a :class:`torchio.Queue`: images are read only when the
    queue samples their subject, so memory is bounded by ``queue_length`` (and
    the subjects being sampled), not by the cohort; each patch carries the
    class of its subject. The validation split of skorch's ``train_split``
    gets patches the same way, without ``augmentation``.

    ``predict_proba`` cuts each volume into the patches of a
    :class:`torchio.GridSampler` (``patch_overlap``), applies the module and
    the prediction nonlinearity (softmax for the default cross-entropy) to
    each, and aggregates the patch probabilities into one row per subject:
    their mean (``aggregation="mean"``, each grid patch one vote of equal
    weight) or, per class, their maximum, renormalized to sum to 1
    (``aggregation="max"``, for findings that one patch shows).
""" + _SHARED_DOC.replace("%(label)s", "") + """\
    aggregation : {"mean", "max"}, default="mean"
        How patch probabilities make a subject's probabilities.
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        The loss (the module outputs logits).
    train_split : callable or None, default=ValidSplit(5, stratified=True)
        skorch's validation split, by subjects.
    use_caching : False, default=False
        skorch's caching of the validation batches' predictions for scoring
        callbacks. The batches are patches, so it stays off: a scoring
        callback such as ``EpochScoring("accuracy", lower_is_better=False)``
        (or ``"roc_auc"``) scores the validation *subjects* through
        :meth:`predict` / :meth:`predict_proba`, as :meth:`score` does; any
        other value is refused.
    **kwargs : dict
        Any other :class:`skorch.NeuralNetClassifier` parameter (``lr``,
        ``max_epochs``, ``batch_size``, ``optimizer``, ``callbacks``,
        ``iterator_train__*``, ...).

    Attributes
    ----------
    classes_ : ndarray
        Classes seen in fit (``predict`` returns these).
    n_features_in_ : int
        Number of columns of the table seen in fit.
    feature_names_in_ : ndarray of str
        Columns of the table seen in fit.

    See Also
    --------
    PatchNeuralNetSegmenter : the same for voxel-wise label maps.
    sklearn_medprep.TorchIOCollate : augmentation of whole-volume batches.

    Examples
    --------
    >>> import torch
    >>> from sklearn_medprep import PatchNeuralNetClassifier
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(6, 2, shape=(10, 11, 12), random_state=0)
    >>> module = torch.nn.Sequential(
    ...     torch.nn.Conv3d(1, 2, 3), torch.nn.AdaptiveAvgPool3d(1),
    ...     torch.nn.Flatten())
    >>> net = PatchNeuralNetClassifier(
    ...     module, patch_size=6, samples_per_volume=2, queue_length=8,
    ...     max_epochs=1, batch_size=4, train_split=None, verbose=0,
    ...     random_state=0)
    >>> net.fit(table, table["y"]).predict_proba(table).shape
    (6, 2)
    """

    _target = "class"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, **fit_params):
        """Initialize the module and train it on patches of the rows of ``X``.

        Every draw (initial weights of a module given as a class, validation
        split, subject order, patch locations, augmentation, dropout) comes
        from ``random_state``, in a local generator state: the caller's global
        torch and numpy random states are left as they were.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : array-like of shape (n_rows,)
            Class of each row.
        **fit_params : dict
            Passed to skorch's ``fit``.

        Returns
        -------
        self
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None"
            )
        y = column_or_1d(y, warn=True)
        if y.dtype.kind == "f":
            assert_all_finite(y, input_name="y")
        check_classification_targets(y)
        return super().fit(X, y, **fit_params)

    def __init__(
        self,
        module,
        *,
        image="image",
        patch_size=32,
        samples_per_volume=8,
        queue_length=64,
        sampler="uniform",
        sampling_map=None,
        label_probabilities=None,
        preprocessing=None,
        augmentation=None,
        patch_overlap=0,
        padding_mode=None,
        aggregation="mean",
        queue_num_workers=0,
        random_state=None,
        criterion=torch.nn.CrossEntropyLoss,
        use_caching=False,
        **kwargs,
    ):
        super().__init__(
            module, criterion=criterion, use_caching=use_caching, **kwargs
        )
        self.image = image
        self.patch_size = patch_size
        self.samples_per_volume = samples_per_volume
        self.queue_length = queue_length
        self.sampler = sampler
        self.sampling_map = sampling_map
        self.label_probabilities = label_probabilities
        self.preprocessing = preprocessing
        self.augmentation = augmentation
        self.patch_overlap = patch_overlap
        self.padding_mode = padding_mode
        self.aggregation = aggregation
        self.queue_num_workers = queue_num_workers
        self.random_state = random_state

    def _encode_target(self, X, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__}.fit needs y, one class per row of X"
            )
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(
                f"y must hold one class per row of X ({len(X)} rows), got shape "
                f"{tuple(int(s) for s in y.shape)}"
            )
        if pd.isna(y).any():
            row = X.index[int(np.flatnonzero(pd.isna(y))[0])]
            raise SubjectTableError("missing class in y", row=row)
        classes = self.classes_
        codes = np.searchsorted(classes, y)
        codes = np.clip(codes, 0, len(classes) - 1)
        unknown = classes[codes] != y
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise SubjectTableError(
                f"class {_python(y[i])!r} is not among "
                f"classes={[_python(c) for c in classes]}",
                row=X.index[i],
            )
        return codes

    def predict_proba(self, X):
        """Class probabilities of each subject, aggregated over grid patches.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table (its ``image`` columns).

        Returns
        -------
        ndarray of shape (n_rows, n_classes)
            float32, rows in table order.
        """
        dataset = self._predict_dataset(X)
        if self.aggregation not in ("mean", "max"):
            raise ValueError(
                f"aggregation must be 'mean' or 'max', got {self.aggregation!r}"
            )
        forward = self._patch_forward(self._get_predict_nonlinearity())
        rows = []
        for i in range(len(dataset)):
            outputs, _ = grid_patch_outputs(
                forward,
                dataset[i],
                dataset.images,
                self._patch_size(),
                patch_overlap=self.patch_overlap,
                padding_mode=self.padding_mode,
                batch_size=self._grid_batch_size(),
            )
            if outputs.ndim != 2:
                raise ValueError(
                    "the module must return (batch, n_classes) scores per "
                    f"patch, got shape {tuple(outputs.shape)}"
                )
            if self.aggregation == "mean":
                rows.append(outputs.mean(0))
            else:
                top = outputs.max(0).values
                rows.append(top / top.sum())
        n_classes = len(self.classes_)
        if not rows:
            return np.empty((0, n_classes), dtype=np.float32)
        return torch.stack(rows).numpy()

    def predict(self, X):
        """Class of each subject (highest aggregated probability).

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]
