"""Files of the radiomics cache read and appended without trusting the folder.

Whoever can write to a cache folder can put anything under an entry's name: a
symbolic link (to ``/dev/zero``, to a file of the victim's), a FIFO, a device,
a file of many gigabytes. :func:`read_regular` opens an entry or index file
without following a link and without blocking (``O_NOFOLLOW | O_NONBLOCK``),
checks with ``fstat`` on the open descriptor that it is a regular file of at
most :data:`MAX_FILE_BYTES`, and reads at most that many bytes: anything else
is a :class:`RefusedFile`, never a hang nor an unbounded read.
:func:`append_line` appends to the extraction log the same way
(``O_NOFOLLOW | O_APPEND | O_CREAT``, created with the user's umask), so that a
log replaced by a link never makes a run write to the link's target.
"""

import errno
import os
import stat

__all__ = ["MAX_FILE_BYTES", "RefusedFile", "append_line", "count_lines",
           "describe_mode", "read_regular"]

#: Largest entry or index file read (bytes): a PyRadiomics row with every
#: filter is ~0.2 MB, the index of a DICOM folder of 5,000 files ~0.4 MB.
MAX_FILE_BYTES = 16 * 2**20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_READ = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY
_APPEND = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK
           | _CLOEXEC | _BINARY)


class RefusedFile(OSError):
    """A cache file that is not a regular file under the size limit.

    ``str()`` is the reason, e.g. ``"a symbolic link (never followed)"``.
    """


def describe_mode(mode):
    """Why a file of ``st_mode`` is refused (``"not a regular file (a FIFO)"``)."""
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed)"
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return f"not a regular file ({name})"
    return "not a regular file"


def _open(path, flags, mode=0o666):
    try:
        return os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise RefusedFile("a symbolic link (never followed)") from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, a socket
            raise RefusedFile("not a regular file (a FIFO or a socket)") from None
        raise


def read_regular(path, limit=None):
    """Read a regular file of at most ``limit`` bytes without following links.

    Parameters
    ----------
    path : str
    limit : int or None, default=None
        :data:`MAX_FILE_BYTES` when None.

    Returns
    -------
    (os.stat_result, bytes)
        The ``fstat`` of the descriptor read (the identity of the bytes) and
        the content.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    RefusedFile
        A link, FIFO, device, socket, folder, or a file over ``limit``.
    OSError
        Any other failure to read.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    fd = _open(path, _READ)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(describe_mode(st.st_mode))
        if st.st_size > limit:
            raise RefusedFile(f"{st.st_size} bytes, over the {limit}-byte limit "
                              "of a cache file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise RefusedFile(f"grew over the {limit}-byte limit while read")
        return st, b"".join(chunks)
    finally:
        os.close(fd)


def append_line(path, line):
    """Append ``line`` (text) to the regular file ``path``, created if absent.

    Raises
    ------
    RefusedFile
        ``path`` is a link, FIFO, device...: nothing is written anywhere.
    OSError
        A write error (a full disk: ``errno.ENOSPC``), or a short write.
    """
    data = line.encode()
    fd = _open(path, _APPEND)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(describe_mode(st.st_mode))
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, f"wrote {written} of {len(data)} bytes",
                          path)
    finally:
        os.close(fd)


def count_lines(path):
    """Count the non-blank lines of the regular file ``path`` (0 if absent).

    Raises
    ------
    RefusedFile
        ``path`` is a link, FIFO, device...
    """
    try:
        fd = _open(path, _READ)
    except FileNotFoundError:
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(describe_mode(st.st_mode))
        count, tail = 0, b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            count += sum(1 for text in lines if text.strip())
        return count + (1 if tail.strip() else 0)
    finally:
        os.close(fd)
