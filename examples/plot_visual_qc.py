"""
Looking at the images: masks, preprocessing and augmentation
============================================================

Before modelling, look at the images: is every mask on its lesion, did the
crop keep the lesion, do the images of all sites look alike after
normalisation, are the augmented copies plausible? This example draws the
three visual QC figures of :mod:`sklearn_medprep.qc` on a synthetic two-site
cohort from :func:`~sklearn_medprep.datasets.make_multisite_cohort` (NIfTI
files with a lesion, label 1, and a reference region, label 2):

* :func:`~sklearn_medprep.plot_subjects`: each subject's axial, coronal and
  sagittal slices through its mask's centre of mass, the mask drawn as
  contours, one grey window shared by all subjects (so a site that is
  brighter looks brighter);
* :func:`~sklearn_medprep.plot_preprocessing`: held-out subjects before and
  after a :class:`~sklearn_medprep.TorchIOPreprocessor` fitted on the
  training subjects (one window per stage: z-scores are not scanner units);
* :func:`~sklearn_medprep.plot_augmentations`: three draws of a
  :class:`~sklearn_medprep.TorchIOAugmenter` beside each original, the same
  ``random_state`` giving the same draws.
"""

# %%
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torchio as tio

from sklearn_medprep import (
    TorchIOAugmenter,
    TorchIOPreprocessor,
    plot_augmentations,
    plot_preprocessing,
    plot_subjects,
)
from sklearn_medprep.datasets import make_multisite_cohort

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
OUT = Path(
    os.environ.get("SKLEARN_MEDPREP_EXAMPLE_OUT")
    or tempfile.mkdtemp(prefix="medprep_example_")
)
OUT.mkdir(parents=True, exist_ok=True)

# %%
# A synthetic cohort from two sites
# ---------------------------------
# Site B's scanner is brighter, noisier and has coarser voxels (so its grids
# are smaller); the panels keep each image's physical aspect ratio.
n_subjects, shape = (8, (24, 26, 20)) if SMALL else (16, (40, 44, 36))
table = make_multisite_cohort(
    n_subjects, 2, shape=shape, path=OUT / "cohort", random_state=0
)
print(table.drop(columns=["image", "mask"]).head(4))

# %%
# Images and masks of the cohort
# ------------------------------
# The titles name each subject (the table's index) and its site; the suptitle
# states the grey window and its values.
fig = plot_subjects(table, file=OUT / "visual_qc_subjects.png")
print(fig.get_suptitle())
print("figure saved:", OUT / "visual_qc_subjects.png")

# %%
# Before and after preprocessing
# ------------------------------
# The preprocessor is fitted on the training subjects only (its histogram
# landmarks are learned there); the figure shows held-out subjects, as a
# reviewer of the pipeline would look at them.
train, test = table.iloc[::2], table.iloc[1::2]
crop = tuple(int(0.8 * s) for s in shape)
preprocessor = TorchIOPreprocessor(
    tio.Compose(
        [
            tio.Resample(1.0),
            tio.CropOrPad(crop, mask_name="mask"),
            tio.HistogramStandardization({}),
            tio.ZNormalization(),
        ]
    )
).fit(train)
fig = plot_preprocessing(
    preprocessor, test, view="axial", file=OUT / "visual_qc_preprocessing.png"
)
print(fig.get_suptitle())
before = [ax.images[0].get_clim() for ax in fig.axes if ax.get_visible()][::2]
print(f"one window per stage, shared by the {len(test)} subjects: "
      f"{len(set(before)) == 1}")

# %%
# Augmentation draws
# ------------------
# Three draws of a random affine transform and bias field per subject; the mask
# moves with the image.
augmenter = TorchIOAugmenter(
    tio.Compose([tio.RandomAffine(degrees=15, scales=0.1), tio.RandomBiasField(0.3)])
)
shown = 3 if SMALL else 4
fig = plot_augmentations(
    augmenter, table, n_draws=3, random_state=0, subjects=shown,
    file=OUT / "visual_qc_augmentations.png",
)
again = plot_augmentations(augmenter, table, n_draws=3, random_state=0,
                           subjects=shown)
same = all(
    np.array_equal(a.images[0].get_array(), b.images[0].get_array())
    for a, b in zip(fig.axes, again.axes)
    if a.get_visible()
)
print(f"same random_state, same draws: {same}")
