"""Utilities: estimator discovery and the library's own estimator checks."""

from .discovery import all_estimators

__all__ = ["all_estimators"]
