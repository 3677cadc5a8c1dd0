"""Image I/O: reading image cells with integrity checks; the one safe writer.

Cells are paths or in-memory images; every file the library writes goes
through :func:`write_atomically` (whole under its name, or nothing).
"""

from ..utils._lazy import lazy_exports

_LAZY = {
    "load_image": "._read",
    "StagedFile": "._write",
    "commit_all": "._write",
    "discard_tagged": "._write",
    "file_mode": "._write",
    "full_suffix": "._write",
    "output_names": "._targets",
    "pwrite_all": "._write",
    "refuse_inputs": "._targets",
    "stage_file": "._write",
    "write_atomically": "._write",
    "file_sha256": "._save",
    "stage_image": "._save",
    "write_images": "._save",
}

__all__ = [
    "load_image",
    "StagedFile",
    "commit_all",
    "discard_tagged",
    "file_mode",
    "full_suffix",
    "output_names",
    "pwrite_all",
    "refuse_inputs",
    "stage_file",
    "write_atomically",
    "file_sha256",
    "stage_image",
    "write_images",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
