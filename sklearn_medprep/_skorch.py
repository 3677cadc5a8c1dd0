"""Fresh TorchIO augmentation of every training batch of a skorch net.

skorch builds a new training :class:`~torch.utils.data.DataLoader` every epoch
from ``iterator_train__*`` parameters and a separate one for validation and
prediction from ``iterator_valid__*``. A collate function given as
``iterator_train__collate_fn`` therefore runs on training batches only, every
epoch, and never at validation or predict time (unlike ``dataset=``, which skorch
also uses to predict).
"""

import numpy as np
import torch
from torch.utils.data import default_collate

from ._random import local_seed, seed_sequence, spawn_seeds

__all__ = ["TorchIOCollate"]


def _augment_sample(transform, x):
    """Apply a TorchIO transform to one ``(C, *spatial)`` tensor."""
    if x.ndim == 3:  # 2D, (C, H, W) -> TorchIO's (C, W, H, 1) and back
        out = transform(x.permute(0, 2, 1).unsqueeze(-1))
        return out[..., 0].permute(0, 2, 1)
    if x.ndim == 4:
        return transform(x)
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

    Each sample is drawn from its own seed: with an int ``random_state`` batch
    ``b`` (counted by ``n_batches``, across epochs) uses seeds derived from
    ``(random_state, b)``, so a fresh copy of the collate (e.g. the net cloned
    by :class:`~sklearn.model_selection.GridSearchCV`) replays the same
    augmentations, whatever ``num_workers`` is; call :meth:`reset` to replay
    them with the same object. The caller's global torch/numpy random states
    are untouched. The object is picklable (module-level class, transform as
    attribute).

    Parameters
    ----------
    transforms : torchio.Transform
        The augmentation (a ``torchio.Compose`` for several).
    random_state : int, numpy.random.RandomState or None, default=None
        Seed of the draws; None draws fresh entropy for every batch.

    Attributes
    ----------
    n_batches : int
        Number of batches augmented so far.

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

    def __init__(self, transforms, random_state=None):
        self.transforms = transforms
        self.random_state = random_state
        self.n_batches = 0

    def reset(self):
        """Restart the batch count (the next batch draws as the first did).

        Returns
        -------
        self : TorchIOCollate
        """
        self.n_batches = 0
        return self

    def _batch_seeds(self, n):
        if isinstance(self.random_state, (int, np.integer)):
            sequence = np.random.SeedSequence([int(self.random_state), self.n_batches])
        else:
            sequence = seed_sequence(self.random_state)
        return spawn_seeds(sequence, n)

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
        seeds = self._batch_seeds(len(X))
        self.n_batches += 1
        samples = []
        for x, seed in zip(X, seeds):
            with local_seed(seed):
                # clone: x is a view of the whole batch, and TorchIO's copies of
                # a view copy its base (measured 5x slower per sample at 32)
                sample = _augment_sample(self.transforms, x.clone())
                samples.append(sample.to(X.dtype))
        X = torch.stack(samples)
        if pair:
            return type(collated)([X, *collated[1:]])
        return X

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.transforms!r}, "
            f"random_state={self.random_state!r})"
        )
