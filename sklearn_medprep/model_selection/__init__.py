"""Site-aware cross-validation splitters."""

__all__ = []
