"""LoG on the ROI's box: bit for bit ITK's LaplacianRecursiveGaussianImageFilter
(what PyRadiomics' getLoGImage runs), and PyRadiomics' own checks and names.
"""

import logging

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import imageoperations

from sklearn_medprep.radiomics._log import log_image, log_images


def _image(pixel="float32", shape=(20, 30, 25), spacing=(0.7, 1.3, 3.1), seed=0):
    rng = np.random.default_rng(seed)
    array = 300 + rng.normal(0, 40, shape).cumsum(axis=1)
    if pixel == "uint8":
        array = np.clip(array / 8, 0, 255)
    image = sitk.GetImageFromArray(array.astype(pixel))
    image.SetSpacing(spacing[: len(shape)][::-1] if len(shape) == 2 else spacing)
    image.SetOrigin(tuple(float(i) - 3.5 for i in range(len(shape))))
    return image


def _same(got, want):
    assert got.GetSize() == want.GetSize()
    assert got.GetPixelID() == want.GetPixelID()
    assert got.GetSpacing() == want.GetSpacing()
    np.testing.assert_allclose(got.GetOrigin(), want.GetOrigin(), rtol=0, atol=1e-12)
    assert np.array_equal(sitk.GetArrayViewFromImage(got),
                          sitk.GetArrayViewFromImage(want))


BOXES = {
    "inside": (slice(6, 15), slice(9, 20), slice(5, 12)),
    "low border": (slice(0, 5), slice(9, 20), slice(5, 12)),
    "high border": (slice(6, 15), slice(24, 30), slice(15, 20)),
    "whole": (slice(0, 25), slice(0, 30), slice(0, 20)),
    "one voxel": (slice(7, 8), slice(3, 4), slice(10, 11)),
}


@pytest.mark.parametrize("pixel", ["uint8", "int16", "uint16", "int32", "float32",
                                   "float64"])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("where", list(BOXES))
def test_log_on_a_box_is_itk_bit_for_bit(pixel, sigma, where):
    image = _image(pixel)
    box = BOXES[where]
    want = sitk.LaplacianRecursiveGaussian(image, sigma, True)[box]
    _same(log_image(image, sigma, box), want)


def test_log_on_a_box_2d():
    image = _image("int16", shape=(40, 33))
    box = (slice(4, 20), slice(30, 40))
    want = sitk.LaplacianRecursiveGaussian(image, 1.2, True)[box]
    _same(log_image(image, 1.2, box), want)


def _pyradiomics(image, box, **kwargs):
    out = []
    for filtered, name, settings in imageoperations.getLoGImage(image, None, **kwargs):
        out.append((filtered[box], name, settings))
    return out


def test_log_images_names_and_checks_are_pyradiomics(caplog):
    image = _image("int16")
    box = BOXES["inside"]
    # sigma 0 and -1 skipped, 40 mm too large for the image (3.1 mm x 20)
    kwargs = {"sigma": [1.0, 0.0, 2.5, -1.0, 40.0], "binWidth": 10}
    want = _pyradiomics(image, box, **kwargs)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="radiomics.imageoperations"):
        got = list(log_images(image, box, image.GetSize(), **kwargs))
    assert [name for _, name, _ in got] == [name for _, name, _ in want] == [
        "log-sigma-1-0-mm-3D", "log-sigma-2-5-mm-3D"]
    assert all(g[2] == kwargs for g in got)
    for (g, _, _), (w, _, _) in zip(got, want):
        _same(g, w)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("sigma must be greater than 0.0" in m for m in messages) == 2
    assert sum("must be greater than the size" in m for m in messages) == 1


def test_log_images_checks_the_whole_image_not_the_region():
    # a region of 6 slices (the whole image has 20): PyRadiomics on the whole
    # image keeps sigma 16 mm (16 / 3.1 + 1 <= 20, 16 / 0.7 + 1 <= 25); the
    # region's own check would drop it
    image = _image("int16")
    region = image[:, :, 7:13]
    box = (slice(6, 15), slice(9, 20), slice(2, 4))
    assert _pyradiomics(region, box, sigma=[16.0]) == []
    got = list(log_images(region, box, image.GetSize(), sigma=[16.0]))
    assert [name for _, name, _ in got] == ["log-sigma-16-0-mm-3D"]
    assert list(log_images(image[:3], box, (3, 30, 20), sigma=[1.0])) == []
