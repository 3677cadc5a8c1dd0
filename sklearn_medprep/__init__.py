"""sklearn-medprep: prepare medical images for machine learning, the scikit-learn way.

Every step is a fit/transform estimator of the *subject table* (one row per
subject, image columns plus metadata), so that TorchIO preprocessing and
augmentation, PyRadiomics features, ComBat harmonization and any scikit-learn or
skorch model compose in a :class:`~sklearn.pipeline.Pipeline`, cross-validate
without leakage with site-aware splitters, and persist with joblib.
"""

from ._legacy import install_legacy_paths
from ._version import __version__
from .utils._lazy import lazy_exports

# Public names are imported on first access (PEP 562), so that
# ``import sklearn_medprep`` and ComBat or radiomics work never import torch or
# torchio (several seconds): only the TorchIO estimators do, when first used.
# To export a new name, add ``"Name": ".subpackage"`` here and "Name" to __all__
# (and to the subpackage's own lazy map).
_LAZY = {
    # estimators
    "ComBatHarmonizer": ".harmonization",
    "CorrelationSelector": ".radiomics",
    "CovBatHarmonizer": ".harmonization",
    "LongitudinalComBatHarmonizer": ".harmonization",
    "QuantileComBatHarmonizer": ".harmonization",
    "ImageTensorizer": ".nets",
    "PatchNeuralNetClassifier": ".nets",
    "PatchNeuralNetSegmenter": ".nets",
    "RadiomicsExtractor": ".radiomics",
    "RobustFeatureSelector": ".radiomics",
    "TorchIOAugmenter": ".images",
    "TorchIOAugmentSampler": ".images",
    "TorchIOPreprocessor": ".images",
    "VoxelComBatHarmonizer": ".harmonization",
    # skorch bridge
    "TorchIOCollate": ".nets",
    # plain PyTorch
    "SubjectTableDataset": ".nets",
    # quality control
    "plot_harmonization": ".qc",
    "site_effect_report": ".qc",
    "site_predictability": ".qc",
    "plot_voxel_site_effects": ".qc",
    "voxel_site_effect_maps": ".qc",
    "plot_pca_by_site": ".qc",
    "plot_site_effects": ".qc",
    "plot_site_features": ".qc",
    # cohort audit
    "CohortReport": ".qc",
    "SitePredictability": ".qc",
    "cohort_report": ".qc",
    # leakage audit
    "LeakageAudit": ".qc",
    "audit_leakage": ".qc",
    # visual QC
    "plot_subjects": ".qc",
    "plot_preprocessing": ".qc",
    "plot_augmentations": ".qc",
    # subject table
    "expand_labels": ".radiomics",
    "expand_lesions": ".radiomics",
    "icc_3_1": ".radiomics",
    # IBSI-2 filters
    "filter_image": ".filters",
    "ibsi2_phase1_table": ".filters",
    "load_image": ".io",
    "read_manifest": ".table",
    "TargetProxy": ".table",
    "check_target_proxies": ".table",
    "find_target_proxies": ".table",
    "validate_table": ".table",
    "write_manifest": ".table",
    "write_images": ".io",
}

__all__ = [
    # estimators
    "ComBatHarmonizer",
    "CorrelationSelector",
    "CovBatHarmonizer",
    "LongitudinalComBatHarmonizer",
    "QuantileComBatHarmonizer",
    "ImageTensorizer",
    "PatchNeuralNetClassifier",
    "PatchNeuralNetSegmenter",
    "RadiomicsExtractor",
    "RobustFeatureSelector",
    "TorchIOAugmentSampler",
    "TorchIOAugmenter",
    "TorchIOPreprocessor",
    "VoxelComBatHarmonizer",
    # skorch bridge
    "TorchIOCollate",
    # plain PyTorch
    "SubjectTableDataset",
    # quality control
    "plot_harmonization",
    "site_effect_report",
    "site_predictability",
    "SitePredictability",
    "plot_voxel_site_effects",
    "voxel_site_effect_maps",
    "plot_pca_by_site",
    "plot_site_effects",
    "plot_site_features",
    # cohort audit
    "CohortReport",
    "cohort_report",
    # leakage audit
    "LeakageAudit",
    "audit_leakage",
    # visual QC
    "plot_subjects",
    "plot_preprocessing",
    "plot_augmentations",
    # subject table
    "expand_labels",
    "expand_lesions",
    "icc_3_1",
    # IBSI-2 filters
    "filter_image",
    "ibsi2_phase1_table",
    "load_image",
    "read_manifest",
    "TargetProxy",
    "check_target_proxies",
    "find_target_proxies",
    "validate_table",
    "write_manifest",
    "write_images",
    "__version__",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

# the 0.1.0 module paths (``sklearn_medprep._combat``), which pickles of 0.1.0
# estimators name, import the new modules for one release, with a FutureWarning
install_legacy_paths()
