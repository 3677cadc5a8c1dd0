"""A synthetic multi-site cohort of images on one grid, with voxel-wise site effects."""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_voxel_cohort"]


def _smooth_map(rng, coords, amplitude):
    """A smooth random field: a few low-frequency cosines."""
    field = np.zeros(coords[0].shape)
    for _ in range(3):
        k = rng.normal(size=3) * 2.0
        field += np.cos(sum(ki * c for ki, c in zip(k, coords)) + rng.uniform(0, 6.3))
    return amplitude * field / 3.0


def make_voxel_cohort(
    n_subjects=60,
    n_sites=3,
    *,
    shape=(12, 14, 10),
    path=None,
    site_sizes=None,
    suffix=".nii.gz",
    random_state=None,
):
    """Make images of several sites on one grid, with known voxel-wise site effects.

    Each image is ``brain * (1 + age_slope * age) * site_scale + site_shift +
    noise * site_noise`` inside an ellipsoidal brain (zero outside): smooth,
    known maps of additive (``site_shift``) and multiplicative (``site_scale``)
    site effects and of the age effect (``age_slope``), as in a voxel-based
    morphometry cohort registered to one template. Ages are multiples of 1/4
    year (exact in float32, as neuroCombat casts covariates to float32).

    Parameters
    ----------
    n_subjects : int, default=60
        Number of subjects (rows).
    n_sites : int, default=3
        Number of sites.
    shape : tuple of 3 int, default=(12, 14, 10)
        Grid shape ``(x, y, z)``, the same for every image.
    path : str, pathlib.Path or None, default=None
        Folder to write ``sub-XXXXX<suffix>`` to (created if needed); the table
        then holds paths. With None it holds :class:`SimpleITK.Image` objects.
    site_sizes : sequence of int or None, default=None
        Subjects per site (summing to ``n_subjects``); equal by default.
    suffix : str, default=".nii.gz"
        File suffix (``".nii"`` writes uncompressed files, faster).
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives the same images.

    Returns
    -------
    table : pandas.DataFrame
        Index ``sub-00000``...; columns ``image``, ``site``, ``age``, ``sex``.
    truth : sklearn.utils.Bunch
        ``brain`` (bool array, ``(z, y, x)`` as SimpleITK arrays), ``site_shift``
        and ``site_scale`` (``(n_sites, z, y, x)``), ``age_slope`` (``(z, y,
        x)``), ``sites`` (names).

    Examples
    --------
    >>> from sklearn_medprep.datasets import make_voxel_cohort
    >>> table, truth = make_voxel_cohort(n_subjects=6, n_sites=2, random_state=0)
    >>> list(table.columns), table["image"].iloc[0].GetSize()
    (['image', 'site', 'age', 'sex'], (12, 14, 10))
    >>> truth.site_shift.shape
    (2, 10, 14, 12)
    """
    import SimpleITK as sitk

    rng = check_random_state(random_state)
    if site_sizes is None:
        base = n_subjects // n_sites
        site_sizes = [base + (k < n_subjects - base * n_sites) for k in range(n_sites)]
    if sum(site_sizes) != n_subjects or len(site_sizes) != n_sites:
        raise ValueError(
            f"site_sizes {list(site_sizes)} must have {n_sites} entries summing to "
            f"n_subjects={n_subjects}."
        )
    zyx = tuple(int(s) for s in shape[::-1])
    coords = np.meshgrid(*[np.linspace(-1, 1, n) for n in zyx], indexing="ij")
    brain = sum(c**2 for c in coords) < 0.9
    sites = [f"site_{k}" for k in range(n_sites)]
    shift = np.stack([_smooth_map(rng, coords, 0.4) for _ in sites]) * brain
    scale = 1.0 + np.stack([_smooth_map(rng, coords, 0.3) for _ in sites]) * brain
    noise = rng.uniform(0.05, 0.15, size=n_sites)
    age_slope = (-0.008 + _smooth_map(rng, coords, 0.004)) * brain
    tissue = (1.0 + _smooth_map(rng, coords, 0.3)) * brain
    site_of = np.repeat(np.arange(n_sites), site_sizes)
    # site-dependent age ranges: age and site are confounded, as in real cohorts
    age = np.round((rng.uniform(20, 60, n_subjects) + 8 * site_of) * 4) / 4
    sex = rng.choice(["F", "M"], size=n_subjects)
    index = pd.Index([f"sub-{i:05d}" for i in range(n_subjects)])
    if path is not None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
    cells = []
    for i in range(n_subjects):
        k = site_of[i]
        value = tissue * (1.0 + age_slope * (age[i] - 40.0)) * scale[k] + shift[k]
        value = value + brain * rng.normal(0.0, noise[k], size=zyx)
        image = sitk.GetImageFromArray(value.astype(np.float32))
        image.SetSpacing((2.0, 2.0, 2.0))
        image.SetOrigin(tuple(-float(n - 1) for n in shape))
        if path is None:
            cells.append(image)
        else:
            file = path / f"{index[i]}{suffix}"
            sitk.WriteImage(image, str(file))
            cells.append(str(file))
    table = pd.DataFrame(
        {
            "image": pd.Series(cells, index=index, dtype=object),
            "site": [sites[k] for k in site_of],
            "age": age,
            "sex": sex,
        },
        index=index,
    )
    truth = Bunch(
        brain=brain,
        site_shift=shift,
        site_scale=scale,
        age_slope=age_slope,
        sites=sites,
    )
    return table, truth
