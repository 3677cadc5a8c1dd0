"""The registry of transforms trained in TorchIOPreprocessor.fit, on training rows."""

import numpy as np
import pandas as pd
import pytest
import torch
import torchio as tio

from sklearn_medprep import TorchIOPreprocessor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.images import _trainable, register_trainable
from sklearn_medprep.images._trainable import find_trainable
from sklearn_medprep.io._read import to_torchio


class MeanShift(tio.IntensityTransform):
    """Subtract a mean intensity (learned in fit when ``mean`` is None)."""

    def __init__(self, mean=None, **kwargs):
        super().__init__(**kwargs)
        self.mean = mean
        self.args_names = ["mean"]

    def apply_transform(self, subject):
        for image in self.get_images(subject):
            image.set_data(image.data - self.mean)
        return subject


class ScaledMeanShift(MeanShift):
    """A subclass: covered by its parent's entry."""


def _train_mean(part, subjects):
    means = [subject["image"].data.double().mean().item() for subject in subjects]
    return type(part)(float(np.mean(means)))


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry with MeanShift registered, restored afterwards."""
    monkeypatch.setattr(_trainable, "_TRAINABLE", dict(_trainable._TRAINABLE))
    register_trainable(
        MeanShift, _train_mean, needs_training=lambda part: part.mean is None
    )
    return _trainable._TRAINABLE


@pytest.fixture(scope="module")
def split():
    table = make_multisite_cohort(8, 2, shape=(7, 8, 9), random_state=3)
    return table.iloc[:5], table.iloc[5:]


CROP = (5, 6, 4)


def _cropped(cell):
    """The image of a cell after the step before MeanShift, computed here."""
    return tio.CropOrPad(CROP)(to_torchio(cell))


def _expected_mean(rows):
    return float(np.mean(
        [_cropped(cell).data.double().mean().item() for cell in rows["image"]]
    ))


def test_registered_transform_is_trained_on_the_training_rows_only(registry, split):
    train, test = split
    given = MeanShift()
    pre = TorchIOPreprocessor(tio.Compose([tio.CropOrPad(CROP), given])).fit(train)
    learned = pre.transform_[1].mean
    # computed here from the training rows, after the step before it
    assert learned == _expected_mean(train)
    assert given.mean is None  # the parameter is never modified
    # the test rows change nothing: transforming them learns nothing...
    out = pre.transform(test)
    assert pre.transform_[1].mean == learned
    for row in test.index:
        expected = _cropped(test.loc[row, "image"]).data - learned
        assert torch.equal(out.loc[row, "image"].data, expected)
    # ...and fitting on every row learns another value
    everything = pd.concat([train, test])
    other = TorchIOPreprocessor(tio.Compose([tio.CropOrPad(CROP), MeanShift()]))
    assert other.fit(everything).transform_[1].mean == _expected_mean(everything)
    assert _expected_mean(everything) != learned


def test_given_parameters_and_subclasses(registry, split):
    train, _ = split
    pre = TorchIOPreprocessor(MeanShift(mean=2.5)).fit(train)
    assert pre.transform_.mean == 2.5  # needs_training is False: kept as given
    sub = TorchIOPreprocessor(ScaledMeanShift()).fit(train)
    assert type(sub.transform_) is ScaledMeanShift
    assert sub.transform_.mean == float(np.mean(
        [to_torchio(cell).data.double().mean().item() for cell in train["image"]]
    ))
    assert find_trainable(MeanShift()) is registry[MeanShift]
    assert find_trainable(MeanShift(mean=1.0)) is None


def test_histogram_standardization_is_the_built_in_entry():
    assert find_trainable(tio.HistogramStandardization({})) is not None
    assert find_trainable(tio.HistogramStandardization({"image": None})) is not None
    given = tio.HistogramStandardization({"image": np.linspace(0, 100, 13)})
    assert find_trainable(given) is None
    assert find_trainable(tio.ZNormalization()) is None


def test_clear_errors(registry, split):
    train, _ = split
    with pytest.raises(TypeError, match="torchio Transform class"):
        register_trainable(dict, _train_mean)
    with pytest.raises(TypeError, match="train must be callable"):
        register_trainable(MeanShift, None)
    with pytest.raises(TypeError, match="needs_training must be callable"):
        register_trainable(MeanShift, _train_mean, needs_training=True)
    register_trainable(MeanShift, lambda part, subjects: 1.0)
    with pytest.raises(TypeError, match="registered for MeanShift returned float"):
        TorchIOPreprocessor(MeanShift()).fit(train)
