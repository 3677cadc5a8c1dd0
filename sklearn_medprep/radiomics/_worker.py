"""Per-image radiomics work, run in joblib (loky or dask) workers.

One call handles one row of the subject table: load image and mask, check them
(readable, same geometry, label present), crop to the mask's bounding box where
that is exact (see :func:`~sklearn_medprep.radiomics._settings.crop_margin`),
extract with a backend (:mod:`sklearn_medprep.radiomics._backend`; PyRadiomics
by default, its extractor built once per worker process), and return plain
Python floats. With a cache (:mod:`sklearn_medprep.radiomics._cache`), the features
are keyed on image and mask *content*, label, settings and versions; for paths
whose file identity is unchanged since they were last hashed, a hit reads no
image at all. Non-finite voxels inside the ROI are an error of the image column.

A worker never raises: it returns a
:class:`~sklearn_medprep.radiomics._backend.RowResult` (features, or an error
naming column, file, message and kind) so that errors cross process boundaries
intact and the estimator decides, in row order, whether to raise or write NaN.
:func:`lookup_row` serves a row from the cache only (no image read, no
extraction), so that the estimator answers hits in its own process and sends
only misses to workers.
"""

import json
import os
import traceback

import numpy as np
import SimpleITK as sitk

from ..exceptions import ImageReadError
from ..io._deferred_source import deferred_reader
from ..io._geometry import geometry_of, geometry_problem
from ..io._integrity import count_nonfinite
from ..io._read import _is_missing, describe_cell, image_fingerprint, to_sitk
from ._backend import RowResult, get_backend, log_extraction
from ._cache import EXTRACTION_LOG, as_feature_cache, file_identity
from ._crop import crop_plan
from ._settings import crop_margin

__all__ = ["count_extractions", "extract_row", "lookup_row", "EXTRACTION_LOG"]


def _versions(backend=None):
    return (backend or get_backend()).versions()


def _geometry_problem(image, mask, tolerance):
    # the one rule of "same geometry" (SimpleITK's, as PyRadiomics checks it)
    return geometry_problem(geometry_of(image), geometry_of(mask), tolerance=tolerance)


_INTEGER_PIXELS = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
    sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64,
}


def _check_mask(image, mask, label, params, mask_file):
    """Check geometry and label; return (mask, margin, failed RowResult or None).

    The failure blames the column ``"mask"``; the caller renames it.
    """
    options = params.get("setting", {})
    correct = bool(options.get("correctMask", False))
    tolerance = options.get("geometryTolerance")
    if tolerance is None:
        tolerance = sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance()
    if mask.GetNumberOfComponentsPerPixel() != 1:
        # segmentation object: PyRadiomics selects ``label_channel`` itself
        return mask, None, None
    problem = _geometry_problem(image, mask, tolerance)
    if problem is not None:
        if correct:  # PyRadiomics resamples the mask onto the image grid
            return mask, None, None
        return mask, None, RowResult.failure(
            "mask", mask_file, f"image and mask differ in geometry: {problem}",
            "geometry",
        )
    if mask.GetPixelID() not in _INTEGER_PIXELS:
        mask = sitk.Cast(mask, sitk.sitkUInt32)  # what PyRadiomics does
    array = sitk.GetArrayViewFromImage(mask)
    if not (array == label).any():
        labels = np.unique(array)
        labels = labels[labels != 0].tolist()
        message = (
            "mask is empty (no voxel is labelled)" if not labels else
            f"label {label} is not present in the mask; it holds labels {labels}"
        )
        return mask, None, RowResult.failure("mask", mask_file, message, "table")
    return mask, "check", None


def _source_key(cache, cell):
    """Content key of a cell without running any preprocessing (see _deferred)."""
    reader = deferred_reader(cell)
    if reader is not None:
        return reader.content_key(lambda source, _: _source_key(cache, source))
    identity = None
    if isinstance(cell, (str, os.PathLike)) and not _is_missing(cell):
        identity = file_identity(cell)
        key = cache.known_key(identity)
        if key is not None:
            return key
    return _content_key(cache, cell, to_sitk(cell), identity)


def _known_source_key(cache, cell):
    """Content key of a cell if it is known without reading any image, else None.

    In-memory images and files not hashed before are left to the worker that
    reads them (hashing them here would read every image twice, serially).
    """
    reader = deferred_reader(cell)
    if reader is not None:
        if any(_known_source_key(cache, c) is None for c in reader.row.cells):
            return None
        return reader.content_key(lambda source, _: _source_key(cache, source))
    if isinstance(cell, (str, os.PathLike)) and not _is_missing(cell):
        return cache.known_key(file_identity(cell))
    return None


def _content_key(cache, cell, image, identity):
    """Return the content key of a read image; remember it for a path's identity."""
    key = image_fingerprint(image)
    if identity is not None:
        try:
            cache.record_key(identity, key)
        except OSError:
            pass  # a read-only index only costs a re-hash next time
    return key


_TOOL = {"pyradiomics": "PyRadiomics"}


def _label(label, mask_column, mask_file):
    """Return (int label, None) or (None, failed RowResult)."""
    try:
        if isinstance(label, (bool, np.bool_)) or float(label) != int(label):
            raise ValueError
        return int(label), None
    except (TypeError, ValueError, OverflowError):
        return None, RowResult.failure(
            mask_column, mask_file, f"label must be an integer, got {label!r}",
            "table",
        )


def _known_keys(cache, cells):
    """Content keys known without reading an image: ``(keys, identities)``.

    ``cells`` is ``[(column, cell), ...]``; a path's key comes from its file
    identity, a deferred image's from its source's keys. Raises
    :class:`ImageReadError` (with ``column`` set) for a deferred image whose
    source cannot be read.
    """
    keys, identities = {}, {}
    for column, cell in cells:
        if isinstance(cell, (str, os.PathLike)) and not _is_missing(cell):
            identities[column] = file_identity(cell)
            keys[column] = cache.known_key(identities[column])
        elif deferred_reader(cell) is not None:
            try:
                keys[column] = _source_key(cache, cell)
            except ImageReadError as exc:
                exc.column = column
                raise
    return keys, identities


def lookup_row(image_cell, mask_cell, label, key, *, memory, image_column="image",
               mask_column="mask", backend="pyradiomics"):
    """Serve one row from the cache only: a ``RowResult`` on a clean hit, else None.

    Nothing is read but file metadata, the cache's index and the entry (no
    image: a cell whose content key is not known yet, e.g. an in-memory image,
    is a miss here); a miss, a bad entry or any problem returns None and is
    left to :func:`extract_row` (which reports it).

    Parameters
    ----------
    image_cell, mask_cell, label, key, image_column, mask_column, backend
        As in :func:`extract_row`.
    memory : FeatureCache
        The cache (its folder prepared by the caller).

    Returns
    -------
    RowResult or None
    """
    label, failed = _label(label, mask_column, None)
    if failed is not None:
        return None
    try:
        keys = {column: _known_source_key(memory, cell) for column, cell in
                ((image_column, image_cell), (mask_column, mask_cell))}
    except (ImageReadError, OSError):
        return None
    if not (keys[image_column] and keys[mask_column]):
        return None
    notes = []
    values = memory.get(
        memory.entry_key(keys[image_column], keys[mask_column], label, key,
                         _versions(get_backend(backend))),
        notes,
    )
    if values is None or notes:
        return None
    return RowResult.success(values)


def extract_row(image_cell, mask_cell, label, key, *, image_column="image",
                mask_column="mask", memory=None, verbose=0,
                backend="pyradiomics"):
    """Extract the features of one row; never raises (see the module docstring).

    Parameters
    ----------
    image_cell, mask_cell : object
        Cells of the subject table (path or in-memory image).
    label : int
        Label of the ROI in the mask.
    key : str
        Canonical settings text from
        :func:`~sklearn_medprep.radiomics._settings.settings_key`.
    image_column, mask_column : str
        Column names, for error records.
    memory : FeatureCache or None
        Cache of the features (see :mod:`sklearn_medprep.radiomics._cache`).
    verbose : int
        PyRadiomics prints warnings when ``verbose > 1``.
    backend : str, default="pyradiomics"
        Name of a registered
        :class:`~sklearn_medprep.radiomics._backend.RadiomicsBackend`.

    Returns
    -------
    RowResult
        ``ok`` with ``[(name, value), ...]`` and ``notes`` (cache warnings to
        re-issue), or an error with column, file, message and kind.
    """
    image_file = describe_cell(image_cell)
    mask_file = describe_cell(mask_cell)
    label, failed = _label(label, mask_column, mask_file)
    if failed is not None:
        return failed
    engine = get_backend(backend)
    cache = as_feature_cache(memory)
    notes = []
    identities = {}
    keys = {}
    cells = ((image_column, image_cell), (mask_column, mask_cell))
    if cache is not None:
        cache.prepare()  # a cache problem is not the row's fault: raise it
        versions = _versions(engine)
        try:
            keys, identities = _known_keys(cache, cells)
        except ImageReadError as exc:
            return RowResult.failure(
                exc.column, exc.file or describe_cell(dict(cells)[exc.column]),
                exc.bare_message, "read",
            )
        if keys.get(image_column) and keys.get(mask_column):
            tried = cache.entry_key(keys[image_column], keys[mask_column], label,
                                    key, versions)
            values = cache.get(tried, notes)
            if values is not None:  # a hit: no image is read
                return RowResult.success(values, notes)
    images = {}
    for column, cell in cells:
        try:
            images[column] = to_sitk(cell, column=column)
        except ImageReadError as exc:
            return RowResult.failure(column, exc.file or describe_cell(cell),
                                     exc.bare_message, "read")
    image, mask = images[image_column], images[mask_column]
    entry = tried = None
    if cache is not None:
        for column in (image_column, mask_column):
            if not keys.get(column):
                keys[column] = _content_key(
                    cache, None, images[column], identities.get(column)
                )
        entry = cache.entry_key(keys[image_column], keys[mask_column], label, key,
                                versions)
        values = None if entry == tried else cache.get(entry, notes)
        if values is not None:
            return RowResult.success(values, notes)
    spec = json.loads(key)
    params = spec["params"]
    try:
        mask, check, failed = _check_mask(image, mask, label, params, mask_file)
        if failed is not None:
            return RowResult.failure(mask_column, failed.file, failed.message,
                                     failed.kind)
        bad = count_nonfinite(image, mask, label)
        if bad:
            where = (f"inside the ROI (label {label})"
                     if mask.GetSize() == image.GetSize() else "in the image")
            return RowResult.failure(
                image_column, image_file,
                f"{bad} non-finite (NaN or infinite) voxel(s) {where}; "
                "PyRadiomics would use them silently: fix the image or "
                "leave those voxels out of the mask", "read",
            )
        margin = None
        if check is not None:
            margin = crop_margin(params, include_diagnostics=spec["diagnostics"])
            if margin is None:
                margin = crop_plan(params, include_diagnostics=spec["diagnostics"])
        values = engine.extract(image, mask, label, key, margin, verbose)
        if cache is not None:
            log_extraction(cache.log_file, keys.get(image_column),
                           keys.get(mask_column), label)
    except Exception as exc:  # noqa: BLE001 - reported with row, column and file
        message = str(exc).strip() or type(exc).__name__
        if "geometry mismatch" in message or "size mismatch" in message:
            return RowResult.failure(mask_column, mask_file, message, "geometry")
        if verbose > 2:
            message += "\n" + traceback.format_exc()
        return RowResult.failure(
            mask_column, mask_file,
            f"{_TOOL.get(engine.name, engine.name)} failed "
            f"({type(exc).__name__}): {message}; image "
            f"file {image_file!r}", "table",
        )
    if entry is not None:
        try:
            cache.put(entry, values)
        except OSError as exc:
            notes.append(f"radiomics cache entry not written ({exc})")
    return RowResult.success(values, notes)


def count_extractions(memory):
    """Return how many extractions actually ran (cache misses) in ``memory``.

    Every process that extracts appends one line to a log kept inside the cache
    folder, so the count covers loky and dask workers alike.

    Parameters
    ----------
    memory : str, pathlib.Path, joblib.Memory or FeatureCache
        The cache given to ``RadiomicsExtractor(memory=...)``.

    Returns
    -------
    int

    Examples
    --------
    >>> from sklearn_medprep.utils import count_extractions
    >>> count_extractions("no-such-cache-folder")
    0
    """
    cache = as_feature_cache(memory)
    if cache is None:
        return 0
    path = cache.log_file
    if not os.path.exists(path):
        return 0
    with open(path) as handle:
        return sum(1 for line in handle if line.strip())
