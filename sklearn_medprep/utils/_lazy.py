"""Lazy re-exports for package ``__init__`` modules (PEP 562).

Each subpackage's public names are imported on first access, so that importing
one concept (``from sklearn_medprep import ComBatHarmonizer``) never imports the
heavy dependencies of another (SimpleITK, torch, matplotlib). A name whose
module needs a missing optional dependency raises an ImportError naming the
extra that installs it.
"""

import importlib

from ._optional import OPTIONAL

__all__ = ["lazy_exports"]


def lazy_exports(package, names):
    """Return ``__getattr__`` and ``__dir__`` for ``package``'s lazy names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to str
        Public name -> module relative to ``package`` (``"._combat"``).

    Returns
    -------
    (callable, callable)
        The module-level ``__getattr__`` and ``__dir__``.

    Examples
    --------
    >>> from sklearn_medprep.utils._lazy import lazy_exports
    >>> getattr_, dir_ = lazy_exports("sklearn_medprep", {"Spam": "._nowhere"})
    >>> "Spam" in dir_()
    True
    >>> getattr_("Eggs")
    Traceback (most recent call last):
    ...
    AttributeError: module 'sklearn_medprep' has no attribute 'Eggs'
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            value = getattr(importlib.import_module(module, package), name)
        except ModuleNotFoundError as exc:
            # an optional dependency (torch for the nets): name the extra
            top = (exc.name or "").split(".")[0]
            if top not in OPTIONAL:
                raise
            distribution, extra = OPTIONAL[top]
            raise ImportError(
                f"{name} needs {distribution}, which is not installed: "
                f'pip install "sklearn-medprep[{extra}]"'
            ) from exc
        namespace[name] = value  # later look-ups skip __getattr__
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
