"""Utilities: estimator discovery, extraction counts and the library's own checks."""

from ._lazy import lazy_exports

_LAZY = {
    "all_estimators": ".discovery",
    "count_extractions": "..radiomics._worker",
}

__all__ = [
    "all_estimators",
    "count_extractions",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
