"""MONAI transforms inside ``tio.Lambda``: found, and seeded from ``random_state``.

A MONAI random transform (``RandGaussianNoise``, ``RandFlip``, a MONAI
``Compose`` of them, ...) draws from its own :class:`numpy.random.RandomState`
(its ``R`` attribute), not from the torch and numpy global generators that
:func:`~sklearn_medprep.utils._random.local_seed` seeds: inside a plain
``tio.Lambda`` the same ``random_state`` gave a different output every run.
The library recognises these objects by their interface (a
``set_random_state`` method and an ``R`` random state: MONAI's
``Randomizable``), without importing MONAI, and

- :func:`monai_random_parts` finds them in the function of a ``tio.Lambda``
  (the transform itself, a bound method, a :func:`functools.partial`, a
  closure or a global the function names), so that
  :class:`~sklearn_medprep.TorchIOPreprocessor` refuses them as random;
- :func:`seed_monai_lambdas` turns every such ``tio.Lambda`` of a (copied)
  transform tree into a :class:`SeededLambda`, which draws one seed per
  subject from torch's generator (the one ``random_state`` seeds per row) and
  gives it to the MONAI parts before each image of the subject: the same
  ``random_state`` gives the same output, and the image and the label map of
  one subject get the same draw (the same flip).
"""

import copy
import functools
import inspect

import numpy as np

from ..utils._optional import import_optional

__all__ = ["is_monai_random", "monai_random_parts",
           "seed_monai_lambdas"]

_MAX_SEED = 2**32


def is_monai_random(obj):
    """Whether ``obj`` is a random MONAI transform (a MONAI ``Randomizable``).

    Duck-typed: a ``set_random_state`` method and an ``R`` attribute holding a
    :class:`numpy.random.RandomState`. A MONAI ``Compose`` is random only if
    one of its steps is (MONAI makes every ``Compose`` ``Randomizable``).

    Parameters
    ----------
    obj : object

    Returns
    -------
    bool
    """
    if not callable(getattr(obj, "set_random_state", None)):
        return False
    if not isinstance(getattr(obj, "R", None), np.random.RandomState):
        return False
    if type(obj).__name__ == "Compose" and isinstance(
        getattr(obj, "transforms", None), (list, tuple)
    ):
        return any(is_monai_random(step) for step in obj.transforms)
    return True


def monai_random_parts(function):
    """Return the random MONAI transforms a ``tio.Lambda`` function holds.

    Searched: the function itself, the object of a bound method, the function
    and arguments of a :func:`functools.partial`, the variables of a closure,
    the globals a plain function names, and lists or tuples of these. A
    random transform reached through anything else (an attribute of another
    object) is not found.

    Parameters
    ----------
    function : callable
        The ``function`` of a :class:`torchio.Lambda`.

    Returns
    -------
    list of object
        The MONAI ``Randomizable`` objects, outermost first (a MONAI
        ``Compose`` seeds its own steps).
    """
    found, seen, stack = [], set(), [function]
    while stack:
        obj = stack.pop(0)
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type)):
            continue
        seen.add(id(obj))
        if is_monai_random(obj):
            found.append(obj)
        elif isinstance(obj, functools.partial):
            stack += [obj.func, *obj.args, *obj.keywords.values()]
        elif inspect.ismethod(obj):
            stack.append(obj.__self__)
        elif inspect.isfunction(obj):
            for cell in obj.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            names = obj.__code__.co_names
            stack += [obj.__globals__[n] for n in names if n in obj.__globals__]
        elif isinstance(obj, (list, tuple)):
            stack += list(obj)
    return found


def _as_plain_tensor(result):
    # MONAI returns a MetaTensor (a torch.Tensor subclass carrying metadata)
    as_tensor = getattr(result, "as_tensor", None)
    return as_tensor() if callable(as_tensor) else result


def _seeded_lambda_class():
    """Build :class:`SeededLambda` on first use (``torchio`` imported then).

    Importing this module (and so the names of the TorchIO estimators) loads
    neither torch nor TorchIO; the class is made once, registered as this
    module's ``SeededLambda`` so that pickles find it.
    """
    cls = globals().get("_SEEDED_LAMBDA")
    if cls is not None:
        return cls
    torch = import_optional("torch", "a MONAI transform inside tio.Lambda")
    tio = import_optional("torchio", "a MONAI transform inside tio.Lambda")

    class SeededLambda(tio.Lambda):
        """A :class:`torchio.Lambda` whose random MONAI parts follow torch's generator.

        Per subject, one seed is drawn from torch's global generator (which the
        estimators seed per row from ``random_state``); before the function is
        applied to each image of the subject, every random MONAI part found by
        :func:`monai_random_parts` gets a random state derived from that seed, so
        all images of one subject get the same draw. Parameters are those of
        :class:`torchio.Lambda`.
        """

        def apply_transform(self, subject):
            """Apply the function to the subject's images, MONAI parts seeded."""
            seed = int(torch.randint(0, 2**62, (1,)).item())
            parts = monai_random_parts(self.function)
            states = [int(s) for s in np.random.SeedSequence(seed).generate_state(
                max(len(parts), 1))]
            function = self.function

            def seeded(data):
                for part, state in zip(parts, states):
                    part.set_random_state(seed=state % _MAX_SEED)
                return _as_plain_tensor(function(data))

            view = copy.copy(self)  # the transform may be shared by threads
            view.function = seeded
            return tio.Lambda.apply_transform(view, subject)

    SeededLambda.__module__ = __name__
    SeededLambda.__qualname__ = "SeededLambda"
    globals()["_SEEDED_LAMBDA"] = SeededLambda
    return SeededLambda


def __getattr__(name):
    # ``SeededLambda`` (pickles refer to it by name) is built on first use
    if name == "SeededLambda":
        return _seeded_lambda_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def seed_monai_lambdas(transform):
    """Make every ``tio.Lambda`` holding random MONAI parts a :class:`SeededLambda`.

    Parameters
    ----------
    transform : torchio.Transform
        A tree the caller owns (a copy): ``Compose`` steps and ``OneOf``
        alternatives are replaced in place.

    Returns
    -------
    torchio.Transform
        The root (itself replaced if it is such a ``Lambda``).
    """
    tio = import_optional("torchio", "a TorchIO transform")
    seeded_lambda = _seeded_lambda_class()
    if isinstance(transform, tio.Compose):
        transform.transforms = [seed_monai_lambdas(t) for t in transform.transforms]
        return transform
    if isinstance(transform, tio.OneOf):
        transform.transforms_dict = {
            seed_monai_lambdas(t): p for t, p in transform.transforms_dict.items()
        }
        return transform
    if (
        isinstance(transform, tio.Lambda)
        and not isinstance(transform, seeded_lambda)
        and monai_random_parts(transform.function)
    ):
        seeded = object.__new__(seeded_lambda)
        seeded.__dict__.update(transform.__dict__)
        return seeded
    return transform
