"""Exact filtered extraction on crops: every image type equals PyRadiomics' full-image
result (rel <= 1e-9) while PyRadiomics really receives a smaller image.
"""

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

import sklearn_medprep.radiomics._crop as crop
from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.radiomics._crop import _calls, _type_margin, crop_plan

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
    """Record ``(image types, size of the image filtered)`` of every region,
    whether PyRadiomics' ``execute`` or our per-region filter step gets it.
    """
    sizes = []
    execute = RadiomicsFeatureExtractor.execute
    filter_region = crop._filter

    def spy(self, image, mask, *args, **kwargs):
        sizes.append((list(self.enabledImagetypes), image.GetSize()))
        return execute(self, image, mask, *args, **kwargs)

    def spy_filter(settings, image_types, image, *args):
        sizes.append((list(image_types), image.GetSize()))
        return filter_region(settings, image_types, image, *args)

    monkeypatch.setattr(RadiomicsFeatureExtractor, "execute", spy)
    monkeypatch.setattr(crop, "_filter", spy_filter)
    monkeypatch.setattr(crop, "FILTER_THREADS", 0)  # regions in order
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


@pytest.mark.parametrize("kind", ["Wavelet", "LoG", "Square", "LBP2D"])
def test_roi_at_the_image_border(kind, monkeypatch):
    # the ROI touches the low-x border. The wavelet wraps around: the whole x
    # axis. The others are local, their border conditions (LoG's recursive
    # Gaussian: constant extension of each line's end; skimage's LBP) are the
    # image's own at the low end: x from 0 to the ROI plus the margin
    image, mask = _case(2, center=(18, 40, 3), spike=False)
    if kind == "LBP2D":
        image = sitk.Cast(image, sitk.sitkInt16)
    params = {**CLASSES, "imageType": {kind: IMAGE_TYPES[kind]}}
    ref = _reference(image, mask, params)
    sizes = _spy_sizes(monkeypatch)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]})).iloc[0]
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)
    assert sizes
    for _, size in sizes:
        if kind == "Wavelet":
            assert size[0] == image.GetSize()[0]
        else:
            assert size[0] < image.GetSize()[0] / 2
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
    # at least 3 voxels: 4 along every axis (ITK's minimum) at a border
    assert _type_margin("LoG", {"sigma": [0.2]}, spacing) == (8, 4, 3)


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
    import sklearn_medprep.radiomics._crop as crop

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


MANY_TYPES = {**CLASSES, "imageType": {
    "Original": {}, "LoG": {"sigma": [1.0, 2.0]}, "Square": {}, "SquareRoot": {},
    "Logarithm": {}, "Exponential": {}, "Wavelet": {}, "Gradient": {}}}


def test_filters_in_a_thread_give_the_serial_values_bit_for_bit(monkeypatch):
    image, mask = _case(6)
    table = pd.DataFrame({"image": [image], "mask": [mask]})
    ref = _reference(image, mask, MANY_TYPES)
    threaded = RadiomicsExtractor(settings=MANY_TYPES).fit_transform(table)
    monkeypatch.setattr(crop, "FILTER_THREADS", 0)
    serial = RadiomicsExtractor(settings=MANY_TYPES).fit_transform(table)
    pd.testing.assert_frame_equal(threaded, serial, check_exact=True)
    assert list(threaded.columns) == list(ref.index)
    np.testing.assert_allclose(threaded.iloc[0].to_numpy(float), ref.to_numpy(),
                               rtol=1e-9, atol=0)


def test_mask_checked_once_for_every_region(monkeypatch):
    # PyRadiomics' execute reads (getMask: a label scan of every voxel) and
    # checks (checkMask) the mask once; so does the per-region extraction,
    # on the ROI's bounding box, instead of once per region, and without
    # ITK's label statistics (checkMask runs only where a check fails)
    from radiomics import imageoperations

    calls = {"getMask": [], "checkMask": [], "_check_mask": []}
    for module, name in ((imageoperations, "getMask"),
                         (imageoperations, "checkMask"), (crop, "_check_mask")):
        original = getattr(module, name)

        def spy(image, *args, _name=name, _original=original, **kwargs):
            calls[_name].append(image.GetSize())
            return _original(image, *args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    image, mask = _case(7)
    out = RadiomicsExtractor(settings=MANY_TYPES).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]}))
    assert out.shape[1] > 600
    assert calls["getMask"] == [] and calls["checkMask"] == []
    assert len(calls["_check_mask"]) == 1
    assert np.prod(calls["_check_mask"][0]) < np.prod(image.GetSize()) / 20


@pytest.mark.parametrize("center", [(18, 40, 48), (0, 0, 0), (35, 79, 95)])
def test_mask_check_gives_pyradiomics_box(center):
    # the box of checkMask (ITK's label statistics) on the ROI's bounding box
    from radiomics import imageoperations

    image, mask = _case(12, center=center)
    array = sitk.GetArrayFromImage(mask).astype(np.uint32)
    bounds = crop.bounding_box(array, 1)
    box = array[tuple(slice(lo, hi + 1) for lo, hi in bounds)]
    box[tuple(np.argwhere(box == 0)[0])] = 2  # another label inside the box
    labelled = sitk.GetImageFromArray(array)
    labelled.CopyInformation(mask)
    tight = crop._region(mask.GetSize(), bounds, (0, 0, 0))
    part_image, part_mask = image[tight], labelled[tight]
    settings = {**RadiomicsFeatureExtractor().settings, "label": 1}
    want, _ = imageoperations.checkMask(part_image, part_mask, **settings)
    got = crop._check_mask(part_image, part_mask, 1, settings)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()


def test_mask_check_minimum_size_reads_as_pyradiomics():
    image, mask = _case(13)
    count = int(sitk.GetArrayViewFromImage(mask).sum())
    table = pd.DataFrame({"image": [image], "mask": [mask]})
    params = {**CLASSES, "setting": {"minimumROISize": count}}
    with pytest.raises(ValueError, match="ROI is too small"):
        _reference(image, mask, params)
    with pytest.raises(Exception, match="ROI is too small"):
        RadiomicsExtractor(settings=params).fit_transform(table)
    # one voxel fewer: extracted, PyRadiomics' values
    params = {**CLASSES, "setting": {"minimumROISize": count - 1}}
    out = RadiomicsExtractor(settings=params).fit_transform(table).iloc[0]
    ref = _reference(image, mask, params)
    np.testing.assert_allclose(out[ref.index].to_numpy(float), ref.to_numpy(),
                               rtol=1e-9, atol=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32,
                                   np.int64, np.uint64])
def test_mask_cast_is_itks(dtype):
    # PyRadiomics' UInt32 mask: numpy's cast equals ITK's CastImageFilter
    values = np.array([0, 1, 2, 127, -1, -128, 255, 70000, -70000, 2**40 + 3])
    array = values.astype(dtype).reshape(2, 5, 1)
    mask = sitk.GetImageFromArray(np.repeat(array, 3, axis=2))
    mask.SetSpacing((0.5, 1.5, 2.5))
    mask.SetOrigin((3.0, -4.0, 5.0))
    want = sitk.Cast(mask, sitk.sitkUInt32)
    got = crop._uint32(mask)
    assert got.GetPixelID() == sitk.sitkUInt32
    assert (sitk.GetArrayViewFromImage(got) == sitk.GetArrayViewFromImage(want)).all()
    assert got.GetOrigin() == want.GetOrigin() and got.GetSpacing() == want.GetSpacing()
    assert got.GetDirection() == want.GetDirection()


def test_mask_check_failures_read_as_pyradiomics():
    # a one-slice ROI fails minimumROIDimensions=3 with PyRadiomics' message
    image, mask = _case(8)
    array = sitk.GetArrayFromImage(mask)
    array[:18] = 0
    array[19:] = 0
    flat = sitk.GetImageFromArray(array)
    flat.CopyInformation(mask)
    params = {**MANY_TYPES, "setting": {"minimumROIDimensions": 3}}
    with pytest.raises(ValueError, match="too few dimensions"):
        _reference(image, flat, params)
    with pytest.raises(Exception, match="too few dimensions") as info:
        RadiomicsExtractor(settings=params).fit_transform(
            pd.DataFrame({"image": [image], "mask": [flat]}))
    assert "PyRadiomics failed (ValueError)" in str(info.value)


def test_a_filter_error_in_the_thread_reaches_the_row(monkeypatch):
    from radiomics import imageoperations

    def broken(*args, **kwargs):
        raise RuntimeError("wavelet exploded")
        yield

    monkeypatch.setattr(imageoperations, "getWaveletImage", broken)
    image, mask = _case(9)
    with pytest.raises(Exception, match="wavelet exploded"):
        RadiomicsExtractor(settings=MANY_TYPES).fit_transform(
            pd.DataFrame({"image": [image], "mask": [mask]}))


def test_resegmented_mask_goes_through_execute_per_region(monkeypatch):
    # resegmentRange: the mask depends on the image values; each region then
    # runs PyRadiomics' whole execute (its checks on the resegmented mask)
    params = {**MANY_TYPES, "setting": {"resegmentRange": [150, 400]}}
    image, mask = _case(10)
    ref = _reference(image, mask, params)
    sizes = _spy_sizes(monkeypatch)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [mask]})).iloc[0]
    assert list(out.index) == list(ref.index)
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)
    assert len(sizes) == 6  # Original, 2 LoG, Square family, Wavelet, Gradient
    # all but LoG sigma 2 (its 40-sigma region spans this image) are crops
    assert sum(np.prod(size) < np.prod(image.GetSize()) for _, size in sizes) == 5


@pytest.mark.parametrize("setting", [{"binWidth": 10}, {"binCount": 16},
                                     {"binWidth": 25, "symmetricalGLCM": False}])
def test_one_discretisation_per_image_gives_pyradiomics_values_bit_for_bit(setting):
    from radiomics import imageoperations

    from sklearn_medprep.radiomics._features import compute_features

    image, mask = _case(11)
    mask = sitk.Cast(mask, sitk.sitkUInt32)
    params = {"setting": {**setting, "additionalInfo": False},
              "featureClass": {"firstorder": [], "glcm": ["Contrast", "Idm"],
                               "glrlm": [], "glszm": [], "gldm": [], "ngtdm": [],
                               "shape": []}}
    extractor = RadiomicsFeatureExtractor(params)
    box, _ = imageoperations.checkMask(image, mask, label=1)
    for filtered, name, kwargs in imageoperations.getLoGImage(
            image, mask, **{**extractor.settings, "sigma": [1.0]}):
        filtered, roi = imageoperations.cropToTumorMask(filtered, mask, box)
        want = extractor.computeFeatures(filtered, roi, name, **kwargs)
        got = compute_features(extractor, filtered, roi, name, **kwargs)
        assert list(got) == list(want)
        assert len(want) > 70 and not any(k.startswith(f"{name}_shape") for k in got)
        for key, value in want.items():
            assert float(got[key]) == float(value) or (
                np.isnan(float(value)) and np.isnan(float(got[key]))), key
    # PyRadiomics' classes are untouched (subclasses share the binning)
    from radiomics.glcm import RadiomicsGLCM
    assert "_shared_binning" not in vars(RadiomicsGLCM)


def test_log_thin_roi_at_the_border_with_a_small_sigma():
    # one slice at z = 0 and sigma 0.2 mm (0.1 slice): the region still has
    # the 4 slices ITK's filter needs, and every value is PyRadiomics'
    image, mask = _case(12)
    array = sitk.GetArrayFromImage(mask)
    array[0] = array[18]
    array[1:] = 0
    thin = sitk.GetImageFromArray(array)
    thin.CopyInformation(mask)
    params = {**CLASSES, "imageType": {"LoG": {"sigma": [0.2, 1.0]}}}
    ref = _reference(image, thin, params)
    out = RadiomicsExtractor(settings=params).fit_transform(
        pd.DataFrame({"image": [image], "mask": [thin]})).iloc[0]
    assert list(out.index) == list(ref.index)
    assert any(name.startswith("log-sigma-0-2") for name in ref.index)
    np.testing.assert_allclose(out.to_numpy(float), ref.to_numpy(), rtol=1e-9,
                               atol=0)


def test_no_filter_thread_with_one_cpu_per_worker(monkeypatch):
    # joblib's workers get OMP_NUM_THREADS = CPUs per worker: with 1, no thread
    def no_thread(*args, **kwargs):
        raise AssertionError("a filter thread was started")

    image, mask = _case(13)
    table = pd.DataFrame({"image": [image], "mask": [mask]})
    params = {**CLASSES, "imageType": {"Original": {}, "LoG": {"sigma": [1.0]}}}
    monkeypatch.setattr(crop, "ThreadPoolExecutor", no_thread)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    serial = RadiomicsExtractor(settings=params).fit_transform(table)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with pytest.raises(Exception, match="a filter thread was started"):
        RadiomicsExtractor(settings=params).fit_transform(table)
    assert serial.shape[1] > 100


@pytest.mark.parametrize("seed", range(4))
def test_mask_region_is_itks_cut_and_cast(seed):
    # one numpy step: the voxels and the geometry of ITK's slice + cast filters
    from sklearn_medprep.radiomics._log import region

    rng = np.random.default_rng(seed)
    dtype = [np.uint8, np.int16, np.int32, np.int64][seed]
    mask = sitk.GetImageFromArray(rng.integers(0, 4, (7, 9, 11)).astype(dtype))
    mask.SetSpacing(tuple(rng.uniform(0.1, 3, 3)))
    mask.SetOrigin(tuple(rng.uniform(-300, 300, 3)))
    direction, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    mask.SetDirection(tuple(direction.ravel()))
    index = tuple(slice(int(a), int(a) + int(n)) for a, n in
                  zip(rng.integers(0, 4, 3), rng.integers(1, 5, 3)))
    want = crop._uint32(region(mask, index))
    got = crop._mask_region(mask, index)
    assert got.GetPixelID() == want.GetPixelID() == sitk.sitkUInt32
    assert got.GetSize() == want.GetSize()
    assert got.GetOrigin() == want.GetOrigin()
    assert got.GetSpacing() == want.GetSpacing()
    assert got.GetDirection() == want.GetDirection()
    assert (sitk.GetArrayViewFromImage(got) == sitk.GetArrayViewFromImage(want)).all()


def _shape_or_error(func, *args, **kwargs):
    try:
        return {k: float(v) for k, v in func(*args, **kwargs).items()}
    except ValueError as exc:
        return ("raised", str(exc))


@pytest.mark.parametrize("shape_settings, flat", [
    ({}, False), ({"force2D": True, "force2Ddimension": 0}, True),
    ({"force2D": True, "force2Ddimension": 0}, False), ({"force2D": False}, True),
])
def test_shape_on_the_roi_box_equals_compute_shape(shape_settings, flat):
    # computeShape's crop to a box spanning the region is skipped: the same
    # features, names and order (3D shape, and shape2D where enabled), or the
    # same error
    image, mask = _case(14)
    array = sitk.GetArrayFromImage(mask).astype(np.uint32)
    if flat:  # one slice along z
        array[:18] = 0
        array[19:] = 0
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    bounds = crop.bounding_box(array, 1)
    tight = crop._region(mask.GetSize(), bounds, (0, 0, 0))
    part_image, part_mask = image[tight], mask[tight]
    params = {"featureClass": {"shape": [], "shape2D": [], "firstorder": ["Mean"]},
              "setting": {**shape_settings, "additionalInfo": False,
                          "minimumROIDimensions": 1}}
    extractor = RadiomicsFeatureExtractor(params)
    settings = {**extractor.settings, "label": 1}
    box = crop._check_mask(part_image, part_mask, 1, settings)
    want = _shape_or_error(extractor.computeShape, part_image, part_mask, box,
                           **settings)
    got = _shape_or_error(crop._shape, extractor, part_image, part_mask, box,
                          settings)
    assert got == want
    if isinstance(want, dict):
        assert list(got) == list(want) and len(want) >= 14
        assert any("shape2D" in k for k in want) == (
            bool(shape_settings.get("force2D")) and flat)
    # a box smaller than the region: PyRadiomics' computeShape itself
    inner = box.copy()
    inner[1] -= 1
    want = _shape_or_error(extractor.computeShape, part_image, part_mask, inner,
                           **settings)
    got = _shape_or_error(crop._shape, extractor, part_image, part_mask, inner,
                          settings)
    assert got == want
