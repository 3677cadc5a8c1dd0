"""TorchIOAugmentSampler: the sampler role, bit-identical to as_sampler=True."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import torchio as tio
from counting_transform import Counting
from imblearn.base import is_sampler
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags

from sklearn_medprep import TorchIOAugmenter, TorchIOAugmentSampler
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.io._read import to_torchio
from sklearn_medprep.model_selection import SiteStratifiedKFold

NOISE = tio.Compose([tio.RandomAffine(degrees=10), tio.RandomNoise(std=(0.1, 0.2))])


def _assert_identical(a, b):
    """Same index, same metadata, bit-identical image and mask tensors."""
    pd.testing.assert_index_equal(a.index, b.index)
    pd.testing.assert_frame_equal(
        a.drop(columns=["image", "mask"]), b.drop(columns=["image", "mask"])
    )
    for column in ("image", "mask"):
        for x, y in zip(a[column], b[column]):
            x, y = to_torchio(x), to_torchio(y)
            assert x.data.dtype == y.data.dtype
            assert torch.equal(x.data, y.data), column
            np.testing.assert_array_equal(x.affine, y.affine)


@pytest.mark.parametrize("y_kind", ["series", "array", "frame"])
@pytest.mark.parametrize("n_augmentations", [1, 3])
def test_same_rows_as_the_deprecated_as_sampler(table, y_kind, n_augmentations):
    y = {
        "series": table["y"],
        "array": table["y"].to_numpy(),
        "frame": table[["y", "site"]],
    }[y_kind]
    params = dict(n_augmentations=n_augmentations, random_state=11)
    X_new, y_new = TorchIOAugmentSampler(NOISE, **params).fit_resample(table, y)
    old = TorchIOAugmenter(NOISE, as_sampler=True, **params)
    with pytest.warns(FutureWarning, match="use TorchIOAugmentSampler"):
        X_old, y_old = old.fit_resample(table, y)
    _assert_identical(X_new, X_old)
    # ...and the augmenter's own fit_resample (no warning) gives them too
    X_plain, _ = TorchIOAugmenter(NOISE, **params).fit_resample(table, y)
    _assert_identical(X_new, X_plain)
    n = len(table)
    assert X_new.shape == ((1 + n_augmentations) * n, table.shape[1])
    assert list(X_new.index[n : 2 * n]) == [f"{r}|aug1" for r in table.index]
    for k in range(n):  # originals untouched, copies augmented
        assert X_new["image"].iloc[k] is table["image"].iloc[k]
        assert not torch.equal(
            to_torchio(X_new["image"].iloc[n + k]).data,
            to_torchio(table["image"].iloc[k]).data,
        )
    if y_kind == "array":
        np.testing.assert_array_equal(y_new, np.tile(y, 1 + n_augmentations))
        np.testing.assert_array_equal(y_new, y_old)
    else:
        assert list(y_new.index) == list(X_new.index)
        pd.testing.assert_frame_equal(
            pd.DataFrame(y_new), pd.DataFrame(y_old)
        )
        np.testing.assert_array_equal(
            np.asarray(y_new).reshape(len(X_new), -1),
            np.tile(np.asarray(y).reshape(n, -1), (1 + n_augmentations, 1)),
        )


def test_seeded_reproducible_and_caller_rng_untouched(table):
    torch.manual_seed(2024)
    torch_state = torch.get_rng_state()
    a = TorchIOAugmentSampler(NOISE, random_state=5).fit_resample(table, None)
    assert torch.equal(torch.get_rng_state(), torch_state)
    b = TorchIOAugmentSampler(NOISE, random_state=5).fit_resample(table, None)
    assert a[1] is None and b[1] is None
    _assert_identical(a[0], b[0])
    c = TorchIOAugmentSampler(NOISE, random_state=6).fit_resample(table, None)[0]
    n = len(table)
    assert not torch.equal(
        to_torchio(a[0]["image"].iloc[n]).data, to_torchio(c["image"].iloc[n]).data
    )


def test_the_sampler_role_only(table):
    sampler = TorchIOAugmentSampler(NOISE)
    assert not hasattr(sampler, "transform")
    assert not hasattr(sampler, "fit_transform")
    tags = get_tags(sampler)
    assert tags.estimator_type == "sampler" and tags.transformer_tags is None
    assert is_sampler(sampler)
    # as imbalanced-learn's samplers: fit returns self and keeps the columns
    assert sampler.fit(table, table["y"]) is sampler
    assert list(sampler.get_feature_names_out()) == list(table.columns)
    # the deprecated flag: any explicit value warns in fit, behaviour unchanged
    with pytest.warns(FutureWarning, match="`as_sampler` was deprecated"):
        out = TorchIOAugmenter(NOISE, as_sampler=False, random_state=0).fit_transform(
            table
        )
    _assert_identical(out, TorchIOAugmenter(NOISE, random_state=0).fit_transform(table))


def _mean_intensity(X):
    return np.array([[to_torchio(c).data.double().mean().item()] for c in X["image"]])


class Recorder(ClassifierMixin, BaseEstimator):
    """Records what fit and predict see."""

    def fit(self, X, y):
        self.fit_rows_ = len(X)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        self.predict_rows_ = len(X)
        return np.full(len(X), self.classes_[0])


def test_imblearn_pipeline_enlarges_the_training_fold_only(table, counter):
    train, test = table.iloc[:4], table.iloc[4:]
    pipe = ImbPipeline(
        [
            ("aug", TorchIOAugmentSampler(Counting(NOISE), n_augmentations=3,
                                          random_state=0)),
            ("features", FunctionTransformer(_mean_intensity)),
            ("clf", Recorder()),
        ]
    )
    pipe.fit(train, train["y"])
    assert pipe[-1].fit_rows_ == 4 * len(train)
    assert counter[0] == 3 * len(train)
    pipe.predict(test)
    assert pipe[-1].predict_rows_ == len(test)
    assert counter[0] == 3 * len(train)  # the test rows are never augmented
    # the features the classifier saw are those of the sampler's rows
    X_res, _ = TorchIOAugmentSampler(NOISE, n_augmentations=3, random_state=0
                                     ).fit_resample(train, train["y"])
    features = pipe[:-1]
    assert features[0].n_features_in_ == train.shape[1]
    np.testing.assert_array_equal(
        _mean_intensity(X_res)[: len(train)], _mean_intensity(train)
    )


def test_grid_search_over_site_folds_and_clone():
    table = make_multisite_cohort(8, 2, shape=(7, 8, 9), random_state=2)
    flip = tio.RandomFlip(axes=(0,), flip_probability=1.0)
    pipe = ImbPipeline(
        [
            ("aug", TorchIOAugmentSampler(flip, random_state=0)),
            ("features", FunctionTransformer(_mean_intensity)),
            ("clf", Recorder()),
        ]
    )
    cloned = clone(pipe)
    assert cloned["aug"].transforms is not flip
    assert repr(cloned["aug"].transforms) == repr(flip)
    assert pipe.get_params(deep=True)["aug__transforms"] is flip
    cv = SiteStratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    search = GridSearchCV(
        pipe, {"aug__n_augmentations": [1, 2]}, cv=cv.split(table, table["y"]),
        scoring="accuracy",
    ).fit(table, table["y"])
    assert search.best_estimator_[-1].fit_rows_ == (
        (1 + search.best_params_["aug__n_augmentations"]) * len(table)
    )


def test_clear_errors(table):
    with pytest.raises(ValueError, match="'transforms' parameter"):
        TorchIOAugmentSampler("flip").fit_resample(table, table["y"])
    with pytest.raises(TypeError, match="torchio Transform"):
        TorchIOAugmentSampler(len).fit_resample(table, table["y"])
    with pytest.raises(ValueError, match="n_augmentations"):
        TorchIOAugmentSampler(NOISE, n_augmentations=0).fit_resample(table, None)
    with pytest.raises(ValueError, match="needs column"):
        TorchIOAugmentSampler(NOISE, image="t1").fit_resample(table, None)
    with pytest.raises(ValueError, match="X has 6 rows but y has 2"):
        TorchIOAugmentSampler(NOISE).fit_resample(table, [0, 1])
    with pytest.raises(ValueError, match="'as_sampler' parameter"):
        TorchIOAugmenter(NOISE, as_sampler="yes").fit(table)


def test_pickle_input_and_params_unchanged(table):
    sampler = TorchIOAugmentSampler(NOISE, n_augmentations=2, random_state=4)
    params = repr(sampler.get_params())
    before = table.copy(deep=True)
    X_res, _ = sampler.fit_resample(table, table["y"])
    assert repr(sampler.get_params()) == params
    assert sampler.transforms is NOISE and sampler.transform_ is not NOISE
    pd.testing.assert_frame_equal(table.drop(columns=["image", "mask"]),
                                  before.drop(columns=["image", "mask"]))
    _assert_identical(table, before)
    restored = pickle.loads(pickle.dumps(sampler))
    assert restored.transform_ is not sampler.transform_
    _assert_identical(restored.fit_resample(table, table["y"])[0], X_res)
    _assert_identical(sampler.fit_resample(table, table["y"])[0], X_res)
