"""Quality control: site effects after harmonization, cohort and leakage audits."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "plot_harmonization": "._plot",
    "site_effect_report": "._site_effects",
    "site_predictability": "._site_predictability",
    "SitePredictability": "._site_predictability",
    "plot_voxel_site_effects": "._voxel",
    "voxel_site_effect_maps": "._voxel",
    "plot_pca_by_site": "._plot",
    "plot_site_effects": "._plot",
    "plot_site_features": "._plot",
    "CohortReport": "._cohort_report",
    "cohort_report": "._cohort_report",
    "LeakageAudit": "._leakage",
    "audit_leakage": "._leakage",
    "plot_subjects": "._montage",
    "plot_preprocessing": "._montage",
    "plot_augmentations": "._montage",
}

__all__ = [
    "CohortReport",
    "LeakageAudit",
    "audit_leakage",
    "SitePredictability",
    "cohort_report",
    "plot_harmonization",
    "plot_pca_by_site",
    "plot_site_effects",
    "plot_site_features",
    "plot_voxel_site_effects",
    "site_effect_report",
    "site_predictability",
    "voxel_site_effect_maps",
    "plot_subjects",
    "plot_preprocessing",
    "plot_augmentations",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
