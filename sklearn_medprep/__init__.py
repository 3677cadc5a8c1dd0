"""sklearn-medprep: prepare medical images for machine learning, the scikit-learn way.

Every step is a fit/transform estimator of the *subject table* (one row per
subject, image columns plus metadata), so that TorchIO preprocessing and
augmentation, PyRadiomics features, ComBat harmonization and any scikit-learn or
skorch model compose in a :class:`~sklearn.pipeline.Pipeline`, cross-validate
without leakage with site-aware splitters, and persist with joblib.
"""

from ._augment import TorchIOAugmenter
from ._combat import ComBatHarmonizer
from ._patch_net import PatchNeuralNetClassifier
from ._patch_segmenter import PatchNeuralNetSegmenter
from ._qc import plot_harmonization, site_effect_report, site_predictability
from ._radiomics import RadiomicsExtractor, expand_labels
from ._skorch import TorchIOCollate
from ._table import load_image, read_manifest, validate_table
from ._tensor import ImageTensorizer
from ._torchio import TorchIOPreprocessor
from ._version import __version__

__all__ = [
    # estimators
    "ComBatHarmonizer",
    "ImageTensorizer",
    "RadiomicsExtractor",
    "TorchIOAugmenter",
    "TorchIOPreprocessor",
    # skorch bridge
    "TorchIOCollate",
    "PatchNeuralNetClassifier",
    "PatchNeuralNetSegmenter",
    # quality control
    "plot_harmonization",
    "site_effect_report",
    "site_predictability",
    # subject table
    "expand_labels",
    "load_image",
    "read_manifest",
    "validate_table",
    "__version__",
]
