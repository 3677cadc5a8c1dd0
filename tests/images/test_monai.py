"""MONAI transforms: refused directly, seeded inside tio.Lambda, never deterministic."""

import functools

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torchio as tio

from sklearn_medprep import TorchIOAugmenter, TorchIOPreprocessor, load_image

monai_transforms = pytest.importorskip("monai.transforms")


def _array(cell):
    return sitk.GetArrayFromImage(load_image(cell))


@pytest.fixture(scope="module")
def table():
    """Asymmetric images and masks (a flip always shows), shape (7, 8, 9)."""
    rng = np.random.default_rng(0)
    rows = {}
    for k in range(6):
        data = rng.normal(size=(9, 8, 7)).astype(np.float32)  # z, y, x
        mask = np.zeros((9, 8, 7), np.uint8)
        mask[1:4, 2:7, 0:3] = 1
        image, label = sitk.GetImageFromArray(data), sitk.GetImageFromArray(mask)
        rows[f"s{k}"] = (image, label, "a" if k % 2 else "b")
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["image", "mask", "site"])


@pytest.mark.parametrize("estimator", [TorchIOAugmenter, TorchIOPreprocessor])
@pytest.mark.parametrize("wrap", [lambda t: t, lambda t: [t],
                                  lambda t: tio.Compose([tio.ToCanonical(), t])])
def test_monai_transform_passed_directly_is_refused_with_the_way_out(
    table, estimator, wrap
):
    noise = monai_transforms.RandGaussianNoise(prob=1.0)
    with pytest.raises(TypeError, match=r"RandGaussianNoise: a MONAI .* tio\.Lambda"):
        estimator(wrap(noise)).fit(table)


def test_random_monai_in_lambda_follows_random_state(table):
    def run(seed, n_jobs=None):
        noise = monai_transforms.RandGaussianNoise(prob=1.0, std=0.5)
        augmenter = TorchIOAugmenter(
            tio.Lambda(noise, types_to_apply=[tio.INTENSITY]),
            random_state=seed, n_jobs=n_jobs,
        )
        out = augmenter.fit_transform(table)
        return np.stack([_array(cell) for cell in out["image"]])

    first, again = run(3), run(3)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, run(4))
    np.testing.assert_array_equal(first, run(3, n_jobs=2))
    # noise was added (to the images only), differently for each row
    originals = np.stack([_array(cell) for cell in table["image"]])
    noise = first - originals
    assert noise.std() > 0.01
    assert not np.allclose(noise[0], noise[1])


def test_the_sampler_draws_what_the_augmenter_draws(table):
    from sklearn_medprep import TorchIOAugmentSampler

    def lam():
        return tio.Lambda(monai_transforms.RandGaussianNoise(prob=1.0, std=0.5),
                          types_to_apply=[tio.INTENSITY])

    out = TorchIOAugmenter(lam(), random_state=5).fit_transform(table)
    X_res, _ = TorchIOAugmentSampler(lam(), random_state=5).fit_resample(
        table, np.zeros(len(table)))
    for row in table.index:
        np.testing.assert_array_equal(_array(X_res.loc[f"{row}|aug1", "image"]),
                                      _array(out.loc[row, "image"]))


def test_image_and_mask_of_a_row_get_the_same_monai_flip(table):
    flip = monai_transforms.RandFlip(prob=0.5, spatial_axis=0)
    out = TorchIOAugmenter(tio.Lambda(flip), random_state=0).fit_transform(table)
    flipped = []
    for row in table.index:
        image, mask = (_array(table.loc[row, c]) for c in ("image", "mask"))
        new_image, new_mask = (_array(out.loc[row, c]) for c in ("image", "mask"))
        # TorchIO's first spatial axis is x, the last numpy axis of SimpleITK's
        if np.array_equal(new_image, image):
            np.testing.assert_array_equal(new_mask, mask)
            flipped.append(False)
        else:
            np.testing.assert_array_equal(new_image, image[:, :, ::-1])
            np.testing.assert_array_equal(new_mask, mask[:, :, ::-1])
            flipped.append(True)
    assert any(flipped) and not all(flipped)


def test_the_callers_monai_transform_is_not_reseeded(table):
    noise = monai_transforms.RandGaussianNoise(prob=1.0)
    before = noise.R.get_state()[1].copy()
    TorchIOAugmenter(tio.Lambda(noise), random_state=0).fit_transform(table)
    np.testing.assert_array_equal(noise.R.get_state()[1], before)


def _closure():
    noise = monai_transforms.RandGaussianNoise(prob=1.0)
    return lambda x: noise(x)


@pytest.mark.parametrize(
    "function",
    [
        monai_transforms.RandGaussianNoise(prob=1.0),
        monai_transforms.RandFlip(prob=0.5),
        monai_transforms.Compose([monai_transforms.ScaleIntensity(),
                                  monai_transforms.RandFlip(prob=0.5)]),
        functools.partial(monai_transforms.RandGaussianNoise(prob=1.0)),
        monai_transforms.RandGaussianNoise(prob=1.0).__call__,
        _closure(),
    ],
    ids=["direct", "flip", "compose", "partial", "method", "closure"],
)
def test_random_monai_in_lambda_never_passes_the_preprocessor(table, function):
    with pytest.raises(ValueError, match=r"random parts found: Lambda\(.*random MONAI"):
        TorchIOPreprocessor(tio.Compose([tio.Lambda(function)]),
                            mask=None).fit(table)


def test_deterministic_monai_in_lambda_is_applied_by_the_preprocessor(table):
    scale = monai_transforms.Compose([monai_transforms.ScaleIntensity()])
    pre = TorchIOPreprocessor(tio.Lambda(scale, types_to_apply=[tio.INTENSITY]))
    out = pre.fit_transform(table)
    for row in table.index:
        data = _array(table.loc[row, "image"])
        expected = (data - data.min()) / (data.max() - data.min())  # MONAI's formula
        np.testing.assert_allclose(_array(out.loc[row, "image"]), expected,
                                   atol=1e-6)
        np.testing.assert_array_equal(_array(out.loc[row, "mask"]),
                                      _array(table.loc[row, "mask"]))


def test_torchio_collate_seeds_random_monai_per_sample():
    import torch

    from sklearn_medprep import TorchIOCollate

    rng = np.random.default_rng(1)
    batch = [(torch.as_tensor(rng.normal(size=(1, 5, 6, 7)), dtype=torch.float32), 0)
             for _ in range(3)]

    def augmented(seed):
        noise = monai_transforms.RandGaussianNoise(prob=1.0, std=0.5)
        before = noise.R.get_state()[1].copy()
        collate = TorchIOCollate(tio.Lambda(noise), random_state=seed)
        out = collate(batch)[0]
        # the caller's transform is not reseeded (the collate seeds a copy)
        np.testing.assert_array_equal(noise.R.get_state()[1], before)
        return out

    first, again = augmented(0), augmented(0)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, augmented(1))
    originals = torch.stack([x for x, _ in batch])
    added = first - originals
    assert added.std() > 0.01 and not torch.allclose(added[0], added[1])
