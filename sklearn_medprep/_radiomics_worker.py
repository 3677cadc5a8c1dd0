"""Per-image radiomics work, run in joblib (loky or dask) workers.

One call handles one row of the subject table: load image and mask, check them
(readable, same geometry, label present), crop to the mask's bounding box where
that is exact (see :func:`~sklearn_medprep._radiomics_settings.crop_margin`),
extract with a PyRadiomics extractor built once per worker process, and return
plain Python floats. With a cache (:mod:`sklearn_medprep._cache`), the features
are keyed on image and mask *content*, label, settings and versions; for paths
whose file identity is unchanged since they were last hashed, a hit reads no
image at all. Non-finite voxels inside the ROI are an error of the image column.

A worker never raises: it returns ``("ok", values, notes)`` or ``("error",
column, file, message, kind)`` so that errors cross process boundaries intact and
the estimator decides, in row order, whether to raise or write NaN.
"""

import json
import logging
import os
import traceback

import numpy as np
import SimpleITK as sitk

from ._cache import EXTRACTION_LOG, as_feature_cache, file_identity
from ._deferred import deferred_reader
from ._ibsi import apply_ibsi_definitions
from ._integrity import count_nonfinite
from ._io import _is_missing, describe_cell, image_fingerprint, to_sitk
from ._radiomics_crop import CropPlan, crop_plan
from ._radiomics_settings import RADIOMICS_LOCK, crop_margin
from .exceptions import GeometryMismatchError, ImageReadError, SubjectTableError

__all__ = ["count_extractions", "extract_row", "EXTRACTION_LOG"]


_EXTRACTORS = {}  # per process: settings key -> RadiomicsFeatureExtractor

_ERROR_KINDS = {
    "read": ImageReadError,
    "geometry": GeometryMismatchError,
    "table": SubjectTableError,
}


def error_class(kind):
    """Return the exception class of an error record's ``kind``."""
    return _ERROR_KINDS.get(kind, SubjectTableError)


def _get_extractor(key, verbose):
    """Build (once per process, under a lock) the PyRadiomics extractor of ``key``."""
    extractor = _EXTRACTORS.get(key)
    if extractor is not None:
        return extractor
    with RADIOMICS_LOCK:
        extractor = _EXTRACTORS.get(key)
        if extractor is None:
            import radiomics
            from radiomics.featureextractor import RadiomicsFeatureExtractor

            radiomics.setVerbosity(logging.WARNING if verbose > 1 else logging.ERROR)
            spec = json.loads(key)
            params = spec["params"]
            params.setdefault("setting", {})
            params["setting"]["additionalInfo"] = bool(spec["diagnostics"])
            extractor = RadiomicsFeatureExtractor(params)
            _EXTRACTORS[key] = extractor
    return extractor


def _plain(value):
    """Return a feature value as a Python float (complex with zero imaginary part
    under numpy >= 2.5 included); other diagnostics values unchanged.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        if value.size != 1:
            return value
        value = value.item()
    if isinstance(value, complex):
        return float(value.real)
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def _versions():
    import radiomics

    return (radiomics.__version__, sitk.Version.VersionString(), np.__version__)


def _extract(image, mask, label, key, margin, verbose, image_key=None,
             mask_key=None, versions=None, log_file=None):
    """Run PyRadiomics on one (image, mask); log it to ``log_file`` if given.

    ``image_key`` and ``mask_key`` (content fingerprints) are written to the log;
    ``versions`` is unused (kept for call compatibility).
    """
    extractor = _get_extractor(key, verbose)
    if isinstance(margin, CropPlan):  # filtered image types, each on its region
        result = margin.execute(extractor, image, mask, int(label))
    else:
        if margin is not None:
            image, mask = _crop(image, mask, label, margin)
        result = extractor.execute(image, mask, label=int(label))
    if log_file is not None:
        with open(log_file, "a") as handle:
            handle.write(f"{image_key} {mask_key} {label} {os.getpid()}\n")
    values = [(name, _plain(value)) for name, value in result.items()]
    if json.loads(key).get("definitions") == "ibsi":
        n_voxels = int((sitk.GetArrayViewFromImage(mask) == label).sum())
        values = apply_ibsi_definitions(values, n_voxels)
    return values


def _bounding_box(mask_array, label):
    """Return ``[(lo, hi), ...]`` in array (z, y, x) order of ``mask == label``."""
    roi = mask_array == label
    bounds = []
    for axis in range(roi.ndim):
        other = tuple(a for a in range(roi.ndim) if a != axis)
        hit = np.flatnonzero(roi.any(axis=other))
        if hit.size == 0:
            return None
        bounds.append((int(hit[0]), int(hit[-1])))
        # later axes only need the slab already found
        index = [slice(None)] * roi.ndim
        index[axis] = slice(hit[0], hit[-1] + 1)
        roi = roi[tuple(index)]
    return bounds


def _crop(image, mask, label, margin):
    """Crop image and mask to the label's bounding box plus ``margin`` voxels."""
    bounds = _bounding_box(sitk.GetArrayViewFromImage(mask), label)
    if bounds is None:
        return image, mask
    size = mask.GetSize()  # (x, y, z)
    index = []
    for dim, (lo, hi) in enumerate(reversed(bounds)):
        index.append(slice(max(lo - margin, 0), min(hi + margin + 1, size[dim])))
    index = tuple(index)
    return image[index], mask[index]


def _geometry_problem(image, mask, tolerance):
    if image.GetDimension() != mask.GetDimension():
        return f"dimension {image.GetDimension()} vs {mask.GetDimension()}"
    if image.GetSize() != mask.GetSize():
        return f"size {image.GetSize()} vs {mask.GetSize()}"
    spacing = np.asarray(image.GetSpacing())
    coordinate_tol = tolerance * abs(spacing[0])
    for name, a, b, tol in (
        ("spacing", image.GetSpacing(), mask.GetSpacing(), coordinate_tol),
        ("origin", image.GetOrigin(), mask.GetOrigin(), coordinate_tol),
        ("direction", image.GetDirection(), mask.GetDirection(), tolerance),
    ):
        if not np.allclose(a, b, rtol=0, atol=tol):
            return (
                f"{name} {np.round(a, 6).tolist()} vs {np.round(b, 6).tolist()}"
            )
    return None


_INTEGER_PIXELS = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
    sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64,
}


def _check_mask(image, mask, label, params, mask_file):
    """Check geometry and label; return (mask, margin, error record or None)."""
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
        return mask, None, (
            "error", "mask", mask_file,
            f"image and mask differ in geometry: {problem}", "geometry",
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
        return mask, None, ("error", "mask", mask_file, message, "table")
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


def _content_key(cache, cell, image, identity):
    """Return the content key of a read image; remember it for a path's identity."""
    key = image_fingerprint(image)
    if identity is not None:
        try:
            cache.record_key(identity, key)
        except OSError:
            pass  # a read-only index only costs a re-hash next time
    return key


def extract_row(image_cell, mask_cell, label, key, *, image_column="image",
                mask_column="mask", memory=None, verbose=0):
    """Extract the features of one row; never raises (see the module docstring).

    Parameters
    ----------
    image_cell, mask_cell : object
        Cells of the subject table (path or in-memory image).
    label : int
        Label of the ROI in the mask.
    key : str
        Canonical settings text from
        :func:`~sklearn_medprep._radiomics_settings.settings_key`.
    image_column, mask_column : str
        Column names, for error records.
    memory : FeatureCache or None
        Cache of the features (see :mod:`sklearn_medprep._cache`).
    verbose : int
        PyRadiomics prints warnings when ``verbose > 1``.

    Returns
    -------
    tuple
        ``("ok", [(name, value), ...], notes)`` (``notes``: cache warnings to
        re-issue) or ``("error", column, file, message, kind)``.
    """
    image_file = describe_cell(image_cell)
    mask_file = describe_cell(mask_cell)
    try:
        if isinstance(label, (bool, np.bool_)) or float(label) != int(label):
            raise ValueError
        label = int(label)
    except (TypeError, ValueError, OverflowError):
        return ("error", mask_column, mask_file,
                f"label must be an integer, got {label!r}", "table")
    cache = as_feature_cache(memory)
    notes = []
    identities = {}
    keys = {}
    if cache is not None:
        cache.prepare()  # a cache problem is not the row's fault: raise it
        versions = _versions()
        for column, cell in ((image_column, image_cell), (mask_column, mask_cell)):
            if isinstance(cell, (str, os.PathLike)) and not _is_missing(cell):
                identities[column] = file_identity(cell)
                keys[column] = cache.known_key(identities[column])
            elif deferred_reader(cell) is not None:
                try:
                    keys[column] = _source_key(cache, cell)
                except ImageReadError as exc:
                    return ("error", column, exc.file or describe_cell(cell),
                            exc.bare_message, "read")
        if keys.get(image_column) and keys.get(mask_column):
            tried = cache.entry_key(keys[image_column], keys[mask_column], label,
                                    key, versions)
            values = cache.get(tried, notes)
            if values is not None:  # a hit: no image is read
                return ("ok", values, notes)
    images = {}
    for column, cell in ((image_column, image_cell), (mask_column, mask_cell)):
        try:
            images[column] = to_sitk(cell, column=column)
        except ImageReadError as exc:
            return ("error", column, exc.file or describe_cell(cell),
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
            return ("ok", values, notes)
    spec = json.loads(key)
    params = spec["params"]
    try:
        mask, check, error = _check_mask(image, mask, label, params, mask_file)
        if error is not None:
            return error[:1] + (mask_column,) + error[2:]
        bad = count_nonfinite(image, mask, label)
        if bad:
            where = (f"inside the ROI (label {label})"
                     if mask.GetSize() == image.GetSize() else "in the image")
            return ("error", image_column, image_file,
                    f"{bad} non-finite (NaN or infinite) voxel(s) {where}; "
                    "PyRadiomics would use them silently: fix the image or "
                    "leave those voxels out of the mask", "read")
        margin = None
        if check is not None:
            margin = crop_margin(params, include_diagnostics=spec["diagnostics"])
            if margin is None:
                margin = crop_plan(params, include_diagnostics=spec["diagnostics"])
        log_file = None if cache is None else cache.log_file
        values = _extract(
            image, mask, label, key, margin, verbose,
            image_key=keys.get(image_column), mask_key=keys.get(mask_column),
            log_file=log_file,
        )
    except Exception as exc:  # noqa: BLE001 - reported with row, column and file
        message = str(exc).strip() or type(exc).__name__
        if "geometry mismatch" in message or "size mismatch" in message:
            return ("error", mask_column, mask_file, message, "geometry")
        if verbose > 2:
            message += "\n" + traceback.format_exc()
        return ("error", mask_column, mask_file,
                f"PyRadiomics failed ({type(exc).__name__}): {message}; image "
                f"file {image_file!r}", "table")
    if entry is not None:
        try:
            cache.put(entry, values)
        except OSError as exc:
            notes.append(f"radiomics cache entry not written ({exc})")
    return ("ok", values, notes)


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
