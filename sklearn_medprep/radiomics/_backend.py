"""Radiomics backends: the seam between the extractor and what computes features.

:class:`~sklearn_medprep.RadiomicsExtractor` never computes a feature itself.
Its ``backend`` parameter names a :class:`RadiomicsBackend` (or is one); the
estimator, the worker (:mod:`sklearn_medprep.radiomics._worker`: reading,
integrity checks, cache) and the cache are shared by every backend. Every row
comes back as a :class:`RowResult`: ``ok`` with its ``[(name, value), ...]``,
or an error naming column, file, message and kind, so that errors cross process
boundaries intact and the estimator decides, in row order, whether to raise or
write NaN.

Writing a backend
-----------------
Subclass :class:`RadiomicsBackend`, give it a unique :attr:`~RadiomicsBackend.name`
and implement :meth:`~RadiomicsBackend.extract` (one row) and/or
:meth:`~RadiomicsBackend.extract_batch` (many rows in one call, e.g. on a GPU).
The other methods have working defaults; override them where the backend
differs:

``validate_settings(settings)`` / ``settings_key(settings, include_diagnostics=)``
    Check and normalise the estimator's ``settings`` (``fit`` raises what this
    raises); the key is canonical text that enters every cache key and reaches
    ``extract`` as ``key``.
``versions()`` / ``cache_material(key)``
    What the values depend on. The default material holds the backend's name,
    so entries of two backends never mix in one cache folder.
``check_inputs(image, mask, label, key)``
    Geometry and label checks of one row's read images; returns the mask to
    use and whether cropping is allowed. Raise
    :class:`~sklearn_medprep.exceptions.GeometryMismatchError` or
    :class:`~sklearn_medprep.exceptions.SubjectTableError` (message only: the
    worker adds row, column and file).
``plan_crop(key)``
    An opaque crop plan passed to ``extract`` (None: no crop).
``check_feature_names(names, settings)``
    Refuse a fitted set of feature names (e.g. an enabled filter that gave
    none).

Errors are typed, never recognised by their text: from ``check_inputs``,
``extract`` or ``extract_batch``, a
:class:`~sklearn_medprep.exceptions.SubjectTableError` (or its subclasses
``ImageReadError``, ``GeometryMismatchError``) is the row's fault and is
reported as is (``column="image"`` on it blames the image column, otherwise the
mask); any other exception is reported as "<title> failed (<type>): ...".
``extract_batch`` returns one :class:`RowResult` per :class:`BatchRow`, in
order; a failure there may leave ``column`` (``"image"``/``"mask"``) and
``file`` to None, the worker fills them in.

Register an instance with :func:`register_backend` at import time of the module
that defines it (worker processes unpickle the instance, which imports that
module), then use ``RadiomicsExtractor(backend="<name>")``, or pass the instance
itself as ``backend``. When a backend defines ``extract_batch``, the estimator
sends it the cache misses of one call, in row order, instead of one joblib task
per row.
"""

import json
import os
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..exceptions import GeometryMismatchError, ImageReadError, SubjectTableError
from ..io._geometry import geometry_of
from ..io._geometry import geometry_problem as _geometry_rule
from ._cachefiles import append_line

__all__ = [
    "BatchRow",
    "RowResult",
    "RadiomicsBackend",
    "check_label",
    "error_class",
    "error_kind",
    "geometry_problem",
    "get_backend",
    "log_extraction",
    "register_backend",
    "registered_backends",
    "resolve_backend",
]

_ERROR_KINDS = {
    "read": ImageReadError,
    "geometry": GeometryMismatchError,
    "table": SubjectTableError,
}


def error_class(kind):
    """Return the exception class of an error record's ``kind``."""
    return _ERROR_KINDS.get(kind, SubjectTableError)


def error_kind(exc):
    """Return the ``kind`` of a typed error (read, geometry or table)."""
    if isinstance(exc, ImageReadError):
        return "read"
    if isinstance(exc, GeometryMismatchError):
        return "geometry"
    return "table"


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


@dataclass(frozen=True)
class BatchRow:
    """One checked row handed to :meth:`RadiomicsBackend.extract_batch`.

    Parameters
    ----------
    image, mask : SimpleITK.Image
        Read and checked (:meth:`RadiomicsBackend.check_inputs`).
    label : int
        Label of the ROI.
    plan : object
        The backend's :meth:`~RadiomicsBackend.plan_crop` for this row, or None
        where cropping is not allowed.
    """

    image: object
    mask: object
    label: int
    plan: object = None


_INTEGER_PIXELS = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
    sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64,
}


def geometry_problem(image, mask, tolerance):
    """Describe how image and mask differ in geometry, or return None.

    The one rule of "same geometry" (:mod:`sklearn_medprep.io._geometry`,
    SimpleITK's, as PyRadiomics checks it): ``tolerance`` is relative to the
    first spacing for spacing and origin and absolute for the direction cosines.
    """
    return _geometry_rule(geometry_of(image), geometry_of(mask), tolerance=tolerance)


def check_label(mask, label):
    """Return ``mask`` with integer voxels; raise if ``label`` is not in it.

    Raises
    ------
    SubjectTableError
        The mask is empty or holds other labels only (the message lists them).
    """
    if mask.GetPixelID() not in _INTEGER_PIXELS:
        mask = sitk.Cast(mask, sitk.sitkUInt32)
    array = sitk.GetArrayViewFromImage(mask)
    if not (array == label).any():
        labels = np.unique(array)
        labels = labels[labels != 0].tolist()
        raise SubjectTableError(
            "mask is empty (no voxel is labelled)" if not labels else
            f"label {label} is not present in the mask; it holds labels {labels}"
        )
    return mask


class RadiomicsBackend:
    """How the features of checked (image, mask, label) rows are computed.

    See the module docstring for how to write and register one. Image and mask
    arrive as SimpleITK images that the worker has read and checked: readable,
    :meth:`check_inputs` passed, no non-finite voxel in the ROI.

    Attributes
    ----------
    name : str
        Registry name (the estimator's ``backend``); part of the cache keys.
    title : str or None
        Name in error messages ("<title> failed ..."); None uses ``name``.
    extract_batch : callable or None
        None: rows are extracted one :meth:`extract` call per row (in joblib
        workers). A method ``extract_batch(rows, key, verbose)`` taking a list
        of :class:`BatchRow` and returning one :class:`RowResult` per row
        makes the estimator send it all cache misses of a call at once.
    """

    name = None
    title = None
    extract_batch = None

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash((type(self), self.name))

    @property
    def display_name(self):
        """The backend's name in messages."""
        return self.title or self.name

    def validate_settings(self, settings):
        """Return the validated, normalised ``settings`` (a dict); may raise.

        The default accepts None (no settings) or a mapping, copied.
        """
        if settings is None:
            return {}
        if isinstance(settings, dict):
            return json.loads(json.dumps(settings, default=str))
        raise TypeError(
            f"backend {self.name!r} takes settings as a dict or None, got "
            f"{type(settings).__name__}"
        )

    def settings_key(self, settings, *, include_diagnostics=False):
        """Return the canonical text of ``settings``.

        It enters the cache keys and is the ``key`` that :meth:`extract` receives.
        """
        return json.dumps(
            {"diagnostics": bool(include_diagnostics),
             "params": self.validate_settings(settings)},
            default=str,
        )

    def versions(self):
        """Versions the values depend on."""
        return (sitk.Version.VersionString(), np.__version__)

    def cache_material(self, key):
        """Return ``(settings text, versions)`` of the cache keys of ``key``.

        The default holds the backend's :attr:`name`, so that two backends'
        entries never mix in one cache folder.
        """
        return key, (self.name, *self.versions())

    def check_inputs(self, image, mask, label, key):
        """Check one row's images; return ``(mask, croppable)``.

        The default requires the same geometry (SimpleITK's default coordinate
        tolerance) and ``label`` present; a non-integer mask is cast.

        Raises
        ------
        GeometryMismatchError, SubjectTableError
            Message only; the worker names row, column and file.
        """
        tolerance = sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance()
        problem = geometry_problem(image, mask, tolerance)
        if problem is not None:
            raise GeometryMismatchError(
                f"image and mask differ in geometry: {problem}"
            )
        return check_label(mask, label), True

    def plan_crop(self, key):
        """Return the crop plan of ``key`` passed to :meth:`extract` (None: no crop)."""
        return None

    def extract(self, image, mask, label, key, plan, verbose):
        """Return ``[(name, value), ...]`` for one row; may raise.

        Parameters
        ----------
        image, mask : SimpleITK.Image
        label : int
        key : str
            :meth:`settings_key` of the estimator's settings.
        plan : object
            :meth:`plan_crop` of ``key``, or None where no crop is allowed.
        verbose : int
        """
        raise NotImplementedError(
            f"backend {self.name!r} implements neither extract nor extract_batch"
        )

    def check_feature_names(self, names, settings):
        """Refuse fitted feature ``names`` that cannot be right; default: accept."""


_BACKENDS = {}
_DEFAULT = []


def register_backend(backend, *, default=False):
    """Make ``backend`` (a :class:`RadiomicsBackend` instance) available by name.

    Register it at import time of the module that defines it (worker processes
    import that module when they unpickle the instance).

    Parameters
    ----------
    backend : RadiomicsBackend
    default : bool, default=False
        Make it what :func:`get_backend` returns without a name.
    """
    if not isinstance(backend, RadiomicsBackend) or not backend.name:
        raise TypeError("a backend is a named RadiomicsBackend instance")
    _BACKENDS[backend.name] = backend
    if default:
        _DEFAULT[:] = [backend.name]


def get_backend(name=None):
    """Return the registered backend called ``name`` (None: the default one)."""
    if name is None and _DEFAULT:
        name = _DEFAULT[0]
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown radiomics backend {name!r}; registered: {sorted(_BACKENDS)}"
        ) from None


def resolve_backend(backend):
    """Return the backend of a name, None (the default) or an instance."""
    if isinstance(backend, RadiomicsBackend):
        return backend
    return get_backend(backend)


def registered_backends():
    """Return the names of the registered backends, sorted."""
    return sorted(_BACKENDS)


def log_extraction(log_file, image_key, mask_key, label):
    """Append one line per actual extraction to the cache's log.

    The log is opened without following links (``O_NOFOLLOW``): a log
    replaced by a link or FIFO raises
    :class:`~sklearn_medprep.radiomics._cachefiles.RefusedFile`, nothing is
    written (the cache's own :meth:`FeatureCache.log` names the file).
    """
    if log_file is not None:
        append_line(log_file, f"{image_key} {mask_key} {label} {os.getpid()}\n")
