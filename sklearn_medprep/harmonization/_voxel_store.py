"""Images of a subject table on one grid, read as masked voxels, chunk by chunk.

:class:`VoxelStore` is a scratch file holding the masked voxels of ``n`` images
laid out chunk-major: chunk ``k`` (voxels ``start_k:stop_k``) is one contiguous
``(n, stop_k - start_k)`` block, so that a statistic over all subjects of a few
thousand voxels is one sequential read. It is filled once, subject by subject
(one image in memory per worker), and read back chunk by chunk; nothing ever
holds the whole ``n x p`` array. Workers (joblib processes, dask workers on the
same file system) open the file themselves: the store is a small picklable
description.
"""

import os
import tempfile
import uuid
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ..exceptions import (
    GeometryMismatchError,
    ImageReadError,
    OutputWriteError,
    SubjectTableError,
)
from ..io._read import describe_cell, to_sitk
from ..io._write import pwrite_all
from ..table._validate import _same_geometry
from ._input import MAX_ABS_VALUE

__all__ = [
    "Grid",
    "VoxelStore",
    "grid_of",
    "load_on_grid",
    "masked_voxels",
    "scratch_folder",
    "voxel_batches",
]

#: Bytes of float64 data per chunk of voxels (all subjects) or batch of subjects.
CHUNK_BYTES = 64 * 2**20

# Pixel types whose values float32 holds exactly.
_FLOAT32_EXACT = {
    sitk.sitkFloat32,
    sitk.sitkInt8,
    sitk.sitkUInt8,
    sitk.sitkInt16,
    sitk.sitkUInt16,
}


class Grid(NamedTuple):
    """The geometry of an image: ``size``, ``spacing``, ``origin``, ``direction``."""

    size: tuple
    spacing: tuple
    origin: tuple
    direction: tuple


def grid_of(image):
    """The :class:`Grid` ``(size, spacing, origin, direction)`` of an image."""
    return Grid(
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
    )


def load_on_grid(cell, grid, *, row, column, what="the mask's grid"):
    """Load a scalar image cell and check that it lies on ``grid``."""
    image = to_sitk(cell, row=row, column=column)
    file = describe_cell(cell)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"image has {image.GetNumberOfComponentsPerPixel()} components per "
            "voxel; voxel-wise harmonization needs scalar images",
            row=row,
            column=column,
            file=file,
        )
    if grid is not None:
        diff = _same_geometry(grid_of(image), grid)
        if diff is not None:
            raise GeometryMismatchError(
                f"image is not on {what} ({diff}); resample every image to one "
                "template grid first",
                row=row,
                column=column,
                file=file,
            )
    return image


def masked_voxels(image, flat_index, *, row=None, column=None, file=None):
    """The voxels of ``image`` at ``flat_index`` (C order of the array), float64.

    Infinite or overflowing voxels (``|x| > MAX_ABS_VALUE``, as for a table's
    cells) are refused with a :class:`~sklearn_medprep.exceptions.SubjectTableError`
    naming the image (``row``, ``column``, ``file``) and how many there are:
    one of them would make that voxel non-finite in every output.
    """
    values = sitk.GetArrayViewFromImage(image).reshape(-1)[flat_index]
    values = values.astype(np.float64)
    if values.size and (
        np.fmax.reduce(values) > MAX_ABS_VALUE
        or np.fmin.reduce(values) < -MAX_ABS_VALUE
    ):
        with np.errstate(invalid="ignore"):
            bad = np.abs(values) > MAX_ABS_VALUE
        first = int(np.flatnonzero(bad)[0])
        where = np.unravel_index(
            int(flat_index[first]), sitk.GetArrayViewFromImage(image).shape
        )
        raise SubjectTableError(
            f"image has {int(bad.sum())} voxel(s) in the mask that are infinite "
            f"or too large for ComBat (|x| > {MAX_ABS_VALUE:g}; first at array "
            f"index {tuple(int(i) for i in where)}: {float(values[first])!r}): "
            "one would make its voxel non-finite in every harmonized image. "
            "Replace them by NaN (left out of every estimate and kept NaN) or "
            "exclude them from the mask",
            row=row,
            column=column,
            file=file,
        )
    return values


def voxel_batches(n_rows, n_grid):
    """Batches of rows whose full images fit in :data:`CHUNK_BYTES`."""
    size = max(1, CHUNK_BYTES // max(8 * n_grid, 1))
    return [range(a, min(a + size, n_rows)) for a in range(0, n_rows, size)]


def store_dtype(cell, *, row, column):
    """float32 when the first image's pixel type is exact in float32, else float64."""
    image = to_sitk(cell, row=row, column=column)
    return "float32" if image.GetPixelID() in _FLOAT32_EXACT else "float64"


class VoxelStore:
    """Chunk-major scratch file of the masked voxels of ``n_rows`` images.

    Parameters
    ----------
    folder : str or pathlib.Path
        Where the file is created (removed by :meth:`remove`).
    n_rows, n_voxels : int
        Images and masked voxels.
    width : int
        Voxels per chunk.
    dtype : {"float32", "float64"}
        Storage type; data are read back as float64.
    """

    def __init__(self, folder, n_rows, n_voxels, width, dtype):
        self.path = str(Path(folder) / f"voxels-{uuid.uuid4().hex}.bin")
        self.n_rows = int(n_rows)
        self.n_voxels = int(n_voxels)
        self.width = int(max(1, min(width, n_voxels)))
        self.dtype = dtype
        self.starts = list(range(0, self.n_voxels, self.width))
        with open(self.path, "wb") as handle:
            handle.truncate(self.n_rows * self.n_voxels * self.itemsize)

    @property
    def itemsize(self):
        return np.dtype(self.dtype).itemsize

    @property
    def n_chunks(self):
        return len(self.starts)

    def chunk(self, k):
        """``(start, stop)`` voxels of chunk ``k``."""
        start = self.starts[k]
        return start, min(start + self.width, self.n_voxels)

    def write_rows(self, first, values, labels=None):
        """Write rows ``first : first + len(values)`` (float64, ``(b, p)``).

        Every byte is checked written (:func:`~sklearn_medprep.io.pwrite_all`):
        a full disk is an ``OutputWriteError`` naming the scratch file and the
        row (``labels[i]``, else its position), never a fit on zeros.
        """
        values = np.asarray(values, dtype=self.dtype)
        if labels is None:
            labels = list(range(first, first + values.shape[0]))
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for k in range(self.n_chunks):
                start, stop = self.chunk(k)
                base = self.n_rows * start + first * (stop - start)
                for i, label in enumerate(labels):
                    # one row's piece of the chunk: contiguous in the file
                    piece = np.ascontiguousarray(values[i, start:stop])
                    offset = (base + i * (stop - start)) * self.itemsize
                    pwrite_all(fd, piece, offset, file=self.path, row=label)
        finally:
            os.close(fd)

    def read_chunk(self, k, rows=None):
        """Chunk ``k`` of every row (or of ``rows``) as a float64 ``(n, w)`` array."""
        start, stop = self.chunk(k)
        count = self.n_rows * (stop - start)
        with open(self.path, "rb") as handle:
            handle.seek(self.n_rows * start * self.itemsize)
            data = np.fromfile(handle, dtype=self.dtype, count=count)
        data = data.reshape(self.n_rows, stop - start)
        if rows is not None:
            data = data[rows]
        return data.astype(np.float64)

    def getter(self, rows=None):
        """``get(a, b)``: voxels ``a:b`` of every row (or of ``rows``), float64."""

        def get(a, b):
            pieces = []
            for k in range(a // self.width, (b - 1) // self.width + 1):
                start, stop = self.chunk(k)
                block = self.read_chunk(k, rows)
                pieces.append(block[:, max(a, start) - start : min(b, stop) - start])
            return pieces[0] if len(pieces) == 1 else np.hstack(pieces)

        return get

    def remove(self):
        """Delete the scratch file."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def fill_rows(store, first, cells, labels, column, grid, flat_index):
    """Load images ``cells`` (rows ``first``...) into ``store``.

    Returns False when a value is not exact in the store's float32 (the caller
    then uses a float64 store).
    """
    values = np.empty((len(cells), store.n_voxels))
    for i, (cell, label) in enumerate(zip(cells, labels)):
        image = load_on_grid(cell, grid, row=label, column=column)
        values[i] = masked_voxels(
            image, flat_index, row=label, column=column, file=describe_cell(cell)
        )
    if store.dtype == "float32":
        narrow = values.astype(np.float32)
        if not np.array_equal(narrow, values, equal_nan=True):
            return False
    store.write_rows(first, values, labels)
    return True


def sum_images(cells, labels, column, grid):
    """Sum of the images (float64 array) and how many were summed."""
    total = None
    for cell, label in zip(cells, labels):
        image = load_on_grid(cell, grid, row=label, column=column, what="the grid")
        data = sitk.GetArrayViewFromImage(image).astype(np.float64)
        total = data if total is None else total + data
    return total


def scratch_folder(scratch_dir):
    """A new folder for a scratch file in ``scratch_dir`` (or the system's)."""
    folder = Path(scratch_dir or tempfile.gettempdir())
    try:
        return Path(tempfile.mkdtemp(prefix="medprep-voxels-", dir=folder))
    except OSError as exc:
        raise OutputWriteError(
            f"no scratch folder can be created in scratch_dir ({exc}); pass a "
            "writable scratch_dir",
            file=str(folder),
            errno=exc.errno,
        ) from exc
