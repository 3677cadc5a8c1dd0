"""IBSI-2 wavelet filters: separable wavelets (levels, rotation invariance),
the Simoncelli wavelet and Riesz-transformed LoG / Simoncelli filters.

The 12 phase-1 reference maps (tests 5.a-10.b.1) are checked with IBSI's
criterion; the unit tests compare with computations written out here
(N-dimensional scipy convolution with the PyWavelets kernels, explicit image
rotations, slice-by-slice filtering, exact Riesz identities).
"""

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import pywt
from scipy import ndimage

from sklearn_medprep.filters import _config, filter_image
from sklearn_medprep.filters._config import flat_config
from sklearn_medprep.filters._log import log_kernel
from sklearn_medprep.filters._riesz import (
    riesz_log_response,
    riesz_response,
    riesz_simoncelli_response,
)
from sklearn_medprep.filters._simoncelli import simoncelli_response
from sklearn_medprep.filters._wavelet import separable_wavelet_response

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or ROOT.parent / "shared" / "data")
IBSI2 = SHARED / "ibsi2"
_CONFIG = IBSI2 / "configurations.json"
PHASE1 = (json.loads(_CONFIG.read_text())["phase_1"]["tests"]
          if _CONFIG.is_file() else {})
needs_data = pytest.mark.skipif(not PHASE1, reason=f"{IBSI2} absent")

FUNCTIONS = {
    "separable_wavelet": separable_wavelet_response,
    "nonseparable_wavelet": simoncelli_response,
    "riesz_transformed_laplacian_of_gaussian": riesz_response,
    "riesz_transformed_simoncelli": riesz_response,
}
MAP_IDS = ["5_a_1", "5_a_2", "6_a_1", "6_a_2", "7_a_1", "7_a_2", "8_a_1", "8_a_2",
           "8_a_3", "9_a", "9_b_1", "10_b_1"]
MODES = ("constant", "nearest", "wrap", "reflect")


def _read_zyx(path):
    """A NIfTI file as SimpleITK reads it: a (z, y, x) array and (z, y, x) spacing."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return (sitk.GetArrayFromImage(image).astype(np.float64),
            tuple(image.GetSpacing())[::-1])


def _wavelet_config(filter_set, wavelet="haar", level=1, boundary="constant",
                    by_slice=False, invariant=False, pooling=None):
    return {"filter": {"family": "separable_wavelet", "wavelet": wavelet,
                       "filter_set": filter_set, "decomposition_level": level},
            "boundary": boundary, "by_slice": by_slice,
            "rotation_invariance": invariant, "pooling": pooling}


def _outer(kernels_zyx):
    """N-D kernel from 1D kernels ordered like the array axes."""
    out = np.ones(())
    for k in kernels_zyx:
        out = np.multiply.outer(out, k)
    return out


def _image(shape=(7, 8, 9), seed=0):
    return np.random.default_rng(seed).normal(size=shape) * 10.0 + 3.0


# --------------------------------------------------------------- reference maps

@needs_data
def test_the_twelve_maps_are_those_of_this_module():
    families = {PHASE1[i]["filter"]["family"] for i in MAP_IDS}
    assert families == set(FUNCTIONS)
    assert {i for i, e in PHASE1.items() if e["filter"]["family"] in FUNCTIONS} \
        == set(MAP_IDS)


@needs_data
@pytest.mark.parametrize("test_id", MAP_IDS)
def test_reference_map_within_ibsi_criterion(test_id):
    entry = PHASE1[test_id]
    image, spacing = _read_zyx(IBSI2 / entry["image"])
    reference, ref_spacing = _read_zyx(IBSI2 / entry["reference_map"])
    assert spacing == ref_spacing == (2.0, 2.0, 2.0)
    response = FUNCTIONS[entry["filter"]["family"]](image, spacing, entry)
    assert response.dtype == np.float64 and response.shape == reference.shape
    tolerance = 0.01 * (reference.max() - reference.min())
    assert tolerance == pytest.approx(entry["criterion"]["tolerance_abs"], rel=1e-6)
    worst = np.abs(response - reference).max()
    assert worst <= tolerance, f"{test_id}: worst {worst:.4g} > {tolerance:.4g}"


@needs_data
def test_flat_and_nested_configurations_agree():
    entry = PHASE1["5_a_2"]
    flat = dict(entry["filter"], boundary=entry["boundary"], by_slice=False,
                rotation_invariance=True, pooling="mean")
    assert flat_config(entry) == {k: v for k, v in flat.items()}
    image = _image((6, 7, 8))
    np.testing.assert_array_equal(separable_wavelet_response(image, (1, 1, 1), flat),
                                  separable_wavelet_response(image, (1, 1, 1), entry))


# ------------------------------------------------------------ separable wavelets

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet, filter_set", [("haar", "LLH"), ("db2", "HLL"),
                                                 ("coif1", "LHH")])
def test_separable_wavelet_is_the_3d_convolution_of_the_pywt_kernels(
        mode, wavelet, filter_set):
    image = _image()
    bank = pywt.Wavelet(wavelet)
    kernels_xyz = [bank.dec_lo if c == "L" else bank.dec_hi for c in filter_set]
    # scipy centres an even kernel of length L at index L // 2, the reference
    # maps' alignment
    expected = ndimage.convolve(image, _outer(kernels_xyz[::-1]), mode=mode)
    config = _wavelet_config(filter_set, wavelet, boundary=mode)
    got = separable_wavelet_response(image, (1.0, 1.0, 1.0), config)
    assert got.shape == (7, 8, 9) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_boundary_modes_differ_at_the_edge_only():
    image = _image()
    out = {m: separable_wavelet_response(image, (1, 1, 1),
                                         _wavelet_config("HLH", "db2", boundary=m))
           for m in MODES}
    inner = (slice(2, -2),) * 3
    for a, b in itertools.combinations(MODES, 2):
        np.testing.assert_allclose(out[a][inner], out[b][inner], atol=1e-10)
        assert np.abs(out[a] - out[b]).max() > 1e-3, (a, b)


@pytest.mark.parametrize("filter_set", ["LLL", "HHH", "HLH"])
@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_haar_level_2_is_the_explicit_a_trous_composition(filter_set, mode):
    image = _image()
    k0, k1 = pywt.Wavelet("haar").dec_lo
    h0, h1 = pywt.Wavelet("haar").dec_hi
    level1_low = _outer([[k0, k1]] * 3)
    # level 2: low-pass at level 1 along every axis, then the level-2 kernels
    # with a hole between taps, [k0, 0, k1, 0] (README of the IBSI-2 data)
    level2 = _outer([[k0, 0.0, k1, 0.0] if c == "L" else [h0, 0.0, h1, 0.0]
                     for c in filter_set[::-1]])
    expected = ndimage.convolve(ndimage.convolve(image, level1_low, mode=mode),
                                level2, mode=mode)
    config = _wavelet_config(filter_set, level=2, boundary=mode)
    got = separable_wavelet_response(image, (1, 1, 1), config)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def _rotations(planes, probe_shape):
    """All right-angle rotations as sequences of np.rot90 over ``planes``."""
    probe = np.arange(np.prod(probe_shape)).reshape(probe_shape)
    seen = {(probe.shape, probe.tobytes()): ()}
    frontier = [()]
    while frontier:
        nxt = []
        for seq in frontier:
            for plane in planes:
                new = seq + (plane,)
                key = _rotate(probe, new)
                key = (key.shape, key.tobytes())
                if key not in seen:
                    seen[key] = new
                    nxt.append(new)
        frontier = nxt
    return list(seen.values())


def _rotate(a, seq):
    for plane in seq:
        a = np.rot90(a, 1, axes=plane)
    return a


def _unrotate(a, seq):
    for plane in reversed(seq):
        a = np.rot90(a, -1, axes=plane)
    return a


@pytest.mark.parametrize("pooling", ["mean", "max", "min"])
@pytest.mark.parametrize("wavelet, filter_set, level", [
    ("db2", "LHL", 1), ("coif1", "HHL", 1), ("haar", "HLL", 2)])
def test_rotation_invariance_pools_the_24_rotated_images(pooling, wavelet, filter_set,
                                                         level):
    image = _image((5, 6, 7))
    rotations = _rotations([(0, 1), (1, 2)], (2, 3, 4))
    assert len(rotations) == 24
    plain = _wavelet_config(filter_set, wavelet, level, boundary="reflect")
    responses = [_unrotate(separable_wavelet_response(_rotate(image, seq), (1, 1, 1),
                                                      plain), seq)
                 for seq in rotations]
    expected = {"mean": np.mean, "max": np.max, "min": np.min}[pooling](responses, 0)
    got = separable_wavelet_response(
        image, (1, 1, 1), _wavelet_config(filter_set, wavelet, level, "reflect",
                                          invariant=True, pooling=pooling))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_by_slice_filters_each_axial_slice_and_pools_4_rotations():
    image = _image()
    bank = pywt.Wavelet("db2")
    kernel_yx = _outer([bank.dec_hi, bank.dec_lo])  # "LH": L along x, H along y
    expected = np.stack([ndimage.convolve(s, kernel_yx, mode="wrap") for s in image])
    config = _wavelet_config("LH", "db2", boundary="wrap", by_slice=True)
    np.testing.assert_allclose(separable_wavelet_response(image, (3, 1, 1), config),
                               expected, rtol=1e-10, atol=1e-10)
    rotations = _rotations([(1, 2)], (1, 3, 4))
    assert len(rotations) == 4
    pooled = np.mean([_unrotate(separable_wavelet_response(_rotate(image, seq),
                                                           (3, 1, 1), config), seq)
                      for seq in rotations], axis=0)
    invariant = dict(config, rotation_invariance=True, pooling="mean")
    np.testing.assert_allclose(separable_wavelet_response(image, (3, 1, 1), invariant),
                               pooled, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------- Simoncelli, Riesz

def _simoncelli_config(level=1, by_slice=False, family="nonseparable_wavelet",
                       **extra):
    return dict({"family": family, "wavelet": "simoncelli",
                 "decomposition_level": level, "boundary": "wrap", "by_slice": by_slice,
                 "rotation_invariance": False}, **extra)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_simoncelli_by_slice_is_the_2d_filter_of_each_slice(level):
    image = _image()
    got = simoncelli_response(image, (1, 1, 1), _simoncelli_config(level, True))
    # an axis of length 1 has frequency 0 only: the 3D filter of one slice is 2D
    expected = np.concatenate([simoncelli_response(s[None], (1, 1, 1),
                                                   _simoncelli_config(level))
                               for s in image])
    assert got.shape == (7, 8, 9) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    assert abs(got.mean()) < 1e-10  # a band-pass: no mean


def test_simoncelli_is_periodic():
    image = _image()
    shifted = np.roll(image, (2, -3, 4), axis=(0, 1, 2))
    config = _simoncelli_config(2)
    np.testing.assert_allclose(
        simoncelli_response(shifted, (1, 1, 1), config),
        np.roll(simoncelli_response(image, (1, 1, 1), config), (2, -3, 4), (0, 1, 2)),
        atol=1e-9)


def test_riesz_order_2_components_sum_to_minus_the_filter():
    # sum_a (-i)^2 w_a^2 / |w|^2 = -1 away from w = 0 (never on the grid of an
    # even-length axis)
    image = _image((6, 8, 10))
    config = _simoncelli_config(family="riesz_transformed_simoncelli")
    total = sum(riesz_simoncelli_response(image, (1, 1, 1),
                                          dict(config, riesz_order_xyz=order))
                for order in ([2, 0, 0], [0, 2, 0], [0, 0, 2]))
    plain = simoncelli_response(image, (1, 1, 1), _simoncelli_config())
    np.testing.assert_allclose(total, -plain, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_riesz_order_0_log_is_the_spatial_log_convolution(mode):
    image = _image()
    config = {"family": "riesz_transformed_laplacian_of_gaussian", "sigma_mm": 3.0,
              "kernel_truncate_sigmas": 2.0, "riesz_order_xyz": [0, 0, 0],
              "boundary": mode}
    spacing = (2.0, 1.5, 1.0)
    kernel = log_kernel([3.0 / s for s in spacing], 2.0, 3)
    assert kernel.shape == (7, 9, 13)  # 1 + 2 floor(2 sigma + 0.5) per axis
    expected = ndimage.convolve(image, kernel, mode=mode)
    np.testing.assert_allclose(riesz_log_response(image, spacing, config), expected,
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("order", [[0, 0], [0, 0, 0]])
def test_riesz_log_by_slice_is_the_2d_log_of_each_slice(order):
    image = _image()
    config = {"family": "riesz_transformed_laplacian_of_gaussian", "sigma_mm": 2.0,
              "riesz_order_xyz": order, "boundary": "reflect", "by_slice": True}
    spacing = (5.0, 1.0, 0.8)
    kernel = log_kernel([2.0 / 1.0, 2.0 / 0.8], 4.0, 2)
    expected = np.stack([ndimage.convolve(s, kernel, mode="reflect") for s in image])
    np.testing.assert_allclose(riesz_log_response(image, spacing, config), expected,
                               rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="'riesz_order_xyz'"):
        riesz_log_response(image, spacing, dict(config, riesz_order_xyz=[0, 0, 1]))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("by_slice, sigma_mm, truncate", [
    (False, 1.5, 4.0), (False, 3.0, 2.0), (True, 2.0, 3.0)])
def test_spatial_log_is_the_riesz_order_0_log(mode, by_slice, sigma_mm, truncate):
    # two implementations of IBSI's LoG: separable 1D passes in the spatial
    # domain (laplacian_of_gaussian) and the whole kernel in the Fourier domain
    # (the Riesz LoG of order 0). Measured: they differ by <= 1.3e-15 of the
    # map's largest value (float rounding of the FFT), so 1e-12 of it; a kernel
    # renormalised to sum 1 on its support (scipy's gaussian_laplace) is off by
    # 3e-5 to 9e-5 at 4 widths and 3 to 9% at 2 widths of the Gaussian
    image = _image((9, 10, 11))
    spacing = (2.0, 1.5, 1.0)
    base = {"sigma_mm": sigma_mm, "kernel_truncate_sigmas": truncate,
            "boundary": mode, "by_slice": by_slice}
    spatial = filter_image(image, spacing,
                           dict(base, family="laplacian_of_gaussian"))
    fourier = filter_image(image, spacing,
                           dict(base, family="riesz_transformed_laplacian_of_gaussian",
                                riesz_order_xyz=[0, 0] if by_slice else [0, 0, 0]))
    np.testing.assert_allclose(spatial, fourier, rtol=0,
                               atol=1e-12 * np.abs(fourier).max())


def test_log_kernel_is_the_ibsi_formula():
    sigma = 1.5
    k = log_kernel((sigma,) * 3, 4.0, 3)
    z, y, x = np.mgrid[-6:7, -6:7, -6:7]
    r2 = x**2 + y**2 + z**2
    ibsi = (-1 / sigma**2 * (2 * np.pi * sigma**2) ** -1.5 * (3 - r2 / sigma**2)
            * np.exp(-r2 / (2 * sigma**2)))
    np.testing.assert_allclose(k, ibsi, rtol=1e-12, atol=1e-15)


def test_riesz_order_follows_x_y_z_on_a_transposed_image():
    image = _image((8, 8, 8))
    base = {"family": "riesz_transformed_laplacian_of_gaussian", "sigma_mm": 1.0,
            "boundary": "nearest"}
    along_x = riesz_response(image, (1, 1, 1), dict(base, riesz_order_xyz=[1, 0, 0]))
    along_z = riesz_response(image.transpose(2, 1, 0), (1, 1, 1),
                             dict(base, riesz_order_xyz=[0, 0, 1]))
    np.testing.assert_allclose(along_x, along_z.transpose(2, 1, 0), atol=1e-10)
    # order 1 along x is odd in x: a centred impulse gives an odd response
    impulse = np.zeros((9, 9, 9))
    impulse[4, 4, 4] = 1.0
    odd = riesz_response(impulse, (1, 1, 1), dict(base, riesz_order_xyz=[1, 0, 0],
                                                  boundary="constant"))
    assert np.abs(odd).max() > 1e-3
    assert np.abs(odd[4, 4, 4]) < 1e-3 * np.abs(odd).max()


# ------------------------------------------------ dispatcher and standalone calls

STANDALONE = [
    (separable_wavelet_response,
     _wavelet_config("HLH", "db2", boundary="nearest", invariant=True, pooling="max")),
    (simoncelli_response,
     {"filter": {"family": "nonseparable_wavelet", "wavelet": "simoncelli",
                 "decomposition_level": 2}, "by_slice": True}),
    (riesz_log_response,
     {"filter": {"family": "riesz_transformed_laplacian_of_gaussian", "sigma_mm": 2.0,
                 "riesz_order_xyz": [1, 0, 1]}, "boundary": "reflect"}),
    (riesz_simoncelli_response, {"family": "riesz_transformed_simoncelli",
                                 "riesz_order_xyz": [0, 2, 0]}),
]


@pytest.mark.parametrize("function, config", STANDALONE)
def test_standalone_call_is_filter_image_with_the_shared_keys_checked_once(
        monkeypatch, function, config):
    # the shared keys are checked in one place (_config.prepare), once per call:
    # by filter_image, or by the public function called on its own
    calls = []
    check_boundary = _config.check_boundary
    monkeypatch.setattr(_config, "check_boundary",
                        lambda mode: calls.append(mode) or check_boundary(mode))
    image = _image()
    via_dispatcher = filter_image(image, (1.0, 1.5, 1.0), flat_config(config))
    assert len(calls) == 1
    alone = function(image, (1.0, 1.5, 1.0), config)
    assert len(calls) == 2
    np.testing.assert_array_equal(via_dispatcher, alone)
    for call in (function, lambda *a: filter_image(*a[:2], flat_config(a[2]))):
        with pytest.raises(ValueError, match="'pooling'"):
            call(image, (1.0, 1.0, 1.0), {**flat_config(config), "pooling": "median"})


# ------------------------------------------------------------------ bad configs

@pytest.mark.parametrize("function, config, key", [
    (separable_wavelet_response, {"family": "separable_wavelet", "filter_set": "LLL"},
     "wavelet"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2"},
     "filter_set"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2",
                                  "filter_set": "LXL"}, "filter_set"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2",
                                  "filter_set": "LLL", "by_slice": True}, "filter_set"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "nope2",
                                  "filter_set": "LLL"}, "wavelet"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2",
                                  "filter_set": "LLL", "decomposition_level": 0},
     "decomposition_level"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2",
                                  "filter_set": "LLL", "boundary": "mirror"},
     "boundary"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2",
                                  "filter_set": "LLL", "rotation_invariance": True},
     "pooling"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2",
                                  "filter_set": "LLL", "stationary_undecimated": False},
     "stationary_undecimated"),
    (separable_wavelet_response, {"family": "separable_wavelet", "wavelet": "db2",
                                  "filter_set": "LHL",
                                  "filter_per_axis": {"x": "H", "y": "H", "z": "L"}},
     "filter_per_axis"),
    (separable_wavelet_response, {"family": "laws", "wavelet": "db2",
                                  "filter_set": "LLL"}, "family"),
    (simoncelli_response, {"family": "nonseparable_wavelet", "boundary": "reflect"},
     "boundary"),
    (simoncelli_response, {"family": "nonseparable_wavelet", "wavelet": "shannon"},
     "wavelet"),
    (simoncelli_response, {"family": "nonseparable_wavelet",
                           "rotation_invariance": True, "pooling": "mean"},
     "rotation_invariance"),
    (simoncelli_response, {"family": "nonseparable_wavelet", "response": "modulus"},
     "response"),
    (riesz_response, {"family": "riesz_transformed_laplacian_of_gaussian",
                      "sigma_mm": 2.0}, "riesz_order_xyz"),
    (riesz_response, {"family": "riesz_transformed_laplacian_of_gaussian",
                      "sigma_mm": 2.0, "riesz_order_xyz": [1, -1, 0]},
     "riesz_order_xyz"),
    (riesz_response, {"family": "riesz_transformed_laplacian_of_gaussian",
                      "sigma_mm": 2.0, "riesz_order_xyz": [1, 0]}, "riesz_order_xyz"),
    (riesz_response, {"family": "riesz_transformed_laplacian_of_gaussian",
                      "riesz_order_xyz": [1, 0, 0]}, "sigma_mm"),
    (riesz_response, {"family": "riesz_transformed_simoncelli", "boundary": "nearest",
                      "riesz_order_xyz": [1, 0, 0]}, "boundary"),
    (riesz_response, {"family": "riesz_transformed_gabor",
                      "riesz_order_xyz": [1, 0, 0]}, "family"),
])
def test_bad_configuration_names_the_key(function, config, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        function(_image(), (1.0, 1.0, 1.0), config)


@pytest.mark.parametrize("function", [separable_wavelet_response, simoncelli_response,
                                      riesz_response])
def test_bad_image_or_spacing_is_named(function):
    config = {"family": "separable_wavelet", "wavelet": "haar", "filter_set": "LLL"}
    if function is not separable_wavelet_response:
        config = _simoncelli_config(family="riesz_transformed_simoncelli",
                                    riesz_order_xyz=[1, 0, 0])
        if function is simoncelli_response:
            config = _simoncelli_config()
    with pytest.raises(ValueError, match="image"):
        function(np.zeros((7, 8)), (1.0, 1.0, 1.0), config)
    with pytest.raises(ValueError, match="spacing"):
        function(_image(), (1.0, 0.0, 1.0), config)
