"""TorchIOAugmenter: augmentation in fit_transform / fit_resample only, reproducible.

The sampler role (``as_sampler=True``, deprecated) is TorchIOAugmentSampler's:
tests/images/test_augment_sampler.py.
"""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import torchio as tio
from counting_transform import Counting
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_medprep import TorchIOAugmenter
from sklearn_medprep.datasets import make_xray_cohort
from sklearn_medprep.io._read import to_sitk, to_torchio


def _data(table, column="image"):
    return [to_torchio(cell).data for cell in table[column]]


def _equal_tables(a, b, columns=("image", "mask")):
    assert list(a.index) == list(b.index)
    return all(
        torch.equal(x, y) for c in columns for x, y in zip(_data(a, c), _data(b, c))
    )


NOISE = tio.Compose([tio.RandomAffine(degrees=10), tio.RandomNoise(std=(0.1, 0.2))])


def test_fit_transform_augments_and_transform_is_identity(table, counter):
    aug = TorchIOAugmenter(Counting(NOISE), random_state=0)
    out = aug.fit_transform(table)
    assert counter[0] == len(table)
    assert list(out.index) == list(table.index)
    pd.testing.assert_frame_equal(
        out.drop(columns=["image", "mask"]), table.drop(columns=["image", "mask"])
    )
    for before, after in zip(_data(table), _data(out)):
        assert before.shape == after.shape and not torch.equal(before, after)
    assert aug.transform(table) is table
    assert counter[0] == len(table)
    assert list(aug.get_feature_names_out()) == list(table.columns)


def test_spatial_transforms_move_image_and_mask_together(table):
    # the image is the mask itself: after the same spatial transform (nearest
    # interpolation) both must still coincide voxel for voxel
    same = table.copy()
    same["image"] = [
        tio.ScalarImage(tensor=m.data.float(), affine=m.affine)
        for m in (to_torchio(cell, label=True) for cell in table["mask"])
    ]
    transform = tio.Compose(
        [
            tio.RandomAffine(degrees=20, translation=2, image_interpolation="nearest"),
            tio.RandomElasticDeformation(
                max_displacement=1.5,
                num_control_points=5,
                image_interpolation="nearest",
            ),
        ]
    )
    out = TorchIOAugmenter(transform, random_state=1).fit_transform(same)
    moved = 0
    for row in same.index:
        image, mask = out.loc[row, "image"].data, out.loc[row, "mask"].data
        assert torch.equal(image, mask.float())
        moved += not torch.equal(mask, to_torchio(table.loc[row, "mask"]).data)
    assert moved == len(same)


def test_same_seed_same_output_any_n_jobs_and_global_seed(table):
    aug = TorchIOAugmenter(NOISE, random_state=42, n_jobs=1)
    torch.manual_seed(0)
    first = aug.fit_transform(table)
    torch.manual_seed(1)
    np.random.seed(1)  # noqa: NPY002
    # other global seeds and another n_jobs (worker processes): same output
    second = clone(aug).set_params(n_jobs=2).fit_transform(table)
    assert _equal_tables(first, second)
    other = TorchIOAugmenter(NOISE, random_state=43).fit_transform(table)
    assert not _equal_tables(first, other, columns=("image",))
    fresh = [TorchIOAugmenter(NOISE).fit_transform(table) for _ in range(2)]
    assert not _equal_tables(*fresh, columns=("image",))
    # a RandomState is drawn from: successive calls differ, equal states agree
    rs = np.random.RandomState(5)
    aug_rs = TorchIOAugmenter(NOISE, random_state=rs)
    a, b = aug_rs.fit_transform(table), aug_rs.fit_transform(table)
    assert not _equal_tables(a, b, columns=("image",))
    c = TorchIOAugmenter(NOISE, random_state=np.random.RandomState(5)).fit_transform(
        table
    )
    assert _equal_tables(a, c)


@pytest.mark.slow
def test_n_jobs_does_not_change_the_output(table):
    one = TorchIOAugmenter(NOISE, random_state=7, n_jobs=1)
    two = TorchIOAugmenter(NOISE, random_state=7, n_jobs=2)
    assert _equal_tables(one.fit_transform(table), two.fit_transform(table))
    y = table["y"]
    assert _equal_tables(
        one.set_params(n_augmentations=2).fit_resample(table, y)[0],
        two.set_params(n_augmentations=2).fit_resample(table, y)[0],
    )


@pytest.mark.parametrize("random_state", [0, None])
def test_callers_global_random_states_untouched(table, random_state):
    torch.manual_seed(2024)
    np.random.seed(2024)  # noqa: NPY002
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()  # noqa: NPY002
    aug = TorchIOAugmenter(NOISE, n_augmentations=2, random_state=random_state)
    aug.fit_transform(table)
    aug.fit_resample(table, table["y"])
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    np.testing.assert_array_equal(after[1], numpy_state[1])
    assert after[2] == numpy_state[2]
    # and the draws the caller makes next are those it would have made anyway
    expected = torch.rand(3)
    torch.set_rng_state(torch_state)
    assert torch.equal(torch.rand(3), expected)


def test_fit_resample_adds_copies_with_labels_and_metadata(table, counter):
    aug = TorchIOAugmenter(Counting(NOISE), n_augmentations=2, random_state=3)
    X_res, y_res = aug.fit_resample(table, table["y"])
    n = len(table)
    assert counter[0] == 2 * n
    assert X_res.shape == (3 * n, table.shape[1])
    assert X_res.index.is_unique
    assert list(X_res.index[:n]) == list(table.index)
    assert list(X_res.index[n : 2 * n]) == [f"{r}|aug1" for r in table.index]
    assert list(X_res.index[2 * n :]) == [f"{r}|aug2" for r in table.index]
    assert list(y_res.index) == list(X_res.index)
    np.testing.assert_array_equal(y_res.to_numpy(), np.tile(table["y"], 3))
    for column in ("site", "age", "sex", "y"):
        np.testing.assert_array_equal(
            X_res[column].to_numpy(), np.tile(table[column], 3)
        )
    for k in range(n):  # the originals come back untouched
        assert X_res["image"].iloc[k] is table["image"].iloc[k]
    # the first copy is what fit_transform returns, the second one differs
    counter[0] = 0
    first = aug.fit_transform(table)
    assert counter[0] == n
    copy1 = X_res.iloc[n : 2 * n].set_axis(table.index)
    copy2 = X_res.iloc[2 * n :].set_axis(table.index)
    assert _equal_tables(first, copy1)
    assert not _equal_tables(first, copy2, columns=("image",))
    _, y_array = aug.fit_resample(table, table["y"].to_numpy())
    np.testing.assert_array_equal(y_array, np.tile(table["y"], 3))
    with pytest.raises(ValueError, match="y has 2"):
        aug.fit_resample(table, [0, 1])


def _mean_intensity(X):
    return np.array(
        [[sitk.GetArrayViewFromImage(to_sitk(c)).mean()] for c in X["image"]]
    )


class Recorder(ClassifierMixin, BaseEstimator):
    """Records what fit and predict see."""

    def fit(self, X, y):
        self.fit_rows_ = len(X)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        self.predict_rows_ = len(X)
        return np.full(len(X), self.classes_[0])


def test_imblearn_pipeline_enlarges_training_set_only(table, counter):
    train, test = table.iloc[:4], table.iloc[4:]
    pipe = ImbPipeline(
        [
            (
                "aug",
                TorchIOAugmenter(Counting(NOISE), n_augmentations=3, as_sampler=True),
            ),
            ("features", FunctionTransformer(_mean_intensity)),
            ("clf", Recorder()),
        ]
    )
    with pytest.warns(FutureWarning, match="use TorchIOAugmentSampler"):
        pipe.fit(train, train["y"])
    assert pipe[-1].fit_rows_ == 4 * len(train)
    assert counter[0] == 3 * len(train)
    pipe.predict(test)
    assert pipe[-1].predict_rows_ == len(test)
    assert counter[0] == 3 * len(train)
    assert not hasattr(pipe[0], "transform") and not hasattr(pipe[0], "fit_transform")
    with pytest.raises(TypeError, match="implements both"):
        ImbPipeline([("aug", TorchIOAugmenter(NOISE)), ("clf", Recorder())]).fit(
            train, train["y"]
        )


def test_sklearn_pipeline_augments_fit_not_predict(table, counter):
    train, test = table.iloc[:4], table.iloc[4:]
    pipe = Pipeline(
        [
            ("aug", TorchIOAugmenter(Counting(NOISE), random_state=0)),
            ("features", FunctionTransformer(_mean_intensity)),
            ("clf", Recorder()),
        ]
    )
    pipe.fit(train, train["y"])
    assert counter[0] == len(train) and pipe[-1].fit_rows_ == len(train)
    pipe.predict(test)
    pipe.predict(train)
    assert counter[0] == len(train)
    assert pipe.get_params(deep=True)["aug__random_state"] == 0
    pipe.set_output(transform="pandas")


def test_2d_xray_images_and_masks_flip_together(tmp_path):
    xray = make_xray_cohort(3, path=tmp_path, shape=(24, 20), random_state=0)
    aug = TorchIOAugmenter(tio.RandomFlip(axes=(0,), flip_probability=1.0))
    out = aug.fit_transform(xray)
    for row in xray.index:
        for column in ("image", "mask"):
            original = sitk.GetArrayFromImage(to_sitk(xray.loc[row, column]))
            cell = out.loc[row, column]
            assert cell.shape == (1, 20, 24, 1)
            flipped = sitk.GetArrayFromImage(to_sitk(cell))
            assert flipped.shape == original.shape == (24, 20)
            np.testing.assert_array_equal(flipped, original[:, ::-1])
    rotated = TorchIOAugmenter(
        tio.RandomAffine(degrees=(0, 0, 0, 0, -15, 15)), random_state=0
    ).fit_transform(xray)
    assert rotated["image"].iloc[0].shape == (1, 20, 24, 1)


def test_clear_errors(table):
    with pytest.raises(ValueError, match="'transforms' parameter"):
        TorchIOAugmenter("flip").fit(table)
    with pytest.raises(TypeError, match="torchio Transform"):
        TorchIOAugmenter(len).fit(table)
    with pytest.raises(ValueError, match="n_augmentations"):
        TorchIOAugmenter(NOISE, n_augmentations=0).fit(table)
    with pytest.raises(ValueError, match="needs column"):
        TorchIOAugmenter(NOISE, image="t1").fit(table)


def test_clone_and_grid_search_params_with_a_bare_random_transform(table):
    # TorchIO random transforms have their own get_params(); clone must not call it
    flip = tio.RandomFlip(axes=(0,), flip_probability=1.0)
    pipe = Pipeline([("aug", TorchIOAugmenter(flip)), ("clf", Recorder())])
    cloned = clone(pipe)
    assert cloned["aug"].transforms is not flip
    assert repr(cloned["aug"].transforms) == repr(flip)
    assert pipe.get_params(deep=True)["aug__transforms"] is flip
    cloned.set_params(aug__n_augmentations=2)
    assert cloned["aug"].n_augmentations == 2 and pipe["aug"].n_augmentations == 1
