"""Issue 21, the cache: hostile files in the cache folder, a full disk, a forger.

Each case asserts the exact behaviour: the features equal an extraction
without cache (never a forged or foreign value), the warning or error names
the file (or folder) at fault, the extraction count says what was extracted
again, and a FIFO or ``/dev/zero`` never hangs the run (a thread guard).
"""

import hashlib
import json
import os
import pickle
import stat
import threading
import warnings
from pathlib import Path

import pandas as pd
import pytest

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.radiomics import _cache, _cachefiles, _cachekey
from sklearn_medprep.radiomics._cache import EXTRACTION_LOG, FeatureCache
from sklearn_medprep.utils import count_extractions

SETTINGS = {"featureClass": {"firstorder": ["Mean", "Variance", "Maximum"]}}
MEAN = "original_firstorder_Mean"
GUARD_S = 120  # a hang fails the test instead of blocking the suite


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults_cohort")
    return make_multisite_cohort(12, 2, shape=(10, 11, 9), path=folder,
                                 random_state=0)


@pytest.fixture(scope="module")
def reference(cohort):
    return _extractor(None).fit_transform(cohort)


def _extractor(memory, **kwargs):
    return RadiomicsExtractor(label=2, settings=SETTINGS, memory=memory, **kwargs)


def _entries(memory):
    return sorted(Path(memory).glob("sklearn_medprep_cache/radiomics/*/*.json"))


def _index_files(memory):
    return sorted(Path(memory).glob("sklearn_medprep_cache/files/*/*.json"))


def _guarded(function):
    """Run ``function`` in a thread; fail (not hang) past GUARD_S seconds.

    Returns ``(result, [warning messages])``; an exception is re-raised.
    """
    box = {}

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                box["result"] = function()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                box["error"] = exc
        box["warnings"] = [str(w.message) for w in caught]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    assert not thread.is_alive(), f"the run hung for {GUARD_S} s"
    if "error" in box:
        raise box["error"]
    return box["result"], box["warnings"]


def _private_key(path):
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
        out.write(os.urandom(32))
    return path


def _filled(cohort, memory):
    _extractor(memory).fit_transform(cohort)
    _cache.clear_memory()  # what follows is seen as a fresh process sees it
    assert count_extractions(memory) == len(cohort)
    return _entries(memory)


# ----------------------------------------------------------- bad entries
def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _dev_zero_link(path):
    path.unlink()
    path.symlink_to("/dev/zero")


def _device(path):
    path.unlink()
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    except PermissionError:
        pytest.skip("creating a device node needs root (CI runs as root)")


def _oversized(path):
    with open(path, "r+b") as handle:
        handle.truncate(_cachefiles.MAX_FILE_BYTES + 1)  # sparse: no disk used


def _link_to_other_entry(path):
    other = next(p for p in _entries(path.parents[3]) if p != path)
    path.unlink()
    path.symlink_to(other)


def _old_checksum_forgery(path):
    """Mean = 12345, the header's checksum recomputed as version 1 had it."""
    header, payload = path.read_bytes().split(b"\n")[:2]
    header, data = json.loads(header), json.loads(payload)
    data["values"][data["names"].index(MEAN)] = 12345.0
    payload = json.dumps(data, separators=(",", ":")).encode()
    header["hmac"] = hashlib.sha256(header["key"].encode() + b"\n"
                                    + payload).hexdigest()
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload + b"\n")


def _forged_with_own_key(path, tmp_path):
    """Mean = 12345, authenticated with a key the forger made."""
    key_file = _private_key(tmp_path / "forger.key")
    forger = FeatureCache(path.parents[3], key_file=key_file)
    data = json.loads(path.read_bytes().split(b"\n")[1])
    data["values"][data["names"].index(MEAN)] = 12345.0
    forger.put(path.stem, list(zip(data["names"], data["values"])))


def _non_number(path, tmp_path):
    """An entry authenticated with the right key (a team member, a bug)
    holding a string where a number belongs."""
    cache = FeatureCache(path.parents[3])
    data = json.loads(path.read_bytes().split(b"\n")[1])
    data["values"][data["names"].index(MEAN)] = "12,5"
    _cache.clear_memory()
    cache.put(path.stem, list(zip(data["names"], data["values"])))
    _cache.clear_memory()


BAD_ENTRIES = {
    # case: (make it, the words of the warning, how many entries)
    "fifo": (_fifo, "not a regular file (a FIFO", 1),
    "/dev/zero link": (_dev_zero_link, "a symbolic link (never followed)", 1),
    "device node": (_device, "a character device", 1),
    "oversized": (_oversized, "over the 16777216-byte limit", 1),
    "link to another entry": (_link_to_other_entry, "a symbolic link", 1),
    "forged, checksum recomputed (12 of 12)": (
        _old_checksum_forgery, "authentication code does not match", 12),
    "forged with the forger's key (12 of 12)": (
        _forged_with_own_key, "authentication code does not match", 12),
    "non-number": (_non_number, f"feature '{MEAN}' holds a non-number", 1),
}


@pytest.mark.parametrize("on_error", ["raise", "nan"])
@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_bad_entry_is_extracted_again_and_named(cohort, reference, tmp_path,
                                                case, on_error):
    memory = tmp_path / "cache"
    entries = _filled(cohort, memory)
    make, words, how_many = BAD_ENTRIES[case]
    bad = entries[:how_many]
    for path in bad:
        if make in (_forged_with_own_key, _non_number):
            make(path, tmp_path)
        else:
            make(path)
    out, messages = _guarded(
        lambda: _extractor(memory, on_error=on_error).fit_transform(cohort))
    pd.testing.assert_frame_equal(out, reference)  # no forged value served
    assert (out[MEAN] != 12345.0).all()
    assert count_extractions(memory) == len(cohort) + how_many
    for path in bad:  # each bad file named once, with why and the row
        named = [m for m in messages if str(path) in m]
        assert len(named) == 1, (case, messages)
        assert words in named[0] and "extracted again" in named[0]
        assert named[0].startswith("[row 'sub-")
        assert path.is_file() and not path.is_symlink()  # rewritten, regular
    assert len(messages) == how_many
    # the rewritten entries are good: the next fresh run extracts nothing
    _cache.clear_memory()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(_extractor(memory).fit_transform(cohort),
                                      reference)
    assert count_extractions(memory) == len(cohort) + how_many


def test_link_to_dev_zero_is_never_read(tmp_path, monkeypatch):
    """Bounded read: a regular file growing past the limit is refused too."""
    target = tmp_path / "zero"
    target.symlink_to("/dev/zero")
    with pytest.raises(_cachefiles.RefusedFile, match="symbolic link"):
        _guarded(lambda: _cachefiles.read_regular(str(target)))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    with pytest.raises(_cachefiles.RefusedFile, match="100 bytes, over the 99"):
        _cachefiles.read_regular(str(big), 99)
    assert _cachefiles.read_regular(str(big), 100)[1] == b"x" * 100


# ---------------------------------------------------------- index files
def _swap(first, second):
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)


def _rewrite_key(first, second):
    """first's index made to name second's image key, checksum recomputed."""
    data = json.loads(first.read_bytes())
    data["key"] = json.loads(second.read_bytes())["key"]
    data["hmac"] = hashlib.sha256(json.dumps(
        ["sklearn-medprep/file-key/2", data["identity"], data["key"]],
        separators=(",", ":")).encode()).hexdigest()
    first.write_bytes(json.dumps(data).encode())


def _fifo_index(first, second):
    first.unlink()
    os.mkfifo(first)


@pytest.mark.parametrize("case, tamper, words", [
    ("swapped index files", _swap, "authentication code does not match"),
    ("index rewritten to another subject", _rewrite_key,
     "authentication code does not match"),
    ("fifo index file", _fifo_index, "not a regular file (a FIFO"),
])
def test_tampered_index_files_are_detected(cohort, reference, tmp_path, case,
                                           tamper, words):
    memory = tmp_path / "cache"
    _filled(cohort, memory)
    index = {json.loads(p.read_bytes())["identity"][0][0]: p
             for p in _index_files(memory)}
    first = index[cohort["image"].iloc[0]]
    second = index[cohort["image"].iloc[1]]
    tampered = [first] if tamper is not _swap else [first, second]
    tamper(first, second)
    out, messages = _guarded(lambda: _extractor(memory).fit_transform(cohort))
    pd.testing.assert_frame_equal(out, reference)  # subjects not swapped
    # the images were read and hashed again: their entries are hits
    assert count_extractions(memory) == len(cohort)
    assert len(messages) == len(tampered)
    for path in tampered:
        named = [m for m in messages if str(path) in m]
        assert len(named) == 1 and words in named[0], messages
        assert "read and hashed again" in named[0]
    _cache.clear_memory()  # rewritten: a fresh run is clean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(_extractor(memory).fit_transform(cohort),
                                      reference)


# -------------------------------------------------------------- the log
@pytest.mark.parametrize("kind", ["link to authorized_keys", "fifo"])
def test_hostile_log_is_refused_and_its_target_untouched(cohort, tmp_path, kind):
    memory = tmp_path / "cache"
    _filled(cohort.iloc[:2], memory)
    log = memory / EXTRACTION_LOG
    victim = tmp_path / "home" / ".ssh" / "authorized_keys"
    victim.parent.mkdir(parents=True)
    victim.write_text("ssh-ed25519 AAAA owner@host\n")
    log.unlink()
    if kind == "fifo":
        os.mkfifo(log)
    else:
        log.symlink_to(victim)
    why = "a symbolic link" if kind != "fifo" else "not a regular file (a FIFO"
    pattern = f"extraction log '{log}' refused: {why}"
    with pytest.raises(OSError, match=pattern.replace("(", r"\(")):
        _guarded(lambda: _extractor(memory).fit_transform(cohort))
    with pytest.raises(OSError, match="refused"):
        _guarded(lambda: count_extractions(memory))
    # planted after the folder was checked: still never followed
    with pytest.raises(OSError, match="refused"):
        _guarded(lambda: FeatureCache(memory).log("a" * 64, "b" * 64, 1))
    assert victim.read_text() == "ssh-ed25519 AAAA owner@host\n"
    assert len(_entries(memory)) == 2  # nothing extracted nor written


def test_log_created_with_the_umask_and_counted(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    cache.prepare()
    old = os.umask(0o077)
    try:
        cache.log("a", "b", 1)
    finally:
        os.umask(old)
    cache.log("a", "b", 2)
    assert stat.S_IMODE(os.stat(cache.log_file).st_mode) == 0o600
    assert count_extractions(cache) == 2


# ------------------------------------------------------ folder and disk
@pytest.mark.parametrize("mode, warned", [(0o777, True), (0o1777, False),
                                          (0o770, False)])
def test_world_writable_folder_warned(cohort, reference, tmp_path, mode, warned):
    memory = tmp_path / "cache"
    memory.mkdir()
    os.chmod(memory, mode)
    _cache.clear_memory()
    if warned:
        with pytest.warns(MedprepWarning, match=f"folder '{memory}' is writable "
                          "by every user .mode 777, no sticky bit.") as record:
            out = _extractor(memory).fit_transform(cohort)
        assert len(record) == 1
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = _extractor(memory).fit_transform(cohort)
    pd.testing.assert_frame_equal(out, reference)


def test_full_disk_said_once_and_results_correct(cohort, reference, tmpfs,
                                                 fill_disk):
    disk = tmpfs("64k")  # a real full disk (CI runs as root)
    memory = disk / "cache"
    FeatureCache(memory).prepare()
    fill_disk(disk, leave=5 * 4096)  # room for a few files only
    for _ in range(2):
        _cache.clear_memory()
        with pytest.warns(MedprepWarning, match="is full") as record:
            out = _extractor(memory).fit_transform(cohort)
        pd.testing.assert_frame_equal(out, reference)
        full = [str(w.message) for w in record]
        assert len(full) == 1, full  # said once, naming the folder
        assert f"radiomics cache folder '{memory}' is full" in full[0]
        assert "caching stopped" in full[0]
        assert 0 < len(_entries(memory)) < len(cohort)
    assert count_extractions(memory) <= 2 * len(cohort)


# -------------------------------------------------------------- the key
def test_user_key_created_private(tmp_path, monkeypatch):
    monkeypatch.delenv(_cachekey.KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    _cache.clear_memory()
    cache = FeatureCache(tmp_path / "cache")
    key_file = tmp_path / "config" / "sklearn-medprep" / "cache.key"
    assert cache.key_file == str(key_file)
    cache.prepare()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert len(key_file.read_bytes()) == 32
    key = cache.entry_key("a" * 64, "b" * 64, 1, "{}")
    cache.put(key, [(MEAN, 1.5)])
    first = key_file.read_bytes()
    _cache.clear_memory()
    assert cache.get(key) == [(MEAN, 1.5)] and key_file.read_bytes() == first
    # a pickled cache (in a fitted extractor, sent to workers) holds the
    # key's path, never the key
    assert key_file.read_bytes() not in pickle.dumps(cache)
    assert pickle.loads(pickle.dumps(cache)) == cache
    # a worker never makes a key of its own (it would disagree with the client's)
    key_file.unlink()
    _cache.clear_memory()
    with pytest.raises(FileNotFoundError, match="every worker must read the key"):
        FeatureCache(tmp_path / "cache2").prepare(worker=True)
    assert not key_file.exists()
    key_file.write_bytes(first)
    key_file.chmod(0o600)
    _cache.clear_memory()
    # another key (a copy of the folder read by someone else): not served
    other = FeatureCache(tmp_path / "cache",
                         key_file=_private_key(tmp_path / "other.key"))
    with pytest.warns(MedprepWarning, match="authentication code does not match"):
        assert other.get(key) is None


def test_team_key_must_exist_and_be_private(tmp_path, monkeypatch):
    missing = tmp_path / "team.key"
    monkeypatch.setenv(_cachekey.KEY_ENV, str(missing))
    _cache.clear_memory()
    with pytest.raises(FileNotFoundError, match=f"key file '{missing}' does not"):
        FeatureCache(tmp_path / "cache").prepare()
    assert not missing.exists()  # never made up: the team's must be shared
    missing.write_bytes(b"short")
    with pytest.raises(OSError, match="holds 5 bytes, fewer than 16"):
        FeatureCache(tmp_path / "cache").prepare()
    missing.write_bytes(os.urandom(32))
    os.chmod(missing, 0o644)
    _cache.clear_memory()
    with pytest.warns(MedprepWarning, match="readable by every user"):
        FeatureCache(tmp_path / "cache").prepare()
