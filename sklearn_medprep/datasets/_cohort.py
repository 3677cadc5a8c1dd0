"""Synthetic multi-site image cohorts with known site, covariate and label effects.

``make_multisite_cohort`` writes 3D MR-like volumes (NIfTI) with a lesion mask;
``make_xray_cohort`` writes 2D chest-X-ray-like PNGs (cardiomegaly vs normal from
hospitals with different scanners). The anatomy is defined in physical
coordinates (millimetres) and sampled on each site's voxel grid, so sites differ
in voxel spacing as real scanners do, and the ground truth is returned.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_multisite_cohort", "make_xray_cohort"]

_SITE_SPACINGS = ((1.0, 1.0, 1.0), (1.25, 1.25, 1.5), (0.9, 0.9, 1.2), (1.1, 1.1, 1.1))


def _site_names(n_sites):
    return [f"site_{chr(ord('A') + s)}" for s in range(n_sites)]


def _site_sizes(n_subjects, n_sites, site_sizes):
    if site_sizes is None:
        sizes = np.full(n_sites, n_subjects // n_sites)
        sizes[: n_subjects % n_sites] += 1
        return sizes
    sizes = np.asarray(site_sizes, dtype=int)
    if sizes.shape != (n_sites,) or sizes.sum() != n_subjects or (sizes < 1).any():
        raise ValueError(
            f"site_sizes must be {n_sites} positive integers summing to n_subjects="
            f"{n_subjects}, got {list(sizes)}"
        )
    return sizes


def _labels(rng, sites, n_sites, confounding):
    """Draw y with P(y=1 | site) spread linearly over [0.5 - c/2, 0.5 + c/2]."""
    if not 0.0 <= confounding < 1.0:
        raise ValueError(f"confounding must be in [0, 1), got {confounding}")
    shift = np.linspace(-confounding / 2, confounding / 2, n_sites)[::-1]
    p = 0.5 + shift[sites] if n_sites > 1 else np.full(len(sites), 0.5)
    y = (rng.uniform(size=len(sites)) < p).astype(int)
    # both classes present at every site when possible, so that stratified
    # splitting and per-site statistics stay defined
    for s in range(n_sites):
        members = np.flatnonzero(sites == s)
        if len(members) >= 2 and len(np.unique(y[members])) == 1:
            y[members[0]] = 1 - y[members[0]]
    return y


def _smooth_field(rng, coords, n_waves, wavelength, amplitude):
    """Sum of random plane waves in physical coordinates (resolution independent)."""
    field = np.zeros(coords[0].shape)
    for _ in range(n_waves):
        direction = rng.normal(size=len(coords))
        direction /= np.linalg.norm(direction)
        phase = rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / (wavelength * rng.uniform(0.7, 1.3))
        field += np.cos(k * sum(d * c for d, c in zip(direction, coords)) + phase)
    return amplitude * field / np.sqrt(n_waves)


def _draw_site_effects(rng, names, dim):
    n = len(names)
    spacing = [tuple(_SITE_SPACINGS[s % len(_SITE_SPACINGS)][:dim]) for s in range(n)]
    return pd.DataFrame(
        {
            "scale": rng.uniform(0.6, 1.6, n) * 400.0,
            "offset": rng.uniform(0.0, 150.0, n),
            "noise_sd": rng.uniform(0.02, 0.08, n),
            "bias_strength": rng.uniform(0.0, 0.35, n),
            "spacing": spacing,
        },
        index=pd.Index(names, name="site"),
    )


def _write_nifti(array, spacing, file):
    import nibabel as nib

    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -0.5 * np.array(spacing) * (np.array(array.shape) - 1)
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(file))


def _to_memory(array, spacing):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array.T))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(-0.5 * s * (n - 1) for s, n in zip(spacing, array.shape)))
    return image


def _grid_shape(fov, spacing):
    return tuple(max(8, round(f / s)) for f, s in zip(fov, spacing))


def _volume(rng, fov, spacing, site, age, sex, y, lesion, noise_rng=None, drawn=None):
    """One MR-like volume and its mask on the site's grid (i, j, k order).

    With ``noise_rng``, the scanner noise comes from it, and ``rng`` only
    consumes the draws of a grid of spacing ``drawn`` (the subject's real site),
    so that every later draw of ``rng`` is the same as with site effects.
    """
    shape = _grid_shape(fov, spacing)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    coords = np.meshgrid(*axes, indexing="ij")
    half = np.array(fov) / 2
    size = 1.05 if sex == "M" else 1.0
    head = sum((c / (0.85 * h * size)) ** 2 for c, h in zip(coords, half))
    inner = sum((c / (0.55 * h * size)) ** 2 for c, h in zip(coords, half))
    tissue = np.where(head <= 1, 0.65, 0.0) + np.where(inner <= 1, 0.35, 0.0)
    tissue += np.where(head <= 1, _smooth_field(rng, coords, 6, 12.0, 0.06), 0.0)
    # lesion: larger and more heterogeneous in class 1
    dist = np.sqrt(sum((c - m) ** 2 for c, m in zip(coords, lesion["center"])))
    inside = dist <= lesion["radius"]
    texture = _smooth_field(rng, coords, 8, 3.0, lesion["texture"])
    tissue = np.where(inside, 1.35 + texture, tissue)
    # reference region of normal tissue (label 2), mirrored across the midline
    ref_center = -np.asarray(lesion["center"])
    ref = np.sqrt(sum((c - m) ** 2 for c, m in zip(coords, ref_center))) <= 3.0
    ref &= ~inside & (inner <= 1)
    # age lowers global intensity a little
    tissue *= 1.0 - 0.004 * (age - 50.0)
    # site: bias field (multiplicative, smooth), scale, offset, noise
    direction = rng.normal(size=len(coords))
    direction /= np.linalg.norm(direction)
    ramp = sum(d * c / h for d, c, h in zip(direction, coords, half))
    bias = np.exp(site["bias_strength"] * ramp)
    noise = rng.standard_normal(shape if drawn is None else _grid_shape(fov, drawn))
    if noise_rng is not None:
        noise = noise_rng.standard_normal(shape)
    image = site["scale"] * (tissue * bias + site["noise_sd"] * noise)
    image = np.where(head <= 1.1, image + site["offset"], site["offset"] * 0.1)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[ref] = 2
    mask[inside] = 1
    if not inside.any():  # a very small lesion on a coarse grid: keep one voxel
        mask[tuple(np.unravel_index(np.argmin(dist), shape))] = 1
    return image.astype(np.float32), mask


def make_multisite_cohort(
    n_subjects=40,
    n_sites=3,
    *,
    shape=(40, 44, 36),
    path=None,
    random_state=None,
    site_sizes=None,
    confounding=0.0,
    label_effect=1.0,
    site_effects=True,
    return_effects=False,
):
    """Make a synthetic multi-site cohort of 3D MR-like volumes with lesion masks.

    Each subject has a volume and a mask (label 1: lesion, label 2: a reference
    region of normal tissue). Sites differ by known image-level effects:
    intensity scale and offset, noise level, a smooth multiplicative bias field
    and voxel spacing (so volumes of different sites have different grid
    shapes). The class label ``y`` makes the lesion larger and more
    heterogeneous; age lowers the global intensity a little; sex changes the head
    size slightly.

    Parameters
    ----------
    n_subjects : int, default=40
        Number of subjects (rows).
    n_sites : int, default=3
        Number of sites.
    shape : tuple of 3 int, default=(40, 44, 36)
        Field of view in millimetres; a site with 1 mm spacing has this grid
        shape.
    path : str, pathlib.Path or None, default=None
        Folder to write ``sub-XXX_image.nii.gz`` and ``sub-XXX_mask.nii.gz`` to
        (created if needed); the table then holds the paths. With None the
        table holds in-memory :class:`SimpleITK.Image` objects.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives identical files.
    site_sizes : sequence of int or None, default=None
        Subjects per site (must sum to ``n_subjects``); equal sizes by default.
    confounding : float in [0, 1), default=0.0
        How strongly the diagnosis is confounded with site: ``P(y=1 | site)``
        spreads linearly over ``[0.5 - confounding / 2, 0.5 + confounding / 2]``
        across sites (the two-hospital scenario).
    label_effect : float, default=1.0
        Strength of the label's effect on lesion size and texture (0: none).
    site_effects : bool, default=True
        False makes the same cohort (same subjects, labels, ages, sexes, anatomy
        and lesions for the same ``random_state``) as if every site had the same
        scanner: 1 mm voxels, intensity scale 440, offset 75, noise 0.05 and
        no bias field, with the noise drawn afresh. The site column is kept, so
        that a pipeline runs unchanged on both: the honest ceiling of a
        harmonization.
    return_effects : bool, default=False
        Also return the ground truth.

    Returns
    -------
    table : pandas.DataFrame
        Index ``sub-000``...; columns ``image``, ``mask``, ``site``, ``age``,
        ``sex`` ("F"/"M") and the target ``y``.
    effects : sklearn.utils.Bunch
        Only with ``return_effects``: ``site`` (DataFrame of scale, offset,
        noise_sd, bias_strength, spacing per site), ``lesion`` (DataFrame of
        radius in mm and texture amplitude per subject), ``age_slope`` (relative
        intensity change per year).

    Examples
    --------
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(6, 2, shape=(12, 14, 10), random_state=0)
    >>> table.columns.tolist()
    ['image', 'mask', 'site', 'age', 'sex', 'y']
    >>> table["site"].value_counts().sort_index().tolist()
    [3, 3]
    """
    rng = check_random_state(random_state)
    names = _site_names(n_sites)
    sizes = _site_sizes(n_subjects, n_sites, site_sizes)
    effects = _draw_site_effects(rng, names, 3)
    sites = np.repeat(np.arange(n_sites), sizes)
    y = _labels(rng, sites, n_sites, confounding)
    age = np.round(rng.uniform(20, 80, n_subjects), 1)
    sex = np.where(rng.uniform(size=n_subjects) < 0.5, "F", "M")
    index = pd.Index([f"sub-{i:03d}" for i in range(n_subjects)], name="subject")
    if path is not None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
    fov = np.asarray(shape, dtype=float)
    images, masks, lesions = [], [], []
    common = pd.Series(
        {
            "scale": 440.0,
            "offset": 75.0,
            "noise_sd": 0.05,
            "bias_strength": 0.0,
            "spacing": (1.0, 1.0, 1.0),
        }
    )
    # seeded from the generator's state without drawing from it
    noise_rng = None if site_effects else np.random.default_rng(rng.get_state()[1])
    for i in range(n_subjects):
        site = effects.iloc[sites[i]]
        base_radius = 0.09 * fov.min()
        radius = (
            base_radius * (1.0 + 0.45 * label_effect * y[i]) * rng.uniform(0.85, 1.15)
        )
        lesion = {
            "center": rng.uniform(-0.18, 0.18, 3) * fov,
            "radius": radius,
            "texture": 0.04 + 0.2 * label_effect * y[i],
        }
        if site_effects:
            image, mask = _volume(
                rng, fov, site["spacing"], site, age[i], sex[i], y[i], lesion
            )
        else:
            image, mask = _volume(
                rng,
                fov,
                common["spacing"],
                common,
                age[i],
                sex[i],
                y[i],
                lesion,
                noise_rng=noise_rng,
                drawn=site["spacing"],
            )
        lesions.append({"radius_mm": radius, "texture": lesion["texture"]})
        if path is None:
            images.append(_to_memory(image, site["spacing"]))
            masks.append(_to_memory(mask, site["spacing"]))
        else:
            image_file = path / f"{index[i]}_image.nii.gz"
            mask_file = path / f"{index[i]}_mask.nii.gz"
            _write_nifti(image, site["spacing"], image_file)
            _write_nifti(mask, site["spacing"], mask_file)
            images.append(str(image_file))
            masks.append(str(mask_file))
    table = pd.DataFrame(
        {
            "image": images,
            "mask": masks,
            "site": np.asarray(names)[sites],
            "age": age,
            "sex": sex,
            "y": y,
        },
        index=index,
    )
    if not return_effects:
        return table
    truth = Bunch(
        site=effects,
        lesion=pd.DataFrame(lesions, index=index),
        age_slope=-0.004,
    )
    return table, truth


def _xray(rng, shape, site, ctr):
    """One chest-X-ray-like image (rows, cols) in [0, 1] and its heart mask."""
    rows, cols = shape
    r, c = np.meshgrid(
        np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij"
    )
    thorax_half_width = 0.78
    body = ((c / 0.92) ** 2 + ((r - 0.05) / 1.05) ** 2) <= 1
    lungs = np.zeros(shape, bool)
    for side in (-1, 1):
        lungs |= (((c - side * 0.4) / 0.32) ** 2 + ((r + 0.05) / 0.72) ** 2) <= 1
    heart_half_width = ctr * thorax_half_width
    heart = (((c + 0.06) / heart_half_width) ** 2 + ((r - 0.35) / 0.3) ** 2) <= 1
    image = np.where(body, 0.55, 0.05)
    ribs = 0.06 * (np.sin(r * 38 + 3 * c**2) > 0.6)
    vessels = ndimage.gaussian_filter(rng.normal(0, 1, shape), 2.0) * 0.25
    image = np.where(lungs, 0.18 + ribs + vessels * 0.3, image)
    image = np.where(heart, 0.8, image)
    image = ndimage.gaussian_filter(image, site["blur"])
    image = site["contrast"] * image ** site["gamma"] + site["offset"]
    image += rng.normal(0, site["noise_sd"], shape)
    return np.clip(image, 0, 1), heart.astype(np.uint8)


def make_xray_cohort(
    n_subjects=40,
    n_sites=2,
    *,
    shape=(128, 112),
    path=None,
    random_state=None,
    site_sizes=None,
    confounding=0.0,
    return_effects=False,
):
    """Make a synthetic cohort of 2D chest-X-ray-like images from several hospitals.

    The label ``y`` is cardiomegaly: the cardiothoracic ratio (heart width over
    thorax width) is about 0.42 for normal subjects and 0.58 for cardiomegaly.
    Hospitals differ by their scanner's contrast, gamma, offset, blur and noise.
    Images are written as 8-bit grey PNGs with a PNG heart mask.

    Parameters
    ----------
    n_subjects : int, default=40
        Number of subjects.
    n_sites : int, default=2
        Number of hospitals.
    shape : tuple of 2 int, default=(128, 112)
        Image shape (rows, columns).
    path : str, pathlib.Path or None, default=None
        Folder to write ``sub-XXX_xray.png`` and ``sub-XXX_heart.png`` to; with
        None the table holds in-memory :class:`SimpleITK.Image` objects.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives identical files.
    site_sizes : sequence of int or None, default=None
        Subjects per hospital.
    confounding : float in [0, 1), default=0.0
        Confounding of cardiomegaly with hospital, as in
        :func:`make_multisite_cohort`.
    return_effects : bool, default=False
        Also return the ground truth (per-site scanner effects, per-subject
        cardiothoracic ratio).

    Returns
    -------
    table : pandas.DataFrame
        Columns ``image``, ``mask``, ``site``, ``age``, ``sex``, ``y``.
    effects : sklearn.utils.Bunch
        Only with ``return_effects``.

    Examples
    --------
    >>> from sklearn_medprep.datasets import make_xray_cohort
    >>> table = make_xray_cohort(4, 2, shape=(32, 28), random_state=0)
    >>> table["image"].iloc[0].GetSize()
    (28, 32)
    """
    import SimpleITK as sitk

    rng = check_random_state(random_state)
    names = _site_names(n_sites)
    sizes = _site_sizes(n_subjects, n_sites, site_sizes)
    effects = pd.DataFrame(
        {
            "contrast": rng.uniform(0.75, 1.0, n_sites),
            "gamma": rng.uniform(0.7, 1.4, n_sites),
            "offset": rng.uniform(0.0, 0.12, n_sites),
            "blur": rng.uniform(0.3, 1.5, n_sites),
            "noise_sd": rng.uniform(0.005, 0.04, n_sites),
        },
        index=pd.Index(names, name="site"),
    )
    sites = np.repeat(np.arange(n_sites), sizes)
    y = _labels(rng, sites, n_sites, confounding)
    age = np.round(rng.uniform(30, 85, n_subjects), 1)
    sex = np.where(rng.uniform(size=n_subjects) < 0.5, "F", "M")
    ctr = np.where(
        y == 1, rng.normal(0.58, 0.04, n_subjects), rng.normal(0.42, 0.04, n_subjects)
    )
    index = pd.Index([f"sub-{i:03d}" for i in range(n_subjects)], name="subject")
    if path is not None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
    images, masks = [], []
    for i in range(n_subjects):
        image, heart = _xray(rng, tuple(shape), effects.iloc[sites[i]], ctr[i])
        image = sitk.GetImageFromArray(np.round(image * 255).astype(np.uint8))
        heart = sitk.GetImageFromArray(heart)
        if path is None:
            images.append(image)
            masks.append(heart)
        else:
            image_file = path / f"{index[i]}_xray.png"
            mask_file = path / f"{index[i]}_heart.png"
            sitk.WriteImage(image, str(image_file))
            sitk.WriteImage(heart, str(mask_file))
            images.append(str(image_file))
            masks.append(str(mask_file))
    table = pd.DataFrame(
        {
            "image": images,
            "mask": masks,
            "site": np.asarray(names)[sites],
            "age": age,
            "sex": sex,
            "y": y,
        },
        index=index,
    )
    if not return_effects:
        return table
    return table, Bunch(site=effects, cardiothoracic_ratio=pd.Series(ctr, index=index))
