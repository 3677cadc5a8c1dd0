"""Radiomic features: the extractor, its backends and cache, robust selection."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "RadiomicsExtractor": "._extractor",
    "RobustFeatureSelector": "._robust",
    "expand_labels": "._extractor",
    "icc_3_1": "._robust",
}

__all__ = [
    "RadiomicsExtractor",
    "RobustFeatureSelector",
    "expand_labels",
    "icc_3_1",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
