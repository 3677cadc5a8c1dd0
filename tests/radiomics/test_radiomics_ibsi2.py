"""IBSI-2 filters as the ``"IBSI2"`` image type of RadiomicsExtractor's settings.

Every family's features, computed on the crop the filter's support needs, equal
the statistics of :func:`sklearn_medprep.filters.filter_image` run on the whole
image (computed here with numpy), with the ROI inside the image and at its
border; the cache keys carry the filter parameters; bad entries fail ``fit``
naming the entry.
"""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import sklearn_medprep.radiomics._ibsi2_extract as extract
import sklearn_medprep.radiomics._pyradiomics as pyradiomics_backend
import sklearn_medprep.radiomics._settings as settings_module
from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.filters import filter_image
from sklearn_medprep.filters._dispatch import FILTER_FAMILIES
from sklearn_medprep.radiomics._ibsi2_settings import filter_margin, validate_ibsi2

FIRSTORDER = {"featureClass": {"firstorder": []}}

# one configuration per family (by slice, rotation invariant, boundaries mixed)
CONFIGS = {
    "mean": {"family": "mean", "kernel_size_voxels": 5, "boundary": "reflect"},
    "mean-wrap": {"family": "mean", "kernel_size_voxels": 3, "boundary": "wrap"},
    "log": {"family": "laplacian_of_gaussian", "sigma_mm": 2.0,
            "boundary": "nearest"},
    "log-2d": {"family": "laplacian_of_gaussian", "sigma_mm": 1.5,
               "boundary": "constant", "by_slice": True},
    "laws": {"family": "laws", "kernel": "L5E5E5", "energy_map": True,
             "energy_distance_voxels": 2, "boundary": "reflect",
             "rotation_invariance": True, "pooling": "max"},
    "laws-2d": {"family": "laws", "kernel": "E3S3", "energy_map": False,
                "boundary": "reflect", "by_slice": True},
    "gabor": {"family": "gabor", "sigma_mm": 2.0, "lambda_mm": 2.0, "gamma": 1.5,
              "theta_deg": 0.0, "theta_step_deg": 45.0, "response": "modulus",
              "boundary": "reflect", "rotation_invariance": True, "pooling": "mean",
              "by_slice": True},
    "gabor-3d": {"family": "gabor", "sigma_mm": 1.5, "lambda_mm": 3.0, "gamma": 0.8,
                 "theta_deg": 30.0, "theta_step_deg": 90.0, "response": "modulus",
                 "boundary": "nearest", "rotation_invariance": True,
                 "pooling": "max"},
    "wavelet": {"family": "separable_wavelet", "wavelet": "db2", "filter_set": "LHL",
                "decomposition_level": 2, "boundary": "reflect"},
    "wavelet-ri": {"family": "separable_wavelet", "wavelet": "db3", "filter_set": "HH",
                   "decomposition_level": 1, "boundary": "wrap", "by_slice": True,
                   "rotation_invariance": True, "pooling": "mean"},
    "simoncelli": {"family": "nonseparable_wavelet", "wavelet": "simoncelli",
                   "decomposition_level": 2, "boundary": "wrap"},
}


def _case(shape=(11, 30, 34), center=(5, 15, 17), radii=(3, 6, 7)):
    """Structured float image, anisotropic spacing, an ellipsoid ROI."""
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    array = (100 + 60 * np.sin(xx / 2.5) * np.cos(yy / 3.5) + 30 * np.sin(zz / 1.7)
             + rng.normal(0, 20, shape))
    array[:, :, :4] += 400.0  # a bright slab beside the ROI
    cz, cy, cx = center
    rz, ry, rx = radii
    roi = ((zz - cz) / rz) ** 2 + ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 2.0))
    image.SetOrigin((3.0, -4.0, 10.0))
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask, array, roi


def _table(image, mask):
    return pd.DataFrame({"image": [image], "mask": [mask]}, index=["s"])


def _expected(array, roi, spacing_xyz, config):
    """firstorder statistics of the whole image's response inside the ROI."""
    response = filter_image(array, tuple(reversed(spacing_xyz)), config)[roi]
    return {
        "Mean": response.mean(), "Minimum": response.min(),
        "Maximum": response.max(), "Variance": response.var(),
        "Median": np.median(response), "10Percentile": np.percentile(response, 10),
        "90Percentile": np.percentile(response, 90),
        "Energy": np.sum(response**2),
    }


def _covered(name):
    if CONFIGS[name]["family"] not in FILTER_FAMILIES:
        pytest.skip(f"family {CONFIGS[name]['family']!r} not in filter_image yet")
    return dict(CONFIGS[name])


@pytest.mark.parametrize("where", ["inside", "border"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_features_on_the_crop_equal_the_whole_image_response(name, where,
                                                              monkeypatch):
    config = _covered(name)
    center = (5, 15, 17) if where == "inside" else (1, 4, 30)
    image, mask, array, roi = _case(center=center)
    sizes = []
    response_region = extract.response_region

    def spy(image, entry, index):
        sizes.append(tuple(s.stop - s.start for s in index))
        return response_region(image, entry, index)

    monkeypatch.setattr(extract, "response_region", spy)
    settings = {**FIRSTORDER, "imageType": {"IBSI2": [{**config, "name": "f"}]}}
    out = RadiomicsExtractor(settings=settings).fit_transform(
        _table(image, mask)).iloc[0]
    # IBSI-2 filters only: no original_ features
    assert not [n for n in out.index if n.startswith("original_")]
    expected = _expected(array, roi, image.GetSpacing(), config)
    got = {key: out[f"ibsi2-f_firstorder_{key}"] for key in expected}
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-9,
                                   atol=1e-9 * abs(expected["Maximum"]), err_msg=key)
    # the filter ran on the ROI's box plus its margin, clipped at the border
    (size,) = sizes
    assert size == _region_size(roi, filter_margin(config, image.GetSpacing()),
                                config["boundary"] == "wrap")
    if name == "mean" and where == "inside":
        assert np.prod(size) < array.size / 3


def _region_size(roi, margin, wrap):
    """(x, y, z) size of the ROI's box plus ``margin`` in the image."""
    if margin is None:
        return roi.shape[::-1]
    size = []
    for axis, m in zip((2, 1, 0), margin):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(roi.any(axis=other))
        n = roi.shape[axis]
        start, stop = hit[0] - m, hit[-1] + m + 1
        if wrap and m > 0 and (start <= 0 or stop >= n):
            start, stop = 0, n
        size.append(int(min(stop, n) - max(start, 0)))
    return tuple(size)


def test_with_original_and_pyradiomics_types_in_order():
    image, mask, array, roi = _case()
    settings = {**FIRSTORDER, "imageType": {
        "Original": {}, "IBSI2": [CONFIGS["mean"], CONFIGS["log-2d"]],
        "Gradient": {}}}
    out = RadiomicsExtractor(settings=settings).fit_transform(_table(image, mask))
    prefixes = list(dict.fromkeys(c.split("_")[0] for c in out.columns))
    assert prefixes == ["original", "gradient", "ibsi2-mean-k5", "ibsi2-log-s1-5-2D"]
    np.testing.assert_allclose(out["original_firstorder_Mean"].iloc[0],
                               array[roi].mean(), rtol=1e-12)
    expected = _expected(array, roi, image.GetSpacing(), CONFIGS["log-2d"])
    np.testing.assert_allclose(out["ibsi2-log-s1-5-2D_firstorder_Mean"].iloc[0],
                               expected["Mean"], rtol=1e-9)


def test_resegmentation_applies_to_the_filtered_features():
    image, mask, array, roi = _case()
    low = float(np.percentile(array[roi], 40))
    settings = {**FIRSTORDER, "setting": {"resegmentRange": [low, 1e9]},
                "imageType": {"IBSI2": [CONFIGS["mean"]]}}
    out = RadiomicsExtractor(settings=settings).fit_transform(_table(image, mask))
    kept = roi & (array >= low)
    assert 0 < kept.sum() < roi.sum()
    response = filter_image(array, (2.0, 0.9, 0.8), CONFIGS["mean"])
    np.testing.assert_allclose(out["ibsi2-mean-k5_firstorder_Mean"].iloc[0],
                               response[kept].mean(), rtol=1e-9)


def _count_filter_extractions(monkeypatch):
    """A list that gets one item per IBSI-2 extraction (cache misses)."""
    calls = []
    features = pyradiomics_backend.ibsi2_features

    def spy(*args, **kwargs):
        calls.append(1)
        return features(*args, **kwargs)

    monkeypatch.setattr(pyradiomics_backend, "ibsi2_features", spy)
    return calls


def test_a_changed_filter_parameter_misses_the_cache(tmp_path, monkeypatch):
    image, mask, _, _ = _case()
    calls = _count_filter_extractions(monkeypatch)

    def run(size):
        config = {**CONFIGS["mean"], "kernel_size_voxels": size, "name": "m"}
        settings = {**FIRSTORDER, "imageType": {"IBSI2": [config]}}
        return RadiomicsExtractor(settings=settings, memory=tmp_path).fit_transform(
            _table(image, mask))

    first = run(5)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(run(5), first)
    assert len(calls) == 1  # served from the cache
    other = run(3)  # same feature names, another kernel: a miss
    assert len(calls) == 2
    assert list(other.columns) == list(first.columns)
    assert not np.allclose(other.to_numpy(), first.to_numpy())


def test_a_new_filters_revision_misses_the_cache(tmp_path, monkeypatch):
    # a change of a filter's response map (DEFINITIONS_REVISION raised) must not
    # be served from entries written before it; PyRadiomics-only keys unchanged
    image, mask, _, _ = _case()
    calls = _count_filter_extractions(monkeypatch)
    settings = {**FIRSTORDER, "imageType": {"IBSI2": [CONFIGS["mean"]]}}

    def run():
        return RadiomicsExtractor(settings=settings, memory=tmp_path).fit_transform(
            _table(image, mask))

    first = run()
    run()
    assert len(calls) == 1
    revision = settings_module.DEFINITIONS_REVISION
    monkeypatch.setattr(settings_module, "DEFINITIONS_REVISION", revision + 1)
    pd.testing.assert_frame_equal(run(), first)
    assert len(calls) == 2  # a miss: extracted again
    key = settings_module.settings_key(FIRSTORDER)
    assert '"filters"' not in key
    assert f'"filters": {revision + 1}' in settings_module.settings_key(settings)


@pytest.mark.parametrize("entries, match", [
    ({"family": "mean"}, r"\['IBSI2'\] must be a list"),
    ([["mean"]], r"\['IBSI2'\]\[0\] must be a mapping"),
    ([{"kernel_size_voxels": 3}], r"\['IBSI2'\]\[0\]: no 'family'"),
    ([{"family": "median"}], r"\['IBSI2'\]\[0\] \('median'\): .*family"),
    ([{"family": "mean", "kernel_size_voxels": 3, "boundary": "mirror"}],
     r"\['IBSI2'\]\[0\] \('mean-k3'\): .*boundary"),
    ([{"family": "mean", "kernel_size_voxels": 3, "name": "a_b"}],
     r"\[0\] \('a_b'\): 'name' must be letters"),
    ([{"family": "mean", "kernel_size_voxels": 3},
      {"family": "mean", "kernel_size_voxels": 3, "boundary": "wrap"}],
     r"\[1\] \('mean-k3'\): name 'mean-k3' is also entry 0's"),
])
def test_bad_entries_fail_fit_naming_the_entry(entries, match):
    image, mask, _, _ = _case()
    settings = {"imageType": {"IBSI2": entries}}
    with pytest.raises(ValueError, match=match):
        RadiomicsExtractor(settings=settings).fit(_table(image, mask))


def test_shape_only_refuses_an_ibsi2_filter_without_features():
    image, mask, _, _ = _case()
    settings = {"featureClass": {"shape": []},
                "imageType": {"IBSI2": [CONFIGS["mean"]]}}
    with pytest.raises(ValueError, match="IBSI-2 filter 'mean-k5' produced no"):
        RadiomicsExtractor(settings=settings).fit(_table(image, mask))


def test_default_names_are_filled_in():
    entries = validate_ibsi2([CONFIGS["mean"], {**CONFIGS["log"], "name": "mine"}])
    assert [e["name"] for e in entries] == ["mean-k5", "mine"]
