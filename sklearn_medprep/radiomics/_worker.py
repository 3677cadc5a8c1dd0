"""Per-row radiomics work, run in joblib (loky or dask) workers.

One row of the subject table goes through small steps: :func:`_start` (the
label, the backend and the cache), :func:`_cached` (a cache look-up on content
keys known without reading an image), :func:`_read_inputs`,
:func:`_cached_after_read` (the look-up on the keys of the images just read,
unless they are the keys already tried), :func:`_check_inputs` (a lesion
row's mask restricted to its lesion, see
:mod:`sklearn_medprep.radiomics._lesions`; the backend's geometry and label
checks, non-finite voxels in the ROI, the backend's crop plan),
:func:`_extract` (the backend), :func:`_record` (the extraction log, see
:func:`count_extractions`) and :func:`_store` (the cache entry).
:func:`extract_row` runs them for one row; :func:`extract_rows` runs them for
many rows with one ``backend.extract_batch`` call for all that need extracting.

The features come from a backend (:mod:`sklearn_medprep.radiomics._backend`).
With a cache (:mod:`sklearn_medprep.radiomics._cache`), they are keyed on image
and mask *content*, label (and lesion), the backend's settings text and
versions; for paths whose file identity is unchanged since they were last
hashed, a hit reads no image at all. Non-finite voxels inside the ROI are an
error of the image column.

A worker never raises for a row's fault: it returns a
:class:`~sklearn_medprep.radiomics._backend.RowResult` (features, or an error
naming column, file, message and kind) so that errors cross process boundaries
intact and the estimator decides, in row order, whether to raise or write NaN.
:func:`lookup_row` serves a row from the cache only (no image read, no
extraction), so that the estimator answers hits in its own process and sends
only misses to workers.
"""

import os
import traceback
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ImageReadError, SubjectTableError
from ..io._deferred_source import deferred_reader
from ..io._integrity import count_nonfinite
from ..io._read import _is_missing, describe_cell, image_fingerprint, to_sitk
from ._backend import (
    BatchRow,
    RowResult,
    error_kind,
    resolve_backend,
)
from ._cache import EXTRACTION_LOG, as_feature_cache, file_identity
from ._lesions import check_connectivity, restrict_to_lesion

__all__ = [
    "count_extractions",
    "extract_row",
    "extract_rows",
    "lookup_row",
    "EXTRACTION_LOG",
]


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


def _known_source_key(cache, cell, checked=None):
    """Content key of a cell if it is known without reading any image, else None.

    In-memory images and files not hashed before are left to the worker that
    reads them (hashing them here would read every image twice, serially).
    ``checked``: a set of the ids of deferred rows whose sources were found
    known in this look-up (the image and mask of a preprocessed row share
    them: checked once).
    """
    reader = deferred_reader(cell)
    if reader is not None:
        row = reader.row
        known = {}  # the sources' keys found here serve the row's key too
        if checked is None or id(row) not in checked:
            for source in row.cells:
                known[id(source)] = _known_source_key(cache, source)
                if known[id(source)] is None:
                    return None
            if checked is not None:
                checked.add(id(row))

        def key_of(source, _):
            key = known.get(id(source))
            return key if key is not None else _source_key(cache, source)

        return reader.content_key(key_of)
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


def _count(value):
    """``value`` as a non-negative int, or raise ValueError or TypeError."""
    if isinstance(value, (bool, np.bool_, str, bytes)) \
            or float(value) != int(value) or int(value) < 0:
        raise ValueError
    return int(value)


def _lesion(lesion, connectivity, voxels, mask_column, mask_file):
    """Return ((lesion, connectivity, voxels) or None, None), or (None, failure).

    ``voxels`` (None: unchecked) is the lesion's voxel count in the table.
    """
    if lesion is None:
        return None, None
    for name, value in (("lesion", lesion), ("voxels", voxels)):
        if value is None:
            continue
        try:
            _count(value)
        except (TypeError, ValueError, OverflowError):
            return None, RowResult.failure(
                mask_column, mask_file,
                f"{name} must be a non-negative integer (as expand_lesions "
                f"writes it), got {value!r}", "table",
            )
    return (int(lesion), check_connectivity(connectivity),
            None if voxels is None else int(voxels)), None


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
               mask_column="mask", backend=None, lesion=None, connectivity=3,
               voxels=None):
    """Serve one row from the cache only: a ``RowResult`` on a clean hit, else None.

    Nothing is read but file metadata, the cache's index and the entry (no
    image: a cell whose content key is not known yet, e.g. an in-memory image,
    is a miss here); a miss, a bad entry or any problem returns None and is
    left to :func:`extract_row` (which reports it).

    Parameters
    ----------
    image_cell, mask_cell, label, key, image_column, mask_column, backend
    lesion, connectivity, voxels
        As in :func:`extract_row`.
    memory : FeatureCache
        The cache (its folder prepared by the caller).

    Returns
    -------
    RowResult or None
    """
    label, failed = _label(label, mask_column, None)
    lesion, bad = _lesion(lesion, connectivity, voxels, mask_column, None)
    if failed is not None or bad is not None:
        return None
    checked = set()
    try:
        keys = {column: _known_source_key(memory, cell, checked) for column, cell
                in ((image_column, image_cell), (mask_column, mask_cell))}
    except (ImageReadError, OSError):
        return None
    if not (keys[image_column] and keys[mask_column]):
        return None
    notes = []
    text, versions = resolve_backend(backend).cache_material(key)
    values = memory.get(
        memory.entry_key(keys[image_column], keys[mask_column], label, text,
                         versions, lesion=lesion),
        notes, numbers=True,
    )
    if values is None or notes:
        return None
    return RowResult.success(values)


@dataclass
class _Job:
    """One row on its way through the steps of :func:`extract_row`."""

    cells: dict  # column -> cell, image first
    files: dict  # column -> file description
    image_column: str
    mask_column: str
    label: int
    key: str
    engine: object
    cache: object
    verbose: int
    lesion: tuple = None  # (number, connectivity, voxels or None); None: the label
    notes: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)  # column -> content key
    identities: dict = field(default_factory=dict)
    tried: str = None  # the entry already looked up
    entry: str = None  # the entry to write

    def failure(self, role, message, kind, file=None):
        """An error result of the image (``role="image"``) or mask column."""
        column = self.image_column if role == "image" else self.mask_column
        return RowResult.failure(column, file or self.files[column], message, kind)


def _start(image_cell, mask_cell, label, key, image_column, mask_column, memory,
           verbose, backend, lesion=None, connectivity=3, voxels=None):
    """Return ``(job, None)``, or ``(None, failed RowResult)`` for a bad label."""
    cells = {image_column: image_cell, mask_column: mask_cell}
    files = {column: describe_cell(cell) for column, cell in cells.items()}
    label, failed = _label(label, mask_column, files[mask_column])
    if failed is None:
        lesion, failed = _lesion(lesion, connectivity, voxels, mask_column,
                                 files[mask_column])
    if failed is not None:
        return None, failed
    cache = as_feature_cache(memory)
    if cache is not None:
        cache.prepare(worker=True)  # a cache problem is not the row's: raise it
    return _Job(cells, files, image_column, mask_column, label, key,
                resolve_backend(backend), cache, int(verbose), lesion), None


def _entry(job):
    text, versions = job.engine.cache_material(job.key)
    return job.cache.entry_key(job.keys[job.image_column],
                               job.keys[job.mask_column], job.label, text,
                               versions, lesion=job.lesion)


def _cached(job):
    """Look the row up on the keys known without reading an image.

    Returns a RowResult (a hit, or a deferred image that cannot be read) or None.
    """
    if job.cache is None:
        return None
    try:
        job.keys, job.identities = _known_keys(job.cache, job.cells.items())
    except ImageReadError as exc:
        return RowResult.failure(
            exc.column, exc.file or job.files[exc.column], exc.bare_message, "read"
        )
    if job.keys.get(job.image_column) and job.keys.get(job.mask_column):
        job.tried = _entry(job)
        values = job.cache.get(job.tried, job.notes, numbers=True)
        if values is not None:  # a hit: no image is read
            return RowResult.success(values, job.notes)
    return None


def _read_inputs(job):
    """Return ``({column: SimpleITK image}, None)`` or ``(None, failed RowResult)``."""
    images = {}
    for column, cell in job.cells.items():
        try:
            images[column] = to_sitk(cell, column=column)
        except ImageReadError as exc:
            return None, RowResult.failure(
                column, exc.file or job.files[column], exc.bare_message, "read"
            )
    return images, None


def _cached_after_read(job, images):
    """Look the row up on the content keys of the read images; a hit or None.

    An entry already tried by :func:`_cached` is not read (nor warned about)
    twice.
    """
    if job.cache is None:
        return None
    for column in job.cells:
        if not job.keys.get(column):
            job.keys[column] = _content_key(job.cache, None, images[column],
                                            job.identities.get(column))
    job.entry = _entry(job)
    if job.entry == job.tried:
        return None
    values = job.cache.get(job.entry, job.notes, numbers=True)
    return None if values is None else RowResult.success(values, job.notes)


def _check_inputs(job, images):
    """The backend's checks, non-finite voxels, the crop plan.

    Returns ``(BatchRow, None)`` or ``(None, failed RowResult)``.
    """
    image, mask = images[job.image_column], images[job.mask_column]
    try:
        if job.lesion is not None:  # before the backend: the seam stays generic
            mask = restrict_to_lesion(mask, job.label, *job.lesion)
        mask, croppable = job.engine.check_inputs(image, mask, job.label, job.key)
        bad = count_nonfinite(image, mask, job.label)
        if bad:
            where = (f"inside the ROI (label {job.label})"
                     if mask.GetSize() == image.GetSize() else "in the image")
            return None, job.failure(
                "image",
                f"{bad} non-finite (NaN or infinite) voxel(s) {where}; "
                f"{job.engine.display_name} would use them silently: fix the "
                "image or leave those voxels out of the mask", "read",
            )
        plan = job.engine.plan_crop(job.key) if croppable else None
    except Exception as exc:  # noqa: BLE001 - reported with row, column and file
        return None, _failed(job, exc)
    return BatchRow(image, mask, job.label, plan), None


def _failed(job, exc):
    """The error result of an exception of the backend (typed, or a crash)."""
    if isinstance(exc, SubjectTableError):  # the row's fault, as the backend says
        role = "image" if exc.column in ("image", job.image_column) else "mask"
        return job.failure(role, exc.bare_message, error_kind(exc), exc.file)
    message = str(exc).strip() or type(exc).__name__
    if job.verbose > 2:
        message += "\n" + traceback.format_exc()
    return job.failure(
        "mask",
        f"{job.engine.display_name} failed ({type(exc).__name__}): {message}; "
        f"image file {job.files[job.image_column]!r}", "table",
    )


def _extract(job, row):
    """The backend's features of one checked row: a RowResult."""
    try:
        values = job.engine.extract(row.image, row.mask, row.label, job.key,
                                    row.plan, job.verbose)
    except Exception as exc:  # noqa: BLE001 - reported with row, column and file
        return _failed(job, exc)
    return RowResult.success(values)


def _record(job, result):
    """Log an actual extraction in the cache's log (:func:`count_extractions`)."""
    if result.ok and job.cache is not None:
        job.cache.log(job.keys.get(job.image_column),
                      job.keys.get(job.mask_column), job.label)


def _store(job, result):
    """Write the cache entry of an extracted row; return the row's RowResult."""
    if not result.ok:
        return result
    if job.entry is not None:
        try:
            job.cache.put(job.entry, result.values, job.notes)
        except OSError as exc:
            job.notes.append(f"radiomics cache entry not written ({exc})")
    return RowResult.success(result.values, job.notes)


def _prepare(image_cell, mask_cell, label, key, *, image_column, mask_column,
             memory, verbose, backend, lesion=None, connectivity=3,
             voxels=None):
    """Run the steps before extraction: ``(job, BatchRow)`` or ``(None, RowResult)``."""
    job, done = _start(image_cell, mask_cell, label, key, image_column,
                       mask_column, memory, verbose, backend, lesion,
                       connectivity, voxels)
    if done is None:
        done = _cached(job)
    if done is None:
        images, done = _read_inputs(job)
        if done is None:
            done = _cached_after_read(job, images)
        if done is None:
            row, done = _check_inputs(job, images)
    return (None, done) if done is not None else (job, row)


def extract_row(image_cell, mask_cell, label, key, *, image_column="image",
                mask_column="mask", memory=None, verbose=0, backend=None,
                lesion=None, connectivity=3, voxels=None):
    """Extract the features of one row; never raises (see the module docstring).

    Parameters
    ----------
    image_cell, mask_cell : object
        Cells of the subject table (path or in-memory image).
    label : int
        Label of the ROI in the mask.
    key : str
        The backend's settings text
        (:meth:`~sklearn_medprep.radiomics._backend.RadiomicsBackend.settings_key`).
    image_column, mask_column : str
        Column names, for error records.
    memory : FeatureCache or None
        Cache of the features (see :mod:`sklearn_medprep.radiomics._cache`).
    verbose : int
        Passed to the backend (and tracebacks of failures when ``verbose > 2``).
    backend : str, RadiomicsBackend or None, default=None
        A registered backend's name or a backend; None is the default backend.
    lesion : int or None, default=None
        Extract only lesion ``lesion`` (connected component, numbered as
        :func:`~sklearn_medprep.radiomics._lesions.label_components` numbers
        them) of ``label``: the mask is restricted to it before the backend's
        checks. It enters the cache key.
    connectivity : {1, 2, 3}, default=3
        Connectivity of the lesions (with ``lesion`` only).
    voxels : int or None, default=None
        The lesion's voxel count in the table (with ``lesion`` only): another
        count fails the row (a table numbered at another connectivity); it
        enters the cache key, so that a hit is checked too.

    Returns
    -------
    RowResult
        ``ok`` with ``[(name, value), ...]`` and ``notes`` (cache warnings to
        re-issue), or an error with column, file, message and kind.
    """
    job, row = _prepare(image_cell, mask_cell, label, key,
                        image_column=image_column, mask_column=mask_column,
                        memory=memory, verbose=verbose, backend=backend,
                        lesion=lesion, connectivity=connectivity,
                        voxels=voxels)
    if job is None:
        return row
    result = _extract(job, row)
    _record(job, result)
    return _store(job, result)


def extract_rows(rows, key, *, image_column="image", mask_column="mask",
                 memory=None, verbose=0, backend=None, connectivity=3):
    """Extract many rows with one ``backend.extract_batch`` call; never raises.

    Parameters
    ----------
    rows : list of (image_cell, mask_cell, label[, lesion[, voxels]])
    key, image_column, mask_column, memory, verbose, backend, connectivity
        As in :func:`extract_row`; ``backend`` must define ``extract_batch``.

    Returns
    -------
    list of RowResult
        One per row, in order: cache hits and rows that failed their checks
        are not sent to the backend.
    """
    results, pending = [], []
    for i, (image_cell, mask_cell, label, *lesion) in enumerate(rows):
        lesion = [*lesion, None, None]
        job, row = _prepare(image_cell, mask_cell, label, key,
                            image_column=image_column, mask_column=mask_column,
                            memory=memory, verbose=verbose, backend=backend,
                            lesion=lesion[0], connectivity=connectivity,
                            voxels=lesion[1])
        results.append(row if job is None else None)
        if job is not None:
            pending.append((i, job, row))
    if not pending:
        return results
    engine = pending[0][1].engine
    try:
        extracted = list(engine.extract_batch([row for _, _, row in pending],
                                              key, int(verbose)))
        if len(extracted) != len(pending):
            raise RuntimeError(f"extract_batch returned {len(extracted)} results "
                               f"for {len(pending)} rows")
    except Exception as exc:  # noqa: BLE001 - every row of the batch fails
        extracted = [_failed(job, exc) for _, job, _ in pending]
    for (i, job, _), result in zip(pending, extracted):
        if not result.ok:  # the backend names the column by role, maybe no file
            role = "image" if result.column in ("image", job.image_column) else "mask"
            result = job.failure(role, result.message, result.kind or "table",
                                 result.file)
        _record(job, result)
        results[i] = _store(job, result)
    return results


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
    return cache.extraction_count()
