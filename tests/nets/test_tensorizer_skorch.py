"""ImageTensorizer and the skorch bridge (TorchIOCollate): augment training only."""

import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torchio as tio
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from skorch import NeuralNetClassifier
from skorch.dataset import ValidSplit
from torch import nn
from torch.utils.data import DataLoader

from sklearn_medprep import ImageTensorizer, TorchIOCollate, TorchIOPreprocessor
from sklearn_medprep.datasets import make_multisite_cohort, make_xray_cohort
from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.io._read import to_torchio
from sklearn_medprep.model_selection import SiteStratifiedKFold

SIDE = 12


class TinyCNN(nn.Module):
    def __init__(self, in_channels=1, n_classes=2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(4, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(8, n_classes)

    def forward(self, X):
        return self.head(self.features(X))


class Counting(tio.Transform):
    """A real TorchIO transform that counts and records the samples it augments."""

    calls = [0]
    records = []

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def apply_transform(self, subject):
        Counting.calls[0] += 1
        out = self.inner(subject)
        Counting.records.append(out.get_first_image().data.clone())
        return out


@pytest.fixture
def counter():
    Counting.calls[0] = 0
    Counting.records.clear()
    return Counting.calls


AUGMENT = tio.Compose([tio.RandomFlip(axes=(0, 1, 2)), tio.RandomNoise(std=0.1)])


def _preprocessor():
    return TorchIOPreprocessor(
        [tio.Resample(1.5), tio.CropOrPad((SIDE,) * 3), tio.ZNormalization()]
    )


def _net(collate, **kwargs):
    params = dict(
        max_epochs=2,
        lr=0.05,
        batch_size=8,
        train_split=None,
        iterator_train__shuffle=False,
        iterator_train__collate_fn=collate,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        verbose=0,
    )
    params.update(kwargs)
    return NeuralNetClassifier(TinyCNN, **params)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn_cohort")
    return make_multisite_cohort(
        18, 3, shape=(14, 14, 14), path=folder, random_state=4, label_effect=2.0
    )


def test_tensorizer_shapes_values_and_channels(cohort):
    table = _preprocessor().fit_transform(cohort)
    X = ImageTensorizer().fit_transform(table)
    assert X.shape == (len(table), 1, SIDE, SIDE, SIDE) and X.dtype == np.float32
    for i, cell in enumerate(table["image"]):
        np.testing.assert_array_equal(X[i], cell.data.numpy())
    both = ImageTensorizer(["image", "image"], mask="mask").fit(table).transform(table)
    assert both.shape == (len(table), 3, SIDE, SIDE, SIDE)
    np.testing.assert_array_equal(both[:, 1], X[:, 0])
    for i, cell in enumerate(table["mask"]):
        np.testing.assert_array_equal(
            both[i, 2], cell.data.numpy()[0].astype(np.float32)
        )


def test_tensorizer_refuses_differing_shapes_naming_the_row(cohort):
    table = _preprocessor().fit_transform(cohort)
    tensorizer = ImageTensorizer().fit(table)
    raw = cohort.iloc[[0]]  # not preprocessed: another shape
    with pytest.raises(SubjectTableError, match="CropOrPad") as info:
        tensorizer.transform(raw)
    assert repr(raw.index[0]) in str(info.value)
    with pytest.raises(SubjectTableError, match="differs"):
        ImageTensorizer().fit(cohort)  # sites have different grids


def test_tensorizer_2d_is_rows_by_columns(tmp_path):
    xray = make_xray_cohort(3, path=tmp_path, shape=(24, 20), random_state=0)
    X = ImageTensorizer().fit_transform(xray)
    assert X.shape == (3, 1, 24, 20)
    for i, path in enumerate(xray["image"]):
        np.testing.assert_array_equal(
            X[i, 0], sitk.GetArrayFromImage(sitk.ReadImage(path))
        )
        assert to_torchio(path).shape == (1, 20, 24, 1)


def test_collate_flips_2d_and_3d_like_torchio():
    flip = tio.RandomFlip(axes=(0,), flip_probability=1.0)
    collate = TorchIOCollate(flip, random_state=0)
    volume = torch.rand(2, 3, 4, 5)
    X, y = collate([(volume, 1), (volume + 1, 0)])
    assert torch.equal(X[0], torch.flip(volume, dims=(1,)))  # TorchIO axis 0 = W
    assert torch.equal(y, torch.tensor([1, 0]))
    image = torch.rand(1, 6, 7)  # 2D (C, H, W): TorchIO's W is the last axis
    X, _ = collate([(image, 0)])
    assert torch.equal(X[0], torch.flip(image, dims=(2,)))
    with pytest.raises(ValueError, match="shape"):
        collate([(torch.rand(5, 5), 0)])


def test_collate_fresh_each_batch_reproducible_and_rng_untouched():
    batch = [(torch.rand(1, 5, 6, 7), k % 2) for k in range(3)]
    collate = TorchIOCollate(AUGMENT, random_state=3)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first, second = collate(batch)[0], collate(batch)[0]
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(first, second)  # every batch (epoch) draws anew
    assert collate.n_batches == 2
    copy = pickle.loads(pickle.dumps(TorchIOCollate(AUGMENT, random_state=3)))
    torch.manual_seed(99)
    assert torch.equal(copy(batch)[0], first)
    assert torch.equal(copy(batch)[0], second)
    assert torch.equal(collate.reset()(batch)[0], first)
    other = TorchIOCollate(AUGMENT, random_state=4)(batch)[0]
    assert not torch.equal(other, first)


def test_augmentation_counts_every_epoch_never_validation_or_predict(cohort, counter):
    table = _preprocessor().fit_transform(cohort)
    X = ImageTensorizer().fit_transform(table)
    y = cohort["y"].to_numpy()
    collate = TorchIOCollate(Counting(AUGMENT), random_state=0)
    n_valid = len(X) // 3
    net = _net(collate, max_epochs=3, train_split=ValidSplit(3, stratified=True))
    torch.manual_seed(0)
    net.fit(X, y)
    n_train = len(X) - n_valid
    assert len(net.history) == 3 and "valid_loss" in net.history[-1]
    assert counter[0] == 3 * n_train  # every training sample, every epoch only
    assert collate.n_batches == 3 * int(np.ceil(n_train / 8))
    # each epoch draws anew: the same (unshuffled) first sample differs by epoch
    per_epoch = len(Counting.records) // 3
    assert not torch.equal(Counting.records[0], Counting.records[per_epoch])
    proba = net.predict_proba(X)
    net.predict(X)
    assert counter[0] == 3 * n_train
    np.testing.assert_array_equal(net.predict_proba(X), proba)
    assert counter[0] == 3 * n_train


@pytest.mark.slow
def test_grid_search_site_folds_and_persistence_in_new_process(
    cohort, counter, tmp_path
):
    collate = TorchIOCollate(Counting(AUGMENT), random_state=0)
    pipe = Pipeline(
        [
            ("pre", _preprocessor()),
            ("tensor", ImageTensorizer()),
            ("net", _net(collate)),
        ]
    )
    cv = SiteStratifiedKFold(n_splits=2, site="site", shuffle=True, random_state=0)
    search = GridSearchCV(pipe, {"net__lr": [0.01, 0.1]}, cv=cv)
    y = cohort["y"].to_numpy()
    torch.manual_seed(0)
    search.fit(cohort, y)
    train_sizes = [len(train) for train, _ in cv.split(cohort, y)]
    expected = 2 * (
        2 * sum(train_sizes) + len(cohort)
    )  # 2 epochs; 2 lr x 2 folds + refit
    assert counter[0] == expected
    best = search.best_estimator_
    proba = best.predict_proba(cohort)
    assert counter[0] == expected
    np.testing.assert_array_equal(best.predict_proba(cohort), proba)

    joblib.dump(best, tmp_path / "model.joblib")
    cohort.to_pickle(tmp_path / "table.pkl")
    script = (
        "import sys, joblib, numpy as np, pandas as pd\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"model = joblib.load({str(tmp_path / 'model.joblib')!r})\n"
        f"table = pd.read_pickle({str(tmp_path / 'table.pkl')!r})\n"
        f"np.save({str(tmp_path / 'proba.npy')!r}, model.predict_proba(table))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), proba)


def _epochs(collate, n_epochs=2, seed=0):
    dataset = [(torch.zeros(1, 2, 2, 2), 0) for _ in range(8)]
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate, num_workers=2)
    torch.manual_seed(seed)
    return [torch.cat([X for X, _ in loader]) for _ in range(n_epochs)]


def test_collate_in_workers_draws_anew_per_worker_and_epoch_reproducibly():
    noise = tio.RandomNoise(std=(1, 1))
    first, second = _epochs(TorchIOCollate(noise, random_state=0))
    samples = torch.cat([first, second]).flatten(1)
    assert len(torch.unique(samples, dim=0)) == len(samples)  # no repeat at all
    again = _epochs(TorchIOCollate(noise, random_state=0))
    assert torch.equal(again[0], first) and torch.equal(again[1], second)
    other = _epochs(TorchIOCollate(noise, random_state=1))
    assert not torch.equal(other[0], first)


def test_collate_label_channels_skip_intensity_and_follow_spatial_transforms():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 6, 5, 4, generator=gen)
    label = torch.randint(0, 3, (1, 6, 5, 4), generator=gen).float()
    sample = torch.cat([image, label])
    X, _ = TorchIOCollate(tio.RandomNoise(std=(1, 1)), 0, label_channels=1)(
        [(sample, 0)]
    )
    assert torch.equal(X[0, 1], label[0]) and not torch.equal(X[0, 0], image[0])
    X, _ = TorchIOCollate(tio.RandomNoise(std=(1, 1)), 0)([(sample, 0)])
    assert not torch.equal(X[0, 1], label[0])  # default: every channel is image
    # a label channel given by index, first, keeps its place
    swapped = torch.stack([label[0], image[0]])
    flip = tio.RandomFlip(axes=(1,), flip_probability=1.0)
    X, _ = TorchIOCollate(flip, 0, label_channels=[0])([(swapped, 0)])
    assert torch.equal(X[0], torch.flip(swapped, dims=(2,)))
    affine = tio.RandomAffine(scales=0.2, degrees=20, translation=1)
    X, _ = TorchIOCollate(affine, 0, label_channels=1)([(sample, 0)] * 3)
    assert set(X[:, 1].unique().tolist()) <= set(label.unique().tolist())
    assert not torch.equal(X[0, 1], label[0])  # moved
    # 2D (C, H, W): image and mask flip together along W
    mask = torch.randint(0, 2, (1, 7, 6), generator=gen).float()
    picture = torch.cat([torch.rand(1, 7, 6, generator=gen), mask])
    flip = tio.RandomFlip(axes=(0,), flip_probability=1.0)
    X, _ = TorchIOCollate(flip, 0, label_channels=1)([(picture, 0)])
    assert torch.equal(X[0], torch.flip(picture, dims=(2,)))
    with pytest.raises(ValueError, match="label_channels"):
        TorchIOCollate(flip, label_channels=3)([(picture, 0)])
    collate = TorchIOCollate(flip, 0, label_channels=[1])
    assert pickle.loads(pickle.dumps(collate)).label_channels == [1]


def test_clone_restarts_the_batch_count_and_keeps_params():
    collate = TorchIOCollate(AUGMENT, random_state=3, label_channels=1)
    batch = [(torch.rand(2, 4, 4, 4), 0)]
    first = collate(batch)[0]
    collate(batch)
    copy = clone(collate)
    assert copy.n_batches == 0 and collate.n_batches == 2
    assert copy.random_state == 3 and copy.label_channels == 1
    assert torch.equal(copy(batch)[0], first)
    net = clone(_net(collate))
    fresh = net.get_params()["iterator_train__collate_fn"]
    assert fresh is not collate and fresh.n_batches == 0
