"""ComBat and its variants: harmonization of feature tables and of voxels."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "ComBatHarmonizer": "._combat",
    "CovBatHarmonizer": "._covbat",
    "LongitudinalComBatHarmonizer": "._longitudinal",
    "QuantileComBatHarmonizer": "._quantile_combat",
    "VoxelComBatHarmonizer": "._voxel_combat",
}

__all__ = [
    "ComBatHarmonizer",
    "CovBatHarmonizer",
    "LongitudinalComBatHarmonizer",
    "QuantileComBatHarmonizer",
    "VoxelComBatHarmonizer",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
