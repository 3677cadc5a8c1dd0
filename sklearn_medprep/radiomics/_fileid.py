"""File identities: what a cached content key is remembered against.

The identity of a file is its absolute path, device, inode, size,
modification time and status-change time (``st_ctime_ns``, which no user call
can set back); for a DICOM folder, the identities of all its files. Within one
batch of look-ups (:func:`identity_scope`) each file is stat-ed once.
"""

import os
import stat
import threading
from contextlib import contextmanager

__all__ = ["file_identity", "identity_scope"]

# per thread, inside ``identity_scope``: path -> file identity (one ``stat`` of
# each file per batch of look-ups, however many cells name it)
_SCOPE = threading.local()



@contextmanager
def identity_scope():
    """Within the block, :func:`file_identity` stats each path once.

    For one batch of cache look-ups (one ``transform`` call): a file named by
    many cells, or by a deferred image's key and its own cell, is stat-ed once;
    a file changed during the block is seen at the next block. Nested blocks
    share the outermost one's identities.
    """
    if getattr(_SCOPE, "memo", None) is not None:
        yield
        return
    _SCOPE.memo = {}
    try:
        yield
    finally:
        _SCOPE.memo = None


def file_identity(path):
    """Return the identity of a file or DICOM folder (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    list or None
        JSON-able identity; None if ``path`` cannot be stat-ed. Inside
        :func:`identity_scope`, the identity found first for ``path``.
    """
    memo = getattr(_SCOPE, "memo", None)
    if memo is None:
        return _identity(path)
    name = os.fspath(path)
    try:
        return memo[name]
    except KeyError:
        memo[name] = identity = _identity(name)
        return identity


def _identity(path):
    try:
        path = os.path.abspath(path)
        st = os.stat(path)  # follows links: device and inode of the target
        stats = [[path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                  st.st_ctime_ns]]
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(path)):
                s = os.stat(os.path.join(path, name))
                stats.append([name, s.st_ino, s.st_size, s.st_mtime_ns,
                              s.st_ctime_ns])
    except OSError:
        return None
    return stats
