"""Paths made absolute in the client, before any task goes to a worker.

A joblib task may run in another process, on another machine (the ``dask``
backend of :func:`joblib.parallel_config`), whose working directory is not the
client's: a relative path means something else there, or nothing. Every
estimator that sends image cells or folders to workers resolves them here first,
against the client's working directory at ``fit``/``transform`` time, into local
variables (the estimator's parameters are never changed). In-memory images and
missing cells pass through unchanged.

A folder that the client created (a scratch folder) may still be missing on a
worker that does not share its file system: :func:`on_worker` checks it there
and names the folder and the worker.
"""

import os
import socket
import sys
from pathlib import Path

__all__ = ["absolute_cell", "absolute_cells", "absolute_folder", "on_worker",
           "worker_name"]


def absolute_cell(cell):
    """Return ``cell`` as an absolute path if it is a path, else unchanged.

    Parameters
    ----------
    cell : object
        A cell of a subject table: a path (``str`` or :class:`os.PathLike`),
        an in-memory image, or a missing value.

    Returns
    -------
    object
        ``str`` cells as absolute ``str``, :class:`pathlib.Path` cells as
        absolute :class:`~pathlib.Path` (``~`` expanded, resolved against the
        current working directory, symbolic links kept); anything else as is.

    Examples
    --------
    >>> import os
    >>> from sklearn_medprep.utils._paths import absolute_cell
    >>> absolute_cell("data/a.nii.gz") == os.path.join(os.getcwd(), "data", "a.nii.gz")
    True
    >>> absolute_cell(None) is None
    True
    """
    if isinstance(cell, str):
        if not cell:
            return cell
        return os.path.abspath(os.path.expanduser(cell))
    if isinstance(cell, os.PathLike):
        text = os.fspath(cell)
        if isinstance(text, bytes):
            return cell
        absolute = os.path.abspath(os.path.expanduser(text))
        return Path(absolute) if isinstance(cell, Path) else absolute
    return cell


def absolute_cells(cells):
    """Return the list of ``cells`` with every path cell made absolute.

    Parameters
    ----------
    cells : iterable
        Cells of one column (or one row).

    Returns
    -------
    list
    """
    return [absolute_cell(cell) for cell in cells]


def absolute_folder(folder):
    """Return ``folder`` (a ``str`` or path) as an absolute ``str``; None stays None.

    Parameters
    ----------
    folder : str, os.PathLike or None

    Returns
    -------
    str or None

    Examples
    --------
    >>> import os
    >>> from sklearn_medprep.utils._paths import absolute_folder
    >>> absolute_folder("cache") == os.path.join(os.getcwd(), "cache")
    True
    >>> absolute_folder(None) is None
    True
    """
    if folder is None:
        return None
    return os.path.abspath(os.path.expanduser(os.fspath(folder)))


def worker_name():
    """Return a name of the process running this code: the dask worker's
    address when it is one, else ``host (pid N)``.

    Returns
    -------
    str
    """
    distributed = sys.modules.get("distributed")
    if distributed is not None:  # only when dask is in use: never imported here
        try:
            return f"dask worker {distributed.get_worker().address}"
        except (ValueError, AttributeError):
            pass
    return f"{socket.gethostname()} (pid {os.getpid()})"


def on_worker(func, folders, *args, **kwargs):
    """Call ``func(*args, **kwargs)`` after checking that ``folders`` exist here.

    Sent to workers instead of ``func``, so that a folder the client created
    but a worker cannot see (not on a shared file system) is an error naming
    the folder, its parameter and the worker, not a bare
    ``FileNotFoundError`` from deep inside the task.

    Parameters
    ----------
    func : callable
        The task.
    folders : dict of {str: str}
        Parameter name (e.g. ``"scratch_dir"``) to folder.
    *args, **kwargs
        Arguments of ``func``.

    Returns
    -------
    object
        What ``func`` returns.

    Raises
    ------
    FileNotFoundError
        A folder is missing or not a folder on this worker.

    Examples
    --------
    >>> from sklearn_medprep.utils._paths import on_worker
    >>> on_worker(len, {"scratch_dir": "."}, [1, 2])
    2
    >>> on_worker(len, {"scratch_dir": "/no/such/folder"}, [1, 2])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: scratch_dir folder '/no/such/folder' cannot be reached from \
...: every worker must see the client's folder; set scratch_dir to a folder on a \
file system shared by the client and the workers (user guide: Speed and \
scale, A dask.distributed cluster)
    """
    for name, folder in folders.items():
        if folder is not None and not os.path.isdir(folder):
            raise FileNotFoundError(
                f"{name} folder {str(folder)!r} cannot be reached from "
                f"{worker_name()}: every worker must see the client's folder; "
                f"set {name} to a folder on a file system shared by the client "
                "and the workers (user guide: Speed and scale, A dask.distributed "
                "cluster)"
            )
    return func(*args, **kwargs)
