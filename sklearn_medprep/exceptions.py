"""Warnings and errors raised by sklearn-medprep.

All errors derive from the standard exception a scikit-learn user expects
(``ValueError``, ``FileNotFoundError``) so that existing ``except`` clauses keep
working; the subclasses carry the row index, column and file at fault.
"""

from functools import partial

import numpy as np

__all__ = [
    "MedprepWarning",
    "SubjectTableError",
    "ImageReadError",
    "GeometryMismatchError",
    "OutputWriteError",
    "TargetProxyError",
    "TargetProxyWarning",
    "SubjectOverlapWarning",
]


class MedprepWarning(UserWarning):
    """Warning issued by sklearn-medprep (e.g. rows that failed and became NaN)."""


class SubjectTableError(ValueError):
    """A subject table is invalid; the message names row index, column and file.

    Parameters
    ----------
    message : str
        Human-readable description.
    row : hashable, default=None
        Index label of the row at fault.
    column : str, default=None
        Column at fault.
    file : str, default=None
        File at fault, when the cell was a path.
    """

    def __init__(self, message, *, row=None, column=None, file=None):
        # numpy 2 writes np.int64(3) for repr(numpy scalar): keep Python values
        row, column = plain(row), plain(column)
        self.row = row
        self.column = column
        self.file = file
        where = []
        if row is not None:
            where.append(f"row {row!r}")
        if column is not None:
            where.append(f"column {column!r}")
        if file is not None:
            where.append(f"file {str(file)!r}")
        prefix = f"[{', '.join(where)}] " if where else ""
        super().__init__(prefix + message)
        self.bare_message = message


class ImageReadError(SubjectTableError):
    """An image cell could not be read (missing, corrupt or unsupported file)."""


class GeometryMismatchError(SubjectTableError):
    """Image and mask of one row do not share size, spacing, origin and direction."""


class OutputWriteError(SubjectTableError, OSError):
    """A file could not be written in full; nothing was left under its name.

    Raised by the library's one writer (:func:`sklearn_medprep.io.write_atomically`)
    on a full disk, a short write, a file that does not read back, or a
    refused target (an input file, a name two rows share). It is both a
    :class:`SubjectTableError` (``ValueError``: the row and file are named)
    and an :class:`OSError` (``errno`` is that of the failure, e.g.
    ``errno.ENOSPC``, or None).

    Parameters
    ----------
    message : str
        Human-readable description.
    row : hashable, default=None
        Row label whose output failed.
    column : str, default=None
        Column at fault.
    file : str, default=None
        The file (its final name) that was not written.
    errno : int, default=None
        The operating system's error number, when there was one.
    """

    def __init__(self, message, *, row=None, column=None, file=None, errno=None):
        super().__init__(message, row=row, column=column, file=file)
        self.errno = errno

    def __reduce__(self):
        # OSError's own reduce would drop errno and the keywords (joblib
        # workers send errors back pickled)
        keywords = {"row": self.row, "column": self.column, "file": self.file,
                    "errno": self.errno}
        return (partial(type(self), **keywords), (self.bare_message,))


class TargetProxyError(SubjectTableError):
    """A column a step would hand on to the model is the target in disguise.

    Raised in ``fit`` when a column that a library step passes on (harmonized
    or passed through) equals ``y`` up to relabelling, a change of unit or a
    monotone map. The only fix is to drop the column from ``X``.
    """


class TargetProxyWarning(MedprepWarning):
    """A column handed on to the model is nearly the target (e.g. ``|r| > 0.99``)."""


class SubjectOverlapWarning(MedprepWarning):
    """Rows of one subject (ROIs, lesions, visits) may land on both sides of a split."""


def plain(value):
    """Return ``value`` with numpy scalars and arrays made Python values.

    For error messages: numpy 2 writes ``np.int64(3)`` for the repr of a numpy
    scalar, where users expect ``3``.

    Parameters
    ----------
    value : object
        A numpy scalar, array, pandas Index or Series, or anything else
        (returned unchanged).

    Returns
    -------
    object
        A Python scalar, a list of Python values, or ``value`` itself.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.exceptions import plain
    >>> plain(np.int64(3)), plain(np.array(["a", "b"]))
    (3, ['a', 'b'])
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) or (
        hasattr(value, "tolist") and hasattr(value, "dtype")
    ):
        return np.asarray(value).tolist()
    return value
