"""The radiomics feature cache: JSON entries bound to their key, no pickle.

Layout, inside the folder given as ``memory=`` (or a ``joblib.Memory``'s
``location``)::

    sklearn_medprep_cache/radiomics/ab/<entry key>.json   one row's features
    sklearn_medprep_cache/files/cd/<identity hash>.json   file identity -> content key
    sklearn_medprep_radiomics_extractions.log             one line per extraction

**Entries.** An entry holds the feature names and values of one (image, mask,
label, lesion, settings, versions) as JSON text: a header line (format, key,
HMAC-SHA256 of the format, the key and the payload bytes) and a payload line
(names, values), so that the check hashes bytes and decodes nothing before it
passes. Reading an entry never runs code (:mod:`._cachecodec`). An entry or
index file is opened without following links and without blocking, and read
only if ``fstat`` says it is a regular file of at most 16 MiB
(:mod:`._cachefiles`). An entry that is refused (a link, FIFO, device,
oversized file), does not parse, belongs to another key (a file copied or
renamed), fails authentication (truncated, edited, forged, written with
another key) or, for the extractor, holds a non-number where a feature
belongs, is not served: a :class:`~sklearn_medprep.exceptions.MedprepWarning`
names the row and the file, once, the row is extracted again and the entry
rewritten. An index file that fails the same checks is warned about (named)
and the image is read and hashed again. Files of any other kind in the folder
(joblib pickles of older versions, the unkeyed entries of format 1) are never
opened: their names are not the names of this format, so they are misses.

**Content keys without re-reading.** The key of an image is the SHA-256 of its
voxels and geometry (:func:`~sklearn_medprep.io._read.image_fingerprint`), computed
when the image is read for an extraction anyway. For a path, it is then
remembered against the file's *identity*: absolute path, device, inode, size,
modification time and status-change time (``st_ctime_ns``, which no user call can
set back); for a DICOM folder, the identities of all its files. A hit for an
unchanged file costs one ``stat`` and two small JSON reads; the image is not
read. Within one batch of look-ups (one ``transform`` call,
:func:`identity_scope`) each file is stat-ed once, however many cells name it;
what a process has read and verified (file keys, entries) it keeps in memory,
so that a hit in a process that has seen the entry before costs the ``stat`` of
its sources and of the entry file, and no read. A rewritten file gets a new
``ctime`` (and usually a new size or ``mtime``), so it is read and hashed
again, and a changed content gets new entries. What is not detected: a file
whose bytes change while keeping inode, size, ``mtime`` and ``ctime`` (a file
system without ``ctime``, or one with coarse timestamps where the change
happens in the same tick as the previous hash).

**Trust** (:mod:`._cachekey`). The HMAC key lives outside the folder: the
user's own (``~/.config/sklearn-medprep/cache.key``, made 0600 on first use)
or a team's (``key_file=`` or ``$SKLEARN_MEDPREP_CACHE_KEY``). Someone who can
write to the folder but cannot read the key cannot make the cache serve a
value of theirs, nor point a file at another subject's entry (the MAC covers
the file identity and the content key; the entry key covers image, mask,
label and settings); they can delete entries (extracted again) and fill the
disk. Whoever can read the key can forge: for a shared cache, everyone in the
team. The extraction log is appended without following links; a log that is
a link or not a regular file is an error naming it. A folder writable by
every user (no sticky bit) is warned about; a full disk stops the caching
of this process, said once, the features still computed.
"""

import errno
import hashlib
import hmac
import json
import os
import stat
import warnings

from ..exceptions import MedprepWarning
from ..io._write import write_atomically
from ..utils._memo import clear_memos
from ._cachecodec import NotNumber, decode, encode, entry_values, non_number
from ._cachefiles import (
    MAX_FILE_BYTES,
    RefusedFile,
    append_line,
    count_lines,
    describe_mode,
    read_regular,
)
from ._cachekey import clear_keys, default_key_path, load_key
from ._fileid import file_identity, identity_scope

__all__ = ["FeatureCache", "as_feature_cache", "EXTRACTION_LOG", "file_identity",
           "identity_scope"]

#: Name of the file, inside the cache folder, where every actual (non-cached)
#: extraction appends one line; see :func:`count_extractions`.
EXTRACTION_LOG = "sklearn_medprep_radiomics_extractions.log"

# version 2: authenticated with HMAC-SHA256 under the user's (or team's) key;
# the version is part of every entry key and index file name, so that the
# unkeyed files of version 1 are never opened (misses, extracted again)
_FORMAT = "sklearn-medprep/radiomics-features/2"
_INDEX_FORMAT = "sklearn-medprep/file-key/2"
_ROOT = "sklearn_medprep_cache"

# per process: (cache folder, key file, file identity) -> content key (never stale: the
# identity includes size, mtime and ctime); mirrors the folder's index
_FILE_KEYS = {}

# per process: (key file, entry path) -> (the entry file's identity when it was
# verified, its [(name, value), ...], why a feature is not a number or None);
# a hit whose file is unchanged costs one ``lstat``
_ENTRIES = {}
_MAX_ENTRIES = 200_000

# per process: cache folders already created (``prepare`` once per folder)
_PREPARED = set()

# per process: entry_key arguments -> entry key (a SHA-256 of them)
_ENTRY_KEYS = {}

# per process: cache folder -> whether "caching stopped" was said (the folder's
# disk was full: nothing more is written there by this process)
_FULL = {}

# per process: (index file, its identity) already warned about
_WARNED = set()

def _stat_identity(path):
    """(inode, size, mtime, ctime) of ``path`` itself (a link not followed).

    A rewritten or replaced entry changes it.
    """
    return _st_identity(os.lstat(path))


def _st_identity(st):
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def clear_memory():
    """Forget what this process remembers of every cache folder (file keys and
    verified entries), as a fresh process would; the folders are untouched.
    """
    _FILE_KEYS.clear()
    _ENTRIES.clear()
    _PREPARED.clear()
    _ENTRY_KEYS.clear()
    _FULL.clear()
    _WARNED.clear()
    clear_keys()
    clear_memos()  # the deferred images' memos, where loaded


def _sha256(*parts):
    text = json.dumps(parts, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _frozen(identity):
    return tuple(tuple(part) for part in identity)


def _write_bytes(path, data):
    """Write ``data`` to ``path`` atomically with the project's one writer.

    Readers never see half a file; the entry gets the user's umask mode (a
    team's group can read a shared cache). No ``fsync``: an entry lost in a
    crash is a miss, one garbled fails authentication. A full disk raises an
    :class:`~sklearn_medprep.exceptions.OutputWriteError` (an ``OSError``) with
    ``errno.ENOSPC``.
    """
    def write(tmp):
        with open(tmp, "wb") as out:
            out.write(data)
        return len(data)

    write_atomically(path, write, fsync=False)


def _write_json(path, data):
    _write_bytes(path, json.dumps(data, separators=(",", ":")).encode())


class FeatureCache:
    """Features of (image, mask, label, settings) in JSON files of one folder.

    Entries and index files are authenticated with HMAC-SHA256 under a secret
    key kept outside the folder (see :mod:`sklearn_medprep.radiomics._cachekey`).

    Parameters
    ----------
    location : str or os.PathLike
        The cache folder (created on first use).
    key_file : str, os.PathLike or None, default=None
        The key file (a team's, for a shared cache). None: the file named by
        ``$SKLEARN_MEDPREP_CACHE_KEY``, else the user's own key
        (``~/.config/sklearn-medprep/cache.key``, created on first use). Made
        absolute here, in the process that makes the cache: workers get the
        path, never the key.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_medprep.radiomics._cache import FeatureCache
    >>> cache = FeatureCache(tempfile.mkdtemp())
    >>> key = cache.entry_key("a" * 64, "b" * 64, 1, "{}")
    >>> cache.put(key, [("original_firstorder_Mean", 1.5)])
    >>> cache.get(key)
    [('original_firstorder_Mean', 1.5)]
    """

    def __init__(self, location, key_file=None):
        self.location = os.fspath(location)
        self.key_file = default_key_path(key_file)

    def __repr__(self):
        return f"FeatureCache({self.location!r}, key_file={self.key_file!r})"

    def __eq__(self, other):
        return (isinstance(other, FeatureCache) and other.location == self.location
                and other.key_file == self.key_file)

    def __hash__(self):
        return hash((self.location, self.key_file))

    def __setstate__(self, state):  # pickles of versions without a key file
        self.__dict__.update(state)
        if "key_file" not in state:
            self.key_file = default_key_path()

    @property
    def log_file(self):
        """Path of the extraction log (see :func:`count_extractions`)."""
        return os.path.join(self.location, EXTRACTION_LOG)

    def prepare(self, worker=False):
        """Create the folder, read (or make) the key, check the log and the
        folder's permissions; raise an ``OSError`` saying what to do if unusable.

        A folder writable by every user (without the sticky bit) is warned
        about, once per process. ``worker=True``: the key is never made here.
        """
        if self.location in _PREPARED and os.path.isdir(
            os.path.join(self.location, _ROOT)
        ):  # one stat: the folder may have been removed since
            return
        try:
            os.makedirs(os.path.join(self.location, _ROOT), exist_ok=True)
        except OSError as exc:
            raise OSError(
                f"cannot use the radiomics cache folder {self.location!r} ({exc}); "
                "a fitted extractor loaded on another machine keeps the cache path "
                "it was fitted with: set_params(memory=None) or a writable folder"
            ) from exc
        load_key(self.key_file, create=not worker)
        self._check_log()
        for folder in (self.location, os.path.join(self.location, _ROOT)):
            mode = os.stat(folder).st_mode
            if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
                warnings.warn(
                    f"radiomics cache folder {folder!r} is writable by every user "
                    f"(mode {stat.S_IMODE(mode):o}, no sticky bit): anyone on this "
                    "machine can delete its entries or plant files in it (forged "
                    "entries are refused and extracted again, but the cache can "
                    f"be emptied); chmod o-w {folder!r}, or use a folder of your "
                    "own (or your team's group)",
                    MedprepWarning, stacklevel=3,
                )
        _PREPARED.add(self.location)

    def _check_log(self):
        try:
            mode = os.lstat(self.log_file).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise _log_refused(self.log_file, describe_mode(mode))

    # ------------------------------------------------------------ integrity
    def _mac(self, *parts):
        """HMAC-SHA256 (hex) of ``parts`` (bytes), each length-prefixed."""
        mac = hmac.new(load_key(self.key_file), digestmod=hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.hexdigest()

    def _index_mac(self, identity, key):
        return self._mac(_INDEX_FORMAT.encode(), json.dumps(
            identity, separators=(",", ":")).encode(), str(key).encode())

    def _entry_mac(self, key, payload):
        return self._mac(_FORMAT.encode(), key.encode(), payload.rstrip(b"\n"))

    # ------------------------------------------------------------ disk full
    def _stopped(self, exc):
        """Whether ``exc`` is a full disk; if so, stop writing to this folder."""
        if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return False
        _FULL.setdefault(self.location, False)
        return True

    def _say_stopped(self, notes):
        """Say once per process that caching stopped (to ``notes`` or warned)."""
        if _FULL.get(self.location) is not False:
            return
        _FULL[self.location] = True
        message = (
            f"radiomics cache folder {self.location!r} is full (no space left "
            "on its disk): caching stopped for this process; the features are "
            "extracted and correct, but no longer stored; free space or give "
            "another memory= folder"
        )
        if notes is None:
            warnings.warn(message, MedprepWarning, stacklevel=3)
        else:
            notes.append(message)

    def log(self, image_key, mask_key, label):
        """Append one line for an actual extraction to the log.

        The log is never followed if it is a link (nor written if it is not
        a regular file): :class:`OSError` naming it. A full disk stops the
        cache (see :meth:`put`), the extraction counts as done.
        """
        if self.location in _FULL:
            return
        try:
            append_line(self.log_file,
                        f"{image_key} {mask_key} {label} {os.getpid()}\n")
        except RefusedFile as exc:
            raise _log_refused(self.log_file, str(exc)) from None
        except OSError as exc:
            if not self._stopped(exc):
                raise

    def extraction_count(self):
        """Lines of the log (0 without a log); a link or FIFO: OSError naming it."""
        try:
            return count_lines(self.log_file)
        except RefusedFile as exc:
            raise _log_refused(self.log_file, str(exc)) from None

    # ------------------------------------------------------------ file keys
    def _index_path(self, identity):
        digest = _sha256(_INDEX_FORMAT, identity)
        return os.path.join(self.location, _ROOT, "files", digest[:2],
                            digest + ".json")

    def known_key(self, identity):
        """Return the content key recorded for a file identity, or None.

        An index file that is not a regular file under the size limit, or
        whose authentication code does not match (edited, swapped with
        another file's, written with another key), is not used (the image is
        read and hashed, the index rewritten), with a
        :class:`~sklearn_medprep.exceptions.MedprepWarning` naming it, once.
        """
        if identity is None:
            return None
        memo = (self.location, self.key_file, _frozen(identity))
        key = _FILE_KEYS.get(memo)
        if key is not None:
            return key
        path = self._index_path(identity)
        try:
            st, text = read_regular(path)
        except FileNotFoundError:
            return None
        except RefusedFile as exc:
            return self._bad_index(path, None, str(exc))
        except OSError:
            return None
        try:
            data = json.loads(text)
            key = data["key"]
            if data.get("format") != _INDEX_FORMAT or not isinstance(key, str):
                return None  # not an index file of this version
            mac = data.get("hmac")
            if not isinstance(mac, str) or not hmac.compare_digest(
                mac, self._index_mac(identity, key)
            ) or data.get("identity") != identity:
                return self._bad_index(
                    path, st, "its authentication code does not match (edited, "
                    "swapped with another file's index, or written with another "
                    "key)")
        except (ValueError, KeyError, TypeError, AttributeError):
            return self._bad_index(path, st, "not a sklearn-medprep index file")
        _FILE_KEYS[memo] = key
        return key

    @staticmethod
    def _bad_index(path, st, problem):
        seen = (path, None if st is None else _st_identity(st))
        if seen not in _WARNED:
            _WARNED.add(seen)
            warnings.warn(
                f"radiomics cache index file {path!r} ignored: {problem}; the "
                "image is read and hashed again and the index file rewritten",
                MedprepWarning, stacklevel=3,
            )
        return None

    def record_key(self, identity, key):
        """Remember that the file of ``identity`` has content key ``key``."""
        if identity is None:
            return
        _FILE_KEYS[(self.location, self.key_file, _frozen(identity))] = key
        if self.location in _FULL:
            return
        try:
            _write_json(self._index_path(identity), {
                "format": _INDEX_FORMAT, "identity": identity, "key": key,
                "hmac": self._index_mac(identity, key),
            })
        except OSError as exc:
            if not self._stopped(exc):
                raise

    # --------------------------------------------------------------- entries
    @staticmethod
    def entry_key(image_key, mask_key, label, settings_key, versions=None, *,
                  lesion=None):
        """Return the key of one row's entry (SHA-256 of everything it depends on).

        ``lesion`` is ``(lesion number, connectivity[, voxel count or None])``
        for one lesion of the label (see
        :mod:`sklearn_medprep.radiomics._lesions`), or None for the whole label
        (the keys written before lesions existed).
        """
        if lesion is not None:
            lesion = (*(int(v) for v in lesion[:2]),
                      *(None if v is None else int(v) for v in lesion[2:3]))
        args = (image_key, mask_key, int(label), settings_key,
                tuple(versions or ()), lesion)
        key = _ENTRY_KEYS.get(args)
        if key is None:
            if len(_ENTRY_KEYS) >= _MAX_ENTRIES:
                _ENTRY_KEYS.clear()
            parts = [_FORMAT, *args[:4], list(args[4])]
            if lesion is not None:
                parts.append(dict(zip(("lesion", "connectivity", "voxels"),
                                      lesion)))
            key = _ENTRY_KEYS[args] = _sha256(*parts)
        return key

    def _entry_path(self, key):
        return os.path.join(self.location, _ROOT, "radiomics", key[:2],
                            key + ".json")

    def get(self, key, notes=None, numbers=False):
        """Return the ``[(name, value), ...]`` of entry ``key``, or None.

        A bad entry (not a regular file under the size limit, unparsable,
        foreign, failed authentication; with ``numbers=True``, as the
        extractor asks, a feature (a name not starting with ``diagnostics_``)
        that is not a number) is not served; a line saying why, naming the
        file, is appended to ``notes`` (or warned when None). An entry
        verified before by this process is served from memory while its
        file's identity (inode, size, modification and status-change times)
        is unchanged: a hit then costs one ``lstat``, and an entry rewritten
        or edited since is read and verified again.
        """
        path = self._entry_path(key)
        try:
            known = _ENTRIES.get((self.key_file, path))
            if known is not None and known[0] == _stat_identity(path):
                if not numbers or known[2] is None:
                    return list(known[1])
                raise NotNumber(known[2])
            st, text = read_regular(path)
        except FileNotFoundError:
            return None
        except (RefusedFile, NotNumber) as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"unreadable ({exc})"
        else:
            problem = self._problem(key, text)
            if problem is None:
                try:
                    values = entry_values(text)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    problem = f"malformed content ({exc})"
                else:
                    bad = non_number(values)
                    _remember((self.key_file, path), _st_identity(st), values,
                              bad)
                    if not numbers or bad is None:
                        return list(values)
                    problem = bad
        message = (
            f"radiomics cache entry {path!r} ignored: {problem}; the row is "
            "extracted again and the entry rewritten"
        )
        if notes is None:
            warnings.warn(message, MedprepWarning, stacklevel=2)
        else:
            notes.append(message)
        return None

    def _problem(self, key, text):
        """Why ``text`` is not a valid entry of ``key`` (None if it is)."""
        header, newline, payload = text.partition(b"\n")
        try:
            header = json.loads(header)
            if not isinstance(header, dict):
                raise ValueError
        except ValueError:
            return "not a sklearn-medprep entry (no JSON header line)"
        if header.get("format") != _FORMAT:
            return "not a sklearn-medprep radiomics entry"
        if header.get("key") != key:
            return "it belongs to another key (copied or renamed)"
        mac = header.get("hmac")
        if not newline or not isinstance(mac, str) or not hmac.compare_digest(
            mac, self._entry_mac(key, payload)
        ):
            return ("its authentication code does not match (truncated, edited "
                    "or forged, or written with another key)")
        return None

    def put(self, key, values, notes=None):
        """Store ``[(name, value), ...]`` under ``key``.

        Skipped if not JSON-able or over the size limit. On a full disk,
        caching stops for this process and the folder: said once (to
        ``notes``, or warned when None), nothing is raised.
        """
        if self.location in _FULL:
            self._say_stopped(notes)
            return
        names = [str(name) for name, _ in values]
        try:
            encoded = [encode(value) for _, value in values]
        except TypeError:
            return
        payload = json.dumps({"names": names, "values": encoded},
                             separators=(",", ":"), allow_nan=True).encode()
        header = json.dumps({"format": _FORMAT, "key": key,
                             "hmac": self._entry_mac(key, payload)}).encode()
        data = header + b"\n" + payload + b"\n"
        if len(data) > MAX_FILE_BYTES:
            return  # it could not be read back
        path = self._entry_path(key)
        try:
            _write_bytes(path, data)
        except OSError as exc:
            if self._stopped(exc):
                self._say_stopped(notes)
                return
            raise
        try:
            values = [(name, decode(value))
                      for name, value in zip(names, encoded)]
            _remember((self.key_file, path), _stat_identity(path), values,
                      non_number(values))
            # as a read of the entry would give them
        except (OSError, ValueError):
            pass


def _log_refused(path, why):
    return OSError(
        f"radiomics extraction log {path!r} refused: {why}; it is never "
        "followed nor written through: someone who can write to the cache "
        "folder replaced it. Remove it (a new log is started) and check who "
        "can write to the folder"
    )


def _remember(memo, identity, values, non_number=None):
    if len(_ENTRIES) >= _MAX_ENTRIES:
        _ENTRIES.clear()  # a bound on memory; entries are read again on need
    _ENTRIES[memo] = (identity, values, non_number)

def as_feature_cache(memory):
    """Return the :class:`FeatureCache` of a ``memory=`` value, or None.

    Parameters
    ----------
    memory : None, str, os.PathLike, FeatureCache or joblib.Memory
        A folder, or an object with a ``location`` (``joblib.Memory``); a
        ``joblib.Memory(location=None)`` means no cache.

    Returns
    -------
    FeatureCache or None
    """
    if memory is None or isinstance(memory, FeatureCache):
        return memory
    if isinstance(memory, (str, os.PathLike)):
        return FeatureCache(memory)
    location = getattr(memory, "location", None)
    if location is None:
        return None
    return FeatureCache(location)
