"""The one way the library writes a file: all of it under its name, or nothing.

Every writer (harmonized images, the command line's tables, manifests, the
cache) goes through :func:`write_atomically`:

1. the content is written to a temporary name in the target's own folder
   (``.<name>.<random><suffix>``, created ``0600`` by :func:`tempfile.mkstemp`);
2. what was written is checked: the file is not empty, its size is the byte
   count the writer announced, and an optional ``check`` reads it back (e.g.
   an image header against the bytes the file holds);
3. the file is given the user's ordinary mode (``0o666 & ~umask``), flushed to
   disk (``fsync``), renamed onto the final name with :func:`os.replace`
   (atomic on POSIX within one folder), and the folder is flushed so that the
   rename itself survives a crash.

Any failure (a full disk, a short write, a file that does not read back, an
error raised by the writer half-way) removes the temporary file and raises
:class:`~sklearn_medprep.exceptions.OutputWriteError` naming the row and the
final file; nothing is ever left under the final name, and an existing file
there is untouched. A process killed half-way leaves at most a hidden
``.<name>.*`` file, never a truncated file under the final name.

:func:`stage_file` runs steps 1-2 only, so that a batch of files (the images of
one ``transform``) is renamed only when every one of them was written
(:func:`commit_all`). :func:`pwrite_all` is the checked ``os.pwrite`` of
scratch files.
"""

import errno as errno_codes
import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import OutputWriteError
from ._targets import refuse_inputs

__all__ = [
    "StagedFile",
    "commit_all",
    "discard_tagged",
    "file_mode",
    "full_suffix",
    "pwrite_all",
    "stage_file",
    "write_atomically",
]

# errors a writer raises when the bytes did not reach the disk (ITK raises
# RuntimeError, gzip EOFError/zlib.error on reading back)
_WRITE_ERRORS = (OSError, RuntimeError, EOFError)


def file_mode():
    """Mode of a new file created with the user's umask (``0o666 & ~umask``).

    :func:`tempfile.mkstemp` creates ``0600`` files; outputs are given the mode
    ``open(path, "w")`` would have given them, so that colleagues can read
    them where the umask allows it.

    Returns
    -------
    int

    Examples
    --------
    >>> import os
    >>> from sklearn_medprep.io import file_mode
    >>> old = os.umask(0o022)
    >>> oct(file_mode())
    '0o644'
    >>> _ = os.umask(old)
    """
    umask = _read_umask()
    return 0o666 & ~umask


def _read_umask():
    # /proc/self/status gives it without changing it (os.umask is the only
    # portable way to read it, and it changes the process's umask for a
    # moment, which other threads could see)
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def full_suffix(path):
    """The file type suffix of ``path``, two parts for compressed files.

    Image writers (ITK, nibabel) choose the format from the name: a temporary
    name must end with the same suffix.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    str
        E.g. ``".nii.gz"``, ``".nrrd"``, ``""``.

    Examples
    --------
    >>> from sklearn_medprep.io import full_suffix
    >>> full_suffix("out/sub-01.nii.gz"), full_suffix("f.csv"), full_suffix("README")
    ('.nii.gz', '.csv', '')
    """
    suffixes = Path(path).suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() in {".gz", ".bz2", ".xz", ".zst"}:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def discard_tagged(paths, tag, suffix=".part"):
    """Remove the temporary files ``stage_file(path, ..., tag=tag)`` left.

    For a batch staged in worker processes of which one failed: the others'
    staged files never came back to be discarded. Only names with this call's
    ``tag`` are removed.

    Parameters
    ----------
    paths : iterable of str
        Final names of the batch.
    tag : str
        The ``tag`` given to :func:`stage_file`.
    suffix : str, default=".part"
        The ``suffix`` given to :func:`stage_file`.
    """
    for path in paths:
        folder = Path(path).parent
        for tmp in folder.glob(f".{glob.escape(Path(path).name)}.{tag}.*"):
            if tmp.name.endswith(suffix):
                try:
                    tmp.unlink()
                except FileNotFoundError:
                    pass


@dataclass
class StagedFile:
    """A file written in full under a temporary name, waiting for its rename.

    Returned by :func:`stage_file`; :meth:`commit` renames it onto ``path``,
    :meth:`discard` removes it. Picklable (joblib workers return it).

    Attributes
    ----------
    path : str
        The final name.
    tmp : str
        The temporary name, in the same folder.
    row : hashable
        The row named in errors.
    fsync : bool
        Whether the folder is flushed after the rename.
    overwrite : bool
        Whether an existing file under ``path`` may be replaced.
    """

    path: str
    tmp: str
    row: object = None
    fsync: bool = True
    overwrite: bool = True

    def commit(self):
        """Rename the file onto its final name (atomically); return the path."""
        try:
            if self.overwrite:
                os.replace(self.tmp, self.path)
            else:
                _link_no_clobber(self.tmp, self.path, self.row)
            if self.fsync:
                _fsync_folder(os.path.dirname(self.path) or ".")
        except OutputWriteError:
            self.discard()
            raise
        except OSError as exc:
            self.discard()
            raise _error(f"could not be renamed into place ({exc})", self, exc) from exc
        return self.path

    def discard(self):
        """Remove the temporary file (nothing is left under any name)."""
        try:
            os.remove(self.tmp)
        except FileNotFoundError:
            pass


def _link_no_clobber(tmp, path, row):
    try:
        os.link(tmp, path)  # fails atomically when ``path`` exists
    except FileExistsError:
        raise OutputWriteError(
            "exists already and overwrite=False", row=row, file=path,
            errno=errno_codes.EEXIST,
        ) from None
    except OSError:  # no hard links here (FAT, some network shares)
        if os.path.lexists(path):
            raise OutputWriteError(
                "exists already and overwrite=False", row=row, file=path,
                errno=errno_codes.EEXIST,
            ) from None
        os.replace(tmp, path)
        return
    os.remove(tmp)


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a folder that cannot be opened (Windows): nothing to flush
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno_codes.EINVAL, errno_codes.EBADF):
            raise
    finally:
        os.close(fd)


def _error(what, staged, exc=None):
    code = getattr(exc, "errno", None)
    free = _free_bytes(staged.path) if staged.tmp else None
    if not isinstance(code, int) and free is not None:
        if free < 65536:
            # writers that swallow ENOSPC (ITK) leave an empty or short file
            code = errno_codes.ENOSPC
        else:
            what = f"{what} ({free} bytes are free on its disk)"
    if code == errno_codes.ENOSPC or code == errno_codes.EDQUOT:
        what = f"{what}: the disk is full (free space or choose another folder)"
    return OutputWriteError(
        f"was not written: {what}; nothing was left under this name",
        row=staged.row,
        file=staged.path,
        errno=code if isinstance(code, int) else None,
    )


def _free_bytes(path):
    try:
        info = os.statvfs(os.path.dirname(path) or ".")
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    return info.f_bavail * info.f_frsize


def stage_file(
    path,
    write,
    *,
    check=None,
    fsync=True,
    row=None,
    overwrite=True,
    inputs=(),
    suffix=".part",
    empty_ok=False,
    tag="",
):
    """Write a file under a temporary name in its folder and check it.

    Steps 1-2 of :func:`write_atomically`; the caller renames the result with
    :meth:`StagedFile.commit` (or :func:`commit_all`). Parameters are those of
    :func:`write_atomically`.

    Parameters
    ----------
    path : str or pathlib.Path
        Final name.
    write : callable
        ``write(tmp_path)``.
    check : callable, default=None
        ``check(tmp_path)``.
    fsync : bool, default=True
        Flush file and folder.
    row : hashable, default=None
        Row named in errors.
    overwrite : bool, default=True
        Whether an existing file may be replaced.
    inputs : iterable of path, default=()
        Files that must not be written over.
    suffix : str, default=".part"
        End of the temporary name.
    empty_ok : bool, default=False
        Whether an empty file is a valid output.
    tag : str, default=""
        Put in the temporary name (``.<name>.<tag>.<random><suffix>``), so that
        :func:`discard_tagged` finds one batch's files.

    Returns
    -------
    StagedFile

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_medprep.io import stage_file
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "a.txt")
    >>> staged = stage_file(target, lambda tmp: open(tmp, "w").write("hello"))
    >>> os.path.exists(target), os.path.getsize(staged.tmp)
    (False, 5)
    >>> staged.commit() == target, open(target).read()
    (True, 'hello')
    """
    path = str(path)
    folder = os.path.dirname(path) or "."
    refuse_inputs(path, inputs, row=row)
    if not overwrite and os.path.lexists(path):
        raise OutputWriteError(
            "exists already and overwrite=False", row=row, file=path,
            errno=errno_codes.EEXIST,
        )
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=folder,
            prefix=f".{os.path.basename(path)}." + (f"{tag}." if tag else ""),
            suffix=suffix,
        )
        os.close(fd)
    except OSError as exc:
        raise _error(
            f"no file can be created in {folder!r} ({exc})",
            StagedFile(path, "", row), exc,
        ) from exc
    staged = StagedFile(path, tmp, row, fsync, overwrite)
    try:
        try:
            announced = write(tmp)
        except _WRITE_ERRORS as exc:
            raise _error(f"the writer failed ({type(exc).__name__}: {exc})",
                         staged, exc) from exc
        size = os.stat(tmp).st_size
        if isinstance(announced, int) and not isinstance(announced, bool):
            if size != announced:
                raise _error(f"{size} of {announced} bytes reached the disk "
                             "(a short write)", staged)
        if size == 0 and not empty_ok:
            raise _error("0 bytes reached the disk", staged)
        if check is not None:
            try:
                verdict = check(tmp)
            except Exception as exc:  # any read-back failure is a bad file
                raise _error(f"it does not read back ({type(exc).__name__}: "
                             f"{exc})", staged, exc) from exc
            if verdict is False or isinstance(verdict, str):
                raise _error(f"it does not read back"
                             f"{': ' + verdict if verdict else ''}", staged)
        os.chmod(tmp, file_mode())
        if fsync:
            _fsync_file(tmp)
    except OutputWriteError:
        staged.discard()
        raise
    except OSError as exc:
        staged.discard()
        raise _error(str(exc), staged, exc) from exc
    except BaseException:
        staged.discard()
        raise
    return staged


def _fsync_file(tmp):
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_all(staged):
    """Rename staged files into place, or remove them all if one fails.

    Parameters
    ----------
    staged : list of StagedFile or None
        Files from :func:`stage_file` (None entries are skipped).

    Returns
    -------
    list of str
        The final paths, in order.

    Raises
    ------
    OutputWriteError
        A rename failed: the staged files not yet renamed are removed.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_medprep.io import commit_all, stage_file
    >>> folder = tempfile.mkdtemp()
    >>> files = [stage_file(os.path.join(folder, f"{k}.txt"),
    ...                     lambda tmp: open(tmp, "w").write("x")) for k in "ab"]
    >>> [os.path.basename(p) for p in commit_all(files)]
    ['a.txt', 'b.txt']
    """
    staged = [s for s in staged if s is not None]
    done = []
    try:
        for item in staged:
            done.append(item.commit())
    except BaseException:
        for item in staged[len(done):]:
            item.discard()
        raise
    return done


def write_atomically(
    path,
    write,
    *,
    check=None,
    fsync=True,
    row=None,
    overwrite=True,
    inputs=(),
    suffix=".part",
    empty_ok=False,
):
    """Write a file in full under its final name, or leave nothing there.

    ``write(tmp)`` writes the content to a temporary name in the same folder;
    the bytes are checked (not empty, the size ``write`` announced, ``check``),
    the file gets the user's umask mode, is flushed to disk and renamed onto
    ``path`` atomically. On any failure the temporary file is removed and an
    :class:`~sklearn_medprep.exceptions.OutputWriteError` names ``row`` and
    ``path``; a file already under ``path`` is left as it was.

    Parameters
    ----------
    path : str or pathlib.Path
        Final name. Its folder is created if needed.
    write : callable
        ``write(tmp_path)`` writes the content to ``tmp_path`` (a str). It may
        return the number of bytes it meant to write: the file's size on disk
        must then equal it (a short write is an error).
    check : callable, default=None
        ``check(tmp_path)`` reads the written file back (e.g. its header and
        size). It fails by raising, or by returning False or a message.
    fsync : bool, default=True
        Flush the file before the rename and the folder after it (the file and
        its name survive a crash of the machine).
    row : hashable, default=None
        Row whose output this is, named in errors.
    overwrite : bool, default=True
        Whether an existing file under ``path`` may be replaced (atomically).
        With False, an existing file is an error (checked again at the rename,
        without a race, where the file system has hard links).
    inputs : iterable of str or pathlib.Path, default=()
        Files that must not be written over (e.g. the input images): ``path``
        being one of them is refused before anything is written.
    suffix : str, default=".part"
        End of the temporary name. Writers that choose the format from the
        name (ITK, nibabel) need the real one: ``suffix=full_suffix(path)``.
    empty_ok : bool, default=False
        Whether an empty file is a valid output (else 0 bytes is an error).

    Returns
    -------
    path : str
        The final name.

    Raises
    ------
    OutputWriteError
        The file could not be written in full (``errno`` tells e.g. a full
        disk), does not read back, or is a refused target.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_medprep.io import write_atomically
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "notes.txt")
    >>> _ = write_atomically(target, lambda tmp: open(tmp, "w").write("hello"))
    >>> open(target).read()
    'hello'

    A writer that fails half-way leaves nothing under the final name:

    >>> def half(tmp):
    ...     open(tmp, "w").write("hel")
    ...     raise OSError(28, "No space left on device")
    >>> write_atomically(os.path.join(folder, "b.txt"), half, row="s1")
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.OutputWriteError: [row 's1', file '...b.txt'] was not \
written: the writer failed (OSError: [Errno 28] No space left on device): the disk is \
full (free space or choose another folder); nothing was left under this name
    >>> sorted(os.listdir(folder))
    ['notes.txt']
    """
    staged = stage_file(
        path, write, check=check, fsync=fsync, row=row, overwrite=overwrite,
        inputs=inputs, suffix=suffix, empty_ok=empty_ok,
    )
    return staged.commit()


def pwrite_all(fd, data, offset, *, file=None, row=None):
    r"""``os.pwrite`` every byte of ``data`` at ``offset``, or raise naming the file.

    ``os.pwrite`` may write fewer bytes than asked (a full disk, a signal):
    the rest is written in a loop; no progress or an ``OSError`` is an
    :class:`~sklearn_medprep.exceptions.OutputWriteError` naming ``file`` and
    ``row``.

    Parameters
    ----------
    fd : int
        Open file descriptor.
    data : bytes-like
        What to write.
    offset : int
        Where, in bytes from the start of the file.
    file : str, default=None
        The file's name (for the error).
    row : hashable, default=None
        The row whose data these are (for the error).

    Returns
    -------
    int
        Bytes written (``len(data)``).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_medprep.io import pwrite_all
    >>> fd, name = tempfile.mkstemp()
    >>> pwrite_all(fd, b"abcdef", 2, file=name)
    6
    >>> os.close(fd); open(name, "rb").read()
    b'\x00\x00abcdef'
    """
    view = memoryview(data).cast("B")
    total = view.nbytes
    done = 0
    while done < total:
        try:
            n = os.pwrite(fd, view[done:], offset + done)
        except InterruptedError:
            continue
        except OSError as exc:
            raise _scratch_error(done, total, file, row, exc) from exc
        if n <= 0:
            raise _scratch_error(done, total, file, row, None)
        done += n
    return total


def _scratch_error(done, total, file, row, exc):
    code = errno_codes.ENOSPC if exc is None else exc.errno
    reason = "no space left" if exc is None else str(exc)
    if code in (errno_codes.ENOSPC, errno_codes.EDQUOT):
        reason += ": the disk is full (free space or choose another scratch_dir)"
    return OutputWriteError(
        f"only {done} of {total} bytes were written to the scratch file ({reason})",
        row=row,
        file=file,
        errno=code,
    )
