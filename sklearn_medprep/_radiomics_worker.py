"""Per-image radiomics work, run in joblib (loky or dask) workers.

One call handles one row of the subject table: load image and mask, check them
(readable, same geometry, label present), crop to the mask's bounding box where
that is exact (see :func:`~sklearn_medprep._radiomics_settings.crop_margin`),
extract with a PyRadiomics extractor built once per worker process, and return
plain Python floats. The extraction itself is the one function wrapped by
``joblib.Memory``, keyed on image and mask *content*, label and settings.

A worker never raises: it returns ``("ok", names, values)`` or ``("error",
column, file, message, kind)`` so that errors cross process boundaries intact and
the estimator decides, in row order, whether to raise or write NaN.
"""

import json
import logging
import os
import traceback

import numpy as np
import SimpleITK as sitk

from ._ibsi import apply_ibsi_definitions
from ._io import describe_cell, image_fingerprint, to_sitk
from ._radiomics_crop import CropPlan, crop_plan
from ._radiomics_settings import RADIOMICS_LOCK, crop_margin
from .exceptions import GeometryMismatchError, ImageReadError, SubjectTableError

__all__ = ["count_extractions", "extract_row", "EXTRACTION_LOG"]

#: Name of the file, inside a ``joblib.Memory`` location, where every actual
#: (non-cached) extraction appends one line; see :func:`count_extractions`.
EXTRACTION_LOG = "sklearn_medprep_radiomics_extractions.log"

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
    """Run PyRadiomics on one (image, mask); the function joblib.Memory caches.

    ``image_key`` and ``mask_key`` (content fingerprints), ``label``, ``key``
    (the settings) and ``versions`` (PyRadiomics, SimpleITK, numpy) make the
    cache key; ``image``, ``mask``, ``margin``, ``verbose`` and ``log_file`` are
    ignored by the cache.
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
    memory : joblib.Memory or None
        Cache of the extraction.
    verbose : int
        PyRadiomics prints warnings when ``verbose > 1``.

    Returns
    -------
    tuple
        ``("ok", [(name, value), ...])`` or
        ``("error", column, file, message, kind)``.
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
    images = {}
    for column, cell in ((image_column, image_cell), (mask_column, mask_cell)):
        try:
            images[column] = to_sitk(cell, column=column)
        except ImageReadError as exc:
            return ("error", column, exc.file or describe_cell(cell),
                    exc.bare_message, "read")
    image, mask = images[image_column], images[mask_column]
    spec = json.loads(key)
    params = spec["params"]
    if memory is not None:
        _cache_log_file(memory)  # a cache problem is not the row's fault: raise it
    try:
        mask, check, error = _check_mask(image, mask, label, params, mask_file)
        if error is not None:
            return error[:1] + (mask_column,) + error[2:]
        margin = None
        if check is not None:
            margin = crop_margin(params, include_diagnostics=spec["diagnostics"])
            if margin is None:
                margin = crop_plan(params, include_diagnostics=spec["diagnostics"])
        if memory is None:
            values = _extract(image, mask, label, key, margin, verbose)
        else:
            cached = memory.cache(
                _extract, ignore=["image", "mask", "margin", "verbose", "log_file"]
            )
            log_file = _cache_log_file(memory)
            values = cached(
                image, mask, label, key, margin, verbose,
                image_key=image_fingerprint(image),
                mask_key=image_fingerprint(mask),
                versions=_versions(),
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
    return ("ok", values)


def _cache_log_file(memory):
    """Create the cache folder if needed; return the extraction log's path."""
    location = getattr(memory, "location", None)
    if location is None:
        return None
    try:
        os.makedirs(location, exist_ok=True)
    except OSError as exc:
        raise OSError(
            f"cannot use the radiomics cache folder {str(location)!r} ({exc}); "
            "a fitted extractor loaded on another machine keeps the cache path it "
            "was fitted with: set_params(memory=None) or a writable folder"
        ) from exc
    return os.path.join(location, EXTRACTION_LOG)


def count_extractions(memory):
    """Return how many extractions actually ran (cache misses) in ``memory``.

    Every process that extracts appends one line to a log kept inside the cache
    folder, so the count covers loky and dask workers alike.

    Parameters
    ----------
    memory : str, pathlib.Path or joblib.Memory
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
    location = getattr(memory, "location", memory)
    if location is None:
        return 0
    path = os.path.join(os.fspath(location), EXTRACTION_LOG)
    if not os.path.exists(path):
        return 0
    with open(path) as handle:
        return sum(1 for line in handle if line.strip())
