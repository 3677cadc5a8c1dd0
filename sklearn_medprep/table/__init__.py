"""The subject table: checks, image validation and CSV manifests."""

from ..utils._lazy import lazy_exports

_LAZY = {
    "TargetProxy": "._proxy",
    "check_target_proxies": "._proxy",
    "find_target_proxies": "._proxy",
    "read_manifest": "._manifest",
    "validate_table": "._validate",
    "write_manifest": "._manifest",
}

__all__ = [
    "TargetProxy",
    "check_target_proxies",
    "find_target_proxies",
    "read_manifest",
    "validate_table",
    "write_manifest",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
