"""TorchIO on the subject table: preprocessing (fitted in fit) and augmentation."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "TorchIOPreprocessor": "._preprocessor",
    "TorchIOAugmenter": "._augment",
    "TorchIOAugmentSampler": "._augment_sampler",
    "register_trainable": "._trainable",
}

__all__ = [
    "TorchIOAugmentSampler",
    "TorchIOAugmenter",
    "TorchIOPreprocessor",
    "register_trainable",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
