"""IBSI-1 texture features PyRadiomics lacks, computed with numpy and scipy.

:func:`texture_features` returns the 21 IBSI-1 texture features of the 3D
configuration that PyRadiomics does not compute:

- the 16 features of the grey level distance zone matrix (GLDZM),
  ``dzm_*_3d``;
- sum variance and dissimilarity of the grey level co-occurrence matrix
  (GLCM), ``cm_sum_var_d1_3d_avg`` and ``cm_dissimilarity_d1_3d_avg``;
- normalised grey level non-uniformity, dependence count percentage and
  dependence count energy of the neighbouring grey level dependence matrix
  (NGLDM), ``ngl_*_d1_a0.0_3d``.

The GLCM and NGLDM functions below compute every feature of their family
(:func:`glcm_features`, :func:`ngldm_features`), so that the tests can hold the
same code against PyRadiomics where the two overlap. All three work on the
discretised grey levels of the region of interest (ROI) as they are: a grey
level's value is the ``i`` of IBSI's formulas. Distances are in voxels (IBSI's
neighbourhoods and the GLDZM's distance to the ROI edge count voxels), so the
voxel spacing does not enter them.

Definitions (IBSI reference manual, "3D" aggregation):

- GLCM, ``d1_3d_avg``: voxel pairs at Chebyshev distance 1 along the 13
  directions of a 3D neighbourhood, both voxels in the ROI; one symmetric
  matrix per direction; each feature computed per direction and averaged.
- NGLDM, ``d1_a0.0_3d``: for each ROI voxel, the dependence count ``k`` is one
  plus the number of its 26 neighbours in the ROI with the same grey level
  (coarseness ``a = 0``); one matrix over the volume.
- GLDZM, ``3d``: zones are 26-connected groups of ROI voxels of one grey level;
  a voxel's distance to the ROI edge is its taxicab (6-connected) distance to
  the nearest voxel outside the ROI mask, the image border counting as outside
  (edge voxels have distance 1); a zone's distance is the smallest of its
  voxels'; one matrix over the volume.
"""

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["glcm_features", "gldzm_features", "ngldm_features", "texture_features"]

#: the IBSI-1 identifiers :func:`texture_features` returns, in order
TEXTURE_FEATURES = (
    *(f"dzm_{name}_3d" for name in (
        "sde", "lde", "lgze", "hgze", "sdlge", "sdhge", "ldlge", "ldhge", "glnu",
        "glnu_norm", "zdnu", "zdnu_norm", "z_perc", "gl_var", "zd_var", "zd_entr",
    )),
    "cm_sum_var_d1_3d_avg",
    "cm_dissimilarity_d1_3d_avg",
    "ngl_glnu_norm_d1_a0.0_3d",
    "ngl_dc_perc_d1_a0.0_3d",
    "ngl_dc_energy_d1_a0.0_3d",
)

# the 13 directions of a 3D neighbourhood at Chebyshev distance 1 (one of each
# pair of opposite offsets), and all 26 offsets
_OFFSETS_26 = [
    (dz, dy, dx)
    for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    if (dz, dy, dx) != (0, 0, 0)
]
_DIRECTIONS_13 = [offset for offset in _OFFSETS_26 if offset > (0, 0, 0)]


def _as_mask(mask, shape, name):
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"{name} shape {mask.shape} differs from grey shape {shape}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1)")
        mask = mask.astype(bool)
    return mask


def _check_input(grey, mask, spacing=None, box_mask=None):
    """Validate and crop to the bounding box of ``box_mask`` (default ``mask``).

    The box has one voxel of margin, and the cropped arrays are padded with one
    voxel more, outside the ROI, so that every ROI voxel has 26 neighbours.
    Returns the cropped grey levels (float), the cropped ROI mask, the sorted
    distinct grey levels of the ROI, the level index of each voxel (-1 outside
    the ROI) and the box (a tuple of slices into the input).
    """
    grey = np.asarray(grey, dtype=float)
    if grey.ndim != 3:
        raise ValueError(f"grey must be a 3D (z, y, x) array; got shape {grey.shape}")
    mask = _as_mask(mask, grey.shape, "mask")
    if spacing is not None:
        spacing = np.asarray(spacing, dtype=float)
        if spacing.shape != (3,) or not (np.isfinite(spacing).all()
                                         and (spacing > 0).all()):
            raise ValueError(
                f"spacing must be three positive (z, y, x) values; got {spacing!r}"
            )
    if not mask.any():
        raise ValueError("mask is empty: the ROI has no voxel")
    values = grey[mask]
    if not np.isfinite(values).all():
        raise ValueError("grey has non-finite values inside the ROI mask")
    if (values <= 0).any():
        raise ValueError(
            "grey levels inside the ROI must be positive (discretised grey levels "
            f"start at 1); smallest is {values.min():g}"
        )
    # crop to the bounding box plus one voxel, the margin outside the ROI
    box = _box(mask if box_mask is None else box_mask)
    grey, mask = grey[box], mask[box]
    pad = [(1, 1)] * 3
    grey = np.pad(grey, pad)
    mask = np.pad(mask, pad)
    levels, inverse = np.unique(grey[mask], return_inverse=True)
    index = np.full(grey.shape, -1, dtype=np.intp)
    index[mask] = inverse.ravel()
    return grey, mask, levels, index, box


def _box(mask):
    """Bounding box of ``mask`` with one voxel of margin (clipped to the image)."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        where = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(where[0] - 1, 0), where[-1] + 2))
    return tuple(box)


def _shifted(array, offset):
    """The views ``array[v]`` and ``array[v + offset]`` over all valid ``v``."""
    src, dst = [], []
    for step, size in zip(offset, array.shape):
        src.append(slice(max(-step, 0), size - max(step, 0)))
        dst.append(slice(max(step, 0), size - max(-step, 0)))
    return array[tuple(src)], array[tuple(dst)]


def _entropy(p):
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


# ----------------------------------------------------------------------------
# grey level co-occurrence matrix


def glcm_features(grey, mask, n_levels=None):
    """All 25 IBSI-1 GLCM features, 3D, distance 1, averaged over 13 directions.

    Parameters
    ----------
    grey : array-like of shape (z, y, x)
        Discretised grey levels (positive inside the ROI).
    mask : array-like of bool, same shape
        The ROI.
    n_levels : int, optional
        Number of grey levels ``N_g`` of the discretisation, used by the
        normalised inverse difference (moment). Default: the ROI's largest grey
        level.

    Returns
    -------
    dict
        ``{"cm_<feature>_d1_3d_avg": value}``; NaN where no two ROI voxels
        are neighbours (a single voxel). Directions without a voxel pair are
        left out of the average, as PyRadiomics does.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.radiomics._ibsi_texture import glcm_features
    >>> grey = np.array([[[1, 2], [2, 1]]] * 2)
    >>> f = glcm_features(grey, np.ones(grey.shape, bool))
    >>> round(f["cm_dissimilarity_d1_3d_avg"], 4)
    0.4615
    """
    _, _, levels, index, _ = _check_input(grey, mask)
    return _glcm(index, levels, n_levels)


_GLCM_NAMES = (
    "joint_max", "joint_avg", "joint_var", "joint_entr", "diff_avg", "diff_var",
    "diff_entr", "sum_avg", "sum_var", "sum_entr", "energy", "contrast",
    "dissimilarity", "inv_diff", "inv_diff_norm", "inv_diff_mom",
    "inv_diff_mom_norm", "inv_var", "corr", "auto_corr", "clust_tend",
    "clust_shade", "clust_prom", "info_corr1", "info_corr2",
)


def _glcm(index, levels, n_levels=None):
    n = len(levels)
    if n_levels is None:
        n_levels = float(levels.max())
    values = []
    for offset in _DIRECTIONS_13:
        a, b = _shifted(index, offset)
        both = (a >= 0) & (b >= 0)
        a, b = a[both], b[both]
        if not a.size:  # no voxel pair along this direction: left out
            continue
        # the nonzero cells of the symmetric matrix, and their probabilities:
        # counted densely when the matrix is small, sorted when it is not
        keys = np.concatenate([a * n + b, b * n + a])
        if n * n <= max(4096, keys.size):
            counts = np.bincount(keys, minlength=n * n)
            cells = np.flatnonzero(counts)
            counts = counts[cells]
        else:
            cells, counts = np.unique(keys, return_counts=True)
        values.append(_glcm_cells(cells // n, cells % n, counts / counts.sum(),
                                  levels, n_levels))
    if not values:  # no two ROI voxels are neighbours: no co-occurrence
        return {f"cm_{name}_d1_3d_avg": float("nan") for name in _GLCM_NAMES}
    return {f"cm_{name}_d1_3d_avg": float(np.mean([v[name] for v in values]))
            for name in _GLCM_NAMES}


def _marginal(values, p):
    """Distribution of ``values`` (one per matrix cell) under ``p``."""
    keys, inverse = np.unique(values, return_inverse=True)
    return keys, np.bincount(inverse.ravel(), weights=p)


def _glcm_cells(ii, jj, p, levels, n_levels):
    """GLCM features from the nonzero cells of one symmetric matrix.

    ``(ii, jj)``: the cells' level indices; ``p``: their probabilities. Every
    feature is a sum over cells, so a matrix with many grey levels costs its
    nonzero cells only.
    """
    i, j = levels[ii], levels[jj]
    px = np.bincount(ii, weights=p, minlength=len(levels))  # == py (symmetric)
    mu = (px * levels).sum()
    var = (px * (levels - mu) ** 2).sum()
    diff = np.abs(i - j)
    log_px = np.log2(px, out=np.zeros_like(px), where=px > 0)
    f = {"joint_max": p.max(), "joint_avg": mu, "joint_var": var}
    hxy = -(p * np.log2(p)).sum()
    f["joint_entr"] = hxy
    k_diff, p_diff = _marginal(diff, p)
    f["diff_avg"] = (p_diff * k_diff).sum()
    f["diff_var"] = (p_diff * (k_diff - f["diff_avg"]) ** 2).sum()
    f["diff_entr"] = _entropy(p_diff)
    k_sum, p_sum = _marginal(i + j, p)
    f["sum_avg"] = (p_sum * k_sum).sum()
    f["sum_var"] = (p_sum * (k_sum - f["sum_avg"]) ** 2).sum()
    f["sum_entr"] = _entropy(p_sum)
    f["energy"] = (p**2).sum()
    f["contrast"] = (p * diff**2).sum()
    f["dissimilarity"] = (p * diff).sum()
    f["inv_diff"] = (p / (1 + diff)).sum()
    f["inv_diff_norm"] = (p / (1 + diff / n_levels)).sum()
    f["inv_diff_mom"] = (p / (1 + diff**2)).sum()
    f["inv_diff_mom_norm"] = (p / (1 + diff**2 / n_levels**2)).sum()
    off = diff > 0
    f["inv_var"] = (p[off] / diff[off] ** 2).sum()
    ci, cj = i - mu, j - mu
    # a single grey level (no variance): correlation 1, as PyRadiomics
    f["corr"] = (p * ci * cj).sum() / var if var > 0 else 1.0
    f["auto_corr"] = (p * i * j).sum()
    f["clust_tend"] = (p * (ci + cj) ** 2).sum()
    f["clust_shade"] = (p * (ci + cj) ** 3).sum()
    f["clust_prom"] = (p * (ci + cj) ** 4).sum()
    hx = -(px * log_px).sum()
    hxy1 = -(p * (log_px[ii] + log_px[jj])).sum()
    # HXY2 = -sum_ij px(i) py(j) log2(px(i) py(j)) = HX + HY = 2 HX
    hxy2 = 2 * hx
    # a single grey level (HX = 0): 0, as PyRadiomics
    f["info_corr1"] = (hxy - hxy1) / hx if hx > 0 else 0.0
    f["info_corr2"] = np.sqrt(max(1 - np.exp(-2 * (hxy2 - hxy)), 0.0))
    return f


# ----------------------------------------------------------------------------
# neighbouring grey level dependence matrix


def _dependence(index):
    """Dependence count ``k`` (1 + same-level 26-neighbours) of each ROI voxel."""
    count = np.zeros(index.shape, dtype=np.intp)
    inside = index >= 0
    for offset in _OFFSETS_26:
        a, b = _shifted(index, offset)
        c, _ = _shifted(count, offset)
        c += (a == b) & (a >= 0)
    return count[inside] + 1, index[inside]


def _zone_features(prefix, suffix, levels, level_index, size, n_voxels, names):
    """Features of a (grey level, size-like) matrix from one entry per element.

    ``level_index`` (into ``levels``, the grey level values) and ``size`` (a
    positive integer) hold the grey level and the zone/dependence measure
    (distance for the GLDZM, dependence count for the NGLDM) of each counted
    element; ``names`` maps IBSI's generic names to this family's.
    """
    n_s = len(level_index)
    per_level = np.bincount(level_index)
    per_size = np.bincount(size)
    cells = np.bincount(level_index * (size.max() + 1) + size)
    cells = cells[cells > 0]
    level = levels[level_index]
    i2 = level**2
    s2 = size.astype(float) ** 2
    f = {
        "se": np.mean(1 / s2),
        "le": np.mean(s2),
        "lg": np.mean(1 / i2),
        "hg": np.mean(i2),
        "slg": np.mean(1 / (i2 * s2)),
        "shg": np.mean(i2 / s2),
        "llg": np.mean(s2 / i2),
        "lhg": np.mean(i2 * s2),
        "glnu": (per_level.astype(float) ** 2).sum() / n_s,
        "glnu_norm": (per_level.astype(float) ** 2).sum() / n_s**2,
        "snu": (per_size.astype(float) ** 2).sum() / n_s,
        "snu_norm": (per_size.astype(float) ** 2).sum() / n_s**2,
        "perc": n_s / n_voxels,
        "gl_var": np.var(level),
        "s_var": np.var(size.astype(float)),
        "entr": _entropy(cells / n_s),
        "energy": ((cells / n_s) ** 2).sum(),
    }
    return {f"{prefix}_{names.get(k, k)}{suffix}": float(f[k]) for k in names}


_NGLDM_NAMES = {
    "se": "lde", "le": "hde", "lg": "lgce", "hg": "hgce", "slg": "ldlge",
    "shg": "ldhge", "llg": "hdlge", "lhg": "hdhge", "glnu": "glnu",
    "glnu_norm": "glnu_norm", "snu": "dcnu", "snu_norm": "dcnu_norm",
    "perc": "dc_perc", "gl_var": "gl_var", "s_var": "dc_var", "entr": "dc_entr",
    "energy": "dc_energy",
}
_GLDZM_NAMES = {
    "se": "sde", "le": "lde", "lg": "lgze", "hg": "hgze", "slg": "sdlge",
    "shg": "sdhge", "llg": "ldlge", "lhg": "ldhge", "glnu": "glnu",
    "glnu_norm": "glnu_norm", "snu": "zdnu", "snu_norm": "zdnu_norm",
    "perc": "z_perc", "gl_var": "gl_var", "s_var": "zd_var", "entr": "zd_entr",
}


def ngldm_features(grey, mask):
    """All 17 IBSI-1 NGLDM features, 3D, Chebyshev distance 1, coarseness 0.

    Parameters
    ----------
    grey : array-like of shape (z, y, x)
        Discretised grey levels (positive inside the ROI).
    mask : array-like of bool, same shape
        The ROI.

    Returns
    -------
    dict
        ``{"ngl_<feature>_d1_a0.0_3d": value}``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.radiomics._ibsi_texture import ngldm_features
    >>> grey = np.array([[[1, 2], [2, 1]]] * 2)
    >>> ngldm_features(grey, np.ones(grey.shape, bool))["ngl_glnu_norm_d1_a0.0_3d"]
    0.5
    """
    _, _, levels, index, _ = _check_input(grey, mask)
    return _ngldm(index, levels)


def _ngldm(index, levels):
    k, level_index = _dependence(index)
    return _zone_features("ngl", "_d1_a0.0_3d", levels, level_index, k,
                          len(k), _NGLDM_NAMES)


# ----------------------------------------------------------------------------
# grey level distance zone matrix

def gldzm_features(grey, mask, morphological_mask=None):
    """All 16 IBSI-1 GLDZM features, 3D.

    Parameters
    ----------
    grey : array-like of shape (z, y, x)
        Discretised grey levels (positive inside the ROI).
    mask : array-like of bool, same shape
        The ROI (IBSI's intensity mask): the voxels grouped into zones.
    morphological_mask : array-like of bool, same shape, optional
        The mask whose edge the distances are measured to (IBSI's
        morphological mask, which re-segmentation does not change). Default:
        ``mask``.

    Returns
    -------
    dict
        ``{"dzm_<feature>_3d": value}``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.radiomics._ibsi_texture import gldzm_features
    >>> grey = np.ones((3, 3, 3))
    >>> grey[1, 1, 1] = 2
    >>> f = gldzm_features(grey, np.ones(grey.shape, bool))
    >>> f["dzm_z_perc_3d"], f["dzm_lde_3d"]
    (0.07407407407407407, 2.5)
    """
    grey = np.asarray(grey, dtype=float)
    morph = _morphological(grey, mask, morphological_mask)
    # crop on the morphological mask's box, so that its whole edge stays
    _, _, levels, index, box = _check_input(grey, mask, box_mask=morph)
    return _gldzm(index, levels, np.pad(morph[box], 1))


def _morphological(grey, mask, morphological_mask):
    if grey.ndim != 3:
        raise ValueError(f"grey must be a 3D (z, y, x) array; got shape {grey.shape}")
    mask = _as_mask(mask, grey.shape, "mask")
    if morphological_mask is None:
        return mask
    morph = _as_mask(morphological_mask, grey.shape, "morphological_mask")
    if (mask & ~morph).any():
        raise ValueError("mask has voxels outside morphological_mask")
    return morph


def _gldzm(index, levels, morph):
    # taxicab distance to the nearest voxel outside the morphological mask;
    # the padding makes the image border count as outside
    distance = ndimage.distance_transform_cdt(morph, metric="taxicab")
    inside = index >= 0
    n_voxels = int(inside.sum())
    # zones: connected components of the graph whose edges join ROI voxels of
    # one grey level along the 13 directions (26-connectivity), all grey
    # levels in one call
    voxel = np.full(index.shape, -1, dtype=np.intp)
    voxel[inside] = np.arange(n_voxels)
    heads, tails = [], []
    for offset in _DIRECTIONS_13:
        a, b = _shifted(index, offset)
        va, vb = _shifted(voxel, offset)
        same = (a == b) & (a >= 0)
        heads.append(va[same])
        tails.append(vb[same])
    heads = np.concatenate(heads)
    graph = coo_matrix((np.ones(len(heads), dtype=np.int8),
                        (heads, np.concatenate(tails))),
                       shape=(n_voxels, n_voxels))
    n_zones, zone = connected_components(graph, directed=False)
    zone_level = np.empty(n_zones, dtype=np.intp)
    zone_level[zone] = index[inside]
    zone_distance = np.full(n_zones, np.iinfo(np.intp).max)
    np.minimum.at(zone_distance, zone, distance[inside].astype(np.intp))
    return _zone_features("dzm", "_3d", levels, zone_level, zone_distance,
                          n_voxels, _GLDZM_NAMES)


# ----------------------------------------------------------------------------


def texture_features(grey, mask, spacing, *, morphological_mask=None):
    """The 21 IBSI-1 texture features (3D) that PyRadiomics does not compute.

    Parameters
    ----------
    grey : array-like of shape (z, y, x)
        Discretised grey levels; positive inside the ROI (on the IBSI-1
        digital phantom: the intensities themselves, IBSI's "no
        discretisation").
    mask : array-like of bool, same shape
        The ROI.
    spacing : sequence of 3 float
        Voxel spacing (z, y, x) in mm. Checked but not used: IBSI measures
        these features' neighbourhoods and distances in voxels.
    morphological_mask : array-like of bool, same shape, optional
        The mask whose edge the GLDZM distances are measured to (IBSI's
        morphological mask). Default: ``mask``.

    Returns
    -------
    dict
        IBSI-1 identifier -> value, for the identifiers of
        :data:`TEXTURE_FEATURES`, in that order.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.radiomics._ibsi_texture import texture_features
    >>> grey = np.ones((3, 4, 5))
    >>> grey[1, 1:3, 1:4] = 2
    >>> f = texture_features(grey, np.ones(grey.shape, bool), (2.0, 1.0, 1.0))
    >>> f["dzm_z_perc_3d"], round(f["ngl_dc_energy_d1_a0.0_3d"], 4)
    (0.03333333333333333, 0.1444)
    """
    grey = np.asarray(grey, dtype=float)
    morph = _morphological(grey, mask, morphological_mask)
    _, _, levels, index, box = _check_input(grey, mask, spacing, box_mask=morph)
    out = _gldzm(index, levels, np.pad(morph[box], 1))
    cm = _glcm(index, levels)
    ngl = _ngldm(index, levels)
    out.update({name: cm[name] for name in TEXTURE_FEATURES if name in cm})
    out.update({name: ngl[name] for name in TEXTURE_FEATURES if name in ngl})
    return {name: out[name] for name in TEXTURE_FEATURES}
