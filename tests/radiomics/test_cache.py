"""The radiomics cache: JSON entries bound to their key, nothing executable.

A forged, truncated or foreign entry is never served (the row is extracted
again, with a warning); a malicious pickle in the folder is never loaded; a hit
for an unchanged file reads no image.
"""

import json
import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.io import _read as _io
from sklearn_medprep.radiomics._cache import FeatureCache, as_feature_cache
from sklearn_medprep.utils import count_extractions

SETTINGS = {"featureClass": {"firstorder": ["Mean", "Variance", "Maximum"]}}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache_cohort")
    return make_multisite_cohort(4, 2, shape=(12, 13, 11), path=folder,
                                 random_state=0)


def _extractor(memory, **kwargs):
    return RadiomicsExtractor(label=2, settings=SETTINGS, memory=memory, **kwargs)


def _entries(memory):
    return sorted(Path(memory).glob("sklearn_medprep_cache/radiomics/*/*.json"))


class _Exploit:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_entries_are_json_with_checksum(cohort, tmp_path):
    memory = tmp_path / "cache"
    reference = _extractor(None).fit_transform(cohort)
    first = _extractor(memory).fit_transform(cohort)
    pd.testing.assert_frame_equal(first, reference)
    entries = _entries(memory)
    assert len(entries) == len(cohort) == count_extractions(memory)
    header, payload = _read_entry(entries[0])
    assert set(header) == {"format", "key", "hmac"}
    assert header["key"] == entries[0].stem
    assert set(payload) == {"names", "values"}
    assert all(isinstance(v, float) for v in payload["values"])
    # no pickle anywhere in the folder
    for path in Path(memory).rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80")
    # a hit returns the same values
    pd.testing.assert_frame_equal(_extractor(memory).fit_transform(cohort), reference)
    assert count_extractions(memory) == len(cohort)


def _read_entry(entry):
    header, payload = entry.read_text().splitlines()
    return json.loads(header), json.loads(payload)


def _corrupt_cases(entry):
    header, data = _read_entry(entry)
    forged = dict(data, values=[v * 2 for v in data["values"]])
    wrong_type = dict(data, values=["x"] * len(data["values"]))
    return {
        "forged values": json.dumps(header) + "\n" + json.dumps(forged),
        "wrong types": json.dumps(header) + "\n" + json.dumps(wrong_type),
        "truncated": entry.read_text()[: len(entry.read_text()) - 30],
        "not json": "garbage",
        "pickle": pickle.dumps({"names": data["names"], "values": data["values"]}),
    }


@pytest.mark.parametrize(
    "case", ["forged values", "wrong types", "truncated", "not json", "pickle",
             "foreign"],
)
@pytest.mark.parametrize("on_error", ["raise", "nan"])
def test_bad_entry_is_never_served(cohort, tmp_path, case, on_error):
    memory = tmp_path / "cache"
    reference = _extractor(memory).fit_transform(cohort)
    entries = _entries(memory)
    target = entries[0]
    if case == "foreign":  # a valid entry of another row, copied under this key
        content = entries[1].read_bytes()
    else:
        content = _corrupt_cases(target)[case]
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.warns(MedprepWarning, match="cache entry .* ignored") as record:
        out = _extractor(memory, on_error=on_error).fit_transform(cohort)
    pd.testing.assert_frame_equal(out, reference)
    assert count_extractions(memory) == len(cohort) + 1  # the bad one again
    # read and warned about once (not again after the images were read)
    assert sum(target.name in str(w.message) for w in record) == 1
    # the entry was rewritten: the next run is clean
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        _extractor(memory).fit_transform(cohort)
    assert count_extractions(memory) == len(cohort) + 1


def test_malicious_pickle_in_the_folder_is_never_loaded(cohort, tmp_path):
    memory = tmp_path / "cache"
    proof = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(proof))
    pickle.loads(payload)  # the payload works ...
    assert proof.exists()
    proof.unlink()
    reference = _extractor(None).fit_transform(cohort)
    _extractor(memory).fit_transform(cohort)
    # ... placed as every entry, as joblib's output.pkl files, as index files
    targets = list(_entries(memory))
    targets += list(Path(memory).glob("sklearn_medprep_cache/files/*/*.json"))
    for folder in ("joblib/sklearn_medprep/_radiomics_worker/_extract/abc",):
        (Path(memory) / folder).mkdir(parents=True)
        targets.append(Path(memory) / folder / "output.pkl")
    for target in targets:
        target.write_bytes(payload)
    from sklearn_medprep.radiomics import _cache

    _cache.clear_memory()  # as a fresh process would
    with pytest.warns(MedprepWarning, match="ignored"):
        out = _extractor(memory).fit_transform(cohort)
    pd.testing.assert_frame_equal(out, reference)
    assert not proof.exists()
    # also through a joblib.Memory pointing at the folder, and in workers
    for target in _entries(memory):
        target.write_bytes(payload)
    with pytest.warns(MedprepWarning, match="ignored"):
        out = _extractor(joblib.Memory(memory, verbose=0), n_jobs=2).fit_transform(
            cohort)
    pd.testing.assert_frame_equal(out, reference)
    assert not proof.exists()


def test_hit_reads_no_image_and_changed_file_is_not_stale(cohort, tmp_path,
                                                          monkeypatch):
    memory = tmp_path / "cache"
    table = cohort.copy()
    source = Path(cohort["image"].iloc[0])
    image = tmp_path / ("img" + "".join(source.suffixes))
    image.write_bytes(source.read_bytes())
    table["image"] = table["image"].astype(object)
    table.iloc[0, table.columns.get_loc("image")] = str(image)
    first = _extractor(memory).fit_transform(table)
    reads = []
    original = _io._read_path
    monkeypatch.setattr(_io, "_read_path",
                        lambda path: reads.append(path) or original(path))
    from sklearn_medprep.radiomics import _cache

    _cache.clear_memory()  # the index on disk serves a fresh process too
    pd.testing.assert_frame_equal(_extractor(memory).fit_transform(table), first)
    assert reads == []
    # same path, same size, mtime set back: ctime still tells the change
    stat = image.stat()
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(image)))
    changed = sitk.GetImageFromArray(array * 2)
    changed.CopyInformation(sitk.ReadImage(str(image)))
    sitk.WriteImage(changed, str(image))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image.stat().st_mtime_ns == stat.st_mtime_ns
    out = _extractor(memory).fit_transform(table)
    # only row 0 is read again (its image and mask, for the extraction)
    assert [Path(p) for p in reads] == [image, Path(table["mask"].iloc[0])]
    assert out["original_firstorder_Mean"].iloc[0] == pytest.approx(
        2 * first["original_firstorder_Mean"].iloc[0])
    pd.testing.assert_frame_equal(out.iloc[1:], first.iloc[1:])


def test_memory_forms(tmp_path):
    assert as_feature_cache(None) is None
    assert as_feature_cache(joblib.Memory(None)) is None
    assert as_feature_cache(str(tmp_path)).location == str(tmp_path)
    assert as_feature_cache(tmp_path).location == str(tmp_path)
    assert as_feature_cache(joblib.Memory(tmp_path)).location == str(tmp_path)
    cache = FeatureCache(tmp_path)
    assert pickle.loads(pickle.dumps(cache)) == cache


def test_values_round_trip(tmp_path):
    cache = FeatureCache(tmp_path)
    values = [("a", 1.5), ("b", float("nan")), ("c", (1.0, 2.0)), ("d", "3.1"),
              ("e", {"x": [1, 2]}), ("f", np.arange(3.0)), ("g", True)]
    key = cache.entry_key("0" * 64, "1" * 64, 1, "{}")
    cache.put(key, values)
    got = cache.get(key)
    assert [n for n, _ in got] == [n for n, _ in values]
    assert got[0][1] == 1.5 and np.isnan(got[1][1]) and got[2][1] == (1.0, 2.0)
    assert got[3][1] == "3.1" and got[4][1] == {"x": [1, 2]} and got[6][1] is True
    np.testing.assert_array_equal(got[5][1], np.arange(3.0))


def test_settings_validated_once_per_value(monkeypatch):
    from sklearn_medprep.radiomics import _pyradiomics as _radiomics

    calls = []
    original = _radiomics.validate_settings
    monkeypatch.setattr(_radiomics, "validate_settings",
                        lambda s: calls.append(1) or original(s))
    settings = {"setting": {"binWidth": 17.5}, "featureClass": {"firstorder": []}}
    for _ in range(3):
        assert _radiomics._validated_settings(dict(settings)) == settings
    assert len(calls) == 1
    with pytest.raises(ValueError, match="binWidht"):
        _radiomics._validated_settings({"setting": {"binWidht": 1}})
    with pytest.raises(ValueError, match="binWidht"):
        _radiomics._validated_settings({"setting": {"binWidht": 1}})


def test_verified_entry_served_from_memory_until_its_file_changes(tmp_path,
                                                                  monkeypatch):
    from sklearn_medprep.radiomics import _cache

    cache = FeatureCache(tmp_path)
    key = cache.entry_key("2" * 64, "3" * 64, 1, "{}")
    cache.put(key, [("a", 1.5), ("b", (1.0, 2.0))])
    _cache.clear_memory()
    assert cache.get(key) == [("a", 1.5), ("b", (1.0, 2.0))]  # read, verified
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open",
                        lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    assert cache.get(key) == [("a", 1.5), ("b", (1.0, 2.0))]
    assert opened == []  # a hit on a verified, unchanged entry opens nothing
    monkeypatch.undo()
    served = cache.get(key)
    served.append(("c", 0.0))  # the caller's list is its own
    assert cache.get(key) == [("a", 1.5), ("b", (1.0, 2.0))]
    # the entry is edited after it was verified: read and checked again
    path = cache._entry_path(key)
    header, _, payload = Path(path).read_bytes().partition(b"\n")
    Path(path).write_bytes(header + b"\n" + payload.replace(b"1.5", b"9.5"))
    with pytest.warns(MedprepWarning, match="authentication code does not match"):
        assert cache.get(key) is None
    os.remove(path)
    assert cache.get(key) is None  # a removed entry is a miss, not a memory


def test_hits_are_answered_without_workers(cohort, tmp_path, monkeypatch):
    from sklearn_medprep.radiomics import _extractor as _radiomics

    memory = tmp_path / "cache"
    first = _extractor(memory).fit_transform(cohort)
    extractor = _extractor(memory, n_jobs=2).fit(cohort)

    def no_worker(*args, **kwargs):
        raise AssertionError("a cache hit was sent to a worker")

    monkeypatch.setattr(_radiomics, "extract_row", no_worker)
    pd.testing.assert_frame_equal(extractor.transform(cohort), first)
    # one row not in the cache: only that one goes to extract_row
    calls = []
    monkeypatch.setattr(
        _radiomics, "extract_row",
        lambda *a, **k: calls.append(a[0]) or _radiomics_worker_extract(*a, **k),
    )
    other = cohort.copy()
    other.loc[other.index[1], "mask"] = cohort["mask"].iloc[0]
    out = _extractor(memory).fit(cohort).transform(other)
    assert calls == [cohort["image"].iloc[1]]
    pd.testing.assert_frame_equal(out.iloc[[0, 2, 3]], first.iloc[[0, 2, 3]])
    assert count_extractions(memory) == len(cohort) + 1


def _radiomics_worker_extract(*args, **kwargs):
    from sklearn_medprep.radiomics._worker import extract_row

    return extract_row(*args, **kwargs)


def test_identity_scope_stats_each_file_once_per_batch(tmp_path, monkeypatch):
    from sklearn_medprep.radiomics import _cache

    path = tmp_path / "image.nii.gz"
    path.write_bytes(b"first")
    stats = []
    real_stat = os.stat
    monkeypatch.setattr(_cache.os, "stat",
                        lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    with _cache.identity_scope():
        first = _cache.file_identity(str(path))
        with _cache.identity_scope():  # nested: the outer batch's identities
            assert _cache.file_identity(str(path)) == first
        assert _cache.file_identity(path) == first
        assert len(stats) == 1
        path.write_bytes(b"rewritten, longer")  # during the batch: seen next batch
        assert _cache.file_identity(str(path)) == first
    after = _cache.file_identity(str(path))
    assert after != first and after[0][3] == len(b"rewritten, longer")
    assert len(stats) == 2
    # outside a batch, every call stats
    _cache.file_identity(str(path))
    assert len(stats) == 3


def test_warm_table_served_unchanged_after_a_source_changes(cohort, tmp_path):
    """Memoized keys never hide a changed source: a new file identity is a miss."""
    import torchio as tio

    from sklearn_medprep import TorchIOPreprocessor
    from sklearn_medprep.radiomics import _cache

    table = cohort.copy()
    copies = []
    for row, source in table["image"].items():
        copies.append(str(tmp_path / f"{row}.nii.gz"))
        Path(copies[-1]).write_bytes(Path(source).read_bytes())
    table["image"] = copies
    memory = tmp_path / "cache"
    pre = TorchIOPreprocessor(tio.Resample(1.2)).fit(table)
    first = _extractor(memory).fit_transform(pre.transform(table))
    again = _extractor(memory).fit_transform(pre.transform(table))
    pd.testing.assert_frame_equal(again, first)
    assert count_extractions(memory) == len(table)
    # a source rewritten with other voxels: its row is extracted again
    image = sitk.ReadImage(copies[0])
    sitk.WriteImage(image * 2, copies[0])
    changed = _extractor(memory).fit_transform(pre.transform(table))
    assert count_extractions(memory) == len(table) + 1
    assert changed.iloc[0, 0] != first.iloc[0, 0]
    pd.testing.assert_frame_equal(changed.iloc[1:], first.iloc[1:])
    _cache.clear_memory()
