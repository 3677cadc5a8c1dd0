"""Exact filtered extraction on crops: every image type equals PyRadiomics' full-image
result (rel <= 1e-9) while PyRadiomics really receives a smaller image.
"""

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep._radiomics_crop import _calls, _type_margin, crop_plan

CLASSES = {"featureClass": {"firstorder": [], "glcm": [], "glszm": [], "shape": []},
           "setting": {"binWidth": 10}}


def _case(seed=0, shape=(36, 80, 96), center=(18, 40, 48), spike=True):
    """Structured image (sinusoids, bright slab, noise), ROI far from the border,
    anisotropic spacing; optionally a single extreme voxel far from the ROI (the
    whole-image maximum the Square family scales by).
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    array = (200 + 80 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
             + 40 * np.sin(zz / 2.0) + rng.normal(0, 25, shape))
    array[:, :, : shape[2] // 5] += 600  # bright slab near (not in) the ROI
    if spike:
        array[2, 3, 4] = 5000.0
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((0.9, 1.1, 2.0))
    image.SetOrigin((-12.0, 7.0, 1.5))
    cz, cy, cx = center
    roi = ((zz - cz) / 4.0) ** 2 + ((yy - cy) / 7.0) ** 2 + ((xx - cx) / 6.0) ** 2 < 1
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


def _reference(image, mask, params):
    params = json.loads(json.dumps(params))
    params.setdefault("setting", {})["additionalInfo"] = False
    out = RadiomicsFeatureExtractor(params).execute(image, mask)
    return pd.Series({k: float(v) for k, v in out.items()})


def _spy_sizes(monkeypatch):
    sizes = []
    execute = RadiomicsFeatureExtractor.execute

    def spy(self, image, mask, *args, **kwargs):
        sizes.append((list(self.enabledImagetypes), image.GetSize()))
        return execute(self, image, mask, *args, **kwargs)

    monkeypatch.setattr(RadiomicsFeatureExtractor, "execute", spy)
    return sizes


IMAGE_TYPES = {
    "Square": {}, "SquareRoot": {}, "Logarithm": {}, "Exponential": {},
    "LoG": {"sigma": [0.5, 1.0]},
    "Wavelet": {},
    "Wavelet2": {"level": 2, "start_level": 1, "wavelet": "db2"},
    "Gradient": {},
    "LBP2D": {"lbp2DRadius": 2},
}


@pytest.mark.parametrize("kind", list(IMAGE_TYPES))
def test_each_image_type_on_a_crop_equals_full_image(kind, monkeypatch):
    name = "Wavelet" if kind == "Wavelet2" else kind
    image_types = {"Original": {}, name: IMAGE_TYPES[kind]}
    params = {**CLASSES, "imageType": image_types}
    image, mask = _case()
    if name == "LBP2D":  # integer image, as skimage recommends
        image = sitk.Cast(image, sitk.sitkInt16)
    ref = _reference(image, mask, params)
    sizes = _spy_sizes(monkeypatch)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]})).iloc[0]
    assert list(out.index) == list(ref.index)
    assert sum(n.startswith(("original_firstorder", "original_shape")) is False
               for n in ref.index) > 30
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)
    # every call got a crop: far fewer voxels than the image
    full = np.prod(image.GetSize())
    calls = [["Original"], [name]]
    if name == "Gradient":  # one crop of margin 2 for both
        calls = [["Original", name]]
    elif name == "LoG":  # one call (and region) per sigma
        calls = [["Original"], [name], [name]]
    assert [types for types, _ in sizes] == calls
    assert all(np.prod(size) < full / 3 for _, size in sizes), sizes


def test_all_filters_together_in_pyradiomics_order(monkeypatch):
    params = {**CLASSES, "imageType": {
        "Wavelet": {}, "Original": {}, "Square": {}, "LoG": {"sigma": [1.5]},
        "Exponential": {}, "Gradient": {}}}
    image, mask = _case(1)
    ref = _reference(image, mask, params)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]})).iloc[0]
    assert list(out.index) == list(ref.index)  # shape first, then types in order
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)


@pytest.mark.parametrize("kind", ["Wavelet", "LoG", "Square"])
def test_roi_at_the_image_border_keeps_whole_axes(kind, monkeypatch):
    # the ROI touches the low-x border: wrap-around (wavelet) and boundary
    # conditions (LoG) need the whole x axis; the other axes are still cropped
    image, mask = _case(2, center=(18, 40, 3), spike=False)
    params = {**CLASSES, "imageType": {kind: IMAGE_TYPES[kind]}}
    ref = _reference(image, mask, params)
    sizes = _spy_sizes(monkeypatch)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]})).iloc[0]
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)
    for _, size in sizes:
        if kind != "Square":
            assert size[0] == image.GetSize()[0]
        assert np.prod(size) < np.prod(image.GetSize())


def test_square_family_carries_the_whole_image_maximum():
    # the maximum (5000) lies far outside the crop: without carrying it in,
    # the crop would be scaled by its own maximum and every value would change
    image, mask = _case(3)
    params = {**CLASSES, "imageType": {"SquareRoot": {}}}
    ref = _reference(image, mask, params)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]})).iloc[0]
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)
    box = image[38:60, 32:50, 12:26]  # x, y, z: around the ROI, spike outside
    naive = _reference(box, mask[38:60, 32:50, 12:26], params)
    assert not np.allclose(naive["squareroot_firstorder_Mean"],
                           ref["squareroot_firstorder_Mean"], rtol=1e-3)


def test_plan_and_margins():
    assert crop_plan({}) is not None
    for refused in ({"setting": {"normalize": True}},
                    {"setting": {"resampledPixelSpacing": [2, 2, 2]}},
                    {"setting": {"correctMask": True}}):
        assert crop_plan(refused) is None, refused
    assert crop_plan({}, include_diagnostics=True) is None
    spacing = (0.5, 1.0, 2.0)
    assert _type_margin("LoG", {"sigma": [1.0, 3.0]}, spacing) == (120, 60, 30)
    assert _type_margin("Wavelet", {}, spacing) == (7, 7, 7)  # coif1: 6 taps
    assert _type_margin("Square", {}, spacing) == (1, 1, 1)
    assert _type_margin("LBP3D", {}, spacing) is None  # never cropped


def test_calls_group_square_family_and_split_log_sigmas():
    enabled = {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Square": {},
               "SquareRoot": {}, "Logarithm": {}, "Exponential": {}, "Wavelet": {}}
    calls = _calls(enabled, {}, (1.0, 1.0, 1.0))
    assert [list(types) for types, _ in calls] == [
        ["Original"], ["LoG"], ["LoG"],
        ["Square", "SquareRoot", "Logarithm", "Exponential"], ["Wavelet"]]
    assert calls[1][0]["LoG"]["sigma"] == [1.0]
    assert calls[2][1] == (60, 60, 60)


def test_log_support_is_needed(monkeypatch):
    """The recursive Gaussian's tail matters: 3 sigma is not enough, 20 is."""
    import sklearn_medprep._radiomics_crop as crop

    params = {**CLASSES, "imageType": {"LoG": {"sigma": [1.0]}}}
    image, mask = _case(4)
    ref = _reference(image, mask, params)
    monkeypatch.setattr(crop, "LOG_SUPPORT_SIGMAS", 3.0)
    short = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]})).iloc[0]
    rel = np.abs(short.to_numpy(float) - ref.to_numpy()) / np.abs(ref.to_numpy())
    assert np.nanmax(rel) > 1e-6


def test_square_family_integer_image_with_most_negative_value():
    # int16 -32768: numpy's abs overflows on it; PyRadiomics casts to float64
    image, mask = _case(5, spike=False)
    array = sitk.GetArrayFromImage(image).astype(np.int16)
    array[1, 2, 3] = -32768
    image16 = sitk.GetImageFromArray(array)
    image16.CopyInformation(image)
    params = {**CLASSES, "imageType": {"Square": {}, "Exponential": {}}}
    ref = _reference(image16, mask, params)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image16], "mask": [mask]})).iloc[0]
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)
