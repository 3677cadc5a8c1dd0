"""Patch-based skorch nets: TorchIO Queue training, GridSampler inference."""

import pickle
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import torchio as tio
from sklearn.base import clone
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from skorch.callbacks import Callback, EpochScoring
from skorch.dataset import ValidSplit
from torch import nn

from sklearn_medprep import (
    PatchNeuralNetClassifier,
    PatchNeuralNetSegmenter,
    TorchIOPreprocessor,
)
from sklearn_medprep.datasets import make_texture_cohort
from sklearn_medprep.exceptions import ImageReadError, SubjectTableError
from sklearn_medprep.io._read import read_geometry, to_torchio
from sklearn_medprep.model_selection import SiteStratifiedKFold
from sklearn_medprep.nets._patches import PatchTableDataset, sliding_window


def _classifier_module():
    return nn.Sequential(
        nn.Conv3d(1, 4, 3),
        nn.ReLU(),
        nn.Conv3d(4, 4, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


class SmallNet(nn.Module):
    """Two convolutions, global average pooling, a linear head."""

    def __init__(self, n_filters=4):
        super().__init__()
        self.layers = _classifier_module()

    def forward(self, X):
        return self.layers(X)


class LeakyNet(nn.Module):
    """Eight filters and leaky ReLUs: trains from any seed (no dead units)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(1, 8, 3), nn.LeakyReLU(0.1), nn.Conv3d(8, 8, 3),
            nn.LeakyReLU(0.1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 2),
        )

    def forward(self, X):
        return self.layers(X)


class SegNet(nn.Module):
    """Two 3x3x3 convolutions, two output classes per voxel."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 3, padding=1)
        )

    def forward(self, X):
        return self.layers(X)


def _classifier(**params):
    defaults = dict(
        patch_size=8,
        samples_per_volume=4,
        queue_length=16,
        max_epochs=2,
        batch_size=8,
        optimizer=torch.optim.Adam,
        lr=0.01,
        train_split=None,
        verbose=0,
        random_state=0,
    )
    params = {**defaults, **params}
    module = params.pop("module", None) or _classifier_module()
    return PatchNeuralNetClassifier(module, **params)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Sixteen 20x22x18 volumes written to disk (paths in the table)."""
    folder = tmp_path_factory.mktemp("texture")
    return make_texture_cohort(16, shape=(20, 22, 18), path=folder, random_state=0)


# -- sliding-window inference -------------------------------------------------
@pytest.mark.parametrize(
    "overlap_mode, patch_overlap",
    [
        ("crop", 0),
        ("crop", 2),
        ("crop", (2, 4, 0)),
        ("average", 4),
        ("average", (2, 6, 2)),
    ],
)
def test_sliding_window_of_identity_reconstructs_the_volume(
    overlap_mode, patch_overlap
):
    # integer-valued voxels: sums of overlapping copies and their mean are exact
    rng = np.random.default_rng(0)
    volume = torch.as_tensor(rng.integers(-50, 50, (2, 13, 11, 9)), dtype=torch.float32)
    subject = tio.Subject(
        a=tio.ScalarImage(tensor=volume[:1]), b=tio.ScalarImage(tensor=volume[1:])
    )
    calls = []

    def identity(x):
        calls.append(len(x))
        return x.clone()

    out = sliding_window(
        identity,
        subject,
        ["a", "b"],
        (6, 8, 5),
        patch_overlap=patch_overlap,
        overlap_mode=overlap_mode,
        batch_size=3,
    )
    assert out.shape == volume.shape
    assert torch.equal(out, volume)
    assert len(calls) > 1 and max(calls) <= 3  # really patch by patch, batched


def test_sliding_window_hann_reconstructs_up_to_rounding():
    volume = torch.rand(1, 12, 10, 9, generator=torch.Generator().manual_seed(0))
    subject = tio.Subject(image=tio.ScalarImage(tensor=volume))
    out = sliding_window(
        lambda x: x, subject, ["image"], (6, 6, 6), patch_overlap=2,
        overlap_mode="hann", padding_mode=0,
    )
    torch.testing.assert_close(out, volume, rtol=1e-5, atol=1e-6)


def test_segmenter_with_identity_module_returns_the_input_in_its_geometry(cohort):
    table = cohort.iloc[:3]
    identity = nn.Conv3d(1, 1, 1, bias=False)
    nn.init.ones_(identity.weight)
    net = PatchNeuralNetSegmenter(
        identity,
        patch_size=(6, 8, 4),
        patch_overlap=2,
        overlap_mode="crop",
        predict_nonlinearity=None,
        max_epochs=0,
        train_split=None,
        verbose=0,
    ).fit(table)
    proba = net.predict_proba(table)
    assert proba.index.equals(table.index)
    assert proba.columns.tolist() == ["mask_proba"]
    for (row, image), path in zip(proba["mask_proba"].items(), table["image"]):
        original = tio.ScalarImage(path)
        assert torch.equal(image.data, original.data.float()), row
        np.testing.assert_allclose(image.affine, original.affine)


# -- training -----------------------------------------------------------------
@pytest.mark.slow
def test_patch_classifier_beats_the_majority_class_on_held_out_subjects(tmp_path):
    # volumes of 24^3 voxels, patches of 8^3 (1/27 of a volume)
    table = make_texture_cohort(28, shape=(24, 24, 24), path=tmp_path, random_state=1)
    train, test = table.iloc[:18], table.iloc[18:]
    # the module as a class: its initial weights come from random_state, not from
    # whatever the global torch generator holds after earlier tests (4 filters and
    # ReLUs, the other tests' net, collapsed to chance from 3 seeds of 5)
    net = _classifier(
        module=LeakyNet, samples_per_volume=8, queue_length=32, max_epochs=8
    )
    net.fit(train, train["y"])
    accuracy = (net.predict(test) == test["y"].to_numpy()).mean()
    majority = np.bincount(test["y"]).max() / len(test)
    assert majority == 0.5
    assert accuracy >= 0.8, accuracy


@pytest.mark.slow
def test_patch_segmenter_learns_the_sphere(tmp_path):
    table = make_texture_cohort(10, shape=(20, 20, 20), path=tmp_path, random_state=2)
    train, test = table.iloc[:7], table.iloc[7:]
    net = PatchNeuralNetSegmenter(
        SegNet, patch_size=10, samples_per_volume=6, queue_length=24,
        sampler="label", label_probabilities={0: 0.5, 1: 0.5},
        patch_overlap=4, overlap_mode="average", max_epochs=10, batch_size=6,
        optimizer=torch.optim.Adam, lr=0.03, train_split=None, verbose=0,
        random_state=0,
    ).fit(train)
    # spheres of radius 2-4 voxels in noise of sd 1: predicting no sphere
    # scores 0, thresholding the intensity at 1.5 about 0.3 on these subjects
    assert net.score(test) > 0.6
    paths = net.write_predictions(test, tmp_path / "pred")
    for path, image in zip(paths, test["image"]):
        assert read_geometry(path)[:3] == read_geometry(image)[:3]


def test_augmentation_reaches_training_subjects_only_once_per_epoch(cohort):
    seen = []

    def record(tensor):
        seen.append(tensor.shape)
        return tensor

    reads = []
    original = PatchTableDataset.subject

    def counting(self, i):
        reads.append(self.rows[i])
        return original(self, i)

    net = _classifier(
        augmentation=tio.Lambda(record),
        train_split=lambda ds, y: (ds.subset(range(12)), ds.subset(range(12, 16))),
        max_epochs=3,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PatchTableDataset, "subject", counting)
        net.fit(cohort, cohort["y"])
        # training subjects augmented once per epoch, validation ones never
        assert len(seen) == 12 * 3
        assert len(reads) == 16 * 3  # each subject read once per epoch, lazily
        assert set(reads) == set(cohort.index)
        seen.clear()
        reads.clear()
        net.predict_proba(cohort)
        assert seen == []  # no augmentation at predict time
        assert reads == list(cohort.index)
    assert net.history[-1, "valid_loss"] > 0
    # each epoch: 12 subjects x 4 patches in batches of 8
    assert net.history[-1, "train_batch_count"] == 6


def test_same_random_state_same_net_and_caller_rng_untouched(cohort):
    table = cohort.iloc[:8]
    # a module class: its weights are drawn in fit, from random_state
    augmentation = tio.Compose([tio.RandomFlip(axes=(0,)), tio.RandomNoise(std=0.1)])
    a = _classifier(module=SmallNet, augmentation=augmentation)
    b = _classifier(module=SmallNet, augmentation=augmentation)
    torch.manual_seed(123)
    np.random.seed(7)  # noqa: NPY002
    torch_before = torch.get_rng_state()
    numpy_before = np.random.get_state()[1].copy()  # noqa: NPY002
    a.fit(table, table["y"])
    assert torch.equal(torch.get_rng_state(), torch_before)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_before)  # noqa: NPY002
    b.fit(table, table["y"])
    proba = a.predict_proba(table)
    np.testing.assert_array_equal(proba, b.predict_proba(table))
    # refitting the same net replays the same draws
    np.testing.assert_array_equal(a.fit(table, table["y"]).predict_proba(table), proba)
    other = _classifier(module=SmallNet, augmentation=augmentation, random_state=1)
    other.fit(
        table, table["y"]
    )
    assert not np.array_equal(other.predict_proba(table), proba)
    # the caller's augmentation object is not modified
    assert repr(augmentation) == repr(a.augmentation)


def test_predictions_do_not_depend_on_the_other_rows(cohort):
    net = _classifier(patch_overlap=2, aggregation="max").fit(cohort, cohort["y"])
    table = cohort.iloc[:5]
    proba = net.predict_proba(table)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    reversed_rows = net.predict_proba(table.iloc[::-1])
    np.testing.assert_array_equal(reversed_rows, proba[::-1])
    np.testing.assert_array_equal(net.predict_proba(table.iloc[[3]]), proba[[3]])


def test_mean_aggregation_is_the_mean_of_patch_probabilities(cohort):
    net = _classifier(patch_size=(10, 11, 9)).fit(cohort, cohort["y"])
    row = cohort.iloc[[0]]
    image = tio.ScalarImage(row["image"].iloc[0]).data.float()
    patches = torch.stack([
        image[:, i:i + 10, j:j + 11, k:k + 9]
        for i in (0, 10) for j in (0, 11) for k in (0, 9)
    ])
    with torch.no_grad():
        expected = torch.softmax(net.module_(patches), dim=1).mean(0)
    np.testing.assert_allclose(net.predict_proba(row)[0], expected.numpy(), rtol=1e-5)


def test_string_classes_and_predict_returns_them(cohort):
    y = np.where(cohort["y"] == 1, "stripes", "plain")
    net = _classifier(max_epochs=1).fit(cohort, y)
    assert net.classes_.tolist() == ["plain", "stripes"]
    assert set(net.predict(cohort)) <= {"plain", "stripes"}


# -- composition: pipeline, grid search, persistence ---------------------------
@pytest.mark.slow
def test_pipeline_grid_search_site_folds_and_joblib_in_a_new_process(cohort, tmp_path):
    pipe = Pipeline([
        ("preprocess", TorchIOPreprocessor(tio.ZNormalization(), mask=None)),
        ("net", _classifier(max_epochs=1)),
    ])
    cv = SiteStratifiedKFold(n_splits=2, site="site", shuffle=True, random_state=0)
    search = GridSearchCV(pipe, {"net__lr": [0.01, 0.001]}, cv=cv)
    search.fit(cohort, cohort["y"])
    assert len(search.cv_results_["mean_test_score"]) == 2
    proba = search.predict_proba(cohort)
    file = tmp_path / "model.joblib"
    joblib.dump(search.best_estimator_, file)
    code = (
        "import joblib, numpy as np, sys\n"
        "from sklearn_medprep.datasets import make_texture_cohort\n"
        f"t = make_texture_cohort(16, shape=(20, 22, 18), path={str(tmp_path)!r}"
        ", random_state=0)\n"
        f"np.save(sys.argv[1], joblib.load({str(file)!r}).predict_proba(t))\n"
    )
    out = tmp_path / "proba.npy"
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(out), proba)


def test_clone_get_params_and_pickle_keep_the_augmentation(cohort):
    augmentation = tio.RandomFlip(axes=(0,))
    net = _classifier(augmentation=augmentation, max_epochs=1)
    params = net.get_params(deep=True)
    assert params["augmentation"] is augmentation
    assert "callbacks__print_log" in params
    cloned = clone(net)
    assert cloned.augmentation is not augmentation
    assert repr(cloned.augmentation) == repr(augmentation)
    net.set_params(lr=0.5, patch_size=(8, 8, 6))
    assert net.lr == 0.5 and net.patch_size == (8, 8, 6)
    net.fit(cohort, cohort["y"])
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(
        restored.predict_proba(cohort), net.predict_proba(cohort)
    )


# -- errors ---------------------------------------------------------------------
def test_volume_smaller_than_the_patch_names_its_row(cohort):
    table = cohort.copy()
    small = tio.ScalarImage(tensor=torch.zeros(1, 5, 22, 18))
    table["image"] = [small if row == "sub-003" else cell
                      for row, cell in table["image"].items()]
    net = _classifier(max_epochs=1)
    with pytest.raises(SubjectTableError, match=r"sub-003.*smaller than the patch"):
        net.fit(table, table["y"])


def test_clear_errors_for_bad_inputs(cohort):
    net = _classifier(max_epochs=1)
    with pytest.raises(SubjectTableError, match="needs column"):
        net.fit(cohort.drop(columns="image"), cohort["y"])
    with pytest.raises(TypeError, match="subject table"):
        net.fit(np.zeros((16, 3)), cohort["y"])
    with pytest.raises(ValueError, match="sampler"):
        _classifier(sampler="random").fit(cohort, cohort["y"])
    with pytest.raises(ValueError, match="iterator_train__num_workers must be 0"):
        _classifier(iterator_train__num_workers=2).fit(cohort, cohort["y"])
    with pytest.raises(ValueError, match="sampling_map"):
        _classifier(sampler="weighted").fit(cohort, cohort["y"])
    y = cohort["y"].to_numpy().copy()
    y[5] = 2
    with pytest.raises(SubjectTableError, match=r"sub-005.*class 2 is not among"):
        _classifier(classes=[0, 1]).fit(cohort, y)
    fitted = _classifier(max_epochs=1).fit(cohort, cohort["y"])
    with pytest.raises(ValueError, match="feature names"):
        fitted.predict(cohort.drop(columns="site"))


def test_weighted_sampler_draws_inside_the_probability_map(cohort):
    # probability 1 only in the sphere: every training patch centre is in it
    centres = []

    def collate(patches):
        for patch in patches:
            centres.append(int(patch["mask"].data[0, 4, 4, 4]))
        return net_collate(patches)

    from sklearn_medprep.nets._patches import PatchCollate

    net_collate = PatchCollate(["image"], "class")
    net = _classifier(
        sampler="weighted", sampling_map="mask", iterator_train__collate_fn=collate,
        max_epochs=1,
    )
    net.fit(cohort, cohort["y"])
    assert len(centres) == 16 * 4 and set(centres) == {1}


def test_dataset_is_lazy_and_subsets_keep_rows(cohort):
    dataset = PatchTableDataset(cohort, ["image"], targets=cohort["y"])
    assert all(isinstance(cell[0], str) for cell in dataset.cells)
    sub = dataset.subset([3, 1])
    assert sub.rows == ["sub-003", "sub-001"]
    assert sub[0]["medprep_target"] == cohort["y"].iloc[3]
    assert len(dataset.dry_iter()) == 16
    assert isinstance(pd.Index(sub.rows), pd.Index)


def test_preprocessing_runs_lazily_everywhere_and_must_be_deterministic(cohort):
    table = cohort.iloc[:2]
    identity = nn.Conv3d(1, 1, 1, bias=False)
    nn.init.ones_(identity.weight)
    net = PatchNeuralNetSegmenter(
        identity, preprocessing=[tio.ZNormalization()], patch_size=(10, 11, 9),
        predict_nonlinearity=None, max_epochs=0, train_split=None, verbose=0,
    ).fit(table)
    out = net.predict_proba(table)["mask_proba"]
    for image, path in zip(out, table["image"]):
        expected = tio.ZNormalization()(tio.ScalarImage(path)).data.float()
        assert torch.equal(image.data, expected)
    with pytest.raises(ValueError, match="preprocessing must be deterministic"):
        _classifier(preprocessing=tio.RandomFlip()).fit(table, table["y"])


# -- skorch's standard scoring callbacks (issue 21) ------------------------------
class _ValidRows(Callback):
    """Records the positions of the validation rows of skorch's split."""

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        self.rows_ = np.asarray(dataset_valid.indices)


@pytest.mark.parametrize("scoring", ["accuracy", "roc_auc"])
def test_epoch_scoring_scores_validation_subjects_through_predict(cohort, scoring):
    valid = _ValidRows()
    net = _classifier(
        train_split=ValidSplit(4, stratified=True),  # skorch's split, by subjects
        callbacks=[EpochScoring(scoring, lower_is_better=False), valid],
    )
    net.fit(cohort, cohort["y"])
    rows = cohort.iloc[valid.rows_]
    assert len(rows) == 4 and rows["y"].nunique() == 2
    if scoring == "accuracy":
        expected = accuracy_score(rows["y"], net.predict(rows))
    else:
        expected = roc_auc_score(rows["y"], net.predict_proba(rows)[:, 1])
    assert net.history[-1, scoring] == pytest.approx(expected, abs=1e-12)


def test_epoch_scoring_with_the_default_split(cohort):
    net = _classifier(
        train_split=PatchNeuralNetClassifier(nn.Identity()).train_split,
        callbacks=[EpochScoring("accuracy", lower_is_better=False)],
    )
    net.fit(cohort, cohort["y"])
    scores = net.history[:, "accuracy"]
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


def test_segmenter_epoch_scoring_is_the_mean_dice_of_validation_subjects(cohort):
    valid = _ValidRows()
    net = PatchNeuralNetSegmenter(
        SegNet, patch_size=8, samples_per_volume=2, queue_length=8, max_epochs=1,
        batch_size=4, train_split=ValidSplit(4), verbose=0, random_state=0,
        callbacks=[EpochScoring(None, name="valid_dice", lower_is_better=False),
                   valid],
    ).fit(cohort)
    expected = net.score(cohort.iloc[valid.rows_])
    assert net.history[-1, "valid_dice"] == pytest.approx(expected, abs=1e-12)


def test_use_caching_other_than_false_is_refused(cohort):
    with pytest.raises(ValueError, match=r"needs use_caching=False \(got 'auto'\)"):
        _classifier(use_caching="auto").fit(cohort, cohort["y"])


@pytest.mark.parametrize("fault", ["shape", "affine"])
def test_segmenter_label_on_another_grid_names_row_column_file(cohort, tmp_path, fault):
    table = cohort.iloc[:4].copy()
    label = tio.LabelMap(table.loc["sub-002", "mask"])
    if fault == "shape":
        moved = tio.LabelMap(tensor=label.data[..., :-2], affine=label.affine)
        what = "shape (20, 22, 16), not (20, 22, 18)"
    else:
        affine = label.affine.copy()
        affine[0, 3] += 5.0
        moved = tio.LabelMap(tensor=label.data, affine=affine)
        what = "same shape, another affine"
    path = tmp_path / "moved.nii.gz"
    moved.save(path)
    table["mask"] = [str(path) if row == "sub-002" else cell
                     for row, cell in table["mask"].items()]
    net = PatchNeuralNetSegmenter(
        SegNet, patch_size=8, samples_per_volume=2, queue_length=8, max_epochs=1,
        batch_size=4, train_split=None, verbose=0, random_state=0,
    )
    with pytest.raises(SubjectTableError) as info:
        net.fit(table)
    err = info.value
    assert (err.row, err.column, err.file) == ("sub-002", "mask", str(path))
    assert f"image is not on the grid of the 'image' image ({what}" in str(err)


# -- reading: each file checked once per fit ------------------------------------
def _assert_same_image(image, reference):
    assert type(image) is type(reference)
    assert image.data.dtype == reference.data.dtype
    np.testing.assert_array_equal(image.data.numpy(), reference.data.numpy())
    np.testing.assert_array_equal(image.affine, reference.affine)


def test_later_reads_equal_the_checked_reader_and_keep_non_finite_voxels(tmp_path):
    import nibabel

    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 0.8, 2.0, 1.0])
    affine[:3, 3] = [4.0, -7.0, 11.0]
    paths = []
    for name, bad in (("finite", False), ("nan", True)):
        data = rng.normal(size=(7, 8, 9)).astype(np.float32)
        if bad:
            data[1, 2, 3], data[4, 5, 6] = np.nan, np.inf
        path = tmp_path / f"{name}.nii.gz"
        nibabel.save(nibabel.Nifti1Image(data, affine), path)
        paths.append(str(path))
    table = pd.DataFrame({"image": paths}, index=["a", "b"])
    dataset = PatchTableDataset(table, ["image"])
    first = [dataset[i]["image"] for i in range(2)]
    later = [dataset.subset([0, 1])[i]["image"] for i in range(2)]  # next epoch
    for i, path in enumerate(paths):
        reference = to_torchio(path, row=table.index[i], column="image")
        _assert_same_image(first[i], reference)
        _assert_same_image(later[i], reference)
    # the file with NaN/inf keeps going through the checked reader: ITK alone
    # would turn those voxels into 0
    assert set(dataset._checked) == {paths[0]}
    raw = nibabel.load(paths[1]).get_fdata(dtype=np.float32)
    bad = ~np.isfinite(raw)
    assert bad.sum() == 2
    np.testing.assert_array_equal(later[1].data[0].numpy()[bad], raw[bad])


def test_a_label_map_read_again_is_still_a_label_map(cohort):
    dataset = PatchTableDataset(cohort.iloc[:2], ["image"], label="mask")
    for _ in range(2):  # first read checked, second read from the memo
        subject = dataset[1]
    assert cohort["mask"].iloc[1] in dataset._checked
    reference = to_torchio(cohort["mask"].iloc[1], label=True)
    _assert_same_image(subject["mask"], reference)
    _assert_same_image(subject["image"], to_torchio(cohort["image"].iloc[1]))


def test_a_file_changed_after_its_check_is_checked_again(tmp_path):
    path = tmp_path / "image.nii"
    sitk.WriteImage(sitk.Image(7, 8, 9, sitk.sitkFloat32), str(path))
    table = pd.DataFrame({"image": [str(path)]}, index=["sub-7"])
    dataset = PatchTableDataset(table, ["image"])
    assert dataset[0]["image"].shape == (1, 7, 8, 9)
    assert str(path) in dataset._checked
    with open(path, "r+b") as handle:  # truncated between two epochs
        handle.truncate(1000)
    with pytest.raises(ImageReadError, match="truncated") as info:
        dataset[0]
    message = str(info.value)
    assert "sub-7" in message and "'image'" in message and "image.nii" in message


# -- device= (skorch's): runs where a CUDA device is ----------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_trains_on_the_gpu_seeded_and_predicts_like_the_cpu(cohort):
    import copy

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.Dropout3d(0.3), nn.ReLU(), nn.Conv3d(4, 2, 1)
    )
    params = dict(
        label="mask", patch_size=8, samples_per_volume=2, queue_length=8,
        max_epochs=2, batch_size=4, lr=0.1, train_split=None, verbose=0,
        random_state=0, patch_overlap=2,
    )
    table = cohort.iloc[:4]
    caller = torch.cuda.get_rng_state()
    gpu = PatchNeuralNetSegmenter(copy.deepcopy(module), device="cuda", **params)
    gpu.fit(table)
    assert torch.equal(torch.cuda.get_rng_state(), caller)
    assert {p.device.type for p in gpu.module_.parameters()} == {"cuda"}
    # the same seed draws the same dropout masks on the GPU: the same net (up
    # to cuDNN's non-deterministic sums); another seed, another net
    same = PatchNeuralNetSegmenter(copy.deepcopy(module), device="cuda", **params)
    other = PatchNeuralNetSegmenter(
        copy.deepcopy(module), device="cuda", **{**params, "random_state": 1}
    )
    weights = [p.detach().cpu() for p in gpu.module_.parameters()]
    for net, close in ((same.fit(table), True), (other.fit(table), False)):
        pairs = zip(weights, (p.detach().cpu() for p in net.module_.parameters()))
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in pairs) is close
    # grid inference on the GPU = on the CPU with the same weights
    cpu = PatchNeuralNetSegmenter(copy.deepcopy(module), **params).fit(table)
    cpu.module_.load_state_dict(
        {k: v.cpu() for k, v in gpu.module_.state_dict().items()}
    )
    for a, b in zip(gpu.predict_proba(table)["mask_proba"],
                    cpu.predict_proba(table)["mask_proba"]):
        assert a.data.device.type == "cpu"
        np.testing.assert_allclose(a.data.numpy(), b.data.numpy(), atol=1e-5)
