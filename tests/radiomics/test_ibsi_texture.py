"""IBSI-1 texture features PyRadiomics lacks: phantom, brute force, PyRadiomics."""

import itertools
import json
import math
from collections import Counter, deque

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.radiomics._ibsi import PYRADIOMICS_FEATURE_MAP
from sklearn_medprep.radiomics._ibsi_phantom import _half_unit
from sklearn_medprep.radiomics._ibsi_texture import (
    TEXTURE_FEATURES,
    glcm_features,
    gldzm_features,
    ngldm_features,
    texture_features,
)

OFFSETS = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]
FACES = [o for o in OFFSETS if sum(map(abs, o)) == 1]


def _case(seed=0, shape=(3, 4, 5), levels=(1, 2, 3, 5), hole=True):
    """Small asymmetric grey image and ROI (with a hole and a cut corner)."""
    rng = np.random.default_rng(seed)
    grey = rng.choice(levels, size=shape).astype(float)
    mask = np.ones(shape, bool)
    mask[0, 0, :2] = False
    if hole:
        mask[1, 2, 3] = False
    mask[-1, -1, -1] = False
    return grey, mask


def _blocky_case(seed=1, shape=(6, 7, 8)):
    """Larger zones than a random image has: GLDZM distances above 1."""
    rng = np.random.default_rng(seed)
    grey = np.ones(shape)
    grey[1:5, 1:6, 2:7] = 2
    grey[2:4, 2:5, 3:6] = 3
    grey[rng.random(shape) < 0.08] = 4
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    mask = ((zz - 2.5) / 3.2) ** 2 + ((yy - 3) / 3.8) ** 2 + ((xx - 3.5) / 4.2) ** 2 < 1
    return grey, mask


def _inside(shape, v):
    return all(0 <= c < s for c, s in zip(v, shape))


def _add(v, o):
    return tuple(a + b for a, b in zip(v, o))


# -- brute force, one voxel at a time, from IBSI's matrix definitions ---------


def _naive_gldzm(grey, mask, morph):
    shape = grey.shape
    voxels = [tuple(v) for v in np.argwhere(mask)]

    def distance(v):  # 6-connected BFS to the first voxel outside ``morph``
        seen, queue = {v}, deque([(v, 0)])
        while queue:
            u, d = queue.popleft()
            if not _inside(shape, u) or not morph[u]:
                return d
            for o in FACES:
                w = _add(u, o)
                if w not in seen:
                    seen.add(w)
                    queue.append((w, d + 1))
        raise AssertionError

    zone_of, matrix = {}, Counter()
    for v in voxels:
        if v in zone_of:
            continue
        zone_of[v] = v
        members, queue = [v], deque([v])
        while queue:  # 26-connected flood fill of one grey level in the ROI
            u = queue.popleft()
            for o in OFFSETS:
                w = _add(u, o)
                if (_inside(shape, w) and mask[w] and w not in zone_of
                        and grey[w] == grey[v]):
                    zone_of[w] = v
                    members.append(w)
                    queue.append(w)
        matrix[grey[v], min(distance(u) for u in members)] += 1
    return matrix, len(voxels)


def _matrix_features(matrix, n_voxels):
    """IBSI's sums over a (grey level i, size-like j) count matrix ``matrix``."""
    n_s = sum(matrix.values())

    def total(fn):
        return sum(c * fn(i, j) for (i, j), c in matrix.items()) / n_s

    rows, cols = Counter(), Counter()
    for (i, j), c in matrix.items():
        rows[i] += c
        cols[j] += c
    mu_i, mu_j = total(lambda i, j: i), total(lambda i, j: j)
    return {
        "se": total(lambda i, j: j**-2), "le": total(lambda i, j: j**2),
        "lg": total(lambda i, j: i**-2), "hg": total(lambda i, j: i**2),
        "slg": total(lambda i, j: i**-2 * j**-2),
        "shg": total(lambda i, j: i**2 * j**-2),
        "llg": total(lambda i, j: j**2 * i**-2),
        "lhg": total(lambda i, j: i**2 * j**2),
        "glnu": sum(c**2 for c in rows.values()) / n_s,
        "glnu_norm": sum(c**2 for c in rows.values()) / n_s**2,
        "snu": sum(c**2 for c in cols.values()) / n_s,
        "snu_norm": sum(c**2 for c in cols.values()) / n_s**2,
        "perc": n_s / n_voxels,
        "gl_var": total(lambda i, j: (i - mu_i) ** 2),
        "s_var": total(lambda i, j: (j - mu_j) ** 2),
        "entr": -sum(c / n_s * math.log2(c / n_s) for c in matrix.values()),
        "energy": sum((c / n_s) ** 2 for c in matrix.values()),
    }


DZM = {"se": "sde", "le": "lde", "lg": "lgze", "hg": "hgze", "slg": "sdlge",
       "shg": "sdhge", "llg": "ldlge", "lhg": "ldhge", "glnu": "glnu",
       "glnu_norm": "glnu_norm", "snu": "zdnu", "snu_norm": "zdnu_norm",
       "perc": "z_perc", "gl_var": "gl_var", "s_var": "zd_var", "entr": "zd_entr"}
NGL = {"se": "lde", "le": "hde", "lg": "lgce", "hg": "hgce", "slg": "ldlge",
       "shg": "ldhge", "llg": "hdlge", "lhg": "hdhge", "glnu": "glnu",
       "glnu_norm": "glnu_norm", "snu": "dcnu", "snu_norm": "dcnu_norm",
       "perc": "dc_perc", "gl_var": "gl_var", "s_var": "dc_var", "entr": "dc_entr",
       "energy": "dc_energy"}


def _naive_ngldm(grey, mask):
    matrix = Counter()
    voxels = [tuple(v) for v in np.argwhere(mask)]
    for v in voxels:
        k = 1 + sum(
            1 for o in OFFSETS
            if _inside(grey.shape, w := _add(v, o)) and mask[w] and grey[w] == grey[v]
        )
        matrix[grey[v], k] += 1
    return matrix, len(voxels)


def _naive_glcm(grey, mask, n_levels):
    """sum variance, dissimilarity, contrast, joint entropy, info. correlation 1."""
    directions = [o for o in OFFSETS if o > (0, 0, 0)]
    values = {name: [] for name in ("sum_var", "dissimilarity", "contrast",
                                    "joint_entr", "info_corr1", "inv_diff_norm")}
    for o in directions:
        pairs = Counter()
        for v in map(tuple, np.argwhere(mask)):
            w = _add(v, o)
            if _inside(grey.shape, w) and mask[w]:
                pairs[grey[v], grey[w]] += 1
                pairs[grey[w], grey[v]] += 1
        n = sum(pairs.values())
        p = {key: c / n for key, c in pairs.items()}
        p_sum, px = Counter(), Counter()
        for (i, j), q in p.items():
            p_sum[i + j] += q
            px[i] += q
        sum_avg = sum(k * q for k, q in p_sum.items())
        hxy = -sum(q * math.log2(q) for q in p.values())
        hxy1 = -sum(q * math.log2(px[i] * px[j]) for (i, j), q in p.items())
        hx = -sum(q * math.log2(q) for q in px.values())
        values["sum_var"].append(sum((k - sum_avg) ** 2 * q for k, q in p_sum.items()))
        values["dissimilarity"].append(sum(abs(i - j) * q for (i, j), q in p.items()))
        values["contrast"].append(sum((i - j) ** 2 * q for (i, j), q in p.items()))
        values["joint_entr"].append(hxy)
        values["info_corr1"].append((hxy - hxy1) / hx)
        values["inv_diff_norm"].append(
            sum(q / (1 + abs(i - j) / n_levels) for (i, j), q in p.items()))
    return {f"cm_{k}_d1_3d_avg": float(np.mean(v)) for k, v in values.items()}


# -- brute-force agreement -----------------------------------------------------


@pytest.mark.parametrize("case", [_case(0), _case(3, hole=False), _blocky_case()])
def test_gldzm_matches_per_voxel_bfs(case):
    grey, mask = case
    matrix, n_voxels = _naive_gldzm(grey, mask, mask)
    expected = _matrix_features(matrix, n_voxels)
    got = gldzm_features(grey, mask)
    assert len(got) == 16
    for generic, name in DZM.items():
        assert got[f"dzm_{name}_3d"] == pytest.approx(expected[generic], rel=1e-12,
                                                      abs=1e-14), name


def test_blocky_case_has_zones_at_several_distances():
    # so that the brute-force comparison exercises the distance map
    matrix, _ = _naive_gldzm(*_blocky_case(), _blocky_case()[1])
    distances = {d for _, d in matrix}
    assert min(distances) == 1 and max(distances) >= 3


def test_gldzm_distances_to_the_morphological_mask():
    grey, morph = _blocky_case()
    mask = morph & (grey < 4)  # re-segmentation removes the level-4 voxels
    matrix, n_voxels = _naive_gldzm(grey, mask, morph)
    expected = _matrix_features(matrix, n_voxels)
    got = gldzm_features(grey, mask, morphological_mask=morph)
    for generic, name in DZM.items():
        assert got[f"dzm_{name}_3d"] == pytest.approx(expected[generic], rel=1e-12,
                                                      abs=1e-14), name
    # measured to the intensity mask instead, the distances differ
    assert gldzm_features(grey, mask)["dzm_lde_3d"] != pytest.approx(
        got["dzm_lde_3d"])


@pytest.mark.parametrize("case", [_case(0), _case(5, levels=(2, 3, 7)),
                                  _blocky_case()])
def test_ngldm_matches_per_voxel_loop(case):
    grey, mask = case
    expected = _matrix_features(*_naive_ngldm(grey, mask))
    got = ngldm_features(grey, mask)
    assert len(got) == 17
    for generic, name in NGL.items():
        assert got[f"ngl_{name}_d1_a0.0_3d"] == pytest.approx(
            expected[generic], rel=1e-12, abs=1e-14), name


def _many_levels_case(shape=(8, 10, 12)):
    """A distinct grey level per voxel: matrices with mostly empty cells."""
    grey = np.random.default_rng(2).permutation(np.prod(shape)).reshape(shape) + 1.0
    mask = np.ones(shape, bool)
    mask[0, :3, :4] = False
    return grey, mask


@pytest.mark.parametrize("case", [_case(0), _case(5, levels=(2, 3, 7)),
                                  _blocky_case(), _many_levels_case()])
def test_glcm_matches_per_voxel_loop(case):
    grey, mask = case
    expected = _naive_glcm(grey, mask, n_levels=9)
    got = glcm_features(grey, mask, n_levels=9)
    assert len(got) == 25
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-14), name


def test_texture_features_gathers_the_21():
    grey, mask = _blocky_case()
    got = texture_features(grey, mask, (2.0, 1.0, 0.5))
    assert list(got) == list(TEXTURE_FEATURES) and len(got) == 21
    every = {**gldzm_features(grey, mask), **glcm_features(grey, mask),
             **ngldm_features(grey, mask)}
    assert got == {name: every[name] for name in TEXTURE_FEATURES}
    # distances in voxels: the spacing changes nothing
    assert texture_features(grey, mask, (1.0, 1.0, 1.0)) == got
    # cropping is invisible: the same ROI inside a larger image
    big_grey = np.pad(grey, ((2, 0), (0, 3), (1, 1)), constant_values=9)
    big_mask = np.pad(mask, ((2, 0), (0, 3), (1, 1)))
    assert texture_features(big_grey, big_mask, (1.0, 1.0, 1.0)) == pytest.approx(got)


def test_bad_input_is_refused_with_a_clear_message():
    grey, mask = _case(0)
    with pytest.raises(ValueError, match="mask shape"):
        texture_features(grey, mask[:, :, :-1], (1, 1, 1))
    with pytest.raises(ValueError, match="mask is empty"):
        texture_features(grey, np.zeros_like(mask), (1, 1, 1))
    with pytest.raises(ValueError, match="must be positive"):
        texture_features(grey - 1, mask, (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        texture_features(grey, mask, (1, 1))
    with pytest.raises(ValueError, match="3D"):
        texture_features(grey[0], mask[0], (1, 1, 1))
    with pytest.raises(ValueError, match="outside morphological_mask"):
        texture_features(grey, mask, (1, 1, 1), morphological_mask=mask & False)
    nan = grey.copy()
    nan[mask.nonzero()[0][0], mask.nonzero()[1][0], mask.nonzero()[2][0]] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        texture_features(nan, mask, (1, 1, 1))


# -- the IBSI-1 digital phantom and PyRadiomics --------------------------------


@pytest.fixture(scope="module")
def phantom(shared_data):
    folder = shared_data / "ibsi"
    if not folder.is_dir():
        pytest.skip("../shared/data/ibsi is absent")
    image = sitk.ReadImage(str(folder / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(folder / "mask.nii.gz"))
    reference = json.loads((folder / "ibsi1_reference.json").read_text())
    return image, mask, reference


def _within(value, entry):
    return abs(value - entry["ref"]) <= max(entry["tol"], _half_unit(entry["ref"]))


@pytest.mark.shared_data
def test_phantom_21_features_within_ibsi_tolerance(phantom):
    image, mask, reference = phantom
    grey = sitk.GetArrayFromImage(image).astype(float)
    roi = sitk.GetArrayFromImage(mask) > 0
    got = texture_features(grey, roi, image.GetSpacing()[::-1])
    failed = {k: (v, reference[k]) for k, v in got.items()
              if not _within(v, reference[k])}
    assert len(got) == 21 and not failed, failed


@pytest.mark.shared_data
def test_phantom_whole_glcm_and_ngldm_families_within_ibsi_tolerance(phantom):
    # the code the 5 GLCM/NGLDM features come from computes the whole
    # families right; the phantom's discretisation has N_g = 6 grey levels
    image, mask, reference = phantom
    grey = sitk.GetArrayFromImage(image).astype(float)
    roi = sitk.GetArrayFromImage(mask) > 0
    got = {**glcm_features(grey, roi, n_levels=6), **ngldm_features(grey, roi)}
    assert len(got) == 42
    failed = {k: (v, reference[k]["ref"]) for k, v in got.items()
              if not _within(v, reference[k])}
    assert not failed, failed


def _pyradiomics_agreement(image, mask):
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["s"])
    out = RadiomicsExtractor(settings="ibsi").fit_transform(table).iloc[0]
    grey = sitk.GetArrayFromImage(image).astype(float)
    roi = sitk.GetArrayFromImage(mask) > 0
    # PyRadiomics' binWidth 1 on integer levels starting at 1: the levels
    assert grey[roi].min() == 1
    ours = {**glcm_features(grey, roi), **ngldm_features(grey, roi)}
    compared = 0
    for name, ibsi in PYRADIOMICS_FEATURE_MAP.items():
        if "_glcm_" in name or "_gldm_" in name:
            assert ours[ibsi] == pytest.approx(float(out[name]), rel=1e-6,
                                               abs=1e-9), (name, ibsi)
            compared += 1
    assert compared == 23 + 14
    # and the preset's own columns of the 21 are these functions' values
    expected = texture_features(grey, roi, image.GetSpacing()[::-1])
    got = {ibsi: float(out["original_ibsi_" + ibsi]) for ibsi in TEXTURE_FEATURES}
    assert got == pytest.approx(expected, rel=1e-12, nan_ok=True)


@pytest.mark.shared_data
def test_phantom_glcm_ngldm_agree_with_pyradiomics(phantom):
    image, mask, _ = phantom
    _pyradiomics_agreement(image, mask)


def test_random_case_glcm_ngldm_agree_with_pyradiomics():
    grey, roi = _blocky_case()
    image = sitk.GetImageFromArray(grey.astype(np.int16))
    image.SetSpacing((0.7, 1.1, 1.9))
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    _pyradiomics_agreement(image, mask)


def test_degenerate_rois():
    grey = np.full((3, 4, 5), 2.0)
    # one grey level: no variance; correlation 1 and information correlation 0
    # (PyRadiomics' conventions), one zone
    mask = np.ones(grey.shape, bool)
    got = {**glcm_features(grey, mask), **gldzm_features(grey, mask),
           **ngldm_features(grey, mask)}
    assert got["cm_corr_d1_3d_avg"] == 1.0
    assert got["cm_info_corr1_d1_3d_avg"] == 0.0
    assert got["cm_sum_var_d1_3d_avg"] == 0.0
    assert got["dzm_z_perc_3d"] == 1 / grey.size
    assert got["dzm_lde_3d"] == 1.0  # the zone reaches the edge: its smallest distance
    assert got["ngl_dc_energy_d1_a0.0_3d"] == pytest.approx(
        _matrix_features(*_naive_ngldm(grey, mask))["energy"])
    # a single voxel: GLCM undefined (NaN), the zone features are defined
    mask = np.zeros(grey.shape, bool)
    mask[1, 2, 3] = True
    got = texture_features(grey, mask, (1, 1, 1))
    assert np.isnan(got["cm_sum_var_d1_3d_avg"])
    assert np.isnan(got["cm_dissimilarity_d1_3d_avg"])
    assert got["dzm_sde_3d"] == 1.0 and got["ngl_dc_perc_d1_a0.0_3d"] == 1.0


def test_agree_with_mirp_the_ibsi_reference_implementation():
    # mirp (oncoray, IBSI's reference implementation) on an image whose zones
    # lie at several distances from the ROI edge (the phantom's all touch it)
    mirp = pytest.importorskip("mirp")
    grey, mask = _blocky_case()
    out = mirp.extract_features(
        image=grey, mask=mask.astype(int), base_discretisation_method="none",
        base_feature_families=["dzm", "cm", "ngldm"], by_slice=False,
        glcm_spatial_method="3d_average", ngldm_spatial_method="3d",
        gldzm_spatial_method="3d", glcm_distance=1.0, ngldm_distance=1.0,
        ngldm_difference_level=0.0,
    )[0].iloc[0]
    ours = {**gldzm_features(grey, mask), **glcm_features(grey, mask),
            **ngldm_features(grey, mask)}
    assert len(ours) == 16 + 25 + 17
    for name, value in ours.items():
        assert value == pytest.approx(float(out[name]), rel=1e-9, abs=1e-12), name
