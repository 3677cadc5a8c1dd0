"""Where outputs may go: names unique after sanitising, never over an input.

Checked before anything is written (:func:`output_names`,
:func:`refuse_inputs`); :mod:`._write` writes.
"""

import os
import re

from ..exceptions import OutputWriteError

__all__ = ["output_names", "refuse_inputs"]


def output_names(labels, suffix=""):
    """File names made from row labels; two labels that give one name are refused.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become
    ``_`` (``'a b'``, ``'a/b'`` and ``'a:b'`` all give ``a_b``). Rather than
    one row's file silently replacing another's (or being renamed to a name
    nobody can predict), a name shared by two labels, also one that differs
    only in case (the same file on macOS and Windows disks), is an error
    naming both labels; rename the rows.

    Parameters
    ----------
    labels : iterable of hashable
        Row labels.
    suffix : str, default=""
        Appended to every name (e.g. ``".nii.gz"``).

    Returns
    -------
    list of str

    Raises
    ------
    OutputWriteError
        Two labels give the same file name (both named), or a label gives no
        usable name.

    Examples
    --------
    >>> from sklearn_medprep.io import output_names
    >>> output_names(["sub-01", "sub 02"], ".nii.gz")
    ['sub-01.nii.gz', 'sub_02.nii.gz']
    >>> output_names(["a b", "a/b"], ".nii.gz")
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.OutputWriteError: [row 'a/b', file 'a_b.nii.gz'] \
rows 'a b' and 'a/b' would both be written to 'a_b.nii.gz' (characters other than \
letters, digits, '.', '_' and '-' become '_'); give the rows distinct labels
    """
    names, seen = [], {}
    for label in labels:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(label)) + suffix
        if name.strip(".") == "" or name.startswith("."):
            raise OutputWriteError(
                f"row label {str(label)!r} gives the file name {name!r}, hidden "
                "or empty; give the row another label",
                row=label, file=name,
            )
        key = name.casefold()
        if key in seen:
            other = seen[key]
            raise OutputWriteError(
                f"rows {other!r} and {label!r} would both be written to "
                f"{name!r} (characters other than letters, digits, '.', '_' and "
                "'-' become '_'"
                + ("" if str(other) != str(label) else "; the labels repeat")
                + (", and names differing only in case are one file on some "
                   "disks" if names[list(seen).index(key)] != name else "")
                + "); give the rows distinct labels",
                row=label, file=name,
            )
        seen[key] = label
        names.append(name)
    return names


def refuse_inputs(paths, inputs, *, row=None, rows=None):
    """Raise if a file about to be written is one of the ``inputs`` files.

    Called before anything is written. The inputs are resolved once (links
    followed, and their inodes), so that checking the outputs of a whole table
    against its input images costs one pass over each.

    Parameters
    ----------
    paths : str, pathlib.Path or list of them
        File(s) about to be written.
    inputs : iterable
        Files that must not be written over (e.g. the images being read);
        cells that are not paths (in-memory images) are skipped.
    row : hashable, default=None
        Row named in the error (one path).
    rows : list of hashable, default=None
        Row of each path (a list of paths).

    Raises
    ------
    OutputWriteError
        A path and an input are the same file (same name once links are
        resolved, or the same inode: a hard link).

    Examples
    --------
    >>> from sklearn_medprep.io import refuse_inputs
    >>> refuse_inputs("out/a.nii.gz", ["in/a.nii.gz"])  # different files: fine
    >>> refuse_inputs("in/../in/a.nii.gz", ["in/a.nii.gz"], row="s1")
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.OutputWriteError: [row 's1', file 'in/../in/a.nii.gz'] \
would write over the input file 'in/a.nii.gz'; choose another output folder or name
    """
    if isinstance(paths, (str, os.PathLike)):
        paths, rows = [paths], [row]
    elif rows is None:
        rows = [None] * len(paths)
    names, inodes = {}, {}
    for source in inputs:
        if not isinstance(source, (str, os.PathLike)):
            continue
        names.setdefault(os.path.realpath(source), source)
        try:
            info = os.stat(source)
        except OSError:
            continue
        inodes.setdefault((info.st_dev, info.st_ino), source)
    for path, label in zip(paths, rows):
        source = names.get(os.path.realpath(path))
        if source is None and inodes:
            try:
                info = os.stat(path)
            except OSError:
                info = None
            if info is not None:
                source = inodes.get((info.st_dev, info.st_ino))
        if source is not None:
            raise OutputWriteError(
                f"would write over the input file {str(source)!r}; choose another "
                "output folder or name",
                row=label,
                file=str(path),
            )
