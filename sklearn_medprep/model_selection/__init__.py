"""Site-aware cross-validation splitters."""

from ._group_split import SiteStratifiedGroupKFold
from ._split import LeaveOneSiteOut, SiteStratifiedKFold
from ._subjects import subject_overlap

__all__ = [
    "LeaveOneSiteOut",
    "SiteStratifiedGroupKFold",
    "SiteStratifiedKFold",
    "subject_overlap",
]
