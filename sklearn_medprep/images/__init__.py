"""TorchIO on the subject table: preprocessing (fitted in fit) and augmentation."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "TorchIOPreprocessor": "._preprocessor",
    "TorchIOAugmenter": "._augment",
    "register_trainable": "._trainable",
}

__all__ = [
    "TorchIOAugmenter",
    "TorchIOPreprocessor",
    "register_trainable",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
