"""IBSI-2 convolutional filters on (z, y, x) arrays, and the phase-1 compliance table.

:func:`filter_image` computes a response map from a configuration shaped as
IBSI-2's configurations.json; :func:`ibsi2_phase1_table` compares every covered
phase-1 map with IBSI's reference. Built on numpy and scipy only.
"""

from ..utils._lazy import lazy_exports

_LAZY = {
    "filter_image": "._dispatch",
    "ibsi2_phase1_table": "._ibsi2",
}

__all__ = [
    "filter_image",
    "ibsi2_phase1_table",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
