"""sklearn-medprep: prepare medical images for machine learning, the scikit-learn way.

Every step is a fit/transform estimator of the *subject table* (one row per
subject, image columns plus metadata), so that TorchIO preprocessing and
augmentation, PyRadiomics features, ComBat harmonization and any scikit-learn or
skorch model compose in a :class:`~sklearn.pipeline.Pipeline`, cross-validate
without leakage with site-aware splitters, and persist with joblib.
"""

import importlib

from ._version import __version__

# Public names are imported on first access (PEP 562), so that
# ``import sklearn_medprep`` and ComBat or radiomics work never import torch or
# torchio (several seconds): only the TorchIO estimators do, when first used.
# To export a new name, add ``"Name": "._module"`` here and "Name" to __all__.
_LAZY = {
    # estimators
    "ComBatHarmonizer": "._combat",
    "CovBatHarmonizer": "._covbat",
    "ImageTensorizer": "._tensor",
    "PatchNeuralNetClassifier": "._patch_net",
    "PatchNeuralNetSegmenter": "._patch_segmenter",
    "RadiomicsExtractor": "._radiomics",
    "RobustFeatureSelector": "._robust",
    "TorchIOAugmenter": "._augment",
    "TorchIOPreprocessor": "._torchio",
    "VoxelComBatHarmonizer": "._voxel_combat",
    # skorch bridge
    "TorchIOCollate": "._skorch",
    # quality control
    "plot_harmonization": "._qc",
    "site_effect_report": "._qc",
    "site_predictability": "._qc",
    "plot_voxel_site_effects": "._voxel_qc",
    "voxel_site_effect_maps": "._voxel_qc",
    "plot_pca_by_site": "._qc_plot",
    "plot_site_effects": "._qc_plot",
    "plot_site_features": "._qc_plot",
    # cohort audit
    "CohortReport": "._cohort_report",
    "cohort_report": "._cohort_report",
    # subject table
    "expand_labels": "._radiomics",
    "icc_3_1": "._robust",
    "load_image": "._table",
    "read_manifest": "._table",
    "validate_table": "._table",
    "write_manifest": "._table",
}

__all__ = [
    # estimators
    "ComBatHarmonizer",
    "CovBatHarmonizer",
    "ImageTensorizer",
    "PatchNeuralNetClassifier",
    "PatchNeuralNetSegmenter",
    "RadiomicsExtractor",
    "RobustFeatureSelector",
    "TorchIOAugmenter",
    "TorchIOPreprocessor",
    "VoxelComBatHarmonizer",
    # skorch bridge
    "TorchIOCollate",
    # quality control
    "plot_harmonization",
    "site_effect_report",
    "site_predictability",
    "plot_voxel_site_effects",
    "voxel_site_effect_maps",
    "plot_pca_by_site",
    "plot_site_effects",
    "plot_site_features",
    # cohort audit
    "CohortReport",
    "cohort_report",
    # subject table
    "expand_labels",
    "icc_3_1",
    "load_image",
    "read_manifest",
    "validate_table",
    "write_manifest",
    "__version__",
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
