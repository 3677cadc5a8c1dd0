"""skorch nets that train on TorchIO patches and predict over whole volumes.

:class:`PatchNeuralNetClassifier` (here) and :class:`PatchNeuralNetSegmenter`
(``_patch_segmenter.py``, sharing the mixin below) are skorch nets whose ``X``
is the subject table. Training batches are patches popped from a
:class:`torchio.Queue` over the rows, read lazily; prediction runs the module
over the patches of a :class:`torchio.GridSampler` of each whole volume.

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

from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils._param_validation import (
    validate_parameter_constraints as _validate_constraints,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    assert_all_finite,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog
from skorch.utils import to_device

from ..exceptions import SubjectTableError
from ..images._subject import image_columns
from ..images._walk import as_transform, clone_with_transforms, find_random_transforms
from ..table._checks import check_fit_rows, check_subject_table
from ..utils._random import local_seed, seed_sequence, spawn_seeds
from ..utils._tags import subject_table_input_tags
from ._patch_doc import _SHARED_DOC
from ._patches import (
    PatchCollate,
    PatchTableDataset,
    _device_seed,
    grid_patch_outputs,
    make_patch_queue,
    make_sampler,
    patch_shape,
)

__all__ = ["PatchNeuralNetClassifier"]

_TRANSFORM_PARAMS = ("augmentation", "preprocessing")

_PATCH_CONSTRAINTS = {
    "image": [str, list],
    "patch_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
    "samples_per_volume": [Interval(Integral, 1, None, closed="left")],
    "queue_length": [Interval(Integral, 1, None, closed="left")],
    "sampler": [StrOptions({"uniform", "weighted", "label"})],
    "sampling_map": [str, None],
    "label_probabilities": [dict, None],
    "augmentation": "no_validation",
    "preprocessing": "no_validation",
    "patch_overlap": [Interval(Integral, 0, None, closed="left"), tuple, list],
    "padding_mode": "no_validation",
    "queue_num_workers": [Interval(Integral, 0, None, closed="left")],
    "random_state": ["random_state"],
}


def _python(value):
    """A numpy scalar as the Python value (for messages without numpy reprs)."""
    return value.item() if isinstance(value, np.generic) else value


class _PatchNetMixin:
    """Patch training and grid inference shared by the two nets."""

    #: What ``y`` of a training patch is: "class" or "label".
    _target = None

    # -- scikit-learn plumbing ------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = subject_table_input_tags(tags.input_tags, image=True)
        tags.non_deterministic = self.random_state is None
        return tags

    def __sklearn_clone__(self):
        # TorchIO's random transforms have a get_params of their own (the
        # random draw), which sklearn's clone would take for an estimator's
        return clone_with_transforms(self, _TRANSFORM_PARAMS)

    def get_params(self, deep=True, **kwargs):
        """Get the parameters of this net.

        As :meth:`skorch.NeuralNet.get_params`, except that a TorchIO
        ``augmentation`` or ``preprocessing`` is a parameter, never a nested
        estimator.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of nested estimators and callbacks.
        **kwargs : dict
            Passed to skorch.

        Returns
        -------
        dict
        """
        params = super().get_params(deep=False, **kwargs)
        if not deep:
            return params
        out = dict(params)
        for key, value in params.items():
            if key in _TRANSFORM_PARAMS or isinstance(value, type):
                continue
            if hasattr(value, "get_params"):
                for sub, sub_value in value.get_params().items():
                    out[f"{key}__{sub}"] = sub_value
        out.update(self._get_params_callbacks(deep=True))
        return out

    @property
    def _default_callbacks(self):
        # no valid_acc: skorch would score it on patches through predict,
        # which here runs on whole subjects
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("print_log", PrintLog()),
        ]

    # -- input ------------------------------------------------------------------
    def _label_column(self):
        return None

    def _check_table(self, X, *, reset, training):
        images, _ = image_columns(self.image, None)
        columns = list(images)
        if training:
            columns += [self._label_column(), self.sampling_map]
        check_subject_table(X, columns=columns, estimator=type(self).__name__)
        if reset:
            _validate_constraints(
                _PATCH_CONSTRAINTS,
                {name: getattr(self, name) for name in _PATCH_CONSTRAINTS},
                caller_name=type(self).__name__,
            )
        validate_data(self, X, skip_check_array=True, reset=reset)
        return list(images)

    def _patch_size(self):
        return patch_shape(self.patch_size)

    def _training_dataset(self, X, targets=None, y=None):
        images = self._check_table(X, reset=True, training=True)
        if self.use_caching is not False:
            raise ValueError(
                f"{type(self).__name__} needs use_caching=False (got "
                f"{self.use_caching!r}): its validation batches are patches, "
                "while skorch's scoring callbacks (EpochScoring) score whole "
                "validation subjects through predict"
            )
        return PatchTableDataset(
            X,
            images,
            label=self._label_column(),
            sampling_map=self.sampling_map,
            targets=targets,
            min_shape=self._patch_size(),
            y=y,
        )

    def _predict_dataset(self, X):
        check_is_fitted(self, "n_features_in_")
        images = self._check_table(X, reset=False, training=False)
        return PatchTableDataset(
            X,
            images,
            transform=self._subject_transform(training=False),
            min_shape=self._patch_size(),
        )

    def _subject_transform(self, *, training):
        """``preprocessing`` (then ``augmentation`` when training), or None."""
        import torchio as tio

        parts = []
        if self.preprocessing is not None:
            preprocessing = as_transform(self.preprocessing, "preprocessing")
            random_parts = find_random_transforms(preprocessing)
            if random_parts:
                raise ValueError(
                    "preprocessing must be deterministic (it also runs at "
                    f"validation and predict time); it holds {random_parts}: "
                    "put random transforms in augmentation"
                )
            parts.append(preprocessing)
        if training and self.augmentation is not None:
            parts.append(as_transform(self.augmentation, "augmentation"))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else tio.Compose(parts)

    # -- training -------------------------------------------------------------
    def _seed(self, epochs):
        sequence = seed_sequence(self.random_state)
        if isinstance(self.random_state, (int, np.integer)):
            # warm starts go on with new draws, replayed by a fresh net
            sequence = np.random.SeedSequence([int(self.random_state), epochs])
        return spawn_seeds(sequence, 1)[0]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, **fit_params):
        """Initialize the module and train it on patches of the rows of ``X``.

        Every draw (initial weights, validation split, subject order, patch
        locations, augmentation, dropout) comes from ``random_state``, in a
        local generator state: the caller's global torch and numpy random
        states are left as they were.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : array-like or None
            Target (see the class documentation).
        **fit_params : dict
            Passed to skorch's ``fit``.

        Returns
        -------
        self
        """
        check_fit_rows(X, estimator=self)
        warm = self.warm_start and self.initialized_
        seed = self._seed(len(self.history_) if warm else 0)
        with local_seed(seed), _device_seed(self.device, seed):
            if not warm:
                self.initialize()
            # skorch's own partial_fit: the seed context is already set
            super().partial_fit(X, y, _routing_method="fit", **fit_params)
        return self

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train on further epochs without re-initializing (warm start).

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        y : array-like or None
            Target.
        classes : None
            Unused (scikit-learn compatibility).
        **fit_params : dict
            Passed to skorch's ``partial_fit``.

        Returns
        -------
        self
        """
        seed = self._seed(len(self.history_ or ()))
        with local_seed(seed), _device_seed(self.device, seed):
            return super().partial_fit(X, y, classes=classes, **fit_params)

    def get_dataset(self, X, y=None):
        """Return the lazy :class:`PatchTableDataset` of the rows of ``X``."""
        if isinstance(X, PatchTableDataset):
            return X
        return self._training_dataset(X, self._encode_target(X, y), y)

    def _encode_target(self, X, y):
        return None

    def get_iterator(self, dataset, training=False):
        """Return a DataLoader over a :class:`torchio.Queue` of patches.

        Training patches come from subjects transformed by ``augmentation``;
        validation patches from untransformed subjects. ``iterator_train__*``
        and ``iterator_valid__*`` parameters reach the DataLoader (whose
        ``num_workers`` must stay 0: subjects are read by
        ``queue_num_workers`` processes of the queue).
        """
        if isinstance(dataset, torch.utils.data.Subset):
            dataset = dataset.dataset.subset(np.asarray(dataset.indices))
        if not isinstance(dataset, PatchTableDataset):
            raise TypeError(
                f"{type(self).__name__} trains on a subject table; got a "
                f"{type(dataset).__name__}"
            )
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        if kwargs.get("num_workers", 0):
            raise ValueError(
                f"{prefix}__num_workers must be 0 (the queue's patches live in "
                "the main process); read subjects in parallel with "
                "queue_num_workers"
            )
        kwargs.setdefault("batch_size", self.batch_size)
        kwargs.setdefault(
            "collate_fn",
            PatchCollate(dataset.images, self._target, self._label_column()),
        )
        transform = self._subject_transform(training=training)
        if transform is not None:
            dataset = dataset.with_transform(transform)
        sampler = make_sampler(
            self.sampler,
            self._patch_size(),
            label=self._label_column(),
            sampling_map=self.sampling_map,
            label_probabilities=self.label_probabilities,
        )
        queue = make_patch_queue(
            dataset,
            sampler,
            queue_length=self.queue_length,
            samples_per_volume=self.samples_per_volume,
            num_workers=self.queue_num_workers,
        )
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(queue)
        iterator = self.iterator_train if training else self.iterator_valid
        return iterator(queue, **kwargs)

    # -- inference ------------------------------------------------------------
    def _grid_batch_size(self):
        return self.get_params_for("iterator_valid").get("batch_size", self.batch_size)

    def _patch_forward(self, nonlin):
        def predict(X):
            out = self.evaluation_step((X, None), training=False)
            out = out[0] if isinstance(out, tuple) else out
            return to_device(nonlin(out), "cpu")

        return predict


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
