"""Utilities: estimator discovery, extraction counts and the library's own checks."""

from .._radiomics_worker import count_extractions
from .discovery import all_estimators

__all__ = ["all_estimators", "count_extractions"]
