"""Synthetic multi-site data shared by tests, examples and benchmarks."""

from ._cohort import make_multisite_cohort, make_xray_cohort
from ._dicom import make_dicom_cohort
from ._features import make_multisite_features
from ._texture import make_texture_cohort
from ._voxels import make_voxel_cohort

__all__ = [
    "make_multisite_features",
    "make_multisite_cohort",
    "make_xray_cohort",
    "make_voxel_cohort",
    "make_texture_cohort",
    "make_dicom_cohort",
]
