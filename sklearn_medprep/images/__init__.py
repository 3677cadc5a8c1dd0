"""TorchIO on the subject table: preprocessing (fitted in fit) and augmentation."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "TorchIOPreprocessor": "._preprocessor",
    "TorchIOAugmenter": "._augment",
}

__all__ = [
    "TorchIOAugmenter",
    "TorchIOPreprocessor",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
