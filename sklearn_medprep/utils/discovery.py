"""Find every public estimator of sklearn-medprep, as sklearn does for its own."""

import inspect

from sklearn.base import BaseEstimator

__all__ = ["all_estimators"]


def all_estimators():
    """Return the public estimators of sklearn-medprep.

    An estimator is public when its class is exported in the ``__all__`` of
    :mod:`sklearn_medprep` or of one of its public subpackages.

    Returns
    -------
    list of (str, type)
        ``(name, class)`` pairs sorted by name.

    Examples
    --------
    >>> from sklearn_medprep.utils.discovery import all_estimators
    >>> names = [name for name, _ in all_estimators()]
    >>> names == sorted(names)
    True
    """
    import sklearn_medprep
    import sklearn_medprep.model_selection

    found = {}
    for module in (sklearn_medprep, sklearn_medprep.model_selection):
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())
