"""A synthetic cohort of volumes far larger than a patch, for patch-based nets.

Each volume carries its class everywhere (a faint striped texture in class 1),
so that any patch holds evidence of it, and a bright sphere labelled 1 in its
mask, a segmentation target whose position and size vary by subject.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ._cohort import _to_memory, _write_nifti

__all__ = ["make_texture_cohort"]


def make_texture_cohort(
    n_subjects=20,
    *,
    shape=(48, 48, 48),
    path=None,
    random_state=None,
    stripe_amplitude=1.0,
    n_sites=2,
):
    """Make volumes whose class is a texture and whose mask is a sphere.

    Every volume is Gaussian noise (standard deviation 1) around a random
    offset, with a sphere of intensity +3 (label 1 in the mask, radius 10-20%
    of the smallest side, random centre). Class 1 volumes add stripes along
    the first voxel axis, ``stripe_amplitude * sin(2 pi i / 4 + phase)``, over
    the whole volume: a patch of a few voxels holds the class, a whole
    volume is never needed.

    Parameters
    ----------
    n_subjects : int, default=20
        Number of subjects (rows), classes alternating then shuffled (balanced).
    shape : tuple of 3 int, default=(48, 48, 48)
        Voxel grid of every volume (1 mm voxels).
    path : str, pathlib.Path or None, default=None
        Folder to write ``sub-XXX_image.nii.gz`` and ``sub-XXX_mask.nii.gz``
        to; the table then holds paths. With None, in-memory
        :class:`SimpleITK.Image` objects.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives identical volumes.
    stripe_amplitude : float, default=1.0
        Amplitude of the class-1 stripes (0: the classes are identical).
    n_sites : int, default=2
        Sites, assigned in turn within each class (site column).

    Returns
    -------
    pandas.DataFrame
        Index ``sub-000``...; columns ``image``, ``mask``, ``site`` and ``y``.

    Examples
    --------
    >>> from sklearn_medprep.datasets import make_texture_cohort
    >>> table = make_texture_cohort(4, shape=(9, 10, 11), random_state=0)
    >>> table.columns.tolist(), table["y"].tolist()
    (['image', 'mask', 'site', 'y'], [0, 1, 1, 0])
    >>> table["image"].iloc[0].GetSize()
    (9, 10, 11)
    """
    rng = check_random_state(random_state)
    shape = tuple(int(s) for s in shape)
    y = rng.permutation(np.arange(n_subjects) % 2)
    site = np.empty(n_subjects, dtype=object)
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        site[rows] = [f"site-{k % n_sites}" for k in range(len(rows))]
    index = pd.Index([f"sub-{i:03d}" for i in range(n_subjects)], name="subject")
    if path is not None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    images, masks = [], []
    for i in range(n_subjects):
        image = rng.normal(rng.uniform(-1, 1), 1.0, shape)
        if y[i]:
            phase = rng.uniform(0, 2 * np.pi)
            image += stripe_amplitude * np.sin(2 * np.pi * grid[0] / 4 + phase)
        radius = rng.uniform(0.1, 0.2) * min(shape)
        centre = [rng.uniform(radius, n - radius) for n in shape]
        inside = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2
        image[inside] += 3.0
        image = image.astype(np.float32)
        mask = inside.astype(np.uint8)
        if path is None:
            images.append(_to_memory(image, (1.0, 1.0, 1.0)))
            masks.append(_to_memory(mask, (1.0, 1.0, 1.0)))
        else:
            image_file = path / f"{index[i]}_image.nii.gz"
            mask_file = path / f"{index[i]}_mask.nii.gz"
            _write_nifti(image, (1.0, 1.0, 1.0), image_file)
            _write_nifti(mask, (1.0, 1.0, 1.0), mask_file)
            images.append(str(image_file))
            masks.append(str(mask_file))
    return pd.DataFrame(
        {"image": images, "mask": masks, "site": site, "y": y}, index=index
    )
