"""IBSI-2 filters (sklearn_medprep.filters): phase-1 reference maps, boundary modes,
axis order on asymmetric shapes, and configuration errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from sklearn_medprep import filter_image
from sklearn_medprep.filters._boundary import BOUNDARY_MODES, pad
from sklearn_medprep.filters._dispatch import FILTER_FAMILIES
from sklearn_medprep.filters._ibsi2 import load_nifti_zyx, test_config

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or ROOT.parent / "shared" / "data")
IBSI2 = SHARED / "ibsi2"
_CONFIG = IBSI2 / "configurations.json"
PHASE1 = (json.loads(_CONFIG.read_text())["phase_1"]["tests"]
          if _CONFIG.is_file() else {})
COVERED = [k for k, v in PHASE1.items() if v["filter"]["family"] in FILTER_FAMILIES]
needs_data = pytest.mark.skipif(not PHASE1, reason=f"{IBSI2} absent")


@needs_data
def test_the_core_families_cover_the_expected_maps():
    # 5 mean + 3 LoG + 9 Laws + 4 Gabor, at least (E's families may add more)
    core = [k for k in COVERED if k.split("_")[0] in {"1", "2", "3", "4"}]
    assert len(core) == sum(k.split("_")[0] in {"1", "2", "3", "4"} for k in PHASE1)


@needs_data
@pytest.mark.parametrize("test_id", COVERED)
def test_phase1_map_within_ibsi_criterion(test_id):
    entry = PHASE1[test_id]
    image, spacing = load_nifti_zyx(IBSI2 / entry["image"])
    reference, ref_spacing = load_nifti_zyx(IBSI2 / entry["reference_map"])
    assert spacing == ref_spacing
    response = filter_image(image, spacing, test_config(entry))
    tolerance = 0.01 * (reference.max() - reference.min())
    assert response.shape == reference.shape
    assert np.abs(response - reference).max() <= tolerance


# ---------------------------------------------------------------- boundaries

@pytest.mark.parametrize("mode, expected", [
    ("constant", [0, 0, 1, 2, 3, 4, 0, 0]),
    ("nearest", [1, 1, 1, 2, 3, 4, 4, 4]),
    ("wrap", [3, 4, 1, 2, 3, 4, 1, 2]),
    ("reflect", [2, 1, 1, 2, 3, 4, 4, 3]),  # IBSI mirror: d c b a | a b c d
])
def test_pad_modes_are_ibsi_s(mode, expected):
    assert pad(np.array([1.0, 2, 3, 4]), 2, mode).tolist() == expected


@pytest.mark.parametrize("mode", BOUNDARY_MODES)
def test_mean_filter_matches_explicit_padding_per_mode(mode):
    # the mean filter equals the average of an explicitly padded array (an
    # independent computation), on an asymmetric shape
    rng = np.random.default_rng(1)
    image = rng.normal(size=(7, 8, 9))
    out = filter_image(image, (1.0, 1.0, 1.0),
                       {"family": "mean", "kernel_size_voxels": 5, "boundary": mode})
    padded = pad(image, 2, mode)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5, 5))
    np.testing.assert_allclose(out, windows.mean(axis=(3, 4, 5)), rtol=0, atol=1e-12)


def test_by_slice_filters_each_xy_plane_alone():
    rng = np.random.default_rng(2)
    image = rng.normal(size=(7, 8, 9))
    config = {"family": "laplacian_of_gaussian", "sigma_mm": 3.0, "boundary": "reflect",
              "by_slice": True}
    out = filter_image(image, (5.0, 1.5, 1.5), config)
    for k in (0, 6):
        # one slice alone gives the same plane: no mixing along z
        alone = filter_image(image[k:k + 1], (5.0, 1.5, 1.5), config)[0]
        np.testing.assert_array_equal(out[k], alone)
        # and it is scipy's 2D Laplacian of Gaussian of that plane
        ref = ndimage.gaussian_laplace(image[k], 2.0, mode="reflect", truncate=4.0)
        np.testing.assert_allclose(out[k], ref, rtol=0, atol=1e-12)


def test_log_uses_spacing_per_axis_in_zyx_order():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(7, 8, 9))
    spacing = (4.0, 2.0, 1.0)  # (z, y, x)
    out = filter_image(image, spacing, {"family": "laplacian_of_gaussian",
                                        "sigma_mm": 2.0, "boundary": "nearest"})
    ref = ndimage.gaussian_laplace(image, (0.5, 1.0, 2.0), mode="nearest", truncate=4.0)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("config, key", [
    ({"family": "median"}, "family"),
    ({"kernel_size_voxels": 3}, "family"),
    ({"family": "mean"}, "kernel_size_voxels"),
    ({"family": "mean", "kernel_size_voxels": 4}, "kernel_size_voxels"),
    ({"family": "mean", "kernel_size_voxels": 3.0}, "kernel_size_voxels"),
    ({"family": "mean", "kernel_size_voxels": 3, "boundary": "mirror"}, "boundary"),
    ({"family": "mean", "kernel_size_voxels": 3, "kernel_sise": 3}, "kernel_sise"),
    ({"family": "mean", "kernel_size_voxels": 3, "by_slice": "yes"}, "by_slice"),
    ({"family": "mean", "kernel_size_voxels": 3, "rotation_invariance": True},
     "pooling"),
    ({"family": "mean", "kernel_size_voxels": 3, "pooling": "median"}, "pooling"),
    ({"family": "laplacian_of_gaussian", "sigma_mm": -1.0}, "sigma_mm"),
])
def test_bad_config_names_the_key(config, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        filter_image(np.zeros((3, 4, 5)), (1.0, 1.0, 1.0), config)


@pytest.mark.parametrize("image, spacing, word", [
    (np.zeros((4, 5)), (1.0, 1.0, 1.0), "image"),
    (np.full((3, 4, 5), np.nan), (1.0, 1.0, 1.0), "image"),
    (np.zeros((3, 4, 5)), (1.0, 1.0), "spacing"),
    (np.zeros((3, 4, 5)), (1.0, 0.0, 1.0), "spacing"),
])
def test_bad_image_or_spacing_is_named(image, spacing, word):
    with pytest.raises(ValueError, match=word):
        filter_image(image, spacing, {"family": "mean", "kernel_size_voxels": 3})
