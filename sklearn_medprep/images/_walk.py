"""TorchIO transform trees: copying, cloning, and the one walker over them.

A transform given to an estimator is a tree: :class:`torchio.Compose` applies
its children in order, :class:`torchio.OneOf` applies one of its children
drawn at random, any other transform is a leaf. :func:`walk` is the only code
that descends that tree; finding random parts (:func:`find_random_transforms`),
listing the steps applied in order (:func:`flatten`) and finding trainable
parts (:mod:`sklearn_medprep.images._trainable`) all go through it.
"""

import copy

from ..utils._optional import import_optional
from ._monai import monai_random_parts, seed_monai_lambdas

__all__ = [
    "as_transform",
    "clone_with_transforms",
    "find_random_transforms",
    "flatten",
    "walk",
]


def _children(transform, branches):
    """The sub-transforms of one node: Compose steps, or OneOf alternatives."""
    import torchio as tio

    if isinstance(transform, tio.Compose):
        return list(transform.transforms)
    if branches and isinstance(transform, tio.OneOf):
        return list(transform.transforms_dict)
    return []


def walk(transform, *, branches=True):
    """Yield every part of a transform tree, parents before children.

    Parameters
    ----------
    transform : torchio.Transform
        The root (a ``Compose``, a ``OneOf`` or a single transform).
    branches : bool, default=True
        Also descend into the alternatives of a :class:`torchio.OneOf`. With
        ``False`` only ``Compose`` steps are entered: the parts yielded are
        those applied to every subject, in the order they are applied.

    Yields
    ------
    torchio.Transform
        The root, then the parts under it, depth first, in order.

    Examples
    --------
    >>> import torchio as tio
    >>> from sklearn_medprep.images._walk import walk
    >>> tree = tio.Compose([tio.ToCanonical(), tio.OneOf([tio.RandomFlip()])])
    >>> [type(part).__name__ for part in walk(tree)]
    ['Compose', 'ToCanonical', 'OneOf', 'RandomFlip']
    >>> [type(part).__name__ for part in walk(tree, branches=False)]
    ['Compose', 'ToCanonical', 'OneOf']
    """
    yield transform
    for child in _children(transform, branches):
        yield from walk(child, branches=branches)


def flatten(transform):
    """Return the steps of a (nested) ``Compose`` in the order they are applied.

    Nested ``Compose`` objects are dissolved; every other part (a ``OneOf``
    included) is one step. A single transform gives ``[transform]``.

    Parameters
    ----------
    transform : torchio.Transform
        The transform.

    Returns
    -------
    list of torchio.Transform
        The steps themselves (not copies).
    """
    import torchio as tio

    return [
        part for part in walk(transform, branches=False)
        if not isinstance(part, tio.Compose)
    ]


def as_transform(transform, name="transform"):
    """Return a deep copy of ``transform`` as one TorchIO transform.

    Parameters
    ----------
    transform : torchio.Transform or list of torchio.Transform
        A transform, a :class:`torchio.Compose`, or a list (composed).
    name : str
        Parameter name, for error messages.

    Returns
    -------
    torchio.Transform
        A copy; the caller's object is never modified. A ``tio.Lambda``
        holding a random MONAI transform becomes a
        :class:`~sklearn_medprep.images._monai.SeededLambda` (its draws
        follow ``random_state``).

    Raises
    ------
    TypeError
        A part is not a TorchIO transform (a MONAI transform passed directly:
        the message says to wrap it in ``tio.Lambda``).
    """
    tio = import_optional("torchio", "a TorchIO transform")

    if isinstance(transform, (list, tuple)):
        for position, part in enumerate(transform):
            _check_is_torchio(part, f"{name}[{position}]", name)
        transform = tio.Compose(list(transform))
    _check_is_torchio(transform, name, name)
    for part in walk(transform):
        for child in _children(part, branches=True):
            _check_is_torchio(child, f"every step of {name}", name)
    return seed_monai_lambdas(copy.deepcopy(transform))


def _check_is_torchio(part, name, top=None):
    import torchio as tio

    if isinstance(part, tio.Transform):
        return
    hint = ""
    if callable(getattr(part, "set_random_state", None)) or "monai" in (
        type(part).__module__ or ""
    ):
        hint = (
            ": a MONAI array transform goes inside tio.Lambda (e.g. "
            f"tio.Lambda({type(part).__name__}(...), "
            "types_to_apply=[tio.INTENSITY])), where its random draws are "
            "seeded from random_state"
        )
    what = ("a torchio Transform, Compose or list of transforms"
            if name == top else "a torchio Transform")
    raise TypeError(f"{name} must be {what}, got {type(part).__name__}{hint}")


def clone_with_transforms(estimator, transform_params=("transforms",)):
    """Clone an estimator whose parameters hold TorchIO transforms.

    TorchIO's random transforms define their own ``get_params`` (the random
    parameter sampler), so scikit-learn's :func:`~sklearn.base.clone` would take
    them for estimators and fail; the ``transform_params`` are deep-copied
    instead, every other parameter cloned as scikit-learn does.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator to clone.
    transform_params : tuple of str, default=("transforms",)
        Names of the parameters that hold TorchIO transforms.

    Returns
    -------
    BaseEstimator
        A new, unfitted estimator of the same class and parameters (metadata
        routing requests and ``set_output`` configuration kept).
    """
    from sklearn.base import clone

    params = estimator.get_params(deep=False)
    for name, value in params.items():
        if name in transform_params:
            params[name] = copy.deepcopy(value)
        else:
            params[name] = clone(value, safe=False)
    new = type(estimator)(**params)
    for attribute in ("_metadata_request", "_sklearn_output_config"):
        if attribute in estimator.__dict__:
            setattr(new, attribute, copy.deepcopy(estimator.__dict__[attribute]))
    return new


def find_random_transforms(transform):
    """Return descriptions of the random parts of ``transform`` (empty if none).

    A part is random if it is a :class:`torchio.RandomTransform` (including
    ``OneOf``), is applied with probability ``p < 1``, or is a
    :class:`torchio.Lambda` holding a random MONAI transform
    (:func:`~sklearn_medprep.images._monai.monai_random_parts`).

    Parameters
    ----------
    transform : torchio.Transform
        The transform.

    Returns
    -------
    list of str
    """
    import torchio as tio
    from torchio.transforms.augmentation import RandomTransform

    found = []
    for part in walk(transform):
        if isinstance(part, RandomTransform):
            found.append(f"{part.name} (random transform)")
        elif getattr(part, "probability", 1) < 1:
            found.append(f"{part.name} (applied with p={part.probability})")
        elif hasattr(part, "function") and isinstance(part, tio.Lambda):
            names = [type(p).__name__ for p in monai_random_parts(part.function)]
            if names:
                found.append(f"Lambda({', '.join(names)}) (random MONAI "
                             "transform)")
    return found
