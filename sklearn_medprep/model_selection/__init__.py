"""Site-aware cross-validation splitters."""

from ._split import LeaveOneSiteOut, SiteStratifiedKFold

__all__ = [
    "LeaveOneSiteOut",
    "SiteStratifiedKFold",
]
