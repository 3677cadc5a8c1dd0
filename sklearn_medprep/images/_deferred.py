"""Deferred images: a row's source cells and a fitted transform, read on demand.

:class:`~sklearn_medprep.TorchIOPreprocessor` returns, for each row, TorchIO
images that hold no voxels yet: each is a ``torchio.ScalarImage`` (or
``LabelMap``) whose *reader* is a :class:`DeferredReader`. The first time any
image of the row is read (``.data``, ``.affine``, a TorchIO transform,
:func:`~sklearn_medprep.load_image`), the fitted transform is applied to the
row's source cells, once, and every image of the row is served from that one
result.

Their content key (:meth:`DeferredReader.content_key`) is derived from the
content keys of the source cells, the SHA-256 of the pickled fitted transform and
the column, without running the transform. So a radiomics cache hit for a
preprocessed image needs neither the preprocessing nor even the source voxels
when the source files' keys are known (see
:mod:`sklearn_medprep.radiomics._cache`), and a fitted transform equal to one
seen before (same class, parameters and trained landmarks, e.g. the same
``Resample`` in every cross-validation fold) hits the entries extracted under it.

What a warm cross-validation repeats in every fold is kept cheap: the derived
key is memoized on (transform key, source keys, column), the source keys
themselves still come from a ``stat`` of each source file at every look-up (a
changed file is a new key); the images are built without re-parsing their
path (:func:`_torchio_image`).
"""

import hashlib
import json
import pickle

from ..io._deferred_source import DeferredSource
from ..io._read import describe_cell
from ..utils._memo import register_memo
from . import _subject

__all__ = ["DeferredReader", "DeferredRow", "deferred_cells", "transform_key"]

# per process: (transform key, source keys, column, is mask) -> content key
_KEYS = {}
_MAX_KEYS = 200_000


@register_memo
def clear_memory():
    """Forget the memoized content keys and image paths (as a fresh process)."""
    _KEYS.clear()
    _PATHS.clear()
    _FAST_IMAGE.clear()
    _IMAGE_TYPE.clear()


def transform_key(transform):
    """Return the SHA-256 of a fitted transform's pickle (its parameters).

    Parameters
    ----------
    transform : torchio.Transform
        A fitted, deterministic transform.

    Returns
    -------
    str
    """
    return hashlib.sha256(pickle.dumps(transform, protocol=4)).hexdigest()


class DeferredRow:
    """The source cells of one row and the fitted transform to apply to them.

    Parameters
    ----------
    transform : torchio.Transform
        The fitted transform.
    key : str
        Its :func:`transform_key`.
    cells : list
        Source cells of ``images`` then ``mask``.
    images : list of str
        Image columns.
    mask : str or None
        Mask column.
    row : hashable
        Row index label, for error messages.
    """

    def __init__(self, transform, key, cells, images, mask, row):
        self.transform = transform
        self.key = key
        self.cells = list(cells)
        self.images = list(images)
        self.mask = mask
        self.row = row
        self._out = None
        self._source_keys = None

    @property
    def columns(self):
        return self.images + ([self.mask] if self.mask is not None else [])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_out"] = None  # workers materialize for themselves
        state["_source_keys"] = None
        return state

    def materialize(self):
        """Apply the transform to the row once; return ``{column: image}``."""
        if self._out is None:
            cells = _subject.apply_to_row(
                self.transform, self.cells, self.images, self.mask, self.row, None
            )
            self._out = dict(zip(self.columns, cells))
        return self._out

    def content_key(self, column, key_of):
        """Return the content key of ``column``'s output without materializing.

        Parameters
        ----------
        column : str
            Output column.
        key_of : callable
            ``key_of(cell, column)`` gives the content key of a source cell.

        Returns
        -------
        str
        """
        if self._source_keys is None:  # once per row (image and mask share it)
            self._source_keys = [
                key_of(cell, name) for cell, name in zip(self.cells, self.columns)
            ]
        sources = self._source_keys
        memo = (self.key, tuple(sources), column, column == self.mask)
        key = _KEYS.get(memo)
        if key is None:
            if len(_KEYS) >= _MAX_KEYS:
                _KEYS.clear()
            text = json.dumps(["deferred/1", self.key, sources, column,
                               column == self.mask])
            key = _KEYS[memo] = hashlib.sha256(text.encode()).hexdigest()
        return key

    def describe(self, column):
        """Source path of ``column`` (or None) for error messages."""
        return describe_cell(self.cells[self.columns.index(column)])


class DeferredReader(DeferredSource):
    """TorchIO reader of one column of a :class:`DeferredRow`.

    Parameters
    ----------
    row : DeferredRow
    column : str
    """

    def __init__(self, row, column):
        self.row = row
        self.column = column

    def __call__(self, path):
        image = self.row.materialize()[self.column]
        return image.data, image.affine

    def describe(self):
        """Source path of the column (or None), for error messages."""
        return self.row.describe(self.column)

    def content_key(self, key_of):
        """See :meth:`DeferredRow.content_key`."""
        return self.row.content_key(self.column, key_of)


def _torchio_image(cls, name, reader):
    """``cls(path=name, reader=reader, verify_path=False)``, without its overhead.

    TorchIO's constructor parses the path with :mod:`pathlib` twice (path and
    stem): about 18 us an image, two images a row, in every ``transform`` call
    of a cross-validation. Here the path is parsed once and the image's state
    set as the constructor sets it; whether this gives the constructor's image
    (attributes and items, values included) is checked once per class on an
    example, and where it does not (another TorchIO version), the constructor
    is used.
    """
    fast = _FAST_IMAGE.get(cls)
    if fast is None:
        example = ("example/source.nii.gz [TorchIOPreprocessor, row 0]", print)
        built = cls(path=example[0], reader=example[1], verify_path=False)
        made = _set_image_state(cls, *example, built.get("type"))
        fast = _FAST_IMAGE[cls] = (
            type(made) is type(built) and vars(made) == vars(built)
            and dict(made) == dict(built)
        )
    if not fast:
        return cls(path=name, reader=reader, verify_path=False)
    return _set_image_state(cls, name, reader, _IMAGE_TYPE[cls])


_FAST_IMAGE = {}  # TorchIO image class -> whether _set_image_state is exact


def _set_image_state(cls, name, reader, kind):
    parsed = _PATHS.get(name)
    if parsed is None:  # the same row's name in every transform call
        from pathlib import Path

        if len(_PATHS) >= _MAX_PATHS:
            _PATHS.clear()
        path = Path(name)
        parsed = _PATHS[name] = (path, str(path), path.name.split(".")[0])
    image = cls.__new__(cls)
    dict.update(image, {"path": parsed[1], "stem": parsed[2], "type": kind})
    image.__dict__.update(check_nans=False, reader=reader, _loaded=False,
                          path=parsed[0])
    _IMAGE_TYPE.setdefault(cls, kind)
    return image


_IMAGE_TYPE = {}  # TorchIO image class -> its "type" item
_PATHS = {}  # image name -> (pathlib.Path, its text, its stem): Paths are immutable
_MAX_PATHS = 50_000  # two images a row of 25,000 rows; tens of MB at most


def deferred_cells(transform, key, cells, images, mask, row):
    """Return the deferred TorchIO images of one row (``images`` then ``mask``)."""
    import torchio as tio

    shared = DeferredRow(transform, key, cells, images, mask, row)
    out = []
    for column, cell in zip(shared.columns, shared.cells):
        cls = tio.LabelMap if column == mask else tio.ScalarImage
        source = describe_cell(cell)
        name = f"{source or column} [TorchIOPreprocessor, row {row!r}]"
        out.append(_torchio_image(cls, name, DeferredReader(shared, column)))
    return out
