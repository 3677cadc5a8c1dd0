"""Radiomics backends: one row in, named features out, a typed result record.

:class:`~sklearn_medprep.RadiomicsExtractor` never calls PyRadiomics itself. Its
rows go through :func:`~sklearn_medprep.radiomics._worker.extract_row`, which
reads and checks image and mask, serves the cache and, on a miss, asks a
:class:`RadiomicsBackend` for the features of one (image, mask, label). Every
row comes back as a :class:`RowResult`: ``ok`` with its ``[(name, value),
...]``, or an error naming column, file, message and kind, so that errors cross
process boundaries intact and the estimator decides, in row order, whether to
raise or write NaN.

A new extractor (an IBSI-strict one, a GPU one) is a subclass of
:class:`RadiomicsBackend` registered with :func:`register_backend`; the
estimator, the cache and the checks do not change. The backend's
:meth:`~RadiomicsBackend.versions` enter the cache keys, so features of two
backends never mix.
"""

import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..exceptions import GeometryMismatchError, ImageReadError, SubjectTableError
from ._crop import CropPlan
from ._ibsi import apply_ibsi_definitions
from ._settings import RADIOMICS_LOCK

__all__ = [
    "RowResult",
    "RadiomicsBackend",
    "PyRadiomicsBackend",
    "get_backend",
    "register_backend",
]

_ERROR_KINDS = {
    "read": ImageReadError,
    "geometry": GeometryMismatchError,
    "table": SubjectTableError,
}


def error_class(kind):
    """Return the exception class of an error record's ``kind``."""
    return _ERROR_KINDS.get(kind, SubjectTableError)


@dataclass(frozen=True)
class RowResult:
    """What extracting one row gave: features, or an error naming where.

    Parameters
    ----------
    ok : bool
        True when ``values`` holds the row's features.
    values : list of (str, object)
        Feature names and values (floats; diagnostics as they come).
    notes : tuple of str
        Warnings to re-issue in the estimator's process (e.g. a cache entry
        ignored).
    column, file, message : str or None
        For an error: the column to blame, its file (or None for an in-memory
        image) and what went wrong.
    kind : {"read", "geometry", "table"} or None
        For an error: which exception it becomes (:func:`error_class`).
    """

    ok: bool
    values: list = field(default_factory=list)
    notes: tuple = ()
    column: str = None
    file: str = None
    message: str = None
    kind: str = None

    @classmethod
    def success(cls, values, notes=()):
        """A row extracted (or served from the cache)."""
        return cls(True, values=values, notes=tuple(notes))

    @classmethod
    def failure(cls, column, file, message, kind="table"):
        """A row that failed, blaming ``column`` and ``file``."""
        return cls(False, column=column, file=file, message=message, kind=kind)

    def exception(self, row):
        """The exception of an error result, naming ``row``."""
        return error_class(self.kind)(self.message, row=row, column=self.column,
                                      file=self.file)


class RadiomicsBackend:
    """How the features of one checked (image, mask, label) are computed.

    Subclasses set :attr:`name` and implement :meth:`extract` (and
    :meth:`versions` when other libraries decide the values). Image and mask
    arrive as SimpleITK images that :func:`extract_row` has already read and
    checked: same geometry, label present, no non-finite voxel in the ROI.
    """

    name = None

    def versions(self):
        """Versions the values depend on (part of every cache key)."""
        return (self.name, sitk.Version.VersionString(), np.__version__)

    def extract(self, image, mask, label, key, margin, verbose):
        """Return ``[(name, value), ...]`` for one row; may raise.

        Parameters
        ----------
        image, mask : SimpleITK.Image
        label : int
        key : str
            Canonical settings text
            (:func:`~sklearn_medprep.radiomics._settings.settings_key`).
        margin : int, CropPlan or None
            Exact crop margin for these settings (None: no crop).
        verbose : int
        """
        raise NotImplementedError


_EXTRACTORS = {}  # per process: settings key -> RadiomicsFeatureExtractor


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


class PyRadiomicsBackend(RadiomicsBackend):
    """PyRadiomics' ``RadiomicsFeatureExtractor``, built once per settings and
    process, on the exact crop around the ROI (filtered types each on its own
    region, see :mod:`sklearn_medprep.radiomics._crop`); with
    ``settings="ibsi"``, IBSI's definitions where PyRadiomics differs.
    """

    name = "pyradiomics"

    def versions(self):
        import radiomics

        # the same tuple as before the backend interface: existing caches hit
        return (radiomics.__version__, sitk.Version.VersionString(), np.__version__)

    def extract(self, image, mask, label, key, margin, verbose):
        extractor = _get_extractor(key, verbose)
        if isinstance(margin, CropPlan):  # filtered image types, each on its region
            result = margin.execute(extractor, image, mask, int(label))
        else:
            if margin is not None:
                image, mask = _crop(image, mask, label, margin)
            result = extractor.execute(image, mask, label=int(label))
        values = [(name, _plain(value)) for name, value in result.items()]
        if json.loads(key).get("definitions") == "ibsi":
            n_voxels = int((sitk.GetArrayViewFromImage(mask) == label).sum())
            values = apply_ibsi_definitions(values, n_voxels)
        return values


_BACKENDS = {"pyradiomics": PyRadiomicsBackend()}


def register_backend(backend):
    """Make ``backend`` (a :class:`RadiomicsBackend` instance) available by name.

    It must be importable in worker processes too: register it at import time
    of the module that defines it.
    """
    if not isinstance(backend, RadiomicsBackend) or not backend.name:
        raise TypeError("a backend is a named RadiomicsBackend instance")
    _BACKENDS[backend.name] = backend


def get_backend(name="pyradiomics"):
    """Return the registered backend called ``name``."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown radiomics backend {name!r}; registered: {sorted(_BACKENDS)}"
        ) from None


def log_extraction(log_file, image_key, mask_key, label):
    """Append one line per actual extraction to the cache's log."""
    if log_file is not None:
        with open(log_file, "a") as handle:
            handle.write(f"{image_key} {mask_key} {label} {os.getpid()}\n")
