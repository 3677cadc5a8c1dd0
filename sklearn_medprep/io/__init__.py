"""Image I/O: reading image cells (paths or in-memory images) with integrity checks."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "load_image": "._read",
}

__all__ = [
    "load_image",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
