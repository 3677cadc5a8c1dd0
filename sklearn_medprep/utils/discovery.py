"""Find every public estimator of sklearn-medprep, as sklearn does for its own."""

import inspect

from sklearn.base import BaseEstimator

__all__ = ["PUBLIC_SUBPACKAGES", "all_estimators"]

#: The subpackages whose ``__all__`` holds public names (CONTRIBUTING.md's map).
PUBLIC_SUBPACKAGES = (
    "datasets",
    "dicom",
    "filters",
    "harmonization",
    "images",
    "io",
    "model_selection",
    "nets",
    "qc",
    "radiomics",
    "table",
    "utils",
)


def all_estimators():
    """Return the public estimators of sklearn-medprep.

    An estimator is public when its class is exported in the ``__all__`` of
    :mod:`sklearn_medprep` or of one of its public subpackages
    (:data:`PUBLIC_SUBPACKAGES`).

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
    import importlib

    import sklearn_medprep

    found = {}
    modules = [sklearn_medprep] + [
        importlib.import_module(f"sklearn_medprep.{name}")
        for name in PUBLIC_SUBPACKAGES
    ]
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())
