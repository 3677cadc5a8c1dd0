"""SHA-256 manifests of a folder of files, and checking a folder against one.

The backup rule: after a conversion (or a de-identification, or any export)
the folder's files are listed with their size and SHA-256 in a CSV manifest
written with the library's atomic writer; :func:`verify_manifest` re-checks
the folder later (after a copy, a restore from backup, years of storage) and
reports changed, missing and extra files.

Not to be confused with :func:`sklearn_medprep.write_manifest`, which writes a
subject table (rows and image paths) as CSV: a checksum manifest lists files.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..exceptions import SubjectTableError
from ..io._save import file_sha256
from ..io._write import write_atomically

__all__ = [
    "ManifestCheck",
    "checksum_manifest",
    "verify_manifest",
    "write_checksum_manifest",
]

_COLUMNS = ["file", "bytes", "sha256"]


def _files(folder, exclude=()):
    folder = Path(folder)
    excluded = {os.path.realpath(p) for p in exclude}
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if os.path.realpath(path) in excluded:
                continue
            out.append(path.relative_to(folder).as_posix())
    return out


def checksum_manifest(folder, *, exclude=()):
    """The checksum table of every file under ``folder`` (recursively).

    Parameters
    ----------
    folder : str or pathlib.Path
    exclude : iterable of path, default=()
        Files left out (the manifest itself).

    Returns
    -------
    pandas.DataFrame
        Columns ``file`` (relative POSIX path), ``bytes``, ``sha256``, sorted
        by file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {str(folder)!r}")
    rows = [(name, (folder / name).stat().st_size, file_sha256(folder / name))
            for name in _files(folder, exclude)]
    return pd.DataFrame(rows, columns=_COLUMNS).astype({"bytes": "int64"})


def write_checksum_manifest(folder, path=None):
    """Write the SHA-256 manifest of ``folder``'s files (CSV, atomically).

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder whose files are listed (recursively).
    path : str, pathlib.Path or None, default=None
        The manifest; None writes ``folder/manifest-sha256.csv``. A manifest
        inside ``folder`` does not list itself.

    Returns
    -------
    pathlib.Path
        The manifest written.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_medprep.dicom import write_checksum_manifest, verify_manifest
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "a.txt"), "w").write("abc")
    >>> manifest = write_checksum_manifest(folder)
    >>> verify_manifest(folder, manifest).ok
    True
    >>> _ = open(os.path.join(folder, "a.txt"), "w").write("abd")
    >>> verify_manifest(folder, manifest).changed
    ['a.txt']
    """
    path = Path(folder) / "manifest-sha256.csv" if path is None else Path(path)
    table = checksum_manifest(folder, exclude=[path])
    write_atomically(path, lambda tmp: table.to_csv(tmp, index=False))
    return path


@dataclass
class ManifestCheck:
    """What :func:`verify_manifest` found.

    Attributes
    ----------
    folder : str
        The folder checked.
    manifest : str
        The manifest it was checked against.
    changed : list of str
        Files whose size or SHA-256 differ from the manifest.
    missing : list of str
        Files in the manifest, absent from the folder.
    extra : list of str
        Files in the folder, absent from the manifest.
    n_checked : int
        Files of the manifest found and hashed.
    """

    folder: str
    manifest: str
    changed: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    n_checked: int = 0

    @property
    def ok(self):
        """True when nothing changed, is missing or extra."""
        return not (self.changed or self.missing or self.extra)

    def to_frame(self):
        """One row per file at fault: ``file`` and ``status``.

        Returns
        -------
        pandas.DataFrame
        """
        rows = ([(f, "changed") for f in self.changed]
                + [(f, "missing") for f in self.missing]
                + [(f, "extra") for f in self.extra])
        return pd.DataFrame(rows, columns=["file", "status"])

    def raise_if_failed(self):
        """Raise :class:`~sklearn_medprep.exceptions.SubjectTableError` unless ok.

        The message counts each kind and names the first file of each.
        """
        if self.ok:
            return
        parts = [f"{len(files)} {kind} (first {files[0]!r})"
                 for kind, files in (("changed", self.changed),
                                     ("missing", self.missing),
                                     ("extra", self.extra)) if files]
        first = (self.changed or self.missing or self.extra)[0]
        raise SubjectTableError(
            f"folder {self.folder!r} does not match its manifest "
            f"{self.manifest!r}: " + ", ".join(parts),
            file=str(Path(self.folder) / first),
        )


def verify_manifest(folder, manifest, *, errors="report"):
    """Re-check a folder against its SHA-256 manifest.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder (e.g. a restored backup).
    manifest : str or pathlib.Path
        A manifest from :func:`write_checksum_manifest` (columns ``file``,
        ``bytes``, ``sha256``). A manifest inside ``folder`` is not an extra
        file.
    errors : {"report", "raise"}, default="report"
        With "raise", a mismatch is a
        :class:`~sklearn_medprep.exceptions.SubjectTableError`.

    Returns
    -------
    ManifestCheck
        ``changed``, ``missing`` and ``extra`` files (relative paths),
        ``ok``, ``to_frame()``.
    """
    if errors not in ("report", "raise"):
        raise ValueError(f"errors must be 'report' or 'raise', got {errors!r}")
    folder, manifest = Path(folder), Path(manifest)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {str(folder)!r}")
    expected = pd.read_csv(manifest, dtype={"file": str, "sha256": str})
    if list(expected.columns) != _COLUMNS:
        raise SubjectTableError(
            f"not a checksum manifest: columns {list(expected.columns)}, "
            f"expected {_COLUMNS}", file=str(manifest),
        )
    present = set(_files(folder, exclude=[manifest]))
    check = ManifestCheck(str(folder), str(manifest))
    for name, size, digest in expected.itertuples(index=False):
        path = folder / name
        if name not in present:
            check.missing.append(name)
            continue
        check.n_checked += 1
        if path.stat().st_size != int(size) or file_sha256(path) != digest:
            check.changed.append(name)
    check.extra = sorted(present - set(expected["file"]))
    if errors == "raise":
        check.raise_if_failed()
    return check
