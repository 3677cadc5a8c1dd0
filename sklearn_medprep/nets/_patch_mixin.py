"""The machinery the two patch nets share: patch training and grid inference.

:class:`_PatchNetMixin` is the base of :class:`PatchNeuralNetClassifier`
(``_patch_net.py``) and :class:`PatchNeuralNetSegmenter`
(``_patch_segmenter.py``): scikit-learn plumbing (tags, clone, parameters,
their validation), the subject table read lazily as a
:class:`PatchTableDataset`, seeded training on patches popped from a
:class:`torchio.Queue`, and the forward pass used by grid inference. What
differs (the target, how patch outputs make a prediction) is in the nets.

Imports torch, TorchIO and skorch when imported.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils._param_validation import (
    validate_parameter_constraints as _validate_constraints,
)
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog
from skorch.utils import to_device

from ..images._subject import image_columns
from ..images._walk import as_transform, clone_with_transforms, find_random_transforms
from ..table._checks import check_fit_rows, check_subject_table
from ..utils._random import local_seed, seed_sequence, spawn_seeds
from ..utils._tags import subject_table_input_tags
from ._patches import (
    PatchCollate,
    PatchTableDataset,
    _device_seed,
    make_patch_queue,
    make_sampler,
    patch_shape,
)

__all__ = []

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
