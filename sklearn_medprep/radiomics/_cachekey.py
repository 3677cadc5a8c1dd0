"""The secret key that authenticates radiomics cache entries (HMAC-SHA256).

The key lives outside every cache folder, so that someone who can write to a
cache folder but cannot read the key cannot write an entry the cache serves.

Where the key is (:func:`default_key_path`, resolved when a
:class:`~sklearn_medprep.radiomics._cache.FeatureCache` is made, in the
process that makes it, and sent to workers as a path, never as bytes):

1. the ``key_file`` given to ``FeatureCache``;
2. else the file named by the environment variable ``SKLEARN_MEDPREP_CACHE_KEY``
   (a team's key for a shared cache);
3. else the user's own key, ``$XDG_CONFIG_HOME/sklearn-medprep/cache.key``
   (``~/.config/sklearn-medprep/cache.key`` when ``XDG_CONFIG_HOME`` is unset).

Only the user's own key is created when missing: 32 random bytes
(``os.urandom``), mode 0600, in a folder created 0700, written under a
temporary name and linked to its final name, so that two processes creating
it at once end with the same key. A named key file (1. and 2.) must exist: a
missing team key is an error naming it, not a fresh key that would disagree
with the team's. A key file readable by every user is warned about once.
"""

import os
import stat
import tempfile
import warnings

from ..exceptions import MedprepWarning
from ._cachefiles import RefusedFile, read_regular

__all__ = ["KEY_ENV", "default_key_path", "load_key", "clear_keys"]

#: Environment variable naming a key file (e.g. a team's, for a shared cache).
KEY_ENV = "SKLEARN_MEDPREP_CACHE_KEY"
_KEY_BYTES = 32
_MIN_KEY_BYTES = 16
_MAX_KEY_BYTES = 4096

# per process: key file path -> key bytes
_KEYS = {}


def clear_keys():
    """Forget the keys read by this process (they are read again on need)."""
    _KEYS.clear()


def user_key_path():
    """The user's own key file (created on first use)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
        os.path.expanduser("~"), ".config")
    return os.path.abspath(os.path.join(base, "sklearn-medprep", "cache.key"))


def default_key_path(key_file=None):
    """Return the absolute path of the key file to use (see the module docstring).

    Parameters
    ----------
    key_file : str, os.PathLike or None, default=None
        A key file given explicitly.

    Returns
    -------
    str
    """
    if key_file is None:
        key_file = os.environ.get(KEY_ENV) or None
    if key_file is None:
        return user_key_path()
    return os.path.abspath(os.path.expanduser(os.fspath(key_file)))


def load_key(path, create=True):
    """Return the key bytes of the key file ``path``; create the user's own key.

    Parameters
    ----------
    path : str
        Absolute path from :func:`default_key_path`.
    create : bool, default=True
        Whether the user's own key may be made here. Workers never make one
        (a key made on another machine would disagree with the client's).

    Returns
    -------
    bytes

    Raises
    ------
    OSError
        The key file cannot be read or created, is not a regular file, or
        holds fewer than 16 bytes; the message names the file and the fix.
    """
    key = _KEYS.get(path)
    if key is not None:
        return key
    try:
        key = _read(path)
    except FileNotFoundError:
        if not create:
            raise FileNotFoundError(
                f"radiomics cache key file {path!r} is not readable here (a "
                "worker on another machine?): every worker must read the key "
                "the client uses; put it on a shared file system and name it "
                f"with ${KEY_ENV} or FeatureCache(key_file=...)"
            ) from None
        if path != user_key_path():
            raise FileNotFoundError(
                f"radiomics cache key file {path!r} does not exist (named by "
                f"key_file= or ${KEY_ENV}); a team's key is made once, e.g. "
                f"(umask 027; head -c 32 /dev/urandom > {path}), and shared by "
                "the team; unset the variable to use your own key"
            ) from None
        key = _create(path)
    _KEYS[path] = key
    return key


def _read(path):
    try:
        st, key = read_regular(path, _MAX_KEY_BYTES)
    except RefusedFile as exc:
        raise OSError(f"radiomics cache key file {path!r} refused: {exc}; "
                      "it must be a regular file of 16 to 4096 bytes") from None
    if len(key) < _MIN_KEY_BYTES:
        raise OSError(f"radiomics cache key file {path!r} holds {len(key)} "
                      f"bytes, fewer than {_MIN_KEY_BYTES}: remove it (your own "
                      "key is then made again) or write 32 random bytes to it")
    if st.st_mode & stat.S_IROTH:
        warnings.warn(
            f"radiomics cache key file {path!r} is readable by every user: "
            f"anyone on this machine can forge cache entries; chmod o-r {path}",
            MedprepWarning, stacklevel=4,
        )
    return key


def _create(path):
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=".cache.key.")  # 0600
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(os.urandom(_KEY_BYTES))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)  # never over a key made meanwhile
            except FileExistsError:
                pass
        finally:
            os.remove(tmp)
    except OSError as exc:
        raise OSError(
            f"cannot create the radiomics cache key file {path!r} ({exc}); set "
            f"${KEY_ENV} to a readable key file, or XDG_CONFIG_HOME to a "
            "writable folder"
        ) from exc
    return _read(path)
