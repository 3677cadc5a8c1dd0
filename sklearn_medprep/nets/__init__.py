"""Images to tensors and networks: tensorizer, collate function, patch-based nets."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "ImageTensorizer": "._tensorizer",
    "TorchIOCollate": "._collate",
    "PatchNeuralNetClassifier": "._patch_net",
    "PatchNeuralNetSegmenter": "._patch_segmenter",
    "SubjectTableDataset": "._dataset",
}

__all__ = [
    "ImageTensorizer",
    "PatchNeuralNetClassifier",
    "PatchNeuralNetSegmenter",
    "TorchIOCollate",
    "SubjectTableDataset",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
