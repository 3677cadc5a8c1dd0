"""The radiomics feature cache: JSON entries bound to their key, no pickle.

Layout, inside the folder given as ``memory=`` (or a ``joblib.Memory``'s
``location``)::

    sklearn_medprep_cache/radiomics/ab/<entry key>.json   one row's features
    sklearn_medprep_cache/files/cd/<identity hash>.json   file identity -> content key
    sklearn_medprep_radiomics_extractions.log             one line per extraction

**Entries.** An entry holds the feature names and values of one (image, mask,
label, lesion, settings, versions) as JSON text: a header line (format, key,
SHA-256 of the key and the payload bytes) and a payload line (names, values),
so that the check hashes bytes and decodes nothing before it passes. Reading an entry
never runs code (``json.loads`` of the text, values rebuilt only as floats,
strings, tuples, dicts and numeric arrays); an entry that does not parse, whose
key is not the one asked for (a file copied or renamed from another key), or
whose checksum does not match (truncated or edited) is ignored with a
:class:`~sklearn_medprep.exceptions.MedprepWarning`, the row is extracted again
and the entry rewritten. Files of any
other kind in the folder (joblib pickles of older versions included) are never
opened.

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

**Trust.** The checksum detects accidents (truncation, a disk or copy error, an
entry under the wrong name); it is not a signature: whoever can write to the
folder can write a consistent entry holding wrong values, or an index line
pointing a file at another image's key. Such a writer cannot run code in the
processes that read the cache. Share a cache folder only with people you trust
with your features.
"""

import hashlib
import json
import os
import stat
import tempfile
import threading
import warnings
from contextlib import contextmanager

import numpy as np

from ..exceptions import MedprepWarning
from ..utils._memo import clear_memos

__all__ = ["FeatureCache", "as_feature_cache", "EXTRACTION_LOG"]

#: Name of the file, inside the cache folder, where every actual (non-cached)
#: extraction appends one line; see :func:`count_extractions`.
EXTRACTION_LOG = "sklearn_medprep_radiomics_extractions.log"

_FORMAT = "sklearn-medprep/radiomics-features/1"
_INDEX_FORMAT = "sklearn-medprep/file-key/1"
_ROOT = "sklearn_medprep_cache"

# per process: (cache folder, file identity) -> content key (never stale: the
# identity includes size, mtime and ctime); mirrors the folder's index
_FILE_KEYS = {}

# per process: entry path -> (the entry file's identity when it was verified,
# its [(name, value), ...]); a hit whose file is unchanged costs one ``stat``
_ENTRIES = {}
_MAX_ENTRIES = 200_000

# per process: cache folders already created (``prepare`` once per folder)
_PREPARED = set()

# per process: entry_key arguments -> entry key (a SHA-256 of them)
_ENTRY_KEYS = {}

# per thread, inside ``identity_scope``: path -> file identity (one ``stat`` of
# each file per batch of look-ups, however many cells name it)
_SCOPE = threading.local()


def _stat_identity(path):
    """(inode, size, mtime, ctime) of ``path``: a rewritten entry changes it."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def clear_memory():
    """Forget what this process remembers of every cache folder (file keys and
    verified entries), as a fresh process would; the folders are untouched.
    """
    _FILE_KEYS.clear()
    _ENTRIES.clear()
    _PREPARED.clear()
    _ENTRY_KEYS.clear()
    clear_memos()  # the deferred images' memos, where loaded


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


def _sha256(*parts):
    text = json.dumps(parts, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _frozen(identity):
    return tuple(tuple(part) for part in identity)


def _encode(value):
    """Return ``value`` as JSON data, tagging tuples, dicts and arrays; or raise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, np.generic):
        return _encode(value.item())
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"ndarray": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, (tuple, list)):
        return {"tuple" if isinstance(value, tuple) else "list":
                [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[str(k), _encode(v)] for k, v in value.items()]}
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _decode(value):
    if isinstance(value, list):
        raise ValueError("untagged list")
    if not isinstance(value, dict):
        if isinstance(value, float) or value is None or isinstance(
            value, (bool, str, int)
        ):
            return value
        raise ValueError(f"unexpected {type(value).__name__}")
    if len(value) == 2 and "ndarray" in value:
        dtype = np.dtype(str(value["dtype"]))
        if dtype.kind not in "biuf":
            raise ValueError("non-numeric array")
        return np.asarray(value["ndarray"], dtype=dtype)
    if len(value) != 1:
        raise ValueError("unknown tag")
    (tag, data), = value.items()
    if tag == "tuple":
        return tuple(_decode(v) for v in data)
    if tag == "list":
        return [_decode(v) for v in data]
    if tag == "dict":
        return {str(k): _decode(v) for k, v in data}
    raise ValueError(f"unknown tag {tag!r}")


def _write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (readers never see half a file)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_json(path, data):
    _write_bytes(path, json.dumps(data, separators=(",", ":")).encode())


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


class FeatureCache:
    """Features of (image, mask, label, settings) in JSON files of one folder.

    Parameters
    ----------
    location : str or os.PathLike
        The cache folder (created on first use).

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

    def __init__(self, location):
        self.location = os.fspath(location)

    def __repr__(self):
        return f"FeatureCache({self.location!r})"

    def __eq__(self, other):
        return isinstance(other, FeatureCache) and other.location == self.location

    def __hash__(self):
        return hash(self.location)

    @property
    def log_file(self):
        """Path of the extraction log (see :func:`count_extractions`)."""
        return os.path.join(self.location, EXTRACTION_LOG)

    def prepare(self):
        """Create the folder; raise an ``OSError`` saying what to do if impossible."""
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
        _PREPARED.add(self.location)

    # ------------------------------------------------------------ file keys
    def _index_path(self, identity):
        digest = _sha256(_INDEX_FORMAT, identity)
        return os.path.join(self.location, _ROOT, "files", digest[:2],
                            digest + ".json")

    def known_key(self, identity):
        """Return the content key recorded for a file identity, or None."""
        if identity is None:
            return None
        memo = (self.location, _frozen(identity))
        key = _FILE_KEYS.get(memo)
        if key is not None:
            return key
        try:
            with open(self._index_path(identity)) as handle:
                data = json.load(handle)
            key = data["key"]
            if (
                data.get("format") != _INDEX_FORMAT
                or data.get("identity") != identity
                or data.get("sha256") != _sha256(_INDEX_FORMAT, identity, key)
            ):
                return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        _FILE_KEYS[memo] = key
        return key

    def record_key(self, identity, key):
        """Remember that the file of ``identity`` has content key ``key``."""
        if identity is None:
            return
        _FILE_KEYS[(self.location, _frozen(identity))] = key
        _write_json(self._index_path(identity), {
            "format": _INDEX_FORMAT, "identity": identity, "key": key,
            "sha256": _sha256(_INDEX_FORMAT, identity, key),
        })

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

    def get(self, key, notes=None):
        """Return the ``[(name, value), ...]`` of entry ``key``, or None.

        A bad entry (unparsable, foreign, checksum mismatch) is not served; a
        line saying why is appended to ``notes`` (or warned when None). An
        entry verified before by this process is served from memory while its
        file's identity (inode, size, modification and status-change times) is
        unchanged: a hit then costs one ``stat``, and an entry rewritten or
        edited since is read and verified again.
        """
        path = self._entry_path(key)
        try:
            identity = _stat_identity(path)
            known = _ENTRIES.get(path)
            if known is not None and known[0] == identity:
                return list(known[1])
            with open(path, "rb") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            problem = f"unreadable ({exc})"
        else:
            problem = self._problem(key, text)
            if problem is None:
                try:
                    data = json.loads(text.partition(b"\n")[2])
                    names, values = data["names"], data["values"]
                    if len(names) != len(values) or not all(
                        isinstance(n, str) for n in names
                    ):
                        raise ValueError("malformed names/values")
                    values = list(zip(names, [
                        v if type(v) is float else _decode(v) for v in values
                    ]))
                    _remember(path, identity, values)
                    return list(values)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    problem = f"malformed content ({exc})"
        message = (
            f"radiomics cache entry {path!r} ignored: {problem}; the row is "
            "extracted again and the entry rewritten"
        )
        if notes is None:
            warnings.warn(message, MedprepWarning, stacklevel=2)
        else:
            notes.append(message)
        return None

    @staticmethod
    def _problem(key, text):
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
        if not newline or header.get("sha256") != _payload_digest(key, payload):
            return "its checksum does not match (truncated or edited)"
        return None

    def put(self, key, values):
        """Store ``[(name, value), ...]`` under ``key`` (skipped if not JSON-able)."""
        names = [str(name) for name, _ in values]
        try:
            encoded = [_encode(value) for _, value in values]
        except TypeError:
            return
        payload = json.dumps({"names": names, "values": encoded},
                             separators=(",", ":"), allow_nan=True).encode()
        header = json.dumps({"format": _FORMAT, "key": key,
                             "sha256": _payload_digest(key, payload)}).encode()
        path = self._entry_path(key)
        _write_bytes(path, header + b"\n" + payload + b"\n")
        try:
            _remember(path, _stat_identity(path), [
                (name, _decode(value)) for name, value in zip(names, encoded)
            ])  # as a read of the entry would give them
        except (OSError, ValueError):
            pass


def _remember(path, identity, values):
    if len(_ENTRIES) >= _MAX_ENTRIES:
        _ENTRIES.clear()  # a bound on memory; entries are read again on need
    _ENTRIES[path] = (identity, values)


def _payload_digest(key, payload):
    return hashlib.sha256(key.encode() + b"\n" + payload.rstrip(b"\n")).hexdigest()


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
