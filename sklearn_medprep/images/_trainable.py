"""Transforms trained in ``fit``: the registry that ``TorchIOPreprocessor`` consults.

Some TorchIO transforms hold parameters learned from a set of images
(:class:`torchio.HistogramStandardization`'s landmarks). In a cross-validated
pipeline they must be learned from the training fold only, so
:meth:`TorchIOPreprocessor.fit <sklearn_medprep.TorchIOPreprocessor.fit>` asks
this registry, for each step of its transform, whether the step is to be
trained and how: every step registered and untrained is replaced, in the fitted
transform, by a trained copy computed from the training subjects as the steps
before it left them.

:func:`register_trainable` adds an entry; HistogramStandardization is the
first one, trained exactly as :meth:`torchio.HistogramStandardization.train`.
"""

import copy
from dataclasses import dataclass

import numpy as np

from ..utils._optional import import_optional

__all__ = [
    "find_trainable",
    "register_trainable",
    "train_histogram_landmarks",
    "train_transform",
]


@dataclass(frozen=True)
class _Trainable:
    train: object
    needs_training: object


#: transform class -> how to train it
_TRAINABLE = {}


def _always(part):
    return True


def register_trainable(transform_class, train, *, needs_training=None):
    """Register how ``TorchIOPreprocessor.fit`` trains a kind of TorchIO transform.

    Parameters
    ----------
    transform_class : type
        A subclass of :class:`torchio.Transform`. Its subclasses are covered
        too, unless they have an entry of their own.
    train : callable
        ``train(part, subjects) -> trained`` where ``part`` is the transform
        step, ``subjects`` the training rows as :class:`torchio.Subject`
        objects (after the steps before ``part``), and ``trained`` a new
        transform (``part`` must not be modified) used in the fitted transform
        in place of ``part``.
    needs_training : callable or None, default=None
        ``needs_training(part) -> bool``: whether ``part`` is to be trained
        (e.g. False when its parameters are given). None: always.

    Returns
    -------
    None

    Examples
    --------
    >>> import torchio as tio
    >>> from sklearn_medprep.images import register_trainable
    >>> class MeanShift(tio.IntensityTransform):
    ...     '''Subtract a mean intensity learned from the training images.'''
    ...     def __init__(self, mean=None, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.mean = mean
    ...         self.args_names = ["mean"]
    ...     def apply_transform(self, subject):
    ...         for image in self.get_images(subject):
    ...             image.set_data(image.data - self.mean)
    ...         return subject
    >>> def train_mean(part, subjects):
    ...     means = [float(s["image"].data.mean()) for s in subjects]
    ...     return MeanShift(sum(means) / len(means))
    >>> register_trainable(MeanShift, train_mean,
    ...                    needs_training=lambda part: part.mean is None)
    """
    tio = import_optional("torchio", "register_trainable")
    if not (isinstance(transform_class, type)
            and issubclass(transform_class, tio.Transform)):
        raise TypeError(
            "transform_class must be a torchio Transform class, got "
            f"{transform_class!r}"
        )
    if not callable(train):
        raise TypeError(f"train must be callable, got {train!r}")
    if needs_training is not None and not callable(needs_training):
        raise TypeError(f"needs_training must be callable or None, got "
                        f"{needs_training!r}")
    _TRAINABLE[transform_class] = _Trainable(train, needs_training or _always)


def find_trainable(part):
    """Return the registry entry of ``part`` if it is to be trained, else None.

    Parameters
    ----------
    part : torchio.Transform
        One step of a transform.

    Returns
    -------
    object or None
        The entry (``train``, ``needs_training``) of the nearest registered
        class of ``part``, when ``needs_training(part)`` is true.
    """
    _register_builtin()
    for cls in type(part).__mro__:
        entry = _TRAINABLE.get(cls)
        if entry is not None:
            return entry if entry.needs_training(part) else None
    return None


def train_transform(part, subjects):
    """Return the trained copy of ``part``, learned from ``subjects``.

    Parameters
    ----------
    part : torchio.Transform
        A step for which :func:`find_trainable` gives an entry.
    subjects : list of torchio.Subject
        The training subjects, after the steps before ``part``.

    Returns
    -------
    torchio.Transform
    """
    if not subjects:
        raise ValueError(f"cannot train {type(part).__name__} on zero rows")
    trained = find_trainable(part).train(part, subjects)
    tio = import_optional("torchio", "a TorchIO transform")
    if not isinstance(trained, tio.Transform):
        raise TypeError(
            f"the train function registered for {type(part).__name__} returned "
            f"{type(trained).__name__}, not a torchio Transform"
        )
    return trained


# -- HistogramStandardization -------------------------------------------------
def _untrained_keys(hs):
    return [key for key, value in hs.landmarks_dict.items() if value is None]


def _histogram_needs_training(hs):
    return not hs.landmarks_dict or bool(_untrained_keys(hs))


def train_histogram_landmarks(hs, subjects):
    """Train the landmarks of a HistogramStandardization on in-memory subjects.

    The computation is TorchIO's own :meth:`torchio.HistogramStandardization.train`
    (same percentiles, same averaging), fed with the images of ``subjects``
    instead of files. The voxels used are selected by ``hs.masking_method``, as
    when the transform is applied: ``None`` uses all voxels (``train`` without
    ``mask_path``), the name of a label map of the subject uses its non-zero
    voxels (``train(..., mask_path=masks)``), a callable is ``masking_function``.

    Parameters
    ----------
    hs : torchio.HistogramStandardization
        Transform whose ``landmarks`` is ``{}`` (train every scalar image it
        applies to) or maps image names to ``None`` (train those).
    subjects : list of torchio.Subject
        Training subjects.

    Returns
    -------
    dict
        Image name -> landmarks (numpy array of 13 values).
    """
    from torchio.transforms.preprocessing.intensity.histogram_standardization import (
        DEFAULT_CUTOFF,
        _get_average_mapping,
        _get_percentiles,
    )

    if not subjects:
        raise ValueError("cannot train HistogramStandardization on zero rows")
    keys = _untrained_keys(hs) or list(hs.get_images_dict(subjects[0]))
    a, b = 100 * np.array(DEFAULT_CUTOFF)
    percentiles = _get_percentiles((a, b))
    landmarks = {}
    for key in keys:
        database = []
        for subject in subjects:
            tensor = subject[key].data
            mask = hs.get_mask_from_masking_method(hs.masking_method, subject, tensor)
            array = tensor.numpy()
            database.append(np.percentile(array[np.asarray(mask)], percentiles))
        landmarks[key] = _get_average_mapping(np.vstack(database))
    return landmarks


def _train_histogram_standardization(hs, subjects):
    """A copy of ``hs`` with its missing landmarks learned from ``subjects``."""
    landmarks = train_histogram_landmarks(hs, subjects)
    new = copy.deepcopy(hs)
    merged = {
        key: value for key, value in hs.landmarks_dict.items() if value is not None
    }
    merged.update(landmarks)
    new.landmarks = merged
    new.landmarks_dict = merged
    return new


def _register_builtin():
    """Register HistogramStandardization when torchio is first needed.

    Done on use rather than at import, so that importing ``TorchIOPreprocessor``
    does not import torchio (and torch); an entry registered for it by the user
    is kept.
    """
    tio = import_optional("torchio", "a TorchIO transform")
    _TRAINABLE.setdefault(
        tio.HistogramStandardization,
        _Trainable(_train_histogram_standardization, _histogram_needs_training),
    )
