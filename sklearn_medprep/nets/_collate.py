"""Fresh TorchIO augmentation of every training batch: :class:`TorchIOCollate`.

:class:`TorchIOCollate` is a collate function for a
:class:`torch.utils.data.DataLoader`: it collates the batch as
:func:`~torch.utils.data.default_collate` does, then augments every sample with
TorchIO. It needs torch and TorchIO only (not skorch); its use is as the
training collate function of a skorch net.

skorch builds a new training :class:`~torch.utils.data.DataLoader` every epoch
from ``iterator_train__*`` parameters and a separate one for validation and
prediction from ``iterator_valid__*``. A collate function given as
``iterator_train__collate_fn`` therefore runs on training batches only, every
epoch, and never at validation or predict time (unlike ``dataset=``, which skorch
also uses to predict).
"""

import copy
import numbers

import numpy as np
import torch
import torchio as tio
from torch.utils.data import default_collate, get_worker_info

from ..images._monai import _seeded_lambda_class, seed_monai_lambdas
from ..images._walk import walk
from ..utils._random import local_seed, seed_sequence, spawn_seeds

__all__ = ["TorchIOCollate"]


def _label_indices(label_channels, n_channels):
    """Sorted indices of the label channels among ``n_channels``."""
    if isinstance(label_channels, numbers.Integral) and not isinstance(
        label_channels, bool
    ):
        if not 0 <= label_channels <= n_channels:
            raise ValueError(
                f"label_channels={label_channels} trailing channels, but the "
                f"samples have {n_channels} channels"
            )
        return list(range(n_channels - int(label_channels), n_channels))
    try:
        indices = [int(i) for i in label_channels]
    except (TypeError, ValueError):
        raise TypeError(
            "label_channels must be None, an int (number of trailing channels) or "
            f"a list of channel indices, got {label_channels!r}"
        ) from None
    if any(not -n_channels <= i < n_channels for i in indices):
        raise ValueError(
            f"label_channels={label_channels!r} out of range for samples with "
            f"{n_channels} channels"
        )
    return sorted({i % n_channels for i in indices})


def _has_seeded_part(transform):
    seeded_lambda = _seeded_lambda_class()
    return any(isinstance(part, seeded_lambda) for part in walk(transform))


def _transform_volume(transform, x, labels):
    """Transform one ``(C, W, H, D)`` tensor, ``labels`` channels as a LabelMap."""
    if labels is None:
        return transform(x)
    others = [i for i in range(len(x)) if i not in labels]
    images = {}
    if others:
        images["image"] = tio.ScalarImage(tensor=x[others])
    if labels:
        images["label"] = tio.LabelMap(tensor=x[labels])
    subject = transform(tio.Subject(**images))
    out = torch.empty((len(x), *subject.spatial_shape), dtype=x.dtype)
    if others:
        out[others] = subject["image"].data.to(out.dtype)
    if labels:
        out[labels] = subject["label"].data.to(out.dtype)
    return out


def _augment_sample(transform, x, labels=None):
    """Apply a TorchIO transform to one ``(C, *spatial)`` tensor."""
    if x.ndim == 3:  # 2D, (C, H, W) -> TorchIO's (C, W, H, 1) and back
        out = _transform_volume(transform, x.permute(0, 2, 1).unsqueeze(-1), labels)
        return out[..., 0].permute(0, 2, 1)
    if x.ndim == 4:
        return _transform_volume(transform, x, labels)
    raise ValueError(
        "TorchIOCollate expects samples of shape (C, H, W) or (C, W, H, D) as "
        f"ImageTensorizer makes them, got shape {tuple(x.shape)}"
    )


class TorchIOCollate:
    """Collate function that augments each training sample with TorchIO.

    Use it as ``iterator_train__collate_fn`` of a skorch net: skorch calls it
    for training batches only, so augmentation is fresh every epoch and never
    touches validation batches or ``predict``/``predict_proba``.

    The batch is first collated by :func:`torch.utils.data.default_collate`
    (into ``(X, y)`` tensors); every sample of ``X``, shaped ``(C, W, H, D)``
    (3D) or ``(C, H, W)`` (2D) as :class:`~sklearn_medprep.ImageTensorizer`
    makes them, is then transformed, with TorchIO's identity affine (1 mm
    voxels: resample to a fixed spacing beforehand). ``y`` is left as it is.

    With ``label_channels`` set (e.g. ``1`` for the mask that
    ``ImageTensorizer(mask=...)`` adds as the last channel), each sample is
    transformed as a :class:`torchio.Subject` of a ``ScalarImage`` (the other
    channels) and a ``LabelMap`` (the label channels), then reassembled in the
    original channel order: intensity transforms (noise, bias field, gamma,
    normalization) leave the label channels as they are, and spatial
    transforms move them with the image, resampled by nearest neighbour, so
    they stay label maps.

    Each sample is drawn from its own seed. With an int ``random_state``, batch
    ``b`` collated in the main process (``num_workers=0``, skorch's default;
    counted by ``n_batches``, across epochs) uses seeds derived from
    ``(random_state, b)``: a fresh copy of the collate replays the same
    augmentations. :func:`sklearn.base.clone` (so a net cloned by
    :class:`~sklearn.model_selection.GridSearchCV` or ``cross_validate``) gives
    such a fresh copy, with ``n_batches=0``; fitting the *same* net again goes
    on counting (new draws, as a ``RandomState`` would); call :meth:`reset`
    before to replay them. The caller's global torch/numpy random states are
    untouched. The object is picklable (module-level class, transform as
    attribute).

    In DataLoader worker processes (``iterator_train__num_workers > 0``) each
    worker collates with its own copy of this object, and the workers are
    started anew every epoch, so the seeds are derived from
    ``(random_state, worker seed, batch count of the worker)``. The worker seed
    (:func:`torch.utils.data.get_worker_info`) differs by worker and by epoch
    and is drawn from torch's global generator (or the DataLoader's
    ``generator``) when the epoch starts: augmentations are then distinct
    across workers and epochs, and reproducible across runs when that seed is
    fixed, e.g. by ``torch.manual_seed`` before ``fit``. ``n_batches`` of the
    object in the main process does not count the batches collated by workers.

    Parameters
    ----------
    transforms : torchio.Transform
        The augmentation (a ``torchio.Compose`` for several).
    random_state : int, numpy.random.RandomState or None, default=None
        Seed of the draws; None draws fresh entropy for every batch.
    label_channels : int, list of int or None, default=None
        Channels that are label maps (masks, segmentations): an int is a number
        of trailing channels (``1`` for ``ImageTensorizer(mask=...)``), a list
        gives channel indices. None augments every channel as an intensity
        image.

    Attributes
    ----------
    n_batches : int
        Number of batches augmented so far (in this process).

    Examples
    --------
    >>> import torch
    >>> import torchio as tio
    >>> from sklearn_medprep import TorchIOCollate
    >>> collate = TorchIOCollate(tio.RandomFlip(axes=(0,), flip_probability=1))
    >>> batch = [(torch.arange(6.0).reshape(1, 2, 3), 0)]  # one 2D sample (C, H, W)
    >>> X, y = collate(batch)
    >>> X[0, 0]
    tensor([[2., 1., 0.],
            [5., 4., 3.]])
    >>> collate.n_batches
    1

    In a net: ``NeuralNetClassifier(module, iterator_train__collate_fn=collate)``.
    """

    def __init__(self, transforms, random_state=None, label_channels=None):
        self.transforms = transforms
        self.random_state = random_state
        self.label_channels = label_channels
        self.n_batches = 0

    def __sklearn_clone__(self):
        # sklearn's clone deep-copies parameters that are not estimators; this
        # keeps that copy but restarts the batch count, as for a fresh object
        return type(self)(
            copy.deepcopy(self.transforms),
            random_state=copy.deepcopy(self.random_state),
            label_channels=copy.deepcopy(self.label_channels),
        )

    def reset(self):
        """Restart the batch count (the next batch draws as the first did).

        Returns
        -------
        self : TorchIOCollate
        """
        self.n_batches = 0
        return self

    def _batch_seeds(self, n):
        worker = get_worker_info()
        if isinstance(self.random_state, numbers.Integral) and not isinstance(
            self.random_state, bool
        ):
            entropy = [int(self.random_state)]
        else:  # None: fresh entropy; RandomState/Generator: drawn from
            entropy = seed_sequence(self.random_state).entropy
            entropy = list(entropy) if isinstance(entropy, list) else [entropy]
            if worker is None:
                return spawn_seeds(np.random.SeedSequence(entropy), n)
        if worker is not None:
            # every worker holds a copy of self (same random_state, same count):
            # its seed, distinct per worker and per epoch, tells them apart
            entropy.append(int(worker.seed))
        entropy.append(self.n_batches)
        return spawn_seeds(np.random.SeedSequence(entropy), n)

    def __call__(self, batch):
        """Collate ``batch`` and augment its samples.

        Parameters
        ----------
        batch : list
            Samples as a skorch dataset yields them, ``(x, y)`` pairs.

        Returns
        -------
        object
            What :func:`~torch.utils.data.default_collate` returns, with ``X``
            augmented.
        """
        collated = default_collate(batch)
        pair = isinstance(collated, (list, tuple))
        X = collated[0] if pair else collated
        if not isinstance(X, torch.Tensor):
            raise TypeError(
                "TorchIOCollate augments tensor inputs (ImageTensorizer output); "
                f"got a batch of {type(X).__name__}"
            )
        labels = None
        if self.label_channels is not None and X.ndim in (4, 5):
            labels = _label_indices(self.label_channels, X.shape[1])
        seeds = self._batch_seeds(len(X))
        self.n_batches += 1
        transform = self._seeded_transform()
        samples = []
        for x, seed in zip(X, seeds):
            with local_seed(seed):
                # clone: x is a view of the whole batch, and TorchIO's copies of
                # a view copy its base (measured 5x slower per sample at 32)
                sample = _augment_sample(transform, x.clone(), labels)
                samples.append(sample.to(X.dtype))
        X = torch.stack(samples)
        if pair:
            return type(collated)([X, *collated[1:]])
        return X

    def _seeded_transform(self):
        """``transforms``, with a ``tio.Lambda`` of random MONAI parts seeded.

        A random MONAI transform in a ``tio.Lambda`` draws from its own
        generator, not the one seeded per sample: a copy of ``transforms``
        whose such ``Lambda`` objects follow the sample's seed
        (:func:`~sklearn_medprep.images._monai.seed_monai_lambdas`) is made
        once; without MONAI parts ``transforms`` is used as it is.
        """
        cached = self.__dict__.get("_seeded")
        if cached is None or cached[0] is not self.transforms:
            transform = self.transforms
            if isinstance(transform, tio.Transform):
                seeded = seed_monai_lambdas(copy.deepcopy(transform))
                if _has_seeded_part(seeded):
                    transform = seeded
            cached = (self.transforms, transform)
            self.__dict__["_seeded"] = cached
        return cached[1]

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.transforms!r}, "
            f"random_state={self.random_state!r}, "
            f"label_channels={self.label_channels!r})"
        )
