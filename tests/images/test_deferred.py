"""The cache covers the image chain: preprocessed images are deferred.

``TorchIOPreprocessor`` output cells hold the source cells and the fitted
transform; a radiomics cache hit for them runs no preprocessing, and a cold
cross-validation transforms each image once per distinct fitted transform.
"""

import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import torchio as tio
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from sklearn_medprep import RadiomicsExtractor, TorchIOPreprocessor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.images import _subject
from sklearn_medprep.io._deferred_source import deferred_reader
from sklearn_medprep.radiomics import _cache
from sklearn_medprep.utils import count_extractions

SETTINGS = {"featureClass": {"firstorder": ["Mean", "Variance"],
                             "glcm": ["Contrast"]}}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deferred_cohort")
    return make_multisite_cohort(6, 2, shape=(14, 15, 13), path=folder,
                                 random_state=0)


@pytest.fixture
def transforms_applied(monkeypatch):
    """Count the rows the preprocessing transform is applied to."""
    calls = []
    original = _subject.apply_to_row

    def counting(transform, cells, *args):
        calls.append(tuple(str(c) for c in cells))
        return original(transform, cells, *args)

    monkeypatch.setattr(_subject, "apply_to_row", counting)
    return calls


def _pre():
    return TorchIOPreprocessor(tio.Resample(1.3, image_interpolation="linear"))


def test_deferred_cells_equal_torchio_and_transform_once_per_row(
        cohort, transforms_applied):
    out = _pre().fit(cohort).transform(cohort)
    assert transforms_applied == []  # nothing transformed yet
    row = cohort.index[2]
    image, mask = out.loc[row, "image"], out.loc[row, "mask"]
    assert isinstance(image, tio.ScalarImage) and isinstance(mask, tio.LabelMap)
    assert deferred_reader(image) is not None
    subject = tio.Subject(image=tio.ScalarImage(cohort.loc[row, "image"]),
                          mask=tio.LabelMap(cohort.loc[row, "mask"]))
    expected = tio.Resample(1.3, image_interpolation="linear")(subject)
    assert torch.equal(image.data, expected["image"].data)
    assert torch.equal(mask.data, expected["mask"].data)
    np.testing.assert_array_equal(image.affine, expected["image"].affine)
    assert len(transforms_applied) == 1  # image and mask from one transform
    assert cohort.loc[row, "image"] in repr(image.path)


def test_cache_hit_runs_no_preprocessing(cohort, tmp_path, transforms_applied):
    memory = tmp_path / "cache"
    extractor = RadiomicsExtractor(label=2, settings=SETTINGS, memory=memory)
    first = extractor.fit_transform(_pre().fit_transform(cohort))
    assert len(transforms_applied) == len(cohort) == count_extractions(memory)
    reference = RadiomicsExtractor(label=2, settings=SETTINGS).fit_transform(
        _pre().fit_transform(cohort))
    pd.testing.assert_frame_equal(first, reference)
    transforms_applied.clear()
    for fresh_process in (False, True):
        if fresh_process:
            _cache.clear_memory()
        again = clone(extractor).fit_transform(clone(_pre()).fit_transform(cohort))
        pd.testing.assert_frame_equal(again, first)
        assert transforms_applied == []
        assert count_extractions(memory) == len(cohort)
    # another transform is another content: extracted again
    other = TorchIOPreprocessor(tio.Resample(1.1, image_interpolation="linear"))
    clone(extractor).fit_transform(other.fit_transform(cohort.iloc[:2]))
    assert count_extractions(memory) == len(cohort) + 2


def test_cold_search_transforms_each_image_once(cohort, tmp_path,
                                                transforms_applied):
    memory = tmp_path / "cache"
    pipe = make_pipeline(
        _pre(),
        RadiomicsExtractor(label=2, settings=SETTINGS, memory=memory,
                           passthrough=[]),
        Ridge(),
    )
    y = cohort["age"].to_numpy()
    search = GridSearchCV(pipe, {"ridge__alpha": [0.1, 1.0]},
                          cv=KFold(3, shuffle=True, random_state=0))
    search.fit(cohort, y)
    assert count_extractions(memory) == len(cohort)
    assert sorted(transforms_applied) == sorted(set(transforms_applied))
    assert len(transforms_applied) == len(cohort)


def test_transform_key_is_the_fitted_parameters(cohort):
    a = _pre().fit(cohort)
    b = clone(a).fit(cohort.iloc[:3])
    assert a.transform_key_ == b.transform_key_
    trained = TorchIOPreprocessor(tio.HistogramStandardization({}))
    keys = {trained.fit(part).transform_key_
            for part in (cohort.iloc[:3], cohort.iloc[3:])}
    assert len(keys) == 2  # other landmarks, other key


def test_deferred_cells_pickle_and_report_missing_source(cohort, tmp_path):
    out = _pre().fit_transform(cohort.iloc[:2])
    loaded = pickle.loads(pickle.dumps(out))
    assert torch.equal(loaded.iloc[0]["image"].data, out.iloc[0]["image"].data)
    bad = cohort.iloc[:2].copy()
    bad.loc[bad.index[1], "image"] = str(tmp_path / "gone.nii.gz")
    from sklearn_medprep.exceptions import ImageReadError

    with pytest.raises(ImageReadError, match="gone.nii.gz"):
        _pre().fit(cohort).transform(bad)


def test_lookups_in_the_calling_process_read_no_image(cohort, tmp_path,
                                                      monkeypatch):
    from sklearn_medprep.radiomics import _worker as _radiomics_worker
    from sklearn_medprep.radiomics._cache import FeatureCache
    from sklearn_medprep.radiomics._settings import settings_key

    _cache.clear_memory()
    out = _pre().fit(cohort).transform(cohort)
    memory = FeatureCache(tmp_path / "cache")
    key = settings_key(SETTINGS)

    def no_read(*args, **kwargs):
        raise AssertionError("an image was read by a cache look-up")

    monkeypatch.setattr(_radiomics_worker, "to_sitk", no_read)
    row = out.index[0]
    args = (out.loc[row, "image"], out.loc[row, "mask"], 2, key)
    # cold: the sources' keys are unknown, so it is a miss, not a read
    assert _radiomics_worker.lookup_row(*args, memory=memory) is None
    monkeypatch.undo()
    first = _radiomics_worker.extract_row(*args, memory=memory)
    assert first.ok
    monkeypatch.setattr(_radiomics_worker, "to_sitk", no_read)
    _cache.clear_memory()  # as a fresh process: keys from the folder's index
    hit = _radiomics_worker.lookup_row(*args, memory=memory)
    assert hit is not None and hit.values == first.values


@pytest.mark.parametrize("cls", [tio.ScalarImage, tio.LabelMap])
def test_deferred_image_is_what_the_torchio_constructor_builds(cls, monkeypatch):
    from sklearn_medprep.images import _deferred

    name = "/data/sub-1_image.nii.gz [TorchIOPreprocessor, row 'sub-1']"
    reader = _deferred.DeferredReader(None, "image")
    built = cls(path=name, reader=reader, verify_path=False)
    made = _deferred._torchio_image(cls, name, reader)
    assert _deferred._FAST_IMAGE[cls]  # the fast path is the one used here
    assert type(made) is cls
    assert vars(made) == vars(built) and dict(made) == dict(built)
    # where the check fails (another TorchIO), the constructor is used
    monkeypatch.setitem(_deferred._FAST_IMAGE, cls, False)
    fallback = _deferred._torchio_image(cls, name, reader)
    assert vars(fallback) == vars(built) and dict(fallback) == dict(built)


@pytest.mark.slow
def test_demo_nested_cv_resamples_each_image_once_then_never(tmp_path,
                                                             monkeypatch):
    """The demo's nested CV: cold, each image resampled once in the whole
    search (one fitted ``Resample``); warm, as a fresh process, none."""
    from collections import Counter

    from sklearn_medprep import demo
    from sklearn_medprep.model_selection import SiteStratifiedKFold

    cohort = make_multisite_cohort(40, 2, path=tmp_path / "cohort", random_state=0,
                                   confounding=0.6, label_effect=0.15)
    resampled = Counter()
    original = tio.Resample.apply_transform

    def counting(self, subject):  # the source voxels identify the image
        voxels = subject["image"].data.numpy().tobytes()
        resampled[(hashlib.sha256(voxels).hexdigest(), repr(self))] += 1
        return original(self, subject)

    monkeypatch.setattr(tio.Resample, "apply_transform", counting)
    outer = SiteStratifiedKFold(3, site="site", shuffle=True, random_state=1)
    memory = tmp_path / "cache"
    scores = []
    for run in ("cold", "warm"):
        _cache.clear_memory()  # the warm run as a fresh process
        resampled.clear()
        _, _, full = demo._pipelines(memory, 1, False)
        search = demo._search(full, 1, 0)
        scores.append(demo._outer_scores(search, cohort, cohort["y"], outer, run,
                                         verbose=False))
        if run == "cold":
            assert len(resampled) == len(cohort)  # every image, one transform
            assert max(resampled.values()) == 1  # none twice
        else:
            assert not resampled  # nothing resampled: every row a cache hit
    np.testing.assert_array_equal(scores[0], scores[1])
    assert count_extractions(memory) == len(cohort)
