"""Radiomic features: the extractor, its backends and cache, feature selection."""

from ..utils._lazy import lazy_exports
from . import _pyradiomics  # noqa: F401 - registers the default backend, in workers too

_LAZY = {
    "BatchRow": "._backend",
    "CorrelationSelector": "._redundancy",
    "RadiomicsBackend": "._backend",
    "RadiomicsExtractor": "._extractor",
    "RobustFeatureSelector": "._robust",
    "RowResult": "._backend",
    "expand_labels": "._rows",
    "expand_lesions": "._rows",
    "get_backend": "._backend",
    "icc_3_1": "._robust",
    "register_backend": "._backend",
}

__all__ = [
    "BatchRow",
    "CorrelationSelector",
    "RadiomicsBackend",
    "RadiomicsExtractor",
    "RobustFeatureSelector",
    "RowResult",
    "expand_labels",
    "expand_lesions",
    "get_backend",
    "icc_3_1",
    "register_backend",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
